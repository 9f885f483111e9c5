"""Which libc an image uses, decided from its contents (or, failing that, from its reference).

Pure core: no network. The registry boundary streams layers from the TOP of the image into a
:class:`LibcDetector` and stops downloading as soon as :meth:`LibcDetector.done` says the answer can no
longer change; tests and offline tools feed tar files directly.

Signals, strongest first (domain.md §7.1):

1. the ELF ``PT_INTERP`` of the entrypoint/cmd binary (following symlinks and ``#!`` lines);
2. ``/etc/os-release`` ``ID=wolfi``/``chainguard`` (apk *with glibc*: the apk database is no proof of musl);
3. ``P:musl`` + ``V:`` in ``/lib/apk/db/installed`` (the exact musl version);
4. an Alpine/musl-distro os-release or ``/etc/alpine-release``;
5. a known glibc distro in os-release;
6. a musl loader ``/lib/ld-musl-*.so.1`` that survives the whiteouts of upper layers;
7. a glibc loader / ``libc.so.6``;
8. the interpreter of a few common binaries (``/bin/sh``...).

Nothing found means libc ``"unknown"``: never a glibc ("safe") verdict for lack of evidence.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import struct
import tarfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

from dnsaudit.core.model import LibcVerdict

# --- ELF -------------------------------------------------------------------------------------------

PT_DYNAMIC = 2
PT_INTERP = 3
PT_NOTE = 4
GO_NOTE_TYPE = 4  # the Go linker's ELF note "Go" type 4 holds the Go build ID (.note.go.buildid)
GO_BUILD_ID_MARKER = b'\xff Go build ID: "'

#: Strings only a linked-in musl carries (musl src/network/gai_strerror.c); used for static binaries.
MUSL_MARKERS = (b"Name does not resolve",)
MUSL_124_MARKER = b"Name has no usable address"  # EAI_NODATA text, musl >= 1.2.4


@dataclass(frozen=True)
class ElfInfo:
    """What the first bytes of an ELF file say about how it is linked.

    ``interp`` is the PT_INTERP path (None for static binaries). ``interp_truncated`` is True when the
    head handed in ended before the interpreter string, so nothing certain can be said about linking.
    """

    bits: int
    endian: str  # "little" | "big"
    machine: int
    elf_type: int
    interp: str | None
    dynamic: bool
    is_go: bool
    interp_truncated: bool = False

    @property
    def static(self) -> bool:
        return self.interp is None and not self.interp_truncated


def parse_elf(head: bytes) -> ElfInfo | None:
    """Parse an ELF header and program headers from the first bytes of a file.

    Handles 32/64-bit and both byte orders. Returns None when ``head`` is not ELF (or too short to be
    one). Go binaries are recognised by their build-ID note or the ``\\xff Go build ID:`` string.
    """
    if len(head) < 52 or head[:4] != b"\x7fELF":
        return None
    ei_class, ei_data = head[4], head[5]
    if ei_class not in (1, 2) or ei_data not in (1, 2):
        return None
    e = "<" if ei_data == 1 else ">"
    bits = 32 if ei_class == 1 else 64
    elf_type, machine = struct.unpack_from(e + "HH", head, 16)
    if bits == 64:
        if len(head) < 64:
            return None
        (phoff,) = struct.unpack_from(e + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(e + "HH", head, 54)
    else:
        (phoff,) = struct.unpack_from(e + "I", head, 28)
        phentsize, phnum = struct.unpack_from(e + "HH", head, 42)

    interp: str | None = None
    truncated = False
    dynamic = False
    is_go = GO_BUILD_ID_MARKER in head
    min_ent = 56 if bits == 64 else 32
    if phentsize < min_ent:
        phnum = 0
    for i in range(min(phnum, 512)):
        off = phoff + i * phentsize
        if off + min_ent > len(head):
            # The program headers run past what we have: we cannot rule out a PT_INTERP.
            truncated = interp is None
            break
        if bits == 64:
            p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from(e + "IIQQQQ", head, off)
        else:
            p_type, p_offset, _va, _pa, p_filesz = struct.unpack_from(e + "IIIII", head, off)
        if p_type == PT_DYNAMIC:
            dynamic = True
        elif p_type == PT_INTERP:
            if p_offset + p_filesz > len(head) or p_filesz > 4096:
                truncated = True
                continue
            interp = head[p_offset : p_offset + p_filesz].split(b"\0", 1)[0].decode("utf-8", "replace")
        elif p_type == PT_NOTE and not is_go:
            is_go = _has_go_note(head[p_offset : p_offset + p_filesz], e)
    return ElfInfo(
        bits, "little" if e == "<" else "big", machine, elf_type, interp, dynamic, is_go, truncated
    )


def _has_go_note(notes: bytes, e: str) -> bool:
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, ntype = struct.unpack_from(e + "III", notes, pos)
        name = notes[pos + 12 : pos + 12 + namesz].rstrip(b"\0")
        if name == b"Go" and ntype == GO_NOTE_TYPE:
            return True
        pos += 12 + _align4(namesz) + _align4(descsz)
    return False


def _align4(n: int) -> int:
    return (n + 3) & ~3


_MUSL_LOADER = re.compile(r"^/lib/ld-musl-[^/]+\.so\.1$")
_GLIBC_LOADER = re.compile(r"/ld-linux[^/]*\.so\.\d+$|/ld64\.so\.\d+$|^/lib(64)?/ld\.so\.1$")


def interp_libc(interp: str) -> str:
    """Map a PT_INTERP path to ``musl``/``glibc``/``unknown``."""
    if _MUSL_LOADER.match(interp) or "ld-musl-" in interp:
        return "musl"
    if _GLIBC_LOADER.search(interp):
        return "glibc"
    return "unknown"


# --- apk and os-release ----------------------------------------------------------------------------


def musl_version_from_apk(db: str) -> tuple[str, str] | None:
    """``(normalised, raw)`` musl version from an apk ``installed`` database, or None.

    ``1.2.4-r3`` -> ``1.2.4``; ``1.2.4_git20230717-r5`` -> ``1.2.4`` (a snapshot after 1.2.4 keeps the
    1.2.4 behaviour group); the raw ``V:`` value is returned too, for evidence.
    """
    for record in re.split(r"\n\s*\n", db):
        fields: dict[str, str] = {}
        for line in record.splitlines():
            if len(line) > 2 and line[1] == ":":
                fields.setdefault(line[0], line[2:].strip())
        if fields.get("P") == "musl" and "V" in fields:
            raw = fields["V"]
            m = re.match(r"(\d+(?:\.\d+)*)", raw)
            if m:
                return m.group(1), raw
    return None


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value pairs of an os-release file (quotes removed)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        out[k.strip()] = v
    return out


#: os-release IDs of distributions whose libc is musl.
MUSL_DISTROS = {"alpine", "adelie", "postmarketos", "chimera", "void-musl"}
#: apk-based but glibc (domain.md §7.1 trap).
APK_GLIBC_DISTROS = {"wolfi", "chainguard"}
GLIBC_DISTROS = {
    "debian", "ubuntu", "rhel", "centos", "fedora", "amzn", "rocky", "almalinux", "ol", "sles", "sled",
    "opensuse", "opensuse-leap", "opensuse-tumbleweed", "arch", "archlinux", "photon", "mariner", "azurelinux",
    "gentoo", "linuxmint", "kali", "clear-linux-os", "distroless", "bottlerocket", "flatcar", "coreos",
}  # fmt: skip

#: Alpine release -> musl version (domain.md §1.6; 3.12/3.14/3.17/3.20-3.22 are the "not verified" rows).
ALPINE_MUSL = {
    "3.3": "1.1.12", "3.4": "1.1.14", "3.5": "1.1.15", "3.6": "1.1.16", "3.7": "1.1.18", "3.8": "1.1.19",
    "3.9": "1.1.20", "3.10": "1.1.22", "3.11": "1.1.24", "3.12": "1.1.24", "3.13": "1.2.2", "3.14": "1.2.2",
    "3.15": "1.2.2", "3.16": "1.2.3", "3.17": "1.2.3", "3.18": "1.2.4", "3.19": "1.2.4", "3.20": "1.2.5",
    "3.21": "1.2.5", "3.22": "1.2.5", "3.23": "1.2.5",
}  # fmt: skip


def alpine_musl(version: str | None) -> str | None:
    """musl version for an Alpine release like ``3.18`` or ``3.18.4`` (None if not in the table)."""
    if not version:
        return None
    m = re.match(r"(\d+)\.(\d+)", version)
    return ALPINE_MUSL.get(f"{m.group(1)}.{m.group(2)}") if m else None


# --- a filesystem model built top-down -------------------------------------------------------------

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


@dataclass
class LayerEntry:
    """One tar member, normalised. ``path`` is absolute (``/etc/os-release``), ``./`` removed.

    ``kind``: ``file``, ``dir``, ``symlink``, ``hardlink``, ``whiteout``, ``opaque`` or ``other``.
    ``linkname`` for symlinks is the raw target; for hardlinks an absolute path in the image.
    ``read(n)`` reads the content of a regular file; only valid while the entry is being fed.
    """

    path: str
    kind: str
    linkname: str = ""
    size: int = 0
    read: Callable[[int], bytes] | None = None
    mode: int = 0o644


def normalise(name: str) -> str:
    """Tar member name -> absolute normalised path (``./lib//x`` -> ``/lib/x``)."""
    p = posixpath.normpath("/" + name.lstrip("/"))
    # normpath keeps a leading "//"; collapse it, and never climb above the root.
    return "/" + "/".join(c for c in p.split("/") if c not in ("", ".", ".."))


#: Default reading limits of one layer (the registry boundary passes its configured ones).
MAX_TAR_ENTRIES = 500_000
MAX_TAR_HEADER_BYTES = 1024 * 1024
#: Extended headers (PAX, GNU long name/link) that may precede one member: real archives use one or two.
MAX_HEADER_CHAIN = 8


class LayerLimitExceeded(Exception):
    """A layer went past a reading limit (entries, header size, header chain, sparse files, bytes).

    The message says which limit and the setting that raises it; the layer is not read further."""


_EXTENDED = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
             tarfile.SOLARIS_XHDTYPE)  # fmt: skip


def _limited_tarinfo(max_header_bytes: int) -> type[tarfile.TarInfo]:
    """A TarInfo that refuses what :mod:`tarfile` would otherwise read whole into memory or recurse on:
    extended headers larger than ``max_header_bytes`` (an "endless" PAX header), chains of more than
    :data:`MAX_HEADER_CHAIN` extended headers, and GNU sparse members (their maps are unbounded)."""

    class _LimitedTarInfo(tarfile.TarInfo):
        def _proc_member(self, tf):
            if self.type in _EXTENDED:
                if self.size > max_header_bytes:
                    raise LayerLimitExceeded(
                        f"a tar extended header of {self.size} bytes (limit {max_header_bytes}, "
                        "DNSAUDIT_REGISTRY_MAX_TAR_HEADER_BYTES)"
                    )
                depth = getattr(tf, "_dnsaudit_chain", 0) + 1
                if depth > MAX_HEADER_CHAIN:
                    raise LayerLimitExceeded(f"more than {MAX_HEADER_CHAIN} tar extended headers in a row")
                tf._dnsaudit_chain = depth
            elif self.type == tarfile.GNUTYPE_SPARSE:
                raise LayerLimitExceeded("a GNU sparse tar member (not supported)")
            return super()._proc_member(tf)

        def _proc_gnusparse_00(self, *a):
            raise LayerLimitExceeded("a PAX sparse tar member (not supported)")

        _proc_gnusparse_01 = _proc_gnusparse_10 = _proc_gnusparse_00

    return _LimitedTarInfo


def entries_from_tar(
    fileobj: IO[bytes],
    *,
    max_entries: int = MAX_TAR_ENTRIES,
    max_header_bytes: int = MAX_TAR_HEADER_BYTES,
) -> Iterator[LayerEntry]:
    """Stream the members of an (uncompressed) tar without seeking; whiteouts become their own kinds.

    Raises :class:`LayerLimitExceeded` past ``max_entries`` members or on an extended header larger than
    ``max_header_bytes``. Members are not kept (``tarfile`` would keep every one in memory)."""
    with tarfile.open(fileobj=fileobj, mode="r|", tarinfo=_limited_tarinfo(max_header_bytes)) as tf:
        count = 0
        while True:
            tf._dnsaudit_chain = 0
            m = tf.next()
            if m is None:
                break
            tf.members.clear()  # stream mode appends every member: memory would grow with the entries
            count += 1
            if count > max_entries:
                raise LayerLimitExceeded(
                    f"more than {max_entries} tar entries (DNSAUDIT_REGISTRY_MAX_TAR_ENTRIES)"
                )
            path = normalise(m.name)
            base = posixpath.basename(path)
            parent = posixpath.dirname(path)
            if base == OPAQUE:
                yield LayerEntry(parent, "opaque")
            elif base.startswith(WHITEOUT):
                yield LayerEntry(posixpath.join(parent, base[len(WHITEOUT) :]), "whiteout")
            elif m.issym():
                yield LayerEntry(path, "symlink", m.linkname)
            elif m.islnk():
                yield LayerEntry(path, "hardlink", normalise(m.linkname))
            elif m.isdir():
                yield LayerEntry(path, "dir")
            elif m.isreg():
                f = tf.extractfile(m)
                yield LayerEntry(path, "file", size=m.size, read=f.read if f else None, mode=m.mode)
            else:
                yield LayerEntry(path, "other")


@dataclass
class Node:
    kind: str  # file | dir | symlink | other
    layer: int
    target: str = ""
    data: bytes | None = None  # text files: content; scripts: the start (for the #! line)
    size: int = 0
    elf: ElfInfo | None = None
    markers: frozenset[bytes] = frozenset()


class LayerView:
    """The merged filesystem of an image, built from the TOP layer down.

    The first (highest) layer that mentions a path wins. A whiteout ``.wh.<name>`` hides ``<name>`` and
    everything below it in *lower* layers; ``.wh..wh..opq`` hides the lower contents of its directory;
    an upper non-directory hides a lower directory's whole subtree. Only symlinks, directories,
    whiteouts and the regular files the caller captures are remembered.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.implicit_dirs: dict[str, int] = {}  # parent dirs of recorded nodes -> highest layer
        self.hidden: set[str] = set()
        self.opaque: set[str] = set()
        self.layer = -1  # index of the layer being fed (0 = top)
        self.complete = False  # every layer seen: absence is now certain
        self._pending_hidden: set[str] = set()
        self._pending_opaque: set[str] = set()

    # -- feeding --
    def begin_layer(self) -> None:
        self.layer += 1

    def end_layer(self) -> None:
        # Whiteouts apply to lower layers only, so they take effect when their own layer ends.
        self.hidden |= self._pending_hidden
        self.opaque |= self._pending_opaque
        self._pending_hidden.clear()
        self._pending_opaque.clear()

    def visible(self, path: str) -> bool:
        """Whether an entry at ``path`` in the current layer is not shadowed by higher layers."""
        node = self.nodes.get(path)
        if node is not None and node.layer < self.layer:
            return False
        if path in self.hidden:
            return False
        for anc in _ancestors(path):
            if anc in self.hidden or anc in self.opaque:
                return False
            up = self.nodes.get(anc)
            if up is not None and up.kind != "dir" and up.layer < self.layer:
                return False
        return True

    def add(self, path: str, node: Node) -> bool:
        """Record ``node`` if visible; returns whether it was recorded."""
        if path == "/":
            return False
        if node.kind == "whiteout":
            self._pending_hidden.add(path)
            return False
        if node.kind == "opaque":
            self._pending_opaque.add(path)
            return False
        if not self.visible(path):
            return False
        if node.kind != "dir" and self.implicit_dirs.get(path, self.layer) < self.layer:
            return False  # an upper layer has files below this path: there it is a directory
        self.nodes[path] = node
        for anc in _ancestors(path):
            self.implicit_dirs.setdefault(anc, self.layer)
        return True

    # -- reading --
    def _absent(self, path: str) -> bool:
        if self.complete:
            return True
        if path in self.hidden:
            return True
        return any(a in self.hidden or a in self.opaque for a in _ancestors(path))

    def resolve(self, path: str, max_links: int = 40) -> tuple[str, str]:
        """Follow symlinks inside the image root. Returns ``(path, status)``.

        status: ``found`` (a recorded node), ``absent`` (certainly not there), ``unknown`` (may still
        come from a lower layer) or ``loop`` (too many links). Absolute targets restart at the image
        root, relative ones at the link's directory, and ``..`` never leaves the root.
        """
        parts = deque(c for c in path.split("/") if c)
        cur = "/"
        links = 0
        while parts:
            name = parts.popleft()
            if name == ".":
                continue
            if name == "..":
                cur = posixpath.dirname(cur) or "/"
                continue
            nxt = posixpath.join(cur, name)
            node = self.nodes.get(nxt)
            if node is None:
                if nxt in self.implicit_dirs:  # a directory known only through its contents
                    cur = nxt
                    continue
                rest = posixpath.join(nxt, *parts) if parts else nxt
                return rest, ("absent" if self._absent(nxt) else "unknown")
            if node.kind == "symlink":
                links += 1
                if links > max_links:
                    return nxt, "loop"
                target = node.target
                if target.startswith("/"):
                    cur = "/"
                parts.extendleft(reversed([c for c in target.split("/") if c]))
                continue
            cur = nxt
            if parts and node.kind != "dir":
                return posixpath.join(cur, *parts), "absent"
        return cur, "found"

    def get(self, path: str) -> tuple[Node | None, str, str]:
        """``(node, resolved_path, status)`` for ``path`` after symlinks."""
        real, status = self.resolve(path)
        return (self.nodes.get(real) if status == "found" else None), real, status

    def glob(self, pattern: str) -> list[str]:
        """Recorded non-directory paths matching a shell pattern (whole-path match)."""
        return sorted(p for p, n in self.nodes.items() if n.kind != "dir" and fnmatch.fnmatchcase(p, pattern))


def _ancestors(path: str) -> Iterator[str]:
    p = posixpath.dirname(path)
    while p not in ("/", ""):
        yield p
        p = posixpath.dirname(p)


# --- the detector ----------------------------------------------------------------------------------

HEAD_BYTES = 16 * 1024  # ELF header + program headers + interpreter + Go note fit in the first page(s)
TEXT_CAP = 8 * 1024 * 1024  # apk databases of big images are a few MB
STATIC_SCAN_CAP = 256 * 1024 * 1024

OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")
APK_DBS = ("/lib/apk/db/installed", "/usr/lib/apk/db/installed")
TEXT_FILES = {*OS_RELEASE, *APK_DBS, "/etc/alpine-release"}
MUSL_LOADER_GLOBS = ("/lib/ld-musl-*.so.1",)
GLIBC_GLOBS = (
    "/lib64/ld-linux-*.so.*", "/lib/ld-linux*.so.*", "/lib/*-linux-gnu*/libc.so.6",
    "/usr/lib/*-linux-gnu*/libc.so.6", "/lib64/libc.so.6", "/usr/lib64/libc.so.6", "/lib/libc.so.6",
    "/usr/lib/libc.so.6", "/lib/*-linux-gnu*/ld-linux*.so.*", "/usr/lib/*-linux-gnu*/ld-linux*.so.*",
    "/usr/lib64/ld-linux-*.so.*", "/lib64/ld64.so.*",
)  # fmt: skip
BIN_DIRS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")
COMMON_BINARIES = ("/bin/sh", "/bin/busybox", "/usr/bin/env", "/bin/bash", "/usr/bin/coreutils", "/bin/ls")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def command_from_config(config: dict) -> tuple[str | None, list[str]]:
    """``(argv0, PATH dirs)`` from an image config blob (``config.Entrypoint`` first, else ``Cmd``)."""
    # A registry's JSON: any field may be of any type.
    c = config.get("config") if isinstance(config, dict) else None
    c = c if isinstance(c, dict) else {}
    entry, cmd = c.get("Entrypoint"), c.get("Cmd")
    argv = (entry if isinstance(entry, list) else []) or (cmd if isinstance(cmd, list) else [])
    path = DEFAULT_PATH
    env_list = c.get("Env")
    for env in env_list if isinstance(env_list, list) else []:
        if isinstance(env, str) and env.startswith("PATH="):
            path = env[5:]
    argv0 = argv[0] if argv and isinstance(argv[0], str) else None
    return argv0, [d for d in path.split(":") if d.startswith("/")]


@dataclass
class _Chain:
    """The entrypoint followed through ``#!`` interpreters: ELF info once resolved."""

    elf: ElfInfo | None = None
    path: str | None = None
    status: str = "unknown"  # found | absent | unknown | loop | not-elf
    notes: list[str] = field(default_factory=list)
    markers: frozenset[bytes] = frozenset()


class LibcDetector:
    """Incremental libc classification over layers fed from the top down.

    Use: ``d = LibcDetector(config)``; for each layer, top first, ``d.feed_layer(entries)`` (it returns
    early once :meth:`done`); stop fetching when ``d.done()``; call :meth:`finish` when every layer was
    fed (absence becomes certain), then :meth:`verdict`.
    """

    def __init__(self, config: dict | None = None) -> None:
        self.config = config if isinstance(config, dict) else {}
        self.argv0, self.path_dirs = command_from_config(self.config)
        self.view = LayerView()
        self.layers_fed = 0
        self._wanted_exact = set(TEXT_FILES) | set(COMMON_BINARIES)
        self._entry_candidates: list[str] = []
        if self.argv0:
            if self.argv0.startswith("/"):
                self._entry_candidates = [normalise(self.argv0)]
            elif "/" not in self.argv0:
                self._entry_candidates = [posixpath.join(d, self.argv0) for d in self.path_dirs]
            else:  # relative with a slash: relative to WorkingDir
                inner = self.config.get("config")
                wd = inner.get("WorkingDir") if isinstance(inner, dict) else None
                wd = wd if isinstance(wd, str) and wd else "/"
                self._entry_candidates = [normalise(posixpath.join(wd, self.argv0))]
        self._wanted_exact |= set(self._entry_candidates)

    # -- feeding --
    def wanted(self, path: str) -> bool:
        """Whether the content of the regular file at ``path`` matters (read its head or text)."""
        if path in self._wanted_exact:
            return True
        if posixpath.dirname(path) in BIN_DIRS:
            return True
        return any(fnmatch.fnmatchcase(path, g) for g in MUSL_LOADER_GLOBS + GLIBC_GLOBS)

    def feed_layer(self, entries: Iterable[LayerEntry]) -> bool:
        """Feed one layer (the next one down). Returns True when it stopped early because :meth:`done`."""
        v = self.view
        v.begin_layer()
        self.layers_fed += 1
        stopped = False
        try:
            for e in entries:
                self._feed_entry(e)
                if self.done():
                    stopped = True
                    break
        finally:
            v.end_layer()
        return stopped

    def feed_tar(
        self,
        fileobj: IO[bytes],
        *,
        max_entries: int = MAX_TAR_ENTRIES,
        max_header_bytes: int = MAX_TAR_HEADER_BYTES,
    ) -> bool:
        """Feed one uncompressed tar stream as the next layer down (limits: :func:`entries_from_tar`)."""
        return self.feed_layer(
            entries_from_tar(fileobj, max_entries=max_entries, max_header_bytes=max_header_bytes)
        )

    def finish(self) -> None:
        """Declare that every layer has been fed: paths not seen are now certainly absent."""
        self.view.complete = True

    def _feed_entry(self, e: LayerEntry) -> None:
        v = self.view
        kind = e.kind
        if kind == "hardlink":
            # A hard link shares its target's content; model it as an absolute symlink.
            v.add(e.path, Node("symlink", v.layer, target=e.linkname))
            return
        if kind in ("whiteout", "opaque", "dir", "symlink", "other"):
            v.add(e.path, Node(kind, v.layer, target=e.linkname))
            return
        # Regular file. Executables are summarised (ELF facts, #! line) wherever they are, because a
        # symlink met later in the stream may turn out to point at one; other files only when wanted.
        wanted = self.wanted(e.path)
        if not (wanted or e.mode & 0o111) or not v.visible(e.path):
            return
        if e.read is None:
            v.add(e.path, Node("file", v.layer, size=e.size))
            return
        if e.path in TEXT_FILES:
            v.add(e.path, Node("file", v.layer, data=e.read(TEXT_CAP), size=e.size))
            return
        head = e.read(HEAD_BYTES)
        elf = parse_elf(head)
        markers: frozenset[bytes] = frozenset()
        if elf is not None and e.path in self._entry_candidates:
            markers = self._scan_static(head, e.read)
        script = head[:512] if head.startswith(b"#!") else None
        v.add(e.path, Node("file", v.layer, data=script, size=e.size, elf=elf, markers=markers))

    @staticmethod
    def _scan_static(head: bytes, read: Callable[[int], bytes]) -> frozenset[bytes]:
        """For a static non-Go entrypoint, look for musl's resolver strings in the whole file."""
        info = parse_elf(head)
        if info is None or not info.static or info.is_go:
            return frozenset()
        wanted = (*MUSL_MARKERS, MUSL_124_MARKER)
        found = {m for m in wanted if m in head}
        tail = head[-64:]
        total = len(head)
        while total < STATIC_SCAN_CAP:
            chunk = read(1024 * 1024)
            if not chunk:
                break
            total += len(chunk)
            buf = tail + chunk
            found |= {m for m in wanted if m in buf}
            tail = buf[-64:]
        return frozenset(found)

    # -- reading signals --
    def _text(self, path: str) -> tuple[str | None, str]:
        node, _real, status = self.view.get(path)
        if node is not None and node.kind == "file":
            return (node.data or b"").decode("utf-8", "replace"), "found"
        return None, status

    def _os_release(self) -> tuple[dict[str, str] | None, bool]:
        """(fields, certain): os-release from /etc, else /usr/lib."""
        for p in OS_RELEASE:
            text, status = self._text(p)
            if text is not None:
                return parse_os_release(text), True
            if status not in ("absent", "loop"):
                return None, False
        return None, True

    def _chain(self) -> _Chain:
        ch = _Chain()
        cands = list(self._entry_candidates)
        if not cands:
            ch.status = "absent"
            return ch
        seen = 0
        while cands and seen < 4:
            found = None
            for c in cands:
                node, real, status = self.view.get(c)
                if node is not None and node.kind == "file":
                    found = (c, real, node)
                    break
                if status not in ("absent",):
                    ch.status = status
                    return ch  # an earlier PATH candidate may still appear in a lower layer
            if found is None:
                ch.status = "absent"
                return ch
            c, real, node = found
            data = node.data or b""
            ch.path = c if c == real else f"{c} -> {real}"
            if data.startswith(b"#!"):
                interp = data[2:].split(b"\n", 1)[0].strip().split()
                if not interp:
                    ch.status = "not-elf"
                    return ch
                prog = interp[0].decode("utf-8", "replace")
                if posixpath.basename(prog) == "env" and len(interp) > 1:
                    prog = interp[1].decode("utf-8", "replace")
                ch.notes.append(f"{real} is a script run by {prog}")
                cands = [prog] if prog.startswith("/") else [posixpath.join(d, prog) for d in self.path_dirs]
                seen += 1
                continue
            ch.elf = node.elf
            ch.status = "found" if ch.elf else "not-elf"
            ch.markers = node.markers
            return ch
        ch.status = "not-elf"
        return ch

    def _present(self, globs: Iterable[str]) -> list[str]:
        """Paths matching ``globs`` that exist in the merged view, looking through symlinked dirs
        (``/lib -> usr/lib`` on merged-/usr images)."""
        out: list[str] = []
        for g in globs:
            d, base = posixpath.split(g)
            if any(ch in d for ch in "*?["):
                cands = self.view.glob(g)
            else:
                real, status = self.view.resolve(d)
                cands = []
                if status == "found":
                    for p, n in self.view.nodes.items():
                        if (
                            n.kind != "dir"
                            and posixpath.dirname(p) == real
                            and fnmatch.fnmatchcase(posixpath.basename(p), base)
                        ):
                            cands.append(posixpath.join(d, posixpath.basename(p)))
            for p in sorted(cands):
                _node, _real, status = self.view.get(p)
                if status == "found" and p not in out:
                    out.append(p)
        return out

    # -- decision --
    def done(self) -> bool:
        """True when lower layers can no longer change :meth:`verdict`."""
        if self.view.complete:
            return True
        osr, os_certain = self._os_release()
        if not os_certain:
            return False
        ch = self._chain()
        if ch.status in ("unknown",):
            return False
        libc = None
        if ch.elf is not None and not ch.elf.interp_truncated:
            libc = interp_libc(ch.elf.interp) if ch.elf.interp else "static"
            if libc == "static" and not ch.elf.is_go:
                return False  # a static musl binary may still be told apart by other files
        os_id = (osr or {}).get("ID", "").lower()
        if libc is None:
            if os_id in APK_GLIBC_DISTROS or os_id in GLIBC_DISTROS:
                return True
            if os_id not in MUSL_DISTROS:
                return False
            libc = "musl"
        if libc == "musl":
            # The exact musl version lives in the apk database; wait for it unless it is certainly gone.
            for p in APK_DBS:
                text, status = self._text(p)
                if text is not None:
                    return True
                if status != "absent":
                    return False
            return False
        return libc != "unknown"

    def verdict(self) -> LibcVerdict:
        """The classification from what was fed (call :meth:`finish` first when all layers were read)."""
        v = LibcVerdict(confidence="confirmed")
        ev = v.evidence
        osr, _ = self._os_release()
        alpine_release, _ = self._text("/etc/alpine-release")
        os_id = ((osr or {}).get("ID") or "").lower() or None
        if os_id:
            v.os_id = os_id
            v.os_version = (osr or {}).get("VERSION_ID") or None
            ev.append(f"os-release: ID={os_id}" + (f" VERSION_ID={v.os_version}" if v.os_version else ""))
        elif alpine_release:
            v.os_id = "alpine"
            v.os_version = alpine_release.strip().splitlines()[0] if alpine_release.strip() else None
        if alpine_release:
            ev.append(f"/etc/alpine-release: {alpine_release.strip()[:40]}")
        apk = None
        for p in APK_DBS:
            text, _status = self._text(p)
            if text is not None:
                apk = musl_version_from_apk(text)
                if apk:
                    ev.append(f"{p}: P:musl V:{apk[1]}")
                else:
                    ev.append(f"{p}: present, no musl package")
                break
        musl_loaders = self._present(MUSL_LOADER_GLOBS)
        glibc_files = self._present(GLIBC_GLOBS)
        whited = sorted(
            p
            for p in self.view.hidden
            if fnmatch.fnmatchcase(p, MUSL_LOADER_GLOBS[0]) or p in ("/lib", "/lib/apk")
        )
        for p in whited:
            ev.append(f"{p} is deleted by a whiteout in an upper layer")

        libc: str | None = None
        ch = self._chain()
        ev.extend(ch.notes)
        if ch.elf is not None and not ch.elf.interp_truncated:
            if ch.elf.interp:
                libc = interp_libc(ch.elf.interp)
                ev.append(f"entrypoint {ch.path}: ELF interpreter {ch.elf.interp}")
                if libc == "unknown":
                    libc = None
                elif libc == "musl" and self.view.resolve(ch.elf.interp)[1] != "found":
                    ev.append(
                        f"the interpreter {ch.elf.interp} is not in the image (the binary cannot start)"
                    )
            elif ch.elf.is_go:
                libc = "static"
                ev.append(f"entrypoint {ch.path}: static Go binary (Go's own resolver, no libc DNS)")
            else:
                markers = ch.markers
                if any(m in markers for m in MUSL_MARKERS):
                    libc = "musl"
                    ev.append(f"entrypoint {ch.path}: statically linked musl (musl resolver strings)")
                    if MUSL_124_MARKER in markers:
                        ev.append("the binary carries musl >= 1.2.4's EAI_NODATA message")
                else:
                    libc = "static"
                    ev.append(f"entrypoint {ch.path}: statically linked, no ELF interpreter")
        elif ch.status == "not-elf":
            ev.append(f"entrypoint {ch.path or self.argv0} is not an ELF binary")
        elif self.argv0 and ch.status == "absent":
            ev.append(f"entrypoint {self.argv0} not found in the image")

        if libc is None:
            if os_id in APK_GLIBC_DISTROS:
                libc = "glibc"
                ev.append(f"{os_id} uses apk with glibc")
            elif os_id in MUSL_DISTROS:
                libc = "musl"
            elif os_id in GLIBC_DISTROS:
                # Same order as done(): a distro's own os-release outranks stray musl files
                # (Debian's musl package installs a loader too).
                libc = "glibc"
            elif apk or alpine_release or musl_loaders:
                libc = "musl"
            elif glibc_files:
                libc = "glibc"
            else:
                libc = self._common_binaries(ev)
        if musl_loaders:
            ev.append("musl loader present: " + ", ".join(musl_loaders))
        if glibc_files and libc != "glibc":
            ev.append("glibc files present: " + ", ".join(glibc_files[:3]))
        elif glibc_files:
            ev.append("glibc loader/libc present: " + ", ".join(glibc_files[:3]))

        v.libc = libc  # type: ignore[assignment]
        if libc == "musl":
            if apk:
                v.musl_version = apk[0]
            elif os_id == "alpine" or alpine_release:
                guess = alpine_musl(v.os_version)
                if guess:
                    v.musl_version = guess
                    ev.append(f"musl {guess} inferred from Alpine {v.os_version} (no apk database)")
        if libc == "unknown":
            v.confidence = "inferred"
            ev.append("no libc evidence found in the image contents")
        return v

    def _common_binaries(self, ev: list[str]) -> str:
        for p in COMMON_BINARIES:
            node, real, _status = self.view.get(p)
            if node is None or node.kind != "file":
                continue
            info = node.elf
            if info and info.interp:
                libc = interp_libc(info.interp)
                if libc != "unknown":
                    ev.append(
                        f"{p}" + (f" -> {real}" if real != p else "") + f": ELF interpreter {info.interp}"
                    )
                    return libc
        # Last resort: every dynamically linked executable seen, if they all agree.
        seen: dict[str, list[str]] = {}
        for p, n in self.view.nodes.items():
            if n.kind == "file" and n.elf and n.elf.interp and self.view.get(p)[2] == "found":
                seen.setdefault(interp_libc(n.elf.interp), []).append(p)
        seen.pop("unknown", None)
        if len(seen) == 1:
            libc, paths = next(iter(seen.items()))
            ev.append(f"{len(paths)} executable(s) link {libc}, e.g. {sorted(paths)[0]}")
            return libc
        if len(seen) > 1:
            ev.append("executables disagree: " + ", ".join(f"{k}: {len(v)}" for k, v in sorted(seen.items())))
        return "unknown"


# --- the reference alone -------------------------------------------------------------------------


def infer_from_reference(ref: str) -> LibcVerdict:
    """A verdict from the image reference alone, confidence ``inferred``.

    Only names that say what they are count (``alpine:3.16``, ``*-alpine*`` tags, ``distroless``,
    ``debian``/``ubuntu``, ``wolfi``/``chainguard``). Anything else is libc ``unknown``: the absence of
    evidence is never reported as glibc.
    """
    v = LibcVerdict(confidence="inferred")
    name, tag = _split_ref(ref)
    last = name.rsplit("/", 1)[-1]
    tag_l = tag.lower()
    if last == "alpine" or "alpine" in tag_l:
        v.libc = "musl"
        v.os_id = "alpine"
        m = re.search(r"alpine-?(\d+\.\d+)", tag_l) if last != "alpine" else re.match(r"(\d+\.\d+)", tag_l)
        if m:
            v.os_version = m.group(1)
            v.musl_version = alpine_musl(m.group(1))
        v.evidence.append(
            f"reference {ref!r} names Alpine"
            + (
                f" {v.os_version}: musl {v.musl_version} by the Alpine release table"
                if v.musl_version
                else ""
            )
        )
    elif "musl" in tag_l or last.endswith("-musl"):
        v.libc = "musl"
        v.evidence.append(f"reference {ref!r} names a musl variant (musl version unknown)")
    elif ("wolfi" in name or "chainguard" in name or name.startswith("cgr.dev/")) and last == "static":
        v.libc, v.os_id = "static", "wolfi"
        v.evidence.append(f"reference {ref!r} names Chainguard's static base: static binaries only")
    elif "wolfi" in name or "chainguard" in name or name.startswith("cgr.dev/"):
        v.libc, v.os_id = "glibc", "wolfi"
        v.evidence.append(f"reference {ref!r} names a Wolfi/Chainguard image (apk with glibc)")
    elif "distroless" in name and "static" not in name:
        v.libc, v.os_id = "glibc", "debian"
        v.evidence.append(f"reference {ref!r} names a distroless (Debian glibc) image")
    elif "distroless" in name:
        v.libc = "static"
        v.evidence.append(f"reference {ref!r} names distroless/static: static binaries only")
    elif last in _GLIBC_IMAGE_NAMES or any(c in tag_l for c in _CODENAMES):
        v.libc = "glibc"
        v.os_id = _GLIBC_IMAGE_NAMES.get(last) or next(
            (os_ for c, os_ in _CODENAMES.items() if c in tag_l), None
        )
        v.evidence.append(f"reference {ref!r} names a glibc distribution")
    elif _is_docker_library(name) and last in _DEBIAN_DEFAULT_OFFICIAL:
        # Docker's official images build their default and -slim variants on Debian; the musl ones
        # say -alpine in the tag (handled above).
        v.libc, v.os_id = "glibc", "debian"
        v.evidence.append(
            f"reference {ref!r} names the official {last} image without an -alpine tag: its default and "
            "-slim variants are Debian-based (glibc)"
        )
    else:
        v.evidence.append(f"reference {ref!r} says nothing about its libc")
    return v


def _is_docker_library(name: str) -> bool:
    """``python``, ``library/python``, ``docker.io/library/python``: Docker's official images."""
    parts = name.split("/")
    if len(parts) == 1:
        return True
    if len(parts) == 2:
        return parts[0] == "library"
    return parts[0] in ("docker.io", "index.docker.io", "registry-1.docker.io") and parts[1] == "library"


_DEBIAN_DEFAULT_OFFICIAL = frozenset(
    {"python", "node", "golang", "ruby", "php", "perl", "postgres", "redis", "nginx", "httpd",
     "memcached", "haproxy", "openjdk", "gcc", "buildpack-deps", "rust", "erlang", "elixir"}
)  # fmt: skip


_GLIBC_IMAGE_NAMES = {
    "debian": "debian", "ubuntu": "ubuntu", "fedora": "fedora", "centos": "centos", "rockylinux": "rocky",
    "almalinux": "almalinux", "amazonlinux": "amzn", "oraclelinux": "ol", "ubi": "rhel", "ubi-minimal": "rhel",
    "ubi8": "rhel", "ubi9": "rhel",
}  # fmt: skip
_CODENAMES = {
    "buster": "debian", "bullseye": "debian", "bookworm": "debian", "trixie": "debian",
    "focal": "ubuntu", "jammy": "ubuntu", "noble": "ubuntu",
}  # fmt: skip


def _split_ref(ref: str) -> tuple[str, str]:
    """(name without registry-independent normalisation, tag) — enough for name-based inference."""
    name = ref.split("@", 1)[0].lower()
    tag = ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    return name, tag
