"""Retention: DNSAUDIT_AUDIT_RETENTION_DAYS (default 365, 0 keeps all), pruned at most once a day when
recording, and by ``manage.py auditlog --prune``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from clusters import auditlog
from clusters.models import AuditEvent


def _event(days_old: float, action: str = "old.event") -> AuditEvent:
    return AuditEvent.objects.create(
        action=action, at=timezone.now() - timedelta(days=days_old), via="system"
    )


def test_recording_prunes_the_events_older_than_the_retention(settings, db):
    settings.DNSAUDIT_AUDIT_RETENTION_DAYS = 30
    _event(31, "too.old")
    _event(29, "kept")
    auditlog.record("new.event")
    assert sorted(AuditEvent.objects.values_list("action", flat=True)) == ["kept", "new.event"]


def test_pruning_runs_at_most_once_a_day(settings, db):
    settings.DNSAUDIT_AUDIT_RETENTION_DAYS = 30
    auditlog.record("first")  # prunes (nothing to do) and sets the next prune a day later
    _event(40, "too.old")
    auditlog.record("second")  # within the day: no prune, the cheap check only
    assert AuditEvent.objects.filter(action="too.old").exists()
    assert auditlog.maybe_prune(timezone.now() + timedelta(hours=23)) is None
    assert auditlog.maybe_prune(timezone.now() + timedelta(days=1, minutes=1)) == 1
    assert not AuditEvent.objects.filter(action="too.old").exists()


def test_zero_keeps_every_event(settings, db):
    settings.DNSAUDIT_AUDIT_RETENTION_DAYS = 0
    _event(5000, "ancient")
    auditlog.record("new.event")
    assert AuditEvent.objects.filter(action="ancient").exists()
    out = io.StringIO()
    call_command("auditlog", "--prune", stdout=out)
    assert "nothing deleted" in out.getvalue() and AuditEvent.objects.filter(action="ancient").exists()


def test_the_prune_option_deletes_and_says_how_many(settings, db):
    settings.DNSAUDIT_AUDIT_RETENTION_DAYS = 10
    for days in (11, 12, 400):
        _event(days)
    _event(9, "kept")
    auditlog.record("warm-up")  # this process already pruned today: --prune must still prune
    for days in (11, 12):
        _event(days)
    out = io.StringIO()
    call_command("auditlog", "--prune", stdout=out)
    assert out.getvalue().strip() == "deleted 2 audit event(s) older than 10 day(s)"
    assert set(AuditEvent.objects.values_list("action", flat=True)) == {"kept", "warm-up", "audit.prune"}
    prune = AuditEvent.objects.get(action="audit.prune")
    assert prune.via == "cli" and prune.detail == {"deleted": 2, "retention_days": 10}


def _setting_in_a_fresh_process(value: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DNSAUDIT_AUDIT_RETENTION_DAYS"}
    if value is not None:
        env["DNSAUDIT_AUDIT_RETENTION_DAYS"] = value
    env["DJANGO_SETTINGS_MODULE"] = "dnsaudit.settings"
    code = "import django; django.setup(); from django.conf import settings; print(settings.DNSAUDIT_AUDIT_RETENTION_DAYS)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("value", "expected"), [(None, "365"), ("0", "0"), ("90", "90")])
def test_the_setting_is_read_from_the_environment(value, expected):
    result = _setting_in_a_fresh_process(value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@pytest.mark.parametrize("value", ["-1", "a year"])
def test_a_bad_retention_setting_stops_the_start(value):
    result = _setting_in_a_fresh_process(value)
    assert result.returncode != 0 and "DNSAUDIT_AUDIT_RETENTION_DAYS" in result.stderr
