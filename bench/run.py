"""dnsaudit benchmarks: scan speed and memory, fleet throughput, dashboard latency.

    .venv/bin/python bench/run.py [--quick] [--only scan|images|fleet|storage|dashboard] [--json]
                                  [--json-out FILE] [--no-profile]

Figures come from ONE run on whatever machine runs this (often shared and noisy): they are printed
with the machine they came from, for the README's performance section, and are never asserted.

Runs itself under ``scripts/with-services.py`` (throwaway PostgreSQL and Redis on loopback ports),
so it never touches a real database. ``--quick`` uses tiny sizes (the smoke tests under
``tests/bench/`` run that); a second large scan runs with the workloads stage under cProfile (its top
entries are printed; ``--no-profile`` skips it). ``images``: cold image inspection against a real
docker-registry, and a scan of a closed network (every registry unreachable). Needs the Debian
packages postgresql, redis-server and wrk (``scripts/install-system-deps.sh``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from common import REPO, fmt_mb, fmt_s, machine, print_table, setup_django, verdict  # noqa: E402

READY_FLAG = "DNSAUDIT_BENCH_SERVICES"
BENCHES = ("scan", "images", "fleet", "storage", "dashboard")


def _reexec_under_services() -> int:
    """Run this same command again inside with-services (fresh PostgreSQL and Redis)."""
    env = dict(os.environ, **{READY_FLAG: "1"})
    cmd = [sys.executable, str(REPO / "scripts" / "with-services.py"), "--", sys.executable, *sys.argv]
    return subprocess.call(cmd, env=env, cwd=REPO)


def _prepare_environment(tmp: Path) -> None:
    import warnings

    # WhiteNoise warns that the throwaway VAR_DIR has no collected static files; pages are measured as HTML.
    warnings.filterwarnings("ignore", message="No directory at")
    from cryptography.fernet import Fernet

    os.environ["DNSAUDIT_VAR_DIR"] = str(tmp / "var")
    os.environ["DNSAUDIT_FERNET_KEYS"] = Fernet.generate_key().decode()
    os.environ["DEBUG"] = "0"  # production-like views (no debug toolbar-ish overheads, no query log)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "dnsaudit.settings"
    # This process scans the demo fleet in-process (dashboard data): no registry call may leave loopback.
    from common import offline_env

    os.environ.update({k: v for k, v in offline_env().items() if "proxy" in k.lower()})
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


def report_scan(r: dict) -> None:
    s = r["scan"]
    c = r["cluster"]
    rows = [
        (
            "cluster",
            f"{c['pods_seen'] if 'pods_seen' in c else s['pods_seen']} pods, {s['workloads']} workloads, "
            f"{c['namespaces']} namespaces, {c['image_keys']} image keys, {c['pools']} node pools",
            "",
            "",
        ),
        (
            "(a) raw listing of every resource the scan lists (same client, page size, GC pause)",
            fmt_s(r["raw_list_everything"]["seconds"]),
            "",
            "",
        ),
        (
            "    per resource",
            ", ".join(f"{k} {v:.2f}" for k, v in r["raw_list_everything"]["seconds_per_resource"].items()),
            "",
            "",
        ),
        ("(b) full scan (execute_scan)", fmt_s(s["seconds"]), "", ""),
        ("(b)/(a), the fair ratio", f"{r['ratio']:.2f}", "<= 1.3", verdict(r["ratio"], 1.3)),
        (
            "    the same in CPU seconds of each process (steadier on a busy machine)",
            f"{r['ratio_cpu']:.2f}",
            "",
            "",
        ),
        (
            "    workloads stage / raw listing of the workload resources",
            f"{r['workloads_stage_vs_listing']:.2f}",
            "",
            "",
        ),
        ("    raw listing of the pods alone (no GC pause)", fmt_s(r["raw_list_pods"]["seconds"]), "", ""),
        (
            "(a) + every pod checked as the scan checks it (Intake.pod): the one-process floor of (b)",
            f"{fmt_s(r['listing_and_checks']['seconds'])} = {r['ratio_floor']:.2f} x (a)",
            "",
            "",
        ),
        (
            "(c) peak RSS of the scanning process",
            fmt_mb(r["peak_rss_mb"]),
            "<= 400 MB",
            verdict(r["peak_rss_mb"], 400),
        ),
        ("    RSS before the scan (imports)", fmt_mb(s["rss_baseline_mb"]), "", ""),
        ("CPU (a): lister / API server / machine busy", _cpu(r["raw_list_pods"]), "", ""),
        ("CPU (b): scanner / API server / machine busy", _cpu(s), "", ""),
        ("    peak RSS of the raw pod listing process", fmt_mb(r["raw_list_pods"]["peak_rss_mb"]), "", ""),
        (
            "scan status / verdicts",
            f"{s['status']}: {s['affected']} affected, {s['at_risk']} at-risk, "
            f"{s['safe']} safe, {s['unknown']} unknown",
            "",
            "",
        ),
        (
            "image cache misses (registry calls)",
            str(r["cache_misses"]),
            "0",
            "MET" if r["cache_misses"] == 0 else "INVALID",
        ),
    ]
    for flags, g in (r.get("experiments") or {}).items():
        what = {"freeze": "gc.freeze() after imports", "nogc": "cyclic GC paused", "slim": "slim pods"}
        rows += [
            (f"experiment: {' + '.join(what[f] for f in flags.split(','))}", "", "", ""),
            ("    (a') raw listing of pods", fmt_s(g["raw_list_pods"]["seconds"]), "", ""),
            ("    (b') full scan", fmt_s(g["scan"]["seconds"]), "", ""),
            ("    (b')/(a')", f"{g['ratio']:.2f}", "<= 1.3", verdict(g["ratio"], 1.3)),
            (
                "    (b')/(a)",
                f"{g['ratio_vs_plain_listing']:.2f}",
                "<= 1.3",
                verdict(g["ratio_vs_plain_listing"], 1.3),
            ),
            (
                "    (c') peak RSS",
                fmt_mb(g["scan"]["peak_rss_mb"]),
                "<= 400 MB",
                verdict(g["scan"]["peak_rss_mb"], 400),
            ),
            ("    same verdicts as the plain scan", str(g["same_verdicts"]), "True", ""),
            (
                "    (b') stages",
                ", ".join(
                    f"{st['stage']} {st['seconds']:.2f}"
                    for st in g["scan"]["stages"]
                    if st["seconds"] >= 0.05
                ),
                "",
                "",
            ),
        ]
    if r.get("wide"):
        w = r["wide"]
        ws = w["scan"]
        rows += [
            (
                f"the same pods in {ws['workloads']} workloads ({w['cluster']['pods'] // max(ws['workloads'], 1)} "
                "pods each): (a) raw listing",
                fmt_s(w["raw_list_everything"]["seconds"]),
                "",
                "",
            ),
            (
                "    (b) full scan, by stage",
                f"{fmt_s(ws['seconds'])} ("
                + ", ".join(
                    f"{st['stage']} {st['seconds']:.2f}" for st in ws["stages"] if st["seconds"] >= 0.05
                )
                + ")",
                "",
                "",
            ),
            (
                "    (b)/(a)",
                f"{w['ratio']:.2f} (CPU seconds: {w['ratio_cpu']:.2f})",
                "<= 1.3",
                verdict(w["ratio"], 1.3),
            ),
            ("    (c) peak RSS", fmt_mb(ws["peak_rss_mb"]), "<= 400 MB", verdict(ws["peak_rss_mb"], 400)),
        ]
    print_table("Scan: one large cluster", rows)
    stage_rows = [
        (f"stage {st['stage']}", fmt_s(st["seconds"]), f"RSS at start {fmt_mb(st['rss_mb'])}", "")
        for st in s["stages"]
    ]
    print_table("Scan: time per stage (from the scan's own progress stages)", stage_rows)
    if r.get("workloads_breakdown"):
        b = r["workloads_breakdown"]
        rest = b["seconds"] - b["listing"] - b["checking"] - b["inventory"]
        print(
            f"\n## Workloads stage, wall clock (a run of its own): {b['seconds']:.2f} s = listing {b['listing']:.2f} s"
            f" + checking {b['checked']} pods {b['checking']:.2f} s + inventory {b['inventory']:.2f} s"
            f" + the rest {rest:.2f} s"
        )
    if r.get("profile"):
        print("\n## Workloads stage (list_workloads) under cProfile: top functions by own time")
        for p in r["profile"]:
            print(f"  {p['tottime']:8.2f} s own  {p['cumtime']:8.2f} s cum  {p['calls']:>9}  {p['function']}")
        print("## ... and by cumulative time")
        for p in r.get("profile_cumulative") or []:
            print(f"  {p['tottime']:8.2f} s own  {p['cumtime']:8.2f} s cum  {p['calls']:>9}  {p['function']}")


def _cpu(x: dict) -> str:
    return (
        f"{x['cpu_seconds']:.2f} s / {x['server_cpu_seconds']:.2f} s / {100 * x['machine_busy']:.0f} % "
        f"of {os.cpu_count()} CPUs"
    )


def _demand(c: dict) -> str:
    cores = (c["worker_cpu_seconds"] + c["server_cpu_seconds"]) / c["wall_seconds"]
    return (
        f"workers {c['worker_cpu_seconds']:.1f} s + API server {c['server_cpu_seconds']:.1f} s CPU in "
        f"{c['wall_seconds']:.1f} s = {cores:.2f} CPUs; machine {100 * c['machine_busy']:.0f} % busy"
    )


def report_fleet(r: dict) -> None:
    c = r["cluster"]
    rows = [
        (
            "fleet",
            f"{c['clusters']} clusters x {r['pods_per_scan']} pods ({r['workloads_per_scan']} workloads each)",
            "",
            "",
        ),
        ("worker", "celery prefork, --concurrency 2", "", ""),
        ("sum of single scans (one at a time)", fmt_s(r["single_sum_seconds"]), "", ""),
        (
            "single scan min / max",
            f"{min(r['single_seconds']):.2f} / {max(r['single_seconds']):.2f} s",
            "",
            "",
        ),
        ("ideal with 2 workers (sum / 2)", fmt_s(r["ideal_seconds"]), "", ""),
        (
            "fleet wall time (all queued at once)",
            fmt_s(r["fleet_seconds"]),
            fmt_s(1.2 * r["ideal_seconds"]),
            "",
        ),
        ("fleet / (sum / 2)", f"{r['ratio']:.2f}", "<= 1.2", verdict(r["ratio"], 1.2)),
        (
            "worker children peak RSS",
            ", ".join(fmt_mb(x) for x in r["worker_children_peak_rss_mb"] if x),
            "<= 400 MB",
            verdict(max([x for x in r["worker_children_peak_rss_mb"] if x] or [float("nan")]), 400),
        ),
        ("CPU, one scan at a time", _demand(r["cpu_singles"]), "", ""),
        ("CPU, all at once", _demand(r["cpu_fleet"]), "", ""),
        ("scan statuses", ", ".join(r["statuses"]), "succeeded/partial", ""),
        (
            "image cache misses (registry calls)",
            str(r["cache_misses"]),
            "0",
            "MET" if r["cache_misses"] == 0 else "INVALID",
        ),
    ]
    print_table("Fleet: scans through a real Celery worker", rows)


def report_images(r: dict, c: dict) -> None:
    rows = [
        (
            "images in the registry (docker-registry, generated)",
            f"{r['images']} distinct digests ({', '.join(f'{k} {v}' for k, v in r['families'].items())}), "
            f"median {r['compressed_mb_median']:.1f} MB compressed, {r['compressed_mb_total']:.0f} MB in all",
            "",
            "",
        ),
        (
            f"image stage, cold, {r['images']} images, {r['concurrency']} at a time",
            f"{fmt_s(r['stage_seconds'])} ({r['confirmed']} confirmed)",
            "",
            "",
        ),
        (
            "median bytes fetched per image / its compressed size",
            f"{100 * r['median_fetched_ratio']:.1f} %",
            "<= 5 %",
            verdict(r["median_fetched_ratio"], 0.05),
        ),
        (
            "    median by base",
            ", ".join(f"{k} {100 * v:.1f} %" for k, v in r["median_fetched_ratio_by_family"].items()),
            "",
            "",
        ),
        (
            "    the image's own (top) layer / its size, median: read in full whatever is cached",
            f"{100 * r['median_own_layer_ratio']:.1f} % ("
            + ", ".join(f"{k} {100 * v:.1f} %" for k, v in r["median_own_layer_ratio_by_family"].items())
            + ")",
            "",
            "",
        ),
        ("    fetched in all", f"{r['fetched_mb_total']:.0f} MB", "", ""),
        (
            f"fleet: {r['fleet_clusters']} clusters scanning at once over {r['fleet_workers']} worker "
            f"processes ({r['database']}), cold",
            f"{r['fleet_inspections']} inspections for {r['fleet_distinct_digests']} digests "
            f"({r['fleet_references']} references) in {fmt_s(r['fleet_seconds'])}, "
            f"{r['fleet_fetched_mb_total']:.0f} MB fetched",
            "",
            "",
        ),
        (
            "inspections per distinct digest across the fleet",
            f"{r['inspections_per_digest']:.2f}",
            "1",
            verdict(r["inspections_per_digest"], 1.0),
        ),
    ]
    cl = c["cluster"]
    rows += [
        (
            "closed network: scan with every registry unreachable",
            f"{cl['pods']} pods, {cl['image_refs']} image references, empty image cache",
            "",
            "",
        ),
    ]
    for key, what in (
        ("before", "    before (each image tries its registry, nothing cached)"),
        ("after", "    after (once per registry per scan)"),
        ("after_second_scan", "    second scan within DNSAUDIT_INFERRED_VERDICT_TTL"),
    ):
        x = c[key]
        rows.append(
            (
                what,
                f"scan {fmt_s(x['seconds'])}, image stage {fmt_s(x['images_stage_seconds'])}, "
                f"{x['cached_inferred']} inferred verdicts cached, {x['status']}",
                "",
                "",
            )
        )
    print_table("Images: inspection measured cold against a real registry; a closed network", rows)


def report_dashboard(r: dict) -> None:
    from dashboard_bench import report_rows

    for title, rows in report_rows(r):
        print_table(title, rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (seconds, for the smoke tests)")
    ap.add_argument("--only", choices=BENCHES, action="append", help="run only this benchmark (repeatable)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object at the end")
    ap.add_argument("--json-out", type=Path, help="also write the JSON to this file")
    ap.add_argument("--no-profile", action="store_true", help="skip the cProfiled second scan")
    args = ap.parse_args()
    if os.environ.get(READY_FLAG) != "1":
        return _reexec_under_services()

    chosen = args.only or list(BENCHES)
    with tempfile.TemporaryDirectory(prefix="dnsaudit-bench-") as tmpdir:
        tmp = Path(tmpdir)
        _prepare_environment(tmp)
        setup_django()
        results: dict = {
            "machine": machine(),
            "quick": args.quick,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        m = results["machine"]
        print(
            f"# dnsaudit benchmarks{' (quick)' if args.quick else ''}\n"
            f"machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB RAM, Linux {m['kernel']}, "
            f"Python {m['python']}, PostgreSQL {m['postgresql']}, Redis {m['redis']}",
            flush=True,
        )
        if "scan" in chosen:
            import scan_bench

            results["scan"] = scan_bench.run_scan(args.quick, tmp, profile=not args.no_profile)
            report_scan(results["scan"])
        if "images" in chosen:
            import image_bench
            import scan_bench

            results["images"] = image_bench.run(args.quick, tmp)
            results["closed_network"] = scan_bench.run_closed_network(args.quick, tmp)
            report_images(results["images"], results["closed_network"])
        if "fleet" in chosen:
            import scan_bench

            results["fleet"] = scan_bench.run_fleet(args.quick, tmp)
            report_fleet(results["fleet"])
        if "storage" in chosen:
            import storage_bench

            results["storage"] = storage_bench.run(args.quick)
            print_table(
                "Storage: bytes a scan adds (real save stage, PostgreSQL)",
                storage_bench.report_rows(results["storage"]),
            )
        if "dashboard" in chosen:
            import dashboard_bench

            results["dashboard"] = dashboard_bench.run(args.quick, tmp)
            report_dashboard(results["dashboard"])
    text = json.dumps(results, indent=2, default=str)
    if args.json_out:
        args.json_out.write_text(text)
    if args.json:
        print("\n## JSON")
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
