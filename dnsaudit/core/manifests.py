"""Offline audit of Kubernetes manifests (``manage.py audit-manifests``), for CI.

Input: YAML or JSON files, or folders searched recursively for ``*.yaml``/``*.yml``/``*.json``.
Multi-document YAML, ``kind: List`` (and ``<Kind>List``) and Helm-style empty documents are handled.
Workload kinds: Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob; other kinds are
ignored. A file or document that cannot be read is reported (file, document index, line) and the rest
is still audited.

Exit status (documented in the command's help):

* ``2`` — bad usage, a path that does not exist, or any file/document that could not be read (a CI
  gate must not pass on input it could not check);
* ``1`` — otherwise, when a workload is at or above ``--fail-on`` (default ``affected``;
  ``at-risk`` also fails on ``at-risk`` and ``unknown``; ``never`` never fails on findings);
* ``0`` — otherwise.

Pure except for reading the given files; registry access (``--inspect-images``) is injected by the
command as a callable.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from dnsaudit.core import patches
from dnsaudit.core.audit import AuditContext, WorkloadAudit, audit_workloads
from dnsaudit.core.exemptions import kept_annotations
from dnsaudit.core.model import Answer, Container, KubeletDNS, LibcVerdict, NodePool, ProbeResult, Workload
from dnsaudit.core.patches import POD_SPEC_PATHS

WORKLOAD_KINDS = tuple(POD_SPEC_PATHS)
EXTENSIONS = (".yaml", ".yml", ".json")
FAIL_LEVELS = {"affected": {"affected"}, "at-risk": {"affected", "at-risk", "unknown"}, "never": set()}

_DOC_SEP = re.compile(r"^---(?:[ \t].*)?$")
_DOC_END = re.compile(r"^\.\.\.[ \t]*$")


@dataclass
class Source:
    """Where a workload came from: file, 0-based document index, 1-based line of the document start.

    Messages show the document 1-based ("document 2" is the second document of the file).
    """

    path: str
    document: int
    line: int


@dataclass
class LoadError:
    path: str
    document: int | None
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path
        if self.document is not None:
            where += f": document {self.document + 1}"
        if self.line is not None:
            where += f" (line {self.line})"
        return f"{where}: {self.message}"


@dataclass
class Loaded:
    workloads: list[tuple[Workload, Source]] = field(default_factory=list)
    errors: list[LoadError] = field(default_factory=list)
    files: int = 0


# --- reading --------------------------------------------------------------------------------------------


def find_files(paths: Iterable[str]) -> tuple[list[Path], list[LoadError]]:
    """Expand folders (recursive, sorted) into manifest files; missing paths become errors."""
    files: list[Path] = []
    errors: list[LoadError] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(q for q in path.rglob("*") if q.is_file() and q.suffix.lower() in EXTENSIONS)
            files += found
        elif path.is_file():
            files.append(path)
        else:
            errors.append(LoadError(str(p), None, None, "no such file or directory"))
    return files, errors


def split_documents(text: str) -> list[tuple[int, str]]:
    """Split a YAML stream on ``---``/``...`` lines: ``[(first line number, text)]``.

    Splitting ourselves (rather than ``safe_load_all``) lets one broken document be reported while the
    next ones are still read. A ``---`` at column 0 always starts a document in YAML, block scalars
    included, so this split is faithful.
    """
    docs: list[tuple[int, str]] = []
    start = 1
    buf: list[str] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if _DOC_SEP.match(line) or _DOC_END.match(line):
            docs.append((start, "\n".join(buf)))
            buf = []
            rest = line[3:].strip() if _DOC_SEP.match(line) else ""
            start = i if rest else i + 1
            if rest:
                buf.append(rest)
            continue
        buf.append(line)
    docs.append((start, "\n".join(buf)))
    # Text before the first '---' is a document only if it holds something besides comments (as in YAML).
    if len(docs) > 1 and all(not ln.strip() or ln.lstrip().startswith("#") for ln in docs[0][1].splitlines()):
        docs.pop(0)
    return docs


def _objects(doc: Any) -> Iterable[dict]:
    """A document's objects: ``kind: List``/``*List`` items flattened (recursively)."""
    if (
        isinstance(doc, dict)
        and isinstance(doc.get("items"), list)
        and str(doc.get("kind", "")).endswith("List")
    ):
        for item in doc["items"]:
            yield from _objects(item)
    else:
        yield doc


def load_paths(paths: Iterable[str]) -> Loaded:
    """Read every manifest under ``paths``; workloads with their source, errors for what could not be read."""
    out = Loaded()
    files, out.errors = find_files(paths)
    for f in files:
        out.files += 1
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            out.errors.append(LoadError(str(f), None, None, f"cannot read: {exc}"))
            continue
        if f.suffix.lower() == ".json":
            try:
                docs: list[tuple[int, Any]] = [(1, json.loads(text))] if text.strip() else []
            except json.JSONDecodeError as exc:
                out.errors.append(
                    LoadError(str(f), 0, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")
                )
                continue
            parsed = [(0, line, doc) for line, doc in docs]
        else:
            parsed = []
            for index, (line, chunk) in enumerate(split_documents(text)):
                try:
                    doc = yaml.safe_load(chunk)
                except yaml.YAMLError as exc:
                    mark = getattr(exc, "problem_mark", None)
                    where = line + mark.line if mark is not None else line
                    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
                    out.errors.append(LoadError(str(f), index, where, f"invalid YAML: {problem}"))
                    continue
                parsed.append((index, line, doc))
        for index, line, doc in parsed:
            if doc is None:
                continue  # Helm-style empty document
            for obj in _objects(doc):
                try:
                    w = workload_from_object(obj)
                except ValueError as exc:
                    out.errors.append(LoadError(str(f), index, line, str(exc)))
                    continue
                if w is not None:
                    out.workloads.append((w, Source(str(f), index, line)))
    return out


def workload_from_object(obj: Any, default_namespace: str = "default") -> Workload | None:
    """A :class:`Workload` from a manifest object; None for other kinds; ValueError when malformed."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a mapping (a Kubernetes object), got {type(obj).__name__}")
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        raise ValueError("the object has no 'kind'")
    if kind not in WORKLOAD_KINDS:
        return None
    meta = obj.get("metadata") or {}
    if not isinstance(meta, dict) or not meta.get("name"):
        raise ValueError(f"{kind} has no metadata.name")
    path = POD_SPEC_PATHS[kind]
    spec: Any = obj
    for key in path:
        spec = spec.get(key) if isinstance(spec, dict) else None
    if not isinstance(spec, dict):
        raise ValueError(f"{kind} {meta['name']} has no {'.'.join(path)}")
    containers: list[Container] = []
    for group in ("initContainers", "containers"):
        items = spec.get(group) or []
        if not isinstance(items, list):
            raise ValueError(f"{kind} {meta['name']}: {group} must be a list")
        for c in items:
            if not isinstance(c, dict) or not c.get("image"):
                raise ValueError(f"{kind} {meta['name']}: a container in {group} has no image")
            containers.append(Container(name=str(c.get("name") or ""), image=str(c["image"])))
    dns_config = spec.get("dnsConfig")
    if dns_config is not None and not isinstance(dns_config, dict):
        raise ValueError(f"{kind} {meta['name']}: dnsConfig must be a mapping")
    labels = meta.get("labels") or {}
    return Workload(
        namespace=str(meta.get("namespace") or default_namespace),
        kind=kind,
        name=str(meta["name"]),
        dns_policy=str(spec.get("dnsPolicy") or "ClusterFirst"),
        host_network=bool(spec.get("hostNetwork", False)),
        dns_config=dns_config,
        containers=tuple(containers),
        labels=dict(labels) if isinstance(labels, dict) else {},
        api_version=str(obj.get("apiVersion") or ("v1" if kind == "Pod" else "apps/v1")),
        pod_spec_path=path,
        replicas=_replicas(obj) if kind != "Pod" else None,
        annotations=kept_annotations(meta, _template_metadata(obj, path)),
    )


def _template_metadata(obj: dict, path: tuple[str, ...]) -> object:
    """The metadata beside the pod spec (the pod template's; a bare Pod's own)."""
    node: Any = obj
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    return node.get("metadata") if isinstance(node, dict) else None


def _replicas(obj: dict) -> int | None:
    spec = obj.get("spec")
    replicas = spec.get("replicas") if isinstance(spec, dict) else None
    return replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else None


# --- auditing ----------------------------------------------------------------------------------------------


@dataclass
class Options:
    paths: list[str]
    node_resolv_conf: str | None = None  # the file's content
    cluster_dns: str = "10.96.0.10"
    cluster_domain: str = "cluster.local"
    kubelet_version: str | None = None
    inspect: Callable[[str], LibcVerdict] | None = None  # image ref -> verdict (registry), None = infer
    fmt: str = "table"
    fail_on: str = "affected"
    #: known answers per extra search domain, e.g. {"openstacklocal": "NODATA"} (see ANSWERS)
    domain_answers: dict[str, str] = field(default_factory=dict)


#: What ``--domain-answer DOMAIN=ANSWER`` accepts, as the answer to both A and AAAA.
ANSWERS = {
    "NXDOMAIN": Answer("NXDOMAIN"),
    "NODATA": Answer("NOERROR"),
    "SERVFAIL": Answer("SERVFAIL"),
    "REFUSED": Answer("REFUSED"),
    "NOTIMP": Answer("NOTIMP"),
    "FORMERR": Answer("FORMERR"),
    "TIMEOUT": Answer(None),
}


def parse_domain_answer(text: str) -> tuple[str, str]:
    """``openstacklocal=NODATA`` → ``("openstacklocal", "NODATA")``; ValueError when malformed."""
    domain, sep, answer = text.partition("=")
    answer = answer.strip().upper()
    domain = domain.strip().strip(".").lower()
    if not sep or not domain or answer not in ANSWERS:
        raise ValueError(f"expected DOMAIN=ANSWER with ANSWER one of {', '.join(ANSWERS)}, got {text!r}")
    return domain, answer


@dataclass
class Result:
    audits: list[tuple[WorkloadAudit, Source]]
    errors: list[LoadError]
    files: int

    @property
    def reports(self) -> list[dict]:
        return [a.report for a, _ in self.audits]


def context_for(opts: Options, images: Iterable[str]) -> AuditContext:
    """The audit context for an offline run: one node pool built from the options."""
    kubelet = KubeletDNS(
        cluster_dns=(opts.cluster_dns,) if opts.cluster_dns else (),
        cluster_domain=opts.cluster_domain,
        resolv_conf="/etc/resolv.conf",
        version=opts.kubelet_version,
    )
    # Without --node-resolv-conf the node's search domains are unknown: musl workloads that inherit them
    # are at-risk (unknown libc: unknown), never safe, and their reasons say how to give the file.
    pool = NodePool(
        name="default",
        kubelet=kubelet,
        node_resolv_conf=opts.node_resolv_conf,
        observed={"kubelet_config": False, "node_resolv_conf": False},
        node_resolv_conf_source="entered" if opts.node_resolv_conf is not None else "unknown",
        node_resolv_conf_evidence=["--node-resolv-conf"] if opts.node_resolv_conf is not None else [],
    )
    assumed: list[str] = []
    libc: dict[str, LibcVerdict] = {}
    if opts.inspect is not None:
        for ref in images:
            if ref not in libc:
                libc[ref] = opts.inspect(ref)
    probes = [
        ProbeResult(
            domain=d,
            probe_name="dnsaudit-known-answer.example",
            qname=f"dnsaudit-known-answer.example.{d}",
            server=opts.cluster_dns,
            a=ANSWERS[ans],
            aaaa=ANSWERS[ans],
        )
        for d, ans in opts.domain_answers.items()
    ]
    return AuditContext(
        pools={"default": pool},
        default_pool="default",
        libc=libc,
        probes=probes,
        assumed=assumed,
        node_file_hint="Give the nodes' file with --node-resolv-conf FILE (an empty file if they add nothing).",
    )


def audit_paths(opts: Options) -> Result:
    loaded = load_paths(opts.paths)
    images = [c.image for w, _ in loaded.workloads for c in w.containers]
    ctx = context_for(opts, images)
    audits = audit_workloads([w for w, _ in loaded.workloads], ctx)
    return Result(
        list(zip(audits, [s for _, s in loaded.workloads], strict=True)), loaded.errors, loaded.files
    )


def exit_code(result: Result, fail_on: str) -> int:
    """2 for unreadable input, 1 for findings at/above ``fail_on``, else 0 (module docstring)."""
    if result.errors or result.files == 0:
        return 2
    levels = FAIL_LEVELS[fail_on]
    # An exempted workload (dnsaudit.io/exempt, not expired) keeps its risk but never fails the gate.
    return 1 if any(r["risk"] in levels and not r.get("exemption") for r in result.reports) else 0


# --- output ------------------------------------------------------------------------------------------------

SARIF_RULES = {
    "affected": ("DNSAUDIT001", "musl-dns-search-fails", "error"),
    "at-risk": ("DNSAUDIT002", "musl-dns-search-at-risk", "warning"),
    "unknown": ("DNSAUDIT003", "dns-search-risky-libc-unknown", "note"),
}


def workload_patch(audit: WorkloadAudit) -> tuple[str, dict] | None:
    """``(path, patch document)`` of the workload patch that fixes ``audit``'s workload by itself (its checked
    dnsConfig fix), ``path`` being ``<ns>/<kind>-<name>.yaml`` as under the bundle's ``patches/``; None when
    the workload is safe or has no checked workload patch."""
    if audit.report["risk"] == "safe":
        return None
    rem = next((r for r in audit.remedies if r.kind == "dnsConfig" and r.usable), None)
    if rem is None or audit.workload is None:
        return None
    w = audit.workload
    doc = patches.workload_patch_document(w, rem.dns_policy or "None", rem.dns_config)
    return patches.patch_path_for(w.namespace, w.kind, w.name), doc


def reports_with_patches(result: Result) -> list[dict]:
    """The reports, each non-safe one's ``remediation`` carrying its workload ``patch`` (schema: optional)."""
    out = []
    for audit, _ in result.audits:
        report = audit.report
        found = workload_patch(audit)
        if found is not None:
            report = {**report, "remediation": {**report["remediation"], "patch": found[1]}}
        out.append(report)
    return out


def write_patches(result: Result, folder: str) -> list[str]:
    """Write each affected/at-risk/unknown workload's patch under ``folder`` (the bundle's file names:
    ``<ns>/<kind>-<name>.yaml``); the paths written, relative to ``folder``."""
    root = Path(folder)
    written: list[str] = []
    for audit, _ in result.audits:
        found = workload_patch(audit)
        if found is None:
            continue
        rel, doc = found
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(patches.dump_yaml(doc), encoding="utf-8")
        written.append(rel)
    return written


def to_json(result: Result) -> str:
    return json.dumps({"workloads": reports_with_patches(result)}, indent=2) + "\n"


def _uri(path: str) -> str:
    p = Path(path)
    try:
        rel = os.path.relpath(p.resolve(), Path.cwd())
    except ValueError:
        rel = str(p)
    if rel.startswith(".."):
        return p.resolve().as_uri()
    return Path(rel).as_posix()


def to_sarif(result: Result) -> str:
    """SARIF 2.1.0: one result per affected/at-risk/unknown workload, located at its document."""
    rules = [
        {
            "id": rid,
            "name": name,
            "shortDescription": {"text": f"Workload DNS under musl: {risk}"},
            "fullDescription": {
                "text": (
                    "musl stops the DNS search at the first answer that is not NXDOMAIN; glibc continues. "
                    "This workload's effective resolv.conf makes that difference matter."
                )
            },
            "defaultConfiguration": {"level": level},
            "helpUri": "https://kubernetes.io/docs/tasks/administer-cluster/dns-debugging-resolution/#known-issues",
        }
        for risk, (rid, name, level) in SARIF_RULES.items()
    ]
    results = []
    for audit, src in result.audits:
        r = audit.report
        if r["risk"] not in SARIF_RULES:
            continue
        rid, _, level = SARIF_RULES[r["risk"]]
        rec = r["remediation"]["recommended"]
        text = f"{r['kind']} {r['namespace']}/{r['name']} is {r['risk']}: " + " ".join(r["reasons"])
        if rec != "none":
            text += f" Recommended fix: {rec}."
        fixes = []
        found = workload_patch(audit)
        if found is not None:
            rel, doc = found
            fixes.append(
                {
                    "description": {
                        "text": (
                            "Workload patch (dnsPolicy None and a full dnsConfig), as written by --write-patches: "
                            "apply with kubectl patch --type strategic --patch-file, or as a kustomize patch."
                        )
                    },
                    "artifactChanges": [
                        {
                            "artifactLocation": {"uri": f"dnsaudit-patches/{rel}"},
                            "replacements": [
                                {
                                    "deletedRegion": {"charOffset": 0, "charLength": 0},
                                    "insertedContent": {"text": patches.dump_yaml(doc)},
                                }
                            ],
                        }
                    ],
                }
            )
        results.append(
            {
                **({"fixes": fixes} if fixes else {}),
                "ruleId": rid,
                "level": level,
                "message": {"text": text},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": _uri(src.path)},
                            "region": {"startLine": max(src.line, 1)},
                        },
                        "logicalLocations": [
                            {
                                "fullyQualifiedName": f"{r['namespace']}/{r['kind']}/{r['name']}",
                                "kind": "object",
                            }
                        ],
                    }
                ],
                "partialFingerprints": {"workload": f"{r['namespace']}/{r['kind']}/{r['name']}"},
                "properties": {"risk": r["risk"], "recommended": rec, "document": src.document},
                **(
                    {"suppressions": [{"kind": "inSource", "justification": r["exemption"]["reason"]}]}
                    if r.get("exemption")
                    else {}
                ),
            }
        )
    notifications = [
        {
            "level": "error",
            "message": {"text": str(e)},
            **(
                {
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": _uri(e.path)},
                                **({"region": {"startLine": e.line}} if e.line else {}),
                            }
                        }
                    ]
                }
                if Path(e.path).exists()
                else {}
            ),
        }
        for e in result.errors
    ]
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {"name": "dnsaudit", "informationUri": "https://github.com/", "rules": rules}
                },
                "invocations": [
                    {"executionSuccessful": not result.errors, "toolExecutionNotifications": notifications}
                ],
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2) + "\n"


def to_table(result: Result, out: TextIO, *, rich_terminal: bool = False) -> None:
    """A table of workloads (rich when writing to a terminal, plain text otherwise), then the reasons."""
    rows = [
        (
            r["risk"] + (" (exempted)" if r.get("exemption") else ""),
            f"{r['namespace']}/{r['kind']}/{r['name']}",
            ", ".join(
                f"{c['libc']}{' ' + c['musl_version'] if c.get('musl_version') else ''}"
                + ("*" if c.get("musl_version") and c.get("confidence") == "inferred" else "")
                for c in r["containers"]
            ),
            r["remediation"]["recommended"],
        )
        for r in result.reports
    ]
    headers = ("RISK", "WORKLOAD", "LIBC", "FIX")
    if rich_terminal:
        from rich.console import Console
        from rich.table import Table

        colours = {"affected": "red", "at-risk": "yellow", "unknown": "magenta", "safe": "green"}
        table = Table(*headers)
        for risk, *rest in rows:
            table.add_row(f"[{colours.get(risk.split()[0], 'white')}]{risk}[/]", *rest)
        Console(file=out).print(table)
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
        out.write("  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip() + "\n")
        for row in rows:
            out.write("  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip() + "\n")
    if any(
        c.get("musl_version") and c.get("confidence") == "inferred"
        for r in result.reports
        for c in r["containers"]
    ):
        out.write(
            "* musl version inferred from the image reference (tag), not read from the image: "
            "--inspect-images reads it.\n"
        )
    for r in result.reports:
        if r["risk"] == "safe":
            continue
        out.write(f"\n{r['namespace']}/{r['kind']}/{r['name']} ({r['risk']}):\n")
        for reason in r["reasons"]:
            out.write(f"  - {reason}\n")
        if ex := r.get("exemption"):
            until = f" until {ex['expires']}" if ex.get("expires") else ""
            out.write(f"  exempted ({ex['source']}{until}): {ex['reason']}\n")
        if r["remediation"]["recommended"] != "none":
            out.write(f"  fix: {r['remediation']['recommended']} — {r['remediation'].get('why', '')}\n")
