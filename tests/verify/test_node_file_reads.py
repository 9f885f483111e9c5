"""clusters.nodefiles.read_node_files with a fake client that has exec_read's semantics."""

from __future__ import annotations

import pytest

from clusters.nodefiles import read_node_files
from dnsaudit.boundary.kube import ExecResult, KubeError
from dnsaudit.core.model import KubeletDNS
from dnsaudit.core.nodefiles import MAX_POD_FILE_BYTES, NodeFileCandidate, plan_reads

CLUSTER_POD = (
    "search {ns}.svc.cluster.local svc.cluster.local cluster.local openstacklocal\n"
    "nameserver 10.96.0.10\noptions ndots:5\n"
)
HOST_FILE = "search openstacklocal\nnameserver 192.168.0.2\noptions edns0\n"
MISSING = ExecResult(
    "", "", 127, 'exec: "cat": executable file not found in $PATH: unknown', "v5.channel.k8s.io"
)


class FakeClient:
    """``answers`` maps "ns/pod/container" (or "ns/pod") to a str (the file), an ExecResult, or a KubeError."""

    def __init__(self, answers, clock=None, cost=0.0):
        self.answers = answers
        self.calls = []
        self.clock = clock
        self.cost = cost

    def exec_read(self, namespace, pod, container, command, *, timeout=10.0, max_bytes=1 << 20):
        assert max_bytes >= 64 * 1024  # the gatherer bounds what it reads
        assert command == ["cat", "/etc/resolv.conf"]
        assert timeout > 0
        self.calls.append(f"{namespace}/{pod}/{container}")
        if self.clock is not None:
            self.clock[0] += self.cost
        a = self.answers.get(f"{namespace}/{pod}/{container}", self.answers.get(f"{namespace}/{pod}"))
        if a is None:
            raise KubeError("Not found: pods", transient=False, status=404, reason="NotFound")
        if isinstance(a, KubeError):
            raise a
        if isinstance(a, ExecResult):
            return a
        return ExecResult(a, "", 0, "", "v5.channel.k8s.io")


def forbidden(ns):
    return KubeError(
        f'Access denied reading pods/exec in namespace {ns}: pods "x" is forbidden: cannot get resource "pods/exec"',
        transient=False,
        status=403,
        reason="Forbidden",
    )


def cand(ns, pod, node, *, host=False, containers=("app",)):
    return NodeFileCandidate(ns, pod, node, "ClusterFirst", host, False, tuple(containers))


POOLS = {"n1": "general", "n2": "general", "n3": "gpu"}


def test_reads_and_merges_two_pods_per_pool():
    plan = plan_reads(
        [cand("kube-system", "proxy", "n1", host=True), cand("app", "web", "n2"), cand("app", "g", "n3")],
        POOLS,
    )
    client = FakeClient(
        {
            "kube-system/proxy": HOST_FILE,
            "app/web": CLUSTER_POD.format(ns="app"),
            "app/g": CLUSTER_POD.format(ns="app"),
        }
    )
    res = read_node_files(client, plan, timeout=5, budget=60)
    general = res.pools["general"].reading
    assert general.scope == "file" and general.content == HOST_FILE
    assert general.sources == ("kube-system/proxy on node n1", "app/web on node n2")
    assert res.pools["gpu"].reading.content == "search openstacklocal\n"
    assert res.failures == []


def test_distroless_next_container_then_next_pod():
    plan = plan_reads(
        [cand("payments", "api-1", "n1", containers=("api", "shell")), cand("payments", "api-2", "n2")], POOLS
    )
    client = FakeClient(
        {
            "payments/api-1/api": MISSING,
            "payments/api-1/shell": CLUSTER_POD.format(ns="payments"),
            "payments/api-2": MISSING,
        }
    )
    res = read_node_files(client, plan, readings_per_pool=2)
    assert client.calls == ["payments/api-1/api", "payments/api-1/shell", "payments/api-2/app"]
    assert res.pools["general"].reading.searches == ("openstacklocal",)
    assert "payments/api-2 has no cat" in res.pools["general"].attempts[1]


def test_forbidden_namespace_skips_its_later_pods_and_failures_say_why():
    plan = plan_reads(
        [
            cand("kube-system", "a", "n1", host=True),
            cand("kube-system", "b", "n2", host=True),
            cand("app", "web", "n1"),
        ],
        POOLS,
    )
    client = FakeClient({"kube-system/a": forbidden("kube-system"), "app/web": MISSING})
    res = read_node_files(client, plan)
    assert client.calls == ["kube-system/a/app", "app/web/app"]
    assert res.pools["general"].reading is None
    assert "kube-system" in res.forbidden
    text = "\n".join(res.failures)
    assert "pool general: 2 pods tried, node search domains not observed" in text
    assert "kube-system/b: skipped, pods/exec is forbidden in namespace kube-system" in text
    assert "app/web has no cat" in text
    assert "pods/exec forbidden in namespace kube-system" in text


@pytest.mark.parametrize(
    "error",
    [
        KubeError("container app is not running", transient=False, status=400, reason="BadRequest"),
        KubeError("did not finish", transient=True, reason="Timeout"),
        KubeError("Exec failed: boom", transient=False, reason="ExecFailed"),
    ],
)
def test_per_pod_failures_move_to_the_next_pod(error):
    plan = plan_reads([cand("app", "a", "n1", containers=("x", "y")), cand("app", "b", "n2")], POOLS)
    client = FakeClient({"app/a": error, "app/b": CLUSTER_POD.format(ns="app")})
    res = read_node_files(client, plan)
    assert client.calls == ["app/a/x", "app/b/app"]
    assert res.pools["general"].reading.sources == ("app/b on node n2",)


def test_rejected_files_and_nonzero_exit_are_not_learned():
    plan = plan_reads([cand("app", "a", "n1"), cand("app", "b", "n2"), cand("app", "c", "n1")], POOLS)
    client = FakeClient(
        {
            "app/a": CLUSTER_POD.format(ns="other"),  # not this namespace's file: rejected
            "app/b": ExecResult("", "cat: can't open '/etc/resolv.conf': No such file or directory\n", 1),
            "app/c": "x" * (MAX_POD_FILE_BYTES * 4),
        }
    )
    res = read_node_files(client, plan)
    attempts = res.pools["general"].attempts
    assert res.pools["general"].reading is None
    assert "not first" in attempts[0] and "exited with 1" in attempts[1] and "bytes" in attempts[2]


def test_disagreement_is_reported():
    plan = plan_reads([cand("app", "a", "n1"), cand("app", "b", "n2")], POOLS)
    client = FakeClient(
        {
            "app/a": CLUSTER_POD.format(ns="app"),
            "app/b": CLUSTER_POD.format(ns="app").replace("openstacklocal", "corp.example"),
        }
    )
    res = read_node_files(client, plan)
    assert res.pools["general"].reading.searches == ("openstacklocal",)
    assert any("pods disagree" in f and "app/b on node n2" in f for f in res.failures)


def test_budget_bounds_the_step():
    clock = [0.0]
    plan = plan_reads([cand("app", "a", "n1"), cand("app", "b", "n2"), cand("app", "g", "n3")], POOLS)
    client = FakeClient({"app/a": MISSING, "app/b": MISSING, "app/g": CLUSTER_POD}, clock=clock, cost=6.0)
    res = read_node_files(client, plan, budget=10, now=lambda: clock[0])
    assert client.calls == ["app/a/app", "app/b/app"]
    assert res.budget_exhausted
    assert any("pools not read" in f and "gpu" in f for f in res.failures)


def test_unauthorized_stops_everything():
    plan = plan_reads([cand("app", "a", "n1"), cand("app", "b", "n2"), cand("app", "g", "n3")], POOLS)
    client = FakeClient(
        {
            "app/a": KubeError(
                "rejected the credentials (401)", transient=False, status=401, reason="Unauthorized"
            )
        }
    )
    res = read_node_files(client, plan)
    assert client.calls == ["app/a/app"]
    assert any("pools not read" in f and "401" in f for f in res.failures)


def test_pool_without_candidates_is_a_failure_in_words():
    plan = plan_reads([cand("app", "a", "n1")], POOLS)
    plan["gpu"] = type(plan["general"])(pool="gpu", kubelet=KubeletDNS())
    res = read_node_files(FakeClient({"app/a": CLUSTER_POD.format(ns="app")}), plan)
    assert any(f.startswith("pool gpu: no running pod") for f in res.failures)


# --- against the project's test API server (kubelet-like exec), through KubeClient -----------------------------

NODE_FILE = "nameserver 192.168.0.2\nsearch openstacklocal\noptions edns0\n"


@pytest.fixture
def node_cluster(fakekube):
    from dnsaudit.testbed.fakekube import objects as o

    objs = [o.namespace("app"), o.namespace("kube-system"), o.namespace("locked")]
    objs += [
        o.node(n, o.NodeInfo(kubelet_version="v1.31.4"), ip=ip)
        for n, ip in (("node-1", "10.0.1.11"), ("node-2", "10.0.1.12"))
    ]

    def pod(name, ns, node, containers, **kw):
        opts = o.PodOpts(
            **{k: kw.pop(k) for k in list(kw) if k in ("dns_policy", "dns_config", "host_network")}
        )
        return o.pod(name, ns, containers, opts, node_name=node, **kw)

    objs += [
        # kube-proxy: host network but distroless, no cat
        pod(
            "kube-proxy-a",
            "kube-system",
            "node-1",
            [o.C("kube-proxy", "registry.k8s.io/kube-proxy:v1.31.4")],
            host_network=True,
        ),
        # a host-network agent with a shell, in a namespace the auditor may not exec into
        pod("agent", "locked", "node-2", [o.C("agent", "alpine:3.20")], host_network=True),
        # ordinary ClusterFirst pods: one distroless + alpine sidecar, one debian
        pod(
            "api",
            "app",
            "node-1",
            [o.C("api", "gcr.io/distroless/static:nonroot"), o.C("shell", "alpine:3.20")],
        ),
        pod("web", "app", "node-2", [o.C("web", "debian:bookworm")]),
    ]
    fakekube.reset(objs)
    cluster = fakekube.default
    cluster.set_node_files({"node-1": NODE_FILE, "node-2": NODE_FILE})
    from dnsaudit.testbed.fakekube.auth import Rule

    cluster.add_user(
        "auditor",
        rules=(
            Rule(("get", "list", "watch"), ("",), ("pods", "nodes", "namespaces")),
            Rule(("get", "create"), ("",), ("pods/exec",), namespaces=("app", "kube-system")),
        ),
    )
    yield cluster
    cluster.clear_nodes()


def test_against_the_test_api_server(node_cluster):
    from dnsaudit.boundary.kube import KubeClient
    from dnsaudit.core.inventory import build_inventory, slim_pod
    from dnsaudit.testbed.fakekube.pytest_fixtures import context_for

    client = KubeClient.from_context(context_for(node_cluster, "auditor"), timeout=5)
    try:
        pods = [slim_pod(p) for p in client.list_all("pods")]
        inv = build_inventory({"pods": pods})
        libc = {
            "alpine:3.20": "musl",
            "debian:bookworm": "glibc",
            "gcr.io/distroless/static:nonroot": "static",
        }
        plan = plan_reads(inv.node_file_candidates, {"node-1": "general", "node-2": "general"}, prefer=libc)
        assert [r.candidate.pod for r in plan["general"].reads] == ["agent", "kube-proxy-a", "api", "web"]
        res = read_node_files(client, plan, timeout=5, budget=60)
    finally:
        client.close()
    general = res.pools["general"]
    assert general.reading is not None
    assert general.reading.scope == "searches"
    assert general.reading.content == "search openstacklocal\n"
    assert general.reading.sources == ("app/api on node node-1", "app/web on node node-2")
    attempts = "\n".join(general.attempts)
    assert "kube-system/kube-proxy-a has no cat" in attempts
    assert "locked/agent: pods/exec forbidden in namespace locked" in attempts
    assert "app/api (container shell) on node node-1: read" in attempts
    assert any(f.startswith("pods/exec forbidden in namespace locked") for f in res.failures)
