"""Rescan and its live progress.

``POST rescan`` creates a queued scan or returns the active one (``clusters.scan.request_scan``).
The progress fragment polls itself every second while the scan is active (``hx-trigger="load delay:1s"``
on an element that replaces itself) and stops by leaving the trigger out once the scan has ended; on the
report page it then loads the fresh report into ``#report-body``. Until then the old report stays.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from ..access import require_role
from ..models import Scan
from .common import get_cluster, is_htmx, vary_on_htmx

WHERE = ("report", "fleet")


def _where(request: HttpRequest) -> str:
    where = request.GET.get("where") or request.POST.get("where") or "report"
    return where if where in WHERE else "report"


@require_POST
@require_role("operator")
def rescan(request: HttpRequest, name: str) -> HttpResponse:
    from ..scan import request_scan  # imported late: the scan package pulls in the whole pipeline

    cluster = get_cluster(name)
    scan, created = request_scan(cluster, trigger="manual", user=request.user)
    if is_htmx(request):
        return render(
            request,
            "clusters/_progress.html",
            {"cluster": cluster, "scan": scan, "where": _where(request), "created": created},
        )
    if created:
        messages.success(request, f"Scan {scan.pk} of {cluster.name} queued.")
    else:
        messages.info(
            request, f"Scan {scan.pk} of {cluster.name} is already {scan.status}; showing its progress."
        )
    return redirect("clusters:report", name=cluster.name)


@require_GET
@require_role("viewer")
@vary_on_htmx
def scan_progress(request: HttpRequest, name: str, scan_id: int) -> HttpResponse:
    cluster = get_cluster(name)
    scan = get_object_or_404(Scan, pk=scan_id, cluster=cluster)
    template = "clusters/_progress.html" if is_htmx(request) else "clusters/progress_page.html"
    return render(request, template, {"cluster": cluster, "scan": scan, "where": _where(request)})
