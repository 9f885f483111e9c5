"""Exports built from stored rows: per-workload patch and kubectl, zip bundle, JSON, CSV, single-file HTML."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
import yaml
from django.urls import reverse

from tests.web import factories


@pytest.fixture
def operator(client_as):
    return client_as("operator")


def test_workload_patch_download_is_the_stored_yaml(operator, report):
    w = report.workloads.filter(risk="affected").first()
    response = operator.get(reverse("clusters:workload_patch", args=[report.cluster.name, w.pk, 0]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Content-Disposition"].endswith('.yaml"')
    patch = yaml.safe_load(response.content)
    spec = patch["spec"]["template"]["spec"]
    assert spec["dnsPolicy"] == "None"
    assert "corp.example" not in spec["dnsConfig"]["searches"]


def test_kubectl_download_is_a_shell_script_with_the_command(operator, report):
    w = report.workloads.filter(risk="affected").first()
    body = operator.get(
        reverse("clusters:workload_kubectl", args=[report.cluster.name, w.pk, 0])
    ).content.decode()
    assert body.startswith("#!/bin/sh")
    # Rebuilt from the stored patch (data), the names as shell words.
    assert f"kubectl patch deployment {w.name} -n {w.namespace} --type strategic -p " in body


def test_patch_of_missing_remediation_or_other_cluster_is_404(operator, report):
    w = report.workloads.filter(risk="safe").first()
    assert (
        operator.get(reverse("clusters:workload_patch", args=[report.cluster.name, w.pk, 0])).status_code
        == 404
    )
    other = factories.make_cluster("other")
    affected = report.workloads.filter(risk="affected").first()
    assert (
        operator.get(reverse("clusters:workload_patch", args=[other.name, affected.pk, 0])).status_code == 404
    )


def test_bundle_zip_has_readme_patches_kustomize_and_cluster_files(operator, cluster):
    scan = factories.make_report(
        cluster,
        workloads=10,
        facts={
            "cluster_remediation": {
                "README.md": "# Cluster-level fixes\n",
                "kyverno-clusterpolicy.yaml": "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\n",
                "kubelet-resolv.conf": "nameserver 192.168.0.2\n",
            }
        },
    )
    response = operator.get(reverse("clusters:export_bundle", args=[cluster.name]))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(response.content))
    names = set(zf.namelist())
    assert zf.testzip() is None
    readme = zf.read("README.md").decode()
    for heading in ("Layout", "Order to apply", "How to verify", "Rescan", "verify.sh"):
        assert heading in readme
    fixable = scan.workloads.exclude(recommended="none")
    assert fixable.count() > 0
    apply = zf.read("apply-dnsconfig.sh").decode()
    for w in fixable:
        path = f"patches/{w.namespace}/{w.kind.lower()}-{w.name}.yaml"
        assert path in names and f"--patch-file {path}" in apply  # each workload once
        assert apply.count(f" {w.name} ") == 1
        assert f"{w.namespace}/{w.kind}/{w.name}" in readme
    for w in scan.workloads.filter(recommended="none"):
        assert not any(w.name in n for n in names)
    kustomization = yaml.safe_load(zf.read("patches/kustomization.yaml"))
    assert kustomization["kind"] == "Kustomization"
    for entry in kustomization["patches"]:
        # Paths are relative to the kustomization file and point at files in the bundle.
        assert f"patches/{entry['path']}" in names
    assert {"verify.sh", "kyverno-clusterpolicy.yaml", "kubelet-resolv.conf"} <= names
    report = json.loads(zf.read("report.json"))
    assert len(report["workloads"]) == 10


def test_bundle_file_names_cannot_escape_the_archive(operator, cluster):
    scan = factories.make_scan(cluster, facts={"cluster_remediation": {"../../etc/passwd": "x"}})
    factories.make_workload(scan, "../evil", "Deployment", "../../x")
    zf = zipfile.ZipFile(
        io.BytesIO(operator.get(reverse("clusters:export_bundle", args=[cluster.name])).content)
    )
    for name in zf.namelist():
        assert ".." not in name.split("/") and not name.startswith("/")


def test_report_json_follows_the_shared_schema(operator, report):
    response = operator.get(reverse("clusters:export_json", args=[report.cluster.name]))
    data = json.loads(response.content)
    assert {"cluster", "scan", "workloads"} <= set(data)
    assert data["cluster"]["name"] == report.cluster.name and data["scan"]["id"] == report.pk
    assert len(data["workloads"]) == report.workloads.count()
    schema_keys = {
        "namespace",
        "kind",
        "name",
        "containers",
        "dns_policy",
        "host_network",
        "resolv_conf",
        "risk",
        "reasons",
        "remediation",
    }
    for w in data["workloads"]:
        assert schema_keys <= set(w)
        assert set(w["resolv_conf"]) == {"nameservers", "searches", "options"}
        assert w["risk"] in ("affected", "at-risk", "safe", "unknown")
        assert {"recommended", "alternatives"} <= set(w["remediation"])
        for c in w["containers"]:
            assert {"name", "image", "libc", "musl_version", "confidence"} <= set(c)


def test_report_csv_has_one_row_per_workload(operator, report):
    text = operator.get(reverse("clusters:export_csv", args=[report.cluster.name])).content.decode()
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == report.workloads.count()
    assert {r["name"] for r in parsed} == set(report.workloads.values_list("name", flat=True))
    assert {"namespace", "kind", "name", "risk", "libc"} <= set(parsed[0])


def test_html_export_is_self_contained(operator, report):
    html = operator.get(reverse("clusters:export_html", args=[report.cluster.name])).content.decode()
    assert "<style>" in html
    lowered = html.lower()
    assert "<script" not in lowered and "<link" not in lowered and "src=" not in lowered
    assert "http://" not in lowered and "https://" not in lowered.replace(report.cluster.server.lower(), "")
    for w in report.workloads.filter(risk="affected"):
        assert f"{w.namespace}/{w.kind}/{w.name}" in html
    assert "dnsPolicy: None" in html  # the recommended patch travels with the report


def test_exports_of_a_cluster_without_report_are_404(operator, cluster):
    for name in ("export_json", "export_csv", "export_html", "export_bundle"):
        assert operator.get(reverse(f"clusters:{name}", args=[cluster.name])).status_code == 404
