"""The benchmark's workloads-stage breakdown (``bench/scan_child.py install_breakdown``) must time the parts
where the scan runs them: the listing in ``KubeClient.iter_list`` (only during the stage), the pods checked
by ``Intake.pod`` as they stream in, and ``build_inventory``; if the stage stopped going through them, the
counts here would say so."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dnsaudit.boundary.kube import KubeClient
from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.objects import C, Placement
from dnsaudit.testbed.fakekube.pytest_fixtures import context_for

REPO = Path(__file__).resolve().parents[2]


class _Progress:
    def set(self, *a, **kw):
        pass

    def step(self, n=1):
        pass

    def check(self):
        pass


@pytest.fixture
def breakdown(monkeypatch):
    """bench/scan_child.py's breakdown, installed for this test only (everything it replaces is restored)."""
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    sys.modules.pop("scan_child", None)
    import scan_child

    from clusters.scan import pipeline
    from dnsaudit.core import inventory

    monkeypatch.setattr(KubeClient, "iter_list", KubeClient.iter_list)
    monkeypatch.setattr(inventory.Intake, "pod", inventory.Intake.pod)
    monkeypatch.setattr(inventory, "build_inventory", inventory.build_inventory)
    monkeypatch.setattr(pipeline, "list_workloads", pipeline.list_workloads)
    return scan_child.install_breakdown()


def test_the_breakdown_times_the_parts_of_the_stage_the_scan_runs(fakekube, breakdown):
    from clusters.scan import pipeline

    place = Placement(["node-a", "node-b"])
    objs = [o.namespace("shop"), *o.deployment("shop", "web", [C("app", "alpine:3.20")], place, replicas=5)]
    objs += o.deployment("shop", "api", [C("app", "debian:12")], place, replicas=3)
    fakekube.reset(objs)
    pods = sum(1 for x in objs if x["kind"] == "Pod")
    with KubeClient.from_context(context_for(fakekube, "admin"), timeout=10) as client:
        list(client.iter_list("pods"))  # outside the stage: not counted
        assert breakdown["listed"] == 0 and breakdown["listing"] == 0
        inv = pipeline.list_workloads(client, [], _Progress(), {}, {}, None)
    assert [w.name for w in inv.workloads] == ["api", "web"]
    assert breakdown["checked"] == inv.pods_seen == pods == 8  # checked as they streamed in ...
    assert breakdown["checked_late"] == 0  # ... not handed raw to the inventory
    assert breakdown["listed"] == len(objs) - 1  # every workload object, the namespace aside
    assert breakdown["listing"] > 0 and breakdown["checking"] > 0 and breakdown["inventory"] > 0
    parts = breakdown["listing"] + breakdown["checking"] + breakdown["inventory"]
    assert parts <= breakdown["seconds"]
