"""Fixtures for the real-libc lab: compiled probes (once per session) and a parallel scenario runner."""

from __future__ import annotations

import importlib.util
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.lab.harness import RealOutcome, compile_probes, run_scenario
from tests.lab.scenarios import BY_ID
from tests.support import need, need_binary, need_root

#: Scenarios run in parallel, each in its own namespace; the slowest (R5: 5 s + 5 s + 10 s) bounds
#: the wall time. Kept modest so delay-based races (R17's 0.3 s) are not disturbed by CPU load.
WORKERS = 8


@pytest.fixture(scope="session")
def probes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The getaddrinfo probe built against glibc, musl 1.2.3 and musl 1.2.5 (cached for the session)."""
    need_binary("gcc")
    need_binary("musl-gcc")  # Debian package musl-tools (musl 1.2.3)
    need(importlib.util.find_spec("ziglang") is not None, "PyPI package ziglang (bundles musl 1.2.5)")
    return compile_probes(tmp_path_factory.mktemp("probes"))


class LabRunner:
    """Runs scenarios in their namespaces on a thread pool; ``outcomes(id)`` waits for one."""

    def __init__(self, probes: dict[str, Path], prefetch: list[str]) -> None:
        self.probes = probes
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="lab")
        self.futures: dict[str, Future] = {}
        for sid in prefetch:
            self._submit(sid)

    def _submit(self, sid: str) -> Future:
        if sid not in self.futures:
            self.futures[sid] = self.pool.submit(run_scenario, BY_ID[sid], self.probes)
        return self.futures[sid]

    def outcomes(self, sid: str) -> dict[str, RealOutcome]:
        return self._submit(sid).result(timeout=240)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest, probes: dict[str, Path]):
    """The scenario runner, already working on every scenario the session selected."""
    need_root()
    need_binary("ip")  # Debian package iproute2
    selected = []
    for item in request.session.items:
        sid = getattr(getattr(item, "callspec", None), "params", {}).get("scenario_id")
        if sid in BY_ID and sid not in selected:
            selected.append(sid)
    runner = LabRunner(probes, selected)
    yield runner
    runner.close()
