"""The scan package's shape: no import cycle among ``clusters.scan.*`` and ``clusters.tasks``, and no
stage that reaches the lifecycle.

Imports are read from the source (every ``import`` in the module, function-local ones included), so a
late import that only runs at dispatch time counts as much as one at the top of the file. An import
names its target exactly: ``from .progress import X`` is an edge to ``clusters.scan.progress``,
``from clusters.scan import X`` an edge to the package itself (whose ``__init__`` imports the lifecycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCAN = ROOT / "clusters" / "scan"
LIFECYCLE = "clusters.scan.lifecycle"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {module_name(p): p for p in SCAN.rglob("*.py")}
    found["clusters.tasks"] = ROOT / "clusters" / "tasks.py"
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``name`` imports, anywhere in its source (function-local too).

    ``from X import y`` is an edge to ``X.y`` when that is a module, else to ``X`` (whose code then runs).
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
    return (out & known) - {name}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_graph_sees_the_imports_it_must():
    """The walk finds top-level, relative and function-local imports (else an empty graph would pass)."""
    graph = import_graph()
    assert {"clusters.scan.lifecycle", "clusters.scan.pipeline", "clusters.scan.progress"} <= graph.keys()
    assert "clusters.scan.stages.verification" in graph
    assert "clusters.scan" in graph["clusters.tasks"]
    assert "clusters.scan.pipeline" in graph[LIFECYCLE]
    assert "clusters.scan.stages.images" in graph["clusters.scan.pipeline"]
    assert "clusters.scan.progress" in graph["clusters.scan.stages.listing"]
    assert "clusters.scan.lifecycle" in graph["clusters.scan"]
    # Function-local: save's ScanResult import sits under TYPE_CHECKING, still counted.
    assert "clusters.scan.pipeline" in graph["clusters.scan.stages.save"]


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_among_the_scan_package_and_the_tasks():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("stage", sorted(m for m in modules() if m.startswith("clusters.scan.stages")))
def test_no_stage_reaches_the_lifecycle(stage):
    graph = import_graph()
    assert LIFECYCLE not in graph[stage], f"{stage} imports the lifecycle"
    forbidden = {LIFECYCLE, "clusters.scan", "clusters.scan.schedule", "clusters.tasks"}
    assert not reachable(graph, stage) & forbidden, f"{stage} reaches {reachable(graph, stage) & forbidden}"


def test_dispatch_sends_the_task_declared_in_tasks_with_its_options(settings, monkeypatch):
    """``dispatch`` names the task instead of importing it: the name must be the declared one, and the
    message must carry what ``run_scan.delay`` put in it (time limits, ignore_result)."""
    from clusters.scan import dispatch, lifecycle
    from clusters.tasks import run_scan
    from dnsaudit.celery import app

    assert run_scan.name == lifecycle.RUN_SCAN_TASK
    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, **kw: sent.append((name, kw)))
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    dispatch(42)
    assert sent == [
        (
            run_scan.name,
            {
                "args": (42,),
                "ignore_result": run_scan.ignore_result,
                "soft_time_limit": run_scan.soft_time_limit,
                "time_limit": run_scan.time_limit,
            },
        )
    ]
