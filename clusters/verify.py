"""Optional exec verification of a scan (off by default, per cluster: ``Cluster.allow_exec``, which also
lets the scan read the node file in a few pods per pool).

For ONE running pod per musl workload: read ``/etc/resolv.conf`` and list ``/lib`` through the Kubernetes
exec API, then judge the observations with :mod:`dnsaudit.core.verify`. A pod whose file differs from the
computed one (e.g. it was created before a fix and still has ``openstacklocal``) or whose ``/lib`` contradicts
the libc verdict is a finding of its own.

Costs and failure handling, on purpose:

* Two short commands per verified pod, no shell needed (``cat /etc/resolv.conf``, ``ls /lib``), so
  busybox, coreutils and images without ``sh`` behave the same; distroless images (no ``cat``) give a
  finding with ``error`` set and ``matches: None``.
* 403 on ``pods/exec`` is per namespace (RoleBindings): the first one skips the rest of that namespace
  with the same error instead of asking again for every workload.
* A per-pod failure (container not running, timeout) moves on to the workload's next candidate pod.
* ``budget`` bounds the whole step: workloads not reached get ``error: "not verified: time budget …"``.

No Django import: ``client`` is anything with ``exec_read`` (``dnsaudit.boundary.kube.KubeClient``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from dnsaudit.boundary.kube import KubeError
from dnsaudit.core.verify import build_finding

READ_RESOLV = ("cat", "/etc/resolv.conf")
LIST_LIB = ("ls", "/lib")

Target = tuple[Mapping, str, "str | None"]


def _key(report: Mapping) -> tuple[str, str, str]:
    return (str(report.get("namespace")), str(report.get("kind")), str(report.get("name")))


def musl_container(report: Mapping) -> str | None:
    """The first container the audit judged musl, or None."""
    return next((c.get("name") for c in report.get("containers") or () if c.get("libc") == "musl"), None)


def pick_targets(
    reports: Iterable[Mapping],
    running_pods: Mapping[tuple[str, str, str], Sequence[str]],
    *,
    per_workload: int = 2,
) -> list[Target]:
    """``(report, pod, container)`` candidates for each musl workload with a running pod.

    ``running_pods`` maps ``(namespace, kind, name)`` of the workload to names of its Running pods (see the
    inventory). Up to ``per_workload`` candidates each, so one pod failing does not leave the workload
    unverified.
    """
    out: list[Target] = []
    for report in reports:
        container = musl_container(report)
        if container is None:
            continue
        for pod in list(running_pods.get(_key(report), ()))[:per_workload]:
            out.append((report, pod, container))
    return out


def _observe(
    client, namespace: str, pod: str, container: str | None, timeout: float
) -> tuple[str | None, str | None, str | None]:
    """(resolv.conf text or None, ls /lib output or None, error or None). Raises KubeError for the caller
    to classify (Forbidden, NotFound, BadRequest, Timeout…)."""
    res = client.exec_read(namespace, pod, container, list(READ_RESOLV), timeout=timeout)
    resolv: str | None = None
    error: str | None = None
    if res.exit_code == 0:
        resolv = res.stdout
    elif res.executable_missing:
        error = "the image has no `cat` (distroless?): /etc/resolv.conf cannot be read through exec"
        return None, None, error
    else:
        error = f"`cat /etc/resolv.conf` exited with {res.exit_code}: {(res.stderr or res.message).strip()}"
    ls = client.exec_read(namespace, pod, container, list(LIST_LIB), timeout=timeout)
    listing: str | None = ls.stdout if ls.exit_code == 0 else None
    if listing is None and error is None and not ls.executable_missing:
        error = f"`ls /lib` exited with {ls.exit_code}: {(ls.stderr or ls.message).strip()}"
    return resolv, listing, error


def verify_exec(
    client,
    targets: Iterable[Target],
    *,
    timeout: float = 10.0,
    budget: float = 120.0,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Verify one pod per workload among ``targets`` (``(report, pod, container)``, in preference order).

    Returns one finding per workload in the order first seen (see
    :func:`dnsaudit.core.verify.build_finding` for the keys: ``namespace, kind, name, pod, container,
    observed_resolv_conf, matches, differences, musl_loader, libc_confirmed, error``). Never raises for
    Kubernetes failures: they become the finding's ``error``. ``progress(done, total)`` is called after
    each workload (for the scan's progress bar). ``timeout`` bounds each command, ``budget`` the whole step.
    """
    by_workload: dict[tuple[str, str, str], list[Target]] = {}
    for t in targets:
        by_workload.setdefault(_key(t[0]), []).append(t)
    forbidden: dict[str, str] = {}  # namespace -> the 403 message
    deadline = time.monotonic() + budget
    findings: list[dict] = []
    for cands in by_workload.values():
        report = cands[0][0]
        ns = str(report.get("namespace"))
        finding: dict | None = None
        last_error = "no running pod to verify"
        for _report, pod, container in cands:
            if ns in forbidden:
                finding = build_finding(
                    report, pod, container, observed_resolv_conf=None, lib_listing=None, error=forbidden[ns]
                )
                break
            if time.monotonic() >= deadline:
                last_error = f"not verified: time budget of {budget:g} s for exec verification used up"
                finding = build_finding(
                    report, pod, container, observed_resolv_conf=None, lib_listing=None, error=last_error
                )
                break
            try:
                resolv, listing, error = _observe(client, ns, pod, container, timeout)
            except KubeError as exc:
                if exc.reason == "Forbidden":
                    forbidden[ns] = f"exec is not allowed in namespace {ns} (needs pods/exec): {exc}"
                    finding = build_finding(
                        report,
                        pod,
                        container,
                        observed_resolv_conf=None,
                        lib_listing=None,
                        error=forbidden[ns],
                    )
                    break
                last_error = str(exc)
                finding = build_finding(
                    report, pod, container, observed_resolv_conf=None, lib_listing=None, error=last_error
                )
                continue  # try the workload's next pod
            finding = build_finding(
                report, pod, container, observed_resolv_conf=resolv, lib_listing=listing, error=error
            )
            break
        if finding is None:
            finding = build_finding(
                report, "", None, observed_resolv_conf=None, lib_listing=None, error=last_error
            )
        findings.append(finding)
        if progress is not None:
            progress(len(findings), len(by_workload))
    return findings
