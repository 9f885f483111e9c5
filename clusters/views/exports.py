"""Exports, all built from stored rows so an export never needs the cluster to be reachable.

Per workload: a remediation's YAML patch and its ``kubectl patch`` command. Per scan: the report as JSON
(the shared schema), CSV, one self-contained HTML file (inline CSS, no script) and a zip bundle of every
patch with a README saying what each file is, in which order to apply and how to verify.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterable

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.utils import timezone

from dnsaudit.core import bundle, patches, policyreport

from .. import auditlog, exemptions
from ..access import require_role
from ..models import Cluster, NodePoolResult, Scan, WorkloadResult
from ..reports import node_file_gaps, scan_report, scan_report_csv
from .common import RISK_ORDER, chosen_scan, get_cluster

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A file-name-safe rendering of ``text`` (no path separators, no dot-dot tricks)."""
    cleaned = _UNSAFE.sub("_", text).strip("._") or "unnamed"
    return cleaned[:120]


def safe_path(path: str) -> str:
    """A relative path with each segment made safe: keeps folders, never leaves the archive root."""
    return "/".join(safe_name(part) for part in path.replace("\\", "/").split("/") if part.strip("./"))


def cluster_artifacts(facts: dict | None) -> list[dict]:
    """Cluster-level fixes stored by the scan, as ``[{"kind", "title", "why", "tradeoffs", "files"}]``.

    Reads ``facts["cluster_remediation"]["artifacts"]`` (what the audit core produces); a plain mapping
    of file name -> content is accepted too and becomes one artifact.
    """
    stored = (facts or {}).get("cluster_remediation") or {}
    if not isinstance(stored, dict):
        return []
    if "artifacts" in stored:
        return [a for a in stored.get("artifacts") or [] if isinstance(a, dict)]
    files = {k: v for k, v in stored.items() if isinstance(v, str)}
    return (
        [{"kind": "cluster", "title": "Cluster-level fixes", "why": "", "tradeoffs": [], "files": files}]
        if files
        else []
    )


def _as_list(value) -> list:
    if value in (None, ""):
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _download(body: str | bytes, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


def _report_scan(request: HttpRequest, cluster: Cluster) -> Scan:
    scan = chosen_scan(cluster, request.GET.get("scan"))
    if scan is None:
        raise Http404("this cluster has no finished scan yet")
    if scan.status not in Scan.FINISHED_OK:
        # A running or failed scan has no report: exporting it would give an empty file.
        raise Http404(f"scan {scan.pk} is {scan.status}: it has no report to export")
    return scan


# --- the report in the shared schema ---------------------------------------------------------------------


def build_report(scan: Scan) -> dict:
    """The shared-schema report of ``scan`` (``clusters.reports.scan_report``)."""
    return scan_report(scan)


def build_csv(scan: Scan) -> str:
    return scan_report_csv(scan)


@require_role("operator")
def report_json(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_cluster(name)
    scan = _report_scan(request, cluster)
    body = json.dumps(build_report(scan), indent=2, sort_keys=False, default=str)
    auditlog.record("export.json", request=request, target=cluster.name, scan=scan.pk)
    return _download(body, f"dnsaudit-{safe_name(cluster.name)}-scan{scan.pk}.json", "application/json")


@require_role("operator")
def report_csv(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_cluster(name)
    scan = _report_scan(request, cluster)
    auditlog.record("export.csv", request=request, target=cluster.name, scan=scan.pk)
    return _download(
        build_csv(scan), f"dnsaudit-{safe_name(cluster.name)}-scan{scan.pk}.csv", "text/csv; charset=utf-8"
    )


@require_role("operator")
def report_html(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_cluster(name)
    scan = _report_scan(request, cluster)
    workloads = list(
        WorkloadResult.objects.filter(scan=scan)
        .select_related("content")
        .only(
            "namespace",
            "kind",
            "name",
            "risk",
            "libc",
            "musl_version",
            "recommended",
            "dns_policy",
            "exemption",
            "exempt_until",
            "content__report",
            "content__detail",
        )
    )
    workloads.sort(
        key=lambda w: (RISK_ORDER.index(w.risk) if w.risk in RISK_ORDER else 9, w.namespace, w.kind, w.name)
    )
    today = exemptions.today()
    for w in workloads:
        recs = (w.detail or {}).get("remediations") or []
        w.recommended_patch = next((r for r in recs if r.get("recommended")), recs[0] if recs else None)
        w.applied_exemption = exemptions.row_exemption(w, today)
    pools = list(NodePoolResult.objects.filter(scan=scan))
    html = render_to_string(
        "clusters/export_report.html",
        {
            "cluster": cluster,
            "scan": scan,
            "pools": pools,
            "node_file_gaps": node_file_gaps(scan, pools),
            "workloads": workloads,
            "exempted": exemptions.exempted_counts(scan, today),
            "generated_at": timezone.now(),
        },
    )
    auditlog.record("export.html", request=request, target=cluster.name, scan=scan.pk)
    return _download(
        html, f"dnsaudit-{safe_name(cluster.name)}-scan{scan.pk}.html", "text/html; charset=utf-8"
    )


# --- per workload patch downloads --------------------------------------------------------------------------


def _remediation(cluster: Cluster, pk: int, index: int) -> tuple[WorkloadResult, dict]:
    workload = get_object_or_404(
        WorkloadResult.objects.select_related("content"), pk=pk, scan__cluster=cluster
    )
    remediations = (workload.detail or {}).get("remediations") or []
    if not 0 <= index < len(remediations):
        raise Http404("no such remediation")
    return workload, remediations[index]


def _record_patch(
    request: HttpRequest, cluster: Cluster, workload: WorkloadResult, rem: dict, fmt: str
) -> None:
    auditlog.record(
        "export.patch",
        request=request,
        target=f"{cluster.name}/{workload.namespace}/{workload.kind}/{workload.name}",
        scan=workload.scan_id,
        remedy=str(rem.get("kind", "")),
        format=fmt,
    )


@require_role("operator")
def workload_patch(request: HttpRequest, name: str, pk: int, index: int) -> HttpResponse:
    cluster = get_cluster(name)
    workload, rem = _remediation(cluster, pk, index)
    if not rem.get("patch_yaml"):
        raise Http404("this remediation has no patch")
    filename = f"{safe_name(workload.namespace)}-{safe_name(workload.kind.lower())}-{safe_name(workload.name)}-{safe_name(rem.get('kind', 'patch'))}.yaml"
    _record_patch(request, cluster, workload, rem, "yaml")
    return _download(rem["patch_yaml"], filename, "application/yaml; charset=utf-8")


@require_role("operator")
def workload_kubectl(request: HttpRequest, name: str, pk: int, index: int) -> HttpResponse:
    """The remediation as a standalone script, rebuilt from its data (patch document, policy, ConfigMap):
    cluster strings only as shell-quoted words or inside a quoted here-document, never in a comment."""
    cluster = get_cluster(name)
    workload, rem = _remediation(cluster, pk, index)
    identity = {"namespace": workload.namespace, "kind": workload.kind, "name": workload.name}
    body = patches.remedy_script(rem, identity) if rem.get("kubectl") else None
    if body is None:
        raise Http404("this remediation has no kubectl command")
    filename = f"{safe_name(workload.namespace)}-{safe_name(workload.kind.lower())}-{safe_name(workload.name)}-{safe_name(rem.get('kind', 'patch'))}.sh"
    _record_patch(request, cluster, workload, rem, "sh")
    return _download(body, filename, "text/x-shellscript; charset=utf-8")


# --- the zip bundle ------------------------------------------------------------------------------------------


def _bundle_rows(scan: Scan) -> Iterable[WorkloadResult]:
    return (
        WorkloadResult.objects.filter(scan=scan)
        .exclude(recommended__in=("", "none"))
        .select_related("content")
        .only("namespace", "kind", "name", "risk", "recommended", "content__report", "content__detail")
        .order_by("namespace", "kind", "name")
        .iterator(chunk_size=1000)
    )


def _bundle_items(scan: Scan) -> Iterable[tuple[dict, list[dict]]]:
    for w in _bundle_rows(scan):
        report = dict(w.report or {})
        report.update({"namespace": w.namespace, "kind": w.kind, "name": w.name, "risk": w.risk})
        yield report, list((w.detail or {}).get("remediations") or [])


def build_bundle(scan: Scan) -> bytes:
    """The zip bundle of ``scan`` as bytes, in the one layout of :mod:`dnsaudit.core.bundle` (README, scripts
    that run from the bundle root, per-workload patches once each, cluster-level fixes once), plus
    ``report.json``, ``report.csv`` and ``policy-reports.yaml``. Built from stored rows only; nothing is read
    from the cluster."""
    cluster = scan.cluster
    files = bundle.build_files(
        cluster.name,
        _bundle_items(scan),
        cluster_artifacts(scan.facts),
        summary={
            "affected": scan.affected,
            "at-risk": scan.at_risk,
            "unknown": scan.unknown,
            "safe": scan.safe,
        },
        scan_line=(
            f"Scan {scan.pk} ({scan.status}, finished "
            f"{scan.finished_at.isoformat() if scan.finished_at else '-'}).\n"
        ),
        report_files=("report.json", "report.csv", "policy-reports.yaml"),
        rescan_hint="rescan the cluster in dnsaudit (the Rescan button, or `python manage.py scan CLUSTER --wait`)",
    )
    report = build_report(scan)
    files["report.json"] = json.dumps(report, indent=2, default=str)
    files["policy-reports.yaml"] = policyreport.dump_yaml(
        policyreport.policy_reports(report, generated_at=timezone.now().isoformat())
    )
    files["report.csv"] = build_csv(scan)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(files):
            info = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            # Scripts keep their executable bit when unzipped (rwxr-xr-x), other files rw-r--r--.
            info.external_attr = (0o100755 if path.endswith(".sh") else 0o100644) << 16
            zf.writestr(info, files[path])
    return buf.getvalue()


@require_role("operator")
def bundle_zip(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_cluster(name)
    scan = _report_scan(request, cluster)
    body = build_bundle(scan)
    auditlog.record("export.bundle", request=request, target=cluster.name, scan=scan.pk)
    return _download(body, f"dnsaudit-{safe_name(cluster.name)}-scan{scan.pk}-bundle.zip", "application/zip")
