"""The workload page reads the stored row through the one schema (dnsaudit.core.schema).

* A dnsPolicy None workload with its own dnsConfig shows that dnsConfig (issue #8 item 6a).
* Every ``report.<key>`` / ``detail.<key>`` a template reads is a key the schema declares (the guard):
  templates are parsed with Django's own parser, loop and ``with`` variables are followed, and a name
  holding a stored report anywhere must be declared in :data:`ROOTS` (or :data:`NOT_WORKLOAD`).
* A stored row that does not match the schema is refused with the path of the wrong key.
"""

from __future__ import annotations

import html
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypedDict

import pytest
from django.template import engines
from django.template.base import FilterExpression, Node, NodeList, Variable
from django.template.defaulttags import ForNode, TemplateLiteral, WithNode
from django.template.loader_tags import IncludeNode
from django.template.smartif import TokenBase
from django.urls import reverse

from clusters.views.workload import RemediationRow, SimulationRow
from dnsaudit.core import schema
from dnsaudit.core.schema import DetailContainer, DetailRemediation, WorkloadDetail, WorkloadReport
from tests.web import factories

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

# --- the page ----------------------------------------------------------------------------------------------


def dd(body: str, element_id: str) -> str:
    """The text of ``<dd id=...>`` (tags dropped, entities decoded)."""
    m = re.search(rf'<dd id="{element_id}">(.*?)</dd>', body, re.S)
    assert m, f"no <dd id={element_id}> on the page"
    return html.unescape(re.sub(r"<[^>]+>", "", m.group(1)))


@pytest.fixture
def openstack_scan(db):
    return factories.make_scan(factories.make_cluster("openstack-prod"))


def page(client_as, row, role: str = "viewer"):
    return client_as(role).get(reverse("clusters:workload", args=[row.scan.cluster.name, row.pk]))


def test_dns_policy_none_workload_shows_its_own_dns_config(client_as, openstack_scan):
    # Stored as the scan stores it: report and detail from the core audit (plus report["dns_config"]).
    row = factories.make_audited_workload(openstack_scan, "payments/Deployment/fx-rates")
    assert row.report["dns_policy"] == "None" and row.report["risk"] == "safe"
    response = page(client_as, row)
    assert response.status_code == 200
    body = response.content.decode()
    shown = dd(body, "dns-config")
    assert shown.strip() != "none"
    assert "nameservers: 10.96.0.10" in shown
    assert "searches: payments.svc.cluster.local svc.cluster.local cluster.local" in shown
    assert "options: ndots:5" in shown
    assert "{" not in shown and "[" not in shown  # the fields, not a Python repr of the dict
    assert ">None</dd>" in body  # dnsPolicy
    assert "already fixed" in body  # the reason, from the real audit


def test_workload_without_dns_config_says_none(client_as, openstack_scan):
    row = factories.make_audited_workload(openstack_scan, "payments/Deployment/payments-api")
    assert row.report["dns_config"] is None
    body = page(client_as, row).content.decode()
    assert dd(body, "dns-config").strip() == "none"
    # The real audit's traces, resolv.conf and fixes are on the page.
    assert "search payments.svc.cluster.local svc.cluster.local cluster.local openstacklocal" in body
    assert "example.com.openstacklocal" in body and "musl and glibc disagree" in body
    assert "recommended" in body


def test_a_row_stored_before_dns_config_existed_says_so(client_as, openstack_scan):
    row = factories.make_audited_workload(openstack_scan, "payments/Deployment/payments-api")
    del row.report["dns_config"]
    row.content.save(update_fields=["report"])
    response = page(client_as, row)
    assert response.status_code == 200
    assert "not recorded" in dd(response.content.decode(), "dns-config")


def test_a_row_that_does_not_match_the_schema_is_refused_with_the_path(client_as, openstack_scan, caplog):
    row = factories.make_audited_workload(openstack_scan, "payments/Deployment/payments-api")
    row.detail["search_origin"] = [{"domain": "openstacklocal", "origin": "node"}]  # a shape nobody writes
    row.content.save(update_fields=["detail"])
    response = page(client_as, row)
    assert response.status_code == 500
    text = response.content.decode()
    assert "detail.search_origin: got list" in text and "expected dict[str, str]" in text
    assert "detail.search_origin" in caplog.text


def test_every_demo_workload_page_renders(client_as, openstack_scan):
    for w, audit in factories.demo_audits():
        key = f"{w.namespace}/{w.kind}/{w.name}"
        row = factories.make_audited_workload(openstack_scan, key, audited=(w, audit))
        response = page(client_as, row, "operator")
        assert response.status_code == 200, (w.namespace, w.kind, w.name)
        row.delete()


# --- the guard: templates read only declared keys ----------------------------------------------------------


class ExportRow(TypedDict):
    """``w`` in export_report.html: the WorkloadResult with ``recommended_patch`` set by the view."""

    report: WorkloadReport
    detail: WorkloadDetail
    recommended_patch: DetailRemediation | None


#: Per template, the context names (or dotted names) that hold a stored report/detail, or something built
#: from them, and their types. Adding a template that reads a stored row means declaring it here.
ROOTS: dict[str, dict[str, Any]] = {
    "clusters/workload.html": {
        "report": WorkloadReport,
        "detail": WorkloadDetail,
        "w.report": WorkloadReport,
        "w.detail": WorkloadDetail,
        "containers": list[DetailContainer],
        "remediations": list[RemediationRow],
        "simulations": list[SimulationRow],
    },
    "clusters/export_report.html": {"w": ExportRow},
}
#: Names ending in ``report``/``detail`` that are NOT a stored workload row.
NOT_WORKLOAD: dict[str, set[str]] = {
    "clusters/fleet.html": {"row.report"},  # the cluster's last report *scan*
}

UNKNOWN = object()  # a value the guard does not type (model fields, view-built values)
_ROW_NAMES = ("report", "detail")


def _strip_none(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def walk(tp: Any, segments: tuple[str, ...], shown: str) -> tuple[Any, str | None]:
    """The type at ``segments`` under ``tp`` as Django resolves a dotted name; (type, problem or None)."""
    for i, seg in enumerate(segments):
        tp = _strip_none(tp)
        last = i == len(segments) - 1
        here = ".".join([shown, *segments[:i]])
        if tp is UNKNOWN or tp is Any:
            return UNKNOWN, None
        origin = typing.get_origin(tp)
        if typing.is_typeddict(tp):
            fields = schema.typed_fields(tp)
            if seg in fields:
                tp = fields[seg]
                continue
            if last and seg in ("items", "keys", "values"):
                return UNKNOWN, None
            return UNKNOWN, f"{here}.{seg}: {tp.__name__} has no key {seg!r} (keys: {', '.join(fields)})"
        if origin is dict:
            if last and seg in ("items", "keys", "values"):
                return UNKNOWN, None
            tp = typing.get_args(tp)[1]
            continue
        if origin is list:
            if seg.isdigit():
                tp = typing.get_args(tp)[0]
                continue
            return UNKNOWN, f"{here}.{seg}: {here} is a {schema.type_name(tp)}, it has no key {seg!r}"
        if origin is Literal or tp in (str, int, float, bool):
            return UNKNOWN, f"{here}.{seg}: {here} is a {schema.type_name(tp)}, it has no key {seg!r}"
        return UNKNOWN, None
    return tp, None


def _expressions(obj: Any):
    """FilterExpressions directly held by a node's attributes (not inside child nodes)."""
    if isinstance(obj, FilterExpression):
        yield obj
    elif isinstance(obj, TemplateLiteral):
        yield from _expressions(obj.value)
    elif isinstance(obj, TokenBase):
        for part in ("first", "second"):
            yield from _expressions(getattr(obj, part, None))
    elif isinstance(obj, list | tuple):
        for x in obj:
            if not isinstance(x, Node | NodeList):
                yield from _expressions(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _expressions(x)


def _children(obj: Any):
    if isinstance(obj, Node):
        yield obj
    elif isinstance(obj, NodeList):
        yield from obj
    elif isinstance(obj, list | tuple):
        for x in obj:
            yield from _children(x)


def _variables(fe: FilterExpression):
    if isinstance(fe.var, Variable) and fe.var.lookups:
        yield fe.var
    for _func, args in fe.filters:
        for is_var, arg in args:
            if is_var and isinstance(arg, Variable) and arg.lookups:
                yield arg


def template_problems(name: str, source: str, roots: dict[str, Any], not_workload: set[str]) -> list[str]:
    """Every read of an undeclared key of a stored report/detail in ``source`` (a Django template)."""
    nodelist = engines["django"].from_string(source).template.nodelist
    problems: list[str] = []

    def resolve(var: Variable, scope: dict[str, Any]) -> Any:
        lookups = tuple(var.lookups)
        dotted = ".".join(lookups)
        for n in range(len(lookups), 0, -1):  # the longest declared prefix
            prefix = ".".join(lookups[:n])
            if n == 1 and prefix in scope:
                tp = scope[prefix]
            elif prefix in roots and not (n == 1 and lookups[0] in scope):
                tp = roots[prefix]
            else:
                continue
            result, problem = walk(tp, lookups[n:], prefix)
            if problem:
                problems.append(f"{name}: {{{{ {dotted} }}}}: {problem}")
            return result
        for i, seg in enumerate(lookups):
            prefix = ".".join(lookups[: i + 1])
            if seg in _ROW_NAMES and i < len(lookups) - 1 and prefix not in not_workload:
                problems.append(
                    f"{name}: {{{{ {dotted} }}}} reads {prefix} but the guard does not know it: declare it in "
                    "ROOTS (a stored workload report/detail) or NOT_WORKLOAD"
                )
                break
        return UNKNOWN

    def typed(fe: FilterExpression, scope: dict[str, Any]) -> Any:
        tps = [resolve(v, scope) for v in _variables(fe)]
        if not isinstance(fe.var, Variable) or not fe.var.lookups:
            return UNKNOWN
        if any(f.__name__ not in ("as_list", "slice", "dictsort") for f, _ in fe.filters):
            return UNKNOWN
        return tps[0]

    def item_type(tp: Any) -> Any:
        tp = _strip_none(tp)
        return typing.get_args(tp)[0] if typing.get_origin(tp) is list else UNKNOWN

    def visit(node: Node, scope: dict[str, Any]) -> None:
        if isinstance(node, ForNode):
            seq = typed(node.sequence, scope)
            inner = dict(scope)
            for v in node.loopvars:
                inner[v] = item_type(seq) if len(node.loopvars) == 1 else UNKNOWN
            inner["forloop"] = UNKNOWN
            visit_all(node.nodelist_loop, inner)
            visit_all(node.nodelist_empty, scope)
            return
        if isinstance(node, WithNode):
            inner = dict(scope)
            for k, fe in node.extra_context.items():
                inner[k] = typed(fe, scope)
            visit_all(node.nodelist, inner)
            return
        if isinstance(node, IncludeNode):
            return  # the included template is checked on its own
        for key, value in vars(node).items():
            if key in ("token", "origin"):
                continue
            for fe in _expressions(value):
                typed(fe, scope)
            for child in _children(value):
                visit(child, scope)

    def visit_all(nodes, scope):
        for node in nodes:
            visit(node, scope)

    visit_all(nodelist, {})
    return problems


def all_templates() -> list[str]:
    return sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.html"))


def test_the_guard_sees_every_template():
    names = all_templates()
    assert "clusters/workload.html" in names and "clusters/export_report.html" in names
    assert set(ROOTS) | set(NOT_WORKLOAD) <= set(names)


@pytest.mark.parametrize("name", all_templates())
def test_templates_read_only_keys_the_schema_declares(name):
    source = (TEMPLATES / name).read_text()
    assert template_problems(name, source, ROOTS.get(name, {}), NOT_WORKLOAD.get(name, set())) == []


# The guard itself: it must catch what it is for.
WORKLOAD_ROOTS = ROOTS["clusters/workload.html"]


def problems_of(source: str, roots=None) -> list[str]:
    return template_problems("t.html", "{% load dnsaudit %}" + source, roots or WORKLOAD_ROOTS, set())


def test_the_guard_catches_a_key_nobody_writes():
    # Today's key is declared...
    assert problems_of("{% if report.dns_config %}{{ report.dns_config.searches|join:' ' }}{% endif %}") == []

    # ...the same template against the schema without it is caught (the bug of issue #8 item 6a).
    class OldReport(TypedDict):
        namespace: str
        risk: str

    old = problems_of("{% if report.dns_config %}{{ report.dns_config }}{% endif %}", {"report": OldReport})
    assert old and all("report.dns_config: OldReport has no key 'dns_config'" in p for p in old)
    assert problems_of("{{ w.dns_policy|default:report.dnsPolicy }}")  # in a filter argument
    assert problems_of("{% for c in containers %}{{ c.arch }}{% endfor %}")  # through a loop variable
    assert problems_of("{% for e in detail.events %}{{ e.reason }}{% endfor %}")  # events are strings
    assert problems_of("{% if detail.validation.items %}{% endif %}")  # validation is a list
    assert problems_of("{% with res=detail.simulations.0.musl %}{{ res.trace }}{% endwith %}")
    assert problems_of(
        "{% for s in simulations %}{% for side in s.sides %}{{ side.res.nope }}{% endfor %}{% endfor %}"
    )
    assert problems_of("{% risk_badge report.verdict %}")  # a custom tag's argument
    # A template reading a stored row under a name nobody declared.
    assert problems_of("{{ item.report.risk }}", {}) and problems_of("{{ row.detail.events }}", {})
    assert (
        problems_of(
            "{% for r in report.reasons %}{{ r }}{% endfor %}{{ report.dns_config.nameservers.0 }}"
            "{% for o in report.dns_config.options %}{{ o.name }}:{{ o.value }}{% endfor %}"
        )
        == []
    )


def test_the_declared_roots_are_what_the_view_passes(client_as, openstack_scan):
    row = factories.make_audited_workload(openstack_scan, "payments/Deployment/payments-api")
    context = page(client_as, row).context
    for root in WORKLOAD_ROOTS:
        head = root.split(".")[0]
        assert head in context, root
    assert context["w"].pk == row.pk
    assert context["remediations"] and set(context["remediations"][0]) == set(
        schema.typed_fields(RemediationRow)
    )
    sim = context["simulations"][0]
    assert set(sim) == set(schema.typed_fields(SimulationRow))
