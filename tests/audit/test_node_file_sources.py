"""Unknown is never safe: verdicts by where the pool's node file came from (issue 8).

A real cluster does not show the node's /etc/resolv.conf through the API. Until it is read (exec) or
entered, a musl workload that inherits the node's search domains is at-risk (unknown libc: unknown),
never safe; a verdict resting on an inferred domain is at most at-risk and says "likely".
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from dnsaudit.core.audit import AuditContext, audit_workload, audit_workloads
from dnsaudit.core.model import Answer, Container, KubeletDNS, LibcVerdict, NodePool
from tests.audit.helpers import CLUSTER_DNS, pool, probe, seed_ctx, workload

INHERITING = [
    ("ClusterFirst", False),
    ("ClusterFirst", True),  # hostNetwork + ClusterFirst: the node file itself
    ("ClusterFirstWithHostNet", True),
    ("Default", False),
]


def unknown_ctx(**kw) -> AuditContext:
    return seed_ctx(None, pool=pool(None), **kw)


@pytest.mark.parametrize(("policy", "host_network"), INHERITING)
def test_musl_inheriting_an_unknown_node_file_is_at_risk_never_safe(policy, host_network):
    r = audit_workload(
        workload("alpine:3.19", dns_policy=policy, host_network=host_network), unknown_ctx()
    ).report
    assert r["risk"] == "at-risk"
    assert r["node_resolv_conf_source"] == "unknown"
    assert r["inherits_node_file"] is True
    gap = next(x for x in r["reasons"] if "are unknown" in x)
    assert "pool default" in gap and f"dnsPolicy {policy}" in gap
    assert "Allow exec reads" in gap and "set-cluster" in gap


def test_unknown_libc_inheriting_an_unknown_node_file_is_unknown():
    ctx = unknown_ctx(libc={"corp/tool:1": LibcVerdict(libc="unknown", evidence=["registry not read"])})
    r = audit_workload(workload("corp/tool:1"), ctx).report
    assert r["risk"] == "unknown"
    assert any("are unknown" in x and "libc of some container is unknown" in x for x in r["reasons"])


def test_glibc_is_unaffected_by_an_unknown_node_file():
    r = audit_workload(workload("debian:12-slim"), unknown_ctx()).report
    assert r["risk"] == "safe"
    assert not any("are unknown" in x for x in r["reasons"])


def test_dns_policy_none_inherits_nothing_and_stays_safe():
    w = workload(
        "alpine:3.19",
        dns_policy="None",
        dns_config={"nameservers": [CLUSTER_DNS], "searches": ["example-namespace.svc.cluster.local"]},
    )
    r = audit_workload(w, unknown_ctx()).report
    assert r["risk"] == "safe"
    assert r["inherits_node_file"] is False
    assert r["dns_config"] == w.dns_config


def test_kubelet_without_a_node_file_inherits_nothing():
    p = pool(None, resolv_conf="")
    r = audit_workload(workload("alpine:3.19"), seed_ctx(None, pool=p)).report
    assert r["risk"] == "safe"
    assert r["inherits_node_file"] is False


def test_a_known_node_file_without_search_is_safe_for_musl():
    for source in ("entered", "observed"):
        p = pool("nameserver 10.0.0.2\n", source=source)
        r = audit_workload(workload("alpine:3.19"), seed_ctx(None, pool=p)).report
        assert r["risk"] == "safe", (source, r["reasons"])
        assert r["node_resolv_conf_source"] == source


def test_the_unknown_verdict_becomes_affected_once_the_file_is_entered():
    before = audit_workload(workload("alpine:3.19"), seed_ctx(Answer("SERVFAIL"), pool=pool(None))).report
    after = audit_workload(workload("alpine:3.19"), seed_ctx(Answer("SERVFAIL"))).report
    assert before["risk"] == "at-risk"
    assert after["risk"] == "affected"


def inferred_pool() -> NodePool:
    return pool(
        "search openstacklocal\n",
        source="inferred",
    )


def test_an_inferred_domain_answering_servfail_is_likely_not_certain():
    p = inferred_pool()
    p.node_resolv_conf_evidence = ["spec.providerID openstack:///… (OpenStack Neutron's default dns_domain)"]
    r = audit_workload(workload("alpine:3.19"), seed_ctx(Answer("SERVFAIL"), pool=p)).report
    assert r["risk"] == "at-risk"
    text = " ".join(r["reasons"])
    assert "Likely:" in text and "SERVFAIL" in text
    assert "inferred" in text and "providerID" in text
    # The inferred domain is simulated like an observed one: musl stops at it.
    assert r["affected_names"] == ["example.com"]
    assert r["resolv_conf"]["searches"][-1] == "openstacklocal"


def test_an_inferred_domain_answering_nxdomain_still_is_not_safe():
    r = audit_workload(workload("alpine:3.19"), seed_ctx(Answer("NXDOMAIN"), pool=inferred_pool())).report
    assert r["risk"] == "at-risk"
    assert any("inferred" in x and "may hold others" in x for x in r["reasons"])


def test_glibc_on_an_inferred_pool_is_safe():
    r = audit_workload(workload("debian:12-slim"), seed_ctx(Answer("SERVFAIL"), pool=inferred_pool())).report
    assert r["risk"] == "safe"


def test_each_workload_carries_only_its_own_pools_assumptions():
    general = pool(source="entered")
    general.name = "general"
    infra = pool()
    infra.name = "infra"
    infra.assumed.append("kubelet config of pool infra: configz unreachable")
    ctx = AuditContext(
        pools={"general": general, "infra": infra},
        default_pool="general",
        probes=[probe("openstacklocal", Answer("SERVFAIL"))],
        assumed=["CoreDNS configuration"],
    )
    on_general = workload("alpine:3.19", name="g", node_pool="general")
    on_infra = workload("alpine:3.19", name="i", node_pool="infra")
    g, i = (x.report for x in audit_workloads([on_general, on_infra], ctx))
    assert g["risk"] == i["risk"] == "affected"
    assert not any("pool infra" in x for x in g["reasons"])
    assert "Assumed: kubelet config of pool infra: configz unreachable" in i["reasons"]
    assert "Assumed: CoreDNS configuration" in g["reasons"]


def test_image_verdicts_are_per_platform_of_the_pool():
    amd = NodePool(
        name="amd",
        kubelet=KubeletDNS(cluster_dns=(CLUSTER_DNS,)),
        node_resolv_conf="nameserver 10.0.0.2\n",
        node_resolv_conf_source="entered",
        architecture="amd64",
    )
    arm = NodePool(
        name="arm",
        kubelet=KubeletDNS(cluster_dns=(CLUSTER_DNS,)),
        node_resolv_conf="nameserver 10.0.0.2\n",
        node_resolv_conf_source="entered",
        architecture="arm64",
    )
    image_id = "docker.io/library/alpine@sha256:" + "a" * 64

    def v(arch: str, loader: str) -> LibcVerdict:
        return LibcVerdict(
            libc="musl",
            musl_version="1.2.4",
            platform=f"linux/{arch}",
            evidence=[f"/lib/{loader}"],
            confidence="confirmed",
        )

    ctx = AuditContext(
        pools={"amd": amd, "arm": arm},
        default_pool="amd",
        libc={
            f"{image_id}@linux/amd64": v("amd64", "ld-musl-x86_64.so.1"),
            f"{image_id}@linux/arm64": v("arm64", "ld-musl-aarch64.so.1"),
        },
    )
    c = (Container("app", "alpine:3.19", image_id),)
    on_amd = replace(workload("alpine:3.19", name="a", node_pool="amd"), containers=c)
    on_arm = replace(workload("alpine:3.19", name="b", node_pool="arm"), containers=c)
    a, b = audit_workloads([on_amd, on_arm], ctx)
    assert a.detail["containers"][0]["platform"] == "linux/amd64"
    assert a.detail["containers"][0]["evidence"] == ["/lib/ld-musl-x86_64.so.1"]
    assert b.detail["containers"][0]["platform"] == "linux/arm64"
    assert b.detail["containers"][0]["evidence"] == ["/lib/ld-musl-aarch64.so.1"]
