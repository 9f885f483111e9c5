"""Optional exec verification: compare running pods with the computed resolv.conf (``clusters/verify.py``)."""

from __future__ import annotations

from django.conf import settings

from ..progress import Progress, _problem


def verify_in_pods(client, inv, audits, problems: list[dict], facts: dict, progress: Progress) -> None:
    """Optional (per cluster, off by default): read /etc/resolv.conf and list /lib in one running pod
    per musl workload, and compare with the computed file. A mismatch is a finding of its own (a pod
    created before a fix, a node file that differs from the settings); the risk stays as computed."""
    from dnsaudit.core.verify import finding_reason

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
    by_key = {(a.report["namespace"], a.report["kind"], a.report["name"]): a for a in audits}
    for finding in findings:
        audit = by_key.get((finding["namespace"], finding["kind"], finding["name"]))
        if audit is None:
            continue
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
    }
