"""Fuzzing the image readers (``dnsaudit.core.libc``): ELF headers, image configs, os-release and apk
databases, and layers as tar streams, intact or corrupted: a verdict or a documented error, quickly."""

from __future__ import annotations

import contextlib
import io
import tarfile
import zlib

import pytest
from hypothesis import given

from dnsaudit.core.libc import (
    LayerLimitExceeded,
    LibcDetector,
    musl_version_from_apk,
    parse_elf,
    parse_os_release,
)
from tests.fuzz.bytegen import Reader
from tests.fuzz.common import bounded, seeds

pytestmark = pytest.mark.fuzz

#: What a corrupt or truncated layer may raise (the registry maps these to "not a readable tar").
LAYER_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    tarfile.TarError,
    zlib.error,
    RecursionError,
    LayerLimitExceeded,
)

ELF = b"\x7fELF"
CONFIG_KEYS = ["config", "Entrypoint", "Cmd", "Env", "WorkingDir", "architecture", "os"]
PATHS = ["lib/ld-musl-x86_64.so.1", "lib/libc.musl-x86_64.so.1", "etc/os-release", "lib/apk/db/installed",
         "usr/bin/app", "bin/sh", "lib/x86_64-linux-gnu/libc.so.6", "lib64/ld-linux-x86-64.so.2",
         "etc/.wh..wh..opq", "etc/.wh.passwd", "../x", "/abs", "a/./b//c", "app"]  # fmt: skip
TEXTS = [
    "ID=alpine",
    "VERSION_ID=3.20.1",
    "ID=debian",
    "P:musl",
    "V:1.2.5-r0",
    "\n",
    "=",
    '"',
    "\\",
    "#!/bin/sh",
]
CONFIG = {
    "architecture": ["amd64", "arm64"],
    "os": ["linux"],
    "config": {"Entrypoint": ("name",), "Cmd": ("name",), "Env": ("name",), "WorkingDir": "name"},
}
NAMES = ["/app", "app", "sh", "./run", "PATH=/usr/bin:/bin", "PATH=relative", "/", "/usr/bin/app"]


def _content(r: Reader) -> bytes:
    k = r.below(4)
    if k == 0:
        return (
            ELF
            + bytes([r.pick([1, 2, 0, 7]), r.pick([1, 2, 0])])
            + bytes(r.byte() for _ in range(r.below(120)))
        )
    if k == 1:
        return r.text(TEXTS, 10).encode("utf-8", "surrogateescape")
    return bytes(r.byte() for _ in range(r.below(64)))


def _layer(r: Reader) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=r.pick([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
    ) as tf:
        for _ in range(r.below(5)):
            info = tarfile.TarInfo(r.pick(PATHS) if r.below(4) else r.raw_text(10))
            info.type = r.pick(
                [tarfile.REGTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE]
            )
            data = b""
            if info.type == tarfile.REGTYPE:
                data = _content(r)
                info.size = len(data)
            elif info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = r.pick(PATHS)
            with contextlib.suppress(ValueError, UnicodeError):  # what tarfile cannot write in this format
                tf.addfile(info, io.BytesIO(data) if data else None)
    raw = bytearray(buf.getvalue())
    for _ in range(r.below(4) if r.flag() else 0):
        raw[r.byte() * 7 % len(raw)] = r.byte()
    if r.below(4) == 0:
        del raw[r.byte() * 37 % (len(raw) + 1) :]
    return bytes(raw)


@given(seeds)
def test_image_readers(seed):
    r = Reader(seed)
    head = _content(r)
    text = r.text(TEXTS, 20)
    config = r.shaped(CONFIG, CONFIG_KEYS, NAMES)
    layers = [_layer(r) for _ in range(1 + r.below(2))]
    with bounded():
        parse_elf(head)
        parse_os_release(text)
        musl_version_from_apk(text)
        det = LibcDetector(config)
        for layer in layers:
            with contextlib.suppress(*LAYER_ERRORS):
                det.feed_tar(io.BytesIO(layer), max_entries=50, max_header_bytes=4096)
        det.finish()
        det.verdict()
