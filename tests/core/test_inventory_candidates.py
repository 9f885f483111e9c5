"""build_inventory's node-file candidates: which pods, bounded per node and category, deterministic."""

from __future__ import annotations

import random

from dnsaudit.core.inventory import CANDIDATES_PER_NODE, build_inventory, slim_pod


def pod(
    ns, name, node, *, policy=None, host=False, dns_config=None, phase="Running", deleting=False, states=None
):
    spec = {
        "nodeName": node,
        "containers": [
            {"name": "app", "image": "alpine:3.20"},
            {"name": "side", "image": "gcr.io/distroless/static"},
        ],
    }
    if policy:
        spec["dnsPolicy"] = policy
    if host:
        spec["hostNetwork"] = True
    if dns_config is not None:
        spec["dnsConfig"] = dns_config
    meta = {"namespace": ns, "name": name, "uid": f"u-{ns}-{name}"}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    statuses = [
        {
            "name": c,
            "imageID": "",
            "state": {"running": {}} if (states or {}).get(c, True) else {"waiting": {}},
        }
        for c in ("app", "side")
    ]
    return {"metadata": meta, "spec": spec, "status": {"phase": phase, "containerStatuses": statuses}}


def cands(pods):
    return build_inventory({"pods": pods}).node_file_candidates


def test_which_pods_are_candidates():
    pods = [
        pod("app", "web", "n1"),
        pod("kube-system", "proxy", "n1", policy="ClusterFirst", host=True),
        pod("app", "pending", "n1", phase="Pending"),
        pod("app", "going", "n1", deleting=True),
        pod("app", "none", "n1", policy="None", dns_config={"nameservers": ["1.1.1.1"]}),
        pod("app", "adds", "n1", dns_config={"searches": ["corp.example"]}),
        pod("app", "ndots", "n1", dns_config={"options": [{"name": "ndots", "value": "2"}]}),
        pod("app", "crash", "n1", states={"app": False}),
        pod("app", "unscheduled", ""),
    ]
    got = cands(pods)
    assert [(c.pod, c.node) for c in got] == [
        ("proxy", "n1"),
        ("crash", "n1"),
        ("web", "n1"),
        ("ndots", "n1"),
    ]
    crash = got[1]
    assert crash.containers == ("side",) and crash.images == ("gcr.io/distroless/static",)
    web = got[2]
    assert web.containers == ("app", "side") and web.dns_policy == "ClusterFirst" and not web.has_dns_config
    assert got[3].has_dns_config and got[3].dns_config == {"options": [{"name": "ndots", "value": "2"}]}


def test_slim_pods_keep_the_running_state():
    slim = [slim_pod(p) for p in (pod("app", "web", "n1"), pod("app", "crash", "n1", states={"app": False}))]
    assert slim[0]["status"]["containerStatuses"][0] == {"name": "app", "imageID": "", "running": True}
    got = cands(slim)
    assert [(c.pod, c.containers) for c in got] == [("crash", ("side",)), ("web", ("app", "side"))]


def test_bounded_and_deterministic():
    pods = [pod(f"ns{i % 7}", f"p{i:05d}", f"n{i % 10}") for i in range(5000)]
    pods += [pod("kube-system", f"proxy-{i}", f"n{i}", host=True) for i in range(10)]
    a = cands(pods)
    random.Random(1).shuffle(pods)
    b = cands(pods)
    assert [(c.namespace, c.pod) for c in a] == [(c.namespace, c.pod) for c in b]
    assert len(a) == 10 * (1 + CANDIDATES_PER_NODE)
    per_node = {}
    for c in a:
        per_node.setdefault(c.node, []).append(c)
    for node_cands in per_node.values():
        assert node_cands[0].host_network  # host pods first on each node
        assert len(node_cands) == 1 + CANDIDATES_PER_NODE


def test_the_rest_of_the_inventory_is_unchanged():
    inv = build_inventory({"pods": [pod("app", "web", "n1")]})
    assert [w.name for w in inv.workloads] == ["web"]
    assert inv.running_pods == {("app", "Pod", "web"): ["web"]}
