"""``manage.py auditlog [--json] [--since YYYY-MM-DD]``: a table or JSON Lines, oldest first; exit 2 on a
bad date."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from clusters.models import AuditEvent

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ["at", "actor", "via", "action", "target", "address", "success", "detail"]


@pytest.fixture
def log(db):
    for day, actor, action, success in (
        ("2026-11-01", "alice", "cluster.add", True),
        ("2026-11-15", "mallory", "auth.login_failed", False),
        ("2026-11-30", "bob", "export.json", True),
    ):
        AuditEvent.objects.create(
            at=datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC),
            actor=actor,
            via="web",
            action=action,
            target="prod" if action != "auth.login_failed" else "",
            address="192.0.2.1",
            success=success,
            detail={"scan": 7} if action == "export.json" else {},
        )


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("auditlog", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_json_lines_carry_the_named_fields_oldest_first(log):
    out, _ = run("--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [list(obj) for obj in lines] == [FIELDS] * 3
    assert [obj["action"] for obj in lines] == ["cluster.add", "auth.login_failed", "export.json"]
    assert lines[2] == {
        "at": "2026-11-30T09:00:00Z",
        "actor": "bob",
        "via": "web",
        "action": "export.json",
        "target": "prod",
        "address": "192.0.2.1",
        "success": True,
        "detail": {"scan": 7},
    }
    assert lines[1]["success"] is False


def test_since_and_until_take_days_both_included(log):
    out, _ = run("--json", "--since", "2026-11-15")
    assert [json.loads(line)["action"] for line in out.splitlines()] == ["auth.login_failed", "export.json"]
    out, _ = run("--json", "--since", "2026-11-01", "--until", "2026-11-15")
    assert [json.loads(line)["action"] for line in out.splitlines()] == ["cluster.add", "auth.login_failed"]
    out, _ = run("--json", "--action", "export", "--actor", "bob")
    assert [json.loads(line)["actor"] for line in out.splitlines()] == ["bob"]


def test_the_table_shows_every_event(log):
    out, _ = run()
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["at", "(UTC)", "actor", "via"]
    assert len(lines) == 4
    assert lines[1].startswith("2026-11-01 09:00:00 alice") and "cluster.add" in lines[1]
    assert " NO " in lines[2] and "mallory" in lines[2]
    assert "scan=7" in lines[3]


def test_an_empty_selection_says_so_on_stderr(log):
    out, err = run("--since", "2027-01-01")
    assert len(out.splitlines()) == 1 and "no audit events match" in err
    out, _ = run("--json", "--since", "2027-01-01")
    assert out == ""


@pytest.mark.parametrize("bad", ["2026-13-01", "yesterday", "2026-1-5", "20261101"])
def test_a_bad_date_is_exit_2(log, bad):
    with pytest.raises(CommandError) as info:
        run("--since", bad)
    assert info.value.returncode == 2 and "YYYY-MM-DD" in str(info.value)
    with pytest.raises(CommandError) as info:
        run("--until", bad)
    assert info.value.returncode == 2


def test_exit_status_and_stderr_of_the_real_command(tmp_path):
    env = {
        **os.environ,
        "DNSAUDIT_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, timeout=300, cwd=ROOT)
    bad = subprocess.run(
        [*manage, "auditlog", "--since", "soon"], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "YYYY-MM-DD" in bad.stderr
    good = subprocess.run([*manage, "auditlog", "--json"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert good.returncode == 0 and good.stdout == ""
