"""Hostile registries (issue #10 items 3 and 4): every inspection ends by itself within its limits, with a
clear error, in bounded memory, and sends nothing where it must not.

The servers (``tests/registry/hostile.py``) run on loopback and record every request. Memory is the growth
of this process's peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs``) over its RSS before the
inspection; each test asserts it stays under ``MAX_GROWTH`` and prints it (``pytest -s`` shows the figures).
No test sends anything to a link-local or metadata address: the refusal is tested on the address check, with
``socket.connect`` watched so that an attempt would fail the test instead of leaving the machine.
"""

from __future__ import annotations

import ipaddress
import socket
import threading

import pytest

from dnsaudit.boundary.registry import (
    RegistryClient,
    RegistryDeadline,
    RegistryError,
    RegistryLimits,
    forbidden_address,
    forbidden_hostname,
    limits_from_environment,
)
from dnsaudit.testbed import imagebuild as ib
from tests.registry import hostile as h

pytestmark = pytest.mark.registry

MiB = 1024 * 1024
MAX_GROWTH = 48 * MiB  # the peak RSS growth any one hostile inspection may cause


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


class Memory:
    """Peak RSS growth of this process across a block (Linux: VmHWM reset by clear_refs)."""

    def __enter__(self):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        self.base = _status_kb("VmRSS")
        return self

    def __exit__(self, *exc):
        self.growth = (_status_kb("VmHWM") - self.base) * 1024
        return False


@pytest.fixture
def servers():
    made: list = []

    def make(*a, raw=None, **kw):
        s = h.RawServer(raw) if raw is not None else h.HostileServer(*a, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def client(deadline: float = 10, timeout: float = 5, **kw) -> RegistryClient:
    limits = RegistryLimits(
        deadline=deadline,
        max_manifest_bytes=kw.pop("max_manifest_bytes", 4 * MiB),
        max_layer_bytes=kw.pop("max_layer_bytes", 32 * MiB),
        max_tar_entries=kw.pop("max_tar_entries", 10_000),
        max_tar_header_bytes=kw.pop("max_tar_header_bytes", MiB),
    )
    kw.setdefault("mirrors", {})
    return RegistryClient(limits=limits, retries=0, timeout=timeout, **kw)


def inspect(c: RegistryClient, ref: str, *, budget: float):
    """Run one inspection; returns (verdict or error, seconds, memory growth in bytes). It must end
    within ``budget`` seconds and ``MAX_GROWTH``."""
    with Memory() as mem, h.Timing() as t:
        try:
            outcome = c.inspect(ref)
        except RegistryError as e:
            outcome = e
    print(f"\n{ref}: {t.seconds:.2f} s, peak RSS growth {mem.growth / MiB:.1f} MiB: {outcome}")
    assert t.seconds < budget, (t.seconds, outcome)
    assert mem.growth < MAX_GROWTH, mem.growth
    return outcome


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


# --- bodies ----------------------------------------------------------------------------------------


def test_a_gzip_encoded_manifest_is_refused_without_being_inflated(servers):
    reg = servers()
    bomb = h.gzip_bomb(256 * MiB)  # ~250 KiB on the wire
    reg.route(
        "/v2/bomb/manifests/",
        lambda r: r.send(200, bomb, {"Content-Encoding": "gzip", "Content-Type": h.MANIFEST_TYPE}),
    )
    e = inspect(client(), f"{reg.host}/bomb:v1", budget=5)
    assert isinstance(e, RegistryError) and "Content-Encoding gzip" in str(e) and "refused" in str(e)
    assert reg.requests[0].headers.get("Accept-Encoding") == "identity"


def test_a_1_gib_manifest_is_read_no_further_than_the_limit(servers):
    reg = servers()
    reg.route(
        "/v2/huge/manifests/", lambda r: r.stream(200, h.endless_json(), {"Content-Type": h.MANIFEST_TYPE})
    )
    e = inspect(client(), f"{reg.host}/huge:v1", budget=10)
    assert isinstance(e, RegistryError) and "over the limit of 4194304 bytes" in str(e)
    assert reg.bytes_sent < 64 * MiB  # the client hung up: the server could not push the gigabyte


def test_a_manifest_declaring_1_gib_is_refused_before_reading(servers):
    reg = servers()
    reg.route(
        "/v2/huge/manifests/",
        lambda r: r.stream(
            200, h.endless_json(), {"Content-Type": h.MANIFEST_TYPE, "Content-Length": str(1 << 30)}
        ),
    )
    e = inspect(client(), f"{reg.host}/huge:v1", budget=5)
    assert isinstance(e, RegistryError) and f"is {1 << 30} bytes, over the limit" in str(e)


def test_error_bodies_are_not_echoed(servers):
    reg = servers()
    secret = b"<html>internal stack trace, tokens, " + b"A" * 100_000
    reg.route("/v2/err/manifests/", lambda r: r.send(418, secret))
    e = inspect(client(), f"{reg.host}/err:v1", budget=5)
    assert isinstance(e, RegistryError) and "418" in str(e)
    assert "stack trace" not in str(e) and "AAAA" not in str(e) and len(str(e)) < 200


# --- layers ----------------------------------------------------------------------------------------


def test_a_gzip_bomb_layer_stops_at_the_decompressed_cap(servers):
    reg = servers()
    blob = h.tar_bomb_layer(512 * MiB)  # ~0.5 MiB compressed
    d = h.digest(blob)
    h.serve_image(reg, "bomb", {d: (len(blob), lambda r: r.send(200, blob))})
    v = inspect(client(max_layer_bytes=32 * MiB), f"{reg.host}/bomb:v1", budget=10)
    assert not isinstance(v, Exception), v
    assert v.libc == "unknown"
    assert any(
        f"not fully read: more than {32 * MiB} decompressed bytes" in e for e in v.evidence
    ), v.evidence


def test_an_endless_pax_header_is_refused_at_its_declared_size(servers):
    reg = servers()
    d = "sha256:" + "ab" * 32
    h.serve_image(reg, "pax", {d: (1 << 40, lambda r: r.stream(200, h.endless_pax_header()))})
    v = inspect(client(), f"{reg.host}/pax:v1", budget=5)
    assert not isinstance(v, Exception), v
    assert any("a tar extended header of 8589934591 bytes" in e for e in v.evidence), v.evidence
    assert reg.bytes_sent < 64 * MiB


def test_a_layer_longer_than_its_descriptor_is_not_read_past_it(servers):
    reg = servers()
    real = ib.Image([ib.alpine_layer()]).blobs()[1][0][0]
    d = h.digest(real)
    h.serve_image(reg, "long", {d: (100, lambda r: r.stream(200, [real] + [b"\0" * 65536] * 100_000))})
    v = inspect(client(), f"{reg.host}/long:v1", budget=5)
    assert any("longer than the 100 bytes its descriptor declares" in e for e in v.evidence), v.evidence


def test_too_many_tar_entries(servers):
    reg = servers()
    layer = ib.Layer()
    for i in range(300):
        layer.file(f"/data/f{i}", b"")
    blob = h.gzipped(layer.tar())
    d = h.digest(blob)
    h.serve_image(reg, "many", {d: (len(blob), lambda r: r.send(200, blob))})
    v = inspect(client(max_tar_entries=100), f"{reg.host}/many:v1", budget=5)
    assert any("more than 100 tar entries (DNSAUDIT_REGISTRY_MAX_TAR_ENTRIES)" in e for e in v.evidence)


# --- the deadline ----------------------------------------------------------------------------------


def test_a_trickled_manifest_body_ends_at_the_deadline(servers):
    reg = servers()
    body = h.manifest_for([])

    def handler(r):
        r.head(200, {"Content-Type": h.MANIFEST_TYPE, "Content-Length": str(len(body))})
        for b in h.trickle(body, 0.5, reg.stopping):
            if not r.write(b):
                return

    reg.route("/v2/slow/manifests/", handler)
    # Every byte comes well within the 10 s read timeout: only the deadline can stop this.
    e = inspect(client(deadline=2, timeout=10), f"{reg.host}/slow:v1", budget=3.5)
    assert isinstance(e, RegistryDeadline) and "deadline of 2 s" in str(e)


def test_trickled_response_headers_end_at_the_deadline(servers):
    stop = threading.Event()

    def serve(sock):
        for b in h.trickle(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000, 0.5, stop):
            sock.sendall(b)

    raw = servers(raw=serve)
    try:
        e = inspect(client(deadline=2, timeout=10), f"{raw.host}/slow:v1", budget=3.5)
    finally:
        stop.set()
    assert isinstance(e, RegistryDeadline)


def test_a_trickled_layer_ends_at_the_deadline(servers):
    reg = servers()
    real = ib.Image([ib.alpine_layer()]).blobs()[1][0][0]
    d = h.digest(real)

    def handler(r):
        r.head(200, {"Content-Length": str(len(real))})
        for b in h.trickle(real, 0.3, reg.stopping):
            if not r.write(b):
                return

    h.serve_image(reg, "slow", {d: (len(real), handler)})
    e = inspect(client(deadline=2, timeout=10), f"{reg.host}/slow:v1", budget=3.5)
    assert isinstance(e, RegistryDeadline)


# --- where requests go -----------------------------------------------------------------------------


def test_a_redirect_to_a_forbidden_address_is_refused_before_connecting(servers):
    reg, trap = servers(), servers()
    reg.route(
        "/v2/app/manifests/", lambda r: r.send(307, b"", {"Location": f"http://127.0.0.1:{trap.port}/meta"})
    )

    def forbid(ip, port):  # the trap's port stands in for 169.254.169.254
        return "stand-in for a metadata address" if port == trap.port else forbidden_address(ip, port)

    e = inspect(client(forbid=forbid), f"{reg.host}/app:v1", budget=5)
    assert isinstance(e, RegistryError) and "refused to connect" in str(e) and "stand-in" in str(e)
    assert trap.requests == []


def test_credentials_go_to_the_registry_and_never_follow_a_redirect(servers):
    reg, cdn = servers(), servers()
    image = ib.alpine()
    config, layers = image.blobs()
    manifest = h.manifest_for([(h.digest(b), len(b)) for b, _ in layers], config)
    expected = "Basic " + __import__("base64").b64encode(b"alice:pw").decode()

    def guarded(then):
        def handler(r):
            if r.handler.headers.get("Authorization") != expected:
                r.send(401, b"", {"WWW-Authenticate": 'Basic realm="x"'})
            else:
                then(r)

        return handler

    reg.route(
        "/v2/app/manifests/", guarded(lambda r: r.send(200, manifest, {"Content-Type": h.MANIFEST_TYPE}))
    )
    reg.route(f"/v2/app/blobs/{h.digest(config)}", guarded(lambda r: r.send(200, config)))
    for blob, _ in layers:
        reg.route(
            f"/v2/app/blobs/{h.digest(blob)}",
            guarded(lambda r, d=h.digest(blob): r.send(307, b"", {"Location": f"{cdn.url}/blob/{d}"})),
        )
        cdn.route(f"/blob/{h.digest(blob)}", lambda r, b=blob: r.send(200, b))
    v = inspect(client(credentials={reg.host: ("alice", "pw")}), f"{reg.host}/app:v1", budget=10)
    assert v.libc == "musl", v
    assert cdn.requests and all("Authorization" not in r.headers for r in cdn.requests)
    assert any(r.headers.get("Authorization") == expected for r in reg.requests)


def test_a_token_realm_over_plain_http_is_refused_for_an_https_registry(servers, tmp_path):
    import trustme

    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    reg = servers(tls=ca.issue_cert("127.0.0.1"))
    realm = servers()  # another host:port, plain HTTP
    reg.route(
        "/v2/",
        lambda r: r.send(401, b"", {"WWW-Authenticate": f'Bearer realm="{realm.url}/token",service="reg"'}),
    )
    c = client(credentials={reg.host: ("alice", "pw")}, loopback_insecure=False, verify=str(bundle))
    e = inspect(c, f"{reg.host}/app:v1", budget=5)
    assert isinstance(e, RegistryError) and "over plain HTTP: refused" in str(e)
    assert realm.requests == []  # the credentials never left
    assert reg.requests and all("Authorization" not in r.headers for r in reg.requests)


def test_more_redirects_than_allowed(servers):
    reg = servers()
    reg.route("/v2/loop/manifests/", lambda r: r.send(302, b"", {"Location": r.path}))
    e = inspect(client(), f"{reg.host}/loop:v1", budget=5)
    assert isinstance(e, RegistryError) and "more than 5 redirects" in str(e)
    assert len(reg.requests) == 6


# --- the address check itself (no request to such addresses, ever) --------------------------------


@pytest.mark.parametrize(
    "addr",
    ["169.254.169.254", "169.254.0.1", "fe80::1", "100.100.100.200", "fd00:ec2::254", "168.63.129.16",
     "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "0.0.0.0", "224.0.0.1"],
)  # fmt: skip
def test_link_local_and_metadata_addresses_are_forbidden(addr):
    assert forbidden_address(ipaddress.ip_address(addr), 80)


@pytest.mark.parametrize(
    "addr",
    ["10.0.0.5", "172.16.3.4", "192.168.1.10", "100.64.0.1", "127.0.0.1", "fd12:3456::1", "2001:db8::1"],
)
def test_private_and_public_addresses_stay_allowed(addr):
    assert forbidden_address(ipaddress.ip_address(addr), 443) is None


def test_metadata_names_are_refused_before_any_lookup():
    assert forbidden_hostname("metadata.google.internal")
    assert forbidden_hostname("METADATA.google.internal.")
    assert forbidden_hostname("[fe80::1]")
    assert forbidden_hostname("registry.corp") is None


@pytest.fixture
def watched_connect(monkeypatch):
    """Fail the test on any connection to a non-loopback address (and record them all)."""
    seen: list = []
    real = socket.socket.connect

    def connect(self, addr):
        seen.append(addr)
        if not ipaddress.ip_address(addr[0].split("%")[0]).is_loopback:
            raise AssertionError(f"connection attempted to {addr}")
        return real(self, addr)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


def test_a_registry_at_a_metadata_address_is_refused_before_connecting(watched_connect):
    for ref in (
        "169.254.169.254/latest/meta-data:v1",
        "[fd00:ec2::254]:80/x:v1",
        "metadata.google.internal/x:1",
    ):
        with pytest.raises(RegistryError, match="refused"):
            client().inspect(ref)
    assert watched_connect == []


def test_a_name_resolving_to_link_local_is_refused_before_connecting(watched_connect, monkeypatch):
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *a, **kw):
        if host == "rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]
        return real(host, port, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(RegistryError, match="refused to connect to rebind.test:443: 169.254.169.254"):
        client().inspect("rebind.test/app:v1")
    assert watched_connect == []


def test_a_redirect_to_a_metadata_address_is_refused_before_connecting(servers, watched_connect):
    reg = servers()
    reg.route(
        "/v2/app/manifests/",
        lambda r: r.send(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"}),
    )
    e = inspect(client(), f"{reg.host}/app:v1", budget=5)
    assert isinstance(e, RegistryError) and "169.254.169.254" in str(e) and "refused" in str(e)
    assert all(ipaddress.ip_address(a[0]).is_loopback for a in watched_connect)


def test_a_remote_registry_cannot_redirect_to_loopback():
    from dnsaudit.boundary.registry import _Guard

    guard = _Guard(5, forbidden_address)

    class Conn:
        host = "127.0.0.1"
        port = 8000
        timeout = 1
        source_address = None
        socket_options = None
        proxy = None

    try:
        with pytest.raises(RegistryError, match="a loopback address, reached from registry registry.example"):
            guard.connect(Conn(), "registry.example")
    finally:
        guard.close()


def test_limits_come_from_the_environment_and_bad_values_are_named():
    assert limits_from_environment({}) == RegistryLimits()
    lim = limits_from_environment(
        {"DNSAUDIT_REGISTRY_DEADLINE": "30", "DNSAUDIT_REGISTRY_MAX_TAR_ENTRIES": "9"}
    )
    assert (lim.deadline, lim.max_tar_entries) == (30, 9)
    with pytest.raises(ValueError, match="DNSAUDIT_REGISTRY_MAX_LAYER_BYTES"):
        limits_from_environment({"DNSAUDIT_REGISTRY_MAX_LAYER_BYTES": "0"})


CHILD = r"""
import json, sys
from dnsaudit.boundary.registry import RegistryClient, RegistryError, RegistryLimits

def kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

limits = RegistryLimits(deadline=10, max_layer_bytes=256 * 1024 * 1024)
client = RegistryClient(limits=limits, retries=0, timeout=5, mirrors={})
base = kb("VmRSS")
out = []
for ref in sys.argv[1:]:
    try:
        out.append(str(client.inspect(ref).evidence[-2]))
    except RegistryError as e:
        out.append(str(e))
print(json.dumps({"growth_kb": kb("VmHWM") - base, "base_kb": base, "outcomes": out}))
"""


def test_memory_of_a_fresh_process_reading_every_hostile_registry(servers):
    """The figure for the README: a fresh interpreter reads the 1 GiB manifest, a 1 GiB gzip bomb layer
    (256 MiB cap) and the endless PAX header; its peak RSS grows by a few MiB over its RSS after imports."""
    import json
    import subprocess
    import sys

    reg = servers()
    reg.route(
        "/v2/huge/manifests/", lambda r: r.stream(200, h.endless_json(), {"Content-Type": h.MANIFEST_TYPE})
    )
    blob = h.tar_bomb_layer(1024 * MiB)
    h.serve_image(reg, "bomb", {h.digest(blob): (len(blob), lambda r: r.send(200, blob))})
    h.serve_image(
        reg, "pax", {"sha256:" + "cd" * 32: (1 << 40, lambda r: r.stream(200, h.endless_pax_header()))}
    )
    refs = [f"{reg.host}/{name}:v1" for name in ("huge", "bomb", "pax")]
    with h.Timing() as t:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, *refs], capture_output=True, text=True, timeout=60, check=True
        )
    result = json.loads(proc.stdout)
    print(f"\nfresh process: {t.seconds:.1f} s, peak RSS growth {result['growth_kb'] / 1024:.1f} MiB "
          f"over {result['base_kb'] / 1024:.1f} MiB: {result['outcomes']}")  # fmt: skip
    assert "over the limit of 4194304 bytes" in result["outcomes"][0]
    assert f"more than {256 * MiB} decompressed bytes" in result["outcomes"][1]
    assert "a tar extended header of 8589934591 bytes" in result["outcomes"][2]
    assert result["growth_kb"] * 1024 < 32 * MiB


def test_a_registry_cannot_file_its_answer_under_another_images_digest(servers):
    """Verdicts are shared by digest: the digest is what the manifest hashes to, not what a header says,
    and a manifest asked for by digest must hash to it."""
    reg = servers()
    victim = "sha256:" + "12" * 32
    body = h.manifest_for([])
    reg.route(
        "/v2/liar/manifests/",
        lambda r: r.send(200, body, {"Content-Type": h.MANIFEST_TYPE, "Docker-Content-Digest": victim}),
    )
    reg.route(f"/v2/liar/blobs/{h.digest(h.CONFIG)}", lambda r: r.send(200, h.CONFIG))
    cache: dict = {}
    v = client(cache=cache).inspect(f"{reg.host}/liar:v1")
    assert v.digest == h.digest(body) and victim not in cache
    with pytest.raises(RegistryError, match="whose content hashes to"):
        client(cache=cache).inspect(f"{reg.host}/liar@{victim}")
