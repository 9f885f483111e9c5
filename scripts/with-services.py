#!/usr/bin/env python3
"""Run a command with throwaway PostgreSQL and Redis instances on free loopback ports.

    scripts/with-services.py [--no-postgres] [--no-redis] -- COMMAND...

Starts each service from its Debian binaries in a temporary directory (never the machine's own
instances), exports ``DATABASE_URL``, ``REDIS_URL`` and ``DNSAUDIT_TEST_SERVICES=1`` to the command,
and stops and deletes everything afterwards. Exits with the command's exit code. A service that cannot
start is an error (exit 70) — the test suite must not silently fall back to SQLite.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, name: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"with-services: {name} exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"with-services: {name} did not listen on 127.0.0.1:{port} within {seconds:.0f}s")


def pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise SystemExit("with-services: PostgreSQL server binaries not found (apt-get install postgresql)")
    return Path(found[-1]).parent


def _as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; run it as the 'postgres' system user the package creates.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextmanager
def postgres():
    bindir = pg_bindir()
    tmp = Path(tempfile.mkdtemp(prefix="dnsaudit-pg-"))
    data = tmp / "data"
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
    subprocess.run(
        _as_postgres(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    proc = subprocess.Popen(
        _as_postgres(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={tmp}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "postgres.log", "wb"),  # noqa: SIM115 - closed with the process
    )
    try:
        wait_port(port, proc, "postgres")
        # The port accepts connections slightly before the server is ready for queries.
        for _ in range(100):
            ok = subprocess.run(
                _as_postgres(
                    [
                        str(bindir / "psql"),
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "-U",
                        "postgres",
                        "-c",
                        "select 1",
                    ]
                ),
                capture_output=True,
            )
            if ok.returncode == 0:
                break
            time.sleep(0.1)
        subprocess.run(
            _as_postgres(
                [
                    str(bindir / "psql"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "-c",
                    "create database dnsaudit",
                ]
            ),
            check=True,
            capture_output=True,
        )
        yield f"postgres://postgres@127.0.0.1:{port}/dnsaudit"
    finally:
        proc.send_signal(signal.SIGINT)  # fast shutdown
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def redis():
    binary = shutil.which("redis-server")
    if not binary:
        raise SystemExit("with-services: redis-server not found (apt-get install redis-server)")
    tmp = Path(tempfile.mkdtemp(prefix="dnsaudit-redis-"))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc, "redis")
        yield f"redis://127.0.0.1:{port}/0", binary, port, tmp
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    env = dict(os.environ, DNSAUDIT_TEST_SERVICES="1")
    with ExitStack() as stack:
        if not args.no_postgres:
            env["DATABASE_URL"] = stack.enter_context(postgres())
            print(f"with-services: PostgreSQL at {env['DATABASE_URL']}", flush=True)
        if not args.no_redis:
            url, binary, port, _ = stack.enter_context(redis())
            env["REDIS_URL"] = url
            env["DNSAUDIT_TEST_REDIS_SERVER"] = binary
            env["DNSAUDIT_TEST_REDIS_PORT"] = str(port)
            print(f"with-services: Redis at {url}", flush=True)
        return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main())
