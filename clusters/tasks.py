"""Celery tasks. They take primary keys only (JSON), and the scan row is the record of the work."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from .models import Cluster
from .scan import due_clusters, execute_scan, request_scan
from .scan import reap_dead_scans as _reap_dead_scans

log = logging.getLogger(__name__)


@shared_task(
    name="clusters.tasks.run_scan",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.DNSAUDIT_SCAN_SOFT_TIME_LIMIT,
    time_limit=settings.DNSAUDIT_SCAN_TIME_LIMIT,
    ignore_result=True,
)
def run_scan(scan_id: int) -> str | None:
    """Run one scan. A redelivered message finds the scan claimed or finished and does nothing."""
    from celery import current_task

    worker = getattr(current_task.request, "hostname", "") or "celery"
    scan = execute_scan(scan_id, worker=worker)
    return scan.status if scan else None


@shared_task(name="clusters.tasks.dispatch_periodic_scans", ignore_result=True)
def dispatch_periodic_scans() -> int:
    """Queue a scan for every cluster whose interval has passed (celery beat calls this every minute)."""
    started = 0
    for cluster in due_clusters():
        _scan, created = request_scan(cluster, trigger="schedule")
        started += int(created)
    return started


@shared_task(name="clusters.tasks.reap_dead_scans", ignore_result=True)
def reap_dead_scans() -> int:
    reaped = _reap_dead_scans()
    if reaped:
        log.warning("marked %d scan(s) failed: their worker stopped reporting", reaped)
    return reaped


__all__ = ["Cluster", "dispatch_periodic_scans", "reap_dead_scans", "run_scan"]
