"""``/metrics`` in the Prometheus text exposition format (version 0.0.4).

Access: when ``DNSAUDIT_METRICS_TOKEN`` is set, ``Authorization: Bearer <token>`` is required (what a
Prometheus ``authorization`` block sends); otherwise a logged-in viewer may read it. Either way an
unauthenticated request gets 401, never a login page.

Series (one per cluster unless noted), all gauges because retained scans are pruned:
  dnsaudit_workloads{cluster,risk,exempted}             workloads in the latest report, by risk, and
                                                        whether an exemption applies ("true"/"false")
  dnsaudit_scan_duration_seconds{cluster}               duration of the latest report's scan
  dnsaudit_last_successful_scan_timestamp_seconds{cluster}  when the latest report's scan finished
  dnsaudit_last_scan_failed{cluster}                    1 when the newest finished scan failed
  dnsaudit_scan_problems{cluster}                       facts the latest report could not read
  dnsaudit_scans{cluster,status}                        retained scans by status (errors = status="failed")
  dnsaudit_clusters                                     registered clusters
"""

from __future__ import annotations

import hmac
from collections import defaultdict

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db.models import Count, OuterRef, Subquery
from django.http import HttpRequest, HttpResponse

from .. import exemptions
from ..access import has_role
from ..models import Cluster, Scan

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RISKS = (("affected", "affected"), ("at-risk", "at_risk"), ("safe", "safe"), ("unknown", "unknown"))


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def render_metrics() -> str:
    """The exposition text for every cluster, in a constant number of queries."""
    last_report = (
        Scan.objects.filter(cluster=OuterRef("pk"), status__in=Scan.FINISHED_OK)
        .order_by("-finished_at", "-pk")
        .values("pk")[:1]
    )
    last_finished = (
        Scan.objects.filter(cluster=OuterRef("pk"), finished_at__isnull=False)
        .order_by("-finished_at", "-pk")
        .values("status")[:1]
    )
    clusters = list(
        Cluster.objects.only("name").annotate(
            report_scan_id=Subquery(last_report), last_finished_status=Subquery(last_finished)
        )
    )
    reports = Scan.objects.in_bulk({c.report_scan_id for c in clusters if c.report_scan_id})
    exempted = exemptions.exempted_counts_by_scan(reports)
    by_status: dict[int, dict[str, int]] = defaultdict(dict)
    for row in Scan.objects.values("cluster_id", "status").annotate(n=Count("pk")).order_by():
        by_status[row["cluster_id"]][row["status"]] = row["n"]

    families: dict[str, tuple[str, list[str]]] = {
        "dnsaudit_clusters": ("Clusters registered in dnsaudit.", [f"dnsaudit_clusters {len(clusters)}"]),
        "dnsaudit_workloads": (
            'Workloads in the cluster\'s latest report, by risk; exempted="true" for those an exemption applies to.',
            [],
        ),
        "dnsaudit_scan_duration_seconds": ("Duration of the scan behind the latest report.", []),
        "dnsaudit_last_successful_scan_timestamp_seconds": (
            "Unix time the scan behind the latest report (succeeded or partial) finished.",
            [],
        ),
        "dnsaudit_last_scan_failed": ("1 when the newest finished scan of the cluster failed.", []),
        "dnsaudit_scan_problems": ("Facts the latest report could not read (partial scan).", []),
        "dnsaudit_scans": ('Retained scans by status; status="failed" counts scan errors.', []),
    }
    for c in clusters:
        label = f'cluster="{escape_label(c.name)}"'
        scan = reports.get(c.report_scan_id)
        if scan is not None:
            for risk, attr in RISKS:
                n_exempted = exempted.get(scan.pk, {}).get(risk, 0)
                families["dnsaudit_workloads"][1].append(
                    f'dnsaudit_workloads{{{label},risk="{risk}",exempted="false"}} {getattr(scan, attr) - n_exempted}'
                )
                families["dnsaudit_workloads"][1].append(
                    f'dnsaudit_workloads{{{label},risk="{risk}",exempted="true"}} {n_exempted}'
                )
            if scan.duration is not None:
                families["dnsaudit_scan_duration_seconds"][1].append(
                    f"dnsaudit_scan_duration_seconds{{{label}}} {_fmt(scan.duration)}"
                )
            if scan.finished_at:
                families["dnsaudit_last_successful_scan_timestamp_seconds"][1].append(
                    f"dnsaudit_last_successful_scan_timestamp_seconds{{{label}}} {_fmt(scan.finished_at.timestamp())}"
                )
            families["dnsaudit_scan_problems"][1].append(
                f"dnsaudit_scan_problems{{{label}}} {len(scan.problems or [])}"
            )
        failed = 1 if c.last_finished_status == Scan.FAILED else 0
        families["dnsaudit_last_scan_failed"][1].append(f"dnsaudit_last_scan_failed{{{label}}} {failed}")
        counts = by_status.get(c.pk, {})
        for status, _ in Scan.STATUS_CHOICES:
            families["dnsaudit_scans"][1].append(
                f'dnsaudit_scans{{{label},status="{status}"}} {counts.get(status, 0)}'
            )
    lines: list[str] = []
    for name, (help_text, samples) in families.items():
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(samples)
    return "\n".join(lines) + "\n"


def _authorized(request: HttpRequest) -> bool:
    token = getattr(settings, "DNSAUDIT_METRICS_TOKEN", "")
    if token:
        header = request.headers.get("Authorization", "")
        offered = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        return bool(offered) and hmac.compare_digest(offered.encode(), token.encode())
    return has_role(request.user, "viewer")


@login_not_required
def metrics(request: HttpRequest) -> HttpResponse:
    if not _authorized(request):
        response = HttpResponse(
            "metrics need a bearer token or a login\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="dnsaudit-metrics"'
        return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE)
