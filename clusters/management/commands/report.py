"""``manage.py report NAME [--scan ID] --format json|csv``: print a stored report.

The JSON is the shared report schema (as ``audit-manifests --format json``) with ``cluster`` and
``scan`` added. Without ``--scan``, the newest finished (succeeded or partial) scan.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from clusters.models import Cluster, Scan
from clusters.reports import scan_report, scan_report_csv


class Command(BaseCommand):
    help = "Print a cluster's report as JSON (the shared schema) or CSV."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--scan", type=int, help="a scan id (from `manage.py scan --json`)")
        parser.add_argument("--format", choices=["json", "csv"], default="json")

    def handle(self, *args, **opts):
        try:
            cluster = Cluster.objects.get(name=opts["name"])
        except Cluster.DoesNotExist:
            raise CommandError(f"no cluster named {opts['name']!r}", returncode=2) from None
        if opts["scan"]:
            scan = Scan.objects.filter(cluster=cluster, pk=opts["scan"]).first()
            if scan is None:
                raise CommandError(f"cluster {cluster.name} has no scan {opts['scan']}", returncode=2)
            if scan.status not in Scan.FINISHED_OK:
                raise CommandError(
                    f"scan {scan.pk} is {scan.status}: it has no report"
                    + (f" ({scan.error})" if scan.error else ""),
                    returncode=1,
                )
        else:
            scan = cluster.last_report_scan()
            if scan is None:
                raise CommandError(
                    f"cluster {cluster.name} has no finished scan yet: run `manage.py scan {cluster.name} --wait`",
                    returncode=1,
                )
        if opts["format"] == "csv":
            self.stdout.write(scan_report_csv(scan), ending="")
        else:
            self.stdout.write(json.dumps(scan_report(scan), indent=2))
