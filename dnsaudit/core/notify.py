"""Notifications: which news a finished scan carries, and the message that tells it. Plain data only.

Three event kinds, at most one message per scan for each:

- ``new-findings``: workloads (``namespace/kind/name``) that are ``affected`` or ``at-risk`` in this scan,
  not exempted, and were neither in the previous finished scan of the cluster;
- ``scan-failed``: the scan failed, unless the cluster's previous scan failed for the same *reason*;
- ``scan-partial``: the scan is partial for a *reason* the previous finished scan did not have.

A problem's *reason* is its fact plus the class of its error (:func:`problem_reason`), not the error's
full text: a pod name, an address or a count inside the text changes from scan to scan while the news
("the kubelet config of pool general is forbidden") does not. A failed scan's reason is ``scan: <class>``.

The ``fingerprint`` of an event is the SHA-256 of its sorted keys: what the message says, so the same
news is never sent twice for one scan and the record says what was told.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

NEW_FINDINGS, SCAN_FAILED, SCAN_PARTIAL = "new-findings", "scan-failed", "scan-partial"
EVENTS = (NEW_FINDINGS, SCAN_FAILED, SCAN_PARTIAL)
#: How many workloads (or reasons) a message names; the rest are counted.
SHOWN = 5
#: Longest error text quoted in a message.
ERROR_CHARS = 400

#: An HTTP error status standing alone in an error text ("403 Forbidden", "forbidden (403)").
_STATUS = re.compile(r"(?<![\d.:])\b([45]\d\d)\b(?![\d.])")
#: Words that name the class of an error, the earliest in the text wins (longer phrases first at one place).
_CLASS_WORDS = (
    ("could not be reached", "unreachable"),
    ("could not reach", "unreachable"),
    ("unreachable", "unreachable"),
    ("connection refused", "refused"),
    ("refused", "refused"),
    ("forbidden", "forbidden"),
    ("unauthorized", "unauthorized"),
    ("not found", "not found"),
    ("notfound", "not found"),
    ("expired", "expired"),
    ("time limit", "timeout"),
    ("timed out", "timeout"),
    ("timeout", "timeout"),
    ("certificate", "tls"),
    ("tls", "tls"),
    ("ssl", "tls"),
    ("servfail", "servfail"),
    ("nxdomain", "nxdomain"),
    ("too large", "too large"),
    ("invalid response", "invalid response"),
    ("refuses", "refused response"),
    ("no running pod", "no running pod"),
    ("differs", "differs"),
    ("cannot be decrypted", "undecryptable"),
    ("cannot be used", "unusable credentials"),
    ("no worker", "no worker"),
    ("stopped reporting", "worker lost"),
    ("broker", "broker unreachable"),
    ("internal error", "internal error"),
)
_CLASS_RE = re.compile("|".join(re.escape(w) for w, _ in _CLASS_WORDS))
_CLASS_OF = dict(_CLASS_WORDS)


def error_class(text: str) -> str:
    """The class of an error text: its HTTP error status (``"403"``) if it names one, else the earliest
    word of a fixed vocabulary (``unreachable``, ``forbidden``, ``timeout``, ``tls``…), else the text
    itself with digits replaced by ``#`` and spaces collapsed (at most 120 characters)."""
    lowered = " ".join(str(text or "").lower().split())
    status = _STATUS.search(lowered)
    if status:
        return status.group(1)
    word = _CLASS_RE.search(lowered)
    if word:
        return _CLASS_OF[word.group(0)]
    return re.sub(r"\d+", "#", lowered)[:120]


def problem_reason(problem: dict) -> str:
    """``"<fact>: <error class>"`` for one entry of ``Scan.problems`` (``{"fact", "error", "impact"}``)."""
    fact = " ".join(str(problem.get("fact") or "").split()) or "?"
    return f"{fact}: {error_class(problem.get('error') or '')}"


def failure_reason(error: str) -> str:
    """The reason of a failed scan (``"scan: unreachable"``)."""
    return f"scan: {error_class(error)}"


def fingerprint(keys: Iterable[str]) -> str:
    """SHA-256 (hex) of the sorted, de-duplicated keys, one per line."""
    return hashlib.sha256("\n".join(sorted(set(keys))).encode("utf-8")).hexdigest()


def workload_key(namespace: str, kind: str, name: str) -> str:
    return f"{namespace}/{kind}/{name}"


@dataclass(frozen=True)
class ScanFacts:
    """What a message says about the scan: the cluster, the scan id, the counts, and the report's link
    (``None``: no ``DNSAUDIT_BASE_URL``, the message says so instead of guessing a host)."""

    cluster: str
    scan_id: int
    link: str | None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    kind: str
    keys: tuple[str, ...]
    title: str
    body: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.keys)


def _link_line(facts: ScanFacts) -> str:
    if facts.link:
        return f"Report: {facts.link}"
    return f"No link: DNSAUDIT_BASE_URL is not set. Open the cluster {facts.cluster} in dnsaudit."


def _counts_line(facts: ScanFacts) -> str:
    c = facts.counts
    return (
        f"Counts: {c.get('affected', 0)} affected, {c.get('at-risk', 0)} at-risk, {c.get('safe', 0)} safe, "
        f"{c.get('unknown', 0)} unknown ({c.get('workloads', 0)} workloads)."
    )


def _shorten(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters; control and format characters (text from a cluster's
    answers can carry them into a problem's error) become spaces."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text or ""))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def new_findings_event(facts: ScanFacts, new: list[tuple[str, str]], *, first_scan: bool) -> Event | None:
    """The ``new-findings`` message for ``new`` = ``[(workload key, risk)]``, or None when empty."""
    if not new:
        return None
    new = sorted(new, key=lambda kr: (kr[1] != "affected", kr[0]))
    affected = sum(1 for _, r in new if r == "affected")
    since = "in the first scan" if first_scan else "since the previous scan"
    title = f"dnsaudit: {_plural(len(new), 'workload')} newly affected or at-risk on {facts.cluster}"
    lines = [
        f"Cluster {facts.cluster}, scan {facts.scan_id}: {_plural(len(new), 'workload')} newly affected or "
        f"at-risk {since} ({affected} affected, {len(new) - affected} at-risk; exempted workloads left out).",
        *[f"- {key} ({risk})" for key, risk in new[:SHOWN]],
    ]
    if len(new) > SHOWN:
        lines.append(f"… and {len(new) - SHOWN} more.")
    lines += [_counts_line(facts), _link_line(facts)]
    return Event(NEW_FINDINGS, tuple(sorted(k for k, _ in new)), title, "\n".join(lines))


def failed_event(facts: ScanFacts, error: str) -> Event:
    title = f"dnsaudit: the scan of {facts.cluster} failed"
    body = "\n".join(
        [
            f"Cluster {facts.cluster}, scan {facts.scan_id} failed: "
            f"{_shorten(error or 'no reason recorded', ERROR_CHARS)}",
            "The previous report (if any) is kept.",
            _link_line(facts),
        ]
    )
    return Event(SCAN_FAILED, (failure_reason(error),), title, body)


def partial_event(
    facts: ScanFacts, problems: list[dict], previous_problems: list[dict] | None
) -> Event | None:
    """The ``scan-partial`` message when ``problems`` has a reason ``previous_problems`` did not (None:
    there was no previous finished scan, so every reason is new)."""
    before = {problem_reason(p) for p in previous_problems or [] if isinstance(p, dict)}
    fresh: dict[str, dict] = {}
    for p in problems or []:
        if isinstance(p, dict):
            reason = problem_reason(p)
            if reason not in before:
                fresh.setdefault(reason, p)
    if not fresh:
        return None
    title = f"dnsaudit: the scan of {facts.cluster} is partial ({_plural(len(fresh), 'new reason')})"
    lines = [
        f"Cluster {facts.cluster}, scan {facts.scan_id} is partial: {_plural(len(fresh), 'fact')} could not be "
        "read for a new reason.",
    ]
    for p in list(fresh.values())[:SHOWN]:
        lines.append(
            f"- {_shorten(p.get('fact'), 120)}: {_shorten(p.get('error'), 200)}"
            + (f" (so: {_shorten(p.get('impact'), 160)})" if p.get("impact") else "")
        )
    if len(fresh) > SHOWN:
        lines.append(f"… and {len(fresh) - SHOWN} more.")
    lines += [_counts_line(facts), _link_line(facts)]
    return Event(SCAN_PARTIAL, tuple(sorted(fresh)), title, "\n".join(lines))


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every one of ``secrets`` (pieces of a notification URL) and every ``scheme://…``
    replaced by ``[redacted]``, longest first, bounded to 500 characters."""
    out = str(text or "")
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        out = out.replace(secret, "[redacted]")
    out = re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", "[redacted URL]", out)
    return _shorten(out, 500)
