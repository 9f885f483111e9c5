"""The pure classifier: layer merging, whiteouts, symlinks, signals and the early-stop rule."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from dnsaudit.core.libc import (
    LayerEntry,
    LayerView,
    LibcDetector,
    Node,
    alpine_musl,
    infer_from_reference,
    musl_version_from_apk,
    parse_os_release,
)
from dnsaudit.testbed import imagebuild as ib
from tests.support import need


def classify(image: ib.Image, *, finish: bool = True) -> tuple[LibcDetector, int]:
    """Feed an image's layers top-down as tar streams; returns the detector and layers fed."""
    config = {"config": {"Entrypoint": image.entrypoint, "Cmd": image.cmd, "Env": image.env}}
    det = LibcDetector(config)
    fed = 0
    for layer in reversed(image.layers):
        if det.done():
            break
        det.feed_tar(io.BytesIO(layer.tar(dot_prefix=image.dot_prefix)))
        fed += 1
    if finish and fed == len(image.layers):
        det.finish()
    return det, fed


def test_alpine_is_musl_with_apk_version():
    det, _ = classify(ib.alpine(musl_version="1.1.24-r3", alpine_version="3.11.13"))
    v = det.verdict()
    assert (v.libc, v.musl_version, v.os_id, v.os_version, v.confidence) == (
        "musl", "1.1.24", "alpine", "3.11.13", "confirmed",
    )  # fmt: skip


def test_wolfi_apk_db_without_musl_is_glibc():
    v = classify(ib.wolfi())[0].verdict()
    assert v.libc == "glibc" and v.musl_version is None


def test_static_go_on_alpine_is_static():
    v = classify(ib.static_go())[0].verdict()
    assert v.libc == "static" and any("Go's own resolver" in e for e in v.evidence)


def test_static_go_on_scratch_is_static():
    v = classify(ib.static_go(on_alpine=False))[0].verdict()
    assert v.libc == "static"


def test_empty_image_is_unknown_not_glibc():
    v = classify(ib.Image([ib.Layer().file("/data.txt", "hello")]))[0].verdict()
    assert v.libc == "unknown" and v.confidence == "inferred"


def test_executables_that_agree_decide_when_nothing_else_does():
    layer = (
        ib.Layer()
        .exe("/opt/tools/a", ib.elf_stub(ib.MUSL_LOADER_X86_64))
        .exe("/opt/tools/b", ib.elf_stub(ib.MUSL_LOADER_X86_64))
    )
    assert classify(ib.Image([layer]))[0].verdict().libc == "musl"
    layer.exe("/opt/tools/c", ib.elf_stub(ib.GLIBC_LOADER_X86_64))
    v = classify(ib.Image([layer]))[0].verdict()
    assert v.libc == "unknown" and any("disagree" in e for e in v.evidence)


def test_script_entrypoint_follows_shebang_to_busybox():
    layer = ib.alpine_layer()
    layer.exe("/entrypoint.sh", b"#!/bin/sh\nexec app\n")
    img = ib.Image([layer], entrypoint=["/entrypoint.sh"])
    v = classify(img)[0].verdict()
    assert v.libc == "musl"
    assert any("script run by /bin/sh" in e for e in v.evidence)
    assert any("/bin/sh -> /bin/busybox" in e for e in v.evidence)


def test_entrypoint_interpreter_beats_os_release():
    """A glibc binary copied onto Alpine (with gcompat-like loader) is what actually runs."""
    layer = ib.alpine_layer()
    layer.exe("/app", ib.elf_stub(ib.GLIBC_LOADER_X86_64))
    v = classify(ib.Image([layer], entrypoint=["/app"]))[0].verdict()
    assert v.libc == "glibc" and v.os_id == "alpine"


def test_debian_with_musl_package_is_still_glibc():
    # musl's files first in the stream: once os-release says debian the detector stops reading.
    layer = ib.Layer().exe("/usr/lib/x86_64-linux-musl/libc.so", ib.elf_stub(None))
    layer.symlink("/usr/lib/ld-musl-x86_64.so.1", "x86_64-linux-musl/libc.so")
    layer.members += ib.debian_layer().members
    v = classify(ib.Image([layer]))[0].verdict()
    assert v.libc == "glibc"
    assert any("musl loader present" in e for e in v.evidence)


def test_real_static_musl_binary_is_musl(tmp_path):
    (tmp_path / "p.c").write_text(
        "#include <netdb.h>\n#include <stdio.h>\nint main(void){puts(gai_strerror(EAI_NONAME));return 0;}\n"
    )
    out = tmp_path / "p"
    r = subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", "-target", "x86_64-linux-musl", "-static", "-o", str(out),
         str(tmp_path / "p.c")],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    need(r.returncode == 0, f"zig cc failed: {r.stderr[-300:]}")
    img = ib.Image([ib.Layer().exe("/app", out.read_bytes())], entrypoint=["/app"])
    v = classify(img)[0].verdict()
    assert v.libc == "musl"
    # zig bundles musl 1.2.5, whose gai_strerror table has the 1.2.4+ EAI_NODATA text.
    assert any("1.2.4" in e for e in v.evidence)


# --- layer merging -------------------------------------------------------------------------------


def _view(*layers: list[tuple[str, str, str]]) -> LayerView:
    """Build a view from layers given top-first as (kind, path, target)."""
    v = LayerView()
    for layer in layers:
        v.begin_layer()
        for kind, path, target in layer:
            v.add(path, Node(kind, v.layer, target=target))
        v.end_layer()
    v.complete = True
    return v


def test_whiteout_hides_lower_file_and_its_subtree():
    v = _view(
        [("whiteout", "/opt", "")],
        [("file", "/opt/a/b", ""), ("file", "/opt/c", ""), ("file", "/etc/x", "")],
    )
    assert v.resolve("/opt/a/b")[1] == "absent"
    assert v.resolve("/etc/x")[1] == "found"


def test_whiteout_does_not_hide_its_own_layer():
    v = _view([("whiteout", "/a", ""), ("file", "/a", "")])  # e.g. a replaced file in the same layer
    assert v.resolve("/a")[1] == "found"


def test_opaque_keeps_own_layer_hides_lower():
    v = _view([("opaque", "/lib", ""), ("file", "/lib/new", "")], [("file", "/lib/old", "")])
    assert v.resolve("/lib/new")[1] == "found" and v.resolve("/lib/old")[1] == "absent"


def test_upper_file_shadows_lower_directory():
    v = _view([("file", "/data", "")], [("file", "/data/inner", "")])
    assert v.resolve("/data/inner")[1] == "absent"


def test_upper_directory_contents_shadow_lower_symlink():
    v = _view([("file", "/bin/sh", "")], [("symlink", "/bin", "usr/bin"), ("file", "/usr/bin/sh", "")])
    assert v.resolve("/bin/sh") == ("/bin/sh", "found")


def test_symlinks_absolute_relative_and_dotdot_stay_in_root():
    v = _view(
        [
            ("symlink", "/lib", "usr/lib"),
            ("symlink", "/usr/lib/ld.so", "../../../../../real/ld.so"),  # .. past the root stops at /
            ("file", "/real/ld.so", ""),
            ("symlink", "/abs", "/lib/ld.so"),
        ]
    )
    assert v.resolve("/abs") == ("/real/ld.so", "found")
    assert v.resolve("/lib/ld.so") == ("/real/ld.so", "found")


def test_symlink_loop_is_detected():
    v = _view([("symlink", "/a", "b"), ("symlink", "/b", "/a")])
    assert v.resolve("/a")[1] == "loop"


def test_unknown_until_complete():
    v = LayerView()
    v.begin_layer()
    v.add("/etc/hostname", Node("file", 0))
    v.end_layer()
    assert v.resolve("/etc/os-release")[1] == "unknown"
    v.complete = True
    assert v.resolve("/etc/os-release")[1] == "absent"


def test_dot_slash_names_are_normalised():
    img = ib.alpine(dot_prefix=True)
    v = classify(img)[0].verdict()
    assert v.libc == "musl" and v.musl_version == "1.2.4"


def test_hardlinked_binary_is_followed():
    layer = ib.alpine_layer()
    layer.exe("/usr/bin/real", ib.elf_stub(ib.MUSL_LOADER_X86_64))
    layer.hardlink("/usr/local/bin/app", "/usr/bin/real")
    v = classify(ib.Image([layer], entrypoint=["/usr/local/bin/app"]))[0].verdict()
    assert any("ELF interpreter /lib/ld-musl" in e for e in v.evidence)


# --- early stop ----------------------------------------------------------------------------------


def test_done_after_top_layer_when_it_holds_every_signal():
    det, fed = classify(ib.big_lower(size=1024))
    assert fed == 1 and det.done()
    assert det.verdict().musl_version == "1.2.4"


def test_not_done_while_apk_db_may_be_below():
    app = ib.Layer().exe("/usr/local/bin/app", ib.elf_stub(ib.MUSL_LOADER_X86_64))
    app.file("/etc/os-release", ib.os_release("alpine", "3.18.4"))
    det = LibcDetector({"config": {"Entrypoint": ["/usr/local/bin/app"]}})
    det.feed_tar(io.BytesIO(app.tar()))
    assert not det.done()  # the musl version is still to come from a lower layer
    det.feed_tar(
        io.BytesIO(ib.Layer().file("/lib/apk/db/installed", ib.apk_db([("musl", "1.2.5-r0")])).tar())
    )
    assert det.done() and det.verdict().musl_version == "1.2.5"


def test_not_done_when_entrypoint_not_seen_yet():
    top = ib.Layer().file("/etc/os-release", ib.os_release("debian", "12"))
    det = LibcDetector({"config": {"Entrypoint": ["/app"]}})
    det.feed_tar(io.BytesIO(top.tar()))
    assert not det.done()


def test_feed_layer_stops_mid_stream():
    entries = [
        LayerEntry("/etc/os-release", "file", size=10, read=lambda n: b"ID=debian\n"),
        *(LayerEntry(f"/x/{i}", "file", size=1, read=lambda n: b"x") for i in range(10)),
    ]
    consumed = []

    def gen():
        for e in entries:
            consumed.append(e.path)
            yield e

    det = LibcDetector({})
    assert det.feed_layer(gen()) is True
    assert consumed == ["/etc/os-release"]


# --- small parsers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("v", "expect"),
    [
        ("1.2.4-r3", "1.2.4"),
        ("1.2.4_git20230717-r5", "1.2.4"),
        ("1.1.24-r3", "1.1.24"),
        ("1.2.5-r23", "1.2.5"),
    ],
)
def test_musl_version_from_apk(v, expect):
    db = ib.apk_db([("alpine-baselayout", "3.4.3-r1"), ("musl", v), ("musl-utils", "9.9.9-r0")])
    assert musl_version_from_apk(db) == (expect, v)


def test_apk_db_without_musl():
    assert musl_version_from_apk(ib.apk_db([("glibc", "2.38-r1"), ("musl-utils", "1.2.4-r3")])) is None


def test_os_release_quotes_and_comments():
    assert parse_os_release("# c\nID=\"alpine\"\nVERSION_ID='3.18.4'\n\nBAD\n") == {
        "ID": "alpine",
        "VERSION_ID": "3.18.4",
    }


@pytest.mark.parametrize(
    ("release", "musl"),
    [("3.11", "1.1.24"), ("3.16.9", "1.2.3"), ("3.18", "1.2.4"), ("3.19.1", "1.2.4"), ("3.23", "1.2.5")],
)
def test_alpine_release_table(release, musl):
    assert alpine_musl(release) == musl


@pytest.mark.parametrize(
    ("ref", "libc", "musl"),
    [
        ("alpine:3.16", "musl", "1.2.3"),
        ("docker.io/library/alpine:3.18.4", "musl", "1.2.4"),
        ("python:3.12-alpine3.19", "musl", "1.2.4"),
        ("nginx:1.25-alpine", "musl", None),
        ("gcr.io/distroless/base-debian12", "glibc", None),
        ("gcr.io/distroless/static-debian12", "static", None),
        ("debian:bookworm-slim", "glibc", None),
        ("python:3.12-slim-bookworm", "glibc", None),
        ("cgr.dev/chainguard/python:latest", "glibc", None),
        ("registry.example.com/team/api:1.4.2", "unknown", None),
        ("busybox:latest", "unknown", None),
    ],
)
def test_infer_from_reference(ref, libc, musl):
    v = infer_from_reference(ref)
    assert (v.libc, v.musl_version, v.confidence) == (libc, musl, "inferred")
    assert v.evidence


def _debian_with_stray_musl() -> ib.Image:
    layer = ib.Layer().exe("/usr/lib/x86_64-linux-musl/libc.so", ib.elf_stub(None))
    layer.symlink("/usr/lib/ld-musl-x86_64.so.1", "x86_64-linux-musl/libc.so")
    return ib.Image([ib.debian_layer(), layer])


@pytest.mark.parametrize(
    "make",
    [
        ib.alpine, ib.debian, ib.distroless, ib.wolfi, ib.static_go, ib.static_musl,
        ib.alpine_with_loader_whiteout, ib.opaque_lib, lambda: ib.big_lower(size=1024), _debian_with_stray_musl,
        lambda: ib.Image([ib.alpine_layer(), ib.Layer().file("/etc/os-release", ib.os_release("debian", "12"))]),
    ],
)  # fmt: skip
def test_early_stop_never_changes_the_verdict(make):
    """Whatever done() lets us skip, reading every layer gives the same answer."""
    image = make()
    early, _ = classify(image)
    full = LibcDetector({"config": {"Entrypoint": image.entrypoint, "Cmd": image.cmd, "Env": image.env}})
    full.done = lambda: False  # never stop
    for layer in reversed(image.layers):
        full.feed_tar(io.BytesIO(layer.tar()))
    full.finish()
    a, b = early.verdict(), full.verdict()
    assert (a.libc, a.musl_version, a.os_id, a.os_version) == (b.libc, b.musl_version, b.os_id, b.os_version)
