"""Periodic scans: which clusters are due, and the in-process scheduler used without a broker."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from django.db import connections
from django.utils import timezone

from ..models import Cluster
from .lifecycle import reap_dead_scans, request_scan

log = logging.getLogger(__name__)


def start_in_process_scheduler(interval: float = 60.0) -> threading.Thread:
    """Without a broker there is no celery beat: a daemon thread reaps dead scans and starts the
    periodic scans of clusters with a scan interval, every ``interval`` seconds."""

    def loop() -> None:
        while True:
            try:
                reap_dead_scans()
                for cluster in due_clusters():
                    request_scan(cluster, trigger="schedule")
            except Exception:
                log.exception("in-process scheduler tick failed")
            finally:
                connections.close_all()
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="dnsaudit-scheduler", daemon=True)
    thread.start()
    return thread


def due_clusters(now=None) -> list[Cluster]:
    """Clusters with a scan interval whose last scan is older than it."""
    now = now or timezone.now()
    due = []
    for cluster in Cluster.objects.filter(scan_interval_minutes__gt=0):
        last = cluster.scans.order_by("-created_at").first()
        if last is None or last.created_at <= now - timedelta(minutes=cluster.scan_interval_minutes):
            due.append(cluster)
    return due
