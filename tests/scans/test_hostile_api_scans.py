"""Scans against a hostile API server (the test API server's hostile faults): each scan ends by itself,
partial or failed with a reason, within the ``DNSAUDIT_KUBE_*`` limits, and the previous report stays.
"""

from __future__ import annotations

import time

import pytest

from clusters.models import Scan
from clusters.scan import progress as scan_progress
from tests.scans.helpers import assert_last_good, register, rows, run_scan

pytestmark = pytest.mark.django_db

MiB = 1 << 20


@pytest.fixture
def clean(fakekube_fleet, upstream_dns):
    """managed-clean registered, with one good scan: ``(fake cluster, Cluster, good scan)``."""
    fake, spec = fakekube_fleet["managed-clean"]
    cluster = register(fake, spec, upstream_dns(spec))
    good = run_scan(cluster)
    assert good.status == Scan.SUCCEEDED
    fake.faults.log.clear()
    return fake, cluster, good


def test_endless_continue_on_pods_fails_at_the_page_cap(clean, settings):
    fake, cluster, good = clean
    settings.DNSAUDIT_KUBE_MAX_LIST_PAGES = 40
    fake.faults.endless_continue(r"^/api/v1/pods\?")
    started = time.monotonic()
    bad = run_scan(cluster)
    assert bad.status == Scan.FAILED
    assert "listing pods failed" in bad.error and "more than 40 pages" in bad.error
    assert "DNSAUDIT_KUBE_MAX_LIST_PAGES" in bad.error
    assert len([t for _m, t, _u, _s in fake.faults.log if t.startswith("/api/v1/pods?")]) == 40  # no retry
    assert time.monotonic() - started < 60
    assert_last_good(cluster, good)


def test_a_continue_loop_on_nodes_fails_with_the_reason(clean):
    fake, cluster, good = clean
    fake.faults.page_cap = 1
    fake.faults.endless_continue(r"^/api/v1/nodes\?", same_token=True)
    bad = run_scan(cluster)
    assert bad.status == Scan.FAILED
    assert "refuses" in bad.error and "same continue token twice" in bad.error
    assert_last_good(cluster, good)


def test_a_300_mb_body_fails_the_scan_at_the_cap(clean):
    fake, cluster, good = clean
    fake.faults.huge_body(r"^/apis/apps/v1/deployments\?", size=300 * MiB)
    started = time.monotonic()
    bad = run_scan(cluster)
    assert bad.status == Scan.FAILED
    assert "listing deployments failed" in bad.error and "more than 32 MiB" in bad.error
    assert time.monotonic() - started < 60
    assert_last_good(cluster, good)


def test_a_gzip_bomb_for_the_coredns_configmap_gives_a_partial_scan(clean, settings):
    fake, cluster, good = clean
    settings.DNSAUDIT_KUBE_MAX_RESPONSE_BYTES = 4 * MiB
    fake.faults.huge_body(r"/configmaps/coredns$", size=300 * MiB, gzip=True)
    scan = run_scan(cluster)
    assert scan.status == Scan.PARTIAL
    problem = next(p for p in scan.problems if p["fact"] == "CoreDNS configuration")
    assert "more than 4 MiB" in problem["error"]
    assert sorted(rows(scan)) == sorted(rows(good))


def test_gzip_encoded_answers_are_read_as_the_same_cluster(clean):
    fake, cluster, good = clean
    fake.faults.gzip(r"^/api")
    scan = run_scan(cluster)
    assert scan.status == Scan.SUCCEEDED
    assert {k: w.risk for k, w in rows(scan).items()} == {k: w.risk for k, w in rows(good).items()}
    assert any(t.startswith("/api/v1/pods?") for _m, t, _u, _s in fake.faults.log)


def test_a_trickling_discovery_answer_gives_a_partial_scan_in_bounded_time(clean, settings):
    fake, cluster, good = clean
    settings.DNSAUDIT_KUBE_RESPONSE_TIME_LIMIT = 1
    fake.faults.trickle(r"^/apis/?$", seconds=0.2)
    started = time.monotonic()
    scan = run_scan(cluster)
    assert scan.status == Scan.PARTIAL
    problem = next(p for p in scan.problems if p["fact"] == "kyverno")
    assert "more than 1 s" in problem["error"]
    assert time.monotonic() - started < 30  # three attempts of at most ~1 s each, plus the scan


def test_the_deadline_is_checked_on_every_page_of_the_nodes(clean, settings, monkeypatch):
    """The soft time limit stops the scan inside the nodes list, one page after it passes."""
    fake, cluster, good = clean
    fake.faults.page_cap = 1
    fake.faults.delay(r"^/api/v1/nodes\?", 0.4, times=None)
    settings.DNSAUDIT_SCAN_SOFT_TIME_LIMIT = 1
    bad = run_scan(cluster)
    assert bad.status == Scan.FAILED and "time limit" in bad.error
    assert not [t for _m, t, _u, _s in fake.faults.log if t.startswith("/api/v1/pods?")]  # stopped in nodes
    node_pages = [t for _m, t, _u, _s in fake.faults.log if t.startswith("/api/v1/nodes?")]
    assert 1 <= len(node_pages) <= 4
    assert_last_good(cluster, good)


def test_the_scan_reads_its_limits_from_the_settings(settings):
    settings.DNSAUDIT_KUBE_MAX_RESPONSE_BYTES = 1234
    settings.DNSAUDIT_KUBE_RESPONSE_TIME_LIMIT = 7
    settings.DNSAUDIT_KUBE_MAX_LIST_PAGES = 9
    settings.DNSAUDIT_KUBE_MAX_LIST_ITEMS = 99
    got = scan_progress.kube_limits()
    assert (got.max_response_bytes, got.response_seconds, got.max_list_pages, got.max_list_items) == (
        1234,
        7.0,
        9,
        99,
    )
