"""Django admin: read-mostly views of the stored rows. Kubeconfigs are never displayed."""

from django.contrib import admin
from django.utils import timezone

from . import auditlog
from .models import (
    ApiToken,
    AuditEvent,
    Cluster,
    Exemption,
    ImageVerdict,
    NodePoolResult,
    Scan,
    WorkloadResult,
)


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ("name", "context", "server", "is_demo", "scan_interval_minutes", "updated_at")
    search_fields = ("name", "context", "server")
    exclude = ("kubeconfig_encrypted", "notify_urls_encrypted")  # never shown again, not even encrypted
    readonly_fields = ("summary", "created_at", "updated_at")

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        # Field names only: their values may be secrets (notification URLs) and are in the row anyway.
        fields = sorted(form.changed_data) if change else []
        auditlog.record(
            "cluster.change" if change else "cluster.add",
            request=request,
            target=obj.name,
            admin=True,
            fields=fields,
        )

    def delete_model(self, request, obj) -> None:
        name = obj.name
        super().delete_model(request, obj)
        auditlog.record("cluster.remove", request=request, target=name, admin=True)

    def delete_queryset(self, request, queryset) -> None:
        names = list(queryset.values_list("name", flat=True))
        super().delete_queryset(request, queryset)
        for name in names:
            auditlog.record("cluster.remove", request=request, target=name, admin=True)


@admin.register(Scan)
class ScanAdmin(admin.ModelAdmin):
    list_display = ("pk", "cluster", "status", "trigger", "created_at", "finished_at", "affected", "at_risk")
    list_filter = ("status", "trigger", "cluster")
    list_select_related = ("cluster",)
    raw_id_fields = ("requested_by",)
    readonly_fields = ("cluster", "created_at", "started_at", "finished_at", "heartbeat_at")


@admin.register(NodePoolResult)
class NodePoolResultAdmin(admin.ModelAdmin):
    list_display = ("name", "scan", "kubelet_version", "architecture")
    raw_id_fields = ("scan",)


@admin.register(WorkloadResult)
class WorkloadResultAdmin(admin.ModelAdmin):
    list_display = ("namespace", "kind", "name", "risk", "libc", "recommended", "scan")
    list_filter = ("risk", "libc", "recommended", "kind")
    search_fields = ("namespace", "name", "content__search_text")
    # A content is shared by scans (never a <select> over all of them); exemptions are set by their rules
    # (clusters.exemptions, audit-logged), not by hand here.
    raw_id_fields = ("scan", "content")
    readonly_fields = ("exemption", "exempt_until")
    show_full_result_count = False


@admin.register(ImageVerdict)
class ImageVerdictAdmin(admin.ModelAdmin):
    list_display = ("key", "confidence", "inspected_at")
    search_fields = ("key",)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Admins see every user's tokens (never the token itself: only a hash is stored) and revoke them."""

    list_display = (
        "name",
        "user",
        "prefix",
        "status",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "expires_at")
    list_select_related = ("user",)
    search_fields = ("name", "prefix", "user__username")
    fields = ("user", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = ("user", "prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke_tokens",)

    def has_add_permission(self, request) -> bool:
        return False  # a token is made by its user on the token page, where it is shown once

    @admin.display(description="status")
    def status(self, obj: ApiToken) -> str:
        return obj.status

    @admin.action(description="Revoke the selected tokens")
    def revoke_tokens(self, request, queryset) -> None:
        active = list(
            queryset.filter(revoked_at__isnull=True).values_list("pk", "name", "prefix", "user__username")
        )
        revoked = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        for pk, name, prefix, owner in active:
            auditlog.record(
                "token.revoke",
                request=request,
                target=name,
                token_prefix=prefix,
                token_id=pk,
                owner=owner,
                admin=True,
            )
        self.message_user(request, f"{revoked} token(s) revoked.")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit log, read-only: nobody adds, edits or deletes an event here (retention deletes old ones)."""

    list_display = ("at", "actor", "via", "action", "target", "address", "success")
    list_filter = ("action", "via", "success")
    date_hierarchy = "at"
    search_fields = ("actor", "action", "target", "address")
    fields = ("at", "actor", "via", "action", "target", "address", "success", "detail")
    readonly_fields = fields
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Exemption)
class ExemptionAdmin(admin.ModelAdmin):
    """Read-only: exemptions are created and removed on the cluster's exemptions page (or ``manage.py
    exempt``/``unexempt``), which also update the current report's rows and the audit log."""

    list_display = ("pk", "cluster", "namespace", "workload", "image", "expires", "created_by", "removed_at")
    list_filter = ("cluster", ("removed_at", admin.EmptyFieldListFilter))
    list_select_related = ("cluster",)
    search_fields = ("reason", "namespace", "workload", "image")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
