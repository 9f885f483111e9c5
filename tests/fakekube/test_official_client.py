"""Fidelity of the test API server, checked with the official client (v37) and kubectl.

The client reaches the server only through a kubeconfig file, parsed by the client's own loader.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.auth import AUDITOR_RULES, VIEW_RULES, Rule
from dnsaudit.testbed.fakekube.fleet import openstack_prod


def api_client(path) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg)
    cfg.retries = 0
    return client.ApiClient(cfg)


@pytest.fixture
def prod(fakekube):
    spec = openstack_prod()
    spec.install(fakekube.default)
    return spec


def count(spec, kind):
    return sum(1 for x in spec.objects if x["kind"] == kind)


def test_typed_lists_deserialize_with_client_37(prod, fakekube, kubeconfig_file):
    api = api_client(kubeconfig_file(fakekube))
    core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
    pods = core.list_pod_for_all_namespaces()
    assert len(pods.items) == count(prod, "Pod")
    running = [p for p in pods.items if p.status.phase == "Running"]
    assert all(
        cs.image_id.startswith(("docker.io/", "gcr.io/", "registry.k8s.io/", "ghcr.io/", "cgr.dev/"))
        for p in running
        for cs in p.status.container_statuses
    )
    nodes = core.list_node().items
    assert {n.status.node_info.architecture for n in nodes} == {"amd64", "arm64"}
    assert all(n.status.node_info.boot_id for n in nodes)
    assert len(core.list_namespace().items) == count(prod, "Namespace")
    assert len(core.list_config_map_for_all_namespaces().items) == count(prod, "ConfigMap")
    assert len(core.list_secret_for_all_namespaces().items) == count(prod, "Secret")
    assert len(core.list_service_account_for_all_namespaces().items) == count(prod, "ServiceAccount")
    assert len(core.list_service_for_all_namespaces().items) == count(prod, "Service")
    assert len(apps.list_deployment_for_all_namespaces().items) == count(prod, "Deployment")
    assert len(apps.list_replica_set_for_all_namespaces().items) == count(prod, "ReplicaSet")
    assert len(apps.list_stateful_set_for_all_namespaces().items) == count(prod, "StatefulSet")
    assert len(apps.list_daemon_set_for_all_namespaces().items) == count(prod, "DaemonSet")
    assert len(batch.list_job_for_all_namespaces().items) == count(prod, "Job")
    cjs = batch.list_cron_job_for_all_namespaces().items
    assert {c.metadata.name for c in cjs} == {"etl-nightly", "report-export"}
    crds = client.ApiextensionsV1Api(api).list_custom_resource_definition().items
    assert "clusterpolicies.kyverno.io" in {c.metadata.name for c in crds}
    one = core.read_namespaced_pod(pods.items[0].metadata.name, pods.items[0].metadata.namespace)
    assert one.metadata.uid == pods.items[0].metadata.uid


def test_namespaced_lists_only_return_that_namespace(prod, fakekube, kubeconfig_file):
    core = client.CoreV1Api(api_client(kubeconfig_file(fakekube)))
    pods = core.list_namespaced_pod("payments").items
    expected = {
        x["metadata"]["name"]
        for x in prod.objects
        if x["kind"] == "Pod" and x["metadata"]["namespace"] == "payments"
    }
    assert {p.metadata.name for p in pods} == expected and expected


def test_list_items_lack_kind_but_single_get_has_it(prod, fakekube, kubeconfig_file):
    core = client.CoreV1Api(api_client(kubeconfig_file(fakekube)))
    raw = json.loads(core.list_pod_for_all_namespaces(_preload_content=False).data)
    assert raw["kind"] == "PodList" and raw["apiVersion"] == "v1"
    assert all("kind" not in i and "apiVersion" not in i for i in raw["items"])
    first = raw["items"][0]["metadata"]
    single = json.loads(
        core.read_namespaced_pod(first["name"], first["namespace"], _preload_content=False).data
    )
    assert single["kind"] == "Pod" and single["apiVersion"] == "v1"
    assert single["metadata"] == first


def test_custom_resource_list_items_keep_kind(fakekube, kubeconfig_file):
    policy = {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "add-ndots"},
        "spec": {"rules": []},
    }
    fakekube.reset([*o.kyverno_crds(), policy])
    api = client.CustomObjectsApi(api_client(kubeconfig_file(fakekube)))
    out = api.list_cluster_custom_object("kyverno.io", "v1", "clusterpolicies")
    assert out["kind"] == "ClusterPolicyList"
    assert out["items"][0]["kind"] == "ClusterPolicy" and out["items"][0]["apiVersion"] == "kyverno.io/v1"


def walk(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from walk(v, (*path, k))
    elif isinstance(obj, list):
        for v in obj:
            yield from walk(v, path)
    else:
        yield path, obj


def test_quantities_are_strings_and_timestamps_rfc3339_z(prod, fakekube, kubeconfig_file):
    core = client.CoreV1Api(api_client(kubeconfig_file(fakekube)))
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    seen_quantity = seen_time = 0
    for fetch in (core.list_pod_for_all_namespaces, core.list_node):
        raw = json.loads(fetch(_preload_content=False).data)
        for path, value in walk(raw["items"]):
            if any(p in ("requests", "limits", "capacity", "allocatable") for p in path):
                assert isinstance(value, str), (path, value)
                seen_quantity += 1
            if path and (
                path[-1].endswith("Timestamp") or path[-1].endswith("Time") or path[-1] == "startedAt"
            ):
                assert value is None or stamp.match(value), (path, value)
                seen_time += value is not None
    assert seen_quantity > 50 and seen_time > 50


def test_client_certificate_and_token_auth_both_work(fakekube, kubeconfig_file):
    fakekube.reset([o.namespace("default")])
    fakekube.add_user("carol", cert=True, token="tok-carol-1234", rules=VIEW_RULES)
    for auth in ("cert", "token"):
        core = client.CoreV1Api(api_client(kubeconfig_file(fakekube, "carol", auth=auth)))
        assert [n.metadata.name for n in core.list_namespace().items] == ["default"]


def test_unknown_token_is_401_with_status_body(fakekube, kubeconfig_file, tmp_path):
    path = kubeconfig_file(fakekube)
    text = (
        path.read_text()
        .replace("client-certificate-data", "x-unused")
        .replace("client-key-data", "x-unused2")
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("x-unused:", "token: not-a-known-token\n    x-unused:", 1))
    core = client.CoreV1Api(api_client(bad))
    with pytest.raises(ApiException) as info:
        core.list_namespace()
    assert info.value.status == 401
    body = json.loads(info.value.body)
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized" and body["code"] == 401


def test_forbidden_is_403_with_the_apiservers_message(fakekube, kubeconfig_file):
    fakekube.reset([o.namespace("team-a"), o.namespace("team-b")])
    fakekube.add_user("dev", rules=(Rule(("get", "list"), ("",), ("pods",), namespaces=("team-a",)),))
    core = client.CoreV1Api(api_client(kubeconfig_file(fakekube, "dev")))
    assert core.list_namespaced_pod("team-a").items == []
    with pytest.raises(ApiException) as info:
        core.list_namespaced_pod("team-b")
    body = json.loads(info.value.body)
    assert info.value.status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == (
        'pods is forbidden: User "dev" cannot list resource "pods" in API group "" '
        'in the namespace "team-b"'
    )
    assert body["details"] == {"group": "", "kind": "pods"}
    with pytest.raises(ApiException) as info:
        core.list_pod_for_all_namespaces()
    assert json.loads(info.value.body)["message"].endswith("at the cluster scope")


def test_discovery_serves_groups_resources_and_short_names(prod, fakekube, kubeconfig_file):
    api = api_client(kubeconfig_file(fakekube))
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    assert {"apps", "batch", "apiextensions.k8s.io", "authorization.k8s.io", "kyverno.io"} <= set(groups)
    core = {r.name: r for r in client.CoreV1Api(api).get_api_resources().resources}
    assert core["pods"].namespaced and core["pods"].short_names == ["po"]
    assert not core["nodes"].namespaced and "list" in core["nodes"].verbs
    assert "nodes/proxy" in core and "pods/exec" in core
    apps = {r.name: r for r in client.AppsV1Api(api).get_api_resources().resources}
    assert apps["deployments"].short_names == ["deploy"]


def test_kyverno_group_is_served_only_when_its_crds_exist(fakekube, kubeconfig_file):
    fakekube.reset([o.namespace("default")])
    api = api_client(kubeconfig_file(fakekube))
    assert "kyverno.io" not in {g.name for g in client.ApisApi(api).get_api_versions().groups}
    fakekube.add(o.kyverno_crds())
    assert "kyverno.io" in {g.name for g in client.ApisApi(api).get_api_versions().groups}


def test_configz_is_the_kubelet_v1beta1_object(fakekube, kubeconfig_file):
    info = o.NodeInfo()
    fakekube.reset([o.node("n1", info, ip="10.0.0.11"), o.node("n2", info, ip="10.0.0.12")])
    fakekube.set_kubelet(
        "n1", o.kubelet_config(resolv_conf="/etc/k8s-resolv.conf", cluster_dns=("169.254.20.10",))
    )
    fakekube.set_kubelet("n2", status=502)
    core = client.CoreV1Api(api_client(kubeconfig_file(fakekube)))
    resp = core.connect_get_node_proxy_with_path("n1", "configz", _preload_content=False)
    cfg = json.loads(resp.data)["kubeletconfig"]
    assert cfg["resolvConf"] == "/etc/k8s-resolv.conf" and cfg["clusterDNS"] == ["169.254.20.10"]
    assert cfg["clusterDomain"] == "cluster.local" and "kind" not in cfg
    with pytest.raises(ApiException) as exc:
        core.connect_get_node_proxy_with_path("n2", "configz", _preload_content=False)
    assert exc.value.status == 502 and "error trying to reach service" in exc.value.body


def test_configz_needs_get_on_nodes_proxy(fakekube, kubeconfig_file):
    fakekube.reset([o.node("n1", o.NodeInfo(), ip="10.0.0.11")])
    fakekube.add_user("viewer", rules=VIEW_RULES)
    core = client.CoreV1Api(api_client(kubeconfig_file(fakekube, "viewer")))
    assert len(core.list_node().items) == 1
    with pytest.raises(ApiException) as exc:
        core.connect_get_node_proxy_with_path("n1", "configz", _preload_content=False)
    body = json.loads(exc.value.body)
    assert exc.value.status == 403
    assert body["message"] == (
        'nodes "n1" is forbidden: User "viewer" cannot get resource "nodes/proxy" in API '
        'group "" at the cluster scope'
    )


def test_self_subject_access_review_answers_from_the_users_rules(fakekube, kubeconfig_file):
    fakekube.add_user("auditor", rules=AUDITOR_RULES)
    authz = client.AuthorizationV1Api(api_client(kubeconfig_file(fakekube, "auditor")))

    def allowed(**attrs):
        body = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(**attrs)
            )
        )
        return authz.create_self_subject_access_review(body).status.allowed

    assert allowed(verb="list", resource="pods")
    assert allowed(verb="get", resource="nodes", subresource="proxy")
    assert not allowed(verb="create", resource="pods", subresource="exec", namespace="default")
    assert not allowed(verb="delete", resource="deployments", group="apps", namespace="default")


@pytest.mark.parametrize("value", ["1", "t", "T", "true", "TRUE", "True"])
def test_bool_query_params_accept_go_parse_bool_truths(fakekube, kubeconfig_file, value):
    core = client.CoreV1Api(api_client(kubeconfig_file(fakekube)))
    api = core.api_client
    # The generated methods only ever send "true"; send the other spellings through the same client.
    resp = api.rest_client.request(
        "GET", f"{api.configuration.host}/api/v1/pods?watch={value}", headers=_auth_headers(api)
    )
    resp.read()
    assert resp.status == 405  # watch recognised (and refused, this server does not stream)
    resp = api.rest_client.request(
        "GET", f"{api.configuration.host}/api/v1/pods?watch=false", headers=_auth_headers(api)
    )
    resp.read()
    assert resp.status == 200


def _auth_headers(api):
    headers = {"Accept": "application/json"}
    key = api.configuration.api_key.get("authorization")
    if key:
        headers["Authorization"] = key
    return headers


def test_kubectl_get_pods_all_namespaces(prod, fakekube, kubeconfig_file, kubectl):
    path = kubeconfig_file(fakekube)
    out = subprocess.run(
        [kubectl, "--kubeconfig", str(path), "get", "pods", "-A", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    got = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in json.loads(out.stdout)["items"]}
    want = {(x["metadata"]["namespace"], x["metadata"]["name"]) for x in prod.objects if x["kind"] == "Pod"}
    assert got == want
    table = subprocess.run(
        [kubectl, "--kubeconfig", str(path), "get", "deploy,sts,ds,cj", "-A"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0, table.stderr
    assert "payments-api" in table.stdout and "etl-nightly" in table.stdout
    raw = subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            str(path),
            "get",
            "--raw",
            f"/api/v1/nodes/{prod.pools[0].nodes[0]}/proxy/configz",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(raw.stdout)["kubeletconfig"]["resolvConf"] == prod.pools[0].resolv_conf_path


def test_kubectl_paginates_with_chunk_size(fakekube, kubeconfig_file, kubectl):
    info = o.NodeInfo()
    place = o.Placement(["n1"])
    objs = [o.namespace("default"), o.node("n1", info, ip="10.0.0.11")]
    objs += o.deployment("default", "many", [o.C("app", "alpine:3.19")], place, replicas=23)
    fakekube.reset(objs)
    out = subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            str(kubeconfig_file(fakekube)),
            "get",
            "pods",
            "-A",
            "--chunk-size",
            "5",
            "-o",
            "name",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split()) == 23
    lists = [t for m, t, _u, s in fakekube.faults.log if t.startswith("/api/v1/pods")]
    assert len(lists) == 5 and sum("continue=" in t for t in lists) == 4


def test_kubectl_prints_server_side_tables(prod, fakekube, kubeconfig_file, kubectl):
    path = str(kubeconfig_file(fakekube))
    out = subprocess.run(
        [kubectl, "--kubeconfig", path, "get", "pods", "-n", "payments", "-o", "wide"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    want = [x for x in prod.objects if x["kind"] == "Pod" and x["metadata"]["namespace"] == "payments"]
    assert len(rows) == len(want)
    running = [r for r in rows if r.split()[2] == "Running"]
    assert len(running) == len(want)
    nodes = subprocess.run(
        [kubectl, "--kubeconfig", path, "get", "nodes"], capture_output=True, text=True, timeout=60
    )
    assert nodes.stdout.splitlines()[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes.stdout.count(" Ready ") == sum(len(p.nodes) for p in prod.pools)
