"""The cluster registry, scans (the record of each job) and what a scan found.

A scan's results (node pools, workloads) are written in one transaction when the scan finishes, so a
report is never half-written; the dashboard shows the newest *finished* scan (succeeded or partial),
so a failed scan never replaces the last good report.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


def default_probe_names() -> list[str]:
    return ["example.com"]


class Cluster(models.Model):
    """One kubeconfig context. The kubeconfig is stored encrypted and never shown again."""

    name = models.SlugField(max_length=63, unique=True, help_text="dnsaudit's key for this cluster")
    context = models.CharField(max_length=253)
    server = models.CharField(max_length=2048)
    kubeconfig_encrypted = models.TextField(help_text="Fernet token of the minimal one-context kubeconfig")
    summary = models.JSONField(
        default=dict, help_text="sanitized: server, context, user, auth kind, CA fingerprint"
    )
    notes = models.TextField(blank=True)
    is_demo = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Scan settings.
    scan_interval_minutes = models.PositiveIntegerField(default=0, help_text="0 = manual scans only")
    probe_nameservers = models.JSONField(default=list, blank=True, help_text="host or host:port")
    probe_names = models.JSONField(default=default_probe_names, blank=True)
    exec_verification = models.BooleanField(default=False)
    node_resolv_conf = models.TextField(
        blank=True, help_text="content of the nodes' resolv.conf (the file the kubelet reads), if known"
    )
    pool_resolv_conf = models.JSONField(
        default=dict, blank=True, help_text="per node pool: resolv.conf content"
    )
    cluster_dns = models.JSONField(
        default=list, blank=True, help_text="assumed kubelet clusterDNS when configz is unreadable"
    )
    cluster_domain = models.CharField(max_length=253, default="cluster.local")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def last_report_scan(self) -> Scan | None:
        return self.scans.filter(status__in=Scan.FINISHED_OK).order_by("-finished_at", "-pk").first()

    def active_scan(self) -> Scan | None:
        return self.scans.filter(status__in=Scan.ACTIVE).order_by("-pk").first()


class Scan(models.Model):
    QUEUED, RUNNING, SUCCEEDED, PARTIAL, FAILED = "queued", "running", "succeeded", "partial", "failed"
    STATUS_CHOICES = [(s, s) for s in (QUEUED, RUNNING, SUCCEEDED, PARTIAL, FAILED)]
    ACTIVE = (QUEUED, RUNNING)
    FINISHED_OK = (SUCCEEDED, PARTIAL)
    TRIGGER_CHOICES = [(t, t) for t in ("manual", "schedule", "cli", "api", "demo")]

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="scans")
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=QUEUED)
    trigger = models.CharField(max_length=16, choices=TRIGGER_CHOICES, default="manual")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    stage = models.CharField(max_length=64, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=255, blank=True)
    # Counts of the finished report.
    workloads_total = models.PositiveIntegerField(default=0)
    affected = models.PositiveIntegerField(default=0)
    at_risk = models.PositiveIntegerField(default=0)
    safe = models.PositiveIntegerField(default=0)
    unknown = models.PositiveIntegerField(default=0)
    pods_seen = models.PositiveIntegerField(default=0)
    images_inspected = models.PositiveIntegerField(default=0)
    # What could not be read: [{"fact": ..., "error": ..., "impact": ...}]
    problems = models.JSONField(default=list, blank=True)
    facts = models.JSONField(
        default=dict, blank=True, help_text="cluster-level facts: coredns, kyverno, version"
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["cluster"],
                condition=Q(status__in=("queued", "running")),
                name="one_active_scan_per_cluster",
            )
        ]
        indexes = [models.Index(fields=["cluster", "status", "-finished_at"], name="scan_cluster_status")]

    def __str__(self) -> str:
        return f"scan {self.pk} of {self.cluster_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def percent(self) -> int:
        if not self.progress_total:
            return 0 if self.is_active else 100
        return min(100, int(100 * self.progress_done / self.progress_total))

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class NodePoolResult(models.Model):
    scan = models.ForeignKey(Scan, on_delete=models.CASCADE, related_name="node_pools")
    name = models.CharField(max_length=253)
    nodes = models.JSONField(default=list)
    kubelet_version = models.CharField(max_length=64, blank=True)
    architecture = models.CharField(max_length=32, blank=True)
    cluster_dns = models.JSONField(default=list)
    cluster_domain = models.CharField(max_length=253, blank=True)
    resolv_conf_path = models.CharField(max_length=1024, blank=True)
    node_resolv_conf = models.TextField(blank=True)
    searches = models.JSONField(default=list, help_text="search domains from the node file, with origin")
    observed = models.JSONField(default=dict, help_text="fact -> observed (True) or assumed (False)")
    probes = models.JSONField(default=list, help_text="probe answers per domain and name")
    notes = models.JSONField(default=list)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"pool {self.name} of scan {self.scan_id}"


class BulkJSONField(models.JSONField):
    """A JSONField that PostgreSQL bulk-inserts with a plain multi-row INSERT.

    Django 5.2 bulk-inserts on PostgreSQL through ``UNNEST(%s::jsonb[])``, which makes psycopg escape every
    quote of every JSON document into an array literal in Python: saving 400 workloads of ~20 KB took
    0.55 s instead of 0.20 s (bench/). A field with its own placeholder opts out of UNNEST.
    """

    def get_placeholder(self, value, compiler, connection) -> str:
        return "%s"


class WorkloadResult(models.Model):
    RISKS = ("affected", "at-risk", "safe", "unknown")

    scan = models.ForeignKey(Scan, on_delete=models.CASCADE, related_name="workloads")
    namespace = models.CharField(max_length=253)
    kind = models.CharField(max_length=32)
    name = models.CharField(max_length=253)
    node_pool = models.CharField(max_length=253, blank=True)
    risk = models.CharField(max_length=16, choices=[(r, r) for r in RISKS])
    libc = models.CharField(max_length=16, blank=True, help_text="musl, glibc, static, unknown or mixed")
    musl_version = models.CharField(max_length=32, blank=True)
    recommended = models.CharField(max_length=16, blank=True)
    dns_policy = models.CharField(max_length=32, blank=True)
    host_network = models.BooleanField(default=False)
    report = BulkJSONField(help_text="the workload in the shared report schema")
    detail = BulkJSONField(default=dict, help_text="traces, patches and evidence for the workload page")
    search_text = models.CharField(max_length=1024, blank=True)

    class Meta:
        ordering = ["namespace", "kind", "name"]
        indexes = [
            models.Index(fields=["scan", "risk"], name="wl_scan_risk"),
            models.Index(fields=["scan", "namespace", "kind", "name"], name="wl_scan_ns"),
            models.Index(fields=["scan", "libc"], name="wl_scan_libc"),
            models.Index(fields=["scan", "recommended"], name="wl_scan_rec"),
            models.Index(fields=["scan", "kind"], name="wl_scan_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}"


class ImageVerdict(models.Model):
    """Cache of image libc verdicts by manifest digest, shared across clusters and scans."""

    key = models.CharField(max_length=512, unique=True, help_text="digest@platform or ref@platform")
    verdict = models.JSONField()
    confidence = models.CharField(max_length=16)
    inspected_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.key


class ApiToken(models.Model):
    """Per-user API token. Only a SHA-256 of the token is stored; the token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name: str) -> tuple[ApiToken, str]:
        token = "dna_" + secrets.token_urlsafe(32)
        obj = cls.objects.create(user=user, name=name, prefix=token[:12], digest=cls.hash(token))
        return obj, token
