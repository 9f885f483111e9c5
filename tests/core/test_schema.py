"""The stored workload schema (dnsaudit.core.schema): real audit output passes, wrong rows are named."""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path

import pytest

from dnsaudit.core import schema
from dnsaudit.core.audit import audit_workload
from dnsaudit.core.kubelet import MAX_RESOLV_CONF_BYTES
from dnsaudit.core.schema import SchemaError, check_detail, check_report
from dnsaudit.core.verify import build_finding
from dnsaudit.testbed.fakekube.fleet import demo_fleet
from tests.audit.helpers import pool, seed_ctx, workload
from tests.web.factories import demo_audit, demo_audits

ROOT = Path(__file__).resolve().parents[2]

#: dnsPolicy None with its own full dnsConfig (as the demo's payments/fx-rates).
OWN_DNS_CONFIG = {
    "nameservers": ["10.96.0.10"],
    "searches": ["payments.svc.cluster.local", "svc.cluster.local", "cluster.local"],
    "options": [{"name": "ndots", "value": "5"}, {"name": "edns0"}],
}


def seed_audits():
    """The seed scenarios: one per branch of the audit that shapes report/detail differently."""
    return [
        audit_workload(workload("alpine:3.16"), seed_ctx()),  # affected: NODATA under openstacklocal
        audit_workload(workload("alpine:3.19"), seed_ctx(answer=None)),  # at-risk: unprobed (*_if_nodata)
        audit_workload(workload("debian:12"), seed_ctx()),  # glibc: safe
        audit_workload(workload("registry.example/unknown:1"), seed_ctx()),  # unknown libc
        audit_workload(workload(dns_policy="None", dns_config=OWN_DNS_CONFIG), seed_ctx()),
        audit_workload(workload(host_network=True), seed_ctx()),  # hostNetwork + ClusterFirst
        audit_workload(
            workload(dns_policy="Default"), seed_ctx(pool=pool(node_file=None))
        ),  # node file unknown
        audit_workload(workload(dns_policy="Bogus"), seed_ctx()),  # invalid dnsPolicy: an event
        # A node file the kubelet refuses: no pod can start (detail.error).
        audit_workload(workload(), seed_ctx(pool=pool("#" * (MAX_RESOLV_CONF_BYTES + 1)))),
        audit_workload(
            workload(kind="CronJob"), seed_ctx(pool=pool("nameserver 1.1.1.1\nsearch .\n", "v1.24.0"))
        ),
    ]


def fleet_audits():
    return [a for spec in demo_fleet() for _, a in demo_audits(spec)]


@pytest.fixture(scope="module")
def audits():
    return seed_audits() + fleet_audits()


def test_real_audit_output_matches_the_schema_as_written_and_as_stored(audits):
    assert len(audits) > 100
    risks = set()
    for a in audits:
        check_report(a.report, saving=True)
        check_detail(a.detail, saving=True)
        # As the JSON column gives it back.
        check_report(json.loads(json.dumps(a.report)), saving=True)
        check_detail(json.loads(json.dumps(a.detail)), saving=True)
        risks.add(a.report["risk"])
    assert risks == {"affected", "at-risk", "safe", "unknown"}
    # Every optional detail key of a simulation is exercised (the pessimistic run of an unprobed domain).
    assert any("musl_if_nodata" in s for a in audits for s in a.detail["simulations"])
    assert any(a.detail["error"] for a in audits)
    assert any(a.detail["events"] for a in audits)


def test_the_report_carries_the_workloads_own_dns_config():
    w, a = demo_audit("payments/Deployment/fx-rates")
    assert w.dns_policy == "None" and w.dns_config
    assert a.report.get("dns_config", w.dns_config) == w.dns_config
    plain = audit_workload(workload(), seed_ctx()).report
    assert plain.get("dns_config") is None


def test_exec_verification_findings_match_the_schema():
    a = audit_workload(workload("alpine:3.16"), seed_ctx())
    report, detail = a.report, a.detail
    # What the scan's verification stage writes (clusters/scan/stages/verification.py).
    for finding in (
        build_finding(
            report,
            "web-7d9f-abcde",
            "app",
            observed_resolv_conf="nameserver 10.96.0.10\nsearch example-namespace.svc.cluster.local\n",
            lib_listing="ld-musl-x86_64.so.1\nlibc.musl-x86_64.so.1\n",
        ),
        build_finding(report, "", None, observed_resolv_conf=None, lib_listing=None, error="forbidden"),
    ):
        detail["exec_verification"] = finding
        report["exec_verification"] = {
            "pod": finding.get("pod"),
            "matches": finding.get("matches"),
            "libc_confirmed": finding.get("libc_confirmed"),
            "error": finding.get("error"),
        }
        check_report(report, saving=True)
        check_detail(detail, saving=True)
    assert detail["exec_verification"]["error"] == "forbidden"


def test_the_readme_example_is_a_valid_report():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Report schema") :]
    example = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))
    for w in example["workloads"]:
        check_report(w)


def test_key_lists():
    assert {
        "namespace",
        "kind",
        "name",
        "containers",
        "dns_policy",
        "host_network",
        "resolv_conf",
        "risk",
        "reasons",
        "remediation",
        "node_pool",
        "affected_names",
    } == schema.REPORT_REQUIRED_KEYS
    assert {"dns_config", "node_resolv_conf_source", "exec_verification"} <= schema.REPORT_OPTIONAL_KEYS
    assert set(schema.REPORT_KEYS) == schema.REPORT_REQUIRED_KEYS | schema.REPORT_OPTIONAL_KEYS
    assert {
        "resolv_conf_text",
        "search_origin",
        "nameserver_origin",
        "events",
        "error",
        "simulations",
        "containers",
        "remediations",
        "validation",
        "assumed",
    } == schema.DETAIL_REQUIRED_KEYS
    assert {"exec_verification"} == schema.DETAIL_OPTIONAL_KEYS
    assert schema.REPORT_SAVING_REQUIRED <= schema.REPORT_OPTIONAL_KEYS


# --- rejections: the path and the expected type are named ------------------------------------------------


@pytest.fixture
def good():
    """A fresh affected report and detail (with a pessimistic simulation run) to break."""
    a = audit_workload(workload("alpine:3.19"), seed_ctx(answer=None))
    check_report(a.report, saving=True)
    check_detail(a.detail, saving=True)
    return copy.deepcopy(a.report), copy.deepcopy(a.detail)


def raises(check, d, message: str, **kw) -> SchemaError:
    with pytest.raises(SchemaError) as e:
        check(d, **kw)
    assert str(e.value) == message
    assert isinstance(e.value, ValueError)
    return e.value


def test_a_missing_key_is_named(good):
    report, detail = good
    del report["node_pool"]
    err = raises(check_report, report, "report.node_pool: missing (expected str)")
    assert err.path == "report.node_pool" and err.expected == "str"
    del report["containers"][0]["digest"]
    report["node_pool"] = "default"
    raises(check_report, report, "report.containers[0].digest: missing (expected str | null)")
    del detail["simulations"][0]["glibc"]["queries"][0]["transport"]
    raises(
        check_detail,
        detail,
        "detail.simulations[0].glibc.queries[0].transport: missing (expected 'udp' | 'tcp')",
    )


def test_a_wrong_type_is_named(good):
    report, detail = good
    report["host_network"] = "false"
    raises(check_report, report, "report.host_network: got str 'false' (expected bool)")
    report["host_network"] = False
    report["risk"] = "fine"
    raises(
        check_report,
        report,
        "report.risk: got str 'fine' (expected 'affected' | 'at-risk' | 'safe' | 'unknown')",
    )
    report["risk"] = "at-risk"
    report["reasons"].append(3)
    raises(check_report, report, f"report.reasons[{len(report['reasons']) - 1}]: got int 3 (expected str)")
    report["reasons"].pop()
    report["resolv_conf"]["options"] = "ndots:5"
    raises(check_report, report, "report.resolv_conf.options: got str 'ndots:5' (expected list[str])")
    report["resolv_conf"]["options"] = ["ndots:5"]
    check_report(report)

    detail["search_origin"]["openstacklocal"] = ["node"]
    raises(check_detail, detail, "detail.search_origin.openstacklocal: got list ['node'] (expected str)")
    detail["search_origin"]["openstacklocal"] = "node"
    detail["simulations"][0]["musl_if_nodata"]["elapsed"] = "5s"
    raises(
        check_detail, detail, "detail.simulations[0].musl_if_nodata.elapsed: got str '5s' (expected float)"
    )
    detail["simulations"][0]["musl_if_nodata"]["elapsed"] = 5  # a JSON number without a fraction is fine
    detail["remediations"][0]["tradeoffs"] = "one sentence"
    raises(
        check_detail, detail, "detail.remediations[0].tradeoffs: got str 'one sentence' (expected list[str])"
    )
    detail["remediations"][0]["tradeoffs"] = []
    check_detail(detail)
    raises(check_detail, [], "detail: got list [] (expected WorkloadDetail)")
    raises(check_report, None, "report: got NoneType None (expected WorkloadReport)")


def test_an_unknown_key_is_named(good):
    report, detail = good
    report["dnsConfig"] = None
    err = raises(
        check_report,
        report,
        "report.dnsConfig: unknown key (not in WorkloadReport: declare it in dnsaudit/core/schema.py) "
        f"(expected one of {', '.join(schema.REPORT_KEYS)})",
    )
    assert err.path == "report.dnsConfig"
    del report["dnsConfig"]
    report["remediation"]["fix"] = ""  # ("patch" is declared: audit-manifests --format json)
    with pytest.raises(
        SchemaError, match=r"^report\.remediation\.fix: unknown key \(not in ReportRemediation"
    ):
        check_report(report)
    detail["containers"][0]["arch"] = "amd64"
    with pytest.raises(
        SchemaError, match=r"^detail\.containers\[0\]\.arch: unknown key \(not in DetailContainer"
    ):
        check_detail(detail)


def test_rows_stored_before_dns_config_existed_are_read_but_a_fresh_report_must_have_it(good):
    report, _ = good
    del report["dns_config"]
    check_report(report)  # an old row
    raises(check_report, report, "report.dns_config: missing (expected DnsConfig | null)", saving=True)


def test_dns_config_has_the_api_shape(good):
    report, _ = good
    report["dns_config"] = OWN_DNS_CONFIG
    check_report(report, saving=True)
    report["dns_config"] = {}
    check_report(report, saving=True)
    report["dns_config"] = {"options": [{"name": "ndots", "value": 5}]}
    raises(check_report, report, "report.dns_config.options[0].value: got int 5 (expected str)")
    report["dns_config"] = {"search": ["corp.example"]}
    with pytest.raises(SchemaError, match=r"^report\.dns_config\.search: unknown key"):
        check_report(report)


# --- cost ------------------------------------------------------------------------------------------------


def test_checking_is_cheap_enough_for_a_50000_pod_scan(audits):
    """The save stage checks every workload: 10,000 reports well under a second (≈10 µs each)."""
    reports = [a.report for a in audits]
    details = [a.detail for a in audits]
    reports = (reports * (10_000 // len(reports) + 1))[:10_000]
    details = (details * (10_000 // len(details) + 1))[:10_000]
    t = time.perf_counter()
    for r in reports:
        check_report(r)
    report_time = time.perf_counter() - t
    t = time.perf_counter()
    for d in details:
        check_detail(d)
    detail_time = time.perf_counter() - t
    print(f"10,000 reports: {report_time:.3f} s; 10,000 details: {detail_time:.3f} s")
    assert report_time < 0.5
    assert detail_time < 3.0  # details carry the traces: a few times a report
