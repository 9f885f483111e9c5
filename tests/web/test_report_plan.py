"""Issue #9 items 4 and 6 on the pages: the report opens with what to do (after the "Not known" notice),
the busiest node pool is the open one, the random probe name is explained, lookups where musl and glibc
agree are collapsed, scan ids say they are fleet-wide, and an inline rescan on the fleet refreshes the
row and the totals when it ends."""

from __future__ import annotations

import html
import re

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clusters.models import Scan, WorkloadContent
from dnsaudit.core.audit import AuditContext, cluster_remediation
from tests.web import factories


def text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def section(body: str, element_id: str) -> str:
    m = re.search(rf'<section id="{element_id}".*?</section>', body, re.S)
    assert m, f"no section #{element_id}"
    return m.group(0)


@pytest.fixture
def demo_scan(db):
    """openstack-prod's workloads audited by the real core, stored as the scan stores them, with the
    cluster-level fixes the audit computed in ``facts``, and its three pools (``infra`` unknown)."""
    pairs = factories.demo_audits()
    facts = {
        "cluster_remediation": cluster_remediation(
            [a for _, a in pairs], AuditContext(pools={}, default_pool="general")
        )
    }
    cluster = factories.make_cluster("openstack-prod")
    scan = factories.make_scan(cluster, facts=facts)
    for name in ("arm", "general"):
        factories.make_pool(scan, name=name)
    factories.make_pool(
        scan, name="infra", node_resolv_conf="", node_resolv_conf_source="unknown", searches=[], probes=[]
    )
    rows = [factories.make_audited_workload(scan, "", audited=pair) for pair in pairs]
    counts = {r: sum(1 for w in rows if w.risk == r) for r in ("affected", "at-risk", "safe", "unknown")}
    Scan.objects.filter(pk=scan.pk).update(
        workloads_total=len(rows),
        affected=counts["affected"],
        at_risk=counts["at-risk"],
        safe=counts["safe"],
        unknown=counts["unknown"],
    )
    scan.refresh_from_db()
    return scan


def report_url(scan: Scan) -> str:
    return reverse("clusters:report", args=[scan.cluster.name])


# --- what to do -------------------------------------------------------------------------------------------


def test_demo_report_opens_with_the_pool_change_linked_to_its_fix(client_as, demo_scan):
    cache.clear()
    body = client_as("viewer").get(report_url(demo_scan)).content.decode()
    plan = section(body, "plan")
    targets = demo_scan.workloads.filter(risk__in=("affected", "at-risk")).count()
    assert targets
    words = text(plan)
    assert "What to do" in words
    assert f"One change fixes every affected and at-risk workload ({targets})" in words
    assert f"kubelet resolvConf on pool general fixes {targets}" in words
    # The link goes to the cluster-level fix below, which has that id (and JS opens it).
    href = re.search(r'<a href="(#cfix-\d+)">the fix</a>', plan).group(1)
    fix = re.search(rf'<details class="fix" id="{href[1:]}">.*?</summary>', body, re.S).group(0)
    assert "kubelet" in fix and "general" in fix
    # Which workloads: each linked to its page.
    one = demo_scan.workloads.filter(risk="affected").order_by("namespace", "kind", "name").first()
    assert reverse("clusters:workload", args=["openstack-prod", one.pk]) in plan
    # Viewers get no bundle link.
    assert "export/bundle" not in plan and "download the bundle" not in plan


def test_the_plan_comes_after_the_not_known_notice_and_before_the_counts(client_as, demo_scan):
    body = client_as("viewer").get(report_url(demo_scan)).content.decode()
    gaps, plan, counts = (body.index(s) for s in ('id="node-file-gaps"', 'id="plan"', 'class="counts"'))
    assert gaps < plan < counts
    assert body.index('id="plan"') < body.index('id="pools-h"')


def test_operators_get_the_bundle_link(client_as, demo_scan):
    plan = section(client_as("operator").get(report_url(demo_scan)).content.decode(), "plan")
    bundle = reverse("clusters:export_bundle", args=["openstack-prod"])
    assert f'href="{bundle}?scan={demo_scan.pk}"' in plan


def test_per_workload_patches_link_to_the_workload_page(client_as, cluster):
    # The factory rows recommend a dnsConfig patch each (and no cluster-level fix was stored).
    scan = factories.make_scan(cluster)
    factories.make_pool(scan)
    web = factories.make_workload(scan, "storefront", "Deployment", "web", risk="affected")
    factories.make_workload(scan, "shop", "Deployment", "cart", risk="at-risk")
    factories.make_workload(scan, "shop", "Deployment", "fine", risk="safe", libc="glibc")
    plan = section(client_as("viewer").get(report_url(scan)).content.decode(), "plan")
    words = text(plan)
    assert "2 changes fix every affected and at-risk workload (2)" in words
    assert "dnsConfig patch on shop/cart fixes 1" in words
    assert "dnsConfig patch on storefront/web fixes 1" in words
    page = reverse("clusters:workload", args=[cluster.name, web.pk])
    assert f'<a href="{page}#fix-h">its patch</a>' in plan


def test_nothing_to_do_and_unknown_workloads_are_said(client_as, cluster):
    scan = factories.make_scan(cluster)
    factories.make_workload(scan, risk="safe", libc="glibc")
    factories.make_workload(scan, risk="unknown", libc="unknown")
    words = text(section(client_as("viewer").get(report_url(scan)).content.decode(), "plan"))
    assert "Nothing to fix: no workload is affected or at risk." in words
    assert "1 unknown workload not counted" in words


def test_a_running_or_failed_scan_has_no_plan(client_as, cluster):
    for status in (Scan.RUNNING, Scan.FAILED):
        scan = factories.make_scan(cluster, status=status)
        body = client_as("viewer").get(report_url(scan) + f"?scan={scan.pk}").content.decode()
        assert 'id="plan"' not in body and "Nothing to fix" not in body


def test_the_plan_costs_the_same_queries_whatever_the_size_and_none_once_cached(client_as, db):
    viewer = client_as("viewer")
    small = factories.make_report(factories.make_cluster("small"), workloads=10)
    big = factories.make_report(factories.make_cluster("big"), workloads=120)
    cache.clear()
    counts = []
    for scan in (small, big):
        with CaptureQueriesContext(connection) as ctx:
            viewer.get(report_url(scan))
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]
    with CaptureQueriesContext(connection) as ctx:
        body = viewer.get(report_url(big)).content.decode()
    plan_reads = [q for q in ctx.captured_queries if "remediation" in q["sql"]]
    assert plan_reads == []  # cached with the finished scan
    assert "fixes" in section(body, "plan")


# --- node pools and probes ----------------------------------------------------------------------------------


def test_the_pool_with_most_affected_workloads_is_first_and_open(client_as, cluster):
    scan = factories.make_scan(cluster)
    for name in ("quiet", "busy", "middle"):
        factories.make_pool(scan, name=name)
    factories.make_workload(scan, pool="middle", risk="affected")
    factories.make_workload(scan, pool="middle", risk="at-risk")
    for _ in range(3):
        factories.make_workload(scan, pool="busy", risk="affected")
    cache.clear()
    body = client_as("viewer").get(report_url(scan)).content.decode()
    pools = re.findall(r'<details class="pool" id="pool-\d+" data-pool="([^"]+)" ?(open)?>', body)
    assert pools == [("busy", "open"), ("middle", ""), ("quiet", "")]
    summary = re.search(r'data-pool="busy".*?</summary>', body, re.S).group(0)
    assert "3 affected" in text(summary)
    middle = re.search(r'data-pool="middle".*?</summary>', body, re.S).group(0)
    assert "1 affected, 1 at risk" in text(middle)


def test_the_random_probe_name_is_marked_and_explained(client_as, cluster):
    scan = factories.make_scan(cluster)
    control = "dnsaudit-3f9a1c2e.com"
    factories.make_pool(
        scan,
        probes=[
            factories.probe("corp.example", "example.com", "NODATA", "NODATA"),
            factories.probe("corp.example", control, "NODATA", "NODATA"),
        ],
    )
    body = client_as("viewer").get(report_url(scan)).content.decode()
    pools = re.search(r'<section aria-labelledby="pools-h">.*?</section>', body, re.S).group(0)
    header = re.search(rf"<th scope=\"col\"><code>{control}</code>.*?</th>", pools, re.S).group(0)
    assert "random control name" in text(header)
    assert 'href="#probe-control-1"' in header
    note = text(re.search(r'<p class="small muted" id="probe-control-1">.*?</p>', pools, re.S).group(0))
    assert control in note and "cannot exist" in note and "NXDOMAIN" in note
    # A plain probe name is not called a control.
    assert "random control name" not in text(
        re.search(r"<th scope=\"col\"><code>example.com</code>.*?</th>", pools).group(0)
    )


# --- the workload page --------------------------------------------------------------------------------------


def workload_page(client_as, row) -> str:
    return (
        client_as("viewer")
        .get(reverse("clusters:workload", args=[row.scan.cluster.name, row.pk]))
        .content.decode()
    )


def test_lookups_where_musl_and_glibc_agree_are_collapsed(client_as, demo_scan):
    row = demo_scan.workloads.filter(risk="affected", kind="Deployment").order_by("name").first()
    body = workload_page(client_as, row)
    traces = re.search(r'<section aria-labelledby="traces-h">.*?</section>', body, re.S).group(0)
    disagree = re.findall(r'<article class="trace differs">', traces)
    agree = re.findall(r'<details class="trace agree">\s*<summary>(.*?)</summary>', traces, re.S)
    assert disagree and agree  # example.com differs; kubernetes.default resolves under both
    assert '<details class="trace agree" open' not in traces
    assert "kubernetes.default" in text(agree[0]) and "musl and glibc agree: both resolve" in text(agree[0])
    assert f"{len(agree)} lookup" in text(re.search(r'id="agreeing-note">.*?</p>', traces, re.S).group(0))


def test_a_workload_whose_lookups_all_agree_says_so(client_as, demo_scan):
    row = demo_scan.workloads.get(namespace="payments", kind="Deployment", name="fx-rates")  # safe, musl
    body = workload_page(client_as, row)
    assert row.risk == "safe" and row.libc == "musl"
    assert "musl and glibc agree on every lookup" in body
    assert '<details class="trace agree">' in body and '<article class="trace differs">' not in body


def test_the_random_probe_is_explained_on_the_workload_page_where_a_reason_names_it(client_as, cluster):
    scan = factories.make_scan(cluster)
    row = factories.make_workload(scan, risk="at-risk")
    report = dict(row.report)
    report["reasons"] = [
        "Nobody has probed how corp.example answers. Probe '<random>.corp.example' to confirm."
    ]
    WorkloadContent.objects.filter(pk=row.content_id).update(report=report)
    row.refresh_from_db()
    body = workload_page(client_as, row)
    why = re.search(r'<section aria-labelledby="why-h".*?</section>', body, re.S).group(0)
    note = text(re.search(r'<p class="small muted" id="random-probe-note">.*?</p>', why, re.S).group(0))
    assert "dnsaudit-" in note and "cannot exist" in note
    # Not explained where it does not appear.
    plain = factories.make_workload(scan, risk="affected")
    assert 'id="random-probe-note"' not in workload_page(client_as, plain)


# --- scan ids -----------------------------------------------------------------------------------------------


def test_the_history_says_scan_ids_are_fleet_wide(client_as, db):
    a, b = factories.make_cluster("a"), factories.make_cluster("b")
    first = factories.make_report(a, workloads=2, age_minutes=20)
    factories.make_report(b, workloads=2, age_minutes=10)
    second = factories.make_report(a, workloads=2, age_minutes=1)
    body = client_as("viewer").get(reverse("clusters:report", args=["a"])).content.decode()
    history = re.search(r'<section aria-labelledby="history-h">.*?</section>', body, re.S).group(0)
    assert "one sequence for the whole fleet" in text(history)
    assert '<th scope="col">Scan id</th>' in history
    assert f">#{first.pk}</a>" in history and f">#{second.pk}</a>" in history
    assert second.pk - first.pk == 2  # the gap the note explains
    progress = (
        client_as("viewer").get(reverse("clusters:scan_progress", args=["a", second.pk])).content.decode()
    )
    assert f"<h1>a: scan {second.pk}</h1>" in progress and "whole fleet" in progress


# --- the fleet after an inline rescan -------------------------------------------------------------------------


def fleet_fragment(client, scan: Scan, where: str = "fleet"):
    url = reverse("clusters:scan_progress", args=[scan.cluster.name, scan.pk]) + f"?where={where}"
    return client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET=f"progress-{scan.cluster.name}")


def test_the_last_fleet_fragment_refreshes_the_row_and_totals_out_of_band(client_as, db):
    viewer = client_as("viewer")
    prod = factories.make_cluster("prod")
    factories.make_report(prod, workloads=5, age_minutes=30)  # 1 affected, 1 at-risk
    other = factories.make_cluster("other")
    factories.make_report(other, workloads=10)  # 2 affected
    fleet = viewer.get(reverse("clusters:fleet")).content.decode()
    assert (
        'id="fleet-totals"' in fleet and 'id="status-prod"' in fleet and 'id="count-prod-affected"' in fleet
    )
    assert "hx-swap-oob" not in fleet

    running = factories.make_scan(prod, status=Scan.RUNNING, age_minutes=0)
    active = fleet_fragment(viewer, running)
    assert "hx-swap-oob" not in active.content.decode() and "HX-Trigger" not in active

    # The scan ends with more affected workloads than before.
    Scan.objects.filter(pk=running.pk).update(
        status=Scan.SUCCEEDED,
        finished_at=timezone.now(),
        affected=4,
        at_risk=0,
        safe=7,
        unknown=1,
        workloads_total=12,
    )
    done = fleet_fragment(viewer, running)
    body = done.content.decode()
    assert done["HX-Trigger"] == "dnsaudit:scan-ended"
    # The progress box itself (the swap target) says it ended, without polling.
    assert "Open the report" in body and 'hx-trigger="load delay:1s"' not in body
    oob = dict(
        re.findall(
            r'<(?:td|div|p)[^>]*id="([^"]+)"[^>]*hx-swap-oob="true"[^>]*>(.*?)</(?:td|div|p)>', body, re.S
        )
    )
    assert set(oob) >= {
        "status-prod",
        "count-prod-affected",
        "count-prod-at-risk",
        "count-prod-safe",
        "count-prod-unknown",
        "fleet-totals",
    }
    assert text(oob["status-prod"]) == "✔ succeeded just now"  # was "30 minutes ago"
    assert text(oob["count-prod-affected"]) == "4" and text(oob["count-prod-safe"]) == "7"
    totals = text(oob["fleet-totals"])
    assert "2 clusters" in totals and "affected 6" in totals  # 4 + 2 from other

    # On the report page the fragment reloads the report instead: no fleet parts.
    report_side = fleet_fragment(viewer, running, where="report").content.decode()
    assert "hx-swap-oob" not in report_side and 'hx-select="#report-body"' in report_side


def test_a_failed_inline_rescan_refreshes_the_row_with_the_failure(client_as, db):
    viewer = client_as("viewer")
    prod = factories.make_cluster("prod")
    factories.make_report(prod, workloads=5, age_minutes=30)
    failed = factories.make_scan(prod, status=Scan.FAILED, age_minutes=0, error="API server unreachable")
    body = fleet_fragment(viewer, failed).content.decode()
    status = re.search(r'<div id="status-prod"[^>]*hx-swap-oob="true".*?\n</div>', body, re.S).group(0)
    assert "API server unreachable" in status and "counts are from the previous report" in status


def test_exempted_workloads_are_left_out_of_the_plan_and_counted(client_as, demo_scan):
    """An exemption says "we accept this one": the plan stops counting it at once, says how many were
    left out, and counts it again when the exemption is removed."""
    from clusters import exemptions

    targets = demo_scan.workloads.filter(risk__in=("affected", "at-risk")).count()
    payments = demo_scan.workloads.filter(namespace="payments", risk__in=("affected", "at-risk")).count()
    assert 0 < payments < targets
    cluster = demo_scan.cluster
    e, applied = exemptions.create(cluster, reason="payments accepts this", by="otto", namespace="payments")
    assert applied >= payments
    words = text(section(client_as("viewer").get(report_url(demo_scan)).content.decode(), "plan"))
    assert f"every affected and at-risk workload ({targets - payments})" in words
    assert f"{payments} exempted affected or at-risk workload" in words and "left out of this plan" in words
    assert "payments/" not in words  # none of them listed under a step
    exemptions.remove(e, by="otto")
    words = text(section(client_as("viewer").get(report_url(demo_scan)).content.decode(), "plan"))
    assert f"every affected and at-risk workload ({targets})" in words and "left out" not in words
