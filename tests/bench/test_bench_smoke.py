"""Smoke tests of the benchmarks: each runs ``bench/run.py --quick --only X`` end to end (its own
throwaway PostgreSQL and Redis, the test API server, a real Celery worker, gunicorn and wrk) and checks
the structure and sanity of what it reports. Timings are never asserted: benchmarks print figures,
they do not pass or fail on them.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import need, need_binary

REPO = Path(__file__).resolve().parents[2]


def _services() -> None:
    need(
        bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        "PostgreSQL server binaries (apt-get install postgresql)",
    )
    need_binary("redis-server")


def run_bench(name: str, tmp_path: Path) -> tuple[dict, str]:
    """Run one quick benchmark in a fresh environment; return its JSON and its printed tables."""
    out = tmp_path / "bench.json"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DNSAUDIT_BENCH_SERVICES", "DATABASE_URL", "REDIS_URL")
    }
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--only", name, "--json-out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    data = json.loads(out.read_text())
    assert data["quick"] is True
    assert data["machine"]["nproc"] >= 1
    assert data["machine"]["postgresql"], "the benchmark must run on PostgreSQL"
    return data, proc.stdout


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_scan_benchmark_lists_scans_and_reports_ratio_and_peak_rss(tmp_path):
    _services()
    data, printed = run_bench("scan", tmp_path)
    r = data["scan"]
    pods = r["cluster"]["pods"]  # the generated size (input), not a measurement
    assert r["raw_list_pods"]["counts"] == {"pods": pods}
    assert r["raw_list_everything"]["counts"]["pods"] == pods
    scan = r["scan"]
    assert scan["status"] == "succeeded", scan["error"] or scan["problems"]
    assert scan["pods_seen"] == pods
    assert scan["workloads"] == scan["affected"] + scan["at_risk"] + scan["safe"] + scan["unknown"] > 0
    # The node search domain answers SERVFAIL and about a third of the images are musl: some are affected.
    assert 0 < scan["affected"] < scan["workloads"]
    assert r["cache_misses"] == 0, "the image cache must answer every image (no registry call)"
    # The fair baseline: every resource the scan lists, listed as the scan lists it.
    assert set(r["raw_list_everything"]["counts"]) >= {"nodes", "pods", "deployments", "serviceaccounts"}
    assert r["ratio"] == pytest.approx(scan["seconds"] / r["raw_list_everything"]["seconds"])
    assert r["profile"] and any("list_workloads" in p["function"] for p in r["profile_cumulative"])
    assert scan["peak_rss_mb"] >= scan["rss_baseline_mb"] > 0
    stages = [s["stage"] for s in scan["stages"]]
    for stage in ("workloads", "images", "audit", "saving"):
        assert stage in stages
    assert "(b)/(a)" in printed and "peak RSS" in printed
    # The floor: the same listing with every pod checked as the scan checks it.
    assert r["listing_and_checks"]["counts"]["pods"] == pods
    assert r["ratio_floor"] == pytest.approx(
        r["listing_and_checks"]["seconds"] / r["raw_list_everything"]["seconds"]
    )
    # The same pods in many more workloads: scanned whole, every workload audited.
    wide = r["wide"]
    assert wide["scan"]["status"] == "succeeded" and wide["scan"]["pods_seen"] == wide["cluster"]["pods"]
    assert wide["scan"]["workloads"] > scan["workloads"]
    assert wide["ratio"] == pytest.approx(wide["scan"]["seconds"] / wide["raw_list_everything"]["seconds"])
    assert "pods each" in printed


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_image_benchmark_inspects_cold_against_a_real_registry_and_a_closed_network(tmp_path):
    _services()
    need_binary("docker-registry")
    data, printed = run_bench("images", tmp_path)
    r = data["images"]
    assert r["confirmed"] == r["images"] > 0, "every generated image must be read from the registry"
    assert 0 < r["median_fetched_ratio"] <= 1
    assert r["fleet_inspections"] >= r["fleet_distinct_digests"] > 0
    c = data["closed_network"]
    assert c["before"]["cached_inferred"] == 0
    assert c["after"]["cached_inferred"] > 0
    assert c["after_second_scan"]["images_stage_seconds"] < c["before"]["images_stage_seconds"]
    assert "median bytes fetched per image" in printed and "inspections per distinct digest" in printed


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fleet_benchmark_scans_every_cluster_through_a_celery_worker(tmp_path):
    _services()
    data, printed = run_bench("fleet", tmp_path)
    r = data["fleet"]
    clusters = r["cluster"]["clusters"]
    assert len(r["single_seconds"]) == clusters
    assert all(s > 0 for s in r["single_seconds"])
    assert r["statuses"] == ["succeeded"], r["errors"]
    assert r["pods_per_scan"] == r["cluster"]["pods"]
    assert r["ratio"] == pytest.approx(r["fleet_seconds"] / (sum(r["single_seconds"]) / 2))
    assert len([x for x in r["worker_children_peak_rss_mb"] if x]) == 2  # --concurrency 2
    assert r["cache_misses"] == 0
    assert "fleet / (sum / 2)" in printed


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_storage_benchmark_measures_bytes_per_scan_through_the_real_save(tmp_path):
    _services()
    data, printed = run_bench("storage", tmp_path)
    r = data["storage"]
    n = r["workloads"]
    assert r["first_scan_new_contents"] == n  # every workload's content is new in the first scan
    assert r["unchanged_rescan_new_contents"] == 0
    assert 0 < r["unchanged_rescan_bytes"] < r["first_scan_bytes"]
    assert r["unchanged_ratio"] == pytest.approx(r["unchanged_rescan_bytes"] / r["first_scan_bytes"])
    assert r["unchanged_rescan_bytes"] < r["changed_rescan_bytes"]
    assert r["pruned_scans"] == 2 and r["contents_after_prune"] == n
    assert "unchanged rescan ÷ first scan" in printed and "<= 5 %" in printed


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dashboard_benchmark_measures_pages_queries_and_load(tmp_path):
    _services()
    need_binary("wrk")
    data, printed = run_bench("dashboard", tmp_path)
    r = data["dashboard"]
    size = r["size"]
    bulk = size["clusters"] * size["scans_per_cluster"] * size["rows_per_scan"]
    assert r["rows"] == bulk + 2 * 20 + r["template_rows"]
    assert r["statuses"] == [200]
    assert r["table_fragment"]["n"] == size["requests"]
    for key in ("table_fragment", "report_page", "fleet_overview"):
        assert 0 < r[key]["p50"] <= r[key]["p95"] <= r[key]["max"]
    for per_params in r["queries"].values():
        assert len(per_params) >= 10 and "(none)" in per_params
        assert all(v["small"] > 0 and v["large"] > 0 for v in per_params.values())
    load = r["load"]
    assert load["requests"] > 0
    assert load["non200"] == 0, "every load request must be an authenticated 200 (session cookie)"
    assert 0 < load["p50_us"] <= load["p95_us"] <= load["p99_us"]
    assert "latency p95" in printed
