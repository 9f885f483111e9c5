"""``manage.py exempt`` / ``exemptions`` / ``unexempt``: exit codes, the printed id, the listing's statuses
(active, expired, removed), the audit log."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from clusters import exemptions
from clusters.models import AuditEvent, Exemption
from tests.web import factories

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
TOMORROW = (date.today() + timedelta(days=1)).isoformat()
YESTERDAY = (date.today() - timedelta(days=1)).isoformat()


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as info:
        run(*args)
    assert info.value.returncode == 2, info.value
    return str(info.value)


@pytest.fixture
def scanned(cluster):
    return factories.make_report(cluster, workloads=12, namespaces=3)


def test_exempt_prints_the_new_id_and_applies_it_to_the_current_report(cluster, scanned):
    out, err = run(
        "exempt",
        cluster.name,
        "--namespace",
        "ns-1",
        "--reason",
        "team ns-1 accepts it",
        "--expires",
        TOMORROW,
    )
    e = Exemption.objects.get()
    assert out.strip() == str(e.pk)
    assert (e.namespace, e.reason, e.expires.isoformat(), e.created_by) == (
        "ns-1",
        "team ns-1 accepts it",
        TOMORROW,
        "cli",
    )
    exempted = scanned.workloads.filter(exemption__isnull=False)
    assert exempted.count() == 4 and set(exempted.values_list("namespace", flat=True)) == {"ns-1"}
    assert f"{exempted.count()} workloads of the current report exempted" in err
    event = AuditEvent.objects.get(action="exemption.create")
    assert (event.via, event.target, event.detail["id"], event.detail["namespace"]) == (
        "cli",
        cluster.name,
        e.pk,
        "ns-1",
    )


@pytest.mark.parametrize(
    "args, said",
    [
        (["--reason", ""], "a reason is required"),
        (["--reason", "x" * 501], "at most 500"),
        (["--reason", "ok", "--expires", YESTERDAY], "in the past"),
        (["--reason", "ok", "--expires", "2027-02-30"], "not a date"),
        (["--reason", "ok", "--workload", "web"], "KIND/NAME"),
        (["--reason", "ok", "--image", "bad image ref"], "not an image reference"),
        (["--reason", "ok", "--namespace", "Not_A_Label"], "DNS-1123 label"),
    ],
)
def test_exempt_refuses_bad_usage_with_exit_2_and_stores_nothing(cluster, args, said):
    assert said in refused("exempt", cluster.name, *args)
    assert not Exemption.objects.exists()


def test_exempt_unknown_cluster_is_bad_usage(db):
    assert "no cluster named" in refused("exempt", "nope", "--reason", "x")


def test_exempt_without_reason_exits_2_from_the_command_line():
    p = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "exempt", "any-cluster"],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=120,
    )
    assert p.returncode == 2 and "--reason" in p.stderr


def test_exemptions_lists_active_expired_and_removed_with_their_counts(cluster, scanned, monkeypatch):
    active = int(run("exempt", cluster.name, "--workload", "Deployment/wl-0000", "--reason", "one")[0])
    gone = int(run("exempt", cluster.name, "--namespace", "ns-2", "--reason", "two")[0])
    expired = int(
        run("exempt", cluster.name, "--image", "debian", "--reason", "three", "--expires", TOMORROW)[0]
    )
    out, _ = run("unexempt", str(gone))
    assert f"removed exemption {gone}" in out
    assert AuditEvent.objects.filter(action="exemption.remove", detail__id=gone).exists()

    later = date.today() + timedelta(days=2)  # the day after the last day of ``expired``
    monkeypatch.setattr(exemptions, "today", lambda: later)
    listed = json.loads(run("exemptions", cluster.name, "--json")[0])
    by_id = {e["id"]: e for e in listed["exemptions"]}
    assert by_id[active]["status"] == "active" and by_id[active]["workloads"] == 1
    assert by_id[gone]["status"] == "removed" and by_id[gone]["removed_by"] == "cli"
    assert by_id[gone]["workloads"] == 0
    assert by_id[expired]["status"] == "expired" and by_id[expired]["workloads"] == 0
    # The expired one no longer applies to the rows it was stamped on.
    assert scanned.workloads.filter(exemption__id=expired).exists()
    assert exemptions.exempted_counts(scanned)["total"] == 1
    table = run("exemptions", cluster.name)[0]
    assert "active" in table and "expired" in table and "removed" in table


def test_unexempt_unknown_id_is_bad_usage_and_a_second_removal_is_harmless(cluster, scanned):
    assert "no exemption with id 999" in refused("unexempt", "999")
    pk = int(run("exempt", cluster.name, "--reason", "all")[0])
    run("unexempt", str(pk))
    out, _ = run("unexempt", str(pk))
    assert "already removed" in out
    assert Exemption.objects.get(pk=pk).removed_at is not None  # kept, for the record
