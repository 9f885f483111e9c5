"""The scan: its lifecycle (request, dispatch, claim, run, reap, prune), its schedule and its stages.

- ``lifecycle`` — the scan row as the record of a job: request, dispatch (Celery by task name, or a
  thread), claim, execute, finish failed, reap dead scans.
- ``schedule`` — clusters due for a periodic scan, and the in-process scheduler used without a broker.
- ``pipeline`` — ``collect_and_audit``: calls the stages in order and returns a ``ScanResult``.
- ``progress`` — what the stages share: ``Progress`` (and the soft time limit), the abort exceptions,
  ``gc_paused``, retries of transient API errors and problem entries.
- ``stages/`` — one module per stage: listing, nodes, add-ons, images, DNS probes, exec verification
  and saving (with pruning).

Dependencies point one way: lifecycle and schedule use the pipeline and the stages, never the reverse,
and nothing here imports ``clusters.tasks`` (which imports this package).
"""

from .lifecycle import claim, dispatch, execute_scan, reap_dead_scans, request_scan
from .pipeline import ScanResult, collect_and_audit
from .progress import Progress, ScanAborted, ScanTimeLimit, gc_paused
from .schedule import due_clusters, start_in_process_scheduler
from .stages.listing import WORKLOAD_RESOURCES
from .stages.save import prune_scans

__all__ = [
    "WORKLOAD_RESOURCES",
    "Progress",
    "ScanAborted",
    "ScanResult",
    "ScanTimeLimit",
    "claim",
    "collect_and_audit",
    "dispatch",
    "due_clusters",
    "execute_scan",
    "gc_paused",
    "prune_scans",
    "reap_dead_scans",
    "request_scan",
    "start_in_process_scheduler",
]
