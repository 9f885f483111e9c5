"""PolicyReports of stored scans: ``manage.py policy-report``, the API endpoint and the bundle file.

The real input is a scan of the demo fleet's ``openstack-prod`` through the project's HTTPS test API server
and a scripted upstream DNS (tests/scans), with one node pool's file left for the scan to find out."""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from clusters.models import ApiToken, Scan
from tests.policyreport.checks import validate_policy_report
from tests.scans.helpers import pool_names, register, run_scan
from tests.web import factories

pytestmark = pytest.mark.django_db

RESULT_OF_RISK = {"affected": "fail", "at-risk": "warn", "unknown": "warn", "safe": "pass"}


@pytest.fixture
def openstack_scan(fakekube_fleet, upstream_dns):
    """A finished scan of openstack-prod whose pool ``infra`` has no entered node file."""
    fake, spec = fakekube_fleet["openstack-prod"]
    names = pool_names(spec)
    cluster = register(fake, spec, upstream_dns(spec))
    cluster.pool_resolv_conf = {
        names[p.name]: p.node_resolv_conf for p in spec.pools if p.name in names and p.name != "infra"
    }
    cluster.node_resolv_conf = ""
    cluster.save()
    scan = run_scan(cluster)
    assert scan.status in Scan.FINISHED_OK, scan.error
    return scan, names["infra"]


def _command(*args: str) -> str:
    out = io.StringIO()
    call_command("policy-report", *args, stdout=out)
    return out.getvalue()


def _check_against_scan(docs: list[dict], scan: Scan, dark_pool: str | None = None) -> None:
    """Every object valid; one result per stored workload with the result of its risk, in its namespace's
    report; one result per node pool, ``warn`` where the node file is unknown or inferred. With
    ``dark_pool`` (openstack-prod): that pool is the one not known, and every other pool fails (the demo's
    upstream answers SERVFAIL under openstacklocal)."""
    for d in docs:
        validate_policy_report(d)
    rows = list(scan.workloads.all())
    ns_docs = [d for d in docs if d["kind"] == "PolicyReport"]
    assert [d["metadata"]["name"] for d in ns_docs] == [
        f"dnsaudit-{ns}" for ns in sorted({w.namespace for w in rows})
    ]
    got = {
        (r["resources"][0]["namespace"], r["resources"][0]["kind"], r["resources"][0]["name"]): r["result"]
        for d in ns_docs
        for r in d["results"]
    }
    assert got == {(w.namespace, w.kind, w.name): RESULT_OF_RISK[w.risk] for w in rows}
    assert Counter(got.values())["fail"] == scan.affected
    for d in ns_docs:
        assert {r["resources"][0]["namespace"] for r in d["results"]} == {d["metadata"]["namespace"]}
    (cluster_doc,) = [d for d in docs if d["kind"] == "ClusterPolicyReport"]
    assert cluster_doc["metadata"]["name"] == "dnsaudit-cluster"
    pools = {r["properties"]["node_pool"]: r for r in cluster_doc["results"]}
    sources = dict(scan.node_pools.values_list("name", "node_resolv_conf_source"))
    assert set(pools) == set(sources)
    for name, r in pools.items():
        assert r["properties"]["node_file_source"] == sources[name]
        if sources[name] in ("unknown", "inferred"):
            assert r["result"] == "warn", r
    if dark_pool:
        assert sources[dark_pool] in ("unknown", "inferred")
        for name, r in pools.items():
            if name != dark_pool:
                assert r["result"] == "fail" and "openstacklocal" in r["message"], r


def test_command_prints_policy_reports_of_a_real_scan_for_kubectl_apply(openstack_scan):
    scan, dark = openstack_scan
    text = _command(scan.cluster.name)
    assert text.startswith("---\n")
    docs = list(yaml.safe_load_all(text))
    _check_against_scan(docs, scan, dark)
    assert all(d["metadata"]["annotations"]["dnsaudit.io/scan"] == str(scan.pk) for d in docs)


def test_command_json_is_one_list_of_the_same_objects_and_scan_picks_the_scan(openstack_scan):
    scan, dark = openstack_scan
    newer = factories.make_report(scan.cluster, workloads=3, age_minutes=0)
    assert scan.cluster.last_report_scan() == newer

    def strip(docs):
        for d in docs:
            d["metadata"]["annotations"].pop("dnsaudit.io/generated-at")
        return docs

    listed = json.loads(_command(scan.cluster.name, "--scan", str(scan.pk), "--output", "json"))
    assert listed["apiVersion"] == "v1" and listed["kind"] == "List"
    streamed = list(yaml.safe_load_all(_command(scan.cluster.name, "--scan", str(scan.pk))))
    assert strip(listed["items"]) == strip(streamed)
    _check_against_scan(listed["items"], scan, dark)
    default = list(yaml.safe_load_all(_command(scan.cluster.name)))  # the newest finished scan
    assert {d["metadata"]["annotations"]["dnsaudit.io/scan"] for d in default} == {str(newer.pk)}


def test_command_refuses_with_status_2_and_one_line():
    cluster = factories.make_cluster("prod-eu")
    other = factories.make_cluster("other")
    other_scan = factories.make_report(other, workloads=1)
    cases = [
        (["nope"], "no cluster named 'nope'"),
        (["prod-eu"], "has no finished scan yet"),
        (["prod-eu", "--scan", str(other_scan.pk)], f"has no scan {other_scan.pk}"),
        (["prod-eu", "--scan", "999999"], "has no scan 999999"),
    ]
    running = factories.make_scan(cluster, Scan.RUNNING)
    failed = factories.make_scan(cluster, Scan.FAILED, error="boom")
    cases += [
        (["prod-eu", "--scan", str(running.pk)], "is running: it has no report"),
        (["prod-eu", "--scan", str(failed.pk)], "is failed: it has no report"),
    ]
    for args, words in cases:
        with pytest.raises(CommandError) as exc:
            _command(*args)
        assert exc.value.returncode == 2, args
        assert words in str(exc.value) and "\n" not in str(exc.value)


def test_api_serves_the_list_to_a_read_only_token():
    cluster = factories.make_cluster("prod-eu")
    scan = factories.make_report(cluster, workloads=9)
    viewer = factories.make_user("viewer")
    _, token = ApiToken.issue(viewer, "policy-reporter")
    url = reverse("clusters:api_scan_policyreports", args=[scan.pk])
    assert url == f"/api/v1/scans/{scan.pk}/policyreports"
    response = Client().get(url, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    assert body["apiVersion"] == "v1" and body["kind"] == "List"
    _check_against_scan(body["items"], scan)
    # The same guards as the other API views: credentials, role, a scan with a report.
    assert Client().get(url).status_code == 401
    _, no_role = ApiToken.issue(factories.make_user(None), "x")
    assert Client().get(url, HTTP_AUTHORIZATION=f"Bearer {no_role}").status_code == 403
    assert Client().post(url, HTTP_AUTHORIZATION=f"Bearer {token}").status_code in (403, 405)
    running = factories.make_scan(cluster, Scan.RUNNING)
    missing = Client().get(
        reverse("clusters:api_scan_policyreports", args=[running.pk]), HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert missing.status_code == 404 and "no report" in missing.json()["error"]
    gone = Client().get(
        reverse("clusters:api_scan_policyreports", args=[999999]), HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert gone.status_code == 404


def test_bundle_holds_the_policy_reports_and_its_readme_lists_them(openstack_scan):
    from clusters.views.exports import build_bundle

    scan, dark = openstack_scan
    zf = zipfile.ZipFile(io.BytesIO(build_bundle(scan)))
    assert "policy-reports.yaml" in zf.namelist()
    docs = list(yaml.safe_load_all(zf.read("policy-reports.yaml").decode()))
    _check_against_scan(docs, scan, dark)
    readme = zf.read("README.md").decode()
    assert "`policy-reports.yaml`" in readme


def test_the_real_kubectl_reads_the_stream_as_distinct_objects(openstack_scan, tmp_path):
    """``kubectl kustomize`` parses the stream as kubectl apply does and refuses two objects with one
    identity (kind, namespace, name): it needs no cluster, so no CRD either."""
    from tests.audit.helpers import kubectl, run

    scan, _ = openstack_scan
    text = _command(scan.cluster.name)
    (tmp_path / "policy-reports.yaml").write_text(text)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["policy-reports.yaml"],
            }
        )
    )
    p = run([kubectl(), "kustomize", str(tmp_path)])
    assert p.returncode == 0, p.stderr
    key = lambda d: (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, yaml.safe_load_all(p.stdout))) == sorted(map(key, yaml.safe_load_all(text)))
