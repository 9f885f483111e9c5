"""Parse, validate and sanitize uploaded kubeconfigs (pure: no Django, no network, no files, no commands).

A kubeconfig is untrusted input that the dnsaudit worker will later use to connect. The Kubernetes
client libraries act on several fields by *running a command* (``exec``, some ``auth-provider``\\ s) or by
*reading a local file* (``tokenFile``, ``client-certificate``, ``client-key``, ``certificate-authority``).
On our machines either would let an uploader run code or read our files, so those fields are refused
here, before anything else sees them. What survives is a :class:`~dnsaudit.core.model.KubeContext` built
from *data* fields only, and :func:`minimal_kubeconfig` rebuilds a one-context kubeconfig from it; that
rebuilt text (never the upload) is what gets stored and later handed to the client library.

Decisions beyond "refuse commands and paths":

- YAML anchors and aliases are refused outright (kubectl never writes them; they are how alias bombs
  expand a small file into gigabytes), and so are nesting deeper than :data:`MAX_DEPTH` and more than
  :data:`MAX_NODES` values (a CPU bomb needs no alias).
- ``proxy-url`` is refused: the worker connects directly; a proxy would take the bearer token and every
  response through a host of the uploader's choosing. Set ``HTTPS_PROXY`` on the worker if one is needed.
- Impersonation (``as``, ``as-uid``, ``as-groups``, ``as-user-extra``) is refused: the Python client
  ignores these fields, so dnsaudit would silently scan with the base identity's permissions.
- ``insecure-skip-tls-verify: true`` is accepted with a warning; together with a CA it is refused
  (kubectl refuses it too). A plain ``http://`` server is accepted with a warning (token sent in clear).
- Only the entries a chosen context uses are validated: a kubeconfig holding an ``exec`` user for one
  cluster and a token user for another can still import the second context.

Every message is user-facing, names the context/user/cluster and field at fault, and never contains a
secret value (tokens, passwords, keys, certificates are never quoted).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import yaml
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from dnsaudit.core.model import KubeContext

DEFAULT_MAX_BYTES = 1_048_576
#: Deepest mapping/list nesting accepted. Real kubeconfigs nest about 5 levels (extensions a bit more).
MAX_DEPTH = 32
#: Most YAML nodes (scalars, lists, mappings) accepted. A kubeconfig with 100 contexts has ~3,000; 1 MB of
#: ``[1,1,1,...]`` has 500,000 and takes the pure-Python composer ~20 s (a CPU bomb without aliases).
MAX_NODES = 20_000
#: A client certificate expiring sooner than this gets a warning.
EXPIRY_WARNING = timedelta(days=30)

#: User fields refused, with why and what to use instead (they run a command or read a local file...).
_USER_REFUSED = {
    "exec": "exec credential plugins run a command on the dnsaudit worker; use a token or client-certificate-data",
    "auth-provider": (
        "auth-provider plugins run commands or refresh credentials through outside services on the dnsaudit "
        "worker; use a token (e.g. a ServiceAccount token) or client-certificate-data"
    ),
    "tokenFile": "tokenFile reads a local file on the dnsaudit worker; put the token itself in token",
    "client-certificate": (
        "client-certificate is a file path read on the dnsaudit worker; embed the certificate as "
        "client-certificate-data (kubectl config view --raw --flatten does this)"
    ),
    "client-key": (
        "client-key is a file path read on the dnsaudit worker; embed the key as client-key-data "
        "(kubectl config view --raw --flatten does this)"
    ),
    "as": "impersonation is not supported (the scan would run as the base user, not the impersonated one)",
    "as-uid": "impersonation is not supported (the scan would run as the base user, not the impersonated one)",
    "as-groups": "impersonation is not supported (the scan would run as the base user, not the impersonated one)",
    "as-user-extra": "impersonation is not supported (the scan would run as the base user, not the impersonated one)",
}
_USER_KNOWN = {"token", "client-certificate-data", "client-key-data", "username", "password", "extensions"}
_CLUSTER_REFUSED = {
    "certificate-authority": (
        "certificate-authority is a file path read on the dnsaudit worker; embed the CA as "
        "certificate-authority-data (kubectl config view --raw --flatten does this)"
    ),
    "proxy-url": (
        "proxy-url is not supported: the dnsaudit worker connects to the API server directly "
        "(set HTTPS_PROXY on the worker if it needs a proxy); remove proxy-url"
    ),
}
_CLUSTER_KNOWN = {
    "server",
    "certificate-authority-data",
    "insecure-skip-tls-verify",
    "tls-server-name",
    "disable-compression",
    "extensions",
}


class KubeconfigError(ValueError):
    """A kubeconfig was refused. ``str(error)`` is a complete, user-facing, secret-free sentence."""


# --- YAML -----------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases (alias bombs, merge keys) and deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise KubeconfigError(
                f"YAML anchors and aliases (&/*) are not accepted in a kubeconfig (line {line}); "
                "write the values out (kubectl config view --raw --flatten does this)"
            )
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise KubeconfigError(
                f"the YAML has more than {MAX_NODES} values (line {line}); not a kubeconfig"
            )
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise KubeconfigError(
                f"the YAML is nested more than {MAX_DEPTH} levels deep (line {line}); not a kubeconfig"
            )
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _load_yaml(text: str) -> Any:
    try:
        # The reader checks the characters here already (ReaderError: a control character).
        loader = _StrictLoader(text)
    except yaml.YAMLError:
        raise KubeconfigError("not valid YAML: it holds characters YAML does not allow") from None
    try:
        return loader.get_single_data()
    except KubeconfigError:
        raise
    except yaml.MarkedYAMLError as exc:
        # Never quote the YAML snippet (str(exc) does): the offending line may hold a token.
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise KubeconfigError(f"not valid YAML{where}: {problem}") from None
    except yaml.YAMLError:
        raise KubeconfigError("not valid YAML") from None
    except RecursionError:
        raise KubeconfigError("the YAML is nested too deeply; not a kubeconfig") from None
    finally:
        loader.dispose()


# --- the parsed file ------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Kubeconfig:
    """A structurally valid kubeconfig. Entries are validated lazily, per context, by :meth:`context`.

    ``contexts`` lists context names in file order; ``current_context`` is the file's
    ``current-context`` (None when unset or empty).
    """

    contexts: list[str]
    current_context: str | None
    _contexts: dict[str, dict] = field(default_factory=dict)
    _clusters: dict[str, dict] = field(default_factory=dict)
    _users: dict[str, dict] = field(default_factory=dict)

    def __repr__(self) -> str:  # never show entries: they hold tokens and keys
        return f"Kubeconfig(contexts={self.contexts!r}, current_context={self.current_context!r})"

    def default_context(self) -> str:
        """The context to use when none is named: ``current-context``, else the only context."""
        if self.current_context:
            if self.current_context not in self._contexts:
                raise KubeconfigError(
                    f"current-context {self.current_context!r} does not exist; "
                    f"pick one with --context ({_names(self.contexts)})"
                )
            return self.current_context
        if len(self.contexts) == 1:
            return self.contexts[0]
        raise KubeconfigError(
            f"the kubeconfig has {len(self.contexts)} contexts and no current-context; "
            f"pick one with --context or use --all-contexts ({_names(self.contexts)})"
        )

    def context(self, name: str) -> KubeContext:
        """Validate context ``name`` and the cluster and user it points at; raise KubeconfigError if refused."""
        return self._resolve(name)[0]

    def warnings_for(self, name: str) -> list[str]:
        """Warnings for context ``name`` (insecure TLS, plain HTTP, ignored fields...). Validates like context()."""
        return self._resolve(name)[1]

    def _resolve(self, name: str) -> tuple[KubeContext, list[str]]:
        if name not in self._contexts:
            raise KubeconfigError(f"no context named {name!r} in the kubeconfig ({_names(self.contexts)})")
        entry = self._contexts[name]
        where = f"context {name!r}"
        warnings: list[str] = []
        cluster_name = entry.get("cluster")
        if not isinstance(cluster_name, str) or not cluster_name:
            raise KubeconfigError(f"{where} names no cluster (context.cluster is missing)")
        if cluster_name not in self._clusters:
            raise KubeconfigError(
                f"{where} points at cluster {cluster_name!r}, which is not in the kubeconfig"
            )
        user_name = entry.get("user") or ""
        if not isinstance(user_name, str):
            raise KubeconfigError(f"{where}: context.user must be a string")
        if user_name and user_name not in self._users:
            raise KubeconfigError(f"{where} points at user {user_name!r}, which is not in the kubeconfig")
        namespace = entry.get("namespace") or None
        if namespace is not None and not isinstance(namespace, str):
            raise KubeconfigError(f"{where}: context.namespace must be a string")

        cluster = _validate_cluster(cluster_name, self._clusters[cluster_name], warnings)
        user = _validate_user(user_name, self._users.get(user_name, {}), warnings) if user_name else {}
        if not user_name:
            warnings.append(f"{where} has no user: dnsaudit connects anonymously")
        ctx = KubeContext(
            name=name,
            cluster=cluster_name,
            user=user_name,
            server=cluster["server"],
            namespace=namespace,
            ca_data=cluster.get("ca_data"),
            client_cert_data=user.get("client_cert_data"),
            client_key_data=user.get("client_key_data"),
            token=user.get("token"),
            username=user.get("username"),
            password=user.get("password"),
            insecure_skip_tls_verify=cluster.get("insecure", False),
            tls_server_name=cluster.get("tls_server_name"),
        )
        if ctx.auth_kind == "anonymous" and user_name:
            warnings.append(f"user {user_name!r} carries no credentials: dnsaudit connects anonymously")
        return ctx, warnings


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:10])
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return f"contexts: {shown}{more}" if names else "it has no contexts"


def parse_kubeconfig(data: bytes | str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Kubeconfig:
    """Parse ``data`` into a :class:`Kubeconfig`, checking size, encoding, YAML and overall structure.

    Per-context checks (refused fields, certificates, server URL) happen in :meth:`Kubeconfig.context`.
    Raises :class:`KubeconfigError` with a specific message; never runs anything or opens any file.
    """
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise KubeconfigError(f"the kubeconfig is {size} bytes, over the {max_bytes}-byte limit")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise KubeconfigError(
                f"the kubeconfig is not UTF-8 text (invalid byte at offset {exc.start}); upload the YAML file itself"
            ) from None
    else:
        text = data
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        raise KubeconfigError("the kubeconfig contains NUL bytes: it looks like a binary file, not YAML")
    if not text.strip():
        raise KubeconfigError("the kubeconfig is empty")

    doc = _load_yaml(text)
    if not isinstance(doc, dict):
        raise KubeconfigError(
            f"not a kubeconfig: the YAML is a {_type_name(doc)}, expected a mapping (kind: Config)"
        )
    kind = doc.get("kind")
    if kind is not None and kind != "Config":
        raise KubeconfigError(f"not a kubeconfig: kind is {_short(kind)}, expected Config")
    api_version = doc.get("apiVersion")
    if api_version is not None and api_version != "v1":
        raise KubeconfigError(f"not a kubeconfig: apiVersion is {_short(api_version)}, expected v1")
    if "contexts" not in doc and "clusters" not in doc:
        raise KubeconfigError(
            "not a kubeconfig: no contexts and no clusters (expected kind: Config with contexts)"
        )

    contexts = _named_list(doc, "contexts", "context")
    clusters = _named_list(doc, "clusters", "cluster")
    users = _named_list(doc, "users", "user")
    if not contexts:
        raise KubeconfigError("the kubeconfig has no contexts")
    current = doc.get("current-context") or None
    if current is not None and not isinstance(current, str):
        raise KubeconfigError("current-context must be a string")
    return Kubeconfig(
        contexts=list(contexts), current_context=current, _contexts=contexts, _clusters=clusters, _users=users
    )


def _named_list(doc: dict, key: str, inner: str) -> dict[str, dict]:
    """``[{name: n, <inner>: {...}}]`` -> ``{n: {...}}``, refusing malformed or duplicate entries."""
    items = doc.get(key)
    if items is None:
        return {}
    if not isinstance(items, list):
        raise KubeconfigError(f"not a kubeconfig: {key} must be a list, found a {_type_name(items)}")
    out: dict[str, dict] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise KubeconfigError(f"{key}[{i}] must be a mapping with name and {inner}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise KubeconfigError(f"{key}[{i}] has no name")
        body = item.get(inner)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise KubeconfigError(f"{inner} {name!r}: {inner} must be a mapping")
        if name in out:
            raise KubeconfigError(f"{inner} {name!r} appears twice in {key}; names must be unique")
        out[name] = body
    return out


def _type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- per-entry validation -------------------------------------------------------------------------------


def _validate_cluster(name: str, body: dict, warnings: list[str]) -> dict:
    where = f"cluster {name!r}"
    for key, why in _CLUSTER_REFUSED.items():
        if key in body and body[key] not in (None, ""):
            raise KubeconfigError(f"refused: {where} sets {key}: {why}")
    for key in sorted(set(body) - _CLUSTER_KNOWN - set(_CLUSTER_REFUSED)):
        warnings.append(f"{where}: field {key!r} is not used by dnsaudit and was dropped")

    server = body.get("server")
    if not server:
        raise KubeconfigError(f"{where} has no server (cluster.server is missing)")
    if not isinstance(server, str):
        raise KubeconfigError(f"{where}: server must be a URL string")
    server = server.strip()
    try:
        parts = urlsplit(server)
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        raise KubeconfigError(f"{where}: server is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise KubeconfigError(
            f"{where}: server must be an https:// (or http://) URL with a host, e.g. https://10.0.0.1:6443"
        )
    if parts.username is not None or parts.password is not None:
        raise KubeconfigError(
            f"{where}: server URL must not carry credentials (user:password@); use the user entry"
        )
    if parts.query or parts.fragment:
        raise KubeconfigError(f"{where}: server URL must not have a query string or fragment")
    del port
    out: dict[str, Any] = {"server": server}
    if parts.scheme == "http":
        warnings.append(
            f"{where}: server uses plain http://, so credentials and data cross the network unencrypted"
        )

    insecure = body.get("insecure-skip-tls-verify", False)
    if insecure is None:
        insecure = False
    if not isinstance(insecure, bool):
        raise KubeconfigError(f"{where}: insecure-skip-tls-verify must be true or false")
    ca_b64 = body.get("certificate-authority-data")
    if ca_b64:
        if insecure:
            raise KubeconfigError(
                f"{where} sets both certificate-authority-data and insecure-skip-tls-verify: true; "
                "keep only one (kubectl refuses this too)"
            )
        pem = _b64(ca_b64, f"{where}: certificate-authority-data")
        certs = _pem_certs(pem, f"{where}: certificate-authority-data")
        out["ca_data"] = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    elif parts.scheme == "https" and not insecure:
        warnings.append(
            f"{where} has no certificate-authority-data: the server certificate is checked against the "
            "system's trusted CAs"
        )
    if insecure:
        out["insecure"] = True
        warnings.append(
            f"{where} sets insecure-skip-tls-verify: the server certificate is NOT verified, so anyone on the "
            "path can impersonate the API server and capture the credentials"
        )
    tls_name = body.get("tls-server-name")
    if tls_name:
        if not isinstance(tls_name, str):
            raise KubeconfigError(f"{where}: tls-server-name must be a string")
        out["tls_server_name"] = tls_name
    return out


_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")


def _validate_user(name: str, body: dict, warnings: list[str]) -> dict:
    where = f"user {name!r}"
    for key, why in _USER_REFUSED.items():
        if key in body and body[key] not in (None, "", [], {}):
            raise KubeconfigError(f"refused: {where} sets {key}: {why}")
    for key in sorted(set(body) - _USER_KNOWN - set(_USER_REFUSED)):
        warnings.append(f"{where}: field {key!r} is not used by dnsaudit and was dropped")
    out: dict[str, Any] = {}

    token = body.get("token")
    if token not in (None, ""):
        # A token goes into an HTTP header: refuse anything that could split or corrupt it.
        if not isinstance(token, str) or not _TOKEN_RE.match(token.strip()):
            raise KubeconfigError(
                f"{where}: token must be a single line of printable characters without spaces"
            )
        out["token"] = token.strip()

    username, password = body.get("username"), body.get("password")
    if username not in (None, "") or password not in (None, ""):
        if not isinstance(username, str) or not username or not isinstance(password, str):
            raise KubeconfigError(f"{where}: username and password must both be strings")
        if "token" in out:
            raise KubeconfigError(
                f"{where} sets both a token and username/password; keep only one (kubectl refuses this too)"
            )
        out["username"], out["password"] = username, password

    cert_b64, key_b64 = body.get("client-certificate-data"), body.get("client-key-data")
    if bool(cert_b64) != bool(key_b64):
        missing = "client-key-data" if cert_b64 else "client-certificate-data"
        raise KubeconfigError(
            f"{where}: {missing} is missing (a client certificate needs both the certificate and its key)"
        )
    if cert_b64:
        cert_pem = _b64(cert_b64, f"{where}: client-certificate-data")
        certs = _pem_certs(cert_pem, f"{where}: client-certificate-data")
        key_pem = _b64(key_b64, f"{where}: client-key-data")
        key = _pem_key(key_pem, f"{where}: client-key-data")
        if _public_der(certs[0].public_key()) != _public_der(key.public_key()):
            raise KubeconfigError(f"{where}: client-key-data does not belong to client-certificate-data")
        out["client_cert_data"] = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
        out["client_key_data"] = key_pem.strip() + b"\n"
        not_after = certs[0].not_valid_after_utc
        now = datetime.now(UTC)
        if not_after <= now:
            warnings.append(f"{where}: the client certificate expired on {not_after:%Y-%m-%d}")
        elif not_after - now < EXPIRY_WARNING:
            warnings.append(f"{where}: the client certificate expires on {not_after:%Y-%m-%d}")
    return out


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise KubeconfigError(f"{where} must be a base64 string")
    compact = re.sub(r"\s+", "", value)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigError(f"{where} is not valid base64") from None


def _pem_certs(pem: bytes, where: str) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise KubeconfigError(
            f"{where} does not decode to a PEM certificate (expected -----BEGIN CERTIFICATE-----)"
        )
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise KubeconfigError(f"{where} holds a PEM block that is not a valid X.509 certificate") from None
    if not certs:
        raise KubeconfigError(f"{where} holds no certificate")
    return certs


def _pem_key(pem: bytes, where: str) -> PrivateKeyTypes:
    if b"PRIVATE KEY-----" not in pem:
        raise KubeconfigError(f"{where} does not decode to a PEM private key")
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise KubeconfigError(f"{where} is an encrypted private key; dnsaudit needs it unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KubeconfigError(f"{where} is not a valid PEM private key") from None


def _public_der(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- sanitized views and the stored form ----------------------------------------------------------------


def summarize(ctx: KubeContext, warnings: list[str] | None = None) -> dict:
    """A JSON-safe, secret-free description of ``ctx`` for pages, logs and exports.

    Keys: server, context, cluster, user, namespace, auth_kind, ca_fingerprint_sha256, ca_subject,
    client_cert_subject, client_cert_not_after (ISO 8601), client_cert_expired, insecure_skip_tls_verify,
    tls_server_name, warnings. Certificates are public data; tokens, passwords and keys never appear.
    """
    summary: dict[str, Any] = {
        "server": ctx.server,
        "context": ctx.name,
        "cluster": ctx.cluster,
        "user": ctx.user,
        "namespace": ctx.namespace,
        "auth_kind": ctx.auth_kind,
        "ca_fingerprint_sha256": None,
        "ca_subject": None,
        "client_cert_subject": None,
        "client_cert_not_after": None,
        "client_cert_expired": None,
        "insecure_skip_tls_verify": ctx.insecure_skip_tls_verify,
        "tls_server_name": ctx.tls_server_name,
        "warnings": list(warnings or []),
    }
    if ctx.ca_data:
        ca = x509.load_pem_x509_certificates(ctx.ca_data)[0]
        summary["ca_fingerprint_sha256"] = _fingerprint(ca)
        summary["ca_subject"] = ca.subject.rfc4514_string()
    if ctx.client_cert_data:
        cert = x509.load_pem_x509_certificates(ctx.client_cert_data)[0]
        summary["client_cert_subject"] = cert.subject.rfc4514_string()
        summary["client_cert_not_after"] = cert.not_valid_after_utc.isoformat()
        summary["client_cert_expired"] = cert.not_valid_after_utc <= datetime.now(UTC)
    return summary


def _fingerprint(cert: x509.Certificate) -> str:
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def minimal_kubeconfig(ctx: KubeContext) -> str:
    """A one-context kubeconfig YAML rebuilt from ``ctx``'s data fields only (the form that is stored).

    ``parse_kubeconfig(minimal_kubeconfig(ctx)).context(ctx.name) == ctx``.
    """
    cluster: dict[str, Any] = {"server": ctx.server}
    if ctx.ca_data:
        cluster["certificate-authority-data"] = base64.b64encode(ctx.ca_data).decode()
    if ctx.insecure_skip_tls_verify:
        cluster["insecure-skip-tls-verify"] = True
    if ctx.tls_server_name:
        cluster["tls-server-name"] = ctx.tls_server_name
    user: dict[str, Any] = {}
    if ctx.token:
        user["token"] = ctx.token
    if ctx.username:
        user["username"] = ctx.username
        user["password"] = ctx.password or ""
    if ctx.client_cert_data and ctx.client_key_data:
        user["client-certificate-data"] = base64.b64encode(ctx.client_cert_data).decode()
        user["client-key-data"] = base64.b64encode(ctx.client_key_data).decode()
    context: dict[str, Any] = {"cluster": ctx.cluster, "user": ctx.user}
    if ctx.namespace:
        context["namespace"] = ctx.namespace
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": ctx.cluster, "cluster": cluster}],
        "contexts": [{"name": ctx.name, "context": context}],
        "current-context": ctx.name,
        "preferences": {},
        "users": [{"name": ctx.user, "user": user}] if ctx.user else [],
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
