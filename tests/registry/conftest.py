"""Real registries for the registry suite: Debian's ``docker-registry`` on free loopback ports.

Three instances (each started once per session, lazily): anonymous, htpasswd basic auth, and bearer
tokens issued by a small token server written here (JWTs signed with a trustme certificate that the
registry trusts through ``auth.token.rootcertbundle``).
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from tests.support import free_port, need, need_binary

USER, PASSWORD = "alice", "s3cret-pw"


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    proc: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def _start(tmp: Path, name: str, auth: str = "") -> Registry:
    binary = need_binary("docker-registry")
    port = free_port()
    root = tmp / name
    root.mkdir()
    cfg = root / "config.yml"
    cfg.write_text(
        "version: 0.1\n"
        "log: {level: info}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n" + auth
    )
    log = root / "registry.log"
    proc = subprocess.Popen([binary, "serve", str(cfg)], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
            return Registry(f"127.0.0.1:{port}", proc, log)
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    need(False, f"docker-registry did not start: {log.read_text()[-500:]}")
    raise AssertionError("unreachable")


def _stop(reg: Registry) -> None:
    reg.proc.terminate()
    try:
        reg.proc.wait(5)
    except subprocess.TimeoutExpired:
        reg.proc.kill()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """An anonymous registry (pull and push)."""
    reg = _start(tmp_path_factory.mktemp("reg"), "anon")
    yield reg
    _stop(reg)


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory):
    """A registry with htpasswd (bcrypt) basic auth; user ``alice``."""
    htpasswd = need_binary("htpasswd")
    tmp = tmp_path_factory.mktemp("regbasic")
    pwfile = tmp / "htpasswd"
    pwfile.write_bytes(
        subprocess.run([htpasswd, "-Bbn", USER, PASSWORD], check=True, capture_output=True).stdout
    )
    reg = _start(tmp, "basic", f"auth: {{htpasswd: {{realm: dnsaudit-test, path: {pwfile}}}}}\n")
    yield reg
    _stop(reg)


# --- bearer tokens ---------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues registry JWTs (ES256/RS256 with an x5c chain) to ``alice`` only."""

    def __init__(self, cert, key_pem: bytes, service: str, issuer: str) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        self.key = load_pem_private_key(key_pem, password=None)
        self.cert_der = cert
        self.service = service
        self.issuer = issuer
        self.requests: list[dict] = []
        self.port = free_port()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep pytest output clean
                pass

            def do_GET(self):
                q = parse_qs(urlparse(self.path).query)
                auth = self.headers.get("Authorization", "")
                server.requests.append({"query": q, "auth": auth})
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if auth != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": server.token(q.get("scope", [""])[0])}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def token(self, scope: str) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        access = []
        parts = scope.split(":")
        if len(parts) >= 3 and parts[0] == "repository":
            access.append(
                {"type": "repository", "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")}
            )
        now = int(time.time())
        is_ec = isinstance(self.key, ec.EllipticCurvePrivateKey)
        header = {
            "typ": "JWT",
            "alg": "ES256" if is_ec else "RS256",
            "x5c": [base64.b64encode(self.cert_der).decode()],
        }
        claims = {
            "iss": self.issuer,
            "sub": USER,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        if is_ec:  # JWS wants the raw r || s, not DER
            r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            sig = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(sig)}"


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory):
    """A registry with ``auth: token`` trusting our token server; yields (registry, token server)."""
    import trustme
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    tmp = tmp_path_factory.mktemp("regtoken")
    ca = trustme.CA()
    leaf = ca.issue_cert("token-issuer.test")
    bundle = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    cert_der = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).public_bytes(Encoding.DER)
    ts = TokenServer(cert_der, leaf.private_key_pem.bytes(), "dnsaudit-registry", "dnsaudit-issuer")
    reg = _start(
        tmp,
        "token",
        f"auth: {{token: {{realm: '{ts.realm}', service: dnsaudit-registry, issuer: dnsaudit-issuer, "
        f"rootcertbundle: {bundle}}}}}\n",
    )
    yield reg, ts
    _stop(reg)
    ts.httpd.shutdown()
