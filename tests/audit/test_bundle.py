"""The remediation bundle (zip contents) and the cluster-level artifacts."""

from __future__ import annotations

import yaml

from dnsaudit.core.audit import audit_workloads, cluster_remediation, render_bundle
from tests.audit.helpers import kubectl, manifest, run, seed_ctx, workload


def _seed_audits(**ctx_kw):
    ws = [
        workload("alpine:3.16", name="web", namespace="shop"),
        workload("python:3.12-alpine3.19", kind="CronJob", name="nightly", namespace="shop"),
        workload("debian:12", name="api", namespace="shop"),
        workload("alpine:3.16", kind="Pod", name="debug", namespace="tools"),
    ]
    ctx = seed_ctx(**ctx_kw)
    return ws, ctx, audit_workloads(ws, ctx)


def test_bundle_holds_readme_patches_kustomize_kubelet_kyverno_coredns():
    _, ctx, audits = _seed_audits(coredns={"variant": "k3s"})
    files = render_bundle("prod-openstack", audits, ctx)
    assert {
        "README.md",
        "report.json",
        "patches/shop/deployment-web.yaml",
        "patches/shop/cronjob-nightly.yaml",
        "patches/tools/pod-debug.yaml",
        "patches/commands.sh",
        "kustomize/kustomization.yaml",
        "kubelet/default/resolv-pods.conf",
        "kubelet/default/kubelet-config.yaml",
        "kubelet/default/kubelet-flag.txt",
        "kubelet/default/cloud-init.yaml",
        "kyverno/clusterpolicy.yaml",
        "coredns/template.conf",
        "coredns/k3s-coredns-custom.yaml",
    } <= set(files)
    assert not any("deployment-api" in f for f in files)  # the glibc workload needs nothing
    readme = files["README.md"]
    assert "prod-openstack" in readme and "Order to apply" in readme and "verify" in readme.lower()
    assert "BEFORE" in readme  # the kubelet file must exist before the restart
    for path in (
        "patches/shop/deployment-web.yaml",
        "kyverno/clusterpolicy.yaml",
        "kubelet/default/cloud-init.yaml",
    ):
        assert yaml.safe_load(files[path])
    assert "openstacklocal" not in files["kubelet/default/resolv-pods.conf"]
    policy = yaml.safe_load(files["kyverno/clusterpolicy.yaml"])
    patterns = policy["spec"]["rules"][0]["preconditions"]["any"][0]["value"]
    assert "alpine*" in patterns and "python*" in patterns and not any("debian" in p for p in patterns)
    assert all(not p.startswith("/") for p in files)


def test_bundle_kustomize_overlay_builds_with_the_users_manifests(tmp_path):
    ws, ctx, audits = _seed_audits()
    files = render_bundle("c", audits, ctx)
    root = tmp_path / "kustomize"
    for path, text in files.items():
        if path.startswith("kustomize/"):
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text(text)
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


def test_cluster_remediation_summarises_domains_and_artifacts():
    _, ctx, audits = _seed_audits()
    cr = cluster_remediation(audits, ctx)
    assert cr["summary"] == {"affected": 3, "at-risk": 0, "unknown": 0, "safe": 1}
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
    assert not any(p.startswith("patches/") for p in files)
