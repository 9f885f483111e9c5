"""Who may do what: roles, API tokens, and the helpers views use to enforce them.

Roles are Django groups named ``viewer``, ``operator`` and ``admin`` (superusers are admins). Each role
includes the ones before it: viewers browse, operators also rescan and export, admins also manage
clusters. Every URL needs a login (Django's ``LoginRequiredMiddleware``) except those marked
``login_not_required`` (login, health, metrics).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils import timezone

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


class ApiTokenMiddleware:
    """``Authorization: Bearer dna_…`` authenticates API requests as the token's user (no session)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer dna_"):
            from .models import ApiToken

            token = header.removeprefix("Bearer ").strip()
            found = ApiToken.objects.select_related("user").filter(digest=ApiToken.hash(token)).first()
            if found and found.user.is_active:
                ApiToken.objects.filter(pk=found.pk).update(last_used_at=timezone.now())
                request.user = found.user
                request._dont_enforce_csrf_checks = request.method in ("GET", "HEAD", "OPTIONS")
                request.api_token = found
            else:
                request.user = AnonymousUser()
        return self.get_response(request)
