"""Realistic Kubernetes objects, shaped as a current apiserver serialises them (defaults applied).

Everything is deterministic: UIDs are UUIDv5 of the object's identity, image digests are SHA-256 of the
image reference, timestamps derive from a fixed epoch. Quantities are strings, timestamps RFC3339 with
``Z`` (T1, T12). Builders return full manifests (``apiVersion``/``kind`` set); the store strips those
from list items of built-in types (T5).

Workload builders return *all* the objects a controller would have created: a Deployment comes with its
ReplicaSet and Pods (``ownerReferences`` with ``controller: true``), a CronJob with a Job and its Pod.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

EPOCH = dt.datetime(2026, 1, 5, 9, 0, 0, tzinfo=dt.UTC)
_ALNUM = "bcdfghjklmnpqrstvwxz2456789"  # the apimachinery rand.String alphabet


def ts(seconds: float = 0) -> str:
    """RFC3339 UTC with ``Z``, ``seconds`` after the fixed epoch."""
    return (EPOCH + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def suffix(seed: str, n: int = 5) -> str:
    """A stable random-looking suffix from the apimachinery alphabet (pod-template-hash, pod names)."""
    h = hashlib.sha256(seed.encode()).digest()
    return "".join(_ALNUM[b % len(_ALNUM)] for b in h[:n])


def canonical_image(ref: str) -> str:
    """``alpine:3.16`` → ``docker.io/library/alpine:3.16`` (containerd's normalised name)."""
    name = ref.split("@", 1)[0]
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = "docker.io/library/" + name
    elif "." not in first and ":" not in first and first != "localhost":
        name = "docker.io/" + name
    if ":" not in name.rsplit("/", 1)[-1] and "@" not in ref:
        name += ":latest"
    return name


#: Gives the real manifest digest of an image that some registry serves (canonical ref -> digest or None).
_digest_provider: Callable[[str], str | None] | None = None


def set_image_digest_provider(
    provider: Callable[[str], str | None] | None,
) -> Callable[[str], str | None] | None:
    """Install ``provider`` (or None to remove it) and return the previous one.

    ``provider`` maps a canonical reference (``docker.io/library/alpine:3.16``) to the digest of an image
    that can really be pulled (the demo registry's stand-ins), or None when it has no such image. Objects
    built afterwards carry those digests in ``imageID``, so a scan can read the image by digest. Without a
    provider (the default, and what tests get) digests are the synthetic ones of :func:`image_digest`.
    """
    global _digest_provider
    previous, _digest_provider = _digest_provider, provider
    return previous


def image_digest(ref: str) -> str:
    """The deterministic ``sha256:<hex>`` manifest (index) digest the fleet uses for ``ref``.

    The installed provider's digest when it has one for ``ref`` (see :func:`set_image_digest_provider`),
    else a SHA-256 of the canonical reference (an image no registry has).
    """
    canonical = canonical_image(ref)
    if _digest_provider is not None:
        digest = _digest_provider(canonical)
        if digest:
            return digest
    return "sha256:" + hashlib.sha256(("dnsaudit-fake-image:" + canonical).encode()).hexdigest()


def image_id(ref: str) -> str:
    """``status.containerStatuses[].imageID`` as containerd writes it: ``<repo>@sha256:<hex>``."""
    if "@sha256:" in ref:
        repo, _, digest = ref.partition("@")
        return canonical_image(repo).rsplit(":", 1)[0] + "@" + digest
    repo = canonical_image(ref).rsplit(":", 1)[0]
    return f"{repo}@{image_digest(ref)}"


#: What each image of the fleet really is, as later tests need it: (libc, musl version or None, os).
IMAGE_FACTS: dict[str, tuple[str, str | None, str]] = {
    "alpine:3.16": ("musl", "1.2.3", "alpine 3.16"),
    "alpine:3.18": ("musl", "1.2.4", "alpine 3.18"),
    "alpine:3.19": ("musl", "1.2.4", "alpine 3.19"),
    "alpine:3.20": ("musl", "1.2.5", "alpine 3.20"),
    "python:3.12-alpine": ("musl", "1.2.5", "alpine 3.20"),
    "nginx:1.27-alpine": ("musl", "1.2.5", "alpine 3.20"),
    "redis:7.2-alpine": ("musl", "1.2.4", "alpine 3.19"),
    "node:20-alpine": ("musl", "1.2.5", "alpine 3.20"),
    "golang:1.22-alpine": ("musl", "1.2.5", "alpine 3.20"),
    "busybox:1.36-musl": ("musl", None, "busybox"),
    "debian:bookworm": ("glibc", None, "debian 12"),
    "debian:bookworm-slim": ("glibc", None, "debian 12"),
    "ubuntu:22.04": ("glibc", None, "ubuntu 22.04"),
    "python:3.12-slim": ("glibc", None, "debian 12"),
    "nginx:1.27": ("glibc", None, "debian 12"),
    "postgres:16": ("glibc", None, "debian 12"),
    "busybox:1.36-glibc": ("glibc", None, "busybox"),
    "gcr.io/distroless/static-debian12": ("static", None, "distroless"),
    "gcr.io/distroless/base-debian12": ("glibc", None, "distroless"),
    "cgr.dev/chainguard/static:latest": ("static", None, "wolfi"),
    "cgr.dev/chainguard/wolfi-base:latest": ("glibc", None, "wolfi"),
    "registry.k8s.io/coredns/coredns:v1.11.3": ("static", None, "distroless"),
    "registry.k8s.io/kube-proxy:v1.31.4": ("glibc", None, "debian"),
    "registry.k8s.io/dns/k8s-dns-node-cache:1.23.1": ("glibc", None, "debian"),
    "rancher/mirrored-coredns-coredns:1.10.1": ("static", None, "distroless"),
    "ghcr.io/kyverno/kyverno:v1.12.5": ("static", None, "distroless"),
}


# --- containers and pod specs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class C:
    """A container: name, image and a few optional knobs."""

    name: str
    image: str
    command: tuple[str, ...] = ()
    port: int | None = None
    cpu: str = "100m"
    memory: str = "128Mi"
    env: tuple[tuple[str, str], ...] = ()


def container_spec(c: C) -> dict:
    out: dict = {"name": c.name, "image": c.image}
    if c.command:
        out["command"] = list(c.command)
    if c.port:
        out["ports"] = [{"name": "http", "containerPort": c.port, "protocol": "TCP"}]
    if c.env:
        out["env"] = [{"name": k, "value": v} for k, v in c.env]
    out["resources"] = {
        "limits": {"memory": c.memory},
        "requests": {"cpu": c.cpu, "memory": c.memory},
    }
    out["terminationMessagePath"] = "/dev/termination-log"
    out["terminationMessagePolicy"] = "File"
    out["imagePullPolicy"] = "Always" if c.image.endswith(":latest") else "IfNotPresent"
    return out


@dataclass
class PodOpts:
    """The pod-template knobs that matter for DNS (and a few for realism)."""

    dns_policy: str = "ClusterFirst"
    dns_config: dict | None = None
    host_network: bool = False
    service_account: str = "default"
    image_pull_secrets: tuple[str, ...] = ()
    node_selector: dict | None = None
    restart_policy: str = "Always"
    init_containers: tuple[C, ...] = ()
    tolerations: list | None = None


def pod_spec(
    containers: Sequence[C],
    o: PodOpts,
    *,
    for_pod: bool = False,
    node: str | None = None,
    sa_volume: str | None = None,
) -> dict:
    """A PodSpec with the apiserver's defaults applied (template form, or pod form with ``for_pod``)."""
    spec: dict = {}
    if sa_volume:
        spec["volumes"] = [
            {
                "name": sa_volume,
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "path": "namespace",
                                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                    }
                                ]
                            }
                        },
                    ],
                    "defaultMode": 420,
                },
            }
        ]
    if o.init_containers:
        spec["initContainers"] = [container_spec(c) for c in o.init_containers]
    conts = [container_spec(c) for c in containers]
    if sa_volume:
        for c in conts:
            c["volumeMounts"] = [
                {
                    "name": sa_volume,
                    "readOnly": True,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                }
            ]
    spec["containers"] = conts
    spec["restartPolicy"] = o.restart_policy
    spec["terminationGracePeriodSeconds"] = 30
    spec["dnsPolicy"] = o.dns_policy
    if o.node_selector:
        spec["nodeSelector"] = dict(o.node_selector)
    spec["serviceAccountName"] = o.service_account
    spec["serviceAccount"] = o.service_account
    if node:
        spec["nodeName"] = node
    if o.host_network:
        spec["hostNetwork"] = True
    spec["securityContext"] = {}
    if o.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in o.image_pull_secrets]
    spec["schedulerName"] = "default-scheduler"
    tol = o.tolerations
    if for_pod and tol is None:
        tol = [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ]
    if tol:
        spec["tolerations"] = tol
    if o.dns_config is not None:
        spec["dnsConfig"] = o.dns_config
    if for_pod:
        spec["priority"] = 0
        spec["enableServiceLinks"] = True
        spec["preemptionPolicy"] = "PreemptLowerPriority"
    return spec


# --- metadata ----------------------------------------------------------------------------------------------


def meta(
    name: str,
    namespace: str | None = None,
    *,
    labels: dict | None = None,
    annotations: dict | None = None,
    owner: dict | None = None,
    age: float = 0,
    kind: str = "",
) -> dict:
    m: dict = {"name": name}
    if namespace is not None:
        m["namespace"] = namespace
    m["uid"] = make_uid(kind, namespace or "", name)
    m["creationTimestamp"] = ts(age)
    if labels:
        m["labels"] = dict(labels)
    if annotations:
        m["annotations"] = dict(annotations)
    if owner:
        m["ownerReferences"] = [owner]
    return m


def owner_ref(obj: dict) -> dict:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


# --- cluster-scoped --------------------------------------------------------------------------------------------


def namespace(name: str, *, labels: dict | None = None, age: float = 0) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": meta(
            name, labels={"kubernetes.io/metadata.name": name, **(labels or {})}, age=age, kind="Namespace"
        ),
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


@dataclass
class NodeInfo:
    """Node facts that vary by pool."""

    kubelet_version: str = "v1.31.4"
    architecture: str = "amd64"
    os_image: str = "Ubuntu 22.04.5 LTS"
    kernel: str = "5.15.0-126-generic"
    runtime: str = "containerd://1.7.24"
    instance_type: str = "m5.xlarge"
    zone: str = "zone-a"
    region: str = "region-1"
    extra_labels: dict = field(default_factory=dict)
    cpu: str = "4"
    memory: str = "16330848Ki"
    control_plane: bool = False


def node(name: str, info: NodeInfo, *, ip: str, images: Sequence[str] = (), age: float = 0) -> dict:
    labels = {
        "beta.kubernetes.io/arch": info.architecture,
        "beta.kubernetes.io/instance-type": info.instance_type,
        "beta.kubernetes.io/os": "linux",
        "failure-domain.beta.kubernetes.io/region": info.region,
        "failure-domain.beta.kubernetes.io/zone": info.zone,
        "kubernetes.io/arch": info.architecture,
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": info.instance_type,
        "topology.kubernetes.io/region": info.region,
        "topology.kubernetes.io/zone": info.zone,
        **info.extra_labels,
    }
    if info.control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
    seed = "node/" + name
    cond_time = ts(age + 60)
    alloc_mem = (
        str(int(info.memory.rstrip("Ki")) - 102400) + "Ki" if info.memory.endswith("Ki") else info.memory
    )
    status = {
        "capacity": {
            "cpu": info.cpu,
            "ephemeral-storage": "101430960Ki",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
            "memory": info.memory,
            "pods": "110",
        },
        "allocatable": {
            "cpu": info.cpu,
            "ephemeral-storage": "93478772582",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
            "memory": alloc_mem,
            "pods": "110",
        },
        "conditions": [
            {
                "type": t,
                "status": "False",
                "lastHeartbeatTime": ts(age + 86000),
                "lastTransitionTime": cond_time,
                "reason": r,
                "message": msg,
            }
            for t, r, msg in (
                ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            )
        ]
        + [
            {
                "type": "Ready",
                "status": "True",
                "lastHeartbeatTime": ts(age + 86000),
                "lastTransitionTime": cond_time,
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
            }
        ],
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": hashlib.md5(seed.encode(), usedforsecurity=False).hexdigest(),
            "systemUUID": make_uid(seed, "system"),
            "bootID": make_uid(seed, "boot"),
            "kernelVersion": info.kernel,
            "osImage": info.os_image,
            "containerRuntimeVersion": info.runtime,
            "kubeletVersion": info.kubelet_version,
            "kubeProxyVersion": info.kubelet_version,
            "operatingSystem": "linux",
            "architecture": info.architecture,
        },
    }
    if images:
        status["images"] = [
            {
                "names": [image_id(i), canonical_image(i)],
                "sizeBytes": 3_000_000 + int(image_digest(i)[7:13], 16) % 90_000_000,
            }
            for i in images
        ]
    spec: dict = {"podCIDR": f"10.244.{sum(name.encode()) % 250}.0/24"}
    spec["podCIDRs"] = [spec["podCIDR"]]
    if info.control_plane:
        spec["taints"] = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": meta(
            name,
            labels=labels,
            annotations={
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
            age=age,
            kind="Node",
        ),
        "spec": spec,
        "status": status,
    }


# --- pods -------------------------------------------------------------------------------------------------------


def pod(
    name: str,
    ns: str,
    containers: Sequence[C],
    o: PodOpts,
    *,
    node_name: str,
    labels: dict | None = None,
    owner: dict | None = None,
    age: float = 0,
    phase: str = "Running",
    pod_ip: str | None = None,
    host_ip: str = "10.0.0.10",
    annotations: dict | None = None,
    waiting: dict[str, str] | None = None,
) -> dict:
    """A scheduled Pod with status (``containerStatuses`` with containerd-style ``imageID``).

    ``waiting`` maps container names to a waiting reason (``CrashLoopBackOff``, ``ImagePullBackOff``…):
    those containers are not running even in a Running pod (exec into them is refused)."""
    sa_vol = "kube-api-access-" + suffix(ns + "/" + name)
    md = meta(name, ns, labels=labels, annotations=annotations, owner=owner, age=age, kind="Pod")
    ip = host_ip if o.host_network else (pod_ip or _pod_ip(ns + "/" + name))
    start = ts(age + 2)
    running = phase == "Running"
    statuses = []
    for i, c in enumerate(containers):
        st: dict = {"name": c.name}
        if waiting and c.name in waiting:
            st["state"] = {"waiting": {"reason": waiting[c.name]}}
            if waiting[c.name] == "CrashLoopBackOff":
                st["lastState"] = {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "startedAt": ts(age + 5 + i),
                        "finishedAt": ts(age + 6 + i),
                        "containerID": "containerd://" + _hexid(md["uid"], c.name),
                    }
                }
        elif running:
            st["state"] = {"running": {"startedAt": ts(age + 5 + i)}}
        elif phase == "Succeeded":
            st["state"] = {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": ts(age + 5),
                    "finishedAt": ts(age + 35),
                    "containerID": "containerd://" + _hexid(md["uid"], c.name),
                }
            }
        else:
            st["state"] = {"waiting": {"reason": "ContainerCreating"}}
        up = running and "running" in st["state"]
        st.setdefault("lastState", {})
        st["ready"] = up
        st["restartCount"] = 3 if "terminated" in st["lastState"] else 0
        st["image"] = canonical_image(c.image)
        st["imageID"] = image_id(c.image) if phase != "Pending" else ""
        if phase != "Pending":
            st["containerID"] = "containerd://" + _hexid(md["uid"], c.name)
        st["started"] = up
        statuses.append(st)
    ready = "True" if running and all("running" in st["state"] for st in statuses) else "False"
    conds = [
        {
            "type": "PodReadyToStartContainers",
            "status": "True" if phase != "Pending" else "False",
            "lastProbeTime": None,
            "lastTransitionTime": ts(age + 4),
        },
        {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": start},
        {"type": "Ready", "status": ready, "lastProbeTime": None, "lastTransitionTime": ts(age + 6)},
        {
            "type": "ContainersReady",
            "status": ready,
            "lastProbeTime": None,
            "lastTransitionTime": ts(age + 6),
        },
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": start},
    ]
    status: dict = {"phase": phase, "conditions": conds, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}]}
    if phase != "Pending":
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    status["startTime"] = start
    status["containerStatuses"] = statuses
    status["qosClass"] = "Burstable"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": md,
        "spec": pod_spec(containers, o, for_pod=True, node=node_name, sa_volume=sa_vol),
        "status": status,
    }


def _pod_ip(seed: str) -> str:
    h = hashlib.sha256(seed.encode()).digest()
    return f"10.244.{h[0] % 250}.{h[1] % 250 + 2}"


def _hexid(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def _template(labels: dict, containers: Sequence[C], o: PodOpts) -> dict:
    return {"metadata": {"creationTimestamp": None, "labels": dict(labels)}, "spec": pod_spec(containers, o)}


@dataclass
class Placement:
    """Where pods land: node names and their InternalIPs (round-robin)."""

    nodes: Sequence[str]
    ips: dict[str, str] = field(default_factory=dict)
    _i: int = 0

    def next(self) -> tuple[str, str]:
        n = self.nodes[self._i % len(self.nodes)]
        self._i += 1
        return n, self.ips.get(n, "10.0.0.10")


# --- workloads ----------------------------------------------------------------------------------------------------


def deployment(
    ns: str,
    name: str,
    containers: Sequence[C],
    place: Placement,
    *,
    replicas: int = 2,
    opts: PodOpts | None = None,
    labels: dict | None = None,
    age: float = 0,
) -> list[dict]:
    """A Deployment, its current ReplicaSet, an old scaled-down ReplicaSet, and ``replicas`` Pods."""
    o = opts or PodOpts()
    sel = {"app.kubernetes.io/name": name}
    all_labels = {**sel, **(labels or {})}
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(
            name,
            ns,
            labels=all_labels,
            annotations={"deployment.kubernetes.io/revision": "2"},
            age=age,
            kind="Deployment",
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": sel},
            "template": _template(all_labels, containers, o),
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {
            "observedGeneration": 2,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "lastUpdateTime": ts(age + 30),
                    "lastTransitionTime": ts(age + 30),
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "lastUpdateTime": ts(age + 30),
                    "lastTransitionTime": ts(age + 10),
                    "reason": "NewReplicaSetAvailable",
                    "message": f'ReplicaSet "{name}-{suffix(ns + name + "rs", 10)}" has successfully progressed.',
                },
            ],
        },
    }
    if not replicas:
        for k in ("readyReplicas", "availableReplicas", "updatedReplicas"):
            dep["status"].pop(k)
    if dep["status"].get("replicas") == 0:
        dep["status"].pop("replicas")
    out = [dep]
    for rev, (hash_seed, count) in enumerate(((ns + name + "old", 0), (ns + name + "rs", replicas)), start=1):
        h = suffix(hash_seed, 10)
        rs_labels = {**all_labels, "pod-template-hash": h}
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": meta(
                f"{name}-{h}",
                ns,
                labels=rs_labels,
                annotations={
                    "deployment.kubernetes.io/desired-replicas": str(replicas),
                    "deployment.kubernetes.io/max-replicas": str(replicas + max(1, replicas // 4)),
                    "deployment.kubernetes.io/revision": str(rev),
                },
                owner=owner_ref(dep),
                age=age + rev,
                kind="ReplicaSet",
            ),
            "spec": {
                "replicas": count,
                "selector": {"matchLabels": {**sel, "pod-template-hash": h}},
                "template": _template(rs_labels, containers, o),
            },
            "status": {
                "replicas": count,
                "observedGeneration": 1,
                **(
                    {"fullyLabeledReplicas": count, "readyReplicas": count, "availableReplicas": count}
                    if count
                    else {}
                ),
            },
        }
        out.append(rs)
        for i in range(count):
            node_name, host_ip = place.next()
            out.append(
                pod(
                    f"{name}-{h}-{suffix(ns + name + h + str(i))}",
                    ns,
                    containers,
                    o,
                    node_name=node_name,
                    labels=rs_labels,
                    owner=owner_ref(rs),
                    age=age + 3,
                    host_ip=host_ip,
                )
            )
    return out


def statefulset(
    ns: str,
    name: str,
    containers: Sequence[C],
    place: Placement,
    *,
    replicas: int = 1,
    opts: PodOpts | None = None,
    age: float = 0,
) -> list[dict]:
    o = opts or PodOpts()
    sel = {"app.kubernetes.io/name": name}
    rev = f"{name}-{suffix(ns + name + 'sts', 10)}"
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(name, ns, labels=sel, age=age, kind="StatefulSet"),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": sel},
            "template": _template(sel, containers, o),
            "serviceName": name,
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "revisionHistoryLimit": 10,
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": replicas,
            "currentReplicas": replicas,
            "updatedReplicas": replicas,
            "currentRevision": rev,
            "updateRevision": rev,
            "collisionCount": 0,
            "availableReplicas": replicas,
        },
    }
    out = [sts]
    for i in range(replicas):
        node_name, host_ip = place.next()
        labels = {
            **sel,
            "apps.kubernetes.io/pod-index": str(i),
            "controller-revision-hash": rev,
            "statefulset.kubernetes.io/pod-name": f"{name}-{i}",
        }
        out.append(
            pod(
                f"{name}-{i}",
                ns,
                containers,
                o,
                node_name=node_name,
                labels=labels,
                owner=owner_ref(sts),
                age=age + 3,
                host_ip=host_ip,
            )
        )
    return out


def daemonset(
    ns: str,
    name: str,
    containers: Sequence[C],
    nodes: Placement,
    *,
    opts: PodOpts | None = None,
    age: float = 0,
) -> list[dict]:
    """A DaemonSet with one Pod per node of ``nodes``."""
    o = opts or PodOpts()
    sel = {"app.kubernetes.io/name": name}
    n = len(nodes.nodes)
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta(
            name,
            ns,
            labels=sel,
            annotations={"deprecated.daemonset.template.generation": "1"},
            age=age,
            kind="DaemonSet",
        ),
        "spec": {
            "selector": {"matchLabels": sel},
            "template": _template(sel, containers, o),
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "revisionHistoryLimit": 10,
        },
        "status": {
            "currentNumberScheduled": n,
            "numberMisscheduled": 0,
            "desiredNumberScheduled": n,
            "numberReady": n,
            "observedGeneration": 1,
            "updatedNumberScheduled": n,
            "numberAvailable": n,
        },
    }
    h = suffix(ns + name + "ds", 10)
    out = [ds]
    for node_name in nodes.nodes:
        ip = nodes.ips.get(node_name, "10.0.0.10")
        labels = {**sel, "controller-revision-hash": h, "pod-template-generation": "1"}
        out.append(
            pod(
                f"{name}-{suffix(ns + name + node_name)}",
                ns,
                containers,
                o,
                node_name=node_name,
                labels=labels,
                owner=owner_ref(ds),
                age=age + 3,
                host_ip=ip,
            )
        )
    return out


def cronjob(
    ns: str,
    name: str,
    containers: Sequence[C],
    place: Placement,
    *,
    schedule: str = "*/30 * * * *",
    suspend: bool = False,
    opts: PodOpts | None = None,
    jobs: int = 1,
    age: float = 0,
) -> list[dict]:
    """A CronJob with ``jobs`` finished Jobs (each with its Succeeded Pod); none when suspended."""
    o = opts or PodOpts(restart_policy="OnFailure")
    if o.restart_policy == "Always":
        o = PodOpts(**{**o.__dict__, "restart_policy": "OnFailure"})
    sel = {"app.kubernetes.io/name": name}
    job_spec_tmpl = {"template": _template(sel, containers, o), "backoffLimit": 6}
    cj = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": meta(name, ns, labels=sel, age=age, kind="CronJob"),
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "suspend": suspend,
            "jobTemplate": {"metadata": {"creationTimestamp": None}, "spec": job_spec_tmpl},
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
        },
        "status": {},
    }
    out = [cj]
    n_jobs = 0 if suspend else jobs
    if n_jobs:
        cj["status"] = {"lastScheduleTime": ts(86400), "lastSuccessfulTime": ts(86430)}
    for j in range(n_jobs):
        minute = 29_440_000 + 30 * j + sum(name.encode()) % 20
        job_name = f"{name}-{minute}"
        job_uid = make_uid("Job", ns, job_name)
        jl = {
            "batch.kubernetes.io/controller-uid": job_uid,
            "batch.kubernetes.io/job-name": job_name,
            "controller-uid": job_uid,
            "job-name": job_name,
        }
        job_tmpl = _template({**sel, **jl}, containers, o)
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta(
                job_name, ns, labels={**sel, **jl}, owner=owner_ref(cj), age=86400 - 1800 * j, kind="Job"
            ),
            "spec": {
                "parallelism": 1,
                "completions": 1,
                "backoffLimit": 6,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": job_uid}},
                "manualSelector": False,
                "template": job_tmpl,
                "completionMode": "NonIndexed",
                "suspend": False,
                "podReplacementPolicy": "TerminatingOrFailed",
            },
            "status": {
                "conditions": [
                    {
                        "type": "Complete",
                        "status": "True",
                        "lastProbeTime": ts(86430),
                        "lastTransitionTime": ts(86430),
                    }
                ],
                "startTime": ts(86400),
                "completionTime": ts(86430),
                "succeeded": 1,
                "terminating": 0,
                "uncountedTerminatedPods": {},
                "ready": 0,
            },
        }
        job["metadata"]["annotations"] = {"batch.kubernetes.io/job-tracking": ""}
        out.append(job)
        node_name, host_ip = place.next()
        out.append(
            pod(
                f"{job_name}-{suffix(ns + job_name)}",
                ns,
                containers,
                o,
                node_name=node_name,
                labels={**sel, **jl},
                owner=owner_ref(job),
                age=86400,
                phase="Succeeded",
                host_ip=host_ip,
            )
        )
    return out


def bare_pod(
    ns: str,
    name: str,
    containers: Sequence[C],
    place: Placement,
    *,
    opts: PodOpts | None = None,
    age: float = 0,
    annotations: dict | None = None,
    waiting: dict[str, str] | None = None,
) -> list[dict]:
    node_name, host_ip = place.next()
    return [
        pod(
            name,
            ns,
            containers,
            opts or PodOpts(),
            node_name=node_name,
            labels={"run": name},
            age=age,
            host_ip=host_ip,
            annotations=annotations,
            waiting=waiting,
        )
    ]


def pending_pod(
    ns: str,
    name: str,
    containers: Sequence[C],
    *,
    node_name: str | None = None,
    opts: PodOpts | None = None,
    reason: str = "ContainerCreating",
    annotations: dict | None = None,
    age: float = 0,
) -> dict:
    """A Pending bare Pod. With ``node_name``: scheduled, its containers waiting with ``reason`` (exec is
    refused: container not found). Without: not scheduled yet (``PodScheduled`` False ``Unschedulable``, no
    ``nodeName``, no container statuses; exec is refused: the pod has no host)."""
    if node_name:
        p = pod(
            name,
            ns,
            containers,
            opts or PodOpts(),
            node_name=node_name,
            labels={"run": name},
            age=age,
            phase="Pending",
            annotations=annotations,
        )
        for st in p["status"]["containerStatuses"]:
            st["state"] = {"waiting": {"reason": reason}}
        return p
    sa_vol = "kube-api-access-" + suffix(ns + "/" + name)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(name, ns, labels={"run": name}, annotations=annotations, age=age, kind="Pod"),
        "spec": pod_spec(containers, opts or PodOpts(), for_pod=True, sa_volume=sa_vol),
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": ts(age + 1),
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are "
                    "available: 3 No preemption victims found for incoming pod.",
                }
            ],
            "qosClass": "Burstable",
        },
    }


# --- config and service objects -----------------------------------------------------------------------------------


def configmap(ns: str, name: str, data: dict, *, labels: dict | None = None, age: float = 0) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(name, ns, labels=labels, age=age, kind="ConfigMap"),
        "data": dict(data),
    }


def service(
    ns: str,
    name: str,
    cluster_ip: str,
    ports: Sequence[tuple[str, int, str]],
    *,
    selector: dict | None = None,
    labels: dict | None = None,
) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, ns, labels=labels, kind="Service"),
        "spec": {
            "ports": [{"name": n, "protocol": proto, "port": p, "targetPort": p} for n, p, proto in ports],
            **({"selector": selector} if selector else {}),
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    }


def service_account(ns: str, name: str = "default", *, pull_secrets: Sequence[str] = ()) -> dict:
    sa: dict = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(name, ns, kind="ServiceAccount"),
    }
    if pull_secrets:
        sa["imagePullSecrets"] = [{"name": n} for n in pull_secrets]
    return sa


def pull_secret(ns: str, name: str, registry: str, username: str, password: str) -> dict:
    import base64
    import json

    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    cfg = {"auths": {registry: {"username": username, "password": password, "auth": auth}}}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(name, ns, kind="Secret"),
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(cfg).encode()).decode()},
        "type": "kubernetes.io/dockerconfigjson",
    }


FAKE_CA_BUNDLE = (
    "-----BEGIN CERTIFICATE-----\nMIIBfakeclusterrootcaforthedemofleetonly\n-----END CERTIFICATE-----\n"
)


def namespace_defaults(ns: str) -> list[dict]:
    """What every namespace holds on a real cluster: the ``default`` ServiceAccount and ``kube-root-ca.crt``."""
    return [
        service_account(ns),
        configmap(
            ns,
            "kube-root-ca.crt",
            {"ca.crt": FAKE_CA_BUNDLE},
        ),
    ]


def kubeadm_corefile(domain: str = "cluster.local", upstream: str = "/etc/resolv.conf") -> str:
    """A Corefile in the shape kubeadm installs (written here, not copied)."""
    return (
        ".:53 {\n"
        "    errors\n"
        "    health {\n"
        "       lameduck 5s\n"
        "    }\n"
        "    ready\n"
        f"    kubernetes {domain} in-addr.arpa ip6.arpa {{\n"
        "       pods insecure\n"
        "       fallthrough in-addr.arpa ip6.arpa\n"
        "       ttl 30\n"
        "    }\n"
        "    prometheus :9153\n"
        f"    forward . {upstream} {{\n"
        "       max_concurrent 1000\n"
        "    }\n"
        "    cache 30\n"
        "    loop\n"
        "    reload\n"
        "    loadbalance\n"
        "}\n"
    )


def k3s_corefile(domain: str = "cluster.local") -> str:
    """A Corefile in the shape k3s ships (NodeHosts, import hooks for ``coredns-custom``)."""
    return (
        ".:53 {\n"
        "    errors\n"
        "    health\n"
        "    ready\n"
        f"    kubernetes {domain} in-addr.arpa ip6.arpa {{\n"
        "      pods insecure\n"
        "      fallthrough in-addr.arpa ip6.arpa\n"
        "    }\n"
        "    hosts /etc/coredns/NodeHosts {\n"
        "      ttl 60\n"
        "      reload 15s\n"
        "      fallthrough\n"
        "    }\n"
        "    prometheus :9153\n"
        "    forward . /etc/resolv.conf\n"
        "    cache 30\n"
        "    loop\n"
        "    reload\n"
        "    loadbalance\n"
        "    import /etc/coredns/custom/*.override\n"
        "}\n"
        "import /etc/coredns/custom/*.server\n"
    )


def kubelet_config(
    *,
    cluster_dns: Sequence[str] = ("10.96.0.10",),
    cluster_domain: str = "cluster.local",
    resolv_conf: str = "/run/systemd/resolve/resolv.conf",
    cgroup_driver: str = "systemd",
    static_pod_path: str = "/etc/kubernetes/manifests",
) -> dict:
    """A v1beta1 KubeletConfiguration as ``/configz`` shows it (defaults applied, camelCase, no kind)."""
    return {
        "enableServer": True,
        "staticPodPath": static_pod_path,
        "podLogsDir": "/var/log/pods",
        "syncFrequency": "1m0s",
        "fileCheckFrequency": "20s",
        "httpCheckFrequency": "20s",
        "address": "0.0.0.0",
        "port": 10250,
        "rotateCertificates": True,
        "serverTLSBootstrap": True,
        "authentication": {
            "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"},
            "webhook": {"enabled": True, "cacheTTL": "2m0s"},
            "anonymous": {"enabled": False},
        },
        "authorization": {
            "mode": "Webhook",
            "webhook": {"cacheAuthorizedTTL": "5m0s", "cacheUnauthorizedTTL": "30s"},
        },
        "registryPullQPS": 5,
        "registryBurst": 10,
        "eventRecordQPS": 50,
        "eventBurst": 100,
        "enableDebuggingHandlers": True,
        "healthzPort": 10248,
        "healthzBindAddress": "127.0.0.1",
        "oomScoreAdj": -999,
        "clusterDomain": cluster_domain,
        "clusterDNS": list(cluster_dns),
        "streamingConnectionIdleTimeout": "4h0m0s",
        "nodeStatusUpdateFrequency": "10s",
        "nodeStatusReportFrequency": "5m0s",
        "nodeLeaseDurationSeconds": 40,
        "imageMinimumGCAge": "2m0s",
        "imageMaximumGCAge": "0s",
        "imageGCHighThresholdPercent": 85,
        "imageGCLowThresholdPercent": 80,
        "volumeStatsAggPeriod": "1m0s",
        "cgroupsPerQOS": True,
        "cgroupDriver": cgroup_driver,
        "cpuManagerPolicy": "none",
        "cpuManagerReconcilePeriod": "10s",
        "memoryManagerPolicy": "None",
        "topologyManagerPolicy": "none",
        "topologyManagerScope": "container",
        "runtimeRequestTimeout": "2m0s",
        "hairpinMode": "promiscuous-bridge",
        "maxPods": 110,
        "podPidsLimit": -1,
        "resolvConf": resolv_conf,
        "cpuCFSQuota": True,
        "cpuCFSQuotaPeriod": "100ms",
        "nodeStatusMaxImages": 50,
        "maxParallelImagePulls": 1,
        "maxOpenFiles": 1000000,
        "contentType": "application/vnd.kubernetes.protobuf",
        "kubeAPIQPS": 50,
        "kubeAPIBurst": 100,
        "serializeImagePulls": True,
        "evictionHard": {
            "imagefs.available": "15%",
            "imagefs.inodesFree": "5%",
            "memory.available": "100Mi",
            "nodefs.available": "10%",
            "nodefs.inodesFree": "5%",
        },
        "evictionPressureTransitionPeriod": "5m0s",
        "enableControllerAttachDetach": True,
        "makeIPTablesUtilChains": True,
        "iptablesMasqueradeBit": 14,
        "iptablesDropBit": 15,
        "failSwapOn": True,
        "memorySwap": {},
        "containerLogMaxSize": "10Mi",
        "containerLogMaxFiles": 5,
        "containerLogMaxWorkers": 1,
        "containerLogMonitorInterval": "10s",
        "configMapAndSecretChangeDetectionStrategy": "Watch",
        "enforceNodeAllocatable": ["pods"],
        "volumePluginDir": "/usr/libexec/kubernetes/kubelet-plugins/volume/exec/",
        "logging": {
            "format": "text",
            "flushFrequency": "5s",
            "verbosity": 0,
            "options": {"text": {"infoBufferSize": "0"}, "json": {"infoBufferSize": "0"}},
        },
        "enableSystemLogHandler": True,
        "enableSystemLogQuery": False,
        "shutdownGracePeriod": "0s",
        "shutdownGracePeriodCriticalPods": "0s",
        "enableProfilingHandler": True,
        "enableDebugFlagsHandler": True,
        "seccompDefault": False,
        "memoryThrottlingFactor": 0.9,
        "registerNode": True,
        "localStorageCapacityIsolation": True,
        "containerRuntimeEndpoint": "unix:///var/run/containerd/containerd.sock",
        "failCgroupV1": False,
    }


def kyverno_crds() -> list[dict]:
    """The Kyverno CRDs whose presence says "Kyverno is installed" (shape of apiextensions v1)."""
    out = []
    for kind, plural, scope, short in (
        ("ClusterPolicy", "clusterpolicies", "Cluster", ["cpol"]),
        ("Policy", "policies", "Namespaced", ["pol"]),
        ("PolicyException", "policyexceptions", "Namespaced", ["polex"]),
    ):
        name = f"{plural}.kyverno.io"
        out.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": meta(
                    name,
                    labels={
                        "app.kubernetes.io/component": "crds",
                        "app.kubernetes.io/instance": "kyverno",
                        "app.kubernetes.io/part-of": "kyverno",
                    },
                    annotations={"controller-gen.kubebuilder.io/version": "v0.14.0"},
                    kind="CRD",
                ),
                "spec": {
                    "group": "kyverno.io",
                    "names": {
                        "kind": kind,
                        "listKind": kind + "List",
                        "plural": plural,
                        "singular": kind.lower(),
                        "shortNames": short,
                        "categories": ["kyverno"],
                    },
                    "scope": scope,
                    "versions": [
                        {
                            "name": v,
                            "served": True,
                            "storage": v == "v1",
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                            "subresources": {"status": {}},
                            "additionalPrinterColumns": [
                                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                            ],
                        }
                        for v in (("v1", "v2beta1") if kind != "PolicyException" else ("v2", "v2beta1"))
                    ],
                    "conversion": {"strategy": "None"},
                },
                "status": {
                    "conditions": [
                        {
                            "type": "NamesAccepted",
                            "status": "True",
                            "lastTransitionTime": ts(100),
                            "reason": "NoConflicts",
                            "message": "no conflicts found",
                        },
                        {
                            "type": "Established",
                            "status": "True",
                            "lastTransitionTime": ts(100),
                            "reason": "InitialNamesAccepted",
                            "message": "the initial names have been accepted",
                        },
                    ],
                    "acceptedNames": {
                        "kind": kind,
                        "listKind": kind + "List",
                        "plural": plural,
                        "singular": kind.lower(),
                        "shortNames": short,
                        "categories": ["kyverno"],
                    },
                    "storedVersions": ["v1" if kind != "PolicyException" else "v2"],
                },
            }
        )
    return out
