"""Rescan and its live progress.

``POST rescan`` creates a queued scan or returns the active one (``clusters.scan.request_scan``).
The progress fragment polls itself every second while the scan is active (``hx-trigger="load delay:1s"``
on an element that replaces itself) and stops by leaving the trigger out once the scan has ended; on the
report page it then loads the fresh report into ``#report-body``. Until then the old report stays. On the
fleet overview the last fragment also carries the cluster's row status and counts and the fleet totals as
out-of-band swaps (``hx-swap-oob``), so the row's badge and the totals follow the finished scan, and the
response says ``HX-Trigger: dnsaudit:scan-ended`` for anything else that wants to know.

Scan numbers are the scans' ids: one sequence for the whole fleet (the id of ``?scan=ID``,
``manage.py report --scan ID``, the API and the export file names), so one cluster's scans skip numbers.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from .. import auditlog
from ..access import require_role
from ..models import Cluster, Scan
from .common import get_cluster, is_htmx, vary_on_htmx
from .fleet import fleet_row_update

WHERE = ("report", "fleet")


def _where(request: HttpRequest) -> str:
    where = request.GET.get("where") or request.POST.get("where") or "report"
    return where if where in WHERE else "report"


def progress_fragment(
    request: HttpRequest, cluster: Cluster, scan: Scan, where: str, **extra
) -> HttpResponse:
    """The htmx progress fragment; once the scan has ended, with what the page around it must refresh."""
    context = {"cluster": cluster, "scan": scan, "where": where, **extra}
    ended = not scan.is_active
    if ended and where == "fleet":
        context.update(fleet_row_update(cluster))
    response = render(request, "clusters/_progress.html", context)
    if ended:
        response["HX-Trigger"] = "dnsaudit:scan-ended"
    return response


@require_POST
@require_role("operator")
def rescan(request: HttpRequest, name: str) -> HttpResponse:
    from ..scan import request_scan  # imported late: the scan package pulls in the whole pipeline

    cluster = get_cluster(name)
    scan, created = request_scan(cluster, trigger="manual", user=request.user)
    auditlog.record("scan.request", request=request, target=cluster.name, scan=scan.pk, created=created)
    if is_htmx(request):
        return progress_fragment(request, cluster, scan, _where(request), created=created)
    if created:
        messages.success(request, f"{cluster.name}: scan {scan.pk} queued.")
    else:
        messages.info(
            request, f"{cluster.name}: scan {scan.pk} is already {scan.status}; showing its progress."
        )
    return redirect("clusters:report", name=cluster.name)


@require_GET
@require_role("viewer")
@vary_on_htmx
def scan_progress(request: HttpRequest, name: str, scan_id: int) -> HttpResponse:
    cluster = get_cluster(name)
    scan = get_object_or_404(Scan, pk=scan_id, cluster=cluster)
    if is_htmx(request):
        return progress_fragment(request, cluster, scan, _where(request))
    return render(request, "clusters/progress_page.html", {"cluster": cluster, "scan": scan, "where": "page"})
