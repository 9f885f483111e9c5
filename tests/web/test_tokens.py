"""API tokens are read-only API keys: GET/HEAD on /api/ and /metrics only; expiry, last use, revocation.

A request carrying ``Authorization: Bearer dna_…`` anywhere else is refused before any view runs: it cannot
rescan, change or delete a cluster, reach /admin/, or make or revoke a token, even for an admin's token and
even with a logged-in session next to it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clusters.models import ApiToken, Cluster, Scan


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture
def admin_token(users):
    return ApiToken.issue(users["admin"], "ci")[1]


@pytest.fixture
def viewer_token(users):
    return ApiToken.issue(users["viewer"], "grafana")[1]


# --- what a token may not do ------------------------------------------------------------------------


def test_token_cannot_rescan_even_without_csrf_checks(report, admin_token):
    before = Scan.objects.count()
    # Client() skips CSRF checks: the refusal must not depend on CSRF.
    response = Client().post(reverse("clusters:rescan", args=[report.cluster.name]), **bearer(admin_token))
    assert response.status_code == 403
    assert "read-only" in response.json()["error"]
    assert Scan.objects.count() == before


def test_token_next_to_a_session_is_still_refused(client_as, report, admin_token):
    """A logged-in admin's browser session does not lend its rights to a request carrying a token."""
    before = Scan.objects.count()
    response = client_as("admin").post(
        reverse("clusters:rescan", args=[report.cluster.name]), **bearer(admin_token)
    )
    assert response.status_code == 403 and Scan.objects.count() == before


@pytest.mark.parametrize("url_name", ["clusters:settings", "clusters:delete", "clusters:connection_test"])
def test_token_cannot_change_or_delete_a_cluster(report, admin_token, url_name):
    cluster = report.cluster
    stamp = cluster.updated_at
    data = {"confirm_name": cluster.name, "name": cluster.name, "notes": "pwned", "scan_interval_minutes": 1}
    response = Client().post(reverse(url_name, args=[cluster.name]), data, **bearer(admin_token))
    assert response.status_code == 403
    cluster = Cluster.objects.get(pk=cluster.pk)
    assert cluster.updated_at == stamp and cluster.notes != "pwned"


def test_token_cannot_add_a_cluster(db, admin_token):
    response = Client().post(
        reverse("clusters:add"), {"name": "x", "kubeconfig_text": "x"}, **bearer(admin_token)
    )
    assert response.status_code == 403 and not Cluster.objects.exists()


@pytest.mark.parametrize("path", ["/admin/", "/admin/clusters/apitoken/", "/admin/auth/user/"])
def test_token_cannot_reach_the_admin(users, admin_token, path):
    response = Client().get(path, **bearer(admin_token))
    assert response.status_code == 403
    assert b"Django administration" not in response.content


def test_token_cannot_log_in_through_the_admin_or_login_forms(users, admin_token):
    from tests.web.factories import PASSWORD

    for url in ("/admin/login/", reverse("login")):
        client = Client()
        response = client.post(url, {"username": "admin", "password": PASSWORD}, **bearer(admin_token))
        assert response.status_code == 403
        assert "_auth_user_id" not in client.session


def test_token_cannot_create_list_or_revoke_tokens(users, admin_token, viewer_token):
    count = ApiToken.objects.count()
    create = Client().post(
        reverse("clusters:tokens"), {"name": "another", "expires": "never"}, **bearer(admin_token)
    )
    assert create.status_code == 403 and ApiToken.objects.count() == count
    assert Client().get(reverse("clusters:tokens"), **bearer(admin_token)).status_code == 403
    victim = ApiToken.objects.get(name="grafana")
    revoke = Client().post(reverse("clusters:revoke_token", args=[victim.pk]), **bearer(viewer_token))
    assert revoke.status_code == 403
    assert ApiToken.objects.get(pk=victim.pk).revoked_at is None


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
def test_token_is_only_for_get_and_head_on_the_api(report, viewer_token, method):
    response = getattr(Client(), method)(reverse("clusters:api_clusters"), **bearer(viewer_token))
    assert response.status_code == 403


@pytest.mark.parametrize(
    "url_name", ["clusters:fleet", "clusters:report", "clusters:export_json", "clusters:export_bundle"]
)
def test_token_authenticates_nobody_on_dashboard_pages(report, admin_token, url_name):
    args = [] if url_name == "clusters:fleet" else [report.cluster.name]
    response = Client().get(reverse(url_name, args=args), **bearer(admin_token))
    assert response.status_code == 403
    assert report.cluster.name.encode() not in response.content


# --- what a token may do ----------------------------------------------------------------------------


def test_token_reads_the_api_and_metrics(settings, report, viewer_token):
    settings.DNSAUDIT_METRICS_TOKEN = ""
    api = Client()
    clusters = api.get(reverse("clusters:api_clusters"), **bearer(viewer_token))
    assert clusters.status_code == 200
    assert [c["name"] for c in clusters.json()["clusters"]] == [report.cluster.name]
    assert (
        api.get(reverse("clusters:api_scan_workloads", args=[report.pk]), **bearer(viewer_token)).status_code
        == 200
    )
    metrics = api.get(reverse("clusters:metrics"), **bearer(viewer_token))
    assert metrics.status_code == 200 and b"dnsaudit_clusters 1" in metrics.content
    assert api.head(reverse("clusters:metrics"), **bearer(viewer_token)).status_code == 200


def test_bearer_scheme_is_case_insensitive(report, viewer_token):
    response = Client().get(reverse("clusters:api_clusters"), HTTP_AUTHORIZATION=f"bearer {viewer_token}")
    assert response.status_code == 200


def test_last_used_is_recorded_at_most_once_a_minute(report, users, viewer_token):
    stored = ApiToken.objects.get(name="grafana")
    assert stored.last_used_at is None
    Client().get(reverse("clusters:api_clusters"), **bearer(viewer_token))
    first = ApiToken.objects.get(pk=stored.pk).last_used_at
    assert first is not None and timezone.now() - first < timedelta(seconds=30)
    Client().get(reverse("clusters:api_clusters"), **bearer(viewer_token))
    assert ApiToken.objects.get(pk=stored.pk).last_used_at == first
    ApiToken.objects.filter(pk=stored.pk).update(last_used_at=first - timedelta(minutes=5))
    Client().get(reverse("clusters:api_clusters"), **bearer(viewer_token))
    assert ApiToken.objects.get(pk=stored.pk).last_used_at > first - timedelta(seconds=1)


# --- expiry and revocation --------------------------------------------------------------------------


def test_expired_token_is_refused_with_the_reason(report, viewer_token):
    ApiToken.objects.filter(name="grafana").update(expires_at=timezone.now() - timedelta(seconds=1))
    response = Client().get(reverse("clusters:api_clusters"), **bearer(viewer_token))
    assert response.status_code == 401 and "expired" in response.json()["error"]
    assert 'error="invalid_token"' in response["WWW-Authenticate"]
    assert ApiToken.objects.get(name="grafana").last_used_at is None


def test_revoked_token_is_refused_with_the_reason(client_as, report, viewer_token):
    token = ApiToken.objects.get(name="grafana")
    response = client_as("viewer").post(reverse("clusters:revoke_token", args=[token.pk]))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None and token.status == "revoked"
    refused = Client().get(reverse("clusters:api_clusters"), **bearer(viewer_token))
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]
    metrics = Client().get(reverse("clusters:metrics"), **bearer(viewer_token))
    assert metrics.status_code == 401


def test_token_of_a_deactivated_user_is_refused(users, report, viewer_token):
    users["viewer"].is_active = False
    users["viewer"].save()
    assert Client().get(reverse("clusters:api_clusters"), **bearer(viewer_token)).status_code == 401


@pytest.mark.parametrize(("choice", "days"), [("30", 30), ("90", 90), ("365", 365), ("never", None)])
def test_expiry_is_chosen_at_creation(client_as, users, choice, days):
    viewer = client_as("viewer")
    response = viewer.post(reverse("clusters:tokens"), {"name": f"t-{choice}", "expires": choice})
    assert response.status_code == 302
    token = ApiToken.objects.get(name=f"t-{choice}")
    if days is None:
        assert token.expires_at is None
    else:
        assert abs((token.expires_at - timezone.now()) - timedelta(days=days)) < timedelta(minutes=1)
    page = viewer.get(reverse("clusters:tokens")).content.decode()
    expected = "never" if days is None else token.expires_at.strftime("%Y-%m-%d")
    assert expected in page


def test_expiry_defaults_to_90_days_and_refuses_other_values(client_as, users):
    viewer = client_as("viewer")
    viewer.post(reverse("clusters:tokens"), {"name": "default"})
    token = ApiToken.objects.get(name="default")
    assert timedelta(days=89) < token.expires_at - timezone.now() <= timedelta(days=90)
    bad = viewer.post(reverse("clusters:tokens"), {"name": "forever", "expires": "36500"})
    assert bad.status_code == 400 and not ApiToken.objects.filter(name="forever").exists()


def test_token_page_shows_last_use_expiry_and_status(client_as, users, report, viewer_token):
    Client().get(reverse("clusters:api_clusters"), **bearer(viewer_token))
    expired, _ = ApiToken.issue(users["viewer"], "old-ci", 30)
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    revoked, _ = ApiToken.issue(users["viewer"], "gone", None)
    revoked.revoke()
    page = client_as("viewer").get(reverse("clusters:tokens")).content.decode()
    used = ApiToken.objects.get(name="grafana").last_used_at.strftime("%Y-%m-%d %H:%M")
    assert used in page
    assert (
        'class="token-active"' in page and 'class="token-expired"' in page and 'class="token-revoked"' in page
    )
    assert page.count('aria-label="Revoke token') == 2  # the revoked one has no button
    assert 'name="expires"' in page


def test_revoking_twice_keeps_the_first_time(client_as, users, viewer_token):
    token = ApiToken.objects.get(name="grafana")
    viewer = client_as("viewer")
    viewer.post(reverse("clusters:revoke_token", args=[token.pk]))
    first = ApiToken.objects.get(pk=token.pk).revoked_at
    viewer.post(reverse("clusters:revoke_token", args=[token.pk]))
    assert ApiToken.objects.get(pk=token.pk).revoked_at == first


def test_active_limit_counts_only_working_tokens(client_as, users, monkeypatch):
    from clusters.views import account

    monkeypatch.setattr(account, "MAX_TOKENS_PER_USER", 2)
    viewer = client_as("viewer")
    a, _ = ApiToken.issue(users["viewer"], "a")
    ApiToken.issue(users["viewer"], "b")
    refused = viewer.post(reverse("clusters:tokens"), {"name": "c", "expires": "30"})
    assert refused.status_code == 400 and "revoke one first" in refused.content.decode()
    a.revoke()
    assert viewer.post(reverse("clusters:tokens"), {"name": "c", "expires": "30"}).status_code == 302


def test_long_dead_tokens_are_cleared_when_a_new_one_is_made(users):
    dead, _ = ApiToken.issue(users["viewer"], "dead")
    ApiToken.objects.filter(pk=dead.pk).update(revoked_at=timezone.now() - timedelta(days=200))
    recent, _ = ApiToken.issue(users["viewer"], "recent")
    recent.revoke()
    ApiToken.issue(users["viewer"], "new")
    assert set(ApiToken.objects.values_list("name", flat=True)) == {"recent", "new"}


# --- admins -----------------------------------------------------------------------------------------


def test_admin_revokes_any_token_in_the_django_admin(users, viewer_token):
    users["admin"].is_superuser = users["admin"].is_staff = True
    users["admin"].save()
    admin = Client()
    admin.force_login(users["admin"])
    changelist = reverse("admin:clusters_apitoken_changelist")
    page = admin.get(changelist)
    assert page.status_code == 200 and b"grafana" in page.content
    token = ApiToken.objects.get(name="grafana")
    response = admin.post(changelist, {"action": "revoke_tokens", "_selected_action": [token.pk]})
    assert response.status_code == 302
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    assert Client().get(reverse("clusters:api_clusters"), **bearer(viewer_token)).status_code == 401
    # Tokens are made by their users (shown once), never in the admin.
    assert admin.get(reverse("admin:clusters_apitoken_add")).status_code == 403
    detail = admin.get(reverse("admin:clusters_apitoken_change", args=[token.pk])).content.decode()
    assert token.digest not in detail
