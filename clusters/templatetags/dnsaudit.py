"""Template helpers: risk and status badges (text + icon, never colour alone), small lookups."""

from __future__ import annotations

from django import template
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from clusters import exemptions

register = template.Library()

#: risk -> (icon, label). The icon is decorative (aria-hidden); the label carries the meaning.
RISKS = {
    "affected": ("✖", "affected"),
    "at-risk": ("▲", "at risk"),
    "safe": ("✔", "safe"),
    "unknown": ("?", "unknown"),
}
STATUSES = {
    "queued": ("…", "queued"),
    "running": ("↻", "running"),
    "succeeded": ("✔", "succeeded"),
    "partial": ("◐", "partial"),
    "failed": ("✖", "failed"),
}


def _badge(kind: str, value: str, icon: str, label: str) -> SafeString:
    return format_html(
        '<span class="badge {}-{}"><span class="icon" aria-hidden="true">{}</span> {}</span>',
        kind,
        value,
        icon,
        label,
    )


# The badges of the known values never change: built once, so a table row costs a dict lookup.
_RISK_BADGES = {risk: _badge("risk", risk, icon, label) for risk, (icon, label) in RISKS.items()}
_STATUS_BADGES = {status: _badge("status", status, icon, label) for status, (icon, label) in STATUSES.items()}


@register.simple_tag
def risk_badge(risk: str) -> SafeString:
    """The risk as icon + text; an unknown value is shown (escaped) as its own label."""
    badge = _RISK_BADGES.get(risk)
    if badge is None:
        badge = _badge("risk", risk, "?", risk or "unknown")
    return badge


@register.simple_tag
def status_badge(status: str) -> SafeString:
    badge = _STATUS_BADGES.get(status)
    if badge is None:
        badge = _badge("status", status, "?", status)
    return badge


@register.simple_tag
def outcome_badge(ok: bool | None, error: str | None = None) -> str:
    """A resolution outcome: resolved, or the getaddrinfo error."""
    if ok:
        return format_html(
            '<span class="badge risk-safe"><span class="icon" aria-hidden="true">✔</span> {}</span>',
            "resolves",
        )
    return format_html(
        '<span class="badge risk-affected"><span class="icon" aria-hidden="true">✖</span> fails {}</span>',
        error or "",
    )


_ACTIONS = {  # built once: two per probe cell
    "stops": format_html('<span class="act act-stops"><span aria-hidden="true">■</span> {}</span>', "stops"),
    "continues": format_html(
        '<span class="act act-continues"><span aria-hidden="true">→</span> {}</span>', "continues"
    ),
}


@register.simple_tag
def search_action(action: str | None) -> SafeString:
    """What a libc does after a probe answer: carries on with the next domain, or stops there."""
    known = _ACTIONS.get(action or "")
    if known is not None:
        return known
    return format_html('<span class="act">{}</span>', action or "–")


def _text(value, empty: str = "") -> str:
    """``{{ value|default:empty }}`` in Python: the escaped text of ``value``, or ``empty`` if it is falsy."""
    return escape(value) if value else empty


@register.simple_tag
def workload_rows(workloads, cluster_name: str) -> SafeString:
    """The ``<tr>`` rows of the report's workloads table, built in Python rather than by the template engine.

    One page has 50 rows of 8 cells; rendering them node by node (a ``{% url %}`` and a badge tag per row)
    was most of the report page's time. Every value is escaped here exactly as ``{{ }}`` would; the link of
    a row is the ``clusters:workload`` URL, reversed once per table and completed with each row's pk.
    """
    head, tail = _workload_url_parts(cluster_name)
    dash = "–"
    out = []
    today = exemptions.today()
    for w in workloads:
        url = (
            f"{head}{w.pk}{tail}"
            if head is not None
            else reverse("clusters:workload", args=[cluster_name, w.pk])
        )
        libc = _text(w.libc, dash)
        if w.musl_version:
            libc += f' <span class="muted">{escape(w.musl_version)}</span>'
        policy = _text(w.dns_policy, dash)
        if w.host_network:
            policy += ' <span class="tag">hostNetwork</span>'
        out.append(
            "\n      <tr>\n"
            f'        <th scope="row"><a href="{escape(url)}">{escape(w.name)}</a></th>\n'
            f"        <td>{escape(w.namespace)}</td>\n"
            f"        <td>{escape(w.kind)}</td>\n"
            f"        <td>{risk_badge(w.risk)}{_exempted_badge(w, today)}</td>\n"
            f"        <td>{libc}</td>\n"
            f"        <td>{policy}</td>\n"
            f"        <td>{_text(w.node_pool, dash)}</td>\n"
            f"        <td>{_text(w.recommended, dash)}</td>\n"
            "      </tr>"
        )
    return mark_safe("".join(out))  # noqa: S308 - every interpolated value above is escaped


def _exempted_badge(w, today) -> str:
    """A badge after the risk when an exemption applies to the row (its reason as the title); the risk stays."""
    ex = getattr(w, "exemption", None)
    if not ex or (w.exempt_until is not None and w.exempt_until < today):
        return ""
    return str(
        format_html(
            ' <span class="badge exempted" title="{}"><span class="icon" aria-hidden="true">⊘</span> exempted</span>',
            f"{ex.get('source', '')}: {ex.get('reason', '')}",
        )
    )


_PK_SENTINEL = 987654321987


def _workload_url_parts(cluster_name: str) -> tuple[str | None, str]:
    """The workload URL of ``cluster_name`` split around the pk, or ``(None, "")`` if it cannot be split."""
    url = reverse("clusters:workload", args=[cluster_name, _PK_SENTINEL])
    parts = url.split(str(_PK_SENTINEL))
    if len(parts) != 2:  # the sentinel also appears in the cluster name: reverse per row instead
        return None, ""
    return parts[0], parts[1]


@register.filter
def get_item(mapping: dict, key: str):
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def version_text(value) -> str:
    """A server version as text, whether stored as a dict (``gitVersion``) or a string."""
    if isinstance(value, dict):
        return str(value.get("gitVersion") or value.get("git_version") or value.get("version") or "")
    return str(value or "")


@register.filter
def is_nxdomain(label: str | None) -> bool:
    return (label or "").upper().startswith("NXDOMAIN")


@register.filter
def as_list(value) -> list:
    """A value the scanner stores either as one sentence or as a list of sentences, as a list."""
    if value in (None, ""):
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


@register.filter
def ago(value) -> str:
    """``5 minutes ago``, or ``just now`` under a minute (Django's timesince says "0 minutes")."""
    if not value:
        return ""
    from django.utils import timezone
    from django.utils.timesince import timesince

    if (timezone.now() - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value)} ago"
