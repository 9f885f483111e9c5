"""Small helpers shared by the dashboard views: htmx detection, lookups that 404, scan choice."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.cache import patch_vary_headers

from ..models import Cluster, Scan

#: Order in which risks are shown and sorted: the worst first.
RISK_ORDER = ("affected", "at-risk", "unknown", "safe")


def is_htmx(request: HttpRequest) -> bool:
    """True for an htmx partial request (but not for htmx's history restore, which wants the full page)."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def htmx_target(request: HttpRequest) -> str | None:
    """The id of the element htmx will swap, or None for a normal request."""
    return request.headers.get("HX-Target") if is_htmx(request) else None


def vary_on_htmx(view: Callable) -> Callable:
    """Mark a response as depending on the htmx headers, so no cache serves a fragment for a page."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        patch_vary_headers(response, ("HX-Request", "HX-Target"))
        return response

    return wrapped


def get_cluster(name: str) -> Cluster:
    """The cluster named ``name`` without its (encrypted) kubeconfig, or 404."""
    return get_object_or_404(Cluster.objects.defer("kubeconfig_encrypted"), name=name)


def chosen_scan(cluster: Cluster, scan_id: str | int | None) -> Scan | None:
    """The scan the user asked for (``?scan=ID``, any status) or the cluster's latest report scan.

    An unknown or foreign id is a 404 rather than silently showing another scan.
    """
    if scan_id not in (None, ""):
        try:
            pk = int(scan_id)
        except (TypeError, ValueError):
            pk = -1
        return get_object_or_404(Scan, pk=pk, cluster=cluster)
    return cluster.last_report_scan()
