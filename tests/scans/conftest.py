"""Fixtures for the scan pipeline tests: the fake API server's demo fleet, a scripted upstream DNS, and
the cluster settings an admin would enter for each demo cluster.

Scans run in-process (``CELERY_BROKER_URL = ""``) except in the Celery tests, which point the Celery app
at a broker explicitly. Nothing here talks to any address but loopback: HTTPS proxies are pointed at a
closed loopback port, so a registry lookup of ``docker.io/library/alpine`` fails at once (and the verdict
falls back to the image name) instead of leaving the machine.
"""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from dnsaudit.testbed.fakedns import ScriptedDNS
from dnsaudit.testbed.fakekube.fleet import ClusterSpec
from dnsaudit.testbed.fakekube.pytest_fixtures import (  # noqa: F401
    fakekube,
    fakekube_fleet,
    fakekube_server,
    kubeconfig_file,
)
from tests.registry.conftest import basic_registry, registry  # noqa: F401
from tests.scans.helpers import upstream_rules
from tests.support import free_port


@pytest.fixture(autouse=True)
def _scan_environment(request, settings, tmp_path, monkeypatch):
    """In-process scans, a fresh Fernet key, small limits, and no way off loopback for registries."""
    if request.node.get_closest_marker("celery") is None:
        settings.CELERY_BROKER_URL = ""
    settings.DNSAUDIT_FERNET_KEYS = [Fernet.generate_key().decode()]
    settings.VAR_DIR = tmp_path / "var"
    settings.DNSAUDIT_KEEP_SCANS = 10
    settings.DNSAUDIT_PROBE_TIMEOUT = 0.5
    settings.DNSAUDIT_KUBE_RETRY_BACKOFF = 0.05
    settings.DNSAUDIT_REGISTRY_TIMEOUT = 1.0
    dead = f"http://127.0.0.1:{free_port()}"
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, dead)
    for var in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("DNSAUDIT_REGISTRY_MIRRORS", raising=False)  # verdicts must not depend on the host
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,::1")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost,::1")


@pytest.fixture
def upstream_dns():
    """Start a ScriptedDNS for a spec: ``upstream_dns(spec) -> ScriptedDNS`` (stopped at teardown)."""
    servers: list[ScriptedDNS] = []

    def start(spec: ClusterSpec | None = None, rules: list | None = None, **kw) -> ScriptedDNS:
        srv = ScriptedDNS(rules if rules is not None else upstream_rules(spec, **kw)).start()
        servers.append(srv)
        return srv

    yield start
    for s in servers:
        s.stop()
