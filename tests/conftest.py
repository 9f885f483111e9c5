"""Suite-wide fixtures. Service fixtures fail under CI=true when the service is missing (see support.need)."""

from __future__ import annotations

import os

import pytest

from tests.support import need

# The project's HTTPS Kubernetes test API server: fakekube_server (session), fakekube, fakekube_fleet,
# kubeconfig_file.
pytest_plugins = ["dnsaudit.fakekube.pytest_fixtures"]


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
