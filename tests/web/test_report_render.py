"""The report page's cheap rendering: rows built in Python stay escaped and linked, sort headers and pager
links keep the query string, and a finished scan's node-pool section is rendered once and then cached."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clusters.models import Scan
from tests.web import factories


@pytest.fixture
def viewer(client_as):
    return client_as("viewer")


def table(html: str) -> str:
    return html.split('id="workloads"', 1)[1].split("</table>", 1)[0]


def test_workload_rows_escape_text_and_link_each_row_to_its_page(viewer, cluster):
    scan = factories.make_scan(cluster)
    evil = factories.make_workload(scan, "ns&co", "Deployment", "<script>alert(1)</script>", risk="affected")
    plain = factories.make_workload(scan, "shop", "CronJob", "cart", risk="safe", libc="glibc")
    body = table(viewer.get(reverse("clusters:report", args=[cluster.name])).content.decode())
    assert "<script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "ns&amp;co" in body
    for w in (evil, plain):
        assert f'href="{reverse("clusters:workload", args=[cluster.name, w.pk])}"' in body
    # The risk badge keeps its text (never colour alone) and the musl version shows beside the libc.
    assert 'class="badge risk-affected"' in body and "> affected</span>" in body
    assert 'musl <span class="muted">1.2.4</span>' in body


def test_sort_header_of_current_column_reverses_and_keeps_filters(viewer, report):
    url = reverse("clusters:report", args=[report.cluster.name])
    body = table(viewer.get(url, {"risk": "affected", "sort": "name", "page": "1"}).content.decode())
    name_th = re.search(r'<th scope="col" aria-sort="ascending"><a [^>]*>Workload', body).group(0)
    # Same column again: descending; the filter stays and the page is dropped; href and hx-get agree.
    assert (
        'href="?risk=affected&amp;sort=-name"' in name_th
        and 'hx-get="?risk=affected&amp;sort=-name"' in name_th
    )
    assert 'href="?risk=affected&amp;sort=kind" hx-get="?risk=affected&amp;sort=kind"' in body
    assert body.count("aria-sort=") == 1


def test_pager_links_keep_filters_and_stop_at_the_ends(viewer, cluster):
    factories.make_report(cluster, workloads=120)
    url = reverse("clusters:report", args=[cluster.name])
    first = viewer.get(url, {"q": "wl"}).content.decode()
    assert 'rel="prev"' not in first and 'href="?q=wl&amp;page=3"' in first  # last
    last = viewer.get(url, {"q": "wl", "page": 3}).content.decode()
    assert 'rel="next"' not in last
    assert 'href="?q=wl&amp;page=1"' in last and 'hx-get="?q=wl&amp;page=2"' in last


def pool_queries(client, url) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as ctx:
        body = client.get(url).content.decode()
    return body, sum("nodepoolresult" in q["sql"].lower() for q in ctx.captured_queries)


def test_finished_scan_pools_are_rendered_once_then_cached(viewer, report):
    cache.clear()
    url = reverse("clusters:report", args=[report.cluster.name])
    first, queried = pool_queries(viewer, url)
    assert queried == 1
    second, queried_again = pool_queries(viewer, url)
    assert queried_again == 0
    section = re.compile(r'<section aria-labelledby="pools-h">.*?</section>', re.S)
    assert section.search(second).group(0) == section.search(first).group(0)
    assert "corp.example" in section.search(second).group(0)


def test_active_scan_pools_are_read_every_time(viewer, cluster):
    running = factories.make_scan(cluster, status=Scan.RUNNING)
    factories.make_pool(running, name="live-pool")
    cache.clear()
    url = reverse("clusters:report", args=[cluster.name]) + f"?scan={running.pk}"
    for _ in range(2):
        body, queried = pool_queries(viewer, url)
        assert queried == 1 and "live-pool" in body


def workload_row_queries(client, url: str, **headers) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as ctx:
        body = client.get(url, **headers).content.decode()
    return body, sum('FROM "clusters_workloadresult"' in q["sql"] for q in ctx.captured_queries)


def test_finished_scan_tables_are_rendered_once_per_query_string(viewer, report):
    cache.clear()
    url = reverse("clusters:report", args=[report.cluster.name]) + "?risk=affected&sort=-name"
    first, queried = workload_row_queries(viewer, url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="workloads")
    assert queried >= 1
    second, queried_again = workload_row_queries(
        viewer, url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="workloads"
    )
    assert first == second
    assert queried_again == 0  # neither rows nor their count are read again
    other, _ = workload_row_queries(
        viewer, url.replace("affected", "safe"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="workloads"
    )
    assert other != first


def test_active_scan_tables_are_read_every_time(viewer, cluster):
    running = factories.make_scan(cluster, status=Scan.RUNNING)
    cache.clear()
    url = reverse("clusters:report", args=[cluster.name]) + f"?scan={running.pk}"
    counts = [
        workload_row_queries(viewer, url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="workloads")[1]
        for _ in range(2)
    ]
    assert counts[0] >= 1 and counts[0] == counts[1]
