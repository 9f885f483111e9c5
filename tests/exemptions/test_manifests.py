"""``audit-manifests`` reads the exemption annotation: the workload keeps its risk, carries ``exemption`` in
JSON (a SARIF suppression, a table mark) and never fails ``--fail-on``; an expired or malformed annotation
does not exempt anything and says why."""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.audit.helpers import run

ROOT = Path(__file__).resolve().parents[2]
FUTURE = (date.today() + timedelta(days=30)).isoformat()
PAST = (date.today() - timedelta(days=1)).isoformat()


def deployment(name: str, annotations: dict | None = None, template_annotations: dict | None = None) -> str:
    meta = {"name": name, "namespace": "shop", **({"annotations": annotations} if annotations else {})}
    template: dict = {"spec": {"containers": [{"name": "app", "image": "python:3.12-alpine"}]}}
    if template_annotations:
        template["metadata"] = {"annotations": template_annotations}
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {"template": template}}
    return json.dumps(doc)


def audit(tmp_path, *docs: str, fmt: str = "json", fail_on: str = "affected") -> tuple[int, str, str]:
    (tmp_path / "node.conf").write_text("search openstacklocal\nnameserver 10.0.0.2\n")
    folder = tmp_path / "manifests"
    folder.mkdir(exist_ok=True)
    for i, d in enumerate(docs):
        (folder / f"{i}.json").write_text(d)
    p = run(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "audit-manifests",
            str(folder),
            "--node-resolv-conf",
            str(tmp_path / "node.conf"),
            "--domain-answer",
            "openstacklocal=SERVFAIL",
            "--format",
            fmt,
            "--fail-on",
            fail_on,
        ],
        cwd=str(ROOT),
    )
    return p.returncode, p.stdout, p.stderr


@pytest.mark.parametrize("where", ["workload", "template"])
def test_an_exempted_affected_workload_keeps_its_risk_and_does_not_fail_the_gate(tmp_path, where):
    ann = {"dnsaudit.io/exempt": "accepted until the glibc image ships", "dnsaudit.io/exempt-until": FUTURE}
    doc = deployment("web", ann) if where == "workload" else deployment("web", None, ann)
    code, out, err = audit(tmp_path, doc)
    assert code == 0, err
    (w,) = json.loads(out)["workloads"]
    assert w["risk"] == "affected"
    assert w["exemption"] == {
        "reason": "accepted until the glibc image ships",
        "source": "annotation",
        "by": None,
        "expires": FUTURE,
        "id": None,
    }
    # --fail-on at-risk ignores it too.
    assert audit(tmp_path, doc, fail_on="at-risk")[0] == 0


def test_the_same_workload_without_the_annotation_fails_the_gate(tmp_path):
    code, out, _ = audit(tmp_path, deployment("web"))
    assert code == 1
    assert "exemption" not in json.loads(out)["workloads"][0]


def test_one_unexempted_workload_still_fails_the_gate(tmp_path):
    exempted = deployment("web", {"dnsaudit.io/exempt": "known"})
    code, out, _ = audit(tmp_path, exempted, deployment("api"))
    assert code == 1
    by_name = {w["name"]: w for w in json.loads(out)["workloads"]}
    assert "exemption" in by_name["web"] and "exemption" not in by_name["api"]


@pytest.mark.parametrize(
    "until, said",
    [(PAST, f"expired on {PAST}"), ("31/12/2099", "is not a date (YYYY-MM-DD)")],
)
def test_an_expired_or_malformed_annotation_exempts_nothing_and_says_why(tmp_path, until, said):
    code, out, _ = audit(
        tmp_path, deployment("web", {"dnsaudit.io/exempt": "known", "dnsaudit.io/exempt-until": until})
    )
    assert code == 1
    (w,) = json.loads(out)["workloads"]
    assert "exemption" not in w and w["risk"] == "affected"
    assert any(said in r for r in w["reasons"])


def test_sarif_suppresses_and_the_table_marks_exempted_workloads(tmp_path):
    doc = deployment("web", {"dnsaudit.io/exempt": "tracked in JIRA-12"})
    code, out, _ = audit(tmp_path, doc, fmt="sarif")
    assert code == 0
    (result,) = json.loads(out)["runs"][0]["results"]
    assert result["level"] == "error"  # the finding stays
    assert result["suppressions"] == [{"kind": "inSource", "justification": "tracked in JIRA-12"}]
    code, out, _ = audit(tmp_path, doc, fmt="table")
    assert code == 0
    assert "affected (exempted)" in out
    assert "exempted (annotation): tracked in JIRA-12" in out
