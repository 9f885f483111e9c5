"""In-cluster mode: dnsaudit running in a pod audits the cluster it runs in with the pod's service account.

A server-side setting chosen by whoever deploys dnsaudit (``DNSAUDIT_IN_CLUSTER=true``), never something an
upload can ask for: uploaded kubeconfigs still may not name a file (``tokenFile`` stays refused). With it,
the cluster ``DNSAUDIT_IN_CLUSTER_NAME`` (default ``in-cluster``) is registered, or refreshed, after every
``migrate`` (the deploy's migration Job) and by ``ensure_registered()``; its row records
``credentials = service-account`` and stores no token. ``load_context`` builds its connection for every
scan from ``DNSAUDIT_SERVICE_ACCOUNT_DIR`` (``token``, ``ca.crt``, ``namespace``) and
``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT``: the token file is re-read each time, so projected
tokens that the kubelet rotates keep working.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from pathlib import Path

from django.conf import settings

from dnsaudit.core.model import KubeContext

log = logging.getLogger(__name__)

DEFAULT_NAME = "in-cluster"
DEFAULT_SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_MAX_BYTES = 64 << 10
CA_MAX_BYTES = 1 << 20
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_TRUE = {"1", "true", "yes", "on"}


class InClusterError(ValueError):
    """The service-account directory or the service environment cannot give a connection (user-facing)."""


def enabled() -> bool:
    value = getattr(settings, "DNSAUDIT_IN_CLUSTER", None)
    if value is None:
        value = os.environ.get("DNSAUDIT_IN_CLUSTER", "")
    return value is True or str(value).strip().lower() in _TRUE


def cluster_name() -> str:
    return getattr(settings, "DNSAUDIT_IN_CLUSTER_NAME", None) or os.environ.get(
        "DNSAUDIT_IN_CLUSTER_NAME", DEFAULT_NAME
    )


def service_account_dir() -> Path:
    return Path(
        getattr(settings, "DNSAUDIT_SERVICE_ACCOUNT_DIR", None)
        or os.environ.get("DNSAUDIT_SERVICE_ACCOUNT_DIR", DEFAULT_SERVICE_ACCOUNT_DIR)
    )


def api_server() -> str:
    """``https://HOST:PORT`` from ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` (set in every pod)."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "").strip()
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443").strip() or "443"
    if not host:
        raise InClusterError(
            "in-cluster mode needs KUBERNETES_SERVICE_HOST (Kubernetes sets it in every pod): is dnsaudit "
            "running in a pod?"
        )
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InClusterError(f"KUBERNETES_SERVICE_PORT is not a port: {port[:20]!r}")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not _HOST.fullmatch(host):
            raise InClusterError(f"KUBERNETES_SERVICE_HOST is not a host name: {host[:60]!r}") from None
        return f"https://{host}:{port}"
    return f"https://[{ip}]:{port}" if ip.version == 6 else f"https://{ip}:{port}"


def _read(path: Path, limit: int, what: str) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InClusterError(f"cannot read the service account's {what} ({path}): {exc.strerror}") from None
    if len(data) > limit:
        raise InClusterError(f"the service account's {what} ({path}) is larger than {limit} bytes")
    return data


def service_account_context(name: str | None = None) -> KubeContext:
    """The connection of the pod's service account, read now (the token file may have been rotated)."""
    folder = service_account_dir()
    raw = _read(folder / "token", TOKEN_MAX_BYTES, "token").strip()
    try:
        token = raw.decode("ascii")
    except UnicodeDecodeError:
        raise InClusterError(f"the service account's token ({folder / 'token'}) is not ASCII") from None
    if not token or not token.isprintable() or " " in token:
        raise InClusterError(f"the service account's token ({folder / 'token'}) is empty or malformed")
    ca = _read(folder / "ca.crt", CA_MAX_BYTES, "CA certificate")
    if b"-----BEGIN CERTIFICATE-----" not in ca:
        raise InClusterError(f"the service account's ca.crt ({folder / 'ca.crt'}) holds no PEM certificate")
    namespace = None
    if (folder / "namespace").exists():
        namespace = _read(folder / "namespace", 256, "namespace").decode("ascii", "replace").strip() or None
    label = name or cluster_name()
    return KubeContext(
        name=label,
        cluster=label,
        user="service-account",
        server=api_server(),
        namespace=namespace,
        ca_data=ca,
        token=token,
    )


def ensure_registered(*, verbosity: int = 1):
    """Register (or refresh the server, CA and summary of) the in-cluster cluster; returns it, or None when
    in-cluster mode is off. Raises InClusterError when the service account cannot be read."""
    if not enabled():
        return None
    from dnsaudit.core.kubeconfig import minimal_kubeconfig, summarize

    from . import crypto
    from .models import Cluster

    name = cluster_name()
    ctx = service_account_context(name)
    # What is stored is the kubeconfig without its token: the token is read from the directory per scan.
    stored = minimal_kubeconfig(KubeContext(**{**ctx.__dict__, "token": None}))
    summary = summarize(ctx, [])
    summary["auth_kind"] = "service-account"
    summary["service_account_dir"] = str(service_account_dir())
    cluster, created = Cluster.objects.get_or_create(
        name=name,
        defaults={
            "context": ctx.name,
            "server": ctx.server,
            "kubeconfig_encrypted": crypto.encrypt(stored),
            "summary": summary,
            "credentials": Cluster.SERVICE_ACCOUNT,
            "notes": "in-cluster mode: the cluster dnsaudit runs in, read with its pod's service account",
        },
    )
    if not created:
        if cluster.credentials != Cluster.SERVICE_ACCOUNT:
            raise InClusterError(
                f"a cluster named {name!r} was registered from a kubeconfig; remove it or set "
                "DNSAUDIT_IN_CLUSTER_NAME to another name"
            )
        keep = {k: v for k, v in (cluster.summary or {}).items() if k == "connection"}
        cluster.context = ctx.name
        cluster.server = ctx.server
        cluster.kubeconfig_encrypted = crypto.encrypt(stored)
        cluster.summary = {**summary, **keep}
        cluster.save(update_fields=["context", "server", "kubeconfig_encrypted", "summary", "updated_at"])
    if verbosity:
        log.info(
            "in-cluster mode: %s cluster %s (%s)", "registered" if created else "refreshed", name, ctx.server
        )
    return cluster


def post_migrate(sender, **kwargs) -> None:
    """Register the in-cluster cluster after ``migrate`` (the deploy's migration step)."""
    if not enabled():
        return
    try:
        ensure_registered(verbosity=kwargs.get("verbosity", 1))
    except (InClusterError, ValueError) as exc:
        log.error("in-cluster mode: the cluster was not registered: %s", exc)
