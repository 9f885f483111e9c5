"""In-cluster mode: the test API server scanned from a service-account directory (token, ca.crt, namespace)
and KUBERNETES_SERVICE_HOST/PORT, registered by ``migrate``, still working after the token file rotates;
uploaded kubeconfigs still may not name a token file."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from clusters import incluster
from clusters.models import Cluster, Scan
from clusters.registry import import_kubeconfig, load_context
from dnsaudit.core.kubeconfig import KubeconfigError
from dnsaudit.core.permissions import cluster_role_rules
from dnsaudit.testbed.fakekube.fleet import demo_fleet
from tests.kubeconfig.test_reader_rbac import to_rules
from tests.scans.helpers import run_scan

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_cluster(fakekube, tmp_path, settings, monkeypatch):
    """The default cluster of the test API server holding a demo cluster's objects, a user with exactly
    reader-rbac's ClusterRole, and a pod's service-account directory for it."""
    spec = next(s for s in demo_fleet() if s.name == "managed-clean")
    fakekube.reset(spec.objects)
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    user = fakekube.add_user(
        "system:serviceaccount:dnsaudit:dnsaudit", cert=False, rules=to_rules(cluster_role_rules())
    )
    (sa / "token").write_text(user.token)
    (sa / "ca.crt").write_bytes(fakekube.ca_pem)
    (sa / "namespace").write_text("dnsaudit")
    settings.DNSAUDIT_IN_CLUSTER = True
    settings.DNSAUDIT_SERVICE_ACCOUNT_DIR = str(sa)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(fakekube.port))
    return fakekube, sa


def scan_json(name: str) -> dict:
    out = io.StringIO()
    call_command("scan", name, "--wait", "--json", stdout=out)
    return json.loads(out.getvalue())


def test_migrate_registers_the_cluster_and_scans_it_from_the_service_account(transactional_db, in_cluster):
    fake, sa = in_cluster
    call_command("migrate", verbosity=0)  # the deploy's migration step: post_migrate registers it
    cluster = Cluster.objects.get(name="in-cluster")
    assert cluster.credentials == Cluster.SERVICE_ACCOUNT
    assert cluster.server == f"https://127.0.0.1:{fake.port}"
    assert cluster.summary["auth_kind"] == "service-account"
    assert (sa / "token").read_text() not in json.dumps(cluster.summary)
    from clusters import crypto

    assert (sa / "token").read_text() not in crypto.decrypt(cluster.kubeconfig_encrypted)  # never stored
    summary = scan_json("in-cluster")  # `python manage.py scan in-cluster --wait --json`
    assert summary["status"] in (Scan.SUCCEEDED, Scan.PARTIAL), summary
    assert summary["counts"]["workloads"] > 0
    scan = Scan.objects.get(pk=summary["id"])
    assert not [p for p in scan.problems if "forbidden" in json.dumps(p).lower()], scan.problems
    assert scan.workloads.exists()


def test_a_rotated_token_file_is_read_by_the_next_scan(in_cluster):
    fake, sa = in_cluster
    cluster = incluster.ensure_registered()
    assert run_scan(cluster).status in (Scan.SUCCEEDED, Scan.PARTIAL)
    # The kubelet rotates the projected token: a new one in the file, the old one revoked.
    name = "system:serviceaccount:dnsaudit:dnsaudit"
    old = (sa / "token").read_text()
    new = fake.add_user(name, cert=False, rules=to_rules(cluster_role_rules()))  # replaces (revokes) the old
    assert fake.default.user_for_token(old) is None
    (sa / "token").write_text(new.token + "\n")
    assert load_context(cluster).token == new.token
    scan = run_scan(cluster)
    assert scan.status in (Scan.SUCCEEDED, Scan.PARTIAL), scan.error
    # ensure_registered again (a later migrate) refreshes the row and keeps it service-account.
    again = incluster.ensure_registered()
    assert again.pk == cluster.pk and again.credentials == Cluster.SERVICE_ACCOUNT


def test_an_unreadable_service_account_fails_the_scan_with_the_reason(in_cluster):
    fake, sa = in_cluster
    cluster = incluster.ensure_registered()
    (sa / "token").unlink()
    scan = run_scan(cluster)
    assert scan.status == Scan.FAILED and "token" in scan.error and str(sa) in scan.error


def test_off_means_no_cluster_and_no_service_account_reads(in_cluster, settings):
    fake, sa = in_cluster
    cluster = incluster.ensure_registered()
    settings.DNSAUDIT_IN_CLUSTER = False
    assert incluster.ensure_registered() is None
    with pytest.raises(ValueError, match="in-cluster mode is off"):
        load_context(cluster)


def test_a_kubeconfig_named_cluster_is_not_taken_over(in_cluster):
    fake, sa = in_cluster
    import_kubeconfig(fake.kubeconfig("admin"), name="in-cluster")
    with pytest.raises(incluster.InClusterError, match="registered from a kubeconfig"):
        incluster.ensure_registered()


def test_uploaded_kubeconfigs_still_may_not_name_a_token_file(in_cluster, tmp_path):
    fake, sa = in_cluster
    text = f"""
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{fake.url}"}}}}]
users: [{{name: u, user: {{tokenFile: "{sa / "token"}"}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u}}}}]
current-context: c
"""
    with pytest.raises(KubeconfigError):
        import_kubeconfig(text, name="sneaky")
    assert not Cluster.objects.filter(name="sneaky").exists()
