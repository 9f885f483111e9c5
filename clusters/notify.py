"""Notifications through apprise (Slack, Teams, e-mail, webhooks… one library): after a scan finishes.

What is news is decided by :mod:`dnsaudit.core.notify` (``new-findings``, ``scan-failed``,
``scan-partial``); this module reads the rows it needs, sends at most one message per scan per event kind
and records each attempt as a :class:`~clusters.models.NotificationDelivery`.

Targets: the cluster's own URLs (``Cluster.notify_urls_encrypted``, Fernet-encrypted like the kubeconfig
and never shown again) when set, else ``DNSAUDIT_NOTIFY_URLS``. Neither set: nothing is sent or recorded.

Delivery never fails or holds up a scan: :func:`after_scan` runs :func:`notify_scan` once the scan's
transaction has committed; every target is sent in its own thread with its sockets' timeouts at
``DNSAUDIT_NOTIFY_TIMEOUT`` and the whole message waits at most that long (plus a second). Any error,
a refusal or no answer in time makes a ``failed`` row whose error names the target by its position and
service, never by its URL (apprise URLs carry tokens and passwords: every piece of the URL is redacted
from what apprise said), and a log line. The cluster page shows the failure while the newest delivery of
that event kind failed. A failed delivery is not retried: the next message goes out with the next news.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from dnsaudit.core import notify as core

from .models import Cluster, NotificationDelivery, Scan, WorkloadResult
from .reports import previous_report_scan

log = logging.getLogger(__name__)

FLAGGED = ("affected", "at-risk")
TERMINAL = (Scan.SUCCEEDED, Scan.PARTIAL, Scan.FAILED)

# apprise logs what it sends to (URLs with their tokens at DEBUG, hosts at WARNING) on the "apprise" logger.
# Nothing of it reaches the project's log: :func:`deliver` collects the warnings of its own threads and
# redacts them; the log line it writes is that sanitized text.
_apprise_log = logging.getLogger("apprise")
_apprise_log.propagate = False
_apprise_log.setLevel(logging.WARNING)  # what deliver() collects, whatever LOG_LEVEL says
if not any(isinstance(h, logging.NullHandler) for h in _apprise_log.handlers):
    _apprise_log.addHandler(logging.NullHandler())


# --- targets ----------------------------------------------------------------------------------------


def split_urls(text: str) -> list[str]:
    """Notification URLs separated by commas or white space (newlines), blanks dropped, order kept, once."""
    out: list[str] = []
    for item in re.split(r"[\s,]+", text or ""):
        if item and item not in out:
            out.append(item)
    return out


def _scheme(url: str) -> str:
    scheme = url.split("://", 1)[0] if "://" in url else ""
    return scheme.lower() if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,19}", scheme) else ""


def check_urls(urls: list[str]) -> list[str]:
    """Return ``urls`` when apprise can use every one; else raise ValueError with a sentence that names the
    URL by its position and scheme only (never its host, path, user or password)."""
    import apprise

    for i, url in enumerate(urls, 1):
        if apprise.Apprise.instantiate(url) is None:
            scheme = _scheme(url)
            what = f"{scheme}://…" if scheme else "without a scheme://"
            raise ValueError(
                f"notification URL {i} of {len(urls)} ({what}) is not one apprise can use: check its scheme "
                "and the parts that service needs (see the apprise documentation)"
            )
    return urls


def store_cluster_urls(cluster: Cluster, text: str) -> int:
    """Set (checked, encrypted) or, with empty ``text``, clear the cluster's own URLs. Returns how many.
    Does not save. Raises ValueError (see :func:`check_urls`)."""
    from .crypto import encrypt

    urls = check_urls(split_urls(text))
    cluster.notify_urls_encrypted = encrypt(",".join(urls)) if urls else ""
    return len(urls)


def cluster_urls(cluster: Cluster) -> list[str]:
    """The cluster's own URLs (decrypted); [] when none. Raises DecryptionError when they cannot be read."""
    from .crypto import decrypt

    if not cluster.notify_urls_encrypted:
        return []
    return split_urls(decrypt(cluster.notify_urls_encrypted))


def cluster_url_count(cluster: Cluster) -> int | None:
    """How many URLs the cluster has of its own (0: none); None when they cannot be decrypted."""
    try:
        return len(cluster_urls(cluster))
    except ValueError:
        return None


def targets(cluster: Cluster) -> tuple[list[str], str]:
    """``(urls, where)``: the cluster's own URLs or ``DNSAUDIT_NOTIFY_URLS``; ``where`` says which."""
    own = cluster_urls(cluster)
    if own:
        return own, "cluster"
    return list(getattr(settings, "DNSAUDIT_NOTIFY_URLS", []) or []), "DNSAUDIT_NOTIFY_URLS"


# --- delivery ---------------------------------------------------------------------------------------


def url_secrets(url: str) -> set[str]:
    """Every piece of ``url`` that may be a secret: user, password, host (a Slack token is a "host"),
    path segments, query values, fragment, each also percent-decoded, and the URL itself."""
    pieces = {url}
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        userinfo, _, hostport = netloc.rpartition("@")
        pieces |= {netloc, userinfo, hostport, hostport.rsplit(":", 1)[0], parts.fragment}
        pieces |= set(userinfo.split(":"))
        pieces |= set(parts.path.split("/"))
        pieces |= {v for _, v in parse_qsl(parts.query, keep_blank_values=True)}
        pieces |= set(parts.query.split("&"))
    except ValueError:
        pass
    return {p for p in pieces if p} | {unquote(p) for p in pieces if p}


class _ThreadCapture(logging.Handler):
    """Collects the apprise warnings and errors logged by the threads of one message, while they send
    (``active``): another message's thread, even one that reuses a finished thread's id, is not heard."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_thread: dict[int, list[str]] = {}
        self.active: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread not in self.active:
            return
        # A message that cannot be formatted is no reason to stop: it is left out.
        with contextlib.suppress(Exception):
            self.by_thread.setdefault(record.thread or 0, []).append(record.getMessage())


@dataclass
class Delivery:
    ok: bool
    error: str = ""


def deliver(urls: list[str], title: str, body: str, *, timeout: float | None = None) -> Delivery:
    """Send one message to every URL (each in its own thread), waiting at most ``timeout`` (+1 s) in all.

    Returns ``Delivery(ok=True)`` when every target accepted it, else the failures in one sanitized
    sentence per target (``target 2 (JSON): …``). Never raises.
    """
    try:
        import apprise
        from apprise import NotifyFormat
    except Exception as exc:  # pragma: no cover - a broken install
        return Delivery(False, f"apprise cannot be loaded ({type(exc).__name__})")

    timeout = float(timeout if timeout is not None else getattr(settings, "DNSAUDIT_NOTIFY_TIMEOUT", 10))
    capture = _ThreadCapture()
    _apprise_log.addHandler(capture)
    errors: list[str] = []
    jobs: list[tuple[int, str, dict, threading.Thread, set[str]]] = []
    try:
        for i, url in enumerate(urls, 1):
            secrets = url_secrets(url)
            try:
                plugin = apprise.Apprise.instantiate(url)
            except Exception as exc:
                plugin, reason = None, type(exc).__name__
            else:
                reason = ""
            if plugin is None:
                errors.append(
                    f"target {i} ({_scheme(url) or 'no scheme'}): not a URL apprise can use"
                    + (f" ({reason})" if reason else "")
                )
                continue
            # Bound every socket the plugin opens; a URL's own shorter cto/rto is kept.
            plugin.socket_connect_timeout = min(float(plugin.socket_connect_timeout or timeout), timeout)
            plugin.socket_read_timeout = min(float(plugin.socket_read_timeout or timeout), timeout)
            result: dict = {}

            def send(plugin=plugin, result=result) -> None:
                me = threading.get_ident()
                capture.active.add(me)
                try:
                    result["ok"] = bool(plugin.notify(title=title, body=body, body_format=NotifyFormat.TEXT))
                except Exception as exc:
                    result["ok"] = False
                    result["exc"] = type(exc).__name__
                finally:
                    capture.active.discard(me)

            service = str(getattr(plugin, "service_name", "") or _scheme(url) or "?")
            thread = threading.Thread(target=send, name=f"notify-{i}", daemon=True)
            thread.start()
            jobs.append((i, service, result, thread, secrets))
        deadline = time.monotonic() + timeout + 1.0
        for i, service, result, thread, secrets in jobs:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                errors.append(f"target {i} ({service}): no answer within {timeout:g} s")
                continue
            if result.get("ok"):
                continue
            said = capture.by_thread.get(thread.ident or 0, [])
            why = "; ".join(dict.fromkeys(said)) or (
                f"{result['exc']} while sending" if result.get("exc") else "the service did not accept it"
            )
            errors.append(f"target {i} ({service}): {core.redact(why, secrets)}")
    except Exception as exc:  # never into the scan
        errors.append(f"delivery stopped by {type(exc).__name__}")
    finally:
        _apprise_log.removeHandler(capture)
    return Delivery(not errors, core.redact("; ".join(errors), set()) if errors else "")


# --- events -----------------------------------------------------------------------------------------


def report_link(cluster: Cluster) -> str | None:
    """``DNSAUDIT_BASE_URL`` + the cluster's report path, or None when the base URL is not set."""
    base = (getattr(settings, "DNSAUDIT_BASE_URL", "") or "").rstrip("/")
    if not base:
        return None
    return base + reverse("clusters:report", args=[cluster.name])


def previous_terminal_scan(scan: Scan) -> Scan | None:
    """The cluster's scan before ``scan`` that ended (succeeded, partial or failed)."""
    return (
        Scan.objects.filter(cluster_id=scan.cluster_id, status__in=TERMINAL, created_at__lt=scan.created_at)
        .order_by("-created_at", "-pk")
        .first()
    )


def flagged_keys(scan: Scan, *, exempted: bool) -> dict[str, str]:
    """``{"ns/Kind/name": risk}`` of the scan's affected and at-risk workloads; ``exempted=False`` leaves
    out the rows whose exemption applies (an exemption with no last day, or one not past yet)."""
    qs = WorkloadResult.objects.filter(scan=scan, risk__in=FLAGGED)
    if not exempted:
        qs = qs.filter(Q(exemption__isnull=True) | Q(exempt_until__lt=timezone.localdate()))
    return {
        core.workload_key(n, k, m): r for n, k, m, r in qs.values_list("namespace", "kind", "name", "risk")
    }


def scan_events(scan: Scan) -> list[core.Event]:
    """The news of a finished scan (see :mod:`dnsaudit.core.notify`), in the order they are sent."""
    cluster = scan.cluster
    facts = core.ScanFacts(
        cluster=cluster.name,
        scan_id=scan.pk,
        link=report_link(cluster),
        counts={
            "workloads": scan.workloads_total,
            "affected": scan.affected,
            "at-risk": scan.at_risk,
            "safe": scan.safe,
            "unknown": scan.unknown,
        },
    )
    if scan.status == Scan.FAILED:
        before = previous_terminal_scan(scan)
        reason = core.failure_reason(scan.error)
        if (
            before is not None
            and before.status == Scan.FAILED
            and core.failure_reason(before.error) == reason
        ):
            return []  # still failing the same way: already told
        return [core.failed_event(facts, scan.error)]
    if scan.status not in Scan.FINISHED_OK:
        return []
    previous = previous_report_scan(scan)
    now = flagged_keys(scan, exempted=False)
    before = set(flagged_keys(previous, exempted=True)) if previous else set()
    events = []
    found = core.new_findings_event(
        facts, [(k, r) for k, r in now.items() if k not in before], first_scan=previous is None
    )
    if found:
        events.append(found)
    if scan.status == Scan.PARTIAL:
        partial = core.partial_event(facts, scan.problems or [], previous.problems if previous else None)
        if partial:
            events.append(partial)
    return events


def notify_scan(scan_id: int) -> list[NotificationDelivery]:
    """Send the news of finished scan ``scan_id`` (each event kind once per scan) and record each attempt.
    Never raises: whatever goes wrong is logged (and recorded as a failed delivery where it can be)."""
    try:
        return _notify_scan(scan_id)
    except Exception as exc:
        log.error("notifications of scan %s stopped: %s", scan_id, type(exc).__name__)
        return []


def _notify_scan(scan_id: int) -> list[NotificationDelivery]:
    scan = Scan.objects.select_related("cluster").filter(pk=scan_id).first()
    if scan is None or scan.status not in TERMINAL:
        return []
    cluster = scan.cluster
    try:
        urls, where = targets(cluster)
    except ValueError:  # DecryptionError: say so where the admin looks, send nowhere else
        urls, where = None, "cluster"
    if urls == []:
        return []
    events = [e for e in scan_events(scan) if not _already_sent(scan, e.kind)]
    out = []
    for event in events:
        # Claim the (scan, event) first: a second process finishing the same scan sends nothing. Until the
        # delivery is done the row says it did not finish (what stays if this process dies meanwhile).
        try:
            with transaction.atomic():
                row = NotificationDelivery.objects.create(
                    cluster=cluster,
                    scan=scan,
                    event=event.kind,
                    fingerprint=event.fingerprint,
                    status=NotificationDelivery.FAILED,
                    targets=len(urls or []),
                    title=event.title[:250],
                    error="the delivery did not finish (the process stopped while sending)",
                )
        except IntegrityError:
            continue
        if urls is None:
            result = Delivery(
                False, "this cluster's notification URLs cannot be decrypted with the configured keys"
            )
        else:
            result = deliver(urls, event.title, event.body)
        row.status = NotificationDelivery.SENT if result.ok else NotificationDelivery.FAILED
        row.error = result.error
        row.save(update_fields=["status", "error"])
        if result.ok:
            log.info(
                "notification %s of scan %s (%s) sent to %d target(s)",
                event.kind,
                scan.pk,
                cluster.name,
                row.targets,
            )
        else:
            log.warning(
                "notification %s of scan %s (%s, URLs from %s) failed: %s",
                event.kind,
                scan.pk,
                cluster.name,
                where,
                result.error,
            )
        out.append(row)
    return out


def _already_sent(scan: Scan, kind: str) -> bool:
    return NotificationDelivery.objects.filter(scan=scan, event=kind).exists()


def after_scan(scan: Scan | None) -> Scan | None:
    """Hook for the scan lifecycle: once the scan's transaction commits, send its news (inline, bounded by
    ``DNSAUDIT_NOTIFY_TIMEOUT`` per message). Returns ``scan``; never raises."""
    try:
        if scan is not None and scan.status in TERMINAL:
            scan_id = scan.pk
            transaction.on_commit(lambda: notify_scan(scan_id), robust=True)
    except Exception as exc:
        log.error(
            "could not schedule the notifications of scan %s: %s",
            getattr(scan, "pk", "?"),
            type(exc).__name__,
        )
    return scan


# --- the cluster page -------------------------------------------------------------------------------


def failing_deliveries(cluster: Cluster) -> list[NotificationDelivery]:
    """Per event kind whose newest delivery failed, that delivery (newest first). One query."""
    newest: dict[str, NotificationDelivery] = {}
    rows = NotificationDelivery.objects.filter(cluster=cluster).only(
        "event", "status", "created_at", "error", "title", "scan_id", "targets"
    )
    # Enough rows to see every kind's newest; kinds are few, scans keep ~10 per cluster.
    for row in rows.order_by("-created_at", "-pk")[:200]:
        newest.setdefault(row.event, row)
    return [r for r in newest.values() if r.status == NotificationDelivery.FAILED]
