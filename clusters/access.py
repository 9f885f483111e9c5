"""Who may do what: roles, API tokens, and the helpers views use to enforce them.

Roles are Django groups named ``viewer``, ``operator`` and ``admin`` (superusers are admins). Each role
includes the ones before it: viewers browse, operators also rescan and export, admins also manage
clusters. Every URL needs a login (Django's ``LoginRequiredMiddleware``) except those marked
``login_not_required`` (login, health, metrics, the API, which answer 401 themselves).

API tokens (``Authorization: Bearer dna_…``) are read-only API keys, not logins: see
:class:`ApiTokenMiddleware`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

ROLES = ("viewer", "operator", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}


def role_of(user) -> str | None:
    """The highest role of ``user`` or None (logged in, but no role yet: sees nothing)."""
    if not getattr(user, "is_authenticated", False):
        return None
    if user.is_superuser:
        return "admin"
    cached = getattr(user, "_dnsaudit_role", "unset")
    if cached != "unset":
        return cached
    names = set(user.groups.values_list("name", flat=True))
    role = None
    for candidate in ROLES:
        if candidate in names:
            role = candidate
    user._dnsaudit_role = role
    return role


def has_role(user, needed: str) -> bool:
    role = role_of(user)
    return role is not None and _RANK[role] >= _RANK[needed]


def require_role(needed: str) -> Callable:
    """View decorator: 403 unless the user has ``needed`` (or a higher role)."""

    def decorator(view):
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            if not has_role(request.user, needed):
                raise PermissionDenied(f"this needs the {needed} role")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def roles_context(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    return {
        "role": role_of(user) if user else None,
        "can_operate": bool(user) and has_role(user, "operator"),
        "can_admin": bool(user) and has_role(user, "admin"),
    }


#: Where an API token is accepted, and for which methods. Everything else refuses a request carrying one.
TOKEN_PATH_PREFIXES = ("/api/",)
TOKEN_PATHS = ("/metrics",)
TOKEN_METHODS = ("GET", "HEAD")
TOKEN_PREFIX = "dna_"


def token_allowed_for(request: HttpRequest) -> bool:
    """Whether an API token may authenticate this request: GET/HEAD on ``/api/…`` or ``/metrics``."""
    path = request.path_info
    return request.method in TOKEN_METHODS and (path in TOKEN_PATHS or path.startswith(TOKEN_PATH_PREFIXES))


def _bearer_token(request: HttpRequest) -> str | None:
    """The ``dna_…`` token of an ``Authorization: Bearer`` header, or None (other bearers are not ours:
    ``DNSAUDIT_METRICS_TOKEN`` is checked by ``/metrics`` itself)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value.startswith(TOKEN_PREFIX):
        return value
    return None


def _refuse(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="dnsaudit", error="invalid_token"'
    response["Cache-Control"] = "no-store"
    return response


class ApiTokenMiddleware:
    """``Authorization: Bearer dna_…``: a read-only API key, never a login.

    - ``GET``/``HEAD`` on ``/api/…`` and ``/metrics`` with an active token (not revoked, not expired, its
      user active): the request is the token's user (any session cookie is ignored), ``last_used_at`` is
      recorded; an unknown, expired or revoked token gets ``401`` with the reason.
    - Anything else carrying a token — a POST anywhere, ``/admin/``, the token page, any dashboard page —
      is refused with ``403`` before any view runs, so it has no side effect; the token authenticates
      nobody there.

    Runs after ``AuthenticationMiddleware`` (it replaces ``request.user``) and before anything that acts.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        token = _bearer_token(request)
        if token is None:
            return self.get_response(request)
        request.user = AnonymousUser()
        if not token_allowed_for(request):
            return _refuse(
                403,
                "API tokens are read-only: they are accepted only for GET and HEAD on /api/ and /metrics",
            )
        from .models import ApiToken

        found = ApiToken.objects.select_related("user").filter(digest=ApiToken.hash(token)).first()
        if found is None:
            return _refuse(401, "unknown API token")
        if found.revoked_at is not None:
            return _refuse(401, "this API token was revoked")
        if found.is_expired:
            return _refuse(401, "this API token has expired")
        if not found.user.is_active:
            return _refuse(401, "the user of this API token is inactive")
        found.touch()
        request.user = found.user
        request.api_token = found
        return self.get_response(request)


def client_ip(request: HttpRequest) -> str | None:
    """The client address for login throttling (``AXES_CLIENT_IP_CALLABLE``).

    ``REMOTE_ADDR``, unless ``DNSAUDIT_TRUSTED_PROXY`` says a reverse proxy sits in front: then the
    right-most ``X-Forwarded-For`` entry, the one that proxy appended (what a client writes itself is to
    its left and never trusted).
    """
    if getattr(settings, "DNSAUDIT_TRUSTED_PROXY", False):
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
        if forwarded:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR")


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """The page django-axes shows a locked-out login (``AXES_LOCKOUT_CALLABLE``): 429, what happened,
    how long it lasts, and how an admin lifts it."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    context = {
        "username": username[:150],
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "lockout_minutes": settings.DNSAUDIT_LOGIN_LOCKOUT_MINUTES,
    }
    response = render(request, "registration/locked_out.html", context, status=429)
    if settings.DNSAUDIT_LOGIN_LOCKOUT_MINUTES:
        response["Retry-After"] = str(settings.DNSAUDIT_LOGIN_LOCKOUT_MINUTES * 60)
    return response
