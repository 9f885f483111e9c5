"""Exec verification inside a scan: one running pod per musl workload is asked for its /etc/resolv.conf
and /lib through the exec websocket of the test API server; a pod whose file differs from the computed one
corrects the verdict (its own file, or the pool's when the pool's file was not known)."""

from __future__ import annotations

import pytest

from dnsaudit.testbed.fakekube import exec as fexec
from dnsaudit.testbed.fakekube.auth import ADMIN_RULES
from tests.scans.helpers import register, rows, run_scan

pytestmark = pytest.mark.django_db


def pod_file(namespace: str, *, node_domain: str | None = "openstacklocal") -> str:
    searches = f"{namespace}.svc.cluster.local svc.cluster.local cluster.local"
    if node_domain:
        searches += f" {node_domain}"
    return f"search {searches}\nnameserver 10.96.0.10\noptions ndots:5\n"


def first_pod(fake, namespace: str, prefix: str) -> str:
    import json

    rtype = fake.store.lookup("", "v1", "pods")
    names = sorted(
        p["metadata"]["name"]
        for p in json.loads(fake.store.list(rtype, namespace))["items"]
        if p["metadata"]["name"].startswith(prefix)
    )
    return names[0]


def test_a_stale_pod_corrects_its_workloads_verdict(fakekube_fleet, upstream_dns):
    """The general pool's nodes now search corp.example (which answers NXDOMAIN), and the admin entered
    that; but data/cache's pod started when they searched openstacklocal (SERVFAIL upstream) and keeps its
    file. Computed from the node file it is safe; what its pod really has makes it affected."""
    from tests.scans.test_node_files import host_debug_pods

    fake, spec = fakekube_fleet["openstack-prod"]
    general = spec.pools[0]
    new_file = "nameserver 10.10.0.2\nsearch corp.example\n"
    fake.add(host_debug_pods(spec))
    stale_pod = first_pod(fake, "data", "cache-")
    fake.set_pod_file("data", stale_pod, pod_file("data"))
    for node in general.nodes:
        fake.set_node_file(node, new_file)
    fake.add_user("auditor", rules=ADMIN_RULES)
    dns = upstream_dns(spec)
    cluster = register(fake, spec, dns, user="auditor", name="audited", allow_exec=True)
    cluster.pool_resolv_conf = {**cluster.pool_resolv_conf, "general": new_file}
    cluster.save()
    scan = run_scan(cluster)

    got = rows(scan)
    cache = got["data/StatefulSet/cache"]
    api = got["payments/Deployment/payments-api"]
    assert api.risk == "safe"  # its pods have the new file: corp.example answers NXDOMAIN
    assert api.report["exec_verification"]["matches"] is True
    assert cache.risk == "affected"
    assert cache.report["resolv_conf"]["searches"][-1] == "openstacklocal"
    assert any(
        r.startswith(f"The verdict uses the file read in pod data/{stale_pod}")
        for r in cache.report["reasons"]
    )
    assert any("openstacklocal" in r and "SERVFAIL" in r for r in cache.report["reasons"])
    # After the correction, the computed file is the pod's.
    assert cache.report["exec_verification"]["matches"] is True
    assert scan.facts["exec_verification"]["verdicts_corrected"] >= 1
    # The pool's file itself was read (a host-network pod shows it) and agrees with the entered one.
    pool = scan.node_pools.get(name="general")
    assert pool.node_resolv_conf_source == "observed"
    # glibc workloads are not exec'd into for verification.
    assert "exec_verification" not in got["storefront/Deployment/checkout"].detail


def test_a_pool_learns_its_file_from_verification_when_the_node_file_step_learned_nothing(
    fakekube_fleet, upstream_dns, monkeypatch
):
    """The node-files step read nothing (as when its time budget ran out): the pools are unknown, the musl
    workloads at-risk; the verification's reads in musl pods then teach the pools their search domains,
    which are probed, and the pools' workloads are audited again."""
    from clusters.scan.stages import nodefiles

    monkeypatch.setattr(nodefiles, "_observe", lambda *a, **kw: {})
    fake, spec = fakekube_fleet["openstack-prod"]
    fake.add_user("auditor", rules=ADMIN_RULES)
    cluster = register(
        fake,
        spec,
        upstream_dns(spec),
        user="auditor",
        allow_exec=True,
        pool_resolv_conf={},
        node_resolv_conf="",
    )
    scan = run_scan(cluster)
    got = rows(scan)
    assert got["payments/Deployment/payments-api"].risk == "affected"
    assert got["storefront/Deployment/web"].risk == "affected"
    sources = {p.name: p.node_resolv_conf_source for p in scan.node_pools.all()}
    assert sources["general"] == sources["arm"] == "observed"
    general = scan.node_pools.get(name="general")
    assert "exec verification" in general.node_resolv_conf_evidence[0]
    assert any(p["domain"] == "openstacklocal" for p in general.probes)
    assert set(scan.facts["exec_verification"]["pools_learned"]) >= {"general", "arm"}


def test_exec_verification_forbidden_makes_the_scan_partial_and_says_so(fakekube_fleet, upstream_dns):
    from dnsaudit.testbed.fakekube.auth import VIEW_RULES

    fake, spec = fakekube_fleet["openstack-prod"]
    fake.add_user("viewer", rules=VIEW_RULES)
    fake.set_exec(lambda req: fexec.alpine(pod_file(req.namespace))(req))
    dns = upstream_dns(spec)
    cluster = register(fake, spec, dns, user="viewer", name="viewer-view", allow_exec=True)
    scan = run_scan(cluster)

    assert scan.status == "partial"
    facts = {p["fact"] for p in scan.problems}
    assert "exec verification" in facts


def test_exec_verification_is_off_by_default(fakekube_fleet, upstream_dns):
    fake, spec = fakekube_fleet["openstack-prod"]
    calls: list[str] = []

    def handler(req):
        calls.append(req.pod)
        return fexec.alpine(pod_file(req.namespace))(req)

    fake.set_exec(handler)
    cluster = register(fake, spec, upstream_dns(spec))
    scan = run_scan(cluster)
    assert calls == []
    assert "exec_verification" not in scan.facts
