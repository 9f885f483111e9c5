"""Every rendered fix is valid, applies with the real kubectl, and makes musl resolve again.

The checks here are independent of the code under test: validation through ``validate_dns_config``,
application through ``kubectl patch --local``/``kubectl kustomize``, re-synthesis through the kubelet
model from the *patched object kubectl returned*, and re-simulation with a table oracle written here.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest
import yaml

from dnsaudit.core import remediation
from dnsaudit.core.audit import audit_workload
from dnsaudit.core.kubelet import parse_node_resolv_conf, pod_resolv_conf, render_resolv_conf
from dnsaudit.core.model import Answer, Resolution
from dnsaudit.core.resolver import simulate_musl, table_oracle
from dnsaudit.core.validation import validate_dns_config
from tests.audit.helpers import (
    CLUSTER_DNS,
    SEED_NODE,
    kubectl,
    manifest,
    pod_spec_of,
    pool,
    run,
    seed_ctx,
    seed_oracle,
    workload,
)

KINDS = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"]


def _remedy(audit, kind):
    return next(r for r in audit.remedies if r.kind == kind)


def _kubectl_patch_local(obj: dict, patch: dict, tmp_path) -> dict:
    f = tmp_path / "obj.yaml"
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
            "-p",
            json.dumps(patch),
            "-o",
            "yaml",
        ]
    )
    assert p.returncode == 0, p.stderr
    return yaml.safe_load(p.stdout)


def _musl_after(namespace: str, pod_spec: dict, node_file: str, name: str, version: str) -> Resolution:
    pod = pod_resolv_conf(
        namespace,
        pod_spec.get("dnsPolicy", "ClusterFirst"),
        bool(pod_spec.get("hostNetwork")),
        pod_spec.get("dnsConfig"),
        pool().kubelet,
        node_file,
    )
    assert pod.error is None
    return simulate_musl(name, render_resolv_conf(pod.conf), seed_oracle(), version=version)


@pytest.mark.parametrize("kind", KINDS)
def test_dns_config_patch_is_valid_applies_with_kubectl_and_fixes_musl(kind, tmp_path):
    w = workload("alpine:3.16", kind=kind, name=f"app-{kind.lower()}", namespace="shop")
    a = audit_workload(w, seed_ctx())
    assert a.report["risk"] == "affected"
    r = _remedy(a, "dnsConfig")
    assert r.usable, r.problems
    patch_doc = yaml.safe_load(r.patch_yaml)
    assert patch_doc["kind"] == kind and patch_doc["metadata"] == {"name": w.name, "namespace": "shop"}

    # 1. The API server's rules, at the kind's pod-spec path.
    spec = pod_spec_of(patch_doc)
    assert validate_dns_config(spec["dnsPolicy"], spec["dnsConfig"]) == []
    assert spec["dnsConfig"]["nameservers"] == [CLUSTER_DNS]
    assert spec["dnsConfig"]["searches"] == ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert {"name": "ndots", "value": "5"} in spec["dnsConfig"]["options"]

    # 2. The real kubectl applies the patch from the rendered command to the user's manifest.
    payload = _payload_of(r.kubectl)
    patched = _kubectl_patch_local(manifest(w), payload, tmp_path)
    pspec = pod_spec_of(patched)
    assert pspec["dnsPolicy"] == "None"
    assert pspec["dnsConfig"] == spec["dnsConfig"]
    assert pspec["containers"][0]["image"] == "alpine:3.16"  # the merge kept the rest

    # 3. Re-synthesised by the kubelet model and re-simulated: musl resolves example.com again.
    res = _musl_after("shop", pspec, SEED_NODE, "example.com", "1.2.3")
    assert res.ok, res.explanation
    assert not any("openstacklocal" in q.name for q in res.queries)
    svc = _musl_after("shop", pspec, SEED_NODE, "kubernetes.default", "1.2.3")
    assert svc.ok, svc.explanation


def _payload_of(command: str) -> dict:
    """The JSON after -p in the (last) kubectl patch of a rendered command; checks the shell quoting."""
    line = [ln for ln in command.splitlines() if not ln.startswith("#")][-1]
    segment = next(s for s in line.split(" | ") if " patch " in f" {s} ")
    argv = shlex.split(segment)
    return json.loads(argv[argv.index("-p") + 1])


def test_kubectl_command_targets_the_owner_with_a_strategic_patch():
    w = workload("alpine:3.16", kind="CronJob", name="nightly", namespace="shop")
    r = _remedy(audit_workload(w, seed_ctx()), "dnsConfig")
    argv = shlex.split(r.kubectl)
    assert argv[:4] == ["kubectl", "patch", "cronjob", "nightly"]
    assert argv[argv.index("-n") + 1] == "shop"
    assert argv[argv.index("--type") + 1] == "strategic"
    assert "jobTemplate" in _payload_of(r.kubectl)["spec"]


def test_bare_pod_command_recreates_the_pod_and_runs_with_kubectl(tmp_path):
    w = workload("alpine:3.16", kind="Pod", name="debug", namespace="tools")
    r = _remedy(audit_workload(w, seed_ctx()), "dnsConfig")
    assert "immutable" in r.kubectl and "replace --force" in r.kubectl
    assert any("immutable" in t for t in r.tradeoffs)
    # The local part of the pipeline, fed the live object on stdin as 'kubectl get -o yaml' would.
    line = r.kubectl.splitlines()[-1]
    local = shlex.split(line.split(" | ")[1])
    local[0] = kubectl()
    p = run(local, stdin=yaml.safe_dump(manifest(w)))
    assert p.returncode == 0, p.stderr
    assert yaml.safe_load(p.stdout)["spec"]["dnsPolicy"] == "None"


def test_kustomize_patch_applies_with_kubectl_kustomize(tmp_path):
    w = workload("alpine:3.16", name="web", namespace="shop")
    r = _remedy(audit_workload(w, seed_ctx()), "dnsConfig")
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(manifest(w)))
    kust = yaml.safe_load(r.kustomize)
    (tmp_path / kust["patches"][0]["path"]).write_text(r.patch_yaml)
    kust["resources"] = ["deploy.yaml"]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kust))
    p = run([kubectl(), "kustomize", str(tmp_path)])
    assert p.returncode == 0, p.stderr
    out = yaml.safe_load(p.stdout)
    assert out["spec"]["template"]["spec"]["dnsPolicy"] == "None"
    assert "openstacklocal" not in out["spec"]["template"]["spec"]["dnsConfig"]["searches"]


def test_seed_cluster_recommends_the_kubelet_file_and_it_fixes_musl():
    a = audit_workload(workload("alpine:3.16"), seed_ctx())
    assert a.report["remediation"]["recommended"] == "kubelet"
    assert set(a.report["remediation"]["alternatives"]) >= {"dnsConfig", "coredns", "base-image"}
    r = _remedy(a, "kubelet")
    new_file = r.extra_files["kubelet/resolv-pods.conf"]
    assert "openstacklocal" not in new_file
    assert "nameserver 192.168.0.2" in new_file
    assert parse_node_resolv_conf(new_file).nameservers == ("192.168.0.2",)
    # What the kubelet would now give the pod, and what musl makes of it.
    pod = pod_resolv_conf("example-namespace", "ClusterFirst", False, None, pool().kubelet, new_file)
    assert list(pod.conf.searches) == [
        "example-namespace.svc.cluster.local",
        "svc.cluster.local",
        "cluster.local",
    ]
    assert simulate_musl("example.com", render_resolv_conf(pod.conf), seed_oracle(), version="1.2.3").ok
    # KubeletConfiguration field, flag and cloud-init.
    cfg = yaml.safe_load(r.extra_files["kubelet/kubelet-config.yaml"])
    assert cfg["kind"] == "KubeletConfiguration" and cfg["resolvConf"] == "/etc/kubernetes/resolv-pods.conf"
    assert (
        r.extra_files["kubelet/kubelet-flag.txt"].strip() == "--resolv-conf=/etc/kubernetes/resolv-pods.conf"
    )
    ci_text = r.extra_files["kubelet/cloud-init.yaml"]
    assert ci_text.startswith("#cloud-config\n")
    ci = yaml.safe_load(ci_text)
    assert ci["write_files"][0]["path"] == "/etc/kubernetes/resolv-pods.conf"
    assert ci["write_files"][0]["content"] == new_file
    script = ci["runcmd"][-1][-1]
    # The file is checked, the field set, and only then the kubelet restarted.
    assert (
        script.index("test -s /etc/kubernetes/resolv-pods.conf")
        < script.index("resolvConf:")
        < script.index("systemctl restart kubelet")
    )
    assert any("CoreDNS" in t for t in r.tradeoffs) and any("BEFORE" in t for t in r.tradeoffs)


def test_kubelet_fix_is_not_offered_when_the_domain_comes_from_the_workload():
    w = workload("alpine:3.19", dns_config={"searches": ["corp.example"]})
    ctx = seed_ctx(Answer("NXDOMAIN"), pool=pool("nameserver 192.168.0.2\n"))
    ctx.probes.append(
        type(ctx.probes[0])(
            "corp.example", "zz.com", "zz.com.corp.example", CLUSTER_DNS, Answer("NOERROR"), Answer("NOERROR")
        )
    )
    a = audit_workload(w, ctx)
    assert a.report["risk"] == "affected"
    assert a.report["remediation"]["recommended"] == "dnsConfig"
    assert all(r.kind != "kubelet" for r in a.remedies)


def test_kyverno_policy_is_scoped_and_its_mutation_fixes_the_pod(tmp_path):
    a = audit_workload(workload("alpine:3.16", namespace="shop"), seed_ctx(kyverno_installed=True))
    r = _remedy(a, "kyverno")
    pol = yaml.safe_load(r.extra_files["kyverno/clusterpolicy.yaml"])
    assert pol["apiVersion"] == "kyverno.io/v1" and pol["kind"] == "ClusterPolicy"
    rule = pol["spec"]["rules"][0]
    res = rule["match"]["any"][0]["resources"]
    assert res["kinds"] == ["Pod"] and res["operations"] == ["CREATE"]
    assert res["selector"] == {"matchLabels": {"dnsaudit.io/musl-dns": "cluster-only"}}
    assert rule["exclude"]["any"][0]["resources"]["namespaces"] == ["kube-system"]
    assert any("hostNetwork" in c["key"] for c in rule["preconditions"]["all"])
    images = rule["preconditions"]["any"][0]["value"]
    assert images == ["alpine:3.16"]  # the exact reference judged musl, no wildcard
    label = yaml.safe_load(r.extra_files["kyverno/labels/shop/deployment-web.yaml"])
    assert label["spec"]["template"]["metadata"]["labels"] == {"dnsaudit.io/musl-dns": "cluster-only"}
    mutation = rule["mutate"]["patchStrategicMerge"]
    cfg = mutation["spec"]["dnsConfig"]
    assert cfg["searches"][0] == "{{request.namespace}}.svc.cluster.local"
    assert cfg["nameservers"] == [CLUSTER_DNS]
    # What Kyverno would do to a new Pod in 'shop': substitute the variable, merge, then the kubelet.
    pod = manifest(workload("alpine:3.16", kind="Pod", name="p", namespace="shop"))
    patch = json.loads(json.dumps(mutation).replace("{{request.namespace}}", "shop"))
    mutated = _kubectl_patch_local(pod, patch, tmp_path)
    assert validate_dns_config(mutated["spec"]["dnsPolicy"], mutated["spec"]["dnsConfig"]) == []
    assert _musl_after("shop", mutated["spec"], SEED_NODE, "example.com", "1.2.3").ok


def test_coredns_template_hides_only_search_expanded_names():
    a = audit_workload(workload("alpine:3.16"), seed_ctx(coredns={"variant": "k3s"}))
    r = _remedy(a, "coredns")
    snippet = r.extra_files["coredns/template.conf"]
    assert snippet.startswith("template ANY ANY openstacklocal {")
    assert "rcode NXDOMAIN" in snippet and "fallthrough" in snippet
    regex = re.search(r'match "([^"]+)"', snippet).group(1)
    assert re.match(regex, "example.com.openstacklocal.")
    assert re.match(regex, "api.github.com.openstacklocal.")
    assert not re.match(regex, "node-1.openstacklocal.")  # real single-label hosts still go upstream
    cm = yaml.safe_load(r.extra_files["coredns/k3s-coredns-custom.yaml"])
    assert cm["metadata"] == {"name": "coredns-custom", "namespace": "kube-system"}
    (key,) = cm["data"]
    assert key.endswith(".override") and cm["data"][key] == snippet
    assert "coredns-custom" in r.kubectl
    # With CoreDNS answering NXDOMAIN there (as the regex says), musl resolves the seed pod's names.
    text = a.detail["resolv_conf_text"]
    oracle = table_oracle(
        {
            "*.com.openstacklocal": {"*": Answer("NXDOMAIN")},
            "*.openstacklocal": {"*": Answer("NOERROR")},
            "example.com": {"A": Answer("NOERROR", ("93.184.215.14",))},
        }
    )
    assert simulate_musl("example.com", text, oracle, version="1.2.3").ok
    assert any("hides real names" in t for t in r.tradeoffs)


def test_coredns_template_goes_into_a_known_corefile_before_forward():
    corefile = ".:53 {\n    errors\n    kubernetes cluster.local in-addr.arpa ip6.arpa\n    forward . /etc/resolv.conf\n    cache 30\n}\n"
    a = audit_workload(
        workload("alpine:3.16"), seed_ctx(coredns={"variant": "kubeadm", "corefile": corefile})
    )
    out = _remedy(a, "coredns").extra_files["coredns/Corefile"]
    assert out.index("template ANY ANY openstacklocal") < out.index("forward .")
    assert out.count("{") == out.count("}")


def test_search_dot_recommends_kubelet_and_offers_musl_1_2_4_base_image():
    ctx = seed_ctx(None, pool=pool("nameserver 192.168.0.2\nsearch .\n", version="v1.25.0"))
    a = audit_workload(workload("alpine:3.16"), ctx)
    assert a.report["risk"] == "affected"
    assert a.report["remediation"]["recommended"] == "kubelet"
    assert "1.25.1" in a.report["remediation"]["why"]
    base = _remedy(a, "base-image")
    assert base.usable and "3.18" in base.title


def test_base_image_alternative_says_newer_musl_does_not_help_nodata():
    base = _remedy(audit_workload(workload("alpine:3.16"), seed_ctx()), "base-image")
    assert "glibc" in base.title
    assert any("does NOT help" in t for t in base.tradeoffs)


def test_glibc_only_options_are_kept_and_flagged_as_ignored_by_musl():
    w = workload("alpine:3.19", dns_config={"options": [{"name": "single-request-reopen"}]})
    a = audit_workload(w, seed_ctx())
    r = _remedy(a, "dnsConfig")
    assert {"name": "single-request-reopen"} in r.dns_config["options"]
    assert any("single-request-reopen" in t and "musl ignores" in t for t in r.tradeoffs)


def test_check_patch_rejects_invalid_and_ineffective_patches():
    w = workload("alpine:3.16")
    a = audit_workload(w, seed_ctx())
    p = pool()

    def sim(text, name, version, nx):
        return simulate_musl(name, text, seed_oracle(), version=version)

    invalid = remediation.check_patch(
        w, "None", {"searches": ["svc.cluster.local"]}, p, ["example.com"], ["1.2.3"], sim
    )
    assert invalid and "nameservers" in invalid[0]
    # ClusterFirst + dnsConfig only appends: openstacklocal stays and musl still fails.
    useless = remediation.check_patch(
        w, "ClusterFirst", {"searches": ["svc.cluster.local"]}, p, ["example.com"], ["1.2.3"], sim
    )
    assert useless and "still fails example.com" in useless[0]
    assert a.report["remediation"]["recommended"] != "none"


def test_safe_workload_gets_no_remedy():
    a = audit_workload(workload("debian:12"), seed_ctx())
    assert a.remedies == [] and a.report["remediation"] == {
        "recommended": "none",
        "alternatives": [],
        "why": "Nothing to change.",
    }


def test_cloud_init_script_writes_the_field_then_restarts_the_kubelet(tmp_path):
    from dnsaudit.core import patches

    target = tmp_path / "resolv-pods.conf"
    config = tmp_path / "config.yaml"
    config.write_text("kind: KubeletConfiguration\nresolvConf: /run/systemd/resolve/resolv.conf\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"  # stands in for systemd: records the call instead of restarting anything
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/systemctl.called\n')
    fake.chmod(0o755)
    ci = yaml.safe_load(
        patches.cloud_init("nameserver 192.168.0.2\n", path=str(target), config_path=str(config))
    )
    script = ci["runcmd"][-1][-1]
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}

    # Without the file: nothing is changed and the kubelet is not restarted.
    p = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
    assert p.returncode != 0 and not (tmp_path / "systemctl.called").exists()
    assert "resolv.conf" in config.read_text() and str(target) not in config.read_text()
    # With the file (write_files runs before runcmd): field replaced, kubelet restarted.
    target.write_text(ci["write_files"][0]["content"])
    p = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert config.read_text().count("resolvConf:") == 1 and f"resolvConf: {target}" in config.read_text()
    assert (tmp_path / "systemctl.called").read_text().strip() == "restart kubelet"
    # A config without the field gets it appended.
    config.write_text("kind: KubeletConfiguration\n")
    assert subprocess.run(["sh", "-c", script], env=env).returncode == 0
    assert f"resolvConf: {target}" in config.read_text()


# --- every patch kind through the real kubectl, validated independently, re-simulated --------------------

PATCH_CASES = {
    "plain": dict(kind="Deployment"),
    "hostnetwork-clusterfirstwithhostnet": dict(
        kind="DaemonSet", host_network=True, dns_policy="ClusterFirstWithHostNet"
    ),
    "existing-dnsconfig-merged": dict(
        kind="Deployment",
        dns_config={"searches": ["corp.example"], "options": [{"name": "single-request-reopen"}]},
    ),
    "pod-recreated": dict(kind="Pod"),
    "job-recreated": dict(kind="Job"),
    "cronjob": dict(kind="CronJob"),
}


@pytest.mark.parametrize("case", PATCH_CASES)
def test_every_patch_kind_applies_with_kubectl_validates_and_fixes_musl(case, tmp_path):
    from dnsaudit.core import bundle
    from tests.audit.checks import validate_k8s

    w = workload("alpine:3.16", name=f"app-{case}", namespace="shop", **PATCH_CASES[case])
    a = audit_workload(w, seed_ctx())
    assert a.report["risk"] == "affected"
    r = _remedy(a, "dnsConfig")
    assert r.usable, r.problems
    live = manifest(w)
    validate_k8s(live)
    # The bundle's way: the patch file with --patch-file (the recreate pipeline patches locally too).
    doc = bundle.workload_patch_doc(a.report, r.to_dict())
    f = tmp_path / "patch.yaml"
    f.write_text(yaml.safe_dump(doc))
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(live))
    p = run(
        [
            kubectl(),
            "patch",
            "--local",
            "-f",
            str(tmp_path / "live.yaml"),
            "--type",
            "strategic",
            "--patch-file",
            str(f),
            "-o",
            "yaml",
        ]
    )
    assert p.returncode == 0, p.stderr
    patched = yaml.safe_load(p.stdout)
    # The .sh / kubectl way: the inline payload of the rendered command gives the same object.
    assert _kubectl_patch_local(live, _payload_of(r.kubectl), tmp_path) == patched
    validate_k8s(patched)
    spec = pod_spec_of(patched)
    assert spec["dnsPolicy"] == "None" and validate_dns_config("None", spec["dnsConfig"]) == []
    assert spec["containers"][0]["image"] == "alpine:3.16"
    if case == "existing-dnsconfig-merged":
        assert {"name": "single-request-reopen"} in spec["dnsConfig"]["options"]  # kept for glibc
        # The lists were replaced, not merged: the unprobed corp.example (an offender) is gone.
        assert "corp.example" not in spec["dnsConfig"]["searches"]
    if case.startswith("hostnetwork"):
        assert spec["hostNetwork"] is True
        assert spec["dnsConfig"]["nameservers"] == [CLUSTER_DNS]  # ClusterFirstWithHostNet used cluster DNS
    if w.kind in ("Pod", "Job"):
        assert "replace --force" in r.kubectl and "immutable" in r.kubectl
    res = _musl_after("shop", spec, SEED_NODE, "example.com", "1.2.3")
    assert res.ok, res.explanation
    assert not any("openstacklocal" in q.name for q in res.queries)


def test_the_yaml_memo_keeps_values_json_would_tell_apart_apart():
    """``dump_yaml`` memoises on the object's JSON form: None and NaN, or an int key and its string, must
    not share one cached rendering."""
    from dnsaudit.core.patches import dump_yaml

    assert dump_yaml({"x": None}) == "x: null\n"
    assert dump_yaml({"x": float("nan")}) == "x: .nan\n"
    assert dump_yaml({"a": [1, "1"]}) == "a:\n- 1\n- '1'\n"
