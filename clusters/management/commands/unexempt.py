"""``manage.py unexempt ID``: remove a dnsaudit exemption (``manage.py exemptions NAME`` lists the ids).

The exemption stops applying at once (the current report's workloads get another exemption that applies,
or none); its row stays, listed as removed with who and when. Exit status: 0 removed (or already removed);
2 bad usage (no exemption with that id). Errors are one line on stderr.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters import auditlog, exemptions
from clusters.models import Exemption

CLI_AUTHOR = "cli"


class Command(BaseCommand):
    help = "Remove a dnsaudit exemption by id (kept, listed as removed). Exit 0 removed; 2 no such exemption."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", metavar="ID", type=int, help="the exemption's id")

    def handle(self, *args, **opts) -> None:
        e = Exemption.objects.select_related("cluster").filter(pk=opts["id"]).first()
        if e is None:
            raise CommandError(f"no exemption with id {opts['id']}", returncode=2)
        if e.removed_at is not None:
            self.stdout.write(
                f"exemption {e.pk} was already removed by {e.removed_by} at {e.removed_at:%Y-%m-%d %H:%M}"
            )
            return
        changed = exemptions.remove(e, by=CLI_AUTHOR)
        auditlog.record("exemption.remove", via="cli", target=e.cluster.name, id=e.pk)
        self.stdout.write(
            f"removed exemption {e.pk} of cluster {e.cluster.name}: "
            f"{changed} workload{'s' if changed != 1 else ''} of the current report changed"
        )
