"""Settings: strict environment helpers, production settings pass check --deploy, bad values stop the start."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from dnsaudit import settings as s

ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = "x" * 20 + Fernet.generate_key().decode() + "y" * 20


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
    env = {"DNSAUDIT_PRODUCTION": "1", "SECRET_KEY": STRONG_KEY, "DNSAUDIT_VAR_DIR": str(tmp_path)}
    done = manage("check", env=env)
    assert done.returncode != 0
    assert "DNSAUDIT_FERNET_KEYS is required in production" in done.stderr


def test_bad_registry_mirrors_fail_the_system_check(tmp_path):
    done = manage(
        "check", env={"DNSAUDIT_REGISTRY_MIRRORS": "not-a-mirror", "DNSAUDIT_VAR_DIR": str(tmp_path)}
    )
    assert done.returncode != 0
    assert "dnsaudit.E001" in done.stderr and "DNSAUDIT_REGISTRY_MIRRORS" in done.stderr


# --- production by default where it is deployed -------------------------------------------------------


def production_env(tmp_path, **overrides) -> dict[str, str]:
    env = {
        "DNSAUDIT_PRODUCTION": "1",
        "SECRET_KEY": STRONG_KEY,
        "ALLOWED_HOSTS": "dnsaudit.example",
        "DNSAUDIT_FERNET_KEYS": Fernet.generate_key().decode(),
        "DNSAUDIT_VAR_DIR": str(tmp_path),
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


@pytest.mark.parametrize(
    ("secret_key", "message"),
    [
        (None, "SECRET_KEY is required in production"),
        ("", "SECRET_KEY is required in production"),
        (s.DEV_SECRET_KEY, "development or example placeholder"),
        ("change-me-to-a-long-random-string", "development or example placeholder"),
        ("django-insecure-" + "k" * 60, "development or example placeholder"),
        ("short-but-random-Q7x!", "too weak for production"),
        ("ab" * 40, "too weak for production"),
    ],
    ids=["missing", "empty", "dev-key", "env-example", "django-insecure", "short", "few-characters"],
)
def test_production_refuses_a_missing_or_placeholder_secret_key(tmp_path, secret_key, message):
    done = manage("check", env=production_env(tmp_path, SECRET_KEY=secret_key))
    assert done.returncode != 0
    assert message in done.stderr and "secrets.token_urlsafe" in done.stderr  # says how to make one
    assert "Traceback" not in done.stderr.splitlines()[-1]


def test_production_refuses_a_malformed_fernet_key(tmp_path):
    keys = Fernet.generate_key().decode() + ",not-a-fernet-key"
    done = manage("check", env=production_env(tmp_path, DNSAUDIT_FERNET_KEYS=keys))
    assert done.returncode != 0
    assert "DNSAUDIT_FERNET_KEYS: key 2 is not a Fernet key" in done.stderr


def test_production_secret_key_helper_accepts_a_real_key():
    import secrets

    key = secrets.token_urlsafe(50)
    assert s.production_secret_key(key) == key


def _setting(name: str, env: dict[str, str]) -> str:
    done = manage(
        "shell",
        "-c",
        f"from django.conf import settings; print(repr(getattr(settings, {name!r}, None)))",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_proxy_header_is_trusted_only_when_configured(tmp_path):
    assert _setting("SECURE_PROXY_SSL_HEADER", production_env(tmp_path)) == "None"
    trusted = production_env(tmp_path, DNSAUDIT_TRUSTED_PROXY="1")
    assert _setting("SECURE_PROXY_SSL_HEADER", trusted) == "('HTTP_X_FORWARDED_PROTO', 'https')"


def test_production_with_a_trusted_proxy_passes_check_deploy(tmp_path):
    env = production_env(tmp_path, DNSAUDIT_TRUSTED_PROXY="1")
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert done.returncode == 0, done.stdout + done.stderr


def test_development_mode_still_starts_without_any_key(tmp_path):
    """``make run``: no SECRET_KEY, no Fernet keys, SQLite under var/, DEBUG on."""
    done = manage("check", env={"DNSAUDIT_VAR_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert _setting("DEBUG", {"DNSAUDIT_VAR_DIR": str(tmp_path)}) == "True"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DNSAUDIT_LOGIN_FAILURE_LIMIT", "0", "DNSAUDIT_LOGIN_FAILURE_LIMIT must be at least 1"),
        ("DNSAUDIT_LOGIN_FAILURE_LIMIT", "five", "not an integer"),
        ("DNSAUDIT_TRUSTED_PROXY", "maybe", "DNSAUDIT_TRUSTED_PROXY"),
    ],
)
def test_bad_throttling_and_proxy_values_stop_the_start(tmp_path, name, value, message):
    done = manage("check", env={"DNSAUDIT_VAR_DIR": str(tmp_path), name: value})
    assert done.returncode != 0 and message in done.stderr


def _dockerfile_env() -> dict[str, str]:
    """The ``ENV`` of the Dockerfile's final stage, as ``docker build`` would set it (KEY=VALUE form)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages = re.split(r"^FROM\s", text, flags=re.M)
    env: dict[str, str] = {}
    for line in stages[-1].splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0].upper() == "ENV":
            for item in shlex.split(parts[1]):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def test_dockerfile_image_runs_production_settings():
    env = _dockerfile_env()
    assert env.get("DNSAUDIT_PRODUCTION") == "1"
    text = (ROOT / "Dockerfile").read_text()
    # Only the secret-less build step may switch it off, on its own command line, never for the CMD.
    for line in text.splitlines():
        if "DNSAUDIT_PRODUCTION=0" in line:
            assert line.startswith("RUN ") and "collectstatic" in line, line
    assert "DNSAUDIT_PRODUCTION" not in text.split("\nCMD", 1)[1]
    assert "SECRET_KEY" not in env and "DNSAUDIT_FERNET_KEYS" not in env  # never baked into the image
    assert env.get("DNSAUDIT_TRUSTED_PROXY", "0") in ("", "0")


def test_dockerfile_settings_refuse_to_start_without_keys(tmp_path):
    """What the image does when started without .env: refuses, naming what is missing."""
    env = {**_dockerfile_env(), "DNSAUDIT_VAR_DIR": str(tmp_path)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    done = manage("check", env=env)
    assert done.returncode != 0 and "SECRET_KEY is required in production" in done.stderr
    done = manage("check", env={**env, "SECRET_KEY": STRONG_KEY})
    assert done.returncode != 0 and "DNSAUDIT_FERNET_KEYS is required in production" in done.stderr
