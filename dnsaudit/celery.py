"""The Celery application. Tasks live in ``clusters.tasks``; the scan row is the record, Celery delivers."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dnsaudit.settings")

app = Celery("dnsaudit")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
