"""dnsaudit: find the Kubernetes workloads whose musl images will fail DNS lookups, and fix them."""

from .celery import app as celery_app

__all__ = ("celery_app",)
