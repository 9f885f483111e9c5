"""Fixtures for the exemption tests: the scan environment and scripted upstream DNS of tests/scans, and
the users, logged-in clients and cluster of tests/web."""

from __future__ import annotations

from tests.scans.conftest import _scan_environment, upstream_dns  # noqa: F401
from tests.web.conftest import client_as, cluster, fast_password_hashing, users  # noqa: F401
