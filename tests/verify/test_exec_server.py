"""The test API server's WebSocket exec, driven by the official client's ``kubernetes.stream.stream()``.

The client is configured from a kubeconfig file with ``kubernetes.config.load_kube_config``, as a user's
would be. Raw-socket tests check the RFC 6455 handshake and framing the client does not expose.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from dnsaudit.testbed.fakekube.auth import VIEW_RULES, Rule
from dnsaudit.testbed.fakekube.exec import (
    ExecOutcome,
    FakeContainer,
    alpine,
    debian,
    distroless,
    encode_frame,
)
from tests.verify.conftest import K1_POD_FILE


@pytest.fixture
def api(app_cluster, kubeconfig_file):
    def make(user: str = "admin", **kw) -> k8s.CoreV1Api:
        cfg = k8s.Configuration()
        k8s_config.load_kube_config(
            config_file=str(kubeconfig_file(app_cluster, user, **kw)), client_configuration=cfg
        )
        return k8s.CoreV1Api(k8s.ApiClient(cfg))

    return make


def run(core: k8s.CoreV1Api, pod: str, command: list[str], ns: str = "app", **kw):
    """stream() without preloading: returns (stdout bytes, stderr bytes, returncode, protocol)."""
    ws = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        ns,
        command=command,
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
        binary=True,
        **kw,
    )
    ws.run_forever(timeout=10)
    out, err, status = ws.read_channel(1), ws.read_channel(2), ws.read_channel(3)
    proto = ws.subprotocol
    ws.close()
    return out, err, status, proto


def test_preloaded_stream_returns_the_file(app_cluster, api):
    app_cluster.set_exec({"app/web": alpine(K1_POD_FILE)})
    out = stream(
        api().connect_get_namespaced_pod_exec,
        "web",
        "app",
        command=["cat", "/etc/resolv.conf"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert out == K1_POD_FILE


def test_stdout_stderr_and_nonzero_exit_arrive_on_their_channels(app_cluster, api):
    app_cluster.set_exec({"app/web": alpine(K1_POD_FILE)})
    out, err, status, proto = run(api(), "web", ["sh", "-c", "ls /lib/ld-musl-*; cat /nope"])
    assert out == b"/lib/ld-musl-x86_64.so.1\n"
    assert err == b"cat: can't open '/nope': No such file or directory\n"
    st = json.loads(status)
    assert st["status"] == "Failure" and st["reason"] == "NonZeroExitCode"
    assert st["details"]["causes"][0]["message"] == "1"
    assert proto == "v5.channel.k8s.io"


def test_client_returncode_reads_the_status(app_cluster, api):
    app_cluster.set_exec({"app/web": alpine(K1_POD_FILE)})
    for script, code in (("exit 0", 0), ("exit 3", 3), ("cat /etc/resolv.conf", 0), ("nosuchcmd", 127)):
        ws = stream(
            api().connect_get_namespaced_pod_exec,
            "web",
            "app",
            command=["sh", "-c", script],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
        )
        ws.run_forever(timeout=10)
        assert ws.returncode == code, script
        ws.close()


def test_output_larger_than_a_frame_arrives_whole(app_cluster, api):
    big = os.urandom(200_000)
    app_cluster.set_exec({"app/web": FakeContainer(files={"/data/blob": big})})
    out, _err, status, _ = run(api(), "web", ["cat", "/data/blob"])
    assert out == big
    assert json.loads(status)["status"] == "Success"


def test_ls_lib_without_shell_lists_names(app_cluster, api):
    app_cluster.set_exec({"app/web": alpine(K1_POD_FILE, arch="aarch64")})
    out, _err, _status, _ = run(api(), "web", ["ls", "/lib"])
    assert b"ld-musl-aarch64.so.1\n" in out.splitlines(keepends=True)


def test_distroless_exec_fails_like_containerd(app_cluster, api):
    app_cluster.set_exec({"app/web": distroless(K1_POD_FILE)})
    out, err, status, _ = run(api(), "web", ["cat", "/etc/resolv.conf"])
    assert out == b"" and err == b""
    st = json.loads(status)
    assert st["reason"] == "InternalError" and st["code"] == 500
    assert 'exec: "cat": executable file not found in $PATH' in st["message"]
    # The official client's returncode cannot read this Status (its cause is not a number):
    ws = stream(
        api().connect_get_namespaced_pod_exec,
        "web",
        "app",
        command=["sh"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    ws.run_forever(timeout=10)
    with pytest.raises(ValueError):
        _ = ws.returncode
    ws.close()


def test_distroless_exec_under_dockershim_prints_and_exits_127(app_cluster, api):
    app_cluster.set_exec({"app/web": distroless(K1_POD_FILE, missing="docker")})
    out, _err, status, _ = run(api(), "web", ["sh", "-c", "cat /etc/resolv.conf"])
    assert b"executable file not found in $PATH" in out
    assert json.loads(status)["details"]["causes"][0]["message"] == "127"


def test_coreutils_wording_and_exit_codes(app_cluster, api):
    app_cluster.set_exec({"app/web": debian(K1_POD_FILE)})
    _out, err, status, _ = run(api(), "web", ["ls", "/lib/ld-musl-*"])  # no shell: no glob expansion
    assert err == b"ls: cannot access '/lib/ld-musl-*': No such file or directory\n"
    assert json.loads(status)["details"]["causes"][0]["message"] == "2"


def test_callable_handler_sees_the_request(app_cluster, api):
    seen = []

    def handler(req):
        seen.append(req)
        return ExecOutcome(stdout=b"hi\n", exit_code=0)

    app_cluster.set_exec(handler)
    out, _, _, _ = run(api(), "multi", ["echo", "hi"], container="sidecar")
    assert out == b"hi\n"
    assert (seen[0].namespace, seen[0].pod, seen[0].container, seen[0].command) == (
        "app",
        "multi",
        "sidecar",
        ("echo", "hi"),
    )


def test_without_pods_exec_permission_the_handshake_is_403(app_cluster, api):
    app_cluster.add_user("viewer", rules=VIEW_RULES)
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    with pytest.raises(ApiException) as ei:
        run(api("viewer"), "web", ["cat", "/etc/resolv.conf"])
    assert ei.value.status == 0
    assert "Handshake status 403" in ei.value.reason
    body = ei.value.reason.rsplit(" -+-+- ", 1)[-1]
    st = json.loads(body)
    assert st["reason"] == "Forbidden"
    assert 'cannot get resource "pods/exec"' in st["message"]


def test_websocket_exec_needs_get_before_135_and_create_too_from_135(app_cluster, api, monkeypatch):
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    app_cluster.add_user("creator", rules=(*VIEW_RULES, Rule(("create",), ("",), ("pods/exec",))))
    app_cluster.add_user("getter", rules=(*VIEW_RULES, Rule(("get",), ("",), ("pods/exec",))))
    with pytest.raises(ApiException, match="Handshake status 403"):
        run(api("creator"), "web", ["true"])
    assert run(api("getter"), "web", ["true"])[2] == b'{"metadata":{},"status":"Success"}'
    monkeypatch.setattr(
        app_cluster.default,
        "version",
        {**app_cluster.default.version, "minor": "35", "gitVersion": "v1.35.0"},
    )
    with pytest.raises(ApiException, match="Handshake status 403"):
        run(api("getter"), "web", ["true"])
    app_cluster.add_user("both", rules=(*VIEW_RULES, Rule(("get", "create"), ("",), ("pods/exec",))))
    assert json.loads(run(api("both"), "web", ["true"])[2])["status"] == "Success"


def test_exec_rbac_is_per_namespace(app_cluster, api):
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    app_cluster.add_user(
        "ns-exec", rules=(*VIEW_RULES, Rule(("get",), ("",), ("pods/exec",), namespaces=("app",)))
    )
    assert json.loads(run(api("ns-exec"), "web", ["true"])[2])["status"] == "Success"
    with pytest.raises(ApiException, match="Handshake status 403"):
        run(api("ns-exec"), "tool", ["true"], ns="other")


def test_unknown_pod_is_404_and_bad_container_400(app_cluster, api):
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    with pytest.raises(ApiException, match="Handshake status 404"):
        run(api(), "nope", ["true"])
    with pytest.raises(ApiException, match="Handshake status 400") as ei:
        run(api(), "multi", ["true"])  # two containers, none named
    assert "a container name must be specified" in ei.value.reason
    with pytest.raises(ApiException, match="is not valid for pod"):
        run(api(), "web", ["true"], container="ghost")
    with pytest.raises(ApiException, match="container not found"):
        run(api(), "pending", ["true"])


def test_v4_only_server_is_chosen_and_keeps_the_status_format(app_cluster, api):
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    app_cluster.default.exec_protocols = ("v4.channel.k8s.io", "channel.k8s.io")
    _out, _err, status, proto = run(api(), "web", ["false"])
    assert proto == "v4.channel.k8s.io"
    assert json.loads(status)["reason"] == "NonZeroExitCode"


def test_cert_and_token_users_both_exec(app_cluster, api):
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    assert run(api(auth="cert"), "web", ["cat", "/etc/resolv.conf"])[0] == K1_POD_FILE.encode()
    assert run(api(auth="token"), "web", ["cat", "/etc/resolv.conf"])[0] == K1_POD_FILE.encode()


def test_injected_fault_refuses_the_upgrade(app_cluster, api):
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    app_cluster.faults.fail(r"/pods/web/exec", status=503)
    with pytest.raises(ApiException, match="Handshake status 503"):
        run(api(), "web", ["true"])
    assert run(api(), "web", ["true"])[2] == b'{"metadata":{},"status":"Success"}'


# --- raw RFC 6455 ------------------------------------------------------------------------------------------------


def _raw(
    app_cluster,
    headers: dict[str, str],
    path: str = "/api/v1/namespaces/app/pods/web/exec?command=true&stdout=1",
):
    token = app_cluster.default.users["admin"].token
    ctx = ssl.create_default_context(cadata=app_cluster.ca_pem.decode())
    sock = socket.create_connection(("127.0.0.1", app_cluster.port), timeout=5)
    tls = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return tls


def _read_head(tls) -> tuple[str, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = tls.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode(), rest


def _frames(tls, rest: bytes) -> list[tuple[int, bytes]]:
    """Read server frames until the close frame (or the connection ends)."""
    data = rest
    tls.settimeout(5)
    while True:
        parsed = _parse(data)
        if parsed and parsed[-1][0] == 0x8:
            return parsed
        try:
            chunk = tls.recv(65536)
        except OSError:
            return parsed
        if not chunk:
            return parsed
        data += chunk


def _parse(data: bytes) -> list[tuple[int, bytes]]:
    out, i = [], 0
    while i + 2 <= len(data):
        b0, b1 = data[i], data[i + 1]
        assert b1 & 0x80 == 0, "server frames must not be masked"
        n, j = b1 & 0x7F, i + 2
        if n == 126:
            n, j = int.from_bytes(data[j : j + 2], "big"), j + 2
        elif n == 127:
            n, j = int.from_bytes(data[j : j + 8], "big"), j + 8
        if j + n > len(data):
            break
        out.append((b0 & 0x0F, data[j : j + n]))
        i = j + n
    return out


def test_handshake_accept_key_follows_rfc6455(app_cluster):
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    # The worked example of RFC 6455 section 1.3.
    tls = _raw(
        app_cluster,
        {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Protocol": "v4.channel.k8s.io",
        },
    )
    head, rest = _read_head(tls)
    assert head.startswith("HTTP/1.1 101 ")
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
    assert "Sec-WebSocket-Protocol: v4.channel.k8s.io" in head
    frames = _frames(tls, rest)
    # "connection established" (empty stdout message), the Status, then close 1000.
    assert frames[0] == (0x2, b"\x01")
    assert frames[1] == (0x2, b'\x03{"metadata":{},"status":"Success"}')
    assert frames[-1] == (0x8, (1000).to_bytes(2, "big"))
    tls.sendall(encode_frame(0x8, (1000).to_bytes(2, "big"), mask=b"abcd"))
    tls.close()


def test_plain_get_without_upgrade_is_400(app_cluster):
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    tls = _raw(app_cluster, {"Connection": "close"})
    head, rest = _read_head(tls)
    assert head.startswith("HTTP/1.1 400 ")
    assert b"Upgrade request required" in rest or b"Upgrade request required" in tls.recv(4096)
    tls.close()


def test_unsupported_subprotocol_is_refused(app_cluster):
    app_cluster.set_exec({"*": alpine(K1_POD_FILE)})
    key = base64.b64encode(os.urandom(16)).decode()
    tls = _raw(
        app_cluster,
        {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Protocol": "base64.channel.k8s.io",
        },
    )
    head, _ = _read_head(tls)
    assert head.startswith("HTTP/1.1 400 ")
    tls.close()
