"""``pods/{name}/exec`` over WebSocket for the test API server, with fake container filesystems.

What a real cluster does, and this module reproduces (trap T9 in ``k8s-testing.md``):

* The client sends ``GET /api/v1/namespaces/{ns}/pods/{pod}/exec?command=…&command=…&stdout=true…`` with
  ``Upgrade: websocket`` and offers channel subprotocols in ``Sec-WebSocket-Protocol`` (the official Python
  client offers ``v5.channel.k8s.io,v4.channel.k8s.io``). The server picks the first offered protocol it
  supports and answers ``101 Switching Protocols`` (RFC 6455 handshake: ``Sec-WebSocket-Accept``).
  Failures *before* the upgrade (401, 403, 404, 400) are ordinary HTTP answers with a ``Status`` body; the
  Python client turns them into ``ApiException(status=0, reason="Handshake status 403 Forbidden …")``.
* After the upgrade every message is a binary frame whose first byte is the channel: 0 stdin, 1 stdout,
  2 stderr, 3 error (the final ``Status``), 4 resize. The kubelet first writes one empty message on the
  lowest output channel ("connection established"), then the output, then the Status on channel 3, then a
  close frame. In v5, a client message ``[255, n]`` closes its channel ``n`` (stdin EOF).
* Channel 3 in v4/v5 carries a ``metav1.Status`` JSON without kind/apiVersion: ``{"status":"Success"}``, or
  ``reason: NonZeroExitCode`` with the exit code in ``details.causes[0].message``, or ``InternalError``
  (code 500) when the runtime could not start the process at all — containerd's answer to an executable
  missing from the image (a distroless image has no ``sh``, no ``cat``, no ``ls``). In v1–v3
  (``channel.k8s.io`` …) the channel carries only the Status *message*, as plain text, on failure.

Without an explicit handler the server answers like a real cluster (``kubelet_exec.py``: each pod's
``/etc/resolv.conf`` is what its node's kubelet and containerd wrote, from the node's hidden file; its
image picks :func:`alpine`, :func:`debian` or :func:`distroless`).

An explicit handler is the cluster's ``exec_handler`` (see :func:`resolve_handler`): a callable taking an
:class:`ExecRequest` and returning an :class:`ExecOutcome`, or a mapping ``"ns/pod"`` /
``"ns/pod/container"`` / ``"*"`` → :class:`FakeContainer` (or a plain ``{path: content}`` dict, which becomes
a busybox container). :class:`FakeContainer` runs a handful of commands (``cat``, ``ls``, ``echo``,
``true``, ``false``, ``test``/``[``, ``exit`` and ``sh -c`` with ``;``/``&&``/``||``, globs and
``2>/dev/null``) against its files, with busybox or GNU coreutils wording and exit codes.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import json
import posixpath
import shlex
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

#: The channel subprotocols, newest first. ``base64.channel.k8s.io`` (text frames) is not served.
CHANNEL_PROTOCOLS: tuple[str, ...] = (
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
)
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: Output is written in pieces of this size, as a pipe read would deliver it (exercises multi-frame reads).
CHUNK = 32 * 1024


# --- requests, outcomes, handlers -------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecRequest:
    """One exec, after the API server has validated it."""

    namespace: str
    pod: str
    container: str
    command: tuple[str, ...]
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False
    stdin_data: bytes = b""


@dataclass(frozen=True)
class ExecOutcome:
    """What the process did. ``runtime_error`` set means it never started (the Status is InternalError)."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0
    runtime_error: str | None = None


MissingStyle = Literal["containerd", "docker"]
Flavor = Literal["busybox", "coreutils"]

#: What ``sh``, ``cat``, ``ls`` … a busybox image (Alpine) has on its PATH.
BUSYBOX = frozenset({"sh", "ash", "cat", "ls", "echo", "true", "false", "test", "[", "head", "uname"})
COREUTILS = frozenset(
    {"sh", "bash", "dash", "cat", "ls", "echo", "true", "false", "test", "[", "head", "uname"}
)


@dataclass
class FakeContainer:
    """A container's filesystem and PATH, enough to answer the commands an auditor runs.

    ``files`` maps absolute paths to contents; directories exist implicitly (any prefix of a file path) or
    explicitly (a key ending in ``/``). ``executables`` are the names found in ``$PATH`` (empty for a
    distroless image). ``missing`` chooses how a missing executable is reported: ``"containerd"`` (the
    default on current clusters) fails the exec with an InternalError Status; ``"docker"`` (dockershim,
    cri-dockerd) prints the OCI error on stdout and exits 126/127. ``flavor`` picks busybox or GNU
    coreutils error wording and exit codes.
    """

    files: dict[str, str | bytes] = field(default_factory=dict)
    executables: frozenset[str] = BUSYBOX
    missing: MissingStyle = "containerd"
    flavor: Flavor = "busybox"

    # -- filesystem ------------------------------------------------------------------------------------
    def _is_file(self, path: str) -> bool:
        return path in self.files and not path.endswith("/")

    def _is_dir(self, path: str) -> bool:
        path = path.rstrip("/") or "/"
        if path == "/":
            return True
        prefix = path + "/"
        return any(p.startswith(prefix) for p in self.files)

    def _entries(self, path: str) -> list[str]:
        prefix = (path.rstrip("/") or "") + "/"
        names = set()
        for p in self.files:
            if p.startswith(prefix) and len(p) > len(prefix):
                names.add(p[len(prefix) :].split("/", 1)[0])
        return sorted(names)

    def _all_paths(self) -> set[str]:
        out: set[str] = set()
        for p in self.files:
            parts = p.rstrip("/").split("/")
            for i in range(2, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return out

    def _glob(self, pattern: str) -> list[str]:
        """POSIX sh pathname expansion: sorted matches, or the pattern itself when nothing matches."""
        if not any(ch in pattern for ch in "*?["):
            return [pattern]
        depth = pattern.rstrip("/").count("/")
        hits = sorted(
            p for p in self._all_paths() if p.count("/") == depth and fnmatch.fnmatchcase(p, pattern)
        )
        return hits or [pattern]

    def _read(self, path: str) -> bytes:
        data = self.files[path]
        return data.encode() if isinstance(data, str) else data

    # -- commands --------------------------------------------------------------------------------------
    def __call__(self, req: ExecRequest) -> ExecOutcome:
        argv = list(req.command)
        name = posixpath.basename(argv[0]) if argv else ""
        if name not in self.executables:
            return self._not_found(argv[0] if argv else "")
        if name in ("sh", "ash", "bash", "dash"):
            if len(argv) >= 3 and argv[1] == "-c":
                return self._sh(argv[2])
            return ExecOutcome(exit_code=0)  # an interactive shell with no stdin exits at once
        return self._run(argv)

    def _not_found(self, exe: str) -> ExecOutcome:
        oci = (
            "OCI runtime exec failed: exec failed: unable to start container process: "
            f'exec: "{exe}": executable file not found in $PATH: unknown'
        )
        if self.missing == "docker":
            return ExecOutcome(stdout=(oci + "\r\n").encode(), exit_code=127)
        exec_id = hashlib.sha256(exe.encode()).hexdigest()
        return ExecOutcome(
            runtime_error=f'failed to exec in container: failed to start exec "{exec_id}": {oci}'
        )

    def _run(self, argv: list[str]) -> ExecOutcome:
        name = posixpath.basename(argv[0])
        args = argv[1:]
        if name == "cat":
            return self._cat(args)
        if name == "ls":
            return self._ls(args)
        if name == "echo":
            return ExecOutcome(stdout=(" ".join(args) + "\n").encode())
        if name == "true":
            return ExecOutcome()
        if name == "false":
            return ExecOutcome(exit_code=1)
        if name in ("test", "["):
            if name == "[" and args[-1:] == ["]"]:
                args = args[:-1]
            if len(args) == 2 and args[0] in ("-e", "-f", "-d"):
                p = args[1]
                ok = {
                    "-e": self._is_file(p) or self._is_dir(p),
                    "-f": self._is_file(p),
                    "-d": self._is_dir(p),
                }
                return ExecOutcome(exit_code=0 if ok[args[0]] else 1)
            return ExecOutcome(exit_code=2, stderr=f"{name}: unsupported expression\n".encode())
        if name == "uname":
            return ExecOutcome(stdout=b"x86_64\n" if "-m" in args else b"Linux\n")
        return ExecOutcome(stderr=f"{name}: not supported by the fake container\n".encode(), exit_code=2)

    def _cat(self, args: list[str]) -> ExecOutcome:
        out, err, rc = b"", b"", 0
        for p in [a for a in args if not a.startswith("-")]:
            if self._is_file(p):
                out += self._read(p)
            elif self._is_dir(p):
                err += (
                    b"cat: read error: Is a directory\n"
                    if self.flavor == "busybox"
                    else f"cat: {p}: Is a directory\n".encode()
                )
                rc = 1
            else:
                msg = (
                    f"cat: can't open '{p}': No such file or directory\n"
                    if self.flavor == "busybox"
                    else f"cat: {p}: No such file or directory\n"
                )
                err += msg.encode()
                rc = 1
        return ExecOutcome(stdout=out, stderr=err, exit_code=rc)

    def _ls(self, args: list[str]) -> ExecOutcome:
        flags = "".join(a[1:] for a in args if a.startswith("-") and len(a) > 1)
        paths = [a for a in args if not a.startswith("-") or a == "-"] or ["."]
        out: list[str] = []
        err = b""
        rc = 0
        files = [p for p in paths if self._is_file(p) or ("d" in flags and self._is_dir(p))]
        dirs = [p for p in paths if p not in files and self._is_dir(p)]
        for p in paths:
            if p in files or p in dirs:
                continue
            if self.flavor == "busybox":
                err += f"ls: {p}: No such file or directory\n".encode()
                rc = 1
            else:
                err += f"ls: cannot access '{p}': No such file or directory\n".encode()
                rc = 2
        out.extend(sorted(files))
        for d in sorted(dirs):
            if len(paths) > 1:
                out.append(("\n" if out else "") + f"{d}:")
            out.extend(self._entries(d))
        text = "".join(line + "\n" for line in out)
        return ExecOutcome(stdout=text.encode(), stderr=err, exit_code=rc)

    def _sh(self, script: str) -> ExecOutcome:
        """A tiny POSIX sh: simple commands joined by ``;``, ``&&``, ``||``; globs; ``>``/``2>`` redirects
        to ``/dev/null`` and ``2>&1``; ``exit N``. Unknown commands are ``sh: X: not found`` (127)."""
        lex = shlex.shlex(script, posix=True, punctuation_chars=";&|")
        lex.whitespace_split = True
        tokens = list(lex)
        out, err = b"", b""
        rc = 0
        pending_op: str | None = None
        cmd: list[str] = []

        def run(words: list[str]) -> tuple[bytes, bytes, int, bool]:
            redirect_out = redirect_err = None
            merge = False
            argv: list[str] = []
            for w in words:
                if w in ("2>&1",):
                    merge = True
                elif w.startswith("2>"):
                    redirect_err = w[2:]
                elif w.startswith(">") or w.startswith("1>"):
                    redirect_out = w.split(">", 1)[1]
                else:
                    argv.extend(self._glob(w))
            if not argv:
                return b"", b"", 0, False
            if argv[0] == "exit":
                code = int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else rc
                return b"", b"", code, True
            name = posixpath.basename(argv[0])
            if name not in self.executables:
                res = ExecOutcome(stderr=f"sh: {argv[0]}: not found\n".encode(), exit_code=127)
            else:
                res = self._run(argv)
            o, e = res.stdout, res.stderr
            if merge:
                o, e = o + e, b""
            if redirect_out == "/dev/null":
                o = b""
            if redirect_err == "/dev/null":
                e = b""
            return o, e, res.exit_code, False

        def flush(words: list[str], op: str | None) -> bool:
            nonlocal out, err, rc
            if op == "&&" and rc != 0:
                return False
            if op == "||" and rc == 0:
                return False
            o, e, code, stop = run(words)
            out, err, rc = out + o, err + e, code
            return stop

        for tok in tokens:
            if tok in (";", "&&", "||"):
                if flush(cmd, pending_op):
                    return ExecOutcome(stdout=out, stderr=err, exit_code=rc)
                cmd, pending_op = [], (None if tok == ";" else tok)
            else:
                cmd.append(tok)
        if cmd:
            flush(cmd, pending_op)
        return ExecOutcome(stdout=out, stderr=err, exit_code=rc)


ExecHandler = Callable[[ExecRequest], ExecOutcome] | Mapping[str, "FakeContainer | Mapping[str, str | bytes]"]


def alpine(
    resolv_conf: str, *, arch: str = "x86_64", extra: Mapping[str, str | bytes] | None = None
) -> FakeContainer:
    """An Alpine container: busybox, ``/lib/ld-musl-<arch>.so.1``, the given ``/etc/resolv.conf``."""
    files: dict[str, str | bytes] = {
        "/etc/resolv.conf": resolv_conf,
        "/etc/alpine-release": "3.20.3\n",
        "/etc/os-release": 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\n',
        f"/lib/ld-musl-{arch}.so.1": b"\x7fELF",
        f"/lib/libc.musl-{arch}.so.1": b"\x7fELF",
        "/lib/libz.so.1": b"\x7fELF",
        "/lib/apk/db/installed": "P:musl\nV:1.2.5-r0\n",
        "/bin/busybox": b"\x7fELF",
        "/bin/sh": b"\x7fELF",
    }
    files.update(extra or {})
    return FakeContainer(files=files, executables=BUSYBOX, flavor="busybox")


#: glibc's dynamic loader per architecture (Debian's multiarch paths), for :func:`debian`.
_GLIBC_LOADERS = {
    "x86_64": "/lib64/ld-linux-x86-64.so.2",
    "aarch64": "/lib/ld-linux-aarch64.so.1",
    "armhf": "/lib/ld-linux-armhf.so.3",
    "i386": "/lib/ld-linux.so.2",
    "powerpc64le": "/lib64/ld64.so.2",
    "s390x": "/lib/ld64.so.1",
}
_DEBIAN_TRIPLETS = {
    "x86_64": "x86_64-linux-gnu",
    "aarch64": "aarch64-linux-gnu",
    "armhf": "arm-linux-gnueabihf",
    "i386": "i386-linux-gnu",
    "powerpc64le": "powerpc64le-linux-gnu",
    "s390x": "s390x-linux-gnu",
}


def debian(
    resolv_conf: str, *, arch: str = "x86_64", extra: Mapping[str, str | bytes] | None = None
) -> FakeContainer:
    """A Debian container: GNU coreutils, glibc's loader and ``libc.so.6``, the given ``/etc/resolv.conf``.
    ``arch`` is the machine name (``x86_64``, ``aarch64``…) that places the loader and libc."""
    triplet = _DEBIAN_TRIPLETS.get(arch, f"{arch}-linux-gnu")
    files: dict[str, str | bytes] = {
        "/etc/resolv.conf": resolv_conf,
        "/etc/debian_version": "12.8\n",
        f"/lib/{triplet}/libc.so.6": b"\x7fELF",
        _GLIBC_LOADERS.get(arch, f"/lib/ld-linux-{arch}.so.1"): b"\x7fELF",
        "/lib/terminfo/x/xterm": b"",
        "/bin/sh": b"\x7fELF",
    }
    files.update(extra or {})
    return FakeContainer(files=files, executables=COREUTILS, flavor="coreutils")


def distroless(resolv_conf: str, *, missing: MissingStyle = "containerd") -> FakeContainer:
    """A distroless/static container: a resolv.conf but nothing on the PATH to read it with."""
    return FakeContainer(files={"/etc/resolv.conf": resolv_conf}, executables=frozenset(), missing=missing)


def resolve_handler(
    handler: ExecHandler | None, req: ExecRequest
) -> Callable[[ExecRequest], ExecOutcome] | None:
    """The callable that answers ``req``: the handler itself, or the mapping entry for
    ``ns/pod/container``, then ``ns/pod``, then ``*``. A plain dict of files becomes a busybox container."""
    if handler is None:
        return None
    if callable(handler) and not isinstance(handler, Mapping):
        return handler
    for key in (f"{req.namespace}/{req.pod}/{req.container}", f"{req.namespace}/{req.pod}", "*"):
        entry = handler.get(key)  # type: ignore[union-attr]
        if entry is None:
            continue
        if isinstance(entry, FakeContainer):
            return entry
        if callable(entry):
            return entry  # type: ignore[return-value]
        return FakeContainer(files=dict(entry))
    return None


# --- Status bodies on channel 3 -----------------------------------------------------------------------------


def status_for(outcome: ExecOutcome, command: tuple[str, ...]) -> dict:
    """The ``metav1.Status`` the kubelet writes on the error channel (no kind/apiVersion, as it does)."""
    if outcome.runtime_error is not None:
        cause = f"error executing command in container: {outcome.runtime_error}"
        return {
            "metadata": {},
            "status": "Failure",
            "message": f"Internal error occurred: {cause}",
            "reason": "InternalError",
            "details": {"causes": [{"message": cause}]},
            "code": 500,
        }
    if outcome.exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            "command terminated with non-zero exit code: error executing command "
            f"[{' '.join(command)}], exit code {outcome.exit_code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(outcome.exit_code)}]},
    }


# --- RFC 6455 framing ----------------------------------------------------------------------------------------


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + _WS_GUID).encode(), usedforsecurity=False).digest()).decode()


def encode_frame(opcode: int, payload: bytes, *, mask: bytes | None = None) -> bytes:
    """One final frame. Servers send unmasked frames; ``mask`` (4 bytes) is for tests acting as clients."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 1 << 16:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask:
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


class ProtocolError(Exception):
    """The peer broke RFC 6455 (unmasked client frame, bad length...); close with 1002."""


def read_frame(rfile: BinaryIO, *, require_mask: bool = True) -> tuple[bool, int, bytes]:
    """Read one frame: ``(fin, opcode, payload)``. Raises EOFError at end of stream.

    Frames from a client must be masked (RFC 6455 section 5.1); an unmasked one is a ProtocolError.
    """

    def exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = rfile.read(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    b0, b1 = exact(2)
    fin, opcode = bool(b0 & 0x80), b0 & 0x0F
    if b0 & 0x70:
        raise ProtocolError("reserved bits set without a negotiated extension")
    masked, n = bool(b1 & 0x80), b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(8))[0]
    if require_mask and not masked:
        raise ProtocolError("client frames must be masked")
    if opcode >= 0x8 and (n > 125 or not fin):
        raise ProtocolError("control frames must be short and unfragmented")
    key = exact(4) if masked else b""
    data = exact(n)
    if masked:
        data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return fin, opcode, data


def valid_key(key: str) -> bool:
    """A ``Sec-WebSocket-Key`` is the base64 of 16 bytes (RFC 6455 section 4.1)."""
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False


def negotiate(offered_header: str, supported: tuple[str, ...]) -> str | None:
    """The first protocol the client offered that the server supports (the client's order wins, as in
    golang.org/x/net/websocket), or None."""
    offered = [p.strip() for p in offered_header.split(",") if p.strip()]
    return next((p for p in offered if p in supported), None)


# --- the session after the upgrade -------------------------------------------------------------------------------


class ExecSession:
    """Drive one upgraded connection: write the output channels, the Status and the close handshake."""

    def __init__(self, rfile: BinaryIO, wfile, sock, protocol: str) -> None:
        self.rfile = rfile
        self.wfile = wfile
        self.sock = sock
        self.protocol = protocol

    def send(self, channel: int, data: bytes) -> None:
        self.wfile.write(encode_frame(OP_BINARY, bytes([channel]) + data))

    def read_stdin(self, timeout: float) -> bytes:
        """Collect stdin frames until the client closes channel 0 (v5) or the connection (earlier protocols)."""
        data = b""
        with contextlib.suppress(OSError):
            self.sock.settimeout(timeout)
        try:
            while True:
                fin, op, payload = read_frame(self.rfile)
                if op == OP_CLOSE:
                    break
                if op == OP_PING:
                    self.wfile.write(encode_frame(OP_PONG, payload))
                    continue
                if op in (OP_BINARY, OP_CONT) and payload:
                    if payload[0] == CLOSE and self.protocol.startswith("v5.") and payload[1:2] == b"\x00":
                        break
                    if payload[0] == STDIN:
                        data += payload[1:]
        except (EOFError, OSError, ProtocolError):
            pass
        return data

    def finish(self, req: ExecRequest, outcome: ExecOutcome) -> None:
        # "Connection established": one empty message on the lowest writable channel.
        first = STDOUT if req.stdout else STDERR if req.stderr else ERROR
        self.send(first, b"")
        stdout, stderr = outcome.stdout, outcome.stderr
        if req.tty:  # a terminal has one output stream
            stdout, stderr = stdout + stderr, b""
        if req.stdout:
            for i in range(0, len(stdout), CHUNK):
                self.send(STDOUT, stdout[i : i + CHUNK])
        if req.stderr:
            for i in range(0, len(stderr), CHUNK):
                self.send(STDERR, stderr[i : i + CHUNK])
        status = status_for(outcome, req.command)
        if self.protocol in ("v4.channel.k8s.io", "v5.channel.k8s.io"):
            self.send(ERROR, json.dumps(status, separators=(",", ":")).encode())
        elif status["status"] != "Success":
            self.send(ERROR, status["message"].encode())
        self.close(1000)

    def close(self, code: int, reason: str = "") -> None:
        """Send a close frame, wait briefly for the client's, then let the caller drop the connection."""
        with contextlib.suppress(OSError):
            self.wfile.write(encode_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()))
        with contextlib.suppress(OSError):
            self.sock.settimeout(2.0)
        try:
            for _ in range(64):
                _fin, op, _payload = read_frame(self.rfile)
                if op == OP_CLOSE:
                    break
        except (EOFError, OSError, ProtocolError):
            pass
