"""Delivery through apprise to real servers on loopback: a JSON webhook, an SMTP server, a closed port.

The news itself is computed from rows the scanner stores (tests/web/factories.py); the end-to-end path
through a real scan is in test_scans.py.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from clusters import notify
from clusters.models import NotificationDelivery, Scan
from tests.web import factories

pytestmark = pytest.mark.django_db


def finished(cluster, *, age: float, status: str = Scan.SUCCEEDED, workloads=(), **fields) -> Scan:
    """A finished scan ``age`` minutes old with ``workloads`` = [(namespace, name, risk)] and counts."""
    scan = factories.make_scan(cluster, status, age_minutes=age, **fields)
    counts = {"affected": 0, "at-risk": 0, "safe": 0, "unknown": 0}
    for ns, name, risk in workloads:
        factories.make_workload(scan, ns, "Deployment", name, risk=risk)
        counts[risk] += 1
    Scan.objects.filter(pk=scan.pk).update(
        workloads_total=len(workloads),
        affected=counts["affected"],
        at_risk=counts["at-risk"],
        safe=counts["safe"],
        unknown=counts["unknown"],
    )
    return Scan.objects.get(pk=scan.pk)


@pytest.fixture
def cluster(db):
    return factories.make_cluster("prod-eu")


def test_new_findings_reach_the_webhook_with_cluster_counts_first_five_and_link(cluster, webhook, settings):
    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    wl = [("shop", f"app-{i}", "affected") for i in range(4)] + [
        ("pay", f"api-{i}", "at-risk") for i in range(3)
    ]
    scan = finished(cluster, age=1, workloads=[*wl, ("shop", "glibc-app", "safe")])
    rows = notify.notify_scan(scan.pk)
    assert [(r.event, r.status, r.targets) for r in rows] == [("new-findings", "sent", 1)]
    assert len(webhook.posts) == 1
    post = webhook.posts[0]
    assert webhook.paths == ["/hooks/dnsaudit"]
    assert "prod-eu" in post["title"] and "7 workloads" in post["title"]
    body = post["message"]
    assert "Cluster prod-eu" in body and f"scan {scan.pk}" in body
    assert "4 affected, 3 at-risk" in body  # of the new ones
    assert "4 affected, 3 at-risk, 1 safe, 0 unknown (8 workloads)" in body  # the scan's counts
    listed = [line for line in body.splitlines() if line.startswith("- ")]
    assert listed == [f"- shop/Deployment/app-{i} (affected)" for i in range(4)] + [
        "- pay/Deployment/api-0 (at-risk)"
    ]
    assert "… and 2 more." in body
    assert "glibc-app" not in body
    link = "https://dnsaudit.example.test" + reverse("clusters:report", args=["prod-eu"])
    assert f"Report: {link}" in body


def test_without_base_url_the_message_says_there_is_no_link(cluster, webhook, settings):
    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    settings.DNSAUDIT_BASE_URL = ""
    scan = finished(cluster, age=1, workloads=[("shop", "cart", "affected")])
    notify.notify_scan(scan.pk)
    body = webhook.posts[0]["message"]
    assert "DNSAUDIT_BASE_URL is not set" in body
    assert "http://" not in body and "https://" not in body


def test_the_same_findings_again_send_nothing_and_a_new_one_sends_exactly_one(cluster, webhook, settings):
    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    same = [("shop", "cart", "affected"), ("shop", "web", "at-risk")]
    first = finished(cluster, age=30, workloads=same)
    notify.notify_scan(first.pk)
    assert len(webhook.posts) == 1
    second = finished(cluster, age=20, workloads=same)
    assert notify.notify_scan(second.pk) == []
    assert len(webhook.posts) == 1  # nothing re-sent while nothing changes
    third = finished(cluster, age=10, workloads=[*same, ("pay", "api", "affected")])
    rows = notify.notify_scan(third.pk)
    assert [r.event for r in rows] == ["new-findings"]
    assert len(webhook.posts) == 2
    body = webhook.posts[1]["message"]
    assert "1 workload newly affected or at-risk since the previous scan" in body
    assert "- pay/Deployment/api (affected)" in body and "shop/Deployment/cart" not in body
    # The same scan is never told twice.
    assert notify.notify_scan(third.pk) == []
    assert len(webhook.posts) == 2


def test_a_workload_going_from_safe_to_at_risk_is_news(cluster, webhook, settings):
    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    finished(cluster, age=20, workloads=[("shop", "cart", "safe")])
    scan = finished(cluster, age=10, workloads=[("shop", "cart", "at-risk")])
    notify.notify_scan(scan.pk)
    assert "- shop/Deployment/cart (at-risk)" in webhook.posts[0]["message"]


def test_exempted_workloads_are_left_out_until_their_exemption_expires(cluster, webhook, settings):
    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    scan = finished(
        cluster,
        age=1,
        workloads=[
            ("shop", "forever", "affected"),
            ("shop", "until-next-week", "affected"),
            ("shop", "expired", "affected"),
            ("shop", "plain", "at-risk"),
        ],
    )
    today = timezone.localdate()
    exemption = {"reason": "legacy", "source": "dnsaudit", "by": "alice", "expires": None, "id": 1}
    scan.workloads.filter(name="forever").update(exemption=exemption)
    scan.workloads.filter(name="until-next-week").update(
        exemption=exemption, exempt_until=today + timedelta(days=7)
    )
    scan.workloads.filter(name="expired").update(exemption=exemption, exempt_until=today - timedelta(days=1))
    notify.notify_scan(scan.pk)
    body = webhook.posts[0]["message"]
    assert "shop/Deployment/plain" in body and "shop/Deployment/expired" in body
    assert "forever" not in body and "until-next-week" not in body
    assert "2 workloads newly" in webhook.posts[0]["title"]


def test_only_exempted_news_sends_nothing(cluster, webhook, settings):
    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    scan = finished(cluster, age=1, workloads=[("shop", "legacy", "affected")])
    scan.workloads.update(
        exemption={"reason": "known", "source": "annotation", "by": "", "expires": None, "id": None}
    )
    assert notify.notify_scan(scan.pk) == []
    assert webhook.posts == []


def test_a_failed_scan_is_told_once_while_it_fails_the_same_way(cluster, webhook, settings):
    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    finished(cluster, age=40, workloads=[("shop", "cart", "safe")])
    notify.notify_scan(Scan.objects.get(cluster=cluster).pk)  # nothing flagged: nothing sent
    assert webhook.posts == []
    down = "the API server could not be reached at https://prod-eu.k8s.example:6443: connection refused."
    bad = finished(cluster, age=30, status=Scan.FAILED, error=down)
    rows = notify.notify_scan(bad.pk)
    assert [(r.event, r.status) for r in rows] == [("scan-failed", "sent")]
    post = webhook.posts[0]
    assert "prod-eu" in post["title"] and "failed" in post["title"]
    assert f"scan {bad.pk} failed" in post["message"] and "connection refused" in post["message"]
    # Failing again the same way (another port, another time): already told.
    again = finished(cluster, age=20, status=Scan.FAILED, error=down.replace("6443", "16443"))
    assert notify.notify_scan(again.pk) == []
    assert len(webhook.posts) == 1
    # Another reason is news.
    other = finished(
        cluster, age=10, status=Scan.FAILED, error="the API server rejected the stored credentials (401)"
    )
    assert [r.event for r in notify.notify_scan(other.pk)] == ["scan-failed"]
    assert len(webhook.posts) == 2


def test_failing_again_after_a_good_scan_is_news(cluster, webhook, settings):
    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    down = "the API server could not be reached: timed out"
    notify.notify_scan(finished(cluster, age=30, status=Scan.FAILED, error=down).pk)
    finished(cluster, age=20)
    notify.notify_scan(finished(cluster, age=10, status=Scan.FAILED, error=down).pk)
    assert len(webhook.posts) == 2


def test_a_partial_scan_is_told_for_a_new_reason_only(cluster, webhook, settings):
    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    configz = {
        "fact": "kubelet config of pool general",
        "error": "403 Forbidden: nodes/node-a/proxy",
        "impact": "assumed clusterDNS 10.96.0.10",
    }
    first = finished(cluster, age=30, status=Scan.PARTIAL, problems=[configz])
    rows = notify.notify_scan(first.pk)
    assert [r.event for r in rows] == ["scan-partial"]
    post = webhook.posts[0]
    assert "partial" in post["title"] and "prod-eu" in post["title"]
    assert "kubelet config of pool general: 403 Forbidden" in post["message"]
    assert "assumed clusterDNS 10.96.0.10" in post["message"]
    # The same fact and error class (another node in the text): not news.
    same = dict(configz, error="403 Forbidden: nodes/node-b/proxy")
    assert notify.notify_scan(finished(cluster, age=20, status=Scan.PARTIAL, problems=[same]).pk) == []
    assert len(webhook.posts) == 1
    # A new reason: told, naming only it.
    probes = {
        "fact": "DNS probes",
        "error": "10.0.0.53:53 timed out",
        "impact": "at-risk rather than affected",
    }
    third = finished(cluster, age=10, status=Scan.PARTIAL, problems=[same, probes])
    assert [r.event for r in notify.notify_scan(third.pk)] == ["scan-partial"]
    body = webhook.posts[1]["message"]
    assert "DNS probes" in body and "kubelet config" not in body


def test_the_email_arrives_at_a_local_smtp_server(cluster, smtp, settings):
    settings.DNSAUDIT_NOTIFY_URLS = [
        f"mailto://127.0.0.1:{smtp.port}?from=dnsaudit@example.test&to=platform@example.test&mode=insecure"
    ]
    scan = finished(cluster, age=1, workloads=[("shop", "cart", "affected")])
    rows = notify.notify_scan(scan.pk)
    assert [(r.event, r.status) for r in rows] == [("new-findings", "sent")], rows[0].error
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert smtp.envelopes[0][1] == ["platform@example.test"]
    assert "prod-eu" in mail["Subject"] and "newly affected" in mail["Subject"]
    text = mail.get_body(preferencelist=("plain", "html")).get_content()
    assert "shop/Deployment/cart (affected)" in text


def test_the_clusters_own_urls_replace_the_global_ones(cluster, webhook, smtp, settings):
    other = type(webhook)()
    try:
        settings.DNSAUDIT_NOTIFY_URLS = [other.url()]
        assert notify.store_cluster_urls(cluster, f"{webhook.url('/a')},\n{webhook.url('/b')}") == 2
        cluster.save()
        assert "hooks" not in cluster.notify_urls_encrypted  # stored encrypted
        assert notify.cluster_url_count(cluster) == 2
        scan = finished(cluster, age=1, workloads=[("shop", "cart", "affected")])
        rows = notify.notify_scan(scan.pk)
        assert rows[0].targets == 2 and rows[0].status == "sent"
        assert sorted(webhook.paths) == ["/a", "/b"] and other.posts == []
    finally:
        other.stop()


def test_a_dead_target_gives_a_failed_row_without_the_url_and_the_cluster_page_shows_it(
    cluster, dead_url, webhook, settings, client, caplog
):
    from tests.web.factories import make_user

    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url(), dead_url]
    scan = finished(cluster, age=1, workloads=[("shop", "cart", "affected")])
    started = time.monotonic()
    rows = notify.notify_scan(scan.pk)
    assert time.monotonic() - started < settings.DNSAUDIT_NOTIFY_TIMEOUT + 2
    row = rows[0]
    assert (row.event, row.status, row.targets) == ("new-findings", "failed", 2)
    assert len(webhook.posts) == 1  # the live target still got it
    assert row.error.startswith("target 2 (JSON):"), row.error
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("clusters"))
    for secret in ("S3cretPassw0rd", "T0KENPATH0123", "hookuser", dead_url):
        assert secret not in row.error
        assert secret not in ours
    assert "notification new-findings" in ours and "target 2 (JSON)" in ours
    assert Scan.objects.get(pk=scan.pk).status == Scan.SUCCEEDED

    client.force_login(make_user("viewer"))
    page = client.get(reverse("clusters:report", args=[cluster.name])).content.decode()
    assert 'id="notify-failures"' in page
    assert "new-findings" in page and "target 2 (JSON)" in page
    for secret in ("S3cretPassw0rd", "T0KENPATH0123", "hookuser"):
        assert secret not in page

    # A later successful delivery of that kind clears the notice.
    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    later = finished(cluster, age=0.5, workloads=[("shop", "cart", "affected"), ("pay", "api", "at-risk")])
    assert notify.notify_scan(later.pk)[0].status == "sent"
    page = client.get(reverse("clusters:report", args=[cluster.name])).content.decode()
    assert 'id="notify-failures"' not in page


def test_a_500_answer_is_a_failed_delivery(cluster, failing_webhook, settings):
    settings.DNSAUDIT_NOTIFY_URLS = [failing_webhook.url()]
    scan = finished(cluster, age=1, workloads=[("shop", "cart", "affected")])
    row = notify.notify_scan(scan.pk)[0]
    assert row.status == NotificationDelivery.FAILED and len(failing_webhook.posts) == 1
    assert "500" in row.error and "hooks" not in row.error


def test_a_target_that_never_answers_is_cut_at_the_timeout(cluster, settings):
    import socket

    settings.DNSAUDIT_NOTIFY_TIMEOUT = 1
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)  # accepts connections, never answers
    try:
        settings.DNSAUDIT_NOTIFY_URLS = [f"json://127.0.0.1:{listener.getsockname()[1]}/silent"]
        scan = finished(cluster, age=1, workloads=[("shop", "cart", "affected")])
        started = time.monotonic()
        row = notify.notify_scan(scan.pk)[0]
        assert time.monotonic() - started < 4
        assert row.status == "failed"
    finally:
        listener.close()


def test_no_urls_no_rows(cluster):
    scan = finished(cluster, age=1, workloads=[("shop", "cart", "affected")])
    assert notify.notify_scan(scan.pk) == []
    assert not NotificationDelivery.objects.exists()


def test_urls_that_cannot_be_decrypted_are_a_failed_delivery_not_a_fallback(cluster, webhook, settings):
    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    cluster.notify_urls_encrypted = "gAAAAA-not-a-token-of-these-keys"
    cluster.save()
    scan = finished(cluster, age=1, workloads=[("shop", "cart", "affected")])
    row = notify.notify_scan(scan.pk)[0]
    assert row.status == "failed" and "cannot be decrypted" in row.error
    assert webhook.posts == []  # the cluster's own targets replace the global ones, even unreadable


def test_a_scan_the_reaper_fails_is_told_too(cluster, webhook, settings, django_capture_on_commit_callbacks):
    """A worker killed mid-scan never reaches the lifecycle's own failure path: the reaper fails the scan,
    and that failure is news like any other."""
    from clusters.scan import reap_dead_scans

    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    stuck = factories.make_scan(cluster, Scan.RUNNING, age_minutes=30)
    Scan.objects.filter(pk=stuck.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert reap_dead_scans() == 1
    assert [r.event for r in NotificationDelivery.objects.filter(scan_id=stuck.pk)] == ["scan-failed"]
    assert len(webhook.posts) == 1 and "stopped reporting" in webhook.posts[0]["message"]
    # Reaping again finds nothing and sends nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert reap_dead_scans() == 0
    assert len(webhook.posts) == 1


def test_two_processes_finishing_the_same_scan_send_one_message(cluster, webhook, settings, monkeypatch):
    """A worker and the reaper (or two workers) may both finish the same scan and both pass the "already
    sent?" check before either has written its row: the (scan, event) claim lets only one send."""
    settings.DNSAUDIT_NOTIFY_URLS = [webhook.url()]
    scan = finished(cluster, age=1, workloads=[("shop", "cart", "affected")])
    monkeypatch.setattr(notify, "_already_sent", lambda scan, kind: False)  # both past the check
    first = notify.notify_scan(scan.pk)
    second = notify.notify_scan(scan.pk)
    assert [(r.event, r.status) for r in first] == [("new-findings", "sent")]
    assert second == []
    assert len(webhook.posts) == 1
    assert NotificationDelivery.objects.filter(scan=scan).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_rescan_request_does_not_wait_for_the_reaped_scans_notifications(settings, postgres_database):
    """Requesting a scan reaps dead ones first; their news goes out from a thread, so the request (the
    Rescan button) answers before a slow target has answered. (PostgreSQL: the test database of SQLite is
    an in-memory one whose table locks fail a second thread's write at once instead of waiting.)"""
    import socket
    import threading

    from clusters.scan import request_scan

    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        settings.DNSAUDIT_NOTIFY_URLS = [f"json://127.0.0.1:{silent.getsockname()[1]}/hook"]
        settings.DNSAUDIT_NOTIFY_TIMEOUT = 15
        cluster = factories.make_cluster("slow-target")
        stuck = factories.make_scan(cluster, Scan.RUNNING, age_minutes=30)
        Scan.objects.filter(pk=stuck.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
        started = time.monotonic()
        request_scan(cluster, trigger="manual", dispatch_now=False)
        assert time.monotonic() - started < 8  # the delivery (15 s to the silent target) was not waited for
        assert Scan.objects.get(pk=stuck.pk).status == Scan.FAILED
        for thread in [t for t in threading.enumerate() if t.name == "notify-reaped"]:
            thread.join(30)
        row = NotificationDelivery.objects.get(scan_id=stuck.pk)
        assert row.event == "scan-failed" and row.status == NotificationDelivery.FAILED
    finally:
        silent.close()
