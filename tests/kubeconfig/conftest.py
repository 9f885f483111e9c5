"""Fixtures for the kubeconfig/registry tests."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet


@pytest.fixture
def fernet_keys(settings, tmp_path):
    """One fresh Fernet key in settings (and a private VAR_DIR, so no dev key file is touched)."""
    key = Fernet.generate_key().decode()
    settings.DNSAUDIT_FERNET_KEYS = [key]
    settings.VAR_DIR = tmp_path / "var"
    return [key]
