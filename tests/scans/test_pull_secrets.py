"""Private images: the scan inspects them with the pull secrets of the pods' service accounts (a real
docker-registry with htpasswd basic auth), and says what it could not read."""

from __future__ import annotations

import pytest

from clusters.models import Scan
from dnsaudit.testbed import imagebuild
from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.objects import C, NodeInfo, Placement, PodOpts
from tests.registry.conftest import PASSWORD, USER
from tests.scans.helpers import register, rows, run_scan, single_pool_spec

pytestmark = pytest.mark.django_db


def private_cluster(fakekube, basic_registry, *, with_secret: bool):
    push = imagebuild.Pusher(basic_registry.url, auth=(USER, PASSWORD))
    digest, _ = push.image("team/private-app", "2.0", imagebuild.alpine("1.2.3-r4", "3.16.9"))
    ref = f"{basic_registry.host}/team/private-app:2.0"
    nodes = ["node-a"]
    place = Placement(nodes, {"node-a": "10.10.1.11"})
    objs = [o.namespace("shop"), o.node("node-a", NodeInfo(), ip="10.10.1.11")]
    # The pods name no imagePullSecrets themselves: the credentials hang on their service account.
    objs.append(o.service_account("shop", "builder", pull_secrets=["regcred"] if with_secret else ()))
    objs.append(o.pull_secret("shop", "regcred", basic_registry.host, USER, PASSWORD))
    objs += o.deployment(
        "shop", "private-app", [C("app", ref)], place, replicas=1, opts=PodOpts(service_account="builder")
    )
    for x in objs:
        if x["kind"] == "Pod":
            for st in x["status"]["containerStatuses"]:
                st["imageID"] = f"{basic_registry.host}/team/private-app@{digest}"
    fakekube.default.reset(objs)
    return objs, nodes


def test_private_image_is_read_with_the_service_accounts_pull_secret(fakekube, basic_registry, upstream_dns):
    objs, nodes = private_cluster(fakekube, basic_registry, with_secret=True)
    spec = single_pool_spec(objs, nodes)
    cluster = register(fakekube.default, spec, upstream_dns(spec), user="admin", name="private")
    scan = run_scan(cluster)
    assert scan.status == Scan.SUCCEEDED, (scan.error, scan.problems)
    app = rows(scan)["shop/Deployment/private-app"]
    container = app.report["containers"][0]
    assert (container["libc"], container["musl_version"], container["confidence"]) == (
        "musl",
        "1.2.3",
        "confirmed",
    )


def test_without_credentials_the_verdict_is_inferred_and_the_error_kept(
    fakekube, basic_registry, upstream_dns
):
    objs, nodes = private_cluster(fakekube, basic_registry, with_secret=False)
    spec = single_pool_spec(objs, nodes)
    cluster = register(fakekube.default, spec, upstream_dns(spec), user="admin", name="private-anon")
    scan = run_scan(cluster)
    app = rows(scan)["shop/Deployment/private-app"]
    container = app.report["containers"][0]
    assert container["confidence"] == "inferred"
    evidence = " ".join(app.detail["containers"][0]["evidence"])
    assert "401" in evidence or "credentials" in evidence


# --- pull secrets stay in their namespace (issue #10, item 6) ----------------------------------------


def two_team_cluster(fakekube, basic_registry, *, b_secret_password: str | None):
    """Namespace ``team-a`` runs ``a/app`` with a working pull secret; ``team-b`` runs ``b/app`` (another
    private image on the same registry) with no secret, or (``b_secret_password``) with a secret of its own
    for the same registry. ``team-b`` sorts after ``team-a``: under one merged pool its secret would
    override ``team-a``'s, and without one ``team-a``'s would read ``team-b``'s image."""
    push = imagebuild.Pusher(basic_registry.url, auth=(USER, PASSWORD))
    digests = {
        "a": push.image("a/app", "1", imagebuild.alpine("1.2.3-r4", "3.16.9"))[0],
        "b": push.image("b/app", "1", imagebuild.alpine("1.2.4-r3", "3.18.4"))[0],
    }
    nodes = ["node-a"]
    place = Placement(nodes, {"node-a": "10.10.1.11"})
    objs = [o.namespace("team-a"), o.namespace("team-b"), o.node("node-a", NodeInfo(), ip="10.10.1.11")]
    objs.append(o.pull_secret("team-a", "regcred", basic_registry.host, USER, PASSWORD))
    b_secrets: tuple[str, ...] = ()
    if b_secret_password is not None:
        objs.append(o.pull_secret("team-b", "regcred", basic_registry.host, USER, b_secret_password))
        b_secrets = ("regcred",)
    for team, secrets in (("a", ("regcred",)), ("b", b_secrets)):
        ref = f"{basic_registry.host}/{team}/app:1"
        objs += o.deployment(
            f"team-{team}",
            "app",
            [C("app", ref)],
            place,
            replicas=1,
            opts=PodOpts(image_pull_secrets=secrets),
        )
    for x in objs:
        if x["kind"] == "Pod":
            team = x["metadata"]["namespace"][-1]
            for st in x["status"]["containerStatuses"]:
                st["imageID"] = f"{basic_registry.host}/{team}/app@{digests[team]}"
    fakekube.default.reset(objs)
    return objs, nodes


def _container(scan, key):
    row = rows(scan)[key]
    return row.report["containers"][0], " ".join(row.detail["containers"][0]["evidence"])


def test_a_pull_secret_of_namespace_a_is_not_used_for_an_image_of_namespace_b(
    fakekube, basic_registry, upstream_dns
):
    objs, nodes = two_team_cluster(fakekube, basic_registry, b_secret_password=None)
    spec = single_pool_spec(objs, nodes)
    scan = run_scan(register(fakekube.default, spec, upstream_dns(spec), user="admin", name="teams"))
    assert scan.status == Scan.SUCCEEDED, (scan.error, scan.problems)
    a, _ = _container(scan, "team-a/Deployment/app")
    assert (a["libc"], a["musl_version"], a["confidence"]) == ("musl", "1.2.3", "confirmed")
    # team-b has no credentials: its private image is read anonymously, refused, and inferred.
    b, evidence = _container(scan, "team-b/Deployment/app")
    assert b["confidence"] == "inferred"
    assert "401" in evidence and "requires credentials" in evidence


def test_a_later_namespace_never_overrides_an_earlier_ones_credentials(
    fakekube, basic_registry, upstream_dns
):
    objs, nodes = two_team_cluster(fakekube, basic_registry, b_secret_password="wrong-password")
    spec = single_pool_spec(objs, nodes)
    scan = run_scan(register(fakekube.default, spec, upstream_dns(spec), user="admin", name="teams-wrong"))
    assert scan.status == Scan.SUCCEEDED, (scan.error, scan.problems)
    a, _ = _container(scan, "team-a/Deployment/app")
    assert (a["libc"], a["confidence"]) == ("musl", "confirmed")  # team-a's own secret, not team-b's
    b, evidence = _container(scan, "team-b/Deployment/app")
    assert b["confidence"] == "inferred" and "refused credentials" in evidence  # team-b's own (wrong) one


def test_a_workloads_pull_secret_is_not_lent_to_another_workload_of_its_namespace(
    fakekube, basic_registry, upstream_dns
):
    """As the kubelet does: a pod pulls with its own imagePullSecrets and its service account's, not with a
    secret that another workload of the same namespace names. ``shop/with-secret`` names regcred;
    ``shop/without`` runs another private image on the same registry and names none: it must be read
    anonymously (refused: inferred), not with its neighbour's secret."""
    push = imagebuild.Pusher(basic_registry.url, auth=(USER, PASSWORD))
    digests = {
        "with-secret": push.image("shop/with-secret", "1", imagebuild.alpine("1.2.3-r4", "3.16.9"))[0],
        "without": push.image("shop/without", "1", imagebuild.alpine("1.2.4-r3", "3.18.4"))[0],
    }
    nodes = ["node-a"]
    place = Placement(nodes, {"node-a": "10.10.1.11"})
    objs = [o.namespace("shop"), o.node("node-a", NodeInfo(), ip="10.10.1.11")]
    objs.append(o.pull_secret("shop", "regcred", basic_registry.host, USER, PASSWORD))
    for name, secrets in (("with-secret", ("regcred",)), ("without", ())):
        objs += o.deployment(
            "shop",
            name,
            [C("app", f"{basic_registry.host}/shop/{name}:1")],
            place,
            replicas=1,
            opts=PodOpts(image_pull_secrets=secrets),
        )
    for x in objs:
        if x["kind"] == "Pod":
            name = x["metadata"]["name"].rsplit("-", 2)[0]
            for st in x["status"]["containerStatuses"]:
                st["imageID"] = f"{basic_registry.host}/shop/{name}@{digests[name]}"
    fakekube.default.reset(objs)
    spec = single_pool_spec(objs, nodes)
    scan = run_scan(register(fakekube.default, spec, upstream_dns(spec), user="admin", name="shop"))
    with_secret, _ = _container(scan, "shop/Deployment/with-secret")
    without, evidence = _container(scan, "shop/Deployment/without")
    assert with_secret["confidence"] == "confirmed" and with_secret["musl_version"] == "1.2.3"
    assert without["confidence"] == "inferred"
    assert "401" in evidence or "credentials" in evidence
