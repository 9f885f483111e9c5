"""``/audit/``: the audit log for admins, newest first, filtered by action, actor, via, result and dates.

Filters live in the query string (shareable): ``action`` (an exact action, or a family such as ``export``
for every ``export.*``), ``actor`` (exact username, case-insensitive), ``via``, ``success`` (``yes``/``no``),
``since`` and ``until`` (``YYYY-MM-DD``, both days included, UTC), ``page``.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ..access import require_role
from ..auditlog import VIAS, retention_days
from ..models import AuditEvent

PAGE_SIZE = 50


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if text and text.strip() else None
    except ValueError:
        return None


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def filter_events(params) -> tuple[QuerySet, dict, list[str]]:
    """The events ``params`` (a QueryDict or dict) select, the filter values as understood, and the
    problems with them (a bad date is ignored and said)."""
    events = AuditEvent.objects.all()
    state = {
        "action": (params.get("action") or "").strip()[:64],
        "actor": (params.get("actor") or "").strip()[:150],
        "via": (params.get("via") or "").strip(),
        "success": (params.get("success") or "").strip(),
        "since": (params.get("since") or "").strip()[:10],
        "until": (params.get("until") or "").strip()[:10],
    }
    problems: list[str] = []
    if state["action"]:
        action = state["action"]
        events = (
            events.filter(action=action) if "." in action else events.filter(action__startswith=f"{action}.")
        )
    if state["actor"]:
        events = events.filter(actor__iexact=state["actor"])
    if state["via"] in VIAS:
        events = events.filter(via=state["via"])
    else:
        state["via"] = ""
    if state["success"] in ("yes", "no"):
        events = events.filter(success=state["success"] == "yes")
    else:
        state["success"] = ""
    for key in ("since", "until"):
        if state[key] and _day(state[key]) is None:
            problems.append(f"{key} {state[key]!r} is not a date (YYYY-MM-DD); ignored")
            state[key] = ""
    since, until = _day(state["since"]), _day(state["until"])
    if since:
        events = events.filter(at__gte=_start_of(since))
    if until:
        events = events.filter(at__lt=_start_of(until + timedelta(days=1)))
    state["active"] = any(state[k] for k in ("action", "actor", "via", "success", "since", "until"))
    return events, state, problems


def detail_text(detail) -> str:
    """``key=value; …`` of an event's detail (values as JSON), for one table cell (escaped by the template)."""
    if not isinstance(detail, dict):
        return json.dumps(detail, default=str) if detail else ""
    return "; ".join(f"{k}={json.dumps(v, default=str, ensure_ascii=False)}" for k, v in detail.items())


@require_GET
@require_role("admin")
def audit_log(request: HttpRequest) -> HttpResponse:
    events, state, problems = filter_events(request.GET)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    for event in page.object_list:
        event.detail_text = detail_text(event.detail)
    actions = sorted(set(AuditEvent.objects.values_list("action", flat=True).distinct()))
    families = sorted({a.split(".", 1)[0] for a in actions if "." in a})
    response = render(
        request,
        "clusters/auditlog.html",
        {
            "page": page,
            "state": state,
            "problems": problems,
            "actions": actions,
            "families": families,
            "vias": VIAS,
            "retention_days": retention_days(),
        },
    )
    response["Cache-Control"] = "private, no-store"
    return response
