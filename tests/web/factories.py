"""Small factories for dashboard tests: users with roles, clusters, scans, node pools and workloads whose
``report``/``detail`` follow the shapes the scanner stores (shared report schema; traces, remediations and
image evidence for the workload page).

The example is the classic failure: a node search domain (``corp.example``) that answers NODATA, so musl
stops there and fails while glibc carries on to the absolute name.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.contrib.auth.models import Group, User
from django.utils import timezone

from clusters.models import Cluster, NodePoolResult, Scan, WorkloadResult, store_contents

PASSWORD = "correct-horse-battery-9"
_seq = itertools.count(1)

SEARCHES = ["{ns}.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"]


def make_user(role: str | None, username: str | None = None, password: str = PASSWORD) -> User:
    """A user in the group ``role`` (viewer/operator/admin) or with no role (``None``)."""
    user = User.objects.create_user(username or f"{role or 'norole'}{next(_seq)}", password=password)
    if role:
        group, _ = Group.objects.get_or_create(name=role)
        user.groups.add(group)
    return user


def make_cluster(name: str | None = None, **fields) -> Cluster:
    name = name or f"cluster-{next(_seq)}"
    defaults = {
        "context": f"{name}-ctx",
        "server": f"https://{name}.k8s.example:6443",
        "kubeconfig_encrypted": "not-a-real-token",
        "summary": {"auth_kind": "token", "user": "auditor"},
    }
    defaults.update(fields)
    return Cluster.objects.create(name=name, **defaults)


def make_scan(cluster: Cluster, status: str = Scan.SUCCEEDED, *, age_minutes: float = 5, **fields) -> Scan:
    """A scan ``age_minutes`` old; finished ones get start/finish times and a duration of 42 s."""
    now = timezone.now() - timedelta(minutes=age_minutes)
    values = {"status": status, "created_at": now - timedelta(seconds=43)}
    if status not in Scan.ACTIVE:
        values.update(started_at=now - timedelta(seconds=42), finished_at=now)
    else:
        values.update(started_at=now if status == Scan.RUNNING else None, stage="listing pods")
    values.update(fields)
    return Scan.objects.create(cluster=cluster, **values)


def probe(domain: str, name: str, a: str, aaaa: str) -> dict:
    nx = a == "NXDOMAIN" and aaaa == "NXDOMAIN"
    return {
        "domain": domain,
        "probe_name": name,
        "qname": f"{name}.{domain}",
        "server": "10.96.0.10",
        "a": a,
        "aaaa": aaaa,
        "musl": "continues" if nx else "stops",
        "glibc": "continues",
    }


def make_pool(scan: Scan, name: str = "default", **fields) -> NodePoolResult:
    searches = [{"domain": "corp.example", "origin": "node resolv.conf (observed)"}]
    values = {
        "nodes": ["node-a", "node-b", "node-c"],
        "kubelet_version": "v1.30.4",
        "architecture": "amd64",
        "cluster_dns": ["10.96.0.10"],
        "cluster_domain": "cluster.local",
        "resolv_conf_path": "/etc/resolv.conf",
        "node_resolv_conf": "nameserver 192.168.0.2\nsearch corp.example\noptions edns0\n",
        "searches": searches,
        "observed": {"kubelet_config": True, "node_resolv_conf": True},
        "probes": [
            probe("svc.cluster.local", "example.com", "NXDOMAIN", "NXDOMAIN"),
            probe("cluster.local", "example.com", "NXDOMAIN", "NXDOMAIN"),
            probe("corp.example", "example.com", "NODATA", "NODATA"),
            probe("svc.cluster.local", "api.github.com", "NXDOMAIN", "NXDOMAIN"),
            probe("corp.example", "api.github.com", "NODATA", "NODATA"),
        ],
        "notes": [],
    }
    values.update(fields)
    return NodePoolResult.objects.create(scan=scan, name=name, **values)


def resolution(libc: str, name: str, searches: list[str]) -> dict:
    """A simulated getaddrinfo: musl stops at the NODATA domain, glibc goes on to the absolute name."""
    candidates = [f"{name}.{s}" for s in searches]
    queries = []
    for cand in candidates:
        answer = "NODATA" if cand.endswith("corp.example") else "NXDOMAIN"
        for qtype in ("A", "AAAA"):
            queries.append(
                {"name": cand, "type": qtype, "server": "10.96.0.10", "answer": answer, "transport": "udp"}
            )
        if libc == "musl" and answer != "NXDOMAIN":
            return {
                "libc": "musl",
                "name": name,
                "ok": False,
                "error": "EAI_NODATA",
                "addresses": [],
                "queries": queries,
                "candidates": candidates[: candidates.index(cand) + 1],
                "stopped_at": cand,
                "elapsed": 0.004,
                "explanation": f"musl stopped at {cand}: the answer was NODATA, not NXDOMAIN, so it never tried {name} itself.",
                "version": "1.2.4",
            }
    queries += [
        {
            "name": name,
            "type": "A",
            "server": "10.96.0.10",
            "answer": "records 93.184.215.14",
            "transport": "udp",
        },
        {"name": name, "type": "AAAA", "server": "10.96.0.10", "answer": "NODATA", "transport": "udp"},
    ]
    return {
        "libc": libc,
        "name": name,
        "ok": True,
        "error": None,
        "addresses": ["93.184.215.14"],
        "queries": queries,
        "candidates": [*candidates, name],
        "stopped_at": None,
        "elapsed": 0.006,
        "explanation": f"{libc} went through every search domain and then resolved {name} as given.",
        "version": "2.36" if libc == "glibc" else "1.2.4",
    }


def remediations(namespace: str, kind: str, name: str) -> list[dict]:
    patch = (
        "spec:\n  template:\n    spec:\n      dnsPolicy: None\n      dnsConfig:\n"
        "        nameservers: [10.96.0.10]\n"
        f"        searches: [{namespace}.svc.cluster.local, svc.cluster.local, cluster.local]\n"
        '        options:\n          - name: ndots\n            value: "5"\n'
    )
    return [
        {
            "kind": "dnsConfig",
            "title": "Drop corp.example from this workload's search list",
            "why": "dnsPolicy None with a full dnsConfig keeps the cluster domains and removes the node's domain that answers NODATA.",
            "tradeoffs": ["Names under corp.example must then be written in full."],
            "recommended": True,
            "patch_yaml": patch,
            "kubectl": f"kubectl -n {namespace} patch {kind.lower()} {name} --type strategic --patch-file dnsConfig.patch.yaml",
            "kustomize": f"- path: dnsConfig.patch.yaml\n  target:\n    kind: {kind}\n    name: {name}\n",
            "extra_files": {},
            "checked": True,
            "problems": [],
        },
        {
            "kind": "kubelet",
            "title": "Give the kubelet a resolv.conf without corp.example",
            "why": "Fixes every pod on the pool at once.",
            "tradeoffs": ["Needs a node configuration change and a rollout of the pool."],
            "recommended": False,
            "patch_yaml": "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nresolvConf: /etc/kubernetes/resolv.conf\n",
            "kubectl": "",
            "kustomize": "",
            "extra_files": {"resolv.conf": "nameserver 192.168.0.2\n"},
            "checked": True,
            "problems": [],
        },
    ]


def make_workload(
    scan: Scan,
    namespace: str = "shop",
    kind: str = "Deployment",
    name: str | None = None,
    *,
    risk: str = "affected",
    libc: str = "musl",
    image: str = "registry.example/shop/cart:1.4-alpine",
    pool: str = "default",
) -> WorkloadResult:
    name = name or f"app-{next(_seq)}"
    searches = [s.format(ns=namespace) for s in SEARCHES]
    musl_version = "1.2.4" if libc == "musl" else ""
    fix = risk in ("affected", "at-risk")
    container = {
        "name": "main",
        "image": image,
        "libc": libc,
        "musl_version": musl_version or None,
        "confidence": "confirmed",
        "digest": "sha256:" + "ab" * 32,
    }
    report = {
        "namespace": namespace,
        "kind": kind,
        "name": name,
        "containers": [container],
        "dns_policy": "ClusterFirst",
        "host_network": False,
        "resolv_conf": {"nameservers": ["10.96.0.10"], "searches": searches, "options": ["ndots:5"]},
        "risk": risk,
        "reasons": (
            ["musl stops at corp.example (NODATA) before trying example.com itself"]
            if risk == "affected"
            else []
        ),
        "remediation": {
            "recommended": "dnsConfig" if fix else "none",
            "alternatives": ["kubelet"] if fix else [],
            "why": "Only this workload changes, and the patch was re-simulated."
            if fix
            else "Nothing to change.",
        },
        "node_pool": pool,
        "affected_names": ["example.com"] if risk == "affected" else [],
        "dns_config": None,
    }
    detail = {
        "resolv_conf_text": f"search {' '.join(searches)}\nnameserver 10.96.0.10\noptions ndots:5\n",
        "search_origin": {
            s: ("cluster" if "cluster.local" in s else "node resolv.conf (observed)") for s in searches
        },
        "nameserver_origin": {"10.96.0.10": "cluster"},
        "events": [],
        "error": None,
        "simulations": [
            {
                "name": "example.com",
                "musl_version": "1.2.4",
                "musl": resolution("musl", "example.com", searches),
                "glibc": resolution("glibc", "example.com", searches),
            }
        ]
        if libc == "musl"
        else [],
        "containers": [
            dict(
                container,
                os_id="alpine" if libc == "musl" else "debian",
                os_version="3.19.1" if libc == "musl" else "12",
                evidence=["/lib/ld-musl-x86_64.so.1 present", "apk database: musl 1.2.4_git20230717-r4"]
                if libc == "musl"
                else ["/lib/x86_64-linux-gnu/libc.so.6 present"],
                digest="sha256:" + "ab" * 32,
                platform="linux/amd64",
            )
        ],
        "remediations": remediations(namespace, kind, name) if fix else [],
        "validation": [
            {"kind": r["kind"], "checked": r["checked"], "problems": r["problems"]}
            for r in (remediations(namespace, kind, name) if fix else [])
        ],
        "assumed": [],
    }
    return WorkloadResult.objects.create(
        scan=scan,
        namespace=namespace,
        kind=kind,
        name=name,
        node_pool=pool,
        risk=risk,
        libc=libc,
        musl_version=musl_version,
        recommended="dnsConfig" if fix else "none",
        dns_policy="ClusterFirst",
        host_network=False,
        content=store_contents([(report, detail, f"{namespace}/{kind}/{name} {image}".lower())])[0],
    )


MIX = [  # (risk, libc, kind) cycled over generated rows
    ("affected", "musl", "Deployment"),
    ("safe", "glibc", "Deployment"),
    ("at-risk", "musl", "StatefulSet"),
    ("safe", "glibc", "DaemonSet"),
    ("unknown", "unknown", "CronJob"),
]


def make_report(cluster: Cluster, workloads: int = 12, *, namespaces: int = 3, **scan_fields) -> Scan:
    """A finished scan of ``cluster`` with one pool and ``workloads`` rows in a realistic mix; counts set."""
    scan = make_scan(cluster, **scan_fields)
    make_pool(scan)
    counts = {"affected": 0, "at-risk": 0, "safe": 0, "unknown": 0}
    rows = []
    for i in range(workloads):
        risk, libc, kind = MIX[i % len(MIX)]
        counts[risk] += 1
        rows.append((f"ns-{i % namespaces}", kind, f"wl-{i:04d}", risk, libc))
    for namespace, kind, name, risk, libc in rows:
        make_workload(
            scan,
            namespace,
            kind,
            name,
            risk=risk,
            libc=libc,
            image={"musl": "alpine:3.19", "glibc": "debian:12"}.get(libc, "registry.example/tools/static:2"),
        )
    Scan.objects.filter(pk=scan.pk).update(
        workloads_total=workloads,
        affected=counts["affected"],
        at_risk=counts["at-risk"],
        safe=counts["safe"],
        unknown=counts["unknown"],
        pods_seen=workloads * 2,
        images_inspected=2,
    )
    scan.refresh_from_db()
    return scan


# --- rows audited through the real core (the demo fleet) --------------------------------------------------


def demo_audits(spec=None) -> list:
    """``[(Workload, WorkloadAudit)]`` for every workload object of a demo cluster (``openstack_prod()`` by
    default), audited by :func:`dnsaudit.core.audit.audit_workloads` without a cluster: one node pool per
    pool of the spec (node file entered), the spec's upstream answers as probes, libc inferred from the
    image references. Pure: touches no database."""
    from dnsaudit.core.audit import audit_workloads
    from dnsaudit.core.manifests import workload_from_object
    from dnsaudit.testbed.fakekube.fleet import openstack_prod
    from tests.audit.helpers import demo_context

    spec = spec or openstack_prod()
    ctx = demo_context(spec)
    workloads = [w for w in (workload_from_object(obj) for obj in spec.objects) if w is not None]
    return list(zip(workloads, audit_workloads(workloads, ctx), strict=True))


def demo_audit(key: str, spec=None):
    """``(Workload, WorkloadAudit)`` of ``"<namespace>/<Kind>/<name>"`` in :func:`demo_audits`."""
    for w, audit in demo_audits(spec):
        if f"{w.namespace}/{w.kind}/{w.name}" == key:
            return w, audit
    raise LookupError(f"no workload {key} in the demo cluster")


def make_audited_workload(scan: Scan, key: str, spec=None, *, audited=None) -> WorkloadResult:
    """A stored row of demo workload ``key`` as the scan saves it: report and detail straight from the core
    audit, checked against the schema (``saving=True``) like the save stage does. ``audited``: the
    ``(Workload, WorkloadAudit)`` pair when the caller already has it (from :func:`demo_audits`)."""
    from dnsaudit.core.schema import check_detail, check_report

    w, audit = audited or demo_audit(key, spec)
    report, detail = audit.report, audit.detail
    # What dnsaudit/core/audit.py writes (the workload's own pod-level dnsConfig, None without one); kept
    # here so the row does not depend on the version of audit.py under test.
    report["dns_config"] = w.dns_config
    check_report(report, saving=True)
    check_detail(detail, saving=True)
    libcs = {c["libc"] for c in report["containers"]}
    versions = sorted(c["musl_version"] for c in report["containers"] if c["musl_version"])
    libc = (
        "unknown"
        if not libcs
        else libcs.pop()
        if len(libcs) == 1
        else ("musl" if "musl" in libcs else "mixed")
    )
    return WorkloadResult.objects.create(
        scan=scan,
        namespace=report["namespace"],
        kind=report["kind"],
        name=report["name"],
        node_pool=report["node_pool"],
        risk=report["risk"],
        libc=libc,
        musl_version=versions[0] if versions else "",
        recommended=report["remediation"]["recommended"],
        dns_policy=report["dns_policy"],
        host_network=report["host_network"],
        content=store_contents(
            [(report, detail, " ".join([key, *(c["image"] for c in report["containers"])]).lower())]
        )[0],
    )
