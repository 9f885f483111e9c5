"""``manage.py policy-report NAME [--scan ID] [--output yaml|json]``: a report as PolicyReports.

Prints the ``wgpolicyk8s.io/v1alpha2`` PolicyReports of a stored scan (one per namespace, then the
ClusterPolicyReport of the node pools; :mod:`dnsaudit.core.policyreport`) as a multi-document YAML stream
for ``kubectl apply -f -``, or with ``--output json`` as one ``v1`` ``List``. Without ``--scan``, the newest
finished (succeeded or partial) scan. Export only: nothing is sent to the cluster.

Exit status: 0; 2 for an unknown cluster, a scan id that is not one of this cluster's, a scan that has not
finished (queued, running, failed), or a cluster with no finished scan yet.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from clusters.models import Cluster, Scan
from clusters.reports import scan_report
from dnsaudit.core.policyreport import as_list, dump_yaml, policy_reports


class Command(BaseCommand):
    help = (
        "Print a cluster's report as wgpolicyk8s.io/v1alpha2 PolicyReports (one per namespace) and a "
        "ClusterPolicyReport (node pools): `python manage.py policy-report NAME | kubectl apply -f -`."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="the cluster's name in dnsaudit")
        parser.add_argument("--scan", type=int, metavar="ID", help="a scan id (from `manage.py scan --json`)")
        parser.add_argument(
            "--output",
            choices=["yaml", "json"],
            default="yaml",
            help="yaml: a multi-document stream (default); json: one v1 List",
        )

    def handle(self, *args, **opts):
        cluster = Cluster.objects.filter(name=opts["name"]).first()
        if cluster is None:
            raise CommandError(f"no cluster named {opts['name']!r}", returncode=2)
        if opts["scan"] is not None:
            scan = Scan.objects.filter(pk=opts["scan"]).select_related("cluster").first()
            if scan is None or scan.cluster_id != cluster.pk:
                raise CommandError(f"cluster {cluster.name} has no scan {opts['scan']}", returncode=2)
            if scan.status not in Scan.FINISHED_OK:
                raise CommandError(
                    f"scan {scan.pk} is {scan.status}: it has no report to export", returncode=2
                )
        else:
            scan = cluster.last_report_scan()
            if scan is None:
                raise CommandError(
                    f"cluster {cluster.name} has no finished scan yet: run `manage.py scan {cluster.name} --wait`",
                    returncode=2,
                )
        items = policy_reports(scan_report(scan), generated_at=timezone.now().isoformat())
        if opts["output"] == "json":
            self.stdout.write(json.dumps(as_list(items), indent=2))
        else:
            self.stdout.write(dump_yaml(items), ending="")
