"""Template helpers: risk and status badges (text + icon, never colour alone), small lookups."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

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


@register.simple_tag
def risk_badge(risk: str) -> str:
    icon, label = RISKS.get(risk, ("?", risk or "unknown"))
    return format_html(
        '<span class="badge risk-{}"><span class="icon" aria-hidden="true">{}</span> {}</span>',
        risk,
        icon,
        label,
    )


@register.simple_tag
def status_badge(status: str) -> str:
    icon, label = STATUSES.get(status, ("?", status))
    return format_html(
        '<span class="badge status-{}"><span class="icon" aria-hidden="true">{}</span> {}</span>',
        status,
        icon,
        label,
    )


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


@register.simple_tag
def search_action(action: str | None) -> str:
    """What a libc does after a probe answer: carries on with the next domain, or stops there."""
    if action == "stops":
        return format_html('<span class="act act-stops"><span aria-hidden="true">■</span> {}</span>', "stops")
    if action == "continues":
        return format_html(
            '<span class="act act-continues"><span aria-hidden="true">→</span> {}</span>', "continues"
        )
    return format_html('<span class="act">{}</span>', action or "–")


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
