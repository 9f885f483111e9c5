"""dnsaudit.core.nodefiles: what a pod's file says about its node's, agreement, planning, inference.

Expected values are written by hand from domain.md §4 (kubelet rules, K-vectors) and the providers'
documentation named in the module.
"""

from __future__ import annotations

import pytest

from dnsaudit.core.kubelet import parse_node_resolv_conf, pod_resolv_conf, render_resolv_conf
from dnsaudit.core.model import KubeletDNS
from dnsaudit.core.nodefiles import (
    NodeFileCandidate,
    NodeFileReading,
    candidate_category,
    infer_node_searches,
    merge_readings,
    node_file_from_pod_file,
    plan_reads,
    reading_for,
    valid_dns_name,
)

K1_NODE = "nameserver 192.168.0.2\nsearch openstacklocal\noptions edns0\n"
K1_POD = "search app.svc.cluster.local svc.cluster.local cluster.local openstacklocal\nnameserver 10.96.0.10\noptions ndots:5\n"


def read(text, policy="ClusterFirst", host=False, ns="app", **kw):
    kw.setdefault("cluster_domain", "cluster.local")
    return node_file_from_pod_file(
        text, dns_policy=policy, host_network=host, namespace=ns, source=f"{ns}/p on node n1", **kw
    )


# --- one pod's file ---------------------------------------------------------------------------------------


def test_cluster_first_pod_shows_the_node_searches_only():
    r = read(K1_POD, cluster_dns=["10.96.0.10"])
    assert r.scope == "searches"
    assert r.searches == ("openstacklocal",)
    assert r.nameservers is None and r.options is None
    assert r.content == "search openstacklocal\n"
    assert r.complete
    assert r.sources == ("app/p on node n1",)
    assert "app/p on node n1" in r.evidence[0]


def test_cluster_first_with_host_net_is_a_cluster_pod():
    r = read(K1_POD, "ClusterFirstWithHostNet", host=True)
    assert (r.scope, r.searches) == ("searches", ("openstacklocal",))


@pytest.mark.parametrize(("policy", "host"), [("Default", False), ("ClusterFirst", True), ("Default", True)])
def test_host_pods_show_the_whole_file(policy, host):
    pod = "search openstacklocal corp.example\nnameserver 192.168.0.2\nnameserver 192.168.0.3\noptions edns0 timeout:2\n"
    r = read(pod, policy, host)
    assert r.scope == "file"
    assert r.searches == ("openstacklocal", "corp.example")
    assert r.nameservers == ("192.168.0.2", "192.168.0.3")
    assert r.options == ("edns0", "timeout:2")
    assert parse_node_resolv_conf(r.content) == parse_node_resolv_conf(pod)


def test_dockershim_order_nameserver_first_is_accepted():
    r = read("nameserver 192.168.0.2\nsearch openstacklocal\noptions edns0\n", "Default")
    assert r.content == K1_NODE.replace(
        "nameserver 192.168.0.2\nsearch openstacklocal\n", "search openstacklocal\nnameserver 192.168.0.2\n"
    )


def test_round_trip_with_the_kubelet_model():
    """The kubelet model writes the pod file from K1; reading it back gives K1's searches / file."""
    kubelet = KubeletDNS(cluster_dns=("10.96.0.10",), cluster_domain="cluster.local")
    for policy, host, scope in [("ClusterFirst", False, "searches"), ("Default", False, "file")]:
        pod = render_resolv_conf(pod_resolv_conf("app", policy, host, None, kubelet, K1_NODE).conf)
        r = read(pod, policy, host, cluster_dns=["10.96.0.10"])
        assert r.scope == scope and r.searches == ("openstacklocal",)
        if scope == "file":
            assert parse_node_resolv_conf(r.content) == parse_node_resolv_conf(K1_NODE)


def test_node_without_searches():
    r = read(
        "search app.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
    )
    assert r.searches == () and r.content == ""


def test_search_dot_of_old_kubelets_becomes_dot():
    """≤1.24 trims `.` to "" and the runtime writes a trailing space (K4)."""
    r = read(
        "search app.svc.cluster.local svc.cluster.local cluster.local \nnameserver 10.96.0.10\noptions ndots:5\n"
    )
    assert r.searches == (".",) and r.content == "search .\n"
    r = read(
        "search app.svc.cluster.local svc.cluster.local cluster.local .\nnameserver 10.96.0.10\noptions ndots:5\n"
    )
    assert r.searches == (".",)


def test_possibly_cut_at_the_kubelet_limits():
    many = " ".join(f"d{i}.example" for i in range(29))
    r = read(
        f"search app.svc.cluster.local svc.cluster.local cluster.local {many}\nnameserver 10.96.0.10\noptions ndots:5\n"
    )
    assert len(r.searches) == 29 and not r.complete
    assert any("limits" in n for n in r.notes)
    # legacy kubelet: 6 paths
    r = read(K1_POD.replace("openstacklocal", "a.example b.example c.example"), kubelet_version="v1.24.3")
    assert not r.complete


def test_dns_config_with_options_only_is_usable_for_searches():
    pod = "search app.svc.cluster.local svc.cluster.local cluster.local openstacklocal\nnameserver 10.96.0.10\noptions ndots:2\n"
    r = read(pod, dns_config={"options": [{"name": "ndots", "value": "2"}]})
    assert r.searches == ("openstacklocal",)
    host = "search openstacklocal\nnameserver 192.168.0.2\nnameserver 1.1.1.1\noptions edns0\n"
    r = read(host, "Default", dns_config={"nameservers": ["1.1.1.1"]})
    assert r.scope == "searches" and r.nameservers is None and r.content == "search openstacklocal\n"


@pytest.mark.parametrize(
    ("text", "kw", "message"),
    [
        # the cluster searches are not first: another namespace's file, or a changed cluster domain
        (K1_POD.replace("app.svc", "other.svc"), {}, "not first"),
        (K1_POD, {"cluster_domain": "corp.local"}, "not first"),
        # options not the kubelet's (mutated; rewritten by the container)
        (K1_POD.replace("ndots:5", "ndots:2"), {}, "options"),
        # nameservers not the observed clusterDNS
        (K1_POD, {"cluster_dns": ["10.0.0.10"]}, "cluster DNS"),
        # not what a runtime writes
        ("# generated by NetworkManager\n" + K1_POD, {}, "not a search"),
        (K1_POD + "domain corp\n", {}, "not a search"),
        (K1_POD + "search x\n", {}, "two search"),
        (K1_POD.replace("openstacklocal", "openstacklocal openstacklocal"), {}, "repeats"),
        (K1_POD.replace("openstacklocal", "$(reboot)"), {}, "not a DNS name"),
        (K1_POD.replace("10.96.0.10", "not-an-ip"), {}, "not an IP"),
        (
            "search app.svc.cluster.local svc.cluster.local cluster.local x\noptions ndots:5\n",
            {},
            "no nameserver",
        ),
        ("x" * 70000, {}, "bytes"),
        (K1_POD, {"resolv_conf": ""}, "reads no node file"),
        (K1_POD, {"dns_config": {"searches": ["my.domain"]}}, "cannot be told apart"),
    ],
)
def test_strict_rejections(text, kw, message):
    with pytest.raises(ValueError, match=message):
        read(text, **kw)


def test_dns_policy_none_is_refused():
    with pytest.raises(ValueError, match="dnsPolicy None"):
        read(K1_POD, "None")


def test_missing_cluster_dns_falls_back_to_host():
    r = read(K1_NODE, "ClusterFirst", cluster_dns=[])
    assert r.scope == "file" and r.nameservers == ("192.168.0.2",)


# --- agreement --------------------------------------------------------------------------------------------


def _r(scope, searches, src, complete=True):
    return NodeFileReading(
        scope=scope,
        searches=tuple(searches),
        nameservers=("192.168.0.2",) if scope == "file" else None,
        options=() if scope == "file" else None,
        content="",
        complete=complete,
        sources=(src,),
        evidence=(f"{src}: read",),
    )


def test_merge_prefers_file_and_reports_disagreement():
    a = _r("searches", ["openstacklocal", "corp.example"], "app/a on node n1")
    b = _r("file", ["openstacklocal"], "kube-system/b on node n2")
    c = _r("searches", ["openstacklocal"], "app/c on node n3")
    merged, disagreements = merge_readings([a, b, c])
    assert merged.scope == "file" and merged.searches == ("openstacklocal",)
    assert merged.sources == ("kube-system/b on node n2", "app/c on node n3")
    assert len(disagreements) == 1
    assert "app/a on node n1" in disagreements[0] and "kube-system/b on node n2" in disagreements[0]


def test_merge_majority_among_equals_and_agreement():
    a = _r("searches", ["x"], "a/a on node n1")
    b = _r("searches", ["y"], "b/b on node n2")
    c = _r("searches", ["y"], "c/c on node n3")
    merged, disagreements = merge_readings([a, b, c])
    assert merged.searches == ("y",) and len(disagreements) == 1
    merged, disagreements = merge_readings([b, c])
    assert disagreements == [] and merged.sources == ("b/b on node n2", "c/c on node n3")
    assert merge_readings([]) == (None, [])


# --- candidates and plans -----------------------------------------------------------------------------------


def cand(ns, pod, node, policy="ClusterFirst", host=False, containers=("app",), images=(), dns_config=None):
    return NodeFileCandidate(
        namespace=ns,
        pod=pod,
        node=node,
        dns_policy=policy,
        host_network=host,
        has_dns_config=dns_config is not None,
        containers=tuple(containers),
        images=tuple(images),
        dns_config=dns_config,
    )


def test_candidate_categories():
    assert candidate_category(dns_policy="Default", host_network=False, dns_config=None) == "host"
    assert candidate_category(dns_policy="ClusterFirst", host_network=True, dns_config=None) == "host"
    assert (
        candidate_category(dns_policy="ClusterFirstWithHostNet", host_network=True, dns_config=None)
        == "cluster"
    )
    assert (
        candidate_category(dns_policy="None", host_network=False, dns_config={"nameservers": ["1.1.1.1"]})
        is None
    )
    assert (
        candidate_category(dns_policy="ClusterFirst", host_network=False, dns_config={"searches": ["a"]})
        is None
    )
    assert (
        candidate_category(
            dns_policy="ClusterFirst", host_network=False, dns_config={"options": [{"name": "ndots"}]}
        )
        == "dns-config"
    )


def test_plan_orders_host_first_spreads_nodes_and_prefers_cat():
    pools = {"n1": "general", "n2": "general", "n3": "gpu"}
    cands = [
        cand("app", "a1", "n1"),
        cand("app", "a2", "n1"),
        cand(
            "app",
            "b1",
            "n2",
            containers=("static", "shell"),
            images=("gcr.io/distroless/static", "alpine:3.20"),
        ),
        cand("kube-system", "proxy", "n1", "ClusterFirst", host=True),
        cand("kube-system", "none", "n2", "None", dns_config={"nameservers": ["1.1.1.1"]}),
        cand("app", "nd", "n2", dns_config={"options": [{"name": "ndots", "value": "2"}]}),
        cand("app", "g1", "n3"),
        cand("app", "orphan", "n9"),
    ]
    libc = {"gcr.io/distroless/static": "static", "alpine:3.20": "musl"}
    plans = plan_reads(
        cands, pools, per_pool=5, prefer=libc, kubelets={"gpu": KubeletDNS(cluster_domain="k8s.local")}
    )
    assert list(plans) == ["general", "gpu"]
    general = plans["general"]
    assert [r.candidate.pod for r in general.reads] == ["proxy", "b1", "a1", "a2", "nd"]
    assert [r.category for r in general.reads] == ["host", "cluster", "cluster", "cluster", "dns-config"]
    assert general.reads[1].containers == ("shell", "static")
    assert plans["gpu"].kubelet.cluster_domain == "k8s.local"
    assert len(plan_reads(cands, pools, per_pool=2)["general"].reads) == 2
    # a callable works too
    plans = plan_reads(cands, pools, prefer=lambda image: libc.get(image))
    assert plans["general"].reads[1].containers == ("shell", "static")


def test_plan_spreads_across_nodes_before_repeating_one():
    pools = {"n1": "p", "n2": "p"}
    cands = [cand("a", "x1", "n1"), cand("a", "x2", "n1"), cand("a", "x3", "n1"), cand("b", "y1", "n2")]
    assert [r.candidate.pod for r in plan_reads(cands, pools, per_pool=2)["p"].reads] == ["x1", "y1"]


def test_reading_for_uses_the_pool_kubelet():
    plans = plan_reads(
        [cand("app", "a1", "n1")],
        {"n1": "p"},
        kubelets={"p": KubeletDNS(cluster_dns=("10.0.0.10",))},
        check_cluster_dns=["p"],
    )
    with pytest.raises(ValueError, match="cluster DNS"):
        reading_for(plans["p"], plans["p"].reads[0], K1_POD)
    plans = plan_reads([cand("app", "a1", "n1")], {"n1": "p"})
    assert reading_for(plans["p"], plans["p"].reads[0], K1_POD).searches == ("openstacklocal",)


# --- DNS names ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("openstacklocal", True),
        ("eu-west-1.compute.internal", True),
        ("corp.example.", True),
        ("a" * 63 + ".example", True),
        ("a" * 64 + ".example", False),
        (".".join(["abcdefghi"] * 26), False),  # 259 characters
        ("bad\nname", False),
        ("evil.example\n", False),
        ("openstacklocal\n", False),
        ("$(reboot)", False),
        ("-lead.example", False),
        ("a..b", False),
        ("", False),
        ("exämple.com", False),
        (None, False),
    ],
)
def test_valid_dns_name(name, ok):
    assert valid_dns_name(name) is ok


# --- inference from Node objects ------------------------------------------------------------------------------


def node(name, provider_id=None, addresses=(), labels=None):
    n = {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {},
        "status": {"addresses": list(addresses)},
    }
    if provider_id is not None:
        n["spec"]["providerID"] = provider_id
    return n


def addr(kind, value):
    return {"type": kind, "address": value}


MAGNUM = node(
    "k8s-prod-abc123-node-0",
    "openstack:///9b1e6d3c-2f45-4e7a-8c1d-0f6a2b3c4d5e",
    [
        addr("InternalIP", "10.0.0.12"),
        addr("ExternalIP", "172.24.4.10"),
        addr("Hostname", "k8s-prod-abc123-node-0"),
    ],
    {"magnum.openstack.org/nodegroup": "default-worker", "magnum.openstack.org/role": "worker"},
)


def eks(name, zone, region, dns):
    return node(
        name,
        f"aws:///{zone}/i-0123456789abcdef0",
        [addr("InternalIP", "192.168.12.34"), addr("InternalDNS", dns), addr("Hostname", dns)],
        {
            "eks.amazonaws.com/nodegroup": "ng-1",
            "topology.kubernetes.io/region": region,
            "topology.kubernetes.io/zone": zone,
        },
    )


def test_openstack_magnum():
    inf = infer_node_searches([MAGNUM])
    assert (inf.searches, inf.provider) == (("openstacklocal",), "openstack")
    assert inf.content == "search openstacklocal\n"
    assert "spec.providerID" in inf.evidence[0] and "Neutron" in inf.evidence[0]


def test_openstack_with_a_network_dns_domain_in_the_hostname():
    n = node("w1", "openstack:///uuid", [addr("Hostname", "w1.cloud.corp.example")])
    assert infer_node_searches([n]).searches == ("cloud.corp.example",)


def test_eks_us_east_1_and_eu_west_1():
    inf = infer_node_searches(
        [eks("ip-192-168-12-34.ec2.internal", "us-east-1a", "us-east-1", "ip-192-168-12-34.ec2.internal")]
    )
    assert (inf.searches, inf.provider) == (("ec2.internal",), "aws")
    assert any("topology.kubernetes.io/region=us-east-1" in e for e in inf.evidence)
    inf = infer_node_searches(
        [
            eks(
                "ip-10-1-2-3.eu-west-1.compute.internal",
                "eu-west-1b",
                "eu-west-1",
                "ip-10-1-2-3.eu-west-1.compute.internal",
            )
        ]
    )
    assert inf.searches == ("eu-west-1.compute.internal",)


def test_aws_region_from_the_provider_id_zone_when_no_label():
    n = node("x", "aws:///ap-northeast-1c/i-0abc")
    assert infer_node_searches([n]).searches == ("ap-northeast-1.compute.internal",)


def test_gke_zonal():
    n = node(
        "gke-prod-default-pool-1a2b3c4d-xyz1",
        "gce://my-project-123/europe-west1-b/gke-prod-default-pool-1a2b3c4d-xyz1",
        [addr("InternalIP", "10.132.0.5"), addr("Hostname", "gke-prod-default-pool-1a2b3c4d-xyz1")],
        {"cloud.google.com/gke-nodepool": "default-pool", "topology.kubernetes.io/zone": "europe-west1-b"},
    )
    inf = infer_node_searches([n])
    assert inf.searches == (
        "europe-west1-b.c.my-project-123.internal",
        "c.my-project-123.internal",
        "google.internal",
    )
    assert inf.provider == "gce" and "global DNS" in inf.evidence[0]


def test_aks_gives_a_pattern_not_a_domain():
    n = node(
        "aks-nodepool1-12345678-vmss000000",
        "azure:///subscriptions/0000/resourceGroups/mc_rg_aks_westeurope/providers/Microsoft.Compute/"
        "virtualMachineScaleSets/aks-nodepool1-12345678-vmss/virtualMachines/0",
        [addr("InternalIP", "10.224.0.4"), addr("Hostname", "aks-nodepool1-12345678-vmss000000")],
        {"kubernetes.azure.com/agentpool": "nodepool1"},
    )
    inf = infer_node_searches([n])
    assert inf.provider == "azure" and inf.searches == () and inf.content == ""
    assert inf.pattern and "internal.cloudapp.net" in inf.pattern
    assert "cannot be inferred" in inf.evidence[0]


def test_bare_metal_infers_nothing():
    n = node("worker-1", None, [addr("InternalIP", "192.168.1.21"), addr("Hostname", "worker-1")])
    assert infer_node_searches([n]) is None
    assert infer_node_searches([]) is None


def test_bare_metal_fqdn_hostname_gives_its_domain():
    n = node("worker-1", None, [addr("Hostname", "worker-1.dc1.corp.example")])
    inf = infer_node_searches([n])
    assert (inf.searches, inf.provider) == (("dc1.corp.example",), "addresses")


@pytest.mark.parametrize(
    "value",
    [
        "evil.example\nsearch attacker.example",
        "x.$(touch /tmp/pwn).example",
        "a." + "b" * 64 + ".example",
        "x." + "a." * 130 + "com",
    ],
)
def test_hostile_addresses_are_dropped(value):
    n = node("w", None, [addr("Hostname", value), addr("InternalDNS", value)])
    assert infer_node_searches([n]) is None
    inf = infer_node_searches([node("w", "openstack:///u", [addr("Hostname", value)])])
    assert inf.searches == ("openstacklocal",)
    assert all("\n" not in e for e in inf.evidence)


def test_hostile_provider_ids_are_dropped():
    assert infer_node_searches([node("w", "gce://proj;rm -rf/zone\n/x")]) is None
    inf = infer_node_searches([node("w", "gce://example.com:proj/us-central1-a/x")])
    assert inf.searches == ("google.internal",)
    assert infer_node_searches([node("w", "aws:///$(id)/i-1")]) is None


def test_nodes_disagree_most_common_kept():
    a = eks("a", "eu-west-1a", "eu-west-1", "a.eu-west-1.compute.internal")
    b = eks("b", "eu-west-1b", "eu-west-1", "b.eu-west-1.compute.internal")
    c = MAGNUM
    inf = infer_node_searches([a, b, c])
    assert inf.searches == ("eu-west-1.compute.internal",)
    assert any("1 node(s) point to openstacklocal" in e for e in inf.evidence)
