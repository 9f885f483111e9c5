"""KubeClient.exec_read (the Kubernetes boundary) against the test API server's WebSocket exec."""

from __future__ import annotations

import dataclasses
import time

import pytest

from dnsaudit.boundary.kube import KubeClient, KubeError
from dnsaudit.testbed.fakekube.auth import VIEW_RULES, Rule
from dnsaudit.testbed.fakekube.exec import ExecOutcome, alpine, debian, distroless
from dnsaudit.testbed.fakekube.pytest_fixtures import context_for
from tests.support import free_port
from tests.verify.conftest import K1_POD_FILE


@pytest.fixture
def kc(app_cluster):
    def make(user: str = "admin", auth: str | None = None) -> KubeClient:
        return KubeClient.from_context(context_for(app_cluster, user, auth=auth), timeout=5)

    clients: list[KubeClient] = []

    def tracked(*a, **kw) -> KubeClient:
        c = make(*a, **kw)
        clients.append(c)
        return c

    yield tracked
    for c in clients:
        c.close()


@pytest.mark.parametrize("auth", ["cert", "token"])
def test_exec_read_returns_stdout_and_zero(app_cluster, kc, auth):
    app_cluster.set_exec({"app/web": alpine(K1_POD_FILE)})
    res = kc(auth=auth).exec_read("app", "web", "web", ["cat", "/etc/resolv.conf"])
    assert (res.stdout, res.stderr, res.exit_code) == (K1_POD_FILE, "", 0)
    assert res.protocol == "v5.channel.k8s.io"


def test_exec_read_returns_stderr_and_the_exit_code(app_cluster, kc):
    app_cluster.set_exec({"app/web": alpine(K1_POD_FILE)})
    res = kc().exec_read("app", "web", None, ["sh", "-c", "echo out; cat /missing; exit 7"])
    assert res.stdout == "out\n"
    assert "can't open '/missing'" in res.stderr
    assert res.exit_code == 7 and not res.executable_missing
    assert "exit code 7" in res.message


def test_missing_executable_is_127_not_an_error_under_containerd(app_cluster, kc):
    app_cluster.set_exec({"app/web": distroless(K1_POD_FILE)})
    res = kc().exec_read("app", "web", "web", ["cat", "/etc/resolv.conf"])
    assert res.exit_code == 127 and res.executable_missing
    assert "executable file not found" in res.message


def test_missing_executable_is_127_under_dockershim(app_cluster, kc):
    app_cluster.set_exec({"app/web": distroless(K1_POD_FILE, missing="docker")})
    res = kc().exec_read("app", "web", "web", ["cat", "/etc/resolv.conf"])
    assert res.exit_code == 127 and res.executable_missing


def test_shell_not_found_is_127_too(app_cluster, kc):
    app_cluster.set_exec({"app/web": debian(K1_POD_FILE)})
    res = kc().exec_read("app", "web", "web", ["sh", "-c", "nosuch"])
    assert res.exit_code == 127 and res.executable_missing


def test_forbidden_maps_to_kubeerror_forbidden(app_cluster, kc):
    app_cluster.add_user("viewer", rules=VIEW_RULES)
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    with pytest.raises(KubeError) as ei:
        kc("viewer").exec_read("app", "web", "web", ["true"])
    err = ei.value
    assert (err.reason, err.status, err.transient) == ("Forbidden", 403, False)
    assert 'cannot get resource "pods/exec"' in err.message


def test_create_only_role_is_forbidden_for_websocket_exec(app_cluster, kc):
    app_cluster.add_user("creator", rules=(*VIEW_RULES, Rule(("create",), ("",), ("pods/exec",))))
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    with pytest.raises(KubeError, match="forbidden"):
        kc("creator").exec_read("app", "web", "web", ["true"])


def test_not_found_and_bad_request_map(app_cluster, kc):
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    with pytest.raises(KubeError) as ei:
        kc().exec_read("app", "ghost", None, ["true"])
    assert (ei.value.reason, ei.value.status) == ("NotFound", 404)
    with pytest.raises(KubeError) as ei:
        kc().exec_read("app", "pending", None, ["true"])
    assert ei.value.status == 400 and not ei.value.transient
    assert "container not found" in ei.value.message


def test_server_error_on_upgrade_is_transient(app_cluster, kc):
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    app_cluster.faults.fail(r"/exec", status=503)
    with pytest.raises(KubeError) as ei:
        kc().exec_read("app", "web", "web", ["true"])
    assert ei.value.status == 503 and ei.value.transient


def test_runtime_failure_other_than_missing_exe_is_execfailed(app_cluster, kc):
    app_cluster.set_exec(lambda req: ExecOutcome(runtime_error="cannot exec in a stopped state: unknown"))
    with pytest.raises(KubeError) as ei:
        kc().exec_read("app", "web", "web", ["true"])
    assert ei.value.reason == "ExecFailed"


def test_a_command_that_never_ends_times_out(app_cluster, kc):
    def slow(req):
        time.sleep(3)
        return ExecOutcome()

    app_cluster.set_exec(slow)
    t0 = time.monotonic()
    with pytest.raises(KubeError) as ei:
        kc().exec_read("app", "web", "web", ["sleep", "3"], timeout=0.5)
    assert ei.value.reason == "Timeout" and ei.value.transient
    assert time.monotonic() - t0 < 2.5


def test_server_without_v4_or_v5_refuses_the_client_with_400(app_cluster, kc):
    # An old apiserver that speaks only the v1-v3 channel protocols: the client offers v5,v4 and is refused.
    app_cluster.default.exec_protocols = ("channel.k8s.io",)
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    with pytest.raises(KubeError) as ei:
        kc().exec_read("app", "web", "web", ["true"])
    assert ei.value.status == 400


def test_unreachable_server_is_transient_unreachable(app_cluster):
    ctx = dataclasses.replace(context_for(app_cluster, "admin"), server=f"https://127.0.0.1:{free_port()}")
    with KubeClient.from_context(ctx, timeout=2) as c, pytest.raises(KubeError) as ei:
        c.exec_read("app", "web", "web", ["true"])
    assert ei.value.reason == "Unreachable" and ei.value.transient


def test_untrusted_ca_is_tls_error(app_cluster, fakekube_server):
    from dnsaudit.testbed.fakekube.server import FakeKube

    with FakeKube() as other:  # a different CA
        ctx = dataclasses.replace(context_for(app_cluster, "admin", auth="token"), ca_data=other.ca_pem)
        with KubeClient.from_context(ctx, timeout=2) as c, pytest.raises(KubeError) as ei:
            c.exec_read("app", "web", "web", ["true"])
    assert ei.value.reason == "TLS" and not ei.value.transient


def test_exec_does_not_disturb_lists_on_the_same_client(app_cluster, kc):
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    c = kc()
    assert c.exec_read("app", "web", "web", ["true"]).exit_code == 0
    pods = c.list_all("pods")
    assert {p["metadata"]["name"] for p in pods} >= {"web", "multi", "pending", "tool"}
    assert c.exec_read("other", "tool", None, ["cat", "/etc/resolv.conf"]).stdout == K1_POD_FILE


def test_v1_to_v3_plain_text_status_is_read():
    from dnsaudit.boundary.kube import _exec_result

    msg = "command terminated with non-zero exit code: error executing command [false], exit code 1"
    assert _exec_result("", "", msg, "channel.k8s.io", "app", "web", "pods/exec").exit_code == 1
    assert _exec_result("ok", "", "", "v3.channel.k8s.io", "app", "web", "pods/exec").exit_code == 0
    with pytest.raises(KubeError):  # v4/v5 always end with a Status: silence is a cut stream
        _exec_result("ok", "", "", "v4.channel.k8s.io", "app", "web", "pods/exec")


def test_output_past_the_limit_stops_the_session(app_cluster, kc):
    # A container is someone else's: one that prints without end must not fill the worker's memory.
    app_cluster.set_exec(lambda req: ExecOutcome(stdout=b"search x\n" * 300_000))
    with pytest.raises(KubeError) as ei:
        kc().exec_read("app", "web", "web", ["cat", "/etc/resolv.conf"], max_bytes=64 * 1024)
    assert ei.value.reason == "TooLarge"
    assert "more than 65536 bytes" in str(ei.value)
    # Under the limit, the same output is returned whole.
    res = kc().exec_read("app", "web", "web", ["cat", "/etc/resolv.conf"], max_bytes=4 << 20)
    assert len(res.stdout) == len("search x\n") * 300_000
