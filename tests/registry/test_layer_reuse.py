"""Per-layer facts: an image whose base layers were read for another image fetches only its own layers,
and its verdict is the one a cold inspection gives — also when its own layers delete or replace the libc
of the base (whiteouts, opaque directories, a new os-release or apk database), against a real registry."""

from __future__ import annotations

import gzip
import os

import pytest

from dnsaudit.boundary.registry import RegistryClient
from dnsaudit.testbed import imagebuild as ib

pytestmark = pytest.mark.registry

MUSL = ib.MUSL_LOADER_X86_64
GLIBC = ib.GLIBC_LOADER_X86_64


@pytest.fixture(scope="module")
def pusher(registry):
    return ib.Pusher(registry.url)


def push(pusher, registry, name: str, image: ib.Image) -> str:
    digest, _size = pusher.image(name, None, image)
    return f"{registry.host}/{name}@{digest}"


def _base() -> ib.Layer:
    """An Alpine-like base with its signals first and a big file after them (as real bases are)."""
    layer = ib.alpine_layer(musl_version="1.2.4-r3", alpine_version="3.18.4")
    layer.file("/usr/share/bulk.bin", os.urandom(2 * 1024 * 1024))
    return layer


BASE = _base()  # one layer, one digest: shared by every image below


def _app(name: str, *, extra: ib.Layer | None = None, entry: str = "/app/server", interp: str | None = MUSL):
    top = ib.Layer().exe(entry, ib.elf_stub(interp)).file(f"/app/{name}.dat", os.urandom(64 * 1024))
    layers = [BASE, top] if extra is None else [BASE, extra, top]
    return ib.Image(layers, entrypoint=[entry])


def _base_key(registry) -> str:
    return f"{registry.host}/{ib.sha256(gzip.compress(BASE.tar(), mtime=0))}"


def _comparable(v) -> dict:
    """A verdict without the line saying how much was read (the only thing a cache may change)."""
    d = v.to_dict()
    d["evidence"] = [e for e in d["evidence"] if not e.startswith("read ")]
    return d


def _cold(ref: str):
    return RegistryClient().inspect_with_stats(ref)


def test_base_layer_read_once_then_known(pusher, registry):
    first = push(pusher, registry, "reuse-a", _app("a"))
    image_b = _app("b")
    second = push(pusher, registry, "reuse-b", image_b)
    layers: dict = {}
    client = RegistryClient(layer_cache=layers)
    v1, s1 = client.inspect_with_stats(first)
    assert s1.layers_read == 2 and s1.layers_known == 0
    v2, s2 = client.inspect_with_stats(second)
    cold, cold_stats = _cold(second)
    assert (v2.libc, v2.musl_version, v2.os_id, v2.os_version) == ("musl", "1.2.4", "alpine", "3.18.4")
    assert _comparable(v2) == _comparable(cold)
    # Only the image's own layer came over the network; the base was replayed from its record.
    assert s2.layers_read == 1 and s2.layers_known == 1
    own = image_b.blobs()[1][-1][0]
    assert s2.layer_bytes_read == len(own)
    assert cold_stats.layer_bytes_read > s2.layer_bytes_read
    assert any("1 known from earlier inspections" in e for e in v2.evidence)
    # The record is keyed by the registry and the layer digest, and holds the prefix that was read.
    assert layers[_base_key(registry)]["v"] == 1
    assert layers[_base_key(registry)]["complete"] is False  # the prefix the early stop read


@pytest.mark.parametrize(
    ("name", "extra", "interp", "expect"),
    [
        # The upper layer deletes the musl loader: the entrypoint cannot start, and the verdict says so.
        ("wh-loader", ib.Layer().whiteout(MUSL), MUSL, ("musl", "1.2.4")),
        # The upper layer replaces the apk database: a newer musl.
        (
            "new-apk",
            ib.Layer().file("/lib/apk/db/installed", ib.apk_db([("musl", "1.2.5-r0")])),
            MUSL,
            ("musl", "1.2.5"),
        ),
        # The upper layer turns the image into a glibc one: /lib opaque, glibc loader, Debian os-release,
        # the apk database and alpine-release deleted; the entrypoint links glibc.
        (
            "to-glibc",
            ib.Layer()
            .opaque("/lib")
            .exe(GLIBC, ib.elf_stub(None))
            .exe("/lib/x86_64-linux-gnu/libc.so.6", ib.elf_stub(None))
            .file("/etc/os-release", ib.os_release("debian", "12", "Debian GNU/Linux"))
            .whiteout("/etc/alpine-release"),
            GLIBC,
            ("glibc", None),
        ),
        # No entrypoint interpreter to go by (static, not Go): the libc comes from what survives below.
        ("static-wh", ib.Layer().whiteout("/lib").whiteout("/etc/os-release"), None, None),
    ],
)
@pytest.mark.parametrize("shared_upper", [False, True], ids=["base-known", "base-and-upper-known"])
def test_upper_layers_that_change_the_libc_are_read_and_win(
    pusher, registry, name, extra, interp, expect, shared_upper
):
    # The warm image shares the base (and, with shared_upper, the layer that changes the libc too: the
    # image inspected next then replays its whiteouts, opaque directory and files from the record).
    warm_image = _app("warm", extra=extra, interp=interp) if shared_upper else _app("warm")
    warm = push(pusher, registry, f"reuse-warm-{name}-{int(shared_upper)}", warm_image)
    ref = push(pusher, registry, f"reuse-{name}-{int(shared_upper)}", _app(name, extra=extra, interp=interp))
    layers: dict = {}
    client = RegistryClient(layer_cache=layers)
    client.inspect(warm)
    assert layers  # what the warm image read is recorded
    v, stats = client.inspect_with_stats(ref)
    cold, _ = _cold(ref)
    assert _comparable(v) == _comparable(cold)
    if shared_upper:
        assert stats.layers_read == 1  # its own top layer only
        # (a glibc entrypoint over a Debian os-release is certain before the base is reached at all)
        assert stats.layers_known == (1 if name == "to-glibc" else 2)
    elif name == "static-wh":
        # Nothing certain above the base: the prefix its record holds is not enough, so the base is
        # downloaded (past the replayed entries) and its record completed.
        assert stats.layers_read == 3
        assert layers[_base_key(registry)]["complete"] is True
    else:
        assert stats.layers_read == 2  # the image's own two layers only
        assert stats.layers_known == (0 if name == "to-glibc" else 1)
    if expect is not None:
        assert (v.libc, v.musl_version) == expect
    if name == "wh-loader":
        assert any("not in the image" in e for e in v.evidence)
    if name == "to-glibc":
        assert v.os_id == "debian"


def test_a_base_read_to_its_end_answers_an_image_that_needs_all_of_it(pusher, registry):
    """An image with no os-release above a base without one reads the base to its end once; the next
    image of that base replays the whole record (absence is then as certain as after a download)."""
    base = ib.Layer().exe(MUSL, ib.elf_stub(None)).file("/opt/bulk.bin", os.urandom(512 * 1024))
    imgs = [
        ib.Image([base, ib.Layer().exe("/app", ib.elf_stub(None) + os.urandom(32))], entrypoint=["/app"])
        for _ in range(2)
    ]
    refs = [push(pusher, registry, f"reuse-full-{i}", img) for i, img in enumerate(imgs)]
    layers: dict = {}
    client = RegistryClient(layer_cache=layers)
    client.inspect(refs[0])
    v, stats = client.inspect_with_stats(refs[1])
    assert stats.layers_known == 1 and stats.layers_read == 1
    assert _comparable(v) == _comparable(_cold(refs[1])[0])
    assert next(iter(layers.values()))["complete"] is True


def test_an_entrypoint_the_record_did_not_keep_is_downloaded(pusher, registry):
    """A record keeps the content of executables and of the files every image reads; an image whose
    entrypoint is another file of the base (not executable) downloads the base to read it."""
    base = _base()
    base.file("/opt/tool", ib.elf_stub(GLIBC), mode=0o644)
    other = ib.Image([base, ib.Layer().exe("/app/server", ib.elf_stub(MUSL))], entrypoint=["/app/server"])
    odd = ib.Image([base, ib.Layer().file("/app/readme", "x")], entrypoint=["/opt/tool"])
    layers: dict = {}
    client = RegistryClient(layer_cache=layers)
    client.inspect(push(pusher, registry, "reuse-odd-warm", other))
    ref = push(pusher, registry, "reuse-odd", odd)
    v, stats = client.inspect_with_stats(ref)
    assert _comparable(v) == _comparable(_cold(ref)[0])
    assert any("/opt/tool" in e and GLIBC in e for e in v.evidence)
    assert stats.layers_read == 2 and stats.layers_known == 0


def test_static_musl_entrypoint_in_a_known_layer_keeps_its_resolver_strings(pusher, registry):
    """The musl strings of a static binary lie far into the file: the record keeps what was found."""
    binary = ib.elf_stub(None, size=300 * 1024) + ib.MUSL_STATIC_STRINGS
    base = ib.Layer().exe("/usr/bin/tool", binary).file("/etc/os-release", ib.os_release("custom", "1"))
    first = ib.Image([base, ib.Layer().file("/a.txt", "a")], entrypoint=["/usr/bin/tool"])
    second = ib.Image([base, ib.Layer().file("/b.txt", "b")], entrypoint=["/usr/bin/tool"])
    layers: dict = {}
    client = RegistryClient(layer_cache=layers)
    client.inspect(push(pusher, registry, "reuse-static-a", first))
    ref = push(pusher, registry, "reuse-static-b", second)
    v, stats = client.inspect_with_stats(ref)
    assert v.libc == "musl" and stats.layers_known == 1
    assert _comparable(v) == _comparable(_cold(ref)[0])


def test_layer_records_are_kept_per_registry(pusher, registry, basic_registry):
    """A registry's answers never stand for another registry's layers, even under the same digest (a
    registry or mirror could serve other bytes under a digest; the early stop cannot hash a prefix)."""
    from tests.registry.conftest import PASSWORD, USER

    image = _app("per-registry")
    here = push(pusher, registry, "reuse-per-registry", image)
    there_pusher = ib.Pusher(basic_registry.url, auth=(USER, PASSWORD))
    digest, _ = there_pusher.image("reuse-per-registry", None, image)
    there = f"{basic_registry.host}/reuse-per-registry@{digest}"
    layers: dict = {}
    creds = {basic_registry.host: (USER, PASSWORD)}
    client = RegistryClient(layer_cache=layers, credentials=creds)
    client.inspect(here)
    v, stats = client.inspect_with_stats(there)
    assert stats.layers_known == 0 and stats.layers_read == 2
    assert {k.split("/", 1)[0] for k in layers} == {registry.host, basic_registry.host}
    _again, again = client.inspect_with_stats(there)
    assert again.layers_known == 2 and again.layers_read == 0


@pytest.mark.parametrize("truthful", [True, False], ids=["digest-matches", "digest-lies"])
def test_a_layer_read_to_its_end_is_recorded_only_when_it_hashes_to_its_digest(truthful):
    """A registry that serves other bytes under a layer's digest cannot file them as that layer's record
    (the record of a whole layer is kept only when the bytes hash to the digest it was asked for)."""
    from tests.registry import hostile as h

    blob = gzip.compress(ib.Layer().exe(MUSL, ib.elf_stub(None)).tar(), mtime=0)
    digest = h.digest(blob) if truthful else h.digest(b"another layer")
    reg = h.HostileServer()
    try:
        h.serve_image(reg, "liar", {digest: (len(blob), lambda r: r.send(200, blob))})
        layers: dict = {}
        v = RegistryClient(layer_cache=layers, retries=0).inspect(f"{reg.host}/liar:v1")
        assert v.libc == "musl"  # the verdict is what the bytes say, either way
        assert (f"{reg.host}/{digest}" in layers) is truthful
    finally:
        reg.close()


@pytest.mark.parametrize("limit", ["LAYER_RECORD_MAX_ENTRIES", "LAYER_RECORD_MAX_BYTES"])
def test_a_layer_too_big_to_record_is_read_but_not_recorded(pusher, registry, monkeypatch, limit):
    """A record holds every path of its layer: past the entry or byte limit (lowered here) the layer is
    still fed to the detector, but nothing is kept (a hostile layer cannot grow a worker's memory)."""
    from dnsaudit.boundary import registry as boundary

    monkeypatch.setattr(boundary, limit, 8 if limit.endswith("ENTRIES") else 600)
    many = ib.Layer()
    for i in range(20):
        many.dir(f"/srv/d{i:02d}")
    image = ib.Image(
        [BASE, many, ib.Layer().exe("/app/server", ib.elf_stub(MUSL))], entrypoint=["/app/server"]
    )
    ref = push(pusher, registry, f"reuse-too-big-{limit[-5:].lower()}", image)
    layers: dict = {}
    v = RegistryClient(layer_cache=layers).inspect(ref)
    assert (v.libc, v.musl_version) == ("musl", "1.2.4")
    many_key = f"{registry.host}/{ib.sha256(gzip.compress(many.tar(), mtime=0))}"
    assert many_key not in layers
