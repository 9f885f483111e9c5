"""Private images: the scan inspects them with the pull secrets of the pods' service accounts (a real
docker-registry with htpasswd basic auth), and says what it could not read."""

from __future__ import annotations

import pytest

from clusters.models import Scan
from dnsaudit import imagebuild
from dnsaudit.fakekube import objects as o
from dnsaudit.fakekube.objects import C, NodeInfo, Placement, PodOpts
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
