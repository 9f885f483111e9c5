"""Image inspection measured cold against a real registry (issue 12).

Debian's ``docker-registry`` (started as ``tests/registry/conftest.py`` does) is filled with generated
images (``dnsaudit.testbed.imagebuild``): three shared base layers (Alpine-like ~3 MB, Debian-like ~28 MB with a
shared ~12 MB runtime layer above it, distroless-like ~2 MB; their metadata first, the bulk after, as in a
real base) and, per image, its own application layer (lognormal size, median ~1.5 MB, incompressible).
Every family is built, pushed and measured the same way. Every reference is pinned by digest, as pods'
imageIDs are. Then, with an empty image cache (no verdict rows, no layer records, nothing in memory):

* the scan's image stage (``clusters.scan.stages.images.inspect_images``, ``DNSAUDIT_IMAGE_CONCURRENCY``
  threads) over all N distinct images: wall time, and for every image the body bytes fetched over HTTP
  (counted at the registry client's socket reads, manifests, configs and layers alike) over the image's
  compressed size (config + layers). Layers read for one image are known to the next (layer records);
* a fleet, cold again: ``fleet_clusters`` clusters with overlapping images, all scanning at once, their
  image stages spread over ``fleet_workers`` worker processes (forked, as Celery's prefork pool does; each
  with its own memory and database connections, so only PostgreSQL is shared between them):
  ``RegistryClient.inspect`` calls per distinct digest.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import requests

FULL = {"images": 300, "app_median_mb": 1.5, "fleet_clusters": 4, "fleet_workers": 2, "scale": 1.0}
QUICK = {"images": 24, "app_median_mb": 0.2, "fleet_clusters": 4, "fleet_workers": 2, "scale": 0.1}


def start_registry(tmp: Path) -> tuple[str, subprocess.Popen]:
    from common import free_port

    port = free_port()
    root = tmp / "registry"
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "config.yml"
    cfg.write_text(
        "version: 0.1\nlog: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    log = (root / "registry.log").open("wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1, proxies={"http": "", "https": ""})
            return f"127.0.0.1:{port}", proc
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("docker-registry did not start")


class _Pool:
    """Incompressible filler: slices of one random buffer, each made unique by a prefix."""

    def __init__(self, size: int) -> None:
        self.data = os.urandom(size)
        self.n = 0

    def take(self, size: int) -> bytes:
        self.n += 1
        start = random.randrange(0, max(1, len(self.data) - size))
        return f"{self.n:016d}".encode() + self.data[start : start + size]


def _bases(pool: _Pool, scale: float):
    """``{family: [(blob, size)...] bottom-first shared layers, entrypoint, app builder}``."""
    from dnsaudit.testbed import imagebuild as ib

    def filled(layer, mb: float, under: str):
        for i in range(max(1, int(mb * scale * 4))):
            layer.file(f"{under}/blob-{i:03d}.bin", pool.take(256 * 1024))
        return layer

    alpine = filled(ib.alpine_layer(), 3, "/usr/lib/bench")
    debian = filled(ib.debian_layer(), 28, "/usr/share/bench")
    runtime = filled(ib.Layer().dir("/usr/local/lib/python3.12"), 12, "/usr/local/lib/python3.12")
    distroless = filled(
        ib.Layer()
        .exe("/lib/x86_64-linux-gnu/libc.so.6", ib.elf_stub(None))
        .exe("/lib64/ld-linux-x86-64.so.2", ib.elf_stub(None))
        .file("/etc/os-release", 'NAME="Debian GNU/Linux"\nID="debian"\nVERSION_ID="12"\n'),
        2,
        "/usr/share/bench",
    )
    return {
        "alpine": ([gzip.compress(alpine.tar(), 6, mtime=0)], ib.MUSL_LOADER_X86_64),
        "debian": (
            [gzip.compress(debian.tar(), 6, mtime=0), gzip.compress(runtime.tar(), 6, mtime=0)],
            ib.GLIBC_LOADER_X86_64,
        ),
        "distroless": ([gzip.compress(distroless.tar(), 6, mtime=0)], ib.GLIBC_LOADER_X86_64),
    }


def build_and_push(host: str, n: int, median_mb: float, scale: float) -> list[dict]:
    """Push ``n`` distinct images; returns ``[{ref, digest, compressed_bytes, family}]``."""
    from dnsaudit.testbed import imagebuild as ib

    random.seed(12)
    pool = _Pool(int(16 * 1024 * 1024 * max(scale, 0.1)))
    bases = _bases(pool, scale)
    pusher = ib.Pusher(f"http://{host}")
    pusher.s.trust_env = False
    families = list(bases)
    out = []
    for i in range(n):
        family = families[i % len(families)]
        shared, loader = bases[family]
        size = int(min(12, max(0.1, random.lognormvariate(0, 0.8) * median_mb)) * 1024 * 1024)
        app = ib.Layer().exe("/app/server", ib.elf_stub(loader)).file("/app/assets.bin", pool.take(size))
        blobs = [*shared, gzip.compress(app.tar(), 6, mtime=0)]
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Entrypoint": ["/app/server"], "Env": ["PATH=/usr/bin:/bin"]},
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [ib.sha256(str(j).encode()) for j in range(len(blobs))],
                },
            }
        ).encode()
        repo = f"bench/{family}-apps"
        manifest = {
            "schemaVersion": 2,
            "mediaType": ib.OCI_MANIFEST,
            "config": {"mediaType": ib.OCI_CONFIG, "digest": pusher.blob(repo, config), "size": len(config)},
            "layers": [
                {"mediaType": ib.OCI_LAYER_GZIP, "digest": pusher.blob(repo, b), "size": len(b)}
                for b in blobs
            ],
        }
        body = json.dumps(manifest).encode()
        digest = ib.sha256(body)
        pusher.manifest(repo, digest, body, ib.OCI_MANIFEST)
        out.append(
            {
                "ref": f"{host}/{repo}@{digest}",
                "digest": digest,
                "family": family,
                "compressed_bytes": len(config) + sum(len(b) for b in blobs),
                # the image's own layer: what any inspection must read in full (anything in it may
                # replace or delete what the base says), so the floor of bytes fetched once bases are known
                "own_layer_bytes": len(blobs[-1]),
            }
        )
    return out


class _Meter:
    """Counts HTTP body bytes per inspection (``dnsaudit.boundary.registry._read1`` is where every body
    byte is read) and ``RegistryClient.inspect`` calls per reference."""

    def __init__(self) -> None:
        from dnsaudit.boundary import registry

        self.local = threading.local()
        self.lock = threading.Lock()
        self.bytes: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self._orig = (registry._read1, registry.RegistryClient.inspect)
        meter = self
        read1, inspect = self._orig

        def counting_read1(raw, n):
            data = read1(raw, n)
            meter.local.n = getattr(meter.local, "n", 0) + len(data)
            return data

        def counting_inspect(client, ref, platform="linux/amd64", **kw):
            meter.local.n = 0
            try:
                return inspect(client, ref, platform, **kw)
            finally:
                with meter.lock:
                    meter.bytes[ref] = meter.bytes.get(ref, 0) + meter.local.n
                    meter.calls[ref] = meter.calls.get(ref, 0) + 1

        registry._read1 = counting_read1
        registry.RegistryClient.inspect = counting_inspect  # type: ignore[method-assign]

    def close(self) -> None:
        from dnsaudit.boundary import registry

        registry._read1, registry.RegistryClient.inspect = self._orig  # type: ignore[method-assign]


class _Progress:
    def set(self, *a, **kw):
        pass

    def step(self, n=1):
        pass


def _stage(refs: list[str]) -> dict:
    from django.db import connection

    from clusters.scan.stages.images import inspect_images

    inv = SimpleNamespace(
        workloads=[], images={(r, None, "linux/amd64") for r in refs}, pull_secrets={}, service_accounts={}
    )
    try:
        return inspect_images(None, inv, [], _Progress())
    finally:
        connection.close()


def _cold() -> None:
    """No verdict, no layer record, in the database or in this process."""
    from clusters.models import ImageVerdict
    from clusters.scan.stages.images import reset_process_caches

    ImageVerdict.objects.all().delete()
    reset_process_caches()


_METER: _Meter | None = None


def _worker(clusters: list[list[str]], out) -> None:
    """One worker process of the fleet: its clusters' image stages, all at once (one thread each)."""
    from clusters.scan.stages.images import reset_process_caches

    assert _METER is not None
    reset_process_caches()
    _METER.bytes.clear()
    _METER.calls.clear()
    try:
        with ThreadPoolExecutor(max_workers=len(clusters)) as pool:
            list(pool.map(_stage, clusters))
        out.put({"calls": dict(_METER.calls), "bytes": dict(_METER.bytes), "error": None})
    except Exception as exc:  # reported by the parent
        out.put({"calls": {}, "bytes": {}, "error": repr(exc)})


def _fleet(subsets: list[list[str]], workers: int) -> tuple[dict[str, int], dict[str, int], float]:
    """Every cluster's image stage at once, spread over ``workers`` forked processes."""
    import multiprocessing

    from django.db import connections

    connections.close_all()  # a forked child must open its own connections
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    shares = [subsets[i::workers] for i in range(workers)]
    procs = [ctx.Process(target=_worker, args=(share, out)) for share in shares if share]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get(timeout=1800) for _ in procs]
    seconds = time.perf_counter() - t0
    for p in procs:
        p.join(60)
    errors = [r["error"] for r in results if r["error"]]
    if errors:
        raise RuntimeError(f"fleet worker failed: {errors[0]}")
    calls: dict[str, int] = {}
    fetched: dict[str, int] = {}
    for r in results:
        for k, v in r["calls"].items():
            calls[k] = calls.get(k, 0) + v
        for k, v in r["bytes"].items():
            fetched[k] = fetched.get(k, 0) + v
    return calls, fetched, seconds


def run(quick: bool, tmp: Path) -> dict:
    global _METER
    from django.conf import settings
    from django.db import connection

    size = QUICK if quick else FULL
    host, proc = start_registry(tmp)
    meter = None
    try:
        t0 = time.perf_counter()
        images = build_and_push(host, size["images"], size["app_median_mb"], size["scale"])
        build_seconds = time.perf_counter() - t0
        refs = [i["ref"] for i in images]
        _cold()
        meter = _METER = _Meter()
        t0 = time.perf_counter()
        verdicts = _stage(refs)
        stage_seconds = time.perf_counter() - t0
        confirmed = sum(1 for r in refs if verdicts[f"{r}@linux/amd64"].confidence == "confirmed")
        ratios = [meter.bytes.get(i["ref"], 0) / i["compressed_bytes"] for i in images]
        by_family = {
            f: statistics.median(
                meter.bytes.get(i["ref"], 0) / i["compressed_bytes"] for i in images if i["family"] == f
            )
            for f in sorted({i["family"] for i in images})
        }
        own = {i["ref"]: i["own_layer_bytes"] / i["compressed_bytes"] for i in images}
        own_by_family = {
            f: statistics.median(own[i["ref"]] for i in images if i["family"] == f) for f in by_family
        }
        fetched_mb_total = sum(meter.bytes.values()) / 2**20
        # The fleet, cold again: overlapping subsets, every cluster scanning at once, over worker processes.
        _cold()
        meter.calls.clear()
        meter.bytes.clear()
        rnd = random.Random(7)
        subsets = [
            sorted(rnd.sample(refs, k=max(1, len(refs) * 6 // 10))) for _ in range(size["fleet_clusters"])
        ]
        subsets[0] = sorted(set(subsets[0]) | (set(refs) - set().union(*subsets[1:])))
        calls_by_ref, fleet_bytes, fleet_seconds = _fleet(subsets, size["fleet_workers"])
        distinct = len({r.split("@", 1)[1] for s in subsets for r in s})
        calls = sum(calls_by_ref.values())
        return {
            "images": len(images),
            "families": {f: sum(1 for i in images if i["family"] == f) for f in by_family},
            "compressed_mb_total": sum(i["compressed_bytes"] for i in images) / 2**20,
            "compressed_mb_median": statistics.median(i["compressed_bytes"] for i in images) / 2**20,
            "build_push_seconds": build_seconds,
            "concurrency": settings.DNSAUDIT_IMAGE_CONCURRENCY,
            "database": connection.vendor,
            "stage_seconds": stage_seconds,
            "confirmed": confirmed,
            "fetched_mb_total": fetched_mb_total,
            "median_fetched_ratio": statistics.median(ratios),
            "median_fetched_ratio_by_family": by_family,
            "median_own_layer_ratio": statistics.median(own.values()),
            "median_own_layer_ratio_by_family": own_by_family,
            "fleet_clusters": size["fleet_clusters"],
            "fleet_workers": size["fleet_workers"],
            "fleet_references": sum(len(s) for s in subsets),
            "fleet_distinct_digests": distinct,
            "fleet_inspections": calls,
            "fleet_inspected_twice": sum(1 for v in calls_by_ref.values() if v > 1),
            "inspections_per_digest": calls / distinct,
            "fleet_fetched_mb_total": sum(fleet_bytes.values()) / 2**20,
            "fleet_seconds": fleet_seconds,
        }
    finally:
        if meter is not None:
            meter.close()
        _METER = None
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
