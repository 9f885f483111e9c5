"""Reports in the shared schema (the same as ``audit-manifests --format json``), CSV, and scan diffs."""

from __future__ import annotations

import csv
import io

from . import exemptions
from .models import Scan, WorkloadResult

CSV_COLUMNS = [
    "cluster",
    "scan",
    "namespace",
    "kind",
    "name",
    "risk",
    "libc",
    "musl_version",
    "recommended",
    "dns_policy",
    "host_network",
    "node_pool",
    "images",
    "searches",
    "reasons",
    "node_resolv_conf_source",
    "exemption_reason",
    "exemption_source",
    "exemption_expires",
]

#: What each node file source means, in the words the page, the exports and the README use.
SOURCE_WORDS = {
    "observed": "read inside a running pod through exec",
    "entered": "entered by an admin",
    "inferred": "inferred from the nodes (not read)",
    "unknown": "unknown (not in the Kubernetes API, neither read nor entered)",
}


def pool_dict(p, *, full: bool = False) -> dict:
    """A node pool as the JSON report, the export and the API show it (``full``: the API's extra fields)."""
    out = {
        "name": p.name,
        "nodes": p.nodes if full else len(p.nodes),
        "kubelet_version": p.kubelet_version,
        "architecture": p.architecture,
        "cluster_dns": p.cluster_dns,
        "cluster_domain": p.cluster_domain,
        "resolv_conf_path": p.resolv_conf_path,
        "node_resolv_conf": p.node_resolv_conf,
        "node_resolv_conf_source": p.node_resolv_conf_source,
        "node_resolv_conf_evidence": p.node_resolv_conf_evidence,
        "searches": p.searches,
        "observed": p.observed,
        "probes": p.probes,
    }
    if full:
        out["notes"] = p.notes
    return out


def node_file_gaps(scan: Scan, pools=None) -> list[dict]:
    """What the report does not know about the nodes' search domains, and what to do about it.

    One entry per source that is not known (``unknown``, ``inferred``): ``{"source", "pools",
    "musl_workloads", "message"}``; ``musl_workloads`` counts the not-safe musl workloads on those pools
    that inherit the node file (every dnsPolicy but None). Two queries.
    """
    pools = list(pools if pools is not None else scan.node_pools.all())
    out = []
    for source in ("unknown", "inferred"):
        names = [p.name for p in pools if p.node_resolv_conf_source == source]
        if not names:
            continue
        count = (
            scan.workloads.filter(node_pool__in=names, libc__in=("musl", "mixed"))
            .exclude(risk="safe")
            .exclude(dns_policy="None")
            .count()
        )
        what = "unknown" if source == "unknown" else "inferred, not read,"
        message = (
            f"node search domains {what} on pool{'s' if len(names) > 1 else ''} {', '.join(names)}: "
            f"{count} musl workload{'s' if count != 1 else ''} at risk — allow exec reads or paste the node's "
            "/etc/resolv.conf in the cluster's settings"
        )
        out.append({"source": source, "pools": names, "musl_workloads": count, "message": message})
    return out


def scan_summary(scan: Scan) -> dict:
    """The scan object as scripts see it (``manage.py scan --json``, the API, report headers)."""
    return {
        "id": scan.pk,
        "cluster": scan.cluster.name,
        "status": scan.status,
        "trigger": scan.trigger,
        "stage": scan.stage,
        "created_at": scan.created_at.isoformat() if scan.created_at else None,
        "started_at": scan.started_at.isoformat() if scan.started_at else None,
        "finished_at": scan.finished_at.isoformat() if scan.finished_at else None,
        "duration_seconds": scan.duration,
        "progress": {"done": scan.progress_done, "total": scan.progress_total, "percent": scan.percent},
        "counts": {
            "workloads": scan.workloads_total,
            "affected": scan.affected,
            "at-risk": scan.at_risk,
            "safe": scan.safe,
            "unknown": scan.unknown,
            "pods": scan.pods_seen,
            "images": scan.images_inspected,
        },
        "problems": scan.problems,
        "error": scan.error or None,
    }


def cluster_summary(cluster) -> dict:
    return {
        "name": cluster.name,
        "context": cluster.context,
        "server": cluster.server,
        "is_demo": cluster.is_demo,
        "auth": cluster.summary.get("auth_kind"),
    }


def scan_report(scan: Scan) -> dict:
    """``{"cluster": ..., "scan": ..., "node_pools": [...], "workloads": [...]}`` (shared schema)."""
    today = exemptions.today()
    workloads = [
        exemptions.report_of(w, today)  # the row's exemption merged back while it applies
        for w in scan.workloads.select_related("content")
        .order_by("namespace", "kind", "name")
        .only("exemption", "exempt_until", "content__report")
    ]
    rows = list(scan.node_pools.all())
    return {
        "cluster": cluster_summary(scan.cluster),
        "scan": scan_summary(scan),
        "node_pools": [pool_dict(p) for p in rows],
        "node_file_gaps": node_file_gaps(scan, rows),
        "exempted": {r: n for r, n in exemptions.exempted_counts(scan, today).items() if r != "at_risk"},
        "workloads": workloads,
    }


#: What makes a spreadsheet read a cell as a formula (OWASP "CSV Injection"), at the start of a cell.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: a string starting like a formula gets a ``'`` in front.

    Numbers and booleans pass as they are; everything else becomes its text first.
    """
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def scan_report_csv(scan: Scan) -> str:
    """The report as CSV, every text cell neutralised against formula injection (``csv_cell``)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    today = exemptions.today()
    for w in scan.workloads.select_related("content").order_by("namespace", "kind", "name"):
        rep = w.report
        exemption = exemptions.row_exemption(w, today) or {}
        row = [
            scan.cluster.name,
            scan.pk,
            w.namespace,
            w.kind,
            w.name,
            w.risk,
            w.libc,
            w.musl_version,
            w.recommended,
            w.dns_policy,
            w.host_network,
            w.node_pool,
            " ".join(c.get("image", "") for c in rep.get("containers", [])),
            " ".join(rep.get("resolv_conf", {}).get("searches", [])),
            " | ".join(rep.get("reasons", [])),
            rep.get("node_resolv_conf_source", "unknown"),
            exemption.get("reason", ""),
            exemption.get("source", ""),
            exemption.get("expires") or "",
        ]
        writer.writerow([csv_cell(v) for v in row])
    return out.getvalue()


def previous_report_scan(scan: Scan) -> Scan | None:
    return (
        Scan.objects.filter(
            cluster_id=scan.cluster_id, status__in=Scan.FINISHED_OK, created_at__lt=scan.created_at
        )
        .order_by("-created_at", "-pk")
        .first()
    )


def workloads_diff(scan: Scan, previous: Scan | None) -> dict:
    """Workloads newly affected and those fixed (affected before, not now) since ``previous``."""
    if previous is None:
        return {"previous": None, "new_affected": [], "fixed": []}

    def affected(s: Scan) -> set[tuple[str, str, str]]:
        return set(
            WorkloadResult.objects.filter(scan=s, risk="affected").values_list("namespace", "kind", "name")
        )

    now, before = affected(scan), affected(previous)
    return {
        "previous": previous.pk,
        "new_affected": [{"namespace": n, "kind": k, "name": m} for n, k, m in sorted(now - before)],
        "fixed": [{"namespace": n, "kind": k, "name": m} for n, k, m in sorted(before - now)],
    }
