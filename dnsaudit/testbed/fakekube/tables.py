"""Server-side printing: ``meta.k8s.io/v1`` Tables, which kubectl requests before falling back to lists.

Only the columns kubectl shows by default for the common kinds; everything else gets Name and Age.
"""

from __future__ import annotations

import datetime as dt
import json

_NAME = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
_AGE = {
    "name": "Age",
    "type": "string",
    "format": "",
    "description": "CreationTimestamp of the object.",
    "priority": 0,
}


def _col(name: str, typ: str = "string", priority: int = 0) -> dict:
    return {"name": name, "type": typ, "format": "", "description": name, "priority": priority}


def wants_table(accept: str) -> bool:
    """kubectl's Accept is ``application/json;as=Table;v=v1;g=meta.k8s.io,application/json;…``."""
    return any("as=Table" in part and "g=meta.k8s.io" in part for part in accept.split(","))


def age(stamp: str | None, now: dt.datetime | None = None) -> str:
    """kubectl-style short duration (``5d``, ``3h``, ``12m``, ``40s``)."""
    if not stamp:
        return "<unknown>"
    created = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    secs = int(((now or dt.datetime.now(dt.UTC)) - created).total_seconds())
    if secs < 0:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size * (2 if unit != "d" else 1):
            return f"{secs // size}{unit}"
    return f"{secs}s"


def _pod_row(o: dict) -> list:
    st = o.get("status", {})
    cs = st.get("containerStatuses") or []
    ready = sum(1 for c in cs if c.get("ready"))
    status = st.get("phase", "Unknown")
    if status == "Succeeded":
        status = "Completed"
    restarts = sum(c.get("restartCount", 0) for c in cs)
    return [
        f"{ready}/{len(o['spec'].get('containers', []))}",
        status,
        restarts,
        st.get("podIP", "<none>"),
        o["spec"].get("nodeName", "<none>"),
    ]


def _node_row(o: dict) -> list:
    conds = {c["type"]: c["status"] for c in o.get("status", {}).get("conditions", [])}
    roles = sorted(
        k.split("/", 1)[1]
        for k in o["metadata"].get("labels", {})
        if k.startswith("node-role.kubernetes.io/")
    )
    return [
        "Ready" if conds.get("Ready") == "True" else "NotReady",
        ",".join(roles) or "<none>",
        o["status"]["nodeInfo"]["kubeletVersion"],
    ]


def _deploy_row(o: dict) -> list:
    s = o.get("status", {})
    return [
        f"{s.get('readyReplicas', 0)}/{o['spec'].get('replicas', 0)}",
        s.get("updatedReplicas", 0),
        s.get("availableReplicas", 0),
    ]


_KINDS = {
    "Pod": (
        [_col("Ready"), _col("Status"), _col("Restarts", "integer")],
        [_col("IP", priority=1), _col("Node", priority=1)],
        _pod_row,
        3,
    ),
    "Node": ([_col("Status"), _col("Roles")], [_col("Version")], _node_row, 2),
    "Deployment": (
        [_col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer")],
        [],
        _deploy_row,
        3,
    ),
}


def table(body: bytes, kind: str, *, is_list: bool) -> bytes:
    """Render a list page (or one object) as a Table with PartialObjectMetadata rows."""
    doc = json.loads(body)
    items = doc.get("items", []) if is_list else [doc]
    before, after, row_fn, split = _KINDS.get(kind, ([], [], None, 0))
    columns = [_NAME, *before, _AGE, *after]
    rows = []
    for o in items:
        extra = row_fn(o) if row_fn else []
        md = o["metadata"]
        cells = [md["name"], *extra[:split], age(md.get("creationTimestamp")), *extra[split:]]
        rows.append(
            {
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": md},
            }
        )
    meta = {"resourceVersion": doc.get("metadata", {}).get("resourceVersion", "")}
    if is_list and doc.get("metadata", {}).get("continue"):
        meta["continue"] = doc["metadata"]["continue"]
        if "remainingItemCount" in doc["metadata"]:
            meta["remainingItemCount"] = doc["metadata"]["remainingItemCount"]
    return json.dumps(
        {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
            "columnDefinitions": columns,
            "rows": rows,
        },
        separators=(",", ":"),
    ).encode()
