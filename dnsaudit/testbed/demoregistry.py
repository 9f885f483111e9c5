"""A small read-only OCI registry holding synthetic stand-ins for the demo fleet's images.

The demo clusters (``dnsaudit.testbed.fakekube.fleet``) run images such as ``alpine:3.16`` or
``registry.k8s.io/kube-proxy``. Their registries are unreachable from a closed demo machine, so this
module builds, in memory and deterministically, one small multi-arch image (linux/amd64 + linux/arm64)
per image of :data:`dnsaudit.testbed.fakekube.objects.IMAGE_FACTS`, with the contents that decide its libc
(apk database and musl loader, glibc loader, static Go binary...), and serves them over the
distribution API on loopback. The demo then uses this server as the *registry mirror* of docker.io,
gcr.io, registry.k8s.io, ghcr.io and cgr.dev, so scans read real bytes and give ``confirmed`` verdicts.

The stand-ins are not the real images and say so: every one has an os-release ``PRETTY_NAME`` of
``dnsaudit demo stand-in for <ref>``, its entrypoint is ``/usr/local/bin/dnsaudit-demo-stand-in``, and
the mirror's repository prefix is ``dnsaudit-demo-stand-ins`` (so verdict evidence reads
``entrypoint /usr/local/bin/dnsaudit-demo-stand-in: ...`` and ``read from mirror
127.0.0.1:PORT/dnsaudit-demo-stand-ins/docker.io for docker.io``).

Digests are stable: tar members have mtime 0, gzip headers mtime 0, JSON is written with sorted keys.
:func:`demo_image_digest` gives the index digest of a stand-in without starting anything; install it
with ``dnsaudit.testbed.fakekube.objects.set_image_digest_provider`` before building the fleet so the pods'
``imageID`` name the stand-ins.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dnsaudit.testbed import imagebuild as ib
from dnsaudit.testbed.fakekube.objects import canonical_image

PREFIX = "dnsaudit-demo-stand-ins"
STAND_IN_BINARY = "/usr/local/bin/dnsaudit-demo-stand-in"
ARCHES = ("amd64", "arm64")

# Per architecture: (uname machine, ELF machine, musl loader, glibc loader, multiarch triplet).
_ARCH = {
    "amd64": ("x86_64", ib.EM["amd64"], ib.MUSL_LOADER_X86_64, ib.GLIBC_LOADER_X86_64, "x86_64-linux-gnu"),
    "arm64": (
        "aarch64",
        ib.EM["arm64"],
        ib.MUSL_LOADER_AARCH64,
        ib.GLIBC_LOADER_AARCH64,
        "aarch64-linux-gnu",
    ),
}
# Only the EAI_NONAME text: the demo's busybox facts do not claim a musl version (the >= 1.2.4 marker would).
_MUSL_STATIC = b"\0Name does not resolve\0"


@dataclass(frozen=True)
class StandIn:
    """How to build the stand-in of one image: a ``kind`` (see :func:`_layers`) and its parameters."""

    kind: str
    os_version: str = ""
    musl: str = ""  # apk V: of musl (alpine kinds)


#: The stand-in of each demo image, keyed as the fleet writes the image. Written from what the real
#: images are (Docker Hub / vendor docs), independently of ``IMAGE_FACTS``: the tests compare the two.
STAND_INS: dict[str, StandIn] = {
    "alpine:3.16": StandIn("alpine", "3.16.9", "1.2.3-r4"),
    "alpine:3.18": StandIn("alpine", "3.18.9", "1.2.4-r2"),
    "alpine:3.19": StandIn("alpine", "3.19.4", "1.2.4_git20230717-r4"),
    "alpine:3.20": StandIn("alpine", "3.20.3", "1.2.5-r0"),
    "python:3.12-alpine": StandIn("alpine", "3.20.3", "1.2.5-r0"),
    "nginx:1.27-alpine": StandIn("alpine", "3.20.3", "1.2.5-r0"),
    "redis:7.2-alpine": StandIn("alpine", "3.19.4", "1.2.4_git20230717-r4"),
    "node:20-alpine": StandIn("alpine", "3.20.3", "1.2.5-r0"),
    "golang:1.22-alpine": StandIn("alpine", "3.20.3", "1.2.5-r0"),
    "busybox:1.36-musl": StandIn("busybox-musl"),
    "busybox:1.36-glibc": StandIn("busybox-glibc"),
    "debian:bookworm": StandIn("debian", "12"),
    "debian:bookworm-slim": StandIn("debian", "12"),
    "python:3.12-slim": StandIn("debian", "12"),
    "nginx:1.27": StandIn("debian", "12"),
    "postgres:16": StandIn("debian", "12"),
    "ubuntu:22.04": StandIn("ubuntu", "22.04"),
    "gcr.io/distroless/static-debian12": StandIn("distroless-static", "12"),
    "gcr.io/distroless/base-debian12": StandIn("distroless-base", "12"),
    "cgr.dev/chainguard/static:latest": StandIn("wolfi-static"),
    "cgr.dev/chainguard/wolfi-base:latest": StandIn("wolfi"),
    "registry.k8s.io/coredns/coredns:v1.11.3": StandIn("go", "12"),
    "rancher/mirrored-coredns-coredns:1.10.1": StandIn("go", "12"),
    "ghcr.io/kyverno/kyverno:v1.12.5": StandIn("go", "12"),
    "registry.k8s.io/kube-proxy:v1.31.4": StandIn("debian", "12"),
    "registry.k8s.io/dns/k8s-dns-node-cache:1.23.1": StandIn("debian", "12"),
}


def _os_release(os_id: str, version: str, name: str, ref: str) -> str:
    lines = [f'NAME="{name}"', f"ID={os_id}"]
    if version:
        lines.append(f"VERSION_ID={version}")
    lines.append(f'PRETTY_NAME="dnsaudit demo stand-in for {ref} (synthetic, not the real image)"')
    return "\n".join(lines) + "\n"


def _layers(spec: StandIn, arch: str, ref: str) -> list[ib.Layer]:
    """The layers (bottom first) of ``spec`` for ``arch``; the top layer holds the stand-in entrypoint."""
    uname, em, musl_loader, glibc_loader, triplet = _ARCH[arch]

    def stub(interp: str | None, **kw) -> bytes:
        return ib.elf_stub(interp, machine=em, **kw)

    k = spec.kind
    if k == "alpine":
        base = ib.alpine_layer(spec.musl, spec.os_version, arch=uname)
        # The preset's os-release names a real Alpine release: replace it, so no file in the image does.
        base.members = [m for m in base.members if m[1] != "/etc/os-release"]
        base.file("/etc/os-release", _os_release("alpine", spec.os_version, "Alpine Linux", ref))
        return [base, ib.Layer().exe(STAND_IN_BINARY, stub(musl_loader))]
    if k in ("debian", "ubuntu"):
        name = "Debian GNU/Linux" if k == "debian" else "Ubuntu"
        lib = f"/usr/lib/{triplet}"
        base = (
            ib.Layer()
            .dir("/usr").dir("/usr/bin").dir("/usr/lib").dir(lib).dir("/usr/lib64").dir("/etc")
            .symlink("/bin", "usr/bin").symlink("/lib", "usr/lib").symlink("/lib64", "usr/lib64")
            .exe(f"{lib}/{glibc_loader.rsplit('/', 1)[1]}", stub(None))
            .exe(f"{lib}/libc.so.6", stub(None))
            .exe("/usr/bin/dash", stub(glibc_loader))
            .symlink("/usr/bin/sh", "dash")
            .file("/usr/lib/os-release", _os_release(k, spec.os_version, name, ref))
            .symlink("/etc/os-release", "../usr/lib/os-release")
        )  # fmt: skip
        # The loader path programs name (/lib64/ld-linux-x86-64.so.2, /lib/ld-linux-aarch64.so.1).
        base.symlink("/usr" + glibc_loader, f"{lib}/{glibc_loader.rsplit('/', 1)[1]}")
        return [base, ib.Layer().exe(STAND_IN_BINARY, stub(glibc_loader))]
    if k in ("distroless-static", "distroless-base", "go"):
        osr = _os_release("debian", spec.os_version, "Debian GNU/Linux", ref)
        base = ib.Layer().dir("/etc").file("/etc/os-release", osr).file("/etc/passwd", "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")  # fmt: skip
        if k == "distroless-base":
            base.exe(f"/lib/{triplet}/libc.so.6", stub(None)).exe(glibc_loader, stub(None))
            return [base, ib.Layer().exe(STAND_IN_BINARY, stub(glibc_loader))]
        go = k == "go"  # coredns, kyverno: Go programs on distroless/static
        return [base, ib.Layer().exe(STAND_IN_BINARY, stub(None, go=go, size=16 * 1024))]
    if k in ("wolfi", "wolfi-static"):
        osr = _os_release("wolfi", "20230201", "Wolfi", ref)
        base = ib.Layer().dir("/etc").file("/etc/os-release", osr)
        if k == "wolfi-static":  # chainguard/static: no libc at all, a static program
            return [base, ib.Layer().exe(STAND_IN_BINARY, stub(None, size=16 * 1024))]
        loader = f"/lib/{glibc_loader.rsplit('/', 1)[1]}"
        packages = [("wolfi-baselayout", "20230201-r15"), ("glibc", "2.40-r3"), ("busybox", "1.37.0-r0")]
        base.exe(loader, stub(None)).exe("/lib/libc.so.6", stub(None)).symlink("/lib64", "lib")
        base.file("/lib/apk/db/installed", ib.apk_db(packages))
        return [base, ib.Layer().exe(STAND_IN_BINARY, stub(loader))]
    if k == "busybox-musl":  # busybox:musl: one static musl busybox, no os-release of its own
        osr = _os_release("busybox", "1.36.1", "BusyBox", ref)
        base = ib.Layer().dir("/bin").exe("/bin/busybox", stub(None, size=8 * 1024) + _MUSL_STATIC)
        base.symlink("/bin/sh", "busybox").dir("/etc").file("/etc/os-release", osr)
        return [base, ib.Layer().exe(STAND_IN_BINARY, stub(None, size=8 * 1024) + _MUSL_STATIC)]
    if k == "busybox-glibc":
        osr = _os_release("busybox", "1.36.1", "BusyBox", ref)
        loader = f"/lib/{glibc_loader.rsplit('/', 1)[1]}"
        base = ib.Layer().dir("/bin").dir("/lib").exe(loader, stub(None)).exe("/lib/libc.so.6", stub(None))
        base.exe("/bin/busybox", stub(loader)).symlink("/bin/sh", "busybox")
        base.dir("/etc").file("/etc/os-release", osr)
        if arch == "amd64":
            base.symlink("/lib64", "lib")
        return [base, ib.Layer().exe(STAND_IN_BINARY, stub(glibc_loader))]
    raise ValueError(f"unknown stand-in kind {k!r}")


# --- built images ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltImage:
    """One stand-in, encoded: its repository (as the reference names it), tag, index and all blobs."""

    registry: str  # docker.io, gcr.io...
    repository: str  # library/alpine
    tag: str
    digest: str  # of the index: what pods carry in imageID
    manifests: dict[str, tuple[bytes, str]]  # digest -> (body, media type), the index included
    blobs: dict[str, bytes]  # digest -> bytes (configs and layers)


def _split(canonical: str) -> tuple[str, str, str]:
    name, _, tag = canonical.rpartition(":")
    registry, _, repository = name.partition("/")
    return registry, repository, tag


def _build(ref: str, spec: StandIn) -> BuiltImage:
    registry, repository, tag = _split(canonical_image(ref))
    manifests: dict[str, tuple[bytes, str]] = {}
    blobs: dict[str, bytes] = {}
    entries = []
    for arch in ARCHES:
        image = ib.Image(_layers(spec, arch, ref), entrypoint=[STAND_IN_BINARY], architecture=arch)
        if arch == "arm64":
            image.variant = "v8"
        config, layers = image.blobs()
        blobs[ib.sha256(config)] = config
        descs = []
        for blob, _gz in layers:
            blobs[ib.sha256(blob)] = blob
            descs.append({"mediaType": ib.OCI_LAYER_GZIP, "digest": ib.sha256(blob), "size": len(blob)})
        manifest = {
            "schemaVersion": 2,
            "mediaType": ib.OCI_MANIFEST,
            "config": {"mediaType": ib.OCI_CONFIG, "digest": ib.sha256(config), "size": len(config)},
            "layers": descs,
            "annotations": {"org.opencontainers.image.description": f"dnsaudit demo stand-in for {ref}"},
        }
        body = json.dumps(manifest, sort_keys=True).encode()
        manifests[ib.sha256(body)] = (body, ib.OCI_MANIFEST)
        platform = {"architecture": arch, "os": "linux", **({"variant": "v8"} if arch == "arm64" else {})}
        entries.append({"mediaType": ib.OCI_MANIFEST, "digest": ib.sha256(body), "size": len(body), "platform": platform})  # fmt: skip
    index = {
        "schemaVersion": 2,
        "mediaType": ib.OCI_INDEX,
        "manifests": entries,
        "annotations": {"org.opencontainers.image.description": f"dnsaudit demo stand-in for {ref}"},
    }
    body = json.dumps(index, sort_keys=True).encode()
    manifests[ib.sha256(body)] = (body, ib.OCI_INDEX)
    return BuiltImage(registry, repository, tag, ib.sha256(body), manifests, blobs)


@cache
def _built_by_canonical() -> dict[str, BuiltImage]:
    return {canonical_image(ref): _build(ref, spec) for ref, spec in STAND_INS.items()}


def stand_in(ref: str) -> BuiltImage | None:
    """The built stand-in for ``ref`` (any spelling: ``alpine:3.16``, ``docker.io/library/alpine:3.16``)."""
    return _built_by_canonical().get(canonical_image(ref))


def demo_image_digest(ref: str) -> str | None:
    """The index digest of ``ref``'s stand-in (stable across runs and machines), or None if it has none.

    A digest provider for ``dnsaudit.testbed.fakekube.objects.set_image_digest_provider``.
    """
    image = stand_in(ref)
    return image.digest if image else None


# --- the server ------------------------------------------------------------------------------------

_PATH = re.compile(
    r"^/v2/(?P<name>[a-z0-9][a-z0-9._/-]*)/(?P<kind>manifests|blobs)/(?P<ref>[A-Za-z0-9_.:+-]+)$"
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A client that stops reading a blob early (the inspector's early stop, its per-image deadline)
        # resets the connection: routine, not worth a traceback on the console of `make run`.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class DemoRegistry:
    """The stand-ins over the distribution API (read-only) on ``host``, port ``port`` (0: any free one).

    Repositories are named ``dnsaudit-demo-stand-ins/<registry>/<repository>``: one server is the mirror
    of every demo registry (see :meth:`mirrors`). ``serve_tags`` False answers manifests by digest only:
    the demo uses that so an image of a *real* cluster pulled by tag (``alpine:3.16`` of a pod that has
    no ``imageID`` yet) is never answered by a stand-in, whose verdict would then be cached for that tag.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        refs: Iterable[str] | None = None,
        serve_tags: bool = True,
    ) -> None:
        built = _built_by_canonical()
        wanted = {canonical_image(r) for r in refs} if refs is not None else set(built)
        self.images = [built[c] for c in sorted(wanted) if c in built]
        self.serve_tags = serve_tags
        self.repos: dict[str, BuiltImage] = {
            f"{PREFIX}/{i.registry}/{i.repository}:{i.tag}": i for i in self.images
        }
        self.requests: list[tuple[str, str]] = []  # (method, path), for tests and the curious
        self._httpd = _Server((host, port), _handler(self))
        self._thread: threading.Thread | None = None

    # -- lifecycle --
    def start(self) -> DemoRegistry:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="demo-registry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> DemoRegistry:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        h, p = self._httpd.server_address[:2]
        return f"{h}:{p}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def mirrors(self) -> dict[str, str]:
        """``{registry: mirror}`` for every registry the stand-ins come from (``RegistryClient(mirrors=)``)."""
        return {i.registry: f"{self.host}/{PREFIX}/{i.registry}" for i in self.images}

    def mirrors_env(self) -> str:
        """:meth:`mirrors` in ``DNSAUDIT_REGISTRY_MIRRORS`` syntax."""
        return ",".join(f"{k}={v}" for k, v in sorted(self.mirrors().items()))

    # -- lookups --
    def manifest(self, name: str, reference: str) -> tuple[bytes, str, str] | None:
        """``(body, media type, digest)`` of a manifest of repository ``name`` (by digest, or tag)."""
        for image in self._images_named(name):
            if reference in image.manifests:
                return (*image.manifests[reference], reference)
            if self.serve_tags and reference == image.tag:
                return (*image.manifests[image.digest], image.digest)
        return None

    def blob(self, name: str, digest: str) -> bytes | None:
        """A blob of repository ``name`` (a blob of another repository is not found, as in a registry)."""
        for image in self._images_named(name):
            if digest in image.blobs:
                return image.blobs[digest]
        return None

    def known(self, name: str) -> bool:
        return bool(self._images_named(name))

    def _images_named(self, name: str) -> list[BuiltImage]:
        return [i for key, i in self.repos.items() if key.rsplit(":", 1)[0] == name]


def _handler(registry: DemoRegistry) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dnsaudit-demo-registry"
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet: the demo prints its own banner
            pass

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def _method_not_allowed(self) -> None:
            self._error(405, "UNSUPPORTED", "this registry is read-only", True)

        do_POST = do_PUT = do_PATCH = do_DELETE = _method_not_allowed

        def _serve(self, body: bool) -> None:
            path = self.path.split("?", 1)[0]
            registry.requests.append((self.command, path))
            if path in ("/v2", "/v2/"):
                return self._send(200, b"{}", "application/json", body)
            m = _PATH.match(path)
            if not m:
                return self._error(404, "NAME_UNKNOWN", "repository name not known to registry", body)
            if not registry.known(m["name"]):
                return self._error(404, "NAME_UNKNOWN", "repository name not known to registry", body)
            if m["kind"] == "manifests":
                found = registry.manifest(m["name"], m["ref"])
                if found is None:
                    return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown", body)
                data, media_type, digest = found
                return self._send(200, data, media_type, body, digest)
            blob = registry.blob(m["name"], m["ref"])
            if blob is None:
                return self._error(404, "BLOB_UNKNOWN", "blob unknown to registry", body)
            return self._send(200, blob, "application/octet-stream", body, m["ref"])

        def _send(self, code: int, data: bytes, ctype: str, body: bool, digest: str | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            if digest:
                self.send_header("Docker-Content-Digest", digest)
                self.send_header("ETag", f'"{digest}"')
            self.end_headers()
            if body:
                # The client stops reading a layer once its verdict is certain.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

        def _error(self, code: int, err: str, message: str, body: bool) -> None:
            data = json.dumps({"errors": [{"code": err, "message": message, "detail": {}}]}).encode()
            self._send(code, data, "application/json", body)

    return Handler
