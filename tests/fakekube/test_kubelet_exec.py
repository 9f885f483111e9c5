"""Exec answered like a real cluster: each node has a hidden resolv.conf, each running pod's /etc/resolv.conf is
what its kubelet and containerd wrote, and the container's image decides whether ``cat`` exists.

Everything goes through the product's own client path (``KubeClient.exec_read`` over the WebSocket exec of
the test API server). The expected files are written out literally from the kubelet's documented behaviour
(``shared/reference/domain.md`` section 4, vectors K1–K18), never computed by the code under test.
"""

from __future__ import annotations

import json

import pytest

from dnsaudit.boundary.kube import KubeClient, KubeError
from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.auth import VIEW_RULES
from dnsaudit.testbed.fakekube.exec import alpine
from dnsaudit.testbed.fakekube.kubelet_exec import EXEC_ANNOTATION
from dnsaudit.testbed.fakekube.pytest_fixtures import context_for

CAT = ["cat", "/etc/resolv.conf"]
#: The node file of domain.md section 4.2 (K1): an OpenStack node.
NODE_FILE = "nameserver 192.168.0.2\nsearch openstacklocal\noptions edns0\n"
#: K1: a ClusterFirst pod in namespace "app" on that node.
K1 = (
    "search app.svc.cluster.local svc.cluster.local cluster.local openstacklocal\n"
    "nameserver 10.96.0.10\n"
    "options ndots:5\n"
)
#: K6/K8: hostNetwork + ClusterFirst, and Default: the node file's three lists.
HOST = "search openstacklocal\nnameserver 192.168.0.2\noptions edns0\n"
PLACE = o.Placement(["node-1"], {"node-1": "10.0.1.11"})


def nodes(*specs: tuple[str, str, str]) -> list[dict]:
    """Node objects from ``(name, ip, kubelet version)``."""
    return [o.node(n, o.NodeInfo(kubelet_version=v), ip=ip) for n, ip, v in specs]


def pod(
    name: str, containers: list[o.C] | None = None, *, ns: str = "app", node: str = "node-1", **kw
) -> dict:
    opts = o.PodOpts(**{k: kw.pop(k) for k in list(kw) if k in ("dns_policy", "dns_config", "host_network")})
    return o.pod(name, ns, containers or [o.C("main", "alpine:3.20")], opts, node_name=node, **kw)


@pytest.fixture
def cluster(fakekube):
    """The default cluster with node-1 (kubelet 1.31, file ``NODE_FILE``) and the kubeadm-like default
    kubelet config (clusterDNS 10.96.0.10, cluster.local, resolvConf /run/systemd/resolve/resolv.conf)."""
    assert fakekube.default.node_files == {} and fakekube.default.exec_handler is None
    fakekube.reset([o.namespace("app"), *nodes(("node-1", "10.0.1.11", "v1.31.4"))])
    fakekube.set_node_file("node-1", NODE_FILE)
    return fakekube.default


@pytest.fixture
def kc(cluster):
    clients: list[KubeClient] = []

    def make(user: str = "admin") -> KubeClient:
        c = KubeClient.from_context(context_for(cluster, user), timeout=5)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def read(kc, name: str, container: str | None = None, *, ns: str = "app", user: str = "admin") -> str:
    res = kc(user).exec_read(ns, name, container, CAT)
    assert (res.exit_code, res.stderr) == (0, ""), res
    return res.stdout


def options_of(text: str) -> set[str]:
    """The options as a set (the kubelet merges them through a Go map: their order is not defined)."""
    lines = [line for line in text.splitlines() if line.startswith("options ")]
    assert len(lines) == 1, text
    return set(lines[0].split()[1:])


# --- dnsPolicy × hostNetwork -----------------------------------------------------------------------------


def test_cluster_first_pod_shows_cluster_searches_then_the_node_searches(cluster, kc):
    cluster.add([pod("web")])
    assert read(kc, "web") == K1


def test_host_network_cluster_first_pod_shows_the_node_file(cluster, kc):
    cluster.add([pod("agent", host_network=True)])
    assert read(kc, "agent") == HOST


def test_default_policy_pod_shows_the_node_file(cluster, kc):
    cluster.add([pod("dflt", dns_policy="Default")])
    assert read(kc, "dflt") == HOST


def test_cluster_first_with_host_net_shows_the_cluster_file(cluster, kc):
    cluster.add([pod("hn", dns_policy="ClusterFirstWithHostNet", host_network=True)])
    assert read(kc, "hn") == K1


def test_none_policy_shows_only_the_dns_config(cluster, kc):
    config = {
        "nameservers": ["10.96.0.10"],
        "searches": ["app.svc.cluster.local", "svc.cluster.local", "cluster.local"],
        "options": [{"name": "ndots", "value": "5"}],
    }
    cluster.add([pod("fixed", dns_policy="None", dns_config=config)])
    assert read(kc, "fixed") == (
        "search app.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
    )


def test_dns_config_is_merged_onto_cluster_first(cluster, kc):
    # K12: nameservers and searches appended, options merged by name (the pod's ndots wins).
    config = {
        "nameservers": ["1.1.1.1"],
        "searches": ["my.domain", "openstacklocal"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
    }
    cluster.add([pod("merged", dns_config=config)])
    text = read(kc, "merged")
    assert text.splitlines()[:3] == [
        "search app.svc.cluster.local svc.cluster.local cluster.local openstacklocal my.domain",
        "nameserver 10.96.0.10",
        "nameserver 1.1.1.1",
    ]
    assert options_of(text) == {"ndots:2", "edns0"}
    assert len(text.splitlines()) == 4 and text.endswith("\n")


def test_limits_three_nameservers_and_32_searches(cluster, kc):
    # K15 + K16: 3 cluster + d1…d40 is cut to 32 entries; 1 + 3 nameservers to the first 3.
    many = "nameserver 192.168.0.2\nsearch " + " ".join(f"d{i}.example" for i in range(1, 41)) + "\n"
    cluster.set_node_file("node-1", many)
    cluster.add([pod("lim", dns_config={"nameservers": ["10.0.0.1", "10.0.0.2", "10.0.0.3"]})])
    lines = read(kc, "lim").splitlines()
    search = lines[0].split()[1:]
    assert search[:4] == ["app.svc.cluster.local", "svc.cluster.local", "cluster.local", "d1.example"]
    assert len(search) == 32 and search[-1] == "d29.example"
    assert lines[1:4] == ["nameserver 10.96.0.10", "nameserver 10.0.0.1", "nameserver 10.0.0.2"]
    assert lines[4:] == ["options ndots:5"]


def test_kubelet_without_a_resolv_conf_gives_default_pods_loopback_per_node_ip(cluster, kc):
    # K9/K10: resolvConf "" — Default pods get 127.0.0.1 per IPv4 and ::1 per IPv6 node IP, "search .".
    dual = nodes(("node-2", "10.0.1.12", "v1.31.4"))[0]
    dual["status"]["addresses"].insert(1, {"type": "InternalIP", "address": "fd00:10::12"})
    cluster.add([dual])
    cluster.set_kubelet("node-2", o.kubelet_config(resolv_conf=""))
    cluster.add([pod("dflt2", dns_policy="Default", node="node-2"), pod("cf2", node="node-2")])
    assert read(kc, "dflt2") == "search .\nnameserver 127.0.0.1\nnameserver ::1\n"
    assert read(kc, "cf2") == (
        "search app.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
    )


@pytest.mark.parametrize(
    ("version", "search"),
    [
        # K4: how each kubelet reads the "search ." systemd-resolved writes on FQDN hosts.
        ("v1.24.17", "search app.svc.cluster.local svc.cluster.local cluster.local \n"),
        ("v1.25.0+k3s1", "search app.svc.cluster.local svc.cluster.local cluster.local .\n"),
        ("v1.25.1", "search app.svc.cluster.local svc.cluster.local cluster.local\n"),
    ],
)
def test_search_dot_on_the_node_depends_on_the_kubelet_version(cluster, kc, version, search):
    cluster.add(nodes(("node-v", "10.0.1.20", version)))
    cluster.set_node_file("node-v", "nameserver 192.168.8.1\nsearch .\n")
    cluster.add([pod("dot", node="node-v")])
    assert read(kc, "dot") == search + "nameserver 10.96.0.10\noptions ndots:5\n"


def test_missing_cluster_dns_falls_back_to_the_node_file(cluster, kc):
    # K14
    cluster.set_kubelet("node-1", {**o.kubelet_config(), "clusterDNS": []})
    cluster.add([pod("nodns")])
    assert read(kc, "nodns") == HOST


# --- containers by image -----------------------------------------------------------------------------------


def test_distroless_container_answers_executable_not_found(cluster, kc):
    cluster.add([pod("static", [o.C("app", "gcr.io/distroless/static-debian12")])])
    res = kc().exec_read("app", "static", "app", CAT)
    assert res.exit_code == 127 and res.executable_missing
    assert 'exec: "cat": executable file not found in $PATH' in res.message


def test_multi_container_pod_one_distroless_one_with_cat(cluster, kc):
    containers = [o.C("app", "python:3.12-slim"), o.C("proxy", "registry.k8s.io/kube-proxy:v1.31.4")]
    cluster.add([pod("duo", containers)])
    assert read(kc, "duo", "app") == K1
    res = kc().exec_read("app", "duo", "proxy", CAT)
    assert res.exit_code == 127 and res.executable_missing
    with pytest.raises(KubeError) as ei:
        kc().exec_read("app", "duo", None, CAT)
    assert ei.value.status == 400
    assert "a container name must be specified for pod duo, choose one of: [app proxy]" in ei.value.message


def test_alpine_and_debian_containers_speak_busybox_and_coreutils(cluster, kc):
    cluster.add([pod("a", [o.C("m", "nginx:1.27-alpine")]), pod("d", [o.C("m", "debian:bookworm")])])
    a = kc().exec_read("app", "a", "m", ["cat", "/nope"])
    d = kc().exec_read("app", "d", "m", ["cat", "/nope"])
    assert a.stderr == "cat: can't open '/nope': No such file or directory\n" and a.exit_code == 1
    assert d.stderr == "cat: /nope: No such file or directory\n" and d.exit_code == 1
    assert "ld-musl-x86_64.so.1" in kc().exec_read("app", "a", "m", ["ls", "/lib"]).stdout


def test_arm64_node_gives_the_arm64_musl_loader(cluster, kc):
    cluster.add([o.node("node-arm", o.NodeInfo(architecture="arm64"), ip="10.0.2.11")])
    cluster.set_node_file("node-arm", NODE_FILE)
    cluster.add([pod("arm", node="node-arm")])
    assert "ld-musl-aarch64.so.1" in kc().exec_read("app", "arm", None, ["ls", "/lib"]).stdout


def test_annotation_overrides_the_image(cluster, kc):
    cluster.add(
        [
            pod("ann-all", [o.C("m", "debian:bookworm")], annotations={EXEC_ANNOTATION: "distroless"}),
            pod(
                "ann-each",
                [o.C("a", "alpine:3.20"), o.C("b", "alpine:3.20")],
                annotations={EXEC_ANNOTATION: "b=debian"},
            ),
            pod("ann-none", annotations={EXEC_ANNOTATION: "none"}),
            pod("ann-bad", annotations={EXEC_ANNOTATION: "windows"}),
        ]
    )
    assert kc().exec_read("app", "ann-all", None, CAT).executable_missing
    assert kc().exec_read("app", "ann-each", "a", ["cat", "/x"]).stderr.startswith("cat: can't open")
    assert (
        kc().exec_read("app", "ann-each", "b", ["cat", "/x"]).stderr == "cat: /x: No such file or directory\n"
    )
    for name, words in (("ann-none", "no exec handler"), ("ann-bad", "'windows'")):
        with pytest.raises(KubeError) as ei:
            kc().exec_read("app", name, None, CAT)
        assert ei.value.reason == "ExecFailed" and words in ei.value.message


def test_cluster_image_flavours_override_the_built_in_mapping(cluster, kc):
    cluster.image_flavours["registry.example.com/team/app"] = "distroless"
    cluster.add([pod("custom", [o.C("m", "registry.example.com/team/app:1.2")])])
    assert kc().exec_read("app", "custom", None, CAT).executable_missing


# --- what refuses exec, what stays hidden ------------------------------------------------------------------------


def test_pending_pods_refuse_exec(cluster, kc):
    cluster.add(
        [
            o.pending_pod("app", "creating", [o.C("m", "alpine:3.20")], node_name="node-1"),
            o.pending_pod("app", "unscheduled", [o.C("m", "alpine:3.20")]),
            pod(
                "crashing",
                [o.C("app", "alpine:3.20"), o.C("side", "alpine:3.20")],
                waiting={"side": "CrashLoopBackOff"},
            ),
        ]
    )
    with pytest.raises(KubeError) as ei:
        kc().exec_read("app", "creating", None, CAT)
    assert ei.value.status == 400 and 'container not found ("m")' in ei.value.message
    with pytest.raises(KubeError) as ei:
        kc().exec_read("app", "unscheduled", None, CAT)
    assert ei.value.status == 400 and "pod unscheduled does not have a host assigned" in ei.value.message
    with pytest.raises(KubeError) as ei:
        kc().exec_read("app", "crashing", "side", CAT)
    assert 'container not found ("side")' in ei.value.message
    assert read(kc, "crashing", "app") == K1


def test_rbac_forbids_exec_without_the_permission(cluster, kc):
    cluster.add_user("viewer", rules=VIEW_RULES)
    cluster.add([pod("web")])
    with pytest.raises(KubeError) as ei:
        kc("viewer").exec_read("app", "web", None, CAT)
    assert (ei.value.reason, ei.value.status) == ("Forbidden", 403)
    assert 'cannot get resource "pods/exec"' in ei.value.message


def test_unknown_node_file_leaves_pods_without_resolv_conf(cluster, kc):
    cluster.add(nodes(("node-x", "10.0.1.30", "v1.31.4")))
    config = {"nameservers": ["10.96.0.10"], "searches": ["app.svc.cluster.local"]}
    cluster.add([pod("lost", node="node-x"), pod("own", node="node-x", dns_policy="None", dns_config=config)])
    res = kc().exec_read("app", "lost", None, CAT)
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr == "cat: can't open '/etc/resolv.conf': No such file or directory\n"
    # A dnsPolicy None pod's file does not depend on the node file.
    assert read(kc, "own") == "search app.svc.cluster.local\nnameserver 10.96.0.10\n"


def test_the_node_file_is_in_no_api_answer(cluster, kc):
    client = kc()
    texts = [json.dumps(client.list_all(r)) for r in ("nodes", "pods", "configmaps")]
    texts.append(json.dumps(client.kubelet_configz("node-1")))
    assert not any("openstacklocal" in t or "192.168.0.2" in t for t in texts)


def test_explicit_handler_wins_and_none_restores_the_kubelet(cluster, kc):
    cluster.add([pod("web")])
    cluster.set_exec({"*": alpine("nameserver 9.9.9.9\n")})
    assert read(kc, "web") == "nameserver 9.9.9.9\n"
    cluster.set_exec(None)
    assert read(kc, "web") == K1


def test_pods_keep_the_file_they_started_with(cluster, kc):
    cluster.add([pod("old")])
    cluster.snapshot_pod_files()
    cluster.set_node_file("node-1", "nameserver 192.168.0.2\nsearch corp.example\n")
    cluster.add([pod("new")])
    assert read(kc, "old") == K1
    assert read(kc, "new") == (
        "search app.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
        "nameserver 10.96.0.10\noptions ndots:5\n"
    )


def test_reset_keeps_node_files_and_forgets_image_flavours(cluster):
    cluster.image_flavours["x"] = "alpine"
    cluster.reset([])
    assert cluster.node_files == {"node-1": NODE_FILE} and cluster.image_flavours == {}


# --- the demo fleet -----------------------------------------------------------------------------------------------


def _first_pod(client: KubeClient, namespace: str, prefix: str) -> str:
    return next(
        p["metadata"]["name"]
        for p in client.list_all("pods")
        if p["metadata"]["namespace"] == namespace and p["metadata"]["name"].startswith(prefix)
    )


def test_fleet_nodes_carry_their_pool_file(fakekube_fleet):
    prod, _spec = fakekube_fleet["openstack-prod"]
    edge, _spec = fakekube_fleet["edge-k3s"]
    with (
        KubeClient.from_context(context_for(prod, "admin"), timeout=5) as p,
        KubeClient.from_context(context_for(edge, "admin"), timeout=5) as e,
    ):
        api = _first_pod(p, "payments", "payments-api-")
        assert p.exec_read("payments", api, None, CAT).stdout == (
            "search payments.svc.cluster.local svc.cluster.local cluster.local openstacklocal\n"
            "nameserver 10.96.0.10\noptions ndots:5\n"
        )
        # CoreDNS (dnsPolicy Default) on the infra pool, whose configz answers 502: the kubelet still works,
        # but the image has no cat.
        dns = _first_pod(p, "kube-system", "coredns-")
        assert p.exec_read("kube-system", dns, None, CAT).executable_missing
        # kubelet v1.25.0 copies "search ." into pods (kubernetes#112135).
        gw = _first_pod(e, "sensors", "sensor-gateway-")
        assert e.exec_read("sensors", gw, None, CAT).stdout == (
            "search sensors.svc.cluster.local svc.cluster.local cluster.local .\n"
            "nameserver 10.43.0.10\noptions ndots:5\n"
        )


def test_kubelets_before_1_26_keep_the_legacy_six_search_limit(cluster, kc):
    cluster.add(nodes(("node-old", "10.0.1.40", "v1.24.17")))
    cluster.set_node_file(
        "node-old", "nameserver 192.168.0.2\nsearch a.example b.example c.example d.example\n"
    )
    cluster.add([pod("legacy", node="node-old")])
    assert read(kc, "legacy") == (
        "search app.svc.cluster.local svc.cluster.local cluster.local a.example b.example c.example\n"
        "nameserver 10.96.0.10\noptions ndots:5\n"
    )
