"""The remediation bundle: one layout, scripts that run as shipped, kustomizations that render with the real
kubectl, every object valid for an independent validator, and a Kyverno policy scoped exactly."""

from __future__ import annotations

import copy
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from dnsaudit.core import patches
from dnsaudit.core.audit import audit_workloads, cluster_remediation, render_bundle
from dnsaudit.testbed.fakekube.fleet import demo_fleet
from tests.audit.checks import (
    kyverno_selects,
    named_paths,
    pods_of,
    recorded,
    recording_bin,
    run_script,
    validate_k8s,
    validate_kyverno,
)
from tests.audit.helpers import demo_cluster, kubectl, manifest, run, seed_ctx, workload
from tests.policyreport.checks import validate_policy_report
from tests.support import need


def _seed_audits(**ctx_kw):
    ws = [
        workload("alpine:3.16", name="web", namespace="shop"),
        workload("python:3.12-alpine3.19", kind="CronJob", name="nightly", namespace="shop"),
        workload("debian:12", name="api", namespace="shop"),
        workload("python:3.12-slim", name="worker", namespace="shop"),
        workload("alpine:3.16", kind="Pod", name="debug", namespace="tools"),
    ]
    ctx = seed_ctx(**ctx_kw)
    return ws, ctx, audit_workloads(ws, ctx)


def test_bundle_layout_readme_and_literal_cloud_init():
    _, ctx, audits = _seed_audits(coredns={"variant": "k3s"})
    files = render_bundle("prod-openstack", audits, ctx)
    assert {
        "README.md",
        "report.json",
        "verify.sh",
        "apply-dnsconfig.sh",
        "patches/shop/deployment-web.yaml",
        "patches/shop/cronjob-nightly.yaml",
        "patches/tools/pod-debug.yaml",
        "patches/kustomization.yaml",
        "apply-kubelet-default.sh",
        "kubelet/default/resolv-pods.conf",
        "kubelet/default/kubelet-config.yaml",
        "kubelet/default/kubelet-flag.txt",
        "kubelet/default/cloud-init.yaml",
        "apply-kyverno.sh",
        "kyverno/clusterpolicy.yaml",
        "kyverno/kustomization.yaml",
        "kyverno/labels/shop/deployment-web.yaml",
        "apply-coredns.sh",
        "coredns/template.conf",
        "coredns/k3s-coredns-custom.yaml",
    } <= set(files)
    assert not any("deployment-api" in f or "deployment-worker" in f for f in files)  # glibc: nothing
    readme = files["README.md"]
    for words in ("prod-openstack", "## Layout", "## Order to apply", "verify.sh", "BEFORE", "Kyverno scope"):
        assert words in readme
    for path in files:  # the README lists every file
        assert f"`{path}`" in readme
    # Cloud-init: the file as a literal block, not a quoted folded string.
    ci = files["kubelet/default/cloud-init.yaml"]
    assert "content: |\n    nameserver 192.168.0.2\n" in ci
    assert yaml.safe_load(ci)["write_files"][0]["content"] == files["kubelet/default/resolv-pods.conf"]
    assert "openstacklocal" not in files["kubelet/default/resolv-pods.conf"]
    # Kyverno: exact musl references only.
    policy = yaml.safe_load(files["kyverno/clusterpolicy.yaml"])
    refs = policy["spec"]["rules"][0]["preconditions"]["any"][0]["value"]
    assert refs == ["alpine:3.16", "python:3.12-alpine3.19"]
    assert all(not p.startswith("/") and ".." not in p.split("/") for p in files)


def test_cluster_remediation_summarises_domains_and_artifacts():
    _, ctx, audits = _seed_audits()
    cr = cluster_remediation(audits, ctx)
    assert cr["summary"] == {"affected": 3, "at-risk": 0, "unknown": 0, "safe": 2}
    assert cr["domains"]["openstacklocal"]["origins"] == ["node"]
    assert len(cr["domains"]["openstacklocal"]["workloads"]) == 3
    kinds = [a["kind"] for a in cr["artifacts"]]
    assert kinds == ["kubelet", "kyverno", "coredns"]
    for art in cr["artifacts"]:
        assert art["why"] and art["tradeoffs"] and art["files"]


def test_bundle_for_a_safe_cluster_says_nothing_to_fix():
    ctx = seed_ctx()
    audits = audit_workloads([workload("debian:12")], ctx)
    files = render_bundle("calm", audits, ctx)
    assert "Nothing to fix" in files["README.md"]
    assert not any(p.startswith(("patches/", "apply-")) for p in files)
    assert "nothing to verify" in files["verify.sh"]


# --- the demo fleet's bundle, through the export, as a user runs it -------------------------------------------


def _demo_objects(spec) -> dict[str, dict]:
    """The demo cluster's top-level workload objects as a user has them in git (no status)."""
    out = {}
    for obj in spec.objects:
        meta = obj.get("metadata") or {}
        if obj.get("kind") in patches.KUBECTL_RESOURCE and not meta.get("ownerReferences"):
            clean = {k: v for k, v in copy.deepcopy(obj).items() if k != "status"}
            clean["metadata"] = {
                k: v
                for k, v in clean["metadata"].items()
                if k in ("name", "namespace", "labels", "annotations")
            }
            out[f"{meta.get('namespace', 'default')}/{obj['kind']}/{meta['name']}"] = clean
    return out


def _store_demo_scan(spec):
    """A finished scan of a demo cluster stored as the scan stores it (rows from the core audit, the
    cluster-level fixes in facts), for the export."""
    from clusters.models import NodePoolResult, Scan
    from tests.web import factories

    audits, ctx = demo_cluster(spec)
    cluster = factories.make_cluster(spec.name)
    scan = factories.make_scan(cluster, facts={"cluster_remediation": cluster_remediation(audits, ctx)})
    for p in spec.pools:
        NodePoolResult.objects.create(scan=scan, name=p.name, nodes=list(p.nodes))
    for a in audits:
        factories.make_audited_workload(scan, "", audited=(a.workload, a))
    counts = {
        r: sum(1 for a in audits if a.report["risk"] == r) for r in ("affected", "at-risk", "safe", "unknown")
    }
    Scan.objects.filter(pk=scan.pk).update(
        workloads_total=len(audits),
        affected=counts["affected"],
        at_risk=counts["at-risk"],
        safe=counts["safe"],
        unknown=counts["unknown"],
    )
    scan.refresh_from_db()
    return scan, audits


def _patched_with_kubectl(obj: dict, patch_file: Path, tmp: Path) -> dict:
    f = tmp / "live.yaml"
    f.write_text(yaml.safe_dump(obj))
    p = run(
        [
            kubectl(),
            "patch",
            "--local",
            "-f",
            str(f),
            "--type",
            "strategic",
            "--patch-file",
            str(patch_file),
            "-o",
            "yaml",
        ]
    )
    assert p.returncode == 0, p.stderr
    return yaml.safe_load(p.stdout)


@pytest.mark.django_db
@pytest.mark.parametrize("spec", demo_fleet(), ids=lambda s: s.name)
def test_demo_bundle_runs_as_shipped_renders_and_validates(spec, tmp_path):
    from clusters.views.exports import build_bundle

    scan, audits = _store_demo_scan(spec)
    root = tmp_path / "bundle"
    zipfile.ZipFile(io.BytesIO(build_bundle(scan))).extractall(root)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    objects = _demo_objects(spec)
    flagged = [a for a in audits if a.report["risk"] != "safe"]

    # 1. Every script, from the bundle root, against a recording kubectl (no network).
    bin_dir = recording_bin(tmp_path / "bin", sys.executable)
    node_root = tmp_path / "node"
    (node_root / "var/lib/kubelet").mkdir(parents=True)
    (node_root / "var/lib/kubelet/config.yaml").write_text(
        "kind: KubeletConfiguration\nresolvConf: /etc/resolv.conf\n"
    )
    scripts = [n for n in names if n.endswith(".sh")]
    assert "verify.sh" in scripts
    if flagged:
        assert {"apply-dnsconfig.sh", "apply-kyverno.sh"} <= set(scripts)
    for script in scripts:
        record = tmp_path / f"{script}.record"
        p = run_script(root / script, root, bin_dir, record, DNSAUDIT_NODE_ROOT=str(node_root))
        if script == "verify.sh":
            # Nothing is in place on a kubectl that answers nothing: every check says NOT YET.
            assert p.returncode == (1 if flagged else 0), p.stderr
            assert "ok " not in p.stdout
        else:
            assert p.returncode == 0, (script, p.stderr)
        for call in recorded(record):
            assert call["cwd"] == str(root)
            for path in named_paths(call["argv"]):
                assert (root / path).is_file(), (script, path)
        if script == "apply-dnsconfig.sh":
            patched = [path for c in recorded(record) for path in named_paths(c["argv"])]
            assert sorted(patched) == sorted(
                n for n in names if n.startswith("patches/") and n.count("/") == 2
            )
            assert len(patched) == len(set(patched))  # each workload once
        if script.startswith("apply-kubelet-"):
            pool = script.removeprefix("apply-kubelet-").removesuffix(".sh")
            written = node_root / patches.KUBELET_RESOLV_PATH.lstrip("/")
            assert written.read_text() == (root / f"kubelet/{pool}/resolv-pods.conf").read_text()
            assert (
                f"resolvConf: {patches.KUBELET_RESOLV_PATH}"
                in (node_root / "var/lib/kubelet/config.yaml").read_text()
            )
            assert [c["argv"] for c in recorded(record) if c["tool"] == "systemctl"] == [
                ["restart", "kubelet"]
            ]

    # 2. Every kustomization renders with the real kubectl, as shipped.
    kustomizations = [n for n in names if n.endswith("kustomization.yaml")]
    for k in kustomizations:
        p = run([kubectl(), "kustomize", str((root / k).parent)])
        assert p.returncode == 0, (k, p.stderr)
    # ... and the patches overlay does what it says on the user's manifests.
    if "patches/kustomization.yaml" in names:
        overlay = root / "patches"
        (overlay / "app.yaml").write_text(yaml.safe_dump_all(list(objects.values())))
        kust = yaml.safe_load((overlay / "kustomization.yaml").read_text())
        kust["resources"] = ["app.yaml"]
        (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kust))
        p = run([kubectl(), "kustomize", str(overlay)])
        assert p.returncode == 0, p.stderr
        out = {
            f"{d['metadata'].get('namespace', 'default')}/{d['kind']}/{d['metadata']['name']}": d
            for d in yaml.safe_load_all(p.stdout)
        }
        for entry in kust["patches"]:
            t = entry["target"]
            rendered = out[f"{t.get('namespace', 'default')}/{t['kind']}/{t['name']}"]
            assert pods_of(rendered)["spec"]["dnsPolicy"] == "None"
            validate_k8s(rendered)

    # 3. Every Kubernetes object in the bundle validates (kubernetes-validate, strict, oldest and newest).
    checked = 0
    for n in names:
        if not n.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all((root / n).read_text()):
            if not isinstance(doc, dict) or "apiVersion" not in doc:
                assert n.endswith("cloud-init.yaml"), n
                continue
            api = doc["apiVersion"]
            if api.startswith("kustomize.config.k8s.io/"):
                continue  # rendered above
            if api.startswith("kyverno.io/"):
                validate_kyverno(doc)
            elif api.startswith("wgpolicyk8s.io/"):
                validate_policy_report(doc)  # a CRD: its own schema (tests/policyreport/checks.py)
            elif api.startswith("kubelet.config.k8s.io/"):
                # Not an API-server object (no schema in kubernetes-validate): exactly the one field.
                assert doc == patches.kubelet_configuration()
            elif n.startswith(("patches/", "kyverno/labels/")):
                key = f"{doc['metadata'].get('namespace', 'default')}/{doc['kind']}/{doc['metadata']['name']}"
                validate_k8s(_patched_with_kubectl(objects[key], root / n, tmp_path))
            else:
                validate_k8s(doc)
            checked += 1
    assert checked >= (5 if flagged else 0)


def test_kubernetes_validate_works_offline(tmp_path):
    """The schemas ship inside the wheel: validation in a namespace without any network."""
    need(
        shutil.which("unshare") is not None and subprocess.run(["unshare", "-rn", "true"]).returncode == 0,
        "no user/network namespaces here (unshare -rn)",
    )
    code = (
        "import kubernetes_validate as kv, socket\n"
        "try:\n    socket.create_connection(('1.1.1.1', 443), timeout=1); raise SystemExit('network!')\n"
        "except OSError: pass\n"
        "for v in ('1.25.0', '1.37.0'):\n"
        "    kv.validate({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'x'}}, v, strict=True)\n"
        "print('ok')\n"
    )
    p = subprocess.run(
        ["unshare", "-rn", sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


# --- Kyverno, scoped exactly --------------------------------------------------------------------------------


def _needs_kyverno(report: dict) -> bool:
    """Independent of the bundle: a workload the policy is for (musl, flagged, cluster DNS, ClusterFirst)."""
    return (
        report["risk"] != "safe"
        and any(c["libc"] == "musl" for c in report["containers"])
        and not report["host_network"]
        and report["dns_policy"] in ("ClusterFirst", "")
        and report["namespace"] != "kube-system"
    )


@pytest.mark.parametrize("spec", demo_fleet(), ids=lambda s: s.name)
def test_kyverno_policy_selects_exactly_the_musl_workloads_that_need_it(spec, tmp_path):
    audits, ctx = demo_cluster(spec)
    cr = cluster_remediation(audits, ctx)
    art = next((a for a in cr["artifacts"] if a["kind"] == "kyverno"), None)
    expected = {
        f"{a.report['namespace']}/{a.report['kind']}/{a.report['name']}"
        for a in audits
        if _needs_kyverno(a.report)
    }
    if art is None:
        assert expected == set()
        return
    policy = yaml.safe_load(art["files"][patches.KYVERNO_POLICY_FILE])
    validate_kyverno(policy)
    objects = _demo_objects(spec)
    labels = {p: yaml.safe_load(t) for p, t in art["files"].items() if p.startswith("kyverno/labels/")}
    selected = set()
    for key, obj in objects.items():
        patch_path = next(
            (
                p
                for p, d in labels.items()
                if f"{d['metadata'].get('namespace', 'default')}/{d['kind']}/{d['metadata']['name']}" == key
            ),
            None,
        )
        if patch_path is not None:  # the bundle labels it: apply its label patch with the real kubectl
            f = tmp_path / "label.yaml"
            f.write_text(art["files"][patch_path])
            obj = _patched_with_kubectl(obj, f, tmp_path)
            validate_k8s(obj)
        pod = pods_of(obj)
        request = {
            "kind": "Pod",
            "operation": "CREATE",
            "namespace": pod["metadata"]["namespace"],
            "object": pod,
        }
        if kyverno_selects(policy, request):
            selected.add(key)
    assert selected == expected
    assert expected  # openstack-prod and edge-k3s have musl workloads that need it
    # Never a glibc/static image: a labelled Pod running one is left alone, as is an UPDATE, hostNetwork
    # and dnsPolicy None.
    refs = policy["spec"]["rules"][0]["preconditions"]["any"][0]["value"]
    non_musl = {c["image"] for a in audits for c in a.report["containers"] if c["libc"] != "musl"}
    assert refs and not set(refs) & non_musl and all("*" not in r for r in refs)
    label = {patches.KYVERNO_LABEL[0]: patches.KYVERNO_LABEL[1]}
    base = {
        "metadata": {"labels": label, "namespace": "x"},
        "spec": {"containers": [{"name": "c", "image": refs[0]}]},
    }
    assert kyverno_selects(policy, {"kind": "Pod", "operation": "CREATE", "namespace": "x", "object": base})
    for image in sorted(non_musl):
        pod = copy.deepcopy(base)
        pod["spec"]["containers"][0]["image"] = image
        assert not kyverno_selects(
            policy, {"kind": "Pod", "operation": "CREATE", "namespace": "x", "object": pod}
        )
    for change in ({"hostNetwork": True}, {"dnsPolicy": "None"}, {"dnsPolicy": "Default"}):
        pod = copy.deepcopy(base)
        pod["spec"].update(change)
        assert not kyverno_selects(
            policy, {"kind": "Pod", "operation": "CREATE", "namespace": "x", "object": pod}
        )
    assert not kyverno_selects(
        policy, {"kind": "Pod", "operation": "UPDATE", "namespace": "x", "object": base}
    )
    assert not kyverno_selects(
        policy, {"kind": "Pod", "operation": "CREATE", "namespace": "kube-system", "object": base}
    )
    unlabelled = copy.deepcopy(base)
    unlabelled["metadata"]["labels"] = {}
    assert not kyverno_selects(
        policy, {"kind": "Pod", "operation": "CREATE", "namespace": "x", "object": unlabelled}
    )


def test_bundle_kustomize_overlay_builds_with_the_users_manifests(tmp_path):
    ws, ctx, audits = _seed_audits()
    files = render_bundle("c", audits, ctx)
    for path, text in files.items():
        if path.startswith("patches/"):
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text(text)
    root = tmp_path / "patches"
    (root / "app.yaml").write_text(yaml.safe_dump_all([manifest(w) for w in ws]))
    kust = yaml.safe_load((root / "kustomization.yaml").read_text())
    kust["resources"] = ["app.yaml"]
    (root / "kustomization.yaml").write_text(yaml.safe_dump(kust))
    p = run([kubectl(), "kustomize", str(root)])
    assert p.returncode == 0, p.stderr
    out = {d["metadata"]["name"]: d for d in yaml.safe_load_all(p.stdout)}
    assert out["web"]["spec"]["template"]["spec"]["dnsPolicy"] == "None"
    assert out["nightly"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "None"
    assert out["debug"]["spec"]["dnsPolicy"] == "None"
    assert "dnsPolicy" not in out["api"]["spec"]["template"]["spec"]
    for d in out.values():
        validate_k8s(d)
    assert json.loads(files["report.json"])["workloads"]
