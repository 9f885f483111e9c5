"""System checks: settings that would otherwise fail in the middle of a scan fail at start instead."""

from __future__ import annotations

from django.core.checks import Error, register


@register()
def registry_settings(app_configs, **kwargs) -> list[Error]:
    from dnsaudit.boundary.registry import mirrors_from_environment

    try:
        mirrors_from_environment()
    except ValueError as exc:
        return [
            Error(
                str(exc),
                hint="fix DNSAUDIT_REGISTRY_MIRRORS (registry=mirror, comma-separated)",
                id="dnsaudit.E001",
            )
        ]
    return []
