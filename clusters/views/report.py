"""The cluster report: summary, node pools with the probe matrix, the workloads table, scan history.

The workloads table is filtered, sorted and paginated on the server; htmx swaps only the table
(``HX-Target: workloads``) and pushes the URL, so a filtered view is a shareable link that renders the
whole page when opened directly. Every page costs a constant number of queries whatever the row count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from ..access import require_role
from ..models import Cluster, NodePoolResult, Scan, WorkloadResult
from ..reports import previous_report_scan, workloads_diff
from .common import RISK_ORDER, chosen_scan, get_cluster, htmx_target, vary_on_htmx
from .exports import cluster_artifacts

PAGE_SIZE = 50
HISTORY_LENGTH = 15
DIFF_SHOWN = 50

#: Query parameter -> model field, for the exact-match filters.
FILTERS = {
    "namespace": "namespace",
    "risk": "risk",
    "libc": "libc",
    "remediation": "recommended",
    "kind": "kind",
}

#: ``?sort=`` values -> ordering. A leading ``-`` reverses the first key only (the rest break ties).
SORTS = {
    "risk": ("risk_rank", "namespace", "kind", "name"),
    "namespace": ("namespace", "kind", "name"),
    "name": ("name", "namespace", "kind"),
    "kind": ("kind", "namespace", "name"),
    "libc": ("libc", "namespace", "kind", "name"),
    "remediation": ("recommended", "namespace", "kind", "name"),
}
DEFAULT_SORT = "risk"

# Columns the table shows; ``report`` and ``detail`` (large JSON) are never loaded for a list.
LIST_FIELDS = (
    "id",
    "scan_id",
    "namespace",
    "kind",
    "name",
    "node_pool",
    "risk",
    "libc",
    "musl_version",
    "recommended",
    "dns_policy",
    "host_network",
)


@dataclass
class TableState:
    """The parsed query string of the workloads table."""

    filters: dict[str, str] = field(default_factory=dict)
    q: str = ""
    sort: str = DEFAULT_SORT
    descending: bool = False
    page: str = "1"

    @property
    def sort_param(self) -> str:
        return ("-" if self.descending else "") + self.sort

    @property
    def active(self) -> bool:
        return bool(self.filters or self.q)


def parse_table_state(params) -> TableState:
    """Read filters, free text, sort and page from ``params`` (a QueryDict); unknown values are ignored."""
    state = TableState()
    for param in FILTERS:
        value = params.get(param, "").strip()
        if value:
            state.filters[param] = value
    state.q = params.get("q", "").strip()[:200]
    sort = params.get("sort", DEFAULT_SORT)
    state.descending = sort.startswith("-")
    sort = sort.lstrip("-")
    state.sort = sort if sort in SORTS else DEFAULT_SORT
    state.page = params.get("page", "1")
    return state


def risk_rank() -> Case:
    return Case(
        *[When(risk=risk, then=Value(i)) for i, risk in enumerate(RISK_ORDER)],
        default=Value(len(RISK_ORDER)),
        output_field=IntegerField(),
    )


def filtered_workloads(scan: Scan, state: TableState) -> QuerySet[WorkloadResult]:
    qs = WorkloadResult.objects.filter(scan=scan).only(*LIST_FIELDS)
    qs = qs.filter(**{FILTERS[param]: value for param, value in state.filters.items()})
    if state.q:
        text = Q()
        for word in state.q.split():
            text &= Q(search_text__icontains=word) | Q(name__icontains=word) | Q(namespace__icontains=word)
        qs = qs.filter(text)
    order = list(SORTS[state.sort])
    if state.sort == "risk":
        qs = qs.annotate(risk_rank=risk_rank())
    if state.descending:
        order[0] = "-" + order[0]
    return qs.order_by(*order, "pk")


def filter_choices(scan: Scan) -> dict[str, list[str]]:
    """Distinct values per filter for ``scan``. A finished scan never changes, so its choices are cached."""
    key = f"dnsaudit:choices:{scan.pk}"
    cacheable = not scan.is_active
    if cacheable:
        cached = cache.get(key)
        if cached is not None:
            return cached
    base = WorkloadResult.objects.filter(scan=scan).order_by()
    choices = {
        param: sorted(v for v in base.values_list(field, flat=True).distinct() if v)
        for param, field in FILTERS.items()
        if param != "risk"
    }
    choices["risk"] = list(RISK_ORDER)
    if cacheable:
        cache.set(key, choices, 3600)
    return choices


def workloads_table_context(request: HttpRequest, cluster: Cluster, scan: Scan | None) -> dict:
    state = parse_table_state(request.GET)
    if scan is None:
        return {"state": state, "page": None, "choices": {}, "sorts": SORTS}
    paginator = Paginator(filtered_workloads(scan, state), PAGE_SIZE)
    page = paginator.get_page(state.page)
    return {
        "state": state,
        "page": page,
        "choices": filter_choices(scan),
        "sorts": SORTS,
        "table_url": reverse("clusters:report", args=[cluster.name]),
    }


def scan_diff(scan: Scan) -> dict | None:
    """New affected / fixed since the previous finished scan (``clusters.reports``), capped for display."""
    previous = previous_report_scan(scan)
    if previous is None:
        return None
    # Finished scans never change, so their diff can be cached; computing it reads every affected row of both.
    key = f"dnsaudit:diff:{scan.pk}:{previous.pk}"
    diff = None if scan.is_active else cache.get(key)
    if diff is None:
        full = workloads_diff(scan, previous)
        diff = {
            "new_affected": full["new_affected"][:DIFF_SHOWN],
            "fixed": full["fixed"][:DIFF_SHOWN],
            "new_count": len(full["new_affected"]),
            "fixed_count": len(full["fixed"]),
        }
        if not scan.is_active:
            cache.set(key, diff, 3600)
    return {"previous": previous, **diff}


def probe_matrix(pool: NodePoolResult) -> dict:
    """The pool's probes as rows (search domain) × columns (probe name) for the template."""
    names: list[str] = []
    rows: dict[str, dict[str, dict]] = {}
    for probe in pool.probes or []:
        name = probe.get("probe_name", "")
        if name not in names:
            names.append(name)
        rows.setdefault(probe.get("domain", ""), {})[name] = probe
    origins = {s.get("domain"): s.get("origin", "") for s in pool.searches or []}
    return {
        "names": names,
        "rows": [
            {"domain": domain, "origin": origins.get(domain, ""), "cells": [cells.get(n) for n in names]}
            for domain, cells in rows.items()
        ],
    }


@require_role("viewer")
@vary_on_htmx
def cluster_report(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_cluster(name)
    scan = chosen_scan(cluster, request.GET.get("scan"))
    table = workloads_table_context(request, cluster, scan)
    if htmx_target(request) == "workloads":
        return render(
            request, "clusters/_workloads.html", {"cluster": cluster, "scan": scan, "oob": True, **table}
        )

    history = list(Scan.objects.filter(cluster=cluster).select_related("requested_by")[:HISTORY_LENGTH])
    active = next((s for s in history if s.is_active), None)
    latest = history[0] if history else None
    pools = list(NodePoolResult.objects.filter(scan=scan)) if scan else []
    context = {
        "cluster": cluster,
        "scan": scan,
        "is_latest_report": scan is not None and not request.GET.get("scan"),
        "active": active,
        "latest_failed": latest if latest and latest.status == Scan.FAILED else None,
        "history": history,
        "pools": [{"pool": p, "matrix": probe_matrix(p)} for p in pools],
        "diff": scan_diff(scan) if scan else None,
        "cluster_fixes": cluster_artifacts(scan.facts) if scan else [],
        **table,
    }
    return render(request, "clusters/report.html", context)
