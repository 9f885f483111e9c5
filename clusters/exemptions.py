"""Exemptions, the Django side: create and remove them, stamp them on scan rows, read them back.

The rules (annotations, matching, precedence, expiry) are in :mod:`dnsaudit.core.exemptions`. Here:

* the scan's save stage calls :func:`for_scan` once and then, per workload, splits the audit's report
  into the stored report (never holding ``exemption``: the report content is shared across scans) and the
  row's ``exemption``/``exempt_until`` columns;
* :func:`create` / :func:`remove` change the cluster's exemptions and at once update the rows of its
  current report (``Cluster.last_report_scan``); older scans keep what applied when they were saved;
* readers merge the row's exemption back into the report dict (:func:`report_of`) while it applies —
  ``exempt_until`` null or not past — and count with :func:`active_q` in SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date

from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from dnsaudit.core import exemptions as core

from .models import Cluster, Exemption, Scan, WorkloadResult

RISKS = ("affected", "at-risk", "safe", "unknown")


def today() -> date:
    """The day exemptions are judged on (the server's local date, as ``expires`` is entered)."""
    return timezone.localdate()


def active_q(day: date | None = None, prefix: str = "") -> Q:
    """Rows whose exemption applies on ``day``: ``exemption`` set and ``exempt_until`` null or not past."""
    day = day or today()
    return Q(**{f"{prefix}exemption__isnull": False}) & (
        Q(**{f"{prefix}exempt_until__isnull": True}) | Q(**{f"{prefix}exempt_until__gte": day})
    )


def scope_of(e: Exemption) -> core.Scope:
    return core.Scope(
        id=e.pk,
        namespace=e.namespace,
        workload=e.workload,
        image=e.image,
        reason=e.reason,
        by=e.created_by,
        expires=e.expires,
    )


def scopes(cluster_id: int) -> list[core.Scope]:
    """The cluster's exemptions not removed (expired ones included: :func:`core.choose` skips them)."""
    return [scope_of(e) for e in Exemption.objects.filter(cluster_id=cluster_id, removed_at__isnull=True)]


def _until(exemption: dict | None) -> date | None:
    if not exemption or not exemption.get("expires"):
        return None
    try:
        return date.fromisoformat(exemption["expires"])
    except ValueError:
        return None


def for_scan(
    scan_id: int, day: date | None = None
) -> Callable[[dict], tuple[dict, dict | None, date | None]]:
    """For the save stage: ``split(report) -> (stored report, exemption, exempt_until)``.

    The stored report is ``report`` without ``exemption`` (a copy only when it had one); ``exemption`` is
    the annotation's (which the audit put in the report) while it applies, else the cluster's dnsaudit
    exemption that applies (:func:`dnsaudit.core.exemptions.resolve`). One query, whatever the rows.
    """
    cluster_id = Scan.objects.filter(pk=scan_id).values_list("cluster_id", flat=True).first()
    found = scopes(cluster_id) if cluster_id is not None else []
    day = day or today()

    def split(report: dict) -> tuple[dict, dict | None, date | None]:
        annotation = None
        if "exemption" in report:
            report = dict(report)
            annotation = report.pop("exemption")
        if annotation is None and not found:
            return report, None, None
        chosen = _keeping(core.resolve(annotation, found, report, day), annotation, day)
        return report, chosen, _until(chosen)

    return split


#: Where a row keeps the workload's annotation exemption while a longer dnsaudit exemption is shown
#: instead (never shown itself): removing that dnsaudit exemption brings the annotation's back at once.
SHADOWED = "shadowed_annotation"


def _keeping(chosen: dict | None, annotation: dict | None, day: date) -> dict | None:
    """``chosen`` as a row stores it: with the annotation it outlasted, if that still applies."""
    if (
        chosen is None
        or annotation is None
        or chosen.get("source") == "annotation"
        or not core.applies(annotation.get("expires"), day)
    ):
        return chosen
    return {**chosen, SHADOWED: annotation}


def _annotation_of(stored: dict | None) -> dict | None:
    """The annotation exemption a row holds: shown, or kept behind a dnsaudit one."""
    if not stored:
        return None
    return stored if stored.get("source") == "annotation" else stored.get(SHADOWED)


def row_exemption(row: WorkloadResult, day: date | None = None) -> dict | None:
    """The row's exemption while it applies on ``day``, else None (in the report schema's shape)."""
    if not row.exemption:
        return None
    if row.exempt_until is not None and row.exempt_until < (day or today()):
        return None
    if SHADOWED in row.exemption:
        return {k: v for k, v in row.exemption.items() if k != SHADOWED}
    return row.exemption


def report_of(row: WorkloadResult, day: date | None = None) -> dict:
    """The row's report in the shared schema, with ``"exemption"`` while one applies (a copy then)."""
    exemption = row_exemption(row, day)
    report = row.report
    return {**report, "exemption": exemption} if exemption else report


def exempted_counts(scan: Scan | None, day: date | None = None) -> dict[str, int]:
    """``{"affected": n, "at-risk": n, "safe": n, "unknown": n, "total": n}`` of exempted workloads of
    ``scan`` (one query), and ``at_risk`` (= ``at-risk``, for templates)."""
    counts = dict.fromkeys(RISKS, 0)
    if scan is not None:
        for risk, n in (
            WorkloadResult.objects.filter(active_q(day), scan=scan)
            .order_by()
            .values_list("risk")
            .annotate(n=Count("pk"))
        ):
            counts[risk] = n
    counts["total"] = sum(counts[r] for r in RISKS)
    counts["at_risk"] = counts["at-risk"]  # for templates
    return counts


def exempted_counts_by_scan(scan_ids: Iterable[int], day: date | None = None) -> dict[int, dict[str, int]]:
    """:func:`exempted_counts` for many scans in one query (the fleet overview, ``/metrics``)."""
    ids = [i for i in scan_ids if i]
    out: dict[int, dict[str, int]] = {i: dict.fromkeys(RISKS, 0) for i in ids}
    if ids:
        for scan_id, risk, n in (
            WorkloadResult.objects.filter(active_q(day), scan_id__in=ids)
            .order_by()
            .values_list("scan_id", "risk")
            .annotate(n=Count("pk"))
        ):
            out[scan_id][risk] = n
    for counts in out.values():
        counts["total"] = sum(counts[r] for r in RISKS)
        counts["at_risk"] = counts["at-risk"]
    return out


def cache_stamp(cluster_id: int) -> str:
    """Changes whenever what the cluster's rows show as exempted may change: an exemption created or
    removed, or a new day (expiry). For cache keys of rendered pages (one query)."""
    agg = Exemption.objects.filter(cluster_id=cluster_id).aggregate(
        n=Count("pk"), last=Max("pk"), removed=Max("removed_at")
    )
    removed = agg["removed"].timestamp() if agg["removed"] else 0
    return f"{today().isoformat()}:{agg['n']}:{agg['last'] or 0}:{removed}"


# --- changes ------------------------------------------------------------------------------------------


def _refresh_rows(cluster: Cluster, rows, day: date) -> int:
    """Recompute the exemption of ``rows`` (of the cluster's current report); returns how many changed.

    An annotation that still applies is kept (it wins); anything else is replaced by the dnsaudit
    exemption that applies now, or cleared.
    """
    found = scopes(cluster.pk)
    changed = 0
    for row in rows.select_related("content").only("id", "exemption", "exempt_until", "content__report"):
        current = row.exemption
        annotation = _annotation_of(current)
        chosen = _keeping(core.resolve(annotation, found, row.report, day), annotation, day)
        if chosen != current:
            WorkloadResult.objects.filter(pk=row.pk).update(exemption=chosen, exempt_until=_until(chosen))
            changed += 1
    return changed


def create(
    cluster: Cluster,
    *,
    reason: str,
    by: str,
    namespace: str = "",
    workload: str = "",
    image: str = "",
    expires: str | date | None = None,
    day: date | None = None,
) -> tuple[Exemption, int]:
    """Validate and store an exemption, and apply it to the cluster's current report at once.

    Returns ``(exemption, rows now carrying it)``. Raises ValueError (a message for the user) for a
    missing or bad reason, a past or malformed expiry, a malformed namespace, ``KIND/NAME`` or image.
    """
    day = day or today()
    reason = core.check_reason(reason)
    namespace = core.check_namespace(namespace)
    workload = core.parse_workload(workload)
    image = core.parse_image(image)
    if isinstance(expires, date):
        if expires < day:
            raise ValueError(
                f"the expiry date {expires.isoformat()} is in the past (today is {day.isoformat()})"
            )
        when = expires
    else:
        when = core.parse_expires(expires, day)
    with transaction.atomic():
        # The cluster row's lock orders this with a scan being saved (clusters/scan/stages/save.py).
        Cluster.objects.select_for_update().filter(pk=cluster.pk).values_list("pk").first()
        e = Exemption.objects.create(
            cluster=cluster,
            namespace=namespace,
            workload=workload,
            image=image,
            reason=reason,
            expires=when,
            created_by=by[:150],
        )
        scan = cluster.last_report_scan()
        applied = 0
        if scan is not None:
            rows = WorkloadResult.objects.filter(scan=scan)
            if namespace:
                rows = rows.filter(namespace=namespace)
            if workload:
                kind, _, name = workload.partition("/")
                rows = rows.filter(kind__iexact=kind, name=name)
            _refresh_rows(cluster, rows, day)
            applied = WorkloadResult.objects.filter(
                scan=scan, exemption__source="dnsaudit", exemption__id=e.pk
            ).count()
    return e, applied


def remove(e: Exemption, *, by: str, day: date | None = None) -> int:
    """Mark ``e`` removed (the row stays, for the record) and take it off the current report's rows,
    which get another exemption that applies, or none. Returns how many rows changed. Idempotent."""
    day = day or today()
    with transaction.atomic():
        Cluster.objects.select_for_update().filter(pk=e.cluster_id).values_list("pk").first()
        if e.removed_at is None:
            e.removed_at = timezone.now()
            e.removed_by = by[:150]
            e.save(update_fields=["removed_at", "removed_by"])
        scan = e.cluster.last_report_scan()
        if scan is None:
            return 0
        rows = WorkloadResult.objects.filter(scan=scan, exemption__source="dnsaudit", exemption__id=e.pk)
        return _refresh_rows(e.cluster, rows, day)


# --- listing ------------------------------------------------------------------------------------------


def status_of(e: Exemption, day: date | None = None) -> str:
    """``active``, ``expired`` (past its last day) or ``removed``."""
    if e.removed_at is not None:
        return "removed"
    return "active" if core.applies(e.expires, day or today()) else "expired"


def as_dict(e: Exemption, *, matched: int | None = None, day: date | None = None) -> dict:
    """An exemption as the API and ``manage.py exemptions --json`` show it."""
    out = {
        "id": e.pk,
        "cluster": e.cluster.name,
        "namespace": e.namespace or None,
        "workload": e.workload or None,
        "image": e.image or None,
        "reason": e.reason,
        "expires": e.expires.isoformat() if e.expires else None,
        "status": status_of(e, day),
        "created_by": e.created_by,
        "created_at": e.created_at.isoformat(),
        "removed_by": e.removed_by or None,
        "removed_at": e.removed_at.isoformat() if e.removed_at else None,
    }
    if matched is not None:
        out["workloads"] = matched
    return out


def listing(cluster: Cluster, day: date | None = None) -> list[dict]:
    """Every exemption of the cluster (newest first) with its status and how many workloads of the
    current report carry it (two queries)."""
    day = day or today()
    scan = cluster.last_report_scan()
    matched: dict[int, int] = {}
    if scan is not None:
        for ex_id, n in (
            WorkloadResult.objects.filter(active_q(day), scan=scan, exemption__source="dnsaudit")
            .order_by()
            .values_list("exemption__id")
            .annotate(n=Count("pk"))
        ):
            if isinstance(ex_id, int):
                matched[ex_id] = n
    items = []
    for e in Exemption.objects.filter(cluster=cluster).select_related("cluster"):
        items.append(as_dict(e, matched=matched.get(e.pk, 0), day=day))
    return items


def annotation_rows(cluster: Cluster, day: date | None = None) -> list[dict]:
    """The workloads of the current report exempted by annotation, with ``status`` active or expired."""
    day = day or today()
    scan = cluster.last_report_scan()
    if scan is None:
        return []
    out = []
    for row in (
        WorkloadResult.objects.filter(scan=scan, exemption__source="annotation")
        .only("id", "namespace", "kind", "name", "risk", "exemption", "exempt_until")
        .order_by("namespace", "kind", "name")
    ):
        out.append(
            {
                "row": row,
                "reason": row.exemption.get("reason", ""),
                "expires": row.exemption.get("expires"),
                "status": "active" if row_exemption(row, day) else "expired",
            }
        )
    return out
