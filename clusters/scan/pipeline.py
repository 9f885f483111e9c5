"""The scan's pipeline: read the cluster, inspect images, probe DNS and audit, one stage after another.

Each stage is a module of ``stages/``; this module only calls them in order and assembles the
``ScanResult`` that ``stages.save`` writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from dnsaudit.core.model import NodePool, ProbeResult

from .. import exemptions
from ..models import Cluster
from .progress import Progress, ScanAborted, _problem, _retry, kube_limits
from .stages.addons import coredns_facts, kyverno_installed
from .stages.images import inspect_images
from .stages.listing import list_workloads
from .stages.nodefiles import learn_node_files
from .stages.nodes import pools_with_kubelet_facts
from .stages.probes import probe_dns
from .stages.verification import verify_in_pods

log = logging.getLogger(__name__)


@dataclass
class ScanResult:
    pools: list[NodePool]
    audits: list  # list[WorkloadAudit]
    problems: list[dict]
    facts: dict
    pods_seen: int
    images_inspected: int
    probes: list[ProbeResult]


def collect_and_audit(
    cluster: Cluster, progress: Progress, *, client_factory: Callable | None = None
) -> ScanResult:
    """Read the cluster, inspect images, probe DNS and audit. Raises ScanAborted when nothing useful can be read."""
    from dnsaudit.boundary.kube import KubeClient, KubeError
    from dnsaudit.core import inventory
    from dnsaudit.core.audit import AuditContext, audit_workloads, cluster_remediation

    from ..registry import load_context

    problems: list[dict] = []
    facts: dict = {}
    progress.set("connecting")
    try:
        ctx = load_context(cluster)
    except ValueError as exc:  # DecryptionError, KubeconfigError, RegistryError: user-facing, secret-free
        raise ScanAborted(f"the stored kubeconfig of {cluster.name} cannot be used: {exc}") from exc
    client = client_factory(ctx) if client_factory else KubeClient.from_context(ctx, limits=kube_limits())
    progress.watch(client)  # the deadline on every page and body, nodes and service accounts included
    try:
        try:
            facts["server_version"] = _retry(client.server_version).get("gitVersion", "")
        except KubeError as exc:
            raise ScanAborted(_unreachable_message(cluster, exc)) from exc

        # Nodes and pools.
        progress.set("nodes")
        try:
            nodes = _retry(lambda: list(client.iter_list("nodes")))
        except KubeError as exc:
            if exc.reason in ("Forbidden",):
                nodes = []
                problems.append(
                    _problem(
                        "nodes",
                        str(exc),
                        "node pools, kubelet versions and architectures are unknown: every workload is audited "
                        "against the cluster's settings (assumed kubelet facts, linux/amd64 images)",
                    )
                )
            else:
                raise ScanAborted(_unreachable_message(cluster, exc)) from exc
        grouped = inventory.group_node_pools(nodes, problems)  # refused nodes are problems
        pools = pools_with_kubelet_facts(cluster, client, grouped, problems, progress)
        node_pool = inventory.node_pool_index(grouped)
        node_platform = {
            n["metadata"]["name"]: f"{p.os or 'linux'}/{p.architecture or 'amd64'}"
            for p in grouped.values()
            for n in p.nodes
        }
        biggest = max(pools, key=lambda p: len(p.nodes))
        default_pool = biggest.name

        # Workloads.
        inv = list_workloads(
            client, problems, progress, node_pool, node_platform, default_pool, biggest.platform
        )
        facts["namespaces"] = sorted({w.namespace for w in inv.workloads})

        # CoreDNS and Kyverno.
        progress.set("cluster add-ons")
        facts["coredns"] = coredns_facts(client, problems)
        facts["kyverno_installed"] = kyverno_installed(client, problems)

        # Images.
        verdicts = inspect_images(client, inv, problems, progress)

        # The nodes' resolv.conf per pool: observed (exec), entered, inferred or unknown.
        learn_node_files(cluster, client, pools, grouped, inv, verdicts, problems, facts, progress)

        # DNS probes (of every non-cluster search domain the pools' files bring, inferred ones too).
        probes = probe_dns(cluster, pools, progress, problems)

        progress.set("audit", done=0, total=len(inv.workloads))
        # Cluster-wide assumptions; a pool's own (its kubelet config) are quoted only for its workloads.
        assumed = [p["fact"] for p in problems if not p.get("pool") and not p.get("refused")]
        actx = AuditContext(
            pools={p.name: p for p in pools},
            default_pool=default_pool,
            libc=verdicts,
            probes=probes,
            probe_names=list(cluster.probe_names or ["example.com"]),
            coredns=facts["coredns"],
            kyverno_installed=facts["kyverno_installed"],
            assumed=assumed,
            # Exemption annotations are judged on the day the rest of dnsaudit uses (TIME_ZONE).
            today=exemptions.today(),
        )
        audits = audit_workloads(inv.workloads, actx)
        progress.set(done=len(audits), force=True)
        if cluster.allow_exec:
            audits = verify_in_pods(
                client,
                inv,
                audits,
                actx,
                problems,
                facts,
                progress,
                probe_more=lambda more: probe_dns(cluster, more, progress, problems),
            )
            probes = list(actx.probes)
            pools = [actx.pools.get(p.name, p) for p in pools]  # a pool may have learned its file there
        try:
            facts["cluster_remediation"] = cluster_remediation(audits, actx)
        except Exception as exc:  # the report is still useful without the cluster-level artifacts
            log.exception("cluster remediation failed")
            problems.append(
                _problem("cluster remediation", f"{type(exc).__name__}: {exc}", "no cluster-level patches")
            )
        return ScanResult(
            pools=pools,
            audits=audits,
            problems=problems,
            facts=facts,
            pods_seen=inv.pods_seen,
            images_inspected=len({id(v) for v in verdicts.values()}),
            probes=probes,
        )
    finally:
        close = getattr(client, "close", None)
        if close:
            close()


def _unreachable_message(cluster: Cluster, exc: Exception) -> str:
    reason = getattr(exc, "reason", "") or type(exc).__name__
    if reason == "Unauthorized":
        what = "the API server rejected the stored credentials (401)"
    elif reason == "Forbidden":
        what = "the stored credentials may not read the API (403)"
    elif reason in ("TooLarge", "InvalidResponse"):
        what = "the API server sent a response dnsaudit refuses"
    else:
        what = "the API server could not be reached"
    detail = str(exc).rstrip(". ")
    # The boundary's message usually names the server already ("Could not reach the API server at X: …"):
    # say it once.
    head = f"{what}: {detail}" if cluster.server in detail else f"{what} at {cluster.server}: {detail}"
    demo = (
        " This is a demo cluster: it is served by `make run` (manage.py demo --serve) and exists only while that "
        "runs."
        if getattr(cluster, "is_demo", False) and what.endswith("could not be reached")
        else ""
    )
    return f"{head}. No verdicts were computed; the previous report (if any) stays in place.{demo}"
