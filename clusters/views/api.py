"""Read-only JSON API (``/api/v1/...``), authenticated by session or ``Authorization: Bearer dna_…``.

The views opt out of the login redirect so that API clients get ``401`` (with ``WWW-Authenticate``)
instead of an HTML login page; every view still requires the viewer role itself.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_not_required
from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from dnsaudit.core.policyreport import as_list, policy_reports

from .. import exemptions
from ..access import has_role
from ..models import Cluster, NodePoolResult, Scan, WorkloadResult
from ..reports import cluster_summary as cluster_meta
from ..reports import node_file_gaps, pool_dict, scan_report
from ..reports import scan_summary as scan_meta

API_PAGE_SIZE = 500
API_MAX_PAGE_SIZE = 5000


def api_view(view: Callable) -> Callable:
    """GET only; 401 without credentials, 403 without the viewer role; JSON errors throughout."""

    @login_not_required
    @require_GET
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            response = JsonResponse(
                {"error": "authentication required (session or Bearer API token)"}, status=401
            )
            response["WWW-Authenticate"] = 'Bearer realm="dnsaudit"'
            return response
        if not has_role(request.user, "viewer"):
            return JsonResponse({"error": "this needs the viewer role"}, status=403)
        return view(request, *args, **kwargs)

    return wrapped


def _not_found(what: str) -> JsonResponse:
    return JsonResponse({"error": f"{what} not found"}, status=404)


def _int(value: str | None, default: int, lo: int, hi: int) -> int:
    try:
        return max(lo, min(hi, int(value))) if value not in (None, "") else default
    except ValueError:
        return default


@api_view
def clusters(request: HttpRequest) -> HttpResponse:
    last_report = (
        Scan.objects.filter(cluster=OuterRef("pk"), status__in=Scan.FINISHED_OK)
        .order_by("-finished_at", "-pk")
        .values("pk")[:1]
    )
    rows = list(Cluster.objects.defer("kubeconfig_encrypted").annotate(report_scan_id=Subquery(last_report)))
    scans = Scan.objects.in_bulk({c.report_scan_id for c in rows if c.report_scan_id})
    data = []
    for c in rows:
        scan = scans.get(c.report_scan_id)
        data.append(
            {
                **cluster_meta(c),
                "last_report_scan": scan_meta(scan) if scan else None,
                "links": {"scans": reverse("clusters:api_scans", args=[c.name])},
            }
        )
    return JsonResponse({"clusters": data})


@api_view
def cluster_scans(request: HttpRequest, name: str) -> HttpResponse:
    cluster = Cluster.objects.defer("kubeconfig_encrypted").filter(name=name).first()
    if cluster is None:
        return _not_found("cluster")
    scans = [
        dict(scan_meta(s), links={"self": reverse("clusters:api_scan", args=[s.pk])})
        for s in Scan.objects.filter(cluster=cluster)
    ]
    return JsonResponse({"cluster": cluster_meta(cluster), "scans": scans})


@api_view
def scan_detail(request: HttpRequest, scan_id: int) -> HttpResponse:
    scan = Scan.objects.select_related("cluster").filter(pk=scan_id).first()
    if scan is None:
        return _not_found("scan")
    rows = list(NodePoolResult.objects.filter(scan=scan))
    pools = [pool_dict(p, full=True) for p in rows]
    return JsonResponse(
        {
            "cluster": cluster_meta(scan.cluster),
            "scan": scan_meta(scan),
            "node_pools": pools,
            "node_file_gaps": node_file_gaps(scan, rows),
            "exempted": {r: n for r, n in exemptions.exempted_counts(scan).items() if r != "at_risk"},
            "links": {"workloads": reverse("clusters:api_scan_workloads", args=[scan.pk])},
        }
    )


@api_view
def scan_workloads(request: HttpRequest, scan_id: int) -> HttpResponse:
    """Workloads of a scan in the shared schema, filtered by ``risk``, ``namespace``, ``kind``, ``libc``,
    ``remediation``, ``exempted`` (``yes``/``no``), paginated with ``page`` and ``page_size`` (≤ 5000)."""
    scan = Scan.objects.select_related("cluster").filter(pk=scan_id).first()
    if scan is None:
        return _not_found("scan")
    qs = (
        WorkloadResult.objects.filter(scan=scan)
        .select_related("content")
        .only("exemption", "exempt_until", "content__report")
        .order_by("namespace", "kind", "name", "pk")
    )
    for param, field in (
        ("risk", "risk"),
        ("namespace", "namespace"),
        ("kind", "kind"),
        ("libc", "libc"),
        ("remediation", "recommended"),
    ):
        values = [v for v in request.GET.getlist(param) for v in v.split(",") if v]
        if values:
            qs = qs.filter(**{f"{field}__in": values})
    if request.GET.get("exempted") in ("yes", "no"):  # an exemption that applies today
        active = exemptions.active_q()
        qs = qs.filter(active) if request.GET["exempted"] == "yes" else qs.exclude(active)
    size = _int(request.GET.get("page_size"), API_PAGE_SIZE, 1, API_MAX_PAGE_SIZE)
    paginator = Paginator(qs, size)
    page_number = _int(request.GET.get("page"), 1, 1, 10**9)
    if page_number > max(paginator.num_pages, 1):
        return JsonResponse(
            {"error": f"page {page_number} is past the last page ({paginator.num_pages})"}, status=404
        )
    page = paginator.page(page_number)
    today = exemptions.today()
    return JsonResponse(
        {
            "cluster": cluster_meta(scan.cluster),
            "scan": {"id": scan.pk, "status": scan.status},
            "count": paginator.count,
            "page": page.number,
            "pages": paginator.num_pages,
            # The row's exemption (kept out of the stored report) merged back while it applies.
            "workloads": [exemptions.report_of(w, today) for w in page.object_list],
        }
    )


@api_view
def scan_policy_reports(request: HttpRequest, scan_id: int) -> HttpResponse:
    """The scan's report as wgpolicyk8s.io/v1alpha2 PolicyReports and a ClusterPolicyReport, in a ``v1``
    ``List`` (:mod:`dnsaudit.core.policyreport`); 404 for a scan without a report (running or failed)."""
    scan = Scan.objects.select_related("cluster").filter(pk=scan_id).first()
    if scan is None:
        return _not_found("scan")
    if scan.status not in Scan.FINISHED_OK:
        return JsonResponse({"error": f"scan {scan.pk} is {scan.status}: it has no report"}, status=404)
    items = policy_reports(scan_report(scan), generated_at=timezone.now().isoformat())
    return JsonResponse(as_list(items))
