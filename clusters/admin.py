"""Django admin: read-mostly views of the stored rows. Kubeconfigs are never displayed."""

from django.contrib import admin
from django.utils import timezone

from .models import ApiToken, Cluster, ImageVerdict, NodePoolResult, Scan, WorkloadResult


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ("name", "context", "server", "is_demo", "scan_interval_minutes", "updated_at")
    search_fields = ("name", "context", "server")
    exclude = ("kubeconfig_encrypted",)
    readonly_fields = ("summary", "created_at", "updated_at")


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
    search_fields = ("namespace", "name", "search_text")
    raw_id_fields = ("scan",)
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
        revoked = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{revoked} token(s) revoked.")
