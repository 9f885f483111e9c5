"""The demo fleet and the generators: the situations the product must be shown, served through the API."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import yaml

from dnsaudit.boundary.kube import KubeClient, KubeError
from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.fleet import demo_fleet, scale_cluster
from dnsaudit.testbed.fakekube.process import spawn
from dnsaudit.testbed.fakekube.pytest_fixtures import context_for
from dnsaudit.testbed.fakekube.server import FakeKube


def client(fleet, name):
    cluster, spec = fleet[name]
    return KubeClient.from_context(context_for(cluster, "dnsaudit")), spec


def by_uid(items):
    return {i["metadata"]["uid"]: i for i in items}


def test_fleet_has_the_three_demo_clusters():
    assert [s.name for s in demo_fleet()] == ["openstack-prod", "edge-k3s", "managed-clean"]
    assert all(s.demo for s in demo_fleet())


def test_openstack_prod_reads_like_the_seed(fakekube_fleet):
    kc, spec = client(fakekube_fleet, "openstack-prod")
    with kc:
        assert set(spec.node_resolv_conf.values()) == {"nameserver 10.10.0.2\nsearch openstacklocal\n"}
        assert spec.upstream == {"openstacklocal": "SERVFAIL"}
        nodes = list(kc.iter_list("nodes"))
        archs = {n["status"]["nodeInfo"]["architecture"] for n in nodes}
        assert archs == {"amd64", "arm64"}
        observed, failed = [], []
        for n in nodes:
            try:
                observed.append(kc.kubelet_configz(n["metadata"]["name"]))
            except KubeError as err:
                failed.append(err)
        assert observed and failed and all(e.status == 502 for e in failed)
        assert {c["clusterDNS"][0] for c in observed} == {"10.96.0.10"}
        assert kc.api_group_served("kyverno.io")
        templates = {}
        for res in ("deployments", "statefulsets", "daemonsets"):
            for w in kc.iter_list(res):
                templates[(res, w["metadata"]["namespace"], w["metadata"]["name"])] = w["spec"]["template"][
                    "spec"
                ]
        fixed = [k for k, s in templates.items() if s["dnsPolicy"] == "None"]
        assert len(fixed) == 1
        cfg = templates[fixed[0]]["dnsConfig"]
        assert cfg["nameservers"] and cfg["searches"] and cfg["options"]
        assert any(s.get("hostNetwork") for s in templates.values())
        images = {c["image"] for s in templates.values() for c in s["containers"]}
        assert {"alpine:3.19", "debian:bookworm-slim", "gcr.io/distroless/static-debian12"} <= images
        namespaces_with_musl = {
            k[1]
            for k, s in templates.items()
            if any(o.IMAGE_FACTS.get(c["image"], ("",))[0] == "musl" for c in s["containers"])
        }
        assert len(namespaces_with_musl) >= 3
        cjs = {c["metadata"]["name"]: c for c in kc.iter_list("cronjobs")}
        alpine_cj = [
            c
            for c in cjs.values()
            if c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
                "alpine"
            )
        ]
        assert alpine_cj and any(c["spec"]["suspend"] for c in cjs.values())
        assert any(d["spec"]["replicas"] == 0 for d in kc.iter_list("deployments"))
        assert "kubernetes cluster.local" in kc.get_configmap("kube-system", "coredns")["data"]["Corefile"]


def test_owner_chains_resolve_to_the_object_a_user_edits(fakekube_fleet):
    kc, _spec = client(fakekube_fleet, "openstack-prod")
    with kc:
        owners = {}
        for res in ("replicasets", "deployments", "statefulsets", "daemonsets", "jobs", "cronjobs"):
            owners.update(by_uid(kc.iter_list(res)))
        tops = set()
        bare = 0
        for pod in kc.iter_list("pods"):
            refs = pod["metadata"].get("ownerReferences")
            if not refs:
                bare += 1
                continue
            cur = pod
            while refs:
                (ref,) = [r for r in refs if r.get("controller")]
                cur = owners[ref["uid"]]
                assert cur["metadata"]["name"] == ref["name"]
                refs = cur["metadata"].get("ownerReferences")
            tops.add(ref["kind"])
        assert bare == 1
        assert tops == {"Deployment", "StatefulSet", "DaemonSet", "CronJob"}


def test_running_pods_report_containerd_image_ids(fakekube_fleet):
    kc, _spec = client(fakekube_fleet, "openstack-prod")
    with kc:
        for pod in kc.iter_list("pods", field_selector="status.phase=Running"):
            for cs in pod["status"]["containerStatuses"]:
                assert re.fullmatch(r"[a-z0-9.\-]+(/[a-z0-9._\-]+)+@sha256:[0-9a-f]{64}", cs["imageID"]), cs[
                    "imageID"
                ]


def test_edge_k3s_is_kubelet_125_with_search_dot(fakekube_fleet):
    kc, spec = client(fakekube_fleet, "edge-k3s")
    with kc:
        assert all("search .\n" in c for c in spec.node_resolv_conf.values())
        versions = {n["status"]["nodeInfo"]["kubeletVersion"] for n in kc.iter_list("nodes")}
        assert versions == {"v1.25.0+k3s1"}
        images = [c["image"] for p in kc.iter_list("pods") for c in p["spec"]["containers"]]
        assert "alpine:3.16" in images and images.count("alpine:3.18") == 1
        assert o.IMAGE_FACTS["alpine:3.16"][1] == "1.2.3" and o.IMAGE_FACTS["alpine:3.18"][1] == "1.2.4"
        assert (
            "import /etc/coredns/custom/*.server"
            in kc.get_configmap("kube-system", "coredns")["data"]["Corefile"]
        )
        assert kc.get_configmap("kube-system", "coredns-custom") is not None
        assert not kc.api_group_served("kyverno.io")


def test_managed_clean_has_only_cluster_safe_node_settings(fakekube_fleet):
    kc, spec = client(fakekube_fleet, "managed-clean")
    with kc:
        assert all("search" not in c for c in spec.node_resolv_conf.values())
        assert kc.get_configmap("kube-system", "node-local-dns") is not None
        libcs = {o.IMAGE_FACTS[c["image"]][0] for p in kc.iter_list("pods") for c in p["spec"]["containers"]}
        assert {"musl", "glibc"} <= libcs


def test_scale_cluster_has_the_requested_size():
    spec = scale_cluster(2000, namespaces=20, images=40, nodes=16, workloads=50)
    pods = [x for x in spec.objects if x["kind"] == "Pod"]
    assert len(pods) == 2000
    assert len({x["metadata"]["namespace"] for x in pods}) == 20
    images = {c["image"] for p in pods for c in p["spec"]["containers"]}
    assert 30 <= len(images) <= 40
    assert len({p["spec"]["nodeName"] for p in pods}) == 16


def test_scale_cluster_lists_through_the_boundary(fakekube_server):
    spec = scale_cluster(3000, namespaces=30, images=50, nodes=20, workloads=60, name="scale-test")
    from dnsaudit.testbed.fakekube.fleet import serve

    serve([spec], fakekube_server)
    with KubeClient.from_context(context_for(fakekube_server.cluster("scale-test"), "dnsaudit")) as kc:
        t = time.perf_counter()
        assert sum(1 for _ in kc.iter_list("pods", page_size=500)) == 3000
        assert time.perf_counter() - t < 30


def test_cli_serves_the_demo_fleet_and_writes_kubeconfigs(tmp_path, kubectl):
    kdir, state = tmp_path / "kube", tmp_path / "state"
    with spawn(kdir, fleet="demo", state_dir=state, timeout=60) as child:
        fleet = child.fleet
        assert [c["name"] for c in fleet["clusters"]] == ["openstack-prod", "edge-k3s", "managed-clean"]
        prod = fleet["clusters"][0]
        assert prod["pools"][0]["node_resolv_conf"] == "nameserver 10.10.0.2\nsearch openstacklocal\n"
        doc = yaml.safe_load(Path(prod["kubeconfig"]).read_text())
        assert set(doc["users"][0]["user"]) == {"client-certificate-data", "client-key-data"}
        assert "certificate-authority-data" in doc["clusters"][0]["cluster"]
        assert oct(Path(prod["kubeconfig"]).stat().st_mode & 0o777) == "0o600"
        out = subprocess.run(
            [
                kubectl,
                "--kubeconfig",
                str(kdir / "fleet.yaml"),
                "--context",
                "edge-k3s",
                "get",
                "pods",
                "-A",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "pod/sensor-gateway-" in out.stdout
        assert (state / "ca.pem").exists()
        port = int(fleet["url"].rsplit(":", 1)[1])
    assert child.proc.returncode == 0
    # Restarting with the same state dir and port keeps the kubeconfigs written before valid.
    with spawn(tmp_path / "kube2", fleet="demo", state_dir=state, port=port, timeout=60):
        out = subprocess.run(
            [
                kubectl,
                "--kubeconfig",
                str(kdir / "fleet.yaml"),
                "--context",
                "openstack-prod",
                "get",
                "nodes",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert len(out.stdout.split()) == 7


def test_cli_scale_fleet_serves_several_clusters(tmp_path):
    extra = ["--scale-pods", "1500", "--scale-clusters", "2"]
    with spawn(tmp_path, fleet="scale", extra=extra, timeout=120) as child:
        assert [c["name"] for c in child.fleet["clusters"]] == ["scale-0", "scale-1"]
        cfg = yaml.safe_load(Path(child.fleet["clusters"][1]["kubeconfig"]).read_text())
        cl, us = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
        import base64

        from dnsaudit.core.model import KubeContext

        ctx = KubeContext(
            name="s",
            cluster="s",
            user="u",
            server=cl["server"],
            ca_data=base64.b64decode(cl["certificate-authority-data"]),
            client_cert_data=base64.b64decode(us["client-certificate-data"]),
            client_key_data=base64.b64decode(us["client-key-data"]),
        )
        with KubeClient.from_context(ctx) as kc:
            assert sum(1 for _ in kc.iter_list("pods")) == 1500


def test_server_starts_fast_and_stops():
    t = time.perf_counter()
    with FakeKube() as server:
        started = time.perf_counter() - t
        assert server.port > 0
    assert started < 1.0
