"""The cluster registry, scans (the record of each job) and what a scan found.

A scan's results (node pools, workloads) are written in one transaction when the scan finishes, so a
report is never half-written; the dashboard shows the newest *finished* scan (succeeded or partial),
so a failed scan never replaces the last good report.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterable
from datetime import timedelta

import orjson
from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Q
from django.utils import timezone

from dnsaudit.core.model import NODE_FILE_SOURCES

#: Key of ``Cluster.node_resolv_conf_entered`` for the all-pools file (``Cluster.node_resolv_conf``).
ALL_POOLS = "*"
#: Largest node resolv.conf an admin may enter (the kubelet itself reads up to 10 MiB; real files are tiny).
NODE_RESOLV_CONF_MAX_BYTES = 64 * 1024


def check_node_resolv_conf(text: str) -> str:
    """Validate a node resolv.conf an admin enters; return it normalised (stripped, one final newline).

    Raises ``ValueError`` with a user-facing sentence when the text is over
    :data:`NODE_RESOLV_CONF_MAX_BYTES`, contains NUL bytes, does not parse as the kubelet parses it
    (``dnsaudit.core.kubelet.parse_node_resolv_conf``: e.g. a ``nameserver`` line without an address) or
    has no ``nameserver``, ``search`` or ``options`` line at all (then it is not a resolv.conf: a file
    pasted by mistake). Empty text is the caller's business (it means "clear").
    """
    from dnsaudit.core.kubelet import parse_node_resolv_conf

    size = len(text.encode("utf-8", "surrogateescape"))
    if size > NODE_RESOLV_CONF_MAX_BYTES:
        raise ValueError(
            f"the file is {size} bytes; a node resolv.conf may be at most {NODE_RESOLV_CONF_MAX_BYTES} bytes"
        )
    if "\x00" in text:
        raise ValueError("the file contains NUL bytes: it is not a resolv.conf")
    text = text.replace("\r\n", "\n").strip()
    try:
        parse_node_resolv_conf(text)
    except ValueError as exc:  # KubeletDNSError
        raise ValueError(f"the kubelet could not parse this resolv.conf: {exc}") from None
    keywords = {
        line.split()[0] for line in text.splitlines() if line.strip() and not line.strip().startswith("#")
    }
    if not keywords & {"nameserver", "search", "options"}:
        raise ValueError("no nameserver, search or options line: this does not look like a resolv.conf")
    return text + "\n"


def default_probe_names() -> list[str]:
    return ["example.com"]


class Cluster(models.Model):
    """One kubeconfig context. The kubeconfig is stored encrypted and never shown again."""

    name = models.SlugField(max_length=63, unique=True, help_text="dnsaudit's key for this cluster")
    context = models.CharField(max_length=253)
    server = models.CharField(max_length=2048)
    kubeconfig_encrypted = models.TextField(help_text="Fernet token of the minimal one-context kubeconfig")
    #: Where a scan's credentials come from: the stored kubeconfig, or (in-cluster mode, a server-side
    #: setting) the pod's service-account directory, re-read for every scan (``clusters.incluster``).
    KUBECONFIG = "kubeconfig"
    SERVICE_ACCOUNT = "service-account"
    credentials = models.CharField(
        max_length=16,
        choices=[(KUBECONFIG, "stored kubeconfig"), (SERVICE_ACCOUNT, "the pod's service account")],
        default=KUBECONFIG,
        help_text="service-account: in-cluster mode (DNSAUDIT_IN_CLUSTER); the token is read from "
        "DNSAUDIT_SERVICE_ACCOUNT_DIR for every scan, never stored",
    )
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
    allow_exec = models.BooleanField(
        default=False,
        help_text=(
            "exec reads allowed: `cat /etc/resolv.conf` in a few running pods per node pool (the nodes' "
            "search domains) and in one pod per musl workload (verification); needs pods/exec"
        ),
    )
    node_resolv_conf = models.TextField(
        blank=True, help_text="content of the nodes' resolv.conf (the file the kubelet reads), if known"
    )
    pool_resolv_conf = models.JSONField(
        default=dict, blank=True, help_text="per node pool: resolv.conf content"
    )
    node_resolv_conf_entered = models.JSONField(
        default=dict,
        blank=True,
        help_text='who entered each node file and when: pool (or "*" for all pools) -> {"by", "at"}',
    )
    cluster_dns = models.JSONField(
        default=list, blank=True, help_text="assumed kubelet clusterDNS when configz is unreadable"
    )
    cluster_domain = models.CharField(max_length=253, default="cluster.local")
    notify_urls_encrypted = models.TextField(
        blank=True,
        help_text="Fernet token of this cluster's apprise URLs (comma-separated), overriding "
        "DNSAUDIT_NOTIFY_URLS; never shown again",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def entered_node_file(self, pool: str) -> str:
        """The node file entered for ``pool`` (:data:`ALL_POOLS` = the all-pools file), or ``""``."""
        if pool == ALL_POOLS:
            return self.node_resolv_conf or ""
        return (self.pool_resolv_conf or {}).get(pool, "")

    def enter_node_file(self, pool: str, text: str, *, by: str, at: str | None = None) -> bool:
        """Set (or with empty ``text``, clear) the node file of ``pool`` and record who did it and when.

        ``text`` must already be checked (:func:`check_node_resolv_conf`). The record
        (``node_resolv_conf_entered[pool] = {"by", "at"}``) changes only when the content does: saving
        the same file again keeps the original author; clearing removes the record. Returns True when
        something changed. Does not save.
        """
        text = text.strip()
        old = self.entered_node_file(pool).strip()
        entered = dict(self.node_resolv_conf_entered or {})
        if pool == ALL_POOLS:
            self.node_resolv_conf = text + "\n" if text else ""
        else:
            pools = dict(self.pool_resolv_conf or {})
            if text:
                pools[pool] = text + "\n"
            else:
                pools.pop(pool, None)
            self.pool_resolv_conf = pools
        if not text:
            entered.pop(pool, None)
        elif text != old:
            entered[pool] = {"by": by, "at": at or timezone.now().isoformat(timespec="seconds")}
        changed = entered != (self.node_resolv_conf_entered or {}) or text != old
        self.node_resolv_conf_entered = entered
        return changed

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
    node_resolv_conf_source = models.CharField(
        max_length=16,
        default="unknown",
        choices=[(s, s) for s in NODE_FILE_SOURCES],
        help_text="where node_resolv_conf came from: observed (exec), entered, inferred or unknown",
    )
    node_resolv_conf_evidence = models.JSONField(
        default=list, help_text="how: the pods it was read in, who entered it when, what it was inferred from"
    )
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

    def get_db_prep_value(self, value, connection, prepared=False):
        """On PostgreSQL a document is written by orjson (several times faster than Django's ``json.dumps``
        on the ~13 KB documents a scan writes per workload); what orjson refuses goes through
        ``json.dumps`` as before."""
        if connection.vendor == "postgresql" and not prepared and type(value) in (dict, list):
            from psycopg.types.json import Jsonb

            return Jsonb(value, dumps=_json_text)
        return super().get_db_prep_value(value, connection, prepared)


def _json_text(value: object) -> str:
    """A document as JSON text for PostgreSQL (NaN and infinities, which JSON has not, become null)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate, an integer past 64 bits
        return json.dumps(value)


class WorkloadContent(models.Model):
    """What a scan found about one workload (its ``report`` and ``detail``), stored once by content.

    Most workloads do not change between scans, so each scan's :class:`WorkloadResult` row points at the
    content it found instead of repeating it: an unchanged workload rescanned costs one small row. The key is
    the SHA-256 of the canonical JSON of report, detail and search text (:func:`content_digest`); rows no
    scan refers to any more are deleted when scans are pruned (:func:`prune_contents`).
    """

    digest = models.CharField(max_length=64, unique=True)
    report = BulkJSONField(help_text="the workload in the shared report schema")
    detail = BulkJSONField(default=dict, help_text="traces, patches and evidence for the workload page")
    search_text = models.CharField(max_length=1024, blank=True)

    def __str__(self) -> str:
        return f"content {self.digest[:12]}"


def content_digest(report: dict, detail: dict, search_text: str) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no whitespace, UTF-8) of one workload's stored content.

    orjson writes it (a tenth of ``json.dumps``' time). For strings, integers, booleans and null the bytes
    are those ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` wrote before
    (property-tested), so contents stored earlier are found again; a float may be spelt differently
    (``1e-7`` for ``1e-07``: such a content is stored once more), and NaN or an infinity, which JSON has
    not, becomes null. What orjson refuses (a lone surrogate, an integer past 64 bits) goes through
    ``json.dumps`` with the same settings.
    """
    value = [report, detail, search_text]
    try:
        blob = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError
        blob = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
    return hashlib.sha256(blob).hexdigest()


def store_contents(
    items: list[tuple[dict, dict, str]], check_new: Callable[[int], None] | None = None
) -> list[WorkloadContent]:
    """The :class:`WorkloadContent` of each ``(report, detail, search_text)``, creating only the missing ones.

    Existing rows are found by digest (one query per 1,000 digests); new ones are bulk-inserted with
    ``ignore_conflicts`` (two scans saving the same new content at once both succeed) and read back.
    ``check_new(i)`` is called for each item whose content is not stored yet, before anything is
    inserted (the save stage checks the schema there: a stored content was checked when it was stored).
    """
    digests = [content_digest(r, d, t) for r, d, t in items]
    found: dict[str, WorkloadContent] = {}
    wanted = list(dict.fromkeys(digests))
    for i in range(0, len(wanted), 1000):
        for c in WorkloadContent.objects.filter(digest__in=wanted[i : i + 1000]).only("id", "digest"):
            found[c.digest] = c
    missing = {}
    for index, (digest, (report, detail, text)) in enumerate(zip(digests, items, strict=True)):
        if digest not in found and digest not in missing:
            if check_new is not None:
                check_new(index)
            missing[digest] = WorkloadContent(digest=digest, report=report, detail=detail, search_text=text)
    if missing:
        if connection.vendor == "postgresql":
            _insert_contents_pg(missing.values())
        else:
            WorkloadContent.objects.bulk_create(missing.values(), batch_size=500, ignore_conflicts=True)
        keys = list(missing)
        for i in range(0, len(keys), 1000):
            for c in WorkloadContent.objects.filter(digest__in=keys[i : i + 1000]).only("id", "digest"):
                found[c.digest] = c
    return [found[d] for d in digests]


def _insert_contents_pg(contents: Iterable[WorkloadContent]) -> None:
    """Insert contents (``ON CONFLICT (digest) DO NOTHING``) with server-side parameters, in one pipeline.

    Django's ``bulk_create`` on psycopg 3 binds client-side: every document is quoted into the text of a
    500-row ``INSERT`` that the server parses again; sent as parameters, the new contents of a
    5,000-workload scan take about half the time (bench/: saving 3.9 s → 2.8 s). Runs on Django's
    connection, inside the caller's transaction.
    """
    import psycopg
    from psycopg.types.json import Jsonb

    table = connection.ops.quote_name(WorkloadContent._meta.db_table)  # the model's own table name
    sql = (
        f"INSERT INTO {table} (digest, report, detail, search_text) VALUES (%s, %s, %s, %s) "  # noqa: S608
        "ON CONFLICT (digest) DO NOTHING"
    )
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cur:
        cur.executemany(
            sql,
            [
                (
                    c.digest,
                    Jsonb(c.report, dumps=_json_text),
                    Jsonb(c.detail, dumps=_json_text),
                    c.search_text,
                )
                for c in contents
            ],
        )


#: PostgreSQL advisory lock between saving scans (shared) and deleting unreferenced contents (exclusive):
#: a save that found an existing content must not see it deleted before its rows refer to it.
CONTENT_LOCK = 0x646E_7361_7564_6974 & 0x7FFF_FFFF_FFFF_FFFF


def lock_contents_shared() -> None:
    """In a saving transaction: keep :func:`prune_contents` away until it commits (PostgreSQL; SQLite
    transactions already exclude each other)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", [CONTENT_LOCK])


def prune_contents(candidates: Iterable[int] | None = None) -> int:
    """Delete the contents no scan refers to any more (of ``candidates`` when given: the contents of the
    scans just deleted); returns how many.

    One anti-join (``NOT IN``, hashed once by PostgreSQL and SQLite alike), whatever the rows. Skipped (0)
    while a scan is being saved: the next prune takes what is left.
    """
    table = WorkloadContent._meta.db_table
    results = WorkloadResult._meta.db_table
    ids = None if candidates is None else sorted(set(candidates))
    if ids == []:
        return 0
    deleted = 0
    with transaction.atomic(), connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("SELECT pg_try_advisory_xact_lock(%s)", [CONTENT_LOCK])
            if not cur.fetchone()[0]:
                return 0
        unreferenced = f"id NOT IN (SELECT content_id FROM {results})"  # noqa: S608 - our own table names
        if ids is None:
            cur.execute(f"DELETE FROM {table} WHERE {unreferenced}")  # noqa: S608
            return cur.rowcount
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ", ".join(["%s"] * len(chunk))
            cur.execute(f"DELETE FROM {table} WHERE id IN ({marks}) AND {unreferenced}", chunk)  # noqa: S608
            deleted += cur.rowcount
    return deleted


class WorkloadResult(models.Model):
    """One workload in one scan: the columns pages filter, sort and count by, and a reference to its
    content (report and detail, shared by every scan that found the same)."""

    RISKS = ("affected", "at-risk", "safe", "unknown")

    # No index of its own: every index below starts with the scan.
    scan = models.ForeignKey(Scan, on_delete=models.CASCADE, related_name="workloads", db_index=False)
    namespace = models.CharField(max_length=253)
    # A kind is a DNS-1035 label when lower-cased (the API server validates CRD kinds so): up to 63.
    kind = models.CharField(max_length=63)
    name = models.CharField(max_length=253)
    node_pool = models.CharField(max_length=253, blank=True)
    risk = models.CharField(max_length=16, choices=[(r, r) for r in RISKS])
    libc = models.CharField(max_length=16, blank=True, help_text="musl, glibc, static, unknown or mixed")
    musl_version = models.CharField(max_length=32, blank=True)
    recommended = models.CharField(max_length=16, blank=True)
    dns_policy = models.CharField(max_length=32, blank=True)
    host_network = models.BooleanField(default=False)
    # No index and no database constraint: an index would cost every scan ~25 bytes per workload
    # (bench/storage_bench.py), and a constraint without one makes every deleted content scan this table.
    # Integrity is kept by the content lock: a save holds it shared from finding contents to inserting
    # its rows; :func:`prune_contents` deletes (with one anti-join) only under it, exclusively.
    content = models.ForeignKey(
        WorkloadContent, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    #: The exemption that applies to this workload in this scan (annotation or dnsaudit), in the report
    #: schema's shape ({"reason", "source", "by", "expires", "id"}), or null. Kept out of ``report`` so that
    #: exempting or unexempting updates one small column of the current scan's rows.
    exemption = models.JSONField(null=True, blank=True)
    #: The exemption's last day (null: none, or no expiry); past it the exemption no longer applies.
    exempt_until = models.DateField(null=True, blank=True)

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

    # The content, read through: ``select_related("content")`` (or ``.only("content__report")``) when
    # reading many rows, or each access is a query.
    @property
    def report(self) -> dict:
        return self.content.report

    @property
    def detail(self) -> dict:
        return self.content.detail

    @property
    def search_text(self) -> str:
        return self.content.search_text


class ImageVerdict(models.Model):
    """Cache of image libc verdicts by manifest digest, shared across clusters and scans."""

    key = models.CharField(max_length=512, unique=True, help_text="digest@platform or ref@platform")
    verdict = models.JSONField()
    confidence = models.CharField(max_length=16)
    inspected_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.key


class ApiToken(models.Model):
    """Per-user read-only API key. Only a SHA-256 of the token is stored; the token is shown once.

    A token authenticates only ``GET``/``HEAD`` on ``/api/`` and ``/metrics`` (``access.ApiTokenMiddleware``);
    it may expire (``expires_at``) and is revoked by setting ``revoked_at`` (the row stays, for the record).
    """

    #: Expiry choices offered when a token is created: days, or None for "never".
    EXPIRY_DAYS = (30, 90, 365, None)
    DEFAULT_EXPIRY_DAYS = 90
    #: ``last_used_at`` is written at most this often per token (one UPDATE, not one per request).
    LAST_USED_RESOLUTION_SECONDS = 60
    #: Revoked or expired tokens older than this are deleted when their owner creates a new one.
    PURGE_AFTER_DAYS = 90

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="empty: never expires")
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(
        cls, user, name: str, expires_in_days: int | None = DEFAULT_EXPIRY_DAYS
    ) -> tuple[ApiToken, str]:
        now = timezone.now()
        expires_at = now + timedelta(days=expires_in_days) if expires_in_days else None
        old = now - timedelta(days=cls.PURGE_AFTER_DAYS)
        cls.objects.filter(user=user).filter(Q(revoked_at__lt=old) | Q(expires_at__lt=old)).delete()
        token = "dna_" + secrets.token_urlsafe(32)
        obj = cls.objects.create(
            user=user, name=name, prefix=token[:12], digest=cls.hash(token), expires_at=expires_at
        )
        return obj, token

    @classmethod
    def active(cls):
        """Tokens that authenticate now: not revoked, not expired."""
        return cls.objects.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
        )

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def status(self) -> str:
        """``active``, ``expired`` or ``revoked`` (what the token page and the admin show)."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.is_expired else "active"

    def revoke(self) -> bool:
        """Revoke now; False when it already was (the first revocation time is kept)."""
        return bool(
            type(self).objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        )

    def touch(self) -> None:
        """Record a use, at most once per :attr:`LAST_USED_RESOLUTION_SECONDS`."""
        now = timezone.now()
        if (
            self.last_used_at
            and (now - self.last_used_at).total_seconds() < self.LAST_USED_RESOLUTION_SECONDS
        ):
            return
        type(self).objects.filter(pk=self.pk).update(last_used_at=now)
        self.last_used_at = now


class Exemption(models.Model):
    """ "We know, and we accept this one": entered in dnsaudit for a cluster, a namespace, a workload or an
    image reference. An exemption never changes a verdict; the workload keeps its risk and is shown apart.

    Scope: ``namespace`` empty = every namespace; ``workload`` (``KIND/NAME``) empty = every workload of the
    namespace; ``image`` (a reference as the pod spec writes it) empty = any image. Removal keeps the row
    (``removed_at``/``removed_by``) for the record; an exemption past ``expires`` stops applying.
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="exemptions")
    namespace = models.CharField(max_length=253, blank=True)
    workload = models.CharField(max_length=320, blank=True, help_text="KIND/NAME, or empty for all")
    image = models.CharField(max_length=1024, blank=True, help_text="an image reference, or empty for any")
    reason = models.TextField()
    expires = models.DateField(null=True, blank=True, help_text="last day it applies; empty: no expiry")
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now)
    removed_by = models.CharField(max_length=150, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["cluster", "removed_at"], name="exemption_cluster")]

    def __str__(self) -> str:
        return f"exemption {self.pk} of {self.cluster_id}"


class NotificationDelivery(models.Model):
    """One message sent (or attempted) for one event kind of one scan, through apprise.

    ``fingerprint`` is what the message said (e.g. the sorted newly affected workloads), so the same news is
    never sent twice; ``status`` ``failed`` rows are shown on the cluster page and never fail the scan.
    """

    SENT, FAILED = "sent", "failed"
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="notifications")
    scan = models.ForeignKey(Scan, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    event = models.CharField(max_length=32, help_text="new-findings, scan-failed or scan-partial")
    fingerprint = models.CharField(max_length=64)
    status = models.CharField(max_length=8, choices=[(SENT, SENT), (FAILED, FAILED)])
    targets = models.PositiveIntegerField(default=0, help_text="how many notification URLs were used")
    title = models.CharField(max_length=250, blank=True)
    error = models.TextField(blank=True, help_text="why delivery failed (never a URL's secret)")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["cluster", "event", "-created_at"], name="notify_cluster_event")]
        # One message per scan per event kind, even when two processes finish with the same scan (a worker
        # and the reaper): the row is claimed before sending.
        constraints = [models.UniqueConstraint(fields=["scan", "event"], name="one_delivery_per_scan_event")]

    def __str__(self) -> str:
        return f"{self.event} {self.status} for {self.cluster_id}"


class AuditEvent(models.Model):
    """Who did what, when, from where: every change a person or a token makes, logins included.

    ``detail`` holds what changed, never a secret (no kubeconfig, token, password or URL credential).
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150, blank=True, help_text="username, or empty when unknown")
    via = models.CharField(max_length=16, default="web", help_text="web, api (a token), cli, sso or system")
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=512, blank=True, help_text="what was acted on, e.g. cluster name")
    address = models.GenericIPAddressField(null=True, blank=True)
    success = models.BooleanField(default=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor or '-'} {self.action} {self.target}"
