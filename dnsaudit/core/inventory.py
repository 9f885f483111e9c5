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

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

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
    return (
        isinstance(value, str)
        and 0 < len(value) <= 253
        and all(_LABEL.fullmatch(part) for part in value.split("."))
    )


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

    def problems(self) -> list[dict]:
        out = []
        for category, (fact, why, impact) in self.WHAT.items():
            if self.count[category]:
                out.append(refused_problem(fact, self.examples[category], self.count[category], why, impact))
        return out


class _Refused(Exception):
    def __init__(self, why: str, value: object) -> None:
        super().__init__(why)
        self.why, self.value = why, value


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


def _clean_pod_spec(spec: object) -> dict:
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
    for key in ("nodeName", "serviceAccountName", "serviceAccount"):
        value = spec.get(key)
        if value is None or value == "":
            continue
        if not valid_name(value):
            raise _Refused(f"{key} is not a DNS-1123 subdomain:", value)
        out[key] = value
    secrets = spec.get("imagePullSecrets")
    if secrets is not None:
        if not isinstance(secrets, list):
            raise _Refused("imagePullSecrets is not a list:", secrets)
        out["imagePullSecrets"] = []
        for ref in secrets:
            name = ref.get("name") if isinstance(ref, _MAP) else ref
            if name is None or name == "":
                continue
            if not valid_name(name):
                raise _Refused("an imagePullSecrets name is not a DNS-1123 subdomain:", name)
            out["imagePullSecrets"].append({"name": name})
    return out


def _clean_object(obj: object, kind: str, refusals: _Refusals) -> dict | None:
    """A checked copy of one listed object with only what the inventory reads; None when refused."""
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
    out: dict = {"metadata": out_meta}
    node = out
    path = POD_SPEC_PATH[kind]
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = spec
    if kind != "Pod":
        replicas = _get(obj, "spec", "replicas")
        if isinstance(replicas, int) and not isinstance(replicas, bool):
            out["spec"]["replicas"] = replicas
        return out
    status = _as_map(obj.get("status"))
    phase = status.get("phase")
    out["status"] = {"phase": phase if isinstance(phase, str) else None}
    for key in ("containerStatuses", "initContainerStatuses"):
        statuses = []
        for st in _as_list(status.get(key)):
            if not isinstance(st, _MAP) or not valid_container_name(st.get("name")):
                continue  # a status of no container of the spec: nothing reads it
            entry: dict = {"name": st["name"]}
            image_id = st.get("imageID")
            if isinstance(image_id, str) and _IMAGE_ID.fullmatch(image_id):
                entry["imageID"] = image_id
            elif image_id not in (None, ""):
                refusals.add("dropped", where, "imageID", image_id)
            if "running" in st:
                entry["running"] = st["running"] is True
            elif isinstance(st.get("state"), Mapping):
                entry["running"] = "running" in st["state"]
            statuses.append(entry)
        out["status"][key] = statuses
    return out


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


def _container_running(status: Mapping) -> bool:
    """From a slim status (``running``) or a raw one (``state.running``); True when not said."""
    if "running" in status:
        return bool(status["running"])
    state = status.get("state")
    return "running" in state if isinstance(state, _MAP) else True


def node_file_candidate(pod: Mapping) -> tuple[str, NodeFileCandidate] | None:
    """(category, candidate) for a Running pod, not being deleted, scheduled on a node, whose file can show
    the node's; None otherwise. Containers known not to be running are left out (a 400 on exec)."""
    if _get(pod, "status", "phase") != "Running" or _get(pod, "metadata", "deletionTimestamp"):
        return None
    spec = pod.get("spec") or {}
    node = spec.get("nodeName")
    if not node or not isinstance(node, str):
        return None
    dns_policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = bool(spec.get("hostNetwork"))
    dns_config = spec.get("dnsConfig")
    dns_config = dns_config if isinstance(dns_config, _MAP) else None
    category = candidate_category(dns_policy=dns_policy, host_network=host_network, dns_config=dns_config)
    if category is None:
        return None
    running = {
        st.get("name"): _container_running(st)
        for st in _get(pod, "status", "containerStatuses", default=()) or ()
        if isinstance(st, _MAP)
    }
    pairs = [
        (c.get("name", ""), c.get("image", ""))
        for c in spec.get("containers") or ()
        if c.get("name") and running.get(c.get("name"), True)
    ]
    if not pairs:
        return None
    return category, NodeFileCandidate(
        namespace=_get(pod, "metadata", "namespace", default="") or "",
        pod=_get(pod, "metadata", "name", default="") or "",
        node=node,
        dns_policy=dns_policy,
        host_network=host_network,
        has_dns_config=dns_config is not None,
        containers=tuple(n for n, _ in pairs),
        images=tuple(i for _, i in pairs),
        dns_config=dns_config,
    )


class _CandidateKeeper:
    """Keeps the first ``per_key`` candidates by (namespace, name) for each (node, category)."""

    def __init__(self, per_key: int = CANDIDATES_PER_NODE) -> None:
        self.per_key = per_key
        self.buckets: dict[tuple[str, str], list[tuple[tuple[str, str], NodeFileCandidate]]] = {}

    def offer(self, pod: Mapping) -> None:
        found = node_file_candidate(pod)
        if found is None:
            return
        category, cand = found
        bucket = self.buckets.setdefault((cand.node, category), [])
        key = (cand.namespace, cand.pod)
        if len(bucket) >= self.per_key and key >= bucket[-1][0]:
            return
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


def _image_ids(pod: Mapping) -> dict[str, str]:
    ids: dict[str, str] = {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for st in _get(pod, "status", key, default=()) or ():
            if st.get("imageID"):
                ids[st.get("name", "")] = st["imageID"]
    return ids


def _controller(obj: Mapping) -> Mapping | None:
    refs = _get(obj, "metadata", "ownerReferences", default=()) or ()
    for ref in refs:
        if ref.get("controller"):
            return ref
    return refs[0] if refs else None


def build_inventory(
    objects: Mapping[str, list[dict]],
    node_pools: Mapping[str, str] | None = None,
    node_platform: Mapping[str, str] | None = None,
    default_pool: str | None = None,
    default_platform: str = "linux/amd64",
) -> Inventory:
    """Build the top-owner workloads from raw lists keyed by resource plural.

    ``node_pools`` maps node name to pool name; ``node_platform`` maps node name to ``os/arch``.
    A workload's pool is where most of its pods run; with no pod it is ``default_pool``.
    """
    node_pools = node_pools or {}
    node_platform = node_platform or {}
    refusals = _Refusals()
    listed_pods = objects.get("pods")
    pods_read = len(listed_pods) if isinstance(listed_pods, list) else 0  # refused ones included
    checked: dict[str, list[dict]] = {}
    for resource, kind in RESOURCE_KIND.items():
        listed = objects.get(resource) or ()
        clean = (_clean_object(obj, kind, refusals) for obj in (listed if isinstance(listed, list) else ()))
        checked[resource] = [obj for obj in clean if obj is not None]
    objects = checked
    by_key: dict[tuple[str, str, str], dict] = {}
    for resource, kind in RESOURCE_KIND.items():
        for obj in objects[resource]:
            by_key[(kind, obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj

    def top_owner(kind: str, ns: str, name: str, obj: Mapping) -> tuple[str, str, Mapping | None]:
        """Follow controller references up through kinds we know; stop at the first unknown owner."""
        seen = 0
        while seen < 5:
            seen += 1
            ref = _controller(obj)
            if not ref:
                return kind, name, obj
            owner_kind, owner_name = ref.get("kind", ""), ref.get("name", "")
            owner = by_key.get((owner_kind, ns, owner_name))
            if owner is None:
                if owner_kind in POD_SPEC_PATH:
                    # Known kind but not listed (deleted, or not readable): report on it, template from us.
                    return owner_kind, owner_name, None
                # An owner we do not model (an operator's custom resource): the user edits that object.
                return owner_kind, owner_name, None
            kind, name, obj = owner_kind, owner_name, owner
        return kind, name, obj

    pods_by_owner: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    pods_seen = 0
    keeper = _CandidateKeeper()
    for pod in objects.get("pods", ()):
        pods_seen += 1
        keeper.offer(pod)
        ns = _get(pod, "metadata", "namespace", default="")
        kind, name, _ = top_owner("Pod", ns, _get(pod, "metadata", "name"), pod)
        pods_by_owner[(kind, ns, name)].append(pod)

    # Which objects are top owners: those not owned by another object we know of.
    tops: dict[tuple[str, str, str], tuple[Mapping | None, str]] = {}
    for (kind, ns, name), obj in by_key.items():
        if kind == "Pod":
            continue
        tkind, tname, tobj = top_owner(kind, ns, name, obj)
        if (tkind, ns, tname) not in tops or tobj is not None:
            tops[(tkind, ns, tname)] = (tobj, tkind)
    for kind, ns, name in pods_by_owner:
        if (kind, ns, name) not in tops:
            tops[(kind, ns, name)] = (None, kind)

    images: set[tuple[str, str | None, str]] = set()
    pull_secrets: dict[str, set[str]] = defaultdict(set)
    service_accounts: dict[str, set[str]] = defaultdict(set)
    workloads: list[Workload] = []
    running_pods: dict[tuple[str, str, str], list[str]] = {}
    for (kind, ns, name), (obj, _) in sorted(tops.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        pods = pods_by_owner.get((kind, ns, name), [])
        running = sorted(
            _get(p, "metadata", "name")
            for p in pods
            if _get(p, "status", "phase") == "Running" and not _get(p, "metadata", "deletionTimestamp")
        )
        if running:
            running_pods[(ns, kind, name)] = running
        if obj is not None and kind in POD_SPEC_PATH:
            spec = _pod_spec(obj, kind)
            labels = _get(obj, "metadata", "labels", default={}) or {}
            path = POD_SPEC_PATH[kind]
            api_version = API_VERSION[kind]
        elif pods:
            # Owner unknown to us (custom controller) or bare pod: the pod's spec is the template.
            spec = pods[0].get("spec") or {}
            labels = _get(pods[0], "metadata", "labels", default={}) or {}
            path = ("spec",) if kind == "Pod" else POD_SPEC_PATH.get(kind, ("spec", "template", "spec"))
            api_version = API_VERSION.get(kind, "")
        else:
            continue
        statuses: dict[str, str] = {}
        pool_votes: Counter[str] = Counter()
        platform = default_platform
        for pod in pods:
            node = _get(pod, "spec", "nodeName")
            if node and node in node_pools:
                pool_votes[node_pools[node]] += 1
            if node and node in node_platform:
                platform = node_platform[node]
            for cname, iid in _image_ids(pod).items():
                statuses.setdefault(cname, iid)
                image = next(
                    (
                        c.get("image", "")
                        for k in ("initContainers", "containers")
                        for c in (_get(pod, "spec", k, default=()) or ())
                        if c.get("name") == cname
                    ),
                    "",
                )
                images.add((image, iid, node_platform.get(node, default_platform)))
        containers = _containers(spec, statuses)
        for c in containers:
            if c.image_id is None:
                images.add((c.image, None, platform))
        for secret in spec.get("imagePullSecrets") or ():
            if secret.get("name"):
                pull_secrets[ns].add(secret["name"])
        service_accounts[ns].add(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        replicas = _get(obj, "spec", "replicas") if obj is not None else None
        workloads.append(
            Workload(
                namespace=ns,
                kind=kind,
                name=name,
                dns_policy=spec.get("dnsPolicy") or "ClusterFirst",
                host_network=bool(spec.get("hostNetwork")),
                dns_config=spec.get("dnsConfig"),
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
            )
        )
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
