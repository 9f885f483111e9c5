"""Saving: the whole report in one transaction, then pruning of old scans."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dnsaudit.core.model import NodePool, ProbeResult
from dnsaudit.core.schema import check_detail, check_exemption, check_report

from ... import exemptions
from ...models import (
    Cluster,
    NodePoolResult,
    Scan,
    WorkloadResult,
    lock_contents_shared,
    prune_contents,
    store_contents,
)

if TYPE_CHECKING:
    from ..pipeline import ScanResult


def _summary_libc(report: dict) -> tuple[str, str]:
    libcs = {c.get("libc") or "unknown" for c in report.get("containers", [])}
    versions = sorted({c.get("musl_version") for c in report.get("containers", []) if c.get("musl_version")})
    if not libcs:
        return "unknown", ""
    libc = libcs.pop() if len(libcs) == 1 else ("musl" if "musl" in libcs else "mixed")
    return libc, versions[0] if versions else ""


def save(scan_id: int, result: ScanResult, worker: str | None = None) -> Scan:
    """Write the whole report in one transaction, then prune old scans."""
    counts = {"affected": 0, "at-risk": 0, "safe": 0, "unknown": 0}
    rows: list[WorkloadResult] = []
    contents: list[tuple[dict, dict, str]] = []
    audited: list[dict] = []  # each report as the audit made it (with its annotation's exemption, if any)
    for audit in result.audits:
        rep = audit.report
        audited.append(rep)
        # The exemption goes to the row (set in the transaction below), never into the shared content;
        # so it is checked here, for every row (the content's check below runs for new contents only).
        if "exemption" in rep:
            check_exemption(rep["exemption"])
            rep = {k: v for k, v in rep.items() if k != "exemption"}
        counts[rep["risk"]] = counts.get(rep["risk"], 0) + 1
        libc, musl_version = _summary_libc(rep)
        rows.append(
            WorkloadResult(
                scan_id=scan_id,
                namespace=rep["namespace"],
                kind=rep["kind"],
                name=rep["name"],
                node_pool=rep.get("node_pool") or "",
                risk=rep["risk"],
                libc=libc,
                musl_version=musl_version,
                recommended=rep.get("remediation", {}).get("recommended", ""),
                dns_policy=rep.get("dns_policy", ""),
                host_network=bool(rep.get("host_network")),
            )
        )
        contents.append(
            (
                rep,
                audit.detail,
                " ".join(
                    [
                        rep["namespace"],
                        rep["kind"],
                        rep["name"],
                        *[c.get("image", "") for c in rep.get("containers", [])],
                    ]
                )[:1024].lower(),
            )
        )

    def check_new(index: int) -> None:
        # One declared shape for what pages, exports and the API read (dnsaudit.core.schema): a key
        # nobody declared, or a declared one missing, fails the scan here rather than a page later.
        # Only new contents: one already stored (the same bytes) was checked when it was stored.
        check_report(audited[index], saving=True)
        check_detail(result.audits[index].detail, saving=True)

    pool_rows = [_pool_row(scan_id, pool, result.probes) for pool in result.pools]
    status = Scan.PARTIAL if result.problems else Scan.SUCCEEDED
    with transaction.atomic():
        # The first statement locks the scan row (UPDATE) and checks it is still ours: a reaper that
        # declared us dead, or a second worker that re-claimed the scan, wins and we write nothing.
        mine = Scan.objects.filter(pk=scan_id, status=Scan.RUNNING)
        if worker is not None:
            mine = mine.filter(worker=worker)
        if not mine.update(stage="saving", heartbeat_at=timezone.now()):
            return Scan.objects.get(pk=scan_id)
        # The exemptions in force now, read under the cluster row's lock: an exemption created or removed
        # meanwhile (clusters.exemptions takes the same lock) is applied either here or to these rows
        # once they are the current report, never lost in between.
        cluster_id = Scan.objects.filter(pk=scan_id).values_list("cluster_id", flat=True).get()
        Cluster.objects.select_for_update().filter(pk=cluster_id).values_list("pk").first()
        split_exemption = exemptions.for_scan(scan_id)
        for row, rep in zip(rows, audited, strict=True):
            _, row.exemption, row.exempt_until = split_exemption(rep)
        NodePoolResult.objects.filter(scan_id=scan_id).delete()
        WorkloadResult.objects.filter(scan_id=scan_id).delete()
        NodePoolResult.objects.bulk_create(pool_rows)
        # A workload found as in an earlier scan refers to the stored content instead of repeating it.
        lock_contents_shared()
        for row, content in zip(rows, store_contents(contents, check_new), strict=True):
            row.content = content
        # In the pages' order: the (scan, namespace, kind, name) index then grows at its right edge (full
        # pages, not half-empty ones split in the middle) and a page of the table reads neighbouring rows.
        rows.sort(key=lambda r: (r.namespace, r.kind, r.name))
        WorkloadResult.objects.bulk_create(rows, batch_size=500)
        Scan.objects.filter(pk=scan_id).update(
            status=status,
            finished_at=timezone.now(),
            stage="done",
            progress_done=len(rows),
            progress_total=len(rows),
            workloads_total=len(rows),
            affected=counts["affected"],
            at_risk=counts["at-risk"],
            safe=counts["safe"],
            unknown=counts["unknown"],
            pods_seen=result.pods_seen,
            images_inspected=result.images_inspected,
            problems=result.problems,
            facts=result.facts,
            heartbeat_at=timezone.now(),
        )
    scan = Scan.objects.select_related("cluster").get(pk=scan_id)
    prune_scans(scan.cluster)
    return scan


def _pool_row(scan_id: int, pool: NodePool, probes: list[ProbeResult]) -> NodePoolResult:
    from dnsaudit.core.kubelet import parse_node_resolv_conf
    from dnsaudit.core.resolver import search_step

    searches = []
    if pool.node_resolv_conf:
        try:
            conf = parse_node_resolv_conf(pool.node_resolv_conf, pool.kubelet.version)
            cd = pool.kubelet.cluster_domain
            for d in conf.searches:
                safe = bool(cd) and (d == cd or d.endswith("." + cd))
                searches.append(
                    {
                        "domain": d,
                        "origin": f"node resolv.conf ({pool.node_resolv_conf_source})",
                        "cluster": safe,
                    }
                )
        except ValueError as exc:
            searches.append(
                {"domain": "", "origin": f"unparseable node resolv.conf: {exc}", "cluster": False}
            )
    domain_names = {s["domain"] for s in searches}
    probe_rows = []
    for p in probes:
        if p.domain in domain_names:
            probe_rows.append(
                {
                    "domain": p.domain,
                    "probe_name": p.probe_name,
                    "qname": p.qname,
                    "server": p.server,
                    "a": p.a.label,
                    "aaaa": p.aaaa.label,
                    # The same simulation as the verdicts (musl >= 1.2.1 pairing, glibc 2.36).
                    "musl": search_step(p.a, p.aaaa, "musl"),
                    "glibc": search_step(p.a, p.aaaa, "glibc"),
                }
            )
    return NodePoolResult(
        scan_id=scan_id,
        name=pool.name,
        nodes=pool.nodes,
        kubelet_version=pool.kubelet.version or "",
        architecture=pool.architecture,
        cluster_dns=list(pool.kubelet.cluster_dns),
        cluster_domain=pool.kubelet.cluster_domain,
        resolv_conf_path=pool.kubelet.resolv_conf,
        node_resolv_conf=pool.node_resolv_conf or "",
        node_resolv_conf_source=pool.node_resolv_conf_source,
        node_resolv_conf_evidence=list(pool.node_resolv_conf_evidence),
        searches=searches,
        observed=pool.observed,
        probes=probe_rows,
        notes=pool.notes,
    )


def prune_scans(cluster: Cluster, keep: int | None = None) -> int:
    """Keep the newest ``keep`` finished scans of a cluster (results cascade), and always the last good
    report: a run of failed scans must not prune away the report the dashboard shows."""
    keep = keep if keep is not None else settings.DNSAUDIT_KEEP_SCANS
    finished = list(
        cluster.scans.exclude(status__in=Scan.ACTIVE)
        .order_by("-created_at", "-pk")
        .values_list("pk", flat=True)
    )
    last_good = cluster.last_report_scan()
    old = [pk for pk in finished[max(keep, 0) :] if last_good is None or pk != last_good.pk]
    if old:
        contents = set(WorkloadResult.objects.filter(scan_id__in=old).values_list("content_id", flat=True))
        Scan.objects.filter(pk__in=old).delete()
        # Contents only the pruned scans referred to (shared ones stay).
        prune_contents(contents)
    return len(old)
