"""clusters.verify.verify_exec: audit reports from the real audit core, pods on the test API server."""

from __future__ import annotations

import pytest

from clusters.verify import pick_targets, verify_exec
from dnsaudit.boundary.kube import KubeClient
from dnsaudit.core.audit import AuditContext, audit_workloads
from dnsaudit.core.model import Container, LibcVerdict, NodePool, Workload
from dnsaudit.core.verify import finding_reason
from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.auth import VIEW_RULES, Rule
from dnsaudit.testbed.fakekube.exec import alpine, distroless
from dnsaudit.testbed.fakekube.pytest_fixtures import context_for
from tests.verify.conftest import K1_POD_FILE

OPENSTACK_NODE = "nameserver 192.168.0.2\nsearch openstacklocal\noptions edns0\n"
#: The per-workload fix (domain.md K11): dnsPolicy None with the cluster entries only.
FIX = {
    "nameservers": ["10.96.0.10"],
    "searches": ["app.svc.cluster.local", "svc.cluster.local", "cluster.local"],
    "options": [{"name": "ndots", "value": "5"}],
}
FIXED_POD_FILE = (
    "search app.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
)


def reports(*workloads: Workload) -> list[dict]:
    ctx = AuditContext(
        pools={
            "default": NodePool(
                name="default", node_resolv_conf=OPENSTACK_NODE, node_resolv_conf_source="entered"
            )
        },
        libc={
            "alpine:3.20": LibcVerdict(libc="musl", musl_version="1.2.5"),
            "debian:bookworm": LibcVerdict(libc="glibc"),
            "gcr.io/distroless/static-debian12": LibcVerdict(libc="static"),
        },
    )
    return [a.report for a in audit_workloads(list(workloads), ctx)]


def wl(name: str, image: str = "alpine:3.20", ns: str = "app", **kw) -> Workload:
    return Workload(namespace=ns, kind="Deployment", name=name, containers=(Container(name, image),), **kw)


@pytest.fixture
def cluster(fakekube):
    place = o.Placement(["node-1"])
    objs: list[dict] = []
    for ns, name in (("app", "web"), ("app", "fixed"), ("app", "api"), ("app", "static"), ("other", "tool")):
        objs += o.bare_pod(ns, f"{name}-1", [o.C(name, "alpine:3.20")], place)
    node, _ = place.next()
    objs.append(
        o.pod("web-0", "app", [o.C("web", "alpine:3.20")], o.PodOpts(), node_name=node, phase="Pending")
    )
    fakekube.reset(objs)
    return fakekube


@pytest.fixture
def client(cluster):
    c = KubeClient.from_context(context_for(cluster, "admin"), timeout=5)
    yield c
    c.close()


def test_pod_matching_the_computed_file_is_confirmed(cluster, client):
    (rep,) = reports(wl("web"))
    cluster.set_exec({"app/web-1": alpine(K1_POD_FILE)})
    (f,) = verify_exec(client, [(rep, "web-1", "web")])
    assert f["matches"] is True and f["differences"] == []
    assert f["musl_loader"] == "/lib/ld-musl-x86_64.so.1" and f["libc_confirmed"] is True
    assert f["observed_resolv_conf"] == K1_POD_FILE and f["error"] is None
    assert (f["namespace"], f["kind"], f["name"], f["pod"]) == ("app", "Deployment", "web", "web-1")
    assert finding_reason(f) is None


def test_pod_created_before_the_fix_still_has_openstacklocal(cluster, client):
    (rep,) = reports(wl("fixed", dns_policy="None", dns_config=FIX))
    assert "openstacklocal" not in rep["resolv_conf"]["searches"]  # the audit computed the fixed file
    cluster.set_exec({"app/fixed-1": alpine(K1_POD_FILE)})  # ... but the running pod predates the fix
    (f,) = verify_exec(client, [(rep, "fixed-1", "fixed")])
    assert f["matches"] is False
    (d,) = f["differences"]
    assert d["field"] == "searches" and "openstacklocal" in d["observed"]
    assert "restarted" in (finding_reason(f) or "")


def test_fixed_pod_with_the_fixed_file_matches(cluster, client):
    (rep,) = reports(wl("fixed", dns_policy="None", dns_config=FIX))
    cluster.set_exec({"app/fixed-1": alpine(FIXED_POD_FILE)})
    assert verify_exec(client, [(rep, "fixed-1", "fixed")])[0]["matches"] is True


def test_image_without_a_shell_or_cat_is_an_error_not_a_mismatch(cluster, client):
    (rep,) = reports(wl("api"))
    cluster.set_exec({"app/api-1": distroless(K1_POD_FILE)})
    (f,) = verify_exec(client, [(rep, "api-1", "api")])
    assert f["matches"] is None and f["libc_confirmed"] is None
    assert "no `cat`" in f["error"]


def test_musl_verdict_contradicted_by_lib(cluster, client):
    (rep,) = reports(wl("api"))
    glibc_fs = alpine(K1_POD_FILE)
    glibc_fs.files = {p: c for p, c in glibc_fs.files.items() if "musl" not in p}
    cluster.set_exec({"app/api-1": glibc_fs})
    (f,) = verify_exec(client, [(rep, "api-1", "api")])
    assert f["matches"] is True and f["musl_loader"] is None and f["libc_confirmed"] is False


def test_forbidden_namespace_is_asked_once_and_others_still_run(cluster):
    cluster.add_user(
        "auditor", rules=(*VIEW_RULES, Rule(("get", "create"), ("",), ("pods/exec",), namespaces=("other",)))
    )
    other_file = K1_POD_FILE.replace("app.svc.cluster.local", "other.svc.cluster.local")
    cluster.set_exec({"*": alpine(K1_POD_FILE), "other/tool-1": alpine(other_file)})
    reps = reports(wl("web"), wl("api"), wl("tool", ns="other"))
    targets = [(reps[0], "web-1", "web"), (reps[1], "api-1", "api"), (reps[2], "tool-1", "tool")]
    with KubeClient.from_context(context_for(cluster, "auditor"), timeout=5) as c:
        findings = verify_exec(c, targets)
    by = {f["name"]: f for f in findings}
    assert "needs pods/exec" in by["web"]["error"] and "needs pods/exec" in by["api"]["error"]
    assert by["web"]["matches"] is None
    assert by["tool"]["error"] is None and by["tool"]["matches"] is True
    exec_requests = [t for (_m, t, _u, _s) in cluster.faults.log if "/exec?" in t]
    assert sum("/namespaces/app/" in t for t in exec_requests) == 1  # the 403 was not repeated


def test_a_pod_that_cannot_exec_falls_back_to_the_next_one(cluster, client):
    (rep,) = reports(wl("web"))
    cluster.set_exec({"app/web-1": alpine(K1_POD_FILE)})
    (f,) = verify_exec(client, [(rep, "web-0", "web"), (rep, "web-1", "web")])  # web-0 is Pending
    assert f["pod"] == "web-1" and f["matches"] is True


def test_only_musl_workloads_with_running_pods_are_targets():
    reps = reports(wl("web"), wl("deb", image="debian:bookworm"), wl("gone"))
    running = {
        ("app", "Deployment", "web"): ["web-1", "web-2", "web-3"],
        ("app", "Deployment", "deb"): ["deb-1"],
    }
    targets = pick_targets(reps, running)
    assert [(t[0]["name"], t[1], t[2]) for t in targets] == [("web", "web-1", "web"), ("web", "web-2", "web")]


def test_time_budget_leaves_the_rest_unverified(cluster, client):
    reps = reports(wl("web"), wl("api"))
    cluster.set_exec({"*": alpine(K1_POD_FILE)})
    calls: list[tuple[int, int]] = []
    findings = verify_exec(
        client,
        [(reps[0], "web-1", "web"), (reps[1], "api-1", "api")],
        budget=0,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert all("time budget" in f["error"] for f in findings)
    assert calls == [(1, 2), (2, 2)]
