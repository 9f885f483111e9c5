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


# --- the fix in hand (issue #9 item 5) ------------------------------------------------------------------------


def test_write_patches_json_patch_and_sarif_fixes_agree(node_file, tmp_path):
    import yaml

    from dnsaudit.core.schema import check_report
    from tests.audit.checks import validate_k8s
    from tests.audit.helpers import kubectl

    out_dir = tmp_path / "patches"
    args = [str(GOOD), "--node-resolv-conf", node_file, "--domain-answer", "openstacklocal=NODATA"]
    code, out, err = audit(*args, "--format", "json", "--write-patches", str(out_dir))
    assert code == 1, err
    workloads = _by_name(out)
    flagged = {k: w for k, w in workloads.items() if w["risk"] != "safe"}
    written = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*.yaml"))
    # The bundle's file names: <namespace>/<kind>-<name>.yaml, one per flagged workload.
    assert written == sorted(
        f"{w['namespace']}/{w['kind'].lower()}-{w['name']}.yaml" for w in flagged.values()
    )
    for w in workloads.values():
        check_report(w)  # 'patch' is declared in the schema
        patch = w["remediation"].get("patch")
        if w["risk"] == "safe":
            assert patch is None
            continue
        on_disk = yaml.safe_load(
            (out_dir / f"{w['namespace']}/{w['kind'].lower()}-{w['name']}.yaml").read_text()
        )
        assert patch == on_disk and patch["kind"] == w["kind"] and patch["metadata"]["name"] == w["name"]
    # Applied with the real kubectl to the manifest it came from, the result validates (oldest/newest).
    docs = [
        d
        for f in sorted(GOOD.rglob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if isinstance(d, dict)
    ]
    for d in docs:
        key = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
        if key not in flagged:
            continue
        live = tmp_path / "live.yaml"
        live.write_text(yaml.safe_dump(d))
        rel = f"{flagged[key]['namespace']}/{d['kind'].lower()}-{d['metadata']['name']}.yaml"
        p = run(
            [
                kubectl(),
                "patch",
                "--local",
                "-f",
                str(live),
                "--type",
                "strategic",
                "--patch-file",
                str(out_dir / rel),
                "-o",
                "yaml",
            ]
        )
        assert p.returncode == 0, p.stderr
        validate_k8s(yaml.safe_load(p.stdout))
    # SARIF: each flagged result carries the same patch as a fix.
    code, out, _ = audit(*args, "--format", "sarif")
    results = json.loads(out)["runs"][0]["results"]
    assert results and all(r.get("fixes") for r in results)
    for r in results:
        change = r["fixes"][0]["artifactChanges"][0]
        rel = change["artifactLocation"]["uri"].removeprefix("dnsaudit-patches/")
        assert yaml.safe_load(change["replacements"][0]["insertedContent"]["text"]) == yaml.safe_load(
            (out_dir / rel).read_text()
        )


def test_no_workloads_found_is_said_and_exits_0(tmp_path):
    f = tmp_path / "service.yaml"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n")
    code, out, err = audit(str(f), "--format", "json")
    assert code == 0
    assert f"no workloads found in {f}" in err
    assert json.loads(out) == {"workloads": []}


def test_table_marks_inferred_musl_versions(node_file):
    code, out, _ = audit(str(GOOD / "app.yaml"), "--node-resolv-conf", node_file)
    assert "musl 1.2.3*" in out  # alpine:3.16, from the tag
    assert "* musl version inferred from the image reference" in out
