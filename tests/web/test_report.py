"""The cluster report: workloads table filters, sorting, pagination, htmx fragments, constant queries."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from clusters.models import Scan
from tests.web import factories


def rows(html: str) -> list[str]:
    """Workload names in table order (the row header links of the workloads table)."""
    table = html.split('id="workloads"', 1)[1]
    return re.findall(r'<th scope="row"><a href="/clusters/[^"]+/workloads/\d+/">([^<]+)</a>', table)


@pytest.fixture
def viewer(client_as):
    return client_as("viewer")


def test_report_shows_counts_pools_probe_matrix_and_problems(viewer, cluster):
    scan = factories.make_report(
        cluster,
        workloads=10,
        status=Scan.PARTIAL,
        problems=[
            {
                "fact": "kubelet configz",
                "error": "403 on nodes/proxy",
                "impact": "clusterDNS and resolvConf were assumed from the cluster settings",
            }
        ],
    )
    body = viewer.get(reverse("clusters:report", args=[cluster.name])).content.decode()
    assert f"Scan {scan.pk}" in body
    assert "403 on nodes/proxy" in body and "what that means" in body
    assert "corp.example" in body and "node resolv.conf (observed)" in body
    # The probe matrix shows the NODATA answer and that musl stops there.
    matrix = body.split('class="grid probes"', 1)[1].split("</table>", 1)[0]
    assert "NODATA" in matrix and "stops" in matrix and "continues" in matrix


def test_filters_narrow_the_table(viewer, report):
    url = reverse("clusters:report", args=[report.cluster.name])
    everything = rows(viewer.get(url).content.decode())
    assert len(everything) == 12
    affected = rows(viewer.get(url, {"risk": "affected"}).content.decode())
    expected = set(report.workloads.filter(risk="affected").values_list("name", flat=True))
    assert set(affected) == expected and 0 < len(affected) < 12
    in_ns = rows(viewer.get(url, {"namespace": "ns-1", "libc": "musl"}).content.decode())
    assert set(in_ns) == set(
        report.workloads.filter(namespace="ns-1", libc="musl").values_list("name", flat=True)
    )
    by_kind = rows(viewer.get(url, {"kind": "CronJob"}).content.decode())
    assert set(by_kind) == set(report.workloads.filter(kind="CronJob").values_list("name", flat=True))
    by_fix = rows(viewer.get(url, {"remediation": "dnsConfig"}).content.decode())
    assert set(by_fix) == set(report.workloads.filter(recommended="dnsConfig").values_list("name", flat=True))


def test_free_text_matches_name_and_image(viewer, report):
    url = reverse("clusters:report", args=[report.cluster.name])
    assert rows(viewer.get(url, {"q": "wl-0003"}).content.decode()) == ["wl-0003"]
    debian = rows(viewer.get(url, {"q": "debian"}).content.decode())
    assert set(debian) == set(report.workloads.filter(libc="glibc").values_list("name", flat=True))
    body = viewer.get(url, {"q": "no-such-thing"}).content.decode()
    assert rows(body) == [] and "No workload matches" in body


def test_sorting_by_name_both_ways_and_risk_first_by_default(viewer, report):
    url = reverse("clusters:report", args=[report.cluster.name])
    names = sorted(report.workloads.values_list("name", flat=True))
    assert rows(viewer.get(url, {"sort": "name"}).content.decode()) == names
    assert rows(viewer.get(url, {"sort": "-name"}).content.decode()) == names[::-1]
    default = rows(viewer.get(url).content.decode())
    risk_of = dict(report.workloads.values_list("name", "risk"))
    order = ["affected", "at-risk", "unknown", "safe"]
    assert [order.index(risk_of[n]) for n in default] == sorted(order.index(risk_of[n]) for n in default)


def test_pagination_splits_pages_and_keeps_filters_in_links(viewer, cluster):
    scan = factories.make_report(cluster, workloads=120)
    url = reverse("clusters:report", args=[cluster.name])
    first = viewer.get(url, {"sort": "name"}).content.decode()
    second = viewer.get(url, {"sort": "name", "page": 2}).content.decode()
    third = viewer.get(url, {"sort": "name", "page": 3}).content.decode()
    all_names = sorted(scan.workloads.values_list("name", flat=True))
    assert rows(first) + rows(second) + rows(third) == all_names
    assert "page 1 of 3" in first
    # The "next" link carries the sort and is both a real href and an hx-get.
    assert 'href="?sort=name&amp;page=2"' in first and 'hx-get="?sort=name&amp;page=2"' in first


def test_htmx_request_gets_only_the_table_and_response_varies(viewer, report):
    url = reverse("clusters:report", args=[report.cluster.name])
    response = viewer.get(url, {"risk": "affected"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="workloads")
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="workloads"') and "<html" not in body
    assert 'hx-swap-oob="true"' in body  # the sort input of the filter form follows the table
    assert "HX-Request" in response["Vary"]
    full = viewer.get(url, {"risk": "affected"})
    assert "<html" in full.content.decode() and "HX-Request" in full["Vary"]
    # htmx's history restore asks for the full page.
    restore = viewer.get(
        url, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true", HTTP_HX_TARGET="workloads"
    )
    assert "<html" in restore.content.decode()


def test_a_shared_filtered_url_renders_the_page_with_the_filters_selected(viewer, report):
    url = reverse("clusters:report", args=[report.cluster.name])
    body = viewer.get(url, {"risk": "at-risk", "q": "wl"}).content.decode()
    assert "<option selected>at-risk</option>" in body
    assert 'value="wl"' in body


def test_history_lists_scans_and_diff_shows_new_and_fixed(viewer, cluster):
    old = factories.make_scan(cluster, age_minutes=60)
    factories.make_workload(old, "shop", "Deployment", "cart", risk="affected")
    factories.make_workload(old, "shop", "Deployment", "search", risk="safe", libc="glibc")
    new = factories.make_scan(cluster, age_minutes=5)
    factories.make_workload(new, "shop", "Deployment", "cart", risk="safe")
    factories.make_workload(new, "shop", "Deployment", "search", risk="affected")
    factories.make_scan(
        cluster, status=Scan.FAILED, age_minutes=1, error="API server unreachable: connection refused"
    )
    body = viewer.get(reverse("clusters:report", args=[cluster.name])).content.decode()
    diff = body.split('id="diff-h"', 1)[1].split("</section>", 1)[0]
    new_part, fixed_part = diff.split("Fixed", 1)
    assert "shop/Deployment/search" in new_part and "shop/Deployment/cart" not in new_part
    assert "shop/Deployment/cart" in fixed_part
    assert f"#{old.pk}" in body and f"#{new.pk}" in body
    assert "API server unreachable" in body  # the failed latest scan is explained; the old report stays


def test_older_scan_can_be_viewed_and_foreign_scan_is_404(viewer, cluster):
    old = factories.make_report(cluster, workloads=3, age_minutes=90)
    factories.make_report(cluster, workloads=5)
    url = reverse("clusters:report", args=[cluster.name])
    assert len(rows(viewer.get(url, {"scan": old.pk}).content.decode())) == 3
    other = factories.make_report(factories.make_cluster("other"), workloads=1)
    assert viewer.get(url, {"scan": other.pk}).status_code == 404


def test_cluster_without_scans_says_what_to_do(client_as, cluster):
    body = client_as("operator").get(reverse("clusters:report", args=[cluster.name])).content.decode()
    assert "No report yet" in body and "Rescan" in body


@pytest.mark.parametrize("params", [{}, {"risk": "affected", "sort": "-name", "page": 2}, {"q": "wl"}])
def test_workloads_table_queries_do_not_grow_with_rows(client_as, django_assert_max_num_queries, params):
    """10 and 200 rows cost the same number of queries (cache cleared: the worst case is measured)."""
    from django.core.cache import cache

    viewer = client_as("viewer")
    counts = []
    for n in (10, 200):
        c = factories.make_cluster(f"size-{n}")
        factories.make_report(c, workloads=n)
        url = reverse("clusters:report", args=[c.name])
        cache.clear()
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            assert viewer.get(url, params).status_code == 200
        counts.append(len(ctx.captured_queries))
        cache.clear()
        with django_assert_max_num_queries(counts[0]):
            viewer.get(url, params, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="workloads")
    assert counts[0] == counts[1], counts


def test_fleet_queries_do_not_grow_with_clusters(client_as, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    viewer = client_as("viewer")
    counts = []
    for n in (2, 20):
        while factories.Cluster.objects.count() < n:
            c = factories.make_cluster()
            factories.make_report(c, workloads=2)
            factories.make_scan(c, status=Scan.FAILED, age_minutes=0.5, error="boom")
        with CaptureQueriesContext(connection) as ctx:
            assert viewer.get(reverse("clusters:fleet")).status_code == 200
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1], counts


def test_fleet_shows_counts_warnings_and_empty_state(client_as, db):
    admin = client_as("admin")
    empty = admin.get(reverse("clusters:fleet")).content.decode()
    assert "No clusters yet — add a kubeconfig" in empty and reverse("clusters:add") in empty
    c = factories.make_cluster("staging")
    scan = factories.make_report(
        c,
        workloads=5,
        status=Scan.PARTIAL,
        problems=[{"fact": "nodes/proxy", "error": "403 forbidden", "impact": "assumed"}],
    )
    factories.make_scan(c, status=Scan.FAILED, age_minutes=1, error="401 Unauthorized: token expired")
    body = admin.get(reverse("clusters:fleet")).content.decode()
    row = body.split('id="cluster-staging"', 1)[1].split("</tr>", 1)[0]
    assert "Partial" in row and "403 forbidden" in row
    assert "token expired" in row and "counts are from the previous report" in row
    assert f">{scan.affected}<" in row
    assert "Rescan" in row
