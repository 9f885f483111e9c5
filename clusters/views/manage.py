"""Cluster management for admins: add from a kubeconfig (with a context chooser), connection and
permission self-test, scan settings, delete. The kubeconfig is validated and stored by
``clusters.registry``; its errors are user-facing sentences and are shown as they are."""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from .. import auditlog
from ..access import require_role
from ..forms import AddClusterForm, ClusterSettingsForm
from ..models import Cluster, NodePoolResult
from .common import get_cluster, is_htmx

ALL_CONTEXTS = "__all__"


#: A kubeconfig refused for its credential plugin (what EKS, GKE and AKS hand out).
_PLUGIN_REFUSED = re.compile(r"exec credential plugins|auth-provider plugins")


@require_http_methods(["GET", "POST"])
@require_role("admin")
def cluster_add(request: HttpRequest) -> HttpResponse:
    from dnsaudit.core.kubeconfig import KubeconfigError, parse_kubeconfig

    from ..registry import import_kubeconfig

    bound = request.method == "POST"
    form = AddClusterForm(request.POST if bound else None, request.FILES if bound else None)
    context: dict = {"form": form, "contexts": None}
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data["kubeconfig"]
        choice = request.POST.get("choice", "")
        parsed = None
        try:
            parsed = parse_kubeconfig(data, max_bytes=settings.DNSAUDIT_KUBECONFIG_MAX_BYTES)
            if not choice and len(parsed.contexts) > 1:
                # Step two: show the contexts; the kubeconfig travels back in the (hidden) text field.
                context.update(
                    contexts=parsed.contexts,
                    current=parsed.current_context,
                    kubeconfig=data,
                    all_value=ALL_CONTEXTS,
                )
                response = render(request, "clusters/manage/add.html", context)
                response["Cache-Control"] = "private, no-store"  # the page carries the kubeconfig back
                return response
            result = import_kubeconfig(
                data,
                context=None if choice in ("", ALL_CONTEXTS) else choice,
                all_contexts=choice == ALL_CONTEXTS,
                name=form.cleaned_data["name"] or None,
                notes=form.cleaned_data["notes"],
            )
        except (KubeconfigError, ValueError) as exc:  # registry errors are ValueErrors with a user message
            form.add_error(None, str(exc))
            if isinstance(exc, KubeconfigError) and _PLUGIN_REFUSED.search(str(exc)):
                # EKS/GKE/AKS kubeconfigs: show how to give dnsaudit its own read-only token instead.
                from dnsaudit.core.permissions import kubeconfig_steps

                context["reader_help"] = kubeconfig_steps()
            if choice:
                context.update(
                    contexts=parsed.contexts if parsed else None,
                    kubeconfig=data,
                    all_value=ALL_CONTEXTS,
                    chosen=choice,
                )
            response = render(request, "clusters/manage/add.html", context, status=400)
            response["Cache-Control"] = "private, no-store"
            return response
        for added in result.clusters:
            auditlog.record("cluster.add", request=request, target=added.name, context=added.context)
        for warning in result.warnings:
            messages.warning(request, warning)
        names = ", ".join(c.name for c in result.clusters)
        messages.success(request, f"Added {names}. Run the connection test below, then a scan.")
        return redirect("clusters:settings", name=result.clusters[0].name)
    response = render(
        request, "clusters/manage/add.html", context, status=400 if request.method == "POST" else 200
    )
    response["Cache-Control"] = "private, no-store"  # a failed form carries the pasted kubeconfig back
    return response


@require_http_methods(["GET", "POST"])
@require_role("admin")
def cluster_settings(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_cluster(name)
    last = cluster.last_report_scan()
    pools = (
        dict(NodePoolResult.objects.filter(scan=last).values_list("name", "node_resolv_conf_source"))
        if last
        else {}
    )
    form = ClusterSettingsForm(
        request.POST if request.method == "POST" else None,
        instance=cluster,
        pool_names=list(pools),
        pool_sources=pools,
        entered_by=request.user.get_username(),
    )
    if request.method == "POST" and form.is_valid():
        form.save()
        auditlog.record_settings_change(request, cluster.name, form)
        if form.notify_change:  # never the URLs themselves
            auditlog.record(
                "notify.settings", request=request, target=cluster.name, change=form.notify_change
            )
        messages.success(request, f"Settings of {cluster.name} saved; they apply from the next scan.")
        return redirect("clusters:settings", name=cluster.name)
    return render(
        request,
        "clusters/manage/settings.html",
        {
            "cluster": cluster,
            "form": form,
            "connection": (cluster.summary or {}).get("connection"),
            "summary": cluster.summary or {},
        },
        status=400 if request.method == "POST" else 200,
    )


@require_POST
@require_role("admin")
def connection_test(request: HttpRequest, name: str) -> HttpResponse:
    from ..registry import connection_test as run_test

    cluster = Cluster.objects.get(pk=get_cluster(name).pk)  # with the kubeconfig this time
    result = run_test(cluster)
    auditlog.record(
        "cluster.connection_test", request=request, target=cluster.name, success=bool(result.get("reachable"))
    )
    if is_htmx(request):
        return render(request, "clusters/manage/_connection.html", {"cluster": cluster, "connection": result})
    if result.get("reachable"):
        messages.success(request, f"{cluster.name} answered (Kubernetes {_version(result)}).")
    else:
        messages.error(request, f"{cluster.name} could not be reached: {result.get('error')}")
    return redirect("clusters:settings", name=cluster.name)


def _version(result: dict) -> str:
    version = result.get("server_version")
    if isinstance(version, dict):
        return str(version.get("gitVersion") or version.get("git_version") or version)
    return str(version or "?")


@require_http_methods(["GET", "POST"])
@require_role("admin")
def cluster_delete(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_cluster(name)
    if request.method == "POST":
        if request.POST.get("confirm_name") != cluster.name:
            messages.error(request, "Type the cluster's name to confirm the deletion.")
            return render(request, "clusters/manage/delete.html", {"cluster": cluster}, status=400)
        scans = cluster.scans.count()
        cluster.delete()
        auditlog.record("cluster.remove", request=request, target=name, scans=scans)
        messages.success(request, f"Deleted {name} with its scans and stored kubeconfig.")
        return redirect("clusters:fleet")
    scans = cluster.scans.count()
    return render(request, "clusters/manage/delete.html", {"cluster": cluster, "scans": scans})
