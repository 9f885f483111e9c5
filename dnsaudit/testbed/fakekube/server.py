"""dnsaudit's own Kubernetes test API server: HTTPS on loopback, real auth, RBAC-style 403s, pagination.

One ``FakeKube`` process-local server hosts one or more clusters:

* the *default* cluster is served at the root (``https://127.0.0.1:PORT``);
* named clusters (``server.add_cluster("edge-k3s")``) are served under a path prefix,
  ``https://127.0.0.1:PORT/clusters/edge-k3s`` — kubectl and the official client accept a server URL with a
  path, exactly like Rancher's cluster proxy URLs.

What it serves (read-only): discovery (``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/<g>``,
``/apis/<g>/<v>``, CRD-backed groups), ``get``/``list`` of every stored type cluster-wide and per
namespace with ``limit``/``continue`` (410 after ``compact()``), label and field selectors,
``nodes/{n}/proxy/configz`` (authorized as ``get nodes/proxy``; per-node ok/403/502/503),
``POST selfsubjectaccessreviews`` and ``pods/{p}/exec`` over WebSocket (see ``exec.py``). Errors are
``kind: Status`` bodies shaped like the apiserver's.

Exec is answered by the cluster's ``exec_handler`` when a test sets one (``set_exec``); otherwise like a real
cluster (``kubelet_exec.py``): each node has a *hidden* resolv.conf (``set_node_file``; the API never shows
it), and a running pod's ``/etc/resolv.conf`` is what its node's kubelet (the ``configz`` document of
``set_kubelet``/``default_kubelet``, the Node's version and IPs) and containerd wrote for it; which commands
exist depends on the container's image (or the pod annotation ``fakekube.dnsaudit.io/exec``).

Auth: ``Authorization: Bearer <token>`` or a client certificate signed by the server CA (CN = user,
O = groups). Unknown credentials and anonymous requests get 401 (``/version`` and health endpoints are
public, as with the default ``system:public-info-viewer`` binding).

Fault injection is per cluster through ``cluster.faults`` (see ``Faults``).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import json
import re
import socket
import ssl
import threading
import time
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import trustme
import yaml

from dnsaudit.testbed.fakekube.auth import ADMIN_RULES, Rule, User, issue_client_cert, new_token
from dnsaudit.testbed.fakekube.exec import (
    CHANNEL_PROTOCOLS,
    ExecHandler,
    ExecOutcome,
    ExecRequest,
    ExecSession,
    accept_key,
    negotiate,
    resolve_handler,
    valid_key,
)
from dnsaudit.testbed.fakekube.kubelet_exec import KubeletFacts, pod_resolv_conf, run_in_pod
from dnsaudit.testbed.fakekube.objects import kubelet_config
from dnsaudit.testbed.fakekube.store import Store, StoreError
from dnsaudit.testbed.fakekube.tables import table, wants_table
from dnsaudit.testbed.fakekube.types import BUILTIN_GROUPS, ResourceType

#: What ``/version`` reports by default (a current release).
DEFAULT_VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.4",
    "gitCommit": "a78aa47129b8539636eb86a9d00e31b2720fe06b",
    "gitTreeState": "clean",
    "buildDate": "2024-12-10T18:43:21Z",
    "goVersion": "go1.22.10",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_TRUE = {"1", "t", "T", "true", "TRUE", "True"}  # strconv.ParseBool, as the apiserver uses (T4)


def parse_bool(value: str | None) -> bool:
    """Go's ``strconv.ParseBool`` truth set; anything else is false."""
    return value in _TRUE


def status_body(
    code: int, reason: str, message: str, details: dict | None = None, extra: dict | None = None
) -> bytes:
    """A ``kind: Status`` failure body, field order as the apiserver writes it."""
    body: dict = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
    }
    if reason:
        body["reason"] = reason
    if details:
        body["details"] = details
    body["code"] = code
    if extra and "metadata" in extra:
        body["metadata"] = extra["metadata"]
    return json.dumps(body, separators=(",", ":")).encode()


def forbidden_message(
    user: str, verb: str, group: str, resource: str, namespace: str | None, name: str | None
) -> str:
    """The RBAC authorizer's 403 message, e.g. ``pods is forbidden: User "x" cannot list resource …``."""
    base, _, _sub = resource.partition("/")
    what = f'{base} "{name}"' if name else base
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return f'{what} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group "{group}" {where}'


# --- faults ----------------------------------------------------------------------------------------------


@dataclass
class _FaultRule:
    pattern: re.Pattern
    action: str  # "fail" | "delay" | "drop" | "expire" | "endless" | "huge" | "gzip" | "trickle"
    nth: int
    times: int | None
    status: int = 500
    seconds: float = 0.0
    message: str = ""
    seen: int = 0
    fired: int = 0
    size: int = 0  # huge: the body's (decoded) size
    gzip: bool = False  # huge: sent gzip-encoded (a decompression bomb)
    same_token: bool = False  # endless: the same continue token every time (a loop) or a new one


class Faults:
    """Thread-safe fault injection for one cluster.

    Patterns are regular expressions searched in the request target *after* the cluster prefix (path plus
    query string, e.g. ``/api/v1/pods?limit=500&continue=…``). A rule counts the requests it matches and
    fires from the ``nth`` one on, ``times`` times (``None`` = forever).

    * ``fail(pattern, status=503)`` — answer a Status with that code (500 InternalError, 503 ServiceUnavailable,
      429 TooManyRequests…).
    * ``delay(pattern, seconds)`` — sleep before answering (client read timeouts).
    * ``drop(pattern)`` — close the TCP connection without an answer (API server unreachable mid-pagination).
    * ``expire(pattern="continue=")`` — 410 Expired as after a compaction.
    * ``page_cap`` — serve at most this many items per page whatever ``limit`` says (T6);
      ``empty_first_page`` — the first page of every list has zero items and a continue token (T6).
    * ``down`` — every request is dropped (the API server is unreachable).

    A hostile API server (each whatever the client asked, e.g. ``Accept-Encoding: identity``):

    * ``endless_continue(pattern, same_token=False)`` — every list page (the first page's items again)
      carries a continue token: a new one each time, or with ``same_token`` the same one (a loop).
    * ``huge_body(pattern, size=300 MiB, gzip=False)`` — a 200 JSON body of ``size`` bytes streamed in
      1 MiB writes (never built in memory); with ``gzip`` it is gzip-encoded (``size`` decoded bytes from
      a few hundred KiB sent: a decompression bomb).
    * ``gzip(pattern)`` — the real answer, gzip-encoded (``Content-Encoding: gzip``).
    * ``trickle(pattern, seconds)`` — the real answer, one body byte every ``seconds``.
    ``log`` records ``(method, target, user, status)`` of each request for assertions.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_FaultRule] = []
        self.page_cap: int | None = None
        self.empty_first_page = False
        self.down = False
        self.log: list[tuple[str, str, str | None, int]] = []

    def _add(self, pattern: str, action: str, nth: int, times: int | None, **kw) -> None:
        with self._lock:
            self._rules.append(_FaultRule(re.compile(pattern), action, nth, times, **kw))

    def fail(
        self, pattern: str, *, status: int = 500, nth: int = 1, times: int | None = 1, message: str = ""
    ) -> None:
        self._add(pattern, "fail", nth, times, status=status, message=message)

    def delay(self, pattern: str, seconds: float, *, nth: int = 1, times: int | None = None) -> None:
        self._add(pattern, "delay", nth, times, seconds=seconds)

    def drop(self, pattern: str, *, nth: int = 1, times: int | None = 1) -> None:
        self._add(pattern, "drop", nth, times)

    def expire(self, pattern: str = r"continue=", *, nth: int = 1, times: int | None = 1) -> None:
        self._add(pattern, "expire", nth, times, status=410)

    def endless_continue(
        self, pattern: str, *, same_token: bool = False, nth: int = 1, times: int | None = None
    ) -> None:
        self._add(pattern, "endless", nth, times, same_token=same_token)

    def huge_body(
        self,
        pattern: str,
        size: int = 300 << 20,
        *,
        gzip: bool = False,
        nth: int = 1,
        times: int | None = None,
    ) -> None:
        if gzip:
            _gzip_bomb(size)  # built now, not while a client waits for the headers
        self._add(pattern, "huge", nth, times, size=size, gzip=gzip)

    def gzip(self, pattern: str, *, nth: int = 1, times: int | None = None) -> None:
        self._add(pattern, "gzip", nth, times)

    def trickle(self, pattern: str, seconds: float = 1.0, *, nth: int = 1, times: int | None = None) -> None:
        self._add(pattern, "trickle", nth, times, seconds=seconds)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.page_cap = None
            self.empty_first_page = False
            self.down = False
            self.log.clear()

    def _record(self, method: str, target: str, user: str | None, status: int) -> None:
        with self._lock:
            self.log.append((method, target, user, status))

    def _match(self, target: str) -> list[_FaultRule]:
        fired = []
        with self._lock:
            for r in self._rules:
                if not r.pattern.search(target):
                    continue
                r.seen += 1
                if r.seen >= r.nth and (r.times is None or r.fired < r.times):
                    r.fired += 1
                    fired.append(r)
        return fired


# --- clusters ------------------------------------------------------------------------------------------


@dataclass
class KubeletBehaviour:
    """What ``nodes/{n}/proxy/configz`` answers: the config, or an HTTP status for failure."""

    config: dict | None = None
    status: int = 200  # 200, 403 (kubelet authz), 502/503 (kubelet unreachable), 404


class Cluster:
    """One simulated cluster: its store, users, kubelet configs and faults."""

    def __init__(self, server: FakeKube, name: str, prefix: str) -> None:
        self.server = server
        self.name = name
        self.prefix = prefix  # "" for the default cluster, "/clusters/<name>" otherwise
        self.store = Store(name)
        self.users: dict[str, User] = {}
        self._tokens: dict[str, str] = {}
        self.kubelets: dict[str, KubeletBehaviour] = {}
        #: What nodes without a ``set_kubelet`` entry answer (a kubeadm-like config).
        self.default_kubelet: dict | None = kubelet_config()
        self.faults = Faults()
        self.version = dict(DEFAULT_VERSION)
        #: What ``pods/{p}/exec`` runs: a callable or a mapping of fake containers (see ``exec.py``).
        self.exec_handler: ExecHandler | None = None
        #: The channel subprotocols this cluster's API server accepts (drop v5 to act like 1.29).
        self.exec_protocols: tuple[str, ...] = CHANNEL_PROTOCOLS
        #: Node name → content of the file at its kubelet's ``resolvConf`` path (None or absent = unknown to
        #: the test). Hidden: no API answer shows it; only exec in the node's pods reveals it.
        self.node_files: dict[str, str | None] = {}
        #: Image (as written in pod specs, or a repository without tag) → exec flavour (``alpine``,
        #: ``debian``, ``distroless``, ``none``), overriding the built-in mapping of ``kubelet_exec``.
        self.image_flavours: dict[str, str] = {}
        #: Pod UID → the resolv.conf its sandbox started with (see ``snapshot_pod_files``).
        self._pod_files: dict[str, str | None] = {}

    @property
    def url(self) -> str:
        return self.server.url + self.prefix

    # -- objects ----------------------------------------------------------------------------------------
    def reset(self, objects: Iterable[dict] = ()) -> None:
        """Replace every object (and clear faults, the exec handler, image flavours and pod-file snapshots,
        which describe the old pods). Users, kubelet behaviours and node files stay: they are facts about
        machines, outside the API (``clear_nodes`` drops the last two)."""
        self.store.reset(objects)
        self.faults.clear()
        self.exec_handler = None
        self.exec_protocols = CHANNEL_PROTOCOLS
        self.image_flavours = {}
        self._pod_files.clear()

    def add(self, objects: Iterable[dict]) -> None:
        self.store.add(objects)

    def compact(self) -> None:
        """Compact history: every continue token handed out so far now answers 410 Expired."""
        self.store.compact()

    def set_kubelet(self, node: str, config: dict | None = None, *, status: int = 200) -> None:
        """Set what ``nodes/<node>/proxy/configz`` answers (``config`` is the ``kubeletconfig`` body)."""
        self.kubelets[node] = KubeletBehaviour(config, status)

    def set_exec(self, handler: ExecHandler | None) -> None:
        """Set what ``pods/{p}/exec`` runs: a callable ``(ExecRequest) -> ExecOutcome`` or a mapping
        ``"ns/pod[/container]"``/``"*"`` -> ``FakeContainer`` or ``{path: content}`` (see ``exec.py``).
        An explicit handler answers every exec of the cluster; ``None`` restores the kubelet-like one."""
        self.exec_handler = handler

    # -- nodes as the kubelet sees them (not in the API) -------------------------------------------------
    def set_node_file(self, node: str, text: str | None) -> None:
        """Set the hidden content of ``node``'s resolv.conf (the file at its kubelet's ``resolvConf`` path).
        ``None`` = unknown to the test: pods whose file depends on it have no ``/etc/resolv.conf``."""
        self.node_files[node] = text

    def set_node_files(self, files: dict[str, str | None]) -> None:
        """``set_node_file`` for several nodes."""
        self.node_files.update(files)

    def clear_nodes(self) -> None:
        """Forget every node file, kubelet behaviour and pod-file snapshot (kubelets answer the default)."""
        self.node_files.clear()
        self.kubelets.clear()
        self._pod_files.clear()

    def kubelet_facts(self, node: str) -> KubeletFacts:
        """What ``node``'s kubelet builds pod files from: its configz document (``set_kubelet``, else
        ``default_kubelet``, else a kubeadm-like default — a kubelet whose configz is forbidden or unreachable
        still has its config) and the stored Node object (version, IPs, runtime, architecture)."""
        beh = self.kubelets.get(node)
        config = beh.config if beh is not None and beh.config is not None else None
        if config is None:
            config = self.default_kubelet if self.default_kubelet is not None else kubelet_config()
        node_obj = None
        rtype = self.store.lookup("", "v1", "nodes")
        entry = self.store.get(rtype, "", node) if rtype is not None and node else None
        if entry is not None:
            node_obj = json.loads(entry.body)
        return KubeletFacts.from_objects(config, node_obj)

    def pod_file(self, pod: dict) -> str | None:
        """``/etc/resolv.conf`` of a scheduled pod as its node's kubelet and containerd wrote it (the
        snapshot when ``snapshot_pod_files`` recorded one). None: it depends on an unknown node file."""
        uid = (pod.get("metadata") or {}).get("uid") or ""
        if uid in self._pod_files:
            return self._pod_files[uid]
        node = (pod.get("spec") or {}).get("nodeName") or ""
        return pod_resolv_conf(pod, self.node_files.get(node), self.kubelet_facts(node))

    def snapshot_pod_files(self) -> None:
        """Record the file of every stored scheduled pod as of now, as if their sandboxes started now: later
        ``set_node_file``/``set_kubelet`` changes reach only pods added afterwards (a real pod keeps the
        file it started with until it is recreated). ``reset`` forgets the snapshot."""
        rtype = self.store.lookup("", "v1", "pods")
        if rtype is None:
            return
        for pod in json.loads(self.store.list(rtype, None)).get("items") or ():
            uid = (pod.get("metadata") or {}).get("uid")
            if uid and (pod.get("spec") or {}).get("nodeName"):
                self._pod_files[uid] = self.pod_file(pod)

    def set_pod_file(self, namespace: str, name: str, text: str) -> None:
        """Give one stored pod the file ``text``, as if its sandbox started under another node file (or
        kubelet) than its node has now: a stale pod, which keeps its file until it is recreated."""
        rtype = self.store.lookup("", "v1", "pods")
        entry = self.store.get(rtype, namespace, name) if rtype is not None else None
        if entry is None:
            raise KeyError(f"no pod {namespace}/{name}")
        uid = (json.loads(entry.body).get("metadata") or {}).get("uid") or ""
        self._pod_files[uid] = text

    def kubelet_exec(self, req: ExecRequest, pod: dict) -> ExecOutcome:
        """Answer an exec the API server accepted, as the pod's kubelet and container would."""
        node = (pod.get("spec") or {}).get("nodeName") or ""
        facts = self.kubelet_facts(node)
        return run_in_pod(
            req,
            pod,
            self.pod_file(pod),
            architecture=facts.architecture,
            image_flavours=self.image_flavours,
        )

    # -- users ------------------------------------------------------------------------------------------
    def add_user(
        self,
        name: str,
        *,
        token: str | None = None,
        cert: bool = True,
        groups: tuple[str, ...] = (),
        rules: Iterable[Rule] = ADMIN_RULES,
    ) -> User:
        """Create (or replace) a user with a token (random when ``token=None`` and ``cert=False``) and/or
        a client certificate signed by the server CA. ``rules`` are allow-only RBAC-like rules."""
        if token is None and not cert:
            token = new_token()
        user = User(name, (*groups, "system:authenticated"), token=token, rules=tuple(rules))
        if cert:
            user.cert_pem, user.key_pem = issue_client_cert(
                self.server.ca.cert_pem.bytes(), self.server.ca.private_key_pem.bytes(), name, user.groups
            )
        old = self.users.get(name)
        if old and old.token:
            self._tokens.pop(old.token, None)
        self.users[name] = user
        if token:
            self._tokens[token] = name
        return user

    def user_for_token(self, token: str) -> User | None:
        name = self._tokens.get(token)
        return self.users.get(name) if name else None

    def kubeconfig(
        self,
        user: str,
        *,
        context_name: str | None = None,
        auth: str | None = None,
        namespace: str | None = None,
    ) -> str:
        """A kubeconfig YAML for ``user`` with data fields only (never paths).

        ``auth`` chooses ``"cert"`` or ``"token"`` when the user has both (default: cert if present).
        """
        u = self.users[user]
        ctx = context_name or (self.name or "fakekube")
        entry: dict = {}
        use_cert = auth == "cert" or (auth is None and u.cert_pem is not None)
        if use_cert:
            if not u.cert_pem or not u.key_pem:
                raise ValueError(f"user {user!r} has no client certificate")
            entry["client-certificate-data"] = base64.b64encode(u.cert_pem).decode()
            entry["client-key-data"] = base64.b64encode(u.key_pem).decode()
        else:
            if not u.token:
                raise ValueError(f"user {user!r} has no token")
            entry["token"] = u.token
        context: dict = {"cluster": ctx, "user": f"{user}@{ctx}"}
        if namespace:
            context["namespace"] = namespace
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": ctx,
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(
                            self.server.ca.cert_pem.bytes()
                        ).decode(),
                    },
                }
            ],
            "users": [{"name": f"{user}@{ctx}", "user": entry}],
            "contexts": [{"name": ctx, "context": context}],
            "current-context": ctx,
            "preferences": {},
        }
        return yaml.safe_dump(doc, sort_keys=False)


def merge_kubeconfigs(texts: Iterable[str]) -> str:
    """Merge several single-context kubeconfigs into one (current-context = the first)."""
    out: dict = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
        "preferences": {},
    }
    for text in texts:
        doc = yaml.safe_load(text)
        for key in ("clusters", "users", "contexts"):
            out[key].extend(doc[key])
        out.setdefault("current-context", doc["current-context"])
    return yaml.safe_dump(out, sort_keys=False)


# --- the server ----------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    fake: FakeKube

    def handle_error(self, request, client_address) -> None:
        # Client disconnects, handshake failures and dropped connections are routine here.
        pass


class FakeKube:
    """The test API server. Start with ``start()`` or use as a context manager.

    ``FakeKube(objects=(), host="127.0.0.1", port=0, ca=None)``. A user ``admin`` (cluster-admin, client
    certificate and token) exists on the default cluster from the start; add others with ``add_user``.
    The methods ``reset``, ``add``, ``compact``, ``add_user``, ``kubeconfig``, ``set_kubelet`` and the
    ``faults`` attribute act on the default cluster; ``cluster(name)`` / ``add_cluster(name)`` reach others.
    """

    def __init__(
        self,
        objects: Iterable[dict] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ca: trustme.CA | None = None,
    ) -> None:
        self.host = host
        self.ca = ca or trustme.CA(organization_name="dnsaudit fakekube")
        self._server_cert = self.ca.issue_cert("127.0.0.1", "localhost", "::1", common_name="kube-apiserver")
        self.clusters: dict[str, Cluster] = {}
        self.default = Cluster(self, "", "")
        self.clusters[""] = self.default
        self._port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.default.add_user("admin", token=new_token(), cert=True, groups=("system:masters",))
        if objects:
            self.default.reset(objects)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> FakeKube:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_cert.configure_cert(ctx)
        self.ca.configure_trust(ctx)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        httpd = _HTTPServer((self.host, self._port), _Handler)
        httpd.fake = self
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self._httpd = httpd
        self._port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.name = f"fakekube:{self._port}"
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self._port}"

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    # -- clusters ----------------------------------------------------------------------------------------
    def add_cluster(self, name: str, objects: Iterable[dict] = ()) -> Cluster:
        """A named cluster served under ``/clusters/<name>`` (created empty with no users)."""
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
            raise ValueError(f"cluster name must be a DNS label: {name!r}")
        c = Cluster(self, name, f"/clusters/{name}")
        self.clusters[name] = c
        c.reset(objects)
        return c

    def cluster(self, name: str = "") -> Cluster:
        return self.clusters[name]

    # -- default-cluster shortcuts -------------------------------------------------------------------------
    @property
    def faults(self) -> Faults:
        return self.default.faults

    @property
    def store(self) -> Store:
        return self.default.store

    def reset(self, objects: Iterable[dict] = ()) -> None:
        self.default.reset(objects)

    def add(self, objects: Iterable[dict]) -> None:
        self.default.add(objects)

    def compact(self) -> None:
        self.default.compact()

    def add_user(self, name: str, **kw) -> User:
        return self.default.add_user(name, **kw)

    def set_kubelet(self, node: str, config: dict | None = None, *, status: int = 200) -> None:
        self.default.set_kubelet(node, config, status=status)

    def kubeconfig(self, user: str = "admin", **kw) -> str:
        return self.default.kubeconfig(user, **kw)

    def set_exec(self, handler: ExecHandler | None) -> None:
        self.default.set_exec(handler)

    def set_node_file(self, node: str, text: str | None) -> None:
        self.default.set_node_file(node, text)


# --- request handling ----------------------------------------------------------------------------------


class _Drop(Exception):
    """Close the connection without answering."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    timeout = 60

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in one write, and without Nagle: otherwise delayed ACKs add ~40 ms to
        # small requests on a keep-alive connection.
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
            raise

    def handle(self) -> None:
        with contextlib.suppress(ssl.SSLError, ConnectionError, TimeoutError, OSError):
            super().handle()

    # -- plumbing -----------------------------------------------------------------------------------------
    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        hostile: dict = getattr(self, "_hostile", None) or {}
        if hostile.get("endless") is not None and code == 200:
            body = _endless_page(body, hostile["endless"])
        if hostile.get("gzip") and self.command != "HEAD":
            body = _gzip(body)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        if hostile.get("gzip"):
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        if code == 401:
            self.send_header("Www-Authenticate", 'Basic realm="kubernetes-master"')
        self._headers_buffer.append(b"\r\n")
        if hostile.get("trickle") is not None and self.command != "HEAD":
            self.flush_headers()
            self._status = code
            for i in range(len(body)):  # one byte at a time, until the client gives up
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(hostile["trickle"])
            return
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()
        self._status = code

    def _huge(self, rule: _FaultRule) -> None:
        """A 200 JSON body of ``rule.size`` bytes, streamed (gzip-encoded with ``rule.gzip``); the connection
        is closed after it (or when the client stops reading)."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if rule.gzip:
            body = _gzip_bomb(rule.size)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self._status = 200
            self.wfile.write(body)
            return
        self.send_header("Content-Length", str(rule.size))
        self.end_headers()
        self._status = 200
        for chunk in _huge_chunks(rule.size):
            self.wfile.write(chunk)

    def _error(
        self, code: int, reason: str, message: str, details: dict | None = None, extra: dict | None = None
    ) -> None:
        self._send(code, status_body(code, reason, message, details, extra))

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.request.shutdown(socket.SHUT_RDWR)
        raise _Drop

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _dispatch(self) -> None:
        self._status = 0
        self._hostile: dict = {}
        body = self._read_body()
        split = urlsplit(self.path)
        path = unquote(split.path)
        cluster, rest = self._cluster_for(path)
        target = rest + ("?" + split.query if split.query else "")
        user_name: str | None = None
        try:
            if cluster is None:
                self._error(404, "NotFound", "the server could not find the requested resource")
                return
            faults = cluster.faults
            if faults.down:
                self._drop()
            for rule in faults._match(target):
                if rule.action == "delay":
                    time.sleep(rule.seconds)
                elif rule.action == "drop":
                    self._drop()
                elif rule.action == "expire":
                    self._error(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result.",
                    )
                    return
                elif rule.action == "fail":
                    reason = {
                        429: "TooManyRequests",
                        500: "InternalError",
                        503: "ServiceUnavailable",
                        504: "Timeout",
                    }.get(rule.status, "InternalError")
                    msg = rule.message or {
                        500: "Internal error occurred: injected fault",
                        503: "the server is currently unable to handle the request",
                        429: "Too many requests, please try again later.",
                    }.get(rule.status, "injected fault")
                    self._error(rule.status, reason, msg)
                    return
                elif rule.action == "huge":
                    self._huge(rule)
                    return
                elif rule.action == "endless":
                    self._hostile["endless"] = rule
                elif rule.action == "gzip":
                    self._hostile["gzip"] = True
                elif rule.action == "trickle":
                    self._hostile["trickle"] = rule.seconds
            query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            if self._hostile.get("endless") and query.get("continue", "").startswith("endless-"):
                query.pop("continue")  # the fault's own token: serve the first page again
            if len(rest) > 1 and rest.endswith("/"):
                rest = rest.rstrip("/")
            if rest in ("/version", "/healthz", "/livez", "/readyz"):
                if self._authenticate(cluster, allow_anonymous=True) is False:
                    return
                if rest == "/version":
                    self._send(200, json.dumps(cluster.version, indent=2).encode())
                else:
                    self._send(200, b"ok", "text/plain; charset=utf-8")
                return
            user = self._authenticate(cluster)
            if not user:
                return
            user_name = user.name
            self._route(cluster, user, rest, query, body)
        except _Drop:
            pass
        except StoreError as exc:
            self._error(exc.code, exc.reason, exc.message, extra=exc.extra)
        finally:
            if cluster is not None:
                cluster.faults._record(self.command, target, user_name, self._status)

    def _cluster_for(self, path: str) -> tuple[Cluster | None, str]:
        fake = self.server.fake
        if path.startswith("/clusters/"):
            parts = path.split("/", 3)
            c = fake.clusters.get(parts[2]) if len(parts) > 2 else None
            return c, "/" + (parts[3] if len(parts) > 3 else "")
        return fake.default, path

    def _authenticate(self, cluster: Cluster, allow_anonymous: bool = False) -> User | None | bool:
        """The user, ``None`` when a 401 was sent; with ``allow_anonymous`` True for no credentials."""
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            user = cluster.user_for_token(auth[7:].strip())
            if user:
                return user
            self._error(401, "Unauthorized", "Unauthorized")
            return False if allow_anonymous else None
        peer = None
        with contextlib.suppress(ValueError, AttributeError):
            peer = self.request.getpeercert()
        if peer:
            cn = None
            groups: list[str] = []
            for rdn in peer.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        cn = value
                    elif key == "organizationName":
                        groups.append(value)
            user = cluster.users.get(cn or "")
            if user and user.cert_pem:
                return user
            self._error(401, "Unauthorized", "Unauthorized")
            return False if allow_anonymous else None
        if allow_anonymous:
            return True  # type: ignore[return-value]
        self._error(401, "Unauthorized", "Unauthorized")
        return None

    # -- routing ------------------------------------------------------------------------------------------
    def _route(self, cluster: Cluster, user: User, path: str, query: dict, body: bytes) -> None:
        parts = [p for p in path.split("/") if p]
        store = cluster.store
        if parts == ["api"]:
            addr = f"{self.server.fake.host}:{self.server.fake.port}"
            self._send(
                200,
                _json(
                    {
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}],
                    }
                ),
            )
            return
        if parts == ["apis"]:
            self._send(200, _json(_group_list(store)))
            return
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 2 and parts[0] == "apis":
            group = parts[1]
            versions = store.groups().get(group)
            if not versions:
                self._error(404, "NotFound", "the server could not find the requested resource")
                return
            if len(parts) == 2:
                self._send(200, _json(_api_group(group, versions)))
                return
            version, rest = parts[2], parts[3:]
            if version not in versions:
                self._error(404, "NotFound", "the server could not find the requested resource")
                return
        else:
            self._error(404, "NotFound", "the server could not find the requested resource")
            return
        if not rest:
            self._send(200, _json(_resource_list(store, group, version)))
            return
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:  # /namespaces/<ns>/<resource>[/<name>[/<sub>]]
            namespace, rest = rest[1], rest[2:]
        resource, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), rest[2:]
        rtype = store.lookup(group, version, resource)
        if rtype is None or (namespace is not None and not rtype.namespaced):
            self._error(404, "NotFound", "the server could not find the requested resource")
            return
        if rtype.resource == "selfsubjectaccessreviews":
            if self.command != "POST":
                self._error(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
                return
            self._ssar(user, body)
            return
        if rtype.resource == "pods" and namespace is not None and name and sub == ["exec"]:
            self._exec(cluster, user, rtype, namespace, name)
            return
        if self.command not in ("GET", "HEAD"):
            self._error(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
            return
        if sub:
            self._subresource(cluster, user, rtype, namespace, name or "", sub)
            return
        if name is None:
            self._list(cluster, user, rtype, namespace, query)
        else:
            self._get(cluster, user, rtype, namespace, name)

    def _authorize(
        self,
        user: User,
        verb: str,
        rtype: ResourceType,
        resource: str,
        namespace: str | None,
        name: str | None,
    ) -> bool:
        if user.allowed(verb, rtype.group, resource, namespace, name):
            return True
        self._error(
            403,
            "Forbidden",
            forbidden_message(user.name, verb, rtype.group, resource, namespace, name),
            details={
                **({"name": name} if name else {}),
                "group": rtype.group,
                "kind": resource.partition("/")[0],
            },
        )
        return False

    def _list(
        self, cluster: Cluster, user: User, rtype: ResourceType, namespace: str | None, query: dict
    ) -> None:
        if parse_bool(query.get("watch")):
            self._error(405, "MethodNotAllowed", "watch is not supported by the dnsaudit test API server")
            return
        if not self._authorize(user, "list", rtype, rtype.resource, namespace, None):
            return
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            self._error(400, "BadRequest", f"limit: Invalid value: {query.get('limit')!r}")
            return
        token = query.get("continue") or None
        faults = cluster.faults
        cap = faults.page_cap
        if faults.empty_first_page and not token and limit:
            cap = 0
        page = cluster.store.list(
            rtype,
            namespace,
            limit=limit,
            continue_token=token,
            label_selector=query.get("labelSelector") or None,
            field_selector=query.get("fieldSelector") or None,
            page_cap=cap,
        )
        if wants_table(self.headers.get("Accept", "")):
            page = table(page, rtype.kind, is_list=True)
        self._send(200, page)

    def _get(
        self, cluster: Cluster, user: User, rtype: ResourceType, namespace: str | None, name: str
    ) -> None:
        if not self._authorize(user, "get", rtype, rtype.resource, namespace, name):
            return
        entry = cluster.store.get(rtype, namespace or "", name)
        if entry is None:
            self._error(
                404,
                "NotFound",
                f'{rtype.resource}{"." + rtype.group if rtype.group else ""} "{name}" not found',
                details={"name": name, "group": rtype.group, "kind": rtype.resource},
            )
            return
        if wants_table(self.headers.get("Accept", "")):
            self._send(200, table(entry.get_body, rtype.kind, is_list=False))
            return
        self._send(200, entry.get_body)

    def _subresource(
        self,
        cluster: Cluster,
        user: User,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        sub: list[str],
    ) -> None:
        if rtype.resource == "nodes" and sub and sub[0] == "proxy":
            if not self._authorize(user, "get", rtype, "nodes/proxy", None, name):
                return
            if cluster.store.get(rtype, "", name) is None:
                self._error(
                    404, "NotFound", f'nodes "{name}" not found', details={"name": name, "kind": "nodes"}
                )
                return
            self._configz(cluster, name, sub[1:])
            return
        if sub == ["status"]:
            self._get(cluster, user, rtype, namespace, name)
            return
        self._error(404, "NotFound", "the server could not find the requested resource")

    def _exec(self, cluster: Cluster, user: User, rtype: ResourceType, namespace: str, name: str) -> None:
        """``pods/{name}/exec``: checks in the apiserver's order, then the WebSocket upgrade and the session.

        RBAC: a POST (SPDY, kubectl) needs ``create pods/exec``; a GET (WebSocket, the Python client) needs
        ``get pods/exec``, and from 1.35 also ``create`` (the AuthorizePodWebsocketUpgradeCreatePermission
        gate, beta and on by default in 1.35).
        """
        if self.command not in ("GET", "POST"):
            self._error(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
            return
        verbs = ["create"] if self.command == "POST" else ["get"]
        if self.command == "GET" and _minor(cluster.version) >= 35:
            verbs.append("create")
        for verb in verbs:
            if not self._authorize(user, verb, rtype, "pods/exec", namespace, name):
                return
        entry = cluster.store.get(rtype, namespace, name)
        if entry is None:
            self._error(404, "NotFound", f'pods "{name}" not found', details={"name": name, "kind": "pods"})
            return
        pod = json.loads(entry.body)
        qs = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        command = tuple(qs.get("command", []))
        flag = {k: parse_bool((qs.get(k) or [""])[-1]) for k in ("stdin", "stdout", "stderr", "tty")}
        if not (flag["stdin"] or flag["stdout"] or flag["stderr"]):
            self._error(400, "BadRequest", "you must specify at least 1 of stdin, stdout, stderr")
            return
        names = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or ()]
        container = (qs.get("container") or [""])[-1]
        if not container:
            if len(names) != 1:
                self._error(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]",
                )
                return
            container = names[0]
        if container not in names:
            self._error(400, "BadRequest", f"container {container} is not valid for pod {name}")
            return
        if not (pod.get("spec") or {}).get("nodeName"):
            self._error(400, "BadRequest", f"pod {name} does not have a host assigned")
            return
        statuses = (pod.get("status") or {}).get("containerStatuses") or ()
        state = next((s.get("state") or {} for s in statuses if s.get("name") == container), {})
        if "running" not in state:
            # The kubelet refuses; the apiserver passes its answer through the upgrade proxy.
            self._error(
                400, "BadRequest", f'unable to upgrade connection: container not found ("{container}")'
            )
            return
        if not command:
            self._error(400, "BadRequest", "you must specify at least one command for the container")
            return
        if self.headers.get("Upgrade", "").lower() != "websocket" or "upgrade" not in self.headers.get(
            "Connection", ""
        ).lower().replace(" ", "").split(","):
            self._error(400, "BadRequest", "Upgrade request required")
            return
        key = self.headers.get("Sec-WebSocket-Key", "")
        if self.headers.get("Sec-WebSocket-Version", "") != "13" or not valid_key(key):
            self._error(
                400, "BadRequest", "websocket: missing or bad Sec-WebSocket-Key/Sec-WebSocket-Version"
            )
            return
        offered = ",".join(self.headers.get_all("Sec-WebSocket-Protocol") or [])
        protocol = negotiate(offered, cluster.exec_protocols)
        if protocol is None:
            self._error(
                400,
                "BadRequest",
                f"unable to upgrade: none of the requested protocols [{offered}] is supported; "
                f"supported: {', '.join(cluster.exec_protocols)}",
            )
            return
        # The upgrade: from here on the connection speaks WebSocket and is closed afterwards.
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept_key(key))
        self.send_header("Sec-WebSocket-Protocol", protocol)
        self.end_headers()
        self._status = 101
        self.close_connection = True
        session = ExecSession(self.rfile, self.wfile, self.connection, protocol)
        req = ExecRequest(
            namespace=namespace,
            pod=name,
            container=container,
            command=command,
            stdin=flag["stdin"],
            stdout=flag["stdout"],
            stderr=flag["stderr"],
            tty=flag["tty"],
        )
        if req.stdin:
            req = dataclasses.replace(req, stdin_data=session.read_stdin(timeout=10.0))
        if cluster.exec_handler is None:
            run = functools.partial(cluster.kubelet_exec, pod=pod)
        else:
            run = resolve_handler(cluster.exec_handler, req)
        if run is None:
            outcome = ExecOutcome(
                runtime_error=f"dnsaudit test API server: no exec handler for {namespace}/{name}/{container}"
            )
        else:
            try:
                outcome = run(req)
            except Exception as exc:  # a broken test handler must still end the session cleanly
                outcome = ExecOutcome(runtime_error=f"exec handler raised {type(exc).__name__}: {exc}")
        with contextlib.suppress(OSError):
            session.finish(req, outcome)

    def _configz(self, cluster: Cluster, node: str, rest: list[str]) -> None:
        if rest != ["configz"]:
            self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
            return
        beh = cluster.kubelets.get(node) or KubeletBehaviour(cluster.default_kubelet)
        if beh.status in (502, 503):
            reason = "ServiceUnavailable" if beh.status == 503 else ""
            self._error(
                beh.status,
                reason,
                f"error trying to reach service: dial tcp {_node_ip(node)}:10250: i/o timeout",
            )
            return
        if beh.status == 403:
            # The kubelet's own authorizer answers in plain text, passed through by the proxy.
            self._send(
                403,
                b"Forbidden (user=kube-apiserver-kubelet-client, verb=get, resource=nodes, subresource=configz)",
                "text/plain; charset=utf-8",
            )
            return
        if beh.status != 200 or beh.config is None:
            self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
            return
        self._send(200, json.dumps({"kubeletconfig": beh.config}, separators=(",", ":")).encode())

    def _ssar(self, user: User, body: bytes) -> None:
        try:
            review = json.loads(body or b"{}")
        except ValueError:
            self._error(400, "BadRequest", "the body of the request was in an unknown format")
            return
        spec = review.get("spec") or {}
        ra = spec.get("resourceAttributes")
        allowed = False
        reason = ""
        if ra:
            resource = ra.get("resource", "")
            if ra.get("subresource"):
                resource += "/" + ra["subresource"]
            allowed = user.allowed(
                ra.get("verb", ""),
                ra.get("group", ""),
                resource,
                ra.get("namespace") or None,
                ra.get("name") or None,
            )
            if allowed:
                reason = "RBAC: allowed by ClusterRoleBinding or RoleBinding"
        out = {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": {"allowed": allowed, **({"reason": reason} if reason else {})},
        }
        self._send(201, _json(out))


# --- discovery bodies ----------------------------------------------------------------------------------


_HUGE_HEAD = b'{"kind":"List","apiVersion":"v1","metadata":{},"items":[],"padding":"'
_HUGE_TAIL = b'"}'


def _huge_chunks(size: int, chunk: int = 1 << 20) -> Iterable[bytes]:
    """A JSON object of exactly ``size`` bytes (at least the head and tail), in ``chunk``-byte pieces."""
    pad = max(size - len(_HUGE_HEAD) - len(_HUGE_TAIL), 0)
    yield _HUGE_HEAD
    block = b"x" * chunk
    while pad > 0:
        n = min(pad, chunk)
        yield block[:n]
        pad -= n
    yield _HUGE_TAIL


@functools.lru_cache(maxsize=4)
def _gzip_bomb(size: int) -> bytes:
    """``_huge_chunks(size)`` gzip-encoded (300 MiB of JSON is about 300 KiB), built in well under a second:
    one 1 MiB block is deflated once after a full flush (byte-aligned, no history) and repeated."""
    block = 1 << 20
    pad = max(size - len(_HUGE_HEAD) - len(_HUGE_TAIL), 0)
    full, rest = divmod(pad, block)
    enc = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = enc.compress(_HUGE_HEAD) + enc.flush(zlib.Z_FULL_FLUSH)
    one = enc.compress(b"x" * block) + enc.flush(zlib.Z_FULL_FLUSH)
    last = enc.compress(b"x" * rest + _HUGE_TAIL) + enc.flush()
    crc = zlib.crc32(_HUGE_HEAD)
    x = b"x" * block
    for _ in range(full):
        crc = zlib.crc32(x, crc)
    crc = zlib.crc32(b"x" * rest + _HUGE_TAIL, crc)
    total = len(_HUGE_HEAD) + pad + len(_HUGE_TAIL)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = crc.to_bytes(4, "little") + (total & 0xFFFFFFFF).to_bytes(4, "little")
    return header + first + one * full + last + trailer


def _gzip(body: bytes) -> bytes:
    enc = zlib.compressobj(6, zlib.DEFLATED, 31)
    return enc.compress(body) + enc.flush()


def _endless_page(body: bytes, rule: _FaultRule) -> bytes:
    """A list page with a continue token that never ends the list (the same one with ``same_token``)."""
    try:
        page = json.loads(body)
    except ValueError:
        return body
    if not isinstance(page, dict) or "items" not in page:
        return body
    page.setdefault("metadata", {})["continue"] = (
        "endless-loop" if rule.same_token else f"endless-{uuid.uuid4().hex}"
    )
    return json.dumps(page, separators=(",", ":")).encode()


def _json(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _minor(version: dict) -> int:
    """The minor version as a number (``"31+"`` on some managed clusters)."""
    m = re.match(r"\d+", str(version.get("minor", "")))
    return int(m.group()) if m else 0


def _node_ip(node: str) -> str:
    h = sum(node.encode()) % 200
    return f"10.0.{h // 100}.{h % 100 + 10}"


def _group_list(store: Store) -> dict:
    groups = []
    for g, versions in store.groups().items():
        if not g:
            continue
        preferred = BUILTIN_GROUPS.get(g, versions[0])
        groups.append(
            {
                "name": g,
                "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{g}/{preferred}", "version": preferred},
            }
        )
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _api_group(group: str, versions: list[str]) -> dict:
    preferred = BUILTIN_GROUPS.get(group, versions[0])
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
        "preferredVersion": {"groupVersion": f"{group}/{preferred}", "version": preferred},
    }


def _resource_list(store: Store, group: str, version: str) -> dict:
    resources = []
    for (g, v, _r), t in sorted(store.types.items()):
        if g != group or v != version:
            continue
        item: dict = {
            "name": t.resource,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": list(t.verbs),
        }
        if t.short_names:
            item["shortNames"] = list(t.short_names)
        if t.categories:
            item["categories"] = list(t.categories)
        resources.append(item)
        for sub in t.subresources:
            resources.append(
                {
                    "name": f"{t.resource}/{sub}",
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": t.kind
                    if sub in ("status", "ephemeralcontainers", "resize")
                    else _SUB_KINDS.get(sub, t.kind),
                    "verbs": _SUB_VERBS.get(sub, ["get", "patch", "update"]),
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


_SUB_KINDS = {
    "exec": "PodExecOptions",
    "log": "Pod",
    "proxy": "NodeProxyOptions",
    "attach": "PodAttachOptions",
    "portforward": "PodPortForwardOptions",
    "binding": "Binding",
    "eviction": "Eviction",
    "scale": "Scale",
    "token": "TokenRequest",
    "finalize": "Namespace",
}
_SUB_VERBS = {
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
    "log": ["get"],
    "proxy": ["create", "delete", "get", "patch", "update"],
    "binding": ["create"],
    "eviction": ["create"],
    "token": ["create"],
    "finalize": ["update"],
}
