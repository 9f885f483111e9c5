"""URLs of the dashboard, the JSON API and /metrics. Names read as actions: ``clusters:report``..."""

from django.urls import path

from .views import (
    account,
    api,
    auditlog,
    exemptions,
    exports,
    fleet,
    manage,
    metrics,
    report,
    scans,
    workload,
)

app_name = "clusters"

urlpatterns = [
    path("", fleet.fleet, name="fleet"),
    # Outside clusters/<name>/ so that no cluster name can shadow it.
    path("add-cluster/", manage.cluster_add, name="add"),
    path("clusters/<slug:name>/", report.cluster_report, name="report"),
    path("clusters/<slug:name>/settings/", manage.cluster_settings, name="settings"),
    path("clusters/<slug:name>/connection-test/", manage.connection_test, name="connection_test"),
    path("clusters/<slug:name>/delete/", manage.cluster_delete, name="delete"),
    path("clusters/<slug:name>/rescan/", scans.rescan, name="rescan"),
    path("clusters/<slug:name>/scans/<int:scan_id>/progress/", scans.scan_progress, name="scan_progress"),
    path("clusters/<slug:name>/workloads/<int:pk>/", workload.workload_detail, name="workload"),
    path("clusters/<slug:name>/exemptions/", exemptions.cluster_exemptions, name="exemptions"),
    path(
        "clusters/<slug:name>/exemptions/<int:pk>/remove/",
        exemptions.remove_exemption,
        name="remove_exemption",
    ),
    path(
        "clusters/<slug:name>/workloads/<int:pk>/fix-<int:index>.yaml",
        exports.workload_patch,
        name="workload_patch",
    ),
    path(
        "clusters/<slug:name>/workloads/<int:pk>/fix-<int:index>.sh",
        exports.workload_kubectl,
        name="workload_kubectl",
    ),
    path("clusters/<slug:name>/export/report.json", exports.report_json, name="export_json"),
    path("clusters/<slug:name>/export/report.csv", exports.report_csv, name="export_csv"),
    path("clusters/<slug:name>/export/report.html", exports.report_html, name="export_html"),
    path("clusters/<slug:name>/export/bundle.zip", exports.bundle_zip, name="export_bundle"),
    path("account/tokens/", account.api_tokens, name="tokens"),
    path("account/tokens/<int:pk>/revoke/", account.revoke_token, name="revoke_token"),
    path("audit/", auditlog.audit_log, name="audit"),
    path("api/v1/clusters", api.clusters, name="api_clusters"),
    path("api/v1/clusters/<slug:name>/scans", api.cluster_scans, name="api_scans"),
    path("api/v1/clusters/<slug:name>/exemptions", exemptions.api_cluster_exemptions, name="api_exemptions"),
    path("api/v1/exemptions/<int:pk>", exemptions.api_exemption, name="api_exemption"),
    path("api/v1/scans/<int:scan_id>", api.scan_detail, name="api_scan"),
    path("api/v1/scans/<int:scan_id>/workloads", api.scan_workloads, name="api_scan_workloads"),
    path("api/v1/scans/<int:scan_id>/policyreports", api.scan_policy_reports, name="api_scan_policyreports"),
    path("metrics", metrics.metrics, name="metrics"),
]
