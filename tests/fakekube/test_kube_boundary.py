"""The Kubernetes boundary (dnsaudit.boundary.kube) against the test API server, faults included."""

from __future__ import annotations

import dataclasses
import os
import socket

import pytest

from dnsaudit.boundary.kube import KubeClient, KubeError
from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.auth import AUDITOR_RULES, VIEW_RULES, Rule
from dnsaudit.testbed.fakekube.fleet import openstack_prod
from dnsaudit.testbed.fakekube.pytest_fixtures import context_for
from dnsaudit.testbed.fakekube.server import FakeKube
from tests.support import free_port


@pytest.fixture
def prod(fakekube):
    spec = openstack_prod()
    spec.install(fakekube.default)
    return spec


@pytest.fixture
def kc(fakekube):
    with KubeClient.from_context(context_for(fakekube, "admin"), timeout=5) as c:
        yield c


def names(objs, kind=None):
    return sorted(
        (x["metadata"].get("namespace", ""), x["metadata"]["name"])
        for x in objs
        if kind is None or x.get("kind") == kind
    )


KINDS = {
    "pods": "Pod",
    "nodes": "Node",
    "namespaces": "Namespace",
    "replicasets": "ReplicaSet",
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "daemonsets": "DaemonSet",
    "jobs": "Job",
    "cronjobs": "CronJob",
    "configmaps": "ConfigMap",
    "secrets": "Secret",
    "serviceaccounts": "ServiceAccount",
}


@pytest.mark.parametrize("resource", sorted(KINDS))
def test_iter_list_pages_through_every_resource(prod, kc, resource):
    got = list(kc.iter_list(resource, page_size=3))
    assert names(got) == names(prod.objects, KINDS[resource])
    assert all("kind" not in i for i in got)


def test_iter_list_in_one_namespace_with_selectors(prod, kc):
    got = list(
        kc.iter_list("pods", namespace="payments", label_selector="app.kubernetes.io/name=payments-api")
    )
    want = [
        x
        for x in prod.objects
        if x["kind"] == "Pod"
        and x["metadata"]["namespace"] == "payments"
        and x["metadata"]["labels"].get("app.kubernetes.io/name") == "payments-api"
    ]
    assert names(got) == names(want) and len(want) == 3
    node = prod.pools[0].nodes[0]
    on_node = list(kc.iter_list("pods", field_selector=f"spec.nodeName={node}"))
    assert on_node and all(p["spec"]["nodeName"] == node for p in on_node)


def test_iter_list_survives_empty_and_short_pages(prod, kc, fakekube):
    fakekube.faults.page_cap = 2
    fakekube.faults.empty_first_page = True
    assert names(kc.iter_list("pods", page_size=50)) == names(prod.objects, "Pod")


def test_expired_continue_restarts_the_list_once(prod, kc, fakekube):
    fakekube.faults.expire(r"/api/v1/pods\?.*continue=", times=1)
    got = list(kc.iter_list("pods", page_size=4))
    # Items before the 410 are yielded twice (the restart); every pod is there.
    assert set(names(got)) == set(names(prod.objects, "Pod"))
    assert (
        sum("continue=" not in t for _m, t, _u, _s in fakekube.faults.log if t.startswith("/api/v1/pods"))
        == 2
    )


def test_second_expiry_is_a_transient_error(prod, kc, fakekube):
    fakekube.faults.expire(r"/api/v1/pods\?.*continue=", times=2)
    with pytest.raises(KubeError) as info:
        list(kc.iter_list("pods", page_size=4))
    assert info.value.reason == "Expired" and info.value.status == 410 and info.value.transient


def test_real_compaction_mid_list_restarts(prod, kc, fakekube):
    it = kc.iter_list("pods", page_size=5)
    first = [next(it) for _ in range(5)]
    fakekube.compact()
    rest = list(it)
    assert set(names(first + rest)) == set(names(prod.objects, "Pod"))


def test_unreachable_mid_pagination_is_transient(prod, kc, fakekube):
    fakekube.faults.drop(r"continue=", nth=2)
    with pytest.raises(KubeError) as info:
        list(kc.iter_list("pods", page_size=3))
    assert info.value.reason == "Unreachable" and info.value.transient and info.value.status is None


def test_server_error_mid_page_is_transient(prod, kc, fakekube):
    fakekube.faults.fail(r"/apis/apps/v1/replicasets\?.*continue=", status=503, nth=1)
    with pytest.raises(KubeError) as info:
        list(kc.iter_list("replicasets", page_size=2))
    assert info.value.status == 503 and info.value.transient and info.value.resource == "replicasets"


def test_slow_response_times_out_as_transient(prod, fakekube):
    fakekube.faults.delay(r"/api/v1/nodes", 2.0)
    with KubeClient.from_context(context_for(fakekube), timeout=0.5) as kc, pytest.raises(KubeError) as info:
        list(kc.iter_list("nodes"))
    assert info.value.reason == "Timeout" and info.value.transient


def test_connection_refused_is_unreachable():
    ctx = dataclasses.replace(_ctx_template(), server=f"https://127.0.0.1:{free_port()}")
    with KubeClient.from_context(ctx, timeout=2) as kc, pytest.raises(KubeError) as info:
        kc.server_version()
    assert info.value.reason == "Unreachable" and info.value.transient


def _ctx_template():
    server = FakeKube()
    return context_for(server)


def test_unknown_credentials_are_unauthorized_not_transient(fakekube):
    ctx = dataclasses.replace(
        context_for(fakekube), client_cert_data=None, client_key_data=None, token="nope"
    )
    with KubeClient.from_context(ctx) as kc, pytest.raises(KubeError) as info:
        list(kc.iter_list("namespaces"))
    assert info.value.status == 401 and info.value.reason == "Unauthorized" and not info.value.transient


def test_untrusted_server_certificate_is_a_tls_error(fakekube):
    other = FakeKube()  # a different CA
    ctx = dataclasses.replace(context_for(fakekube), ca_data=other.ca_pem)
    with KubeClient.from_context(ctx) as kc, pytest.raises(KubeError) as info:
        list(kc.iter_list("namespaces"))
    assert info.value.reason == "TLS" and not info.value.transient


def test_insecure_skip_verify_connects_without_the_ca(fakekube):
    ctx = dataclasses.replace(context_for(fakekube), ca_data=None, insecure_skip_tls_verify=True)
    with KubeClient.from_context(ctx) as kc:
        assert kc.server_version()["gitVersion"].startswith("v1.")


def test_forbidden_namespace_names_resource_and_namespace(prod, fakekube):
    fakekube.add_user("team", rules=(Rule(("list",), ("",), ("pods",), namespaces=("payments",)),))
    with KubeClient.from_context(context_for(fakekube, "team")) as kc:
        assert list(kc.iter_list("pods", namespace="payments"))
        with pytest.raises(KubeError) as info:
            list(kc.iter_list("pods", namespace="data"))
        err = info.value
        assert err.status == 403 and err.reason == "Forbidden" and not err.transient
        assert err.resource == "pods" and err.namespace == "data" and 'User "team"' in str(err)
        with pytest.raises(KubeError):
            list(kc.iter_list("pods"))


def test_token_auth_works_through_the_boundary(prod, fakekube):
    fakekube.add_user("tok", cert=False, rules=VIEW_RULES)
    ctx = context_for(fakekube, "tok")
    assert ctx.token and not ctx.client_cert_data
    with KubeClient.from_context(ctx) as kc:
        assert names(kc.iter_list("namespaces")) == names(prod.objects, "Namespace")


def test_kubelet_configz_per_pool(prod, kc):
    ok_pool = next(p for p in prod.pools if p.configz_status == 200)
    cfg = kc.kubelet_configz(ok_pool.nodes[0])
    assert cfg["resolvConf"] == ok_pool.resolv_conf_path
    assert cfg["clusterDNS"] == list(ok_pool.cluster_dns) and cfg["clusterDomain"] == ok_pool.cluster_domain
    bad_pool = next(p for p in prod.pools if p.configz_status != 200)
    with pytest.raises(KubeError) as info:
        kc.kubelet_configz(bad_pool.nodes[0])
    assert info.value.status == bad_pool.configz_status and info.value.transient
    assert "error trying to reach service" in str(info.value)


def test_kubelet_configz_forbidden_by_rbac(prod, fakekube):
    fakekube.add_user("viewer", rules=VIEW_RULES)
    with KubeClient.from_context(context_for(fakekube, "viewer")) as kc, pytest.raises(KubeError) as info:
        kc.kubelet_configz(prod.pools[0].nodes[0])
    assert info.value.status == 403 and not info.value.transient and "nodes/proxy" in str(info.value)


def test_configmaps_secrets_version_and_groups(prod, kc):
    cm = kc.get_configmap("kube-system", "coredns")
    assert "kubernetes cluster.local" in cm["data"]["Corefile"]
    assert kc.get_configmap("kube-system", "coredns-custom") is None
    secret = kc.read_secret("payments", "regcred")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert kc.read_secret("payments", "missing") is None
    assert kc.server_version()["major"] == "1"
    assert kc.api_group_served("kyverno.io")
    assert not kc.api_group_served("gatekeeper.sh")


def test_can_i_and_self_test_reflect_the_users_rules(prod, fakekube):
    fakekube.add_user("auditor", rules=AUDITOR_RULES)
    fakekube.add_user("viewer", rules=VIEW_RULES)
    with KubeClient.from_context(context_for(fakekube, "auditor")) as kc:
        assert kc.can_i("list", "pods")
        assert kc.can_i("get", "nodes", subresource="proxy")
        assert not kc.can_i("create", "pods", subresource="exec", namespace="default")
        report = {r["fact"]: r for r in kc.self_test()}
    assert (
        report["kubelet configz"]["allowed"]
        and not report["exec reads: node files and verification"]["allowed"]
    )
    assert report["exec reads: node files and verification"]["loss"]
    with KubeClient.from_context(context_for(fakekube, "viewer")) as kc:
        report = {r["fact"]: r for r in kc.self_test()}
    assert not report["kubelet configz"]["allowed"] and "assumed" in report["kubelet configz"]["loss"]
    assert not report["pull secrets"]["allowed"] and report["pods"]["allowed"]
    assert {"fact", "permission", "allowed", "loss"} <= set(report["pods"])


def test_client_never_loads_kubeconfig_files_and_cleans_key_material(fakekube, monkeypatch):
    import kubernetes.config

    def boom(*a, **k):
        raise AssertionError("load_kube_config must not be called")

    monkeypatch.setattr(kubernetes.config, "load_kube_config", boom)
    monkeypatch.setattr(kubernetes.config, "load_kube_config_from_dict", boom)
    kc = KubeClient.from_context(context_for(fakekube))
    key_path = kc._cfg.key_file
    assert key_path and os.stat(key_path).st_mode & 0o077 == 0
    assert list(kc.iter_list("namespaces")) == []
    kc.close()
    assert not os.path.exists(key_path)


def test_named_clusters_under_path_prefixes(fakekube_fleet):
    cluster, spec = fakekube_fleet["edge-k3s"]
    with KubeClient.from_context(context_for(cluster, "dnsaudit")) as kc:
        nodes = list(kc.iter_list("nodes"))
        assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {"v1.25.0+k3s1"}
        assert names(kc.iter_list("pods")) == names(spec.objects, "Pod")


def test_server_handles_concurrent_clients(prod, fakekube):
    import concurrent.futures

    def one(_):
        with KubeClient.from_context(context_for(fakekube)) as kc:
            return len(list(kc.iter_list("pods", page_size=7)))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(one, range(16)))
    assert counts == [len(names(prod.objects, "Pod"))] * 16


def test_server_socket_is_loopback_only(fakekube_server):
    assert fakekube_server.host == "127.0.0.1"
    with socket.create_connection(("127.0.0.1", fakekube_server.port), timeout=2):
        pass


def test_kubelet_refusing_configz_is_forbidden_not_transient(fakekube):
    fakekube.reset([o.node("n1", o.NodeInfo(), ip="10.0.0.11")])
    fakekube.set_kubelet("n1", status=403)
    with KubeClient.from_context(context_for(fakekube)) as kc, pytest.raises(KubeError) as info:
        kc.kubelet_configz("n1")
    assert info.value.status == 403 and not info.value.transient and "configz" in str(info.value)


def test_tls_server_name_is_used_for_verification(fakekube):
    good = dataclasses.replace(context_for(fakekube), tls_server_name="localhost")
    with KubeClient.from_context(good) as kc:
        assert kc.server_version()["major"] == "1"
    bad = dataclasses.replace(context_for(fakekube), tls_server_name="kube.example.invalid")
    with KubeClient.from_context(bad) as kc, pytest.raises(KubeError) as info:
        kc.server_version()
    assert info.value.reason == "TLS" and not info.value.transient
