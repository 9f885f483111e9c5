"""Pods checked as they stream in (``inventory.Intake``): the same inventory as from the raw pods, each
distinct value checked once per scan, checked specs and labels shared but never lent to a pod whose raw
value differs, refusals counted per pod in listing order, memory bounded."""

from __future__ import annotations

import copy
import sys

import pytest

from dnsaudit.core import inventory
from dnsaudit.core.inventory import Intake, PodRecord, RefusedPod, build_inventory, slim_pod
from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.objects import C, Placement


def by_resource(objs: list[dict]) -> dict[str, list[dict]]:
    plural = {k: r for r, k in inventory.RESOURCE_KIND.items()}
    out: dict[str, list[dict]] = {}
    for x in objs:
        if x["kind"] in plural:
            out.setdefault(plural[x["kind"]], []).append(x)
    return out


def cluster() -> dict[str, list[dict]]:
    place = Placement(["node-a", "node-b", "node-c"])
    objs = o.deployment("shop", "web", [C("app", "alpine:3.20"), C("side", "nginx:1.27")], place, replicas=6)
    objs += o.deployment("shop", "api", [C("app", "debian:12")], place, replicas=4)
    objs += o.deployment("pay", "api", [C("app", "debian:12")], place, replicas=2)
    objs.append(o.pod("debug", "shop", [C("sh", "busybox:1.36")], o.PodOpts(), node_name="node-b"))
    return by_resource(objs)


def summary(inv) -> tuple:
    cands = [
        (c.namespace, c.pod, c.node, c.containers, c.images, c.dns_policy) for c in inv.node_file_candidates
    ]
    return (
        inv.workloads,
        inv.pods_seen,
        inv.images,
        inv.pull_secrets,
        inv.service_accounts,
        inv.running_pods,
        inv.problems,
        cands,
    )


def records(pods: list[dict], intake: Intake | None = None) -> list:
    intake = intake or Intake()
    return [intake.pod(p) for p in pods]


def test_streamed_records_give_the_inventory_of_the_raw_and_of_the_slim_pods():
    objs = cluster()
    raw = build_inventory(copy.deepcopy(objs), {"node-a": "p1", "node-b": "p1", "node-c": "p2"}, {})
    slim = build_inventory({**objs, "pods": [slim_pod(p) for p in objs["pods"]]}, {"node-a": "p1"}, {})
    streamed = build_inventory(
        {**objs, "pods": records(objs["pods"])}, {"node-a": "p1", "node-b": "p1", "node-c": "p2"}, {}
    )
    assert summary(streamed) == summary(raw)
    assert [w.name for w in raw.workloads] == ["api", "api", "web", "debug"]  # by namespace, kind, name
    assert raw.pods_seen == 13 and raw.running_pods[("shop", "Deployment", "web")][0].startswith("web-")
    assert [(w.kind, w.name, w.containers) for w in slim.workloads] == [
        (w.kind, w.name, w.containers) for w in streamed.workloads
    ]


def test_each_distinct_value_is_checked_once_per_scan(monkeypatch):
    calls: dict[str, int] = {}

    def counted(name):
        real = getattr(inventory, name)

        def wrapper(*a, **kw):
            calls[name] = calls.get(name, 0) + 1
            return real(*a, **kw)

        monkeypatch.setattr(inventory, name, wrapper)

    for name in ("valid_namespace", "valid_kind", "valid_label", "_clean_pod_spec", "_valid_image_id"):
        counted(name)
    place = Placement(["node-a", "node-b"])
    pods = [
        x
        for x in o.deployment("shop", "web", [C("app", "alpine:3.20")], place, replicas=200)
        if x["kind"] == "Pod"
    ]
    intake = Intake()
    got = records(pods, intake)
    assert all(type(r) is PodRecord for r in got)
    assert calls["valid_namespace"] == 1  # one namespace
    assert calls["valid_kind"] == 1  # one owner kind
    assert calls["_clean_pod_spec"] == 1  # one pod template
    assert calls["valid_label"] == len(pods[0]["metadata"]["labels"])  # one label set
    assert calls["_valid_image_id"] == 1  # one image ID
    # ... shared, not copied per pod
    assert got[0].spec is got[-1].spec and got[0].labels is got[-1].labels
    assert got[0].image_ids is got[-1].image_ids and got[0].namespace is got[-1].namespace
    assert not hasattr(got[0], "__dict__") and sys.getsizeof(got[0]) < 200


def with_spec(pod: dict, **fields) -> dict:
    out = copy.deepcopy(pod)
    out["spec"].update(fields)
    return out


def pod(name: str = "web-1", **kw) -> dict:
    return o.pod(name, "shop", [C("app", "alpine:3.20")], o.PodOpts(), node_name="node-a", **kw)


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ({"hostNetwork": True}, {"hostNetwork": 1}),  # 1 == True: a cache keyed by value would lend it
        ({"hostNetwork": False}, {"hostNetwork": 0}),
        ({"dnsPolicy": "ClusterFirst"}, {"dnsPolicy": "Bogus"}),
        ({"serviceAccountName": "app"}, {"serviceAccountName": "$(id)"}),
        ({"imagePullSecrets": [{"name": "reg"}]}, {"imagePullSecrets": [{"name": "re g"}]}),
        (
            {"dnsConfig": {"options": [{"name": "ndots", "value": "2"}]}},
            {"dnsConfig": {"options": [{"name": "ndots", "value": 2}]}},
        ),
    ],
)
def test_a_checked_spec_is_never_lent_to_a_pod_whose_raw_spec_differs(good, bad):
    ok, refused = with_spec(pod("web-1"), **good), with_spec(pod("web-2"), **bad)
    intake = Intake()
    assert type(intake.pod(ok)) is PodRecord
    assert type(intake.pod(refused)) is RefusedPod
    assert type(intake.pod(copy.deepcopy(ok))) is PodRecord  # and the good one is still accepted


def test_a_refused_template_refuses_every_pod_and_counts_each():
    bad = [with_spec(pod(f"web-{i}"), containers=[{"name": "app", "image": "a b"}]) for i in range(7)]
    inv = build_inventory({"pods": [*records(bad), *records([pod("ok-1")])]})
    assert [w.name for w in inv.workloads] == ["ok-1"] and inv.pods_seen == 8
    (problem,) = inv.problems
    assert (
        problem["error"].startswith("7 refused")
        and "Pod shop/web-0: image of container app" in problem["error"]
    )
    assert "and 2 more" in problem["error"]


@pytest.mark.parametrize("twice", [False, True])
def test_the_first_invalid_field_is_the_one_reported_from_the_cache_too(twice):
    """nodeName is checked on its own (it differs per pod); it is still reported before the fields that come
    after it in a pod spec, and after those that come before it."""
    late = with_spec(pod("a"), nodeName="bad node", serviceAccountName="bad sa")
    early = with_spec(pod("b"), nodeName="bad node", dnsPolicy="Bogus")
    listed = [late, early] * (2 if twice else 1)
    problem = build_inventory({"pods": records(listed)}).problems[0]["error"]
    assert "Pod shop/a: nodeName is not a DNS-1123 subdomain: 'bad node'" in problem
    assert "Pod shop/b: dnsPolicy is not one of" in problem


def test_dropped_labels_and_image_ids_and_bad_owners_are_noted_per_pod_in_listing_order():
    a = pod("a")
    a["metadata"]["labels"] = {"app": "web", "bad": "x y"}
    b = copy.deepcopy(a)
    b["metadata"]["name"] = "b"
    b["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "$(x)", "controller": True}]
    b["status"]["containerStatuses"][0]["imageID"] = "sha256:`id`"
    inv = build_inventory({"pods": records([a, b])})
    problems = {p["fact"]: p["error"] for p in inv.problems}
    assert problems["labels and image IDs"].startswith("3 refused")
    assert (
        problems["labels and image IDs"].index("shop/a: label")
        < problems["labels and image IDs"].index("shop/b: label")
        < problems["labels and image IDs"].index("shop/b: imageID")
    )
    assert problems["owner references"].startswith("1 refused") and "shop/b" in problems["owner references"]
    assert [w.labels for w in inv.workloads] == [{"app": "web"}, {"app": "web"}]


def test_what_is_remembered_is_bounded_and_changes_nothing(monkeypatch):
    pods = [with_spec(pod(f"p-{i}"), serviceAccountName=f"sa-{i}") for i in range(40)]
    for i, p in enumerate(pods):
        p["metadata"]["labels"] = {"n": str(i)}
    full = build_inventory({"pods": records(pods)})
    monkeypatch.setattr(Intake, "REMEMBER", 8)
    intake = Intake()
    small = build_inventory({"pods": records(pods, intake)})
    assert summary(small) == summary(full)
    assert len(intake._specs) <= 8 and len(intake._label_sets) <= 8 and len(intake._names) <= 8


def test_a_pod_that_is_not_an_object_or_has_no_object_spec_is_refused():
    got = records([None, with_spec(pod("a")) | {"spec": "x"}, pod("b")])
    assert [type(r) for r in got] == [RefusedPod, RefusedPod, PodRecord]
    assert "a Pod: not an object" in got[0].notes[0][1]
    assert "the pod spec is not an object" in got[1].notes[0][1]
