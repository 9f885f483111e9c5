"""Faults a scan must survive, with the fake API server's fault injection, a misbehaving registry and DNS
server on loopback. After every fault the previous good report is still the cluster's report, whole.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from cryptography.fernet import Fernet
from django.utils import timezone

from clusters.models import ImageVerdict, Scan
from clusters.scan import claim, execute_scan, pipeline, reap_dead_scans, request_scan
from dnsaudit.boundary.kube import KubeClient
from dnsaudit.testbed import imagebuild
from dnsaudit.testbed.fakedns import Behaviour, Rule
from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.auth import Rule as RbacRule
from dnsaudit.testbed.fakekube.fleet import DEMO_USER
from dnsaudit.testbed.fakekube.objects import C, NodeInfo, Placement
from tests.scans.helpers import EXTERNAL, assert_last_good, register, rows, run_scan, single_pool_spec
from tests.support import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def clean(fakekube_fleet, upstream_dns):
    """managed-clean registered, with one good scan: ``(fake cluster, Cluster, good scan)``."""
    fake, spec = fakekube_fleet["managed-clean"]
    cluster = register(fake, spec, upstream_dns(spec))
    good = run_scan(cluster)
    assert good.status == Scan.SUCCEEDED
    return fake, cluster, good


def statuses(fake, pattern: str) -> list[int]:
    return [st for _m, target, _u, st in fake.faults.log if pattern in target]


# --- the Kubernetes API -----------------------------------------------------------------------------


def test_api_unreachable_at_start_fails_clearly_and_keeps_the_report(clean):
    fake, cluster, good = clean
    fake.faults.down = True
    bad = run_scan(cluster)
    assert bad.status == Scan.FAILED
    assert "could not be reached" in bad.error and cluster.server in bad.error
    assert bad.error.count(cluster.server) == 1, bad.error  # said once, not "at X: … at X"
    assert "previous report" in bad.error
    assert "demo cluster" not in bad.error
    assert bad.workloads.count() == 0 and bad.node_pools.count() == 0
    assert_last_good(cluster, good)


def test_an_unreachable_demo_cluster_says_it_lives_only_while_make_run_runs(clean):
    fake, cluster, _good = clean
    cluster.is_demo = True
    cluster.save()
    fake.faults.down = True
    bad = run_scan(cluster)
    assert bad.status == Scan.FAILED
    assert "demo cluster" in bad.error and "make run" in bad.error


def test_unreachable_mid_pagination_is_retried(clean):
    fake, cluster, good = clean
    fake.faults.page_cap = 2
    fake.faults.drop(r"/api/v1/pods\?.*continue=", times=1)
    again = run_scan(cluster)
    assert again.status == Scan.SUCCEEDED
    assert sorted(rows(again)) == sorted(rows(good))
    assert again.pods_seen == good.pods_seen  # a restarted list yields no duplicates


def test_unreachable_mid_pagination_for_good_fails_and_keeps_the_report(clean):
    fake, cluster, good = clean
    fake.faults.log.clear()
    fake.faults.page_cap = 2
    fake.faults.drop(r"/api/v1/pods\?.*continue=", times=None)
    bad = run_scan(cluster)
    assert bad.status == Scan.FAILED
    assert "listing pods failed after 3 attempts" in bad.error
    assert len([t for _m, t, _u, _s in fake.faults.log if "/api/v1/pods?" in t and "continue=" not in t]) == 3
    assert_last_good(cluster, good)


def test_undecryptable_kubeconfig_fails_with_a_clear_message(clean, settings):
    fake, cluster, good = clean
    settings.DNSAUDIT_FERNET_KEYS = [Fernet.generate_key().decode()]  # the key was replaced
    bad = run_scan(cluster)
    assert bad.status == Scan.FAILED
    assert (
        "stored kubeconfig of managed-clean cannot be used" in bad.error
        and "DNSAUDIT_FERNET_KEYS" in bad.error
    )
    assert "internal error" not in bad.error
    assert_last_good(cluster, good)


def test_rejected_credentials_fail_with_401_and_keep_the_report(clean):
    fake, cluster, good = clean
    fake.users.pop(DEMO_USER)  # the certificate's user is gone: 401 for everything
    bad = run_scan(cluster)
    assert bad.status == Scan.FAILED
    assert "rejected the stored credentials (401)" in bad.error
    assert_last_good(cluster, good)


def test_forbidden_namespaces_give_a_partial_scan_naming_them(fakekube_fleet, upstream_dns):
    fake, spec = fakekube_fleet["managed-clean"]
    namespaces = sorted({x["metadata"]["name"] for x in spec.objects if x["kind"] == "Namespace"})
    allowed = tuple(n for n in namespaces if n != "analytics")
    read = ("get", "list", "watch")
    groups = ("", "apps", "batch", "apiextensions.k8s.io")
    fake.add_user(
        "limited",
        rules=(
            RbacRule(read, groups, ("pods", "deployments", "replicasets", "statefulsets", "daemonsets", "jobs",
                                    "cronjobs", "configmaps"), namespaces=allowed),
            RbacRule(read, ("", "apiextensions.k8s.io"), ("nodes", "namespaces", "customresourcedefinitions")),
            RbacRule(("get",), ("",), ("nodes/proxy",)),
        ),
    )  # fmt: skip
    scan = run_scan(register(fake, spec, upstream_dns(spec), user="limited"))
    assert scan.status == Scan.PARTIAL
    ns_problems = [p for p in scan.problems if "in namespaces" in p["fact"]]
    assert ns_problems, scan.problems
    for p in ns_problems:
        assert p["fact"].endswith("in namespaces analytics")
        assert "forbidden (403)" in p["error"]
        assert "analytics are missing from the report" in p["impact"]
    assert {p["fact"].split()[0] for p in ns_problems} >= {"pods", "deployments", "cronjobs"}
    got = rows(scan)
    assert not [k for k in got if k.startswith("analytics/")]
    assert got["shop/Deployment/storefront"].risk == "safe"
    assert "kube-system/Deployment/coredns" in got


def test_configz_403_and_502_give_a_partial_scan_with_assumed_kubelet_facts(fakekube_fleet, upstream_dns):
    fake, spec = fakekube_fleet["edge-k3s"]
    server_pool, agents = spec.pools
    for n in server_pool.nodes:
        fake.set_kubelet(n, None, status=403)  # the kubelet's own authorizer
    for n in agents.nodes:
        fake.set_kubelet(n, None, status=502)  # kubelet unreachable from the API server
    scan = run_scan(register(fake, spec, upstream_dns(spec)))
    assert scan.status == Scan.PARTIAL
    problems = {p["fact"]: p for p in scan.problems}
    assert len(problems) == 2 and all(f.startswith("kubelet config of pool") for f in problems)
    errors = " ".join(p["error"] for p in problems.values())
    assert "403" in errors or "forbidden" in errors.lower()
    assert "502" in errors
    for p in problems.values():
        assert "assumed clusterDNS 10.43.0.10" in p["impact"]
    for pool in scan.node_pools.all():
        assert pool.observed["kubelet_config"] is False
        assert pool.cluster_dns == ["10.43.0.10"]
        assert pool.resolv_conf_path == "/etc/resolv.conf"  # the assumed default, not k3s's real path
    # The kubelet version still comes from the Node objects, so 'search .' (1.25.0) is still judged.
    assert rows(scan)["sensors/Deployment/sensor-gateway"].risk == "affected"


def test_410_on_continue_restarts_the_list_and_the_scan_succeeds(clean):
    fake, cluster, good = clean
    fake.faults.page_cap = 2
    fake.faults.expire(r"/apis/apps/v1/replicasets\?.*continue=", times=1)
    again = run_scan(cluster)
    assert again.status == Scan.SUCCEEDED
    assert 410 in statuses(fake, "/apis/apps/v1/replicasets?")
    assert sorted(rows(again)) == sorted(rows(good))


def test_5xx_mid_page_is_retried(clean):
    fake, cluster, good = clean
    fake.faults.page_cap = 2
    fake.faults.fail(r"/apis/apps/v1/deployments\?.*continue=", status=500, times=1)
    fake.faults.fail(r"/apis/batch/v1/cronjobs", status=503, times=2)
    again = run_scan(cluster)
    assert again.status == Scan.SUCCEEDED, again.error
    assert 500 in statuses(fake, "/apis/apps/v1/deployments?")
    assert statuses(fake, "/apis/batch/v1/cronjobs").count(503) == 2
    assert sorted(rows(again)) == sorted(rows(good))


def test_persistent_5xx_fails_after_bounded_retries(clean):
    fake, cluster, good = clean
    fake.faults.fail(r"/apis/apps/v1/statefulsets", status=503, times=None)
    started = time.monotonic()
    bad = run_scan(cluster)
    assert bad.status == Scan.FAILED
    assert "statefulsets" in bad.error and "503" in bad.error and "after 3 attempts" in bad.error
    assert statuses(fake, "/apis/apps/v1/statefulsets").count(503) == 3
    assert time.monotonic() - started < 10
    assert_last_good(cluster, good)


def test_slow_response_hits_the_client_timeout_and_is_retried(clean):
    fake, cluster, good = clean
    fake.faults.delay(r"/api/v1/nodes", 2.0, times=1)
    again = run_scan(cluster, client_factory=lambda ctx: KubeClient(ctx, timeout=0.5))
    assert again.status == Scan.SUCCEEDED, again.error
    assert sorted(rows(again)) == sorted(rows(good))


def test_always_slow_api_fails_with_a_timeout_and_keeps_the_report(clean):
    fake, cluster, good = clean
    fake.faults.delay(r"/api/v1/pods", 2.0, times=None)
    bad = run_scan(cluster, client_factory=lambda ctx: KubeClient(ctx, timeout=0.5))
    assert bad.status == Scan.FAILED
    assert "did not answer in time" in bad.error
    assert_last_good(cluster, good)


# --- registries ------------------------------------------------------------------------------------


class BadRegistry:
    """A registry on loopback that misbehaves per repository: ``unauth`` 401, ``missing`` 404, ``broken``
    500, ``slow`` serves a real Alpine-like image whose layer download stalls after a few bytes."""

    def __init__(self) -> None:
        image = imagebuild.alpine("1.2.4-r3", "3.18.4")
        config, layers = image.blobs()
        self.blobs = {imagebuild.sha256(config): config}
        descs = []
        for blob, _gz in layers:
            self.blobs[imagebuild.sha256(blob)] = blob
            descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                          "digest": imagebuild.sha256(blob), "size": len(blob)})  # fmt: skip
        self.manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": imagebuild.sha256(config), "size": len(config)},
            "layers": descs,
        }).encode()  # fmt: skip
        self.digest = "sha256:" + hashlib.sha256(self.manifest).hexdigest()
        self.hits: list[str] = []
        reg = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, code, body=b"", ctype="application/json", headers=()):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                reg.hits.append(self.path)
                parts = self.path.split("/")  # ['', 'v2', 'team', repo, kind, ref]
                if self.path in ("/v2/", "/v2"):
                    return self.send(200, b"{}")
                repo, kind = parts[3], parts[4]
                if repo == "unauth":
                    return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                                     headers=[("WWW-Authenticate", 'Basic realm="test"')])  # fmt: skip
                if repo == "missing":
                    return self.send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                if repo == "broken":
                    return self.send(500, b'{"errors":[{"code":"UNKNOWN"}]}')
                if kind == "manifests":
                    return self.send(200, reg.manifest, "application/vnd.oci.image.manifest.v1+json",
                                     [("Docker-Content-Digest", reg.digest)])  # fmt: skip
                blob = reg.blobs.get(parts[5], b"")
                if blob[:2] != b"\x1f\x8b":
                    return self.send(200, blob, "application/octet-stream")
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(blob)))
                self.end_headers()
                self.wfile.write(blob[:10])
                self.wfile.flush()
                time.sleep(3)  # the rest never comes in time

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def bad_registry():
    reg = BadRegistry()
    yield reg
    reg.close()


def test_registry_failures_fall_back_to_inferred_verdicts_and_the_scan_goes_on(
    fakekube, bad_registry, upstream_dns
):
    nodes = ["node-a"]
    place = Placement(nodes, {"node-a": "10.10.1.11"})
    objs = [o.namespace("imgs"), o.node("node-a", NodeInfo(), ip="10.10.1.11")]
    repos = ("unauth", "missing", "broken", "slow")
    for repo in repos:
        objs += o.deployment(
            "imgs", repo, [C("app", f"{bad_registry.host}/team/{repo}:3.19-alpine")], place, replicas=1
        )
    for x in objs:
        if x["kind"] == "Pod":
            repo = x["metadata"]["name"].split("-")[0]
            for st in x["status"]["containerStatuses"]:
                st["imageID"] = f"{bad_registry.host}/team/{repo}@{bad_registry.digest}"
    fakekube.default.reset(objs)
    spec = single_pool_spec(objs, nodes)
    started = time.monotonic()
    scan = run_scan(register(fakekube.default, spec, upstream_dns(spec), user="admin", name="bad-registry"))
    assert time.monotonic() - started < 20
    assert scan.status == Scan.SUCCEEDED, (scan.error, scan.problems)
    got = rows(scan)
    expected_error = {"unauth": "401", "missing": "not found", "broken": "500", "slow": "download of layer"}
    for repo in repos:
        w = got[f"imgs/Deployment/{repo}"]
        c = w.detail["containers"][0]
        assert c["confidence"] == "inferred" and c["libc"] == "musl", c
        note = next(e for e in c["evidence"] if "registry not read" in e)
        assert expected_error[repo] in note, note
        # Inferred musl under a SERVFAIL-ing openstacklocal: still affected.
        assert w.risk == "affected"
    assert any("/team/slow/blobs/" in h for h in bad_registry.hits)
    assert not ImageVerdict.objects.exists()  # nothing inferred is cached as if confirmed


# --- DNS probes -------------------------------------------------------------------------------------


def test_unreachable_probe_server_gives_partial_and_at_risk_not_affected(fakekube_fleet, upstream_dns):
    fake, spec = fakekube_fleet["openstack-prod"]
    silent = upstream_dns(rules=[Rule("*", Behaviour("drop"))])
    scan = run_scan(register(fake, spec, silent))
    assert scan.status == Scan.PARTIAL
    dns = [p for p in scan.problems if p["fact"] == "DNS probes"]
    assert dns and "no answer" in dns[0]["error"] and "at-risk rather than confirmed" in dns[0]["impact"]
    assert len(silent.log) == 1  # one control question, then the server is left alone
    api = rows(scan)["payments/Deployment/payments-api"]
    assert api.risk == "at-risk"


def test_probe_timeout_under_a_domain_of_a_reachable_server_is_an_observation(fakekube_fleet, upstream_dns):
    fake, spec = fakekube_fleet["openstack-prod"]
    dropping = upstream_dns(
        rules=[
            Rule(EXTERNAL, Behaviour("answer", a=("93.184.215.14",))),
            Rule("*.openstacklocal", Behaviour("drop")),
        ]
    )
    scan = run_scan(register(fake, spec, dropping))
    assert not [p for p in scan.problems if p["fact"] == "DNS probes"]
    api = rows(scan)["payments/Deployment/payments-api"]
    assert api.risk == "affected"
    pool = scan.node_pools.get(name=api.node_pool)
    assert {p["a"] for p in pool.probes} == {"no reply"}


# --- the job ----------------------------------------------------------------------------------------


def test_reaper_marks_a_stale_running_scan_failed_and_the_next_scan_runs(clean, settings):
    fake, cluster, good = clean
    settings.DNSAUDIT_SCAN_STALE_AFTER = 60
    stuck, _ = request_scan(cluster, dispatch_now=False)
    assert claim(stuck.pk, "worker-that-died")
    # A fresh heartbeat is not reaped.
    assert reap_dead_scans() == 0
    Scan.objects.filter(pk=stuck.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=120))
    assert reap_dead_scans() == 1
    stuck.refresh_from_db()
    assert stuck.status == Scan.FAILED and "stopped reporting" in stuck.error
    # A late redelivery of the dead scan's message does not resurrect it.
    assert execute_scan(stuck.pk, worker="late") is None
    assert_last_good(cluster, good)
    nxt = run_scan(cluster)
    assert nxt.status == Scan.SUCCEEDED and cluster.last_report_scan().pk == nxt.pk


def test_soft_time_limit_ends_the_scan_failed_cleanly(clean, monkeypatch):
    fake, cluster, good = clean

    def too_long(*a, **kw):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(pipeline, "inspect_images", too_long)
    bad = run_scan(cluster)
    assert bad.status == Scan.FAILED and "time limit" in bad.error
    assert bad.workloads.count() == 0
    assert_last_good(cluster, good)
    assert cluster.active_scan() is None
