"""The cluster registry's services: import kubeconfigs, load a cluster's connection, test it.

Used by the dashboard (upload/paste), ``manage.py add-cluster`` and the demo fleet, so all three apply the
same checks. Every error raised here is a ``ValueError`` subclass (:class:`KubeconfigError`,
:class:`RegistryError`, :class:`~clusters.crypto.DecryptionError`) whose message is user-facing and
secret-free; callers show it as is.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import IntegrityError, transaction

from clusters import crypto
from clusters.models import Cluster
from dnsaudit.core.kubeconfig import KubeconfigError, minimal_kubeconfig, parse_kubeconfig, summarize
from dnsaudit.core.model import KubeContext

log = logging.getLogger(__name__)

NAME_MAX = 63
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

__all__ = [
    "ImportResult",
    "KubeconfigError",
    "RegistryError",
    "connection_test",
    "import_kubeconfig",
    "load_context",
    "slugify_name",
]


class RegistryError(ValueError):
    """An import or lookup the registry refuses (name clash, bad name, undecryptable row...)."""


@dataclass
class ImportResult:
    """The clusters one import created (in context order) and the warnings to show the user."""

    clusters: list[Cluster] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def slugify_name(text: str) -> str:
    """dnsaudit's cluster key for a context name: lowercase, runs of other characters become ``-``.

    ``arn:aws:eks:eu-west-1:123:cluster/prod`` -> ``arn-aws-eks-eu-west-1-123-cluster-prod``;
    at most 63 characters. May return ``""`` (the caller then asks for ``--name``).
    """
    slug = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    return slug[:NAME_MAX].rstrip("-_")


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        suggestion = slugify_name(name)
        hint = f" (e.g. {suggestion!r})" if suggestion else ""
        raise RegistryError(
            f"cluster name {name!r} is not valid: use lowercase letters, digits, '-' or '_', "
            f"starting with a letter or digit, at most {NAME_MAX} characters{hint}"
        )
    return name


def import_kubeconfig(
    data: bytes | str,
    *,
    context: str | None = None,
    all_contexts: bool = False,
    name: str | None = None,
    notes: str = "",
    is_demo: bool = False,
    allow_exec: bool = False,
) -> ImportResult:
    """Validate ``data`` and register one cluster per selected context, all or nothing.

    Selection: ``context``, or every context with ``all_contexts``, or the default context
    (current-context, else the only one). Names: ``name``, or the context name slugified; with
    ``all_contexts`` and ``name``, ``<name>-<context>``. Everything is validated before the first row is
    written, and the rows are created in one transaction: bad input or a name clash changes nothing.
    Stores the encrypted minimal kubeconfig and the sanitized summary (with its warnings); ``allow_exec``
    turns on exec reads (``Cluster.allow_exec``) for every cluster created.
    """
    if context and all_contexts:
        raise RegistryError("choose either one context or all contexts, not both")
    kubeconfig = parse_kubeconfig(data, max_bytes=settings.DNSAUDIT_KUBECONFIG_MAX_BYTES)
    selected = list(kubeconfig.contexts) if all_contexts else [context or kubeconfig.default_context()]

    planned: list[tuple[str, KubeContext, list[str]]] = []
    for ctx_name in selected:
        ctx = kubeconfig.context(ctx_name)
        warnings = kubeconfig.warnings_for(ctx_name)
        if name and all_contexts:
            suffix = slugify_name(ctx_name) or "context"
            cluster_name = f"{_check_name(name)}-{suffix}"[:NAME_MAX].rstrip("-_")
        elif name:
            cluster_name = _check_name(name)
        else:
            cluster_name = slugify_name(ctx_name)
            if not cluster_name:
                raise RegistryError(
                    f"context {ctx_name!r} gives no usable cluster name; choose one with --name"
                )
        planned.append((cluster_name, ctx, warnings))

    names = [p[0] for p in planned]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RegistryError(
            f"several contexts would get the cluster name {dupes[0]!r}; import them one at a time with --name"
        )
    taken = sorted(Cluster.objects.filter(name__in=names).values_list("name", flat=True))
    if taken:
        raise RegistryError(_clash_message(taken[0]))

    result = ImportResult()
    try:
        with transaction.atomic():
            for cluster_name, ctx, warnings in planned:
                cluster = Cluster.objects.create(
                    name=cluster_name,
                    context=ctx.name,
                    server=ctx.server,
                    kubeconfig_encrypted=crypto.encrypt(minimal_kubeconfig(ctx)),
                    summary=summarize(ctx, warnings),
                    notes=notes,
                    is_demo=is_demo,
                    allow_exec=allow_exec,
                )
                result.clusters.append(cluster)
                result.warnings.extend(warnings)
    except IntegrityError:
        # Someone registered the same name between our check and the insert.
        raise RegistryError(_clash_message(", ".join(names))) from None
    for cluster in result.clusters:
        log.info(
            "registered cluster %s (context %s, server %s)", cluster.name, cluster.context, cluster.server
        )
    return result


def _clash_message(name: str) -> str:
    return (
        f"a cluster named {name!r} already exists; choose another name with --name "
        "(two kubeconfigs may use the same context names)"
    )


def load_context(cluster: Cluster) -> KubeContext:
    """Decrypt and re-validate ``cluster``'s stored kubeconfig (the scanner's way in).

    Re-validation means a row written by other means (or tampered with) still cannot carry a command or
    a file path to the client. A cluster of in-cluster mode (``credentials == service-account``) is read
    from the pod's service-account directory instead (``clusters.incluster``). Raises DecryptionError,
    KubeconfigError, RegistryError or InClusterError (all ValueErrors).
    """
    if cluster.credentials == Cluster.SERVICE_ACCOUNT:
        # In-cluster mode: the pod's service account, read now (a projected token rotates). The directory
        # is the server's setting (DNSAUDIT_SERVICE_ACCOUNT_DIR), never a path stored with the cluster.
        from clusters import incluster

        if not incluster.enabled():
            raise RegistryError(
                f"cluster {cluster.name!r} uses the pod's service account, but in-cluster mode is off "
                "(DNSAUDIT_IN_CLUSTER)"
            )
        return incluster.service_account_context(cluster.name)
    text = crypto.decrypt(cluster.kubeconfig_encrypted)
    kubeconfig = parse_kubeconfig(text, max_bytes=settings.DNSAUDIT_KUBECONFIG_MAX_BYTES)
    if cluster.context not in kubeconfig.contexts:
        raise RegistryError(
            f"the stored kubeconfig of cluster {cluster.name!r} has no context {cluster.context!r}"
        )
    return kubeconfig.context(cluster.context)


def _scrub(text: str, ctx: KubeContext | None) -> str:
    """Remove any secret of ``ctx`` that a lower layer might have echoed into an error message."""
    if ctx is None:
        return text
    for secret in (ctx.token, ctx.password):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()  # type: ignore[union-attr]
    return value


def connection_test(cluster: Cluster, *, save: bool = True, timeout: float = 10.0) -> dict:
    """Try to reach ``cluster`` now: ``{reachable, error, transient, server_version, checks, tested_at}``.

    ``server_version`` is the ``/version`` body; ``checks`` are ``KubeClient.self_test()`` dicts
    (``fact``, ``permission``, ``allowed``, ``loss``). Never raises for an unreachable or refused cluster:
    the outcome is data (``error`` is a secret-free sentence; ``reachable`` is True once the API server
    answered, even if a later permission check failed). With ``save`` the result is kept in ``cluster.summary["connection"]`` for the cluster page.
    """
    result: dict = {
        "reachable": False,
        "error": None,
        "transient": None,
        "server_version": None,
        "checks": [],
        "tested_at": datetime.now(UTC).isoformat(),
    }
    ctx: KubeContext | None = None
    try:
        ctx = load_context(cluster)
        from dnsaudit.boundary.kube import KubeClient, KubeError

        try:
            with KubeClient.from_context(ctx, timeout=timeout) as client:
                result["server_version"] = _plain(client.server_version())
                result["reachable"] = True
                result["checks"] = [_plain(c) for c in (client.self_test() or [])]
        except KubeError as exc:
            result["error"] = _scrub(str(exc), ctx)
            result["transient"] = bool(getattr(exc, "transient", False))
    except ValueError as exc:  # KubeconfigError, DecryptionError, RegistryError: stored data refused
        result["error"] = _scrub(str(exc), ctx)
        result["transient"] = False
    if save:
        summary = dict(cluster.summary or {})
        summary["connection"] = result
        Cluster.objects.filter(pk=cluster.pk).update(summary=summary)
        cluster.summary = summary
    return result
