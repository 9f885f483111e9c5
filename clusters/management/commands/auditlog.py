"""``manage.py auditlog [--json] [--since YYYY-MM-DD] [--until YYYY-MM-DD] [--action A] [--actor NAME] [--prune]``.

Print the audit log, oldest first: a table, or with ``--json`` JSON Lines — one object per event and line,
with the fields ``at`` (ISO 8601, UTC), ``actor``, ``via``, ``action``, ``target``, ``address``,
``success``, ``detail``. ``--since``/``--until`` take UTC days, both included; ``--action`` an exact action
(``cluster.add``) or a family (``export``). ``--prune`` deletes the events older than
``DNSAUDIT_AUDIT_RETENTION_DAYS`` (0: none) and says how many, instead of printing.

Exit status: 0; 2 bad usage (a date that is not ``YYYY-MM-DD``), one line on stderr.
"""

from __future__ import annotations

import json
from datetime import UTC, date

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters import auditlog
from clusters.views.auditlog import detail_text, filter_events

FIELDS = ("at", "actor", "via", "action", "target", "address", "success", "detail")


def _date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date: use YYYY-MM-DD", returncode=2) from None
    if len(value) != 10:
        raise CommandError(f"{value!r} is not a date: use YYYY-MM-DD", returncode=2)
    return value


def as_json(event) -> dict:
    """One event as the JSON object ``--json`` prints (the field names are a contract)."""
    return {
        "at": event.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "actor": event.actor,
        "via": event.via,
        "action": event.action,
        "target": event.target,
        "address": event.address,
        "success": event.success,
        "detail": event.detail,
    }


class Command(BaseCommand):
    help = (
        "Print the audit log (oldest first) as a table or, with --json, as JSON Lines; --prune deletes the "
        "events older than DNSAUDIT_AUDIT_RETENTION_DAYS. Exit 0; 2 bad usage."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json",
            action="store_true",
            help="JSON Lines: one object per event {at, actor, via, action, target, address, success, detail}",
        )
        parser.add_argument("--since", metavar="YYYY-MM-DD", help="events on or after this day (UTC)")
        parser.add_argument("--until", metavar="YYYY-MM-DD", help="events on or before this day (UTC)")
        parser.add_argument("--action", metavar="ACTION", help="an action (cluster.add) or a family (export)")
        parser.add_argument("--actor", metavar="NAME", help="events of this username (or OS user for cli)")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="delete the events older than DNSAUDIT_AUDIT_RETENTION_DAYS (0: keep all) and exit",
        )

    def handle(self, *args, **opts) -> None:
        if opts["prune"]:
            self._prune()
            return
        params = {
            "since": _date(opts["since"]) if opts["since"] else "",
            "until": _date(opts["until"]) if opts["until"] else "",
            "action": opts["action"] or "",
            "actor": opts["actor"] or "",
        }
        events, _state, problems = filter_events(params)
        if problems:  # cannot happen after _date, kept so a filter change never passes silently
            raise CommandError(problems[0], returncode=2)
        events = events.order_by("at", "pk").iterator(chunk_size=1000)
        if opts["json"]:
            for event in events:
                self.stdout.write(json.dumps(as_json(event), ensure_ascii=False, default=str))
            return
        self._table(events)

    def _table(self, events) -> None:
        header = f"{'at (UTC)':<20} {'actor':<16} {'via':<6} {'action':<20} {'target':<24} {'address':<15} {'ok':<3} detail"
        self.stdout.write(header)
        count = 0
        for e in events:
            count += 1
            self.stdout.write(
                f"{e.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} {(e.actor or '-'):<16} {e.via:<6} {e.action:<20} "
                f"{(e.target or '-'):<24} {(e.address or '-'):<15} {'yes' if e.success else 'NO':<3} "
                f"{detail_text(e.detail)}"
            )
        if not count:
            self.stderr.write("no audit events match")

    def _prune(self) -> None:
        days = auditlog.retention_days()
        if days <= 0:
            self.stdout.write("DNSAUDIT_AUDIT_RETENTION_DAYS is 0: every event is kept, nothing deleted")
            return
        deleted = auditlog.prune()
        auditlog.record("audit.prune", via="cli", deleted=deleted, retention_days=days)
        self.stdout.write(f"deleted {deleted} audit event(s) older than {days} day(s)")
