"""The kubelet's rules for a pod's effective ``/etc/resolv.conf``.

A Python model of ``pkg/kubelet/network/dns/dns.go`` (``Configurer.GetPodDNS`` and its helpers), plus
the CRI runtimes' way of writing the file. Each function below names the kubelet function it models.
Pure: no I/O. The caller passes the *content* of the node's resolv.conf, never a path to open.

Version-dependent behaviour (kubelet version from ``KubeletDNS.version``; ``None`` = newest):

* ``search .`` in the node file (systemd-resolved writes it on hosts with an FQDN hostname):
  ≤1.24 trims the trailing dot of every entry, so ``.`` becomes ``""`` (the pod's search line ends with
  a space); 1.25.0 (PR #109441) keeps ``.`` verbatim; ≥1.25.1 (PR #112157, cherry-pick #112204) drops it.
  Every other entry loses exactly one trailing dot in all three (``foo.`` → ``foo``, ``foo..`` → ``foo.``).
* Several ``options`` lines: before 1.26 the last line wins; from 1.26.0 (PR #112414, in
  v1.26.0-alpha.2) all lines are merged by option name, a later ``name[:value]`` replacing an earlier one.
  Go builds that merge from a map (random order); we keep the first-seen position of each name so that
  results are deterministic.
* Search limits (``ExpandedDNSConfig``, KEP-2595): 32 entries / 2048 characters when expanded, 6 / 256
  when legacy. The gate was off by default before 1.26 and on from 1.26 (GA 1.28), which
  :func:`expanded_limits_for` encodes for :func:`workload_resolv_conf`.

Not modelled: kubelets older than ~1.17 (search entries kept verbatim, no trailing-dot trimming).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field

from dnsaudit.core.model import KubeletDNS, ResolvConf, Workload

# Limits from pkg/apis/core/validation (MaxDNSNameservers, MaxDNSSearchPaths*, MaxDNSSearchListChars*).
MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_PATHS_LEGACY = 6
MAX_SEARCH_LIST_CHARS = 2048
MAX_SEARCH_LIST_CHARS_LEGACY = 256
#: utilvalidation.DNS1123SubdomainMaxLength: longer search entries are removed (glibc 2.28 aborted on them).
MAX_SEARCH_ENTRY_CHARS = 253
#: maxResolvConfLength: the kubelet refuses a node file larger than 10 MiB.
MAX_RESOLV_CONF_BYTES = 10 << 20
#: defaultDNSOptions: what a ClusterFirst pod gets instead of the node's options.
DEFAULT_CLUSTER_OPTIONS = ("ndots:5",)

DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")

# Origins reported for each search entry / nameserver of a pod.
ORIGIN_CLUSTER = "cluster"  # clusterDNS, or <ns>.svc.<cd> / svc.<cd> / <cd>
ORIGIN_NODE = "node"  # the node resolv.conf the kubelet reads
ORIGIN_DNS_CONFIG = "dnsConfig"  # pod.spec.dnsConfig
ORIGIN_KUBELET = "kubelet"  # invented by the kubelet itself (resolvConf: "" → 127.0.0.1 / ::1 / ".")


class KubeletDNSError(ValueError):
    """The kubelet cannot use the node resolv.conf (``parseResolvConf``/``getHostDNSConfig`` error).

    The kubelet then fails ``GetPodDNS`` for *every* pod on the node, dnsPolicy ``None`` included,
    because the host file is read before the policy is looked at.
    """


@dataclass(frozen=True)
class UnreadableNodeFile:
    """Stands for a node resolv.conf the kubelet cannot open (missing path, permissions: ``os.Open`` error).

    Pass it as ``node_file`` to :func:`pod_resolv_conf` when a boundary *knows* the file is not there
    (vector K17). ``None`` means something else: the content is unknown to us, not absent on the node.
    """

    reason: str = "no such file or directory"


NodeFile = str | UnreadableNodeFile | None


@dataclass
class PodDNS:
    """The kubelet's answer for one pod: the DNS config it hands to the CRI, and why it looks that way.

    ``dns_type`` is the *effective* base: ``"cluster"``, ``"host"`` (also after the MissingClusterDNS
    fallback) or ``"none"``. ``events`` are ``"Reason: message"`` strings for what the kubelet would emit
    (Kubernetes events such as ``DNSConfigForming``/``MissingClusterDNS``; kubelet log errors such as an
    invalid dnsPolicy; and our own ``NodeResolvConfUnknown`` note when the node file was not known).
    ``search_origin``/``nameserver_origin`` map each entry of the final lists to where it came from
    (the first source wins when sources repeat an entry, as ``omitDuplicates`` keeps the first).
    ``error`` is set when the kubelet would fail the sandbox; ``conf`` is then empty.
    """

    conf: ResolvConf
    dns_type: str
    events: list[str] = field(default_factory=list)
    search_origin: dict[str, str] = field(default_factory=dict)
    nameserver_origin: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            "conf": self.conf.to_dict(),
            "dns_type": self.dns_type,
            "events": list(self.events),
            "search_origin": dict(self.search_origin),
            "nameserver_origin": dict(self.nameserver_origin),
            "error": self.error,
        }


# --- versions ----------------------------------------------------------------------------------------

_VERSION_RE = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?")


def version_tuple(v: str | None) -> tuple[int, int, int] | None:
    """``"v1.25.0"``, ``"1.25.0-eks-1"``, ``"v1.28.3+k3s1"``, ``"1.29"`` → ``(1, 25, 0)``...; else ``None``.

    Pre-release and vendor suffixes are ignored (``v1.25.0-rc.1`` counts as 1.25.0).
    """
    if not v:
        return None
    m = _VERSION_RE.match(v)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _search_dot_mode(kubelet_version: str | None) -> str:
    """How ``parseResolvConf`` treats a bare ``.`` search entry: ``"trim"``, ``"keep"`` or ``"drop"``."""
    vt = version_tuple(kubelet_version)
    if vt is None or vt >= (1, 25, 1):
        return "drop"
    if vt >= (1, 25, 0):
        return "keep"
    return "trim"


def _merges_option_lines(kubelet_version: str | None) -> bool:
    """True when ``parseResolvConf`` merges several ``options`` lines (``appendOptions``, 1.26.0+)."""
    vt = version_tuple(kubelet_version)
    return vt is None or vt >= (1, 26, 0)


def expanded_limits_for(kubelet_version: str | None) -> bool:
    """Whether the kubelet applies the expanded search limits (ExpandedDNSConfig on by default from 1.26)."""
    vt = version_tuple(kubelet_version)
    return vt is None or vt >= (1, 26, 0)


# --- parseResolvConf ---------------------------------------------------------------------------------


def _search_entries(fields: list[str], dot_mode: str) -> list[str]:
    """The entries of one ``search`` line after the kubelet's per-entry normalisation."""
    out: list[str] = []
    for s in fields:
        if s == "." and dot_mode == "drop":
            continue
        if s == "." and dot_mode == "keep":
            out.append(s)
            continue
        # strings.TrimSuffix removes exactly one trailing dot; "." becomes "" in the "trim" era.
        out.append(s[:-1] if s.endswith(".") else s)
    return out


def _option_name(option: str) -> str:
    return option.split(":", 1)[0]


def _append_options(existing: list[str], new: list[str]) -> list[str]:
    """``appendOptions``: merge by option name, later wins; first-seen position kept (deterministic)."""
    merged: dict[str, str] = {}
    for opt in [*existing, *new]:
        merged[_option_name(opt)] = opt
    return list(merged.values())


@functools.lru_cache(maxsize=64)  # a pool's file, again for each of its workloads (the result is frozen)
def parse_node_resolv_conf(text: str, kubelet_version: str | None = None) -> ResolvConf:
    """Parse a node resolv.conf exactly as the kubelet's ``parseResolvConf`` does.

    * Lines whose trimmed form starts with ``#`` are comments; a ``#`` later in a line is just a field
      (only ``fields[1]`` of a ``nameserver`` line is used, so ``nameserver 1.2.3.4 #x`` works).
    * ``nameserver`` lines accumulate; one without an address is an error (:class:`KubeletDNSError`).
    * ``search`` lines replace the list (last one wins); entries normalised per kubelet version (module doc).
    * ``options`` lines: last one wins before 1.26, merged by name from 1.26 (module doc).
    * ``domain``, ``sortlist``, ``lookup``... are **not** parsed: the kubelet ignores them.
    * Keywords are case-sensitive; a file over 10 MiB is refused.
    """
    if len(text.encode("utf-8", "surrogateescape")) > MAX_RESOLV_CONF_BYTES:
        raise KubeletDNSError(f"resolv.conf is larger than the kubelet reads ({MAX_RESOLV_CONF_BYTES} bytes)")
    dot_mode = _search_dot_mode(kubelet_version)
    merge_options = _merges_option_lines(kubelet_version)
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    errors: list[str] = []
    for line in text.split("\n"):
        trimmed = line.strip()
        if trimmed.startswith("#"):
            continue
        fields = trimmed.split()
        if not fields:
            continue
        keyword = fields[0]
        if keyword == "nameserver":
            if len(fields) >= 2:
                nameservers.append(fields[1])
            else:
                errors.append("nameserver list is empty")
        elif keyword == "search":
            searches = _search_entries(fields[1:], dot_mode)
        elif keyword == "options":
            options = _append_options(options, fields[1:]) if merge_options else fields[1:]
    if errors:
        # The kubelet aggregates the errors and discards the whole result.
        raise KubeletDNSError("; ".join(errors))
    return ResolvConf(tuple(nameservers), tuple(searches), tuple(options))


# --- small helpers mirroring dns.go --------------------------------------------------------------


def cluster_searches(namespace: str, cluster_domain: str) -> list[str]:
    """The three ClusterFirst search domains (``generateSearchesForDNSClusterFirst``); none without a domain.

    The namespace is used as is: a pod without one gets ``.svc.<domain>`` (as in the kubelet's own test).
    """
    if not cluster_domain:
        return []
    return [f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]


def pod_dns_type(dns_policy: str, host_network: bool) -> str:
    """``getPodDNSType``: ``"cluster"``, ``"host"`` or ``"none"``.

    ``ClusterFirst`` with ``hostNetwork`` falls through to ``Default`` (host). An unknown policy (the API
    server should have rejected it) is treated as ``ClusterFirst`` — the kubelet logs an error; see
    :func:`pod_resolv_conf` for the event we record.
    """
    if dns_policy == "None":
        return "none"
    if dns_policy == "ClusterFirstWithHostNet":
        return "cluster"
    if dns_policy == "ClusterFirst":
        return "host" if host_network else "cluster"
    if dns_policy == "Default":
        return "host"
    return "cluster"


def omit_duplicates(items: list[str]) -> list[str]:
    """``omitDuplicates``: keep the first occurrence of each string, order preserved."""
    return list(dict.fromkeys(items))


def merge_dns_options(
    existing: list[str] | tuple[str, ...], dns_config_options: list[dict] | None
) -> list[str]:
    """``mergeDNSOptions``: base ``name[:value]`` strings merged with dnsConfig options, dnsConfig winning.

    Go keys a map by the text before the first ``:`` and writes ``name`` alone when the value is empty.
    Its output order is the map's (random); ours is the base order with new names appended.
    ``dns_config_options`` uses the API shape ``[{"name": "ndots", "value": "5"}, {"name": "edns0"}]``.
    """
    merged: dict[str, str] = {}
    for op in existing:
        name, _, value = op.partition(":")
        merged[name] = value
    for op in dns_config_options or []:
        value = op.get("value")
        merged[str(op.get("name") or "")] = "" if value is None else str(value)
    return [f"{name}:{value}" if value != "" else name for name, value in merged.items()]


@functools.lru_cache(maxsize=4096)  # every pod of every workload asks again for the same few servers
def _canonical_ip(ip: str) -> str:
    """``net.IP.String()`` of a clusterDNS entry (the kubelet stores parsed IPs): IPv6 compressed."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)  # Go prints a 4-in-6 address as dotted IPv4
    return str(addr)


def _is_ipv6(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is None


def fit_nameservers(servers: list[str]) -> tuple[list[str], str | None]:
    """``formDNSNameserversFitsLimits``: keep the first 3; returns the list and the event (or None)."""
    if len(servers) <= MAX_NAMESERVERS:
        return list(servers), None
    kept = list(servers[:MAX_NAMESERVERS])
    event = (
        "DNSConfigForming: Nameserver limits were exceeded, some nameservers have been omitted, "
        f"the applied nameserver line is: {' '.join(kept)}"
    )
    return kept, event


def fit_searches(searches: list[str], *, expanded_limits: bool = True) -> tuple[list[str], str | None]:
    """``formDNSSearchFitsLimits``: the search list the kubelet actually applies, and its event (or None).

    In the kubelet's order: cut to the path limit (32, legacy 6); remove entries over 253 characters;
    then, while the space-joined line is over the character limit (2048, legacy 256), drop entries from
    the end. The arithmetic is the kubelet's own (it counts one space per dropped entry).
    """
    max_paths = MAX_SEARCH_PATHS if expanded_limits else MAX_SEARCH_PATHS_LEGACY
    max_chars = MAX_SEARCH_LIST_CHARS if expanded_limits else MAX_SEARCH_LIST_CHARS_LEGACY
    exceeded = False
    composed = list(searches)
    if len(composed) > max_paths:
        composed = composed[:max_paths]
        exceeded = True
    short = [s for s in composed if len(s) <= MAX_SEARCH_ENTRY_CHARS]
    if len(short) != len(composed):
        exceeded = True
    composed = short
    line_len = len(" ".join(composed))
    if line_len > max_chars:
        cut_num = 0
        cut_len = 0
        for entry in reversed(composed):
            cut_len += len(entry) + 1
            cut_num += 1
            if line_len - cut_len <= max_chars:
                break
        composed = composed[: len(composed) - cut_num]
        exceeded = True
    if not exceeded:
        return composed, None
    event = (
        "DNSConfigForming: Search Line limits were exceeded, some search paths have been omitted, "
        f"the applied search line is: {' '.join(composed)}"
    )
    return composed, event


# --- GetPodDNS -----------------------------------------------------------------------------------


@dataclass
class _Draft:
    """The DNS config being built, each server/search paired with its origin."""

    servers: list[tuple[str, str]] = field(default_factory=list)
    searches: list[tuple[str, str]] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def dedupe(self) -> None:
        self.servers = _dedupe_pairs(self.servers)
        self.searches = _dedupe_pairs(self.searches)


def _dedupe_pairs(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for value, origin in pairs:
        seen.setdefault(value, origin)
    return list(seen.items())


def _host_draft(conf: ResolvConf) -> _Draft:
    """``getHostDNSConfig`` result as a draft (every entry from the node file)."""
    return _Draft(
        servers=[(s, ORIGIN_NODE) for s in conf.nameservers],
        searches=[(s, ORIGIN_NODE) for s in conf.searches],
        options=list(conf.options),
    )


def _loopback_servers(node_ips: tuple[str, ...]) -> list[str]:
    """resolvConf "" for host DNS: ``127.0.0.1`` per IPv4 node IP, ``::1`` per IPv6 one, at least one."""
    servers = ["::1" if _is_ipv6(ip) else "127.0.0.1" for ip in node_ips]
    return servers or ["127.0.0.1"]


def _read_host_config(kubelet: KubeletDNS, node_file: NodeFile, events: list[str]) -> ResolvConf:
    """``getHostDNSConfig``: the node file as parsed, empty when ``resolvConf`` is ``""``.

    Raises :class:`KubeletDNSError` for an unreadable or unparseable file.
    """
    if kubelet.resolv_conf == "":
        return ResolvConf()
    if isinstance(node_file, UnreadableNodeFile):
        raise KubeletDNSError(f"open {kubelet.resolv_conf}: {node_file.reason}")
    if node_file is None:
        events.append(
            f"NodeResolvConfUnknown: the content of {kubelet.resolv_conf} on the node is not known; "
            "assumed empty (no nameserver, search or options inherited from the node)"
        )
        return ResolvConf()
    return parse_node_resolv_conf(node_file, kubelet.version)


def pod_resolv_conf(
    namespace: str,
    dns_policy: str,
    host_network: bool,
    dns_config: dict | None,
    kubelet: KubeletDNS,
    node_file: NodeFile,
    *,
    expanded_limits: bool = True,
) -> PodDNS:
    """``GetPodDNS`` followed by ``formDNSConfigFitsLimits``: the DNS config the kubelet gives the CRI.

    ``node_file`` is the *content* of the file at ``kubelet.resolv_conf`` (``None`` = unknown → treated
    as empty with a ``NodeResolvConfUnknown`` event; :class:`UnreadableNodeFile` = the kubelet cannot open
    it → ``error``). ``dns_config`` is ``pod.spec.dnsConfig`` in API shape (``nameservers``,
    ``searches``, ``options`` as ``[{"name", "value"}]``). Steps, as in the kubelet:

    1. read the host config (an error here fails every pod, even dnsPolicy None);
    2. pick the base by :func:`pod_dns_type` — none: empty; cluster: clusterDNS servers, the three
       cluster searches + host searches (deduplicated), ``ndots:5``; cluster without clusterDNS:
       ``MissingClusterDNS`` and fall back to host; host: the host config, or with ``resolvConf: ""``
       loopback servers and search ``.``;
    3. if ``dns_config`` is not None, append its servers/searches (deduplicated) and merge options;
    4. apply the limits (3 servers; search limits per ``expanded_limits``).
    """
    events: list[str] = []
    dns_type = pod_dns_type(dns_policy, host_network)
    if dns_policy not in DNS_POLICIES:
        events.append(
            f"InvalidDNSPolicy: invalid DNSPolicy={dns_policy}; the kubelet logs this error and falls back "
            "to ClusterFirst (no Kubernetes event)"
        )
    try:
        host = _read_host_config(kubelet, node_file, events)
    except KubeletDNSError as exc:
        return PodDNS(conf=ResolvConf(), dns_type=dns_type, events=events, error=str(exc))

    draft = _host_draft(host)
    if dns_type == "none":
        draft = _Draft()
    elif dns_type == "cluster":
        if kubelet.cluster_dns:
            draft.servers = [(_canonical_ip(ip), ORIGIN_CLUSTER) for ip in kubelet.cluster_dns]
            if kubelet.cluster_domain:
                draft.searches = [
                    (s, ORIGIN_CLUSTER) for s in cluster_searches(namespace, kubelet.cluster_domain)
                ]
                draft.searches += [(s, ORIGIN_NODE) for s in host.searches]
                draft.searches = _dedupe_pairs(draft.searches)
            draft.options = list(DEFAULT_CLUSTER_OPTIONS)
        else:
            events.append(
                "MissingClusterDNS: kubelet does not have ClusterDNS IP configured and cannot create Pod using "
                '"ClusterFirst" policy. Falling back to "Default" policy.'
            )
            dns_type = "host"
    if dns_type == "host" and kubelet.resolv_conf == "":
        draft.servers += [(s, ORIGIN_KUBELET) for s in _loopback_servers(kubelet.node_ips)]
        draft.searches = [(".", ORIGIN_KUBELET)]

    if dns_config is not None:
        draft.servers += [(str(s), ORIGIN_DNS_CONFIG) for s in dns_config.get("nameservers") or []]
        draft.searches += [(str(s), ORIGIN_DNS_CONFIG) for s in dns_config.get("searches") or []]
        draft.dedupe()
        draft.options = merge_dns_options(draft.options, dns_config.get("options"))

    servers, ns_event = fit_nameservers([s for s, _ in draft.servers])
    searches, search_event = fit_searches([s for s, _ in draft.searches], expanded_limits=expanded_limits)
    events += [e for e in (ns_event, search_event) if e]
    server_origin = dict(_dedupe_pairs(draft.servers))
    search_origin = dict(_dedupe_pairs(draft.searches))
    return PodDNS(
        conf=ResolvConf(tuple(servers), tuple(searches), tuple(draft.options)),
        dns_type=dns_type,
        events=events,
        search_origin={s: search_origin[s] for s in searches},
        nameserver_origin={s: server_origin[s] for s in servers},
    )


def workload_resolv_conf(w: Workload, kubelet: KubeletDNS, node_file: NodeFile) -> PodDNS:
    """:func:`pod_resolv_conf` for a workload's pod template, with the limits of the kubelet's version."""
    return pod_resolv_conf(
        w.namespace,
        w.dns_policy,
        w.host_network,
        w.dns_config,
        kubelet,
        node_file,
        expanded_limits=expanded_limits_for(kubelet.version),
    )


def render_resolv_conf(conf: ResolvConf) -> str:
    """The file as containerd/CRI-O write it: ``search``, then one ``nameserver`` per server, then ``options``.

    Each list is joined with single spaces (so an empty search entry leaves a trailing space, as the
    ≤1.24 kubelets produced for ``search .``); an empty list omits its line.
    """
    lines: list[str] = []
    if conf.searches:
        lines.append("search " + " ".join(conf.searches))
    lines += [f"nameserver {s}" for s in conf.nameservers]
    if conf.options:
        lines.append("options " + " ".join(conf.options))
    return "".join(line + "\n" for line in lines)
