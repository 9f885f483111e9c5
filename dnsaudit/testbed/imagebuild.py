"""Build small OCI/Docker images in Python and push them to a registry (tests, benchmarks, demos).

Layers are tar archives written here (gzip or not, optional ``./`` names), holding files, symlinks,
hard links, whiteouts and ELF stubs whose program headers carry a chosen ``PT_INTERP``. Images are
pushed through the distribution API with monolithic blob uploads (``POST`` then ``PUT ?digest=``).

This module talks HTTP with ``requests`` because it is a tool, not part of the audit path.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import tarfile
from dataclasses import dataclass, field

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MUSL_LOADER_X86_64 = "/lib/ld-musl-x86_64.so.1"
MUSL_LOADER_AARCH64 = "/lib/ld-musl-aarch64.so.1"
GLIBC_LOADER_X86_64 = "/lib64/ld-linux-x86-64.so.2"
GLIBC_LOADER_AARCH64 = "/lib/ld-linux-aarch64.so.1"

EM = {"amd64": 62, "arm64": 183, "386": 3, "arm": 40, "s390x": 22, "ppc64le": 21}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- ELF stubs -------------------------------------------------------------------------------------


def elf_stub(
    interp: str | None,
    *,
    bits: int = 64,
    endian: str = "little",
    machine: int = 62,
    go: bool = False,
    extra: bytes = b"",
    size: int = 0,
) -> bytes:
    """A minimal, structurally valid ELF executable header with program headers.

    ``interp`` None makes a static binary (no ``PT_INTERP``/``PT_DYNAMIC``). ``go`` adds the Go build-ID
    note and string. ``extra`` is appended (e.g. musl's resolver strings); ``size`` pads with zeros.
    It is not runnable; it only has to look right to a parser.
    """
    e = "<" if endian == "little" else ">"
    ehsize, phentsize = (64, 56) if bits == 64 else (52, 32)
    segments: list[tuple[int, bytes]] = []  # (p_type, payload)
    if interp is not None:
        segments.append((3, interp.encode() + b"\0"))
        segments.append((2, b"\0" * 16))
    if go:
        desc = b"abcdefghijklmnopqrstuvwxyz012345/ABCDEFGH"
        note = struct.pack(e + "III", 4, len(desc), 4) + b"Go\0\0" + desc + b"\0" * (-len(desc) % 4)
        segments.append((4, note))
    segments.append((1, b""))  # PT_LOAD covering the file start
    phnum = len(segments)
    off = ehsize + phnum * phentsize
    payload = b""
    phdrs = b""
    for p_type, data in segments:
        p_off = off + len(payload) if data else 0
        if bits == 64:
            phdrs += struct.pack(e + "IIQQQQQQ", p_type, 5, p_off, 0x400000 + p_off, 0x400000 + p_off,
                                 len(data), len(data), 1 if data else 0x1000)  # fmt: skip
        else:
            phdrs += struct.pack(e + "IIIIIIII", p_type, p_off, 0x8048000 + p_off, 0x8048000 + p_off,
                                 len(data), len(data), 5, 1 if data else 0x1000)  # fmt: skip
        payload += data
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1 if endian == "little" else 2, 1, 0]) + b"\0" * 8
    if bits == 64:
        header = ident + struct.pack(e + "HHIQQQIHHHHHH", 2, machine, 1, 0x401000, ehsize, 0, 0, ehsize,
                                     phentsize, phnum, 64, 0, 0)  # fmt: skip
    else:
        header = ident + struct.pack(e + "HHIIIIIHHHHHH", 2, machine, 1, 0x8049000, ehsize, 0, 0, ehsize,
                                     phentsize, phnum, 40, 0, 0)  # fmt: skip
    out = header + phdrs + payload
    if go:
        out += b"\0" * 16 + b'\xff Go build ID: "abc/def/ghi"\n \xff'
    out += extra
    if size > len(out):
        out += b"\0" * (size - len(out))
    return out


MUSL_STATIC_STRINGS = b"\0Name does not resolve\0Name has no usable address\0"


# --- layers ----------------------------------------------------------------------------------------


@dataclass
class Layer:
    """A layer being written: add members in order, then :meth:`tar`."""

    members: list[tuple[str, str, bytes | str, int]] = field(default_factory=list)  # (kind, path, data, mode)

    def file(self, path: str, data: bytes | str, mode: int = 0o644) -> Layer:
        self.members.append(("file", path, data.encode() if isinstance(data, str) else data, mode))
        return self

    def exe(self, path: str, data: bytes) -> Layer:
        return self.file(path, data, 0o755)

    def dir(self, path: str) -> Layer:
        self.members.append(("dir", path, b"", 0o755))
        return self

    def symlink(self, path: str, target: str) -> Layer:
        self.members.append(("symlink", path, target, 0o777))
        return self

    def hardlink(self, path: str, target: str) -> Layer:
        self.members.append(("hardlink", path, target, 0o644))
        return self

    def whiteout(self, path: str) -> Layer:
        """Delete ``path`` (from lower layers) with a ``.wh.<name>`` marker."""
        head, _, name = path.rstrip("/").rpartition("/")
        return self.file(f"{head}/.wh.{name}", b"")

    def opaque(self, directory: str) -> Layer:
        """Hide everything lower layers put in ``directory``."""
        return self.file(directory.rstrip("/") + "/.wh..wh..opq", b"")

    def tar(self, *, dot_prefix: bool = False) -> bytes:
        """The uncompressed tar. ``dot_prefix`` writes names as ``./etc/...`` (as many tools do)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for kind, path, data, mode in self.members:
                name = path.lstrip("/")
                if dot_prefix:
                    name = "./" + name
                ti = tarfile.TarInfo(name)
                ti.mode = mode
                ti.mtime = 0
                if kind == "file":
                    assert isinstance(data, bytes)
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
                    continue
                if kind == "dir":
                    ti.type = tarfile.DIRTYPE
                elif kind == "symlink":
                    ti.type = tarfile.SYMTYPE
                    ti.linkname = str(data)
                elif kind == "hardlink":
                    ti.type = tarfile.LNKTYPE
                    ti.linkname = ("./" if dot_prefix else "") + str(data).lstrip("/")
                tf.addfile(ti)
        return buf.getvalue()


@dataclass
class Image:
    """Layers bottom-first (like the manifest), a config, and how to encode the layers."""

    layers: list[Layer]
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    architecture: str = "amd64"
    os: str = "linux"
    variant: str | None = None
    env: list[str] = field(
        default_factory=lambda: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    )
    gzip_layers: list[bool] | None = None  # per layer; default all gzip
    dot_prefix: bool = False
    docker_media_types: bool = False
    lie_about_gzip: bool = False  # declare gzip layers with the plain-tar media type (magic-byte test)

    def blobs(self) -> tuple[bytes, list[tuple[bytes, bool]]]:
        """``(config, [(layer_blob, gzipped), ...])``: the encoded blobs, layers bottom-first."""
        layer_blobs = []
        diff_ids = []
        for i, layer in enumerate(self.layers):
            raw = layer.tar(dot_prefix=self.dot_prefix)
            diff_ids.append(sha256(raw))
            gz = True if self.gzip_layers is None else self.gzip_layers[i]
            blob = gzip.compress(raw, mtime=0) if gz else raw
            layer_blobs.append((blob, gz))
        cfg: dict = {
            "architecture": self.architecture,
            "os": self.os,
            "config": {"Env": self.env},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        if self.variant:
            cfg["variant"] = self.variant
        if self.entrypoint:
            cfg["config"]["Entrypoint"] = self.entrypoint
        if self.cmd:
            cfg["config"]["Cmd"] = self.cmd
        config = json.dumps(cfg, sort_keys=True).encode()
        return config, layer_blobs

    def total_layer_bytes(self) -> int:
        return sum(len(b) for b, _ in self.blobs()[1])


# --- pushing ---------------------------------------------------------------------------------------


class Pusher:
    """Push blobs and manifests to ``base_url`` (``http://127.0.0.1:5000``), optionally with basic auth."""

    def __init__(self, base_url: str, auth: tuple[str, str] | None = None, verify: bool | str = True) -> None:
        self.base = base_url.rstrip("/")
        self.s = requests.Session()
        self.s.auth = auth
        self.s.verify = verify

    def blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        if self.s.head(f"{self.base}/v2/{repo}/blobs/{digest}", timeout=30).status_code == 200:
            return digest
        r = self.s.post(f"{self.base}/v2/{repo}/blobs/uploads/", timeout=30)
        r.raise_for_status()
        loc = r.headers["Location"]
        if loc.startswith("/"):
            loc = self.base + loc
        sep = "&" if "?" in loc else "?"
        r = self.s.put(
            f"{loc}{sep}digest={digest}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=120,
        )
        r.raise_for_status()
        return digest

    def manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        r = self.s.put(
            f"{self.base}/v2/{repo}/manifests/{ref}",
            data=body,
            headers={"Content-Type": media_type},
            timeout=30,
        )
        if r.status_code >= 400:
            raise RuntimeError(f"manifest push failed {r.status_code}: {r.text[:300]}")
        return r.headers.get("Docker-Content-Digest") or sha256(body)

    def image(self, repo: str, tag: str | None, image: Image) -> tuple[str, int]:
        """Push ``image``; returns ``(manifest digest, manifest size)``. ``tag`` None pushes by digest."""
        body, media_type = self.image_manifest(repo, image)
        digest = sha256(body)
        self.manifest(repo, tag or digest, body, media_type)
        return digest, len(body)

    def image_manifest(self, repo: str, image: Image) -> tuple[bytes, str]:
        config, layers = image.blobs()
        docker = image.docker_media_types
        cfg_desc = {
            "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
            "digest": self.blob(repo, config),
            "size": len(config),
        }
        layer_descs = []
        for blob, gz in layers:
            if docker:
                mt = DOCKER_LAYER_GZIP if gz else "application/vnd.docker.image.rootfs.diff.tar"
            else:
                mt = OCI_LAYER_GZIP if gz and not image.lie_about_gzip else OCI_LAYER
            layer_descs.append({"mediaType": mt, "digest": self.blob(repo, blob), "size": len(blob)})
        media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
        manifest = {"schemaVersion": 2, "mediaType": media_type, "config": cfg_desc, "layers": layer_descs}
        return json.dumps(manifest).encode(), media_type

    def index(
        self, repo: str, tag: str, images: list[Image], *, attestation: bool = True, docker: bool = False
    ) -> str:
        """Push a multi-arch index of ``images`` (+ an attestation entry per image); returns its digest."""
        entries = []
        for img in images:
            digest, size = self.image(repo, None, img)
            plat = {"architecture": img.architecture, "os": img.os}
            if img.variant:
                plat["variant"] = img.variant
            mt = DOCKER_MANIFEST if img.docker_media_types else OCI_MANIFEST
            entries.append({"mediaType": mt, "digest": digest, "size": size, "platform": plat})
            if attestation:
                att_cfg = json.dumps({"architecture": "unknown", "os": "unknown"}).encode()
                stmt = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "subject": []}).encode()
                att = {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": OCI_CONFIG,
                        "digest": self.blob(repo, att_cfg),
                        "size": len(att_cfg),
                    },
                    "layers": [
                        {
                            "mediaType": "application/vnd.in-toto+json",
                            "digest": self.blob(repo, stmt),
                            "size": len(stmt),
                        }
                    ],
                }
                body = json.dumps(att).encode()
                att_digest = sha256(body)
                self.manifest(repo, att_digest, body, OCI_MANIFEST)
                entries.insert(
                    0,  # first, so a client that does not skip attestations would pick it
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": att_digest,
                        "size": len(body),
                        "platform": {"architecture": "unknown", "os": "unknown"},
                        "annotations": {
                            "vnd.docker.reference.type": "attestation-manifest",
                            "vnd.docker.reference.digest": digest,
                        },
                    },
                )
        media_type = DOCKER_LIST if docker else OCI_INDEX
        body = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": entries}).encode()
        self.manifest(repo, tag, body, media_type)
        return sha256(body)


# --- presets ---------------------------------------------------------------------------------------


def os_release(os_id: str, version: str, name: str | None = None) -> str:
    return (
        f'NAME="{name or os_id}"\nID={os_id}\nVERSION_ID={version}\nPRETTY_NAME="{name or os_id} {version}"\n'
    )


def apk_db(packages: list[tuple[str, str]]) -> str:
    """An apk ``installed`` database with ``P:``/``V:`` records (plus a few other fields)."""
    recs = [f"C:Q1abc=\nP:{p}\nV:{v}\nA:x86_64\nS:1000\nI:2000\nT:{p} package\n" for p, v in packages]
    return "\n".join(recs) + "\n"


def alpine_layer(
    musl_version: str = "1.2.4-r3", alpine_version: str = "3.18.4", arch: str = "x86_64"
) -> Layer:
    """An Alpine-like base: musl loader + libc symlink, busybox, apk db, os-release, alpine-release."""
    loader = f"/lib/ld-musl-{arch}.so.1"
    return (
        Layer()
        .dir("/bin")
        .dir("/lib")
        .dir("/etc")
        .exe(loader, elf_stub(None, machine=EM["amd64"] if arch == "x86_64" else EM["arm64"]))
        .symlink(f"/lib/libc.musl-{arch}.so.1", posixpathbase(loader))
        .exe("/bin/busybox", elf_stub(loader))
        .symlink("/bin/sh", "/bin/busybox")
        .file("/etc/os-release", os_release("alpine", alpine_version, "Alpine Linux"))
        .file("/etc/alpine-release", alpine_version + "\n")
        .file("/lib/apk/db/installed", apk_db([("alpine-baselayout", "3.4.3-r1"), ("musl", musl_version), ("busybox", "1.36.1-r5")]))
    )  # fmt: skip


def posixpathbase(p: str) -> str:
    return p.rsplit("/", 1)[-1]


def alpine(musl_version: str = "1.2.4-r3", alpine_version: str = "3.18.4", **kw) -> Image:
    """Alpine-like image with an app layer whose entrypoint links musl."""
    app = Layer().exe("/usr/local/bin/app", elf_stub(MUSL_LOADER_X86_64))
    return Image([alpine_layer(musl_version, alpine_version), app], entrypoint=["/usr/local/bin/app"], **kw)


def debian_layer(version: str = "12", usrmerge: bool = True) -> Layer:
    layer = Layer().dir("/usr").dir("/usr/bin").dir("/usr/lib").dir("/usr/lib/x86_64-linux-gnu").dir("/etc")
    if usrmerge:
        layer.symlink("/bin", "usr/bin").symlink("/lib", "usr/lib").symlink("/lib64", "usr/lib64")
        layer.dir("/usr/lib64")
        loader_dir = "/usr/lib64"
    else:
        layer.dir("/bin").dir("/lib").dir("/lib64")
        loader_dir = "/lib64"
    return (
        layer.exe("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", elf_stub(None))
        .symlink(f"{loader_dir}/ld-linux-x86-64.so.2", "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
                 if usrmerge else "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
        .exe("/usr/lib/x86_64-linux-gnu/libc.so.6", elf_stub(None))
        .exe("/usr/bin/dash", elf_stub(GLIBC_LOADER_X86_64))
        .symlink("/usr/bin/sh", "dash")
        .file("/usr/lib/os-release", os_release("debian", version, "Debian GNU/Linux"))
        .symlink("/etc/os-release", "../usr/lib/os-release")
    )  # fmt: skip


def debian(version: str = "12", **kw) -> Image:
    """Debian-like (merged /usr), entrypoint a glibc-linked binary reached through the /bin symlink."""
    app = Layer().exe("/usr/bin/app", elf_stub(GLIBC_LOADER_X86_64))
    return Image([debian_layer(version), app], entrypoint=["/bin/app"], **kw)


def distroless(**kw) -> Image:
    """distroless/base-like: glibc loader and libc, os-release ID=debian, no shell, no package manager."""
    base = (
        Layer()
        .exe("/lib/x86_64-linux-gnu/libc.so.6", elf_stub(None))
        .exe("/lib64/ld-linux-x86-64.so.2", elf_stub(None))
        .file(
            "/etc/os-release",
            'PRETTY_NAME="Distroless"\nNAME="Debian GNU/Linux"\nID="debian"\nVERSION_ID="12"\n',
        )
    )
    app = Layer().exe("/app/server", elf_stub(GLIBC_LOADER_X86_64))
    return Image([base, app], entrypoint=["/app/server"], **kw)


def wolfi(**kw) -> Image:
    """Wolfi/Chainguard-like: apk database (glibc package, no musl), ID=wolfi, glibc loader."""
    base = (
        Layer()
        .exe("/lib/ld-linux-x86-64.so.2", elf_stub(None))
        .symlink("/lib64", "lib")
        .exe("/lib/libc.so.6", elf_stub(None))
        .file("/lib/apk/db/installed", apk_db([("wolfi-baselayout", "20230201-r7"), ("glibc", "2.38-r1"), ("ca-certificates-bundle", "20230506-r0")]))
        .file("/etc/os-release", 'ID=wolfi\nNAME="Wolfi"\nPRETTY_NAME="Wolfi"\nVERSION_ID="20230201"\n')
    )  # fmt: skip
    return Image([base], cmd=["/usr/bin/true"], **kw)


def static_go(on_alpine: bool = True, **kw) -> Image:
    """A static Go binary (no PT_INTERP, Go build-ID note), optionally on an Alpine base (the trap)."""
    layers = [alpine_layer()] if on_alpine else []
    layers.append(Layer().exe("/ko-app/server", elf_stub(None, go=True, size=64 * 1024)))
    return Image(layers, entrypoint=["/ko-app/server"], **kw)


def static_musl(**kw) -> Image:
    """scratch + one statically linked musl binary (resolver strings far into the file)."""
    binary = elf_stub(None, size=200 * 1024) + MUSL_STATIC_STRINGS
    return Image([Layer().exe("/app", binary)], entrypoint=["/app"], **kw)


def alpine_with_loader_whiteout(**kw) -> Image:
    """No os-release; lower layer has a musl loader and a glibc loader; the upper layer deletes musl's."""
    lower = (
        Layer()
        .exe(MUSL_LOADER_X86_64, elf_stub(None))
        .exe(GLIBC_LOADER_X86_64, elf_stub(None))
        .exe("/lib/x86_64-linux-gnu/libc.so.6", elf_stub(None))
    )
    upper = Layer().whiteout(MUSL_LOADER_X86_64)
    return Image([lower, upper], cmd=["/app"], **kw)


def opaque_lib(**kw) -> Image:
    """Lower /lib has musl's loader; the upper layer makes /lib opaque and puts a glibc loader there."""
    lower = Layer().exe(MUSL_LOADER_X86_64, elf_stub(None)).exe("/lib/other.so", b"x")
    upper = Layer().opaque("/lib").exe("/lib/ld-linux-x86-64.so.2", elf_stub(None))
    return Image([lower, upper], **kw)


def big_lower(size: int = 4 * 1024 * 1024, **kw) -> Image:
    """A big incompressible lower layer under a complete Alpine layer (early-stop benchmark)."""
    import os

    lower = Layer().file("/opt/blob.bin", os.urandom(size))
    top = alpine_layer()
    top.exe("/usr/local/bin/app", elf_stub(MUSL_LOADER_X86_64))
    return Image([lower, top], entrypoint=["/usr/local/bin/app"], **kw)
