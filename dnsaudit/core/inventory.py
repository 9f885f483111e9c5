"""Turn raw API objects into the workloads a user edits, and nodes into node pools.

Input is the raw JSON the Kubernetes API returns (dicts, as listed; list items carry no ``kind``).
Output is :class:`~dnsaudit.core.model.Workload` values, one per *top owner*: a Pod owned by a
ReplicaSet owned by a Deployment is reported as the Deployment; a Job owned by a CronJob as the
CronJob. Controllers with no running pod are still audited from their template.

**Names are data.** What a cluster sends is checked here, where it enters the product: object names,
owner names, node names, service accounts and pull secrets must be DNS-1123 subdomains, namespaces and
container names DNS-1123 labels, owner kinds identifiers, images and image IDs image references, dnsConfig
entries DNS tokens (the API server does not check ``ownerReferences`` at all; a hostile or broken one
checks nothing). An object with an invalid name, namespace, container, image or pod-spec field is refused
(not audited); an invalid owner reference is dropped, the object standing for itself; an invalid label or
image ID is dropped. Each refusal is a problem of the scan (``Inventory.problems``) that quotes the value
escaped and truncated (``shown``). Anything past this module holds only checked values.
"""

from __future__ import annotations

import copy
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .exemptions import kept_annotations
from .model import Container, Workload
from .nodefiles import CATEGORIES, NodeFileCandidate, candidate_category

# Where the pod spec sits inside each kind, and its API version.
POD_SPEC_PATH: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}
API_VERSION: dict[str, str] = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "Pod": "v1",
}
# Resource (plural, as listed) -> kind.
RESOURCE_KIND: dict[str, str] = {
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "daemonsets": "DaemonSet",
    "replicasets": "ReplicaSet",
    "jobs": "Job",
    "cronjobs": "CronJob",
    "pods": "Pod",
}

# Node labels that name a pool on common platforms, most specific first.
POOL_LABELS = (
    "dnsaudit.io/pool",
    "eks.amazonaws.com/nodegroup",
    "cloud.google.com/gke-nodepool",
    "kubernetes.azure.com/agentpool",
    "agentpool",
    "node.kubernetes.io/pool",
    "nodepool",
    "magnum.openstack.org/nodegroup",
    "node.kubernetes.io/instance-type",
)


@dataclass
class PoolNodes:
    name: str
    nodes: list[dict] = field(default_factory=list)
    kubelet_version: str = ""
    architecture: str = ""
    os: str = "linux"


#: ``isinstance(x, _MAP)``: a dict (what JSON gives) is recognised without the ABC machinery of
#: ``Mapping`` (millions of checks per large cluster); any other Mapping still counts.
_MAP = (dict, Mapping)


def _get(obj: Mapping, *path: str, default=None):
    cur = obj
    for key in path:
        if not isinstance(cur, _MAP):
            return default
        cur = cur.get(key)
        if cur is None:
            return default
    return cur


# --- what a name may be ------------------------------------------------------------------------------

_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
#: DNS-1123 labels joined by dots, in one match (not a split and a match per label).
_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)*")
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}")
#: ``[registry[:port]/]path[:tag][@algorithm:hex]``, conservatively: no space, quote, ``$``, backtick...
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,1023}")
#: ``docker-pullable://…@sha256:…``, ``sha256:…``, ``docker.io/library/x@sha256:…``.
_IMAGE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,1023}")
#: A dnsConfig search domain or nameserver: a DNS name (``.`` included) or an IP address.
_DNS_TOKEN = re.compile(r"[A-Za-z0-9_.:%-]{1,253}")
_OPTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_OPTION_VALUE = re.compile(r"[A-Za-z0-9_.:-]{0,64}")
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_LABEL_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}")
_PLATFORM_WORD = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")


def valid_namespace(value: object) -> bool:
    """A DNS-1123 label: what a namespace (and a container name) must be."""
    return isinstance(value, str) and len(value) <= 63 and _LABEL.fullmatch(value) is not None


valid_container_name = valid_namespace


def valid_name(value: object) -> bool:
    """A DNS-1123 subdomain: what object, node, service account and secret names must be."""
    return isinstance(value, str) and 0 < len(value) <= 253 and _SUBDOMAIN.fullmatch(value) is not None


def valid_kind(value: object) -> bool:
    """An identifier (``Deployment``, ``Rollout``): letters and digits, starting with a letter."""
    return isinstance(value, str) and _KIND.fullmatch(value) is not None


def valid_image(value: object) -> bool:
    """An image reference as a pod spec names it (empty: not said)."""
    return isinstance(value, str) and (value == "" or _IMAGE.fullmatch(value) is not None)


def valid_label(key: object, value: object) -> bool:
    """A label ``[prefix/]name`` with a value of at most 63 characters."""
    if not isinstance(key, str) or not isinstance(value, str) or not _LABEL_VALUE.fullmatch(value):
        return False
    prefix, _, name = key.rpartition("/")
    return (not prefix or valid_name(prefix)) and _LABEL_NAME.fullmatch(name) is not None


def shown(value: object, n: int = 60) -> str:
    """``value`` as a problem quotes it: escaped (``ascii``: newlines, quotes, control and non-ASCII
    characters as escapes) and cut to ``n`` characters; a non-string by its type."""
    if not isinstance(value, str):
        return f"<{type(value).__name__}>"
    out = ascii(value[:n])
    return out + (f"…({len(value)} characters)" if len(value) > n else "")


def refused_problem(fact: str, examples: list[str], count: int, why: str, impact: str) -> dict:
    """One problem of a scan for ``count`` refused values (the first few quoted in ``examples``)."""
    more = f" and {count - len(examples)} more" if count > len(examples) else ""
    return {
        "fact": fact,
        "error": f"{count} refused ({why}): {'; '.join(examples)}{more}",
        "impact": impact,
        "refused": True,  # input refused, not a fact assumed: never quoted in verdicts
    }


class _Refusals:
    """What the inventory refused, counted per category with the first few examples."""

    KEEP = 5
    WHAT = {
        "objects": (
            "objects read from the cluster",
            "an object's name, namespace, container or pod-spec field is not valid Kubernetes data",
            "these objects are not audited: they are missing from the report",
        ),
        "owners": (
            "owner references",
            "an owner reference's kind must be an identifier and its name a DNS-1123 subdomain",
            "each such object is reported as itself, not under the owner it names",
        ),
        "dropped": (
            "labels and image IDs",
            "not a valid label or image reference",
            "dropped: the workloads are audited without them (images looked up by reference)",
        ),
        "nodes": (
            "nodes read from the cluster",
            "a node's name is not a DNS-1123 subdomain, or its pool label, version or platform is malformed",
            "refused nodes are left out of the node pools; malformed fields are ignored",
        ),
    }

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)

    def add(self, category: str, where: str, why: str, value: object) -> None:
        self.count[category] += 1
        if len(self.examples[category]) < self.KEEP:
            self.examples[category].append(f"{where}: {why} {shown(value)}")

    def replay(self, notes: tuple[tuple[str, str], ...]) -> None:
        """Count refusals noted earlier (``PodRecord.notes``: category and the example already quoted)."""
        for category, example in notes:
            self.count[category] += 1
            if len(self.examples[category]) < self.KEEP:
                self.examples[category].append(example)

    def problems(self) -> list[dict]:
        out = []
        for category, (fact, why, impact) in self.WHAT.items():
            if self.count[category]:
                out.append(refused_problem(fact, self.examples[category], self.count[category], why, impact))
        return out


class _Refused(Exception):
    def __init__(self, why: str, value: object, *, late: bool = False) -> None:
        super().__init__(why)
        self.why, self.value = why, value
        self.late = late  # a pod-spec field checked after nodeName (which is reported first when both fail)


def _as_map(value: object) -> Mapping:
    return value if isinstance(value, _MAP) else {}


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else []


def _where(kind: str, ns: object, name: object) -> str:
    def part(v: object) -> str:
        return v if (isinstance(v, str) and (valid_name(v) or v == "")) else shown(v, 40)

    return f"{kind} {part(ns)}/{part(name)}" if ns else f"{kind} {part(name)}"


def _clean_containers(items: object, key: str) -> list[dict]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise _Refused(f"{key} is not a list:", items)
    out = []
    for c in items:
        if not isinstance(c, _MAP):
            raise _Refused(f"an entry of {key} is not an object:", c)
        name, image = c.get("name"), c.get("image")
        if image is None:
            image = ""
        if not valid_container_name(name):
            raise _Refused("container name is not a DNS-1123 label:", name)
        if not valid_image(image):
            raise _Refused(f"image of container {name} is not an image reference:", image)
        out.append({"name": name, "image": image})
    return out


def _clean_dns_config(dc: object) -> dict:
    if not isinstance(dc, _MAP):
        raise _Refused("dnsConfig is not an object:", dc)
    out: dict = {}
    for key in ("nameservers", "searches"):
        values = dc.get(key)
        if values is None:
            continue
        if not isinstance(values, list):
            raise _Refused(f"dnsConfig.{key} is not a list:", values)
        for v in values:
            if not isinstance(v, str) or not _DNS_TOKEN.fullmatch(v):
                raise _Refused(f"dnsConfig.{key} has an entry that is not a DNS name or address:", v)
        out[key] = list(values)
    options = dc.get("options")
    if options is not None:
        if not isinstance(options, list):
            raise _Refused("dnsConfig.options is not a list:", options)
        out["options"] = []
        for opt in options:
            if not isinstance(opt, _MAP):
                raise _Refused("a dnsConfig option is not an object:", opt)
            name, value = opt.get("name"), opt.get("value")
            if not isinstance(name, str) or not _OPTION_NAME.fullmatch(name):
                raise _Refused("a dnsConfig option name is malformed:", name)
            if value is not None and (not isinstance(value, str) or not _OPTION_VALUE.fullmatch(value)):
                raise _Refused(f"the value of dnsConfig option {name} is malformed:", value)
            out["options"].append({"name": name, **({"value": value} if value is not None else {})})
    return out


def _clean_pod_spec(spec: object, *, node: bool = True) -> dict:
    """A checked copy of a pod spec with only what the inventory reads (``nodeName`` only with ``node``)."""
    if spec is None:
        spec = {}
    if not isinstance(spec, _MAP):
        raise _Refused("the pod spec is not an object:", spec)
    out: dict = {
        "containers": _clean_containers(spec.get("containers"), "containers"),
        "initContainers": _clean_containers(spec.get("initContainers"), "initContainers"),
    }
    policy = spec.get("dnsPolicy")
    if policy is not None and policy != "":
        if policy not in DNS_POLICIES:
            raise _Refused("dnsPolicy is not one of " + ", ".join(DNS_POLICIES) + ":", policy)
        out["dnsPolicy"] = policy
    host = spec.get("hostNetwork")
    if host is not None:
        if not isinstance(host, bool):
            raise _Refused("hostNetwork is not a boolean:", host)
        out["hostNetwork"] = host
    if spec.get("dnsConfig") is not None:
        out["dnsConfig"] = _clean_dns_config(spec.get("dnsConfig"))
    for key in ("nodeName", "serviceAccountName", "serviceAccount") if node else _AFTER_NODE:
        value = spec.get(key)
        if value is None or value == "":
            continue
        if not valid_name(value):
            raise _Refused(f"{key} is not a DNS-1123 subdomain:", value, late=key != "nodeName")
        out[key] = value
    secrets = spec.get("imagePullSecrets")
    if secrets is not None:
        if not isinstance(secrets, list):
            raise _Refused("imagePullSecrets is not a list:", secrets, late=True)
        out["imagePullSecrets"] = []
        for ref in secrets:
            name = ref.get("name") if isinstance(ref, _MAP) else ref
            if name is None or name == "":
                continue
            if not valid_name(name):
                raise _Refused("an imagePullSecrets name is not a DNS-1123 subdomain:", name, late=True)
            out["imagePullSecrets"].append({"name": name})
    return out


_AFTER_NODE = ("serviceAccountName", "serviceAccount")


def _clean_object(obj: object, kind: str, refusals: _Refusals) -> dict | None:
    """A checked copy of one listed controller with only what the inventory reads; None when refused.
    (Pods: :class:`Intake`.)"""
    if not isinstance(obj, _MAP):
        refusals.add("objects", f"a {kind}", "not an object:", obj)
        return None
    meta = _as_map(obj.get("metadata"))
    name, ns = meta.get("name"), meta.get("namespace")
    if ns is None:
        ns = ""
    where = _where(kind, ns, name)
    try:
        if not valid_name(name):
            raise _Refused("name is not a DNS-1123 subdomain:", name)
        if ns != "" and not valid_namespace(ns):
            raise _Refused("namespace is not a DNS-1123 label:", ns)
        spec = _clean_pod_spec(_get(obj, *POD_SPEC_PATH[kind]))
    except _Refused as exc:
        refusals.add("objects", where, exc.why, exc.value)
        return None
    owners: list[dict] = []
    refs = meta.get("ownerReferences")
    if refs is not None and not isinstance(refs, list):
        refusals.add("owners", where, "ownerReferences is not a list:", refs)
        refs = None
    for ref in refs or ():
        if not isinstance(ref, _MAP):
            refusals.add("owners", where, "an owner reference is not an object:", ref)
            owners = []
            break
        rkind, rname = ref.get("kind"), ref.get("name")
        if not valid_kind(rkind):
            refusals.add("owners", where, "owner kind is not an identifier:", rkind)
            owners = []
            break
        if not valid_name(rname):
            refusals.add("owners", where, f"name of owner {rkind} is not a DNS-1123 subdomain:", rname)
            owners = []
            break
        owners.append({"kind": rkind, "name": rname, "controller": ref.get("controller") is True})
    labels: dict[str, str] = {}
    for key, value in _as_map(meta.get("labels")).items():
        if valid_label(key, value):
            labels[key] = value
        else:
            refusals.add("dropped", where, "label", f"{key}={value}" if isinstance(value, str) else key)
    uid = meta.get("uid")
    out_meta: dict = {
        "name": name,
        "namespace": ns,
        "uid": uid if isinstance(uid, str) else None,
        "labels": labels,
        "ownerReferences": owners,
    }
    if meta.get("deletionTimestamp"):
        out_meta["deletionTimestamp"] = True
    # Of the annotations, only the exemption pair (dnsaudit.core.exemptions), from the object or its template.
    if kept := kept_annotations(meta, _get(obj, *POD_SPEC_PATH[kind][:-1], "metadata")):
        out_meta["annotations"] = kept
    out: dict = {"metadata": out_meta}
    node = out
    path = POD_SPEC_PATH[kind]
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = spec
    replicas = _get(obj, "spec", "replicas")
    if isinstance(replicas, int) and not isinstance(replicas, bool):
        out["spec"]["replicas"] = replicas
    return out


# --- pods: checked as they stream in -------------------------------------------------------------------------


class PodRecord:
    """A checked pod with only what the inventory reads (:meth:`Intake.pod`): a few hundred bytes where
    its JSON is several kilobytes. ``spec`` is the checked pod spec without ``nodeName`` (``node``), and
    with ``labels`` and ``image_ids`` shared by the pods whose raw ones are equal: read them, never change
    them. ``running``: phase Running and not being deleted; ``stopped``: containers whose status says they
    are not running; ``notes``: what was dropped on the way in, ``(category, quoted example)``."""

    __slots__ = (
        "annotations", "image_ids", "labels", "name", "namespace", "node", "notes", "owner", "running",
        "spec", "stopped",
    )  # fmt: skip

    def __init__(
        self,
        namespace: str,
        name: str,
        owner: tuple[str, str] | None,
        labels: dict[str, str],
        annotations: dict[str, str] | None,
        node: str | None,
        running: bool,
        spec: dict,
        image_ids: tuple[tuple[str, str], ...],
        stopped: tuple[str, ...],
        notes: tuple[tuple[str, str], ...],
    ) -> None:
        self.namespace, self.name, self.owner, self.labels = namespace, name, owner, labels
        self.annotations, self.node, self.running, self.spec = annotations, node, running, spec
        self.image_ids, self.stopped, self.notes = image_ids, stopped, notes


class RefusedPod:
    """A pod :meth:`Intake.pod` refused (not audited); ``notes`` says why, as ``PodRecord.notes``."""

    __slots__ = ("notes",)

    def __init__(self, notes: tuple[tuple[str, str], ...]) -> None:
        self.notes = notes


_NO_LABELS: tuple[dict, tuple] = ({}, ())


class Intake:
    """Checks pods as they stream in from the API, each into a :class:`PodRecord` (or a :class:`RefusedPod`).

    The checks are this module's (names are data; see the module docstring), but a value is checked once
    per scan: the pods of a workload repeat their namespace, owner, node, labels, container names, image
    IDs and pod spec. A valid value is remembered; equal pod specs and label sets are checked once and
    their checked copies shared. At most ``REMEMBER`` entries of each kind are kept (a hostile cluster
    whose every pod differs is checked pod by pod, as before). One per scan or ``build_inventory`` call.
    """

    REMEMBER = 1 << 16

    def __init__(self) -> None:
        self._namespaces: dict[str, str] = {}
        self._names: dict[str, str] = {}  # owner and node names: DNS-1123 subdomains
        self._kinds: dict[str, str] = {}
        self._containers: dict[str, str] = {}  # container names in statuses
        self._image_ids: dict[str, str] = {}
        self._specs: dict[tuple, dict | _Refused] = {}
        self._label_sets: dict[tuple, tuple[dict, tuple]] = {}
        self._ids: dict[tuple, tuple] = {}

    def _checked(self, memo: dict[str, str], value: object, valid: Callable[[object], bool]) -> str | None:
        """``value`` when ``valid`` (the first equal string seen, so that pods share one), else None."""
        if type(value) is str:
            seen = memo.get(value)
            if seen is not None:
                return seen
            if not valid(value):
                return None
            if len(memo) < self.REMEMBER:
                memo[value] = value
            return value
        return value if valid(value) else None  # type: ignore[return-value]

    def _spec(self, raw: object) -> dict:
        """The checked pod spec (without ``nodeName``), shared by the pods whose raw ones are equal."""
        key = _spec_key(raw) if type(raw) is dict else None
        if key is None:
            return _clean_pod_spec(raw, node=False)
        hit = self._specs.get(key)
        if hit is None:
            try:
                hit = _clean_pod_spec(raw, node=False)
            except _Refused as exc:
                hit = exc
            if len(self._specs) < self.REMEMBER:
                self._specs[key] = hit
        if isinstance(hit, _Refused):  # a fresh exception: re-raising one object grows its traceback
            raise _Refused(hit.why, hit.value, late=hit.late)
        return hit

    def _labels(self, raw: object) -> tuple[dict, tuple]:
        """(valid labels, the others as ``shown`` will quote them), shared by equal label sets."""
        if not isinstance(raw, _MAP) or not raw:
            return _NO_LABELS
        key: tuple | None = tuple(raw.items())
        try:
            hit = self._label_sets.get(key)  # type: ignore[arg-type]
        except TypeError:  # a value that is not hashable (a list): checked on its own
            key = hit = None
        if hit is None:
            kept: dict[str, str] = {}
            dropped: list[object] = []
            for k, v in raw.items():
                if valid_label(k, v):
                    kept[k] = v
                else:
                    dropped.append(f"{k}={v}" if isinstance(v, str) else k)
            hit = (kept, tuple(dropped))
            if key is not None and len(self._label_sets) < self.REMEMBER:
                self._label_sets[key] = hit
        return hit

    def pod(self, obj: object) -> PodRecord | RefusedPod:
        """One listed pod, checked: a :class:`PodRecord`, or a :class:`RefusedPod` saying why not."""
        if not isinstance(obj, _MAP):
            return RefusedPod((("objects", f"a Pod: not an object: {shown(obj)}"),))
        meta = obj.get("metadata")
        if not isinstance(meta, _MAP):
            meta = {}
        name, raw_ns = meta.get("name"), meta.get("namespace")
        ns = "" if raw_ns is None else raw_ns

        def where() -> str:
            return _where("Pod", raw_ns if raw_ns is not None else "", name)

        # Each check below looks the value up among those already found valid first (one dict lookup).
        raw_spec = obj.get("spec")
        node = None
        try:
            if not valid_name(name):
                raise _Refused("name is not a DNS-1123 subdomain:", name)
            if ns != "":
                ns = (self._namespaces.get(ns) if type(ns) is str else None) or self._checked(
                    self._namespaces, ns, valid_namespace
                )
                if ns is None:
                    raise _Refused("namespace is not a DNS-1123 label:", raw_ns)
            bad_node = None
            if isinstance(raw_spec, _MAP):
                value = raw_spec.get("nodeName")
                if value is not None and value != "":
                    node = (self._names.get(value) if type(value) is str else None) or self._checked(
                        self._names, value, valid_name
                    )
                    if node is None:
                        bad_node = _Refused("nodeName is not a DNS-1123 subdomain:", value)
            try:
                spec = self._spec(raw_spec)
            except _Refused as exc:  # nodeName is checked before the fields that come after it
                raise bad_node if bad_node is not None and exc.late else exc from None
            if bad_node is not None:
                raise bad_node
        except _Refused as exc:
            return RefusedPod((("objects", f"{where()}: {exc.why} {shown(exc.value)}"),))
        notes: list[tuple[str, str]] = []
        owner = None
        refs = meta.get("ownerReferences")
        if refs is not None and not isinstance(refs, list):
            notes.append(("owners", f"{where()}: ownerReferences is not a list: {shown(refs)}"))
        elif refs:
            first = None
            for ref in refs:
                if not isinstance(ref, _MAP):
                    notes.append(("owners", f"{where()}: an owner reference is not an object: {shown(ref)}"))
                    first = owner = None
                    break
                value = ref.get("kind")
                kind = (self._kinds.get(value) if type(value) is str else None) or self._checked(
                    self._kinds, value, valid_kind
                )
                if kind is None:
                    notes.append(("owners", f"{where()}: owner kind is not an identifier: {shown(value)}"))
                    first = owner = None
                    break
                value = ref.get("name")
                rname = (self._names.get(value) if type(value) is str else None) or self._checked(
                    self._names, value, valid_name
                )
                if rname is None:
                    why = f"name of owner {kind} is not a DNS-1123 subdomain:"
                    notes.append(("owners", f"{where()}: {why} {shown(value)}"))
                    first = owner = None
                    break
                if first is None:
                    first = (kind, rname)
                if owner is None and ref.get("controller") is True:
                    owner = (kind, rname)
            owner = owner or first  # the controller, else the first owner (as ``_owner``)
        labels, dropped = self._labels(meta.get("labels"))
        for value in dropped:
            notes.append(("dropped", f"{where()}: label {shown(value)}"))
        status = obj.get("status")
        if not isinstance(status, _MAP):
            status = {}
        ids: dict[str, str] = {}
        later: list[tuple[str, str]] = []  # containerStatuses' image IDs: they win over init containers'
        stopped: list[str] = []
        containers, image_ids = self._containers, self._image_ids
        for key in ("containerStatuses", "initContainerStatuses"):
            main = key == "containerStatuses"
            for st in _as_list(status.get(key)):
                if not isinstance(st, _MAP):
                    continue
                value = st.get("name")
                cname = (containers.get(value) if type(value) is str else None) or self._checked(
                    containers, value, valid_container_name
                )
                if cname is None:
                    continue  # a status of no container of the spec: nothing reads it
                value = st.get("imageID")
                if value is not None and value != "":
                    iid = (image_ids.get(value) if type(value) is str else None) or self._checked(
                        image_ids, value, _valid_image_id
                    )
                    if iid is None:
                        notes.append(("dropped", f"{where()}: imageID {shown(value)}"))
                    elif main:
                        later.append((cname, iid))
                    else:
                        ids[cname] = iid
                if main:
                    if "running" in st:
                        up = st["running"] is True
                    else:
                        state = st.get("state")
                        up = "running" in state if isinstance(state, _MAP) else True
                    if up:
                        if cname in stopped:  # the last status of a name counts
                            stopped.remove(cname)
                    elif cname not in stopped:
                        stopped.append(cname)
        if later:
            ids.update(later)
        image_ids = tuple(ids.items())
        if image_ids and len(self._ids) < self.REMEMBER:
            image_ids = self._ids.setdefault(image_ids, image_ids)
        return PodRecord(  # positional: 50,000 calls
            ns,
            name,
            owner,
            labels,
            (kept_annotations(meta) or None) if meta.get("annotations") else None,
            node,
            status.get("phase") == "Running" and not meta.get("deletionTimestamp"),
            spec,
            image_ids,
            tuple(stopped) if stopped else (),
            tuple(notes) if notes else (),
        )


def _valid_image_id(value: object) -> bool:
    return isinstance(value, str) and _IMAGE_ID.fullmatch(value) is not None


def _spec_key(spec: dict) -> tuple | None:
    """What ``_clean_pod_spec`` reads of a pod spec (``nodeName`` aside) as a hashable key of exact JSON
    types, so that equal keys give equal checked specs; None when anything has another shape (that spec
    is checked on its own)."""
    key: list = []
    for field_name in ("containers", "initContainers"):
        items = spec.get(field_name)
        if items is None:
            key.append(None)
            continue
        if type(items) is not list:
            return None
        row: list = []
        for c in items:
            if type(c) is not dict:
                return None
            name, image = c.get("name"), c.get("image")
            if type(name) is not str or not (image is None or type(image) is str):
                return None
            row.append(name)
            row.append(image)
        key.append(tuple(row))
    for name in ("dnsPolicy", "serviceAccountName", "serviceAccount"):
        value = spec.get(name)
        if value is not None and type(value) is not str:
            return None
        key.append(value)
    host = spec.get("hostNetwork")
    if host is not None and type(host) is not bool:
        return None
    key.append(host)
    secrets = spec.get("imagePullSecrets")
    if secrets is not None:
        if type(secrets) is not list:
            return None
        names = []
        for ref in secrets:
            name = ref.get("name") if type(ref) is dict else ref
            if name is not None and type(name) is not str:
                return None
            names.append(name)
        secrets = tuple(names)
    key.append(secrets)
    dns_config = spec.get("dnsConfig")
    if dns_config is not None:
        dns_config = _dns_config_key(dns_config)
        if dns_config is None:
            return None
    key.append(dns_config)
    return tuple(key)


def _dns_config_key(dc: object) -> tuple | None:
    """``_spec_key`` of a dnsConfig: what ``_clean_dns_config`` reads; None for any other shape."""
    if type(dc) is not dict:
        return None
    key: list = ["dnsConfig"]
    for name in ("nameservers", "searches"):
        values = dc.get(name)
        if values is not None and (type(values) is not list or any(type(v) is not str for v in values)):
            return None
        key.append(None if values is None else tuple(values))
    options = dc.get("options")
    if options is None:
        key.append(None)
    else:
        if type(options) is not list:
            return None
        row = []
        for opt in options:
            if type(opt) is not dict:
                return None
            name, value = opt.get("name"), opt.get("value")
            if type(name) is not str or not (value is None or type(value) is str):
                return None
            row.append((name, value))
        key.append(tuple(row))
    return tuple(key)


def slim_pod(pod: Mapping) -> dict:
    """A pod with only what the inventory and the audit read: identity, owners, labels, node, the pod-level
    DNS fields, container names and images, phase and imageIDs (about a fifth of a real pod's JSON).

    Scans keep every pod of a cluster in memory until the inventory is built; at 50,000 pods this is
    the difference between ~900 MB and ~350 MB.
    """
    pod = _as_map(pod)
    meta = _as_map(pod.get("metadata"))
    spec = _as_map(pod.get("spec"))
    status = _as_map(pod.get("status"))

    def containers(items) -> list[dict] | object:
        if not isinstance(items, list):
            return items  # refused or ignored by build_inventory's checks
        return [
            {"name": c.get("name", ""), "image": c.get("image", "")} if isinstance(c, _MAP) else c
            for c in items
        ]

    refs = meta.get("ownerReferences")

    keep = ("nodeName", "dnsPolicy", "dnsConfig", "hostNetwork", "imagePullSecrets", "serviceAccountName")
    slim_meta = {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "labels": meta.get("labels") or {},
        "ownerReferences": [
            {"kind": r.get("kind"), "name": r.get("name"), "controller": r.get("controller")}
            if isinstance(r, _MAP)
            else r
            for r in refs
        ]
        if isinstance(refs, list)
        else refs,
    }
    if meta.get("deletionTimestamp"):
        slim_meta["deletionTimestamp"] = meta["deletionTimestamp"]
    if kept := kept_annotations(meta):
        slim_meta["annotations"] = kept
    return {
        "metadata": slim_meta,
        "spec": {
            **{k: spec[k] for k in keep if k in spec},
            "containers": containers(spec.get("containers")),
            "initContainers": containers(spec.get("initContainers")),
        },
        "status": {
            "phase": status.get("phase"),
            **{
                k: [
                    {
                        "name": c.get("name", ""),
                        "imageID": c.get("imageID", ""),
                        **(
                            {"running": "running" in c["state"]}
                            if isinstance(c.get("state"), Mapping)
                            else {}
                        ),
                    }
                    for c in _as_list(status.get(k))
                    if isinstance(c, _MAP)
                ]
                for k in ("containerStatuses", "initContainerStatuses")
            },
        },
    }


def group_node_pools(nodes: Iterable[dict], problems: list[dict] | None = None) -> dict[str, PoolNodes]:
    """Group nodes that share what matters for DNS: pool label, kubelet version and architecture.

    A node whose name is not a DNS-1123 subdomain is left out; a malformed pool label, version or
    platform is ignored. Each is appended to ``problems`` (when given) as the inventory reports refusals.
    """
    pools: dict[tuple, PoolNodes] = {}
    refusals = _Refusals()

    def word(value: object, pattern: re.Pattern, where: str, what: str) -> str:
        if value is None or value == "":
            return ""
        if isinstance(value, str) and pattern.fullmatch(value):
            return value
        refusals.add("nodes", where, f"{what} is malformed:", value)
        return ""

    for node in nodes:
        name = _get(node, "metadata", "name")
        if not valid_name(name):
            refusals.add("nodes", "a node", "name is not a DNS-1123 subdomain:", name)
            continue
        labels = _as_map(_get(node, "metadata", "labels"))
        info = _as_map(_get(node, "status", "nodeInfo"))
        version = word(info.get("kubeletVersion"), _VERSION, f"node {name}", "kubeletVersion")
        arch = word(
            info.get("architecture") or labels.get("kubernetes.io/arch"),
            _PLATFORM_WORD,
            f"node {name}",
            "architecture",
        )
        os_name = (
            word(
                info.get("operatingSystem") or labels.get("kubernetes.io/os"),
                _PLATFORM_WORD,
                f"node {name}",
                "os",
            )
            or "linux"
        )
        label = next(
            (
                labels[k]
                for k in POOL_LABELS
                if labels.get(k) and word(labels[k], _LABEL_NAME, f"node {name}", f"label {k}")
            ),
            "",
        )
        key = (label, version, arch, os_name)
        if key not in pools:
            base = label or "nodes"
            pools[key] = PoolNodes(name=base, kubelet_version=version, architecture=arch, os=os_name)
        pools[key].nodes.append(node)
    # Disambiguate names when one label spans versions or architectures.
    counts = Counter(p.name for p in pools.values())
    result: dict[str, PoolNodes] = {}
    for pool in pools.values():
        if counts[pool.name] > 1:
            pool.name = f"{pool.name}-{pool.kubelet_version or 'unknown'}-{pool.architecture or 'any'}"
        result[pool.name] = pool
    if problems is not None:
        problems.extend(refusals.problems())
    return result


def node_pool_index(pools: Mapping[str, PoolNodes]) -> dict[str, str]:
    """Node name -> pool name."""
    return {_get(n, "metadata", "name"): name for name, pool in pools.items() for n in pool.nodes}


@dataclass
class Inventory:
    workloads: list[Workload]
    pods_seen: int
    # (image ref, image_id or None, platform) for every container of every workload and pod.
    images: set[tuple[str, str | None, str]]
    pull_secrets: dict[str, set[str]]  # namespace -> secret names referenced by pods/templates
    #: namespace -> service accounts the pods/templates run as (their imagePullSecrets count too).
    service_accounts: dict[str, set[str]] = field(default_factory=dict)
    #: (namespace, kind, name) of each workload -> names of its Running pods (exec verification).
    running_pods: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    #: Running pods whose /etc/resolv.conf can show their node's file (``dnsaudit.core.nodefiles``): at most
    #: ``CANDIDATES_PER_NODE`` per node and category, sorted by node, category, namespace and name.
    node_file_candidates: list[NodeFileCandidate] = field(default_factory=list)
    #: What was refused on the way in (names, owner references...), as problems of the scan.
    problems: list[dict] = field(default_factory=list)


#: Node-file candidates kept per (node, category): enough to try another pod when one fails, and bounded so
#: that a 50,000-pod cluster keeps a few per node, not one per pod.
CANDIDATES_PER_NODE = 3


class _CandidateKeeper:
    """Keeps the first ``per_key`` node-file candidates by (namespace, name) for each (node, category).

    A candidate is a Running pod, not being deleted, scheduled on a node, whose file can show the node's
    (``candidate_category``); its containers known not to be running are left out (a 400 on exec). What a
    pod spec decides is worked out once per (shared) spec; a candidate is only built when it is kept.
    """

    def __init__(self, per_key: int = CANDIDATES_PER_NODE) -> None:
        self.per_key = per_key
        self.buckets: dict[tuple[str, str], list[tuple[tuple[str, str], NodeFileCandidate]]] = {}
        self._of_spec: dict[int, tuple] = {}  # id(spec) -> (category, policy, host, dnsConfig, names, images)

    def _spec_facts(self, spec: dict) -> tuple:
        facts = self._of_spec.get(id(spec))
        if facts is None:
            dns_policy = spec.get("dnsPolicy") or "ClusterFirst"
            host_network = bool(spec.get("hostNetwork"))
            dns_config = spec.get("dnsConfig")
            dns_config = dns_config if isinstance(dns_config, _MAP) else None
            category = candidate_category(
                dns_policy=dns_policy, host_network=host_network, dns_config=dns_config
            )
            containers = [c for c in spec.get("containers") or () if c.get("name")]
            facts = (
                category,
                dns_policy,
                host_network,
                dns_config,
                tuple(c["name"] for c in containers),
                tuple(c.get("image", "") for c in containers),
            )
            self._of_spec[id(spec)] = facts  # specs outlive the keeper (the records hold them)
        return facts

    def offer(self, pod: PodRecord) -> None:
        if not pod.running or not pod.node:
            return
        category, dns_policy, host_network, dns_config, names, images = self._spec_facts(pod.spec)
        if category is None:
            return
        key = (pod.namespace, pod.name)
        bucket = self.buckets.get((pod.node, category))
        if bucket is not None and len(bucket) >= self.per_key and key >= bucket[-1][0]:
            return
        if pod.stopped:
            pairs = [(n, i) for n, i in zip(names, images, strict=True) if n not in pod.stopped]
            names, images = tuple(n for n, _ in pairs), tuple(i for _, i in pairs)
        if not names:
            return
        cand = NodeFileCandidate(
            namespace=pod.namespace,
            pod=pod.name,
            node=pod.node,
            dns_policy=dns_policy,
            host_network=host_network,
            has_dns_config=dns_config is not None,
            containers=names,
            images=images,
            dns_config=dns_config,
        )
        if bucket is None:
            bucket = self.buckets[(pod.node, category)] = []
        bucket.append((key, cand))
        bucket.sort(key=lambda kc: kc[0])
        del bucket[self.per_key :]

    def result(self) -> list[NodeFileCandidate]:
        rank = {c: i for i, c in enumerate(CATEGORIES)}
        out: list[NodeFileCandidate] = []
        for node, category in sorted(self.buckets, key=lambda k: (k[0], rank[k[1]])):
            out += [c for _, c in self.buckets[(node, category)]]
        return out


def _containers(pod_spec: Mapping, statuses: Mapping[str, str] | None = None) -> tuple[Container, ...]:
    out = []
    for key in ("initContainers", "containers"):
        for c in pod_spec.get(key) or ():
            name = c.get("name", "")
            out.append(Container(name=name, image=c.get("image", ""), image_id=(statuses or {}).get(name)))
    return tuple(out)


def _pod_spec(obj: Mapping, kind: str) -> Mapping:
    return _get(obj, *POD_SPEC_PATH[kind], default={}) or {}


def _owner(obj: Mapping | PodRecord) -> tuple[str, str] | None:
    """(kind, name) of the controller reference of a checked object, else of its first one."""
    if type(obj) is PodRecord:
        return obj.owner
    refs = _get(obj, "metadata", "ownerReferences", default=()) or ()
    for ref in refs:
        if ref.get("controller"):
            return ref.get("kind", ""), ref.get("name", "")
    return (refs[0].get("kind", ""), refs[0].get("name", "")) if refs else None


def build_inventory(
    objects: Mapping[str, list],
    node_pools: Mapping[str, str] | None = None,
    node_platform: Mapping[str, str] | None = None,
    default_pool: str | None = None,
    default_platform: str = "linux/amd64",
) -> Inventory:
    """Build the top-owner workloads from raw lists keyed by resource plural.

    The pods may be listed raw, or already checked as they streamed in (:meth:`Intake.pod`: records and
    refusals, which are counted here in listing order, as a raw pod's would be).
    ``node_pools`` maps node name to pool name; ``node_platform`` maps node name to ``os/arch``.
    A workload's pool is where most of its pods run; with no pod it is ``default_pool``.
    """
    node_pools = node_pools or {}
    node_platform = node_platform or {}
    refusals = _Refusals()
    by_key: dict[tuple[str, str, str], dict] = {}
    for resource, kind in RESOURCE_KIND.items():
        if kind == "Pod":
            continue
        listed = objects.get(resource) or ()
        for obj in listed if isinstance(listed, list) else ():
            checked = _clean_object(obj, kind, refusals)
            if checked is not None:
                by_key[(kind, checked["metadata"]["namespace"], checked["metadata"]["name"])] = checked
    listed_pods = objects.get("pods")
    listed_pods = listed_pods if isinstance(listed_pods, list) else []
    intake: Intake | None = None
    records: list[PodRecord] = []
    for item in listed_pods:
        if type(item) is not PodRecord and type(item) is not RefusedPod:
            intake = intake or Intake()
            item = intake.pod(item)
        if item.notes:
            refusals.replay(item.notes)
        if type(item) is PodRecord:
            records.append(item)
    pod_index: dict[tuple[str, str], PodRecord] | None = None  # only when an owner reference names a Pod

    def listed(kind: str, ns: str, name: str) -> dict | PodRecord | None:
        nonlocal pod_index
        if kind != "Pod":
            return by_key.get((kind, ns, name))
        if pod_index is None:
            pod_index = {(p.namespace, p.name): p for p in records}
        return pod_index.get((ns, name))

    def top_owner(kind: str, ns: str, name: str, obj) -> tuple[str, str, dict | PodRecord | None]:
        """Follow controller references up through kinds we know; stop at the first unknown owner."""
        seen = 0
        while seen < 5:
            seen += 1
            ref = _owner(obj)
            if not ref:
                return kind, name, obj
            owner_kind, owner_name = ref
            owner = listed(owner_kind, ns, owner_name)
            if owner is None:
                # A known kind not listed (deleted, or not readable): report on it, template from its pods.
                # An owner we do not model (an operator's custom resource): the user edits that object.
                return owner_kind, owner_name, None
            kind, name, obj = owner_kind, owner_name, owner
        return kind, name, obj

    pods_by_owner: dict[tuple[str, str, str], list[PodRecord]] = defaultdict(list)
    top_of_owner: dict[tuple[str, tuple[str, str]], tuple[str, str]] = {}  # the pods of one owner share it
    keeper = _CandidateKeeper()
    for pod in records:
        keeper.offer(pod)
        ns = pod.namespace
        if pod.owner is None:
            pods_by_owner[("Pod", ns, pod.name)].append(pod)
            continue
        top = top_of_owner.get((ns, pod.owner))
        if top is None:
            tkind, tname, _ = top_owner("Pod", ns, pod.name, pod)
            top = top_of_owner[(ns, pod.owner)] = (tkind, tname)
        pods_by_owner[(top[0], ns, top[1])].append(pod)

    # Which objects are top owners: those not owned by another object we know of.
    tops: dict[tuple[str, str, str], dict | PodRecord | None] = {}
    for (kind, ns, name), obj in by_key.items():
        tkind, tname, tobj = top_owner(kind, ns, name, obj)
        if (tkind, ns, tname) not in tops or tobj is not None:
            tops[(tkind, ns, tname)] = tobj
    for key in pods_by_owner:
        if key not in tops:
            tops[key] = None

    images: set[tuple[str, str | None, str]] = set()
    pull_secrets: dict[str, set[str]] = defaultdict(set)
    service_accounts: dict[str, set[str]] = defaultdict(set)
    workloads: list[Workload] = []
    running_pods: dict[tuple[str, str, str], list[str]] = {}
    image_of: dict[int, dict[str, str]] = {}  # id(pod spec) -> container name -> image (first wins)
    for (kind, ns, name), obj in sorted(tops.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        pods = pods_by_owner.get((kind, ns, name), [])
        running = sorted(p.name for p in pods if p.running)
        if running:
            running_pods[(ns, kind, name)] = running
        template = obj if obj is not None else (pods[0] if pods else None)
        if template is None:
            continue
        if type(template) is PodRecord:
            # A bare pod, or an owner unknown to us (custom controller): the pod's spec is the template.
            spec = template.spec
            labels = template.labels
            annotations = dict(template.annotations or {})
            dns_config = copy.deepcopy(spec.get("dnsConfig"))  # the spec is shared by pods: never lent
            replicas = None
        else:
            spec = _pod_spec(template, kind)
            labels = _get(template, "metadata", "labels", default={}) or {}
            annotations = _get(template, "metadata", "annotations", default={})
            dns_config = spec.get("dnsConfig")
            replicas = _get(template, "spec", "replicas")
        if obj is not None:
            path = POD_SPEC_PATH[kind]
            api_version = API_VERSION[kind]
        else:
            path = ("spec",) if kind == "Pod" else POD_SPEC_PATH.get(kind, ("spec", "template", "spec"))
            api_version = API_VERSION.get(kind, "")
        statuses: dict[str, str] = {}
        pool_votes: Counter[str] = Counter()
        platform = default_platform
        seen: set[tuple[int, tuple, str]] = set()  # pods of one template on one platform add the same images
        for pod in pods:
            node = pod.node
            if node:
                if node in node_pools:
                    pool_votes[node_pools[node]] += 1
                if node in node_platform:
                    platform = node_platform[node]
            if not pod.image_ids:
                continue
            where = (id(pod.spec), pod.image_ids, node_platform.get(node, default_platform))
            if where in seen:
                continue
            seen.add(where)
            names = image_of.get(id(pod.spec))
            if names is None:
                names = image_of[id(pod.spec)] = {}
                for k in ("initContainers", "containers"):
                    for c in pod.spec.get(k) or ():
                        names.setdefault(c["name"], c["image"])
            for cname, iid in pod.image_ids:
                statuses.setdefault(cname, iid)
                images.add((names.get(cname, ""), iid, where[2]))
        containers = _containers(spec, statuses)
        for c in containers:
            if c.image_id is None:
                images.add((c.image, None, platform))
        for secret in spec.get("imagePullSecrets") or ():
            if secret.get("name"):
                pull_secrets[ns].add(secret["name"])
        service_accounts[ns].add(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        workloads.append(
            Workload(
                namespace=ns,
                kind=kind,
                name=name,
                dns_policy=spec.get("dnsPolicy") or "ClusterFirst",
                host_network=bool(spec.get("hostNetwork")),
                dns_config=dns_config,
                containers=containers,
                labels=dict(labels),
                api_version=api_version,
                pod_spec_path=path,
                node_pool=pool_votes.most_common(1)[0][0] if pool_votes else default_pool,
                service_account=spec.get("serviceAccountName") or spec.get("serviceAccount") or "default",
                pull_secrets=tuple(
                    sorted({str(x["name"]) for x in spec.get("imagePullSecrets") or () if x.get("name")})
                ),
                replicas=replicas if isinstance(replicas, int) else None,
                annotations=annotations,
            )
        )
    pods_seen = len(records)
    pods_read = len(listed_pods)  # refused ones included
    return Inventory(
        workloads=workloads,
        pods_seen=max(pods_seen, pods_read),
        images=images,
        pull_secrets=dict(pull_secrets),
        service_accounts=dict(service_accounts),
        running_pods=running_pods,
        node_file_candidates=keeper.result(),
        problems=refusals.problems(),
    )
