"""Keep benchmark scans off the network and count image-cache misses.

``install(log_path)`` replaces ``RegistryClient.inspect`` (the method the scan's image stage calls,
``clusters.scan.stages.images.inspect_images``; ``inspect_or_infer`` goes through it too) in this process
and in processes forked from it (Celery's prefork children) with an offline stand-in that appends the
reference to ``log_path`` and answers from the image name. The benchmark pre-seeds the image cache, so
the log must stay empty; a non-empty log makes the run's figures invalid (the report says so).

A scan that takes the verdict another scan is inspecting (the stage's claims, or a layer record)
makes no ``inspect`` call and is rightly not a miss; every image the stage has to read itself goes
through ``inspect`` (``inspect_images`` -> ``inspect_one`` -> ``RegistryClient.inspect``).

``tests/bench/test_guard.py`` proves that a miss in the scan's own image stage is logged.
"""

from __future__ import annotations

import os

#: The method the guard replaces: what ``inspect_images`` calls for every image the cache lacks.
GUARDED = "inspect"


def install(log_path: str | None = None) -> None:
    from dnsaudit.boundary import registry
    from dnsaudit.core.libc import infer_from_reference

    path = log_path or os.environ.get("BENCH_MISS_LOG", "")

    def offline(self, ref: str, platform: str = "linux/amd64", **_kw):
        if path:
            with open(path, "a") as fh:
                fh.write(f"{ref}@{platform}\n")
        verdict = infer_from_reference(ref)
        verdict.platform = platform
        verdict.evidence.append("benchmark: registry not contacted (image cache miss)")
        return verdict

    setattr(registry.RegistryClient, GUARDED, offline)


def misses(log_path: str) -> int:
    try:
        with open(log_path) as fh:
            return sum(1 for _ in fh)
    except OSError:
        return 0
