"""Registry mirrors (pull-through caches): configuration, order, fallback and evidence.

The mirrors are real registries (Debian's ``docker-registry`` from ``conftest.py``) holding images built
by the tests. Tests that name a public registry (``docker.io``) set ``upstream_fallback=False``: if the
mirror failed, the client must not go on to the Internet.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from dnsaudit.boundary.registry import (
    MIRRORS_ENV,
    Mirror,
    RegistryClient,
    RegistryError,
    mirrors_from_environment,
    parse_mirror,
    parse_mirrors,
    parse_reference,
)
from dnsaudit.testbed import imagebuild as ib
from tests.registry.conftest import PASSWORD, USER
from tests.support import free_port

# --- configuration (no registry needed) --------------------------------------------------------------


def test_mirrors_env_syntax_parses_hosts_ports_schemes_and_prefixes():
    got = parse_mirrors(
        " docker.io=harbor.corp:5000/dockerhub , gcr.io=https://mirror.corp/gcr/,"
        "index.docker.io=http://10.0.0.9:8080,registry.k8s.io=[fd00::5]:443,"
    )
    assert got == {
        "docker.io": (Mirror("harbor.corp:5000", None, "dockerhub"), Mirror("10.0.0.9:8080", "http", "")),
        "gcr.io": (Mirror("mirror.corp", "https", "gcr"),),
        "registry.k8s.io": (Mirror("[fd00::5]:443", None, ""),),
    }


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("docker.io", "is not registry=mirror"),
        ("=harbor.corp", "is not registry=mirror"),
        ("docker.io=", "is not registry=mirror"),
        ("docker.io=a.corp,,gcr.io=b.corp", "empty entry"),
        ("docker.io=ftp://harbor.corp", "scheme must be http or https"),
        ("docker.io=harbor.corp:99999", "is not a host[:port]"),
        ("docker.io=harbor corp", "is not a host[:port]"),
        ("docker.io=harbor.corp/Proxy", "is not a valid repository component"),
        ("docker.io=harbor.corp/proxy?x=1", "is not a valid repository component"),
        ("https://docker.io=harbor.corp", "write the registry as in image references"),
        ("docker.io/library=harbor.corp", "write the registry as in image references"),
    ],
)
def test_bad_mirror_entries_are_refused_with_the_entry_named(text, complaint):
    with pytest.raises(ValueError) as e:
        parse_mirrors(text)
    assert complaint in str(e.value)


def test_bad_environment_value_stops_the_client_and_names_the_variable(monkeypatch):
    monkeypatch.setenv(MIRRORS_ENV, "docker.io:harbor.corp")
    with pytest.raises(ValueError) as e:
        RegistryClient()
    assert MIRRORS_ENV in str(e.value) and "docker.io:harbor.corp" in str(e.value)


def test_empty_environment_means_no_mirrors():
    assert mirrors_from_environment({MIRRORS_ENV: "  "}) == {}
    assert mirrors_from_environment({}) == {}


def test_mirrors_come_first_then_the_registry_with_insecure_rules_for_the_mirror_host():
    client = RegistryClient(
        mirrors={"docker.io": ["harbor.corp:5000/hub", "plain.corp", "https://127.0.0.1:9/x"]},
        insecure_registries=["plain.corp"],
    )
    got = [(s.scheme, s.host, s.repository) for s in client.sources_for(parse_reference("alpine:3.16"))]
    assert got == [
        ("https", "harbor.corp:5000", "hub/library/alpine"),
        ("http", "plain.corp", "library/alpine"),
        ("https", "127.0.0.1:9", "x/library/alpine"),  # a scheme written out wins over loopback's HTTP
        ("https", "registry-1.docker.io", "library/alpine"),
    ]
    assert [s.host for s in client.sources_for(parse_reference("quay.io/a/b"))] == ["quay.io"]
    no_upstream = RegistryClient(mirrors={"docker.io": "127.0.0.1:5000"}, upstream_fallback=False)
    sources = no_upstream.sources_for(parse_reference("busybox"))
    assert [(s.scheme, s.host) for s in sources] == [("http", "127.0.0.1:5000")]


def test_parse_mirror_accepts_a_trailing_slash_only_once():
    assert parse_mirror("harbor.corp/hub/").prefix == "hub"
    with pytest.raises(ValueError):
        parse_mirror("harbor.corp/hub//")


# --- against real registries -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub_images(registry):
    """Images pushed to the anonymous registry as a Docker Hub mirror would hold them."""
    pusher = ib.Pusher(registry.url)
    alpine = ib.alpine(musl_version="1.2.3-r4", alpine_version="3.16.9")
    alpine_digest, _ = pusher.image("library/alpine", "3.16", alpine)
    pusher.image("hub-proxy/library/debian", "bookworm", ib.debian("12"))  # Harbor-style project prefix
    pusher.image("team/app", "v1", ib.alpine(musl_version="1.2.5-r0", alpine_version="3.20.3"))
    pusher.image("team/other", "v1", ib.wolfi())
    return {"alpine": alpine_digest}


needs_registry = pytest.mark.registry


@needs_registry
def test_docker_hub_image_is_read_from_its_mirror_and_evidence_says_so(registry, hub_images):
    client = RegistryClient(mirrors={"docker.io": registry.host}, upstream_fallback=False)
    v, stats = client.inspect_with_stats("alpine:3.16")
    assert (v.libc, v.musl_version, v.confidence) == ("musl", "1.2.3", "confirmed")
    assert f"read from mirror {registry.host} for docker.io" in v.evidence
    assert stats.urls and all(u.startswith(f"http://{registry.host}/v2/library/alpine/") for u in stats.urls)


@needs_registry
def test_digest_reference_as_pods_carry_it_is_read_from_the_mirror(registry, hub_images):
    ref = f"docker.io/library/alpine@{hub_images['alpine']}"
    v = RegistryClient(mirrors={"docker.io": registry.host}, upstream_fallback=False).inspect(ref)
    assert v.libc == "musl" and v.musl_version == "1.2.3" and v.confidence == "confirmed"


@needs_registry
def test_mirror_with_project_prefix_is_read_under_that_prefix(registry, hub_images):
    client = RegistryClient(
        mirrors={"docker.io": f"http://{registry.host}/hub-proxy"}, upstream_fallback=False
    )
    v, stats = client.inspect_with_stats("debian:bookworm")
    assert (v.libc, v.os_id) == ("glibc", "debian")
    assert f"read from mirror {registry.host}/hub-proxy for docker.io" in v.evidence
    assert stats.urls[0] == f"http://{registry.host}/v2/hub-proxy/library/debian/manifests/bookworm"


@needs_registry
def test_environment_variable_configures_the_default_client(monkeypatch, registry, hub_images):
    monkeypatch.setenv(MIRRORS_ENV, f"gcr.io=127.0.0.1:1,docker.io={registry.host}")
    v = RegistryClient(upstream_fallback=False).inspect("docker.io/library/alpine:3.16")
    assert v.musl_version == "1.2.3"
    assert f"read from mirror {registry.host} for docker.io" in v.evidence


@needs_registry
def test_registry_itself_answers_when_the_mirror_does_not_have_the_image(registry, hub_images):
    client = RegistryClient(mirrors={registry.host: f"{registry.host}/empty-cache"})
    v, stats = client.inspect_with_stats(f"{registry.host}/team/app:v1")
    assert (v.libc, v.musl_version, v.confidence) == ("musl", "1.2.5", "confirmed")
    assert stats.urls[0] == f"http://{registry.host}/v2/empty-cache/team/app/manifests/v1"
    said = [e for e in v.evidence if e.startswith(f"read from {registry.host} itself")]
    assert said and "not found" in said[0] and f"mirror {registry.host}/empty-cache" in said[0]
    assert not any(e.startswith("read from mirror") for e in v.evidence)


@needs_registry
def test_unreachable_mirror_falls_back_to_the_registry(registry, hub_images):
    dead = f"127.0.0.1:{free_port()}"
    client = RegistryClient(mirrors={registry.host: dead}, retries=0)
    v = client.inspect(f"{registry.host}/team/other:v1")
    assert v.libc == "glibc" and v.os_id == "wolfi"
    assert any(f"cannot reach mirror {dead}" in e for e in v.evidence)


@needs_registry
def test_when_mirror_and_registry_both_fail_the_error_names_both(registry, hub_images):
    dead = f"127.0.0.1:{free_port()}"
    client = RegistryClient(mirrors={registry.host: dead}, retries=0)
    with pytest.raises(RegistryError) as e:
        client.inspect(f"{registry.host}/team/absent:v1")
    text = str(e.value)
    assert "image not found" in text and f"cannot reach mirror {dead}" in text
    assert e.value.status == 404 and not e.value.transient


@needs_registry
def test_mirror_only_client_never_asks_the_registry(registry, hub_images):
    client = RegistryClient(mirrors={registry.host: f"{registry.host}/empty-cache"}, upstream_fallback=False)
    with pytest.raises(RegistryError) as e:
        client.inspect(f"{registry.host}/team/app:v1")
    assert e.value.status == 404 and f"on mirror {registry.host}/empty-cache" in str(e.value)


@needs_registry
def test_mirror_uses_the_credentials_of_its_own_host(basic_registry):
    ib.Pusher(basic_registry.url, auth=(USER, PASSWORD)).image("library/alpine", "3.18", ib.alpine())
    mirror = {"docker.io": basic_registry.host}
    with pytest.raises(RegistryError) as e:  # Docker Hub credentials are not the mirror's
        RegistryClient(
            credentials={"docker.io": (USER, PASSWORD)}, mirrors=mirror, upstream_fallback=False
        ).inspect("alpine:3.18")
    assert e.value.status == 401
    client = RegistryClient(
        credentials={basic_registry.host: (USER, PASSWORD)}, mirrors=mirror, upstream_fallback=False
    )
    assert client.inspect("alpine:3.18").musl_version == "1.2.4"


@needs_registry
def test_token_mirror_is_asked_for_the_prefixed_repository(token_registry):
    reg, ts = token_registry
    t = requests.get(
        ts.realm,
        params={"service": "dnsaudit-registry", "scope": "repository:dockerhub/library/nginx:pull,push"},
        auth=(USER, PASSWORD),
        timeout=10,
    ).json()["token"]
    pusher = ib.Pusher(reg.url)
    pusher.s.headers["Authorization"] = f"Bearer {t}"
    pusher.image("dockerhub/library/nginx", "1.27", ib.debian())
    before = len(ts.requests)
    client = RegistryClient(
        credentials={reg.host: (USER, PASSWORD)},
        mirrors={"docker.io": f"{reg.host}/dockerhub"},
        upstream_fallback=False,
    )
    assert client.inspect("nginx:1.27").libc == "glibc"
    scopes = [q["query"].get("scope") for q in ts.requests[before:]]
    assert ["repository:dockerhub/library/nginx:pull"] in scopes


class _LyingMirror:
    """A mirror that answers every manifest request with the bytes of one fixed manifest."""

    def __init__(self, body: bytes, media_type: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Docker-Content-Digest", self.path.rsplit("/", 1)[-1])  # the lie
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"


@needs_registry
def test_mirror_answer_for_a_digest_must_hash_to_that_digest(registry, hub_images):
    other = requests.get(
        f"{registry.url}/v2/team/other/manifests/v1", headers={"Accept": ib.OCI_MANIFEST}, timeout=10
    )
    liar = _LyingMirror(other.content, other.headers["Content-Type"])
    try:
        ref = f"docker.io/library/alpine@{hub_images['alpine']}"
        client = RegistryClient(mirrors={"docker.io": liar.host}, upstream_fallback=False)
        with pytest.raises(RegistryError) as e:
            client.inspect(ref)
        assert "hashes to" in str(e.value) and hub_images["alpine"] in str(e.value)
        # Through the honest mirror the same reference is the Alpine image.
        honest = RegistryClient(mirrors={"docker.io": [liar.host, registry.host]}, upstream_fallback=False)
        v = honest.inspect(ref)
        assert v.musl_version == "1.2.3" and f"read from mirror {registry.host} for docker.io" in v.evidence
        assert any(e.startswith("mirrors tried before it:") and liar.host in e for e in v.evidence)
    finally:
        liar.httpd.shutdown()
