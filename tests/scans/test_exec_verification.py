"""Optional exec verification inside a scan: one running pod per musl workload is asked for its
/etc/resolv.conf and /lib through the exec websocket of the fake API server; a mismatch with the
computed file becomes a reason of its own, the risk stays as computed."""

from __future__ import annotations

import pytest

from dnsaudit.fakekube import exec as fexec
from dnsaudit.fakekube.auth import ADMIN_RULES
from tests.scans.helpers import register, rows, run_scan

pytestmark = pytest.mark.django_db


def pod_file(namespace: str, *, node_domain: str | None = "openstacklocal") -> str:
    searches = f"{namespace}.svc.cluster.local svc.cluster.local cluster.local"
    if node_domain:
        searches += f" {node_domain}"
    return f"search {searches}\nnameserver 10.96.0.10\noptions ndots:5\n"


def test_exec_verification_confirms_matching_pods_and_reports_stale_ones(fakekube_fleet, upstream_dns):
    fake, spec = fakekube_fleet["openstack-prod"]
    dns = upstream_dns(spec)

    def handler(req: fexec.ExecRequest) -> fexec.ExecOutcome:
        # payments pods were started under another node file (a stale pod); everyone else matches.
        stale = req.namespace == "payments"
        container = fexec.alpine(
            pod_file(req.namespace, node_domain="corp.example" if stale else "openstacklocal")
        )
        return container(req)

    fake.set_exec(handler)
    # The demo user is read-only; exec verification needs get (and on 1.35+ create) on pods/exec.
    fake.add_user("auditor", rules=ADMIN_RULES)
    cluster = register(fake, spec, dns, user="auditor", name="audited", allow_exec=True)
    scan = run_scan(cluster)

    got = rows(scan)
    web = got["storefront/Deployment/web"]
    api = got["payments/Deployment/payments-api"]
    assert web.detail["exec_verification"]["matches"] is True
    assert web.report["exec_verification"]["libc_confirmed"] is True
    assert not any(r.startswith("Exec verification") for r in web.report["reasons"])

    assert api.detail["exec_verification"]["matches"] is False
    assert any("differs from the computed one" in r for r in api.report["reasons"])
    assert api.risk == "affected"  # the risk still comes from the spec and the probes
    assert scan.facts["exec_verification"]["mismatches"] >= 1
    # glibc workloads are not exec'd into.
    assert "exec_verification" not in got["storefront/Deployment/checkout"].detail


def test_exec_verification_forbidden_makes_the_scan_partial_and_says_so(fakekube_fleet, upstream_dns):
    from dnsaudit.fakekube.auth import VIEW_RULES

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
