"""The ELF parser against real binaries from real toolchains, with binutils' readelf as the oracle."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dnsaudit.core.libc import HEAD_BYTES, interp_libc, parse_elf
from dnsaudit.testbed import imagebuild as ib
from tests.support import need, need_binary

PROGRAM = b"""
#include <stdio.h>
#include <netdb.h>
int main(void) { puts(gai_strerror(EAI_NONAME)); return 0; }
"""


def _readelf(path: Path) -> tuple[int, str, str | None]:
    """(bits, endian, interpreter) according to readelf."""
    readelf = need_binary("readelf")
    hdr = subprocess.run([readelf, "-h", str(path)], capture_output=True, text=True, check=True).stdout
    bits = 64 if "ELF64" in hdr else 32
    endian = "big" if "big endian" in hdr else "little"
    prog = subprocess.run([readelf, "-l", str(path)], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requesting program interpreter: ([^\]]+)\]", prog)
    return bits, endian, m.group(1) if m else None


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("elf")
    (d / "p.c").write_bytes(PROGRAM)
    return d


def _zig(src: Path, target: str, *extra: str) -> Path:
    out = src / f"p-{target}{'-'.join(extra)}"
    r = subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", "-target", target, *extra, "-o", str(out), str(src / "p.c")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    need(r.returncode == 0, f"zig cc -target {target} failed: {r.stderr[-300:]}")
    return out


def _check(path: Path, expect_libc: str) -> None:
    bits, endian, interp = _readelf(path)
    info = parse_elf(path.read_bytes()[:HEAD_BYTES])
    assert info is not None
    assert (info.bits, info.endian, info.interp) == (bits, endian, interp)
    assert (interp_libc(info.interp) if info.interp else "static") == expect_libc


def test_gcc_binary_has_the_glibc_interpreter(src):
    gcc = need_binary("gcc")
    out = src / "p-gcc"
    subprocess.run([gcc, "-o", str(out), str(src / "p.c")], check=True)
    _check(out, "glibc")


def test_musl_gcc_binary_has_the_musl_interpreter(src):
    musl_gcc = need_binary("musl-gcc")
    out = src / "p-musl"
    subprocess.run([musl_gcc, "-o", str(out), str(src / "p.c")], check=True)
    _check(out, "musl")


def test_static_musl_binary_has_no_interpreter(src):
    out = _zig(src, "x86_64-linux-musl", "-static")
    _check(out, "static")
    info = parse_elf(out.read_bytes()[:HEAD_BYTES])
    assert info is not None and info.static and not info.is_go


@pytest.mark.parametrize(
    ("target", "libc"),
    [
        ("x86-linux-gnu", "glibc"),  # 32-bit little endian, /lib/ld-linux.so.2
        ("aarch64-linux-gnu", "glibc"),  # /lib/ld-linux-aarch64.so.1
        ("mips-linux-gnueabihf", "glibc"),  # 32-bit big endian, /lib/ld.so.1
        ("powerpc64-linux-musl", "static"),  # 64-bit big endian
    ],
)
def test_cross_compiled_binaries_both_endians_and_sizes(src, target, libc):
    extra = ("-static",) if libc == "static" else ()
    _check(_zig(src, target, *extra), libc)


def test_non_elf_and_truncated_inputs():
    assert parse_elf(b"#!/bin/sh\necho hi\n") is None
    assert parse_elf(b"\x7fELF") is None
    full = ib.elf_stub("/lib/ld-musl-x86_64.so.1")
    cut = parse_elf(full[:70])  # header present, program headers cut off
    assert cut is not None and cut.interp is None and cut.interp_truncated and not cut.static


def test_stub_writer_round_trips_through_readelf(tmp_path):
    """The test images' ELF stubs must look right to binutils too, or the registry tests prove nothing."""
    for kw in ({"bits": 64, "endian": "little"}, {"bits": 32, "endian": "big", "machine": 8}):
        p = tmp_path / f"stub{kw['bits']}"
        p.write_bytes(ib.elf_stub("/lib/ld-musl-x86_64.so.1", **kw))
        assert _readelf(p) == (kw["bits"], kw["endian"], "/lib/ld-musl-x86_64.so.1")
        assert parse_elf(p.read_bytes()).interp == "/lib/ld-musl-x86_64.so.1"


def test_go_note_is_recognised_and_readelf_sees_it(tmp_path):
    p = tmp_path / "go"
    p.write_bytes(ib.elf_stub(None, go=True))
    notes = subprocess.run([need_binary("readelf"), "-n", str(p)], capture_output=True, text=True).stdout
    assert "Go" in notes
    info = parse_elf(p.read_bytes())
    assert info.is_go and info.static
    assert not parse_elf(ib.elf_stub(None)).is_go


@pytest.mark.parametrize(
    ("interp", "libc"),
    [
        ("/lib/ld-musl-x86_64.so.1", "musl"),
        ("/lib/ld-musl-armhf.so.1", "musl"),
        ("/lib64/ld-linux-x86-64.so.2", "glibc"),
        ("/lib/ld-linux-aarch64.so.1", "glibc"),
        ("/lib64/ld64.so.2", "glibc"),
        ("/system/bin/linker64", "unknown"),
    ],
)
def test_interpreter_names(interp, libc):
    assert interp_libc(interp) == libc
