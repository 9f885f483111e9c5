"""``manage.py dnsprobe``: would Alpine (musl) pods fail to resolve these names here?

Reads a resolv.conf (default ``/etc/resolv.conf``), asks its nameservers, with dnspython, exactly the
questions each libc would ask (through the simulation in :mod:`dnsaudit.core.resolver` fed by
:func:`dnsaudit.boundary.dns.live_oracle`), and reports per libc the outcome and every query with its
answer.

Exit status:
  0  every name resolves under musl;
  1  some name resolves under glibc but not under musl (the musl-specific failure this tool hunts);
  3  some name fails under both libcs, and none fails under musl only;
  2  bad usage: unreadable file, bad version string, no names, unusable nameserver address;
  4  a query could not be sent at all (local network error; a timeout is an answer, not an error).
Both libcs are always simulated for the exit status; ``--libc`` only selects what is printed.

For tests and demos, ``--port N`` (hidden) or the environment variable ``DNSAUDIT_DNS_PORT`` sends every
query to port N of the file's nameservers instead of 53 (e.g. a scripted server on ``127.0.0.1:5353``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from dnsaudit.boundary.dns import DNSProbeError, live_oracle
from dnsaudit.core.model import Resolution

VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?$")
PORT_ENV = "DNSAUDIT_DNS_PORT"


def nameservers_of(text: str) -> list[str]:
    """The nameserver addresses a libc would use: first three ``nameserver`` lines, else 127.0.0.1."""
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            found.append(parts[1])
    return found[:3] or ["127.0.0.1"]


def resolution_json(res: Resolution) -> dict[str, Any]:
    """The per-libc object of ``--json``: the documented keys first, then extra detail."""
    return {
        "ok": res.ok,
        "error": res.error,
        "addresses": list(res.addresses),
        "queries": [
            {"name": q.name, "type": q.type, "server": q.server, "answer": q.answer, "transport": q.transport}
            for q in res.queries
        ],
        "version": res.version,
        "candidates": list(res.candidates),
        "stopped_at": res.stopped_at,
        "elapsed": res.elapsed,
        "explanation": res.explanation,
    }


class Command(BaseCommand):
    help = "Simulate musl and glibc getaddrinfo() for NAMEs against the live nameservers of a resolv.conf."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("names", nargs="*", metavar="NAME", help="names to look up, as a program would")
        parser.add_argument("--resolv-conf", default="/etc/resolv.conf", help="default: /etc/resolv.conf")
        parser.add_argument("--libc", choices=("musl", "glibc", "both"), default="both", help="what to print")
        parser.add_argument(
            "--musl-version", default="1.2.5", help="musl version to simulate (default 1.2.5)"
        )
        parser.add_argument(
            "--glibc-version", default="2.36", help="glibc version to simulate (default 2.36)"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait per live query")
        parser.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)

    def handle(self, *args: Any, **opts: Any) -> None:
        names: list[str] = opts["names"]
        if not names:
            raise CommandError("give at least one NAME to look up", returncode=2)
        for key in ("musl_version", "glibc_version"):
            if not VERSION_RE.match(opts[key]):
                flag = "--" + key.replace("_", "-")
                raise CommandError(f"{flag}: {opts[key]!r} is not a version like 1.2.5", returncode=2)
        path = opts["resolv_conf"]
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}", returncode=2) from None
        port = opts["port"]
        if port is None and os.environ.get(PORT_ENV):
            try:
                port = int(os.environ[PORT_ENV])
            except ValueError:
                raise CommandError(f"{PORT_ENV} must be a port number", returncode=2) from None
        servers = nameservers_of(text)
        overrides = {s: port for s in servers} if port else None
        oracle = live_oracle(timeout=opts["timeout"], port_overrides=overrides)

        from dnsaudit.core import resolver  # the pure simulation

        results = []
        try:
            for name in names:
                musl = resolver.simulate_musl(name, text, oracle, version=opts["musl_version"])
                glibc = resolver.simulate_glibc(name, text, oracle, version=opts["glibc_version"])
                results.append((name, musl, glibc))
        except DNSProbeError as exc:
            raise CommandError(str(exc), returncode=2 if not exc.transient else 4) from None
        except ValueError as exc:  # e.g. a version the simulation does not know
            raise CommandError(str(exc), returncode=2) from None

        show = ("musl", "glibc") if opts["libc"] == "both" else (opts["libc"],)
        if opts["json"]:
            doc = {
                "resolv_conf": path,
                "nameservers": servers,
                "names": [
                    {
                        "name": name,
                        **{k: resolution_json(r) for k, r in (("musl", m), ("glibc", g)) if k in show},
                    }
                    for name, m, g in results
                ],
            }
            self.stdout.write(json.dumps(doc, indent=2))
        elif sys.stdout.isatty() and self.stdout._out is sys.stdout:
            self._rich(results, show)
        else:
            self._plain(results, show)

        code = exit_code([(m.ok, g.ok) for _, m, g in results])
        if code:
            sys.exit(code)

    def _plain(self, results: list, show: tuple[str, ...]) -> None:
        for name, musl, glibc in results:
            self.stdout.write(name)
            for res in (musl, glibc):
                if res.libc not in show:
                    continue
                verdict = "OK " + ", ".join(res.addresses) if res.ok else f"FAIL {res.error}"
                self.stdout.write(f"  {res.libc} {res.version or ''}: {verdict} ({res.elapsed:.1f} s)")
                if res.explanation:
                    self.stdout.write(f"    {res.explanation}")
                for q in res.queries:
                    self.stdout.write(
                        f"    {q.type:<4} {q.name:<50} @{q.server:<15} {q.transport} {q.answer}"
                    )

    def _rich(self, results: list, show: tuple[str, ...]) -> None:
        from rich.console import Console
        from rich.table import Table

        console = Console()
        for name, musl, glibc in results:
            for res in (musl, glibc):
                if res.libc not in show:
                    continue
                verdict = (
                    "[green]OK[/] " + ", ".join(res.addresses) if res.ok else f"[red]FAIL {res.error}[/]"
                )
                table = Table(
                    title=f"{name} — {res.libc} {res.version or ''}: {verdict}", title_justify="left"
                )
                for col in ("type", "name", "server", "transport", "answer"):
                    table.add_column(col, overflow="fold")
                for q in res.queries:
                    table.add_row(q.type, q.name, q.server, q.transport, q.answer)
                console.print(table)
                if res.explanation:
                    console.print(res.explanation)


def exit_code(outcomes: list[tuple[bool, bool]]) -> int:
    """0 all resolve under musl; 1 some name is musl-only broken; 3 failures, all under both libcs."""
    if any(not m and g for m, g in outcomes):
        return 1
    if any(not m for m, _ in outcomes):
        return 3
    return 0
