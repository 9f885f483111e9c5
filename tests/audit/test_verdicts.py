"""Verdicts per workload: the seed post's cluster end to end, `search .` by kubelet/musl version, and the
other risk rules of domain.md §8.4."""

from __future__ import annotations

import json

from dnsaudit.core.audit import AuditContext, audit_workload, audit_workloads
from dnsaudit.core.model import Answer, Container, LibcVerdict
from tests.audit.helpers import CLUSTER_DNS, pool, probe, seed_ctx, workload

REPORT_KEYS = {
    "namespace",
    "kind",
    "name",
    "containers",
    "dns_policy",
    "host_network",
    "resolv_conf",
    "risk",
    "reasons",
    "remediation",
}


def test_report_has_the_shared_schema():
    r = audit_workload(workload(), seed_ctx()).report
    assert set(r) >= REPORT_KEYS
    assert set(r["containers"][0]) >= {"name", "image", "libc", "musl_version", "confidence"}
    assert set(r["resolv_conf"]) == {"nameservers", "searches", "options"}
    assert r["risk"] in {"affected", "at-risk", "safe", "unknown"}
    assert r["remediation"]["recommended"] in {
        "dnsConfig",
        "kubelet",
        "kyverno",
        "coredns",
        "base-image",
        "none",
    }
    assert isinstance(r["remediation"]["alternatives"], list)


def test_alpine_is_affected_when_openstacklocal_answers_nodata():
    r = audit_workload(workload("alpine:3.16"), seed_ctx()).report
    # The pod file the seed post shows.
    assert r["resolv_conf"] == {
        "nameservers": [CLUSTER_DNS],
        "searches": [
            "example-namespace.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
            "openstacklocal",
        ],
        "options": ["ndots:5"],
    }
    assert r["risk"] == "affected"
    text = " ".join(r["reasons"])
    assert "example.com.openstacklocal" in text
    assert "NODATA" in text
    assert "glibc would continue to example.com" in text
    assert "node's resolv.conf" in text
    assert r["containers"][0]["libc"] == "musl"
    assert r["affected_names"] == ["example.com"]


def test_musl_timeout_reason_on_servfail():
    r = audit_workload(workload("alpine:3.19"), seed_ctx(Answer("SERVFAIL"))).report
    assert r["risk"] == "affected"
    text = " ".join(r["reasons"])
    assert "SERVFAIL" in text and "EAI_AGAIN" in text


def test_debian_is_safe_with_a_reason_naming_glibc():
    r = audit_workload(workload("debian:12-slim"), seed_ctx()).report
    assert r["risk"] == "safe"
    assert any("glibc" in x and "not affected" in x for x in r["reasons"])
    assert r["remediation"]["recommended"] == "none"


def test_distroless_is_safe():
    r = audit_workload(workload("gcr.io/distroless/static-debian12"), seed_ctx()).report
    assert r["risk"] == "safe"
    assert r["containers"][0]["libc"] == "static"
    assert any("static" in x for x in r["reasons"])


def test_dns_policy_none_with_clean_dns_config_is_already_fixed():
    w = workload(
        "alpine:3.16",
        dns_policy="None",
        dns_config={
            "nameservers": [CLUSTER_DNS],
            "searches": ["example-namespace.svc.cluster.local", "svc.cluster.local", "cluster.local"],
            "options": [{"name": "ndots", "value": "5"}],
        },
    )
    r = audit_workload(w, seed_ctx()).report
    assert "openstacklocal" not in r["resolv_conf"]["searches"]
    assert r["risk"] == "safe"
    assert any("already fixed" in x for x in r["reasons"])


def test_host_network_cluster_first_gets_the_node_file():
    w = workload("alpine:3.16", kind="DaemonSet", host_network=True)
    r = audit_workload(w, seed_ctx()).report
    assert r["resolv_conf"] == {
        "nameservers": ["192.168.0.2"],
        "searches": ["openstacklocal"],
        "options": ["edns0"],
    }
    assert any("hostNetwork" in x for x in r["reasons"])
    # ndots defaults to 1 with the host file: example.com is asked as is first, even under musl.
    assert r["risk"] == "safe"


def test_unprobed_extra_domain_is_at_risk_not_affected():
    r = audit_workload(workload("alpine:3.16"), seed_ctx(answer=None)).report
    assert r["risk"] == "at-risk"
    assert any("probe" in x.lower() and "openstacklocal" in x for x in r["reasons"])


def test_domain_answering_nxdomain_is_safe_for_musl():
    r = audit_workload(workload("alpine:3.16"), seed_ctx(Answer("NXDOMAIN"))).report
    assert r["risk"] == "safe"


def test_unknown_libc_with_a_risky_config_is_unknown_and_clean_config_is_safe():
    w = workload("registry.example.com/acme/app:1.4")
    assert audit_workload(w, seed_ctx()).report["risk"] == "unknown"
    assert audit_workload(w, seed_ctx(Answer("NXDOMAIN"))).report["risk"] == "safe"


def test_libc_verdict_by_image_id_wins_over_the_reference():
    w = workload("alpine:3.16")
    w = type(w)(**{**w.__dict__, "containers": (Container("app", "alpine:3.16", image_id="sha256:abc"),)})
    verdict = LibcVerdict(libc="glibc", confidence="confirmed", evidence=["test: glibc loader"])
    ctx = seed_ctx(libc={"sha256:abc": verdict})
    r = audit_workload(w, ctx).report
    assert r["containers"][0]["libc"] == "glibc"
    assert r["risk"] == "safe"


def _search_dot_ctx(kubelet_version: str) -> AuditContext:
    return AuditContext(
        pools={"default": pool("nameserver 192.168.0.2\nsearch .\n", version=kubelet_version)}
    )


def test_search_dot_on_kubelet_1_25_0_breaks_alpine_3_16():
    r = audit_workload(workload("alpine:3.16"), _search_dot_ctx("v1.25.0")).report
    assert r["resolv_conf"]["searches"][-1] == "."
    assert r["risk"] == "affected"
    assert any("search ." in x and "1.2.3" in x for x in r["reasons"])


def test_search_dot_on_kubelet_1_25_0_spares_alpine_3_18():
    r = audit_workload(workload("alpine:3.18"), _search_dot_ctx("v1.25.0")).report
    assert r["risk"] == "safe"


def test_search_dot_on_kubelet_1_25_1_spares_alpine_3_16():
    r = audit_workload(workload("alpine:3.16"), _search_dot_ctx("v1.25.1")).report
    assert "." not in r["resolv_conf"]["searches"]
    assert r["risk"] == "safe"


def test_search_line_over_254_characters_is_affected():
    longs = [f"{c * 50}.svc.cluster.local" for c in "abcd"]  # in-cluster, so NXDOMAIN: only the length hurts
    w = workload("alpine:3.19", dns_config={"searches": longs})
    r = audit_workload(w, seed_ctx(Answer("NXDOMAIN"))).report
    line = "search " + " ".join(r["resolv_conf"]["searches"])
    assert len(line) > 254
    assert r["risk"] == "affected"
    assert any("254" in x for x in r["reasons"])


def test_lowered_ndots_with_dotted_service_name_is_at_risk():
    w = workload("alpine:3.19", dns_config={"options": [{"name": "ndots", "value": "1"}]})
    r = audit_workload(w, seed_ctx(Answer("NXDOMAIN"))).report
    assert r["risk"] == "at-risk"
    assert any("Lowering ndots is not a fix" in x and "kubernetes.default" in x for x in r["reasons"])


def test_non_cluster_nameserver_appended_is_at_risk():
    w = workload("alpine:3.19", dns_config={"nameservers": ["1.1.1.1"]})
    r = audit_workload(w, seed_ctx(Answer("NXDOMAIN"))).report
    assert r["resolv_conf"]["nameservers"] == [CLUSTER_DNS, "1.1.1.1"]
    assert r["risk"] == "at-risk"
    assert any("1.1.1.1" in x and "at once" in x for x in r["reasons"])


def test_mixed_pod_takes_the_worst_container():
    w = workload("alpine:3.16")
    w = type(w)(
        **{**w.__dict__, "containers": (Container("app", "debian:12"), Container("sidecar", "alpine:3.16"))}
    )
    r = audit_workload(w, seed_ctx()).report
    assert r["risk"] == "affected"
    assert [c["libc"] for c in r["containers"]] == ["glibc", "musl"]


def test_detail_carries_simulations_origins_and_checked_remediations():
    a = audit_workload(workload("alpine:3.16"), seed_ctx())
    d = a.detail
    assert d["resolv_conf_text"].startswith("search example-namespace.svc.cluster.local")
    assert d["search_origin"]["openstacklocal"] == "node"
    sim = next(s for s in d["simulations"] if s["name"] == "example.com")
    assert sim["musl"]["ok"] is False and sim["glibc"]["ok"] is True
    assert {
        "kind",
        "title",
        "why",
        "tradeoffs",
        "recommended",
        "patch_yaml",
        "kubectl",
        "kustomize",
        "extra_files",
    } <= set(d["remediations"][0])
    assert d["containers"][0]["evidence"]
    json.dumps(a.report)
    json.dumps(a.detail)  # both go to the web page / JSON API as they are


def test_five_hundred_workloads_share_their_simulations():
    """What keeps a big cluster's audit cheap, checked without a clock (speed is measured in bench/): the
    simulations are memoised per distinct resolv.conf, name and libc version, so 500 workloads in 25
    namespaces cost what 25 pod files cost, not what 500 workloads would."""
    namespaces = [f"team-{i}" for i in range(25)]
    images = ["alpine:3.16", "debian:12", "alpine:3.19", "gcr.io/distroless/base-debian12", "acme/app:1"]
    ws = [
        workload(images[i % len(images)], name=f"w{i}", namespace=namespaces[i % len(namespaces)])
        for i in range(500)
    ]
    ctx = seed_ctx(probe_names=["example.com", "api.github.com", "db.internal.example"])
    audits = audit_workloads(ws, ctx)
    assert len(audits) == 500
    assert {a.report["risk"] for a in audits} == {"affected", "safe", "unknown"}
    # Per namespace (one pod file each): 4 names x (musl versions + glibc) x (observed + pessimistic run).
    sims = ctx._cache["sims"]
    names = 4  # three probe names and the in-cluster service name
    assert len(sims) <= len(namespaces) * names * 4 * 2, len(sims)
    texts = {key[2] for key in sims}
    # Per namespace: its pods' file, and the patched file a fix is re-simulated with; shared by its 20 workloads.
    assert len(texts) <= 2 * len(namespaces)
    # The same simulation result object is shared by the workloads of a namespace.
    same_ns = [a for a in audits if a.report["namespace"] == "team-0" and a.detail["simulations"]]
    assert len(same_ns) >= 2
    first, second = same_ns[0].detail["simulations"][0], same_ns[1].detail["simulations"][0]
    assert first["musl"] is second["musl"]


def test_probe_from_another_server_is_used_for_the_domain():
    ctx = seed_ctx(answer=None)
    ctx.probes.append(probe("openstacklocal", Answer("REFUSED")))
    r = audit_workload(workload("alpine:3.19"), ctx).report
    assert r["risk"] == "affected"
    assert any("REFUSED" in x for x in r["reasons"])


def test_a_coredns_template_for_the_domain_makes_musl_safe_without_a_probe():
    r = audit_workload(
        workload("alpine:3.16"), seed_ctx(None, coredns={"template_zones": ["openstacklocal"]})
    ).report
    assert r["risk"] == "safe"
    assert any("template" in x for x in r["reasons"])


def test_loopback_node_nameserver_keeps_the_kubelet_fix_from_being_recommended():
    ctx = seed_ctx(pool=pool("nameserver 127.0.0.53\nsearch openstacklocal\n"))
    a = audit_workload(workload("alpine:3.16"), ctx)
    kubelet_fix = next(r for r in a.remedies if r.kind == "kubelet")
    assert any("loopback" in p for p in kubelet_fix.problems)
    assert a.report["remediation"]["recommended"] == "dnsConfig"


def test_the_dnsconfig_fix_for_an_unread_node_file_says_what_it_leaves_out():
    # The node's file was neither read nor entered: the musl workload is at risk, and the dnsConfig fix
    # leaves out whatever that file adds, not "nothing".
    a = audit_workload(workload("alpine:3.16"), seed_ctx(answer=None, pool=pool(node_file=None)))
    assert a.report["risk"] == "at-risk"
    fix = next(r for r in a.detail["remediations"] if r["kind"] == "dnsConfig")
    assert "removed: whatever the node's resolv.conf of pool default adds, which was not read" in fix["why"]
    assert "removed: nothing" not in fix["why"]
    # A known file with an offending domain names it.
    b = audit_workload(workload("alpine:3.16"), seed_ctx())
    fix = next(r for r in b.detail["remediations"] if r["kind"] == "dnsConfig")
    assert "removed: 'openstacklocal'" in fix["why"]
