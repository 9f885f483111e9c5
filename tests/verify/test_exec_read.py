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


class _StallingServer:
    """A TLS server that accepts the exec upgrade request and then answers nothing (``trickle=False``)
    or one byte of a never-ending response line every 0.1 s (``trickle=True``)."""

    def __init__(self, trickle: bool, tls_delay: float = 0.0) -> None:
        import socket
        import ssl
        import threading

        import trustme

        self.ca = trustme.CA()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1").configure_cert(ctx)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.ctx, self.trickle, self.stop = ctx, trickle, threading.Event()
        self.tls_delay = tls_delay
        self.sent = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import contextlib

        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            if self.stop.wait(self.tls_delay):  # TCP accepted, TLS answered only this much later
                raw.close()
                break
            with contextlib.suppress(OSError), self.ctx.wrap_socket(raw, server_side=True) as conn:
                conn.settimeout(5)
                conn.recv(65536)  # the upgrade request
                line = b"HTTP/1.1 101 Switching Protocols" + b"x" * 10_000
                for byte in line if self.trickle else b"":
                    if self.stop.wait(0.1):
                        break
                    conn.sendall(bytes([byte]))
                    self.sent += 1
                self.stop.wait(10)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


@pytest.mark.parametrize(
    ("trickle", "tls_delay"),
    [(False, 0.0), (True, 0.0), (True, 0.8)],
    ids=["silent", "trickling", "slow-tls-then-trickling"],
)
def test_an_upgrade_that_never_completes_times_out(app_cluster, trickle, tls_delay):
    # The client library connects the exec WebSocket with no timeout: a server that accepts and then says
    # nothing, or says one byte at a time (each read in time, the whole never), must still end by the
    # exec read's own deadline, also when the TLS handshake alone took most of it.
    server = _StallingServer(trickle, tls_delay)
    try:
        ctx = dataclasses.replace(
            context_for(app_cluster, "admin", auth="token"),
            server=f"https://127.0.0.1:{server.port}",
            ca_data=server.ca.cert_pem.bytes(),
        )
        with KubeClient.from_context(ctx, timeout=2) as c:
            t0 = time.monotonic()
            with pytest.raises(KubeError) as ei:
                c.exec_read("app", "web", "web", ["true"], timeout=1.0)
            took = time.monotonic() - t0
        assert (ei.value.reason, ei.value.transient) == ("Timeout", True), ei.value.message
        assert "did not complete the exec upgrade" in ei.value.message
        assert took < 2.0
        if trickle:  # bytes kept arriving, each well within a per-read timeout
            assert server.sent >= (1 if tls_delay else 3)
    finally:
        server.close()


def test_the_bounded_websocket_is_the_plain_class_outside_an_exec_read():
    from kubernetes.stream import ws_client

    from dnsaudit.boundary import kube

    kube._install_bounded_websocket()
    kube._install_bounded_websocket()  # installing twice keeps one subclass
    cls = ws_client.WebSocket
    assert cls._dnsaudit_bounded and cls.__mro__[1].__name__ == "WebSocket"
    assert getattr(kube._EXEC_BOUND, "current", None) is None


def test_the_deadline_shuts_a_blocked_socket_and_a_cancelled_one_is_left_alone():
    import socket

    from dnsaudit.boundary import kube

    a, b = socket.socketpair()
    with a, b:
        bound = kube._ExecBound(time.monotonic() + 0.3)
        bound.watch(a.fileno())
        t0 = time.monotonic()
        assert a.recv(10) == b""  # blocked until the timer shut the descriptor down
        assert bound.expired and 0.2 < time.monotonic() - t0 < 2.5
        bound.cancel()  # closes the timer's duplicate of the descriptor, not the socket's own
        assert a.fileno() != -1
    c, d = socket.socketpair()
    with c, d:
        bound = kube._ExecBound(time.monotonic() + 0.2)
        bound.watch(c.fileno())
        bound.cancel()
        time.sleep(0.4)
        d.sendall(b"x")
        assert c.recv(1) == b"x" and not bound.expired


def test_exec_reads_leave_no_descriptor_behind(app_cluster, kc):
    import os

    app_cluster.set_exec({"app/web": alpine(K1_POD_FILE)})
    c = kc()
    c.exec_read("app", "web", "web", ["cat", "/etc/resolv.conf"])  # the client's one-off set-up
    time.sleep(0.2)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(12):
        assert c.exec_read("app", "web", "web", ["cat", "/etc/resolv.conf"]).exit_code == 0
    time.sleep(0.3)  # the test server's side of each connection closes in its own thread
    # Closed when each read ends, not whenever the garbage collector gets to them: no collection here.
    assert len(os.listdir("/proc/self/fd")) - before < 4  # not one (or two) per read
