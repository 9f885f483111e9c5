"""inspect() against a real registry (Debian's docker-registry) holding images built by the tests."""

from __future__ import annotations

import gzip
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dnsaudit.boundary.registry import RegistryClient, RegistryError
from dnsaudit.testbed import imagebuild as ib
from tests.support import free_port

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def pusher(registry):
    return ib.Pusher(registry.url)


def push(pusher, registry, name: str, image: ib.Image, tag: str = "v1") -> str:
    pusher.image(name, tag, image)
    return f"{registry.host}/{name}:{tag}"


def test_alpine_image_is_musl_with_exact_version_from_apk_db(pusher, registry):
    ref = push(pusher, registry, "alpine-like", ib.alpine(musl_version="1.2.3-r4", alpine_version="3.16.9"))
    v = RegistryClient().inspect(ref)
    assert (v.libc, v.musl_version, v.os_id, v.os_version) == ("musl", "1.2.3", "alpine", "3.16.9")
    assert v.confidence == "confirmed"
    assert v.digest and v.digest.startswith("sha256:") and v.platform == "linux/amd64"
    assert any("ld-musl-x86_64.so.1" in e for e in v.evidence)


def test_alpine_git_snapshot_version_is_normalised(pusher, registry):
    ref = push(
        pusher,
        registry,
        "alpine-319",
        ib.alpine(musl_version="1.2.4_git20230717-r5", alpine_version="3.19.1"),
    )
    v = RegistryClient().inspect(ref)
    assert v.musl_version == "1.2.4"
    assert any("1.2.4_git20230717-r5" in e for e in v.evidence)


def test_debian_image_is_glibc_through_merged_usr_symlinks(pusher, registry):
    v = RegistryClient().inspect(push(pusher, registry, "debian-like", ib.debian()))
    assert (v.libc, v.os_id, v.musl_version) == ("glibc", "debian", None)
    assert any("/bin/app -> /usr/bin/app" in e for e in v.evidence)


def test_distroless_without_shell_is_glibc(pusher, registry):
    v = RegistryClient().inspect(push(pusher, registry, "distroless-like", ib.distroless()))
    assert v.libc == "glibc" and v.confidence == "confirmed"


def test_wolfi_uses_apk_but_is_glibc(pusher, registry):
    v = RegistryClient().inspect(push(pusher, registry, "wolfi-like", ib.wolfi()))
    assert v.libc == "glibc" and v.os_id == "wolfi" and v.musl_version is None


def test_static_go_binary_on_alpine_is_static_with_go_resolver(pusher, registry):
    v = RegistryClient().inspect(push(pusher, registry, "go-on-alpine", ib.static_go(on_alpine=True)))
    assert v.libc == "static"
    assert any("Go's own resolver" in e for e in v.evidence)


def test_static_musl_binary_in_scratch_is_musl(pusher, registry):
    v = RegistryClient().inspect(push(pusher, registry, "static-musl", ib.static_musl()))
    assert v.libc == "musl"


def test_musl_loader_deleted_by_whiteout_does_not_count(pusher, registry):
    v = RegistryClient().inspect(push(pusher, registry, "loader-whiteout", ib.alpine_with_loader_whiteout()))
    assert v.libc == "glibc"
    assert any("whiteout" in e for e in v.evidence)


def test_loader_without_whiteout_would_be_musl(pusher, registry):
    """Control for the whiteout test: the same lower layer alone is classified musl."""
    img = ib.alpine_with_loader_whiteout()
    img.layers = img.layers[:1]
    v = RegistryClient().inspect(push(pusher, registry, "loader-no-whiteout", img))
    assert v.libc == "musl"


def test_opaque_whiteout_hides_lower_directory(pusher, registry):
    v = RegistryClient().inspect(push(pusher, registry, "opaque-lib", ib.opaque_lib()))
    assert v.libc == "glibc"
    assert not any("ld-musl" in e for e in v.evidence)


def test_symlinked_loader_and_relative_links_resolve(pusher, registry):
    layer = (
        ib.Layer()
        .exe("/usr/lib/musl/ld-musl-x86_64.so.1", ib.elf_stub(None))
        .symlink("/lib", "usr/lib/musl")  # relative, at the root
        .exe("/opt/app/bin/real", ib.elf_stub("/lib/ld-musl-x86_64.so.1"))
        .symlink("/usr/local/bin/app", "../../../opt/app/bin/real")
    )
    img = ib.Image([layer], entrypoint=["app"])  # found through PATH
    v = RegistryClient().inspect(push(pusher, registry, "symlinked-loader", img))
    assert v.libc == "musl"
    assert any("/usr/local/bin/app -> /opt/app/bin/real" in e for e in v.evidence)
    assert any("/lib/ld-musl-x86_64.so.1" in e and "present" in e for e in v.evidence)


@pytest.mark.parametrize("gzip_layers", [[True, True], [False, False], [False, True]])
@pytest.mark.parametrize("dot_prefix", [False, True])
def test_gzip_and_plain_layers_and_dot_names(pusher, registry, gzip_layers, dot_prefix):
    img = ib.alpine(gzip_layers=gzip_layers, dot_prefix=dot_prefix)
    name = f"enc-{int(gzip_layers[0])}{int(gzip_layers[1])}-{int(dot_prefix)}"
    v = RegistryClient().inspect(push(pusher, registry, name, img))
    assert (v.libc, v.musl_version) == ("musl", "1.2.4")


def test_gzip_detected_by_magic_even_when_media_type_says_plain(pusher, registry):
    v = RegistryClient().inspect(push(pusher, registry, "gzip-lie", ib.alpine(lie_about_gzip=True)))
    assert (v.libc, v.musl_version) == ("musl", "1.2.4")


def test_docker_media_types(pusher, registry):
    v = RegistryClient().inspect(push(pusher, registry, "docker-mt", ib.debian(docker_media_types=True)))
    assert v.libc == "glibc"


def test_multi_arch_index_picks_platform_and_skips_attestations(pusher, registry):
    amd = ib.alpine()
    arm_layer = ib.debian_layer()
    arm_layer.exe("/usr/bin/app", ib.elf_stub(ib.GLIBC_LOADER_AARCH64, machine=ib.EM["arm64"]))
    arm = ib.Image([arm_layer], entrypoint=["/usr/bin/app"], architecture="arm64", variant="v8")
    pusher.index("multi", "v1", [amd, arm], attestation=True)
    client = RegistryClient()
    ref = f"{registry.host}/multi:v1"
    a = client.inspect(ref, "linux/amd64")
    b = client.inspect(ref, "linux/arm64")
    c = client.inspect(ref, "linux/arm64/v8")
    assert a.libc == "musl" and b.libc == "glibc" and c.libc == "glibc"
    assert a.digest != b.digest and b.digest == c.digest and b.platform == "linux/arm64"
    with pytest.raises(RegistryError) as e:
        client.inspect(ref, "linux/s390x")
    assert "linux/amd64" in str(e.value) and "unknown" not in str(e.value)


def test_early_stop_reads_fewer_bytes_than_the_layers_hold(pusher, registry):
    img = ib.big_lower(size=3 * 1024 * 1024)
    ref = push(pusher, registry, "big-lower", img)
    v, stats = RegistryClient().inspect_with_stats(ref)
    assert v.libc == "musl" and v.musl_version == "1.2.4"
    total = img.total_layer_bytes()
    assert stats.layer_bytes_total == total
    assert stats.layer_bytes_read < total / 10
    assert stats.layers_read == 1


def test_early_stop_inside_a_layer_closes_the_download(pusher, registry):
    """Signals first, then a big file in the same layer: the stream is abandoned mid-layer."""
    layer = ib.alpine_layer()
    layer.exe("/usr/local/bin/app", ib.elf_stub(ib.MUSL_LOADER_X86_64))
    layer.file("/var/cache/big.bin", os.urandom(3 * 1024 * 1024))
    img = ib.Image([layer], entrypoint=["/usr/local/bin/app"], gzip_layers=[False])
    v, stats = RegistryClient().inspect_with_stats(push(pusher, registry, "big-same-layer", img))
    assert v.libc == "musl"
    assert stats.layer_bytes_read < stats.layer_bytes_total / 4


def test_reading_everything_when_answer_stays_uncertain(pusher, registry):
    """No os-release/apk db: nothing is certain until the bottom, so every byte is read."""
    v, stats = RegistryClient().inspect_with_stats(
        push(pusher, registry, "loader-wh-full", ib.alpine_with_loader_whiteout())
    )
    assert stats.layer_bytes_read == stats.layer_bytes_total


def test_missing_image_says_not_found(registry):
    with pytest.raises(RegistryError) as e:
        RegistryClient().inspect(f"{registry.host}/nothing-here:v1")
    assert e.value.status == 404 and not e.value.transient
    assert "image not found" in str(e.value)


def test_cache_hit_by_digest_sends_no_request(pusher, registry):
    ref = push(pusher, registry, "cached", ib.alpine())
    cache: dict = {}
    client = RegistryClient(cache=cache)
    first, s1 = client.inspect_with_stats(ref)
    assert s1.requests >= 3 and not s1.cache_hit
    by_digest = f"{registry.host}/cached@{first.digest}"
    again, s2 = client.inspect_with_stats(by_digest)
    assert s2.requests == 0 and s2.cache_hit
    assert again.to_dict() == first.to_dict()
    by_tag, s3 = client.inspect_with_stats(ref)
    assert s3.requests == 1 and s3.cache_hit  # the manifest only, to learn the digest


def test_cache_is_shared_between_clients(pusher, registry):
    ref = push(pusher, registry, "cached2", ib.debian())
    cache: dict = {}
    RegistryClient(cache=cache).inspect(ref)
    _, stats = RegistryClient(cache=cache).inspect_with_stats(ref)
    assert stats.cache_hit and stats.layers_read == 0


def test_concurrent_inspections_share_a_cache(pusher, registry):
    refs = [push(pusher, registry, f"conc-{i}", ib.alpine() if i % 2 else ib.debian()) for i in range(6)]
    client = RegistryClient(cache={})
    results: dict[str, str] = {}

    def run(ref):
        results[ref] = client.inspect(ref).libc

    threads = [threading.Thread(target=run, args=(r,)) for r in refs * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[r] for r in refs] == ["glibc", "musl"] * 3


def test_registry_down_gives_inferred_verdict_with_the_error():
    port = free_port()
    client = RegistryClient(retries=0, timeout=2)
    with pytest.raises(RegistryError) as e:
        client.inspect(f"127.0.0.1:{port}/alpine:3.16")
    assert e.value.transient and "cannot reach registry" in str(e.value)
    v = client.inspect_or_infer(f"127.0.0.1:{port}/alpine:3.16")
    assert (v.libc, v.musl_version, v.confidence) == ("musl", "1.2.3", "inferred")
    assert any("cannot reach registry" in x for x in v.evidence)
    u = client.inspect_or_infer(f"127.0.0.1:{port}/myapp:1.0")
    assert u.libc == "unknown" and u.confidence == "inferred"


def test_tls_against_plain_http_registry_names_the_setting(registry):
    client = RegistryClient(loopback_insecure=False, insecure_registries=[], retries=0)
    with pytest.raises(RegistryError) as e:
        client.inspect(f"{registry.host}/alpine-like:v1")
    msg = str(e.value)
    assert "TLS" in msg and "plain HTTP" in msg and "DNSAUDIT_INSECURE_REGISTRIES" in msg


def test_insecure_registries_setting_allows_plain_http(pusher, registry):
    ref = push(pusher, registry, "insecure-ok", ib.alpine())
    client = RegistryClient(loopback_insecure=False, insecure_registries=[registry.host])
    assert client.inspect(ref).libc == "musl"


def test_insecure_registries_read_from_environment(monkeypatch, registry):
    monkeypatch.setenv("DNSAUDIT_INSECURE_REGISTRIES", f"example.invalid:5000, {registry.host}")
    client = RegistryClient(loopback_insecure=False)
    assert client.scheme_for(registry.host) == "http"
    assert client.scheme_for("other.example:5000") == "https"


def test_transient_5xx_is_retried_then_succeeds(pusher, registry):
    import requests as rq

    ref_path = "retry-me"
    push(pusher, registry, ref_path, ib.alpine())
    fails = {"left": 2}

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            if "/manifests/" in self.path and fails["left"] > 0:
                fails["left"] -= 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            r = rq.get(
                registry.url + self.path, headers={"Accept": self.headers.get("Accept", "")}, timeout=10
            )
            self.send_response(r.status_code)
            for k in ("Content-Type", "Docker-Content-Digest"):
                if k in r.headers:
                    self.send_header(k, r.headers[k])
            self.send_header("Content-Length", str(len(r.content)))
            self.end_headers()
            self.wfile.write(r.content)

    port = free_port()
    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        v = RegistryClient(retries=2, backoff=0.01).inspect(f"127.0.0.1:{port}/{ref_path}:v1")
        assert v.libc == "musl" and fails["left"] == 0
        fails["left"] = 5
        with pytest.raises(RegistryError) as e:
            RegistryClient(retries=1, backoff=0.01).inspect(f"127.0.0.1:{port}/{ref_path}:v1")
        assert e.value.transient and e.value.status == 503
    finally:
        srv.shutdown()


def test_manifest_request_sends_all_four_media_types(registry):
    seen = {}

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            seen["accept"] = self.headers.get("Accept", "")
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    port = free_port()
    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with pytest.raises(RegistryError):
            RegistryClient().inspect(f"127.0.0.1:{port}/x:y")
    finally:
        srv.shutdown()
    for mt in (ib.OCI_INDEX, ib.OCI_MANIFEST, ib.DOCKER_LIST, ib.DOCKER_MANIFEST):
        assert mt in seen["accept"]


def test_imagebuild_layers_are_what_the_manifest_says(pusher, registry):
    """Sanity of the test tooling itself: pulled blobs match, gzip magic only where declared."""
    import requests as rq

    img = ib.alpine(gzip_layers=[False, True])
    pusher.image("tooling", "v1", img)
    m = rq.get(
        f"{registry.url}/v2/tooling/manifests/v1", headers={"Accept": ib.OCI_MANIFEST}, timeout=10
    ).json()
    blobs = [
        rq.get(f"{registry.url}/v2/tooling/blobs/{d['digest']}", timeout=10).content for d in m["layers"]
    ]
    assert blobs[0][:2] != b"\x1f\x8b" and blobs[1][:2] == b"\x1f\x8b"
    assert gzip.decompress(blobs[1])[257:262] == b"ustar"
    assert json.loads(rq.get(f"{registry.url}/v2/tooling/blobs/{m['config']['digest']}", timeout=10).content)[
        "config"
    ]["Entrypoint"] == ["/usr/local/bin/app"]


def test_corrupt_layer_is_a_clear_error(pusher, registry):
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {}}).encode()
    junk = b"\x1f\x8b" + os.urandom(2000)  # gzip magic, garbage after
    manifest = {
        "schemaVersion": 2,
        "mediaType": ib.OCI_MANIFEST,
        "config": {"mediaType": ib.OCI_CONFIG, "digest": pusher.blob("corrupt", config), "size": len(config)},
        "layers": [
            {"mediaType": ib.OCI_LAYER_GZIP, "digest": pusher.blob("corrupt", junk), "size": len(junk)}
        ],
    }
    pusher.manifest("corrupt", "v1", json.dumps(manifest).encode(), ib.OCI_MANIFEST)
    with pytest.raises(RegistryError) as e:
        RegistryClient().inspect(f"{registry.host}/corrupt:v1")
    assert "not a readable tar" in str(e.value) and not e.value.transient


def test_zstd_layer_is_skipped_with_a_note_and_nothing_assumed_absent(pusher, registry):
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/app"]}}).encode()
    top = ib.Layer().file("/etc/os-release", ib.os_release("debian", "12")).tar()
    fake_zstd = b"\x28\xb5\x2f\xfd" + os.urandom(100)
    manifest = {
        "schemaVersion": 2,
        "mediaType": ib.OCI_MANIFEST,
        "config": {"mediaType": ib.OCI_CONFIG, "digest": pusher.blob("zstd", config), "size": len(config)},
        "layers": [
            {"mediaType": ib.OCI_LAYER, "digest": pusher.blob("zstd", fake_zstd), "size": len(fake_zstd)},
            {"mediaType": ib.OCI_LAYER, "digest": pusher.blob("zstd", top), "size": len(top)},
        ],
    }
    pusher.manifest("zstd", "v1", json.dumps(manifest).encode(), ib.OCI_MANIFEST)
    v = RegistryClient().inspect(f"{registry.host}/zstd:v1")
    assert v.libc == "glibc"  # from os-release
    assert any("zstd" in e for e in v.evidence)
    assert not any("not found in the image" in e for e in v.evidence)


def test_expired_bearer_token_is_refreshed_once(pusher, registry):
    """A stub front (bearer auth, tokens expire after one use) proxying to the real registry."""
    import requests as rq

    push(pusher, registry, "refresh", ib.alpine())
    state = {"issued": 0, "valid": None}

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, code, body=b"", headers=()):
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path.startswith("/token"):
                state["issued"] += 1
                state["valid"] = f"t{state['issued']}"
                return self._send(200, json.dumps({"access_token": state["valid"]}).encode())
            if self.headers.get("Authorization") != f"Bearer {state['valid']}":
                realm = f'Bearer realm="http://{self.headers["Host"]}/token",service="stub"'
                return self._send(401, b"{}", [("WWW-Authenticate", realm)])
            state["valid"] = None  # one use only: the next request sees an expired token
            r = rq.get(
                registry.url + self.path, headers={"Accept": self.headers.get("Accept", "")}, timeout=10
            )
            hdrs = [(k, r.headers[k]) for k in ("Content-Type", "Docker-Content-Digest") if k in r.headers]
            self._send(r.status_code, r.content, hdrs)

    port = free_port()
    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        v = RegistryClient().inspect(f"127.0.0.1:{port}/refresh:v1")
    finally:
        srv.shutdown()
    assert v.libc == "musl"
    assert state["issued"] >= 3  # a fresh token for each request after the first expired
