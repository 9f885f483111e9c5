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
"""

from __future__ import annotations

import base64
import gzip
import io
import ipaddress
import json
import os
import re
import tarfile
import time
import zlib
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from dnsaudit.core.libc import LibcDetector, infer_from_reference
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
MAX_JSON = 4 * 1024 * 1024  # manifests and configs are small; refuse anything huge


class RegistryError(Exception):
    """A registry could not give us the image. ``transient``: retrying later may succeed."""

    def __init__(self, message: str, *, transient: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


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


# --- streaming helpers -----------------------------------------------------------------------------


class _Counting(io.RawIOBase):
    """Reads the raw (still compressed) HTTP body and counts the bytes that crossed the network."""

    def __init__(self, raw, limit_error: str) -> None:
        self.raw = raw
        self.count = 0
        self.limit_error = limit_error

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            data = self.raw.read(len(b))
        except Exception as e:  # urllib3 protocol/timeout errors mid-stream
            raise RegistryError(f"{self.limit_error}: {e}", transient=True) from None
        n = len(data)
        b[:n] = data
        self.count += n
        return n


@dataclass
class InspectStats:
    """What an inspection cost: requests sent, layer bytes read versus their total size."""

    requests: int = 0
    layer_bytes_read: int = 0
    layer_bytes_total: int = 0
    layers_read: int = 0
    layers_total: int = 0
    cache_hit: bool = False
    urls: list[str] = field(default_factory=list)


# --- the client ------------------------------------------------------------------------------------


class RegistryClient:
    """Reads images from OCI/Docker registries. Thread-safe: per-call state only, except ``cache``.

    ``credentials``: ``{registry: (user, password)}`` (see :func:`credentials_from_dockerconfigjson`).
    ``cache``: shared mapping ``manifest digest -> verdict dict`` (and ``index digest|platform``).
    ``insecure_registries``: extra ``host[:port]`` reached over plain HTTP (default: the environment).
    ``verify``: TLS verification (True, or a CA bundle path).
    ``mirrors``: ``{registry: mirror or [mirrors]}`` with registries as in references (``docker.io``) and
    mirrors as ``host[:port][/prefix]`` or ``http(s)://host[:port][/prefix]`` (default: the environment,
    ``DNSAUDIT_REGISTRY_MIRRORS``). Mirrors are tried first; when all fail (404, refused, 5xx...) the
    registry itself is asked, unless ``upstream_fallback`` is False. A mirror's credentials are those
    of its own host in ``credentials``. Raises ``ValueError`` when the mirrors do not parse.
    """

    def __init__(
        self,
        credentials: Mapping[str, tuple[str, str]] | None = None,
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
    ) -> None:
        self.credentials = {normalise_registry(k): v for k, v in (credentials or {}).items()}
        self.cache = cache
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

    # -- public --
    def inspect(self, ref: str, platform: str = "linux/amd64") -> LibcVerdict:
        """Classify the image's libc from its contents (confidence ``confirmed`` unless unknown)."""
        return self.inspect_with_stats(ref, platform)[0]

    def inspect_or_infer(
        self, ref: str, platform: str = "linux/amd64", *, fallback_ref: str | None = None
    ) -> LibcVerdict:
        """:meth:`inspect`, or when the registry fails, :func:`infer_from_reference` with the error noted.

        ``fallback_ref`` is the reference to infer from when it says more than ``ref`` (a pod's tag,
        ``alpine:3.16``, says more than its digest reference ``docker.io/library/alpine@sha256:…``).
        """
        try:
            return self.inspect(ref, platform)
        except (RegistryError, ValueError) as e:
            v = infer_from_reference(fallback_ref or ref)
            v.platform = platform
            v.evidence.append(f"registry not read: {e}")
            return v

    def inspect_with_stats(self, ref: str, platform: str = "linux/amd64") -> tuple[LibcVerdict, InspectStats]:
        try:
            r = parse_reference(ref)
        except ValueError as e:
            raise RegistryError(str(e)) from None
        want = _parse_platform(platform)
        if r.digest and self.cache is not None:
            hit = self.cache.get(f"{r.digest}|{platform}") or self.cache.get(r.digest)
            if hit:
                return _from_dict(hit), InspectStats(cache_hit=True)
        stats = InspectStats()
        sources = self.sources_for(r)
        failed: list[str] = []  # "mirror X: why" for each mirror that could not serve the image
        for i, source in enumerate(sources):
            call = _Call(self, r, source)
            try:
                result = self._inspect_from(call, r, platform, want)
            except RegistryError as e:
                _merge(stats, call.stats)
                if i + 1 < len(sources):
                    failed.append(f"mirror {source.mirror.label if source.mirror else source.host}: {e}")
                    continue
                if failed:
                    raise RegistryError(
                        f"{e} (after {'; '.join(failed)})", transient=e.transient, status=e.status
                    ) from None
                raise
            finally:
                call.close()
            _merge(stats, call.stats)
            break
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


class _Call:
    """State of one inspection: a session, tokens, counters. Never shared between threads."""

    def __init__(self, client: RegistryClient, ref: Reference, source: _Source | None = None) -> None:
        self.c = client
        self.ref = ref
        self.source = source or _Source(ref.api_host, client.scheme_for(ref.api_host), ref.repository)
        self.s = requests.Session()
        self.s.verify = client.verify
        self.s.headers["User-Agent"] = "dnsaudit"
        self.base = f"{self.source.scheme}://{self.source.host}/v2/{self.source.repository}"
        self.auth_header: str | None = None
        self.token_proven = False  # the current bearer token has worked once (so a 401 means expired)
        # A mirror is its own registry with its own accounts: use the credentials of its host.
        cred_key = self.source.host if self.source.mirror else ref.registry
        self.creds = client.credentials.get(normalise_registry(cred_key))
        # How errors name where we read from: the registry, or "mirror host/prefix".
        self.where = f"mirror {self.source.mirror.label}" if self.source.mirror else ref.registry
        self.stats = InspectStats()

    def close(self) -> None:
        self.s.close()

    # -- HTTP with auth, retries and clear errors --
    def _send(self, url: str, headers: dict, stream: bool) -> requests.Response:
        h = dict(headers)
        if self.auth_header:
            h["Authorization"] = self.auth_header
        self.stats.requests += 1
        self.stats.urls.append(url)
        return self.s.get(url, headers=h, stream=stream, timeout=self.c.timeout)

    def get(
        self, url: str, headers: dict | None = None, *, stream: bool = False, what: str = ""
    ) -> requests.Response:
        headers = headers or {}
        attempt = 0
        while True:
            try:
                resp = self._send(url, headers, stream)
                if resp.status_code == 401 and self._authenticate(resp):
                    resp.close()
                    resp = self._send(url, headers, stream)
                self._raise_for(resp, what)
                self.token_proven = True
                return resp
            except RegistryError as e:
                if not e.transient or attempt >= self.c.retries:
                    raise
            except requests.exceptions.SSLError as e:
                raise self._tls_error(e) from None
            except (requests.ConnectionError, requests.Timeout) as e:
                if attempt >= self.c.retries:
                    what = self.where if self.source.mirror else f"registry {self.where}"
                    raise RegistryError(f"cannot reach {what}: {_short(e)}", transient=True) from None
            attempt += 1
            time.sleep(self.c.backoff * (2 ** (attempt - 1)))

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
        code = resp.status_code
        if code < 400:
            return
        try:
            body = resp.text[:300]  # error bodies are small JSON ({"errors": [...]})
        except requests.RequestException:
            body = ""
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
            f"registry {self.source.host} answered {code} for {name}: {body}".strip(), status=code
        )

    def _authenticate(self, resp: requests.Response) -> bool:
        """Answer a 401 challenge once (Basic or Bearer). Returns whether a retry makes sense."""
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
        q = {"service": params.get("service", "")} if params.get("service") else {}
        q["scope"] = params.get("scope") or f"repository:{self.source.repository}:pull"
        try:
            self.stats.requests += 1
            t = requests.get(
                params["realm"], params=q, auth=self.creds, timeout=self.c.timeout, verify=self.c.verify
            )
        except requests.exceptions.SSLError as e:
            raise self._tls_error(e) from None
        except (requests.ConnectionError, requests.Timeout) as e:
            raise RegistryError(
                f"cannot reach the registry's token service: {_short(e)}", transient=True
            ) from None
        if t.status_code in (401, 403):
            if self.creds:
                raise RegistryError(
                    f"registry refused credentials for {self.ref} (token service {t.status_code})", status=401
                )
            raise RegistryError(
                f"registry requires credentials for {self.ref} (token service {t.status_code})", status=401
            )
        if t.status_code >= 400:
            raise RegistryError(
                f"token service answered {t.status_code}",
                transient=t.status_code >= 500,
                status=t.status_code,
            )
        try:
            body = t.json()
            token = body.get("token") or body.get("access_token")
        except ValueError:
            token = None
        if not token:
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
        body = resp.content[: MAX_JSON + 1]
        if len(body) > MAX_JSON:
            raise RegistryError("manifest too large")
        try:
            manifest = json.loads(body)
        except ValueError:
            raise RegistryError(f"registry sent a manifest that is not JSON for {self.ref}") from None
        media_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip() or manifest.get(
            "mediaType", ""
        )
        if manifest.get("mediaType"):
            media_type = manifest["mediaType"]
        if manifest.get("schemaVersion") == 1:
            raise RegistryError(f"{self.ref} is a schema 1 manifest (unsupported)")
        digest = resp.headers.get("Docker-Content-Digest") or _sha256(body)
        if self.source.mirror is not None and _DIGEST.match(reference):
            # A mirror is a cache we did not choose the contents of: what it returns for a digest must
            # hash to that digest (containerd checks the same), or it is not the image that was asked for.
            actual = _sha256(body) if reference.startswith("sha256:") else reference
            if actual != reference:
                raise RegistryError(
                    f"{self.where} returned a manifest for {reference} whose content hashes to {actual}"
                )
            digest = reference
        return manifest, media_type, digest

    def blob_json(self, digest: str) -> dict:
        resp = self.get(f"{self.base}/blobs/{digest}", what=f"config {digest}")
        try:
            return json.loads(resp.content[:MAX_JSON])
        except ValueError:
            raise RegistryError(f"image config {digest} is not JSON") from None

    def classify(self, manifest: dict, platform: str) -> LibcVerdict:
        config_desc = manifest.get("config") or {}
        config = self.blob_json(config_desc["digest"]) if config_desc.get("digest") else {}
        det = LibcDetector(config)
        layers = list(manifest.get("layers") or [])
        st = self.stats
        st.layers_total = len(layers)
        st.layer_bytes_total = sum(int(layer.get("size") or 0) for layer in layers)
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
            if "zstd" in layer.get("mediaType", ""):
                note = f"layer {layer['digest'][:19]} is zstd-compressed and was not read"
            else:
                note, early = self._feed_layer(det, layer)
                if early:
                    stopped = True
                    break
            if note:
                notes.append(note)
                complete = False
                det.view.begin_layer()  # keep layer numbering: the skipped layer still sits here
                det.view.end_layer()
        if complete and not stopped:
            det.finish()
        v = det.verdict()
        v.evidence.extend(notes)
        v.evidence.append(
            f"read {st.layers_read} of {st.layers_total} layers, {st.layer_bytes_read} of {st.layer_bytes_total} "
            "compressed bytes" + (" (stopped early: the answer was certain)" if stopped else "")
        )
        return v

    def _feed_layer(self, det: LibcDetector, layer: dict) -> tuple[str | None, bool]:
        """Stream one layer into ``det``. Returns ``(note if it could not be read, stopped early)``."""
        digest = layer["digest"]
        resp = self.get(f"{self.base}/blobs/{digest}", stream=True, what=f"layer {digest}")
        counting = _Counting(resp.raw, f"download of layer {digest[:19]} failed")
        try:
            buf = io.BufferedReader(counting, buffer_size=64 * 1024)
            magic = buf.peek(4)[:4]
            if magic[:4] == b"\x28\xb5\x2f\xfd":
                return f"layer {digest[:19]} is zstd-compressed and was not read", False
            # gzip is recognised by its magic bytes: media types are not always truthful.
            stream = gzip.GzipFile(fileobj=buf, mode="rb") if magic[:2] == b"\x1f\x8b" else buf
            self.stats.layers_read += 1
            try:
                return None, det.feed_tar(stream)  # returns early once the verdict is certain
            except (OSError, EOFError, ValueError, tarfile.TarError, zlib.error) as e:
                # A corrupt or truncated layer (gzip/tar errors); mid-stream network errors arrive
                # as RegistryError from _Counting and pass through untouched.
                raise RegistryError(f"layer {digest[:19]} is not a readable tar: {e}") from None
        finally:
            self.stats.layer_bytes_read += counting.count
            resp.close()


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
    total.urls.extend(part.urls)
    if part.layers_total:
        total.layers_total = part.layers_total
        total.layer_bytes_total = part.layer_bytes_total


def _from_dict(d: dict) -> LibcVerdict:
    d = dict(d)
    d["evidence"] = list(d.get("evidence") or [])
    return LibcVerdict(**d)


def _sha256(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def _short(e: Exception) -> str:
    text = str(e)
    m = re.search(r"\[Errno [-\d]+\] ([^'\")]+)", text)
    if m:
        return m.group(1).strip()
    return text[:200]
