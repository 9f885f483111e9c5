"""The ONE schema of a stored workload result: the shared ``report`` and the workload page's ``detail``.

:func:`dnsaudit.core.audit.audit_workload` writes both; the scan checks them when it saves a row
(:func:`check_report`, :func:`check_detail`); the workload page, the exports and the API read them as
these types. A key nobody declares here cannot be written (unknown keys are errors, in the report and in
the detail), and a template that reads a key nobody declares fails ``tests/web/test_workload_page.py``.

Adding a key: declare it here first. A key added after rows were already stored is ``NotRequired``
(old rows lack it; readers must handle its absence), and when the audit always writes it from now on, list
it in :data:`REPORT_SAVING_REQUIRED` / :data:`DETAIL_SAVING_REQUIRED` so that the save stage
(``check_report(report, saving=True)``) refuses a fresh report without it.

The checks are plain dict/list/type tests compiled once from the TypedDicts (no jsonschema): about
10 µs per report, well under a second for a 50,000-workload scan. Values are JSON types (``float``
accepts an ``int``; ``bool`` is never an ``int``).

Pure: no Django, network or client imports. (No ``from __future__ import annotations`` on purpose: the
TypedDicts are introspected at import time.)
"""

import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal, NotRequired, TypedDict, Union

# --- value sets -----------------------------------------------------------------------------------------

Risk = Literal["affected", "at-risk", "safe", "unknown"]
Libc = Literal["musl", "glibc", "static", "unknown"]
Confidence = Literal["confirmed", "inferred"]
#: ``Remedy.kind`` (dnsaudit.core.remediation).
RemedyKind = Literal["dnsConfig", "kubelet", "kyverno", "coredns", "base-image"]
Recommended = Literal["dnsConfig", "kubelet", "kyverno", "coredns", "base-image", "none"]
#: ``NodePool.node_resolv_conf_source`` (dnsaudit.core.model.NODE_FILE_SOURCES).
NodeFileSource = Literal["observed", "entered", "inferred", "unknown"]

# --- the report (shared schema: audit-manifests --format json, report --format json, exports, API) ------


class ReportContainer(TypedDict):
    name: str
    image: str
    libc: Libc
    musl_version: str | None
    confidence: Confidence
    digest: str | None


class ResolvConfLists(TypedDict):
    """The pod's effective resolv.conf as three lists; options as ``name[:value]`` strings."""

    nameservers: list[str]
    searches: list[str]
    options: list[str]


class ReportRemediation(TypedDict):
    recommended: Recommended
    alternatives: list[RemedyKind]
    why: str
    #: ``audit-manifests --format json`` only: the workload patch (strategic merge, with apiVersion, kind and
    #: metadata) that fixes this workload by itself — the recommended fix when ``recommended`` is
    #: ``dnsConfig``, else the per-workload alternative to the recommended cluster-level fix.
    patch: NotRequired[dict[str, Any]]


class DnsConfigOption(TypedDict):
    name: str
    value: NotRequired[str]


class DnsConfig(TypedDict, total=False):
    """``pod.spec.dnsConfig`` as written in the workload's pod template (API shape; absent lists omitted)."""

    nameservers: list[str]
    searches: list[str]
    options: list[DnsConfigOption]


class ReportExecVerification(TypedDict):
    """The summary of :class:`ExecFinding` kept in the report (the finding itself is in the detail)."""

    pod: str
    matches: bool | None
    libc_confirmed: bool | None
    error: str | None


class ReportExemption(TypedDict):
    """Why a workload is exempted (``dnsaudit.core.exemptions``): it keeps its risk and is shown apart."""

    reason: str
    source: Literal["annotation", "dnsaudit"]
    by: str | None  # who entered it in dnsaudit; None for an annotation
    expires: str | None  # YYYY-MM-DD, the last day it applies; None: no expiry
    id: int | None  # the dnsaudit exemption's id; None for an annotation


class WorkloadReport(TypedDict):
    """One workload in the shared report schema (README "Report schema")."""

    namespace: str
    kind: str
    name: str
    containers: list[ReportContainer]
    dns_policy: str  # as written (an invalid value is reported, not rejected)
    host_network: bool
    resolv_conf: ResolvConfLists
    risk: Risk
    reasons: list[str]
    remediation: ReportRemediation
    node_pool: str
    affected_names: list[str]
    #: The workload's own pod-level dnsConfig (None: it has none). Absent in rows stored before it existed.
    dns_config: NotRequired[DnsConfig | None]
    #: Where the node pool's resolv.conf came from.
    node_resolv_conf_source: NotRequired[NodeFileSource]
    #: Whether the pod's resolv.conf takes anything from the node's file.
    inherits_node_file: NotRequired[bool]
    #: Only when the cluster's exec verification checked a running pod of the workload.
    exec_verification: NotRequired[ReportExecVerification]
    #: Only while an exemption applies (an annotation, or one entered in dnsaudit). The scan keeps it out of
    #: the stored report (``WorkloadResult.exemption``) and the readers merge it back.
    exemption: NotRequired[ReportExemption]


# --- the detail (the workload page) ---------------------------------------------------------------------


class Query(TypedDict):
    name: str
    type: Literal["A", "AAAA"]
    server: str
    answer: str  # Answer.label: "NXDOMAIN", "NODATA", "SERVFAIL", "no reply", "records 1.2.3.4", ...
    transport: Literal["udp", "tcp"]


class Resolution(TypedDict):
    """``dnsaudit.core.model.Resolution.to_dict()``."""

    libc: Literal["musl", "glibc"]
    name: str
    ok: bool
    error: str | None
    addresses: list[str]
    queries: list[Query]
    candidates: list[str]
    stopped_at: str | None
    elapsed: float
    explanation: str
    version: str | None


class Simulation(TypedDict):
    name: str
    musl_version: str
    musl: Resolution
    glibc: Resolution
    #: Only when a search domain was not probed: the pessimistic run assuming it answers NODATA.
    assumed_nodata: NotRequired[list[str]]
    musl_if_nodata: NotRequired[Resolution]
    glibc_if_nodata: NotRequired[Resolution]


class DetailContainer(TypedDict):
    """``{"name", "image", **LibcVerdict.to_dict()}``."""

    name: str
    image: str
    libc: Libc
    musl_version: str | None
    os_id: str | None
    os_version: str | None
    evidence: list[str]
    confidence: Confidence
    digest: str | None
    platform: str | None


class DetailRemediation(TypedDict):
    """``dnsaudit.core.remediation.Remedy.to_dict()``."""

    kind: RemedyKind
    title: str
    why: str
    tradeoffs: list[str]
    recommended: bool
    patch_yaml: str
    kubectl: str
    kustomize: str
    extra_files: dict[str, str]
    checked: bool
    problems: list[str]


class Validation(TypedDict):
    kind: RemedyKind
    checked: bool
    problems: list[str]


class ResolvDifference(TypedDict):
    """``dnsaudit.core.verify.resolv_differences`` items (expected/observed: lists, numbers or booleans)."""

    field: str
    expected: Any
    observed: Any
    message: str


class ExecFinding(TypedDict):
    """``dnsaudit.core.verify.build_finding``."""

    namespace: str
    kind: str
    name: str
    pod: str
    container: str | None
    observed_resolv_conf: str | None
    matches: bool | None
    differences: list[ResolvDifference]
    musl_loader: str | None
    libc_confirmed: bool | None
    error: str | None


class WorkloadDetail(TypedDict):
    """What the workload page shows besides the report."""

    resolv_conf_text: str
    search_origin: dict[str, str]  # search domain -> origin (cluster, node, dnsConfig, kubelet)
    nameserver_origin: dict[str, str]
    events: list[str]  # "Reason: message"
    error: str | None  # the kubelet would fail the sandbox
    simulations: list[Simulation]
    containers: list[DetailContainer]
    remediations: list[DetailRemediation]
    validation: list[Validation]
    assumed: list[str]
    exec_verification: NotRequired[ExecFinding]


# --- key lists ------------------------------------------------------------------------------------------

REPORT_KEYS: tuple[str, ...] = tuple(WorkloadReport.__annotations__)
REPORT_REQUIRED_KEYS: frozenset[str] = WorkloadReport.__required_keys__
REPORT_OPTIONAL_KEYS: frozenset[str] = WorkloadReport.__optional_keys__
DETAIL_KEYS: tuple[str, ...] = tuple(WorkloadDetail.__annotations__)
DETAIL_REQUIRED_KEYS: frozenset[str] = WorkloadDetail.__required_keys__
DETAIL_OPTIONAL_KEYS: frozenset[str] = WorkloadDetail.__optional_keys__

#: Optional only because rows stored before they existed lack them: the audit writes them on every
#: report now, so the save stage (``saving=True``) requires them.
REPORT_SAVING_REQUIRED: frozenset[str] = frozenset({"dns_config"})
DETAIL_SAVING_REQUIRED: frozenset[str] = frozenset()


def typed_fields(td: type) -> dict[str, Any]:
    """``{key: type}`` of a TypedDict of this module (e.g. for walking a template's ``report.a.b``)."""
    return dict(typing.get_type_hints(td))


# --- checking -------------------------------------------------------------------------------------------


class SchemaError(ValueError):
    """A stored report/detail does not have the declared shape. ``path`` is e.g. ``report.containers[0].libc``."""

    def __init__(self, path: str, problem: str, expected: str) -> None:
        self.path = path
        self.problem = problem
        self.expected = expected
        super().__init__(f"{path}: {problem} (expected {expected})")


class _Fail(Exception):
    """Raised inside the compiled checkers; ``parts`` collects the path innermost first."""

    def __init__(self, part: str | int | None, problem: str, expected: str) -> None:
        self.parts: list[str | int] = [] if part is None else [part]
        self.problem = problem
        self.expected = expected


def type_name(tp: Any) -> str:
    """``list[str]``, ``str | None``, ``'safe' | 'at-risk'``, ``ReportContainer``..."""
    if tp is type(None) or tp is None:
        return "null"
    if tp is Any:
        return "any"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list[{type_name(typing.get_args(tp)[0])}]"
    if origin is dict:
        k, v = typing.get_args(tp)
        return f"dict[{type_name(k)}, {type_name(v)}]"
    return getattr(tp, "__name__", str(tp))


def _got(v: Any) -> str:
    text = repr(v)
    return f"got {type(v).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


Checker = Callable[[Any], None]

_SCALARS: dict[Any, tuple[type, ...]] = {
    str: (str,),
    bool: (bool,),
    int: (int,),
    float: (float, int),
    type(None): (type(None),),
}


def _compile(tp: Any, saving_required: frozenset[str] = frozenset()) -> Checker:
    expected = type_name(tp)
    if tp is Any:
        return lambda v: None
    if tp in _SCALARS:
        allowed = _SCALARS[tp]

        def scalar(v: Any) -> None:
            if type(v) not in allowed:
                raise _Fail(None, _got(v), expected)

        return scalar
    origin = typing.get_origin(tp)
    if origin is Literal:
        values = frozenset(typing.get_args(tp))
        kinds = frozenset(type(a) for a in values)

        def literal(v: Any) -> None:
            if type(v) not in kinds or v not in values:
                raise _Fail(None, _got(v), expected)

        return literal
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        nullable = type(None) in args
        rest = [_compile(a) for a in args if a is not type(None)]
        if len(rest) == 1:
            inner = rest[0]

            def optional(v: Any) -> None:
                if v is None and nullable:
                    return
                try:
                    inner(v)
                except _Fail as f:
                    if f.parts:  # wrong inside the value: report the inner path
                        raise
                    raise _Fail(None, _got(v), expected) from None

            return optional

        def union(v: Any) -> None:
            if v is None and nullable:
                return
            for c in rest:
                try:
                    c(v)
                    return
                except _Fail:
                    pass
            raise _Fail(None, _got(v), expected)

        return union
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if item_tp in _SCALARS:
            item_types = _SCALARS[item_tp]
            item_name = type_name(item_tp)

            def scalar_list(v: Any) -> None:
                if type(v) is not list:
                    raise _Fail(None, _got(v), expected)
                for x in v:
                    if type(x) not in item_types:
                        i = next(i for i, y in enumerate(v) if type(y) not in item_types)
                        raise _Fail(i, _got(x), item_name)

            return scalar_list
        item = _compile(item_tp)

        def list_of(v: Any) -> None:
            if type(v) is not list:
                raise _Fail(None, _got(v), expected)
            for i, x in enumerate(v):
                try:
                    item(x)
                except _Fail as f:
                    f.parts.append(i)
                    raise

        return list_of
    if origin is dict:
        _key_tp, value_tp = typing.get_args(tp)
        value = _compile(value_tp)

        def dict_of(v: Any) -> None:
            if type(v) is not dict:
                raise _Fail(None, _got(v), expected)
            for k, x in v.items():
                if type(k) is not str:
                    raise _Fail(str(k), f"key {_got(k)}", "str keys")
                try:
                    value(x)
                except _Fail as f:
                    f.parts.append(k)
                    raise

        return dict_of
    if typing.is_typeddict(tp):
        hints = typing.get_type_hints(tp)
        fields = {k: _compile(t) for k, t in hints.items()}
        required = tuple(k for k in hints if k in tp.__required_keys__ or k in saving_required)
        required_set = frozenset(required)
        name = tp.__name__

        def typed(v: Any) -> None:
            if type(v) is not dict:
                raise _Fail(None, _got(v), name)
            if not required_set.issubset(v):
                k = next(k for k in required if k not in v)
                raise _Fail(k, "missing", type_name(hints[k]))
            for k, x in v.items():
                c = fields.get(k)
                if c is None:
                    raise _Fail(
                        k if type(k) is str else repr(k),
                        f"unknown key (not in {name}: declare it in dnsaudit/core/schema.py)",
                        "one of " + ", ".join(hints),
                    )
                try:
                    c(x)
                except _Fail as f:
                    f.parts.append(k)
                    raise

        return typed
    raise TypeError(f"schema: unsupported type {tp!r}")


def _path(root: str, parts: Sequence[str | int]) -> str:
    out = root
    for p in reversed(parts):
        out += f"[{p}]" if type(p) is int else f".{p}"
    return out


def _checker(td: type, root: str, saving_required: frozenset[str] = frozenset()) -> Callable[[Any], None]:
    c = _compile(td, saving_required)

    def check(d: Any) -> None:
        try:
            c(d)
        except _Fail as f:
            raise SchemaError(_path(root, f.parts), f.problem, f.expected) from None

    return check


_check_exemption = _checker(ReportExemption, "report.exemption")
_check_report = _checker(WorkloadReport, "report")
_check_report_saving = _checker(WorkloadReport, "report", REPORT_SAVING_REQUIRED)
_check_detail = _checker(WorkloadDetail, "detail")
_check_detail_saving = _checker(WorkloadDetail, "detail", DETAIL_SAVING_REQUIRED)


def check_report(d: Any, *, saving: bool = False) -> None:
    """Raise :class:`SchemaError` unless ``d`` is a :class:`WorkloadReport` (missing, wrong and unknown keys).

    ``saving=True`` (the scan's save stage, ``audit-manifests``): also require the keys of
    :data:`REPORT_SAVING_REQUIRED`, which only rows stored before they existed may lack.
    """
    (_check_report_saving if saving else _check_report)(d)


def check_exemption(d: Any) -> None:
    """Raise :class:`SchemaError` unless ``d`` is a :class:`ReportExemption` (a report's ``exemption``)."""
    _check_exemption(d)


def check_detail(d: Any, *, saving: bool = False) -> None:
    """Raise :class:`SchemaError` unless ``d`` is a :class:`WorkloadDetail` (see :func:`check_report`)."""
    (_check_detail_saving if saving else _check_detail)(d)


def checked(report: Any, detail: Any) -> tuple[WorkloadReport, WorkloadDetail]:
    """``(report, detail)`` of a stored row, typed, after :func:`check_report` and :func:`check_detail`."""
    check_report(report)
    check_detail(detail)
    return typing.cast(WorkloadReport, report), typing.cast(WorkloadDetail, detail)
