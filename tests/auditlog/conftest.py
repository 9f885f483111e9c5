"""Fixtures for the audit log tests: the dashboard's users, clients and reports, and a fresh prune clock."""

from __future__ import annotations

import json

import pytest

from clusters import auditlog
from clusters.models import AuditEvent

# Users per role, logged-in clients, a cluster and a report with workloads (tests/web).
from tests.web.conftest import client_as, cluster, fast_password_hashing, report, users  # noqa: F401


@pytest.fixture(autouse=True)
def _fresh_prune_clock():
    """Each test starts as a process that has not pruned yet today."""
    auditlog.reset_prune_clock()
    yield
    auditlog.reset_prune_clock()


def events(action: str | None = None) -> list[AuditEvent]:
    """Recorded events, oldest first (optionally of one action)."""
    rows = AuditEvent.objects.order_by("at", "pk")
    return list(rows.filter(action=action) if action else rows)


def whole_table() -> str:
    """Every stored value of every event, as one string to search for secrets."""
    rows = AuditEvent.objects.values("actor", "via", "action", "target", "address", "success", "detail")
    return json.dumps(list(rows), default=str)


def changes():
    """Events other than logins and logouts (the test clients log in, which is recorded too)."""
    return AuditEvent.objects.exclude(action__startswith="auth.")
