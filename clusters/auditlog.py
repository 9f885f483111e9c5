"""The audit log: who changed what, when, from which address (``AuditEvent`` rows), never a secret.

Views and commands call :func:`record` after an action; logins, failed logins (a django-axes lockout
included) and logouts are recorded from Django's auth signals (:func:`connect_signals`, called once from
``ClustersConfig.ready``). :func:`record` never raises into its caller: an audit row that cannot be written
is logged and the action goes on.

Action names are dotted: ``cluster.add``, ``cluster.change``, ``cluster.remove``,
``cluster.connection_test``, ``scan.request``, ``export.json|csv|html|bundle|patch``, ``token.create``,
``token.revoke``, ``exemption.create``, ``exemption.remove``, ``node_file.enter``, ``auth.login``,
``auth.login_failed``, ``auth.logout``, ``keys.rotate``, ``audit.prune``. ``via`` is ``web`` (a session),
``api`` (an API token), ``cli`` (a management command; the actor is the OS user), ``sso`` (a login through
the OIDC backend) or ``system``.

``detail`` is scrubbed before it is stored: a key that names a secret (token, password, kubeconfig,
secret, credential, authorization, cookie, private key…) keeps its key with the value ``"[redacted]"``;
URL credentials (``scheme://user:pass@host``) are masked; strings that look like an API token, a
kubeconfig or a PEM block are redacted; strings, lists and nesting are bounded.

Retention: ``DNSAUDIT_AUDIT_RETENTION_DAYS`` (default 365, ``0`` keeps every row). Rows older than that are
deleted at most once a day per process, when a row is recorded, and by ``manage.py auditlog --prune``.
"""

from __future__ import annotations

import getpass
import ipaddress
import json
import logging
import re
import threading
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

VIAS = ("web", "api", "cli", "sso", "system")
REDACTED = "[redacted]"

#: A detail key matching this names a secret: its value is never stored.
_SECRET_KEY = re.compile(
    r"token|passw|passwd|pwd|secret|kubeconfig|credential|authoriz|cookie|session|private|api_?key|"
    r"fernet|^key$|_key$|^keys$|bearer|cert[-_]data|key[-_]data|client[-_]key|notification_url|^urls?$|_urls?$",
    re.IGNORECASE,
)
#: Keys that match the pattern above but are known to hold no secret.
_SAFE_KEYS = frozenset({"token_name", "token_prefix", "token_id", "prefix", "fields", "changed"})
#: ``scheme://user:password@host`` (also ``scheme://token@host``): the userinfo part is masked.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
#: An API token (``dna_`` and 43 characters); its 12-character prefix, shown on the token page, is no secret.
_API_TOKEN = re.compile(r"\bdna_[A-Za-z0-9_-]{16,}")
_BEARER = re.compile(r"(?i)\bbearer\s+\S+")
_SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z ]*(PRIVATE KEY|CERTIFICATE)-----|\bclient-key-data\s*:|\btoken\s*:\s*\S|"
    r"\bpassword\s*:\s*\S|\bkind\s*:\s*Config\b",
    re.IGNORECASE,
)

MAX_STRING = 500
MAX_ITEMS = 50
MAX_DEPTH = 4
MAX_DETAIL_BYTES = 8192
_FIELD_LIMITS = {"actor": 150, "action": 64, "target": 512}


def _scrub_string(value: str) -> str:
    value = value.replace("\x00", "")  # PostgreSQL refuses NUL in text and jsonb
    if _SECRET_VALUE.search(value):
        return REDACTED
    value = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", value)
    value = _API_TOKEN.sub(REDACTED, value)
    value = _BEARER.sub(f"Bearer {REDACTED}", value)
    if len(value) > MAX_STRING:
        value = value[: MAX_STRING - 1] + "…"
    return value


def scrub(value: Any, depth: int = 0) -> Any:
    """``value`` made safe to store: secrets redacted (see the module docstring), sizes bounded, JSON only."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _scrub_string(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if depth >= MAX_DEPTH:
        return "…"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i >= MAX_ITEMS:
                out["…"] = f"{len(value) - MAX_ITEMS} more"
                break
            key = _scrub_string(str(key))[:100]
            if key not in _SAFE_KEYS and _SECRET_KEY.search(key):
                out[key] = REDACTED
            else:
                out[key] = scrub(item, depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        out_list = [scrub(item, depth + 1) for item in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            out_list.append(f"… {len(items) - MAX_ITEMS} more")
        return out_list
    return _scrub_string(str(value))


def _bounded_detail(detail: dict[str, Any]) -> dict[str, Any]:
    cleaned = scrub(detail)
    if len(json.dumps(cleaned, default=str)) > MAX_DETAIL_BYTES:
        # Too big even after bounding each part: keep only the short scalar values.
        cleaned = {
            k: v
            for k, v in cleaned.items()
            if isinstance(v, bool | int | float) or (isinstance(v, str) and len(v) <= 100)
        }
        cleaned["truncated"] = True
    return cleaned


def _valid_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def os_user() -> str:
    """The operating-system user running a command (the actor of a CLI action), or ``cli``."""
    try:
        return getpass.getuser() or "cli"
    except Exception:  # no USER/LOGNAME and no passwd entry (containers with arbitrary UIDs)
        return "cli"


def _from_request(request) -> tuple[str, str, str | None]:
    """(actor, via, address) of a request."""
    from .access import client_ip

    user = getattr(request, "user", None)
    actor = user.get_username() if getattr(user, "is_authenticated", False) else ""
    via = "api" if getattr(request, "api_token", None) is not None else "web"
    try:
        address = _valid_ip(client_ip(request))
    except Exception:
        address = None
    return actor, via, address


def record(
    action: str,
    *,
    request=None,
    actor: str | None = None,
    via: str | None = None,
    target: str = "",
    success: bool = True,
    **detail: Any,
) -> None:
    """Record one audit event. Never raises: a failure to record is logged (ERROR) and swallowed.

    With ``request``, the actor (its user), the address (``clusters.access.client_ip``, which honours
    ``DNSAUDIT_TRUSTED_PROXY``) and ``via`` (``api`` for an API token, else ``web``) come from it; explicit
    ``actor``/``via`` win. Without a request, ``via="cli"`` defaults the actor to the OS user, and no via
    at all means ``system``. ``detail`` is scrubbed of secrets and bounded (see the module docstring).
    """
    _write(action, request=request, actor=actor, via=via, target=target, success=success, detail=detail)


def _write(action, *, request, actor, via, target, success, detail):
    """:func:`record`'s body; the stored event, or None when it could not be written (logged)."""
    try:
        from .models import AuditEvent

        req_actor, req_via, address = _from_request(request) if request is not None else ("", None, None)
        via = via or req_via or "system"
        if via not in VIAS:
            via = "system"
        if actor is None:
            actor = req_actor or (os_user() if via == "cli" else "")
        values = {
            "actor": _scrub_string(str(actor)),
            "action": str(action),
            "target": _scrub_string(str(target or "")),
        }
        for name, limit in _FIELD_LIMITS.items():
            values[name] = values[name][:limit]
        with transaction.atomic():  # a savepoint: a failed insert does not break the caller's transaction
            event = AuditEvent.objects.create(
                via=via, address=address, success=bool(success), detail=_bounded_detail(detail), **values
            )
    except Exception:
        logger.exception("could not record the audit event %r", action)
        return None
    maybe_prune()
    return event


# --- Retention -----------------------------------------------------------------------------------------

_prune_lock = threading.Lock()
_next_prune_at: datetime | None = None


def retention_days() -> int:
    return int(getattr(settings, "DNSAUDIT_AUDIT_RETENTION_DAYS", 365))


def prune(now: datetime | None = None) -> int:
    """Delete the events older than ``DNSAUDIT_AUDIT_RETENTION_DAYS`` (none when it is 0); how many."""
    days = retention_days()
    if days <= 0:
        return 0
    from .models import AuditEvent

    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted, _ = AuditEvent.objects.filter(at__lt=cutoff).delete()
    return deleted


def maybe_prune(now: datetime | None = None) -> int | None:
    """Prune at most once a day per process (a clock comparison otherwise); never raises."""
    global _next_prune_at
    now = now or timezone.now()
    if _next_prune_at is not None and now < _next_prune_at:
        return None
    if not _prune_lock.acquire(blocking=False):
        return None
    try:
        _next_prune_at = now + timedelta(days=1)
        with transaction.atomic():
            return prune(now)
    except Exception:
        logger.exception("could not prune the audit log")
        return None
    finally:
        _prune_lock.release()


def reset_prune_clock() -> None:
    """Forget when the last prune ran (tests, and after the retention setting changes)."""
    global _next_prune_at
    _next_prune_at = None


# --- Logins, failed logins, logouts --------------------------------------------------------------------

OIDC_BACKEND_MARKERS = ("oidc",)


def _login_via(request, user) -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY

    backend = getattr(user, "backend", "") or ""
    if not backend and request is not None and hasattr(request, "session"):
        try:
            backend = request.session.get(BACKEND_SESSION_KEY, "") or ""
        except Exception:
            backend = ""
    return "sso" if any(marker in backend.lower() for marker in OIDC_BACKEND_MARKERS) else "web"


def _on_login(sender, request, user, **kwargs) -> None:
    record("auth.login", request=request, actor=user.get_username(), via=_login_via(request, user))


def _on_logout(sender, request, user, **kwargs) -> None:
    actor = user.get_username() if user is not None else ""
    record("auth.logout", request=request, actor=actor)


def _attempted_username(credentials: dict | None, request) -> str:
    from django.contrib.auth import get_user_model

    field = get_user_model().USERNAME_FIELD
    credentials = credentials or {}
    name = credentials.get(field) or credentials.get("username")
    if not name and request is not None:
        try:
            name = request.POST.get(field) or request.POST.get("username")
        except Exception:
            name = ""
    return str(name or "")[:150]


def _on_login_failed(sender, credentials=None, request=None, **kwargs) -> None:
    # ``credentials`` is already cleansed by Django; only the username is taken from it, never a password.
    # django-axes refuses a locked-out attempt by raising in its backend, which Django turns into this
    # signal too: such an attempt is recorded here, with the reason.
    locked = bool(getattr(request, "axes_locked_out", False))
    # A single sign-on callback the OIDC backend refused (dnsaudit/oidc.py logs why): no password involved.
    sso = request is not None and getattr(request, "path", "").startswith("/oidc/")
    reason = "locked out" if locked else "single sign-on refused" if sso else "bad credentials"
    event = _write(
        "auth.login_failed",
        request=request,
        actor=_attempted_username(credentials, request),
        via="sso" if sso else "web" if request is not None else "system",
        target="",
        success=False,
        detail={"reason": reason},
    )
    if request is not None and event is not None:
        request._dnsaudit_failed_login = event


def _on_lockout(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    """django-axes locked this username+address out (during the attempt that reached the limit): that
    attempt's row says so, whichever of the two signal receivers ran first."""
    event = getattr(request, "_dnsaudit_failed_login", None) if request is not None else None
    if event is None or event.detail.get("reason") == "locked out":
        return
    try:
        event.detail = {**event.detail, "reason": "locked out"}
        with transaction.atomic():
            event.save(update_fields=["detail"])
    except Exception:
        logger.exception("could not mark the failed login as locked out")


def connect_signals() -> None:
    """Connect the auth signals (and django-axes' lockout signal when installed). Idempotent."""
    from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

    user_logged_in.connect(_on_login, dispatch_uid="dnsaudit-audit-login")
    user_logged_out.connect(_on_logout, dispatch_uid="dnsaudit-audit-logout")
    user_login_failed.connect(_on_login_failed, dispatch_uid="dnsaudit-audit-login-failed")
    try:
        from axes.signals import user_locked_out
    except ImportError:  # pragma: no cover - axes is a dependency
        return
    user_locked_out.connect(_on_lockout, dispatch_uid="dnsaudit-audit-lockout")


# --- Helpers for the callers ---------------------------------------------------------------------------


def record_settings_change(request, cluster_name: str, form) -> None:
    """After a cluster settings form saved: ``cluster.change`` with the names of the fields that changed
    (never their values: a kubeconfig or a notification URL may be among them), and one
    ``node_file.enter`` per node resolv.conf entered or cleared (``*`` = every pool)."""
    try:
        changed = list(getattr(form, "changed_data", []) or [])
        pools = dict(getattr(form, "pool_fields", []) or [])
        entered = [pools[f] for f in changed if f in pools]
        if "node_resolv_conf" in changed:
            entered.insert(0, "*")
        fields = [f for f in changed if f not in pools and f != "node_resolv_conf"]
    except Exception:
        logger.exception("could not read the changed fields of %s", cluster_name)
        changed, entered, fields = [], [], []
    if fields or not entered:
        record("cluster.change", request=request, target=cluster_name, fields=sorted(fields))
    for pool in entered:
        key = "node_resolv_conf" if pool == "*" else next(k for k, p in pools.items() if p == pool)
        cleared = not (getattr(form, "cleaned_data", {}) or {}).get(key)
        record("node_file.enter", request=request, target=cluster_name, pool=pool, cleared=cleared)
