"""Notifications from real scans: the project's HTTPS test API server (the demo fleet's edge-k3s), a
scripted upstream DNS, the scan lifecycle, and a JSON webhook on loopback.

The message goes out once the scan's transaction commits (``transaction.on_commit``): under the test
database's wrapping transaction the callbacks are captured and run with
``django_capture_on_commit_callbacks(execute=True)``, as the commit would run them.
"""

from __future__ import annotations

import pytest

from clusters.models import NotificationDelivery, Scan
from tests.scans.conftest import _scan_environment, upstream_dns  # noqa: F401 - fixtures
from tests.scans.helpers import register, run_scan

pytestmark = pytest.mark.django_db

AFFECTED = ("sensors/Deployment/sensor-gateway", "sensors/DaemonSet/mqtt-bridge")


@pytest.fixture
def edge(fakekube_fleet, upstream_dns, settings):  # noqa: F811 - the fixture imported above
    fake, spec = fakekube_fleet["edge-k3s"]
    cluster = register(fake, spec, upstream_dns(spec))
    return fake, spec, cluster


def scan_and_commit(cluster, capture) -> Scan:
    with capture(execute=True) as callbacks:
        scan = run_scan(cluster)
    assert callbacks, "the notification is sent from an on_commit callback"
    return scan


def test_a_scan_tells_its_new_findings_once_and_an_identical_rescan_tells_nothing(
    edge, webhook, settings, django_capture_on_commit_callbacks
):
    _fake, _spec, cluster = edge
    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        scan = run_scan(cluster)
    assert scan.status == Scan.SUCCEEDED
    assert webhook.posts == [] and len(callbacks) == 1  # nothing is sent before the commit
    callbacks[0]()  # the commit
    assert len(webhook.posts) == 1
    body = webhook.posts[0]["message"]
    for key in AFFECTED:
        assert f"- {key} (affected)" in body
    assert f"Cluster edge-k3s, scan {scan.pk}" in body and "in the first scan" in body
    assert f"{scan.affected} affected, {scan.at_risk} at-risk, {scan.safe} safe" in body
    row = NotificationDelivery.objects.get(scan=scan)
    assert (row.event, row.status, row.targets) == ("new-findings", "sent", 1)

    again = scan_and_commit(cluster, django_capture_on_commit_callbacks)
    assert again.status == Scan.SUCCEEDED
    assert len(webhook.posts) == 1  # nothing re-sent while nothing changes
    assert not NotificationDelivery.objects.filter(scan=again).exists()


def test_a_failed_scan_is_told_once_while_the_cluster_stays_down(
    edge, webhook, settings, django_capture_on_commit_callbacks
):
    fake, _spec, cluster = edge
    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    scan_and_commit(cluster, django_capture_on_commit_callbacks)
    assert len(webhook.posts) == 1
    fake.faults.down = True
    bad = scan_and_commit(cluster, django_capture_on_commit_callbacks)
    assert bad.status == Scan.FAILED
    assert len(webhook.posts) == 2
    post = webhook.posts[1]
    assert post["title"] == "dnsaudit: the scan of edge-k3s failed"
    assert "could not be reached" in post["message"]
    worse = scan_and_commit(cluster, django_capture_on_commit_callbacks)
    assert worse.status == Scan.FAILED
    assert len(webhook.posts) == 2


def test_a_partial_scan_tells_its_new_reason(edge, webhook, settings, django_capture_on_commit_callbacks):
    fake, spec, cluster = edge
    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    scan_and_commit(cluster, django_capture_on_commit_callbacks)
    for n in spec.pools[0].nodes:
        fake.set_kubelet(n, None, status=403)
    partial = scan_and_commit(cluster, django_capture_on_commit_callbacks)
    assert partial.status == Scan.PARTIAL
    kinds = list(NotificationDelivery.objects.filter(scan=partial).values_list("event", flat=True))
    assert kinds == ["scan-partial"], kinds
    post = webhook.posts[-1]
    assert "partial" in post["title"] and "kubelet config of pool" in post["message"]
    assert len(webhook.posts) == 2
    # Partial again for the same reason: nothing.
    scan_and_commit(cluster, django_capture_on_commit_callbacks)
    assert len(webhook.posts) == 2


def test_a_dead_target_never_fails_the_scan(edge, dead_url, settings, django_capture_on_commit_callbacks):
    _fake, _spec, cluster = edge
    settings.DNSAUDIT_NOTIFY_URLS = [dead_url]
    scan = scan_and_commit(cluster, django_capture_on_commit_callbacks)
    assert Scan.objects.get(pk=scan.pk).status == Scan.SUCCEEDED
    row = NotificationDelivery.objects.get(scan=scan)
    assert row.status == "failed" and "S3cretPassw0rd" not in row.error and "T0KENPATH0123" not in row.error
