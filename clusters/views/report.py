"""The cluster report: summary, node pools with the probe matrix, the workloads table, scan history.

The workloads table is filtered, sorted and paginated on the server; htmx swaps only the table
(``HX-Target: workloads``) and pushes the URL, so a filtered view is a shareable link that renders the
whole page when opened directly. Every page costs a constant number of queries whatever the row count.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Case, Count, IntegerField, Q, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from dnsaudit.core.plan import PlanWorkload, plan_fixes

from .. import exemptions
from ..access import require_role
from ..models import Cluster, NodePoolResult, Scan, WorkloadResult
from ..notify import failing_deliveries
from ..reports import SOURCE_WORDS, node_file_gaps, previous_report_scan, workloads_diff
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

#: The sortable columns of the workloads table: ``?sort=`` key -> header label.
SORT_LABELS = {
    "name": "Workload",
    "namespace": "Namespace",
    "kind": "Kind",
    "risk": "Risk",
    "libc": "libc",
    "remediation": "Recommended fix",
}

# Attributes every table link carries: htmx swaps only the table and pushes the URL; the href stays for
# no-JS use, middle-click and sharing.
HX_LINK = 'hx-target="#workloads" hx-swap="outerHTML" hx-push-url="true"'

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
    "exemption",
    "exempt_until",
)


@dataclass
class TableState:
    """The parsed query string of the workloads table."""

    filters: dict[str, str] = field(default_factory=dict)
    q: str = ""
    sort: str = DEFAULT_SORT
    descending: bool = False
    page: str = "1"
    exempted: str = ""  # "yes": only exempted workloads, "no": only the others, "": all

    @property
    def sort_param(self) -> str:
        return ("-" if self.descending else "") + self.sort

    @property
    def active(self) -> bool:
        return bool(self.filters or self.q or self.exempted)


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
    state.exempted = params.get("exempted", "") if params.get("exempted") in ("yes", "no") else ""
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
            text &= (
                Q(content__search_text__icontains=word)
                | Q(name__icontains=word)
                | Q(namespace__icontains=word)
            )
        qs = qs.filter(text)
    if state.exempted:
        active = exemptions.active_q()
        qs = qs.filter(active) if state.exempted == "yes" else qs.exclude(active)
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


def query_with(params: QueryDict, **changes) -> str:
    """``params`` with ``changes`` applied (``None`` removes a key) as ``?...``, like ``{% querystring %}``.

    Computed here because the template tag costs a template node and a context lookup per link, and the
    table has up to ten links per render.
    """
    updated = params.copy()
    for key, value in changes.items():
        if value is None:
            updated.pop(key, None)
        else:
            updated[key] = value
    if not updated and not params:
        return ""
    return f"?{updated.urlencode()}"


def sort_headers(params: QueryDict, state: TableState) -> dict[str, SafeString]:
    """Sort key -> the ``<th>`` of that column: a link (href and hx-get) sorting by it, ``aria-sort`` on the
    current column, whose link reverses the order; the arrow beside the label is decorative."""
    headers = {}
    for key, label in SORT_LABELS.items():
        current = state.sort == key
        href = query_with(params, sort=f"-{key}" if current and not state.descending else key, page=None)
        aria, arrow = "", ""
        if current:
            direction = "descending" if state.descending else "ascending"
            aria = format_html(' aria-sort="{}"', direction)
            arrow = format_html(' <span aria-hidden="true">{}</span>', "▼" if state.descending else "▲")
        headers[key] = format_html(
            '<th scope="col"{}><a href="{}" hx-get="{}" {}>{}{}</a></th>',
            aria,
            href,
            href,
            mark_safe(HX_LINK),  # noqa: S308 - a constant
            label,
            arrow,
        )
    return headers


def pager_links(params: QueryDict, page) -> dict[str, str]:
    """The query strings of the first/previous/next/last pages (only those that exist), keeping the filters."""
    links = {}
    if page.has_previous():
        links["first"] = query_with(params, page=1)
        links["previous"] = query_with(params, page=page.previous_page_number())
    if page.has_next():
        links["next"] = query_with(params, page=page.next_page_number())
        links["last"] = query_with(params, page=page.paginator.num_pages)
    return links


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
        "sort_headers": sort_headers(request.GET, state),
        "pager": pager_links(request.GET, page) if page.paginator.num_pages > 1 else {},
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


def pools_section(scan: Scan) -> tuple[SafeString, list[dict]]:
    """The rendered node-pool section of ``scan`` (settings, node resolv.conf, probe matrix), and what the
    report does not know about the nodes' files (:func:`clusters.reports.node_file_gaps`).

    The pools come with their affected / at-risk counts (one aggregate query); the pool with the most
    affected workloads (then at-risk, then the scan's order) is listed first and open.

    Both depend on the scan alone (no user, no query string), and a finished scan's pools and workloads
    never change — the scanner writes them in the same transaction that finishes the scan — so they are
    computed once per finished scan and cached. An active scan's section is rendered every time.
    """
    key = f"dnsaudit:pools-html:{scan.pk}"
    cacheable = not scan.is_active
    if cacheable:
        cached = cache.get(key)
        if cached is not None:
            html, gaps = cached
            return mark_safe(html), gaps  # noqa: S308 - our own rendered (autoescaped) template
    pools = list(NodePoolResult.objects.filter(scan=scan))
    counts: dict[str, dict[str, int]] = {}
    for pool, risk, n in (
        WorkloadResult.objects.filter(scan=scan, risk__in=("affected", "at-risk"))
        .order_by()
        .values("node_pool", "risk")
        .annotate(n=Count("pk"))
        .values_list("node_pool", "risk", "n")
    ):
        counts.setdefault(pool, {})[risk] = n
    items = [
        {
            "pool": p,
            "matrix": probe_matrix(p),
            "source_words": SOURCE_WORDS.get(p.node_resolv_conf_source, ""),
            "affected": counts.get(p.name, {}).get("affected", 0),
            "at_risk": counts.get(p.name, {}).get("at-risk", 0),
        }
        for p in pools
    ]
    # Stable: pools with equal counts keep the scan's order.
    items.sort(key=lambda item: (-item["affected"], -item["at_risk"]))
    html = render_to_string("clusters/_pools.html", {"pools": items})
    gaps = node_file_gaps(scan, pools)
    if cacheable:
        cache.set(key, (str(html), gaps), 3600)
    return mark_safe(html), gaps  # noqa: S308 - as above


#: The probe stage's control name: a random label that cannot exist (clusters/scan/stages/probes.py).
RANDOM_PROBE = re.compile(r"\bdnsaudit-[0-9a-f]{4,}\.com\b")


#: Workloads listed under each step of the plan (the count says how many there are in all).
PLAN_NAMES_SHOWN = 12


def action_plan(cluster: Cluster, scan: Scan) -> dict:
    """What to do first (:func:`dnsaudit.core.plan.plan_fixes`) as plain data for the template, each step
    and workload with its link: a cluster-level fix links to its section on this page (``#cfix-N``), a
    per-workload fix to the workload's page.

    Reads the affected / at-risk / unknown rows once (their risk, pool, recommended fix and alternatives,
    not the large ``report``/``detail``); a finished scan never changes, so the result is cached per scan.
    """
    # Exempted workloads are accepted as they are: left out of the plan, and counted (the stamp changes
    # when an exemption is created, removed or expires).
    key = f"dnsaudit:plan:{scan.pk}:{exemptions.cache_stamp(cluster.pk)}"
    cacheable = not scan.is_active
    if cacheable:
        cached = cache.get(key)
        if cached is not None:
            return cached
    flagged = WorkloadResult.objects.filter(scan=scan, risk__in=("affected", "at-risk", "unknown"))
    exempted = flagged.filter(exemptions.active_q(), risk__in=("affected", "at-risk")).count()
    rows = (
        flagged.exclude(exemptions.active_q())
        .order_by()
        .values_list(
            "pk",
            "namespace",
            "kind",
            "name",
            "risk",
            "recommended",
            "node_pool",
            "content__report__remediation__alternatives",
        )
    )
    workloads = [
        PlanWorkload(
            key=f"{namespace}/{kind}/{name}",
            risk=risk,
            recommended=recommended,
            alternatives=tuple(a for a in alternatives if isinstance(a, str))
            if isinstance(alternatives, list)
            else (),
            pool=pool,
            ref=pk,
        )
        for pk, namespace, kind, name, risk, recommended, pool, alternatives in rows
    ]
    plan = plan_fixes(workloads, cluster_artifacts(scan.facts)).as_dict()

    def workload_href(pk) -> str:
        return reverse("clusters:workload", args=[cluster.name, pk])

    for step in plan["steps"]:
        step["items"] = [
            {"key": k, "href": workload_href(pk)}
            for k, pk in zip(step["workloads"][:PLAN_NAMES_SHOWN], step["refs"], strict=False)
        ]
        if step["artifact"] is not None:
            step["href"] = f"#cfix-{step['artifact'] + 1}"
        else:
            step["href"] = workload_href(step["refs"][0]) + "#fix-h"
    plan["unfixable"] = [{"key": w["key"], "href": workload_href(w["ref"])} for w in plan["unfixable"]]
    plan["exempted"] = exempted
    if cacheable:
        cache.set(key, plan, 3600)
    return plan


def probe_matrix(pool: NodePoolResult) -> dict:
    """The pool's probes as rows (search domain) × columns (probe name) for the template; ``controls``
    are the column names that are the scan's random control name (``dnsaudit-<hex>.com``)."""
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
        "controls": [n for n in names if RANDOM_PROBE.fullmatch(n)],
        "rows": [
            {"domain": domain, "origin": origins.get(domain, ""), "cells": [cells.get(n) for n in names]}
            for domain, cells in rows.items()
        ],
    }


def filter_context(request: HttpRequest, cluster: Cluster, scan: Scan | None) -> dict:
    """What the page around the table needs (the filter form): no row is read."""
    return {
        "state": parse_table_state(request.GET),
        "choices": filter_choices(scan) if scan is not None else {},
        "sorts": SORTS,
        "table_url": reverse("clusters:report", args=[cluster.name]),
    }


def workloads_html(request: HttpRequest, cluster: Cluster, scan: Scan | None, *, oob: bool) -> str:
    """The rendered workloads table. It depends only on the scan and the query string (no user, role or
    CSRF token in it), and a finished scan never changes, so its tables are cached per query string:
    under many concurrent readers of the same report the table is rendered once."""
    cacheable = scan is not None and not scan.is_active
    key = ""
    if cacheable:
        query = "&".join(f"{k}={v}" for k, v in sorted(request.GET.items()))
        digest = hashlib.sha256(query.encode()).hexdigest()[:32]
        # Exemptions change a finished scan's rows (created, removed, expired): their stamp is in the key.
        key = f"dnsaudit:wl-html:{scan.pk}:{int(oob)}:{digest}:{exemptions.cache_stamp(cluster.pk)}"
        cached = cache.get(key)
        if cached is not None:
            return cached
    table = workloads_table_context(request, cluster, scan)
    html = render_to_string(
        "clusters/_workloads.html", {"cluster": cluster, "scan": scan, "oob": oob, **table}, request=request
    )
    if cacheable:
        cache.set(key, html, 3600)
    return html


@require_role("viewer")
@vary_on_htmx
def cluster_report(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_cluster(name)
    scan = chosen_scan(cluster, request.GET.get("scan"))
    if htmx_target(request) == "workloads":
        return HttpResponse(workloads_html(request, cluster, scan, oob=True))

    history = list(Scan.objects.filter(cluster=cluster).select_related("requested_by")[:HISTORY_LENGTH])
    active = next((s for s in history if s.is_active), None)
    latest = history[0] if history else None
    pools_html, gaps = pools_section(scan) if scan else ("", [])
    context = {
        "cluster": cluster,
        "scan": scan,
        "is_latest_report": scan is not None and not request.GET.get("scan"),
        "active": active,
        "latest_failed": latest if latest and latest.status == Scan.FAILED else None,
        "notify_failures": failing_deliveries(cluster),
        "history": history,
        "pools_html": pools_html,
        "node_file_gaps": gaps,
        "diff": scan_diff(scan) if scan else None,
        "cluster_fixes": cluster_artifacts(scan.facts) if scan else [],
        # Only a finished report has a plan: a running or failed scan has no (or partial) rows.
        "plan": action_plan(cluster, scan) if scan and scan.status in Scan.FINISHED_OK else None,
        "exempted": exemptions.exempted_counts(scan) if scan else None,
        "workloads_html": mark_safe(workloads_html(request, cluster, scan, oob=False)),  # noqa: S308 - our autoescaped template
        **filter_context(request, cluster, scan),
    }
    return render(request, "clusters/report.html", context)
