"""Closed networks do not pay per image: a registry the worker cannot reach is tried once per scan (then
every image on it is inferred at once, the reason in its evidence), and those inferred verdicts are
cached for ``DNSAUDIT_INFERRED_VERDICT_TTL`` so the next scans do not try again meanwhile."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from clusters.models import ImageVerdict, Scan
from dnsaudit.boundary import registry as registry_mod
from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.objects import C, NodeInfo, Placement
from tests.scans.helpers import register, rows, run_scan, single_pool_spec
from tests.support import free_port

pytestmark = pytest.mark.django_db

IMAGES_PER_REGISTRY = 12


class AcceptAndClose:
    """A loopback "registry" that accepts every connection and closes it at once (a middlebox that
    resets, a port-forward with nothing behind it), counting the connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def closing_registry():
    reg = AcceptAndClose()
    yield reg
    reg.close()


@pytest.fixture
def connects(monkeypatch):
    """Connection attempts per port, counted where every registry connection is made (``_Guard.connect``)."""
    counts: Counter[int] = Counter()
    original = registry_mod._Guard.connect

    def counting(self, conn, origin):
        counts[int(conn.port or 0)] += 1
        return original(self, conn, origin)

    monkeypatch.setattr(registry_mod._Guard, "connect", counting)
    return counts


def _cluster(fakekube, upstream_dns, hosts: list[str]):
    nodes = ["node-a"]
    place = Placement(nodes, {"node-a": "10.10.1.11"})
    objs = [o.namespace("imgs"), o.node("node-a", NodeInfo(), ip="10.10.1.11")]
    for h, host in enumerate(hosts):
        for i in range(IMAGES_PER_REGISTRY):
            flavour = "3.19-alpine" if i % 2 else "12-slim"
            objs += o.deployment(
                "imgs", f"r{h}-svc-{i}", [C("app", f"{host}/team/svc-{i}:{flavour}")], place, replicas=1
            )
    fakekube.default.reset(objs)
    spec = single_pool_spec(objs, nodes)
    return register(fakekube.default, spec, upstream_dns(spec), user="admin", name="closed-network")


def test_an_unreachable_registry_is_tried_once_per_scan_and_the_inferred_verdicts_are_cached(
    fakekube, upstream_dns, closing_registry, connects, settings
):
    settings.DNSAUDIT_INFERRED_VERDICT_TTL = 3600
    closed = free_port()  # nothing listens: connection refused
    hosts = [f"127.0.0.1:{closing_registry.port}", f"127.0.0.1:{closed}"]
    cluster = _cluster(fakekube, upstream_dns, hosts)
    tries = registry_mod.RegistryClient().retries + 1  # one inspection: the first try and its retries

    scan = run_scan(cluster)
    assert scan.status == Scan.SUCCEEDED, (scan.error, scan.problems)
    # Once per registry, not once per image.
    assert closing_registry.accepted == tries
    assert connects[closing_registry.port] == tries
    assert connects[closed] == tries
    got = rows(scan)
    assert len(got) == 2 * IMAGES_PER_REGISTRY
    for name, w in got.items():
        c = w.detail["containers"][0]
        assert c["confidence"] == "inferred", (name, c)
        if int(name.rsplit("-", 1)[1]) % 2:  # the -alpine tags: inferred musl from the name
            assert c["libc"] == "musl", (name, c)
        note = next(e for e in c["evidence"] if "registry not read" in e)
        assert "unreachable" in note, note
    cached = ImageVerdict.objects.filter(confidence="inferred")
    assert cached.count() == 2 * IMAGES_PER_REGISTRY

    # A second scan within the TTL: the cache answers, no connection at all.
    second = run_scan(cluster)
    assert second.status == Scan.SUCCEEDED, (second.error, second.problems)
    assert closing_registry.accepted == tries
    assert connects[closing_registry.port] == tries and connects[closed] == tries
    for w in rows(second).values():
        c = w.detail["containers"][0]
        assert c["confidence"] == "inferred"
        assert any("cached inferred verdict" in e for e in c["evidence"]), c["evidence"]

    # Once the inferred verdicts are older than the TTL, the registries are tried again (once each).
    cached.update(inspected_at=timezone.now() - timedelta(seconds=3601))
    third = run_scan(cluster)
    assert third.status == Scan.SUCCEEDED
    assert closing_registry.accepted == 2 * tries
    assert connects[closed] == 2 * tries
    assert ImageVerdict.objects.filter(confidence="inferred").count() == 2 * IMAGES_PER_REGISTRY
    assert (
        ImageVerdict.objects.filter(
            confidence="inferred", inspected_at__gte=timezone.now() - timedelta(seconds=60)
        ).count()
        == 2 * IMAGES_PER_REGISTRY
    )
