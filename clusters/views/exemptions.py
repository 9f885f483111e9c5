"""Exemptions of a cluster: the page (viewers see, operators create and remove) and the JSON API.

Page: ``/clusters/<name>/exemptions/`` (GET; POST creates), ``…/exemptions/<id>/remove/`` (POST).
API: ``/api/v1/clusters/<name>/exemptions`` (GET list; POST create, operator+ with a session: API tokens
are read-only and refused before any view runs) and ``/api/v1/exemptions/<id>`` (GET; DELETE removes).
Every change is recorded in the audit log (``exemption.create`` / ``exemption.remove``).
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from dnsaudit.core import exemptions as core

from .. import auditlog, exemptions
from ..access import has_role, require_role
from ..models import Cluster, Exemption
from .common import get_cluster

#: Largest JSON body the API reads for a new exemption.
MAX_BODY = 16 * 1024


class ExemptionForm(forms.Form):
    """What a person enters; checked by the same rules as the command (``dnsaudit.core.exemptions``)."""

    namespace = forms.CharField(required=False, max_length=63, help_text="empty: every namespace")
    workload = forms.CharField(
        required=False,
        max_length=320,
        label="Workload (KIND/NAME)",
        help_text="e.g. Deployment/web; empty: all",
    )
    image = forms.CharField(
        required=False, max_length=1024, label="Image", help_text="a bare name matches every tag; empty: any"
    )
    reason = forms.CharField(max_length=core.MAX_REASON, widget=forms.TextInput(attrs={"size": 60}))
    expires = forms.CharField(
        required=False,
        label="Expires (last day)",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="empty: no expiry",
    )

    def _checked(self, name: str, check) -> str:
        try:
            return check(self.cleaned_data.get(name) or "")
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_namespace(self) -> str:
        return self._checked("namespace", core.check_namespace)

    def clean_workload(self) -> str:
        return self._checked("workload", core.parse_workload)

    def clean_image(self) -> str:
        return self._checked("image", core.parse_image)

    def clean_reason(self) -> str:
        return self._checked("reason", core.check_reason)

    def clean_expires(self) -> str:
        value = self.cleaned_data.get("expires") or ""
        try:
            core.parse_expires(value, exemptions.today())
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value


def _create(request: HttpRequest, cluster: Cluster, data: dict, via: str | None = None):
    e, applied = exemptions.create(
        cluster,
        reason=data.get("reason") or "",
        by=request.user.get_username(),
        namespace=data.get("namespace") or "",
        workload=data.get("workload") or "",
        image=data.get("image") or "",
        expires=data.get("expires") or None,
    )
    auditlog.record(
        "exemption.create",
        request=request,
        via=via,
        target=cluster.name,
        id=e.pk,
        namespace=e.namespace,
        workload=e.workload,
        image=e.image,
        expires=e.expires.isoformat() if e.expires else None,
        reason=e.reason,
    )
    return e, applied


def _remove(request: HttpRequest, e: Exemption, via: str | None = None) -> int:
    changed = exemptions.remove(e, by=request.user.get_username())
    auditlog.record("exemption.remove", request=request, via=via, target=e.cluster.name, id=e.pk)
    return changed


# --- the page -----------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@require_role("viewer")
def cluster_exemptions(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_cluster(name)
    form = ExemptionForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if not has_role(request.user, "operator"):
            raise PermissionDenied("this needs the operator role")
        if form.is_valid():
            try:
                e, applied = _create(request, cluster, form.cleaned_data)
            except ValueError as exc:  # a race with the date, or a rule the form did not know
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request,
                    f"Exemption {e.pk} created: {applied} workload{'s' if applied != 1 else ''} of the current "
                    "report exempted.",
                )
                return redirect("clusters:exemptions", name=cluster.name)
    context = {
        "cluster": cluster,
        "form": form,
        "items": exemptions.listing(cluster),
        "annotations": exemptions.annotation_rows(cluster),
        "max_reason": core.MAX_REASON,
    }
    return render(
        request, "clusters/exemptions.html", context, status=400 if request.method == "POST" else 200
    )


@require_POST
@require_role("operator")
def remove_exemption(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    cluster = get_cluster(name)
    e = get_object_or_404(Exemption.objects.select_related("cluster"), pk=pk, cluster=cluster)
    if e.removed_at is None:
        changed = _remove(request, e)
        messages.success(
            request, f"Exemption {e.pk} removed: {changed} workload{'s' if changed != 1 else ''} changed."
        )
    return redirect("clusters:exemptions", name=cluster.name)


# --- the API ------------------------------------------------------------------------------------------


def _json_error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _api_auth(request: HttpRequest, write: bool) -> JsonResponse | None:
    if not request.user.is_authenticated:
        response = _json_error(401, "authentication required (session or Bearer API token)")
        response["WWW-Authenticate"] = 'Bearer realm="dnsaudit"'
        return response
    needed = "operator" if write else "viewer"
    if not has_role(request.user, needed):
        return _json_error(403, f"this needs the {needed} role")
    return None


@login_not_required
@require_http_methods(["GET", "HEAD", "POST"])
def api_cluster_exemptions(request: HttpRequest, name: str) -> HttpResponse:
    """GET: ``{"cluster", "exemptions": [...], "annotations": [...]}``; POST (JSON ``{"reason",
    "namespace", "workload", "image", "expires"}``): 201 with the exemption, 400 with ``error``."""
    refused = _api_auth(request, write=request.method == "POST")
    if refused is not None:
        return refused
    cluster = Cluster.objects.defer("kubeconfig_encrypted").filter(name=name).first()
    if cluster is None:
        return _json_error(404, "cluster not found")
    if request.method == "POST":
        if len(request.body) > MAX_BODY:
            return _json_error(413, f"the body is over {MAX_BODY} bytes")
        try:
            data = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return _json_error(400, "the body is not JSON")
        if not isinstance(data, dict):
            return _json_error(400, "the body must be a JSON object")
        fields = ("reason", "namespace", "workload", "image", "expires")
        unknown = sorted(set(data) - set(fields))
        if unknown:
            return _json_error(400, f"unknown field(s): {', '.join(unknown)[:200]}")
        if any(data.get(f) is not None and not isinstance(data[f], str) for f in fields):
            return _json_error(400, "every field is a string")
        try:
            e, applied = _create(request, cluster, data)
        except ValueError as exc:
            return _json_error(400, str(exc))
        return JsonResponse(exemptions.as_dict(e, matched=applied), status=201)
    return JsonResponse(
        {
            "cluster": cluster.name,
            "exemptions": exemptions.listing(cluster),
            "annotations": [
                {
                    "namespace": a["row"].namespace,
                    "kind": a["row"].kind,
                    "name": a["row"].name,
                    "risk": a["row"].risk,
                    "reason": a["reason"],
                    "expires": a["expires"],
                    "status": a["status"],
                }
                for a in exemptions.annotation_rows(cluster)
            ],
        }
    )


@login_not_required
@require_http_methods(["GET", "HEAD", "DELETE"])
def api_exemption(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the exemption; DELETE (operator+): removes it (kept, status ``removed``), 200 with it."""
    refused = _api_auth(request, write=request.method == "DELETE")
    if refused is not None:
        return refused
    e = Exemption.objects.select_related("cluster").filter(pk=pk).first()
    if e is None:
        return _json_error(404, "exemption not found")
    if request.method == "DELETE" and e.removed_at is None:
        _remove(request, e)
        e.refresh_from_db()
    return JsonResponse(exemptions.as_dict(e))
