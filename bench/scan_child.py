"""One measured operation in a fresh process; prints one JSON line (the parent reads the last one).

    python bench/scan_child.py list KUBECONFIG [--resources pods,nodes,...] [--as-scan] [--check-pods]
    python bench/scan_child.py scan SCAN_ID [--profile PATH] [--breakdown]

``list``: the raw paginated listing with the scanner's own client (``KubeClient.iter_list``), timed.
``--as-scan`` lists as the scan does: the client built as the scan builds it (``kube_limits()``), the
default page size, and the cyclic collector paused (``gc_paused``) for the workload resources exactly as
``list_workloads`` pauses it: the fair baseline (a) of the benchmark.
``--check-pods`` also passes every listed pod through the scan's own per-pod checks
(``inventory.Intake.pod``), as the workloads stage does: listing plus the work a scan cannot skip per pod,
the floor of (b) for a scan done in one process.
``BENCH_EXPERIMENT`` runs either under a proposed change (see ``_maybe_freeze``).
``scan``: ``clusters.scan.execute_scan`` (claim, read, audit, save), timed, with the time and RSS at
each stage change (the scan's own progress stages) and the process's peak RSS (VmHWM). Registry calls
are intercepted by ``bench/guard.py`` and counted as cache misses. ``--profile`` writes cProfile stats
of the workloads stage (``list_workloads``: listing, checking pods, inventory) only (of the whole scan
with ``BENCH_PROFILE_WHOLE=1``). ``--breakdown``
adds that stage's wall clock split into listing (``KubeClient.iter_list``: requests, reading, JSON
decoding), checking pods as they stream in (``Intake.pod``) and building the inventory
(``build_inventory``); it costs a clock read per object, so it is measured in a run of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path


def _rss_mb(field: str) -> float:
    text = Path("/proc/self/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.M)
    return int(m.group(1)) / 1024 if m else float("nan")


def do_list(kubeconfig: str, resources: list[str], as_scan: bool = False, check_pods: bool = False) -> dict:
    import contextlib

    from dnsaudit.boundary.kube import KubeClient
    from dnsaudit.core.kubeconfig import parse_kubeconfig

    parsed = parse_kubeconfig(Path(kubeconfig).read_text())
    ctx = parsed.context(parsed.default_context())
    _warm_client(ctx)
    paused_for: set[str] = set()
    if as_scan:
        import django

        django.setup()
        from clusters.scan.progress import gc_paused, kube_limits
        from clusters.scan.stages.listing import WORKLOAD_RESOURCES

        def make_client():
            return KubeClient.from_context(ctx, limits=kube_limits())

        paused_for = set(WORKLOAD_RESOURCES)
    else:
        gc_paused = None  # type: ignore[assignment]

        def make_client():
            return KubeClient.from_context(ctx, timeout=60)

    intake = None
    if check_pods:
        from dnsaudit.core.inventory import Intake

        intake = Intake()
    _maybe_freeze("list")
    baseline = _rss_mb("VmRSS")
    counts: dict[str, int] = {}
    per: dict[str, float] = {}
    cpu0 = _cpu()
    t0 = time.perf_counter()
    with _gc_paused(), make_client() as client:
        for resource in resources:
            n = 0
            t = time.perf_counter()
            pause = gc_paused() if resource in paused_for else contextlib.nullcontext()
            with pause:
                if intake is not None and resource == "pods":
                    check = intake.pod
                    for obj in client.iter_list(resource):
                        check(obj)
                        n += 1
                else:
                    for _ in client.iter_list(resource):
                        n += 1
            counts[resource] = n
            per[resource] = time.perf_counter() - t
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu() - cpu0,
        "counts": counts,
        "seconds_per_resource": per,
        "rss_baseline_mb": baseline,
        "peak_rss_mb": _rss_mb("VmHWM"),
    }


def _warm_client(ctx) -> None:
    """Build and close one client: the first one in a process costs ~0.4 s of one-off set-up in the
    kubernetes package, which a long-running worker pays once, not per scan."""
    from dnsaudit.boundary.kube import KubeClient

    KubeClient.from_context(ctx).close()


def _experiments() -> set[str]:
    return set(filter(None, os.environ.get("BENCH_EXPERIMENT", "").split(",")))


def _maybe_freeze(mode: str) -> None:
    """Experiments the benchmark reports next to the plain figures (``BENCH_EXPERIMENT``, comma-separated):

    * ``freeze``: ``gc.freeze()`` after imports — everything allocated so far (the kubernetes package alone
      is hundreds of thousands of objects) leaves the cyclic collector's reach, as a worker could do once
      after start-up;
    * ``nogc``: the cyclic collector paused for the measured operation (JSON from the API is acyclic).
    """
    import gc

    flags = _experiments()
    if "freeze" in flags:
        gc.collect()
        gc.freeze()


def _gc_paused():
    import contextlib
    import gc

    @contextlib.contextmanager
    def paused():
        if "nogc" not in _experiments():
            yield
            return
        gc.disable()
        try:
            yield
        finally:
            gc.enable()

    return paused()


def install_breakdown() -> dict:
    """Time the parts of the workloads stage (``list_workloads``) as the scan runs them; returns the dict
    the seconds (and counts) accumulate in. Listing is the time spent getting the next object out of
    ``KubeClient.iter_list`` (requests, reading, JSON decoding, page checks); checking is
    ``Intake.pod``; inventory is ``build_inventory`` (raw pods it checks itself are counted ``checked_late``:
    their checking is inside the inventory's time, not streamed); ``seconds`` is the whole stage."""
    from clusters.scan import pipeline
    from dnsaudit.boundary.kube import KubeClient
    from dnsaudit.core import inventory

    acc = {"seconds": 0.0, "listing": 0.0, "checking": 0.0, "inventory": 0.0, "listed": 0, "checked": 0}
    acc["checked_late"] = 0
    inside, building = [False], [False]
    iter_list, pod, build, stage = (
        KubeClient.iter_list,
        inventory.Intake.pod,
        inventory.build_inventory,
        pipeline.list_workloads,
    )

    def timed_iter_list(self, resource, **kw):
        items = iter_list(self, resource, **kw)
        clock = time.perf_counter
        while True:
            t = clock()
            try:
                item = next(items)
            except StopIteration:
                if inside[0]:
                    acc["listing"] += clock() - t
                return
            if inside[0]:
                acc["listing"] += clock() - t
                acc["listed"] += 1
            yield item

    def timed_pod(self, obj):
        if building[0]:
            acc["checked_late"] += 1
            return pod(self, obj)
        t = time.perf_counter()
        try:
            return pod(self, obj)
        finally:
            acc["checking"] += time.perf_counter() - t
            acc["checked"] += 1

    def timed_build(*a, **kw):
        t = time.perf_counter()
        building[0] = True
        try:
            return build(*a, **kw)
        finally:
            building[0] = False
            acc["inventory"] += time.perf_counter() - t

    def timed_stage(*a, **kw):
        t = time.perf_counter()
        inside[0] = True
        try:
            return stage(*a, **kw)
        finally:
            inside[0] = False
            acc["seconds"] += time.perf_counter() - t

    KubeClient.iter_list = timed_iter_list  # type: ignore[method-assign]
    inventory.Intake.pod = timed_pod  # type: ignore[method-assign]
    inventory.build_inventory = timed_build  # the stage imports the module and looks these up per call
    pipeline.list_workloads = timed_stage
    return acc


def _per_image_registry_failures() -> None:
    """The behaviour before issue 12 (the "before" figure of the closed-network benchmark): every image
    tries its registry itself, and nothing inferred is cached."""
    from clusters.scan.stages import images

    images.Reachability.enter = lambda self, registry: (False, None)  # type: ignore[method-assign]
    images.Reachability.done = lambda self, registry, why: None  # type: ignore[method-assign]
    images.inferred_verdict_ttl = lambda: 0.0


def _cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def do_scan(scan_id: int, profile: str | None, breakdown: bool = False) -> dict:
    import django

    django.setup()
    if os.environ.get("BENCH_REAL_REGISTRY") != "1":
        import guard

        guard.install()
    if os.environ.get("BENCH_REGISTRY_PER_IMAGE") == "1":
        _per_image_registry_failures()
    # A worker imports these on its first scan and keeps them: import them before the clock starts, as
    # the raw listing child does for its client, so (b) and (a) compare steady states.
    import dnsaudit.boundary.dns
    import dnsaudit.boundary.kube
    import dnsaudit.boundary.registry
    import dnsaudit.core.audit
    import dnsaudit.core.inventory
    import dnsaudit.core.kubelet  # noqa: F401
    from clusters import registry
    from clusters.models import Scan as _Scan
    from clusters.scan import Progress, execute_scan

    _warm_client(registry.load_context(_Scan.objects.select_related("cluster").get(pk=scan_id).cluster))
    _maybe_freeze("scan")
    from clusters.models import Scan

    stages: list[dict] = []
    t0 = time.perf_counter()
    original = Progress.set

    def recording_set(self, stage=None, **kw):
        if stage is not None and (not stages or stages[-1]["stage"] != stage):
            stages.append({"stage": stage, "at": time.perf_counter() - t0, "rss_mb": _rss_mb("VmRSS")})
        return original(self, stage, **kw)

    Progress.set = recording_set  # type: ignore[method-assign]
    baseline = _rss_mb("VmRSS")
    profiler = None
    if profile:
        import cProfile

        from clusters.scan import pipeline

        profiler = cProfile.Profile()
        if os.environ.get("BENCH_PROFILE_WHOLE") == "1":
            profiler.enable()
        listing = pipeline.list_workloads

        def profiled_list_workloads(*a, **kw):
            profiler.enable()
            try:
                return listing(*a, **kw)
            finally:
                profiler.disable()

        if os.environ.get("BENCH_PROFILE_WHOLE") != "1":
            pipeline.list_workloads = profiled_list_workloads
    parts = install_breakdown() if breakdown else None
    cpu0 = _cpu()
    t0 = time.perf_counter()
    with _gc_paused():
        scan = execute_scan(scan_id, worker="bench")
    seconds = time.perf_counter() - t0
    cpu = _cpu() - cpu0
    if profiler is not None:
        profiler.dump_stats(profile)
    scan = Scan.objects.get(pk=scan_id) if scan is None else scan
    # Durations per stage: from its start to the next stage's start (the last one ends with the scan).
    for i, s in enumerate(stages):
        end = stages[i + 1]["at"] if i + 1 < len(stages) else seconds
        s["seconds"] = end - s["at"]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "status": scan.status,
        "error": scan.error,
        "problems": scan.problems,
        "pods_seen": scan.pods_seen,
        "workloads": scan.workloads_total,
        "affected": scan.affected,
        "at_risk": scan.at_risk,
        "safe": scan.safe,
        "unknown": scan.unknown,
        "images": scan.images_inspected,
        "stages": stages,
        "rss_baseline_mb": baseline,
        "peak_rss_mb": _rss_mb("VmHWM"),
        **({"workloads_breakdown": parts} if parts is not None else {}),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    lp = sub.add_parser("list")
    lp.add_argument("kubeconfig")
    lp.add_argument("--resources", default="pods")
    lp.add_argument("--as-scan", action="store_true")
    lp.add_argument("--check-pods", action="store_true")
    sp = sub.add_parser("scan")
    sp.add_argument("scan_id", type=int)
    sp.add_argument("--profile")
    sp.add_argument("--breakdown", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dnsaudit.settings")
    if args.mode == "list":
        out = do_list(args.kubeconfig, args.resources.split(","), args.as_scan, args.check_pods)
    else:
        out = do_scan(args.scan_id, args.profile, args.breakdown)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
