"""The tree tells the product from its test equipment: dnsaudit/testbed/ (the test API server, the scripted
DNS server, the demo registry, the image builder) is never imported by the product, except by the `demo`
command, which serves the demo fleet with it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = [ROOT / "dnsaudit" / "core", ROOT / "dnsaudit" / "boundary", ROOT / "clusters"]
ALLOWED = {ROOT / "clusters" / "management" / "commands" / "demo.py"}


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_the_product_never_imports_the_test_equipment():
    offenders = {}
    files = [p for d in PRODUCT for p in d.rglob("*.py")] + [p for p in (ROOT / "dnsaudit").glob("*.py")]
    assert len(files) > 50
    for path in files:
        if path in ALLOWED:
            continue
        bad = sorted(m for m in imports(path) if m.startswith("dnsaudit.testbed"))
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_the_demo_command_is_the_one_place_that_does():
    (demo,) = ALLOWED
    assert any(m.startswith("dnsaudit.testbed.fakekube") for m in imports(demo))


def test_no_test_equipment_is_left_beside_the_product():
    top = {p.name for p in (ROOT / "dnsaudit").iterdir()}
    assert not top & {"fakekube", "fakedns.py", "demoregistry.py", "imagebuild.py"}
    assert (ROOT / "dnsaudit" / "testbed" / "fakekube" / "server.py").exists()
