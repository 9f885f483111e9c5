"""Listing: a resource in all namespaces (namespace by namespace when that is forbidden), and the workloads."""

from __future__ import annotations

from collections.abc import Callable

from ..progress import KUBE_ATTEMPTS, Progress, ScanAborted, _problem, _retry, gc_paused

WORKLOAD_RESOURCES = ("deployments", "statefulsets", "daemonsets", "replicasets", "cronjobs", "jobs", "pods")


def _list_everywhere(
    client,
    resource: str,
    problems: list[dict],
    keep: Callable[[dict], object] | None = None,
    check: Callable[[], None] | None = None,
) -> list:
    """List a resource in all namespaces; when that is forbidden, namespace by namespace.

    ``keep`` turns each item into what is kept of it as it streams in (pods: a checked record with only
    what the audit reads), so a big cluster's full objects are never all in memory at once. ``check``
    (the soft time limit) runs before every list and namespace; the client itself checks it before every
    page (``Progress.watch``). A list that is retried starts again from an empty list.
    """
    from dnsaudit.boundary.kube import KubeError

    def listed(**kw) -> list:
        if check is not None:
            check()
        items = client.iter_list(resource, **kw)
        return list(map(keep, items) if keep else items)

    try:
        return _retry(lambda: listed())
    except KubeError as exc:
        if exc.reason != "Forbidden":
            raise ScanAborted(_list_failed(resource, None, exc)) from exc
    try:
        namespaces = _retry(lambda: _namespace_names(client, problems))
    except KubeError as exc:
        problems.append(
            _problem(
                resource,
                f"cannot list {resource} cluster-wide nor namespaces: {exc}",
                f"no {resource} were audited: workloads of this kind are missing from the report",
            )
        )
        return []
    items: list = []
    forbidden: list[str] = []
    for ns in namespaces:
        try:
            items.extend(_retry(lambda ns=ns: listed(namespace=ns)))
        except KubeError as exc:
            if exc.reason == "Forbidden":
                forbidden.append(ns)
            else:
                raise ScanAborted(_list_failed(resource, ns, exc)) from exc
    if forbidden:
        problems.append(
            _problem(
                f"{resource} in namespaces {', '.join(forbidden)}",
                f"forbidden (403) for {resource} in {len(forbidden)} namespace(s)",
                f"workloads in {', '.join(forbidden)} are missing from the report; their verdicts are unknown",
            )
        )
    return items


def _namespace_names(client, problems: list[dict]) -> list[str]:
    """The namespaces' names; a name that is not a DNS-1123 label is refused (it would be a URL path)."""
    from dnsaudit.core.inventory import refused_problem, shown, valid_namespace

    names: list[str] = []
    refused: list[object] = []
    for ns in client.iter_list("namespaces"):
        meta = ns.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if valid_namespace(name):
            names.append(name)
        else:
            refused.append(name)
    if refused:
        problems.append(
            refused_problem(
                "namespace names",
                [shown(v) for v in refused[:5]],
                len(refused),
                "a namespace name must be a DNS-1123 label",
                "these namespaces are not listed one by one: their workloads are missing from the report",
            )
        )
    return names


def _list_failed(resource: str, namespace: str | None, exc: Exception) -> str:
    where = f" in namespace {namespace}" if namespace else ""
    tries = f" after {KUBE_ATTEMPTS} attempts" if getattr(exc, "transient", False) else ""
    return (
        f"listing {resource}{where} failed{tries}: {exc} No verdicts were computed; the previous report (if any) "
        "stays in place."
    )


def list_workloads(
    client,
    problems: list[dict],
    progress: Progress,
    node_pool,
    node_platform,
    default_pool,
    default_platform: str = "linux/amd64",
):
    """List every workload resource and build the audit's inventory.

    Pods are checked as they stream in (``inventory.Intake``: each distinct name, label set and pod spec
    once, and only a small record of each pod kept), so a page's JSON is dropped as soon as it is read.
    The collector is paused meanwhile (``gc_paused``); the lists are dropped once the inventory is built.
    """
    from dnsaudit.core import inventory

    progress.set("workloads", done=0, total=len(WORKLOAD_RESOURCES))
    objects: dict[str, list] = {}
    intake = inventory.Intake()
    with gc_paused():
        for resource in WORKLOAD_RESOURCES:
            keep = intake.pod if resource == "pods" else None
            objects[resource] = _list_everywhere(client, resource, problems, keep, progress.check)
            progress.step()
        inv = inventory.build_inventory(
            objects, node_pool, node_platform, default_pool=default_pool, default_platform=default_platform
        )
    del objects
    problems.extend(inv.problems)  # names refused at the inventory: what, why, and what the report lacks
    return inv
