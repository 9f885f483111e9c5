"""Migration 0009 moves stored reports into content-addressed rows and back, with rows in the tables
(on whichever database the suite runs: PostgreSQL under the test command, SQLite otherwise)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("clusters", "0008_exemption_notification_auditevent")]
AFTER = [("clusters", "0009_workload_content")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_0009_moves_reports_to_shared_contents_and_back():
    apps = migrate(BEFORE)
    Cluster = apps.get_model("clusters", "Cluster")
    Scan = apps.get_model("clusters", "Scan")
    WorkloadResult = apps.get_model("clusters", "WorkloadResult")
    cluster = Cluster.objects.create(
        name="m", context="m", server="https://m.example", kubeconfig_encrypted="x"
    )
    scans = [Scan.objects.create(cluster=cluster, status="succeeded") for _ in range(2)]
    same = {"namespace": "shop", "kind": "Deployment", "name": "cart", "risk": "affected"}
    other = {"namespace": "shop", "kind": "Deployment", "name": "web", "risk": "safe"}
    for scan in scans:  # the same workload found twice, and one found once
        WorkloadResult.objects.create(
            scan=scan, namespace="shop", kind="Deployment", name="cart", risk="affected",
            report=same, detail={"trace": [1, 2]}, search_text="shop/deployment/cart",
        )  # fmt: skip
    WorkloadResult.objects.create(
        scan=scans[1], namespace="shop", kind="Deployment", name="web", risk="safe",
        report=other, detail={}, search_text="shop/deployment/web",
    )  # fmt: skip

    apps = migrate(AFTER)
    WorkloadResult = apps.get_model("clusters", "WorkloadResult")
    WorkloadContent = apps.get_model("clusters", "WorkloadContent")
    assert WorkloadContent.objects.count() == 2  # cart stored once for both scans
    rows = {(r.scan_id, r.name): r for r in WorkloadResult.objects.select_related("content")}
    assert rows[(scans[0].pk, "cart")].content_id == rows[(scans[1].pk, "cart")].content_id
    assert rows[(scans[1].pk, "cart")].content.report == same
    assert rows[(scans[1].pk, "cart")].content.detail == {"trace": [1, 2]}
    assert rows[(scans[1].pk, "web")].content.search_text == "shop/deployment/web"

    apps = migrate(BEFORE)  # and back: every row has its report again
    WorkloadResult = apps.get_model("clusters", "WorkloadResult")
    back = {(r.scan_id, r.name): r for r in WorkloadResult.objects.all()}
    assert back[(scans[0].pk, "cart")].report == same
    assert back[(scans[1].pk, "web")].report == other
    assert back[(scans[1].pk, "cart")].search_text == "shop/deployment/cart"
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
