"""``manage.py scan NAME [--wait] [--json]``: scan a registered cluster.

With a broker (``REDIS_URL``) the scan is queued for the Celery workers; ``--wait`` follows it to the
end. Without a broker there is no worker, so the scan runs here, in the foreground, whether or not
``--wait`` is given. Exit status: 0 when the scan succeeded or was partial (the JSON says which and
what could not be read), 1 when it failed, 2 on bad usage.
"""

from __future__ import annotations

import json
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from clusters import auditlog
from clusters.models import Cluster, Scan
from clusters.reports import scan_summary
from clusters.scan import execute_scan, request_scan


class Command(BaseCommand):
    help = "Scan a cluster: read its workloads, inspect images, probe DNS and store a report."

    def add_arguments(self, parser):
        parser.add_argument("name", help="the cluster's name in dnsaudit")
        parser.add_argument("--wait", action="store_true", help="wait for the scan to finish")
        parser.add_argument("--json", action="store_true", help="print the scan as one JSON object")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits at most")

    def handle(self, *args, **opts):
        try:
            cluster = Cluster.objects.get(name=opts["name"])
        except Cluster.DoesNotExist:
            known = ", ".join(Cluster.objects.values_list("name", flat=True)) or "none registered"
            raise CommandError(f"no cluster named {opts['name']!r} (known: {known})", returncode=2) from None
        scan, created = request_scan(cluster, trigger="cli", dispatch_now=bool(settings.CELERY_BROKER_URL))
        auditlog.record("scan.request", via="cli", target=cluster.name, scan=scan.pk, created=created)
        if not created and not opts["json"]:
            self.stderr.write(
                f"a scan of {cluster.name} is already {scan.status} (scan {scan.pk}); following it"
            )
        if not settings.CELERY_BROKER_URL and scan.status == Scan.QUEUED:
            self._run_here(scan)
        elif opts["wait"]:
            self._follow(scan, opts["timeout"])
        scan.refresh_from_db()
        if opts["json"]:
            self.stdout.write(json.dumps(scan_summary(scan), indent=2))
        else:
            self._print(scan)
        if scan.status == Scan.FAILED:
            raise CommandError(f"scan {scan.pk} failed: {scan.error}", returncode=1)

    def _progress_bar(self):
        if not sys.stderr.isatty():
            return None
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            transient=True,
        )

    def _run_here(self, scan: Scan) -> None:
        import threading

        def run() -> None:
            try:
                execute_scan(scan.pk, worker="cli")
            finally:
                # Close this thread's database connections (they would outlive the scan otherwise).
                connections.close_all()

        worker = threading.Thread(target=run, name=f"scan-{scan.pk}")
        worker.start()
        self._watch(scan, lambda: worker.is_alive(), None)
        worker.join()

    def _follow(self, scan: Scan, timeout: float) -> None:
        deadline = time.monotonic() + timeout

        def running() -> bool:
            scan.refresh_from_db()
            if time.monotonic() > deadline:
                raise CommandError(f"scan {scan.pk} still {scan.status} after {timeout:.0f}s", returncode=1)
            return scan.status in Scan.ACTIVE

        self._watch(scan, running, 0.5)

    def _watch(self, scan: Scan, running, interval: float | None) -> None:
        bar = self._progress_bar()
        if bar is None:
            while running():
                time.sleep(interval or 0.2)
            return
        with bar:
            task = bar.add_task("queued", total=None)
            while running():
                row = (
                    Scan.objects.filter(pk=scan.pk).values("stage", "progress_done", "progress_total").first()
                )
                if row:
                    bar.update(
                        task,
                        description=row["stage"] or "queued",
                        completed=row["progress_done"],
                        total=row["progress_total"] or None,
                    )
                time.sleep(interval or 0.2)

    def _print(self, scan: Scan) -> None:
        s = scan_summary(scan)
        c = s["counts"]
        self.stdout.write(
            f"scan {s['id']} of {s['cluster']}: {s['status']} — {c['workloads']} workloads: "
            f"{c['affected']} affected, {c['at-risk']} at-risk, {c['safe']} safe, {c['unknown']} unknown"
        )
        for p in s["problems"]:
            self.stdout.write(f"  could not read {p['fact']}: {p['error']} — {p['impact']}")
        if s["error"]:
            self.stdout.write(f"  error: {s['error']}")
