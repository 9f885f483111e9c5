"""docker-compose.yml runs what the project has: every command, module path, Celery app and management
command exists here; web, worker and beat share one image and one environment; healthchecks are set.

(The worker's command line is also the one ``test_celery.py`` starts, so compose and the tests agree.)
"""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands
from django.urls import resolve

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("web", "worker", "beat")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def shell_commands(command: list[str]) -> list[list[str]]:
    """``["sh", "-c", "a && b"]`` -> ``[["a"], ["b"]]``; an exec-form command is one command."""
    if command[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in command[2].split("&&")]
    return [command]


def check_command(argv: list[str]) -> None:
    prog = argv[0]
    if prog == "python" and argv[1] == "manage.py":
        assert argv[2] in get_commands(), f"manage.py has no command {argv[2]!r}"
    elif prog == "gunicorn":
        module, _, attr = argv[1].partition(":")
        app = getattr(importlib.import_module(module), attr)
        assert callable(app)
    elif prog == "celery":
        assert argv[1] == "-A"
        mod = importlib.import_module(argv[2])
        from celery import Celery

        assert isinstance(mod.celery_app, Celery)
        assert argv[3] in ("worker", "beat", "inspect")
        if argv[3] in ("worker", "beat"):
            # The tasks the schedule names are registered on that app.
            import clusters.tasks  # noqa: F401

            names = set(mod.celery_app.tasks)
            assert "clusters.tasks.run_scan" in names
            from django.conf import settings

            for entry in settings.CELERY_BEAT_SCHEDULE.values():
                assert entry["task"] in names
    elif prog == "redis-server" or prog.startswith("pg_isready") or prog == "redis-cli":
        pass
    else:
        raise AssertionError(f"unknown program in compose: {argv}")


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_service_command_exists_in_the_project(compose, service):
    for argv in shell_commands(compose["services"][service]["command"]):
        check_command(argv)


def test_web_worker_and_beat_share_one_image_and_environment(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    assert "x-app: &app" in text and text.count("<<: *app") == len(APP_SERVICES)
    services = compose["services"]
    first = services["web"]
    for name in APP_SERVICES:
        s = services[name]
        for key in ("image", "build", "env_file", "environment", "depends_on"):
            assert s[key] == first[key], f"{name}.{key} differs from web's"
    env = first["environment"]
    assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:")
    assert env["DNSAUDIT_PRODUCTION"] == "1"
    assert first["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }


def test_healthchecks_are_present_and_point_at_real_things(compose):
    services = compose["services"]
    for name in ("web", "worker", "redis", "postgres"):
        hc = services[name].get("healthcheck")
        assert hc and hc["test"] and hc.get("interval") and hc.get("retries"), name
    web = services["web"]["healthcheck"]["test"]
    url = next(part for part in web if "http://" in part)
    path = "/" + url.split("http://127.0.0.1:8000/")[1].split("'")[0]
    assert resolve(path).url_name == "health"
    assert "8000:8000" in services["web"]["ports"]
    assert services["worker"]["healthcheck"]["test"][1:5] == ["celery", "-A", "dnsaudit", "inspect"]
    # Redis keeps queued messages across restarts (the scan tests rely on the same setting).
    assert "--appendonly" in services["redis"]["command"]


def test_beat_schedule_file_lives_in_the_image_var_dir(compose):
    beat = compose["services"]["beat"]["command"]
    schedule = beat[beat.index("--schedule") + 1]
    dockerfile = (ROOT / "Dockerfile").read_text()
    var_dir = str(Path(schedule).parent)
    assert f"DNSAUDIT_VAR_DIR={var_dir}" in dockerfile and f"mkdir -p {var_dir}" in dockerfile
    assert f"chown -R dnsaudit {var_dir}" in dockerfile
