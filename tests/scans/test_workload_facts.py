"""The workload page's facts are the workload's own (issue 8, item 6), through a real scan of the demo's
openstack-prod with its images read from a registry mirror on loopback (linux/amd64 + linux/arm64).

* image evidence is for the platform of the nodes the workload runs on (alpine:3.19 runs on the amd64
  and the arm64 pools: each pool's workloads get that platform's verdict);
* an assumption about one pool (the infra pool's kubelet configz is unreachable) is quoted only in the
  verdicts of that pool's workloads, in the report, the JSON and the CSV.
"""

from __future__ import annotations

import csv
import io

import pytest

from clusters.reports import scan_report, scan_report_csv
from tests.scans.helpers import register, rows, run_scan

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_scan(fakekube_server, upstream_dns, monkeypatch):
    from dnsaudit.boundary.registry import MIRRORS_ENV
    from dnsaudit.testbed.demoregistry import DemoRegistry, demo_image_digest
    from dnsaudit.testbed.fakekube import objects as fake_objects
    from dnsaudit.testbed.fakekube.fleet import demo_fleet, serve

    previous = fake_objects.set_image_digest_provider(demo_image_digest)
    try:
        spec = next(s for s in demo_fleet() if s.name == "openstack-prod")
    finally:
        fake_objects.set_image_digest_provider(previous)
    serve([spec], fakekube_server)
    fake = fakekube_server.cluster("openstack-prod")
    with DemoRegistry(serve_tags=False) as images:
        monkeypatch.setenv(MIRRORS_ENV, images.mirrors_env())
        cluster = register(fake, spec, upstream_dns(spec))
        yield run_scan(cluster)


def test_image_evidence_is_for_the_platform_of_the_workloads_nodes(demo_scan):
    got = rows(demo_scan)
    agent = got["platform/DaemonSet/node-agent"]  # alpine:3.19 on every node; its pool is general (amd64)
    web = got["storefront/Deployment/web"]  # nginx:1.27-alpine on the arm pool
    assert agent.node_pool == "general" and web.node_pool == "arm"
    a = agent.detail["containers"][0]
    w = web.detail["containers"][0]
    assert a["confidence"] == w["confidence"] == "confirmed"
    assert a["platform"] == "linux/amd64"
    assert any("x86_64" in e for e in a["evidence"]) and not any("aarch64" in e for e in a["evidence"])
    assert w["platform"] == "linux/arm64"
    assert any("aarch64" in e for e in w["evidence"]) and not any("x86_64" in e for e in w["evidence"])


def test_a_pools_assumption_stays_with_that_pools_workloads(demo_scan):
    assert any(p["fact"] == "kubelet config of pool infra" for p in demo_scan.problems)
    report = scan_report(demo_scan)
    by_pool: dict[str, list[dict]] = {}
    for w in report["workloads"]:
        by_pool.setdefault(w["node_pool"], []).append(w)
    assert by_pool["general"] and by_pool["infra"]
    for pool, workloads in by_pool.items():
        for w in workloads:
            infra_said = any("pool infra" in r for r in w["reasons"])
            if pool != "infra":
                assert not infra_said, (w["namespace"], w["name"], w["reasons"])
    # The CSV carries the same reasons: no general/arm row quotes the infra pool.
    for row in csv.DictReader(io.StringIO(scan_report_csv(demo_scan))):
        if row["node_pool"] != "infra":
            assert "pool infra" not in row["reasons"], row
        assert row["node_resolv_conf_source"] in ("observed", "entered", "inferred", "unknown")
