"""The per-cluster notification URLs on the cluster settings page: checked with apprise, stored
encrypted, never shown again (the page says "set (N URLs)"), replaced or cleared; the audit log says
that they changed, never what they are."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from clusters import notify
from clusters.models import AuditEvent, Cluster
from tests.web import factories

pytestmark = pytest.mark.django_db

SECRET_HOOK = "json://bot:Pa55word-xyz@127.0.0.1:9/hooks/SeCrEtToKeN42"
SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"


def form_data(**overrides) -> dict:
    data = {
        "scan_interval_minutes": 0,
        "cluster_domain": "cluster.local",
        "node_resolv_conf": "",
        "notes": "",
        "probe_nameservers_text": "",
        "probe_names_text": "example.com",
        "cluster_dns_text": "",
        "notify_urls": "",
    }
    data.update(overrides)
    return data


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(factories.make_user("admin", username="root-admin"))
    return client


@pytest.fixture
def cluster(db) -> Cluster:
    return factories.make_cluster("prod-eu")


def page(client, cluster) -> str:
    return client.get(reverse("clusters:settings", args=[cluster.name])).content.decode()


def test_urls_are_stored_encrypted_and_never_shown_again(admin_client, cluster, settings):
    settings.DNSAUDIT_NOTIFY_URLS = ["json://127.0.0.1:9/global"]
    assert "not set: DNSAUDIT_NOTIFY_URLS (1 URL) applies" in page(admin_client, cluster)
    url = reverse("clusters:settings", args=[cluster.name])
    response = admin_client.post(url, form_data(notify_urls=f"{SECRET_HOOK}\n{SLACK}"))
    assert response.status_code == 302
    stored = Cluster.objects.get(pk=cluster.pk)
    assert "SeCrEtToKeN42" not in stored.notify_urls_encrypted and stored.notify_urls_encrypted
    assert notify.cluster_urls(stored) == [SECRET_HOOK, SLACK]
    html = page(admin_client, stored)
    assert "Now: set (2 URLs)" in html
    for secret in ("Pa55word-xyz", "SeCrEtToKeN42", "TIiajkdnlazkcOXrIdevi7FQ", "127.0.0.1:9"):
        assert secret not in html
    events = AuditEvent.objects.filter(action="notify.settings")
    assert [(e.target, e.detail.get("change")) for e in events] == [("prod-eu", "set")]
    assert "SeCrEtToKeN42" not in str(list(AuditEvent.objects.values()))


def test_an_empty_field_keeps_the_stored_urls_and_clear_removes_them(admin_client, cluster):
    notify.store_cluster_urls(cluster, SLACK)
    cluster.save()
    url = reverse("clusters:settings", args=[cluster.name])
    assert admin_client.post(url, form_data(notes="kept")).status_code == 302
    assert notify.cluster_urls(Cluster.objects.get(pk=cluster.pk)) == [SLACK]
    assert admin_client.post(url, form_data(notify_urls_clear="on")).status_code == 302
    assert Cluster.objects.get(pk=cluster.pk).notify_urls_encrypted == ""
    assert [e.detail.get("change") for e in AuditEvent.objects.filter(action="notify.settings")] == [
        "cleared"
    ]


def test_an_unusable_url_is_refused_without_echoing_it(admin_client, cluster):
    url = reverse("clusters:settings", args=[cluster.name])
    bad = "nosuchservice://user:Hunter2-secret@hooks.example/AbCdEfToKeN"
    response = admin_client.post(url, form_data(notify_urls=f"{SLACK},{bad}"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "notification URL 2 of 2 (nosuchservice://…) is not one apprise can use" in html
    for secret in ("Hunter2-secret", "AbCdEfToKeN", "hooks.example", "TIiajkdnlazkcOXrIdevi7FQ"):
        assert secret not in html
    assert Cluster.objects.get(pk=cluster.pk).notify_urls_encrypted == ""


def test_replace_and_clear_together_is_refused(admin_client, cluster):
    url = reverse("clusters:settings", args=[cluster.name])
    response = admin_client.post(url, form_data(notify_urls=SLACK, notify_urls_clear="on"))
    assert response.status_code == 400
    assert "either replace the notification URLs or clear them" in response.content.decode()
