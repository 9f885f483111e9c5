"""What ``cat /etc/resolv.conf`` shows inside a pod of the test API server: the kubelet's and containerd's
work, done again from the rules, so exec answers like a real cluster.

Real clusters do not expose a node's resolv.conf in the API. The file a pod sees was written when its sandbox
started: the kubelet's ``GetPodDNS`` (``pkg/kubelet/network/dns/dns.go``) turned the node file named by the
kubelet's ``resolvConf``, its ``clusterDNS``/``clusterDomain`` and the pod's ``dnsPolicy``/``hostNetwork``/
``dnsConfig`` into a CRI ``DNSConfig`` (servers, searches, options), and the container runtime wrote that to
the sandbox's resolv.conf, bind-mounted at ``/etc/resolv.conf`` in every container of the pod.

This module is the *test server's* implementation of those rules. It is written independently of
``dnsaudit.core.kubelet`` (and must never import ``dnsaudit.core``): the product's computation is checked
against what this server answers, so the two must not share code or mistakes.

The kubelet's rules, as implemented here (sources: kubernetes ``pkg/kubelet/network/dns/dns.go``, read at a
1.3x revision and the 1.23/1.24 + 1.25.x history in ``shared/reference/domain.md`` section 4):

* The node file is parsed like ``parseResolvConf``: ``#`` lines skipped; ``nameserver`` lines accumulate;
  the last ``search`` line wins (``domain`` is not read at all); ``options`` lines merge by option name (the
  later value wins). Search entries by kubelet version: before 1.25.0 one trailing dot is trimmed (so ``.``
  becomes an empty entry); 1.25.0 keeps ``.`` (kubernetes#112135); from 1.25.1 ``.`` is dropped and one
  trailing dot trimmed from the others.
* ``dnsPolicy``: ``ClusterFirst`` without ``hostNetwork`` and ``ClusterFirstWithHostNet`` → cluster DNS:
  nameservers = ``clusterDNS`` only, searches = ``<ns>.svc.<cd> svc.<cd> <cd>`` then the node's searches,
  duplicates omitted (the node's searches alone when ``clusterDomain`` is empty), options = ``ndots:5`` only.
  With an empty ``clusterDNS`` the kubelet falls back to ``Default`` (event ``MissingClusterDNS``).
  ``ClusterFirst`` with ``hostNetwork`` and ``Default`` → the node file's nameservers, searches and options;
  with ``resolvConf: ""`` instead ``127.0.0.1`` (``::1``) per IPv4 (IPv6) node IP, at least one, and
  ``search .``. ``None`` → nothing but the pod's ``dnsConfig``. An unknown policy is treated as
  ``ClusterFirst`` (the kubelet logs an error and does so).
* ``spec.dnsConfig`` is then appended: nameservers and searches appended with duplicates omitted, options
  merged by name (the pod's value wins; an option without value is written bare).
* Limits (``formDNSConfigFitsLimits``): the first 3 nameservers; searches cut to 32 entries, then entries over
  253 characters dropped, then entries dropped from the end until the line joined with spaces is at most
  2048 characters. Kubelets before 1.26 use the legacy 6 entries / 256 characters unless the configz
  ``featureGates`` turn ``ExpandedDNSConfig`` on (alpha 1.22, on by default from 1.26, GA 1.28).
* The kubelet reads the node file when each sandbox starts, for every policy (even ``None``): if it cannot be
  read the sandbox never starts. The test server does not make pods un-start; see :func:`pod_resolv_conf`.

Deliberate simplifications (documented, deterministic):

* Options: the kubelet merges through Go maps, so the order of options in the written line is random in a
  real cluster. Here it is first-appearance order (an overridden option keeps its place, new ones are
  appended). Tests should compare option *sets* when a merge happened.
* Kubelets older than 1.17 kept search entries verbatim; they are treated like 1.17–1.24.

The writer, as containerd's CRI plugin writes the sandbox file (read through the code search tool in
containerd ``internal/cri/server/podsandbox/sandbox_run_linux.go``, ``setupSandboxFiles`` and
``parseDNSOptions``, 2.x; and ``pkg/cri/server/sandbox_run_linux.go``, 1.7): one ``search`` line with the
entries joined by single spaces, then one ``nameserver <ip>`` line per server, then one ``options`` line
with the options joined by spaces, each line ending in ``\\n``, a line omitted when its list is empty. When all
three lists are empty, containerd 1.x copies the host's resolv.conf instead (approximated here by the node
file) while containerd 2.x writes the empty content as it is (an empty file). CRI-O writes the same three
lines in the same order.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from dnsaudit.testbed.fakekube.exec import ExecOutcome, ExecRequest, FakeContainer, alpine, debian, distroless
from dnsaudit.testbed.fakekube.objects import IMAGE_FACTS, canonical_image

#: Pod annotation choosing what every container (``alpine``) or named containers
#: (``app=alpine,sidecar=distroless``) of the pod run as, whatever their images.
EXEC_ANNOTATION = "fakekube.dnsaudit.io/exec"

Flavour = Literal["alpine", "debian", "distroless", "none"]
FLAVOURS: tuple[str, ...] = ("alpine", "debian", "distroless", "none")

#: The kubelet's ``defaultDNSOptions`` for cluster-DNS pods.
_CLUSTER_OPTIONS = ("ndots:5",)
MAX_NAMESERVERS = 3
MAX_SEARCHES, MAX_SEARCH_CHARS = 32, 2048
LEGACY_MAX_SEARCHES, LEGACY_MAX_SEARCH_CHARS = 6, 256
MAX_SEARCH_ENTRY = 253  # DNS1123SubdomainMaxLength

Version = tuple[int, int, int]


# --- kubelet facts ----------------------------------------------------------------------------------------


def parse_version(text: str | None) -> Version | None:
    """``v1.25.0+k3s1`` → ``(1, 25, 0)``; None when unreadable."""
    m = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", (text or "").strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


@dataclass(frozen=True)
class KubeletFacts:
    """What one node's kubelet and runtime use to build a pod's resolv.conf.

    ``resolv_conf`` is the kubelet's ``resolvConf`` path ("" = no node file). ``version`` None means a
    current kubelet. ``runtime`` is the Node's ``containerRuntimeVersion`` (``containerd://1.7.24``).
    """

    cluster_dns: tuple[str, ...] = ("10.96.0.10",)
    cluster_domain: str = "cluster.local"
    resolv_conf: str = "/etc/resolv.conf"
    node_ips: tuple[str, ...] = ()
    version: Version | None = None
    expanded_dns: bool | None = None  # the ExpandedDNSConfig gate when configz sets it
    runtime: str = "containerd://2.0.0"
    architecture: str = "amd64"

    @classmethod
    def from_objects(cls, config: Mapping | None, node: Mapping | None) -> KubeletFacts:
        """From a ``/configz`` ``kubeletconfig`` document (None: the class defaults) and the Node object
        (None: a current kubelet on containerd 2, amd64, with no known IPs). A config without ``clusterDNS``
        means none (ClusterFirst pods then fall back to Default, as on a real kubelet)."""
        status = (node or {}).get("status") or {}
        info = status.get("nodeInfo") or {}
        ips = tuple(
            a.get("address") or ""
            for a in status.get("addresses") or ()
            if a.get("type") == "InternalIP" and a.get("address")
        )
        kw: dict = {
            "node_ips": ips,
            "version": parse_version(info.get("kubeletVersion")),
            "runtime": info.get("containerRuntimeVersion") or cls.runtime,
            "architecture": info.get("architecture") or cls.architecture,
        }
        if config is not None:
            gates = config.get("featureGates") or {}
            resolv_conf = config.get("resolvConf")
            kw.update(
                cluster_dns=tuple(config.get("clusterDNS") or ()),
                cluster_domain=config.get("clusterDomain") or "",
                # The kubelet's own default for resolvConf is /etc/resolv.conf; "" means no node file.
                resolv_conf="/etc/resolv.conf" if resolv_conf is None else resolv_conf,
                expanded_dns=gates.get("ExpandedDNSConfig"),
            )
        return cls(**kw)

    @property
    def search_limits(self) -> tuple[int, int]:
        expanded = self.expanded_dns
        if expanded is None:
            expanded = self.version is None or self.version >= (1, 26, 0)
        return (
            (MAX_SEARCHES, MAX_SEARCH_CHARS) if expanded else (LEGACY_MAX_SEARCHES, LEGACY_MAX_SEARCH_CHARS)
        )


@dataclass(frozen=True)
class DNSConfig:
    """The CRI ``DNSConfig`` the kubelet hands to the runtime."""

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


class NodeFileUnknown(Exception):
    """The pod's file depends on the node file, and the test did not say what the node file holds."""


# --- the kubelet ------------------------------------------------------------------------------------------


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for i in items:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def _merge_options(existing: list[str], new: list[tuple[str, str]]) -> list[str]:
    """Options keyed by the name before the first ``:``; a later value replaces an earlier one in place."""
    merged: dict[str, str] = {}
    for opt in existing:
        name, _, value = opt.partition(":")
        merged[name] = value
    for name, value in new:
        merged[name] = value
    return [f"{n}:{v}" if v else n for n, v in merged.items()]


def parse_node_file(text: str, version: Version | None = None) -> DNSConfig:
    """The node file as the kubelet of ``version`` reads it (None = a current kubelet)."""
    servers: list[str] = []
    searches: list[str] = []
    options: dict[str, str] = {}
    for raw in text.split("\n"):
        line = raw.strip()
        if line.startswith("#"):
            continue
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) >= 2:
            servers.append(fields[1])
        elif fields[0] == "search":
            searches = [s for s in (_search_entry(f, version) for f in fields[1:]) if s is not None]
        elif fields[0] == "options":
            # appendOptions: keyed by the name before ":", a later line's value replaces an earlier one.
            for opt in fields[1:]:
                options[opt.split(":", 1)[0]] = opt
    return DNSConfig(tuple(servers), tuple(searches), tuple(options.values()))


def _search_entry(entry: str, version: Version | None) -> str | None:
    if version is not None and version < (1, 25, 0):
        return entry.removesuffix(".")  # "." becomes "" (an empty entry, written as a trailing space)
    if version == (1, 25, 0):
        return entry if entry == "." else entry.removesuffix(".")
    return None if entry == "." else entry.removesuffix(".")


def _fit_limits(cfg: DNSConfig, facts: KubeletFacts) -> DNSConfig:
    max_paths, max_chars = facts.search_limits
    searches = list(cfg.searches)[:max_paths]
    searches = [s for s in searches if len(s) <= MAX_SEARCH_ENTRY]
    while searches and len(" ".join(searches)) > max_chars:
        searches.pop()
    return DNSConfig(cfg.servers[:MAX_NAMESERVERS], tuple(searches), cfg.options)


def pod_dns_config(pod: Mapping, node_file: str | None, facts: KubeletFacts) -> DNSConfig:
    """``GetPodDNS``: the DNS config the kubelet on a node with ``facts`` gives ``pod``.

    ``node_file`` is the content of the file at ``facts.resolv_conf`` (ignored when that path is "").
    Raises :class:`NodeFileUnknown` when the result depends on a node file given as None.
    """
    spec = pod.get("spec") or {}
    namespace = (pod.get("metadata") or {}).get("namespace") or ""
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = bool(spec.get("hostNetwork"))
    if policy == "None":
        kind = "none"
    elif policy == "ClusterFirstWithHostNet":
        kind = "cluster"
    elif policy == "Default" or (policy == "ClusterFirst" and host_network):
        kind = "host"
    else:  # ClusterFirst, or an invalid policy (the kubelet falls back to ClusterFirst)
        kind = "cluster"
    if kind == "cluster" and not facts.cluster_dns:
        kind = "host"  # MissingClusterDNS: falls back to Default

    host = DNSConfig()
    if facts.resolv_conf and kind != "none":
        if node_file is None:
            raise NodeFileUnknown(facts.resolv_conf)
        host = parse_node_file(node_file, facts.version)

    servers: list[str]
    searches: list[str]
    options: list[str]
    if kind == "none":
        servers, searches, options = [], [], []
    elif kind == "cluster":
        servers = list(facts.cluster_dns)
        searches = list(host.searches)
        if facts.cluster_domain:
            cd = facts.cluster_domain
            searches = _dedupe([f"{namespace}.svc.{cd}", f"svc.{cd}", cd, *searches])
        options = list(_CLUSTER_OPTIONS)
    else:
        servers, searches, options = list(host.servers), list(host.searches), list(host.options)
        if not facts.resolv_conf:
            servers = []
            for ip in facts.node_ips:
                try:
                    v6 = ipaddress.ip_address(ip).version == 6
                except ValueError:
                    continue
                servers.append("::1" if v6 else "127.0.0.1")
            servers = servers or ["127.0.0.1"]
            searches = ["."]

    extra = spec.get("dnsConfig")
    if extra is not None:
        servers = _dedupe(servers + [str(s) for s in extra.get("nameservers") or ()])
        searches = _dedupe(searches + [str(s) for s in extra.get("searches") or ()])
        options = _merge_options(
            options,
            [(str(o.get("name", "")), str(o.get("value") or "")) for o in extra.get("options") or ()],
        )
    return _fit_limits(DNSConfig(tuple(servers), tuple(searches), tuple(options)), facts)


# --- the runtime -----------------------------------------------------------------------------------------


def render(
    cfg: DNSConfig, *, runtime: str = "containerd://2.0.0", host_file: str | None = None
) -> str | None:
    """The sandbox resolv.conf as containerd writes it (see the module docstring). None: nothing was written
    (containerd 1.x with empty lists and no known host file)."""
    out = ""
    if cfg.searches:
        out += "search " + " ".join(cfg.searches) + "\n"
    for server in cfg.servers:
        out += f"nameserver {server}\n"
    if cfg.options:
        out += "options " + " ".join(cfg.options) + "\n"
    if not out and _containerd_major(runtime) < 2:
        return host_file
    return out


def _containerd_major(runtime: str) -> int:
    name, _, ver = runtime.partition("://")
    v = parse_version(ver)
    if name != "containerd" or v is None:
        return 2
    return v[0]


def pod_resolv_conf(pod: Mapping, node_file: str | None, facts: KubeletFacts) -> str | None:
    """The content of ``/etc/resolv.conf`` in ``pod``'s containers; None when it depends on a node file the
    test did not give (the test server then serves containers *without* ``/etc/resolv.conf``: ``cat``
    answers "No such file or directory". A real kubelet that cannot read its ``resolvConf`` never starts
    the sandbox at all; the store's pods claim to be running, so this is the closest honest answer)."""
    try:
        cfg = pod_dns_config(pod, node_file, facts)
    except NodeFileUnknown:
        return None
    return render(cfg, runtime=facts.runtime, host_file=node_file)


# --- containers by image ----------------------------------------------------------------------------------

#: Repositories (after normalisation, without tag) whose images have no shell and no ``cat``.
_DISTROLESS_PREFIXES = (
    "gcr.io/distroless/",
    "cgr.dev/chainguard/static",
    "registry.k8s.io/kube-proxy",
    "registry.k8s.io/kube-apiserver",
    "registry.k8s.io/kube-controller-manager",
    "registry.k8s.io/kube-scheduler",
    "registry.k8s.io/pause",
    "registry.k8s.io/coredns/",
    "k8s.gcr.io/pause",
    "k8s.gcr.io/kube-proxy",
    "k8s.gcr.io/coredns",
    "docker.io/coredns/coredns",
    "docker.io/rancher/mirrored-coredns-coredns",
    "docker.io/rancher/mirrored-pause",
    "docker.io/library/scratch",
    "ghcr.io/kyverno/",
)


def _repository(image: str) -> tuple[str, str]:
    """``python:3.12-alpine`` → (``docker.io/library/python``, ``3.12-alpine``); a digest reference has no tag."""
    ref = canonical_image(image)
    if ":" not in ref.rsplit("/", 1)[-1]:
        return ref, ""
    repo, _, tag = ref.rpartition(":")
    return repo, tag


def image_flavour(image: str) -> Flavour:
    """Which fake container an image becomes: ``alpine`` (busybox on musl) for Alpine and ``-alpine`` tags
    and busybox (except its glibc/uclibc tags), ``distroless`` (nothing on ``$PATH``) for distroless,
    scratch and static images (``gcr.io/distroless/*``, Chainguard ``static``, kube-proxy and the other
    control-plane images, CoreDNS, pause, Kyverno, ``-distroless`` tags), ``debian`` (GNU coreutils on glibc)
    for everything else."""
    repo, tag = _repository(image)
    base = repo.rsplit("/", 1)[-1]
    tag_words = re.split(r"[-_.]", tag.lower())
    if any(repo.startswith(p) or repo + "/" == p for p in _DISTROLESS_PREFIXES) or "distroless" in tag_words:
        return "distroless"
    if base == "busybox":
        return "debian" if {"glibc", "uclibc"} & set(tag_words) else "alpine"
    if base == "alpine" or any(w.startswith("alpine") for w in tag_words):
        return "alpine"
    return "debian"


def _annotation_flavours(pod: Mapping) -> dict[str, str]:
    """``{"*": flavour}`` or ``{container: flavour}`` from the pod's :data:`EXEC_ANNOTATION`."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(EXEC_ANNOTATION)
    if not value:
        return {}
    out: dict[str, str] = {}
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        name, eq, flavour = part.partition("=")
        if eq:
            out[name.strip()] = flavour.strip()
        else:
            out["*"] = name
    return out


def container_flavour(pod: Mapping, container: str, image_flavours: Mapping[str, str] | None = None) -> str:
    """The flavour of ``container`` in ``pod``: the pod's annotation (per container, then for all), then the
    cluster's ``image_flavours`` (by image as written in the spec, then by repository without tag), then
    :func:`image_flavour`. The result may be an invalid word taken from an annotation; callers check it."""
    by_annotation = _annotation_flavours(pod)
    if container in by_annotation:
        return by_annotation[container]
    if "*" in by_annotation:
        return by_annotation["*"]
    image = ""
    for c in (pod.get("spec") or {}).get("containers") or ():
        if c.get("name") == container:
            image = c.get("image") or ""
    overrides = image_flavours or {}
    if image in overrides:
        return overrides[image]
    repo, _tag = _repository(image)
    for key, flavour in overrides.items():
        if _repository(key)[0] == repo and ":" not in key.rsplit("/", 1)[-1] and "@" not in key:
            return flavour
    return image_flavour(image)


_ARCH = {"amd64": "x86_64", "arm64": "aarch64", "arm": "armhf", "386": "i386", "ppc64le": "powerpc64le"}


def build_container(
    flavour: str, image: str, resolv_conf: str | None, *, architecture: str = "amd64"
) -> FakeContainer | None:
    """A fake container of ``flavour`` whose ``/etc/resolv.conf`` is ``resolv_conf`` (absent when None).
    None for the ``none`` flavour (the exec then fails in the runtime)."""
    arch = _ARCH.get(architecture, architecture)
    text = resolv_conf or ""
    if flavour == "alpine":
        extra: dict[str, str | bytes] = {}
        _libc, musl, os_name = IMAGE_FACTS.get(image, ("musl", None, ""))
        if musl:
            extra["/lib/apk/db/installed"] = f"P:musl\nV:{musl}-r0\n"
        if os_name.startswith("alpine "):
            release = os_name.split()[1] + ".0"
            extra["/etc/alpine-release"] = release + "\n"
            extra["/etc/os-release"] = f'NAME="Alpine Linux"\nID=alpine\nVERSION_ID={release}\n'
        container = alpine(text, arch=arch, extra=extra)
    elif flavour == "debian":
        container = debian(text, arch=arch)
    elif flavour == "distroless":
        container = distroless(text)
    else:
        return None
    if resolv_conf is None:
        container.files.pop("/etc/resolv.conf", None)
    return container


def run_in_pod(
    req: ExecRequest,
    pod: Mapping,
    resolv_conf: str | None,
    *,
    architecture: str = "amd64",
    image_flavours: Mapping[str, str] | None = None,
) -> ExecOutcome:
    """Answer ``req`` in ``pod`` (already checked by the API server: the container exists and runs) with a
    fake container chosen by :func:`container_flavour`, holding ``resolv_conf`` as ``/etc/resolv.conf``."""
    flavour = container_flavour(pod, req.container, image_flavours)
    if flavour not in FLAVOURS:
        return ExecOutcome(
            runtime_error=(
                f"dnsaudit test API server: annotation {EXEC_ANNOTATION} on {req.namespace}/{req.pod} names "
                f"{flavour!r}; use one of {', '.join(FLAVOURS)}"
            )
        )
    image = next(
        (
            c.get("image") or ""
            for c in (pod.get("spec") or {}).get("containers") or ()
            if c.get("name") == req.container
        ),
        "",
    )
    container = build_container(flavour, image, resolv_conf, architecture=architecture)
    if container is None:
        return ExecOutcome(
            runtime_error=f"dnsaudit test API server: no exec handler for {req.namespace}/{req.pod}/{req.container}"
        )
    return container(req)
