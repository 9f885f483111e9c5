"""Exec verification: compare running pods with the computed resolv.conf (``clusters/verify.py``), and let
what a pod really has correct the verdict."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from django.conf import settings

from ..progress import Progress, _problem


def verify_in_pods(
    client,
    inv,
    audits,
    actx,
    problems: list[dict],
    facts: dict,
    progress: Progress,
    probe_more: Callable[[list], list] | None = None,
) -> list:
    """With exec reads allowed: read /etc/resolv.conf and list /lib in one running pod per musl workload,
    and compare with the computed file. Returns the audits, corrected.

    A pod whose file differs from the computed one is a fact, not a side note:

    * its file is turned back into the node file it implies (``dnsaudit.core.nodefiles``); when the pool's
      node file was not known (unknown or inferred), that becomes the pool's file (``observed``, naming the
      pod) and every workload of the pool is audited again;
    * otherwise (the pod predates a change of the node file, the kubelet or the workload), the workload is
      audited again with its pod's own file, and its reasons say so.

    A file that is not what the kubelet would write for the pod (it cannot be turned back into a node file)
    leaves the verdict as computed, with the difference in its reasons. ``probe_more(pools)`` returns probe
    answers for the search domains of pools whose file changed here (the DNS probes ran before).
    """
    from dnsaudit.core.audit import audit_workload
    from dnsaudit.core.verify import finding_reason, resolv_differences

    from ...verify import pick_targets, verify_exec

    targets = pick_targets((a.report for a in audits), inv.running_pods)
    workloads = {(t[0]["namespace"], t[0]["kind"], t[0]["name"]) for t in targets}
    progress.set("exec verification", done=0, total=len(workloads))
    findings = verify_exec(
        client,
        targets,
        timeout=10,
        budget=float(settings.DNSAUDIT_EXEC_BUDGET),
        progress=lambda done, total: progress.set(done=done),
    )

    def key(report) -> tuple[str, str, str]:
        return (report["namespace"], report["kind"], report["name"])

    index = {key(a.report): i for i, a in enumerate(audits)}
    learned_pools: set[str] = set()
    own_files: dict[tuple[str, str, str], object] = {}  # workload -> its pod's pool (a NodePool copy)
    for finding in findings:
        i = index.get((finding["namespace"], finding["kind"], finding["name"]))
        if i is None or finding.get("matches") is not False or audits[i].workload is None:
            continue
        pool = actx.pools.get(audits[i].report.get("node_pool") or "")
        implied = _pool_from_pod(audits[i].workload, pool, finding)
        if implied is None:
            continue
        if pool.node_resolv_conf_source in ("unknown", "inferred") and pool.name not in learned_pools:
            # The pool learns its file from this pod (the first one read wins; others are compared below).
            actx.pools[pool.name] = implied
            learned_pools.add(pool.name)
        else:
            own_files[key(audits[i].report)] = implied
    changed = [actx.pools[n] for n in sorted(learned_pools)] + list(own_files.values())
    if changed and probe_more is not None:
        known = {(p.domain, p.server, p.probe_name) for p in actx.probes}
        extra = [p for p in probe_more(changed) if (p.domain, p.server, p.probe_name) not in known]
        actx.probes = [*actx.probes, *extra]
    if learned_pools or changed:
        actx = dataclasses.replace(actx, pools=dict(actx.pools))  # a fresh memo for the new files and probes
        for i, a in enumerate(audits):
            if a.workload is not None and a.report.get("node_pool") in learned_pools:
                audits[i] = audit_workload(a.workload, actx)
    for k, implied in own_files.items():
        i = index[k]
        if implied.node_resolv_conf == actx.pools[implied.name].node_resolv_conf:
            continue  # the pool learned exactly this file above
        own = dataclasses.replace(actx, pools={**actx.pools, implied.name: implied})
        audits[i] = audit_workload(audits[i].workload, own)
        audits[i].report["reasons"].append(
            f"The verdict uses the file read in pod {implied.node_resolv_conf_evidence[0]}: it differs from the "
            "one computed from the pool's node file (the pod started before a change and keeps its file until "
            "it is recreated)."
        )

    for finding in findings:
        i = index.get((finding["namespace"], finding["kind"], finding["name"]))
        if i is None:
            continue
        audit = audits[i]
        if finding.get("observed_resolv_conf") is not None:
            # Compare with the verdict as it stands now (corrected above where the pod taught us).
            parse_as = "glibc" if _libc(audit.report, finding) == "glibc" else "musl"
            diffs = resolv_differences(
                audit.report["resolv_conf"], finding["observed_resolv_conf"], libc=parse_as
            )
            finding = {**finding, "differences": diffs, "matches": not diffs}
        audit.detail["exec_verification"] = finding
        audit.report["exec_verification"] = {
            "pod": finding.get("pod"),
            "matches": finding.get("matches"),
            "libc_confirmed": finding.get("libc_confirmed"),
            "error": finding.get("error"),
        }
        reason = finding_reason(finding)
        if reason:
            audit.report["reasons"].append(reason)
    denied = sorted({f["namespace"] for f in findings if f.get("error") and "pods/exec" in f["error"]})
    if denied:
        problems.append(
            _problem(
                "exec verification",
                f"pods/exec forbidden in {', '.join(denied)}",
                "those workloads' running pods were not checked against the computed resolv.conf",
            )
        )
    facts["exec_verification"] = {
        "verified": sum(f.get("matches") is not None for f in findings),
        "mismatches": sum(f.get("matches") is False or f.get("libc_confirmed") is False for f in findings),
        "pools_learned": sorted(learned_pools),
        "verdicts_corrected": len(own_files)
        + sum(1 for a in audits if a.report.get("node_pool") in learned_pools),
    }
    return audits


def _libc(report, finding) -> str | None:
    return next(
        (c.get("libc") for c in report.get("containers") or () if c.get("name") == finding.get("container")),
        None,
    )


def _pool_from_pod(workload, pool, finding):
    """A copy of ``pool`` whose node file is the one the pod's file implies, or None when the pod's file
    cannot be turned back into a node file (it is not what the kubelet would write for it)."""
    from dnsaudit.core.nodefiles import node_file_from_pod_file

    if pool is None or workload is None:
        return None
    try:
        reading = node_file_from_pod_file(
            finding["observed_resolv_conf"],
            dns_policy=workload.dns_policy,
            host_network=workload.host_network,
            namespace=workload.namespace,
            cluster_domain=pool.kubelet.cluster_domain,
            dns_config=workload.dns_config,
            kubelet_version=pool.kubelet.version,
            resolv_conf=pool.kubelet.resolv_conf,
            source=f"{workload.namespace}/{finding.get('pod')}",
        )
    except ValueError:
        return None
    content = reading.content
    if reading.scope == "searches" and pool.node_resolv_conf and pool.node_file_scope == "file":
        # Keep the known nameservers and options; only the search line is what the pod showed.
        content = _with_searches(pool.node_resolv_conf, reading.searches) or content
    return dataclasses.replace(
        pool,
        node_resolv_conf=content,
        node_resolv_conf_source="observed",
        node_file_scope="file" if content != reading.content else reading.scope,
        node_resolv_conf_evidence=[
            f"{workload.namespace}/{finding.get('pod')} (exec verification: cat /etc/resolv.conf)"
        ],
        notes=list(pool.notes),
        assumed=list(pool.assumed),
        observed={**pool.observed, "node_resolv_conf": True},
    )


def _with_searches(text: str, searches) -> str | None:
    lines = [line for line in text.splitlines() if not line.strip().startswith(("search", "domain"))]
    if searches:
        lines.insert(0, "search " + " ".join(searches))
    return "".join(line + "\n" for line in lines)
