"""Settings: strict environment helpers, production settings pass check --deploy, bad values stop the start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from dnsaudit import settings as s

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # A clean production-like environment: no test-run variables (the browser tests set
    # DJANGO_ALLOW_ASYNC_UNSAFE for Playwright, which check --deploy rightly refuses).
    skip = ("DNSAUDIT_", "DATABASE_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")
    base = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("value", ["maybe", "2", "yes please"])
def test_env_bool_refuses_what_is_not_a_boolean(monkeypatch, value):
    monkeypatch.setenv("DNSAUDIT_X", value)
    with pytest.raises(ImproperlyConfigured, match="DNSAUDIT_X"):
        s.env_bool("DNSAUDIT_X", False)


def test_env_int_refuses_what_is_not_an_integer(monkeypatch):
    monkeypatch.setenv("DNSAUDIT_X", "ten")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        s.env_int("DNSAUDIT_X", 1)


def test_env_list_splits_and_trims(monkeypatch):
    monkeypatch.setenv("DNSAUDIT_X", " a, b ,,c ")
    assert s.env_list("DNSAUDIT_X", []) == ["a", "b", "c"]


def test_production_settings_pass_check_deploy(tmp_path):
    env = {
        "DNSAUDIT_PRODUCTION": "1",
        "SECRET_KEY": "x" * 20 + Fernet.generate_key().decode() + "y" * 20,
        "ALLOWED_HOSTS": "dnsaudit.example",
        "DNSAUDIT_FERNET_KEYS": Fernet.generate_key().decode(),
        "DNSAUDIT_VAR_DIR": str(tmp_path),
    }
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert done.returncode == 0, done.stdout + done.stderr


def test_production_without_fernet_keys_refuses_to_start(tmp_path):
    env = {"DNSAUDIT_PRODUCTION": "1", "SECRET_KEY": "z" * 60, "DNSAUDIT_VAR_DIR": str(tmp_path)}
    done = manage("check", env=env)
    assert done.returncode != 0
    assert "DNSAUDIT_FERNET_KEYS is required in production" in done.stderr


def test_bad_registry_mirrors_fail_the_system_check(tmp_path):
    done = manage(
        "check", env={"DNSAUDIT_REGISTRY_MIRRORS": "not-a-mirror", "DNSAUDIT_VAR_DIR": str(tmp_path)}
    )
    assert done.returncode != 0
    assert "dnsaudit.E001" in done.stderr and "DNSAUDIT_REGISTRY_MIRRORS" in done.stderr
