"""Fuzzing the manifest loader (``audit-manifests``): any file gives workloads and per-document errors,
never an exception, quickly."""

from __future__ import annotations

import json
import os
import tempfile

import pytest
import yaml
from hypothesis import given

from dnsaudit.core.manifests import load_paths
from tests.fuzz.bytegen import Reader
from tests.fuzz.common import bounded, seeds

pytestmark = pytest.mark.fuzz

KINDS = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Pod",
    "List",
    "PodList",
    "Service",
]
KEYS = ["kind", "apiVersion", "metadata", "name", "namespace", "spec", "template", "jobTemplate", "containers",
        "initContainers", "image", "dnsPolicy", "dnsConfig", "hostNetwork", "searches", "nameservers", "options",
        "items", "replicas", "labels"]  # fmt: skip
NAMES = ["web", "a.b", "alpine:3.20", "ClusterFirst", "None", "Default", "ndots", "5", "cluster.local"]
POD_SPEC = {
    "dnsPolicy": ["ClusterFirst", "None", "Default", "ClusterFirstWithHostNet", "x"],
    "hostNetwork": "bool",
    "containers": ({"name": "name", "image": "name"},),
    "initContainers": ({"name": "name", "image": "name"},),
    "dnsConfig": {
        "nameservers": ("name",),
        "searches": ("name",),
        "options": ({"name": "name", "value": "name"},),
    },
}
TEMPLATE = {"metadata": {"labels": {"app": "name"}}, "spec": POD_SPEC}
SHAPES = {
    "Pod": POD_SPEC,
    "CronJob": {"jobTemplate": {"spec": {"template": TEMPLATE}}},
}
YAML_WORDS = ["---", "...", "kind: Deployment", "kind: List", "items:", "- ", "{", "[", "&a", "*a", "!!python/object",
              ": ", "'", '"', "metadata:", "  name: x", "spec:", "\n"]  # fmt: skip

_DIR = tempfile.mkdtemp(prefix="dnsaudit-fuzz-")


def _object(r: Reader) -> object:
    kind = r.pick(KINDS) if r.below(8) else r.name(NAMES)
    obj = {
        "apiVersion": r.pick(["v1", "apps/v1", "batch/v1"]),
        "kind": kind,
        "metadata": r.shaped({"name": "name", "namespace": "name", "labels": "value"}, KEYS, NAMES),
        "spec": r.shaped(
            SHAPES.get(kind if isinstance(kind, str) else "", {"template": TEMPLATE}), KEYS, NAMES
        ),
    }
    if isinstance(obj["spec"], dict) and r.flag():
        obj["spec"]["replicas"] = r.value(KEYS, 2)
    if kind in ("List", "PodList"):
        obj["items"] = [_object(r) if r.flag() else r.value(KEYS, 1) for _ in range(r.below(3))]
    return obj if r.below(10) else r.value(KEYS)


@given(seeds)
def test_manifests(seed):
    r = Reader(seed)
    k = r.below(4)
    if k == 0:
        suffix, text = ".yaml", r.text(YAML_WORDS, 30)
    elif k == 1:
        suffix, text = ".json", json.dumps(_object(r), default=str)
    else:
        suffix = ".yaml"
        text = "\n---\n".join(yaml.safe_dump(_object(r), allow_unicode=True) for _ in range(1 + r.below(2)))
    path = os.path.join(_DIR, "m" + suffix)
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as fh:
        fh.write(text)
    with bounded():
        loaded = load_paths([path])
    assert loaded.files == 1
    for e in loaded.errors:
        str(e)
