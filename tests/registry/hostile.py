"""Hostile registries for the registry limits tests: small threaded HTTP(S) servers on loopback.

A :class:`HostileServer` answers every request with the handler registered for the longest matching path
prefix, and records each request (path, headers) before answering, so a test can assert that nothing was
asked where it must not be. Handlers write raw responses themselves (status line, headers, body), which is
what lets them lie: a gzip-encoded body although ``identity`` was asked for, a body longer than its
Content-Length says, bytes trickled one at a time, an endless generator.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import ssl
import tarfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Handler = Callable[["Request"], None]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Request:
    """What a handler gets: the request, and ways to answer it."""

    handler: BaseHTTPRequestHandler
    server: HostileServer

    @property
    def path(self) -> str:
        return self.handler.path

    def head(self, status: int, headers: dict[str, str] | None = None, reason: str | None = None) -> None:
        self.handler.send_response(status, reason)
        for k, v in (headers or {}).items():
            self.handler.send_header(k, v)
        self.handler.end_headers()
        self.handler.wfile.flush()

    def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        h = {"Content-Length": str(len(body)), **(headers or {})}
        self.head(status, h)
        self.write(body)

    def write(self, data: bytes) -> bool:
        """Write and count; False once the client has gone."""
        try:
            self.handler.wfile.write(data)
            self.handler.wfile.flush()
        except OSError:
            return False
        with self.server.lock:
            self.server.bytes_sent += len(data)
        return True

    def stream(self, status: int, chunks: Iterable[bytes], headers: dict[str, str] | None = None) -> None:
        """Send ``chunks`` as they come (no Content-Length unless given: the body ends when we close)."""
        self.head(status, {"Connection": "close", **(headers or {})})
        self.handler.close_connection = True
        for chunk in chunks:
            if self.server.stopping.is_set() or not self.write(chunk):
                return


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # clients hanging up on us is the point of these servers


class HostileServer:
    """A threaded HTTP server on 127.0.0.1 (HTTPS with ``tls`` = a trustme server certificate)."""

    def __init__(self, tls=None) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self.bytes_sent = 0
        self.stopping = threading.Event()
        server = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # keep pytest output clean
                pass

            def do_GET(self):
                with server.lock:
                    server.requests.append(Recorded("GET", self.path, dict(self.headers.items())))
                route = max((p for p in server.routes if self.path.startswith(p)), key=len, default=None)
                if route is None:
                    Request(self, server).send(404, b'{"errors":[{"code":"NOT_FOUND"}]}')
                    return
                server.routes[route](Request(self, server))

            do_HEAD = do_GET

        self.httpd = _QuietServer(("127.0.0.1", 0), _H)
        self.httpd.daemon_threads = True
        if tls is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.configure_cert(ctx)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def route(self, prefix: str, handler: Handler) -> None:
        self.routes[prefix] = handler

    def paths(self) -> list[str]:
        with self.lock:
            return [r.path for r in self.requests]

    def close(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class RawServer:
    """A TCP server that answers every connection with ``serve(sock)`` (for responses http.server cannot
    produce, such as headers trickled one byte at a time)."""

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stopping = threading.Event()
        self._serve = serve
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)  # the request
            self._serve(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stopping.set()
        self.sock.close()


# --- what the hostile registries serve -------------------------------------------------------------

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]}}).encode()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_for(layers: list[tuple[str, int]], config: bytes = CONFIG) -> bytes:
    """An image manifest naming ``config`` and the layers ``(digest, declared size)``, bottom first."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config),
                       "size": len(config)},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s}
                for d, s in layers
            ],
        }
    ).encode()  # fmt: skip


def serve_image(server: HostileServer, repo: str, layers: dict[str, tuple[int, Handler]]) -> None:
    """Route ``/v2/<repo>/manifests/v1`` to a manifest of ``layers`` (``digest -> (size, handler)``) and its
    config and layer blobs to their handlers."""
    body = manifest_for([(d, size) for d, (size, _) in layers.items()])
    server.route(f"/v2/{repo}/manifests/", lambda r: r.send(200, body, {"Content-Type": MANIFEST_TYPE}))
    server.route(f"/v2/{repo}/blobs/{digest(CONFIG)}", lambda r: r.send(200, CONFIG))
    for d, (_, handler) in layers.items():
        server.route(f"/v2/{repo}/blobs/{d}", handler)


def gzip_bomb(decompressed: int) -> bytes:
    """A gzip member of ``decompressed`` zero bytes (about a thousandth of that on the wire)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    zero = bytes(1024 * 1024)
    out = io.BytesIO()
    left = decompressed
    while left > 0:
        n = min(left, len(zero))
        out.write(comp.compress(zero[:n]))
        left -= n
    out.write(comp.flush())
    return out.getvalue()


def tar_bomb_layer(decompressed: int) -> bytes:
    """A gzip layer holding one tar member of ``decompressed`` zero bytes, built as a stream (nothing big in
    memory but the compressed result)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    info = tarfile.TarInfo("usr/share/zeros")
    info.size = decompressed
    out = io.BytesIO()
    out.write(comp.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
    zero = bytes(1024 * 1024)
    left = decompressed
    while left > 0:
        n = min(left, len(zero))
        out.write(comp.compress(zero[:n]))
        left -= n
    out.write(comp.flush())
    return out.getvalue()


def endless_pax_header() -> Iterable[bytes]:
    """A tar that opens with a PAX extended header declaring 8 GiB of records, and then never ends."""
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = 8**11 - 1
    yield info.tobuf(format=tarfile.USTAR_FORMAT)
    record = b"%d path=%s\n" % (1024 * 1024 + 20, b"a" * (1024 * 1024))
    while True:
        yield record


def endless_json(total: int = 1 << 30, chunk: int = 64 * 1024) -> Iterable[bytes]:
    """A 1 GiB JSON manifest, produced as it is sent (never materialised)."""
    yield b'{"schemaVersion": 2, "padding": "'
    block = b"x" * chunk
    sent = 0
    while sent < total:
        yield block
        sent += chunk
    yield b'"}'


def trickle(data: bytes, every: float, stop: threading.Event) -> Iterable[bytes]:
    for i in range(len(data)):
        if stop.wait(every if i else 0):
            return
        yield data[i : i + 1]


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@dataclass
class Timing:
    """How long a call took; ``with Timing() as t: ...; t.seconds``."""

    start: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    def __enter__(self) -> Timing:
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.monotonic() - self.start
