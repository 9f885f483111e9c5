"""What every stage shares: the scan's progress and deadline, its abort signals, retries and problems.

``Progress`` writes stage and counters to the scan row and enforces the soft time limit at each
checkpoint; ``ScanAborted`` and ``ScanTimeLimit`` end a scan failed; ``_retry`` retries transient
Kubernetes API errors; ``_problem`` is one entry of a partial scan's problem list.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from django.conf import settings
from django.utils import timezone

from ..models import Scan

log = logging.getLogger(__name__)
T = TypeVar("T")


class ScanAborted(Exception):
    """The scan cannot go on (unreachable, unauthorized...): mark it failed with this message."""


class ScanTimeLimit(Exception):
    """The scan ran past ``DNSAUDIT_SCAN_SOFT_TIME_LIMIT``: stop at the next checkpoint, cleanly.

    Checked by the scan itself (between API pages, stages and image inspections), so the limit holds
    in every mode — a Celery worker and the in-process thread alike — and does not depend on a
    signal reaching the pool process (Celery's own limits stay configured as a backstop).
    """


@dataclass
class Progress:
    """Writes stage and counters to the scan row, at most a few times a second."""

    scan_id: int
    worker: str | None = None
    deadline: float | None = None  # time.monotonic() past which the scan stops (soft time limit)
    last: float = 0.0
    done: int = 0
    total: int = 0
    stage: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(
        self,
        stage: str | None = None,
        *,
        done: int | None = None,
        total: int | None = None,
        force: bool = False,
    ) -> None:
        if stage != "saving":
            self.check()
        with self.lock:
            if stage is not None:
                self.stage = stage
                force = True
            if done is not None:
                self.done = done
            if total is not None:
                self.total = total
            now = time.monotonic()
            if not force and now - self.last < 0.3:
                return
            self.last = now
            values = {
                "stage": self.stage,
                "progress_done": self.done,
                "progress_total": self.total,
                "heartbeat_at": timezone.now(),
            }
        mine = Scan.objects.filter(pk=self.scan_id, status=Scan.RUNNING)
        if self.worker is not None:
            mine = mine.filter(worker=self.worker)
        mine.update(**values)

    def check(self) -> None:
        """Raise ScanTimeLimit once the deadline has passed."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ScanTimeLimit(
                f"the scan ran past its time limit ({settings.DNSAUDIT_SCAN_SOFT_TIME_LIMIT}s, "
                "DNSAUDIT_SCAN_SOFT_TIME_LIMIT) and was stopped; the previous report is kept"
            )

    def watch(self, client) -> None:
        """Make ``client`` check the deadline itself: before every API request and while a body streams in,
        so every list (nodes, namespaces, service accounts, workloads) stops on the page it reached."""
        if hasattr(client, "page_check"):
            client.page_check = self.check

    def step(self, n: int = 1) -> None:
        with self.lock:
            self.done += n
        self.set()


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while API objects stream in.

    Parsed JSON has no reference cycles, but every few thousand new dicts the collector walks the whole
    heap (the Kubernetes client alone is hundreds of thousands of objects): at 50,000 pods that was more
    than half of a scan's time (bench/). Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def kube_limits():
    """What one API server may make a scan read (``DNSAUDIT_KUBE_*``; see ``KubeLimits``)."""
    from dnsaudit.boundary.kube import KubeLimits

    d = KubeLimits()
    return KubeLimits(
        max_response_bytes=int(getattr(settings, "DNSAUDIT_KUBE_MAX_RESPONSE_BYTES", d.max_response_bytes)),
        response_seconds=float(getattr(settings, "DNSAUDIT_KUBE_RESPONSE_TIME_LIMIT", d.response_seconds)),
        max_list_pages=int(getattr(settings, "DNSAUDIT_KUBE_MAX_LIST_PAGES", d.max_list_pages)),
        max_list_items=int(getattr(settings, "DNSAUDIT_KUBE_MAX_LIST_ITEMS", d.max_list_items)),
    )


def _problem(fact: str, error: str, impact: str) -> dict:
    return {"fact": fact, "error": error, "impact": impact}


#: Attempts per Kubernetes API call (lists are restarted from the first page on a retry).
KUBE_ATTEMPTS = 3


def _retry(fn: Callable[[], T], attempts: int = KUBE_ATTEMPTS) -> T:
    """Call ``fn``; on a transient ``KubeError`` (network, timeout, 5xx, 429) try again, up to ``attempts``
    times in all, with exponential backoff (``DNSAUDIT_KUBE_RETRY_BACKOFF`` seconds, doubled each time).

    Permanent errors (401, 403, 404, TLS) and the last transient error are raised to the caller. A list
    is retried whole, so a failure mid-pagination never yields half a list.
    """
    from dnsaudit.boundary.kube import KubeError

    backoff = float(getattr(settings, "DNSAUDIT_KUBE_RETRY_BACKOFF", 0.5))
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except KubeError as exc:
            if not exc.transient or attempt >= attempts:
                raise
            log.info("transient API error (attempt %d/%d), retrying: %s", attempt, attempts, exc)
            time.sleep(backoff * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover
