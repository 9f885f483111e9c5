"""Run the test API server CLI in a child process (benchmarks, ``make run``), and stop it.

A separate process keeps the server's large static heap (50,000 serialised pods) and its threads out
of the measured process, so benchmark figures and peak RSS belong to the code under test only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class FakeKubeProcess:
    proc: subprocess.Popen
    kubeconfig_dir: Path
    fleet: dict  # the fleet.json content: url, kubeconfig, clusters[{name, server, kubeconfig, pools…}]

    def stop(self, timeout: float = 10) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> FakeKubeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn(
    kubeconfig_dir: Path,
    *,
    fleet: str = "demo",
    port: int = 0,
    state_dir: Path | None = None,
    extra: list[str] | None = None,
    timeout: float = 180,
) -> FakeKubeProcess:
    """Start ``python -m dnsaudit.testbed.fakekube`` and wait until it serves; raises RuntimeError if it dies."""
    kubeconfig_dir = Path(kubeconfig_dir)
    args = [
        sys.executable,
        "-m",
        "dnsaudit.testbed.fakekube",
        "--fleet",
        fleet,
        "--port",
        str(port),
        "--kubeconfig-dir",
        str(kubeconfig_dir),
    ]
    if state_dir is not None:
        args += ["--state-dir", str(state_dir)]
    args += extra or []
    root = str(Path(__file__).resolve().parents[3])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "fakekube: serving" in line:
            data = json.loads((kubeconfig_dir / "fleet.json").read_text())
            return FakeKubeProcess(proc, kubeconfig_dir, data)
    proc.kill()
    proc.wait()
    raise RuntimeError("the test API server did not start:\n" + "".join(lines[-20:]))
