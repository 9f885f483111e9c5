"""Fixtures for the dashboard tests: users per role, logged-in clients, a cluster with a report."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.web import factories

ROLES = ("viewer", "operator", "admin")


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2 costs ~0.3 s per user; the role matrix creates hundreds. Security is not under test here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def users(db) -> dict:
    """One user per role, plus ``norole`` (logged in, no group)."""
    made = {role: factories.make_user(role, username=role) for role in ROLES}
    made["norole"] = factories.make_user(None, username="norole")
    return made


@pytest.fixture
def client_as(users):
    """``client_as("viewer")`` -> a Client logged in as that role; ``client_as(None)`` -> anonymous."""

    def make(role: str | None, **kwargs) -> Client:
        client = Client(**kwargs)
        if role:
            client.force_login(users[role])
        return client

    return make


@pytest.fixture
def cluster(db):
    return factories.make_cluster("prod-eu")


@pytest.fixture
def report(cluster):
    """A finished scan of ``cluster`` with 12 workloads (some affected) and one node pool."""
    return factories.make_report(cluster, workloads=12)


# The test API server's fixtures (session server, demo fleet), for the connection-test and rescan flows.
from dnsaudit.testbed.fakekube.pytest_fixtures import fakekube_fleet, fakekube_server  # noqa: E402, F401
