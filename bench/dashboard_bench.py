"""Dashboard benchmark (issue 5, "Speed").

1. Realistic rows: the demo fleet is registered and scanned for real (``manage.py demo --no-scan`` then
   ``execute_scan``, in this process, registry calls kept offline), and its stored ``report``/``detail``
   JSON are the templates of the bulk rows (same shapes and sizes, names and namespaces varied).
2. 100,000 ``WorkloadResult`` rows: 10 clusters, each with two finished scans (previous + latest,
   ~3 % of verdicts changed between them so the "new / fixed" diff has content) of 5,000 workloads.
3. Server time over ~200 requests with Django's test client (logged in as a viewer): the workloads table
   (the htmx fragment, and the full cluster report page) with filters, sorting and deep pages; the fleet
   overview. Queries per page counted with ``CaptureQueriesContext`` on a small cluster (20 rows) and a
   large one (5,000 rows) — and for the fleet overview before and after the bulk load.
4. Load: gunicorn (4 sync workers) on a free loopback port, PostgreSQL, and ``wrk`` with 50 connections
   for 60 s (quick: 10 for 5 s) on report pages, a Lua script sending the session cookie and collecting
   p50/p95/p99 and non-200 answers.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from common import children_of, cpu_seconds, fmt_ms, free_port, offline_env, percentile, verdict

FULL = {
    "clusters": 10,
    "scans_per_cluster": 2,
    "rows_per_scan": 5_000,
    "requests": 200,
    "wrk_seconds": 60,
    "wrk_connections": 50,
}
QUICK = {
    "clusters": 2,
    "scans_per_cluster": 2,
    "rows_per_scan": 200,
    "requests": 40,
    "wrk_seconds": 5,
    "wrk_connections": 10,
}
SMALL_ROWS = 20
KINDS = ["Deployment"] * 14 + ["StatefulSet"] * 3 + ["DaemonSet"] * 1 + ["CronJob"] * 2
RISK_WEIGHTS = {"affected": 8, "at-risk": 10, "safe": 75, "unknown": 7}


# --- data -----------------------------------------------------------------------------------------------------


def demo_templates() -> tuple[dict[str, list], list]:
    """Scan the demo fleet for real; return its workload rows by risk and its node pool rows."""
    from django.core.management import call_command

    from clusters.models import Cluster, NodePoolResult, WorkloadResult
    from clusters.scan import execute_scan, request_scan

    call_command("demo", "--no-scan", stdout=io.StringIO())
    scan_ids = []
    for cluster in Cluster.objects.filter(is_demo=True):
        scan, _ = request_scan(cluster, trigger="demo", dispatch_now=False)
        execute_scan(scan.pk, worker="bench")
        scan_ids.append(scan.pk)
    by_risk: dict[str, list] = {}
    for row in WorkloadResult.objects.filter(scan_id__in=scan_ids):
        by_risk.setdefault(row.risk, []).append(row)
    pools = list(NodePoolResult.objects.filter(scan_id__in=scan_ids))
    return by_risk, pools


def _json_size(row) -> int:
    return len(json.dumps(row.report)) + len(json.dumps(row.detail))


def _pick_template(by_risk: dict[str, list], risk: str, i: int):
    choices = by_risk.get(risk) or by_risk.get("affected") or next(iter(by_risk.values()))
    return choices[i % len(choices)]


def _row(scan_id: int, i: int, risk: str, tpl):
    """A workload row and its content (report, detail, search text), stored as a scan stores them."""
    from clusters.models import WorkloadResult

    ns = f"team-{i % 120:03d}"
    kind = KINDS[i % len(KINDS)]
    name = f"svc-{i:05d}-{'abcdefghij'[i % 10]}{'klmnopqrst'[(i // 10) % 10]}"
    report = dict(tpl.report)
    report.update(namespace=ns, kind=kind, name=name, risk=risk)
    images = [c.get("image", "") for c in report.get("containers", [])]
    row = WorkloadResult(
        scan_id=scan_id,
        namespace=ns,
        kind=kind,
        name=name,
        node_pool=tpl.node_pool,
        risk=risk,
        libc=tpl.libc,
        musl_version=tpl.musl_version,
        recommended=tpl.recommended,
        dns_policy=tpl.dns_policy,
        host_network=tpl.host_network,
    )
    return row, (report, tpl.detail, " ".join([ns, kind, name, *images])[:1024].lower())


def build_cluster(
    name: str, rows: int, scans: int, by_risk: dict[str, list], pools: list, rnd: random.Random
):
    """A cluster with ``scans`` finished scans of ``rows`` workloads each (the newest last)."""
    from django.utils import timezone

    from clusters.models import Cluster, NodePoolResult, Scan, WorkloadResult, store_contents

    cluster = Cluster.objects.create(
        name=name,
        context=f"{name}-ctx",
        server=f"https://{name}.k8s.example:6443",
        kubeconfig_encrypted="bench-not-a-kubeconfig",
        summary={"auth_kind": "cert", "user": "dnsaudit"},
    )
    risks = list(RISK_WEIGHTS)
    weights = list(RISK_WEIGHTS.values())
    base = [rnd.choices(risks, weights)[0] for _ in range(rows)]
    base[: len(risks)] = risks  # every filter value exists even in a tiny cluster (same queries per page)
    now = timezone.now()
    for s in range(scans):
        risk_of = list(base)
        if s == scans - 1 and scans > 1:  # the latest scan: ~3 % of verdicts changed
            for i in rnd.sample(range(rows), max(1, rows * 3 // 100)):
                risk_of[i] = "safe" if risk_of[i] == "affected" else "affected"
        counts = {r: risk_of.count(r) for r in risks}
        finished = now - timedelta(hours=(scans - s) * 6)
        scan = Scan.objects.create(
            cluster=cluster,
            status=Scan.SUCCEEDED,
            trigger="schedule",
            created_at=finished - timedelta(seconds=40),
            started_at=finished - timedelta(seconds=39),
            finished_at=finished,
            heartbeat_at=finished,
            stage="done",
            progress_done=rows,
            progress_total=rows,
            workloads_total=rows,
            affected=counts["affected"],
            at_risk=counts["at-risk"],
            safe=counts["safe"],
            unknown=counts["unknown"],
            pods_seen=rows * 4,
            images_inspected=150,
            facts={"server_version": "v1.30.6"},
        )
        NodePoolResult.objects.bulk_create(
            [
                NodePoolResult(
                    scan=scan,
                    **{
                        f.name: getattr(p, f.name)
                        for f in NodePoolResult._meta.concrete_fields
                        if f.name not in ("id", "scan")
                    },
                )
                for p in pools[:3]
            ]
        )
        made = [_row(scan.pk, i, risk_of[i], _pick_template(by_risk, risk_of[i], i)) for i in range(rows)]
        batch = [row for row, _ in made]
        for row, content in zip(batch, store_contents([c for _, c in made]), strict=True):
            row.content = content
        WorkloadResult.objects.bulk_create(batch, batch_size=1000)
    return cluster


# --- measuring with the test client -------------------------------------------------------------------------


TABLE_PARAMS = [
    "",
    "risk=affected",
    "risk=at-risk&sort=name",
    "libc=musl",
    "kind=StatefulSet",
    "namespace=team-007",
    "q=svc-0001",
    "q=alpine",
    "sort=-namespace",
    "sort=libc&page=7",
    "page=50",
    "page=100",
    "risk=safe&sort=-name&page=20",
    "kind=Deployment&libc=glibc&page=3",
]


def _timed(client, url: str, htmx: bool = False) -> tuple[float, int, int]:
    headers = {"HX-Request": "true", "HX-Target": "workloads"} if htmx else {}
    t0 = time.perf_counter()
    resp = client.get(url, headers=headers)
    return time.perf_counter() - t0, resp.status_code, len(resp.content)


def _queries(client, url: str, htmx: bool = False) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = {"HX-Request": "true", "HX-Target": "workloads"} if htmx else {}
    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(url, headers=headers)
    assert resp.status_code == 200, (url, resp.status_code)
    return len(ctx.captured_queries)


def _summary(times: list[float]) -> dict:
    return {
        "n": len(times),
        "p50": percentile(times, 50),
        "p95": percentile(times, 95),
        "max": max(times) if times else float("nan"),
    }


def run(quick: bool, tmp: Path) -> dict:
    import guard
    from django.contrib.auth.models import Group, User
    from django.test import Client
    from django.urls import reverse

    from clusters.models import Cluster, WorkloadResult

    guard.install(str(tmp / "dashboard-misses.log"))
    size = QUICK if quick else FULL
    rnd = random.Random(20261124)
    t0 = time.perf_counter()
    by_risk, pools = demo_templates()
    template_rows = [r for rows in by_risk.values() for r in rows]
    sizes = sorted(_json_size(r) for r in template_rows)
    user = User.objects.create_user("bench-viewer", password="bench-viewer-password-123")
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    client = Client()
    client.force_login(user)

    small = build_cluster("bench-small", SMALL_ROWS, 2, by_risk, pools, rnd)
    fleet_url = reverse("clusters:fleet")
    _queries(client, fleet_url)  # warm
    fleet_queries_before = _queries(client, fleet_url)
    clusters_before = Cluster.objects.count()

    t_load = time.perf_counter()
    big = [
        build_cluster(f"bench-{i:02d}", size["rows_per_scan"], size["scans_per_cluster"], by_risk, pools, rnd)
        for i in range(size["clusters"])
    ]
    load_seconds = time.perf_counter() - t_load
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("analyze")
        cur.execute(
            "select pg_total_relation_size('clusters_workloadresult')"
            " + pg_total_relation_size('clusters_workloadcontent')"
        )
        table_bytes = cur.fetchone()[0]
    total_rows = WorkloadResult.objects.count()

    # Queries per page: small cluster vs large cluster, warm (choices cached) and cold.
    def report_url(cluster, params: str = "") -> str:
        return reverse("clusters:report", args=[cluster.name]) + (f"?{params}" if params else "")

    queries = {"report_page": {}, "table_fragment": {}}
    for params in TABLE_PARAMS:
        for key, htmx in (("report_page", False), ("table_fragment", True)):
            _queries(client, report_url(small, params), htmx)
            _queries(client, report_url(big[0], params), htmx)
            queries[key][params or "(none)"] = {
                "small": _queries(client, report_url(small, params), htmx),
                "large": _queries(client, report_url(big[0], params), htmx),
            }
    fleet_queries_after = _queries(client, fleet_url)

    # Server time: cold first request on a large cluster, then ~N warm requests mixed.
    cold_cluster = big[-1]
    cold_time, cold_status, _ = _timed(client, report_url(cold_cluster))
    for c in big:  # warm each cluster's cached filter choices as a running server would have
        _timed(client, report_url(c), htmx=True)
    frag, page, fleet_times, statuses = [], [], [], set()
    n = size["requests"]
    for i in range(n):
        c = rnd.choice(big)
        params = rnd.choice(TABLE_PARAMS)
        dt, status, _ = _timed(client, report_url(c, params), htmx=True)
        frag.append(dt)
        statuses.add(status)
        if i % 2 == 0:
            dt, status, _ = _timed(client, report_url(c, params))
            page.append(dt)
            statuses.add(status)
        if i % 4 == 0:
            dt, status, _ = _timed(client, fleet_url)
            fleet_times.append(dt)
            statuses.add(status)

    # Load: gunicorn + wrk.
    session = client.cookies["sessionid"].value
    paths = [report_url(c, p) for c in big for p in TABLE_PARAMS]
    load = run_wrk(tmp, session, paths, size["wrk_connections"], size["wrk_seconds"])

    report_q = [v["large"] for v in queries["report_page"].values()]
    frag_q = [v["large"] for v in queries["table_fragment"].values()]
    constant = all(v["small"] == v["large"] for k in queries for v in queries[k].values())
    return {
        "size": size,
        "rows": total_rows,
        "clusters": Cluster.objects.count(),
        "table_mb": table_bytes / 1024 / 1024,
        "load_seconds": load_seconds,
        "setup_seconds": time.perf_counter() - t0,
        "template_rows": len(template_rows),
        "row_json_bytes": {"min": sizes[0], "median": sizes[len(sizes) // 2], "max": sizes[-1]},
        "queries": queries,
        "queries_constant": constant,
        "queries_report_page_range": [min(report_q), max(report_q)],
        "queries_fragment_range": [min(frag_q), max(frag_q)],
        "fleet_queries": {
            "clusters_before": clusters_before,
            "before": fleet_queries_before,
            "clusters_after": Cluster.objects.count(),
            "after": fleet_queries_after,
        },
        "cold_report_page": {"seconds": cold_time, "status": cold_status},
        "table_fragment": _summary(frag),
        "report_page": _summary(page),
        "fleet_overview": _summary(fleet_times),
        "statuses": sorted(statuses),
        "load": load,
        "targets": {"table_p95_ms": 100, "fleet_p95_ms": 100, "load_p95_ms": 300},
    }


# --- load with gunicorn and wrk ----------------------------------------------------------------------------------


WRK_LUA = r"""
local paths = {%(paths)s}
local cookie = "sessionid=%(session)s"
local counter = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
  counter = math.random(#paths)
end

function request()
  counter = counter + 1
  local path = paths[(counter %% #paths) + 1]
  return wrk.format("GET", path, {["Cookie"] = cookie})
end

function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("non200") end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d, "non200": %%d, "p50_us": %%d, "p90_us": %%d, "p95_us": %%d, ' ..
    '"p99_us": %%d, "max_us": %%d, "mean_us": %%f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    bad, latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def _wait_port(port: int, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited early ({proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start listening")


def run_wrk(
    tmp: Path, session: str, paths: list[str], connections: int, seconds: int, workers: int = 4
) -> dict:
    """Serve with gunicorn, check one page answers 200 with the cookie, then run wrk."""
    import urllib.request

    wrk = shutil.which("wrk")
    if wrk is None:
        return {"skipped": "wrk not installed (apt-get install wrk)"}
    port = free_port()
    env = offline_env({"DEBUG": "0"})
    log = open(tmp / "gunicorn.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "dnsaudit.wsgi:application",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            "60",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_port(port, proc)
        base = f"http://127.0.0.1:{port}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for path in paths[:3]:  # sanity: the cookie logs us in (a redirect to /login would count as success)
            req = urllib.request.Request(base + path, headers={"Cookie": f"sessionid={session}"})
            with opener.open(req, timeout=30) as resp:
                if resp.status != 200 or resp.url.rstrip("/") != (base + path).rstrip("/"):
                    raise RuntimeError(f"{path}: {resp.status} at {resp.url}")
        script = tmp / "report-pages.lua"
        script.write_text(WRK_LUA % {"paths": ", ".join(json.dumps(p) for p in paths), "session": session})
        workers_pids = children_of(proc.pid)
        cpu_before = sum(cpu_seconds(p) for p in workers_pids)
        cmd = [
            wrk,
            "-t",
            "2",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            base + "/",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
        cpu_used = sum(cpu_seconds(p) for p in workers_pids) - cpu_before
        m = re.search(r"^WRKJSON (\{.*\})$", out.stdout, re.M)
        if not m:
            return {"error": f"wrk printed no summary: {out.stdout[-1000:]} {out.stderr[-1000:]}"}
        data = json.loads(m.group(1))
        data.update(
            connections=connections,
            seconds=seconds,
            gunicorn_workers=workers,
            errors=data["connect"]
            + data["read"]
            + data["write"]
            + data["status"]
            + data["timeout"]
            + data["non200"],
            rps=data["requests"] / (data["duration_us"] / 1e6),
            server_cpu_ms_per_request=1000 * cpu_used / max(1, data["requests"]),
            wrk_output=out.stdout,
        )
        return data
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# --- output ------------------------------------------------------------------------------------------------------


def report_rows(r: dict) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    size = r["size"]
    t, p, f = r["table_fragment"], r["report_page"], r["fleet_overview"]
    fq = r["fleet_queries"]
    data_rows = [
        (
            "rows stored",
            f"{r['rows']} WorkloadResult rows, {r['clusters']} clusters "
            f"({size['clusters']} x {size['scans_per_cluster']} scans x {size['rows_per_scan']} + small + demo "
            "+ whatever the scan benchmarks stored in this run)",
            "",
            "",
        ),
        ("table size on disk", f"{r['table_mb']:.0f} MB", "", ""),
        (
            "report+detail JSON per row (from a real demo scan)",
            f"median {r['row_json_bytes']['median']} B, max {r['row_json_bytes']['max']} B",
            "",
            "",
        ),
    ]
    time_rows = [
        (
            "workloads table (htmx fragment) p50 / p95",
            f"{fmt_ms(t['p50'])} / {fmt_ms(t['p95'])}",
            "p95 <= 100 ms",
            verdict(t["p95"] * 1000, 100),
        ),
        (
            "cluster report page (full) p50 / p95",
            f"{fmt_ms(p['p50'])} / {fmt_ms(p['p95'])}",
            "p95 <= 100 ms",
            verdict(p["p95"] * 1000, 100),
        ),
        (
            "fleet overview p50 / p95",
            f"{fmt_ms(f['p50'])} / {fmt_ms(f['p95'])}",
            "p95 <= 100 ms",
            verdict(f["p95"] * 1000, 100),
        ),
        ("requests (fragment / page / fleet)", f"{t['n']} / {p['n']} / {f['n']}", "", ""),
        ("cold first report page (choices not cached)", fmt_ms(r["cold_report_page"]["seconds"]), "", ""),
        (
            "queries per report page (large cluster)",
            "{}..{}".format(*r["queries_report_page_range"]),
            "constant",
            "",
        ),
        (
            "queries per table fragment (large cluster)",
            "{}..{}".format(*r["queries_fragment_range"]),
            "constant",
            "",
        ),
        (
            "same query count with 20 rows and with large rows",
            str(r["queries_constant"]),
            "True",
            "MET" if r["queries_constant"] else "MISSED",
        ),
        (
            "fleet overview queries",
            f"{fq['before']} with {fq['clusters_before']} clusters, "
            f"{fq['after']} with {fq['clusters_after']}",
            "constant",
            "MET" if fq["before"] == fq["after"] else "MISSED",
        ),
    ]
    out = [("Dashboard: data", data_rows), ("Dashboard: server time (Django test client)", time_rows)]
    load = r["load"]
    if "requests" in load:
        load_rows = [
            (
                "setup",
                f"gunicorn {load['gunicorn_workers']} sync workers, wrk -t2 -c{load['connections']} "
                f"-d{load['seconds']}s, report pages with filters",
                "",
                "",
            ),
            ("requests / throughput", f"{load['requests']} / {load['rps']:.0f} req/s", "", ""),
            (
                "errors (socket + non-200)",
                str(load["errors"]),
                "0",
                "MET" if load["errors"] == 0 else "MISSED",
            ),
            (
                "latency p50 / p90 / p99",
                f"{load['p50_us'] / 1000:.0f} / {load['p90_us'] / 1000:.0f} / "
                f"{load['p99_us'] / 1000:.0f} ms",
                "",
                "",
            ),
            (
                "latency p95 | gunicorn CPU per request (all workers)",
                f"{load['p95_us'] / 1000:.0f} ms | {load['server_cpu_ms_per_request']:.1f} ms CPU "
                f"(x {load['rps']:.0f} req/s = {load['server_cpu_ms_per_request'] * load['rps'] / 1000:.2f} "
                f"of {os.cpu_count()} CPUs)",
                "<= 300 ms",
                verdict(load["p95_us"] / 1000, 300),
            ),
        ]
    else:
        load_rows = [("load test", load.get("skipped") or load.get("error", "?"), "", "n/a")]
    out.append(("Dashboard: load (gunicorn + wrk)", load_rows))
    return out
