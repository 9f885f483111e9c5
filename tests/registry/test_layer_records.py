"""Layer records (``dnsaudit.boundary.registry.layer_facts``) stand for their layers: an image classified
from its layers' records — made once, independently of any image, and stored as JSON — gets exactly the
verdict (evidence included) that reading its layers gives. Pure: no registry, the classifier's images."""

from __future__ import annotations

import base64
import io
import json

import pytest

from dnsaudit.boundary.registry import _replay, layer_facts
from dnsaudit.core.libc import LibcDetector, entries_from_tar
from dnsaudit.testbed import imagebuild as ib

MUSL = ib.MUSL_LOADER_X86_64
GLIBC = ib.GLIBC_LOADER_X86_64


def _config(image: ib.Image) -> dict:
    return {"config": {"Entrypoint": image.entrypoint, "Cmd": image.cmd, "Env": image.env}}


def _record(layer: ib.Layer, dot_prefix: bool) -> list[dict]:
    """The whole layer's record, through JSON as it is stored."""
    out = [layer_facts(e)[0] for e in entries_from_tar(io.BytesIO(layer.tar(dot_prefix=dot_prefix)))]
    return json.loads(json.dumps(out))


def _classify(image: ib.Image, *, replay: bool) -> tuple[dict, int]:
    """Top-down with the early stop, as the registry client does; ``replay`` feeds records instead of
    tars (falling back to the tar for a layer whose record lacks a file this image wants)."""
    det = LibcDetector(_config(image))
    fed = downloads = 0
    for layer in reversed(image.layers):
        if det.done():
            break
        records = _record(layer, image.dot_prefix) if replay else None
        if records is not None and not any(r.get("x") and det.wanted(r["p"]) for r in records):
            det.feed_layer(_replay(r) for r in records)
        else:
            det.feed_tar(io.BytesIO(layer.tar(dot_prefix=image.dot_prefix)))
            downloads += 1
        fed += 1
    if fed == len(image.layers):
        det.finish()
    return det.verdict().to_dict(), downloads


def _script_on_alpine() -> ib.Image:
    layer = ib.alpine_layer()
    layer.exe("/entrypoint.sh", b"#!/bin/sh\nexec app\n")
    return ib.Image([layer], entrypoint=["/entrypoint.sh"])


def _hardlinked() -> ib.Image:
    layer = ib.alpine_layer()
    layer.exe("/usr/bin/real", ib.elf_stub(MUSL))
    layer.hardlink("/usr/local/bin/app", "/usr/bin/real")
    return ib.Image([layer], entrypoint=["/usr/local/bin/app"])


def _debian_with_stray_musl() -> ib.Image:
    layer = ib.Layer().exe("/usr/lib/x86_64-linux-musl/libc.so", ib.elf_stub(None))
    layer.symlink("/usr/lib/ld-musl-x86_64.so.1", "x86_64-linux-musl/libc.so")
    return ib.Image([ib.debian_layer(), layer])


def _glibc_over_alpine() -> ib.Image:
    top = (
        ib.Layer()
        .opaque("/lib")
        .exe(GLIBC, ib.elf_stub(None))
        .file("/etc/os-release", ib.os_release("debian", "12"))
        .whiteout("/etc/alpine-release")
        .exe("/app", ib.elf_stub(GLIBC))
    )
    return ib.Image([ib.alpine_layer(), top], entrypoint=["/app"])


def _non_executable_entrypoint() -> ib.Image:
    base = ib.alpine_layer().file("/opt/tool", ib.elf_stub(GLIBC), mode=0o644)
    return ib.Image([base, ib.Layer().file("/x", "x")], entrypoint=["/opt/tool"])


def _static_musl_below() -> ib.Image:
    binary = ib.elf_stub(None, size=200 * 1024) + ib.MUSL_STATIC_STRINGS
    base = ib.Layer().exe("/usr/bin/tool", binary).file("/etc/os-release", ib.os_release("custom", "1"))
    return ib.Image([base, ib.Layer().file("/x", "x")], entrypoint=["/usr/bin/tool"])


def _go_behind_path() -> ib.Image:
    base = ib.alpine_layer()
    base.exe("/usr/local/bin/server", ib.elf_stub(None, go=True, size=20 * 1024))
    return ib.Image([base], cmd=["server"])


CASES = {
    "alpine": ib.alpine,
    "alpine-dot-prefix": lambda: ib.alpine(dot_prefix=True),
    "debian": ib.debian,
    "debian-no-usrmerge": lambda: ib.Image([ib.debian_layer(usrmerge=False)], cmd=["/bin/dash"]),
    "distroless": ib.distroless,
    "wolfi": ib.wolfi,
    "static-go-on-alpine": ib.static_go,
    "static-go": lambda: ib.static_go(on_alpine=False),
    "static-musl": ib.static_musl,
    "loader-whiteout": ib.alpine_with_loader_whiteout,
    "opaque-lib": ib.opaque_lib,
    "big-lower": lambda: ib.big_lower(size=1024),
    "debian-with-stray-musl": _debian_with_stray_musl,
    "script": _script_on_alpine,
    "hardlink": _hardlinked,
    "glibc-over-alpine": _glibc_over_alpine,
    "non-executable-entrypoint": _non_executable_entrypoint,
    "static-musl-below": _static_musl_below,
    "go-behind-path": _go_behind_path,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_verdict_from_layer_records_is_the_verdict_from_the_layers(name):
    image = CASES[name]()
    from_layers, _ = _classify(image, replay=False)
    from_records, downloads = _classify(image, replay=True)
    assert from_records == from_layers
    # Only an entrypoint the records did not keep sends the client back to the layer itself.
    assert downloads == (1 if name == "non-executable-entrypoint" else 0)


def test_records_keep_executables_short_and_other_files_by_path_only():
    layer = (
        ib.Layer()
        .exe("/usr/bin/tool", ib.elf_stub(GLIBC, size=64 * 1024))
        .file("/usr/share/doc/big.txt", "x" * 100_000)
        .file("/etc/os-release", ib.os_release("debian", "12"))
    )
    records = {r["p"]: r for r in _record(layer, False)}
    assert records["/usr/share/doc/big.txt"] == {"p": "/usr/share/doc/big.txt", "k": "file", "x": 1}
    assert len(records["/usr/bin/tool"]["d"]) < 4096  # the ELF header and program headers, not 64 KiB
    assert "ID=debian" in base64.b64decode(records["/etc/os-release"]["d"]).decode()
