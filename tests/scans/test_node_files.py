"""Node search domains learned, not assumed (issue 8), end to end through the test API server.

The server keeps each node's resolv.conf hidden, as a real cluster does (no API answer shows it), and
answers exec like a real one: each running pod's /etc/resolv.conf is what its node's kubelet and
containerd wrote (dnsaudit/testbed/fakekube/kubelet_exec.py, written independently of dnsaudit/core/kubelet.py),
distroless containers have no ``cat``, pending pods refuse exec.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import call_command

from clusters.models import Cluster
from clusters.reports import scan_report
from dnsaudit.core.inventory import build_inventory, slim_pod
from dnsaudit.core.kubelet import parse_node_resolv_conf, render_resolv_conf
from dnsaudit.core.model import ResolvConf
from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.auth import ADMIN_RULES
from dnsaudit.testbed.fakekube.objects import C, Placement, PodOpts
from tests.scans.helpers import pool_names, register, rows, run_scan

pytestmark = pytest.mark.django_db

#: What the nodes of openstack-prod carry, hidden from the API (the seed post's file).
OPENSTACK_FILE = "nameserver 10.10.0.2\nsearch openstacklocal\n"


def unknown_files() -> dict:
    """Register as a new user would: nothing typed into the settings."""
    return {"pool_resolv_conf": {}, "node_resolv_conf": ""}


def host_debug_pods(spec) -> list[dict]:
    """A busybox hostNetwork pod on one node of each pool (what a node debug pod looks like): its file is
    the node's own, so the scan can read the whole node file, nameservers included."""
    out = []
    for p in spec.pools:
        out += o.bare_pod(
            "kube-system",
            f"node-debug-{p.name}",
            [C("shell", "busybox:1.36", ("sleep", "3600"))],
            Placement([p.nodes[0]], {p.nodes[0]: p.node_ips[p.nodes[0]]}),
            opts=PodOpts(host_network=True),
        )
    return out


def pod_files_by_workload(fake) -> dict[tuple[str, str, str], list[str]]:
    """(namespace, kind, name) -> the file of each of its running pods, as the node's kubelet wrote it."""
    pods = [p for p in fake.objects() if p.get("kind") == "Pod"] if hasattr(fake, "objects") else None
    if pods is None:
        rtype = fake.store.lookup("", "v1", "pods")
        pods = json.loads(fake.store.list(rtype, None))["items"]
    objs: dict[str, list[dict]] = {"pods": [slim_pod(p) for p in pods]}
    for resource, (group, version) in {
        "deployments": ("apps", "v1"),
        "statefulsets": ("apps", "v1"),
        "daemonsets": ("apps", "v1"),
        "replicasets": ("apps", "v1"),
        "jobs": ("batch", "v1"),
        "cronjobs": ("batch", "v1"),
    }.items():
        rtype = fake.store.lookup(group, version, resource)
        objs[resource] = json.loads(fake.store.list(rtype, None))["items"] if rtype else []
    inv = build_inventory(objs)
    by_name = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pods}
    return {
        key: [fake.pod_file(by_name[(key[0], pod)]) for pod in names]
        for key, names in inv.running_pods.items()
    }


def as_conf(report_conf: dict) -> str:
    return render_resolv_conf(
        ResolvConf(
            tuple(report_conf["nameservers"]), tuple(report_conf["searches"]), tuple(report_conf["options"])
        )
    )


def test_a_cluster_added_as_a_user_would_never_calls_musl_safe(fakekube_fleet, upstream_dns):
    fake, spec = fakekube_fleet["openstack-prod"]
    cluster = register(fake, spec, upstream_dns(spec), **unknown_files())
    scan = run_scan(cluster)
    report = scan_report(scan)

    assert {p["name"]: p["node_resolv_conf_source"] for p in report["node_pools"]} == {
        "general": "unknown",
        "arm": "unknown",
        "infra": "unknown",
    }
    got = rows(scan)
    for key, w in got.items():
        musl = w.libc in ("musl", "mixed")
        inherits = w.dns_policy != "None"
        if musl and inherits:
            assert w.risk in ("at-risk", "affected"), (key, w.risk)
            assert any("are unknown" in r for r in w.report["reasons"]), key
        if w.libc == "glibc":
            assert w.risk == "safe", key
    assert got["payments/Deployment/fx-rates"].risk == "safe"  # dnsPolicy None: nothing inherited
    assert got["payments/Deployment/payments-api"].risk == "at-risk"
    gaps = report["node_file_gaps"]
    assert gaps and gaps[0]["source"] == "unknown"
    assert set(gaps[0]["pools"]) == {"general", "arm", "infra"}
    assert gaps[0]["musl_workloads"] >= 5
    assert "allow exec reads or paste the node's /etc/resolv.conf" in gaps[0]["message"]


def test_with_exec_reads_every_pool_is_observed_and_files_match_the_kubelets(fakekube_fleet, upstream_dns):
    fake, spec = fakekube_fleet["openstack-prod"]
    fake.add(host_debug_pods(spec))
    fake.add_user("auditor", rules=ADMIN_RULES)
    cluster = register(fake, spec, upstream_dns(spec), user="auditor", allow_exec=True, **unknown_files())
    scan = run_scan(cluster)
    report = scan_report(scan)
    pools = {p["name"]: p for p in report["node_pools"]}
    assert {n: p["node_resolv_conf_source"] for n, p in pools.items()} == dict.fromkeys(pools, "observed")
    for p in pools.values():
        # The node file as the pod shows it (containerd writes search first): the same content.
        assert parse_node_resolv_conf(p["node_resolv_conf"]) == parse_node_resolv_conf(OPENSTACK_FILE)
        assert any("node-debug-" in e for e in p["node_resolv_conf_evidence"]), p["node_resolv_conf_evidence"]
    assert report["node_file_gaps"] == []

    files = pod_files_by_workload(fake)
    got = rows(scan)
    compared = 0
    for (ns, kind, name), actual in files.items():
        w = got.get(f"{ns}/{kind}/{name}")
        if w is None or w.dns_policy == "None":
            continue
        # Byte for byte: the computed file of the workload is what the kubelet wrote into its pods.
        assert as_conf(w.report["resolv_conf"]) in actual, (ns, kind, name, w.report["resolv_conf"], actual)
        compared += 1
    assert compared >= 10
    assert got["payments/Deployment/payments-api"].risk == "affected"
    assert got["platform/DaemonSet/node-agent"].risk == "affected"


def test_an_entered_file_through_set_cluster_is_used_and_says_entered(fakekube_fleet, upstream_dns, tmp_path):
    fake, spec = fakekube_fleet["openstack-prod"]
    cluster = register(fake, spec, upstream_dns(spec), **unknown_files())
    run_scan(cluster)  # the pools' names come from a scan
    node_file = tmp_path / "resolv.conf"
    node_file.write_text(OPENSTACK_FILE)
    for pool in pool_names(spec).values():
        call_command("set-cluster", cluster.name, "--node-resolv-conf", str(node_file), "--pool", pool)
    scan = run_scan(Cluster.objects.get(pk=cluster.pk))
    report = scan_report(scan)
    for p in report["node_pools"]:
        assert p["node_resolv_conf_source"] == "entered"
        assert p["node_resolv_conf_evidence"] and "entered by cli" in p["node_resolv_conf_evidence"][0]
    files = pod_files_by_workload(fake)
    got = rows(scan)
    for key in ("payments/Deployment/payments-api", "storefront/Deployment/web", "data/StatefulSet/cache"):
        w = got[key]
        assert any(as_conf(w.report["resolv_conf"]) == f for f in files[tuple(key.split("/"))])
        assert w.risk == "affected"


def test_exec_failures_are_stated_and_each_pool_keeps_its_best_source(fakekube_fleet, upstream_dns):
    """The demo's user: exec allowed only in payments and data. general is observed in a payments pod;
    arm runs no pod there (its file is entered); infra's pods are distroless (no cat): unknown. A pending
    pod refuses exec and the scan moves on."""
    fake, spec = fakekube_fleet["openstack-prod"]
    general = spec.pools[0]
    fake.add(
        [
            o.pending_pod(
                "payments", "api-pending", [C("api", "python:3.12-alpine")], node_name=general.nodes[0]
            )
        ]
    )
    names = pool_names(spec)
    cluster = register(
        fake,
        spec,
        upstream_dns(spec),
        allow_exec=True,
        pool_resolv_conf={names["arm"]: OPENSTACK_FILE},
        node_resolv_conf="",
    )
    scan = run_scan(cluster)
    sources = {p.name: p.node_resolv_conf_source for p in scan.node_pools.all()}
    assert sources == {"general": "observed", "arm": "entered", "infra": "unknown"}
    problems = " ".join(f"{p['fact']}: {p['error']} {p['impact']}" for p in scan.problems)
    assert "pods/exec forbidden in namespace" in problems
    assert "infra" in problems
    assert scan.status == "partial"
    infra = scan.node_pools.get(name="infra")
    assert infra.node_resolv_conf == ""
    assert scan.facts["node_files"]["infra"]["attempts"] or "infra" in problems


def test_the_demo_fleet_shows_all_three_sources(fakekube_server, fakekube_fleet, upstream_dns):
    """`make run` registers openstack-prod with exec reads allowed and only the arm pool's file entered:
    the report shows one pool observed through exec, one entered and one unknown, and says why."""
    from clusters.management.commands.demo import Command

    _fake, spec = fakekube_fleet["openstack-prod"]
    dns = upstream_dns(spec)
    cluster = Command()._register(fakekube_server, spec, f"127.0.0.1:{dns.port}")
    assert cluster.allow_exec is True
    assert cluster.node_resolv_conf_entered["arm"]["by"] == "demo"
    scan = run_scan(cluster)
    pools = {p.name: p for p in scan.node_pools.all()}
    assert {n: p.node_resolv_conf_source for n, p in pools.items()} == {
        "general": "observed",
        "arm": "entered",
        "infra": "unknown",
    }
    assert any("read in pod payments/" in e for e in pools["general"].node_resolv_conf_evidence)
    assert pools["arm"].node_resolv_conf_evidence == [pools["arm"].node_resolv_conf_evidence[0]]
    assert pools["arm"].node_resolv_conf_evidence[0].startswith("entered by demo at ")
    got = rows(scan)
    assert got["payments/Deployment/payments-api"].risk == "affected"
    assert got["storefront/Deployment/web"].risk == "affected"
    gaps = scan_report(scan)["node_file_gaps"]
    assert [g["pools"] for g in gaps] == [["infra"]]


def test_pages_and_exports_say_where_each_node_file_came_from(fakekube_fleet, upstream_dns, client):
    from django.urls import reverse

    from tests.web import factories

    fake, spec = fakekube_fleet["openstack-prod"]
    names = pool_names(spec)
    cluster = register(
        fake, spec, upstream_dns(spec), pool_resolv_conf={names["arm"]: OPENSTACK_FILE}, node_resolv_conf=""
    )
    scan = run_scan(cluster)
    client.force_login(factories.make_user("operator"))

    body = client.get(reverse("clusters:report", args=[cluster.name])).content.decode()
    gaps = body[body.index('id="node-file-gaps"') : body.index('id="summary-h"')]
    assert "node search domains unknown on pools general, infra" in gaps
    assert "allow exec reads or paste the node&#x27;s /etc/resolv.conf" in gaps
    assert body.count('data-source="unknown"') >= 2 and 'data-source="entered"' in body

    api = scan.workloads.get(namespace="payments", name="payments-api")
    page = client.get(reverse("clusters:workload", args=[cluster.name, api.pk])).content.decode()
    assert 'id="node-file-source"' in page and 'data-source="unknown"' in page
    assert "are unknown" in page

    exported = client.get(reverse("clusters:export_html", args=[cluster.name])).content.decode()
    assert "Not known" in exported and "node search domains unknown on pools general, infra" in exported
    web = scan.workloads.get(namespace="storefront", name="web")
    response = client.get(reverse("clusters:export_csv", args=[cluster.name]))
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    csv_rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert "node_resolv_conf_source" in csv_rows[0]
    assert web.report["node_resolv_conf_source"] == "entered"
    row = next(
        r for r in csv_rows if (r["namespace"], r["kind"], r["name"]) == ("storefront", "Deployment", "web")
    )
    assert row["node_resolv_conf_source"] == "entered"


def test_without_exec_the_cloud_default_is_inferred_probed_and_only_likely(fakekube_fleet, upstream_dns):
    """Nodes that say they run on OpenStack (spec.providerID): Neutron's default search domain
    openstacklocal is inferred, probed (the upstream answers SERVFAIL under it) and simulated, but a verdict
    resting on it is at most at-risk and says "Likely"."""
    import copy

    fake, spec = fakekube_fleet["openstack-prod"]
    objects = copy.deepcopy(spec.objects)
    for obj in objects:
        if obj.get("kind") == "Node":
            obj.setdefault("spec", {})["providerID"] = f"openstack:///{obj['metadata']['uid']}"
    fake.reset(objects)
    cluster = register(fake, spec, upstream_dns(spec), **unknown_files())
    scan = run_scan(cluster)
    pools = {p.name: p for p in scan.node_pools.all()}
    for p in pools.values():
        assert p.node_resolv_conf_source == "inferred"
        assert p.node_resolv_conf == "search openstacklocal\n"
        assert any("providerID" in e for e in p.node_resolv_conf_evidence), p.node_resolv_conf_evidence
    assert any(pr["domain"] == "openstacklocal" and pr["a"] == "SERVFAIL" for pr in pools["general"].probes)
    api = rows(scan)["payments/Deployment/payments-api"]
    assert api.risk == "at-risk"
    assert any(
        r.startswith("Container api") and "Likely:" in r and "SERVFAIL" in r for r in api.report["reasons"]
    )
    gaps = scan_report(scan)["node_file_gaps"]
    assert [g["source"] for g in gaps] == ["inferred"]
