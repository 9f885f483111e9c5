"""Storage that does not repeat itself (issue 12): a workload whose report did not change since the previous
scan is stored once, and each scan's row refers to it. Real scans of the fake API server's demo clusters,
saved by the real save stage into PostgreSQL; what pages, the API and exports show must not change.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction
from django.urls import reverse
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from clusters.models import Scan, WorkloadContent, WorkloadResult, lock_contents_shared, prune_contents
from clusters.reports import scan_report, scan_report_csv, workloads_diff
from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.objects import C
from tests.scans.helpers import register, run_scan
from tests.web import factories

pytestmark = pytest.mark.django_db


def scan_bytes(scan: Scan, before: set[int]) -> int:
    """What ``scan`` added to the database: its workload rows plus the contents it was the first to store
    (``before``: the content ids that existed before it), as PostgreSQL stores them (``pg_column_size``)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT coalesce(sum(pg_column_size(r.*)), 0) FROM clusters_workloadresult r WHERE r.scan_id = %s",
            [scan.pk],
        )
        rows = cur.fetchone()[0]
        cur.execute(
            "SELECT coalesce(sum(pg_column_size(c.*)), 0) FROM clusters_workloadcontent c "
            "WHERE NOT (c.id = ANY(%s))",
            [list(before)],
        )
        contents = cur.fetchone()[0]
    return rows + contents


def content_ids() -> set[int]:
    return set(WorkloadContent.objects.values_list("pk", flat=True))


def test_an_unchanged_rescan_stores_under_five_percent_of_the_first(
    postgres_database, fakekube_fleet, upstream_dns, settings
):
    # The demo's registries are unreachable: with inferred verdicts not cached, both scans infer afresh.
    settings.DNSAUDIT_INFERRED_VERDICT_TTL = 0
    fake, spec = fakekube_fleet["openstack-prod"]
    cluster = register(fake, spec, upstream_dns(spec))
    first = run_scan(cluster)
    after_first = content_ids()
    second = run_scan(cluster)
    assert first.status == second.status
    assert second.workloads.count() == first.workloads.count() > 10
    # Nothing new to store: every row of the second scan refers to a content the first stored.
    assert content_ids() == after_first
    assert set(second.workloads.values_list("content_id", flat=True)) == set(
        first.workloads.values_list("content_id", flat=True)
    )
    first_bytes = scan_bytes(first, set())
    second_bytes = scan_bytes(second, after_first)
    assert second_bytes <= 0.05 * first_bytes, (second_bytes, first_bytes)


def test_with_inferred_verdicts_cached_the_rescans_after_the_first_store_nothing_new(
    postgres_database, fakekube_fleet, upstream_dns, settings
):
    """A cached inferred verdict says so in its evidence ("cached inferred verdict from ..."), so the first
    rescan stores the workloads whose image was inferred once more; from then on, until the cache expires,
    rescans store no content at all."""
    settings.DNSAUDIT_INFERRED_VERDICT_TTL = 3600
    fake, spec = fakekube_fleet["openstack-prod"]
    cluster = register(fake, spec, upstream_dns(spec))
    run_scan(cluster)
    second = run_scan(cluster)
    known = content_ids()
    third = run_scan(cluster)
    assert content_ids() == known
    assert sorted(third.workloads.values_list("content_id", flat=True)) == sorted(
        second.workloads.values_list("content_id", flat=True)
    )


def test_what_pages_api_and_exports_show_is_the_same_for_both_scans(
    postgres_database, fakekube_fleet, upstream_dns, client, settings
):
    settings.DNSAUDIT_INFERRED_VERDICT_TTL = 0
    fake, spec = fakekube_fleet["openstack-prod"]
    cluster = register(fake, spec, upstream_dns(spec))
    first = run_scan(cluster)
    second = run_scan(cluster)
    a, b = scan_report(first), scan_report(second)
    assert a["workloads"] == b["workloads"] and len(a["workloads"]) == first.workloads_total
    # The CSV differs only in the scan id column.
    csv_a = scan_report_csv(first).replace(f",{first.pk},", ",ID,")
    csv_b = scan_report_csv(second).replace(f",{second.pk},", ",ID,")
    assert csv_a == csv_b
    client.force_login(factories.make_user("viewer"))
    pages = []
    for scan in (first, second):
        resp = client.get(reverse("clusters:api_scan_workloads", args=[scan.pk]) + "?page_size=5000")
        assert resp.status_code == 200
        pages.append(resp.json()["workloads"])
    assert pages[0] == pages[1] == a["workloads"]
    # The workload page of a row of the second scan reads its (shared) content.
    row = second.workloads.get(namespace="payments", kind="Deployment", name="payments-api")
    body = client.get(reverse("clusters:workload", args=[cluster.name, row.pk])).content.decode()
    assert "payments-api" in body and row.content_id in set(
        first.workloads.values_list("content_id", flat=True)
    )


def test_a_changed_workload_stores_only_its_new_content_and_diffs_still_work(
    postgres_database, fakekube_fleet, upstream_dns, settings
):
    settings.DNSAUDIT_INFERRED_VERDICT_TTL = 0
    fake, spec = fakekube_fleet["openstack-prod"]
    cluster = register(fake, spec, upstream_dns(spec))
    before = run_scan(cluster)
    known = content_ids()
    objs = list(spec.objects) + o.deployment(
        "storefront", "recommender", [C("rec", "alpine:3.19", ("/rec",))], spec.pools[0].placement, replicas=1
    )
    fake.reset(objs)
    after = run_scan(cluster)
    new = WorkloadContent.objects.exclude(pk__in=known)
    assert [c.report["name"] for c in new] == ["recommender"]
    assert after.workloads.count() == before.workloads.count() + 1
    diff = workloads_diff(after, before)
    assert {"namespace": "storefront", "kind": "Deployment", "name": "recommender"} in diff["new_affected"]


def test_pruning_deletes_only_contents_no_kept_scan_refers_to(
    postgres_database, fakekube_fleet, upstream_dns, settings
):
    settings.DNSAUDIT_INFERRED_VERDICT_TTL = 0
    fake, spec = fakekube_fleet["managed-clean"]
    cluster = register(fake, spec, upstream_dns(spec))
    settings.DNSAUDIT_KEEP_SCANS = 1
    first = run_scan(cluster)
    shared = set(first.workloads.values_list("content_id", flat=True))
    # A workload that exists only in the first scan: its content must go when that scan is pruned.
    fake.reset([x for x in spec.objects if not x["metadata"]["name"].startswith("cart")])
    second = run_scan(cluster)
    assert not Scan.objects.filter(pk=first.pk).exists()
    kept = set(second.workloads.values_list("content_id", flat=True))
    assert content_ids() == kept and kept < shared
    # The kept report is whole.
    assert len(scan_report(second)["workloads"]) == second.workloads_total > 0


def test_prune_waits_for_no_save_and_never_deletes_content_a_save_is_about_to_use(postgres_database):
    """A save holds the content lock shared from finding contents to inserting its rows; a prune meanwhile
    deletes nothing (it would otherwise delete a content that is unreferenced for that instant)."""
    orphan = WorkloadContent.objects.create(digest="f" * 64, report={}, detail={}, search_text="")
    holding, release = threading.Event(), threading.Event()

    def saver():
        try:
            with transaction.atomic():
                lock_contents_shared()
                holding.set()
                release.wait(10)
        finally:
            connections.close_all()

    t = threading.Thread(target=saver)
    t.start()
    try:
        assert holding.wait(10)
        assert prune_contents() == 0
        assert WorkloadContent.objects.filter(pk=orphan.pk).exists()
    finally:
        release.set()
        t.join(10)
    assert prune_contents() == 1
    assert not WorkloadContent.objects.filter(pk=orphan.pk).exists()


def test_identical_content_is_stored_once_on_any_database():
    """Runs on SQLite too: the digest is over the content alone (not the scan), so two scans' identical
    findings share one row and a changed finding gets its own."""
    cluster = factories.make_cluster("store")
    s1, s2 = factories.make_scan(cluster), factories.make_scan(cluster)
    a = factories.make_workload(s1, name="same")
    b = factories.make_workload(s2, name="same")
    c = factories.make_workload(s2, name="other")
    assert a.content_id == b.content_id != c.content_id
    assert WorkloadResult.objects.filter(content_id=a.content_id).count() == 2
    s1.delete()
    assert prune_contents() == 0  # still referenced by s2
    s2.delete()
    assert prune_contents() == 2


def test_the_save_stage_checks_the_schema_of_every_new_content_and_only_of_new_ones(
    postgres_database, fakekube_fleet, upstream_dns, settings, monkeypatch
):
    """A report with a key nobody declared fails the scan with nothing of it stored; a content already
    stored (the same bytes, checked when it was stored) is not checked again."""
    from clusters.scan.stages import save as save_stage
    from dnsaudit.core import audit as core_audit

    settings.DNSAUDIT_INFERRED_VERDICT_TTL = 0
    fake, spec = fakekube_fleet["managed-clean"]
    cluster = register(fake, spec, upstream_dns(spec))
    first = run_scan(cluster)
    assert first.status in (Scan.SUCCEEDED, Scan.PARTIAL)
    known = content_ids()

    checked: list[str] = []
    real_check = save_stage.check_report

    def counting_check(report, *, saving=False):
        checked.append(report["name"])
        return real_check(report, saving=saving)

    monkeypatch.setattr(save_stage, "check_report", counting_check)
    second = run_scan(cluster)
    assert second.status == first.status and content_ids() == known
    assert checked == []  # every content was stored by the first scan

    real_audit = core_audit.audit_workloads

    def undeclared_key(ws, ctx):
        out = real_audit(ws, ctx)
        out[0].report["surprise"] = 1
        return out

    monkeypatch.setattr(core_audit, "audit_workloads", undeclared_key)
    third = run_scan(cluster)
    assert third.status == Scan.FAILED
    assert "surprise" in third.error
    assert len(checked) == 1 and content_ids() == known
    assert not third.workloads.exists()

    # The exemption is kept out of the content (its digest), so it is checked for every row: a bad one on
    # a workload whose content is already stored fails the scan too.
    def bad_exemption(ws, ctx):
        out = real_audit(ws, ctx)
        out[0].report["exemption"] = {"reason": "x", "surprise": 1}
        return out

    monkeypatch.setattr(core_audit, "audit_workloads", bad_exemption)
    fourth = run_scan(cluster)
    assert fourth.status == Scan.FAILED and "report.exemption" in fourth.error
    assert not fourth.workloads.exists() and content_ids() == known


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@hsettings(max_examples=300, deadline=None)
@given(report=st.dictionaries(st.text(), _json_values, max_size=5), text=st.text())
def test_the_content_digest_is_that_of_the_canonical_json_the_migration_wrote(report, text):
    """orjson writes the digested JSON now; for a report's kinds of values (strings, integers, booleans,
    null) its bytes are those of ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``,
    which migration 0009 used: contents stored before are still found, not stored again."""
    import hashlib
    import json

    from clusters.models import content_digest

    value = [report, {"k": report}, text]
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    want = hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()
    assert content_digest(report, {"k": report}, text) == want
