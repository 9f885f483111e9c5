"""Exemptions through real scans of the demo's openstack-prod, served by the project's HTTPS test API server
(dnsaudit.testbed.fakekube): the annotations on a Deployment, on a CronJob's pod template and on a bare Pod
reach the report; a malformed or expired one exempts nothing and says why; verdicts never change; a
dnsaudit exemption applies to the current report at once and to the next scan; the stored (shared) report
content never holds an exemption."""

from __future__ import annotations

import copy
from datetime import date, timedelta

import pytest
from django.core.management import call_command

from clusters import exemptions
from clusters.models import Exemption, WorkloadContent
from clusters.reports import scan_report
from dnsaudit.testbed.fakekube.fleet import demo_fleet, serve
from tests.scans.helpers import register, rows, run_scan

pytestmark = pytest.mark.django_db

FUTURE = (date.today() + timedelta(days=60)).isoformat()
PAST = (date.today() - timedelta(days=2)).isoformat()

#: ns/Kind/name -> (where the annotations go, the annotations)
ANNOTATED = {
    "payments/Deployment/payments-api": (
        "metadata",
        {
            "dnsaudit.io/exempt": "payments accepts this until the glibc image",
            "dnsaudit.io/exempt-until": FUTURE,
        },
    ),
    "data/CronJob/etl-nightly": ("template", {"dnsaudit.io/exempt": "batch, retried nightly"}),
    "default/Pod/dns-debug": ("metadata", {"dnsaudit.io/exempt": "a debug pod\nwith a newline"}),
    "storefront/Deployment/web": (
        "metadata",
        {"dnsaudit.io/exempt": "bad date", "dnsaudit.io/exempt-until": "next week"},
    ),
    "storefront/Deployment/checkout": (
        "template",
        {"dnsaudit.io/exempt": "expired", "dnsaudit.io/exempt-until": PAST},
    ),
}


def _spec(annotated: bool):
    spec = copy.deepcopy(next(s for s in demo_fleet() if s.name == "openstack-prod"))
    if not annotated:
        return spec
    for obj in spec.objects:
        meta = obj.get("metadata", {})
        key = f"{meta.get('namespace')}/{obj.get('kind')}/{meta.get('name')}"
        if key not in ANNOTATED:
            continue
        where, annotations = ANNOTATED[key]
        if where == "metadata":
            meta.setdefault("annotations", {}).update(annotations)
        else:
            spec_node = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
            spec_node["template"].setdefault("metadata", {}).setdefault("annotations", {}).update(annotations)
    return spec


@pytest.fixture
def scanned(fakekube_server, upstream_dns):
    """``scan(annotated) -> (cluster, scan)``: serve openstack-prod (with or without the annotations) and
    scan it as a registered cluster."""
    state: dict = {}

    def scan(annotated: bool):
        spec = _spec(annotated)
        serve([spec], fakekube_server)
        if "cluster" not in state:
            state["cluster"] = register(fakekube_server.cluster(spec.name), spec, upstream_dns(spec))
        return state["cluster"], run_scan(state["cluster"])

    return scan


def test_annotations_served_by_the_api_exempt_without_changing_any_verdict(scanned):
    cluster, plain = scanned(False)
    _, annotated = scanned(True)
    before, after = rows(plain), rows(annotated)
    assert {k: w.risk for k, w in before.items()} == {k: w.risk for k, w in after.items()}
    assert not any(w.exemption for w in before.values())

    api = after["payments/Deployment/payments-api"]
    assert api.exemption == {
        "reason": "payments accepts this until the glibc image",
        "source": "annotation",
        "by": None,
        "expires": FUTURE,
        "id": None,
    }
    assert api.exempt_until == date.fromisoformat(FUTURE)
    # From a CronJob's pod template, and from a bare Pod (its own metadata; the newline made a space).
    assert after["data/CronJob/etl-nightly"].exemption["reason"] == "batch, retried nightly"
    assert after["data/CronJob/etl-nightly"].exempt_until is None
    assert after["default/Pod/dns-debug"].exemption["reason"] == "a debug pod with a newline"
    # A malformed date or an expired annotation exempts nothing, and the report says why.
    web, checkout = after["storefront/Deployment/web"], after["storefront/Deployment/checkout"]
    assert web.exemption is None and checkout.exemption is None
    assert any("'next week' is not a date (YYYY-MM-DD)" in r for r in web.report["reasons"])
    assert any(f"expired on {PAST}" in r for r in checkout.report["reasons"])
    exempted = {k for k, w in after.items() if w.exemption}
    assert exempted == {
        "payments/Deployment/payments-api",
        "data/CronJob/etl-nightly",
        "default/Pod/dns-debug",
    }

    # The stored, shared report content never holds an exemption; the report that leaves the server does.
    assert not WorkloadContent.objects.filter(report__has_key="exemption").exists()
    report = {f"{w['namespace']}/{w['kind']}/{w['name']}": w for w in scan_report(annotated)["workloads"]}
    assert report["payments/Deployment/payments-api"]["exemption"]["source"] == "annotation"
    assert "exemption" not in report["storefront/Deployment/web"]
    # The counts keep every risk; the exempted ones are counted apart.
    counts = exemptions.exempted_counts(annotated)
    assert counts["total"] == 3
    assert annotated.affected + annotated.at_risk + annotated.safe + annotated.unknown == len(after)


def test_a_dnsaudit_exemption_applies_to_the_current_report_at_once_and_to_the_next_scan(scanned, capsys):
    cluster, first = scanned(True)
    call_command(
        "exempt", cluster.name, "--namespace", "storefront", "--reason", "storefront is being replaced"
    )
    e = Exemption.objects.get()
    now = rows(first)
    storefront = {k for k in now if k.startswith("storefront/")}
    assert storefront and all(now[k].exemption["id"] == e.pk for k in storefront)
    assert all(
        now[k].exemption["source"] == "dnsaudit" and now[k].exemption["by"] == "cli" for k in storefront
    )
    # The annotation wins where both apply; other namespaces are untouched.
    call_command(
        "exempt", cluster.name, "--reason", "everything, for a day", "--expires", date.today().isoformat()
    )
    now = rows(first)
    assert now["payments/Deployment/payments-api"].exemption["source"] == "annotation"
    assert now["storefront/Deployment/web"].exemption["id"] == e.pk  # no expiry beats today's
    cluster_wide = Exemption.objects.exclude(pk=e.pk).get()
    assert now["payments/Deployment/fx-rates"].exemption["id"] == cluster_wide.pk

    _, second = scanned(True)
    later = rows(second)
    assert later["storefront/Deployment/checkout"].exemption["id"] == e.pk
    assert later["payments/Deployment/payments-api"].exemption["source"] == "annotation"

    # Removing it takes it off the current report (the cluster-wide one takes over), not the older scan's.
    call_command("unexempt", str(e.pk))
    later = rows(second)
    assert later["storefront/Deployment/checkout"].exemption["id"] == cluster_wide.pk
    assert rows(first)["storefront/Deployment/checkout"].exemption["id"] == e.pk
    call_command("unexempt", str(cluster_wide.pk))
    later = rows(second)
    assert later["storefront/Deployment/checkout"].exemption is None
    assert later["payments/Deployment/payments-api"].exemption["source"] == "annotation"


def test_an_annotation_behind_a_longer_dnsaudit_exemption_comes_back_when_that_one_is_removed(scanned):
    cluster, scan = scanned(True)
    call_command("exempt", cluster.name, "--namespace", "payments", "--reason", "payments moves to glibc")
    e = Exemption.objects.get()
    api = rows(scan)["payments/Deployment/payments-api"]
    # No expiry outlasts the annotation's date: the dnsaudit exemption is shown...
    assert api.exemption["id"] == e.pk
    shown = next(w for w in scan_report(scan)["workloads"] if w["name"] == "payments-api")
    assert set(shown["exemption"]) == {"reason", "source", "by", "expires", "id"}  # the schema's shape only
    assert shown["exemption"]["source"] == "dnsaudit"
    # ...and when it goes, the workload's own annotation applies again at once, not only from the next scan.
    call_command("unexempt", str(e.pk))
    back = exemptions.row_exemption(rows(scan)["payments/Deployment/payments-api"])
    assert back["source"] == "annotation" and back["reason"] == "payments accepts this until the glibc image"
    assert back["expires"] == FUTURE
