"""Shared plain-data types of the audit core.

These are the contracts between the core modules and the boundaries. Keep them free of Django,
network and client-library imports. Every type is a dataclass that serialises with ``to_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# --- DNS answers -----------------------------------------------------------------------------------

#: What one query got back. ``None`` rcode means no reply at all (timeout / dropped).
Rcode = Literal["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "NOTIMP", "FORMERR"]
QType = Literal["A", "AAAA"]


@dataclass(frozen=True)
class Answer:
    """The reply one nameserver gives to one question.

    ``rcode=None`` means no reply (dropped or timed out). ``NOERROR`` with empty ``addresses`` is NODATA.
    ``truncated`` is the TC bit on a UDP reply (the full answer is available over TCP).
    ``delay`` is seconds before the reply arrives (used for parallel-nameserver races).
    ``cname`` is set on a ``NOERROR`` reply without addresses whose answer section still holds a CNAME
    chain: the name the chain ends at (which has no address of the asked type). That is not NODATA for
    glibc: the answer count is not zero, so its search stops there. It stays None when the reply has
    addresses (a chain that ends in records is just records) and on error replies.
    """

    rcode: Rcode | None
    addresses: tuple[str, ...] = ()
    truncated: bool = False
    delay: float = 0.0
    cname: str | None = None

    @property
    def label(self) -> str:
        """Short human label: ``NXDOMAIN``, ``NODATA``, ``records 10.0.0.1``, ``CNAME x (no address)``..."""
        if self.rcode is None:
            return "no reply"
        if self.rcode == "NOERROR":
            if not self.addresses:
                if self.cname:
                    return f"CNAME {self.cname} (no address)"
                return "NODATA"
            return "records " + ", ".join(self.addresses)
        return self.rcode


# --- resolv.conf -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvConf:
    """A resolv.conf as the kubelet/CRI writes it: three lists, options as ``name[:value]`` strings."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "nameservers": list(self.nameservers),
            "searches": list(self.searches),
            "options": list(self.options),
        }


# --- kubelet and pods ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeletDNS:
    """The DNS-relevant part of a kubelet configuration (from ``nodes/{n}/proxy/configz`` or settings).

    ``resolv_conf`` is the *path* the kubelet reads; ``""`` disables it (kubelet semantics).
    ``version`` is the kubelet version (``v1.25.0``), which changes ``search .`` handling.
    """

    cluster_dns: tuple[str, ...] = ("10.96.0.10",)
    cluster_domain: str = "cluster.local"
    resolv_conf: str = "/etc/resolv.conf"
    version: str | None = None
    node_ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    image_id: str | None = None  # status.containerStatuses[].imageID when a pod runs


@dataclass(frozen=True)
class Workload:
    """The object a user edits (top owner) with its pod template's DNS fields.

    ``pod_spec_path`` is where the pod spec sits inside the object, e.g. ``("spec", "template", "spec")``
    for a Deployment, ``("spec", "jobTemplate", "spec", "template", "spec")`` for a CronJob, ``("spec",)``
    for a bare Pod.
    ``dns_config`` is the raw ``pod.spec.dnsConfig`` dict (``nameservers``, ``searches``, ``options``) or None.
    """

    namespace: str
    kind: str
    name: str
    dns_policy: str = "ClusterFirst"
    host_network: bool = False
    dns_config: dict | None = None
    containers: tuple[Container, ...] = ()
    labels: dict = field(default_factory=dict)
    api_version: str = "apps/v1"
    pod_spec_path: tuple[str, ...] = ("spec", "template", "spec")
    node_pool: str | None = None
    replicas: int | None = None
    #: The pod template's ``serviceAccountName`` and ``imagePullSecrets`` names: the credentials its pods
    #: pull with (the ServiceAccount's own imagePullSecrets are added to a pod when it is created).
    service_account: str = "default"
    pull_secrets: tuple[str, ...] = ()
    #: Only the exemption annotations (``dnsaudit.io/exempt``, ``dnsaudit.io/exempt-until``) of the object or
    #: of its pod template, as ``dnsaudit.core.exemptions.kept_annotations`` keeps them; no other annotation.
    annotations: dict = field(default_factory=dict)


# --- image libc ------------------------------------------------------------------------------------

Libc = Literal["musl", "glibc", "static", "unknown"]
Confidence = Literal["confirmed", "inferred"]


@dataclass
class LibcVerdict:
    libc: Libc = "unknown"
    musl_version: str | None = None
    os_id: str | None = None
    os_version: str | None = None
    evidence: list[str] = field(default_factory=list)
    confidence: Confidence = "inferred"
    digest: str | None = None
    platform: str | None = None

    def to_dict(self) -> dict:
        # Field by field (``dataclasses.asdict`` deep-copies generically: a third of the audit's time at
        # 50,000 pods); tests/core/test_model_dicts.py checks it equals asdict() for every field.
        return {
            "libc": self.libc,
            "musl_version": self.musl_version,
            "os_id": self.os_id,
            "os_version": self.os_version,
            "evidence": list(self.evidence),
            "confidence": self.confidence,
            "digest": self.digest,
            "platform": self.platform,
        }


# --- resolver simulation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """One query a libc sent and what it got back, in the order sent."""

    name: str
    type: QType
    server: str
    answer: str  # Answer.label, e.g. "NXDOMAIN", "NODATA", "SERVFAIL", "no reply", "records 1.2.3.4"
    transport: Literal["udp", "tcp"] = "udp"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "server": self.server,
            "answer": self.answer,
            "transport": self.transport,
        }


@dataclass
class Resolution:
    """The outcome of a simulated ``getaddrinfo(name)``."""

    libc: Literal["musl", "glibc"]
    name: str
    ok: bool
    error: str | None  # "EAI_AGAIN", "EAI_NONAME", "EAI_NODATA", "EAI_FAIL" or None
    addresses: list[str] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)  # names the search loop tried, in order
    stopped_at: str | None = None  # the candidate that ended the search without success
    elapsed: float = 0.0  # seconds the call would take
    explanation: str = ""
    version: str | None = None

    def to_dict(self) -> dict:
        return {
            "libc": self.libc,
            "name": self.name,
            "ok": self.ok,
            "error": self.error,
            "addresses": list(self.addresses),
            "queries": [q.to_dict() for q in self.queries],
            "candidates": list(self.candidates),
            "stopped_at": self.stopped_at,
            "elapsed": self.elapsed,
            "explanation": self.explanation,
            "version": self.version,
        }


# --- kubeconfig --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeContext:
    """One kubeconfig context after validation: everything needed to connect, nothing that runs or reads.

    Produced by ``dnsaudit.core.kubeconfig`` from *data* fields only (``*-data``, ``token``,
    ``username``/``password``); commands, auth providers and file paths are refused before this exists.
    """

    name: str
    cluster: str
    user: str
    server: str
    namespace: str | None = None
    ca_data: bytes | None = None  # PEM
    client_cert_data: bytes | None = None  # PEM
    client_key_data: bytes | None = field(default=None, repr=False)  # PEM
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None

    @property
    def auth_kind(self) -> str:
        if self.client_cert_data:
            return "client-certificate"
        if self.token:
            return "token"
        if self.username:
            return "basic"
        return "anonymous"


# --- node pools and probes -----------------------------------------------------------------------------

NodeFileSource = Literal["observed", "entered", "inferred", "unknown"]
#: Where a pool's node resolv.conf came from, most trustworthy first.
NODE_FILE_SOURCES: tuple[str, ...] = ("observed", "entered", "inferred", "unknown")


@dataclass
class NodePool:
    """Nodes that share what matters for DNS: kubelet facts, version, architecture.

    ``observed`` says, per fact (``kubelet_config``, ``node_resolv_conf``), whether it was read from the
    cluster (True) or assumed from the cluster's settings/defaults (False).
    ``node_resolv_conf`` is the *content* of the file the kubelet reads (None = unknown).
    ``node_resolv_conf_source`` says where that content came from (:data:`NODE_FILE_SOURCES`):
    ``observed`` (read inside a running pod through exec), ``entered`` (typed or uploaded by an admin),
    ``inferred`` (guessed from the nodes' cloud provider and addresses: a verdict resting on it is at most
    ``at-risk``) or ``unknown`` (nothing: musl workloads that inherit the node's searches are never safe).
    ``node_resolv_conf_evidence`` says how (the pod it was read in, the node fields, who entered it when).
    ``node_file_scope`` is ``"file"`` when the whole file is known, ``"searches"`` when only its search
    line is (read from a pod using cluster DNS, whose file shows the node's searches but not its
    nameservers or options).
    ``assumed`` lists what was assumed for this pool only (quoted in its workloads' non-safe verdicts).
    """

    name: str
    kubelet: KubeletDNS = field(default_factory=KubeletDNS)
    node_resolv_conf: str | None = None
    nodes: list[str] = field(default_factory=list)
    architecture: str = "amd64"
    os: str = "linux"
    observed: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    node_resolv_conf_source: NodeFileSource = "unknown"
    node_resolv_conf_evidence: list[str] = field(default_factory=list)
    node_file_scope: Literal["file", "searches"] = "file"
    assumed: list[str] = field(default_factory=list)

    @property
    def platform(self) -> str:
        """``os/arch`` of the pool's nodes, as image indexes name platforms (``linux/arm64``)."""
        return f"{self.os or 'linux'}/{self.architecture or 'amd64'}"

    @property
    def node_searches_known(self) -> bool:
        """True when the node's search domains were read or entered (not inferred, not unknown)."""
        return self.node_resolv_conf is not None and self.node_resolv_conf_source in ("observed", "entered")


@dataclass(frozen=True)
class ProbeResult:
    """What a nameserver answered for ``qname`` (``<probe-name>.<domain>``), both families."""

    domain: str
    probe_name: str
    qname: str
    server: str
    a: Answer
    aaaa: Answer
