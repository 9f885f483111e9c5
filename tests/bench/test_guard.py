"""The benchmark's registry guard (``bench/guard.py``) must see an image-cache miss where the scan makes it:
in ``clusters.scan.stages.images.inspect_images``, which calls ``RegistryClient.inspect``."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]


class _Progress:
    def set(self, *a, **kw):
        pass

    def step(self, n=1):
        pass


@pytest.fixture
def guard(monkeypatch):
    """bench/guard.py, installed for this test only (the replaced method is restored afterwards)."""
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    sys.modules.pop("guard", None)
    import guard as bench_guard

    from dnsaudit.boundary import registry

    for name in ("inspect", "inspect_or_infer"):
        monkeypatch.setattr(registry.RegistryClient, name, getattr(registry.RegistryClient, name))
    return bench_guard


@pytest.mark.django_db
def test_guard_counts_a_miss_of_the_scan_image_stage(guard, tmp_path):
    from clusters.models import ImageVerdict
    from clusters.scan.stages.images import inspect_images

    log = tmp_path / "misses.log"
    guard.install(str(log))
    cached = "registry.example.com/team/cached@sha256:" + "a" * 64
    missing = "registry.example.com/team/missing@sha256:" + "b" * 64
    ImageVerdict.objects.create(
        key=f"{cached}@linux/amd64",
        verdict={"libc": "glibc", "confidence": "confirmed", "evidence": ["seed"]},
        confidence="confirmed",
    )
    inv = SimpleNamespace(
        workloads=[],
        images={(cached, None, "linux/amd64"), (missing, None, "linux/amd64")},
        pull_secrets={},
        service_accounts={},
    )
    verdicts = inspect_images(None, inv, [], _Progress())
    assert guard.misses(str(log)) == 1, "the guard did not see the scan's registry call"
    assert log.read_text().splitlines() == [f"{missing}@linux/amd64"]
    assert (
        "benchmark: registry not contacted (image cache miss)" in verdicts[f"{missing}@linux/amd64"].evidence
    )
    assert verdicts[f"{cached}@linux/amd64"].libc == "glibc"
