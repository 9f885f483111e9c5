"""Fuzzing what the Kubernetes API sends into the inventory (``slim_pod``, ``build_inventory``,
``group_node_pools``): any JSON gives an inventory holding only valid names, quickly."""

from __future__ import annotations

import pytest
from hypothesis import given

from dnsaudit.core.inventory import (
    build_inventory,
    group_node_pools,
    slim_pod,
    valid_container_name,
    valid_image,
    valid_kind,
    valid_name,
    valid_namespace,
)
from tests.fuzz.bytegen import Reader
from tests.fuzz.common import bounded, seeds

pytestmark = pytest.mark.fuzz

KEYS = ["metadata", "name", "namespace", "ownerReferences", "kind", "controller", "spec", "containers",
        "initContainers", "image", "status", "phase", "containerStatuses", "imageID", "state", "running",
        "nodeName", "dnsPolicy", "dnsConfig", "searches", "nameservers", "options", "value", "hostNetwork",
        "imagePullSecrets", "serviceAccountName", "labels", "template", "jobTemplate", "replicas",
        "deletionTimestamp", "uid", "nodeInfo", "kubeletVersion", "architecture"]  # fmt: skip
NAMES = ["web", "web-1", "shop", "a.b", "node-a", "ReplicaSet", "Deployment", "Job", "CronJob", "Rollout",
         "nginx:1.27", "alpine@sha256:" + "a" * 64, "docker-pullable://x@sha256:" + "b" * 64, "Running",
         "ClusterFirst", "None", "amd64", "v1.30.1", "linux"]  # fmt: skip
POD_SPEC = {
    "containers": ({"name": "name", "image": "name"},),
    "initContainers": ({"name": "name", "image": "name"},),
    "nodeName": "name",
    "dnsPolicy": ["ClusterFirst", "None", "Default", "ClusterFirstWithHostNet", "Bogus"],
    "dnsConfig": {
        "nameservers": ("name",),
        "searches": ("name",),
        "options": ({"name": "name", "value": "name"},),
    },
    "hostNetwork": "bool",
    "imagePullSecrets": ({"name": "name"},),
    "serviceAccountName": "name",
}
META = {
    "name": "name",
    "namespace": "name",
    "uid": "name",
    "labels": "value",
    "deletionTimestamp": "value",
    "ownerReferences": ({"kind": "name", "name": "name", "controller": "bool"},),
}
POD = {
    "metadata": META,
    "spec": POD_SPEC,
    "status": {
        "phase": ["Running", "Pending"],
        "containerStatuses": ({"name": "name", "imageID": "name", "state": {"running": "value"}},),
    },
}
CONTROLLER = {"metadata": META, "spec": {"replicas": "value", "template": {"spec": POD_SPEC}}}
CRONJOB = {"metadata": META, "spec": {"jobTemplate": {"spec": {"template": {"spec": POD_SPEC}}}}}
NODE = {
    "metadata": {"name": "name", "labels": {"node.kubernetes.io/pool": "name", "kubernetes.io/arch": "name"}},
    "status": {"nodeInfo": {"kubeletVersion": "name", "architecture": "name", "operatingSystem": "name"}},
}


@given(seeds)
def test_api_json(seed):
    r = Reader(seed)
    pods = [r.shaped(POD, KEYS, NAMES) for _ in range(r.below(4))]
    listed = {
        "pods": pods,
        "deployments": [r.shaped(CONTROLLER, KEYS, NAMES) for _ in range(r.below(3))],
        "replicasets": [r.shaped(CONTROLLER, KEYS, NAMES) for _ in range(r.below(3))],
        "cronjobs": [r.shaped(CRONJOB, KEYS, NAMES) for _ in range(r.below(2))],
    }
    nodes = [r.shaped(NODE, KEYS, NAMES) for _ in range(r.below(3))]
    slim = r.flag()
    with bounded():
        if slim:
            listed["pods"] = [slim_pod(p) for p in pods]
        else:
            for p in pods:
                slim_pod(p)
        inv = build_inventory(listed, {"node-a": "pool"}, {"node-a": "linux/amd64"}, default_pool="pool")
        problems: list[dict] = []
        pools = group_node_pools(nodes, problems)
    for w in inv.workloads:
        assert (
            valid_kind(w.kind) and valid_name(w.name) and (w.namespace == "" or valid_namespace(w.namespace))
        )
        for c in w.containers:
            assert valid_container_name(c.name) and valid_image(c.image)
    for p in [*inv.problems, *problems]:
        assert "\n" not in p["error"] and "\r" not in p["error"]
    for pool in pools.values():
        assert all(valid_name(n["metadata"]["name"]) for n in pool.nodes)
