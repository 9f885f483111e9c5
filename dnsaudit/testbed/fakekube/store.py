"""The object store behind the test API server: pre-serialised objects, selectors, paginated lists.

Every object is serialised once when it is stored (apiserver JSON: built-in list items without
``kind``/``apiVersion``), so a 50,000-pod list is a matter of joining byte strings. Keys are sorted
``(namespace, name)`` tuples, the order a real apiserver lists in.

Continue tokens look like the apiserver's: base64url (no padding) of
``{"v":"meta.k8s.io/v1","rv":<int>,"start":"<ns>/<name>\\u0000"}``. They are opaque to clients (T6).
"""

from __future__ import annotations

import base64
import bisect
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dnsaudit.testbed.fakekube.types import BUILTIN_TYPES, ResourceType, types_from_crd

DEFAULT_CREATION = "2026-01-05T09:00:00Z"


class StoreError(Exception):
    """A request the store refuses; ``code``/``reason`` become the Status body."""

    def __init__(self, code: int, reason: str, message: str, extra: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.extra = extra or {}


# --- selectors -------------------------------------------------------------------------------------

_REQ_SET = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_REQ_EQ = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")
_REQ_EXISTS = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*$")


def _split_selector(text: str) -> list[str]:
    """Split on commas that are not inside ``( … )`` sets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str) -> Callable[[dict], bool]:
    """Compile a label selector (``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``) to a predicate."""
    checks: list[Callable[[dict], bool]] = []
    for req in _split_selector(text):
        if m := _REQ_SET.match(req):
            key, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in":
                checks.append(lambda lab, k=key, vs=vals: lab.get(k) in vs)
            else:
                checks.append(lambda lab, k=key, vs=vals: lab.get(k) not in vs)
        elif m := _REQ_EQ.match(req):
            key, op, val = m.groups()
            if op == "!=":
                checks.append(lambda lab, k=key, v=val: lab.get(k) != v)
            else:
                checks.append(lambda lab, k=key, v=val: lab.get(k) == v)
        elif m := _REQ_EXISTS.match(req):
            neg, key = m.groups()
            if neg:
                checks.append(lambda lab, k=key: k not in lab)
            else:
                checks.append(lambda lab, k=key: k in lab)
        else:
            raise StoreError(400, "BadRequest", f"unable to parse requirement: {req.strip()!r}")
    return lambda labels: all(c(labels) for c in checks)


def parse_field_selector(text: str, rtype: ResourceType) -> Callable[[dict], bool]:
    """Compile a field selector (``=``, ``==``, ``!=``); unsupported fields are a 400 like the apiserver's."""
    allowed = {"metadata.name", "metadata.namespace", *rtype.fields}
    checks: list[Callable[[dict], bool]] = []
    for req in _split_selector(text):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", req)
        if not m:
            raise StoreError(400, "BadRequest", f"invalid selector: '{text}'; can't understand '{req}'")
        key, op, val = m.groups()
        if key not in allowed:
            raise StoreError(
                400,
                "BadRequest",
                f'Unable to find "{rtype.group}/{rtype.version}, Resource={rtype.resource}" that match label '
                f'selector "", field selector "{text}": "{key}" is not a known field selector: only "'
                + '", "'.join(sorted(allowed))
                + '"',
            )
        if op == "!=":
            checks.append(lambda f, k=key, v=val: f.get(k, "") != v)
        else:
            checks.append(lambda f, k=key, v=val: f.get(k, "") == v)
    return lambda fields: all(c(fields) for c in checks)


def _dig(obj: dict, dotted: str) -> str:
    cur: object = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


# --- tokens --------------------------------------------------------------------------------------------


def encode_continue(rv: int, start: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        return int(data["rv"]), str(data["start"])
    except Exception as exc:
        raise StoreError(400, "BadRequest", f"continue key is not valid: {exc}") from exc


# --- store -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Entry:
    namespace: str
    name: str
    labels: dict
    fields: dict
    body: bytes  # JSON without kind/apiVersion for built-ins (list-item form)
    prefix: bytes  # b'{"kind":…,"apiVersion":…,' for built-ins (shared per type), b"" for custom resources

    @property
    def get_body(self) -> bytes:
        """The single-object form (``kind``/``apiVersion`` first), built on demand to halve memory."""
        if not self.prefix:
            return self.body
        if self.body == b"{}":
            return self.prefix[:-1] + b"}"
        return self.prefix + self.body[1:]


class _Table:
    __slots__ = ("entries", "keys", "rtype")

    def __init__(self, rtype: ResourceType) -> None:
        self.rtype = rtype
        self.keys: list[tuple[str, str]] = []
        self.entries: dict[tuple[str, str], Entry] = {}


def _serialise(obj: dict, rtype: ResourceType) -> tuple[bytes, bytes]:
    """(list-item JSON, prefix that turns it into the single-object form)."""
    rest = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
    if rtype.builtin:
        return json.dumps(rest, separators=(",", ":")).encode(), _prefix(rtype)
    head = {"kind": rtype.kind, "apiVersion": rtype.group_version}
    return json.dumps({**head, **rest}, separators=(",", ":")).encode(), b""


_PREFIXES: dict[tuple[str, str], bytes] = {}


def _prefix(rtype: ResourceType) -> bytes:
    key = (rtype.kind, rtype.group_version)
    if key not in _PREFIXES:
        _PREFIXES[key] = (
            json.dumps(
                {"kind": rtype.kind, "apiVersion": rtype.group_version}, separators=(",", ":")
            ).encode()[:-1]
            + b","
        )
    return _PREFIXES[key]


class Store:
    """All objects of one cluster. Thread-safe: readers take a snapshot of the table under the lock."""

    def __init__(self, cluster: str = "") -> None:
        self.cluster = cluster
        self._lock = threading.RLock()
        self.rv = 1000  # the etcd revision
        self.compacted = 0
        self.types: dict[tuple[str, str, str], ResourceType] = {}
        self._kinds: dict[tuple[str, str], ResourceType] = {}
        self._tables: dict[tuple[str, str, str], _Table] = {}
        self.reset(())

    # -- types -----------------------------------------------------------------------------------------
    def _register(self, rtype: ResourceType) -> None:
        key = (rtype.group, rtype.version, rtype.resource)
        self.types[key] = rtype
        self._kinds[(rtype.group_version, rtype.kind)] = rtype
        self._tables.setdefault(key, _Table(rtype))

    def lookup(self, group: str, version: str, resource: str) -> ResourceType | None:
        return self.types.get((group, version, resource))

    def groups(self) -> dict[str, list[str]]:
        """Served API groups (``""`` = core) → versions."""
        out: dict[str, list[str]] = {}
        for g, v, _r in self.types:
            out.setdefault(g, [])
            if v not in out[g]:
                out[g].append(v)
        return out

    # -- writes ----------------------------------------------------------------------------------------
    def reset(self, objects: Iterable[dict]) -> None:
        """Replace every object. Resource versions keep increasing (tokens from before stay decodable)."""
        with self._lock:
            self.types, self._kinds, self._tables = {}, {}, {}
            for t in BUILTIN_TYPES:
                self._register(t)
            self.add(objects)

    def add(self, objects: Iterable[dict]) -> None:
        """Create or replace objects (each a full manifest dict with ``apiVersion`` and ``kind``)."""
        with self._lock:
            pending: list[dict] = []
            for obj in objects:
                if obj.get("kind") == "CustomResourceDefinition":
                    for t in types_from_crd(obj):
                        self._register(t)
                pending.append(obj)
            touched: set[tuple[str, str, str]] = set()
            for obj in pending:
                touched.add(self._put(obj))
            for key in touched:
                table = self._tables[key]
                table.keys = sorted(table.entries)

    def _put(self, obj: dict) -> tuple[str, str, str]:
        rtype = self._kinds.get((obj.get("apiVersion", ""), obj.get("kind", "")))
        if rtype is None:
            raise ValueError(
                f"unknown type {obj.get('apiVersion')}/{obj.get('kind')} (install its CRD first)"
            )
        meta = obj.setdefault("metadata", {})
        name = meta["name"]
        ns = ""
        if rtype.namespaced:
            ns = meta.setdefault("namespace", "default")
        else:
            meta.pop("namespace", None)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        meta.setdefault(
            "uid", str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.cluster}/{rtype.resource}/{ns}/{name}"))
        )
        meta.setdefault("creationTimestamp", DEFAULT_CREATION)
        fields = {"metadata.name": name, "metadata.namespace": ns}
        for f in rtype.fields:
            fields[f] = _dig(obj, f)
        body, prefix = _serialise(obj, rtype)
        table = self._tables[(rtype.group, rtype.version, rtype.resource)]
        table.entries[(ns, name)] = Entry(ns, name, dict(meta.get("labels") or {}), fields, body, prefix)
        return (rtype.group, rtype.version, rtype.resource)

    def delete(self, rtype: ResourceType, namespace: str, name: str) -> bool:
        with self._lock:
            table = self._tables[(rtype.group, rtype.version, rtype.resource)]
            if table.entries.pop((namespace, name), None) is None:
                return False
            table.keys = sorted(table.entries)
            self.rv += 1
            return True

    def compact(self) -> None:
        """Compact history at the current revision: every continue token issued so far expires (410)."""
        with self._lock:
            self.rv += 1
            self.compacted = self.rv

    # -- reads -------------------------------------------------------------------------------------------
    def get(self, rtype: ResourceType, namespace: str, name: str) -> Entry | None:
        with self._lock:
            return self._tables[(rtype.group, rtype.version, rtype.resource)].entries.get((namespace, name))

    def list(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        limit: int = 0,
        continue_token: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_cap: int | None = None,
    ) -> bytes:
        """A serialised ``<Kind>List`` page. ``page_cap`` makes the page shorter than ``limit`` (T6)."""
        lab = parse_label_selector(label_selector) if label_selector else None
        fld = parse_field_selector(field_selector, rtype) if field_selector else None
        with self._lock:
            table = self._tables[(rtype.group, rtype.version, rtype.resource)]
            keys, entries, rv, compacted = table.keys, table.entries, self.rv, self.compacted
        if namespace is not None and rtype.namespaced:
            lo = bisect.bisect_left(keys, (namespace, ""))
            hi = bisect.bisect_left(keys, (namespace + "\x00", ""))
        else:
            lo, hi = 0, len(keys)
        list_rv = rv
        if continue_token:
            token_rv, start = decode_continue(continue_token)
            if token_rv < compacted:
                inconsistent = encode_continue(rv, start)
                raise StoreError(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can "
                    "start a new list without the continue parameter, or use the continue token in this "
                    "response to retrieve the remainder of the results. Continuing with the provided token "
                    "results in an inconsistent list - objects that were created, modified, or deleted "
                    "between the time the first chunk was returned and now may show up in the list.",
                    {"metadata": {"continue": inconsistent}},
                )
            ns_part, _, name_part = start.rstrip("\x00").partition("/")
            lo = max(lo, bisect.bisect_right(keys, (ns_part, name_part)))
            list_rv = token_rv
        want = limit if limit and limit > 0 else None
        if want is not None and page_cap is not None:
            want = max(0, min(want, page_cap))
        items: list[bytes] = []
        i = lo
        last_key: tuple[str, str] | None = None
        filtered = lab is not None or fld is not None
        while i < hi:
            if want is not None and len(items) >= want:
                break
            e = entries.get(keys[i])
            i += 1
            if e is None:
                continue
            if lab is not None and not lab(e.labels):
                continue
            if fld is not None and not fld(e.fields):
                continue
            items.append(e.body)
            last_key = keys[i - 1]
        more = False
        if want is not None and i < hi:
            if filtered:
                for j in range(i, hi):
                    e = entries.get(keys[j])
                    if e and (lab is None or lab(e.labels)) and (fld is None or fld(e.fields)):
                        more = True
                        break
            else:
                more = True
        meta: dict = {"resourceVersion": str(list_rv)}
        if more:
            if last_key is None:  # an empty page that still has a continuation (T6)
                last_key = keys[i - 1] if i > lo else (keys[lo - 1] if lo > 0 else ("", ""))
            meta["continue"] = encode_continue(list_rv, f"{last_key[0]}/{last_key[1]}\x00")
            if not filtered:
                meta["remainingItemCount"] = hi - i
        head = json.dumps(
            {"kind": rtype.list_kind, "apiVersion": rtype.group_version, "metadata": meta},
            separators=(",", ":"),
        ).encode()
        return head[:-1] + b',"items":[' + b",".join(items) + b"]}"
