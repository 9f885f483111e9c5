"""The Celery application. Tasks live in ``clusters.tasks``; the scan row is the record, Celery delivers."""

import gc
import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dnsaudit.settings")

app = Celery("dnsaudit")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _freeze_imports(**_kwargs) -> None:
    """Move everything imported so far out of the garbage collector's sight: a worker's long-lived
    module objects are never garbage, and walking them on every collection slowed big scans (bench/)."""
    gc.collect()
    gc.freeze()
