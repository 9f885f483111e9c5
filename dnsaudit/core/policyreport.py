"""A scan's report as ``wgpolicyk8s.io/v1alpha2`` PolicyReports (export only: dnsaudit never writes to a cluster).

Input: the shared report dict of ``clusters.reports.scan_report(scan)`` (``cluster``, ``scan``, ``node_pools``,
``node_file_gaps``, ``workloads`` — each workload a :class:`dnsaudit.core.schema.WorkloadReport`, plus
``exemption`` when one applies). Output: plain dicts, the objects of the Policy WG's PolicyReport CRDs
(kubernetes-sigs/wg-policy-prototypes, as Kyverno and Policy Reporter install them), ready for
:func:`dump_yaml` and ``kubectl apply -f -``:

* one ``PolicyReport`` per namespace, ``dnsaudit-<namespace>``, one result per workload:

  ======================  ========  ==========  ================================================
  workload                result    severity    message / properties
  ======================  ========  ==========  ================================================
  ``affected``            fail      high        its reasons; risk, libc, images, pool, fix...
  ``at-risk``             warn      medium      its reasons
  ``unknown``             warn      low         its reasons (libc or node file not known)
  ``safe``                pass      (none)      its reasons
  exempted (any risk)     skip      (none)      the exemption's reason, then the finding;
                                                ``exemption_*`` properties, ``risk`` kept
  ======================  ========  ==========  ================================================

  ``resources`` names the workload (apiVersion from its kind: apps/v1, batch/v1, v1; other kinds take an
  ``apiVersion`` from the report when it carries a valid one, else none is written).

* one ``ClusterPolicyReport``, ``dnsaudit-cluster``, one result per node pool (node pools are not API
  objects: the pool is in ``properties``): ``warn`` while the pool's node search domains are
  ``unknown`` or only ``inferred`` (the report's node-file gap as message); ``fail`` when they break musl
  (a probe shows musl stopping under one of them, or the kubelet keeps ``search .``, which musl 1.2.3
  and older turn into malformed queries); ``warn`` when a node domain was not probed or the file could
  not be parsed; ``pass`` otherwise. Workloads whose namespace, kind or name is not a valid Kubernetes
  name (never in a scan's report: the inventory refuses them) are counted in one ``error`` result
  instead of being written as a reference.

Every report carries ``app.kubernetes.io/managed-by: dnsaudit`` and every result ``source: dnsaudit``
and the policy :data:`POLICY`. Strings from the cluster are data: messages and properties are cut to
:data:`MAX_MESSAGE` / :data:`MAX_PROPERTY` characters with control characters removed, and YAML is only
``safe_dump`` output. A report whose results would pass :data:`MAX_REPORT_BYTES` continues in
``dnsaudit-<namespace>-2``, ``-3``... so that every object stays below the 256 KiB that client-side
``kubectl apply`` can record in its last-applied annotation (and far below etcd's object limit).

Pure: no Django, network or client imports.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from .inventory import valid_kind, valid_name, valid_namespace

API_VERSION = "wgpolicyk8s.io/v1alpha2"
POLICY = "dnsaudit-musl-dns"
RULE_WORKLOAD = "workload-name-resolution"
RULE_POOL = "node-pool-search-domains"
RULE_NAMES = "workload-names"
SOURCE = "dnsaudit"
CATEGORY = "DNS"
NAME_PREFIX = "dnsaudit-"
CLUSTER_REPORT_NAME = "dnsaudit-cluster"
LABELS = {"app.kubernetes.io/managed-by": "dnsaudit"}
ANNOTATION_CLUSTER = "dnsaudit.io/cluster"
ANNOTATION_SCAN = "dnsaudit.io/scan"
ANNOTATION_GENERATED = "dnsaudit.io/generated-at"

MAX_MESSAGE = 1024
MAX_PROPERTY = 256
MAX_NAME = 253
#: Serialized size of the results of one report (JSON characters) before it continues in the next.
MAX_REPORT_BYTES = 200_000

RESULTS = ("pass", "fail", "warn", "error", "skip")
RESULT_OF_RISK = {"affected": "fail", "at-risk": "warn", "unknown": "warn", "safe": "pass"}
#: The CRD's severities are high, medium and low (newer CRDs add critical and info).
SEVERITY_OF_RISK = {"affected": "high", "at-risk": "medium", "unknown": "low"}

API_VERSION_OF_KIND = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "CronJob": "batch/v1",
    "Job": "batch/v1",
    "Pod": "v1",
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: ``group/version`` or ``version`` as an ObjectReference's apiVersion.
_API_VERSION = re.compile(r"(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?")
_NAME_UNSAFE = re.compile(r"[^a-z0-9-]+")
#: Kubernetes' DNS-1123 subdomain (``IsDNS1123Subdomain``: no per-label limit, 253 in all), which a custom
#: resource's name must be.
_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")


# --- small helpers ---------------------------------------------------------------------------------------


def bounded(value: object, limit: int = MAX_MESSAGE) -> str:
    """``value`` as one line of at most ``limit`` characters: control and bidi characters removed,
    whitespace runs collapsed, cut with ``…``."""
    text = " ".join(_CONTROL.sub(" ", value if isinstance(value, str) else str(value)).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def report_name(suffix: str) -> str:
    """``dnsaudit-<suffix>``, a valid DNS-1123 subdomain of at most 253 characters.

    A suffix that does not make a valid name as it is (too long, upper case, other characters) is
    lower-cased, reduced to ``[a-z0-9-]``, cut, and given 10 hex characters of its SHA-256, so two
    different suffixes never share a name."""
    name = NAME_PREFIX + suffix
    if len(name) <= MAX_NAME and _SUBDOMAIN.fullmatch(name):
        return name
    digest = hashlib.sha256(suffix.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    cleaned = _NAME_UNSAFE.sub("-", suffix.lower()).strip("-")
    room = MAX_NAME - len(NAME_PREFIX) - len(digest) - 1
    cleaned = cleaned[:room].strip("-")
    return f"{NAME_PREFIX}{cleaned}-{digest}" if cleaned else f"{NAME_PREFIX}{digest}"


def timestamp(iso: str | None, fallback: str) -> dict[str, int]:
    """``{"seconds", "nanos"}`` (``metav1.Timestamp``) of an ISO 8601 time; ``fallback`` when ``iso`` does
    not parse; the epoch when neither does. A time without an offset is UTC."""
    for text in (iso, fallback):
        if not isinstance(text, str) or not text:
            continue
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = int(when.timestamp())
        return {"seconds": max(seconds, 0), "nanos": when.microsecond * 1000 if seconds >= 0 else 0}
    return {"seconds": 0, "nanos": 0}


def _joined(values: Iterable[object], limit: int = MAX_PROPERTY) -> str:
    seen: list[str] = []
    for v in values:
        if isinstance(v, str) and v and v not in seen:
            seen.append(v)
    return bounded(", ".join(seen), limit)


def _props(pairs: Mapping[str, object]) -> dict[str, str]:
    """A ``properties`` string map: empty and missing values left out, every value bounded."""
    out = {}
    for key, value in pairs.items():
        if value is None or value == "" or isinstance(value, dict | list):
            continue
        out[key] = bounded(value, MAX_PROPERTY)
    return out


def _api_version(w: Mapping[str, Any]) -> str | None:
    kind = w.get("kind")
    if kind in API_VERSION_OF_KIND:
        return API_VERSION_OF_KIND[kind]
    given = w.get("apiVersion", w.get("api_version"))
    if isinstance(given, str) and len(given) <= MAX_NAME and _API_VERSION.fullmatch(given):
        return given
    return None


# --- workloads -------------------------------------------------------------------------------------------


def _finding(w: Mapping[str, Any], risk: str) -> str:
    reasons = [r for r in w.get("reasons") or [] if isinstance(r, str) and r.strip()]
    if reasons:
        return " ".join(reasons)
    return {
        "affected": "DNS lookups fail under musl where glibc succeeds.",
        "at-risk": "DNS lookups can fail under musl with this resolv.conf.",
        "unknown": "Not known whether DNS lookups fail under musl (libc or node search domains unknown).",
        "safe": "Not affected by musl's search-list behaviour.",
    }.get(risk, "No verdict.")


def workload_result(w: Mapping[str, Any], ts: dict[str, int], scan_id: object = None) -> dict[str, Any]:
    """The result of one workload (its namespace, kind and name must be valid: see :func:`valid_identity`)."""
    risk = w.get("risk") if w.get("risk") in RESULT_OF_RISK else "unknown"
    exemption = w.get("exemption") if isinstance(w.get("exemption"), Mapping) else None
    containers = [c for c in w.get("containers") or [] if isinstance(c, Mapping)]
    remediation = w.get("remediation") if isinstance(w.get("remediation"), Mapping) else {}
    finding = _finding(w, risk)
    properties = {
        "risk": risk,
        "libc": _joined(c.get("libc") for c in containers),
        "images": _joined(c.get("image") for c in containers),
        "node_pool": w.get("node_pool") if isinstance(w.get("node_pool"), str) else None,
        "node_file_source": w.get("node_resolv_conf_source")
        if isinstance(w.get("node_resolv_conf_source"), str)
        else None,
        "recommended_fix": remediation.get("recommended")
        if isinstance(remediation.get("recommended"), str)
        else None,
        "affected_names": _joined(w.get("affected_names") or []),
        "scan": str(scan_id) if scan_id is not None else None,
    }
    if exemption is not None:
        result, severity = "skip", None
        reason = exemption.get("reason") or "no reason given"
        by = exemption.get("by")
        expires = exemption.get("expires")
        message = (
            f"Exempted{' by ' + bounded(by, 100) if by else ''}"
            f"{' until ' + bounded(expires, 40) if expires else ''}: {bounded(reason, 400)}. "
            f"Finding ({risk}): {finding}"
        )
        for key in ("reason", "source", "by", "expires", "id"):
            properties[f"exemption_{key}"] = exemption.get(key)
    else:
        result, severity = RESULT_OF_RISK[risk], SEVERITY_OF_RISK.get(risk)
        message = finding
    resource: dict[str, str] = {}
    api_version = _api_version(w)
    if api_version:
        resource["apiVersion"] = api_version
    resource.update({"kind": w["kind"], "namespace": w["namespace"], "name": w["name"]})
    return _result(RULE_WORKLOAD, result, severity, message, ts, _props(properties), resources=[resource])


def _result(
    rule: str,
    result: str,
    severity: str | None,
    message: str,
    ts: Mapping[str, int],
    properties: dict[str, str],
    resources: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """One PolicyReport result, its keys in the CRD's order (``severity`` only when there is one)."""
    out: dict[str, Any] = {"source": SOURCE, "policy": POLICY, "rule": rule, "category": CATEGORY}
    out["result"] = result
    if severity:
        out["severity"] = severity
    out.update({"timestamp": dict(ts), "scored": True, "message": bounded(message)})
    if resources is not None:
        out["resources"] = resources
    out["properties"] = properties
    return out


def valid_identity(w: Mapping[str, Any]) -> bool:
    """Whether a workload can be written as a reference in its namespace's report."""
    return valid_namespace(w.get("namespace")) and valid_kind(w.get("kind")) and valid_name(w.get("name"))


# --- node pools ------------------------------------------------------------------------------------------


def _gap_message(gaps: list[Mapping[str, Any]], source: str, pool: str) -> str | None:
    for g in gaps:
        if g.get("source") == source and pool in (g.get("pools") or []) and isinstance(g.get("message"), str):
            return g["message"]
    return None


def pool_result(pool: Mapping[str, Any], gaps: list[Mapping[str, Any]], ts: dict[str, int]) -> dict[str, Any]:
    """The result of one node pool (see the module docstring for the rules)."""
    name = pool.get("name") if isinstance(pool.get("name"), str) else ""
    source = pool.get("node_resolv_conf_source") or "unknown"
    searches = [s for s in pool.get("searches") or [] if isinstance(s, Mapping)]
    node_domains = [
        s["domain"] for s in searches if not s.get("cluster") and isinstance(s.get("domain"), str)
    ]
    probes = [p for p in pool.get("probes") or [] if isinstance(p, Mapping)]
    probed = {p.get("domain") for p in probes}
    stopping: dict[str, Mapping[str, Any]] = {}
    for p in probes:
        if p.get("musl") == "stops" and p.get("domain") in node_domains:
            stopping.setdefault(p["domain"], p)
    keeps_dot = "." in node_domains
    unparseable = "" in node_domains
    unprobed = [d for d in node_domains if d not in (".", "") and d not in probed]
    who = f"pool {bounded(name, 100)}"

    breaks: list[str] = []
    for domain, p in stopping.items():
        breaks.append(
            f"musl stops at {bounded(p.get('qname') or domain, 200)} (A {bounded(p.get('a'), 40)}, "
            f"AAAA {bounded(p.get('aaaa'), 40)}) under the node search domain {bounded(domain, 200)}; "
            "glibc continues"
        )
    if keeps_dot:
        breaks.append(
            f"the kubelet ({bounded(pool.get('kubelet_version') or 'unknown version', 40)}) keeps 'search .' from "
            "the node's resolv.conf: musl 1.2.3 and older send malformed queries ('name..') and fail"
        )

    if source in ("unknown", "inferred"):
        result, severity = "warn", "medium"
        message = _gap_message(gaps, source, name) or (
            f"node search domains {'unknown' if source == 'unknown' else 'inferred, not read,'} on {who}: "
            "allow exec reads or paste the node's /etc/resolv.conf in the cluster's settings"
        )
        if breaks:
            message += ". Likely: " + "; ".join(breaks)
    elif breaks:
        result, severity = "fail", "high"
        message = f"The node search domains of {who} break musl: " + "; ".join(breaks) + "."
    elif unparseable:
        result, severity = "warn", "medium"
        message = f"The node resolv.conf of {who} could not be parsed: its search domains are not known."
    elif unprobed:
        result, severity = "warn", "low"
        message = (
            f"Node search domain{'s' if len(unprobed) > 1 else ''} {_joined(unprobed, 400)} of {who} "
            "not probed: musl workloads that inherit them are at risk (set probe nameservers for the cluster)."
        )
    else:
        result, severity = "pass", None
        message = (
            f"The node search domains of {who} ({_joined(node_domains, 400)}) answer NXDOMAIN for other "
            "names: musl continues the search."
            if node_domains
            else f"The nodes of {who} add no search domain to pods."
        )
    nodes = pool.get("nodes")
    properties = {
        "node_pool": name,
        "node_file_source": source,
        "nodes": str(len(nodes) if isinstance(nodes, list) else nodes)
        if isinstance(nodes, int | list)
        else None,
        "kubelet_version": pool.get("kubelet_version"),
        "architecture": pool.get("architecture"),
        "search_domains": _joined(node_domains),
        "breaking_domains": _joined([*stopping, *(["."] if keeps_dot else [])]),
    }
    return _result(RULE_POOL, result, severity, message, ts, _props(properties))


# --- the reports -----------------------------------------------------------------------------------------


def summary(results: list[Mapping[str, Any]]) -> dict[str, int]:
    """``{"pass", "fail", "warn", "error", "skip"}`` counted from ``results``."""
    counts = dict.fromkeys(RESULTS, 0)
    for r in results:
        counts[r["result"]] += 1
    return counts


def _chunks(results: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    chunks: list[list[dict[str, Any]]] = [[]]
    size = 0
    for r in results:
        n = len(json.dumps(r, ensure_ascii=False))
        if chunks[-1] and size + n > MAX_REPORT_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(r)
        size += n
    return chunks


def _metadata(name: str, namespace: str | None, annotations: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(LABELS)
    meta["annotations"] = dict(annotations)
    return meta


def _documents(
    kind: str, base: str, namespace: str | None, results: list[dict[str, Any]], annotations: dict[str, str]
) -> list[dict[str, Any]]:
    docs = []
    for i, chunk in enumerate(_chunks(results), start=1):
        name = base if i == 1 else f"{base}-{i}"
        if len(name) > MAX_NAME:
            name = report_name(name.removeprefix(NAME_PREFIX))
        docs.append(
            {
                "apiVersion": API_VERSION,
                "kind": kind,
                "metadata": _metadata(name, namespace, annotations),
                "summary": summary(chunk),
                "results": chunk,
            }
        )
    return docs


def policy_reports(report: Mapping[str, Any], *, generated_at: str) -> list[dict[str, Any]]:
    """The PolicyReports (one per namespace, sorted) and then the ClusterPolicyReport of a report dict.

    ``generated_at``: an ISO 8601 time, written in an annotation, and the results' timestamp when the
    scan's ``finished_at`` is missing or does not parse.
    """
    cluster = report.get("cluster") if isinstance(report.get("cluster"), Mapping) else {}
    scan = report.get("scan") if isinstance(report.get("scan"), Mapping) else {}
    ts = timestamp(scan.get("finished_at"), generated_at)
    annotations = _props(
        {
            ANNOTATION_CLUSTER: cluster.get("name"),
            ANNOTATION_SCAN: str(scan["id"]) if scan.get("id") is not None else None,
            ANNOTATION_GENERATED: generated_at,
        }
    )
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    invalid = 0
    for w in report.get("workloads") or []:
        if not isinstance(w, Mapping) or not valid_identity(w):
            invalid += 1
            continue
        by_namespace.setdefault(w["namespace"], []).append(workload_result(w, ts, scan.get("id")))
    docs: list[dict[str, Any]] = []
    for ns in sorted(by_namespace):
        docs += _documents("PolicyReport", report_name(ns), ns, by_namespace[ns], annotations)

    gaps = [g for g in report.get("node_file_gaps") or [] if isinstance(g, Mapping)]
    cluster_results = [
        pool_result(p, gaps, ts)
        for p in sorted(
            (p for p in report.get("node_pools") or [] if isinstance(p, Mapping)),
            key=lambda p: str(p.get("name")),
        )
    ]
    if invalid:
        message = (
            f"{invalid} workload{'s' if invalid != 1 else ''} with a namespace, kind or name that is not "
            "a valid Kubernetes name could not be written as a reference: see the dnsaudit report."
        )
        cluster_results.append(_result(RULE_NAMES, "error", None, message, ts, {"workloads": str(invalid)}))
    docs += _documents("ClusterPolicyReport", CLUSTER_REPORT_NAME, None, cluster_results, annotations)
    return docs


def as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The reports as a ``v1`` ``List`` (the API's shape; ``kubectl apply -f`` takes it too)."""
    return {"apiVersion": "v1", "kind": "List", "items": items}


def dump_yaml(items: list[dict[str, Any]]) -> str:
    """A multi-document YAML stream (``---`` before each object), ``safe_dump`` only, ASCII only (any other
    character from a cluster string is written as an escape)."""
    return yaml.safe_dump_all(
        items, sort_keys=False, explicit_start=True, default_flow_style=False, allow_unicode=False, width=100
    )
