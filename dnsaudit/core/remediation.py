"""Choosing a fix per workload, rendering it, and checking it before anyone sees it.

Options (domain.md §5.4): ``none``; ``dnsConfig`` (``dnsPolicy: None`` + a full dnsConfig);
``kubelet`` (a resolvConf file without the offending domains); ``kyverno`` (a mutating ClusterPolicy);
``coredns`` (a ``template`` answering NXDOMAIN for the offending zone); ``base-image``.

Recommendation rule (first that applies and whose check passes):

1. nothing wrong → ``none``;
2. the cause is in the workload's own spec (a search domain or nameserver from its ``dnsConfig``,
   ``ndots`` lowered in its ``dnsConfig``, an existing ``dnsPolicy: None``) → ``dnsConfig``;
3. the cause comes from the node file (an extra search domain, ``search .``, an over-long search line)
   and that file is known → ``kubelet`` (one node-level change fixes every workload, and is what the
   seed user's autoscaling OpenStack setup needed: the node keeps its own ``/etc/resolv.conf``);
4. otherwise ``dnsConfig``, then ``kyverno`` (when installed), ``coredns``, and ``base-image`` last.

Every workload patch goes through :func:`check_patch`: the API server's dnsConfig validation, then the
kubelet's synthesis of the patched pod's resolv.conf and a musl re-simulation of the names that failed
(and of the names that worked, so a fix never breaks them). A fix that fails its check is listed with
its problems and never recommended.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dnsaudit.core import patches
from dnsaudit.core.kubelet import (
    ORIGIN_CLUSTER,
    ORIGIN_DNS_CONFIG,
    ORIGIN_NODE,
    PodDNS,
    cluster_searches,
    expanded_limits_for,
    pod_resolv_conf,
    render_resolv_conf,
)
from dnsaudit.core.model import NodePool, Resolution, Workload
from dnsaudit.core.validation import validate_dns_config

#: (resolv.conf text, name, musl version, zones answered NXDOMAIN by a CoreDNS template) → musl result.
Simulate = Callable[[str, str, str, frozenset[str]], Resolution]

#: musl reads a search line of at most 254 characters (a 256-byte fgets buffer, newline included).
MUSL_MAX_SEARCH_LINE = 254

#: Options glibc understands and musl ignores (musl only reads ndots, attempts, timeout).
GLIBC_ONLY_OPTIONS = {
    "single-request",
    "single-request-reopen",
    "rotate",
    "edns0",
    "use-vc",
    "no-tld-query",
    "trust-ad",
    "no-aaaa",
    "inet6",
    "no-check-names",
    "strict-error",
    "no-reload",
}

KINDS = ("dnsConfig", "kubelet", "kyverno", "coredns", "base-image", "none")


@dataclass
class Diagnosis:
    """What the audit found for one workload, as the remediation step needs it.

    ``offending`` are search entries to remove (``"."`` included), with their origin in
    ``offending_origin`` (``"node"``/``"dnsConfig"``/``"kubelet"``). ``check_names`` are the names the
    musl re-simulation must resolve after a fix (the failing ones and those that worked).
    """

    workload: Workload
    pool: NodePool
    pod: PodDNS
    risk: str
    offending: list[str] = field(default_factory=list)
    offending_origin: dict[str, str] = field(default_factory=dict)
    bad_zones: list[str] = field(default_factory=list)  # offending domains a CoreDNS template can answer
    long_line: bool = False
    extra_nameservers: list[str] = field(default_factory=list)
    low_ndots: bool = False
    search_dot: bool = False
    failing_names: list[str] = field(default_factory=list)
    check_names: list[str] = field(default_factory=list)
    musl_versions: list[str] = field(default_factory=list)
    musl_images: list[str] = field(default_factory=list)
    libcs: list[str] = field(default_factory=list)
    dotted_service_names: list[str] = field(default_factory=list)


@dataclass
class Remedy:
    """One fix as shown to the user (``to_dict`` is the ``detail.remediations[]`` entry)."""

    kind: str
    title: str
    why: str
    tradeoffs: list[str] = field(default_factory=list)
    recommended: bool = False
    patch_yaml: str = ""
    kubectl: str = ""
    kustomize: str = ""
    extra_files: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # why the check failed; empty = checked and fine
    checked: bool = False
    dns_policy: str | None = None
    dns_config: dict | None = None

    @property
    def usable(self) -> bool:
        return self.checked and not self.problems

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "title": self.title,
            "why": self.why,
            "tradeoffs": list(self.tradeoffs),
            "recommended": self.recommended,
            "patch_yaml": self.patch_yaml,
            "kubectl": self.kubectl,
            "kustomize": self.kustomize,
            "extra_files": dict(self.extra_files),
            "checked": self.checked,
            "problems": list(self.problems),
        }


# --- building the dnsConfig fix ----------------------------------------------------------------------


def _ndots_of(options: list[str] | tuple[str, ...]) -> int | None:
    for op in options:
        name, _, value = op.partition(":")
        if name == "ndots":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def fixed_dns_config(d: Diagnosis) -> dict | None:
    """The full dnsConfig for ``dnsPolicy: None`` that keeps what the pod needs and drops the offenders.

    * cluster pods: the kubelet's clusterDNS servers only (a non-cluster server would race cluster DNS
      under musl's parallel queries); ``<ns>.svc.<cd> svc.<cd> <cd>`` first, then the pod's other
      harmless search entries; options kept with ``ndots:5`` (the kubelet's default);
    * host pods (``Default``, hostNetwork ``ClusterFirst``): the node's servers and options, the node's
      searches minus the offenders;
    * ``None`` pods: their own dnsConfig minus the offenders (and with ``ndots:5`` if ndots was the cause).

    Search entries are dropped from the end until the line fits musl's 254 characters.
    None when no nameserver is known (``None`` requires at least one).
    """
    w, pod, kubelet = d.workload, d.pod, d.pool.kubelet
    drop = set(d.offending) | {"", "."}
    options = list(pod.conf.options)
    if pod.dns_type == "cluster":
        servers = [s for s in pod.conf.nameservers if pod.nameserver_origin.get(s) == ORIGIN_CLUSTER]
        if not servers:
            servers = list(kubelet.cluster_dns[:3])
        first = cluster_searches(w.namespace, kubelet.cluster_domain)
        rest = [s for s in pod.conf.searches if s not in first and s not in drop]
        searches = first + rest
        options = _with_ndots(options, 5)
    elif pod.dns_type == "host":
        servers = list(pod.conf.nameservers)
        first = []
        searches = [s for s in pod.conf.searches if s not in drop]
    else:  # none
        servers = [s for s in pod.conf.nameservers if s not in d.extra_nameservers] or list(
            pod.conf.nameservers
        )
        first = []
        searches = [s for s in pod.conf.searches if s not in drop]
        if d.low_ndots:
            options = _with_ndots(options, 5)
    if not servers:
        return None
    while (
        searches and len("search " + " ".join(searches)) > MUSL_MAX_SEARCH_LINE and len(searches) > len(first)
    ):
        searches.pop()
    cfg: dict = {"nameservers": servers[:3], "searches": searches}
    if options:
        cfg["options"] = patches.options_to_api(options)
    return cfg


def _with_ndots(options: list[str], n: int) -> list[str]:
    out = [op for op in options if op.partition(":")[0] != "ndots"]
    return [f"ndots:{n}", *out]


# --- checks -----------------------------------------------------------------------------------------


def _resimulate(
    text: str,
    names: list[str],
    versions: list[str],
    simulate: Simulate,
    nx_zones: frozenset[str] = frozenset(),
) -> list[str]:
    problems: list[str] = []
    for version in versions:
        for name in names:
            r = simulate(text, name, version, nx_zones)
            if not r.ok:
                problems.append(
                    f"after the fix, musl {version} still fails {name} ({r.error}"
                    + (f", stopped at {r.stopped_at}" if r.stopped_at else "")
                    + ")"
                )
    return problems


def check_patch(
    w: Workload,
    dns_policy: str,
    dns_config: dict | None,
    pool: NodePool,
    names: list[str],
    versions: list[str],
    simulate: Simulate,
) -> list[str]:
    """Problems with a workload patch; ``[]`` means it is valid and makes ``names`` resolve under musl.

    1. ``validate_dns_config`` (the API server's rules) at the workload's pod-spec path;
    2. the kubelet's synthesis of the patched pod (same node file, same kubelet version);
    3. a musl re-simulation of every name for every musl version concerned.
    """
    field_path = ".".join(patches.pod_spec_path(w))
    problems = validate_dns_config(dns_policy, dns_config, field_path=field_path)
    if problems:
        return problems
    pod = pod_resolv_conf(
        w.namespace,
        dns_policy,
        w.host_network,
        dns_config,
        pool.kubelet,
        pool.node_resolv_conf,
        expanded_limits=expanded_limits_for(pool.kubelet.version),
    )
    if pod.error:
        return [f"the kubelet would not create the pod: {pod.error}"]
    return _resimulate(render_resolv_conf(pod.conf), names, versions, simulate)


def check_node_file(d: Diagnosis, new_node_file: str, simulate: Simulate) -> list[str]:
    """Problems with a new kubelet resolvConf for this workload (synthesis + musl re-simulation)."""
    w = d.workload
    pod = pod_resolv_conf(
        w.namespace,
        w.dns_policy,
        w.host_network,
        w.dns_config,
        d.pool.kubelet,
        new_node_file,
        expanded_limits=expanded_limits_for(d.pool.kubelet.version),
    )
    if pod.error:
        return [f"the kubelet cannot use the new file: {pod.error}"]
    return _resimulate(render_resolv_conf(pod.conf), d.check_names, d.musl_versions, simulate)


# --- the remedies -----------------------------------------------------------------------------------


def _glibc_only(options: list[str] | tuple[str, ...]) -> list[str]:
    return [op for op in options if op.partition(":")[0] in GLIBC_ONLY_OPTIONS]


def dns_config_remedy(d: Diagnosis, simulate: Simulate) -> Remedy:
    """``dnsPolicy: None`` + full dnsConfig, rendered for the top owner and checked."""
    w = d.workload
    cfg = fixed_dns_config(d)
    removed = ", ".join(f"'{o}'" for o in d.offending)
    if not removed and d.pod.dns_type != "none" and not d.pool.node_searches_known:
        # The node's file was not read: whatever search domains it adds are what this fix leaves out.
        removed = f"whatever the node's resolv.conf of pool {d.pool.name} adds, which was not read"
    removed = removed or "nothing"
    why = (
        f"Set dnsPolicy None with a complete dnsConfig so the kubelet writes only these lines (removed: {removed}). "
        "dnsPolicy ClusterFirst with a dnsConfig can only append search domains (the kubelet merges and "
        "de-duplicates), and 'searches: []' removes nothing, hence None."
    )
    if d.extra_nameservers:
        why += (
            f" The non-cluster nameserver(s) {', '.join(d.extra_nameservers)} are left out: musl asks all "
            "nameservers at once and takes the first NXDOMAIN, which can hide cluster names."
        )
    if d.dotted_service_names:
        why += (
            " ndots is set to 5 again: with a lower ndots musl never applies the search list to names with "
            f"that many dots ({', '.join(d.dotted_service_names)}), where glibc still would."
        )
    tradeoffs = [
        "It repeats the cluster DNS IP and this namespace's search domains: if the kube-dns Service IP or "
        "the cluster domain changes, or the manifest is deployed to another namespace or cluster, the patch "
        "must be regenerated.",
        "One patch per workload; new musl workloads need it too (see the Kyverno alternative).",
    ]
    if w.kind in patches.IMMUTABLE_KINDS:
        tradeoffs.append(
            f"A {w.kind}'s DNS fields are immutable: the object is deleted and recreated (fix its manifest too)."
        )
    else:
        tradeoffs.append(
            "Changing the pod template rolls the pods (a rollout), which is what applies the fix."
        )
    glibc_only = _glibc_only(d.pod.conf.options)
    if glibc_only:
        tradeoffs.append(
            f"Options {', '.join(glibc_only)} are kept for glibc containers; musl ignores them (it only reads "
            "ndots, attempts and timeout)."
        )
    if cfg is None:
        return Remedy(
            "dnsConfig",
            "Give this workload its own full dnsConfig (dnsPolicy None)",
            why,
            tradeoffs,
            checked=True,
            problems=[
                "no nameserver is known for this pod (kubelet clusterDNS is empty and the node file is unknown)"
            ],
        )
    problems = check_patch(w, "None", cfg, d.pool, d.check_names, d.musl_versions, simulate)
    patch = patches.workload_patch(w, "None", cfg)
    doc = patches.workload_patch_document(w, "None", cfg)
    entry = patches.kustomize_patch_entry(w, patches.patch_file_name(w))
    return Remedy(
        kind="dnsConfig",
        title=f"Set dnsPolicy None and a full dnsConfig on {w.kind} {w.namespace}/{w.name}",
        why=why,
        tradeoffs=tradeoffs,
        patch_yaml=patches.dump_yaml(doc),
        kubectl=patches.kubectl_patch_command(w, patch),
        kustomize=patches.dump_yaml(patches.kustomization([entry])),
        problems=problems,
        checked=True,
        dns_policy="None",
        dns_config=cfg,
    )


def new_node_file(d: Diagnosis) -> str | None:
    """The node resolv.conf without the node-origin offenders, or None when not applicable."""
    node_file = d.pool.node_resolv_conf
    node_offenders = {o for o in d.offending if d.offending_origin.get(o) == ORIGIN_NODE}
    if node_file is None or not (node_offenders or (d.long_line and _long_from_node(d))):
        return None
    text = patches.strip_search_domains(node_file, node_offenders)
    return text


def _long_from_node(d: Diagnosis) -> bool:
    return any(d.pod.search_origin.get(s) == ORIGIN_NODE for s in d.pod.conf.searches)


def kubelet_remedy(d: Diagnosis, simulate: Simulate) -> Remedy | None:
    """A kubelet resolvConf without the offending node domains; None when the cause is not the node file."""
    text = new_node_file(d)
    if text is None:
        return None
    kubelet = d.pool.kubelet
    node_offenders = [o for o in d.offending if d.offending_origin.get(o) == ORIGIN_NODE]
    problems = check_node_file(d, text, simulate)
    why = (
        f"The search domain(s) {', '.join(repr(o) for o in node_offenders) or '(long list)'} come from the node file "
        f"the kubelet reads ({kubelet.resolv_conf or 'none'}). Point the kubelet at a copy without them "
        f"({patches.KUBELET_RESOLV_PATH}): every ClusterFirst pod on the node stops inheriting them, while the "
        "node's own /etc/resolv.conf keeps them for the host (e.g. OpenStack node naming used by the autoscaler)."
    )
    if "." in node_offenders:
        why += (
            " For 'search .', kubelet 1.25.0 is the cause (it copies '.' into pods); upgrading the kubelet to "
            "1.25.1 or later drops it without any file change."
        )
    tradeoffs = [
        "It also changes what dnsPolicy Default and hostNetwork pods get from this node — including CoreDNS "
        "itself (dnsPolicy Default, 'forward . /etc/resolv.conf'): keep real upstream nameservers in the file, "
        "not the systemd-resolved stub 127.0.0.53.",
        "The file must exist on every node BEFORE the kubelet restarts: a missing file fails every pod "
        "sandbox on the node. Bake it into the node image or cloud-init so autoscaled nodes get it.",
        "It is a static copy: later DHCP/resolved changes to the node's nameservers are not followed.",
        "Existing pods keep their resolv.conf until they are recreated (roll the workloads after the change).",
        "kubeadm clusters: also set resolvConf in the kube-system/kubelet-config ConfigMap, or 'kubeadm upgrade' "
        "and new joins rewrite /var/lib/kubelet/config.yaml.",
    ]
    if any(ns.startswith("127.") for ns in parse_nameservers(text)):
        problems = [
            *problems,
            "the node file's nameserver is a loopback stub (127.x): use the upstream list, e.g. "
            "/run/systemd/resolve/resolv.conf, or CoreDNS will forward to itself",
        ]
    extra = {
        f"kubelet/{patches.KUBELET_RESOLV_PATH.rsplit('/', 1)[-1]}": text,
        "kubelet/kubelet-config.yaml": patches.dump_yaml(patches.kubelet_configuration()),
        "kubelet/kubelet-flag.txt": patches.kubelet_flag() + "\n",
        "kubelet/cloud-init.yaml": patches.cloud_init(text),
    }
    return Remedy(
        kind="kubelet",
        title=f"Give the kubelet a resolv.conf without {', '.join(node_offenders) or 'the extra domains'}",
        why=why,
        tradeoffs=tradeoffs,
        patch_yaml=patches.dump_yaml(patches.kubelet_configuration()),
        kubectl="",
        extra_files=extra,
        problems=problems,
        checked=True,
    )


def parse_nameservers(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            out.append(fields[1])
    return out


def kyverno_remedy(d: Diagnosis, simulate: Simulate, *, installed: bool) -> Remedy | None:
    """A Kyverno ClusterPolicy giving musl Pods the cluster-only dnsConfig; None for host/None pods."""
    w, kubelet = d.workload, d.pool.kubelet
    if (
        d.pod.dns_type != "cluster"
        or w.host_network
        or w.namespace == "kube-system"
        or not kubelet.cluster_dns
    ):
        return None
    images = d.musl_images or [c.image for c in w.containers]
    policy = patches.kyverno_policy(list(kubelet.cluster_dns), kubelet.cluster_domain, images)
    label_doc = patches.label_patch_document(w)
    label_path = "kyverno/labels/" + patches.patch_path_for(w.namespace, w.kind, w.name)
    # What the policy does to this pod: the same as the cluster-only dnsConfig for its namespace.
    cfg = {
        "nameservers": list(kubelet.cluster_dns[:3]),
        "searches": cluster_searches(w.namespace, kubelet.cluster_domain),
        "options": [{"name": "ndots", "value": "5"}],
    }
    problems = check_patch(w, "None", cfg, d.pool, d.check_names, d.musl_versions, simulate)
    tradeoffs = [
        (
            "Kyverno is installed in this cluster."
            if installed
            else "Kyverno is not installed in this cluster: it must be installed first."
        )
        + " It becomes part of the Pod creation path (its webhook's failurePolicy decides what happens when it is down).",
        "Only Pods created after the policy are changed: restart the affected workloads.",
        f"Scoped by the label {patches.KYVERNO_LABEL[0]}={patches.KYVERNO_LABEL[1]} (added to this workload's "
        "pod template, which rolls it) AND the exact image references judged musl: a new musl workload or a "
        "rebuilt image needs the label and a regenerated policy.",
        "kube-system and hostNetwork Pods are excluded; Pods that chose another dnsPolicy are left alone.",
        "It repeats the cluster DNS IP and domain in the policy.",
    ]
    return Remedy(
        kind="kyverno",
        title="Mutate new musl Pods with a Kyverno ClusterPolicy",
        why=(
            "A mutating ClusterPolicy gives new Pods of this workload (labelled for it, running an image judged "
            "musl) dnsPolicy None with the cluster DNS and their own namespace's search domains (from "
            "{{request.namespace}}): one label per workload, no node changes."
        ),
        tradeoffs=tradeoffs,
        patch_yaml=patches.dump_yaml(policy),
        kubectl=(
            f"kubectl apply -f {patches.KYVERNO_POLICY_FILE}\n"
            + patches.patch_file_command(label_doc, label_path)
        ),
        extra_files={
            patches.KYVERNO_POLICY_FILE: patches.dump_yaml(policy),
            label_path: patches.dump_yaml(label_doc),
        },
        problems=problems,
        checked=True,
    )


def coredns_remedy(
    d: Diagnosis, simulate: Simulate, *, variant: str = "", corefile: str = ""
) -> Remedy | None:
    """A CoreDNS ``template`` answering NXDOMAIN for the offending zones; None when no zone applies."""
    zones = [z for z in d.bad_zones if z not in (".", "") and patches.is_dns_zone(z)]
    if not zones or d.pod.dns_type != "cluster":
        return None
    text = render_resolv_conf(d.pod.conf)
    problems = _resimulate(text, d.check_names, d.musl_versions, simulate, frozenset(zones))
    snippet = "".join(patches.coredns_template(z) for z in zones)
    cm = patches.coredns_custom_configmap(zones)
    extra = {"coredns/template.conf": snippet, "coredns/k3s-coredns-custom.yaml": patches.dump_yaml(cm)}
    patched = patches.corefile_with_templates(corefile, zones) if corefile else None
    if patched:
        extra["coredns/Corefile"] = patched
    if variant == "k3s":
        how = "kubectl apply -f coredns/k3s-coredns-custom.yaml && kubectl -n kube-system rollout restart deployment coredns"
    else:
        how = "kubectl -n kube-system edit configmap coredns   # add coredns/template.conf before the 'forward' line"
    return Remedy(
        kind="coredns",
        title=f"Answer NXDOMAIN in CoreDNS for search-expanded names under {', '.join(zones)}",
        why=(
            f"A CoreDNS 'template' answers NXDOMAIN for names like example.com.{zones[0]}, so musl moves on to the "
            "absolute name. It fixes every pod that uses cluster DNS at once, without restarting them."
        ),
        tradeoffs=[
            f"It hides real names with two or more labels before the zone (e.g. db.prod.{zones[0]}); "
            "single-label names such as node-1."
            + zones[0]
            + " still go upstream. Narrow the 'match' regex if needed.",
            "Pods with dnsPolicy Default or hostNetwork do not use CoreDNS and are not fixed.",
            "k3s rewrites its 'coredns' ConfigMap on restart: use the coredns-custom '.override' form there.",
            "CoreDNS 'autopath' is not an alternative: it returns the first non-NXDOMAIN reply, NODATA included.",
        ],
        patch_yaml=snippet,
        kubectl=how,
        extra_files=extra,
        problems=problems,
        checked=True,
    )


def base_image_remedy(d: Diagnosis, simulate: Simulate) -> Remedy:
    """Rebuild on a glibc base, or (for ``search .`` only) on musl ≥ 1.2.4."""
    only_dot = d.search_dot and set(d.offending) <= {"."} and not d.long_line and not d.low_ndots
    if only_dot:
        text = render_resolv_conf(d.pod.conf)
        problems = _resimulate(text, d.check_names, ["1.2.4"], simulate)
        return Remedy(
            kind="base-image",
            title="Move to Alpine 3.18 or later (musl 1.2.4+)",
            why="musl 1.2.4 and later skip the '.' search entry instead of sending a malformed query.",
            tradeoffs=[
                "An image rebuild per affected workload; other musl images stay affected until rebuilt."
            ],
            problems=problems,
            checked=True,
        )
    return Remedy(
        kind="base-image",
        title="Rebuild on a glibc base image (e.g. debian-slim, distroless/base, Wolfi)",
        why="glibc continues the search past NODATA and SERVFAIL and then tries the name as given.",
        tradeoffs=[
            "An image rebuild per affected workload, and a bigger image.",
            "A newer musl (Alpine 3.18+, musl 1.2.4+) does NOT help here: it still stops the search on "
            "NODATA/SERVFAIL (only the error code changed).",
        ],
        problems=[],
        checked=True,
    )


def choose(
    d: Diagnosis,
    simulate: Simulate,
    *,
    kyverno_installed: bool = False,
    coredns_variant: str = "",
    corefile: str = "",
) -> list[Remedy]:
    """All applicable remedies for ``d``, the recommended one first (``recommended=True``), or ``[]`` when
    nothing is needed. See the module docstring for the rule."""
    if d.risk == "safe":
        return []
    dns_cfg = dns_config_remedy(d, simulate)
    kubelet = kubelet_remedy(d, simulate)
    kyverno = kyverno_remedy(d, simulate, installed=kyverno_installed)
    coredns = coredns_remedy(d, simulate, variant=coredns_variant, corefile=corefile)
    base = base_image_remedy(d, simulate)
    own_cause = (
        d.pod.dns_type == "none"
        or bool(d.extra_nameservers)
        or any(d.offending_origin.get(o) == ORIGIN_DNS_CONFIG for o in d.offending)
        or (d.low_ndots and d.workload.dns_config is not None)
    )
    if own_cause:
        order = [dns_cfg, kubelet, kyverno, coredns, base]
    elif kubelet is not None:
        order = [kubelet, dns_cfg, kyverno, coredns, base]
    elif kyverno_installed:
        order = [dns_cfg, kyverno, coredns, kubelet, base]
    else:
        order = [dns_cfg, kyverno, coredns, kubelet, base]
    remedies = [r for r in order if r is not None]
    pick = next((r for r in remedies if r.usable), None)
    if pick is not None:
        pick.recommended = True
        remedies.remove(pick)
        remedies.insert(0, pick)
    return remedies
