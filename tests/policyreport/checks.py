"""Validating PolicyReports as the cluster would, with no cluster: the ``wgpolicyk8s.io/v1alpha2`` CRDs.

:data:`SCHEMA` is the CRDs' ``openAPIV3Schema`` (PolicyReport and ClusterPolicyReport share it; the
latter is cluster-scoped) restated as JSON Schema from the Policy WG's definition
(kubernetes-sigs/wg-policy-prototypes, ``policy-report/crd/v1alpha2``): ``scope``/``scopeSelector``,
``summary`` (five integer counts), ``results[]`` (``policy`` required; ``result`` and ``severity`` enums;
``resources`` as ObjectReferences; ``timestamp`` with both ``seconds`` and ``nanos``; ``properties`` a
string map). It is stricter than the API server in one way on purpose: unknown fields are errors here
(the server would prune them silently, so a misspelt field would be lost without a word).

:func:`validate_policy_report` also checks what the openAPI schema cannot say (metadata names are
DNS-1123, the summary equals the results) and parses every result and summary with an independent model of
the same type: cloudcoil's Kyverno report models, generated from Kyverno's CRDs, whose result type is the
PolicyReportResult of ``wgpolicyk8s.io/v1alpha2``.
"""

from __future__ import annotations

import re

import jsonschema

_OBJECT_REFERENCE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        k: {"type": "string"}
        for k in ("apiVersion", "kind", "namespace", "name", "uid", "resourceVersion", "fieldPath")
    },
}

_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"type": "string"},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

_RESULT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["policy"],
    "properties": {
        "source": {"type": "string"},
        "policy": {"type": "string"},
        "rule": {"type": "string"},
        "category": {"type": "string"},
        # The v1alpha2 CRD of the Policy WG lists high, low, medium; later ones add critical and info.
        "severity": {"type": "string", "enum": ["high", "low", "medium"]},
        "timestamp": {
            "type": "object",
            "additionalProperties": False,
            "required": ["seconds", "nanos"],
            "properties": {
                "seconds": {"type": "integer", "minimum": 0},
                "nanos": {"type": "integer", "minimum": 0, "maximum": 999_999_999},
            },
        },
        "result": {"type": "string", "enum": ["pass", "fail", "warn", "error", "skip"]},
        "scored": {"type": "boolean"},
        "resources": {"type": "array", "items": _OBJECT_REFERENCE},
        "resourceSelector": _LABEL_SELECTOR,
        "message": {"type": "string"},
        "properties": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

_COUNT = {"type": "integer", "minimum": 0}

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata"],
    "properties": {
        "apiVersion": {"const": "wgpolicyk8s.io/v1alpha2"},
        "kind": {"enum": ["PolicyReport", "ClusterPolicyReport"]},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "scope": _OBJECT_REFERENCE,
        "scopeSelector": _LABEL_SELECTOR,
        "summary": {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: _COUNT for k in ("pass", "fail", "warn", "error", "skip")},
        },
        "results": {"type": "array", "items": _RESULT},
    },
}

_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


def dns1123_subdomain(name: str) -> bool:
    """Kubernetes' ``IsDNS1123Subdomain`` (what a custom resource's name must be): 253 characters, dots
    between runs of ``[a-z0-9-]`` that start and end alphanumeric (no per-label limit)."""
    return len(name) <= 253 and _SUBDOMAIN.fullmatch(name) is not None


def validate_policy_report(doc: dict) -> None:
    """Raises (jsonschema.ValidationError, pydantic.ValidationError, AssertionError) unless ``doc`` is a
    PolicyReport or ClusterPolicyReport an API server with the v1alpha2 CRDs accepts as it is."""
    from cloudcoil.models.kyverno.reports.v1 import Result, Summary

    jsonschema.validate(doc, SCHEMA)
    meta = doc["metadata"]
    assert dns1123_subdomain(meta["name"]), meta["name"]
    if doc["kind"] == "PolicyReport":
        assert _LABEL.fullmatch(meta.get("namespace", "")), "a PolicyReport is namespaced"
    else:
        assert "namespace" not in meta, "a ClusterPolicyReport is cluster-scoped"
    for key, value in (meta.get("labels") or {}).items():
        prefix, _, name = key.rpartition("/")
        assert (not prefix or dns1123_subdomain(prefix)) and re.fullmatch(
            r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", name
        ), key
        assert _LABEL_VALUE.fullmatch(value), value
    assert sum(len(k) + len(v) for k, v in (meta.get("annotations") or {}).items()) < 256 * 1024
    results = doc.get("results") or []
    counts = dict.fromkeys(("pass", "fail", "warn", "error", "skip"), 0)
    for r in results:
        counts[r["result"]] += 1
        model = Result.model_validate(r)
        back = model.model_dump(mode="json", by_alias=True, exclude_none=True)
        assert back == r, f"fields unknown to the PolicyReportResult model:\n{back}\n!=\n{r}"
    assert doc.get("summary") == counts
    Summary.model_validate(doc["summary"])
