"""Cluster definitions for the demo fleet, tests and benchmarks.

A ``ClusterSpec`` is plain data: the objects the API serves, the node pools with their kubelet facts
and the *content* of each pool's node resolv.conf (which the API does not expose: ``install`` loads it as
the hidden file of the pool's nodes, so only exec in their pods shows it, as on a real cluster; an admin may
also enter it in the cluster's settings), what the upstream resolver answers for names under each node
search domain (for DNS lab setups), and the users with their permissions.

``demo_fleet()`` returns the three demo clusters; ``scale_cluster()`` a large one for benchmarks.
``serve(specs)`` loads specs into a ``FakeKube`` (one cluster per path prefix).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.auth import ADMIN_RULES, AUDITOR_RULES, Rule
from dnsaudit.testbed.fakekube.objects import C, NodeInfo, Placement, PodOpts
from dnsaudit.testbed.fakekube.server import Cluster, FakeKube

#: The user the demo kubeconfigs use: the read-only permissions dnsaudit documents.
DEMO_USER = "dnsaudit"


@dataclass
class PoolSpec:
    """One node pool: its nodes, kubelet facts, node resolv.conf content and configz behaviour."""

    name: str
    nodes: list[str]
    node_ips: dict[str, str]
    info: NodeInfo
    #: Content of the file on the node that the kubelet reads (its ``resolvConf``). The API does not expose
    #: it; ``ClusterSpec.install`` makes it the hidden node file, revealed only by exec in the pool's pods.
    node_resolv_conf: str
    resolv_conf_path: str = "/etc/resolv.conf"  # kubelet resolvConf (configz)
    cluster_dns: tuple[str, ...] = ("10.96.0.10",)
    cluster_domain: str = "cluster.local"
    configz_status: int = 200  # 200 ok; 403 kubelet authz; 502/503 kubelet unreachable

    def kubelet_config(self) -> dict:
        return o.kubelet_config(
            cluster_dns=self.cluster_dns,
            cluster_domain=self.cluster_domain,
            resolv_conf=self.resolv_conf_path,
        )

    @property
    def placement(self) -> Placement:
        return Placement(self.nodes, self.node_ips)


@dataclass
class UserSpec:
    name: str
    rules: tuple[Rule, ...]
    auth: str = "cert"  # "cert" or "token"
    groups: tuple[str, ...] = ()


@dataclass
class ClusterSpec:
    """A simulated cluster, as data.

    ``objects``: manifests the API serves. ``pools``: node pools. ``upstream``: what the upstream
    resolver answers for names under each node search domain (``"SERVFAIL"``, ``"NODATA"``, ``"NXDOMAIN"``).
    ``intent``: ``"<ns>/<Kind>/<name>"`` → why the workload is in the fleet, in words (for humans writing
    expectations; not computed by anything). ``users``: the first is the one demo kubeconfigs use.
    """

    name: str
    description: str
    distribution: str  # "kubeadm" | "k3s" | "managed"
    pools: list[PoolSpec]
    objects: list[dict]
    users: list[UserSpec] = field(default_factory=list)
    kyverno: bool = False
    upstream: dict[str, str] = field(default_factory=dict)
    intent: dict[str, str] = field(default_factory=dict)
    demo: bool = True
    #: How the demo registers it: the spec pools whose node file the admin enters (None: every pool), and
    #: whether exec reads are allowed (then the scan observes the files it can read in pods).
    entered_pools: tuple[str, ...] | None = None
    allow_exec: bool = False

    @property
    def node_resolv_conf(self) -> dict[str, str]:
        """Pool name → node resolv.conf content."""
        return {p.name: p.node_resolv_conf for p in self.pools}

    @property
    def cluster_dns(self) -> tuple[str, ...]:
        return self.pools[0].cluster_dns if self.pools else ("10.96.0.10",)

    def install(self, cluster: Cluster) -> None:
        """Load objects, users and per-node kubelet behaviour into a server cluster, and each pool's
        ``node_resolv_conf`` as the hidden file of its nodes (node facts of an earlier install are dropped).

        Every kubelet keeps its config even when its ``configz`` answers 403/502/503 (only the endpoint
        fails), so exec in its pods still shows what that kubelet wrote."""
        cluster.reset(self.objects)
        cluster.clear_nodes()
        for u in self.users or [UserSpec("admin", ADMIN_RULES)]:
            cluster.add_user(u.name, cert=u.auth == "cert", token=None, groups=u.groups, rules=u.rules)
        for p in self.pools:
            cfg = p.kubelet_config()
            for n in p.nodes:
                cluster.set_kubelet(n, cfg, status=p.configz_status)
                cluster.set_node_file(n, p.node_resolv_conf)


def serve(specs: list[ClusterSpec], server: FakeKube | None = None) -> FakeKube:
    """A started server with each spec as a cluster under ``/clusters/<name>`` (reuses ``server`` if given)."""
    srv = server or FakeKube().start()
    for spec in specs:
        cluster = srv.clusters.get(spec.name) or srv.add_cluster(spec.name)
        spec.install(cluster)
    return srv


# --- helpers -----------------------------------------------------------------------------------------------


def _pool(cluster: str, name: str, count: int, info: NodeInfo, subnet: str, **kw) -> PoolSpec:
    nodes = [f"{cluster}-{name}-{o.suffix(cluster + name + str(i), 5)}" for i in range(count)]
    ips = {n: f"{subnet}.{11 + i}" for i, n in enumerate(nodes)}
    return PoolSpec(name, nodes, ips, info, **kw)


def _nodes(pools: list[PoolSpec], images: list[str]) -> list[dict]:
    return [
        o.node(n, p.info, ip=p.node_ips[n], images=images, age=i * 60)
        for p in pools
        for i, n in enumerate(p.nodes)
    ]


def _coredns(
    cluster_dns: str, corefile: str, image: str, place: Placement, *, k3s: bool = False
) -> list[dict]:
    opts = PodOpts(
        dns_policy="Default",
        service_account="coredns",
        node_selector={"kubernetes.io/os": "linux"},
        tolerations=[
            {"key": "CriticalAddonsOnly", "operator": "Exists"},
            {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
        ],
    )
    dep = o.deployment(
        "kube-system",
        "coredns",
        [C("coredns", image, ("/coredns",), 53, "100m", "70Mi")],
        place,
        replicas=2,
        opts=opts,
        labels={"k8s-app": "kube-dns"},
    )
    data = {"Corefile": corefile}
    if k3s:
        data["NodeHosts"] = ""
    return [
        *dep,
        o.configmap("kube-system", "coredns", data, labels={"k8s-app": "kube-dns"} if k3s else None),
        o.service(
            "kube-system",
            "kube-dns",
            cluster_dns,
            [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")],
            selector={"k8s-app": "kube-dns"},
            labels={
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS",
            },
        ),
        o.service_account("kube-system", "coredns"),
    ]


def _base(namespaces: list[str], api_ip: str) -> list[dict]:
    out: list[dict] = []
    for ns in namespaces:
        out.append(o.namespace(ns))
        out.extend(o.namespace_defaults(ns))
    out.append(
        o.service(
            "default",
            "kubernetes",
            api_ip,
            [("https", 443, "TCP")],
            labels={"component": "apiserver", "provider": "kubernetes"},
        )
    )
    return out


def _fixed_dns_config(ns: str, domain: str = "cluster.local", dns: str = "10.96.0.10") -> dict:
    """A complete ``dnsPolicy: None`` dnsConfig: the cluster search list without the node's domains."""
    return {
        "nameservers": [dns],
        "searches": [f"{ns}.svc.{domain}", f"svc.{domain}", domain],
        "options": [{"name": "ndots", "value": "5"}],
    }


# --- demo clusters --------------------------------------------------------------------------------------------


def openstack_prod() -> ClusterSpec:
    """The seed's situation: an OpenStack closed network whose nodes carry ``search openstacklocal`` and
    whose upstream resolver answers SERVFAIL for names under it."""
    name = "openstack-prod"
    node_conf = "nameserver 10.10.0.2\nsearch openstacklocal\n"
    amd = NodeInfo(
        kubelet_version="v1.30.6",
        os_image="Ubuntu 22.04.5 LTS",
        kernel="5.15.0-126-generic",
        instance_type="m1.xlarge",
        zone="nova",
        region="RegionOne",
        extra_labels={"magnum.openstack.org/nodegroup": "general"},
    )
    arm = NodeInfo(
        kubelet_version="v1.30.6",
        architecture="arm64",
        os_image="Ubuntu 22.04.5 LTS",
        kernel="5.15.0-1063-aws",
        instance_type="a1.large",
        zone="nova",
        region="RegionOne",
        extra_labels={"magnum.openstack.org/nodegroup": "arm"},
    )
    infra = NodeInfo(
        kubelet_version="v1.29.10",
        os_image="Ubuntu 22.04.5 LTS",
        instance_type="m1.large",
        zone="nova-infra",
        region="RegionOne",
        extra_labels={"magnum.openstack.org/nodegroup": "infra"},
    )
    pools = [
        _pool(name, "general", 3, amd, "10.10.1", node_resolv_conf=node_conf),
        _pool(name, "arm", 2, arm, "10.10.2", node_resolv_conf=node_conf),
        # The infra pool sits behind a firewall: its kubelets are unreachable from the API server (502),
        # so the scan must assume its kubelet facts from the settings.
        _pool(name, "infra", 2, infra, "10.10.3", node_resolv_conf=node_conf, configz_status=502),
    ]
    general, armp, infrap = (p.placement for p in pools)
    every = Placement(
        [n for p in pools for n in p.nodes], {k: v for p in pools for k, v in p.node_ips.items()}
    )
    nss = [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "kyverno",
        "payments",
        "storefront",
        "data",
        "platform",
        "monitoring",
    ]
    objs = _base(nss, "10.96.0.1")
    objs += _nodes(pools, ["alpine:3.19", "debian:bookworm-slim", "registry.k8s.io/kube-proxy:v1.31.4"])
    objs += _coredns("10.96.0.10", o.kubeadm_corefile(), "registry.k8s.io/coredns/coredns:v1.11.3", infrap)
    objs += o.daemonset(
        "kube-system",
        "kube-proxy",
        [C("kube-proxy", "registry.k8s.io/kube-proxy:v1.31.4")],
        every,
        opts=PodOpts(host_network=True, service_account="kube-proxy"),
    )
    objs += o.kyverno_crds()
    objs += o.deployment(
        "kyverno",
        "kyverno-admission-controller",
        [C("kyverno", "ghcr.io/kyverno/kyverno:v1.12.5")],
        infrap,
        replicas=1,
        opts=PodOpts(service_account="kyverno-admission-controller"),
    )
    objs += [
        o.service_account("payments", "payments-api", pull_secrets=["regcred"]),
        o.pull_secret(
            "payments", "regcred", "registry.openstack.example:5000", "payments-ci", "not-a-real-password"
        ),
    ]
    objs += o.deployment(
        "payments",
        "payments-api",
        [C("api", "python:3.12-alpine", ("gunicorn", "app:app"), 8000)],
        general,
        replicas=3,
        opts=PodOpts(service_account="payments-api", image_pull_secrets=("regcred",)),
    )
    objs += o.deployment(
        "payments",
        "fx-rates",
        [C("fx", "alpine:3.19", ("/usr/local/bin/fx-rates",), 8080)],
        general,
        replicas=2,
        opts=PodOpts(dns_policy="None", dns_config=_fixed_dns_config("payments")),
    )
    objs += o.statefulset(
        "payments", "ledger-db", [C("postgres", "postgres:16", port=5432, memory="1Gi")], general, replicas=2
    )
    objs += o.deployment("storefront", "web", [C("nginx", "nginx:1.27-alpine", port=80)], armp, replicas=2)
    objs += o.deployment(
        "storefront",
        "checkout",
        [C("checkout", "debian:bookworm-slim", ("/app/checkout",), 8080)],
        general,
        replicas=2,
    )
    objs += o.deployment(
        "storefront",
        "static-assets",
        [C("assets", "gcr.io/distroless/static-debian12", ("/assets-server",), 8080)],
        armp,
        replicas=2,
    )
    objs += o.deployment(
        "storefront",
        "search-indexer",
        [C("indexer", "ubuntu:22.04", ("/opt/indexer/run",))],
        general,
        replicas=1,
    )
    objs += o.cronjob(
        "data",
        "etl-nightly",
        [C("etl", "alpine:3.19", ("/bin/sh", "-c", "/opt/etl/run.sh"))],
        general,
        schedule="15 2 * * *",
    )
    objs += o.cronjob(
        "data",
        "report-export",
        [C("export", "python:3.12-slim", ("python", "-m", "export"))],
        general,
        schedule="0 6 * * 1",
        suspend=True,
    )
    objs += o.statefulset("data", "cache", [C("redis", "redis:7.2-alpine", port=6379)], general, replicas=1)
    objs += o.daemonset(
        "platform",
        "node-agent",
        [C("agent", "alpine:3.19", ("/usr/bin/node-agent",))],
        every,
        opts=PodOpts(host_network=True, dns_policy="ClusterFirstWithHostNet"),
    )
    objs += o.deployment(
        "platform", "legacy-worker", [C("worker", "alpine:3.16", ("/worker",))], general, replicas=0
    )
    objs += o.bare_pod("default", "dns-debug", [C("shell", "busybox:1.36-musl", ("sleep", "3600"))], general)
    objs += o.deployment(
        "monitoring",
        "metrics-relay",
        [C("relay", "cgr.dev/chainguard/static:latest", ("/relay",))],
        infrap,
        replicas=1,
    )
    # Exec reads are granted by RoleBindings in the namespaces whose teams agreed (payments, data): the
    # general pool's node file is observed in their pods; the arm pool runs no pod there (its file is
    # entered by the demo); the infra pool's pods are elsewhere and distroless (its file stays unknown).
    exec_rule = Rule(("get", "create"), ("",), ("pods/exec",), namespaces=("payments", "data"))
    users = [
        UserSpec(DEMO_USER, (*AUDITOR_RULES, exec_rule)),
        UserSpec("admin", ADMIN_RULES, groups=("system:masters",)),
    ]
    intent = {
        "payments/Deployment/payments-api": "musl (python:3.12-alpine) + search openstacklocal with SERVFAIL: affected",
        "payments/Deployment/fx-rates": "musl but already fixed with dnsPolicy None and a full dnsConfig",
        "payments/StatefulSet/ledger-db": "glibc (postgres:16): not affected",
        "storefront/Deployment/web": "musl (nginx:1.27-alpine) on the arm64 pool: affected",
        "storefront/Deployment/checkout": "glibc (debian): not affected",
        "storefront/Deployment/static-assets": "static distroless: no libc resolver, not affected",
        "storefront/Deployment/search-indexer": "glibc (ubuntu): not affected",
        "data/CronJob/etl-nightly": "musl (alpine:3.19) CronJob: affected",
        "data/CronJob/report-export": "suspended CronJob, glibc: not affected",
        "data/StatefulSet/cache": "musl (redis:7.2-alpine): affected",
        "platform/DaemonSet/node-agent": "hostNetwork + ClusterFirstWithHostNet, musl: affected on every pool",
        "platform/Deployment/legacy-worker": "scaled to zero, musl alpine:3.16: audited from its template",
        "default/Pod/dns-debug": "bare Pod, busybox musl: affected",
        "monitoring/Deployment/metrics-relay": "chainguard static, on the infra pool whose configz is 502",
        "kube-system/Deployment/coredns": "dnsPolicy Default, static binary (Go resolver): not affected",
        "kube-system/DaemonSet/kube-proxy": "hostNetwork, glibc: not affected",
    }
    return ClusterSpec(
        name,
        "OpenStack closed network: nodes search openstacklocal, upstream answers SERVFAIL under it",
        "kubeadm",
        pools,
        objs,
        users,
        kyverno=True,
        upstream={"openstacklocal": "SERVFAIL"},
        intent=intent,
        # The three sources side by side: general observed (exec), arm entered, infra unknown.
        entered_pools=("arm",),
        allow_exec=True,
    )


def edge_k3s() -> ClusterSpec:
    """k3s on kubelet v1.25.0 with ``search .`` in the host resolv.conf (k3s#6132, kubernetes#112135)."""
    name = "edge-k3s"
    node_conf = "nameserver 192.168.8.1\nsearch .\n"
    info = NodeInfo(
        kubelet_version="v1.25.0+k3s1",
        os_image="Ubuntu 22.04.1 LTS",
        kernel="5.15.0-1012-raspi",
        runtime="containerd://1.6.8-k3s1",
        architecture="arm64",
        instance_type="k3s",
        zone="site-1",
        region="edge",
        extra_labels={"node.kubernetes.io/instance-type": "k3s"},
        cpu="4",
        memory="7997456Ki",
    )
    server_info = NodeInfo(
        **{
            **info.__dict__,
            "architecture": "amd64",
            "kernel": "5.15.0-48-generic",
            "control_plane": True,
            "extra_labels": {
                "node.kubernetes.io/instance-type": "k3s",
                "node-role.kubernetes.io/master": "true",
            },
        }
    )
    kw = {
        "node_resolv_conf": node_conf,
        "resolv_conf_path": "/run/systemd/resolve/resolv.conf",
        "cluster_dns": ("10.43.0.10",),
    }
    pools = [
        _pool(name, "server", 1, server_info, "192.168.8", **kw),
        _pool(name, "agents", 3, info, "192.168.9", **kw),
    ]
    srv, agents = (p.placement for p in pools)
    every = Placement(
        [n for p in pools for n in p.nodes], {k: v for p in pools for k, v in p.node_ips.items()}
    )
    objs = _base(
        ["default", "kube-system", "kube-public", "kube-node-lease", "sensors", "historian"], "10.43.0.1"
    )
    objs += _nodes(pools, ["alpine:3.16", "rancher/mirrored-coredns-coredns:1.10.1"])
    objs += _coredns("10.43.0.10", o.k3s_corefile(), "rancher/mirrored-coredns-coredns:1.10.1", srv, k3s=True)
    objs.append(o.configmap("kube-system", "coredns-custom", {"log.override": "log\n"}))
    objs += o.deployment(
        "sensors",
        "sensor-gateway",
        [C("gateway", "alpine:3.16", ("/usr/bin/gateway",), 1883)],
        agents,
        replicas=2,
    )
    objs += o.daemonset("sensors", "mqtt-bridge", [C("bridge", "alpine:3.16", ("/usr/bin/bridge",))], every)
    objs += o.deployment(
        "sensors",
        "telemetry-shipper",
        [C("shipper", "alpine:3.18", ("/usr/bin/shipper",))],
        agents,
        replicas=1,
    )
    objs += o.statefulset(
        "historian",
        "historian",
        [C("historian", "debian:bookworm", ("/opt/historian/bin/run",))],
        agents,
        replicas=1,
    )
    users = [UserSpec(DEMO_USER, AUDITOR_RULES), UserSpec("admin", ADMIN_RULES, groups=("system:masters",))]
    intent = {
        "sensors/Deployment/sensor-gateway": "alpine 3.16 (musl 1.2.3) with 'search .' from kubelet 1.25.0: affected",
        "sensors/DaemonSet/mqtt-bridge": "alpine 3.16 (musl 1.2.3) on every node: affected",
        "sensors/Deployment/telemetry-shipper": "alpine 3.18 (musl 1.2.4): behaves differently from 1.2.3",
        "historian/StatefulSet/historian": "glibc (debian): not affected",
    }
    return ClusterSpec(
        name,
        "k3s edge site, kubelet v1.25.0, host resolv.conf has 'search .'",
        "k3s",
        pools,
        objs,
        users,
        upstream={".": "NXDOMAIN"},
        intent=intent,
    )


def managed_clean() -> ClusterSpec:
    """A clean managed cluster: node resolv.conf with only cluster-safe settings; nothing affected."""
    name = "managed-clean"
    node_conf = "nameserver 169.254.169.254\n"
    info = NodeInfo(
        kubelet_version="v1.31.4",
        os_image="Container-Optimized OS from Google",
        kernel="6.1.112+",
        runtime="containerd://1.7.24",
        instance_type="e2-standard-4",
        zone="europe-west1-b",
        region="europe-west1",
        extra_labels={"cloud.google.com/gke-nodepool": "default-pool"},
    )
    pools = [
        _pool(
            name,
            "default-pool",
            3,
            info,
            "10.132.0",
            node_resolv_conf=node_conf,
            resolv_conf_path="/etc/resolv.conf",
            cluster_dns=("10.96.0.10",),
        )
    ]
    place = pools[0].placement
    objs = _base(
        ["default", "kube-system", "kube-public", "kube-node-lease", "shop", "analytics"], "10.96.0.1"
    )
    objs += _nodes(pools, ["nginx:1.27-alpine"])
    objs += _coredns("10.96.0.10", o.kubeadm_corefile(), "registry.k8s.io/coredns/coredns:v1.11.3", place)
    objs.append(
        o.configmap(
            "kube-system",
            "node-local-dns",
            {
                "Corefile": (
                    "cluster.local:53 {\n    errors\n    cache {\n        success 9984 30\n        denial 9984 5\n    }\n"
                    "    reload\n    loop\n    bind 169.254.20.10 10.96.0.10\n    forward . __PILLAR__CLUSTER__DNS__ {\n"
                    "        force_tcp\n    }\n    prometheus :9253\n    health 169.254.20.10:8080\n}\n"
                    ".:53 {\n    errors\n    cache 30\n    reload\n    loop\n    bind 169.254.20.10 10.96.0.10\n"
                    "    forward . __PILLAR__UPSTREAM__SERVERS__\n    prometheus :9253\n}\n"
                )
            },
            labels={"addonmanager.kubernetes.io/mode": "Reconcile"},
        )
    )
    objs += o.daemonset(
        "kube-system",
        "node-local-dns",
        [C("node-cache", "registry.k8s.io/dns/k8s-dns-node-cache:1.23.1", port=53)],
        place,
        opts=PodOpts(host_network=True, dns_policy="Default", service_account="node-local-dns"),
    )
    objs += o.deployment("shop", "storefront", [C("nginx", "nginx:1.27-alpine", port=80)], place, replicas=3)
    objs += o.deployment(
        "shop", "cart", [C("cart", "python:3.12-slim", ("python", "-m", "cart"), 8080)], place, replicas=2
    )
    objs += o.deployment(
        "analytics",
        "collector",
        [C("collector", "gcr.io/distroless/base-debian12", ("/collector",))],
        place,
        replicas=2,
    )
    objs += o.cronjob(
        "analytics", "rollup", [C("rollup", "alpine:3.20", ("/rollup",))], place, schedule="0 * * * *"
    )
    users = [UserSpec(DEMO_USER, AUDITOR_RULES), UserSpec("admin", ADMIN_RULES, groups=("system:masters",))]
    intent = {
        "shop/Deployment/storefront": "musl, but the node file has no search domains: safe",
        "shop/Deployment/cart": "glibc: safe",
        "analytics/Deployment/collector": "glibc distroless: safe",
        "analytics/CronJob/rollup": "musl alpine 3.20, no problematic search domain: safe",
    }
    return ClusterSpec(
        name,
        "Managed cluster with only cluster-safe resolver settings",
        "managed",
        pools,
        objs,
        users,
        intent=intent,
    )


def demo_fleet() -> list[ClusterSpec]:
    """The demo fleet: ``openstack-prod``, ``edge-k3s``, ``managed-clean``."""
    return [openstack_prod(), edge_k3s(), managed_clean()]


# --- scale ------------------------------------------------------------------------------------------------------


_SCALE_BASES = [
    "alpine:3.19",
    "alpine:3.16",
    "python:3.12-alpine",
    "nginx:1.27-alpine",
    "debian:bookworm-slim",
    "ubuntu:22.04",
    "gcr.io/distroless/static-debian12",
    "python:3.12-slim",
    "node:20-alpine",
    "postgres:16",
]


def scale_images(n: int) -> list[str]:
    """``n`` distinct image refs: the base catalogue, then ``registry.example.com/team-X/svc-Y:tag`` names."""
    out = list(_SCALE_BASES[: min(n, len(_SCALE_BASES))])
    i = 0
    while len(out) < n:
        out.append(f"registry.example.com/team-{i % 37}/svc-{i}:1.{i % 9}.{i % 13}")
        i += 1
    return out


def scale_cluster(
    pods: int = 50_000,
    *,
    namespaces: int = 200,
    images: int = 300,
    nodes: int = 200,
    workloads: int = 400,
    name: str = "scale",
) -> ClusterSpec:
    """A large realistic cluster: ``workloads`` Deployments (plus a few StatefulSets/CronJobs) spread over
    ``namespaces``, ``pods`` running pods in total, ``images`` distinct images, ``nodes`` nodes in 4 pools.

    Builds every object through the same builders as the demo fleet (about 10 s for 50,000 pods).
    """
    pools = []
    per_pool = max(1, nodes // 4)
    for i, (arch, zone) in enumerate((("amd64", "a"), ("amd64", "b"), ("arm64", "a"), ("amd64", "c"))):
        info = NodeInfo(
            architecture=arch,
            zone=f"zone-{zone}",
            instance_type=f"m{i}.2xlarge",
            extra_labels={"pool": f"pool-{i}"},
        )
        pools.append(
            _pool(
                name,
                f"pool{i}",
                per_pool,
                info,
                f"10.{20 + i}.{i}",
                node_resolv_conf="nameserver 10.0.0.2\nsearch corp.example.com\n",
            )
        )
    # /24 subnets cannot hold more than ~240 hosts; spread IPs over a wider range deterministically.
    for p in pools:
        p.node_ips = {n: f"10.{20 + pools.index(p)}.{j // 200}.{j % 200 + 10}" for j, n in enumerate(p.nodes)}
    nss = [f"team-{i:03d}" for i in range(namespaces)]
    objs = _base(["default", "kube-system", *nss], "10.96.0.1")
    objs += _nodes(pools, [])
    place_all = [p.placement for p in pools]
    imgs = scale_images(images)
    per = max(1, pods // workloads)
    made = 0
    w = 0
    while made < pods:
        ns = nss[w % len(nss)]
        n = min(per, pods - made)
        img = imgs[w % len(imgs)]
        img2 = imgs[(w * 7 + 3) % len(imgs)]
        containers = [C("app", img, port=8080)] + ([C("sidecar", img2)] if w % 3 == 0 else [])
        place = place_all[w % len(place_all)]
        wname = f"svc-{w:04d}-{hashlib.sha1(str(w).encode(), usedforsecurity=False).hexdigest()[:4]}"
        if w % 25 == 7:
            objs += o.statefulset(ns, wname, containers, place, replicas=n)
        else:
            objs += o.deployment(ns, wname, containers, place, replicas=n)
        made += n
        w += 1
    return ClusterSpec(
        name,
        f"{pods} pods for benchmarks",
        "kubeadm",
        pools,
        objs,
        [UserSpec(DEMO_USER, AUDITOR_RULES), UserSpec("admin", ADMIN_RULES)],
        demo=False,
    )
