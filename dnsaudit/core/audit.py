"""The verdict per workload: will its musl containers fail DNS lookups that glibc would get right?

For each workload: synthesise the pod's resolv.conf with the kubelet's rules (:mod:`.kubelet`), find
the libc of each container, simulate ``getaddrinfo`` under musl and glibc (:mod:`.resolver`) for the
names the workloads need, against an *oracle* built from what was observed, and turn the difference into
a risk with sentences a platform engineer can act on; then pick and check a fix (:mod:`.remediation`).

Risk (the shared report schema):

* ``affected`` — musl fails where glibc succeeds using only observed answers or client-side certainties
  (a probe saw NODATA/SERVFAIL/... for ``<x>.<domain>``; ``search .`` under musl ≤ 1.2.3; a search line
  over 254 characters);
* ``at-risk`` — the configuration can fail under musl but nothing confirms it: a non-cluster search
  domain nobody probed (simulated as NODATA to show what would happen), ``ndots`` below the dots of the
  service names, a non-cluster nameserver appended to cluster DNS;
* ``unknown`` — the configuration is risky for musl and the image's libc is unknown;
* ``safe`` — otherwise (glibc and static images always, with the reason).

The oracle answers: the in-cluster service names of :attr:`AuditContext.service_names` exist
(``10.96.0.1``); any other name under the cluster domain is NXDOMAIN; ``<anything>.<D>`` for a probed
domain ``D`` gets the probed answer; the external names of :attr:`AuditContext.probe_names` exist
(``93.184.215.14`` / ``2606:2800::1``); everything else is NXDOMAIN. A non-cluster search domain without a
probe answers NXDOMAIN in the *observed* run and NODATA in the *pessimistic* run.

Simulations are memoised per (resolv.conf text, libc, version, name, oracle assumptions), so auditing
hundreds of workloads that share a few namespaces costs a few dozen simulations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date

from dnsaudit.core import exemptions, patches
from dnsaudit.core.kubelet import (
    ORIGIN_DNS_CONFIG,
    ORIGIN_NODE,
    PodDNS,
    parse_node_resolv_conf,
    render_resolv_conf,
    workload_resolv_conf,
)
from dnsaudit.core.libc import infer_from_reference
from dnsaudit.core.model import (
    Answer,
    Container,
    KubeletDNS,
    LibcVerdict,
    NodePool,
    ProbeResult,
    Resolution,
    Workload,
)
from dnsaudit.core.remediation import MUSL_MAX_SEARCH_LINE, Diagnosis, Remedy, choose

EXTERNAL_A = ("93.184.215.14",)
EXTERNAL_AAAA = ("2606:2800::1",)
SERVICE_IP = "10.96.0.1"
#: musl version assumed when a musl image's exact version is unknown (the newest; see _musl_versions).
DEFAULT_MUSL = "1.2.5"
GLIBC_VERSION = "2.36"

RISK_ORDER = {"safe": 0, "unknown": 1, "at-risk": 2, "affected": 3}


@dataclass
class AuditContext:
    """Everything the audit knows about the cluster besides the workloads themselves.

    ``libc`` is keyed by container image reference and by image ID when known; a missing image is
    inferred from its reference. ``probes`` are observed answers for ``<probe>.<domain>`` per
    non-cluster search domain. ``probe_names`` are external names the workloads need;
    ``service_names`` in-cluster names (``svc.ns`` or single labels resolved in the pod's namespace).
    ``coredns``: ``{"variant": "kubeadm"|"k3s"|..., "template_zones": [...], "corefile": str}``.
    ``assumed`` lists facts assumed rather than observed; they are quoted in non-safe verdicts.
    """

    pools: dict[str, NodePool] = field(default_factory=dict)
    default_pool: str = "default"
    libc: Mapping[str, LibcVerdict] = field(default_factory=dict)
    probes: list[ProbeResult] = field(default_factory=list)
    probe_names: list[str] = field(default_factory=lambda: ["example.com"])
    service_names: list[str] = field(default_factory=lambda: ["kubernetes.default"])
    coredns: dict = field(default_factory=dict)
    kyverno_installed: bool = False
    assumed: list[str] = field(default_factory=list)
    #: How to learn an unknown node file, said in the verdicts that rest on one (None: the cluster way,
    #: exec reads or the cluster's settings; audit-manifests says --node-resolv-conf).
    node_file_hint: str | None = None
    #: The day exemption annotations are judged on (``dnsaudit.io/exempt-until``); None: today.
    today: date | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)


@dataclass
class WorkloadAudit:
    """``report`` is one workload in the shared schema; ``detail`` feeds the workload page."""

    report: dict
    detail: dict
    workload: Workload | None = field(default=None, repr=False)
    diagnosis: Diagnosis | None = field(default=None, repr=False)
    remedies: list[Remedy] = field(default_factory=list, repr=False)


# --- the oracle ---------------------------------------------------------------------------------------


def _under(name: str, domain: str) -> bool:
    return bool(domain) and (name == domain or name.endswith("." + domain))


class ScenarioOracle:
    """The DNS answers the simulation assumes (module docstring). Callable as the resolver's Oracle."""

    def __init__(
        self,
        cluster_domain: str,
        probes: Mapping[str, list[ProbeResult]],
        external: Iterable[str],
        services: Iterable[str],
        assume_nodata: frozenset[str] = frozenset(),
        nx_zones: frozenset[str] = frozenset(),
    ) -> None:
        self.cd = cluster_domain.lower().strip(".")
        self.probes = {d.lower().strip("."): ps for d, ps in probes.items()}
        self.external = {n.lower().rstrip(".") for n in external}
        self.services = {n.lower().rstrip(".") for n in services}
        self.assume = {d.lower().strip(".") for d in assume_nodata}
        self.nx_zones = {z.lower().strip(".") for z in nx_zones}
        self.domains = sorted(set(self.probes) | self.assume, key=len, reverse=True)

    def __call__(self, server: str, qname: str, qtype: str, transport: str = "udp") -> Answer:
        raw = qname.lower()
        if raw.endswith("..") or ".." in raw.strip(".") or raw.startswith("."):
            return Answer("FORMERR")  # musl <= 1.2.3's malformed 'name..' (search .)
        n = raw[:-1] if raw.endswith(".") else raw
        if n in self.services:
            return Answer("NOERROR", (SERVICE_IP,)) if qtype == "A" else Answer("NOERROR")
        for z in self.nx_zones:  # a CoreDNS template: >= 2 labels before the zone
            if n.endswith("." + z) and n[: -len(z) - 1].count(".") >= 1:
                return Answer("NXDOMAIN")
        if _under(n, self.cd):
            return Answer("NXDOMAIN")
        for d in self.domains:
            if n.endswith("." + d):
                if d in self.probes:
                    p = _probe_for(self.probes[d], server, n)
                    return _steady(p.a if qtype == "A" else p.aaaa)
                return Answer("NOERROR")  # assumed NODATA (pessimistic run)
        if n in self.external:
            return Answer("NOERROR", EXTERNAL_A if qtype == "A" else EXTERNAL_AAAA)
        return Answer("NXDOMAIN")


#: Observed round trips enter the simulation floored to this many seconds. The libcs decide in whole
#: seconds (timeouts, attempts); millisecond jitter must not make two scans' identical findings differ
#: (their traces and times are stored once when equal: clusters.models.WorkloadContent).
PROBE_DELAY_RESOLUTION = 0.1


def _steady(answer: Answer) -> Answer:
    """``answer`` with its measured delay floored to :data:`PROBE_DELAY_RESOLUTION` (no reply: unchanged,
    its delay is the timeout)."""
    if answer.rcode is None or not answer.delay:
        return answer
    steps = int(answer.delay / PROBE_DELAY_RESOLUTION + 1e-9)
    return replace(answer, delay=round(steps * PROBE_DELAY_RESOLUTION, 6))


def _probe_for(probes: list[ProbeResult], server: str, qname: str = "") -> ProbeResult:
    """The observed answer that best stands for ``qname`` under a probed domain: the probe of that very
    name (e.g. ``example.com.openstacklocal``) from that server, then that name from any server, then any
    probe of the domain from that server (a random label: how the zone answers names it does not know)."""
    qname = qname.lower().rstrip(".")
    same_name = [p for p in probes if p.qname.lower().rstrip(".") == qname]
    for candidates in (
        [p for p in same_name if p.server == server],
        same_name,
        [p for p in probes if p.server == server],
    ):
        if candidates:
            return candidates[0]
    return probes[0]


# --- helpers ------------------------------------------------------------------------------------------

_MUSL_V = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def normalise_musl_version(v: str | None) -> str | None:
    """``1.2.4_git20230717-r5`` → ``1.2.4``; None stays None."""
    if not v:
        return None
    m = _MUSL_V.search(v)
    return ".".join(m.groups()) if m else None


def _vt(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def _ndots(options: Iterable[str]) -> int:
    """ndots as musl reads the options (default 1, capped at 15)."""
    n = 1
    for op in options:
        name, _, value = op.partition(":")
        if name == "ndots" and value.isdigit():
            n = min(int(value), 15)
    return n


def _answer_of(r: Resolution, candidate: str | None) -> str:
    """The labels the candidate got, e.g. ``NODATA`` or ``SERVFAIL`` (``no reply`` → ``no answer``)."""
    if not candidate:
        return "an error"
    target = candidate.rstrip(".").lower()
    labels = [q.answer for q in r.queries if q.name.rstrip(".").lower() == target]
    uniq = list(dict.fromkeys(labels))
    if not uniq:
        return "no usable answer"
    return "/".join("no answer" if x == "no reply" else x for x in uniq)


def _hit(r: Resolution) -> str | None:
    """The name that gave glibc its addresses."""
    for q in r.queries:
        if q.answer.startswith("records"):
            return q.name.rstrip(".")
    return None


def _stop(r: Resolution) -> str | None:
    if r.stopped_at:
        return r.stopped_at.rstrip(".") if not r.stopped_at.endswith("..") else r.stopped_at
    if r.queries:
        return r.queries[-1].name
    return None


# --- the audit ----------------------------------------------------------------------------------------


class _Auditor:
    """Per-context memoised machinery (libc verdicts, oracles, simulations)."""

    def __init__(self, ctx: AuditContext) -> None:
        self.ctx = ctx
        cache = ctx._cache
        self.sims: dict = cache.setdefault("sims", {})
        self.oracles: dict = cache.setdefault("oracles", {})
        self.inferred: dict = cache.setdefault("inferred", {})
        self.dicts: dict = cache.setdefault("dicts", {})
        probes: dict[str, list[ProbeResult]] = {}
        for p in ctx.probes:
            probes.setdefault(p.domain.lower().strip("."), []).append(p)
        self.probes = probes
        from dnsaudit.core import resolver  # imported late: written in parallel, keeps import cycles out

        self.resolver = resolver

    # libc
    def verdict(self, c: Container, platform: str | None = None) -> LibcVerdict:
        """The verdict for ``c`` on ``platform`` (``os/arch`` of the pool's nodes).

        Keys ``"<ref>@<platform>"`` are tried first: a multi-arch image has one verdict per platform
        (its index digest, the pod's imageID, is the same on every architecture). A plain ``<ref>`` key
        (``audit-manifests``, which inspects one platform) is the fallback.
        """
        keys = (
            *((f"{c.image_id}@{platform}", f"{c.image}@{platform}") if platform else ()),
            c.image_id,
            c.image,
        )
        for key in keys:
            if key and key in self.ctx.libc:
                return self.ctx.libc[key]
        if c.image not in self.inferred:
            self.inferred[c.image] = infer_from_reference(c.image)
        return self.inferred[c.image]

    def as_dict(self, r: Resolution) -> dict:
        """``r.to_dict()``, computed once per memoised result (workloads sharing a result share the dict:
        treat ``detail`` as read-only)."""
        d = self.dicts.get(id(r))
        if d is None or d[0] is not r:
            d = (r, r.to_dict())
            self.dicts[id(r)] = d
        return d[1]

    # simulations
    def service_fqdns(self, namespace: str, cd: str) -> frozenset[str]:
        out = set()
        for s in self.ctx.service_names:
            s = s.rstrip(".")
            if _under(s, cd):
                out.add(s)
            elif "." in s:
                out.add(f"{s}.svc.{cd}")
            else:
                out.add(f"{s}.{namespace}.svc.{cd}")
        return frozenset(out)

    def oracle(
        self, cd: str, services: frozenset[str], assume: frozenset[str], nx: frozenset[str]
    ) -> ScenarioOracle:
        key = (cd, services, assume, nx)
        o = self.oracles.get(key)
        if o is None:
            o = ScenarioOracle(cd, self.probes, self.ctx.probe_names, services, assume, nx)
            self.oracles[key] = o
        return o

    def simulate(
        self,
        libc: str,
        text: str,
        name: str,
        version: str,
        cd: str,
        services: frozenset[str],
        assume: frozenset[str] = frozenset(),
        nx: frozenset[str] = frozenset(),
    ) -> Resolution:
        key = (libc, version, text, name, cd, services, assume, nx)
        r = self.sims.get(key)
        if r is None:
            o = self.oracle(cd, services, assume, nx)
            if libc == "musl":
                r = self.resolver.simulate_musl(name, text, o, version=version)
            else:
                r = self.resolver.simulate_glibc(name, text, o, version=version)
            self.sims[key] = r
        return r


def _pool_for(w: Workload, ctx: AuditContext) -> NodePool:
    if w.node_pool and w.node_pool in ctx.pools:
        return ctx.pools[w.node_pool]
    if ctx.default_pool in ctx.pools:
        return ctx.pools[ctx.default_pool]
    if ctx.pools:
        return next(iter(ctx.pools.values()))
    return NodePool(name=ctx.default_pool, kubelet=KubeletDNS())


@dataclass
class _Finding:
    risk: str
    reason: str
    name: str | None = None
    #: The finding rests on a search domain the pod inherits from the node file.
    node_domain: bool = False


def _inherits_node_file(pod: PodDNS, kubelet: KubeletDNS) -> bool:
    """Whether the pod's resolv.conf takes anything from the node's file: every dnsPolicy but ``None``
    (``Default``, ``ClusterFirstWithHostNet``, hostNetwork + ``ClusterFirst`` and plain ``ClusterFirst``,
    whose search list ends with the node's), unless the kubelet's ``resolvConf`` is ``""``."""
    return pod.dns_type != "none" and kubelet.resolv_conf != ""


def _node_file_gap(pool: NodePool, kubelet: KubeletDNS, w: Workload, hint: str | None = None) -> str:
    """The sentence saying what is not known about the pool's node file and how to learn it."""
    path = kubelet.resolv_conf or "/etc/resolv.conf"
    how = hint or (
        "Allow exec reads for this cluster (dnsaudit then reads /etc/resolv.conf in a few running pods of the "
        f"pool) or enter the node's {path} for pool {pool.name} in the cluster's settings "
        "(manage.py set-cluster --node-resolv-conf FILE --pool " + pool.name + ")."
    )
    if pool.node_resolv_conf_source == "inferred":
        searches = _file_searches(pool)
        return (
            f"The node search domains of pool {pool.name} were not read: they are inferred "
            f"({'; '.join(pool.node_resolv_conf_evidence) or 'from the nodes'}) as "
            f"{' '.join(searches) or 'none'}, and the node's {path} may hold others. This pod inherits them "
            f"(dnsPolicy {w.dns_policy}{', hostNetwork' if w.host_network else ''}). " + how
        )
    return (
        f"The node search domains of pool {pool.name} are unknown: the node's {path} is not in the Kubernetes "
        "API and was neither read nor entered. This pod inherits them "
        f"(dnsPolicy {w.dns_policy}{', hostNetwork' if w.host_network else ''}), and musl stops at the first "
        "search domain that does not answer NXDOMAIN (e.g. a cloud's 'openstacklocal') and never tries the "
        "name itself. " + how
    )


def _file_searches(pool: NodePool) -> list[str]:
    try:
        return list(parse_node_resolv_conf(pool.node_resolv_conf or "", pool.kubelet.version).searches)
    except ValueError:
        return []


def audit_workload(w: Workload, ctx: AuditContext) -> WorkloadAudit:
    """The verdict, reasons, simulations and checked fixes for one workload (see the module docstring)."""
    return _audit(w, ctx, _Auditor(ctx))


def audit_workloads(ws: Iterable[Workload], ctx: AuditContext) -> list[WorkloadAudit]:
    """:func:`audit_workload` for many workloads, sharing one memo of simulations."""
    a = _Auditor(ctx)
    return [_audit(w, ctx, a) for w in ws]


def _audit(w: Workload, ctx: AuditContext, a: _Auditor) -> WorkloadAudit:
    pool = _pool_for(w, ctx)
    kubelet = pool.kubelet
    cd = (kubelet.cluster_domain or "").strip(".")
    pod: PodDNS = workload_resolv_conf(w, kubelet, pool.node_resolv_conf)
    text = render_resolv_conf(pod.conf)
    searches = list(pod.conf.searches)
    reasons: list[str] = []

    verdicts = [(c, a.verdict(c, pool.platform)) for c in w.containers]
    inherits = _inherits_node_file(pod, kubelet)
    # The node's search domains are an assumption (unknown or inferred) and this pod takes them.
    node_gap = inherits and not pool.node_searches_known
    inferred = node_gap and pool.node_resolv_conf_source == "inferred"

    # --- the configuration, libc-independent ---
    extra_domains = [s for s in searches if s not in ("", ".") and not _under(s.lower(), cd)]
    probed = {d: a.probes[d.lower().strip(".")] for d in extra_domains if d.lower().strip(".") in a.probes}
    # Zones a CoreDNS template already answers NXDOMAIN for (ctx.coredns["template_zones"]): no probe needed.
    templated = {str(z).lower().strip(".") for z in ctx.coredns.get("template_zones") or []}
    base_nx = frozenset(d.lower() for d in extra_domains if d not in probed and d.lower() in templated)
    unknown = [d for d in extra_domains if d not in probed and d.lower() not in base_nx]
    bad = [
        d
        for d, ps in probed.items()
        if not all(p.a.rcode == "NXDOMAIN" and p.aaaa.rcode == "NXDOMAIN" for p in ps)
    ]
    wildcard = [d for d, ps in probed.items() if any(p.a.addresses or p.aaaa.addresses for p in ps)]
    search_dot = "." in searches
    search_line = "search " + " ".join(searches) if searches else ""
    long_line = len(search_line) > MUSL_MAX_SEARCH_LINE
    ndots = _ndots(pod.conf.options)
    cluster_like = pod.dns_type == "cluster" or any(_under(s, cd) for s in searches)
    extra_ns = (
        [
            s
            for s, o in pod.nameserver_origin.items()
            if o == ORIGIN_DNS_CONFIG and s not in kubelet.cluster_dns
        ]
        if pod.dns_type == "cluster"
        else []
    )
    services = a.service_fqdns(w.namespace, cd)
    external = list(dict.fromkeys(ctx.probe_names))
    service_names = list(dict.fromkeys(ctx.service_names)) if cluster_like else []
    assume = frozenset(unknown)

    def origin_of(d: str) -> str:
        o = pod.search_origin.get(d)
        if o == ORIGIN_NODE:
            return f"from the node's resolv.conf, {kubelet.resolv_conf or 'none'}"
        if o == ORIGIN_DNS_CONFIG:
            return "from the workload's own dnsConfig"
        if o == "kubelet":
            return "added by the kubelet (resolvConf is empty)"
        return "a cluster search domain"

    if pod.error:
        reasons.append(f"The kubelet cannot create this pod's sandbox: {pod.error}.")
    if w.host_network and w.dns_policy == "ClusterFirst":
        reasons.append(
            "hostNetwork with dnsPolicy ClusterFirst: the kubelet gives this pod the node's resolv.conf "
            f"(nameservers {', '.join(pod.conf.nameservers) or 'none'}; search {' '.join(searches) or 'none'}), "
            "not cluster DNS. Use ClusterFirstWithHostNet for cluster names."
        )
    for ev in pod.events:
        if ev.startswith(("MissingClusterDNS", "DNSConfigForming")):
            reasons.append("Kubelet event " + ev)

    # --- musl versions to simulate ---
    musl_versions: list[str] = []
    musl_images: list[str] = []
    unknown_version = False
    for c, v in verdicts:
        if v.libc == "musl":
            musl_images.append(c.image)
            mv = normalise_musl_version(v.musl_version)
            if mv is None:
                unknown_version = True
            elif mv not in musl_versions:
                musl_versions.append(mv)
    if unknown_version or not musl_versions:
        # Unknown exact version: the newest, plus 1.2.3 when 'search .' makes the version matter.
        for mv in [DEFAULT_MUSL, "1.2.3"] if search_dot else [DEFAULT_MUSL]:
            if mv not in musl_versions:
                musl_versions.append(mv)

    names = external + [n for n in service_names if n not in external]
    sims: list[dict] = []
    # (version, name) -> (musl observed, glibc observed, musl pessimistic, glibc pessimistic)
    runs: dict[tuple[str, str], tuple[Resolution, Resolution, Resolution | None, Resolution | None]] = {}
    if not pod.error:
        for version in musl_versions:
            for name in names:
                m = a.simulate("musl", text, name, version, cd, services, nx=base_nx)
                g = a.simulate("glibc", text, name, GLIBC_VERSION, cd, services, nx=base_nx)
                mp = gp = None
                if assume:
                    mp = a.simulate("musl", text, name, version, cd, services, assume, base_nx)
                    gp = a.simulate("glibc", text, name, GLIBC_VERSION, cd, services, assume, base_nx)
                runs[(version, name)] = (m, g, mp, gp)
                entry = {"name": name, "musl_version": version, "musl": a.as_dict(m), "glibc": a.as_dict(g)}
                if mp is not None and gp is not None:
                    entry["assumed_nodata"] = sorted(assume)
                    entry["musl_if_nodata"] = a.as_dict(mp)
                    entry["glibc_if_nodata"] = a.as_dict(gp)
                sims.append(entry)

    def explain(name: str, version: str, m: Resolution, g: Resolution, assumed: bool) -> _Finding:
        hit = _hit(g) or name
        stop = _stop(m)
        dots = name.rstrip(".").count(".")
        if search_dot and _vt(version) < (1, 2, 4) and (stop or "").endswith(".."):
            return _Finding(
                "affected",
                f"The search list ends with '.' (kubelet {kubelet.version or '?'} copied 'search .' from the node): "
                f"musl {version} sends the malformed query '{name}..', gets no usable answer and gives up with "
                f"{m.error} after {m.elapsed:g}s; glibc continues and resolves {hit}. musl 1.2.4+ skips '.'.",
                name,
                node_domain=pod.search_origin.get(".") in (ORIGIN_NODE, "kubelet"),
            )
        if long_line:
            return _Finding(
                "affected",
                f"The search line is {len(search_line)} characters: musl ignores a search line longer than "
                f"{MUSL_MAX_SEARCH_LINE} characters, so it only queries '{name}' and fails ({m.error}); "
                f"glibc uses the search list and resolves {hit}.",
                name,
                node_domain=any(o == ORIGIN_NODE for o in pod.search_origin.values()),
            )
        if (
            name in service_names
            and dots >= ndots
            and not any(c.startswith(name.rstrip(".") + ".") for c in m.candidates)
        ):
            return _Finding(
                "at-risk",
                f"ndots is {ndots} and '{name}' has {dots} dot(s): musl queries only the absolute name and never "
                f"applies the search list ({m.error}); glibc tries it as given and then the search list, resolving "
                f"{hit}. Lowering ndots is not a fix when service names with dots are used.",
                name,
            )
        answer = _answer_of(m, stop)
        dom = next(
            (
                d
                for d in sorted(extra_domains, key=len, reverse=True)
                if stop and stop.rstrip(".").endswith("." + d)
            ),
            None,
        )
        where = f" ({dom} comes {origin_of(dom)})" if dom else ""
        from_node = bool(dom) and pod.search_origin.get(dom) == ORIGIN_NODE
        if assumed:
            return _Finding(
                "at-risk",
                f"Nobody has probed how {dom or 'the extra search domain'} answers{where}. If it answers NODATA "
                f"(or SERVFAIL/REFUSED) for names under it, musl {version} stops at {stop} and fails {name} "
                f"({m.error}); glibc would continue to {hit}. Probe '<random>.{dom}' to confirm.",
                name,
                node_domain=from_node,
            )
        server = "cluster DNS" if pod.dns_type == "cluster" else "the nameserver"
        said = (
            f"{server} does not answer it" if answer == "no answer" else f"{server} answers {answer} for it"
        )
        return _Finding(
            "affected",
            f"musl {version} stops at {stop} because {said}{where}; "
            f"glibc would continue to {hit}. {name} fails under musl with {m.error}"
            + (f" after {m.elapsed:g}s" if m.elapsed >= 1 else "")
            + ".",
            name,
            node_domain=from_node,
        )

    def musl_findings(version: str) -> list[_Finding]:
        out: list[_Finding] = []
        for name in names:
            run = runs.get((version, name))
            if run is None:
                continue
            m, g, mp, gp = run
            if g.ok and not m.ok:
                out.append(explain(name, version, m, g, assumed=False))
            elif mp is not None and gp is not None and gp.ok and not mp.ok:
                out.append(explain(name, version, mp, gp, assumed=True))
        if extra_ns:
            out.append(
                _Finding(
                    "at-risk",
                    f"Nameserver(s) {', '.join(extra_ns)} from the workload's dnsConfig are appended to cluster DNS: "
                    "musl asks all nameservers at once and takes the first NOERROR/NXDOMAIN reply, so a fast "
                    "NXDOMAIN from a non-cluster server hides cluster names (glibc asks them in order).",
                )
            )
        return out

    def capped(f: _Finding) -> _Finding:
        """A finding that rests on an inferred node domain is at most at-risk, and says "likely"."""
        if inferred and f.node_domain and f.risk == "affected":
            return _Finding(
                "at-risk",
                "Likely: " + f.reason + " (the node's search domain is inferred, not read from the node: "
                "confirm by allowing exec reads or entering the node's file)",
                f.name,
                f.node_domain,
            )
        return f

    by_version = {v: [capped(f) for f in musl_findings(v)] for v in musl_versions}
    musl_would_fail = any(by_version.values())
    worst_any = max(
        (f for fs in by_version.values() for f in fs), key=lambda f: RISK_ORDER[f.risk], default=None
    )

    container_risks: list[str] = []
    failing_names: list[str] = []
    for c, v in verdicts:
        if v.libc == "musl":
            mv = normalise_musl_version(v.musl_version)
            vs = [mv] if mv else musl_versions
            fs = [f for ver in vs for f in by_version.get(ver, [])]
            if mv is None and fs:
                # Unknown exact musl version: certain only if every candidate version fails.
                certain = all(any(f.risk == "affected" for f in by_version.get(ver, [])) for ver in vs)
                if not certain:
                    fs = [
                        _Finding(
                            "at-risk", f.reason + " (the exact musl version of the image is unknown)", f.name
                        )
                        for f in fs
                    ]
            risk = max((f.risk for f in fs), key=RISK_ORDER.__getitem__, default="safe")
            container_risks.append(risk)
            for f in fs:
                line = f"Container {c.name} ({c.image}, musl{' ' + mv if mv else ''}): {f.reason}"
                if line not in reasons:
                    reasons.append(line)
                if f.name and f.name not in failing_names:
                    failing_names.append(f.name)
        elif v.libc in ("glibc", "static"):
            container_risks.append("safe")
            if musl_would_fail and worst_any is not None:
                why = (
                    "glibc continues the search past such answers and then tries the name as given"
                    if v.libc == "glibc"
                    else "a static binary (e.g. Go) carries its own resolver, which does not stop the search like musl"
                )
                reasons.append(
                    f"Container {c.name} ({c.image}) uses {v.libc}: not affected, because {why} — "
                    f"though this pod's resolv.conf would break a musl image ({worst_any.reason})"
                )
        else:
            if musl_would_fail:
                container_risks.append("unknown")
                reasons.append(
                    f"Container {c.name} ({c.image}): its libc is unknown ({'; '.join(v.evidence) or 'no evidence'}). "
                    f"If it uses musl: {worst_any.reason if worst_any else ''}"
                )
                for f in (f for fs in by_version.values() for f in fs):
                    if f.name and f.name not in failing_names:
                        failing_names.append(f.name)
            else:
                container_risks.append("safe")

    if node_gap and not pod.error:
        gap = _node_file_gap(pool, kubelet, w, ctx.node_file_hint)
        if any(v.libc == "musl" for _, v in verdicts):
            container_risks.append("at-risk")
            reasons.append(gap)
        elif any(v.libc not in ("musl", "glibc", "static") for _, v in verdicts):
            container_risks.append("unknown")
            reasons.append(gap + " The libc of some container is unknown: if it is musl, this applies.")

    if base_nx and any(v.libc == "musl" for _, v in verdicts):
        reasons.append(
            f"CoreDNS already answers NXDOMAIN for search-expanded names under {', '.join(sorted(base_nx))} "
            "(a template), so musl moves on past that search domain."
        )
    if wildcard:
        container_risks.append("at-risk")
        reasons.append(
            f"Search domain(s) {', '.join(wildcard)} answer with addresses for any name (wildcard): musl AND glibc "
            "return those wrong addresses for names found there before the real one."
        )
    if pod.error:
        container_risks.append("unknown")
    risk = (
        max(container_risks, key=RISK_ORDER.__getitem__, default="unknown") if container_risks else "unknown"
    )

    if risk == "safe" and w.dns_policy == "None" and w.dns_config:
        reasons.append(
            f"dnsPolicy None with its own dnsConfig (search {' '.join(searches) or 'none'}): the pod inherits no "
            "search domain from the node — already fixed."
        )
    elif risk == "safe" and not reasons:
        if not any(v.libc == "musl" for _, v in verdicts):
            reasons.append("No container uses musl; glibc and static resolvers are not affected.")
        else:
            reasons.append(
                "Every search domain of this pod answers NXDOMAIN for unknown names, so musl reaches the absolute "
                "name like glibc."
                if extra_domains
                else "The pod's search list holds only the cluster domains, which answer NXDOMAIN for other names."
            )
    if risk in ("at-risk", "unknown", "affected"):
        if inherits and pool.node_file_scope == "searches" and pod.dns_type == "host":
            reasons.append(
                "Assumed: the node's nameservers and options (only its search line was read, from a pod using "
                "cluster DNS)."
            )
        reasons += [f"Assumed: {x}" for x in [*ctx.assumed, *pool.assumed]]

    # --- remediation ---
    offending = list(dict.fromkeys([*bad, *unknown, *(["."] if search_dot else [])]))
    # A fix must make the failing names resolve and keep the ones musl already resolved working; a name
    # that fails under glibc too (not musl-specific) is not held against a fix.
    resolved_before = [
        n for n in names if runs and all(runs[(v, n)][0].ok for v in musl_versions if (v, n) in runs)
    ]
    check_names = list(dict.fromkeys([*failing_names, *resolved_before]))
    relevant_versions = musl_versions
    diag = Diagnosis(
        workload=w,
        pool=pool,
        pod=pod,
        risk=risk,
        offending=offending,
        offending_origin={o: pod.search_origin.get(o, "") for o in offending},
        bad_zones=[d for d in [*bad, *unknown] if d not in ("", ".")],
        long_line=long_line,
        extra_nameservers=extra_ns,
        low_ndots=ndots < 5 and any(f.reason.startswith("ndots") for fs in by_version.values() for f in fs),
        search_dot=search_dot,
        failing_names=failing_names,
        check_names=check_names,
        musl_versions=relevant_versions,
        musl_images=musl_images,
        libcs=[v.libc for _, v in verdicts],
        dotted_service_names=[n for n in service_names if n.count(".") >= ndots],
    )

    def resim(text2: str, name: str, version: str, nx: frozenset[str]) -> Resolution:
        return a.simulate("musl", text2, name, version, cd, services, assume, nx | base_nx)

    remedies = choose(
        diag,
        resim,
        kyverno_installed=ctx.kyverno_installed,
        coredns_variant=str(ctx.coredns.get("variant") or ""),
        corefile=str(ctx.coredns.get("corefile") or ""),
    )
    rec = next((r for r in remedies if r.recommended), None)
    remediation = {
        "recommended": rec.kind if rec else "none",
        "alternatives": [r.kind for r in remedies if not r.recommended and r.usable],
        "why": rec.why if rec else ("Nothing to change." if risk == "safe" else "No checked fix was found."),
    }

    report = {
        "namespace": w.namespace,
        "kind": w.kind,
        "name": w.name,
        "containers": [
            {
                "name": c.name,
                "image": c.image,
                "libc": v.libc,
                "musl_version": v.musl_version,
                "confidence": v.confidence,
                "digest": v.digest,
            }
            for c, v in verdicts
        ],
        "dns_policy": w.dns_policy,
        "host_network": w.host_network,
        "resolv_conf": pod.conf.to_dict(),
        "risk": risk,
        "reasons": reasons,
        "remediation": remediation,
        "node_pool": pool.name,
        "affected_names": failing_names,
        "dns_config": w.dns_config,
        "node_resolv_conf_source": pool.node_resolv_conf_source,
        "inherits_node_file": inherits,
    }
    # An exemption annotation never changes the verdict: it rides along (or says why it does not apply).
    if w.annotations:
        exemption, note = exemptions.from_annotations(w.annotations, ctx.today or date.today())
        if exemption is not None:
            report["exemption"] = exemption
        if note is not None:
            reasons.append(note)
    detail = {
        "resolv_conf_text": text,
        "search_origin": dict(pod.search_origin),
        "nameserver_origin": dict(pod.nameserver_origin),
        "events": list(pod.events),
        "error": pod.error,
        "simulations": sims,
        "containers": [{"name": c.name, "image": c.image, **v.to_dict()} for c, v in verdicts],
        "remediations": [r.to_dict() for r in remedies],
        "validation": [
            {"kind": r.kind, "checked": r.checked, "problems": list(r.problems)} for r in remedies
        ],
        "assumed": [
            *ctx.assumed,
            *pool.assumed,
            *(
                [f"node search domains of pool {pool.name}: {pool.node_resolv_conf_source}"]
                if node_gap
                else []
            ),
            *([f"probe-less domain(s) {', '.join(unknown)} simulated as NODATA"] if unknown else []),
        ],
    }
    return WorkloadAudit(report=report, detail=detail, workload=w, diagnosis=diag, remedies=remedies)


# --- cluster level ------------------------------------------------------------------------------------


def cluster_remediation(audits: list[WorkloadAudit], ctx: AuditContext) -> dict:
    """Cluster-level fixes covering every affected/at-risk workload, each with why and trade-offs.

    Returns ``{"summary": {...}, "domains": {domain: {"origins", "workloads"}}, "artifacts": [{"kind",
    "title", "why", "tradeoffs", "files": {path: text}, ...}]}``. Kinds: ``kubelet`` (one per node pool
    whose node file brings an offending domain; also ``pool`` and ``nodes``), ``kyverno`` (the policy
    scoped to a label and the exact images judged musl, and one label patch per workload that needs it;
    also ``workloads``), ``coredns`` (template, k3s coredns-custom form, and with a known Corefile the full
    ConfigMap; also ``variant`` and ``zones``). File paths are relative to the bundle root and hold no raw
    cluster string (:func:`patches.safe_part`). Zones that are not DNS names are refused (``refused_zones``).
    """
    risky = [x for x in audits if x.report["risk"] in ("affected", "at-risk", "unknown")]
    summary = {
        r: sum(1 for x in audits if x.report["risk"] == r) for r in ("affected", "at-risk", "unknown", "safe")
    }
    domains: dict[str, dict] = {}
    for x in risky:
        d = x.diagnosis
        if d is None:
            continue
        for o in d.offending:
            e = domains.setdefault(o, {"origins": [], "workloads": []})
            org = d.offending_origin.get(o) or ""
            if org and org not in e["origins"]:
                e["origins"].append(org)
            e["workloads"].append(f"{x.report['namespace']}/{x.report['kind']}/{x.report['name']}")
    artifacts: list[dict] = []
    seen_pools: set[str] = set()
    for x in risky:
        for r in x.remedies:
            if r.kind == "kubelet" and x.diagnosis and x.diagnosis.pool.name not in seen_pools and r.usable:
                pool = x.diagnosis.pool
                seen_pools.add(pool.name)
                folder = f"kubelet/{patches.safe_part(pool.name)}/"
                files = {k.replace("kubelet/", folder, 1): v for k, v in r.extra_files.items()}
                artifacts.append(
                    {
                        "kind": "kubelet",
                        "title": f"{r.title} (node pool {pool.name})",
                        "why": r.why,
                        "tradeoffs": r.tradeoffs,
                        "files": files,
                        "pool": pool.name,
                        "nodes": list(pool.nodes),
                    }
                )
    kyverno = _kyverno_artifact(audits, risky, ctx)
    if kyverno is not None:
        artifacts.append(kyverno)
    all_zones = sorted({z for x in risky if x.diagnosis for z in x.diagnosis.bad_zones})
    zones = [z for z in all_zones if patches.is_dns_zone(z)]
    refused = [z for z in all_zones if not patches.is_dns_zone(z)]
    if zones:
        files = {
            "coredns/template.conf": "".join(patches.coredns_template(z) for z in zones),
            "coredns/k3s-coredns-custom.yaml": patches.dump_yaml(patches.coredns_custom_configmap(zones)),
        }
        variant = str(ctx.coredns.get("variant") or "")
        corefile = str(ctx.coredns.get("corefile") or "")
        patched = patches.corefile_with_templates(corefile, zones) if corefile else None
        if patched:
            files["coredns/Corefile"] = patched
            if variant != "k3s":
                files["coredns/coredns-configmap.yaml"] = patches.dump_yaml(
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": "coredns", "namespace": "kube-system"},
                        "data": {"Corefile": patched},
                    }
                )
        artifacts.append(
            {
                "kind": "coredns",
                "title": f"CoreDNS answers NXDOMAIN for search-expanded names under {', '.join(zones)}",
                "why": "Fixes every pod that uses cluster DNS at once, without restarting them.",
                "tradeoffs": [
                    "Hides real names with two or more labels before the zone.",
                    "Does not help dnsPolicy Default/hostNetwork pods.",
                    "k3s: use the coredns-custom ConfigMap (its coredns ConfigMap is rewritten on restart).",
                    *(
                        [
                            f"{len(refused)} search domain(s) are not DNS names and were left out of the Corefile."
                        ]
                        if refused
                        else []
                    ),
                ],
                "files": files,
                "variant": variant,
                "zones": zones,
                "refused_zones": refused,
            }
        )
    return {"summary": summary, "domains": domains, "artifacts": artifacts}


def _kyverno_artifact(
    audits: list[WorkloadAudit], risky: list[WorkloadAudit], ctx: AuditContext
) -> dict | None:
    """The ClusterPolicy and the label patches for exactly the workloads whose checked Kyverno fix applies
    (musl images, cluster DNS, not hostNetwork, dnsPolicy ClusterFirst, outside kube-system)."""
    # A reference any container was judged non-musl for (another platform, another workload) never goes in.
    not_musl = {c["image"] for x in audits for c in x.report["containers"] if c["libc"] != "musl"}
    chosen: list[WorkloadAudit] = []
    images: set[str] = set()
    for x in risky:
        d, w = x.diagnosis, x.workload
        if d is None or w is None or w.kind not in patches.KUBECTL_RESOURCE:
            continue
        refs = [i for i in d.musl_images if i not in not_musl]
        if not refs or w.dns_policy not in ("ClusterFirst", ""):
            continue
        if not any(r.kind == "kyverno" and r.usable for r in x.remedies):
            continue
        chosen.append(x)
        images.update(refs)
    pools = list(ctx.pools.values()) or [NodePool(name=ctx.default_pool)]
    kubelet = (ctx.pools.get(ctx.default_pool) or pools[0]).kubelet
    if not chosen or not kubelet.cluster_dns:
        return None
    policy = patches.kyverno_policy(list(kubelet.cluster_dns), kubelet.cluster_domain, sorted(images))
    files = {patches.KYVERNO_POLICY_FILE: patches.dump_yaml(policy)}
    for x in chosen:
        w = x.workload
        assert w is not None
        path = "kyverno/labels/" + patches.patch_path_for(w.namespace, w.kind, w.name)
        files[path] = patches.dump_yaml(patches.label_patch_document(w))
    key, value = patches.KYVERNO_LABEL
    return {
        "kind": "kyverno",
        "title": f"Kyverno ClusterPolicy for the {len(chosen)} musl workload(s) that need it",
        "why": (
            f"Gives new Pods labelled {key}={value} that run an image judged musl "
            f"({', '.join(sorted(images))}) dnsPolicy None with the cluster DNS and their namespace's search "
            "domains; the label patches put exactly the workloads that need it in scope (and roll them)."
        ),
        "tradeoffs": [
            "Kyverno is installed in this cluster."
            if ctx.kyverno_installed
            else "Kyverno is not installed: install it first.",
            "Only new Pods are changed; kube-system, hostNetwork and non-ClusterFirst Pods are left alone.",
            "A new musl workload needs the label; a rebuilt or renamed image needs a regenerated policy.",
        ],
        "files": files,
        "workloads": [f"{x.report['namespace']}/{x.report['kind']}/{x.report['name']}" for x in chosen],
    }


def render_bundle(cluster_name: str, audits: list[WorkloadAudit], ctx: AuditContext) -> dict[str, str]:
    """Files of the remediation bundle (:mod:`dnsaudit.core.bundle`, the layout the export ships too) plus
    ``report.json``. Paths are relative, POSIX, without leading slashes."""
    from dnsaudit.core import bundle

    cluster = cluster_remediation(audits, ctx)
    files = bundle.build_files(
        cluster_name,
        [(x.report, [r.to_dict() for r in x.remedies]) for x in audits],
        cluster["artifacts"],
        summary=cluster["summary"],
    )
    files["report.json"] = json.dumps({"workloads": [x.report for x in audits]}, indent=2) + "\n"
    return files
