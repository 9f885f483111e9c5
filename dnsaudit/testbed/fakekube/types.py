"""The API types the test API server knows: group/version/resource, kind, scope, discovery data.

Discovery data (verbs, short names, subresources) mirrors what a current apiserver advertises, because
kubectl and dynamic clients read it. The server itself only implements ``get`` and ``list`` (plus the
few subresources listed in ``server.py``); other verbs answer 405 like a read-only proxy would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Verbs a real apiserver advertises for an ordinary read-write resource.
RW_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One served resource. ``group`` is ``""`` for the core (legacy) group."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    singular: str
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = RW_VERBS
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    #: Built-in types omit ``kind``/``apiVersion`` on list items; custom resources keep them (T5).
    builtin: bool = True
    #: Field selectors this resource supports besides metadata.name / metadata.namespace.
    fields: tuple[str, ...] = field(default=())

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        "namespace",
        ("ns",),
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        ("finalize", "status"),
        fields=("status.phase",),
    ),
    ResourceType(
        "",
        "v1",
        "nodes",
        "Node",
        False,
        "node",
        ("no",),
        subresources=("proxy", "status"),
        fields=("spec.unschedulable",),
    ),
    ResourceType(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        "pod",
        ("po",),
        subresources=(
            "attach",
            "binding",
            "ephemeralcontainers",
            "eviction",
            "exec",
            "log",
            "portforward",
            "proxy",
            "resize",
            "status",
        ),
        categories=("all",),
        fields=(
            "spec.nodeName",
            "status.phase",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.podIP",
            "status.nominatedNodeName",
        ),
    ),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, "configmap", ("cm",)),
    ResourceType("", "v1", "secrets", "Secret", True, "secret", fields=("type",)),
    ResourceType(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        True,
        "serviceaccount",
        ("sa",),
        subresources=("token",),
    ),
    ResourceType(
        "",
        "v1",
        "services",
        "Service",
        True,
        "service",
        ("svc",),
        subresources=("proxy", "status"),
        categories=("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        "deployment",
        ("deploy",),
        subresources=("scale", "status"),
        categories=("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        True,
        "replicaset",
        ("rs",),
        subresources=("scale", "status"),
        categories=("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        True,
        "statefulset",
        ("sts",),
        subresources=("scale", "status"),
        categories=("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        True,
        "daemonset",
        ("ds",),
        subresources=("status",),
        categories=("all",),
    ),
    ResourceType(
        "batch",
        "v1",
        "jobs",
        "Job",
        True,
        "job",
        subresources=("status",),
        categories=("all",),
        fields=("status.successful",),
    ),
    ResourceType(
        "batch",
        "v1",
        "cronjobs",
        "CronJob",
        True,
        "cronjob",
        ("cj",),
        subresources=("status",),
        categories=("all",),
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        "customresourcedefinition",
        ("crd", "crds"),
        subresources=("status",),
        categories=("api-extensions",),
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        "selfsubjectaccessreview",
        verbs=("create",),
    ),
)

#: Group → preferred version for the built-in groups above (the fake serves one version per group).
BUILTIN_GROUPS: dict[str, str] = {
    "apps": "v1",
    "batch": "v1",
    "apiextensions.k8s.io": "v1",
    "authorization.k8s.io": "v1",
}


def types_from_crd(crd: dict) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition serves (one per served version)."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    out = []
    for ver in spec.get("versions", []):
        if not ver.get("served", True):
            continue
        subs = tuple(sorted(ver.get("subresources", {}) or {}))
        out.append(
            ResourceType(
                spec["group"],
                ver["name"],
                names["plural"],
                names["kind"],
                spec.get("scope", "Namespaced") == "Namespaced",
                names.get("singular", names["kind"].lower()),
                tuple(names.get("shortNames", ())),
                subresources=subs,
                categories=tuple(names.get("categories", ())),
                builtin=False,
            )
        )
    return out
