"""The fleet overview: every cluster with its last scan, its counts and what went wrong."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .. import exemptions
from ..access import require_role
from ..models import Cluster, Scan
from .common import vary_on_htmx


@dataclass
class FleetRow:
    """One line of the overview. ``report`` is the scan whose counts are shown; ``latest`` the newest scan."""

    cluster: Cluster
    report: Scan | None
    latest: Scan | None
    #: Exempted workloads of ``report`` by risk (``clusters.exemptions.exempted_counts``).
    exempted: dict = field(default_factory=dict)

    @property
    def active(self) -> Scan | None:
        return self.latest if self.latest and self.latest.is_active else None

    @property
    def last_failed(self) -> Scan | None:
        """The newest scan when it failed (the counts shown are then from an older report)."""
        return self.latest if self.latest and self.latest.status == Scan.FAILED else None


def fleet_rows() -> list[FleetRow]:
    """All clusters with their latest and latest-report scans, in a constant number of queries (two)."""
    last_report = (
        Scan.objects.filter(cluster=OuterRef("pk"), status__in=Scan.FINISHED_OK)
        .order_by("-finished_at", "-pk")
        .values("pk")[:1]
    )
    latest = Scan.objects.filter(cluster=OuterRef("pk")).order_by("-created_at", "-pk").values("pk")[:1]
    clusters = list(
        Cluster.objects.defer("kubeconfig_encrypted", "node_resolv_conf", "pool_resolv_conf").annotate(
            report_scan_id=Subquery(last_report), latest_scan_id=Subquery(latest)
        )
    )
    ids = {c.report_scan_id for c in clusters} | {c.latest_scan_id for c in clusters}
    ids.discard(None)
    scans = Scan.objects.in_bulk(ids) if ids else {}
    exempted = exemptions.exempted_counts_by_scan({c.report_scan_id for c in clusters})
    return [
        FleetRow(
            c, scans.get(c.report_scan_id), scans.get(c.latest_scan_id), exempted.get(c.report_scan_id, {})
        )
        for c in clusters
    ]


def fleet_totals(rows: list[FleetRow]) -> dict[str, int]:
    """The counts at the top of the overview: each cluster's shown report added up."""
    return {
        "clusters": len(rows),
        "affected": sum(r.report.affected for r in rows if r.report),
        "at_risk": sum(r.report.at_risk for r in rows if r.report),
        "safe": sum(r.report.safe for r in rows if r.report),
        "unknown": sum(r.report.unknown for r in rows if r.report),
    }


def fleet_row_update(cluster: Cluster) -> dict:
    """What an inline rescan on the overview refreshes when its scan ends: the cluster's row (status and
    counts) and the totals, as the context of their partials (sent out of band with the last progress
    fragment, ``templates/clusters/_progress.html``). Two queries, whatever the fleet's size."""
    rows = fleet_rows()
    row = next((r for r in rows if r.cluster.pk == cluster.pk), None)
    return {"oob_row": row, "oob_totals": fleet_totals(rows)} if row else {}


@require_role("viewer")
@vary_on_htmx
def fleet(request: HttpRequest) -> HttpResponse:
    rows = fleet_rows()
    return render(request, "clusters/fleet.html", {"rows": rows, "totals": fleet_totals(rows)})
