"""The audit log pages: ``/audit/`` for admins (filters, pagination, escaping, nav link) and the read-only
Django admin changelist with its filters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from clusters.models import AuditEvent
from clusters.views.auditlog import PAGE_SIZE


def _at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


@pytest.fixture
def admin(client_as):
    """An admin's client; its login event is cleared so the tests see only ``log``'s events."""
    client = client_as("admin")
    AuditEvent.objects.all().delete()
    return client


@pytest.fixture
def log(db):
    rows = [
        ("2026-11-01", "alice", "web", "cluster.add", "prod", True),
        ("2026-11-05", "bob", "cli", "cluster.remove", "old", True),
        ("2026-11-10", "alice", "web", "export.json", "prod", True),
        ("2026-11-10", "alice", "web", "export.csv", "prod", True),
        ("2026-11-20", "mallory", "web", "auth.login_failed", "", False),
        ("2026-11-30", "carol", "api", "token.create", "<script>x</script>", True),
    ]
    for day, actor, via, action, target, success in rows:
        AuditEvent.objects.create(
            at=_at(day),
            actor=actor,
            via=via,
            action=action,
            target=target,
            success=success,
            address="10.0.0.1",
        )
    AuditEvent.objects.filter(action="token.create").update(detail={"token_prefix": "dna_abcdefgh"})


def _actions(client, **params) -> list[str]:
    """The action column of the page, in page order (newest first)."""
    body = client.get(reverse("clusters:audit"), params).content.decode()
    return re.findall(r'<td class="mono">([a-z_]+\.[a-z_]+)</td>', body)


def test_only_admins_see_the_audit_log(client_as, log):
    url = reverse("clusters:audit")
    for role in ("viewer", "operator", "norole"):
        assert client_as(role).get(url).status_code == 403
    assert client_as(None).get(url).status_code == 302  # to the login page
    assert client_as("admin").get(url).status_code == 200


def test_the_nav_links_the_audit_log_for_admins_only(client_as, log):
    link = f'href="{reverse("clusters:audit")}"'
    assert link in client_as("admin").get("/").content.decode()
    assert link not in client_as("operator").get("/").content.decode()


def test_filters_by_action_family_actor_result_via_and_dates(admin, log):
    assert _actions(admin) == [
        "token.create",
        "auth.login_failed",
        "export.csv",
        "export.json",
        "cluster.remove",
        "cluster.add",
    ]
    assert _actions(admin, action="export") == ["export.csv", "export.json"]
    assert _actions(admin, action="export.csv") == ["export.csv"]
    assert _actions(admin, actor="ALICE") == ["export.csv", "export.json", "cluster.add"]
    assert _actions(admin, success="no") == ["auth.login_failed"]
    assert _actions(admin, success="yes", via="api") == ["token.create"]
    assert _actions(admin, via="cli") == ["cluster.remove"]
    assert _actions(admin, since="2026-11-05", until="2026-11-10") == [
        "export.csv",
        "export.json",
        "cluster.remove",
    ]
    assert _actions(admin, since="2026-11-21") == ["token.create"]
    assert _actions(admin, until="2026-11-01") == ["cluster.add"]
    assert _actions(admin, actor="alice", action="cluster") == ["cluster.add"]
    assert _actions(admin, actor="nobody") == []


def test_newest_first_and_counts(admin, log):
    body = admin.get(reverse("clusters:audit")).content.decode()
    assert body.index("token.create</td>") < body.index("cluster.add</td>")
    assert "6 events" in body
    assert (
        "2 events match the filters"
        in admin.get(reverse("clusters:audit"), {"action": "export"}).content.decode()
    )


def test_a_bad_date_is_said_and_ignored(admin, log):
    body = admin.get(reverse("clusters:audit"), {"since": "yesterday"}).content.decode()
    assert "is not a date (YYYY-MM-DD); ignored" in body and "6 events" in body


def test_targets_and_details_are_escaped(client_as, log):
    body = client_as("admin").get(reverse("clusters:audit")).content.decode()
    assert "<script>x</script>" not in body and "&lt;script&gt;x&lt;/script&gt;" in body
    assert "token_prefix=&quot;dna_abcdefgh&quot;" in body


def test_pagination_keeps_the_filters(client_as, db):
    for i in range(PAGE_SIZE + 5):
        AuditEvent.objects.create(
            action="export.json", actor="alice", target=f"c{i}", at=_at("2026-11-01") + timedelta(minutes=i)
        )
    AuditEvent.objects.create(action="cluster.add", actor="alice", target="other")
    admin = client_as("admin")
    first = admin.get(reverse("clusters:audit"), {"action": "export"}).content.decode()
    assert "page 1 of 2" in first and "?action=export&amp;page=2" in first
    second = admin.get(reverse("clusters:audit"), {"action": "export", "page": 2}).content.decode()
    assert second.count('<td class="mono">export.json</td>') == 5 and "cluster.add</td>" not in second


# --- the Django admin ------------------------------------------------------------------------------------


def _admin_actions(body: str) -> list[str]:
    return sorted(re.findall(r'<td class="field-action">([^<]+)</td>', body))


@pytest.fixture
def superuser(client_as, users):
    users["admin"].is_superuser = users["admin"].is_staff = True
    users["admin"].save()
    return client_as("admin")


def test_the_admin_changelist_filters_and_is_read_only(superuser, log):
    url = "/admin/clusters/auditevent/"
    body = superuser.get(url).content.decode()
    assert "cluster.remove" in body and "By action" in body and "By via" in body and "By success" in body
    failed = superuser.get(url, {"success__exact": "0"}).content.decode()
    assert "mallory" in failed and "bob" not in failed
    by_via = superuser.get(url, {"via": "cli"}).content.decode()
    assert "bob" in by_via and "mallory" not in by_via
    by_day = superuser.get(url, {"at__year": "2026", "at__month": "11", "at__day": "10"}).content.decode()
    assert _admin_actions(by_day) == ["export.csv", "export.json"]
    assert _admin_actions(superuser.get(url, {"action": "cluster.add"}).content.decode()) == ["cluster.add"]
    searched = superuser.get(url, {"q": "carol"}).content.decode()
    assert "carol" in searched and "alice" not in searched
    # Read-only: no add, no change, no delete.
    assert "/admin/clusters/auditevent/add/" not in body
    event = AuditEvent.objects.get(action="cluster.add")
    assert superuser.get("/admin/clusters/auditevent/add/").status_code == 403
    change = superuser.post(f"/admin/clusters/auditevent/{event.pk}/change/", {"actor": "someone-else"})
    assert change.status_code == 403 or AuditEvent.objects.get(pk=event.pk).actor == "alice"
    assert AuditEvent.objects.get(pk=event.pk).actor == "alice"
    assert (
        superuser.post(f"/admin/clusters/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert AuditEvent.objects.filter(pk=event.pk).exists()
