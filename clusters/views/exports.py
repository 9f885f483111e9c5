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
    return _download(body, f"dnsaudit-{safe_name(cluster.name)}-scan{scan.pk}.json", "application/json")


@require_role("operator")
def report_csv(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_cluster(name)
    scan = _report_scan(request, cluster)
    return _download(
        build_csv(scan), f"dnsaudit-{safe_name(cluster.name)}-scan{scan.pk}.csv", "text/csv; charset=utf-8"
    )


@require_role("operator")
def report_html(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_cluster(name)
    scan = _report_scan(request, cluster)
    workloads = list(
        WorkloadResult.objects.filter(scan=scan).only(
            "namespace",
            "kind",
            "name",
            "risk",
            "libc",
            "musl_version",
            "recommended",
            "dns_policy",
            "report",
            "detail",
        )
    )
    workloads.sort(
        key=lambda w: (RISK_ORDER.index(w.risk) if w.risk in RISK_ORDER else 9, w.namespace, w.kind, w.name)
    )
    for w in workloads:
        recs = (w.detail or {}).get("remediations") or []
        w.recommended_patch = next((r for r in recs if r.get("recommended")), recs[0] if recs else None)
    pools = list(NodePoolResult.objects.filter(scan=scan))
    html = render_to_string(
        "clusters/export_report.html",
        {
            "cluster": cluster,
            "scan": scan,
            "pools": pools,
            "node_file_gaps": node_file_gaps(scan, pools),
            "workloads": workloads,
            "generated_at": timezone.now(),
        },
    )
    return _download(
        html, f"dnsaudit-{safe_name(cluster.name)}-scan{scan.pk}.html", "text/html; charset=utf-8"
    )


# --- per workload patch downloads --------------------------------------------------------------------------


def _remediation(cluster: Cluster, pk: int, index: int) -> tuple[WorkloadResult, dict]:
    workload = get_object_or_404(WorkloadResult, pk=pk, scan__cluster=cluster)
    remediations = (workload.detail or {}).get("remediations") or []
    if not 0 <= index < len(remediations):
        raise Http404("no such remediation")
    return workload, remediations[index]


@require_role("operator")
def workload_patch(request: HttpRequest, name: str, pk: int, index: int) -> HttpResponse:
    cluster = get_cluster(name)
    workload, rem = _remediation(cluster, pk, index)
    if not rem.get("patch_yaml"):
        raise Http404("this remediation has no patch")
    filename = f"{safe_name(workload.namespace)}-{safe_name(workload.kind.lower())}-{safe_name(workload.name)}-{safe_name(rem.get('kind', 'patch'))}.yaml"
    return _download(rem["patch_yaml"], filename, "application/yaml; charset=utf-8")


@require_role("operator")
def workload_kubectl(request: HttpRequest, name: str, pk: int, index: int) -> HttpResponse:
    cluster = get_cluster(name)
    workload, rem = _remediation(cluster, pk, index)
    if not rem.get("kubectl"):
        raise Http404("this remediation has no kubectl command")
    body = f"#!/bin/sh\n# {rem.get('title', '')}\n# {workload.namespace}/{workload.kind}/{workload.name} in {cluster.name}\nset -eu\n{rem['kubectl'].rstrip()}\n"
    filename = f"{safe_name(workload.namespace)}-{safe_name(workload.kind.lower())}-{safe_name(workload.name)}-{safe_name(rem.get('kind', 'patch'))}.sh"
    return _download(body, filename, "text/x-shellscript; charset=utf-8")


# --- the zip bundle ------------------------------------------------------------------------------------------

BUNDLE_README = """\
# dnsaudit remediation bundle: {cluster}

Scan {scan_id} ({status}, finished {finished}) of cluster `{cluster}` ({server}).
{affected} affected, {at_risk} at risk, {safe} safe, {unknown} unknown workloads.

## What each file is

- `report.json` - the full report in dnsaudit's shared schema (what was found and why).
- `report.csv` - one line per workload, for spreadsheets.
- `workloads/<namespace>/<kind>-<name>/` - one folder per workload that needs a fix:
  - `<fix>.patch.yaml` - the patch for that fix (for `dnsConfig` a strategic-merge patch of the pod template);
  - `<fix>.kubectl.sh` - the same patch as a `kubectl patch` command;
  - `<fix>.kustomize.yaml` - the patch as a kustomize patch entry, when the fix has one;
  - any extra files the fix needs, prefixed with `<fix>.`.
  The recommended fix of each workload is listed below; the folder holds the alternatives too.
- `kustomize/<namespace>/kustomization.yaml` - the recommended `dnsConfig` patches of a namespace as a
  kustomize overlay, when there are any (point `resources:` at your base).
- `cluster/` - cluster-level fixes (kubelet resolv file, KubeletConfiguration, cloud-init, the Kyverno
  ClusterPolicy scoped to the affected musl images, the CoreDNS snippet) when the scan produced them;
  `cluster/README.md` explains them.

## In which order to apply

1. Read `report.json` (or the dashboard's workload pages) and decide per workload; the recommended fix is
   the one with the fewest side effects for that workload.
2. Cluster-level fixes first if you choose them (`cluster/`): they change every pod created afterwards, and
   pods only pick up a new resolv.conf when they are recreated (roll the workloads afterwards).
3. Otherwise the per-workload patches, namespace by namespace: `sh workloads/<ns>/<kind>-<name>/dnsConfig.kubectl.sh`
   or `kubectl apply -k kustomize/<ns>` from your overlay. The patch changes the pod template, so the
   workload rolls out new pods.
4. A base-image fix (`base-image`) means rebuilding the image on glibc, or on musl >= 1.2.4 where the
   problem is one that version fixes; no patch file is generated for it.

## How to verify

Rescan the cluster in dnsaudit (the Rescan button, or `python manage.py scan {cluster} --wait`): the
workloads you fixed move to "safe" and show up under "fixed since the previous scan". Inside a pod you can
also compare `cat /etc/resolv.conf` with the resolv.conf the workload page shows.

## Workloads and their recommended fix

{table}
"""


def _workload_dir(w: WorkloadResult) -> str:
    return f"workloads/{safe_name(w.namespace)}/{safe_name(w.kind.lower())}-{safe_name(w.name)}"


def _bundle_rows(scan: Scan) -> Iterable[WorkloadResult]:
    return (
        WorkloadResult.objects.filter(scan=scan)
        .exclude(recommended__in=("", "none"))
        .only("namespace", "kind", "name", "risk", "recommended", "detail")
        .order_by("namespace", "kind", "name")
        .iterator(chunk_size=1000)
    )


def build_bundle(scan: Scan) -> bytes:
    """The zip bundle of ``scan`` as bytes. File names are sanitized; nothing is read from the cluster."""
    cluster = scan.cluster
    buf = io.BytesIO()
    table_lines = ["| Workload | Risk | Recommended fix | Folder |", "|---|---|---|---|"]
    kustomize: dict[str, list[tuple[str, str]]] = {}
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for w in _bundle_rows(scan):
            remediations = (w.detail or {}).get("remediations") or []
            if not remediations:
                continue
            folder = _workload_dir(w)
            recommended = next((r for r in remediations if r.get("recommended")), remediations[0])
            for rem in remediations:
                kind = safe_name(rem.get("kind") or "fix")
                if rem.get("patch_yaml"):
                    zf.writestr(f"{folder}/{kind}.patch.yaml", rem["patch_yaml"])
                if rem.get("kubectl"):
                    zf.writestr(
                        f"{folder}/{kind}.kubectl.sh", "#!/bin/sh\nset -eu\n" + rem["kubectl"].rstrip() + "\n"
                    )
                if rem.get("kustomize"):
                    zf.writestr(f"{folder}/{kind}.kustomize.yaml", rem["kustomize"])
                for fname, content in (rem.get("extra_files") or {}).items():
                    zf.writestr(f"{folder}/{kind}.{safe_name(fname.replace('/', '-'))}", content)
            if recommended.get("kind") == "dnsConfig" and recommended.get("patch_yaml"):
                kustomize.setdefault(w.namespace, []).append(
                    (f"../../{folder}/dnsConfig.patch.yaml", f"{w.kind}/{w.name}")
                )
            table_lines.append(
                f"| {w.namespace}/{w.kind}/{w.name} | {w.risk} | {recommended.get('kind', '')}: "
                f"{recommended.get('title', '')} | `{folder}/` |"
            )
        for namespace, patches in sorted(kustomize.items()):
            lines = [
                "# Recommended dnsConfig patches of this namespace, generated by dnsaudit.",
                "apiVersion: kustomize.config.k8s.io/v1beta1",
                "kind: Kustomization",
                f"namespace: {namespace}",
                "resources: []  # point this at your base",
                "patches:",
            ]
            for path, target in patches:
                kind, name = target.split("/", 1)
                lines += [f"  - path: {path}", "    target:", f"      kind: {kind}", f"      name: {name}"]
            zf.writestr(f"kustomize/{safe_name(namespace)}/kustomization.yaml", "\n".join(lines) + "\n")
        artifacts = cluster_artifacts(scan.facts)
        if artifacts:
            readme = [
                "# Cluster-level fixes",
                "",
                "Each of these covers every affected workload at once; pick one.",
                "",
            ]
            written: set[str] = set()
            for art in artifacts:
                readme += [f"## {art.get('title') or art.get('kind')}", ""]
                if art.get("why"):
                    readme += [str(art["why"]), ""]
                for t in _as_list(art.get("tradeoffs")):
                    readme.append(f"- Trade-off: {t}")
                for fname, content in (art.get("files") or {}).items():
                    path = safe_path(fname)
                    if path.upper().startswith("README") or path in written:
                        continue
                    written.add(path)
                    zf.writestr(
                        f"cluster/{path}",
                        content if isinstance(content, str) else json.dumps(content, indent=2),
                    )
                    readme.append(f"- File: `cluster/{path}`")
                readme.append("")
            zf.writestr("cluster/README.md", "\n".join(readme))
        zf.writestr("report.json", json.dumps(build_report(scan), indent=2, default=str))
        zf.writestr("report.csv", build_csv(scan))
        if len(table_lines) == 2:
            table_lines.append("| (none: no workload needs a fix) | | | |")
        zf.writestr(
            "README.md",
            BUNDLE_README.format(
                cluster=cluster.name,
                server=cluster.server,
                scan_id=scan.pk,
                status=scan.status,
                finished=scan.finished_at.isoformat() if scan.finished_at else "-",
                affected=scan.affected,
                at_risk=scan.at_risk,
                safe=scan.safe,
                unknown=scan.unknown,
                table="\n".join(table_lines),
            ),
        )
    return buf.getvalue()


@require_role("operator")
def bundle_zip(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_cluster(name)
    scan = _report_scan(request, cluster)
    return _download(
        build_bundle(scan), f"dnsaudit-{safe_name(cluster.name)}-scan{scan.pk}-bundle.zip", "application/zip"
    )
