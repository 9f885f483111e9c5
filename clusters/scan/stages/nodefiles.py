"""Each node pool's resolv.conf: observed through exec, entered by an admin, inferred from the nodes, or unknown.

The node's ``/etc/resolv.conf`` (the search domains every pod inherits, e.g. ``openstacklocal``) is not in
the Kubernetes API. Per pool, in this order of trust:

1. **observed** — with exec reads allowed for the cluster (``Cluster.allow_exec``, off by default),
   ``cat /etc/resolv.conf`` in a few running pods of the pool (``clusters/nodefiles.py``): a host-network or
   ``dnsPolicy: Default`` pod shows the node file itself, a cluster-DNS pod the node's search domains after
   the cluster's own. What was read wins over an entered file (a difference is reported);
2. **entered** — the file an admin typed or uploaded for the pool (or for every pool), with who and when;
3. **inferred** — the cloud's documented DHCP default from the nodes' ``spec.providerID`` and addresses
   (``dnsaudit.core.nodefiles.infer_node_searches``): probed and simulated like the others, but a verdict
   resting on it is at most ``at-risk``;
4. **unknown** — nothing: musl workloads that inherit the node's searches are ``at-risk``, never ``safe``.

Every failure of the exec step is stated in the scan's problems.
"""

from __future__ import annotations

from django.conf import settings

from dnsaudit.core.model import NodePool

from ..progress import Progress, _problem

#: Seconds each ``cat`` may take (also bounded by what is left of the step's budget).
EXEC_TIMEOUT = 10.0
#: Pods planned per pool (two readings that agree end a pool early).
PODS_PER_POOL = 12


def learn_node_files(
    cluster,
    client,
    pools: list[NodePool],
    grouped,
    inv,
    verdicts,
    problems: list[dict],
    facts: dict,
    progress: Progress,
) -> None:
    """Set ``node_resolv_conf``, its source, evidence and scope on every pool (see the module doc)."""
    from dnsaudit.core.nodefiles import infer_node_searches

    progress.set("node files", done=0, total=len(pools))
    entered_meta = cluster.node_resolv_conf_entered or {}
    for pool in pools:
        _apply_entered(cluster, pool, entered_meta)
    report: dict[str, dict] = {}
    if cluster.allow_exec and inv.node_file_candidates:
        report = _observe(cluster, client, pools, inv, verdicts, problems, progress)
    elif cluster.allow_exec:
        problems.append(
            _problem(
                "node files",
                "no running pod to read /etc/resolv.conf in",
                "the nodes' search domains were not observed: entered or inferred ones are used, else unknown",
            )
        )
    nodes_of = {name: group.nodes for name, group in (grouped or {}).items()}
    for pool in pools:
        if pool.node_resolv_conf is None:
            inferred = infer_node_searches(nodes_of.get(pool.name, ()))
            if inferred is not None and inferred.searches:
                pool.node_resolv_conf = inferred.content
                pool.node_resolv_conf_source = "inferred"
                pool.node_file_scope = "searches"
                pool.node_resolv_conf_evidence = [f"inferred ({inferred.provider})", *inferred.evidence]
                pool.notes.append(
                    f"node search domains inferred as {' '.join(inferred.searches)}: likely, not read; allow exec "
                    "reads or enter the node's file to be sure"
                )
            else:
                if inferred is not None and inferred.pattern:
                    pool.node_resolv_conf_evidence = [
                        f"the nodes' domain has the shape {inferred.pattern} ({inferred.provider}), which the "
                        "Kubernetes API does not show",
                        *inferred.evidence,
                    ]
                pool.notes.append(
                    "node resolv.conf unknown (not in the Kubernetes API; not read, not entered): musl workloads "
                    "that inherit its search domains are at-risk until it is known"
                )
        pool.observed["node_resolv_conf"] = pool.node_resolv_conf_source == "observed"
        report.setdefault(pool.name, {})
        report[pool.name].update(
            {"source": pool.node_resolv_conf_source, "evidence": list(pool.node_resolv_conf_evidence)}
        )
        progress.step()
    facts["node_files"] = report


def _apply_entered(cluster, pool: NodePool, meta: dict) -> None:
    own = (cluster.pool_resolv_conf or {}).get(pool.name)
    text = own or cluster.node_resolv_conf or None
    if text is None:
        return
    key = pool.name if own else "*"
    who = meta.get(key) or {}
    pool.node_resolv_conf = text
    pool.node_resolv_conf_source = "entered"
    pool.node_file_scope = "file"
    pool.node_resolv_conf_evidence = [
        f"entered{' for every pool' if key == '*' else ''}"
        + (f" by {who.get('by')}" if who.get("by") else "")
        + (f" at {who.get('at')}" if who.get("at") else "")
    ]


def _observe(cluster, client, pools, inv, verdicts, problems, progress) -> dict[str, dict]:
    """The exec step: plan, read, and turn each pool's reading into its node file."""
    from dnsaudit.core.kubelet import parse_node_resolv_conf
    from dnsaudit.core.nodefiles import plan_reads

    from ...nodefiles import read_node_files

    pool_of_node = {node: p.name for p in pools for node in p.nodes}
    libc_of_image: dict[str, str] = {}
    for key, verdict in verdicts.items():
        image = key.rsplit("@", 1)[0] if "@linux/" in key or "@windows/" in key else key
        libc_of_image.setdefault(image, verdict.libc)
    plans = plan_reads(
        inv.node_file_candidates,
        pool_of_node,
        # Pods whose image was found without `cat` are skipped without a round trip (clusters/nodefiles.py),
        # so a pool can afford to look further than its first, usually distroless, host-network pods.
        per_pool=PODS_PER_POOL,
        prefer=libc_of_image,
        kubelets={p.name: p.kubelet for p in pools},
        check_cluster_dns=[p.name for p in pools if p.observed.get("kubelet_config")],
    )
    budget = float(settings.DNSAUDIT_EXEC_BUDGET)
    progress.set("node files (exec)")
    results = read_node_files(client, plans, timeout=EXEC_TIMEOUT, budget=budget)
    by_name = {p.name: p for p in pools}
    report: dict[str, dict] = {}
    for name, outcome in results.pools.items():
        report[name] = {"attempts": list(outcome.attempts)}
        pool = by_name.get(name)
        reading = outcome.reading
        if pool is None or reading is None:
            continue
        evidence = [f"read in pod {s} (exec: cat /etc/resolv.conf)" for s in reading.sources] or [
            "read through exec"
        ]
        if reading.scope == "searches":
            evidence.append(
                "search line only: the pod uses cluster DNS, so the node's nameservers and options are not shown"
            )
        if not reading.complete:
            evidence.append("the kubelet may have cut the search list at its limits")
        if pool.node_resolv_conf_source == "entered":
            try:
                entered = parse_node_resolv_conf(pool.node_resolv_conf or "", pool.kubelet.version)
            except ValueError:
                entered = None
            if entered is not None and tuple(entered.searches) == tuple(reading.searches):
                # Same search domains: keep the entered file (it also has the nameservers and options).
                pool.node_resolv_conf_source = "observed"
                pool.node_resolv_conf_evidence = [*evidence, *pool.node_resolv_conf_evidence]
                pool.node_file_scope = "file"
                continue
            entered_searches = " ".join(entered.searches) if entered is not None else "unparseable"
            problems.append(
                _problem(
                    f"node file of pool {name}",
                    f"the entered file (search {entered_searches or 'none'}) differs from the one read in the "
                    f"pool's pods (search {' '.join(reading.searches) or 'none'})",
                    "the file read in the pods is used; update or clear the entered one",
                )
            )
        pool.node_resolv_conf = reading.content
        pool.node_resolv_conf_source = "observed"
        pool.node_file_scope = reading.scope
        pool.node_resolv_conf_evidence = evidence
    if results.failures:
        not_read = [p.name for p in pools if p.node_resolv_conf_source != "observed"]
        problems.append(
            _problem(
                "node files (exec reads)",
                "; ".join(results.failures)[:4000],
                (
                    f"node search domains not observed on pool(s) {', '.join(not_read)}: entered or inferred ones "
                    "are used where there are any; musl workloads there that inherit unknown search domains are "
                    "at-risk"
                )
                if not_read
                else "every pool's file was still read in another pod",
            )
        )
    return report
