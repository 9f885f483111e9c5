"""``manage.py inspect-image`` end to end, as a user runs it, against the real test registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dnsaudit.testbed import imagebuild as ib
from tests.support import free_port

pytestmark = pytest.mark.registry

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "DJANGO_SETTINGS_MODULE": "dnsaudit.settings", **(env or {})}
    e.pop("DOCKER_CONFIG", None)
    e.pop("REGISTRY_AUTH_FILE", None)
    return subprocess.run(
        [sys.executable, "manage.py", "inspect-image", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=e,
    )  # fmt: skip


@pytest.fixture(scope="module")
def images(registry):
    p = ib.Pusher(registry.url)
    p.image("cmd/alpine", "3.18", ib.alpine())
    arm_layer = ib.debian_layer()
    arm_layer.exe("/usr/bin/app", ib.elf_stub(ib.GLIBC_LOADER_AARCH64, machine=ib.EM["arm64"]))
    arm = ib.Image([arm_layer], entrypoint=["/usr/bin/app"], architecture="arm64", variant="v8")
    p.index("cmd/multi", "v1", [ib.alpine(), arm])
    return registry.host


def test_json_output_has_the_documented_fields(images):
    r = run(f"{images}/cmd/alpine:3.18", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"ref", "digest", "platform", "libc", "musl_version", "os", "evidence", "confidence"}
    assert out["libc"] == "musl" and out["musl_version"] == "1.2.4" and out["confidence"] == "confirmed"
    assert out["os"] == {"id": "alpine", "version": "3.18.4"} and out["digest"].startswith("sha256:")
    assert out["platform"] == "linux/amd64" and out["ref"] == f"{images}/cmd/alpine:3.18"


def test_platform_option_selects_from_index(images):
    r = run(f"{images}/cmd/multi:v1", "--platform", "linux/arm64", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["libc"] == "glibc"


def test_human_output(images):
    r = run(f"{images}/cmd/alpine:3.18")
    assert r.returncode == 0
    assert "musl 1.2.4 (confirmed)" in r.stdout and "evidence:" in r.stdout


def test_missing_image_exits_1_with_one_line(images):
    r = run(f"{images}/cmd/nope:1")
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "image not found" in r.stderr
    assert "Traceback" not in r.stderr


def test_unreachable_registry_prints_inferred_verdict_and_warns():
    r = run(f"127.0.0.1:{free_port()}/library/alpine:3.16", "--json", "--timeout", "2")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["libc"], out["musl_version"], out["confidence"]) == ("musl", "1.2.3", "inferred")
    assert "warning" in r.stderr and "inferred" in r.stderr


def test_bad_platform_and_bad_reference_are_usage_errors_exit_2():
    for args in (["alpine", "--platform", "linux"], ["UPPER:case"]):
        r = run(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.strip()


def test_missing_argument_is_usage_error():
    r = run()
    assert r.returncode == 2
