"""Independent checks for what dnsaudit emits: schemas it did not write, a kubectl that records, a Kyverno
match evaluator written here.

* :func:`validate_k8s` — PyPI ``kubernetes-validate`` (the OpenAPI schemas of each Kubernetes release,
  ``strict``: unknown fields are errors) for the oldest and newest releases it ships that dnsaudit supports
  (:data:`K8S_VERSIONS`; kubelet 1.25 is the oldest the demo fleet runs). Its schemas are files inside the
  wheel: no network (``test_kubernetes_validate_works_offline`` runs it in a network namespace).
* :func:`validate_kyverno` — the ``cloudcoil-models-kyverno`` models (generated from Kyverno's CRDs); the
  models ignore unknown keys, so the dump of the parsed model must give the input back (strict).
* :func:`recording_bin` — a ``kubectl`` (and ``systemctl``) on ``PATH`` that appends its argv and working
  folder to a file as one JSON line and prints nothing.
* :func:`kyverno_selects` — the subset of Kyverno semantics the generated policies use (documented there).
"""

from __future__ import annotations

import json
import subprocess
from fnmatch import fnmatchcase
from pathlib import Path

import kubernetes_validate

#: Oldest and newest Kubernetes minor versions of kubernetes-validate's schemas that dnsaudit supports.
K8S_VERSIONS = ("1.25.0", "1.37.0")


def validate_k8s(obj: dict) -> None:
    """Raises ``kubernetes_validate.ValidationError`` unless ``obj`` is valid for every :data:`K8S_VERSIONS`."""
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def _strip_none(v):
    if isinstance(v, dict):
        return {k: _strip_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_strip_none(x) for x in v]
    return v


def validate_kyverno(doc: dict) -> None:
    """The ClusterPolicy parses as Kyverno's CRD model and nothing in it is unknown to that model."""
    from cloudcoil.models.kyverno.v1 import ClusterPolicy

    model = ClusterPolicy.model_validate(doc)
    back = _strip_none(model.model_dump(mode="json", by_alias=True, exclude_unset=True))
    assert back == doc, f"fields unknown to Kyverno's ClusterPolicy schema:\n{back}\n!=\n{doc}"


STUB = """#!/bin/sh
# A recording stand-in: one JSON line per call (argv and working folder), nothing printed.
exec {python} -c 'import json, os, sys; f = open(os.environ["RECORD"], "a"); f.write(json.dumps({{"tool": sys.argv[1], "argv": sys.argv[2:], "cwd": os.getcwd()}}) + "\\n")' "$(basename "$0")" "$@"
"""


def recording_bin(folder: Path, python: str) -> Path:
    """A folder with recording ``kubectl`` and ``systemctl`` (put it first on PATH, set RECORD)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("kubectl", "systemctl"):
        p = folder / name
        p.write_text(STUB.format(python=python))
        p.chmod(0o755)
    return folder


def run_script(
    script: Path, cwd: Path, bin_dir: Path, record: Path, **env: str
) -> subprocess.CompletedProcess:
    environment = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "RECORD": str(record),
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
        **env,
    }
    return subprocess.run(
        ["bash", str(script)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def recorded(record: Path) -> list[dict]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]


def named_paths(argv: list[str]) -> list[str]:
    """The files a kubectl call names (``-f``/``--filename``, ``--patch-file``, ``-k``), ``-`` excepted."""
    out = []
    for i, a in enumerate(argv[:-1]):
        if a in ("-f", "--filename", "--patch-file", "-k", "--kustomize") and argv[i + 1] != "-":
            out.append(argv[i + 1])
    for a in argv:
        for flag in ("--filename=", "--patch-file=", "--from-file="):
            if a.startswith(flag):
                out.append(a[len(flag) :].split("=", 1)[-1])
    return out


# --- Kyverno match/exclude/preconditions, the subset the generated policies use --------------------------
#
# match.any[] / exclude.any[] of {"resources": {kinds, operations, namespaces, selector.matchLabels}}
#   - kinds: the resource kind must be listed; operations: the admission operation must be listed;
#     namespaces: the request namespace must match one entry (shell wildcards, as Kyverno does);
#     selector.matchLabels: every label must be on the object (exact value).
#   A rule applies when some ``match.any`` entry matches and no ``exclude.any`` entry does.
# preconditions {"all": [...], "any": [...]}: every ``all`` condition and at least one ``any`` condition
#   (when ``any`` is given) must hold. Operators: Equals (key == value) and AnyIn (some element of the
#   key's list is in value, the value entries being shell wildcards as in Kyverno).
# Keys are ``{{ ... }}`` JMESPath expressions; the ones the generated policies use are evaluated here:
#   ``request.object.spec.hostNetwork || `false```, ``request.object.spec.dnsPolicy || 'ClusterFirst'``,
#   ``request.object.spec.containers[].image``, ``request.object.spec.initContainers[].image || `[]```.
# Anything else raises: the evaluator never guesses.


def _key(expr: str, request: dict):
    e = expr.strip()
    assert e.startswith("{{") and e.endswith("}}"), e
    e = e[2:-2].strip()
    spec = request["object"].get("spec") or {}
    if e == "request.object.spec.hostNetwork || `false`":
        return spec.get("hostNetwork") or False
    if e == "request.object.spec.dnsPolicy || 'ClusterFirst'":
        return spec.get("dnsPolicy") or "ClusterFirst"
    if e == "request.object.spec.containers[].image":
        return [c.get("image") for c in spec.get("containers") or []]
    if e == "request.object.spec.initContainers[].image || `[]`":
        return [c.get("image") for c in spec.get("initContainers") or []] or []
    raise AssertionError(f"expression outside the evaluated subset: {e}")


def _condition(c: dict, request: dict) -> bool:
    key = _key(c["key"], request)
    op = c["operator"]
    if op == "Equals":
        return key == c["value"]
    if op == "AnyIn":
        return any(any(fnmatchcase(str(k), str(v)) for v in c["value"]) for k in key)
    raise AssertionError(f"operator outside the evaluated subset: {op}")


def _resources(f: dict, request: dict) -> bool:
    assert set(f) <= {"resources"}, f
    r = f["resources"]
    assert set(r) <= {"kinds", "operations", "namespaces", "selector"}, r
    obj = request["object"]
    if "kinds" in r and request["kind"] not in r["kinds"]:
        return False
    if "operations" in r and request["operation"] not in r["operations"]:
        return False
    if "namespaces" in r and not any(fnmatchcase(request["namespace"], n) for n in r["namespaces"]):
        return False
    if "selector" in r:
        sel = r["selector"]
        assert set(sel) <= {"matchLabels"}, sel
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if any(labels.get(k) != v for k, v in sel["matchLabels"].items()):
            return False
    return True


def kyverno_selects(policy: dict, request: dict) -> bool:
    """Whether some rule of ``policy`` mutates the admission ``request`` (``{"kind", "operation",
    "namespace", "object"}``), by the subset of semantics documented above."""
    for rule in policy["spec"]["rules"]:
        assert set(rule["match"]) <= {"any"} and set(rule.get("exclude", {})) <= {"any"}, rule
        if not any(_resources(f, request) for f in rule["match"]["any"]):
            continue
        if any(_resources(f, request) for f in rule.get("exclude", {}).get("any", [])):
            continue
        pre = rule.get("preconditions") or {}
        assert set(pre) <= {"all", "any"}, pre
        if not all(_condition(c, request) for c in pre.get("all", [])):
            continue
        if pre.get("any") and not any(_condition(c, request) for c in pre["any"]):
            continue
        return True
    return False


def pods_of(obj: dict) -> dict:
    """The Pod a controller creates from a workload object (its template; a bare Pod itself)."""
    kind = obj["kind"]
    if kind == "Pod":
        return obj
    spec = obj["spec"]
    if kind == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template = spec["template"]
    meta = dict(template.get("metadata") or {})
    meta["namespace"] = obj["metadata"].get("namespace", "default")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]}
