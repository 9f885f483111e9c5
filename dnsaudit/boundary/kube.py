"""The Kubernetes boundary: the only module that imports the official ``kubernetes`` client.

Contract:

* A ``KubeClient`` is built from a validated ``KubeContext`` (data only). The client ``Configuration``
  is assembled here field by field; ``load_kube_config*`` is never called, so nothing can run an exec
  plugin or read a file named by a kubeconfig. PEM data the client needs as files (client certificate
  and key) is written to private temporary files that ``close()`` removes.
* Everything returns raw JSON dicts (``_preload_content=False`` + ``orjson.loads``): fast at tens of
  thousands of objects and immune to model-class strictness (T1) and ``str(dict)`` bodies (T3). orjson
  decodes a page about twice as fast as ``json`` and is stricter: NaN, Infinity, lone UTF-16
  surrogates and a byte-order mark are refused as not JSON, and integers past 64 bits are decoded as
  floats (no API server sends any of them).
* Every failure is a ``KubeError`` with ``transient`` (worth retrying later: network, timeouts, 5xx,
  429, 410 after the one restart) or not (401, 403, 404, TLS, bad input).
* Lists page with ``limit`` + ``continue`` until the token is empty (zero-item pages included, T6); a
  410 Expired restarts the whole list once (items already yielded may be yielded again: callers that
  need exactness key objects by uid).
* An API server is someone else's, and may be hostile (``KubeLimits``): every response body is streamed
  and counted (``max_response_bytes``; error bodies are cut at ``ERROR_BODY_MAX_BYTES``), within
  ``response_seconds`` for the whole response (a server that trickles a byte at a time cannot hold a
  thread); ``Accept-Encoding: identity`` is asked, and a body encoded anyway is decoded here with the same
  cap on the *decoded* bytes (urllib3 never decompresses); a ``continue`` token seen twice in one list is a
  loop, and a list has at most ``max_list_pages`` pages and ``max_list_items`` items. Each refusal is a
  ``KubeError`` (``TooLarge``, ``InvalidResponse``; not transient). ``page_check`` (the scan's deadline)
  is called before every request and while a body streams in.
* ``exec_read`` runs a command in a container over the WebSocket exec API (``kubernetes.stream``, T9)
  on its own ``ApiClient`` (``stream()`` swaps ``call_api`` on the client it is given, which must not
  race other requests) and returns an ``ExecResult``; the exit code is read from the error channel's
  Status by this module, not through the client's ``returncode`` (which raises on InternalError).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import ssl
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import orjson
import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from dnsaudit.core import permissions
from dnsaudit.core.model import KubeContext

#: Most output an exec'd command may send (stdout and stderr together): resolv.conf and ``ls /lib`` are tiny.
EXEC_MAX_BYTES = 1 << 20

#: How much of an error (non-2xx) body is read: a Status is a few hundred bytes; the rest is not read.
ERROR_BODY_MAX_BYTES = 64 << 10
#: The longest ``continue`` token accepted (real ones are a few hundred bytes of base64).
CONTINUE_MAX_CHARS = 16 << 10
#: At most one JSON object or array per this many body bytes: a page of real objects has one per ~50
#: bytes, a hostile ``[{},{},…]`` one per 3 (and parsed, every ``{}`` is a 64-byte dict).
JSON_BYTES_PER_CONTAINER = 16
_READ_CHUNK = 64 << 10


@dataclass(frozen=True)
class KubeLimits:
    """What one API server may make a client read (the settings ``DNSAUDIT_KUBE_*`` in a scan).

    ``max_response_bytes``: the most bytes of one response body, decoded (a page of 500 real pods is
    2–10 MB); ``response_seconds``: the most time one response may take, headers to last byte;
    ``max_list_pages`` / ``max_list_items``: the most pages / items one list may have.
    """

    max_response_bytes: int = 32 << 20
    response_seconds: float = 120.0
    max_list_pages: int = 2000
    max_list_items: int = 500_000


class KubeError(Exception):
    """A Kubernetes API failure in words a user understands.

    ``reason``: ``Forbidden``, ``Unauthorized``, ``NotFound``, ``Expired``, ``Unreachable``, ``Timeout``,
    ``TLS``, ``ServerError``, ``TooManyRequests``, ``BadRequest``, ``InvalidResponse``.
    ``status`` is the HTTP status when the server answered, else None.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status: int | None = None,
        reason: str = "",
        resource: str | None = None,
        namespace: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.status = status
        self.reason = reason
        self.resource = resource
        self.namespace = namespace

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ExecResult:
    """What a command run with ``exec_read`` printed and how it ended.

    ``exit_code`` is the process's exit status; when the runtime could not start the executable (it is
    not in the image: distroless) it is 127, as a shell reports "not found", whichever way the runtime
    said so (containerd: an InternalError Status; dockershim/cri-dockerd: the OCI message on stdout and a
    non-zero exit). ``message`` is the final Status message when the command did not succeed.
    """

    stdout: str
    stderr: str
    exit_code: int
    message: str = ""
    protocol: str | None = None

    @property
    def executable_missing(self) -> bool:
        """True when the command's executable does not exist in the container."""
        return (
            self.exit_code in (126, 127)
            and _MISSING_EXE.search("\n".join((self.message, self.stdout, self.stderr))) is not None
        )


#: How runtimes and shells say the executable is not there.
_MISSING_EXE = re.compile(
    r"executable file not found|no such file or directory: unknown|: not found$|command not found",
    re.IGNORECASE | re.MULTILINE,
)
_HANDSHAKE = re.compile(r"Handshake status (\d{3})")


@dataclass(frozen=True)
class _ListCall:
    api: str  # "core" | "apps" | "batch"
    all_ns: str | None  # method name listing across namespaces (None for cluster-scoped)
    namespaced: str | None  # method name listing in one namespace
    cluster: str | None = None  # method for cluster-scoped resources
    group: str = ""


_LISTS: dict[str, _ListCall] = {
    "pods": _ListCall("core", "list_pod_for_all_namespaces", "list_namespaced_pod"),
    "configmaps": _ListCall("core", "list_config_map_for_all_namespaces", "list_namespaced_config_map"),
    "secrets": _ListCall("core", "list_secret_for_all_namespaces", "list_namespaced_secret"),
    "serviceaccounts": _ListCall(
        "core", "list_service_account_for_all_namespaces", "list_namespaced_service_account"
    ),
    "services": _ListCall("core", "list_service_for_all_namespaces", "list_namespaced_service"),
    "nodes": _ListCall("core", None, None, "list_node"),
    "namespaces": _ListCall("core", None, None, "list_namespace"),
    "deployments": _ListCall(
        "apps", "list_deployment_for_all_namespaces", "list_namespaced_deployment", group="apps"
    ),
    "replicasets": _ListCall(
        "apps", "list_replica_set_for_all_namespaces", "list_namespaced_replica_set", group="apps"
    ),
    "statefulsets": _ListCall(
        "apps", "list_stateful_set_for_all_namespaces", "list_namespaced_stateful_set", group="apps"
    ),
    "daemonsets": _ListCall(
        "apps", "list_daemon_set_for_all_namespaces", "list_namespaced_daemon_set", group="apps"
    ),
    "jobs": _ListCall("batch", "list_job_for_all_namespaces", "list_namespaced_job", group="batch"),
    "cronjobs": _ListCall(
        "batch", "list_cron_job_for_all_namespaces", "list_namespaced_cron_job", group="batch"
    ),
}

#: What ``self_test`` checks, derived from the table of every permission a scan uses (the same table
#: ``manage.py reader-rbac`` prints the ClusterRole from): (fact, verb, group, resource, subresource,
#: namespace, what the audit loses, resource name).
SELF_TEST_CHECKS = permissions.SELF_TEST_CHECKS


class KubeClient:
    """A connection to one cluster. Use as a context manager or call ``close()``."""

    def __init__(
        self,
        ctx: KubeContext,
        *,
        timeout: float = 15.0,
        limits: KubeLimits | None = None,
        page_check: Callable[[], None] | None = None,
    ) -> None:
        self.context = ctx
        self.timeout = timeout
        self.limits = limits or KubeLimits()
        #: Called before every request and between the chunks of a body (the scan's deadline: it raises).
        self.page_check = page_check
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        cfg = k8s.Configuration()
        cfg.host = ctx.server.rstrip("/")
        cfg.verify_ssl = not ctx.insecure_skip_tls_verify
        if ctx.insecure_skip_tls_verify:
            cfg.assert_hostname = False
            # The user accepted this with a visible warning at import; don't repeat it per request in logs.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        if ctx.ca_data and not ctx.insecure_skip_tls_verify:
            cfg.ca_cert_data = ctx.ca_data.decode() if isinstance(ctx.ca_data, bytes) else ctx.ca_data
        if ctx.tls_server_name:
            cfg.tls_server_name = ctx.tls_server_name
        if ctx.client_cert_data and ctx.client_key_data:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="dnsaudit-kube-")
            cfg.cert_file = self._write("client.crt", ctx.client_cert_data)
            cfg.key_file = self._write("client.key", ctx.client_key_data)
        if ctx.token:
            cfg.api_key = {"authorization": "Bearer " + ctx.token}
        elif ctx.username is not None:
            basic = base64.b64encode(f"{ctx.username}:{ctx.password or ''}".encode()).decode()
            cfg.api_key = {"authorization": "Basic " + basic}
        # No urllib3 retries: failures surface at once and the scan decides (T8). Retry(0) still wraps
        # errors in MaxRetryError, which _map_exception unwraps.
        cfg.retries = urllib3.Retry(total=0, connect=0, read=0, redirect=0, status=0, raise_on_status=False)
        cfg.client_go_retries = False
        cfg.proxy = None
        cfg.connection_pool_maxsize = 8
        self._cfg = cfg
        self._api = k8s.ApiClient(cfg)
        self._bound_responses(self._api)
        # exec runs on its own ApiClient (see the module docstring), one at a time.
        self._exec_api: k8s.ApiClient | None = None
        self._exec_lock = threading.Lock()
        self.core = k8s.CoreV1Api(self._api)
        self.apps = k8s.AppsV1Api(self._api)
        self.batch = k8s.BatchV1Api(self._api)

    @classmethod
    def from_context(
        cls,
        ctx: KubeContext,
        *,
        timeout: float = 15.0,
        limits: KubeLimits | None = None,
        page_check: Callable[[], None] | None = None,
    ) -> KubeClient:
        return cls(ctx, timeout=timeout, limits=limits, page_check=page_check)

    def _write(self, name: str, data: bytes | str) -> str:
        if self._tmpdir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="dnsaudit-kube-")
        path = os.path.join(self._tmpdir.name, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data if isinstance(data, bytes) else data.encode())
        return path

    def close(self) -> None:
        """Close the connection pool and delete the temporary key material."""
        with contextlib.suppress(Exception):
            self._api.close()
        if self._exec_api is not None:
            with contextlib.suppress(Exception):
                self._exec_api.close()
            self._exec_api = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------------------
    @property
    def _timeout(self) -> tuple[float, float]:
        return (min(self.timeout, 10.0), self.timeout)

    def _bound_responses(self, api: k8s.ApiClient) -> None:
        """Ask for unencoded bodies, and read error bodies (which the client reads itself) bounded.

        The generated client reads a non-2xx body whole (``RESTResponse.read``) before raising: here it is
        read first, at most ``ERROR_BODY_MAX_BYTES``, so that read finds it done. 2xx bodies are left
        unread for ``_call``, which streams them under ``max_response_bytes``.
        """
        rest = api.rest_client
        original = rest.request

        def request(method, url, headers=None, *args, **kw):
            headers = dict(headers or {})
            headers["Accept-Encoding"] = "identity"
            resp = original(method, url, headers, *args, **kw)
            if not 200 <= resp.status <= 299:
                resp.data = bytes(self._read_body(
                    resp.response, ERROR_BODY_MAX_BYTES, time.monotonic() + self.limits.response_seconds,
                    truncate=True,
                ))  # fmt: skip
            return resp

        rest.request = request

    def _check(self) -> None:
        if self.page_check is not None:
            self.page_check()

    def _read_body(
        self,
        raw,
        limit: int,
        deadline: float,
        *,
        truncate: bool = False,
        resource: str | None = None,
        namespace: str | None = None,
    ) -> bytearray:
        """Stream ``raw`` (an unread urllib3 response) into bytes: at most ``limit`` decoded bytes (past it:
        ``TooLarge``, or the first ``limit`` bytes with ``truncate``), before ``deadline`` (``Timeout``).

        A gzip or deflate body is decoded here, the cap counting decoded bytes; other encodings are refused.
        On any refusal the connection is closed, not returned to the pool with unread bytes on it.
        """
        server = self.context.server
        what = _where(resource, namespace) or " a response"
        headers = getattr(raw, "headers", None) or {}
        encoding = str(headers.get("Content-Encoding") or "identity").strip().lower()
        done = False
        try:
            if encoding in ("identity", ""):
                decoder = None
            elif encoding in ("gzip", "x-gzip", "deflate"):
                decoder = zlib.decompressobj(wbits=47)  # zlib or gzip header, detected
            else:
                raise KubeError(
                    f"The API server at {server} sent{what} with Content-Encoding {_short(encoding, 40)!r}, "
                    "which dnsaudit does not read (it asks for identity).",
                    transient=False,
                    reason="InvalidResponse",
                    resource=resource,
                    namespace=namespace,
                )
            declared = str(headers.get("Content-Length") or "")
            if decoder is None and not truncate and declared.isdigit() and int(declared) > limit:
                raise self._too_large(limit, what, resource, namespace)
            buf = bytearray()
            raw_bytes = 0
            while True:
                self._check()
                if time.monotonic() > deadline:
                    raise KubeError(
                        f"The API server at {server} took more than {self.limits.response_seconds:g} s to send"
                        f"{what}; stopped.",
                        transient=True,
                        reason="Timeout",
                        resource=resource,
                        namespace=namespace,
                    )
                chunk = raw.read1(_READ_CHUNK, decode_content=False)
                if not chunk:
                    break
                raw_bytes += len(chunk)
                if decoder is not None:
                    if decoder.eof:  # trailing bytes after the stream: not part of the body
                        break
                    pending = chunk
                    while pending and len(buf) <= limit:  # decoded 1 MiB at a time: never 2x the cap
                        try:
                            buf += decoder.decompress(pending, min(limit + 1 - len(buf), 1 << 20))
                        except zlib.error as exc:
                            raise KubeError(
                                f"The API server at {server} sent{what} with a corrupt {encoding} encoding.",
                                transient=False,
                                reason="InvalidResponse",
                                resource=resource,
                                namespace=namespace,
                            ) from exc
                        pending = decoder.unconsumed_tail
                else:
                    buf += chunk
                if len(buf) > limit or raw_bytes > limit:
                    if truncate:
                        del buf[limit:]
                        return buf
                    raise self._too_large(limit, what, resource, namespace)
            done = True
            return buf  # not copied: orjson.loads reads a bytearray
        finally:
            if not done:
                with contextlib.suppress(Exception):
                    raw.close()  # unread bytes are on the connection: never reuse it
            with contextlib.suppress(Exception):
                raw.release_conn()

    def _too_large(self, limit: int, what: str, resource: str | None, namespace: str | None) -> KubeError:
        return KubeError(
            f"The API server at {self.context.server} sent more than {_size(limit)} for{what}; the response "
            "was refused (DNSAUDIT_KUBE_MAX_RESPONSE_BYTES).",
            transient=False,
            reason="TooLarge",
            resource=resource,
            namespace=namespace,
        )

    def _call(
        self, fn: Callable, *args, resource: str | None = None, namespace: str | None = None, **kw
    ) -> dict:
        """Call a generated method for raw JSON, its body bounded; map every failure to ``KubeError``."""
        self._check()
        deadline = time.monotonic() + self.limits.response_seconds
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self._timeout, **kw)
            data = self._read_body(
                resp, self.limits.max_response_bytes, deadline, resource=resource, namespace=namespace
            )
        except Exception as exc:  # mapped below; anything unknown (the scan's deadline) is re-raised
            mapped = _map_exception(exc, self.context.server, resource, namespace)
            if mapped is exc:
                raise
            raise mapped from exc
        not_json = KubeError(
            f"The API server at {self.context.server} sent a response that is not JSON for {resource or 'a request'}.",
            transient=True,
            reason="InvalidResponse",
            resource=resource,
            namespace=namespace,
        )
        if data.count(b"{") + data.count(b"[") > max(len(data) // JSON_BYTES_PER_CONTAINER, 1024):
            raise KubeError(
                f"The API server at {self.context.server} sent a response for {resource or 'a request'} made of "
                "far more JSON objects than real objects have; refused.",
                transient=False,
                reason="InvalidResponse",
                resource=resource,
                namespace=namespace,
            )
        try:
            out = orjson.loads(data)
        except ValueError as exc:  # orjson.JSONDecodeError (nesting past 1,024 levels included)
            raise not_json from exc
        if not isinstance(out, dict):  # every Kubernetes API response is an object
            raise not_json
        return out

    # -- lists --------------------------------------------------------------------------------------------------
    def iter_list(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        page_size: int = 500,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Iterator[dict]:
        """Yield every object of ``resource`` (raw dicts, list-item form: no kind/apiVersion for built-ins).

        Pages until the ``continue`` token is empty; a 410 Expired restarts the list once, then raises.
        """
        call = _LISTS.get(resource)
        if call is None:
            raise ValueError(f"unsupported resource {resource!r}; one of {sorted(_LISTS)}")
        api = {"core": self.core, "apps": self.apps, "batch": self.batch}[call.api]
        if call.cluster:
            fn, args = getattr(api, call.cluster), ()
        elif namespace is None:
            fn, args = getattr(api, call.all_ns), ()  # type: ignore[arg-type]
        else:
            fn, args = getattr(api, call.namespaced), (namespace,)  # type: ignore[arg-type]
        kw: dict = {"limit": page_size}
        if label_selector:
            kw["label_selector"] = label_selector
        if field_selector:
            kw["field_selector"] = field_selector
        restarts = 0
        token: str | None = None
        seen: set[bytes] = set()  # digests of the continue tokens of this list
        pages = items = 0
        limits = self.limits

        def refuse(why: str, reason: str = "InvalidResponse") -> KubeError:
            where = f" in namespace {namespace}" if namespace else ""
            return KubeError(
                f"Listing {resource}{where} on {self.context.server} was stopped: {why}.",
                transient=False,
                reason=reason,
                resource=resource,
                namespace=namespace,
            )

        while True:
            if pages >= limits.max_list_pages:
                raise refuse(
                    f"more than {limits.max_list_pages} pages (DNSAUDIT_KUBE_MAX_LIST_PAGES)", "TooLarge"
                )
            pages += 1
            try:
                page = self._call(
                    fn,
                    *args,
                    resource=resource,
                    namespace=namespace,
                    **kw,
                    **({"_continue": token} if token else {}),
                )
            except KubeError as err:
                if err.reason == "Expired" and token and restarts == 0:
                    restarts += 1
                    token = None
                    seen.clear()
                    continue
                raise
            if not isinstance(page, dict):
                raise refuse("a page is not a JSON object")
            page_items = page.get("items")
            if page_items is None:
                page_items = []
            if not isinstance(page_items, list) or not all(isinstance(i, dict) for i in page_items):
                raise refuse("a page's items are not a list of objects")
            items += len(page_items)
            if items > limits.max_list_items:
                raise refuse(
                    f"more than {limits.max_list_items} items (DNSAUDIT_KUBE_MAX_LIST_ITEMS)", "TooLarge"
                )
            meta = page.get("metadata")
            token = (meta.get("continue") if isinstance(meta, dict) else None) or None
            if token is not None:
                if not isinstance(token, str) or len(token) > CONTINUE_MAX_CHARS:
                    raise refuse("the continue token is not a string of at most 16 KiB")
                digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
                if digest in seen:
                    raise refuse("the server sent the same continue token twice (a loop)")
                seen.add(digest)
            yield from page_items
            if not token:
                return

    def list_all(self, resource: str, **kw) -> list[dict]:
        return list(self.iter_list(resource, **kw))

    # -- single reads --------------------------------------------------------------------------------------------
    def kubelet_configz(self, node: str) -> dict:
        """The node's ``kubeletconfig`` object from ``nodes/{node}/proxy/configz`` (raw JSON, T3)."""
        data = self._call(self.core.connect_get_node_proxy_with_path, node, "configz", resource="nodes/proxy")
        if not isinstance(data, dict) or not isinstance(data.get("kubeletconfig"), dict):
            raise KubeError(
                f"The kubelet on {node} answered configz without a kubeletconfig object.",
                transient=False,
                reason="InvalidResponse",
                resource="nodes/proxy",
            )
        return data["kubeletconfig"]

    def get_configmap(self, namespace: str, name: str) -> dict | None:
        """The ConfigMap, or None when it does not exist."""
        try:
            return self._call(
                self.core.read_namespaced_config_map,
                name,
                namespace,
                resource="configmaps",
                namespace=namespace,
            )
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    def read_secret(self, namespace: str, name: str) -> dict | None:
        """The Secret, or None when it does not exist (403 raises: the caller reports missing access)."""
        try:
            return self._call(
                self.core.read_namespaced_secret, name, namespace, resource="secrets", namespace=namespace
            )
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    # -- exec ------------------------------------------------------------------------------------------------
    def _exec_core(self) -> k8s.CoreV1Api:
        """A CoreV1Api on a private ApiClient whose Configuration the WebSocket transport can use.

        websocket-client verifies the server against ``ssl_ca_cert`` (a *file*) or certifi's bundle; it
        ignores ``ca_cert_data``. So the kubeconfig's CA goes to a private temporary file here.
        """
        _install_bounded_websocket()
        if self._exec_api is None:
            cfg = self._cfg
            if self.context.ca_data and not self.context.insecure_skip_tls_verify and not cfg.ssl_ca_cert:
                cfg.ssl_ca_cert = self._write("ca.crt", self.context.ca_data)
            self._exec_api = k8s.ApiClient(cfg)
        return k8s.CoreV1Api(self._exec_api)

    def exec_read(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        command: Sequence[str],
        *,
        timeout: float = 10.0,
        max_bytes: int = EXEC_MAX_BYTES,
    ) -> ExecResult:
        """Run ``command`` (argv, no shell unless you pass one) in ``pod``/``container``, without stdin,
        and return its output and exit code once it ends.

        The output is bounded: past ``max_bytes`` on stdout and stderr together, the session is closed and
        ``KubeError`` (``TooLarge``) raised — a container is someone else's, and may print without end.

        Raises ``KubeError``: ``Forbidden`` (no ``pods/exec`` permission: a WebSocket exec needs ``get``,
        and from 1.35 also ``create``), ``NotFound`` (no such pod), ``BadRequest`` (container not running
        or not in the pod), ``Timeout`` (no end within ``timeout`` seconds, transient), ``Unreachable``,
        ``TLS``, ``ExecFailed`` (the runtime failed for another reason than a missing executable).
        A missing executable is *not* an error: ``ExecResult.exit_code`` is 127 (see ``ExecResult``).
        """
        from kubernetes.stream import stream
        from websocket import WebSocketConnectionClosedException, WebSocketTimeoutException

        resource = "pods/exec"
        kw: dict = {"command": list(command), "stderr": True, "stdin": False, "stdout": True, "tty": False}
        if container:
            kw["container"] = container
        with self._exec_lock:
            core = self._exec_core()
            # One deadline for the connection, the upgrade and the command: the client library gives the
            # WebSocket handshake no timeout, so ``_BoundedWebSocket`` enforces it (see there).
            deadline = time.monotonic() + timeout
            bound = _EXEC_BOUND.current = _ExecBound(deadline)
            ws = None
            try:
                ws = stream(
                    core.connect_get_namespaced_pod_exec,
                    pod,
                    namespace,
                    _preload_content=False,
                    binary=True,
                    **kw,
                )
            except ApiException as exc:
                bound.cancel()
                if bound.expired:
                    raise KubeError(
                        f"The API server at {self.context.server} did not complete the exec upgrade for "
                        f"{namespace}/{pod} within {timeout:g} s.",
                        transient=True,
                        reason="Timeout",
                        resource=resource,
                        namespace=namespace,
                    ) from exc
                raise _map_handshake(exc, self.context.server, resource, namespace) from exc
            finally:
                _EXEC_BOUND.current = None
                if ws is None:
                    bound.cancel()
            timed_out = KubeError(
                f"The command in {namespace}/{pod} did not finish within {timeout:g} s.",
                transient=True,
                reason="Timeout",
                resource=resource,
                namespace=namespace,
            )
            try:
                with contextlib.suppress(OSError, AttributeError):
                    ws.sock.sock.settimeout(timeout)  # a frame that starts must finish in time
                while ws.is_open():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise timed_out
                    try:
                        ws.update(timeout=left)
                    except WebSocketConnectionClosedException:
                        if bound.expired:  # the deadline's timer shut the socket mid-frame
                            raise timed_out from None
                        break  # dropped without a close frame: judge by what arrived
                    except (WebSocketTimeoutException, TimeoutError) as exc:
                        raise timed_out from exc
                    except (OSError, ssl.SSLError) as exc:
                        if bound.expired:
                            raise timed_out from exc
                        raise KubeError(
                            f"The exec connection to {namespace}/{pod} failed: {_short(str(exc))}",
                            transient=True,
                            reason="Unreachable",
                            resource=resource,
                            namespace=namespace,
                        ) from exc
                    # The client buffers each channel until it is read (WSClient._channels).
                    buffered = sum(len(v) for v in (getattr(ws, "_channels", None) or {}).values())
                    if buffered > max_bytes:
                        raise KubeError(
                            f"The command in {namespace}/{pod} printed more than {max_bytes} bytes; stopped.",
                            transient=False,
                            reason="TooLarge",
                            resource=resource,
                            namespace=namespace,
                        )
                if bound.expired:  # closed by the deadline's timer: what arrived may be cut short
                    raise timed_out
                out = _text(ws.read_channel(1))
                err = _text(ws.read_channel(2))
                status_raw = _text(ws.read_channel(3))
                protocol = ws.subprotocol
            finally:
                bound.cancel()
                with contextlib.suppress(Exception):
                    ws.close(timeout=0)
                with contextlib.suppress(Exception):
                    ws.sock.shutdown()  # close() returns early once the server has closed: close the socket
        return _exec_result(out, err, status_raw, protocol, namespace, pod, resource)

    def server_version(self) -> dict:
        return self._call(k8s.VersionApi(self._api).get_code, resource="version")

    def api_group_served(self, group: str) -> bool:
        """Whether discovery lists ``group`` (e.g. ``kyverno.io``) — i.e. its CRDs are installed and served."""
        data = self._call(k8s.ApisApi(self._api).get_api_versions, resource="apis")
        groups = data.get("groups")
        return isinstance(groups, list) and any(
            isinstance(g, dict) and g.get("name") == group for g in groups
        )

    def can_i(
        self,
        verb: str,
        resource: str,
        *,
        group: str = "",
        namespace: str | None = None,
        subresource: str | None = None,
        name: str | None = None,
    ) -> bool:
        """SelfSubjectAccessReview: may the current user do this?"""
        attrs: dict = {"verb": verb, "group": group, "resource": resource}
        if namespace:
            attrs["namespace"] = namespace
        if subresource:
            attrs["subresource"] = subresource
        if name:
            attrs["name"] = name
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        }
        out = self._call(
            k8s.AuthorizationV1Api(self._api).create_self_subject_access_review,
            body,
            resource="selfsubjectaccessreviews",
        )
        status = out.get("status")
        return isinstance(status, dict) and status.get("allowed") is True

    def self_test(self) -> list[dict]:
        """Check each permission the audit uses. One dict per fact:
        ``{"fact", "permission", "allowed", "loss"}`` (``loss``: what the audit loses without it)."""
        out = []
        for fact, verb, group, resource, sub, ns, loss, name in SELF_TEST_CHECKS:
            allowed = self.can_i(verb, resource, group=group, namespace=ns, subresource=sub, name=name)
            perm = f"{verb} {resource}{'/' + sub if sub else ''}"
            if group:
                perm += f" ({group})"
            if name:
                perm += f" {name}"
            perm += f" in {ns}" if ns else " (all namespaces)"
            out.append(
                {"fact": fact, "permission": perm, "allowed": allowed, "loss": "" if allowed else loss}
            )
        return out


# --- error mapping -------------------------------------------------------------------------------------------


def _where(resource: str | None, namespace: str | None) -> str:
    if not resource:
        return ""
    return f" {resource} in namespace {namespace}" if namespace else f" {resource}"


def _status_error(
    status: int, body: bytes | str | None, server: str, resource: str | None, namespace: str | None
) -> KubeError:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    reason, message = "", ""
    try:
        st = json.loads(text)
        if isinstance(st, dict):
            reason, message = (
                _short(str(st.get("reason") or ""), 40),
                _short(str(st.get("message") or ""), 300),
            )
    except (ValueError, RecursionError):
        message = _short(text, 300)
    what = _where(resource, namespace)
    if status == 401:
        return KubeError(
            f"The API server at {server} rejected the credentials (401 Unauthorized): the token or "
            "client certificate is unknown or expired.",
            transient=False,
            status=401,
            reason="Unauthorized",
            resource=resource,
            namespace=namespace,
        )
    if status == 403:
        return KubeError(
            f"Access denied reading{what}: {message or 'forbidden'}",
            transient=False,
            status=403,
            reason="Forbidden",
            resource=resource,
            namespace=namespace,
        )
    if status == 404:
        return KubeError(
            f"Not found:{what or ' the requested path'}{': ' + message if message else ''}",
            transient=False,
            status=404,
            reason="NotFound",
            resource=resource,
            namespace=namespace,
        )
    if status == 410:
        return KubeError(
            f"The list of{what} expired on the server while paging (410); restart the list.",
            transient=True,
            status=410,
            reason="Expired",
            resource=resource,
            namespace=namespace,
        )
    if status == 429:
        return KubeError(
            f"The API server is throttling requests (429) for{what}.",
            transient=True,
            status=429,
            reason="TooManyRequests",
            resource=resource,
            namespace=namespace,
        )
    if status in (400, 422):
        return KubeError(
            f"The API server refused the request for{what}: {message}",
            transient=False,
            status=status,
            reason=reason or "BadRequest",
            resource=resource,
            namespace=namespace,
        )
    if status >= 500:
        return KubeError(
            f"The API server failed ({status}) reading{what}: {message or 'server error'}",
            transient=True,
            status=status,
            reason=reason or "ServerError",
            resource=resource,
            namespace=namespace,
        )
    return KubeError(
        f"Unexpected HTTP {status} reading{what}: {message}",
        transient=False,
        status=status,
        reason=reason or "Unknown",
        resource=resource,
        namespace=namespace,
    )


def _map_exception(
    exc: BaseException, server: str, resource: str | None, namespace: str | None
) -> BaseException:
    """Translate client/urllib3 exceptions into ``KubeError``; leave programming errors alone."""
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, ApiException):
        if exc.status in (0, None):
            return KubeError(
                f"Could not reach the API server at {server}: {exc.reason}",
                transient=True,
                reason="Unreachable",
                resource=resource,
                namespace=namespace,
            )
        return _status_error(int(exc.status), exc.body, server, resource, namespace)
    inner: BaseException = exc
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        inner = exc.reason
    if isinstance(inner, SSLError | ssl.SSLError):
        detail = str(inner)
        if "CERTIFICATE_VERIFY_FAILED" in detail or "certificate verify failed" in detail:
            msg = (
                f"The API server's certificate at {server} is not trusted by the kubeconfig's CA (or does not "
                "match the server name)."
            )
        else:
            msg = f"The TLS connection to {server} failed: {_short(detail)}"
        return KubeError(msg, transient=False, reason="TLS", resource=resource, namespace=namespace)
    if isinstance(inner, NewConnectionError):  # a ConnectTimeoutError subclass in urllib3 2: check first
        return KubeError(
            f"Could not reach the API server at {server}: {_short(str(inner))}",
            transient=True,
            reason="Unreachable",
            resource=resource,
            namespace=namespace,
        )
    if isinstance(inner, ReadTimeoutError | ConnectTimeoutError | TimeoutError):
        return KubeError(
            f"The API server at {server} did not answer in time reading{_where(resource, namespace)}.",
            transient=True,
            reason="Timeout",
            resource=resource,
            namespace=namespace,
        )
    if isinstance(inner, ProtocolError | ConnectionError | HTTPError | OSError):
        return KubeError(
            f"Could not reach the API server at {server} reading{_where(resource, namespace)}: "
            f"{_short(str(inner))}",
            transient=True,
            reason="Unreachable",
            resource=resource,
            namespace=namespace,
        )
    return exc


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


class _ExecBound:
    """The deadline of one exec read: from the TCP connection through the TLS handshake, the WebSocket
    upgrade and the command's last frame. When it passes, a timer shuts the connection down (below TLS, so
    the same also while the TLS handshake runs), so whatever is blocked on it (a handshake or an upgrade
    trickled a byte at a time, a frame that never ends) returns at once, and ``expired`` says why. The
    timer holds its own duplicate of the descriptor (a shutdown reaches the connection through any of
    them), so it never touches a descriptor number the connection has given back; ``cancel`` (always
    called) stops it and closes the duplicate."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._timer: threading.Timer | None = None

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def watch(self, fd: int) -> None:
        import socket

        with self._lock:
            self._fd = os.dup(fd)

        def expire() -> None:
            with self._lock:
                if self._fd is None:  # cancelled
                    return
                self.expired = True
                view = socket.socket(fileno=self._fd)  # an object on the duplicate, detached below
                try:
                    view.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                finally:
                    view.detach()

        self._timer = threading.Timer(max(self.left(), 0.0), expire)
        self._timer.daemon = True
        self._timer.start()

    def passed(self) -> bool:
        if self.left() <= 0:
            self.expired = True
        return self.expired

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


#: ``current``: the :class:`_ExecBound` of the exec read being connected in this thread (None otherwise).
_EXEC_BOUND = threading.local()


def _install_bounded_websocket() -> None:
    """Make the client library's exec WebSocket honour the calling thread's exec deadline.

    ``kubernetes.stream`` builds its ``websocket.WebSocket`` and connects it with no timeout, so a server
    that accepts the connection and never answers the upgrade (or trickles it a byte at a time) would hold
    a scan forever. The subclass installed here (once, in the library's module) opens the TCP connection
    itself, with the time left, and hands it to the library (``socket=``) after wrapping it in TLS with the
    library's own options: the deadline's timer watches that socket from the first byte on (see
    :class:`_ExecBound`). The client never uses a proxy (``cfg.proxy = None``). Outside an exec read
    (``_EXEC_BOUND.current`` unset) it is the plain class.
    """
    import socket

    from kubernetes.stream import ws_client
    from websocket import WebSocket, WebSocketTimeoutException
    from websocket._http import _ssl_socket
    from websocket._url import parse_url

    if getattr(ws_client.WebSocket, "_dnsaudit_bounded", False):
        return

    class _BoundedWebSocket(WebSocket):
        _dnsaudit_bounded = True

        def connect(self, url, **options):
            bound: _ExecBound | None = getattr(_EXEC_BOUND, "current", None)
            if bound is None or "socket" in options:
                return super().connect(url, **options)
            if bound.passed():
                raise WebSocketTimeoutException("the exec deadline passed before connecting")
            hostname, port, _resource, is_secure = parse_url(url)
            raw = socket.create_connection((hostname, port), timeout=bound.left())
            try:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                bound.watch(raw.fileno())  # TLS below keeps the descriptor: the timer reaches it throughout
                options["socket"] = _ssl_socket(raw, self.sock_opt.sslopt, hostname) if is_secure else raw
                options["timeout"] = max(bound.left(), 0.001)
                super().connect(url, **options)
                if bound.passed():
                    raise WebSocketTimeoutException("the exec upgrade ended after the deadline")
            except Exception:
                bound.passed()
                bound.cancel()
                with contextlib.suppress(OSError):
                    raw.close()  # when TLS did not take it over yet
                if self.sock is not None:
                    with contextlib.suppress(Exception):
                        self.shutdown()
                raise
            return None

    ws_client.WebSocket = _BoundedWebSocket


def _map_handshake(exc: ApiException, server: str, resource: str, namespace: str | None) -> KubeError:
    """``stream()`` folds every failure into ``ApiException(status=0, reason=str(inner))`` (T9).

    A refused upgrade reads ``Handshake status 403 Forbidden -+-+- {headers} -+-+- <body>``: take the
    status and the Status body from the text. Anything else is a connection or TLS failure.
    """
    text = str(exc.reason or "")
    m = _HANDSHAKE.search(text)
    if m:
        body = text.rsplit(" -+-+- ", 1)[-1] if " -+-+- " in text else ""
        if body == "None":
            body = ""
        return _status_error(int(m.group(1)), body, server, resource, namespace)
    if exc.status not in (0, None):
        return _status_error(int(exc.status), exc.body, server, resource, namespace)
    low = text.lower()
    if "certificate_verify_failed" in low or "certificate verify failed" in low:
        return KubeError(
            f"The API server's certificate at {server} is not trusted by the kubeconfig's CA (or does not "
            "match the server name).",
            transient=False,
            reason="TLS",
            resource=resource,
            namespace=namespace,
        )
    if "ssl" in low:
        return KubeError(
            f"The TLS connection to {server} failed: {_short(text)}",
            transient=False,
            reason="TLS",
            resource=resource,
            namespace=namespace,
        )
    if "timed out" in low:
        return KubeError(
            f"The API server at {server} did not answer the exec request in time.",
            transient=True,
            reason="Timeout",
            resource=resource,
            namespace=namespace,
        )
    return KubeError(
        f"Could not reach the API server at {server} for exec: {_short(text)}",
        transient=True,
        reason="Unreachable",
        resource=resource,
        namespace=namespace,
    )


def _exec_result(
    out: str, err: str, status_raw: str, protocol: str | None, namespace: str, pod: str, resource: str
) -> ExecResult:
    """Read the exit from the error channel: a Status JSON (v4/v5) or a plain message (v1–v3)."""
    raw = status_raw.strip()
    if not raw:
        # v1–v3 say nothing on success; v4/v5 always send a Status, so silence there means a dropped stream.
        if protocol in ("v4.channel.k8s.io", "v5.channel.k8s.io"):
            raise KubeError(
                f"The exec stream for {namespace}/{pod} ended without a final status.",
                transient=True,
                reason="Unreachable",
                resource=resource,
                namespace=namespace,
            )
        return ExecResult(out, err, 0, "", protocol)
    status: dict | None = None
    with contextlib.suppress(ValueError):
        parsed = json.loads(raw)
        status = parsed if isinstance(parsed, dict) else None
    if status is None:  # v1–v3: the message only
        m = re.search(r"exit code (\d+)", raw)
        if m:
            return ExecResult(out, err, int(m.group(1)), raw, protocol)
        status = {"status": "Failure", "reason": "InternalError", "message": raw}
    if status.get("status") == "Success":
        return ExecResult(out, err, 0, "", protocol)
    message = str(status.get("message") or "")
    if status.get("reason") == "NonZeroExitCode":
        causes = (status.get("details") or {}).get("causes") or [{}]
        code = next(
            (int(c["message"]) for c in causes if str(c.get("message", "")).isdigit()),
            1,
        )
        return ExecResult(out, err, code, message, protocol)
    if _MISSING_EXE.search(message):
        return ExecResult(out, err, 127, message, protocol)
    raise KubeError(
        f"Exec in {namespace}/{pod} failed: {_short(message or raw)}",
        transient=False,
        reason="ExecFailed",
        resource=resource,
        namespace=namespace,
    )


def _size(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KiB"
    return f"{n} bytes"


def _short(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
