"""The workload page: why the verdict holds (resolv.conf, musl vs glibc traces, image evidence) and the fix.

The stored ``report`` and ``detail`` are read as :mod:`dnsaudit.core.schema` declares them, after
:func:`~dnsaudit.core.schema.check_report` / :func:`~dnsaudit.core.schema.check_detail`: a row that does
not match is a bug to see (a 500 naming the first wrong key, logged), not a shape to guess around. Rows
stored before a key existed lack only the keys the schema declares optional; the template handles those.
"""

from __future__ import annotations

import logging
import re
from typing import TypedDict

from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.shortcuts import get_object_or_404, render

from dnsaudit.core.schema import (
    DetailRemediation,
    Query,
    Resolution,
    SchemaError,
    WorkloadDetail,
    WorkloadReport,
    checked,
)

from .. import exemptions
from ..access import require_role
from ..models import WorkloadResult
from .common import get_cluster

log = logging.getLogger(__name__)


# What the view hands the template besides ``report``/``detail`` (tests/web/test_workload_page.py checks
# every key the template reads against these and the schema).


class RemediationRow(DetailRemediation):
    index: int  # position in detail["remediations"]: the download URL's index


class QueryRow(Query):
    stopped: bool  # musl stopped its search on this query


class SimulationSide(TypedDict):
    libc: str
    res: Resolution
    queries: list[QueryRow]


class SimulationRow(TypedDict):
    name: str
    sides: list[SimulationSide]
    differs: bool
    outcome: str  # when musl and glibc agree: "both resolve" / "both fail (EAI_…)"; else ""


#: The probe stage's random control name (``dnsaudit-<hex>.com``), or the ``<random>`` a reason asks for.
RANDOM_PROBE = re.compile(r"\bdnsaudit-[0-9a-f]{4,}\.com\b|<random>")


def agreed_outcome(musl: Resolution, glibc: Resolution) -> str:
    """What both libcs did when they agree ("" when they do not)."""
    if musl["ok"] != glibc["ok"]:
        return ""
    if musl["ok"]:
        return "both resolve"
    errors = sorted({e for e in (musl["error"], glibc["error"]) if e})
    return f"both fail ({', '.join(errors)})" if errors else "both fail"


def mentions_random_probe(report: WorkloadReport, detail: WorkloadDetail) -> bool:
    """Whether the page shows the random control name (or asks for one): then it says what it is."""
    texts = [*report["reasons"], *detail["assumed"]]
    for sim in detail["simulations"]:
        for libc in ("musl", "glibc"):
            res = sim[libc]
            texts.append(res["explanation"])
            texts.extend(q["name"] for q in res["queries"])
    return any(RANDOM_PROBE.search(t or "") for t in texts)


def ordered_remediations(detail: WorkloadDetail) -> list[RemediationRow]:
    """Remediations with the recommended one first, each given a stable index for its download URL."""
    items = [RemediationRow(**r, index=i) for i, r in enumerate(detail["remediations"])]
    return sorted(items, key=lambda r: (not r["recommended"], r["index"]))


def simulation_rows(detail: WorkloadDetail) -> list[SimulationRow]:
    """Per probe name the musl and glibc resolutions, each query flagged when musl stopped on it."""
    rows: list[SimulationRow] = []
    for sim in detail["simulations"]:
        sides: list[SimulationSide] = []
        for libc in ("musl", "glibc"):
            res = sim[libc]
            stopped = res["stopped_at"]
            queries = [dict(q, stopped=bool(stopped) and q["name"] == stopped) for q in res["queries"]]
            sides.append({"libc": libc, "res": res, "queries": queries})
        rows.append(
            {
                "name": sim["name"],
                "sides": sides,
                "differs": sim["musl"]["ok"] != sim["glibc"]["ok"],
                "outcome": agreed_outcome(sim["musl"], sim["glibc"]),
            }
        )
    return rows


def read_stored(workload: WorkloadResult) -> tuple[WorkloadReport, WorkloadDetail]:
    """The row's report and detail, checked against the schema (raises :class:`SchemaError`)."""
    return checked(workload.report, workload.detail)


@require_role("viewer")
def workload_detail(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    cluster = get_cluster(name)
    workload = get_object_or_404(
        WorkloadResult.objects.select_related("scan", "content"), pk=pk, scan__cluster=cluster
    )
    try:
        report, detail = read_stored(workload)
    except SchemaError as exc:
        log.error("workload result %s (scan %s) does not match the schema: %s", pk, workload.scan_id, exc)
        return HttpResponseServerError(
            f"The stored result of this workload (scan {workload.scan_id}) does not match dnsaudit's report "
            f"schema: {exc}. Rescan the cluster.\n",
            content_type="text/plain; charset=utf-8",
        )
    if exemption := exemptions.row_exemption(workload):  # kept on the row, shown with the report
        report = {**report, "exemption": exemption}
    simulations = simulation_rows(detail)
    context = {
        "cluster": cluster,
        "scan": workload.scan,
        "w": workload,
        "report": report,
        "detail": detail,
        "search_origin": list(detail["search_origin"].items()),
        "simulations": simulations,
        "agreeing": sum(1 for sim in simulations if not sim["differs"]),
        "random_probe": mentions_random_probe(report, detail),
        "remediations": ordered_remediations(detail),
        "containers": detail["containers"],
    }
    return render(request, "clusters/workload.html", context)
