"""List pagination (limit/continue/410) and label/field selectors of the test API server."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from dnsaudit.testbed.fakekube import objects as o


@pytest.fixture
def core(fakekube, kubeconfig_file):
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig_file(fakekube)), client_configuration=cfg)
    return client.CoreV1Api(client.ApiClient(cfg))


@pytest.fixture
def pods(fakekube):
    info = o.NodeInfo()
    place = o.Placement(["n1", "n2"])
    objs = [o.namespace(n) for n in ("a", "b", "c")]
    objs += [o.node("n1", info, ip="10.0.0.11"), o.node("n2", info, ip="10.0.0.12")]
    objs += o.deployment(
        "a", "web", [o.C("web", "nginx:1.27-alpine")], place, replicas=7, labels={"tier": "front"}
    )
    objs += o.deployment(
        "b", "api", [o.C("api", "python:3.12-alpine")], place, replicas=5, labels={"tier": "back"}
    )
    objs += o.statefulset("c", "db", [o.C("db", "postgres:16")], place, replicas=3)
    objs += o.cronjob("c", "nightly", [o.C("job", "alpine:3.19")], place, jobs=2)
    fakekube.reset(objs)
    return [p for p in objs if p["kind"] == "Pod"]


def raw(resp):
    return json.loads(resp.data)


def page_through(core, limit, **kw):
    names, token, pages = [], None, 0
    while True:
        extra = {"_continue": token} if token else {}
        page = raw(core.list_pod_for_all_namespaces(limit=limit, _preload_content=False, **kw, **extra))
        pages += 1
        names += [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            return names, pages


@pytest.mark.parametrize("limit", [1, 4, 16, 500])
def test_paging_returns_every_pod_once_in_namespace_name_order(core, pods, limit):
    names, pages = page_through(core, limit)
    want = sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods)
    assert names == want
    assert pages == max(1, -(-len(want) // limit))


def test_remaining_item_count_without_selectors_only(core, pods):
    page = raw(core.list_pod_for_all_namespaces(limit=4, _preload_content=False))
    assert page["metadata"]["remainingItemCount"] == len(pods) - 4
    page = raw(core.list_pod_for_all_namespaces(limit=4, label_selector="tier", _preload_content=False))
    assert "remainingItemCount" not in page["metadata"] and page["metadata"]["continue"]


def test_continue_token_is_opaque_base64_with_a_resource_version(core, pods):
    import base64

    token = raw(core.list_pod_for_all_namespaces(limit=2, _preload_content=False))["metadata"]["continue"]
    decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert isinstance(decoded["rv"], int) and decoded["start"].endswith("\x00")


def test_compaction_expires_continue_tokens_with_410_status(core, pods, fakekube):
    token = raw(core.list_pod_for_all_namespaces(limit=3, _preload_content=False))["metadata"]["continue"]
    fakekube.compact()
    with pytest.raises(ApiException) as info:
        core.list_pod_for_all_namespaces(limit=3, _continue=token)
    body = json.loads(info.value.body)
    assert info.value.status == 410 and body["reason"] == "Expired" and body["kind"] == "Status"
    assert body["metadata"]["continue"]  # the "inconsistent continue" token
    assert len(page_through(core, 3)[0]) == len(pods)  # a fresh list works


def test_short_and_empty_pages_still_reach_the_end(core, pods, fakekube):
    fakekube.faults.page_cap = 2
    fakekube.faults.empty_first_page = True
    first = raw(core.list_pod_for_all_namespaces(limit=10, _preload_content=False))
    assert first["items"] == [] and first["metadata"]["continue"]
    names, _ = page_through(core, 10)
    assert len(names) == len(set(names)) == len(pods)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=front", {"web"}),
        ("tier==back", {"api"}),
        ("tier!=front", {"api", "db", "nightly"}),
        ("tier in (front,back)", {"web", "api"}),
        ("tier notin (front)", {"api", "db", "nightly"}),
        ("tier", {"web", "api"}),
        ("!tier", {"db", "nightly"}),
        ("app.kubernetes.io/name=db,statefulset.kubernetes.io/pod-name=db-1", {"db"}),
    ],
)
def test_label_selectors(core, pods, selector, expected):
    items = raw(core.list_pod_for_all_namespaces(label_selector=selector, _preload_content=False))["items"]
    got = {i["metadata"]["labels"]["app.kubernetes.io/name"] for i in items}
    assert got == expected
    want = [p for p in pods if p["metadata"]["labels"]["app.kubernetes.io/name"] in expected]
    if selector.endswith("db-1"):
        want = [p for p in want if p["metadata"]["name"] == "db-1"]
    assert len(items) == len(want)


def test_field_selectors(core, pods):
    on_n1 = raw(core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1", _preload_content=False))[
        "items"
    ]
    assert len(on_n1) == sum(p["spec"]["nodeName"] == "n1" for p in pods) > 0
    done = raw(
        core.list_pod_for_all_namespaces(field_selector="status.phase==Succeeded", _preload_content=False)
    )
    assert {i["metadata"]["labels"]["app.kubernetes.io/name"] for i in done["items"]} == {"nightly"}
    running_not_a = raw(
        core.list_pod_for_all_namespaces(
            field_selector="status.phase=Running,metadata.namespace!=a", _preload_content=False
        )
    )["items"]
    assert {i["metadata"]["namespace"] for i in running_not_a} == {"b", "c"}
    one = raw(core.list_namespaced_pod("c", field_selector="metadata.name=db-0", _preload_content=False))[
        "items"
    ]
    assert [i["metadata"]["name"] for i in one] == ["db-0"]


def test_unsupported_field_selector_is_a_400(core, pods):
    with pytest.raises(ApiException) as info:
        core.list_pod_for_all_namespaces(field_selector="spec.dnsPolicy=None")
    assert info.value.status == 400 and json.loads(info.value.body)["reason"] == "BadRequest"


def test_selectors_and_paging_combine(core, pods):
    names, _ = page_through(core, 2, label_selector="tier in (front,back)")
    assert len(names) == 12 and len(set(names)) == 12
