"""Per-user API tokens: create (the token is shown once, only its hash is stored) and revoke."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from ..access import require_role
from ..forms import ApiTokenForm
from ..models import ApiToken

MAX_TOKENS_PER_USER = 20


@require_http_methods(["GET", "POST"])
@require_role("viewer")
def api_tokens(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST if request.method == "POST" else None)
    # Post/redirect/get: the new token rides in the session for exactly one page view, so a refresh
    # neither re-submits the form (a second token) nor shows the token again.
    new_token = request.session.pop("dnsaudit_new_token", None) if request.method == "GET" else None
    tokens = ApiToken.objects.filter(user=request.user).order_by("-created_at")
    if request.method == "POST" and form.is_valid():
        if tokens.count() >= MAX_TOKENS_PER_USER:
            form.add_error(None, f"at most {MAX_TOKENS_PER_USER} tokens per user; revoke one first")
        else:
            _, token = ApiToken.issue(request.user, form.cleaned_data["name"])
            request.session["dnsaudit_new_token"] = token
            return redirect("clusters:tokens")
    response = render(
        request,
        "clusters/tokens.html",
        {"form": form, "tokens": tokens, "new_token": new_token},
        status=400 if request.method == "POST" and form.errors else 200,
    )
    response["Cache-Control"] = "private, no-store"  # the new token must not be cached anywhere
    return response


@require_POST
@require_role("viewer")
def revoke_token(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    token.delete()
    messages.success(request, f"Token {token.name} ({token.prefix}…) revoked.")
    return redirect("clusters:tokens")
