"""The scan job end to end with the real parts: the fake HTTPS API server's demo fleet imported through a
kubeconfig, a scripted upstream DNS on loopback for the probes, the audit core, PostgreSQL.

The expectation tables below are what a careful engineer says about each demo workload, written from
the fleet's description (``dnsaudit/testbed/fakekube/fleet.py``) and domain.md, not from the scanner's output.
The registries the demo images name (docker.io, gcr.io...) are unreachable here, so every libc verdict
is *inferred from the image name*: official images without an -alpine tag (``postgres:16``,
``python:3.12-slim``) are Debian-based, a ``-musl`` tag is musl; where the name does not reveal the libc
a careful engineer cannot call the workload affected or safe when its resolv.conf would break musl —
that is ``unknown``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from clusters.models import Scan
from clusters.reports import workloads_diff
from clusters.scan import execute_scan, request_scan
from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.auth import VIEW_RULES
from dnsaudit.testbed.fakekube.objects import C, PodOpts
from tests.scans.helpers import EXTERNAL, register, rows, run_scan, single_pool_spec

pytestmark = pytest.mark.django_db

# workload -> (risk, recommended remediation). "kubelet" = change the node pool's kubelet resolvConf.
OPENSTACK_PROD = {
    # musl (Alpine-based) + 'search openstacklocal' whose upstream answers SERVFAIL (probed): affected.
    "payments/Deployment/payments-api": ("affected", "kubelet"),
    "storefront/Deployment/web": ("affected", "kubelet"),  # nginx alpine on the arm64 pool
    "data/CronJob/etl-nightly": ("affected", "kubelet"),  # a CronJob with no Job running: its template
    "data/StatefulSet/cache": ("affected", "kubelet"),  # redis alpine
    "platform/DaemonSet/node-agent": ("affected", "kubelet"),  # hostNetwork + ClusterFirstWithHostNet
    "platform/Deployment/legacy-worker": ("affected", "kubelet"),  # scaled to zero, alpine 3.16
    # musl, but dnsPolicy None with a full dnsConfig: no node search domain reaches the pod.
    "payments/Deployment/fx-rates": ("safe", "none"),
    # glibc / static by name: never affected.
    "storefront/Deployment/checkout": ("safe", "none"),
    "storefront/Deployment/search-indexer": ("safe", "none"),
    "storefront/Deployment/static-assets": ("safe", "none"),
    "monitoring/Deployment/metrics-relay": ("safe", "none"),
    # dnsPolicy Default / hostNetwork+ClusterFirst: the node file, ndots 1, so example.com is asked as-is.
    "kube-system/Deployment/coredns": ("safe", "none"),
    "kube-system/DaemonSet/kube-proxy": ("safe", "none"),
    # Official images without -alpine are Debian (glibc): safe whatever the search list.
    "payments/StatefulSet/ledger-db": ("safe", "none"),  # postgres:16
    "data/CronJob/report-export": ("safe", "none"),  # suspended CronJob, python:3.12-slim
    # A -musl tag is musl: the bare debugging Pod breaks like the Alpine workloads.
    "default/Pod/dns-debug": ("affected", "kubelet"),  # bare Pod, busybox:1.36-musl
    "kyverno/Deployment/kyverno-admission-controller": ("unknown", "kubelet"),
}

EDGE_K3S = {
    # kubelet v1.25.0 copies the host's 'search .' into pods; musl 1.2.3 (Alpine 3.16) sends 'name..'.
    "sensors/Deployment/sensor-gateway": ("affected", "kubelet"),
    "sensors/DaemonSet/mqtt-bridge": ("affected", "kubelet"),
    # Alpine 3.18 = musl 1.2.4, which skips the '.' entry.
    "sensors/Deployment/telemetry-shipper": ("safe", "none"),
    "historian/StatefulSet/historian": ("safe", "none"),
    "kube-system/Deployment/coredns": ("safe", "none"),
}

MANAGED_CLEAN = {
    "shop/Deployment/storefront": ("safe", "none"),
    "shop/Deployment/cart": ("safe", "none"),
    "analytics/Deployment/collector": ("safe", "none"),
    "analytics/CronJob/rollup": ("safe", "none"),
    "kube-system/Deployment/coredns": ("safe", "none"),
    "kube-system/DaemonSet/node-local-dns": ("safe", "none"),
}

EXPECTED = {"openstack-prod": OPENSTACK_PROD, "edge-k3s": EDGE_K3S, "managed-clean": MANAGED_CLEAN}


def top_owners(spec) -> set[str]:
    """Workload objects of the spec that nothing owns: what a user edits."""
    kinds = {"Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job", "ReplicaSet", "Pod"}
    return {
        f"{x['metadata']['namespace']}/{x['kind']}/{x['metadata']['name']}"
        for x in spec.objects
        if x.get("kind") in kinds and not x["metadata"].get("ownerReferences")
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_demo_cluster_scan_gives_the_expected_verdicts(fakekube_fleet, upstream_dns, name):
    fake, spec = fakekube_fleet[name]
    dns = upstream_dns(spec)
    cluster = register(fake, spec, dns)
    scan = run_scan(cluster)

    assert scan.status in Scan.FINISHED_OK, scan.error
    got = {k: (w.risk, w.recommended) for k, w in rows(scan).items()}
    assert got == EXPECTED[name]
    # Findings land on top owners only: no ReplicaSet, Job or owned Pod rows, and every top owner is there.
    assert set(got) == top_owners(spec)
    assert not {k for k in got if "/ReplicaSet/" in k or "/Job/" in k}
    # Counters match the rows.
    risks = [r for r, _ in got.values()]
    assert (scan.affected, scan.at_risk, scan.safe, scan.unknown) == (
        risks.count("affected"),
        risks.count("at-risk"),
        risks.count("safe"),
        risks.count("unknown"),
    )
    assert scan.workloads_total == len(got)
    assert scan.pods_seen == sum(1 for x in spec.objects if x.get("kind") == "Pod")
    # The registries are unreachable here: every verdict is inferred from the name, with the reason.
    for w in scan.workloads.all():
        for c in w.report["containers"]:
            assert c["confidence"] == "inferred", (w, c)
        for c in w.detail["containers"]:
            assert any("registry not read" in e for e in c["evidence"]), (w, c)
    # kube-system is reported like any namespace.
    assert "kube-system" in scan.facts["namespaces"]


def test_openstack_alpine_is_confirmed_by_the_probe_and_only_at_risk_without_it(fakekube_fleet, upstream_dns):
    fake, spec = fakekube_fleet["openstack-prod"]
    dns = upstream_dns(spec)
    probed = run_scan(register(fake, spec, dns))
    api = rows(probed)["payments/Deployment/payments-api"]
    assert api.risk == "affected"
    assert any("SERVFAIL" in r and "openstacklocal" in r for r in api.report["reasons"]), api.report[
        "reasons"
    ]
    # The probe really went to the scripted upstream, for the configured name and a random one.
    asked = {e.qname for e in dns.log}
    assert f"{EXTERNAL}.openstacklocal" in asked
    assert any(q.startswith("dnsaudit-") and q.endswith(".com.openstacklocal") for q in asked)
    pool = probed.node_pools.get(name=api.node_pool)
    assert {(p["domain"], p["a"], p["musl"]) for p in pool.probes} >= {
        ("openstacklocal", "SERVFAIL", "stops")
    }

    unprobed = run_scan(register(fake, spec, None, name="openstack-prod-noprobe"))
    again = rows(unprobed)["payments/Deployment/payments-api"]
    assert again.risk == "at-risk"
    assert any("Nobody has probed" in r for r in again.report["reasons"])


def test_nodata_upstream_also_confirms_musl_failure(fakekube_fleet, upstream_dns):
    fake, spec = fakekube_fleet["openstack-prod"]
    dns = upstream_dns(spec, nodata=True)
    scan = run_scan(register(fake, spec, dns))
    api = rows(scan)["payments/Deployment/payments-api"]
    assert api.risk == "affected"
    assert any("NODATA" in r for r in api.report["reasons"])


def test_host_network_pods_get_the_node_file_and_cluster_first_with_host_net_gets_cluster_dns(
    fakekube_fleet, upstream_dns
):
    fake, spec = fakekube_fleet["openstack-prod"]
    scan = run_scan(register(fake, spec, upstream_dns(spec)))
    by = rows(scan)
    proxy = by["kube-system/DaemonSet/kube-proxy"].report
    assert proxy["host_network"] is True and proxy["dns_policy"] == "ClusterFirst"
    assert proxy["resolv_conf"]["nameservers"] == ["10.10.0.2"]
    assert proxy["resolv_conf"]["searches"] == ["openstacklocal"]
    agent = by["platform/DaemonSet/node-agent"].report
    assert agent["resolv_conf"]["nameservers"] == ["10.96.0.10"]
    assert agent["resolv_conf"]["searches"][-1] == "openstacklocal"
    fx = by["payments/Deployment/fx-rates"].report
    assert "openstacklocal" not in fx["resolv_conf"]["searches"]


def test_edge_k3s_search_dot_breaks_musl_123_only(fakekube_fleet, upstream_dns):
    fake, spec = fakekube_fleet["edge-k3s"]
    scan = run_scan(register(fake, spec, upstream_dns(spec)))
    by = rows(scan)
    gw = by["sensors/Deployment/sensor-gateway"]
    assert gw.musl_version == "1.2.3"
    assert "." in gw.report["resolv_conf"]["searches"]
    assert any("search list ends with '.'" in r for r in gw.report["reasons"])
    shipper = by["sensors/Deployment/telemetry-shipper"]
    assert shipper.musl_version == "1.2.4" and shipper.risk == "safe"


def test_scaled_to_zero_and_suspended_workloads_are_audited_from_their_templates(
    fakekube_fleet, upstream_dns
):
    fake, spec = fakekube_fleet["openstack-prod"]
    scan = run_scan(register(fake, spec, upstream_dns(spec)))
    by = rows(scan)
    legacy = by["platform/Deployment/legacy-worker"]
    assert legacy.report["containers"][0]["image"] == "alpine:3.16"
    assert legacy.musl_version == "1.2.3"
    export = by["data/CronJob/report-export"]
    assert export.report["containers"][0]["image"] == "python:3.12-slim"


def test_forbidden_configz_gives_a_partial_scan_naming_the_assumed_facts(fakekube_fleet, upstream_dns):
    fake, spec = fakekube_fleet["openstack-prod"]
    fake.add_user("viewer", rules=VIEW_RULES)  # a managed-cluster "view" role: no nodes/proxy, no secrets
    scan = run_scan(register(fake, spec, upstream_dns(spec), user="viewer"))
    assert scan.status == Scan.PARTIAL
    kubelet_problems = [p for p in scan.problems if p["fact"].startswith("kubelet config of pool")]
    assert len(kubelet_problems) == scan.node_pools.count() == 3
    for p in kubelet_problems:
        assert "nodes/proxy" in p["error"] or "502" in p["error"]
        assert "assumed clusterDNS 10.96.0.10" in p["impact"] and "clusterDomain cluster.local" in p["impact"]
    assert any("nodes/proxy" in p["error"] for p in kubelet_problems)
    assert all(pool.observed["kubelet_config"] is False for pool in scan.node_pools.all())
    assert any(p["fact"] == "image pull secrets" for p in scan.problems)
    # The verdicts still stand on the admin's settings, and they say what was assumed.
    api = rows(scan)["payments/Deployment/payments-api"]
    assert api.risk == "affected"
    assert any(r.startswith("Assumed: kubelet config of pool") for r in api.report["reasons"])


def test_scan_and_report_commands(transactional_db, fakekube_fleet, upstream_dns, tmp_path, capsys):
    fake, spec = fakekube_fleet["edge-k3s"]
    register(fake, spec, upstream_dns(spec))
    out = io.StringIO()
    call_command("scan", "edge-k3s", "--wait", "--json", stdout=out)
    summary = json.loads(out.getvalue())
    assert summary["status"] == "succeeded"
    assert summary["counts"]["affected"] == 2 and summary["counts"]["workloads"] == len(EDGE_K3S)
    assert summary["problems"] == [] and isinstance(summary["id"], int)

    out = io.StringIO()
    call_command("report", "edge-k3s", "--scan", str(summary["id"]), "--format", "json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["cluster"]["name"] == "edge-k3s"
    assert report["scan"]["id"] == summary["id"]
    assert {f"{w['namespace']}/{w['kind']}/{w['name']}": w["risk"] for w in report["workloads"]} == {
        k: v[0] for k, v in EDGE_K3S.items()
    }
    # The same per-workload schema as `audit-manifests --format json`.
    manifest = tmp_path / "app.yaml"
    manifest.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a, namespace: n}\n"
        "spec:\n  template:\n    spec:\n      containers: [{name: c, image: 'alpine:3.16'}]\n"
    )
    capsys.readouterr()
    call_command("audit-manifests", str(manifest), "--format", "json", "--fail-on", "never")
    schema = set(json.loads(capsys.readouterr().out)["workloads"][0])
    assert all(set(w) == schema for w in report["workloads"])

    out = io.StringIO()
    call_command("report", "edge-k3s", "--scan", str(summary["id"]), "--format", "csv", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("cluster,scan,namespace,kind,name,risk")
    assert len(lines) == 1 + len(EDGE_K3S)
    assert any(",sensors,Deployment,sensor-gateway,affected," in line for line in lines)


def test_manual_rescan_while_one_is_active_returns_the_active_scan(fakekube_fleet, upstream_dns):
    fake, spec = fakekube_fleet["managed-clean"]
    cluster = register(fake, spec)
    first, created = request_scan(cluster, dispatch_now=False)
    second, created2 = request_scan(cluster, dispatch_now=False)
    assert created and not created2 and second.pk == first.pk
    execute_scan(first.pk, worker="test")
    third, created3 = request_scan(cluster, dispatch_now=False)
    assert created3 and third.pk != first.pk


def test_failed_scan_keeps_the_last_good_report(fakekube_fleet, upstream_dns):
    fake, spec = fakekube_fleet["managed-clean"]
    cluster = register(fake, spec)
    good = run_scan(cluster)
    n = good.workloads.count()
    fake.faults.down = True
    bad = run_scan(cluster)
    fake.faults.down = False
    assert bad.status == Scan.FAILED and "could not be reached" in bad.error
    assert bad.workloads.count() == 0
    last = cluster.last_report_scan()
    assert last.pk == good.pk and last.workloads.count() == n
    out = io.StringIO()
    call_command("report", cluster.name, "--format", "json", stdout=out)
    assert json.loads(out.getvalue())["scan"]["id"] == good.pk


def test_pruning_keeps_the_newest_scans_and_always_the_last_good_report(fakekube_fleet, settings):
    fake, spec = fakekube_fleet["managed-clean"]
    cluster = register(fake, spec)
    settings.DNSAUDIT_KEEP_SCANS = 2
    scans = [run_scan(cluster) for _ in range(3)]
    assert list(cluster.scans.order_by("pk").values_list("pk", flat=True)) == [s.pk for s in scans[1:]]
    # Failures after the last good report must not prune it away.
    fake.faults.down = True
    failed = [run_scan(cluster) for _ in range(3)]
    fake.faults.down = False
    assert all(s.status == Scan.FAILED for s in failed)
    assert cluster.last_report_scan().pk == scans[-1].pk
    assert cluster.last_report_scan().workloads.count() == len(MANAGED_CLEAN)
    kept = set(cluster.scans.values_list("pk", flat=True))
    assert kept == {scans[-1].pk, failed[-1].pk, failed[-2].pk}


def test_diff_between_two_scans_shows_new_and_fixed_workloads(fakekube_fleet, upstream_dns):
    fake, spec = fakekube_fleet["openstack-prod"]
    cluster = register(fake, spec, upstream_dns(spec))
    before = run_scan(cluster)
    # Fix payments-api the per-workload way and deploy a new Alpine workload on the general pool.
    general = spec.pools[0].placement
    fixed_dns = {
        "nameservers": ["10.96.0.10"],
        "searches": ["payments.svc.cluster.local", "svc.cluster.local", "cluster.local"],
        "options": [{"name": "ndots", "value": "5"}],
    }
    objs = [x for x in spec.objects if not x["metadata"]["name"].startswith("payments-api")]
    objs += o.deployment(
        "payments",
        "payments-api",
        [C("api", "python:3.12-alpine", ("gunicorn", "app:app"), 8000)],
        general,
        replicas=1,
        opts=PodOpts(dns_policy="None", dns_config=fixed_dns),
    )
    objs += o.deployment(
        "storefront", "recommender", [C("rec", "alpine:3.19", ("/rec",))], general, replicas=1
    )
    fake.reset(objs)
    after = run_scan(cluster)
    diff = workloads_diff(after, before)
    assert diff["previous"] == before.pk
    assert diff["new_affected"] == [{"namespace": "storefront", "kind": "Deployment", "name": "recommender"}]
    assert diff["fixed"] == [{"namespace": "payments", "kind": "Deployment", "name": "payments-api"}]


# --- images from a real registry --------------------------------------------------------------------


def _registry_requests(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if "GET /v2/team/" in line]


def test_images_in_a_real_registry_are_confirmed_and_cached(fakekube, registry, upstream_dns):
    """Pods reference images pushed to a real docker-registry by digest (containerd-style imageID): the
    verdicts are ``confirmed`` from the image contents, and a second scan answers from the cache."""
    from dnsaudit.testbed import imagebuild
    from dnsaudit.testbed.fakekube.objects import NodeInfo, Placement

    push = imagebuild.Pusher(registry.url)
    musl_digest, _ = push.image("team/app-alpine", "1.0", imagebuild.alpine("1.2.4-r3", "3.18.4"))
    glibc_digest, _ = push.image("team/app-debian", "1.0", imagebuild.debian("12"))
    # Tags that do not give the libc away: only the contents can tell.
    musl_ref, glibc_ref = f"{registry.host}/team/app-alpine:1.0", f"{registry.host}/team/app-debian:1.0"
    ids = {
        musl_ref: f"{registry.host}/team/app-alpine@{musl_digest}",
        glibc_ref: f"{registry.host}/team/app-debian@{glibc_digest}",
    }
    nodes = ["node-a", "node-b"]
    place = Placement(nodes, {"node-a": "10.10.1.11", "node-b": "10.10.1.12"})
    objs = [o.namespace("shop"), *[o.node(n, NodeInfo(), ip=place.ips[n]) for n in nodes]]
    objs += o.deployment("shop", "musl-app", [C("app", musl_ref)], place, replicas=2)
    objs += o.deployment("shop", "glibc-app", [C("app", glibc_ref)], place, replicas=1)
    for x in objs:
        if x["kind"] == "Pod":
            ref = musl_ref if x["metadata"]["name"].startswith("musl-app") else glibc_ref
            for st in x["status"]["containerStatuses"]:
                st["imageID"] = ids[ref]
    fakekube.default.reset(objs)
    spec = single_pool_spec(objs, nodes)
    cluster = register(fakekube.default, spec, upstream_dns(spec), user="admin", name="registry-images")

    first = run_scan(cluster)
    assert first.status == Scan.SUCCEEDED, (first.error, first.problems)
    by = rows(first)
    musl = by["shop/Deployment/musl-app"]
    glibc = by["shop/Deployment/glibc-app"]
    assert musl.risk == "affected" and glibc.risk == "safe"
    assert musl.report["containers"][0]["confidence"] == "confirmed"
    assert musl.report["containers"][0]["libc"] == "musl" and musl.musl_version.startswith("1.2.4")
    assert glibc.report["containers"][0]["confidence"] == "confirmed"
    assert glibc.report["containers"][0]["libc"] == "glibc"
    assert musl.report["containers"][0]["digest"] == musl_digest
    seen = len(_registry_requests(registry.log))
    assert seen > 0

    second = run_scan(cluster)
    assert rows(second)["shop/Deployment/musl-app"].report["containers"][0]["confidence"] == "confirmed"
    assert len(_registry_requests(registry.log)) == seen, "the second scan went back to the registry"
