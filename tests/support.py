"""Helpers shared by the test suite.

``need(ok, why)``: a test that depends on something outside Python (a service, root, a binary) calls
this. Locally a missing dependency skips the test with the reason; under ``CI=true`` it fails, so
nothing hides in CI.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(ok: bool, why: str) -> None:
    """Skip (locally) or fail (under CI=true) when ``ok`` is false."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"required for this test and missing under CI: {why}", pytrace=False)
    pytest.skip(why)  # reached only outside CI: under CI=true the line above failed the test


def need_binary(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"binary {name!r} not found on PATH (the test command installs it)")
    return path  # type: ignore[return-value]


def need_root() -> None:
    need(os.geteuid() == 0, "needs root (network namespaces)")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
