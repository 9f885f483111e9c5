"""Per-user API tokens: create (shown once, only its hash is stored, with an expiry) and revoke.

Tokens are read-only API keys (see ``clusters.access.ApiTokenMiddleware``): a request carrying one is
refused here, so a token can never create or revoke a token. Admins revoke anyone's in the Django admin.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from .. import auditlog
from ..access import require_role
from ..forms import ApiTokenForm
from ..models import ApiToken

MAX_TOKENS_PER_USER = 20
EXPIRY_CHOICES = [(str(d) if d else "never", f"{d} days" if d else "never") for d in ApiToken.EXPIRY_DAYS]


class NewTokenForm(ApiTokenForm):
    expires = forms.ChoiceField(
        choices=EXPIRY_CHOICES,
        initial=str(ApiToken.DEFAULT_EXPIRY_DAYS),
        label="Expires after",
        help_text="an expired token is refused; make a new one",
        required=False,  # API clients of the form (and older pages) get the default
    )

    def expires_in_days(self) -> int | None:
        value = self.cleaned_data.get("expires") or str(ApiToken.DEFAULT_EXPIRY_DAYS)
        return None if value == "never" else int(value)


@require_http_methods(["GET", "POST"])
@require_role("viewer")
def api_tokens(request: HttpRequest) -> HttpResponse:
    form = NewTokenForm(request.POST if request.method == "POST" else None)
    # Post/redirect/get: the new token rides in the session for exactly one page view, so a refresh
    # neither re-submits the form (a second token) nor shows the token again.
    new_token = request.session.pop("dnsaudit_new_token", None) if request.method == "GET" else None
    tokens = ApiToken.objects.filter(user=request.user).order_by("-created_at")
    if request.method == "POST" and form.is_valid():
        if ApiToken.active().filter(user=request.user).count() >= MAX_TOKENS_PER_USER:
            form.add_error(None, f"at most {MAX_TOKENS_PER_USER} active tokens per user; revoke one first")
        else:
            row, token = ApiToken.issue(request.user, form.cleaned_data["name"], form.expires_in_days())
            auditlog.record(
                "token.create",
                request=request,
                target=row.name,
                token_prefix=row.prefix,
                token_id=row.pk,
                expires_in_days=form.expires_in_days(),
            )
            request.session["dnsaudit_new_token"] = token
            return redirect("clusters:tokens")
    response = render(
        request,
        "clusters/tokens.html",
        {"form": form, "tokens": tokens, "new_token": new_token, "purge_days": ApiToken.PURGE_AFTER_DAYS},
        status=400 if request.method == "POST" and form.errors else 200,
    )
    response["Cache-Control"] = "private, no-store"  # the new token must not be cached anywhere
    return response


@require_POST
@require_role("viewer")
def revoke_token(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if token.revoke():
        auditlog.record(
            "token.revoke", request=request, target=token.name, token_prefix=token.prefix, token_id=token.pk
        )
        messages.success(request, f"Token {token.name} ({token.prefix}…) revoked.")
    else:
        messages.info(request, f"Token {token.name} ({token.prefix}…) was already revoked.")
    return redirect("clusters:tokens")
