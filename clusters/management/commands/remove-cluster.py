"""``manage.py remove-cluster NAME``: delete a registered cluster with its scans and stored kubeconfig.

Non-interactive (scripts call it). Nothing changes in the cluster itself. Exit status: 0 removed (what was
removed is printed); 2 bad usage (no cluster of that name; nothing removed), one line on stderr.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from clusters import auditlog
from clusters.models import Cluster, Scan


class Command(BaseCommand):
    help = (
        "Delete a cluster with its scans, reports and stored kubeconfig (the cluster itself is not touched). "
        "Exit 0 removed; 2 no such cluster."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", metavar="NAME", help="the cluster's name in dnsaudit")

    def handle(self, *args, **opts) -> None:
        name = opts["name"]
        with transaction.atomic():
            cluster = Cluster.objects.defer("kubeconfig_encrypted").filter(name=name).first()
            if cluster is None:
                known = ", ".join(Cluster.objects.values_list("name", flat=True)) or "none registered"
                raise CommandError(f"no cluster named {name!r} (known: {known})", returncode=2)
            scans = cluster.scans.count()
            active = cluster.scans.filter(status__in=Scan.ACTIVE).count()
            context, server = cluster.context, cluster.server
            cluster.delete()
        auditlog.record("cluster.remove", via="cli", target=name, scans=scans)
        detail = f" ({active} queued or running, abandoned)" if active else ""
        self.stdout.write(
            f"removed cluster {name} (context {context}, server {server}), "
            f"its stored kubeconfig and {scans} scan{'s' if scans != 1 else ''}{detail}"
        )
