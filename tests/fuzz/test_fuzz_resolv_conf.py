"""Fuzzing the node resolv.conf parsers: the kubelet's (``parse_node_resolv_conf``) and what a pod's file says
about its node's (``node_file_from_pod_file``): a result or the documented error, quickly."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given

from dnsaudit.core.kubelet import KubeletDNSError, parse_node_resolv_conf
from dnsaudit.core.nodefiles import node_file_from_pod_file
from tests.fuzz.bytegen import Reader
from tests.fuzz.common import bounded, seeds

pytestmark = pytest.mark.fuzz

WORDS = [
    "nameserver ", "search ", "options ", "domain ", "ndots:5", "ndots:", "timeout:1", "attempts:9", "edns0",
    "10.96.0.10", "169.254.20.10", "1.1.1.1", "::1", "fe80::1%eth0", "127.0.0.53", ".", "cluster.local",
    "svc.cluster.local", "default.svc.cluster.local", "kube-system.svc.cluster.local", "openstacklocal",
    "example.com.", "a..b", "x" * 70, "\n",
]  # fmt: skip
VERSIONS = ["v1.24.3", "v1.25.0", "v1.26.1", "v1.31.0", "1.30", "", "garbage", None]


@given(seeds)
def test_resolv_conf(seed):
    r = Reader(seed)
    text = r.text(WORDS, 40)
    version = r.pick(VERSIONS)
    with bounded(), contextlib.suppress(KubeletDNSError):
        parse_node_resolv_conf(text, version)
    dns_config = None
    if r.flag():
        dns_config = {
            key: [r.pick(WORDS) if r.flag() else r.raw_text(8) for _ in range(r.below(4))]
            for key in ("nameservers", "searches")
            if r.flag()
        }
        if r.flag():
            dns_config["options"] = [
                {
                    "name": r.pick(["ndots", "timeout", "edns0", ""]),
                    **({"value": r.raw_text(3)} if r.flag() else {}),
                }
                for _ in range(r.below(3))
            ]
    with bounded(), contextlib.suppress(ValueError):
        node_file_from_pod_file(
            text,
            dns_policy=r.pick(["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None", "bogus"]),
            host_network=r.flag(),
            namespace=r.pick(["default", "kube-system", "a", ""]),
            cluster_domain=r.pick(["cluster.local", "k8s.example", "", "a..b"]),
            cluster_dns=None
            if r.flag()
            else [r.pick(["10.96.0.10", "169.254.20.10", "::1", "x"]) for _ in range(r.below(3))],
            dns_config=dns_config,
            kubelet_version=version,
            resolv_conf=r.pick([None, "", "/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"]),
            source="ns/pod on node",
        )
