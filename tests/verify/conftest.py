"""Pods for the exec tests, served by the project's test API server (fixtures from tests/conftest.py)."""

from __future__ import annotations

import pytest

from dnsaudit.testbed.fakekube import objects as o

#: What the kubelet writes for a ClusterFirst pod in "app" on an OpenStack node (domain.md K1).
K1_POD_FILE = (
    "search app.svc.cluster.local svc.cluster.local cluster.local openstacklocal\n"
    "nameserver 10.96.0.10\n"
    "options ndots:5\n"
)


def app_objects() -> list[dict]:
    """Namespace ``app``: ``web`` (alpine, one container), ``multi`` (two containers), ``pending``;
    namespace ``other``: ``tool``."""
    place = o.Placement(["node-1", "node-2"])
    objs: list[dict] = []
    objs += o.bare_pod("app", "web", [o.C("web", "alpine:3.20")], place)
    objs += o.bare_pod("app", "multi", [o.C("app", "alpine:3.20"), o.C("sidecar", "debian:bookworm")], place)
    objs += o.bare_pod("other", "tool", [o.C("tool", "alpine:3.20")], place)
    node, ip = place.next()
    objs.append(
        o.pod("pending", "app", [o.C("p", "alpine:3.20")], o.PodOpts(), node_name=node, phase="Pending")
    )
    return objs


@pytest.fixture
def app_cluster(fakekube):
    fakekube.reset(app_objects())
    return fakekube
