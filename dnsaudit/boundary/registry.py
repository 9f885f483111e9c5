"""OCI registry boundary: fetch just enough of an image to tell which libc it uses.

``RegistryClient.inspect(ref, platform)`` resolves the manifest (an index is narrowed to the platform,
attestation entries skipped), reads the config for the entrypoint, then streams layers from the TOP
into :class:`dnsaudit.core.libc.LibcDetector`, closing each download as soon as the verdict can no
longer change. Everything it returns is our own :class:`LibcVerdict`; every failure is a
:class:`RegistryError` with ``transient`` set when a retry may help.

Plain HTTP is used, like Docker, for ``127.0.0.0/8``, ``::1``, ``localhost`` and the registries listed
in ``DNSAUDIT_INSECURE_REGISTRIES`` (comma-separated ``host[:port]``); everything else is HTTPS.

Registry mirrors (pull-through caches such as a Harbor proxy-cache project, or Docker's
``registry-mirrors``) come from ``DNSAUDIT_REGISTRY_MIRRORS`` (``docker.io=harbor.corp:5000/dockerhub,
gcr.io=https://mirror.corp/gcr``) or the ``mirrors`` argument. A registry's mirrors are tried first, in
order, then the registry itself; the verdict's evidence names the source that answered.

Everything a registry sends is untrusted (:class:`RegistryLimits`): bodies are streamed raw with
``Accept-Encoding: identity`` and capped, layers are capped in compressed and decompressed bytes, tar
entries and extended-header sizes, and each inspection has a deadline that shuts its sockets down.
Redirects are followed by hand; every connection is checked before it is made (:func:`forbidden_address`:
link-local and metadata addresses never; loopback only from a loopback registry); credentials go only to
the registry's own origin and its token realm (HTTPS unless the registry itself is plain HTTP).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import ipaddress
import json
import os
import re
import socket
import tarfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions

from dnsaudit.core.libc import (
    GO_BUILD_ID_MARKER,
    HEAD_BYTES,
    TEXT_CAP,
    TEXT_FILES,
    LayerEntry,
    LayerLimitExceeded,
    LibcDetector,
    entries_from_tar,
    infer_from_reference,
    parse_elf,
)
from dnsaudit.core.model import LibcVerdict

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[:2]
ACCEPT = ", ".join(MANIFEST_TYPES)
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
INSECURE_ENV = "DNSAUDIT_INSECURE_REGISTRIES"
MIRRORS_ENV = "DNSAUDIT_REGISTRY_MIRRORS"


class RegistryError(Exception):
    """A registry could not give us the image. ``transient``: retrying later may succeed.

    ``unreachable``: no source of the image answered at all (its name did not resolve, or every
    connection failed or was closed before any HTTP response, retries included). A scan takes that as
    "this registry cannot be reached from here" and stops asking it for the rest of the scan.
    """

    def __init__(
        self, message: str, *, transient: bool = False, status: int | None = None, unreachable: bool = False
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.unreachable = unreachable


# --- references ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """A parsed image reference. ``registry`` is as users write it (``docker.io``, ``host:5000``)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        s = f"{self.registry}/{self.repository}"
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


def parse_reference(ref: str) -> Reference:
    """Parse ``[registry[:port]/]name[:tag][@digest]`` the way Docker does.

    The first component is a registry when it has a ``.`` or ``:`` or is ``localhost``; otherwise the
    image is on Docker Hub, where single names get ``library/``. Raises ``ValueError`` on bad input.
    """
    ref = ref.strip()
    if not ref or any(c.isspace() for c in ref):
        raise ValueError(f"invalid image reference {ref!r}")
    for prefix in ("docker-pullable://", "docker://"):
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
        if not _DIGEST.match(digest):
            raise ValueError(f"invalid digest {digest!r} in image reference")
    tag = None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref, tag = ref[:colon], ref[colon + 1 :]
        if not re.match(r"^[\w][\w.-]{0,127}$", tag):
            raise ValueError(f"invalid tag {tag!r} in image reference")
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, name = first, rest
    else:
        registry, name = DOCKER_HUB, ref
    if registry in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in name:
        name = "library/" + name
    if not _REPO.match(name):
        raise ValueError(f"invalid repository name {name!r} in image reference")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, name, tag, digest)


def resolve_image_id(image_id: str | None) -> str | None:
    """A pullable reference from ``status.containerStatuses[].imageID``, or None.

    ``docker-pullable://alpine@sha256:…`` and ``docker.io/library/alpine@sha256:…`` give
    ``name@digest``; a bare ``sha256:…`` (a config digest of a locally built image) has no registry
    location and gives None.
    """
    if not image_id:
        return None
    s = image_id.strip()
    for prefix in ("docker-pullable://", "docker://", "containerd://"):
        if s.startswith(prefix):
            s = s[len(prefix) :]
    if "@" not in s:
        return None  # a bare digest or an ID: nothing to pull by
    try:
        r = parse_reference(s)
    except ValueError:
        return None
    return f"{r.registry}/{r.repository}@{r.digest}"


def normalise_registry(key: str) -> str:
    """Registry key of a credentials file (``https://index.docker.io/v1/`` -> ``docker.io``)."""
    k = re.sub(r"^[a-z]+://", "", key.strip()).split("/", 1)[0].lower()
    if k in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", "docker.io"):
        return DOCKER_HUB
    return k


# --- credentials -----------------------------------------------------------------------------------


def credentials_from_dockerconfigjson(data: bytes | str | dict) -> dict[str, tuple[str, str]]:
    """``{registry: (user, password)}`` from a ``.dockerconfigjson`` (or legacy ``.dockercfg``) payload.

    ``data`` may be the JSON (bytes/str/dict) or the base64 form found in a Secret's ``data`` field.

    Entries carry either ``auth`` (base64 ``user:password``) or ``username``/``password``. Entries
    without usable credentials (credential helpers, identity tokens) are skipped.
    """
    if isinstance(data, bytes | str):
        raw = data
        try:
            data = json.loads(raw)
        except ValueError as e:
            # A Secret's ``data`` values are base64: accept them as they come from the API.
            try:
                data = json.loads(base64.b64decode(raw, validate=True))
            except ValueError:
                raise ValueError(f"pull secret is not JSON (nor base64 of JSON): {e}") from None
    if not isinstance(data, dict):
        raise ValueError("pull secret is not a JSON object")
    auths = data.get("auths", data if "auths" not in data else {})
    out: dict[str, tuple[str, str]] = {}
    if not isinstance(auths, dict):
        return out
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        user, pw = entry.get("username"), entry.get("password")
        if entry.get("auth"):
            try:
                user, _, pw = base64.b64decode(entry["auth"]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
        if user and pw is not None:
            out[normalise_registry(key)] = (str(user), str(pw))
    return out


def credentials_from_environment(env: Mapping[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """Credentials for the command line: ``REGISTRY_AUTH_FILE``, else ``$DOCKER_CONFIG/config.json``,
    else ``~/.docker/config.json`` (the Docker/podman conventions). Missing files give ``{}``."""
    env = os.environ if env is None else env
    paths = []
    if env.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("DOCKER_CONFIG"):
        paths.append(Path(env["DOCKER_CONFIG"]) / "config.json")
    else:
        paths.append(Path.home() / ".docker" / "config.json")
    for p in paths:
        try:
            return credentials_from_dockerconfigjson(p.read_bytes())
        except (OSError, ValueError):
            continue
    return {}


def insecure_from_environment(env: Mapping[str, str] | None = None) -> frozenset[str]:
    env = os.environ if env is None else env
    return frozenset(h.strip().lower() for h in env.get(INSECURE_ENV, "").split(",") if h.strip())


# --- mirrors ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mirror:
    """A pull-through mirror of one registry.

    ``host`` is ``host[:port]`` (lowercase), ``scheme`` ``"http"``/``"https"`` when written out (else
    chosen like for any registry: loopback and ``DNSAUDIT_INSECURE_REGISTRIES`` hosts use plain HTTP),
    ``prefix`` a repository prefix (Harbor serves a proxy-cache project as ``/v2/<project>/<repo>``).
    """

    host: str
    scheme: str | None = None
    prefix: str = ""

    @property
    def label(self) -> str:
        """How evidence and errors name it: ``host[:port][/prefix]``."""
        return self.host + (f"/{self.prefix}" if self.prefix else "")


_HOST = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])"
    r"(?::(\d{1,5}))?$"
)
_PREFIX_PART = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


def _check_host(host: str, what: str) -> str:
    h = host.lower()
    m = _HOST.match(h)
    if not m or (m.group(1) is not None and not 0 < int(m.group(1)) < 65536):
        raise ValueError(f"{what}: {host!r} is not a host[:port]")
    return h


def parse_mirror(value: str) -> Mirror:
    """Parse ``host[:port][/prefix]`` or ``http(s)://host[:port][/prefix]``. Raises ``ValueError``."""
    v = value.strip()
    scheme = None
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", v)
    if m:
        scheme = m.group(1).lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"mirror {value!r}: scheme must be http or https, not {m.group(1)!r}")
        v = v[m.end() :]
    host, _, path = v.partition("/")
    host = _check_host(host, f"mirror {value!r}")
    parts = [p for p in path.split("/")]
    if parts and parts[-1] == "":
        parts.pop()  # one trailing slash is harmless
    for p in parts:
        if not _PREFIX_PART.match(p):
            raise ValueError(
                f"mirror {value!r}: path component {p!r} is not a valid repository component "
                "(lowercase letters, digits and . _ -; no query or fragment)"
            )
    return Mirror(host=host, scheme=scheme, prefix="/".join(parts))


def parse_mirrors(text: str) -> dict[str, tuple[Mirror, ...]]:
    """``{registry: (mirror, ...)}`` from ``registry=mirror,registry=mirror`` (the environment syntax).

    Registries are written as in image references (``docker.io``, ``gcr.io``, ``host:5000``); Docker
    Hub's aliases are folded into ``docker.io``. A registry given several times gets several mirrors,
    tried in the order written. Surrounding blanks and a trailing comma are tolerated; anything else
    that does not parse raises ``ValueError`` naming the entry.
    """
    out: dict[str, list[Mirror]] = {}
    entries = [e.strip() for e in text.split(",")]
    if entries and entries[-1] == "":
        entries.pop()
    for entry in entries:
        if not entry:
            raise ValueError(f"empty entry in {text!r} (expected registry=mirror,registry=mirror)")
        key, eq, value = entry.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise ValueError(
                f"entry {entry!r} is not registry=mirror (e.g. docker.io=harbor.corp:5000/dockerhub)"
            )
        registry = _mirror_key(key)
        out.setdefault(registry, []).append(parse_mirror(value))
    return {k: tuple(v) for k, v in out.items()}


def _mirror_key(key: str) -> str:
    if "://" in key or "/" in key.strip("/"):
        raise ValueError(
            f"registry {key!r}: write the registry as in image references (docker.io, host:5000)"
        )
    return normalise_registry(_check_host(key.strip("/"), f"registry {key!r}"))


def mirrors_from_environment(env: Mapping[str, str] | None = None) -> dict[str, tuple[Mirror, ...]]:
    """:func:`parse_mirrors` of ``DNSAUDIT_REGISTRY_MIRRORS``; a bad value raises ``ValueError`` naming it."""
    env = os.environ if env is None else env
    text = env.get(MIRRORS_ENV, "")
    if not text.strip():
        return {}
    try:
        return parse_mirrors(text)
    except ValueError as e:
        raise ValueError(f"{MIRRORS_ENV}: {e}") from None


def _normalise_mirrors(
    mirrors: Mapping[str, str | Mirror | Iterable[str | Mirror]],
) -> dict[str, tuple[Mirror, ...]]:
    out: dict[str, tuple[Mirror, ...]] = {}
    for key, value in mirrors.items():
        items = [value] if isinstance(value, str | Mirror) else list(value)
        parsed = tuple(m if isinstance(m, Mirror) else parse_mirror(m) for m in items)
        registry = _mirror_key(key)
        out[registry] = out.get(registry, ()) + parsed
    return out


@dataclass(frozen=True)
class _Source:
    """Where one attempt reads an image: a mirror of the reference's registry, or the registry itself."""

    host: str  # API host[:port]
    scheme: str
    repository: str  # as the source names it (mirror prefix + repository)
    mirror: Mirror | None = None


# --- limits ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryLimits:
    """What one image inspection may cost. Each field has a ``DNSAUDIT_REGISTRY_*`` variable.

    ``deadline``: seconds for the whole inspection (every source, request, redirect, retry and layer);
    it is enforced by a watchdog that shuts the inspection's sockets down, so a server trickling a byte
    every few seconds cannot hold the thread past it. ``max_manifest_bytes``: a manifest, an index, an
    image config or a token answer. ``max_layer_bytes``: decompressed bytes read from one layer (its
    compressed bytes are capped at the size its descriptor declares). ``max_tar_entries`` and
    ``max_tar_header_bytes``: members of one layer, and the size of one PAX/GNU extended header.
    """

    deadline: float = 180.0
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_layer_bytes: int = 1024 * 1024 * 1024
    max_tar_entries: int = 500_000
    max_tar_header_bytes: int = 1024 * 1024
    max_redirects: int = 5


#: The environment variable of each limit (``settings.py`` reads the same ones).
LIMIT_ENV = {
    "deadline": "DNSAUDIT_REGISTRY_DEADLINE",
    "max_manifest_bytes": "DNSAUDIT_REGISTRY_MAX_MANIFEST_BYTES",
    "max_layer_bytes": "DNSAUDIT_REGISTRY_MAX_LAYER_BYTES",
    "max_tar_entries": "DNSAUDIT_REGISTRY_MAX_TAR_ENTRIES",
    "max_tar_header_bytes": "DNSAUDIT_REGISTRY_MAX_TAR_HEADER_BYTES",
}


def limits_from_environment(env: Mapping[str, str] | None = None) -> RegistryLimits:
    """:class:`RegistryLimits` from the ``DNSAUDIT_REGISTRY_*`` variables; a bad value raises ``ValueError``."""
    env = os.environ if env is None else env
    values: dict = {}
    for name, var in LIMIT_ENV.items():
        raw = (env.get(var) or "").strip()
        if not raw:
            continue
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{var}={raw!r} is not an integer") from None
        if value <= 0:
            raise ValueError(f"{var}={raw!r} must be positive")
        values[name] = value
    return RegistryLimits(**values)


# --- outbound policy -------------------------------------------------------------------------------

#: Addresses no request ever goes to: link-local (cloud metadata at 169.254.169.254, fe80::/10), the
#: other clouds' metadata and host endpoints, "this host"/unspecified, multicast and broadcast.
FORBIDDEN_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local: AWS/GCP/Azure/OpenStack/Oracle metadata 169.254.169.254
        "fe80::/10",  # IPv6 link-local
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "168.63.129.16/32",  # Azure WireServer (host agent)
        "0.0.0.0/8",  # "this network": 0.0.0.0 reaches the local host
        "::/128",
        "224.0.0.0/4",
        "255.255.255.255/32",
        "ff00::/8",
    )
)
#: Metadata service names, refused before any lookup.
FORBIDDEN_HOSTNAMES = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

AddressCheck = Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address, int], "str | None"]


def forbidden_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int = 0) -> str | None:
    """Why ``ip`` may never be connected to (link-local, metadata...), or None. IPv4 addresses embedded
    in IPv6 ones (mapped ``::ffff:a.b.c.d``, 6to4, NAT64 ``64:ff9b::/96``) are checked as themselves."""
    candidates = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in (ip.ipv4_mapped, ip.sixtofour):
            if inner is not None:
                candidates.append(inner)
        if ip in _NAT64:
            candidates.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    for c in candidates:
        for net in FORBIDDEN_NETWORKS:
            if c.version == net.version and c in net:
                return f"{c} is a link-local/metadata address ({net})"
    return None


def forbidden_hostname(host: str) -> str | None:
    """Why the URL host ``host`` (a name or a literal address) is refused before any lookup, or None."""
    h = host.strip("[]").lower().rstrip(".")
    if h in FORBIDDEN_HOSTNAMES:
        return f"{h} is a cloud metadata service name"
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return None
    return forbidden_address(ip)


def _is_loopback_host(host: str) -> bool:
    h = host.strip("[]").lower().rstrip(".")
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


class RegistryDeadline(RegistryError):
    """The inspection's deadline passed: its sockets were shut down and the work stopped."""


class _Guard:
    """One inspection's deadline and connections.

    Every connection the inspection opens goes through :meth:`connect`: the host is resolved, every
    address is checked (``forbid``; and loopback is reached only from a loopback registry, or through a
    proxy) BEFORE connecting, and the connection is made to the checked address (no second lookup). A
    duplicate of each socket is kept so that the watchdog can ``shutdown()`` it when the deadline
    passes, which ends any blocked read, the TLS handshake and response headers included.
    """

    def __init__(self, deadline: float, forbid: AddressCheck) -> None:
        self.seconds = deadline
        self.deadline = time.monotonic() + deadline
        self.forbid = forbid
        self.expired = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._timer = threading.Timer(deadline, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def error(self) -> RegistryDeadline:
        return RegistryDeadline(
            f"image inspection stopped at its deadline of {self.seconds:g} s (DNSAUDIT_REGISTRY_DEADLINE)",
            transient=True,
        )

    def check(self) -> None:
        if self.expired or self.remaining() <= 0:
            self.expired = True
            raise self.error()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            s.close()

    def connect(self, conn, origin: str) -> socket.socket:
        """Open ``conn``'s socket under the policy (called from urllib3's ``_new_conn``)."""
        self.check()
        host = getattr(conn, "_dns_host", None) or conn.host
        port = int(conn.port or 0)
        via_proxy = getattr(conn, "proxy", None) is not None
        reason = forbidden_hostname(host)
        if reason:
            raise RegistryError(f"refused to connect to {host}: {reason}")
        try:
            infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise RegistryError(f"cannot resolve {host}: {e}", transient=True, unreachable=True) from None
        for info in infos:
            ip = ipaddress.ip_address(info[4][0].split("%")[0])
            reason = self.forbid(ip, port)
            if reason:
                raise RegistryError(f"refused to connect to {host}:{port}: {reason}")
            if ip.is_loopback and not via_proxy and not _is_loopback_host(origin):
                raise RegistryError(
                    f"refused to connect to {host}:{port}: a loopback address, reached from registry {origin}"
                )
        last: Exception | None = None
        for family, type_, proto, _, addr in infos:
            self.check()
            sock = socket.socket(family, type_, proto)
            try:
                for opt in getattr(conn, "socket_options", None) or ():
                    sock.setsockopt(*opt)
                timeout = conn.timeout if isinstance(conn.timeout, int | float) else None
                remaining = max(0.05, self.remaining())
                sock.settimeout(min(timeout, remaining) if timeout else remaining)
                if conn.source_address:
                    sock.bind(conn.source_address)
                sock.connect(addr)
            except OSError as e:
                sock.close()
                last = e
                continue
            sock.settimeout(conn.timeout if isinstance(conn.timeout, int | float) else None)
            dup = sock.dup()
            with self._lock:
                if self.expired:
                    dup.close()
                    sock.close()
                    raise self.error()
                self._socks.append(dup)
            return sock
        if isinstance(last, TimeoutError):
            raise urllib3.exceptions.ConnectTimeoutError(conn, f"connection to {host} timed out")
        raise urllib3.exceptions.NewConnectionError(conn, f"Failed to establish a new connection: {last}")


class _GuardedHTTPConnection(urllib3.connection.HTTPConnection):
    _guard: _Guard
    _origin: str

    def _new_conn(self) -> socket.socket:
        return self._guard.connect(self, self._origin)


class _GuardedHTTPSConnection(urllib3.connection.HTTPSConnection):
    _guard: _Guard
    _origin: str

    def _new_conn(self) -> socket.socket:
        return self._guard.connect(self, self._origin)


def _guarded_pools(guard: _Guard, origin: str) -> dict:
    attrs = {"_guard": guard, "_origin": origin}
    http = type("GuardedHTTPConnection", (_GuardedHTTPConnection,), attrs)
    https = type("GuardedHTTPSConnection", (_GuardedHTTPSConnection,), attrs)
    return {
        "http": type("GuardedHTTPPool", (urllib3.HTTPConnectionPool,), {"ConnectionCls": http}),
        "https": type("GuardedHTTPSPool", (urllib3.HTTPSConnectionPool,), {"ConnectionCls": https}),
    }


class _GuardedAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter whose every connection (direct or to a proxy) goes through a :class:`_Guard`."""

    def __init__(self, guard: _Guard, origin: str) -> None:
        self._pools = _guarded_pools(guard, origin)
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy, **kwargs):
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = self._pools
        return manager


# --- streaming helpers -----------------------------------------------------------------------------


def _read1(raw, n: int) -> bytes:
    """At most ``n`` raw (never decoded) bytes, returning as soon as some arrived."""
    return raw.read1(n, decode_content=False) if hasattr(raw, "read1") else raw.read(n, decode_content=False)


class _Counting(io.RawIOBase):
    """Reads the raw (still compressed) HTTP body, counts the bytes that crossed the network, stops at
    ``cap`` bytes and at the inspection's deadline."""

    def __init__(self, raw, limit_error: str, guard: _Guard, cap: int, cap_note: str) -> None:
        self.raw = raw
        self.count = 0
        self.limit_error = limit_error
        self.guard = guard
        self.cap = cap
        self.cap_note = cap_note
        self.hash = None  # a hashlib object fed every byte, when the caller sets one

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        self.guard.check()
        want = min(len(b), self.cap + 1 - self.count)
        try:
            data = _read1(self.raw, max(want, 1))
        except Exception as e:  # urllib3 protocol/timeout errors mid-stream
            if self.guard.expired:
                raise self.guard.error() from None
            raise RegistryError(f"{self.limit_error}: {_short(e)}", transient=True) from None
        if self.guard.expired:
            raise self.guard.error()
        n = len(data)
        self.count += n
        if self.count > self.cap:
            raise LayerLimitExceeded(self.cap_note)
        if self.hash is not None:
            self.hash.update(data)
        b[:n] = data
        return n


class _Capped(io.RawIOBase):
    """Decompressed layer bytes: at most ``cap`` of them, and never past the deadline."""

    def __init__(self, inner, guard: _Guard, cap: int) -> None:
        self.inner = inner
        self.guard = guard
        self.cap = cap
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        self.guard.check()
        data = self.inner.read(min(len(b), 256 * 1024))
        self.count += len(data)
        if self.count > self.cap:
            raise LayerLimitExceeded(
                f"more than {self.cap} decompressed bytes (DNSAUDIT_REGISTRY_MAX_LAYER_BYTES)"
            )
        b[: len(data)] = data
        return len(data)


_REASON = re.compile(r"[^A-Za-z0-9 .,:;()/'_-]")


def _clean(text: str, limit: int = 80) -> str:
    """Text a server chose (a reason phrase, a realm) made safe and short for an error message."""
    t = _REASON.sub("?", text or "")
    return t[:limit] + ("…" if len(t) > limit else "")


@dataclass
class InspectStats:
    """What an inspection cost: requests sent, layer bytes read versus their total size."""

    requests: int = 0
    layer_bytes_read: int = 0
    layer_bytes_total: int = 0
    layers_read: int = 0
    layers_total: int = 0
    layers_known: int = 0  # layers answered from the layer cache without a download
    cache_hit: bool = False
    urls: list[str] = field(default_factory=list)


# --- the client ------------------------------------------------------------------------------------

Credential = tuple[str, str]
CredentialsArg = Mapping[str, "Credential | Sequence[Credential]"]


def _normalise_credentials(credentials: CredentialsArg | None) -> dict[str, list[Credential]]:
    """``{registry: [(user, password), ...]}``: a registry may have several candidates, tried in order."""
    out: dict[str, list[Credential]] = {}
    for key, value in (credentials or {}).items():
        if isinstance(value, tuple) and len(value) == 2 and all(isinstance(x, str) for x in value):
            items = [value]
        else:
            items = [tuple(v) for v in value]
        bucket = out.setdefault(normalise_registry(key), [])
        bucket.extend(i for i in items if i not in bucket)
    return out


class RegistryClient:
    """Reads images from OCI/Docker registries. Thread-safe: per-call state only, except ``cache``.

    ``credentials``: ``{registry: (user, password)}`` or ``{registry: [(user, password), ...]}`` (several
    candidates are tried in order, as the kubelet does; see :func:`credentials_from_dockerconfigjson`).
    :meth:`inspect` takes ``credentials=`` too, replacing these for one inspection (a namespace's own).
    ``cache``: shared mapping ``manifest digest -> verdict dict`` (and ``index digest|platform``).
    ``layer_cache``: shared mapping ``"<registry host>/<layer digest>" -> layer facts`` (:func:`layer_facts`
    records: what one layer told the libc detector, in tar order). A layer already known is replayed
    instead of downloaded; see :class:`_Call` ``_feed_layer`` for when it is read anyway.
    ``insecure_registries``: extra ``host[:port]`` reached over plain HTTP (default: the environment).
    ``verify``: TLS verification (True, or a CA bundle path).
    ``mirrors``: ``{registry: mirror or [mirrors]}`` with registries as in references (``docker.io``) and
    mirrors as ``host[:port][/prefix]`` or ``http(s)://host[:port][/prefix]`` (default: the environment,
    ``DNSAUDIT_REGISTRY_MIRRORS``). Mirrors are tried first; when all fail (404, refused, 5xx...) the
    registry itself is asked, unless ``upstream_fallback`` is False. A mirror's credentials are those
    of its own host in ``credentials``. Raises ``ValueError`` when the mirrors do not parse.
    ``limits``: :class:`RegistryLimits` (default: the ``DNSAUDIT_REGISTRY_*`` environment).
    ``forbid``: ``(ip, port) -> reason or None``, the address check made before every connection
    (default :func:`forbidden_address`; tests mark a loopback port as forbidden with it).
    """

    def __init__(
        self,
        credentials: CredentialsArg | None = None,
        cache: MutableMapping | None = None,
        timeout: float = 15.0,
        insecure_registries: Iterable[str] | None = None,
        *,
        verify: bool | str = True,
        retries: int = 2,
        backoff: float = 0.3,
        loopback_insecure: bool = True,
        mirrors: Mapping[str, str | Mirror | Iterable[str | Mirror]] | None = None,
        upstream_fallback: bool = True,
        limits: RegistryLimits | None = None,
        forbid: AddressCheck | None = None,
        layer_cache: MutableMapping | None = None,
    ) -> None:
        self.credentials = _normalise_credentials(credentials)
        self.cache = cache
        self.layer_cache = layer_cache
        self.timeout = timeout
        self.insecure = (
            insecure_from_environment()
            if insecure_registries is None
            else frozenset(h.strip().lower() for h in insecure_registries)
        )
        self.verify = verify
        self.retries = retries
        self.backoff = backoff
        self.loopback_insecure = loopback_insecure
        self.mirrors = mirrors_from_environment() if mirrors is None else _normalise_mirrors(mirrors)
        self.upstream_fallback = upstream_fallback
        self.limits = limits_from_environment() if limits is None else limits
        self.forbid = forbid or forbidden_address

    # -- public --
    def inspect(
        self, ref: str, platform: str = "linux/amd64", *, credentials: CredentialsArg | None = None
    ) -> LibcVerdict:
        """Classify the image's libc from its contents (confidence ``confirmed`` unless unknown)."""
        return self.inspect_with_stats(ref, platform, credentials=credentials)[0]

    def inspect_or_infer(
        self,
        ref: str,
        platform: str = "linux/amd64",
        *,
        fallback_ref: str | None = None,
        credentials: CredentialsArg | None = None,
    ) -> LibcVerdict:
        """:meth:`inspect`, or when the registry fails, :func:`infer_from_reference` with the error noted.

        ``fallback_ref`` is the reference to infer from when it says more than ``ref`` (a pod's tag,
        ``alpine:3.16``, says more than its digest reference ``docker.io/library/alpine@sha256:…``).
        """
        try:
            return self.inspect(ref, platform, credentials=credentials)
        except (RegistryError, ValueError) as e:
            v = infer_from_reference(fallback_ref or ref)
            v.platform = platform
            v.evidence.append(f"registry not read: {e}")
            return v

    def inspect_with_stats(
        self, ref: str, platform: str = "linux/amd64", *, credentials: CredentialsArg | None = None
    ) -> tuple[LibcVerdict, InspectStats]:
        try:
            r = parse_reference(ref)
        except ValueError as e:
            raise RegistryError(str(e)) from None
        want = _parse_platform(platform)
        if r.digest and self.cache is not None:
            hit = self.cache.get(f"{r.digest}|{platform}") or self.cache.get(r.digest)
            if hit:
                return _from_dict(hit), InspectStats(cache_hit=True)
        creds = self.credentials if credentials is None else _normalise_credentials(credentials)
        stats = InspectStats()
        sources = self.sources_for(r)
        failed: list[str] = []  # "mirror X: why" for each mirror that could not serve the image
        unreachable = True  # every source failed without answering (so far)
        guard = _Guard(self.limits.deadline, self.forbid)
        try:
            for i, source in enumerate(sources):
                try:
                    result = self._inspect_source(guard, creds, r, source, platform, want, stats)
                except RegistryError as e:
                    unreachable = unreachable and e.unreachable
                    if i + 1 < len(sources) and not guard.expired:
                        failed.append(f"mirror {source.mirror.label if source.mirror else source.host}: {e}")
                        continue
                    if failed:
                        raise type(e)(
                            f"{e} (after {'; '.join(failed)})",
                            transient=e.transient,
                            status=e.status,
                            unreachable=unreachable,
                        ) from None
                    raise
                break
        finally:
            guard.close()
        verdict, digest, index_digest, hit = result
        if hit:
            stats.cache_hit = True
            return verdict, stats
        if source.mirror is not None:
            verdict.evidence.append(f"read from mirror {source.mirror.label} for {r.registry}")
            if failed:
                verdict.evidence.append("mirrors tried before it: " + "; ".join(failed))
        elif failed:
            verdict.evidence.append(f"read from {r.registry} itself: " + "; ".join(failed))
        verdict.digest = digest
        verdict.platform = platform
        if self.cache is not None:
            d = verdict.to_dict()
            self.cache[digest] = d
            if index_digest:
                self.cache[f"{index_digest}|{platform}"] = d
        return verdict, stats

    def _inspect_source(
        self,
        guard: _Guard,
        creds: Mapping[str, list[Credential]],
        r: Reference,
        source: _Source,
        platform: str,
        want: tuple[str, str, str | None],
        stats: InspectStats,
    ) -> tuple[LibcVerdict, str, str | None, bool]:
        """Read through one source, trying each candidate credential of its host in turn (a refused one
        gives way to the next, as in the kubelet); without any, anonymously."""
        key = normalise_registry(source.host if source.mirror else r.registry)
        candidates: list[Credential | None] = list(creds.get(key) or ()) or [None]
        for j, cred in enumerate(candidates):
            call = _Call(self, r, source, guard=guard, creds=cred)
            try:
                return self._inspect_from(call, r, platform, want)
            except RegistryError as e:
                if e.status in (401, 403) and j + 1 < len(candidates) and not guard.expired:
                    continue
                raise
            except (KeyError, TypeError, AttributeError, ValueError, IndexError) as e:
                # A manifest or config of the wrong shape ({"layers": "x"}, "size": [1]...).
                raise RegistryError(
                    f"{call.where} sent a malformed manifest or config for {r} ({type(e).__name__})"
                ) from None
            finally:
                call.close()
                _merge(stats, call.stats)
        raise AssertionError("unreachable")

    def sources_for(self, r: Reference) -> list[_Source]:
        """Where to read ``r`` from, in order: its registry's mirrors, then (unless disabled) the registry."""
        out = [
            _Source(
                host=m.host,
                scheme=m.scheme or self.scheme_for(m.host),
                repository=f"{m.prefix}/{r.repository}" if m.prefix else r.repository,
                mirror=m,
            )
            for m in self.mirrors.get(normalise_registry(r.registry), ())
        ]
        if self.upstream_fallback or not out:
            out.append(_Source(r.api_host, self.scheme_for(r.api_host), r.repository))
        return out

    def _inspect_from(
        self, call: _Call, r: Reference, platform: str, want: tuple[str, str, str | None]
    ) -> tuple[LibcVerdict, str, str | None, bool]:
        """``(verdict, manifest digest, index digest, cache hit)`` read through ``call``'s source."""
        manifest, media_type, digest = call.manifest(r.reference)
        index_digest = None
        if media_type in INDEX_TYPES or "manifests" in manifest:
            index_digest = digest
            if self.cache is not None and f"{digest}|{platform}" in self.cache:
                return _from_dict(self.cache[f"{digest}|{platform}"]), digest, index_digest, True
            entry = _pick_platform(manifest, want, str(r))
            digest = entry["digest"]
            if self.cache is not None and digest in self.cache:
                return _from_dict(self.cache[digest]), digest, index_digest, True
            manifest, media_type, digest = call.manifest(digest)
        elif self.cache is not None and digest in self.cache:
            return _from_dict(self.cache[digest]), digest, index_digest, True
        return call.classify(manifest, platform), digest, index_digest, False

    # -- helpers used by _Call --
    def scheme_for(self, host: str) -> str:
        h = host.lower()
        if h in self.insecure or (h.split(":")[0] in self.insecure and ":" not in h):
            return "http"
        if h.startswith("["):
            bare = h[1:].split("]")[0]
        elif h.count(":") == 1:
            bare = h.split(":")[0]
        else:
            bare = h
        if self.loopback_insecure:
            if bare == "localhost":
                return "http"
            try:
                if ipaddress.ip_address(bare).is_loopback:
                    return "http"
            except ValueError:
                pass
        return "https"


_REDIRECTS = (301, 302, 303, 307, 308)
_UNSET = object()


def _origin(url: str) -> tuple[str, str, int]:
    u = urlsplit(url)
    return (u.scheme, (u.hostname or "").lower(), u.port or (443 if u.scheme == "https" else 80))


class _Call:
    """State of one inspection through one source: a session, tokens, counters. Never shared between
    threads. Redirects are followed here, one hop at a time under the outbound policy; credentials (the
    ``Authorization`` header) only ever go to the source's own origin, and Basic credentials to its
    token realm."""

    def __init__(
        self,
        client: RegistryClient,
        ref: Reference,
        source: _Source | None = None,
        *,
        guard: _Guard | None = None,
        creds: Credential | None | object = _UNSET,
    ) -> None:
        self.c = client
        self.ref = ref
        self.source = source or _Source(ref.api_host, client.scheme_for(ref.api_host), ref.repository)
        self.own_guard = guard is None
        self.guard = guard or _Guard(client.limits.deadline, client.forbid)
        self.s = requests.Session()
        self.s.verify = client.verify
        adapter = _GuardedAdapter(self.guard, urlsplit(f"//{self.source.host}").hostname or self.source.host)
        self.s.mount("http://", adapter)
        self.s.mount("https://", adapter)
        self.s.headers["User-Agent"] = "dnsaudit"
        # No transparent decompression: bodies are read raw and capped, and an encoded one is refused.
        self.s.headers["Accept-Encoding"] = "identity"
        self.base = f"{self.source.scheme}://{self.source.host}/v2/{self.source.repository}"
        self.auth_header: str | None = None
        self.token_proven = False  # the current bearer token has worked once (so a 401 means expired)
        self.answered = False  # some HTTP response came back through this source
        if creds is _UNSET:
            # A mirror is its own registry with its own accounts: use the credentials of its host.
            cred_key = self.source.host if self.source.mirror else ref.registry
            found = client.credentials.get(normalise_registry(cred_key)) or [None]
            creds = found[0]
        self.creds: Credential | None = creds  # type: ignore[assignment]
        # How errors name where we read from: the registry, or "mirror host/prefix".
        self.where = f"mirror {self.source.mirror.label}" if self.source.mirror else ref.registry
        self.stats = InspectStats()

    def close(self) -> None:
        self.s.close()
        if self.own_guard:
            self.guard.close()

    # -- HTTP: one hop, then redirects, auth, retries and clear errors --
    def _send(self, url: str, headers: Mapping[str, str], auth: str | None) -> requests.Response:
        """One GET, no redirect followed, the body not read. Nothing is sent to a refused host."""
        self.guard.check()
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise RegistryError(f"refused to fetch {_clean(url)}: not an http(s) URL")
        reason = forbidden_hostname(u.hostname)
        if reason:
            raise RegistryError(f"refused to fetch from {u.hostname}: {reason}")
        h = dict(headers)
        if auth:
            h["Authorization"] = auth
        self.stats.requests += 1
        self.stats.urls.append(url)
        t = max(0.05, min(self.c.timeout, self.guard.remaining()))
        try:
            # verify given per request: a session's own would lose to REQUESTS_CA_BUNDLE from the environment
            resp = self.s.get(
                url, headers=h, stream=True, allow_redirects=False, timeout=(t, t), verify=self.c.verify
            )
            self.answered = True
            return resp
        except RegistryError:
            raise
        except Exception:
            if self.guard.expired:
                raise self.guard.error() from None
            raise

    def _follow(self, url: str, headers: Mapping[str, str]) -> requests.Response:
        """GET ``url``, answering the registry's 401 challenge and following redirects ourselves."""
        home = _origin(self.base)
        current = url
        for hop in range(self.c.limits.max_redirects + 1):
            on_registry = _origin(current) == home
            resp = self._send(current, headers, self.auth_header if on_registry else None)
            if resp.status_code == 401 and on_registry and self._authenticate(resp):
                resp.close()
                resp = self._send(current, headers, self.auth_header)
            if resp.status_code not in _REDIRECTS:
                return resp
            location = resp.headers.get("Location") or ""
            resp.close()
            if hop == self.c.limits.max_redirects:
                break
            current = self._redirect_target(current, location)
        raise RegistryError(f"registry {self.source.host}: more than {self.c.limits.max_redirects} redirects")

    def _redirect_target(self, current: str, location: str) -> str:
        if not location:
            raise RegistryError(f"registry {self.source.host} redirected without a Location")
        target = urljoin(current, location.strip())
        u = urlsplit(target)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise RegistryError(f"registry {self.source.host} redirected to a non-http(s) URL; not followed")
        host = u.netloc.rpartition("@")[2].lower()
        if urlsplit(current).scheme == "https" and u.scheme == "http" and self.c.scheme_for(host) != "http":
            raise RegistryError(
                f"registry {self.source.host} redirected from HTTPS to plain HTTP ({_clean(host)}); not followed"
            )
        reason = forbidden_hostname(u.hostname)
        if reason:
            raise RegistryError(
                f"registry {self.source.host} redirected to {_clean(u.hostname)}: refused, {reason}"
            )
        return target

    def get(self, url: str, headers: dict | None = None, *, what: str = "") -> requests.Response:
        """A streamed response with a 2xx status (its body not read yet), or a :class:`RegistryError`."""
        headers = headers or {}
        attempt = 0
        while True:
            try:
                resp = self._follow(url, headers)
                self._raise_for(resp, what)
                self.token_proven = True
                return resp
            except RegistryDeadline:
                raise
            except RegistryError as e:
                if not e.transient or attempt >= self.c.retries:
                    raise
            except requests.exceptions.SSLError as e:
                raise self._tls_error(e) from None
            except (requests.ConnectionError, requests.Timeout) as e:
                if attempt >= self.c.retries:
                    what = self.where if self.source.mirror else f"registry {self.where}"
                    raise RegistryError(
                        f"cannot reach {what}: {_short(e)}", transient=True, unreachable=not self.answered
                    ) from None
            except requests.RequestException as e:  # a malformed redirect URL, header...: not retried
                raise RegistryError(f"request to {self.source.host} failed: {_short(e)}") from None
            attempt += 1
            pause = self.c.backoff * (2 ** (attempt - 1))
            if pause >= self.guard.remaining():
                raise self.guard.error()
            time.sleep(pause)

    def read_body(self, resp: requests.Response, what: str) -> bytes:
        """The whole body of a small JSON answer: identity-encoded only, at most ``max_manifest_bytes``,
        read as it arrives (never more than the limit, whatever Content-Length says), within the deadline."""
        cap = self.c.limits.max_manifest_bytes
        try:
            encoding = (resp.headers.get("Content-Encoding") or "identity").strip().lower()
            if encoding not in ("identity", ""):
                raise RegistryError(
                    f"{self.where} sent {what} with Content-Encoding {_clean(encoding, 20)} although "
                    "identity was asked for; refused"
                )
            length = resp.headers.get("Content-Length") or ""
            if length.strip().isdigit() and int(length) > cap:
                raise RegistryError(
                    f"{what} from {self.where} is {int(length)} bytes, over the limit of {cap} "
                    "(DNSAUDIT_REGISTRY_MAX_MANIFEST_BYTES)"
                )
            buf = bytearray()
            while True:
                self.guard.check()
                try:
                    chunk = _read1(resp.raw, min(64 * 1024, cap + 1 - len(buf)))
                except Exception as e:
                    if self.guard.expired:
                        raise self.guard.error() from None
                    raise RegistryError(
                        f"reading {what} from {self.where} failed: {_short(e)}", transient=True
                    ) from None
                if self.guard.expired:
                    raise self.guard.error()
                if not chunk:
                    return bytes(buf)
                buf += chunk
                if len(buf) > cap:
                    raise RegistryError(
                        f"{what} from {self.where} is over the limit of {cap} bytes "
                        "(DNSAUDIT_REGISTRY_MAX_MANIFEST_BYTES); not read further"
                    )
        finally:
            resp.close()

    def _tls_error(self, e: Exception) -> RegistryError:
        text = str(e)
        plain = any(s in text for s in ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure",
                                        "unknown protocol", "http request"))  # fmt: skip
        if plain:
            msg = (
                f"TLS/HTTPS handshake with registry {self.source.host} failed: it seems to speak plain HTTP. "
                f"If that is intended, list it in {INSECURE_ENV} (comma-separated host[:port])"
            )
        else:
            msg = f"TLS error talking to registry {self.source.host}: {_short(e)} (see also {INSECURE_ENV})"
        return RegistryError(msg, transient=False)

    def _raise_for(self, resp: requests.Response, what: str) -> None:
        """Error bodies are never read (nor shown): the status and its reason say enough."""
        code = resp.status_code
        if 200 <= code < 300:
            return
        reason = _clean(resp.reason or "", 40)
        resp.close()
        name = str(self.ref) + (f" on {self.where}" if self.source.mirror else "")
        if code == 401:
            if self.creds:
                raise RegistryError(f"registry refused credentials for {name} (401)", status=401)
            raise RegistryError(
                f"registry requires credentials for {name} (401); add a pull secret or a Docker config.json",
                status=401,
            )
        if code == 403:
            raise RegistryError(f"registry refused access to {name} (403 forbidden)", status=403)
        if code == 404:
            raise RegistryError(f"image not found: {name}" + (f" ({what})" if what else ""), status=404)
        if code == 429 or code >= 500:
            raise RegistryError(
                f"registry {self.source.host} answered {code} for {name}", transient=True, status=code
            )
        raise RegistryError(
            f"registry {self.source.host} answered {code} {reason} for {name}".replace("  ", " "), status=code
        )

    def _authenticate(self, resp: requests.Response) -> bool:
        """Answer a 401 challenge once (Basic or Bearer). Returns whether a retry makes sense.

        A Bearer realm must be HTTPS unless the registry itself is reached over plain HTTP (loopback or
        ``DNSAUDIT_INSECURE_REGISTRIES``); the realm gets the Basic credentials and nothing else does.
        """
        if self.auth_header and self.auth_header.startswith("Basic"):
            return False
        challenge = resp.headers.get("WWW-Authenticate", "")
        scheme, _, params_s = challenge.partition(" ")
        params = dict(re.findall(r'(\w+)="([^"]*)"', params_s))
        if scheme.lower() == "basic":
            if not self.creds or self.auth_header:
                return False
            self.auth_header = "Basic " + base64.b64encode(":".join(self.creds).encode()).decode()
            return True
        if scheme.lower() != "bearer" or "realm" not in params:
            return False
        if self.auth_header and self.auth_header.startswith("Bearer") and not self.token_proven:
            return False  # a fresh token was refused: asking again will not help
        realm = params["realm"]
        u = urlsplit(realm)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise RegistryError(f"registry {self.source.host} named a token realm that is not an http(s) URL")
        if u.scheme == "http" and self.source.scheme != "http":
            raise RegistryError(
                f"registry {self.source.host} asked for a token from {_clean(u.netloc, 60)} over plain HTTP: "
                f"refused (a token realm must be HTTPS unless the registry itself is plain HTTP: loopback "
                f"or {INSECURE_ENV})"
            )
        q = {"service": params.get("service", "")} if params.get("service") else {}
        q["scope"] = params.get("scope") or f"repository:{self.source.repository}:pull"
        url = realm + ("&" if u.query else "?") + urlencode(q)
        basic = "Basic " + base64.b64encode(":".join(self.creds).encode()).decode() if self.creds else None
        try:
            t = self._send(url, {}, basic)
        except RegistryError:
            raise
        except requests.exceptions.SSLError as e:
            raise self._tls_error(e) from None
        except (requests.ConnectionError, requests.Timeout) as e:
            raise RegistryError(
                f"cannot reach the registry's token service: {_short(e)}", transient=True
            ) from None
        code = t.status_code
        if code in (401, 403):
            t.close()
            if self.creds:
                raise RegistryError(
                    f"registry refused credentials for {self.ref} (token service {code})", status=401
                )
            raise RegistryError(
                f"registry requires credentials for {self.ref} (token service {code})", status=401
            )
        if code in _REDIRECTS:
            t.close()
            raise RegistryError(
                "the registry's token service redirected; not followed (credentials stay put)"
            )
        if code >= 300:
            t.close()
            raise RegistryError(f"token service answered {code}", transient=code >= 500, status=code)
        try:
            body = json.loads(self.read_body(t, "a token answer"))
            token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        except ValueError:
            token = None
        if not token or not isinstance(token, str):
            raise RegistryError("token service gave no token")
        self.auth_header = f"Bearer {token}"
        self.token_proven = False
        return True

    # -- distribution API --
    def manifest(self, reference: str) -> tuple[dict, str, str]:
        """``(manifest, media type, digest)`` for a tag or digest."""
        resp = self.get(
            f"{self.base}/manifests/{reference}", {"Accept": ACCEPT}, what=f"manifest {reference}"
        )
        headers = resp.headers
        body = self.read_body(resp, f"manifest {reference}")
        try:
            manifest = json.loads(body)
        except ValueError:
            raise RegistryError(f"registry sent a manifest that is not JSON for {self.ref}") from None
        if not isinstance(manifest, dict):
            raise RegistryError(f"registry sent a manifest that is not a JSON object for {self.ref}")
        media_type = (headers.get("Content-Type") or "").split(";")[0].strip() or manifest.get(
            "mediaType", ""
        )
        if manifest.get("mediaType"):
            media_type = manifest["mediaType"]
        if manifest.get("schemaVersion") == 1:
            raise RegistryError(f"{self.ref} is a schema 1 manifest (unsupported)")
        # The digest is what the body hashes to, never what a header claims: verdicts are cached and
        # shared by digest, so a registry must not be able to file its answer under another image's.
        digest = _sha256(body)
        if _DIGEST.match(reference):
            # What comes back for a digest must hash to that digest (containerd checks the same), or it
            # is not the image that was asked for (a mirror is a cache we did not choose the contents of).
            actual = digest if reference.startswith("sha256:") else reference
            if actual != reference:
                raise RegistryError(
                    f"{self.where} returned a manifest for {reference} whose content hashes to {actual}"
                )
            digest = reference
        return manifest, media_type, digest

    def blob_json(self, digest: str) -> dict:
        resp = self.get(f"{self.base}/blobs/{digest}", what=f"config {digest}")
        try:
            config = json.loads(self.read_body(resp, f"config {digest[:19]}"))
        except ValueError:
            raise RegistryError(f"image config {digest} is not JSON") from None
        if not isinstance(config, dict):
            raise RegistryError(f"image config {digest} is not a JSON object")
        return config

    def classify(self, manifest: dict, platform: str) -> LibcVerdict:
        config_desc = manifest.get("config") or {}
        config = self.blob_json(config_desc["digest"]) if config_desc.get("digest") else {}
        det = LibcDetector(config)
        layers = [layer for layer in (manifest.get("layers") or []) if isinstance(layer, dict)]
        st = self.stats
        st.layers_total = len(layers)
        st.layer_bytes_total = sum(_size(layer) or 0 for layer in layers)
        notes = []
        want = _parse_platform(platform)
        if config.get("architecture") and config.get("architecture") != want[1]:
            notes.append(f"image config is for {config.get('os')}/{config['architecture']}, not {platform}")
        complete = True  # every layer read to its end: what was not seen is certainly absent
        stopped = False
        for layer in reversed(layers):  # top first
            if det.done():
                stopped = True
                break
            fed_before = det.layers_fed
            if "zstd" in str(layer.get("mediaType", "")):
                note = f"layer {str(layer['digest'])[:19]} is zstd-compressed and was not read"
            else:
                note, early = self._feed_layer(det, layer)
                if early:
                    stopped = True
                    break
            if note:
                notes.append(note)
                complete = False
                if det.layers_fed == fed_before:
                    det.view.begin_layer()  # keep layer numbering: the skipped layer still sits here
                    det.view.end_layer()
        if complete and not stopped:
            det.finish()
        v = det.verdict()
        v.evidence.extend(notes)
        v.evidence.append(
            f"read {st.layers_read} of {st.layers_total} layers, {st.layer_bytes_read} of {st.layer_bytes_total} "
            "compressed bytes"
            + (f", {st.layers_known} known from earlier inspections" if st.layers_known else "")
            + (" (stopped early: the answer was certain)" if stopped else "")
        )
        return v

    def _feed_layer(self, det: LibcDetector, layer: dict) -> tuple[str | None, bool]:
        """Feed one layer into ``det``. Returns ``(note if it could not be read, stopped early)``.

        A layer whose facts are in the client's ``layer_cache`` (keyed by this source's host and the layer
        digest) is replayed from them, entry by entry in tar order, so layer order, whiteouts and the
        early stop work as for a download. It is downloaded only when the record runs out before the
        verdict is certain (a prefix recorded by an earlier early stop), or when the image needs a file
        whose content the record did not keep (an entrypoint that is neither executable nor a file any
        image wants): the download then skips the entries already replayed. What was read is recorded.

        Limits: the compressed bytes its descriptor declares (a blob longer than that is not the blob),
        ``max_layer_bytes`` decompressed, ``max_tar_entries`` members, ``max_tar_header_bytes`` per
        extended header, and the deadline. A layer that hits a size limit is left with a note (what it
        held so far counts; the verdict cannot rest on absence); the deadline ends the inspection."""
        digest = str(layer["digest"])
        if not _DIGEST.match(digest):
            raise RegistryError(f"layer digest {_clean(digest, 30)} is not a digest")
        store = self.c.layer_cache
        cache_key = f"{self.source.host}/{digest}"
        known = _layer_record(store, cache_key)
        out: list[dict] = []  # the record of this layer as far as it was fed
        state = {"complete": False, "fetched": False, "verified": False, "overflow": False, "bytes": 0}

        def entries() -> Iterable[LayerEntry]:
            replayed = 0
            if known is not None:
                for rec in known["entries"]:
                    if rec.get("x") and det.wanted(rec["p"]):
                        break  # this image wants a file whose content the record did not keep
                    out.append(rec)
                    yield _replay(rec)
                    replayed += 1
                else:
                    if known["complete"]:
                        state["complete"] = True
                        return
            state["fetched"] = True
            yield from self._download(digest, layer, replayed, out, state)

        gen = entries()
        try:
            early = det.feed_layer(gen)
        except _Unreadable as e:
            return str(e), False
        except LayerLimitExceeded as e:
            # What the layer held up to there was fed (feed_layer closed the layer it began).
            return f"layer {digest[:19]} not fully read: {e}", False
        except (OSError, EOFError, ValueError, tarfile.TarError, zlib.error, RecursionError) as e:
            # A corrupt or truncated layer (gzip/tar errors); mid-stream network errors arrive
            # as RegistryError from _Counting and pass through untouched.
            raise RegistryError(f"layer {digest[:19]} is not a readable tar: {_short(e)}") from None
        finally:
            gen.close()
        if not state["fetched"]:
            self.stats.layers_known += 1
        grew = (
            known is None or len(out) > len(known["entries"]) or (state["complete"] and not known["complete"])
        )
        # Recorded: a layer read to its end whose bytes hash to its digest, or the prefix the early stop
        # read (it cannot be hashed; the record is kept per registry host, so a registry can only mislead
        # about its own images, which it could do anyway).
        usable = (state["complete"] and (state["verified"] or not state["fetched"])) or (
            early and not state["complete"]
        )
        if store is not None and out and grew and usable and not state["overflow"]:
            with contextlib.suppress(Exception):  # a cache that cannot store must not fail the inspection
                store[cache_key] = {"v": LAYER_FACTS_VERSION, "entries": out, "complete": state["complete"]}
        return None, early

    def _download(
        self, digest: str, layer: dict, skip: int, out: list[dict], state: dict
    ) -> Iterable[LayerEntry]:
        """The layer's entries from the registry, from the ``skip``-th on, each recorded into ``out``."""
        lim = self.c.limits
        declared = _size(layer)
        cap = declared if declared is not None else lim.max_layer_bytes
        resp = self.get(f"{self.base}/blobs/{digest}", what=f"layer {digest}")
        cap_note = (
            f"the blob is longer than the {declared} bytes its descriptor declares"
            if declared is not None
            else f"more than {cap} compressed bytes (DNSAUDIT_REGISTRY_MAX_LAYER_BYTES)"
        )
        counting = _Counting(resp.raw, f"download of layer {digest[:19]} failed", self.guard, cap, cap_note)
        counting.hash = hashlib.sha256() if digest.startswith("sha256:") else None
        try:
            buf = io.BufferedReader(counting, buffer_size=64 * 1024)
            magic = buf.peek(4)[:4]
            if magic[:4] == b"\x28\xb5\x2f\xfd":
                raise _Unreadable(f"layer {digest[:19]} is zstd-compressed and was not read")
            # gzip is recognised by its magic bytes: media types are not always truthful.
            inner = gzip.GzipFile(fileobj=buf, mode="rb") if magic[:2] == b"\x1f\x8b" else buf
            stream = io.BufferedReader(_Capped(inner, self.guard, lim.max_layer_bytes), buffer_size=64 * 1024)
            self.stats.layers_read += 1
            tar = entries_from_tar(
                stream, max_entries=lim.max_tar_entries, max_header_bytes=lim.max_tar_header_bytes
            )
            for i, e in enumerate(tar):
                if i < skip:
                    continue  # replayed from the record already (the blob is content-addressed)
                rec, entry = layer_facts(e)
                if not state["overflow"]:
                    state["bytes"] += len(rec["p"]) + len(rec.get("l", "")) + len(rec.get("d", "")) + 32
                    if len(out) >= LAYER_RECORD_MAX_ENTRIES or state["bytes"] > LAYER_RECORD_MAX_BYTES:
                        state["overflow"] = True  # too big to keep: fed, not recorded (memory freed)
                        out.clear()
                    else:
                        out.append(rec)
                yield entry
            state["complete"] = True
            while buf.read(64 * 1024):  # the tar's zero blocks and gzip trailer: for the digest check
                pass
            if counting.hash is not None:
                state["verified"] = "sha256:" + counting.hash.hexdigest() == digest
        finally:
            self.stats.layer_bytes_read += counting.count
            resp.close()


#: Version of the layer records :func:`layer_facts` writes; records of another version are ignored.
LAYER_FACTS_VERSION = 1
#: Most entries, and bytes (paths and kept contents), one layer record holds while it is made: a layer
#: past either is fed to the detector as usual but not recorded (a hostile layer cannot grow memory).
LAYER_RECORD_MAX_ENTRIES = 100_000
LAYER_RECORD_MAX_BYTES = 16 * 1024 * 1024
#: ``LibcDetector.wanted`` of an image without a command: the files any image's verdict may read.
_ANY_IMAGE = LibcDetector(None)


class _Unreadable(Exception):
    """A layer that cannot be read at all (zstd): the message is the note."""


def layer_facts(e: LayerEntry) -> tuple[dict, LayerEntry]:
    """``(record, entry to feed)`` for one tar member, independent of the image it belongs to.

    The record is what the libc detector can use from the member: every path with its kind (directories,
    symlinks, hard links, whiteouts and opaque markers included), and for each regular file that any
    image may read — executables, and the files :class:`LibcDetector` wants whatever the command (os-release,
    apk databases, loaders, files in the bin directories) — the bytes it reads: a text file's content,
    a script's ``#!`` line, an ELF file's header and program headers (the shortest prefix that parses
    to the same facts) plus the musl resolver strings found in the whole file when it is static. Other
    regular files are kept by path only (``"x"``); the member itself is returned for those, since this
    image may still want one as its entrypoint."""
    if e.kind != "file":
        rec = {"p": e.path, "k": e.kind}
        if e.linkname:
            rec["l"] = e.linkname
        return rec, _replay(rec)  # what a download feeds is what a replay feeds
    if not (_ANY_IMAGE.wanted(e.path) or e.mode & 0o111):
        return {"p": e.path, "k": "file", "x": 1}, e
    data = _file_facts(e) if e.read is not None else b""
    rec = {"p": e.path, "k": "file", "m": e.mode, "s": e.size, "d": base64.b64encode(data).decode()}
    return rec, _replay(rec)


def _file_facts(e: LayerEntry) -> bytes:
    """The bytes of a regular file that stand for it in a record (see :func:`layer_facts`)."""
    assert e.read is not None
    if e.path in TEXT_FILES:
        return e.read(TEXT_CAP)
    head = e.read(HEAD_BYTES)
    if head.startswith(b"#!"):
        return head[:512]
    elf = parse_elf(head)
    if elf is None:
        return b""
    markers = LibcDetector._scan_static(head, e.read)  # the entrypoint scan, done for every static file
    suffix = (b"\0" + b"\0".join(sorted(markers)) + b"\0") if markers else b""
    for n in (256, 512, 1024, 2048, 4096, 8192):
        if n >= len(head):
            break
        short = head[:n]
        if GO_BUILD_ID_MARKER in head and GO_BUILD_ID_MARKER not in short:
            short += b"\0" + GO_BUILD_ID_MARKER
        if parse_elf(short + suffix) == elf:
            return short + suffix
    return head + suffix


def _replay(rec: dict) -> LayerEntry:
    """The :class:`LayerEntry` a record stands for (a regular file reads the bytes the record kept)."""
    if rec["k"] != "file":
        return LayerEntry(rec["p"], rec["k"], rec.get("l", ""))
    if rec.get("x"):
        # Neither executable nor wanted by this image (checked before): the detector skips it unread.
        return LayerEntry(rec["p"], "file", read=_nothing, mode=0o644)
    data = base64.b64decode(rec.get("d") or "")
    return LayerEntry(
        rec["p"], "file", size=int(rec.get("s") or 0), read=io.BytesIO(data).read, mode=int(rec["m"])
    )


def _nothing(_n: int = -1) -> bytes:
    return b""


def _layer_record(store: MutableMapping | None, key: str) -> dict | None:
    """The record of a layer from ``store``, or None when absent, of another version or malformed."""
    if store is None:
        return None
    try:
        rec = store.get(key)
    except Exception:  # a cache that cannot answer is a miss
        return None
    if (
        not isinstance(rec, dict)
        or rec.get("v") != LAYER_FACTS_VERSION
        or not isinstance(rec.get("entries"), list)
    ):
        return None
    for r in rec["entries"]:
        if not (isinstance(r, dict) and isinstance(r.get("p"), str) and isinstance(r.get("k"), str)):
            return None
        if r["k"] == "file" and not r.get("x") and not isinstance(r.get("m"), int):
            return None
    return {"entries": rec["entries"], "complete": bool(rec.get("complete"))}


def _size(desc: dict) -> int | None:
    """A descriptor's declared size, or None when absent or not a non-negative integer."""
    size = desc.get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def _parse_platform(platform: str) -> tuple[str, str, str | None]:
    parts = platform.split("/")
    if len(parts) < 2:
        raise RegistryError(f"invalid platform {platform!r} (expected os/arch[/variant])")
    return parts[0], parts[1], (parts[2] if len(parts) > 2 else None)


def _pick_platform(index: dict, want: tuple[str, str, str | None], name: str) -> dict:
    """The index entry for ``want``; ``arm64`` matches ``v8`` or no variant; attestations skipped."""
    os_, arch, variant = want
    exact, loose, seen = [], [], []
    for m in index.get("manifests") or []:
        p = m.get("platform") or {}
        ann = m.get("annotations") or {}
        if ann.get("vnd.docker.reference.type") == "attestation-manifest" or p.get("os") == "unknown":
            continue
        seen.append("/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x))
        if p.get("os") != os_ or p.get("architecture") != arch:
            continue
        ev = p.get("variant")
        if ev == variant:
            exact.append(m)
        elif (arch == "arm64" and {ev, variant} <= {None, "v8"}) or variant is None:
            loose.append(m)
    chosen = (exact or loose or [None])[0]
    if chosen is None:
        raise RegistryError(
            f"image {name} has no {'/'.join(x for x in want if x)} variant (it has: {', '.join(seen) or 'none'})",
            status=404,
        )
    return chosen


def _merge(total: InspectStats, part: InspectStats) -> None:
    """Add one attempt's costs to the inspection's."""
    total.requests += part.requests
    total.layer_bytes_read += part.layer_bytes_read
    total.layers_read += part.layers_read
    total.layers_known += part.layers_known
    total.urls.extend(part.urls)
    if part.layers_total:
        total.layers_total = part.layers_total
        total.layer_bytes_total = part.layer_bytes_total


def _from_dict(d: dict) -> LibcVerdict:
    d = dict(d)
    d["evidence"] = list(d.get("evidence") or [])
    return LibcVerdict(**d)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _short(e: Exception) -> str:
    text = str(e)
    m = re.search(r"\[Errno [-\d]+\] ([^'\")]+)", text)
    if m:
        return m.group(1).strip()
    return text[:200]
