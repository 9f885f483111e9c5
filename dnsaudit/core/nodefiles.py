"""Learn each node pool's resolv.conf (the file the kubelet reads), which the Kubernetes API does not expose.

Two ways, most trustworthy first:

* **Observe** it in running pods (the exec gatherer ``clusters/nodefiles.py`` reads ``/etc/resolv.conf``
  with ``cat``; this module judges what came back). What a pod's file shows depends on its DNS policy
  (``dnsaudit.core.kubelet.pod_dns_type``):

  - *host* pods (``dnsPolicy: Default``, or ``ClusterFirst`` with ``hostNetwork``) show the node file
    itself, as the kubelet parsed it (nameservers, searches, options; comments, ``domain`` lines and
    trailing dots gone): scope ``"file"``;
  - *cluster* pods (``ClusterFirst`` without ``hostNetwork``, ``ClusterFirstWithHostNet``) show the node's
    search domains after the cluster's own three (``<ns>.svc.<cd> svc.<cd> <cd>``), de-duplicated and
    possibly cut at the kubelet's limits, but neither the node's nameservers nor its options (replaced by
    ``clusterDNS`` and ``ndots:5``): scope ``"searches"``;
  - ``dnsPolicy: None`` pods show only their own ``dnsConfig``: never usable.
  - A pod with a ``dnsConfig`` (policy other than None): its searches are *appended* and de-duplicated, so
    a dnsConfig search that equals a node search leaves no trace of which one it was. Subtracting them is
    therefore never safe, and such pods are not used. A dnsConfig **without** searches (typically a
    Kyverno/hand-written ``ndots`` option) leaves the search list exact: those pods are used, for the
    searches only (their nameservers and options mix the node's with the dnsConfig's).

  :func:`node_file_from_pod_file` is strict: a file that is not what the kubelet and the runtime would
  write for that pod (the cluster searches not first, foreign options, comments, a line the runtime never
  writes, a value that is not a DNS name or an IP address) raises ``ValueError``: better "not learned"
  than learned wrong (the pod may predate a node change, have been mutated, or rewrite its own file).

* **Infer** it from Node objects (:func:`infer_node_searches`): the cloud provider in ``spec.providerID``
  and its documented DHCP default, or a domain visible in the node's addresses. A verdict resting on an
  inferred file is at most ``at-risk`` (see ``NodePool.node_resolv_conf_source``).

Pure: no Django, no network, no client library. Every result is a plain dataclass.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from dnsaudit.core.kubelet import (
    DEFAULT_CLUSTER_OPTIONS,
    MAX_NAMESERVERS,
    MAX_SEARCH_ENTRY_CHARS,
    MAX_SEARCH_LIST_CHARS,
    MAX_SEARCH_LIST_CHARS_LEGACY,
    MAX_SEARCH_PATHS,
    MAX_SEARCH_PATHS_LEGACY,
    cluster_searches,
    expanded_limits_for,
    merge_dns_options,
    omit_duplicates,
    pod_dns_type,
)
from dnsaudit.core.model import KubeletDNS

#: The most of a pod's file we look at. A kubelet-written file is at most ~2.3 KB (3 nameservers, a
#: 2048-character search line, options); anything longer was not written by the kubelet.
MAX_POD_FILE_BYTES = 64 * 1024

Scope = Literal["file", "searches"]
#: Candidate categories, best first: ``host`` pods show the whole node file; ``cluster`` pods its searches;
#: ``dns-config`` pods (a dnsConfig without searches) their searches too, but with foreign options mixed in.
CATEGORIES: tuple[str, ...] = ("host", "cluster", "dns-config")
#: Container preference by the libc verdict of its image: musl/glibc images have ``cat``; static and
#: unknown ones often have nothing (distroless, scratch).
LIBC_RANK: dict[str, int] = {"musl": 0, "glibc": 0, "unknown": 1, "static": 2}


# --- DNS names ---------------------------------------------------------------------------------------------

_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _is_label(text: str) -> bool:
    # fullmatch: a ``$`` anchor would accept a trailing newline
    return _LABEL_RE.fullmatch(text) is not None


def valid_dns_name(name: object) -> bool:
    """True for a DNS name we accept from someone else's data: ASCII labels of 1–63 letters, digits and
    hyphens (not at either end of a label), at most 253 characters; one trailing dot allowed."""
    if not isinstance(name, str) or not name.isascii():
        return False
    text = name[:-1] if name.endswith(".") else name
    if not text or len(text) > MAX_SEARCH_ENTRY_CHARS:
        return False
    return all(_is_label(label) for label in text.split("."))


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return "%" not in text or bool(re.fullmatch(r"[^%]+%[A-Za-z0-9_.-]{1,32}", text))


_OPTION = re.compile(r"[A-Za-z0-9_.:+-]{1,64}")


def _quote(value: object, limit: int = 80) -> str:
    """A value from the cluster, safe to put in evidence: quoted, escaped, cut."""
    text = repr(str(value))
    return text if len(text) <= limit else text[: limit - 2] + "…'"


# --- one pod's file ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeFileReading:
    """What a pod's ``/etc/resolv.conf`` (or several agreeing pods') says about the node file.

    ``scope`` ``"file"``: the whole file is known (``nameservers``/``options`` set); ``"searches"``: only
    its search line (``nameservers``/``options`` None). ``searches`` are the node's entries as the kubelet
    uses them (a bare ``.`` for systemd's ``search .``). ``content`` is the node file to store in
    ``NodePool.node_resolv_conf``: the whole file for ``"file"``, ``"search a b\\n"`` for ``"searches"``
    (``""`` when the node has no search domain). ``complete`` is False when the kubelet may have cut the
    list at its limits (the pod shows a prefix of the node's searches). ``sources`` name each pod
    (``namespace/pod on node N``); ``evidence`` says how each was read; ``notes`` say what is uncertain.
    """

    scope: Scope
    searches: tuple[str, ...]
    nameservers: tuple[str, ...] | None
    options: tuple[str, ...] | None
    content: str
    complete: bool = True
    sources: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "scope": self.scope,
            "searches": list(self.searches),
            "nameservers": None if self.nameservers is None else list(self.nameservers),
            "options": None if self.options is None else list(self.options),
            "content": self.content,
            "complete": self.complete,
            "sources": list(self.sources),
            "evidence": list(self.evidence),
            "notes": list(self.notes),
        }


def source_name(namespace: str, pod: str, node: str | None) -> str:
    """``namespace/pod on node N`` (the form every evidence line uses)."""
    return f"{namespace}/{pod} on node {node}" if node else f"{namespace}/{pod}"


def _parse_runtime_file(text: str) -> tuple[list[str], list[str] | None, list[str] | None]:
    """Split a file as containerd/CRI-O/cri-dockerd write it: at most one ``search`` line, ``nameserver``
    lines, at most one ``options`` line, in any order; nothing else. Returns (nameservers, searches or
    None, options or None). The search line is split on single spaces, as the runtime joined it, so the
    empty entry a ≤1.24 kubelet makes of ``search .`` survives as ``""``."""
    nameservers: list[str] = []
    searches: list[str] | None = None
    options: list[str] | None = None
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip():
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "nameserver":
            fields = rest.split()
            if len(fields) != 1:
                raise ValueError(
                    f"line {number}: a nameserver line the runtime would not write: {_quote(line)}"
                )
            nameservers.append(fields[0])
        elif keyword == "search":
            if searches is not None:
                raise ValueError("two search lines: the runtime writes one; the file was not written by it")
            searches = rest.split(" ")
        elif keyword == "options":
            if options is not None:
                raise ValueError("two options lines: the runtime writes one; the file was not written by it")
            options = rest.split()
        else:
            raise ValueError(
                f"line {number} is not a search, nameserver or options line ({_quote(line)}): the file was "
                "not written by the container runtime (a copy of a host file, or rewritten in the container)"
            )
    return nameservers, searches, options


def _check_entries(searches: list[str], nameservers: list[str], options: list[str] | None) -> None:
    for s in searches:
        if s not in ("", ".") and not valid_dns_name(s):
            raise ValueError(f"search entry {_quote(s)} is not a DNS name")
    if searches.count("") > 1 or len(set(searches)) != len(searches):
        raise ValueError("the search list repeats an entry: the kubelet removes duplicates")
    for ns in nameservers:
        if not _valid_ip(ns):
            raise ValueError(f"nameserver {_quote(ns)} is not an IP address")
    for op in options or ():
        if not _OPTION.fullmatch(op):
            raise ValueError(f"option {_quote(op)} is not a resolver option")


def _node_entry(entry: str) -> str:
    """A pod-file search entry as written in the node file: ``""`` (≤1.24's rendering of ``.``) is ``.``."""
    return "." if entry == "" else entry


def _render(searches: Sequence[str], nameservers: Sequence[str], options: Sequence[str]) -> str:
    lines = []
    if searches:
        lines.append("search " + " ".join(searches))
    lines += [f"nameserver {s}" for s in nameservers]
    if options:
        lines.append("options " + " ".join(options))
    return "".join(line + "\n" for line in lines)


def _limits(kubelet_version: str | None) -> tuple[int, int]:
    if expanded_limits_for(kubelet_version):
        return MAX_SEARCH_PATHS, MAX_SEARCH_LIST_CHARS
    return MAX_SEARCH_PATHS_LEGACY, MAX_SEARCH_LIST_CHARS_LEGACY


def _maybe_cut(searches: Sequence[str], kubelet_version: str | None) -> bool:
    """Could the kubelet have dropped search entries here? (the list is at the path limit, or so close to
    the character limit that one more entry of up to 253 characters would have been dropped)."""
    max_paths, max_chars = _limits(kubelet_version)
    return len(searches) >= max_paths or len(" ".join(searches)) > max_chars - (MAX_SEARCH_ENTRY_CHARS + 1)


def _canonical(ip: str) -> str:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def node_file_from_pod_file(
    text: str,
    *,
    dns_policy: str,
    host_network: bool,
    namespace: str,
    cluster_domain: str,
    cluster_dns: Sequence[str] | None = None,
    dns_config: Mapping | None = None,
    kubelet_version: str | None = None,
    resolv_conf: str | None = None,
    source: str = "",
) -> NodeFileReading:
    """What ``text`` (a pod's ``/etc/resolv.conf``) says about its node's file; ``ValueError`` when it says
    nothing trustworthy (the message says why).

    ``cluster_domain`` and ``cluster_dns`` are the pool's kubelet settings. ``cluster_dns`` None means "not
    known" (configz was not read): the nameservers of a cluster pod are then not checked against it; ``()``
    means the kubelet has none (cluster pods then fall back to the host file, ``MissingClusterDNS``).
    ``dns_config`` is the pod's ``spec.dnsConfig`` (API shape). ``resolv_conf`` is the kubelet's
    ``resolvConf`` path when known: ``""`` means it reads no file, so there is nothing to learn.
    ``source`` names the pod in the evidence (see :func:`source_name`).
    """
    where = source or f"{namespace}/?"
    if len(text) > MAX_POD_FILE_BYTES:
        raise ValueError(
            f"{where}: the file is over {MAX_POD_FILE_BYTES} bytes; the kubelet writes a few hundred"
        )
    if resolv_conf == "":
        raise ValueError(f"{where}: the kubelet's resolvConf is empty: it reads no node file to learn")
    dns_type = pod_dns_type(dns_policy, host_network)
    if dns_policy == "None":
        raise ValueError(f"{where}: dnsPolicy None: the file shows only the pod's own dnsConfig")
    if dns_type == "cluster" and cluster_dns is not None and len(cluster_dns) == 0:
        dns_type = "host"  # MissingClusterDNS: the kubelet falls back to the host file
    config_searches = list((dns_config or {}).get("searches") or [])
    if config_searches:
        raise ValueError(
            f"{where}: the pod's dnsConfig adds search domains; they cannot be told apart from the node's "
            "(the kubelet appends and de-duplicates), so the pod is not used"
        )
    config_servers = [str(s) for s in (dns_config or {}).get("nameservers") or []]
    config_options = (dns_config or {}).get("options") or []
    try:
        nameservers, raw_searches, options = _parse_runtime_file(text)
        searches = raw_searches or []
        _check_entries(searches, nameservers, options)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    options = options or []
    notes: list[str] = []
    evidence_policy = f"dnsPolicy {dns_policy}{' with hostNetwork' if host_network else ''}"

    if dns_type == "cluster":
        expected_first = cluster_searches(namespace, cluster_domain)
        if searches[: len(expected_first)] != expected_first:
            raise ValueError(
                f"{where}: the cluster's search domains are not first (expected "
                f"{' '.join(expected_first) or '(none)'}, found {' '.join(searches[:3]) or '(none)'}): not the "
                f"file the kubelet writes for {evidence_policy} in namespace {namespace} (the pod may predate a "
                "change of the cluster domain, or its file was mutated or rewritten)"
            )
        expected_options = merge_dns_options(list(DEFAULT_CLUSTER_OPTIONS), config_options)
        if sorted(options) != sorted(expected_options):
            raise ValueError(
                f"{where}: options {' '.join(options) or '(none)'} are not the kubelet's "
                f"{' '.join(expected_options)} for {evidence_policy}: the file was changed"
            )
        if not nameservers:
            raise ValueError(f"{where}: no nameserver: the kubelet always gives a cluster-DNS pod one")
        if cluster_dns:
            want = omit_duplicates([_canonical(ip) for ip in cluster_dns] + config_servers)[:MAX_NAMESERVERS]
            if [_canonical(s) for s in nameservers] != want:
                raise ValueError(
                    f"{where}: nameservers {' '.join(nameservers)} are not the cluster DNS {' '.join(want)}: "
                    "the file was changed, or the pod predates a change of clusterDNS"
                )
        elif not config_servers and len(nameservers) > MAX_NAMESERVERS:
            raise ValueError(f"{where}: more than {MAX_NAMESERVERS} nameservers: not kubelet-written")
        node_searches = [_node_entry(s) for s in searches[len(expected_first) :]]
        complete = not _maybe_cut(searches, kubelet_version)
        if not complete:
            notes.append(
                f"{where}: the search list is at the kubelet's limits: the node may have more search "
                "domains than the pod shows"
            )
        if expected_first:
            notes.append(
                f"node search domains equal to {' '.join(expected_first)} are hidden (the kubelet drops "
                "duplicates); they change nothing for pods of this cluster domain"
            )
        content = ("search " + " ".join(node_searches) + "\n") if node_searches else ""
        how = (
            f"{where}: {evidence_policy}: the node's search domains follow the cluster's "
            f"{len(expected_first)} in the pod's /etc/resolv.conf (nameservers and options are the "
            "cluster's, not the node's)"
        )
        return NodeFileReading(
            scope="searches",
            searches=tuple(node_searches),
            nameservers=None,
            options=None,
            content=content,
            complete=complete,
            sources=(where,),
            evidence=(how,),
            notes=tuple(notes),
        )

    # host: the node file as the kubelet parsed it, plus any dnsConfig nameservers/options.
    node_searches = [_node_entry(s) for s in searches]
    complete = not _maybe_cut(searches, kubelet_version)
    if not complete:
        notes.append(f"{where}: the search list is at the kubelet's limits: the node may have more entries")
    mixed = bool(config_servers or config_options)
    if mixed:
        content = ("search " + " ".join(node_searches) + "\n") if node_searches else ""
        how = (
            f"{where}: {evidence_policy}: the pod shows the node's search line; its nameservers and "
            "options mix the node's with the pod's dnsConfig, so only the searches are used"
        )
        return NodeFileReading(
            scope="searches",
            searches=tuple(node_searches),
            nameservers=None,
            options=None,
            content=content,
            complete=complete,
            sources=(where,),
            evidence=(how,),
            notes=tuple(notes),
        )
    if len(nameservers) > MAX_NAMESERVERS:
        raise ValueError(f"{where}: more than {MAX_NAMESERVERS} nameservers: not kubelet-written")
    if len(nameservers) == MAX_NAMESERVERS:
        notes.append(
            f"{where}: {MAX_NAMESERVERS} nameservers: the node file may list more (the kubelet keeps 3)"
        )
    notes.append(
        "the node file as the kubelet parsed it: comments, domain/sortlist lines and trailing dots are not shown"
    )
    how = f"{where}: {evidence_policy}: the pod's /etc/resolv.conf is the node file as the kubelet read it"
    return NodeFileReading(
        scope="file",
        searches=tuple(node_searches),
        nameservers=tuple(nameservers),
        options=tuple(options),
        content=_render(node_searches, nameservers, options),
        complete=complete,
        sources=(where,),
        evidence=(how,),
        notes=tuple(notes),
    )


# --- several pods ------------------------------------------------------------------------------------------


def _shown(r: NodeFileReading) -> str:
    what = "search " + " ".join(r.searches) if r.searches else "no search domain"
    if r.scope == "file":
        what += f"; nameserver {' '.join(r.nameservers or ()) or '(none)'}; options {' '.join(r.options or ()) or '(none)'}"
    return what


def merge_readings(readings: Iterable[NodeFileReading]) -> tuple[NodeFileReading | None, list[str]]:
    """One reading for a pool from several pods' readings, and the disagreements in words.

    Pods of one pool may disagree (its nodes differ; a pod predates a change of the node file). The result
    prefers ``"file"`` readings (they show the whole file), then the view most pods share (ties: the
    complete one, then the first). Its ``sources``/``evidence`` list every pod that agrees with it
    (a ``"searches"`` reading agrees with a ``"file"`` one when the search lists are equal). Each
    disagreeing view gets one line naming its pods.
    """
    items = list(readings)
    if not items:
        return None, []
    pool = [r for r in items if r.scope == "file"] or items

    def view(r: NodeFileReading) -> tuple:
        return (r.searches, r.nameservers, r.options) if r.scope == "file" else (r.searches,)

    counts = Counter(view(r) for r in pool)
    order = {v: i for i, v in reversed(list(enumerate(view(r) for r in pool)))}
    complete = {view(r) for r in pool if r.complete}
    best = min(counts, key=lambda v: (-counts[v], v not in complete, order[v]))
    chosen = next(r for r in pool if view(r) == best)

    def agrees(r: NodeFileReading) -> bool:
        if r.scope == chosen.scope:
            return view(r) == best
        return r.searches == chosen.searches

    agreeing = [r for r in items if agrees(r)]
    others: dict[tuple, list[NodeFileReading]] = {}
    for r in items:
        if not agrees(r):
            others.setdefault((r.scope, *view(r)), []).append(r)
    kept = ", ".join(s for r in agreeing for s in r.sources)
    disagreements = [
        f"{', '.join(s for r in group for s in r.sources)} show{'s' if len(group) == 1 else ''} "
        f"{_shown(group[0])}, unlike {kept} ({_shown(chosen)}), which was kept"
        for group in others.values()
    ]
    merged = NodeFileReading(
        scope=chosen.scope,
        searches=chosen.searches,
        nameservers=chosen.nameservers,
        options=chosen.options,
        content=chosen.content,
        complete=any(r.complete for r in agreeing),
        sources=tuple(s for r in agreeing for s in r.sources),
        evidence=tuple(e for r in agreeing for e in r.evidence),
        notes=tuple(dict.fromkeys(n for r in agreeing for n in r.notes)),
    )
    return merged, disagreements


# --- choosing pods to read -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NodeFileCandidate:
    """A running pod whose ``/etc/resolv.conf`` can show its node's file.

    ``containers`` are container names in preference order; ``images`` the image of each (same order,
    may be empty). ``dns_config`` is the pod's ``spec.dnsConfig`` (only kept when it has no searches).
    """

    namespace: str
    pod: str
    node: str
    dns_policy: str
    host_network: bool
    has_dns_config: bool
    containers: tuple[str, ...]
    images: tuple[str, ...] = ()
    dns_config: Mapping | None = field(default=None, repr=False)

    @property
    def source(self) -> str:
        return source_name(self.namespace, self.pod, self.node)


def candidate_category(*, dns_policy: str, host_network: bool, dns_config: Mapping | None) -> str | None:
    """``"host"``, ``"cluster"``, ``"dns-config"`` (see :data:`CATEGORIES`), or None when the pod's file
    cannot show the node's (dnsPolicy None; a dnsConfig that adds searches)."""
    if dns_policy == "None":
        return None
    if dns_config is not None:
        if dns_config.get("searches"):
            return None
        if dns_config.get("nameservers") or dns_config.get("options"):
            return "dns-config"
    return "host" if pod_dns_type(dns_policy, host_network) == "host" else "cluster"


def _category(c: NodeFileCandidate) -> str | None:
    return candidate_category(
        dns_policy=c.dns_policy,
        host_network=c.host_network,
        dns_config=c.dns_config if c.has_dns_config else None,
    )


Prefer = Callable[[str], "str | None"] | Mapping[str, str] | None


def _libc_of(prefer: Prefer, image: str) -> str:
    if prefer is None or not image:
        return "unknown"
    libc = prefer.get(image) if isinstance(prefer, Mapping) else prefer(image)
    return libc if libc in LIBC_RANK else "unknown"


@dataclass(frozen=True)
class PlannedRead:
    """One pod to exec ``cat /etc/resolv.conf`` in, with its containers in the order to try."""

    candidate: NodeFileCandidate
    containers: tuple[str, ...]
    category: str


@dataclass
class PoolPlan:
    """The reads for one pool, in order, and the pool's kubelet facts to judge them with.

    ``check_cluster_dns``: compare cluster pods' nameservers with ``kubelet.cluster_dns`` (only when that
    was read from configz, not assumed).
    """

    pool: str
    reads: list[PlannedRead] = field(default_factory=list)
    kubelet: KubeletDNS = field(default_factory=KubeletDNS)
    check_cluster_dns: bool = False


def _spread(cands: list[NodeFileCandidate]) -> list[NodeFileCandidate]:
    """Round-robin over nodes (in first-seen order), keeping each node's own order."""
    by_node: dict[str, list[NodeFileCandidate]] = {}
    for c in cands:
        by_node.setdefault(c.node, []).append(c)
    out: list[NodeFileCandidate] = []
    queues = list(by_node.values())
    i = 0
    while any(queues):
        q = queues[i % len(queues)]
        if q:
            out.append(q.pop(0))
        i += 1
    return out


def plan_reads(
    candidates: Iterable[NodeFileCandidate],
    pool_of_node: Mapping[str, str],
    *,
    per_pool: int = 4,
    prefer: Prefer = None,
    kubelets: Mapping[str, KubeletDNS] | None = None,
    check_cluster_dns: Iterable[str] = (),
) -> dict[str, PoolPlan]:
    """Per pool (sorted by name), up to ``per_pool`` pods to read, in order.

    Host-file pods first (the whole file), then cluster-DNS pods without dnsConfig, then pods with a
    search-free dnsConfig; within a category pods with a musl/glibc container first (they have ``cat``),
    spread across nodes (round-robin), then by namespace and name. Each read's containers are reordered by
    libc: musl/glibc, unknown, static (``prefer`` maps an image to its libc, as a mapping or a callable).
    ``kubelets`` gives each pool's kubelet facts; ``check_cluster_dns`` names the pools whose clusterDNS
    was observed. Candidates on nodes outside ``pool_of_node`` are ignored.
    """
    rank = {c: i for i, c in enumerate(CATEGORIES)}
    checked = set(check_cluster_dns)
    grouped: dict[str, list[tuple[tuple, NodeFileCandidate, str, tuple[str, ...]]]] = defaultdict(list)
    for c in candidates:
        pool = pool_of_node.get(c.node)
        category = _category(c)
        if pool is None or category is None or not c.containers:
            continue
        images = c.images if len(c.images) == len(c.containers) else ("",) * len(c.containers)
        ranked = sorted(
            range(len(c.containers)),
            key=lambda i, images=images: (LIBC_RANK[_libc_of(prefer, images[i])], i),
        )
        containers = tuple(c.containers[i] for i in ranked)
        best = LIBC_RANK[_libc_of(prefer, images[ranked[0]])]
        grouped[pool].append(((rank[category], best, c.namespace, c.pod), c, category, containers))
    plans: dict[str, PoolPlan] = {}
    for pool in sorted(grouped):
        entries = sorted(grouped[pool], key=lambda e: e[0])
        info = {id(c): (cat, conts) for _, c, cat, conts in entries}
        ordered: list[NodeFileCandidate] = []
        for key in sorted({e[0][:2] for e in entries}):
            ordered += _spread([c for k, c, _, _ in entries if k[:2] == key])
        reads = [PlannedRead(c, info[id(c)][1], info[id(c)][0]) for c in ordered[: max(per_pool, 0)]]
        plans[pool] = PoolPlan(
            pool=pool,
            reads=reads,
            kubelet=(kubelets or {}).get(pool, KubeletDNS()),
            check_cluster_dns=pool in checked,
        )
    return plans


def reading_for(plan: PoolPlan, read: PlannedRead, text: str) -> NodeFileReading:
    """:func:`node_file_from_pod_file` for one planned read (``ValueError`` as there)."""
    c = read.candidate
    return node_file_from_pod_file(
        text,
        dns_policy=c.dns_policy,
        host_network=c.host_network,
        namespace=c.namespace,
        cluster_domain=plan.kubelet.cluster_domain,
        cluster_dns=plan.kubelet.cluster_dns if plan.check_cluster_dns else None,
        dns_config=c.dns_config if c.has_dns_config else None,
        kubelet_version=plan.kubelet.version,
        resolv_conf=plan.kubelet.resolv_conf,
        source=c.source,
    )


# --- inference from Node objects --------------------------------------------------------------------------


@dataclass(frozen=True)
class InferredSearches:
    """Search domains guessed from Node objects; never as good as a read file.

    ``searches`` is empty when nothing concrete could be inferred (Azure: see ``pattern``). ``provider``
    is ``openstack``, ``aws``, ``gce``, ``azure`` or ``addresses`` (a domain seen in the nodes' addresses,
    provider unknown). ``pattern`` is a clearly-marked shape of the domain that could not be inferred
    (e.g. ``<vnet-id>.<x>.internal.cloudapp.net``), never a domain to use. ``evidence`` names the node
    fields each guess rests on and the documentation the default comes from.
    """

    searches: tuple[str, ...]
    provider: str
    evidence: tuple[str, ...] = ()
    pattern: str | None = None

    @property
    def content(self) -> str:
        """The inferred node file's search line (``""`` when nothing concrete)."""
        return ("search " + " ".join(self.searches) + "\n") if self.searches else ""

    def to_dict(self) -> dict:
        return {
            "searches": list(self.searches),
            "provider": self.provider,
            "evidence": list(self.evidence),
            "pattern": self.pattern,
            "content": self.content,
        }


# OpenStack Neutron: the ``dns_domain`` option of neutron.conf defaults to ``openstacklocal`` and is what
# the DHCP agent (dnsmasq) hands out as the domain. Source: OpenStack Neutron admin guide, "DNS
# Integration" (doc/source/admin/config-dns-int.rst, https://docs.openstack.org/neutron/latest/admin/
# config-dns-int.html): "assign a value different to openstacklocal (its default value) to the dns_domain
# parameter in the [default] section".
OPENSTACK_DEFAULT_DOMAIN = "openstacklocal"
OPENSTACK_DOC = "OpenStack Neutron admin guide, DNS Integration: dns_domain defaults to openstacklocal"

# AWS: the default DHCP option set's domain-name is ``ec2.internal`` in us-east-1 and
# ``<region>.compute.internal`` elsewhere. Source: Amazon EC2 API Reference, CreateDhcpOptions
# (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateDhcpOptions.html): "If you're using
# AmazonProvidedDNS in us-east-1, specify ec2.internal. If you're using AmazonProvidedDNS in any other
# Region, specify region.compute.internal." (also the Amazon VPC User Guide, "DHCP option sets").
AWS_DOC = (
    "Amazon EC2 API Reference, CreateDhcpOptions: ec2.internal in us-east-1, else <region>.compute.internal"
)

# GCE: instances get their search list through DHCP; with zonal DNS (the default for projects that enabled
# the Compute Engine API after 2018-09-06) names are ``VM.ZONE.c.PROJECT.internal``, with global DNS
# ``VM.c.PROJECT.internal``; the sample resolv.conf ends the search list with ``google.internal``. Source:
# Compute Engine documentation, "Internal DNS" (https://cloud.google.com/compute/docs/internal-dns).
GCE_DOC = (
    "Compute Engine docs, Internal DNS: zonal ZONE.c.PROJECT.internal, search list ending in google.internal"
)

# Azure: Azure-provided name resolution gives every VM of a virtual network the same DNS suffix, a
# generated ``<id>.<x>.internal.cloudapp.net`` unique to the virtual network; it is not derivable from
# Node objects. Source: Microsoft Learn, "DNS Name Resolution options for Linux virtual machines in
# Azure" (https://learn.microsoft.com/azure/virtual-machines/linux/azure-dns) and "Name resolution for
# resources in Azure virtual networks"
# (https://learn.microsoft.com/azure/virtual-network/virtual-networks-name-resolution-for-vms-and-role-instances).
AZURE_PATTERN = "<vnet-id>.<x>.internal.cloudapp.net"
AZURE_DOC = (
    "Microsoft Learn, DNS name resolution options for Linux VMs in Azure: suffix unique per virtual network"
)

_PROVIDER = re.compile(r"^([a-z][a-z0-9-]{0,31})://")
_AWS_REGION = re.compile(r"^([a-z]{2}(?:-[a-z]+)+-\d{1,2})")
_GCE_ID = re.compile(r"gce://([^/]{1,100})/([^/]{1,64})/([^/]{1,100})")
_REGION_LABELS = ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")
_ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")


def _address_domains(node: Mapping, name: str) -> tuple[list[str], list[str]]:
    """Domains in ``status.addresses`` (``InternalDNS``; ``Hostname`` with dots): (domains, evidence)."""
    domains: list[str] = []
    evidence: list[str] = []
    for addr in (node.get("status") or {}).get("addresses") or ():
        if not isinstance(addr, Mapping) or addr.get("type") not in ("InternalDNS", "Hostname"):
            continue
        value = addr.get("address")
        if not isinstance(value, str) or "." not in value.rstrip("."):
            continue
        if not valid_dns_name(value):
            evidence.append(
                f"node {name}: status.addresses {addr.get('type')} {_quote(value)} ignored: not a DNS name"
            )
            continue
        domain = value.rstrip(".").split(".", 1)[1]
        if not valid_dns_name(domain):
            continue
        if domain not in domains:
            domains.append(domain)
            evidence.append(f"node {name}: status.addresses {addr['type']} {_quote(value)} → domain {domain}")
    return domains, evidence


def _label(labels: Mapping, keys: Sequence[str]) -> tuple[str, str] | None:
    for key in keys:
        value = labels.get(key)
        if isinstance(value, str) and value:
            return key, value
    return None


def _infer_one(node: Mapping) -> tuple[tuple[str, ...], str, list[str], str | None] | None:
    """(searches, provider, evidence, pattern) for one node, or None when nothing points anywhere."""
    meta = node.get("metadata") or {}
    name = meta.get("name") if isinstance(meta.get("name"), str) else "?"
    name = name if valid_dns_name(name) else _quote(name)
    labels = meta.get("labels") if isinstance(meta.get("labels"), Mapping) else {}
    provider_id = (node.get("spec") or {}).get("providerID")
    provider_id = provider_id if isinstance(provider_id, str) else ""
    m = _PROVIDER.match(provider_id)
    provider = m.group(1) if m else ""
    domains, evidence = _address_domains(node, name)
    pid = f"node {name}: spec.providerID {_quote(provider_id)}"

    if provider == "openstack":
        if domains:
            evidence.insert(0, f"{pid} → OpenStack; the addresses show the network's dns_domain")
            return tuple(domains[:1]), "openstack", evidence, None
        evidence.insert(
            0, f"{pid} → OpenStack: Neutron's default dns_domain {OPENSTACK_DEFAULT_DOMAIN} ({OPENSTACK_DOC})"
        )
        return (OPENSTACK_DEFAULT_DOMAIN,), "openstack", evidence, None

    if provider == "aws":
        region = None
        region_label = _label(labels, _REGION_LABELS)
        if region_label and _AWS_REGION.fullmatch(region_label[1]):
            region = region_label[1]
            evidence.insert(0, f"node {name}: label {region_label[0]}={region}")
        else:
            zone = next((part for part in provider_id[len("aws://") :].split("/") if part), "")
            zm = _AWS_REGION.match(zone)
            zone_label = _label(labels, _ZONE_LABELS)
            if not zm and zone_label:
                zm = _AWS_REGION.match(zone_label[1])
            if zm:
                region = zm.group(1)
                evidence.insert(0, f"{pid}: availability zone → region {region}")
        if region is None:
            evidence.insert(0, f"{pid} → AWS, but no region could be read from it or the labels")
            return None
        domain = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
        evidence.insert(0, f"{pid} → AWS, region {region}: default DHCP domain-name {domain} ({AWS_DOC})")
        if domains and domain not in domains:
            evidence.append(
                f"node {name}: the addresses show {', '.join(domains)}, not {domain}: the VPC may use its own "
                "DHCP option set; the default is kept, read a pod's file to be sure"
            )
        return (domain,), "aws", evidence, None

    if provider == "gce":
        gm = _GCE_ID.fullmatch(provider_id)
        if not gm:
            evidence.insert(0, f"{pid} → GCE, but not gce://<project>/<zone>/<instance>")
            return None
        project, zone = gm.group(1), gm.group(2)
        if not _is_label(zone):
            return None  # not a GCE zone: nothing to build on
        if not _is_label(project):
            evidence.insert(
                0,
                f"{pid} → GCE, but the project {_quote(project)} is not a DNS label (a domain-scoped project?): "
                "only google.internal is inferred",
            )
            return ("google.internal",), "gce", evidence, None
        searches = (f"{zone}.c.{project}.internal", f"c.{project}.internal", "google.internal")
        if not all(valid_dns_name(s) for s in searches):
            return None
        evidence.insert(
            0,
            f"{pid} → GCE project {project}, zone {zone}: zonal internal DNS search list ({GCE_DOC}); projects "
            f"using global DNS (API enabled before 2018-09-06) have c.{project}.internal google.internal",
        )
        return searches, "gce", evidence, None

    if provider == "azure":
        azure = [d for d in domains if d.endswith(".internal.cloudapp.net")]
        if azure:
            evidence.insert(0, f"{pid} → Azure; the addresses show the virtual network's DNS suffix")
            return tuple(azure[:1]), "azure", evidence, None
        evidence.insert(
            0,
            f"{pid} → Azure: the Azure-provided DNS suffix ({AZURE_PATTERN}) is generated per virtual network "
            f"and cannot be inferred from Node objects ({AZURE_DOC}); no domain inferred",
        )
        return (), "azure", evidence, AZURE_PATTERN

    if domains:
        what = f"{pid} (provider {provider})" if provider else f"node {name}: no spec.providerID"
        evidence.insert(0, f"{what}: the domain of the node's own name is a likely DHCP/host search domain")
        return tuple(domains[:1]), "addresses", evidence, None
    return None


def infer_node_searches(nodes: Iterable[Mapping]) -> InferredSearches | None:
    """Guess a pool's node search domains from its Node objects (raw API JSON); None when nothing points
    anywhere (bare metal without FQDN node names).

    Per node: the provider in ``spec.providerID`` and its documented default (OpenStack ``openstacklocal``,
    AWS ``ec2.internal``/``<region>.compute.internal`` from the region label or the zone in the providerID,
    GCE ``<zone>.c.<project>.internal c.<project>.internal google.internal`` from
    ``gce://<project>/<zone>/<name>``, Azure: no domain, only a pattern); else a domain seen in
    ``status.addresses`` (``InternalDNS``, or a ``Hostname`` with dots). Every inferred domain is checked as
    a DNS name; anything else is dropped. When the nodes disagree, the most common guess is kept and the
    evidence says so.
    """
    guesses: list[tuple[tuple[str, ...], str, list[str], str | None]] = []
    for node in nodes:
        if isinstance(node, Mapping):
            g = _infer_one(node)
            if g is not None:
                guesses.append(g)
    if not guesses:
        return None
    counts = Counter((g[0], g[1]) for g in guesses)
    (searches, provider), n = counts.most_common(1)[0]
    chosen = [g for g in guesses if (g[0], g[1]) == (searches, provider)]
    evidence = list(dict.fromkeys(e for g in chosen[:3] for e in g[2]))
    if len(chosen) > 3:
        evidence.append(f"… and {len(chosen) - 3} more nodes alike")
    for (other, other_provider), k in counts.items():
        if (other, other_provider) != (searches, provider):
            evidence.append(
                f"{k} node(s) point to {' '.join(other) or 'no domain'} ({other_provider}) instead; kept the "
                f"guess of {n} node(s)"
            )
    return InferredSearches(
        searches=searches, provider=provider, evidence=tuple(evidence), pattern=chosen[0][3]
    )
