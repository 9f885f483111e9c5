"""Storage benchmark (issue 12): bytes a scan adds to PostgreSQL, first scan vs an unchanged rescan.

The demo fleet is scanned for real (as the dashboard benchmark does) and its audits are the templates of a
5,000-workload cluster (names and namespaces varied, the report's own fields rewritten to match). Each scan
is written by the real save stage (``clusters.scan.stages.save.save``: schema checks, content-addressed
rows, pruning), and its cost is the growth of ``pg_total_relation_size`` (heap, TOAST and every index) of
the two tables a scan writes workloads to, after ``VACUUM``. Then:

* first scan: every workload's content is new;
* an unchanged rescan: the same audits again (what an unchanged cluster's rescan produces — its verdicts,
  traces and patches are deterministic: tests/scans/test_storage.py proves that on real scans);
* a rescan with 3 % of workloads changed (a new image tag), for scale;
* the old design for comparison: the first scan's bytes again (each scan stored every report whole).
"""

from __future__ import annotations

import copy
import time

SIZES = {"full": 5_000, "quick": 200}
CHANGED_FRACTION = 0.03


def _templates():
    from dashboard_bench import demo_templates

    by_risk, _pools = demo_templates()
    rows = [r for rs in by_risk.values() for r in rs]
    rows.sort(key=lambda r: (r.namespace, r.kind, r.name))
    return [(r.report, r.detail) for r in rows]


def _audits(templates, n: int, changed: set[int] = frozenset()):
    """``n`` audits (objects with ``report``/``detail``) made from ``templates``, names varied."""

    class Audit:
        __slots__ = ("detail", "report")

        def __init__(self, report, detail):
            self.report, self.detail = report, detail

    out = []
    for i in range(n):
        report, detail = templates[i % len(templates)]
        report = copy.deepcopy(report)
        report["namespace"] = f"team-{i % 120:03d}"
        report["name"] = f"svc-{i:05d}"
        if i in changed:
            for c in report.get("containers", []):
                c["image"] = c.get("image", "") + "-v2"
        out.append(Audit(report, detail))
    return out


def _relations() -> dict[str, int]:
    """Bytes of each relation a scan writes workloads to: the two tables (heap + TOAST) and their indexes."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("VACUUM clusters_workloadresult")
        cur.execute("VACUUM clusters_workloadcontent")
        cur.execute(
            "SELECT c.relname, pg_table_size(c.oid) FROM pg_class c "
            "WHERE c.relname IN ('clusters_workloadresult', 'clusters_workloadcontent') "
            "UNION ALL SELECT i.relname, pg_relation_size(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE t.relname IN ('clusters_workloadresult', 'clusters_workloadcontent')"
        )
        return dict(cur.fetchall())


def _tables_bytes() -> int:
    return sum(_relations().values())


def _save(cluster, audits) -> tuple[int, float]:
    from django.utils import timezone

    from clusters.models import Scan
    from clusters.scan.pipeline import ScanResult
    from clusters.scan.stages.save import save

    scan = Scan.objects.create(
        cluster=cluster, status=Scan.RUNNING, trigger="manual", worker="bench", started_at=timezone.now()
    )
    result = ScanResult(
        pools=[], audits=audits, problems=[], facts={}, pods_seen=len(audits), images_inspected=0, probes=[]
    )
    before = _relations()
    t0 = time.perf_counter()
    saved = save(scan.pk, result, worker="bench")
    seconds = time.perf_counter() - t0
    assert saved.status == Scan.SUCCEEDED, saved.status
    after = _relations()
    growth = {k: after[k] - before.get(k, 0) for k in after}
    return sum(growth.values()), seconds, growth


def run(quick: bool) -> dict:
    from django.conf import settings

    from clusters.models import Cluster, WorkloadContent

    n = SIZES["quick" if quick else "full"]
    templates = _templates()
    settings.DNSAUDIT_KEEP_SCANS = 10
    cluster = Cluster.objects.create(
        name="storage-bench",
        context="storage-bench",
        server="https://storage-bench.example:6443",
        kubeconfig_encrypted="bench-not-a-kubeconfig",
    )
    contents_before = WorkloadContent.objects.count()
    first_bytes, first_s, _ = _save(cluster, _audits(templates, n))
    contents_first = WorkloadContent.objects.count() - contents_before
    same_bytes, same_s, same_growth = _save(cluster, _audits(templates, n))
    contents_same = WorkloadContent.objects.count() - contents_before - contents_first
    step = max(1, round(1 / CHANGED_FRACTION))
    changed = set(range(0, n, step))
    changed_bytes, changed_s, _ = _save(cluster, _audits(templates, n, changed))
    # Pruning down to the newest scan: the first two scans' rows go, and the contents only they used.
    from clusters.scan.stages.save import prune_scans

    t0 = time.perf_counter()
    pruned = prune_scans(cluster, keep=1)
    prune_s = time.perf_counter() - t0
    contents_left = WorkloadContent.objects.count() - contents_before
    return {
        "pruned_scans": pruned,
        "prune_seconds": prune_s,
        "contents_after_prune": contents_left,
        "workloads": n,
        "first_scan_bytes": first_bytes,
        "first_scan_seconds": first_s,
        "first_scan_new_contents": contents_first,
        "unchanged_rescan_bytes": same_bytes,
        "unchanged_rescan_seconds": same_s,
        "unchanged_rescan_new_contents": contents_same,
        "unchanged_ratio": same_bytes / first_bytes if first_bytes else None,
        "unchanged_rescan_by_relation": same_growth,
        "changed_workloads": len(changed),
        "changed_rescan_bytes": changed_bytes,
        "changed_rescan_seconds": changed_s,
        "changed_ratio": changed_bytes / first_bytes if first_bytes else None,
        "old_design_bytes_per_scan": first_bytes,
    }


def report_rows(r: dict) -> list[tuple[str, str, str, str]]:
    from common import verdict

    def mb(b: int) -> str:
        return f"{b / 2**20:.2f} MB"

    n = r["workloads"]
    return [
        (
            f"first scan of {n} workloads (rows + contents, heap+TOAST+indexes)",
            f"{mb(r['first_scan_bytes'])} ({r['first_scan_bytes'] / n:.0f} B/workload), "
            f"saved in {r['first_scan_seconds']:.2f} s",
            "",
            "",
        ),
        (
            "unchanged rescan ÷ first scan",
            f"{100 * r['unchanged_ratio']:.1f} % ({mb(r['unchanged_rescan_bytes'])}, "
            f"{r['unchanged_rescan_new_contents']} new contents, saved in {r['unchanged_rescan_seconds']:.2f} s)",
            "<= 5 %",
            verdict(100 * r["unchanged_ratio"], 5),
        ),
        (
            f"rescan with {r['changed_workloads']} workloads changed ÷ first scan",
            f"{100 * r['changed_ratio']:.1f} % ({mb(r['changed_rescan_bytes'])})",
            "",
            "",
        ),
        (
            "pruning to the newest scan (rows of the older scans, contents only they used)",
            f"{r['pruned_scans']} scans in {r['prune_seconds']:.2f} s, {r['contents_after_prune']} contents left",
            "",
            "",
        ),
        (
            "before (every scan stored every report whole)",
            f"100 % per scan ({mb(r['old_design_bytes_per_scan'])} per rescan)",
            "",
            "",
        ),
    ]
