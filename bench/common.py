"""Shared plumbing for the benchmarks: the machine, child processes, Django setup, tables.

Benchmarks print figures from ONE run on a shared machine: they are evidence for the README, not
tests. Nothing here leaves loopback: every child process gets HTTPS proxies pointed at a closed
loopback port (a registry lookup fails at once instead of leaving the machine), and the scan children
also count registry calls (cache misses), which must be zero for the figures to mean anything.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for every child: this one, plus proxies that make any non-loopback HTTP fail fast."""
    dead = f"http://127.0.0.1:{free_port()}"
    env = dict(os.environ)
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy"):
        env[var] = dead
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(BENCH), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("DJANGO_SETTINGS_MODULE", "dnsaudit.settings")
    env.setdefault("LOG_LEVEL", "WARNING")
    env.update(extra or {})
    return env


def setup_django() -> None:
    """Configure Django in this process (settings from the environment run.py prepared) and migrate."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dnsaudit.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


# --- measuring -----------------------------------------------------------------------------------------


def vm_hwm_mb(pid: int | str = "self") -> float | None:
    """Peak resident set size (VmHWM) of a process in MB, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmHWM:\s+(\d+)\s+kB", text, re.M)
    return int(m.group(1)) / 1024 if m else None


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/<pid>/task/*/children)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU jiffies of the whole machine so far, from /proc/stat (every user's load)."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return float(sum(parts) - idle), float(sum(parts))


def busy_fraction(before: tuple[float, float], after: tuple[float, float]) -> float:
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else float("nan")


def percentile(values: Iterable[float], pct: float) -> float:
    """Nearest-rank percentile (the value below which ``pct`` % of the samples fall)."""
    data = sorted(values)
    if not data:
        return float("nan")
    rank = max(1, min(len(data), int(round(pct / 100 * len(data) + 0.5))))
    return data[rank - 1]


def run_json_child(args: list[str], env: dict[str, str], timeout: float = 3600) -> dict:
    """Run ``python bench/<script> ...`` and return the JSON object it prints on its last stdout line."""
    proc = subprocess.run(
        [PYTHON, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"{' '.join(args)} printed no JSON:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


# --- the test API server in its own process ----------------------------------------------------------------


@dataclass
class KubeServer:
    """A test API server process serving scale clusters; ``fleet`` is its fleet.json."""

    proc: subprocess.Popen
    fleet: dict
    build_seconds: float

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_kube_server(out_dir: Path, clusters: list[dict], env: dict[str, str]) -> KubeServer:
    """Start ``bench/kube_server.py`` with ``clusters`` (scale_cluster keyword sets); wait until it serves.

    The server lives in its own process so that neither its CPU nor its memory is counted as the
    scanner's (a real API server is another machine).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = out_dir / "clusters.json"
    spec.write_text(json.dumps(clusters))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [PYTHON, str(BENCH / "kube_server.py"), "--spec", str(spec), "--out", str(out_dir)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("READY"):
            break
    else:
        raise RuntimeError(f"the test API server exited early ({proc.wait()})")
    fleet = json.loads((out_dir / "fleet.json").read_text())
    return KubeServer(proc, fleet, time.perf_counter() - t0)


# --- the machine ---------------------------------------------------------------------------------------------


def machine() -> dict:
    """nproc, CPU model, memory, kernel, Python, PostgreSQL and Redis versions."""
    cpu = ""
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1).strip() if m else ""
    except OSError:
        pass
    mem_gb = None
    try:
        m = re.search(r"^MemTotal:\s+(\d+)\s+kB", Path("/proc/meminfo").read_text(), re.M)
        mem_gb = round(int(m.group(1)) / 1024 / 1024, 1) if m else None
    except OSError:
        pass
    info = {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": mem_gb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": None,
        "redis": None,
    }
    try:
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("show server_version")
            info["postgresql"] = cur.fetchone()[0]
    except Exception:
        pass
    try:
        out = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=False
        ).stdout
        m = re.search(r"v=(\S+)", out)
        info["redis"] = m.group(1) if m else None
    except OSError:
        pass
    return info


# --- output --------------------------------------------------------------------------------------------------


def verdict(value: float | None, target: float, *, lower_is_better: bool = True) -> str:
    if value is None or value != value:  # None or NaN
        return "n/a"
    ok = value <= target if lower_is_better else value >= target
    return "MET" if ok else "MISSED"


def print_table(title: str, rows: list[tuple[str, str, str, str]]) -> None:
    """A plain four-column table (metric, value, target, verdict): readable in a README code block."""
    head = ("metric", "value", "target", "")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n## {title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
    print(line)
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    sys.stdout.flush()


def fmt_s(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.2f} s"


def fmt_ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def fmt_mb(mb: float | None) -> str:
    return "n/a" if mb is None else f"{mb:.0f} MB"
