"""Reusable pytest fixtures for the test API server.

Register once in ``tests/conftest.py`` with ``pytest_plugins = ["dnsaudit.testbed.fakekube.pytest_fixtures"]``.

* ``fakekube_server`` (session): one started ``FakeKube``; the default cluster has user ``admin``.
* ``fakekube`` (function): the same server with the default cluster emptied, faults, exec handler and image
  flavours cleared, kubelet behaviours and hidden node files forgotten (``clear_nodes``), the default kubelet
  config restored and every user except ``admin`` removed. Load objects with ``fakekube.reset(objs)`` and
  node files with ``fakekube.set_node_file(node, text)``; without an exec handler, exec answers like a
  real cluster (``dnsaudit.testbed.fakekube.kubelet_exec``).
* ``fakekube_fleet`` (function): the demo fleet freshly installed as clusters ``openstack-prod``,
  ``edge-k3s``, ``managed-clean`` on the session server (objects, users, kubelets and each pool's hidden
  node file); returns ``{name: (Cluster, ClusterSpec)}``.
* ``kubeconfig_file`` (function): ``kubeconfig_file(cluster_or_server, user="admin", **kw) -> Path``.
* ``context_for(cluster, user, auth=None) -> KubeContext`` (plain helper, importable).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from dnsaudit.core.model import KubeContext
from dnsaudit.testbed.fakekube.fleet import ClusterSpec, demo_fleet, serve
from dnsaudit.testbed.fakekube.objects import kubelet_config
from dnsaudit.testbed.fakekube.server import Cluster, FakeKube


def context_for(cluster: Cluster | FakeKube, user: str = "admin", *, auth: str | None = None) -> KubeContext:
    """The ``KubeContext`` a validated upload of ``cluster.kubeconfig(user)`` would produce."""
    c = cluster.default if isinstance(cluster, FakeKube) else cluster
    doc = yaml.safe_load(c.kubeconfig(user, auth=auth))
    cl, us = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
    return KubeContext(
        name=doc["contexts"][0]["name"],
        cluster=doc["clusters"][0]["name"],
        user=doc["users"][0]["name"],
        server=cl["server"],
        ca_data=base64.b64decode(cl["certificate-authority-data"]),
        client_cert_data=base64.b64decode(us["client-certificate-data"])
        if "client-certificate-data" in us
        else None,
        client_key_data=base64.b64decode(us["client-key-data"]) if "client-key-data" in us else None,
        token=us.get("token"),
    )


@pytest.fixture(scope="session")
def fakekube_server() -> Iterator[FakeKube]:
    with FakeKube() as server:
        yield server


@pytest.fixture
def fakekube(fakekube_server: FakeKube) -> FakeKube:
    c = fakekube_server.default
    c.reset(())
    c.clear_nodes()
    c.default_kubelet = kubelet_config()
    for name in [n for n in c.users if n != "admin"]:
        user = c.users.pop(name)
        if user.token:
            c._tokens.pop(user.token, None)
    return fakekube_server


@pytest.fixture
def fakekube_fleet(fakekube_server: FakeKube) -> dict[str, tuple[Cluster, ClusterSpec]]:
    specs = demo_fleet()
    serve(specs, fakekube_server)
    return {s.name: (fakekube_server.cluster(s.name), s) for s in specs}


@pytest.fixture
def kubeconfig_file(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1_000_000))

    def write(cluster: Cluster | FakeKube, user: str = "admin", **kw) -> Path:
        c = cluster.default if isinstance(cluster, FakeKube) else cluster
        path = tmp_path / f"kubeconfig-{next(counter)}.yaml"
        path.write_text(c.kubeconfig(user, **kw))
        return path

    return write
