"""Turn raw API objects into the workloads a user edits, and nodes into node pools.

Input is the raw JSON the Kubernetes API returns (dicts, as listed; list items carry no ``kind``).
Output is :class:`~dnsaudit.core.model.Workload` values, one per *top owner*: a Pod owned by a
ReplicaSet owned by a Deployment is reported as the Deployment; a Job owned by a CronJob as the
CronJob. Controllers with no running pod are still audited from their template.
"""

from __future__ import annotations

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


def _get(obj: Mapping, *path: str, default=None):
    cur = obj
    for key in path:
        if not isinstance(cur, Mapping):
            return default
        cur = cur.get(key)
        if cur is None:
            return default
    return cur


def slim_pod(pod: Mapping) -> dict:
    """A pod with only what the inventory and the audit read: identity, owners, labels, node, the pod-level
    DNS fields, container names and images, phase and imageIDs (about a fifth of a real pod's JSON).

    Scans keep every pod of a cluster in memory until the inventory is built; at 50,000 pods this is
    the difference between ~900 MB and ~350 MB.
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}

    def containers(items) -> list[dict]:
        return [{"name": c.get("name", ""), "image": c.get("image", "")} for c in items or ()]

    keep = ("nodeName", "dnsPolicy", "dnsConfig", "hostNetwork", "imagePullSecrets", "serviceAccountName")
    slim_meta = {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "labels": meta.get("labels") or {},
        "ownerReferences": [
            {"kind": r.get("kind"), "name": r.get("name"), "controller": r.get("controller")}
            for r in meta.get("ownerReferences") or ()
        ],
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
                    for c in status.get(k) or ()
                ]
                for k in ("containerStatuses", "initContainerStatuses")
            },
        },
    }


def group_node_pools(nodes: Iterable[dict]) -> dict[str, PoolNodes]:
    """Group nodes that share what matters for DNS: pool label, kubelet version and architecture."""
    pools: dict[tuple, PoolNodes] = {}
    for node in nodes:
        labels = _get(node, "metadata", "labels", default={}) or {}
        info = _get(node, "status", "nodeInfo", default={}) or {}
        version = info.get("kubeletVersion", "")
        arch = info.get("architecture") or labels.get("kubernetes.io/arch", "")
        os_name = info.get("operatingSystem") or labels.get("kubernetes.io/os", "linux")
        label = next((labels[k] for k in POOL_LABELS if labels.get(k)), "")
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


#: Node-file candidates kept per (node, category): enough to try another pod when one fails, and bounded so
#: that a 50,000-pod cluster keeps a few per node, not one per pod.
CANDIDATES_PER_NODE = 3


def _container_running(status: Mapping) -> bool:
    """From a slim status (``running``) or a raw one (``state.running``); True when not said."""
    if "running" in status:
        return bool(status["running"])
    state = status.get("state")
    return "running" in state if isinstance(state, Mapping) else True


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
    dns_config = dns_config if isinstance(dns_config, Mapping) else None
    category = candidate_category(dns_policy=dns_policy, host_network=host_network, dns_config=dns_config)
    if category is None:
        return None
    running = {
        st.get("name"): _container_running(st)
        for st in _get(pod, "status", "containerStatuses", default=()) or ()
        if isinstance(st, Mapping)
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
    by_key: dict[tuple[str, str, str], dict] = {}
    for resource, kind in RESOURCE_KIND.items():
        for obj in objects.get(resource, ()):
            by_key[(kind, _get(obj, "metadata", "namespace", default=""), _get(obj, "metadata", "name"))] = (
                obj
            )

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
                replicas=replicas if isinstance(replicas, int) else None,
            )
        )
    return Inventory(
        workloads=workloads,
        pods_seen=pods_seen,
        images=images,
        pull_secrets=dict(pull_secrets),
        service_accounts=dict(service_accounts),
        running_pods=running_pods,
        node_file_candidates=keeper.result(),
    )
