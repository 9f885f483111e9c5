"""Reports in the shared schema (the same as ``audit-manifests --format json``), CSV, and scan diffs."""

from __future__ import annotations

import csv
import io

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
]


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
    workloads = [w.report for w in scan.workloads.order_by("namespace", "kind", "name").only("report")]
    pools = [
        {
            "name": p.name,
            "nodes": len(p.nodes),
            "kubelet_version": p.kubelet_version,
            "cluster_dns": p.cluster_dns,
            "cluster_domain": p.cluster_domain,
            "resolv_conf_path": p.resolv_conf_path,
            "searches": p.searches,
            "observed": p.observed,
            "probes": p.probes,
        }
        for p in scan.node_pools.all()
    ]
    return {
        "cluster": cluster_summary(scan.cluster),
        "scan": scan_summary(scan),
        "node_pools": pools,
        "workloads": workloads,
    }


def scan_report_csv(scan: Scan) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for w in scan.workloads.order_by("namespace", "kind", "name"):
        rep = w.report
        writer.writerow(
            [
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
            ]
        )
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
