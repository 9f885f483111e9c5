"""Scans: request one, run one, reap dead ones.

The scan row is the record of a job; Celery (or, without a broker, a thread of the web process) only
delivers its primary key. ``execute_scan`` claims the row with a conditional UPDATE, reads the cluster
through the Kubernetes boundary, inspects images, probes DNS, runs the audit core and writes the whole
report in one transaction. A failed scan never replaces the last good report, because pages show the
newest scan that *finished* (succeeded or partial).

The stages themselves live in ``pipeline`` and ``stages/``; this module never imports ``clusters.tasks``:
``dispatch`` sends the Celery task by name.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from ..models import Cluster, Scan
from ..notify import after_scan
from .pipeline import collect_and_audit
from .progress import Progress, ScanAborted, ScanTimeLimit
from .stages.save import prune_scans, save

log = logging.getLogger(__name__)

#: The Celery task that runs a scan, by the name it is declared under in ``clusters/tasks.py``.
RUN_SCAN_TASK = "clusters.tasks.run_scan"


# --- requesting -------------------------------------------------------------------------------------


def request_scan(
    cluster: Cluster, *, trigger: str = "manual", user=None, dispatch_now: bool = True
) -> tuple[Scan, bool]:
    """Create a queued scan and dispatch it, or return the active one. Returns ``(scan, created)``.

    ``dispatch_now=False`` leaves the queued scan for the caller to run (``manage.py scan`` without a
    broker runs it in the foreground instead of a thread that would die with the command).
    """
    # A scan whose worker died (or, without a broker, whose process exited) must not block new scans.
    # A request (the Rescan button, `manage.py scan`) must not wait for the reaped scans' notifications.
    reap_dead_scans(notify_in_background=True)
    active = cluster.active_scan()
    if active:
        return active, False
    try:
        with transaction.atomic():
            scan = Scan.objects.create(
                cluster=cluster,
                trigger=trigger,
                requested_by=user if getattr(user, "pk", None) else None,
                stage="queued",
            )
    except IntegrityError:
        # Another request won the race; the partial unique constraint kept us to one active scan.
        active = cluster.active_scan()
        if active:
            return active, False
        raise
    if dispatch_now:
        transaction.on_commit(lambda: dispatch(scan.pk))
    return scan, True


def dispatch(scan_id: int) -> None:
    """Hand the scan to Celery when a broker is configured, else to a thread of this process."""
    if settings.CELERY_BROKER_URL:
        from dnsaudit.celery import app

        try:
            # By name, so this module never imports clusters.tasks (which imports this package). The
            # options are the ones ``run_scan.delay`` put in the message: the task's time limits (the
            # worker's backstop) and ignore_result.
            app.send_task(
                RUN_SCAN_TASK,
                args=(scan_id,),
                ignore_result=True,
                soft_time_limit=settings.DNSAUDIT_SCAN_SOFT_TIME_LIMIT,
                time_limit=settings.DNSAUDIT_SCAN_TIME_LIMIT,
            )
        except Exception as exc:  # kombu raises OperationalError and friends when the broker is down
            log.exception("could not queue scan %s", scan_id)
            Scan.objects.filter(pk=scan_id, status=Scan.QUEUED).update(
                status=Scan.FAILED,
                finished_at=timezone.now(),
                stage="failed",
                error=f"could not queue the scan: the broker is unreachable ({type(exc).__name__}: {exc}). "
                "The previous report is kept; try again when the broker is back.",
            )
    else:
        thread = threading.Thread(target=_run_in_thread, args=(scan_id,), name=f"scan-{scan_id}", daemon=True)
        thread.start()


def _run_in_thread(scan_id: int) -> None:
    try:
        execute_scan(scan_id, worker=f"in-process:{socket.gethostname()}")
    except Exception:
        log.exception("in-process scan %s crashed", scan_id)
    finally:
        # This thread's connections die with it: close them (close_old_connections() would keep them
        # open for CONN_MAX_AGE, leaking one PostgreSQL session per scan).
        connections.close_all()


# --- running ----------------------------------------------------------------------------------------


def claim(scan_id: int, worker: str) -> bool:
    """Take the scan: queued -> running, or a running scan whose worker went silent (redelivery)."""
    now = timezone.now()
    took = Scan.objects.filter(pk=scan_id, status=Scan.QUEUED).update(
        status=Scan.RUNNING,
        started_at=now,
        heartbeat_at=now,
        worker=worker,
        stage="connecting",
        attempts=F("attempts") + 1,
    )
    if took:
        return True
    stale = now - timedelta(seconds=settings.DNSAUDIT_SCAN_STALE_AFTER)
    took = Scan.objects.filter(pk=scan_id, status=Scan.RUNNING, heartbeat_at__lt=stale).update(
        heartbeat_at=now,
        worker=worker,
        stage="connecting",
        attempts=F("attempts") + 1,
        progress_done=0,
    )
    return bool(took)


def execute_scan(scan_id: int, *, worker: str = "", client_factory: Callable | None = None) -> Scan | None:
    """Run scan ``scan_id`` to the end. Returns the scan, or None when it was not ours to run."""
    # Unique per run: every later write is conditional on still being this run's scan, so a worker that
    # lost its claim (declared dead, re-claimed elsewhere) can never overwrite or double the result.
    worker = f"{worker or socket.gethostname()}#{secrets.token_hex(3)}"
    if not claim(scan_id, worker):
        log.info("scan %s not claimed (gone, finished or running elsewhere)", scan_id)
        return None
    scan = Scan.objects.select_related("cluster").get(pk=scan_id)
    progress = Progress(
        scan_id, worker=worker, deadline=time.monotonic() + settings.DNSAUDIT_SCAN_SOFT_TIME_LIMIT
    )
    from celery.exceptions import SoftTimeLimitExceeded

    try:
        result = collect_and_audit(scan.cluster, progress, client_factory=client_factory)
        progress.set("saving")
        # Notifications go out once the report is committed, never failing or holding up the save.
        return after_scan(save(scan_id, result, worker))
    except ScanAborted as exc:
        return _finish_failed(scan_id, str(exc), worker)
    except ScanTimeLimit as exc:
        return _finish_failed(scan_id, str(exc), worker)
    except SoftTimeLimitExceeded:
        # End the scan cleanly with what it means (the save transaction, if it was open, rolled back).
        return _finish_failed(
            scan_id, "the scan hit its time limit and was stopped; the previous report is kept", worker
        )
    except Exception as exc:
        log.exception("scan %s failed", scan_id)
        return _finish_failed(scan_id, f"internal error: {type(exc).__name__}: {exc}", worker)


def _finish_failed(scan_id: int, message: str, worker: str | None = None) -> Scan:
    mine = Scan.objects.filter(pk=scan_id, status=Scan.RUNNING)
    if worker is not None:
        mine = mine.filter(worker=worker)
    took = mine.update(status=Scan.FAILED, error=message, finished_at=timezone.now(), stage="failed")
    scan = Scan.objects.select_related("cluster").get(pk=scan_id)
    # Failed scans count towards the kept history too (the last good report is always kept).
    prune_scans(scan.cluster)
    return after_scan(scan) if took else scan


def reap_dead_scans(now=None, *, notify_in_background: bool = False) -> int:
    """Mark scans failed whose worker stopped reporting (killed, lost), and tell whoever is notified
    (:func:`clusters.notify.after_scan`; with ``notify_in_background``, from a thread, so that the caller
    does not wait for delivery). Returns how many."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.DNSAUDIT_SCAN_STALE_AFTER)
    dead_q = Q(status=Scan.RUNNING, heartbeat_at__lt=stale)
    # Without a broker a queued scan starts within a second in a thread of the process that queued
    # it; one still queued after two minutes belongs to a process that is gone.
    queued_timeout = settings.DNSAUDIT_SCAN_QUEUED_TIMEOUT if settings.CELERY_BROKER_URL else 120
    never = now - timedelta(seconds=min(settings.DNSAUDIT_SCAN_QUEUED_TIMEOUT, queued_timeout))
    lost_q = Q(status=Scan.QUEUED, created_at__lt=never)
    candidates = list(Scan.objects.filter(dead_q | lost_q).values_list("pk", flat=True))
    if not candidates:
        return 0
    dead = Scan.objects.filter(dead_q, pk__in=candidates).update(
        status=Scan.FAILED,
        finished_at=now,
        stage="failed",
        error=(
            "the worker running this scan stopped reporting (killed or lost); the scan was abandoned and the "
            "previous report is kept. The next scan runs normally."
        ),
    )
    lost = Scan.objects.filter(lost_q, pk__in=candidates).update(
        status=Scan.FAILED,
        finished_at=now,
        stage="failed",
        error="no worker picked this scan up in time: is a Celery worker running and connected to the broker?",
    )
    # The conditional updates decide which scans this call failed (a worker that finished meanwhile
    # wins); those are the ones whose failure is news.
    reaped = list(
        Scan.objects.filter(pk__in=candidates, status=Scan.FAILED, finished_at=now).values_list(
            "pk", flat=True
        )
    )
    if reaped and notify_in_background:
        transaction.on_commit(
            lambda: threading.Thread(
                target=_notify_reaped, args=(reaped,), name="notify-reaped", daemon=True
            ).start(),
            robust=True,
        )
    elif reaped:
        for scan in Scan.objects.filter(pk__in=reaped):
            after_scan(scan)
    return dead + lost


def _notify_reaped(scan_ids: list[int]) -> None:
    from ..notify import notify_scan

    try:
        for scan_id in scan_ids:
            notify_scan(scan_id)
    finally:
        connections.close_all()  # this thread's own connections
