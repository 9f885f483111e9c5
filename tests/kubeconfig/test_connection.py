"""clusters.registry.connection_test (and add-cluster's test step) against the project's HTTPS test API server."""

from __future__ import annotations

import io

import pytest
import yaml
from django.core.management import call_command

from clusters import crypto
from clusters.models import Cluster
from clusters.registry import connection_test, import_kubeconfig
from dnsaudit.testbed.fakekube.auth import VIEW_RULES
from dnsaudit.testbed.fakekube.server import FakeKube
from tests.support import free_port

from .factory import doc, dump

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fernet_keys")]


@pytest.fixture(scope="module")
def kube():
    with FakeKube() as server:
        yield server


def test_token_cluster_is_reachable_with_version_and_permission_checks(kube):
    [cluster] = import_kubeconfig(kube.kubeconfig("admin", auth="token"), name="fake-token").clusters
    result = connection_test(cluster)
    assert result["reachable"] is True and result["error"] is None
    assert result["server_version"]["gitVersion"] == "v1.31.4"
    assert result["checks"] and all(c["allowed"] for c in result["checks"])
    assert Cluster.objects.get(pk=cluster.pk).summary["connection"]["reachable"] is True


def test_client_certificate_cluster_is_reachable(kube):
    [cluster] = import_kubeconfig(kube.kubeconfig("admin", auth="cert"), name="fake-cert").clusters
    assert cluster.summary["auth_kind"] == "client-certificate"
    result = connection_test(cluster)
    assert result["reachable"] is True and result["error"] is None


def test_missing_permissions_show_in_the_checks(kube):
    kube.add_user("viewer", token="viewer-token-SECRET-1234", cert=False, rules=VIEW_RULES)
    [cluster] = import_kubeconfig(kube.kubeconfig("viewer", auth="token"), name="fake-view").clusters
    result = connection_test(cluster)
    denied = {c["fact"] for c in result["checks"] if not c["allowed"]}
    assert "pull secrets" in denied and "kubelet configz" in denied
    assert "pods" not in denied
    assert all(c["loss"] for c in result["checks"] if not c["allowed"])


def test_rejected_token_is_an_error_that_does_not_echo_the_token(kube):
    text = kube.kubeconfig("admin", auth="token")
    d = yaml.safe_load(text)
    d["users"][0]["user"]["token"] = "wrong-token-SECRET-9876"
    [cluster] = import_kubeconfig(dump(d), name="fake-bad").clusters
    result = connection_test(cluster)
    assert result["error"] and "401" in result["error"]
    assert result["transient"] is False
    assert "wrong-token-SECRET-9876" not in repr(result)


def test_unreachable_cluster_is_reported_not_raised():
    server = f"https://127.0.0.1:{free_port()}"
    [cluster] = import_kubeconfig(
        dump(doc(cluster={"server": server, "insecure-skip-tls-verify": True}))
    ).clusters
    result = connection_test(cluster, timeout=3)
    assert result["reachable"] is False
    assert result["transient"] is True
    # The wording belongs to the boundary (which, for now, calls a refused connection a timeout).
    assert server in result["error"]


def test_tampered_row_is_refused_before_any_connection():
    [cluster] = import_kubeconfig(dump(doc())).clusters
    hostile = dump(doc(user={"exec": {"command": "/bin/sh", "args": ["-c", "true"]}}))
    Cluster.objects.filter(pk=cluster.pk).update(kubeconfig_encrypted=crypto.encrypt(hostile))
    cluster.refresh_from_db()
    result = connection_test(cluster)
    assert result["reachable"] is False
    assert "sets exec" in result["error"]


def test_add_cluster_stores_an_unreachable_cluster_and_exits_zero(tmp_path):
    f = tmp_path / "kc.yaml"
    server = f"https://127.0.0.1:{free_port()}"
    f.write_text(dump(doc(cluster={"server": server, "insecure-skip-tls-verify": True})))
    out, err = io.StringIO(), io.StringIO()
    call_command("add-cluster", "--kubeconfig", str(f), stdout=out, stderr=err)  # no CommandError = exit 0
    assert Cluster.objects.filter(name="prod").exists()
    line = next(x for x in err.getvalue().splitlines() if "not reachable" in x)
    assert line.startswith("warning: prod stored; cluster not reachable now: ") and server in line
    assert "run the connection test from the cluster page" in err.getvalue()


def test_add_cluster_prints_version_and_permissions_of_a_reachable_cluster(kube, tmp_path):
    f = tmp_path / "kc.yaml"
    f.write_text(kube.kubeconfig("admin", auth="token"))
    out, err = io.StringIO(), io.StringIO()
    call_command("add-cluster", "--kubeconfig", str(f), "--name", "fake-cli", stdout=out, stderr=err)
    assert "reachable    yes (Kubernetes v1.31.4)" in out.getvalue()
    assert "ok      pods: list pods (all namespaces)" in out.getvalue()
    token = yaml.safe_load(f.read_text())["users"][0]["user"]["token"]
    assert token not in out.getvalue() + err.getvalue()
