"""``manage.py dnsprobe`` end to end: a real process, live queries to the scripted DNS on loopback.

The resolv.conf says ``nameserver 127.0.0.1``; the hidden ``--port`` (or ``DNSAUDIT_DNS_PORT``) points the
queries at the scripted server's unprivileged port. Expected outcomes come from domain.md §8.1 (R1, R2,
R22), not from the simulation.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dnsaudit.testbed.fakedns import Behaviour, Rule, ScriptedDNS
from tests.support import need

ROOT = Path(__file__).resolve().parents[2]
SEARCH = "search default.svc.cluster.local svc.cluster.local cluster.local openstacklocal\n"
GOOGLE = Rule("google.com", Behaviour("answer", a=("142.250.1.1",), aaaa=("2a00:1450::1",)))


def dnsprobe(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "dnsprobe", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "dnsaudit.settings", **(env or {})},
    )


@pytest.fixture
def resolv(tmp_path: Path) -> Path:
    path = tmp_path / "resolv.conf"
    path.write_text(SEARCH + "nameserver 127.0.0.1\noptions ndots:5 timeout:1 attempts:1\n")
    return path


@pytest.fixture
def needs_simulation() -> None:
    need(
        importlib.util.find_spec("dnsaudit.core.resolver") is not None,
        "dnsaudit.core.resolver not written yet",
    )


def test_nodata_search_domain_is_reported_as_musl_only_failure(resolv: Path, needs_simulation: None) -> None:
    with ScriptedDNS([GOOGLE, Rule("*.openstacklocal", Behaviour("NODATA"))]) as srv:
        out = dnsprobe("--resolv-conf", str(resolv), "--port", str(srv.port), "--json", "google.com")
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    [entry] = doc["names"]
    assert entry["name"] == "google.com"
    assert entry["musl"]["ok"] is False and entry["musl"]["error"] == "EAI_NODATA"
    assert entry["glibc"]["ok"] is True and set(entry["glibc"]["addresses"]) == {
        "142.250.1.1",
        "2a00:1450::1",
    }
    musl_names = [q["name"] for q in entry["musl"]["queries"]]
    assert musl_names[-1].rstrip(".") == "google.com.openstacklocal"
    assert "google.com" not in [n.rstrip(".") for n in musl_names]  # musl never got to the real name
    last = entry["musl"]["queries"][-1]
    assert (
        last["answer"] == "NODATA"
        and last["server"].startswith("127.0.0.1")
        and last["type"] in ("A", "AAAA")
    )
    # and the questions really went over the wire
    assert ("google.com.openstacklocal", "A") in [(e.qname, e.qtype) for e in srv.log]


def test_musl_123_reports_nonexistent_instead_of_nodata(resolv: Path, needs_simulation: None) -> None:
    with ScriptedDNS([GOOGLE, Rule("*.openstacklocal", Behaviour("NODATA"))]) as srv:
        out = dnsprobe(
            "--resolv-conf",
            str(resolv),
            "--port",
            str(srv.port),
            "--json",
            "--libc",
            "musl",
            "--musl-version",
            "1.2.3",
            "google.com",
        )
    assert out.returncode == 1
    entry = json.loads(out.stdout)["names"][0]
    assert "glibc" not in entry and entry["musl"]["error"] == "EAI_NONAME"


def test_all_nxdomain_resolves_everywhere_and_exits_0(resolv: Path, needs_simulation: None) -> None:
    with ScriptedDNS([GOOGLE]) as srv:
        out = dnsprobe(
            "--resolv-conf", str(resolv), "--json", "google.com", env={"DNSAUDIT_DNS_PORT": str(srv.port)}
        )
    assert out.returncode == 0, out.stderr
    entry = json.loads(out.stdout)["names"][0]
    assert entry["musl"]["ok"] and entry["glibc"]["ok"]
    assert [q["name"].rstrip(".") for q in entry["musl"]["queries"]][-1] == "google.com"


def test_name_missing_everywhere_exits_3(resolv: Path, needs_simulation: None) -> None:
    with ScriptedDNS([GOOGLE]) as srv:
        out = dnsprobe(
            "--resolv-conf", str(resolv), "--port", str(srv.port), "google.com", "doesnotexist.example"
        )
    assert out.returncode == 3, out.stderr
    assert "EAI_NONAME" in out.stdout and "doesnotexist.example" in out.stdout


def test_human_output_lists_queries_and_outcomes(resolv: Path, needs_simulation: None) -> None:
    with ScriptedDNS([GOOGLE, Rule("*.openstacklocal", Behaviour("SERVFAIL"))]) as srv:
        out = dnsprobe("--resolv-conf", str(resolv), "--port", str(srv.port), "google.com")
    assert out.returncode == 1
    assert (
        "EAI_AGAIN" in out.stdout and "SERVFAIL" in out.stdout and "google.com.openstacklocal" in out.stdout
    )
    assert "142.250.1.1" in out.stdout  # glibc's success


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((), "NAME"),
        (("--musl-version", "1.x", "google.com"), "1.x"),
        (("--resolv-conf", "/nonexistent/resolv.conf", "google.com"), "/nonexistent/resolv.conf"),
    ],
)
def test_bad_usage_exits_2_with_one_line_and_no_traceback(args: tuple[str, ...], reason: str) -> None:
    out = dnsprobe(*args)
    assert out.returncode == 2
    assert reason in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
