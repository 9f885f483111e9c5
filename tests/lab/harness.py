"""The real-libc lab: compile the getaddrinfo probe, run it in a throwaway network namespace.

Each scenario gets its own namespace ``dnsaudit-lab-<rand>`` with loopback up, its own
``/etc/netns/<ns>/{resolv.conf,hosts,nsswitch.conf}`` (``ip netns exec`` bind-mounts them over /etc),
and one scripted DNS server (``python -m dnsaudit.testbed.fakedns``) per nameserver address, on port 53 inside
the namespace. The probe runs once per libc; the servers' JSON-lines log gives the questions that
libc really sent, in order. Namespaces and their /etc/netns folders are always removed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dnsaudit.core.model import Answer
from dnsaudit.testbed.fakedns import Script

ROOT = Path(__file__).resolve().parents[2]
PROBE_C = Path(__file__).with_name("probe.c")
PYTHON = sys.executable

#: libc key -> (simulated libc, version)
LIBCS: dict[str, tuple[str, str]] = {
    "glibc": ("glibc", "2.36"),
    "musl-1.2.3": ("musl", "1.2.3"),
    "musl-1.2.5": ("musl", "1.2.5"),
}
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
NSSWITCH = "hosts: files dns\n"


def compile_probes(outdir: Path) -> dict[str, Path]:
    """Build the probe against glibc (gcc), musl 1.2.3 (Debian musl-gcc) and musl 1.2.5 (ziglang).

    Raises ``subprocess.CalledProcessError`` when a compiler fails (missing ones are checked by the
    caller with ``need_binary``).
    """
    out = {
        "glibc": outdir / "probe-glibc",
        "musl-1.2.3": outdir / "probe-musl-1.2.3",
        "musl-1.2.5": outdir / "probe-musl-1.2.5",
    }
    cmds = {
        "glibc": ["gcc", "-O1", "-o", str(out["glibc"]), str(PROBE_C)],
        "musl-1.2.3": ["musl-gcc", "-static", "-O1", "-o", str(out["musl-1.2.3"]), str(PROBE_C)],
        "musl-1.2.5": [
            PYTHON,
            "-m",
            "ziglang",
            "cc",
            "-target",
            "x86_64-linux-musl",
            "-static",
            "-O1",
            "-o",
            str(out["musl-1.2.5"]),
            str(PROBE_C),
        ],
    }
    procs = {
        k: subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for k, c in cmds.items()
    }
    for key, proc in procs.items():
        output, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmds[key], output)
    return out


@dataclass
class Scenario:
    """One lab case: a resolv.conf, the scripts of its nameservers, the name looked up.

    ``servers`` maps a nameserver address (as written in resolv.conf) to its script.
    ``libcs`` restricts the libcs the case concerns. ``sim_gaps`` marks known simulation gaps. ``documented`` holds what domain.md §8.1 says per
    libc key (``{"glibc": "OK"|"EAI_*"}``); the lab reports any real result that contradicts it.
    """

    id: str
    resolv_conf: str
    name: str
    servers: Mapping[str, Script]
    libcs: tuple[str, ...] = tuple(LIBCS)
    documented: Mapping[str, str] = field(default_factory=dict)
    note: str = ""
    #: libc key -> why the simulation cannot model this case yet (strict xfail: passing again is news)
    sim_gaps: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RealOutcome:
    """What the real libc did: outcome of the probe plus the questions the servers received."""

    libc: str
    ok: bool
    error: str | None
    addresses: list[str]
    elapsed: float
    questions: list[dict]  # {"t", "server", "qname", "qtype", "transport", "peer"} in arrival order

    @property
    def names(self) -> list[str]:
        """Distinct question names in first-seen order."""
        seen: list[str] = []
        for q in self.questions:
            if q["qname"] not in seen:
                seen.append(q["qname"])
        return seen


def oracle_for(servers: Mapping[str, Script]):
    """The simulation's oracle for these scripts: exactly what each server answers (no server = no reply)."""

    def oracle(server: str, qname: str, qtype: str, transport: str) -> Answer:
        host = server.rsplit("#", 1)[0]
        script = servers.get(host)
        if script is None:
            return Answer(None)
        return script.answer(qname, qtype, transport)

    return oracle


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


class Namespace:
    """A network namespace with loopback up and its own resolv.conf/hosts/nsswitch.conf."""

    def __init__(self, resolv_conf: str) -> None:
        self.name = f"dnsaudit-lab-{secrets.token_hex(4)}"
        self.etc = Path("/etc/netns") / self.name
        self.resolv_conf = resolv_conf

    def __enter__(self) -> Namespace:
        self.etc.mkdir(parents=True)
        (self.etc / "resolv.conf").write_text(self.resolv_conf)
        (self.etc / "hosts").write_text(HOSTS)
        if Path("/etc/nsswitch.conf").exists():
            (self.etc / "nsswitch.conf").write_text(NSSWITCH)
        _ip("netns", "add", self.name)
        _ip("netns", "exec", self.name, "ip", "link", "set", "lo", "up")
        return self

    def __exit__(self, *exc: object) -> None:
        _ip("netns", "del", self.name, check=False)
        shutil.rmtree(self.etc, ignore_errors=True)

    def cmd(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]


def run_scenario(scenario: Scenario, probes: Mapping[str, Path], libcs: list[str] | None = None) -> dict:
    """Run ``scenario`` for each libc key; return ``{libc: RealOutcome}``.

    One namespace and one server process per nameserver for the whole scenario; the log is cut per
    libc run by line offset (each probe process has exited before the next starts).
    """
    results: dict[str, RealOutcome] = {}
    with tempfile.TemporaryDirectory(prefix="dnsaudit-lab-") as tmp, Namespace(scenario.resolv_conf) as ns:
        log = Path(tmp) / "queries.jsonl"
        log.touch()
        procs: list[subprocess.Popen] = []
        try:
            for i, (addr, script) in enumerate(scenario.servers.items()):
                sfile = Path(tmp) / f"script{i}.json"
                sfile.write_text(json.dumps(script.to_json()))
                listen = f"[{addr}]:53" if ":" in addr else f"{addr}:53"
                proc = subprocess.Popen(
                    ns.cmd(
                        PYTHON,
                        "-m",
                        "dnsaudit.testbed.fakedns",
                        "--listen",
                        listen,
                        "--script",
                        str(sfile),
                        "--log",
                        str(log),
                    ),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )
                procs.append(proc)
                line = proc.stdout.readline() if proc.stdout else ""
                if not line.startswith("listening"):
                    raise RuntimeError(
                        f"fake DNS did not start on {addr}: {line!r} {proc.stderr.read() if proc.stderr else ''}"
                    )
            for libc in libcs or list(scenario.libcs):
                offset = len(log.read_text().splitlines())
                out = subprocess.run(
                    ns.cmd(str(probes[libc]), scenario.name), capture_output=True, text=True, timeout=90
                )
                if out.returncode != 0 or not out.stdout.strip():
                    raise RuntimeError(f"probe {libc} failed: rc={out.returncode} {out.stderr}")
                time.sleep(0.05)  # let the servers' threads flush the last question
                data = json.loads(out.stdout.strip().splitlines()[-1])
                questions = [json.loads(x) for x in log.read_text().splitlines()[offset:]]
                questions.sort(key=lambda q: q["t"])
                results[libc] = RealOutcome(
                    libc=libc,
                    ok=data["rc"] == 0,
                    error=data["error"],
                    addresses=data["addresses"],
                    elapsed=data["elapsed"],
                    questions=questions,
                )
                # Let delayed replies/late retransmissions of this run drain before the next libc.
                time.sleep(0.05)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                for stream in (proc.stdout, proc.stderr):
                    if stream:
                        stream.close()
    return results
