"""The workload page: why the verdict holds (resolv.conf, musl vs glibc traces, image evidence) and the fix."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from ..access import require_role
from ..models import WorkloadResult
from .common import get_cluster


def resolv_conf_text(report: dict, detail: dict) -> str:
    """The pod's resolv.conf as a file: the stored text, else rebuilt from the report's three lists."""
    text = detail.get("resolv_conf_text")
    if text:
        return text
    rc = report.get("resolv_conf") or {}
    lines = [f"nameserver {ns}" for ns in rc.get("nameservers", [])]
    if rc.get("searches"):
        lines.append("search " + " ".join(rc["searches"]))
    if rc.get("options"):
        lines.append("options " + " ".join(rc["options"]))
    return "\n".join(lines) + ("\n" if lines else "")


def search_origin_items(value) -> list[tuple[str, str]]:
    """``detail["search_origin"]`` as (domain, origin) pairs, whatever shape the scanner stored:
    a mapping domain -> origin, a list of ``{"domain", "origin"}``, or a sentence."""
    if not value:
        return []
    if isinstance(value, dict):
        return [(str(k), str(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [
            (str(i.get("domain", "")), str(i.get("origin", ""))) if isinstance(i, dict) else ("", str(i))
            for i in value
        ]
    return [("", str(value))]


def ordered_remediations(detail: dict) -> list[dict]:
    """Remediations with the recommended one first, each given a stable index for its download URL."""
    items = [dict(r, index=i) for i, r in enumerate(detail.get("remediations") or [])]
    return sorted(items, key=lambda r: (not r.get("recommended"), r["index"]))


def simulation_rows(detail: dict) -> list[dict]:
    """Per probe name the musl and glibc resolutions, each query flagged when musl stopped on it."""
    rows = []
    for sim in detail.get("simulations") or []:
        sides = []
        for libc in ("musl", "glibc"):
            res = sim.get(libc)
            if not res:
                sides.append({"libc": libc, "missing": True})
                continue
            stopped = res.get("stopped_at")
            queries = [
                dict(q, stopped=bool(stopped) and q.get("name") == stopped) for q in res.get("queries") or []
            ]
            sides.append({"libc": libc, "res": res, "queries": queries})
        musl, glibc = sim.get("musl") or {}, sim.get("glibc") or {}
        rows.append(
            {
                "name": sim.get("name", ""),
                "sides": sides,
                "differs": bool(musl) and bool(glibc) and musl.get("ok") != glibc.get("ok"),
            }
        )
    return rows


@require_role("viewer")
def workload_detail(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    cluster = get_cluster(name)
    workload = get_object_or_404(WorkloadResult.objects.select_related("scan"), pk=pk, scan__cluster=cluster)
    report, detail = workload.report or {}, workload.detail or {}
    context = {
        "cluster": cluster,
        "scan": workload.scan,
        "w": workload,
        "report": report,
        "detail": detail,
        "resolv_conf": resolv_conf_text(report, detail),
        "search_origin": search_origin_items(detail.get("search_origin")),
        "simulations": simulation_rows(detail),
        "remediations": ordered_remediations(detail),
        "containers": detail.get("containers") or report.get("containers") or [],
    }
    return render(request, "clusters/workload.html", context)
