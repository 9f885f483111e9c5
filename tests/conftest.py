"""Suite-wide fixtures. Service fixtures fail under CI=true when the service is missing (see support.need)."""

from __future__ import annotations

import os
import socket

import pytest

from tests.support import need

# The project's HTTPS Kubernetes test API server: fakekube_server (session), fakekube, fakekube_fleet,
# kubeconfig_file.
pytest_plugins = ["dnsaudit.testbed.fakekube.pytest_fixtures"]


def _closed_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Nothing in the suite may leave the machine. HTTP(S) clients that honour proxy variables (requests, so
# the registry client) are pointed at a closed loopback port, so a lookup of docker.io fails at once
# instead of resolving a public name; loopback stays direct. Set before any test and inherited by the
# subprocesses the tests start.
_DEAD_PROXY = f"http://127.0.0.1:{_closed_loopback_port()}"
for _var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
    os.environ[_var] = _DEAD_PROXY
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,::1"


@pytest.fixture(autouse=True)
def _scans_in_process_unless_celery(request):
    """REDIS_URL is set for the whole suite (the test command starts Redis), which would send every scan
    to a broker no worker listens on. Scans run in-process, as in the embedded mode, except in tests
    marked ``celery``, which start a real worker and point the Celery app at the broker themselves."""
    if request.node.get_closest_marker("celery") is None:
        request.getfixturevalue("settings").CELERY_BROKER_URL = ""
    # Finished scans' pages are cached by scan id; ids can repeat across tests (rolled-back SQLite).
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    need(bool(url), "REDIS_URL not set: run the suite through `make test` (scripts/with-services.py)")
    return url


@pytest.fixture
def postgres_database(settings) -> dict:
    db = settings.DATABASES["default"]
    need(
        "postgresql" in db["ENGINE"],
        "DATABASE_URL does not point at PostgreSQL: run the suite through `make test` (scripts/with-services.py)",
    )
    return db
