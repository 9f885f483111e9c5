"""``manage.py audit-manifests``: formats, exit codes, bad input, and the loader underneath."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dnsaudit.core import manifests
from tests.audit.helpers import SEED_NODE, run

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
GOOD = HERE / "manifests"
BROKEN = HERE / "manifests-broken"


def audit(*args: str) -> tuple[int, str, str]:
    p = run([sys.executable, str(ROOT / "manage.py"), "audit-manifests", *args], cwd=str(ROOT))
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def node_file(tmp_path) -> str:
    f = tmp_path / "resolv.conf"
    f.write_text(SEED_NODE)
    return str(f)


def _by_name(out: str) -> dict[str, dict]:
    return {f"{w['kind']}/{w['name']}": w for w in json.loads(out)["workloads"]}


def test_json_with_a_known_nodata_answer_flags_musl_workloads_and_exits_1(node_file):
    code, out, err = audit(
        str(GOOD),
        "--node-resolv-conf",
        node_file,
        "--domain-answer",
        "openstacklocal=NODATA",
        "--format",
        "json",
    )
    assert code == 1, err
    w = _by_name(out)
    assert set(w) == {
        "Deployment/web",
        "Deployment/api",
        "CronJob/nightly",
        "StatefulSet/cache",
        "DaemonSet/node-agent",
        "Pod/debug",
        "Job/migrate",
        "ReplicaSet/legacy",
    }  # the Service, ConfigMap and the empty Helm document are not workloads
    assert {k: v["risk"] for k, v in w.items()} == {
        "Deployment/web": "affected",
        "Deployment/api": "safe",
        "CronJob/nightly": "affected",
        "StatefulSet/cache": "safe",
        "DaemonSet/node-agent": "safe",
        "Pod/debug": "affected",
        "Job/migrate": "safe",
        "ReplicaSet/legacy": "affected",
    }
    assert w["Deployment/web"]["namespace"] == "shop"
    assert w["Deployment/web"]["resolv_conf"]["searches"][-1] == "openstacklocal"
    assert w["DaemonSet/node-agent"]["resolv_conf"]["nameservers"] == ["192.168.0.2"]
    assert any("already fixed" in r for r in w["StatefulSet/cache"]["reasons"])


def test_fail_on_never_exits_0(node_file):
    code, _, err = audit(
        str(GOOD),
        "--node-resolv-conf",
        node_file,
        "--domain-answer",
        "openstacklocal=NODATA",
        "--format",
        "json",
        "--fail-on",
        "never",
    )
    assert code == 0, err


def test_without_a_known_answer_the_domain_is_at_risk_and_only_fail_on_at_risk_fails(node_file):
    code, out, _ = audit(str(GOOD), "--node-resolv-conf", node_file, "--format", "json")
    w = _by_name(out)
    assert w["Deployment/web"]["risk"] == "at-risk"
    assert code == 0
    code, _, _ = audit(str(GOOD), "--node-resolv-conf", node_file, "--format", "json", "--fail-on", "at-risk")
    assert code == 1


def test_without_a_node_file_musl_workloads_are_never_safe(tmp_path):
    # No --node-resolv-conf: the node's search domains are unknown, so a musl workload that inherits
    # them is at-risk (not safe), and says how to give the file.
    code, out, _ = audit(str(GOOD / "list.json"), "--format", "json", "--fail-on", "at-risk")
    assert code == 1
    w = _by_name(out)
    assert w["Pod/debug"]["risk"] == "at-risk"
    assert w["Pod/debug"]["node_resolv_conf_source"] == "unknown"
    assert any("are unknown" in r and "node-resolv-conf" in r for r in w["Pod/debug"]["reasons"])


def test_with_a_node_file_without_search_clean_manifests_pass(tmp_path):
    node_file = tmp_path / "resolv.conf"
    node_file.write_text("nameserver 10.0.0.2\n")
    code, out, err = audit(
        str(GOOD / "list.json"),
        "--node-resolv-conf",
        str(node_file),
        "--format",
        "json",
        "--fail-on",
        "at-risk",
    )
    assert code == 0, err
    w = _by_name(out)
    assert set(w) == {"Pod/debug", "Job/migrate"}
    assert w["Pod/debug"]["resolv_conf"]["searches"] == [
        "tools.svc.cluster.local",
        "svc.cluster.local",
        "cluster.local",
    ]


def test_search_dot_with_kubelet_1_25_0(tmp_path):
    f = tmp_path / "resolv.conf"
    f.write_text("nameserver 192.168.0.2\nsearch .\n")
    code, out, _ = audit(
        str(GOOD / "app.yaml"),
        "--node-resolv-conf",
        str(f),
        "--kubelet-version",
        "v1.25.0",
        "--format",
        "json",
    )
    w = _by_name(out)
    assert code == 1
    assert w["Deployment/web"]["risk"] == "affected"  # alpine 3.16 = musl 1.2.3
    assert w["CronJob/nightly"]["risk"] == "safe"  # alpine 3.19 = musl 1.2.4 skips '.'
    code, out, _ = audit(
        str(GOOD / "app.yaml"),
        "--node-resolv-conf",
        str(f),
        "--kubelet-version",
        "v1.25.1",
        "--format",
        "json",
    )
    assert code == 0 and _by_name(out)["Deployment/web"]["risk"] == "safe"


def test_sarif_has_one_result_per_flagged_workload_at_its_document(node_file):
    code, out, _ = audit(
        str(GOOD),
        "--node-resolv-conf",
        node_file,
        "--domain-answer",
        "openstacklocal=SERVFAIL",
        "--format",
        "sarif",
    )
    assert code == 1
    sarif = json.loads(out)
    assert sarif["version"] == "2.1.0"
    run_ = sarif["runs"][0]
    assert run_["tool"]["driver"]["name"] == "dnsaudit"
    rule_ids = {r["id"] for r in run_["tool"]["driver"]["rules"]}
    results = run_["results"]
    assert len(results) == 4 and all(r["ruleId"] in rule_ids for r in results)
    web = next(r for r in results if r["partialFingerprints"]["workload"] == "shop/Deployment/web")
    loc = web["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "tests/audit/manifests/app.yaml"
    assert loc["region"]["startLine"] == 1
    cron = next(r for r in results if r["partialFingerprints"]["workload"] == "shop/CronJob/nightly")
    lines = (GOOD / "app.yaml").read_text().splitlines()
    assert (
        lines[cron["locations"][0]["physicalLocation"]["region"]["startLine"] - 1] == "apiVersion: batch/v1"
    )
    assert web["level"] == "error" and "SERVFAIL" in web["message"]["text"]


def test_table_output_is_plain_text_when_not_a_terminal(node_file):
    code, out, _ = audit(
        str(GOOD), "--node-resolv-conf", node_file, "--domain-answer", "openstacklocal=NODATA"
    )
    assert code == 1
    assert "\x1b[" not in out
    header = out.splitlines()[0].split()
    assert header == ["RISK", "WORKLOAD", "LIBC", "FIX"]
    assert any(line.startswith("affected") and "shop/Deployment/web" in line for line in out.splitlines())
    assert "example.com.openstacklocal" in out


def test_broken_documents_are_reported_and_the_rest_still_audited(node_file):
    code, out, err = audit(
        str(BROKEN),
        "--node-resolv-conf",
        node_file,
        "--domain-answer",
        "openstacklocal=NODATA",
        "--format",
        "json",
        "--fail-on",
        "never",
    )
    assert code == 2
    assert "bad.yaml: document 2" in err and "invalid YAML" in err
    assert "bad.yaml: document 3" in err and "metadata.name" in err
    assert set(_by_name(out)) == {"Deployment/before", "Deployment/after"}
    assert "Traceback" not in err


def test_missing_path_and_bad_options_exit_2(node_file):
    code, _, err = audit(str(GOOD / "nope.yaml"))
    assert code == 2 and "no such file" in err
    code, _, err = audit(str(GOOD), "--domain-answer", "openstacklocal=MAYBE")
    assert code == 2 and "--domain-answer" in err
    code, _, err = audit(str(GOOD), "--cluster-dns", "not-an-ip")
    assert code == 2 and "--cluster-dns" in err


def test_split_documents_keeps_line_numbers_and_helm_empty_documents():
    text = "# header\n---\na: 1\n---\n# Source: empty\n---\nb: 2\n...\n"
    docs = manifests.split_documents(text)
    assert [(line, chunk.strip()) for line, chunk in docs][:3] == [
        (3, "a: 1"),
        (5, "# Source: empty"),
        (7, "b: 2"),
    ]


def test_workload_from_object_covers_every_kind_and_ignores_others():
    pod_spec = {"containers": [{"name": "c", "image": "alpine:3.16"}], "dnsPolicy": "Default"}
    objs = {
        "Pod": {"spec": pod_spec},
        "Deployment": {"spec": {"template": {"spec": pod_spec}}},
        "StatefulSet": {"spec": {"template": {"spec": pod_spec}}},
        "DaemonSet": {"spec": {"template": {"spec": pod_spec}}},
        "ReplicaSet": {"spec": {"template": {"spec": pod_spec}}},
        "Job": {"spec": {"template": {"spec": pod_spec}}},
        "CronJob": {"spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec}}}}},
    }
    for kind, body in objs.items():
        w = manifests.workload_from_object({"kind": kind, "metadata": {"name": "x"}, **body})
        assert w is not None and w.kind == kind and w.dns_policy == "Default" and w.namespace == "default"
        assert w.containers[0].image == "alpine:3.16"
    assert manifests.workload_from_object({"kind": "Service", "metadata": {"name": "x"}}) is None
    with pytest.raises(ValueError, match="no 'kind'"):
        manifests.workload_from_object({"metadata": {"name": "x"}})
    with pytest.raises(ValueError, match="spec.template.spec"):
        manifests.workload_from_object({"kind": "Deployment", "metadata": {"name": "x"}, "spec": {}})


def test_inspected_verdicts_replace_reference_inference(node_file):
    from dnsaudit.core.model import LibcVerdict

    seen: list[str] = []

    def inspect(ref: str) -> LibcVerdict:
        seen.append(ref)
        return LibcVerdict(libc="glibc", confidence="confirmed", evidence=["test registry: glibc loader"])

    opts = manifests.Options(
        paths=[str(GOOD / "app.yaml")],
        node_resolv_conf=SEED_NODE,
        domain_answers={"openstacklocal": "NODATA"},
        inspect=inspect,
    )
    result = manifests.audit_paths(opts)
    assert "alpine:3.16" in seen
    assert {r["risk"] for r in result.reports} == {"safe"}
    assert manifests.exit_code(result, "affected") == 0
