"""ID token verification and provider discovery against a real HTTP server on loopback that serves a
discovery document and a key set we control, with tokens signed here (PyJWT, RSA keys made per run):
every rule of ``OidcBackend.verify_token`` and ``dnsaudit.oidc`` discovery must refuse what breaks it."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import SuspiciousOperation

from dnsaudit import oidc
from tests.oidc.conftest import sso_configured

CLIENT_ID = "dnsaudit-test"
NONCE = "n-0123456789"


@functools.cache
def _private(index: int):
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


_made = itertools.count()


def new_key(kid: str | None):
    """A key pair (a different one at each call; a few are made per run and reused across tests)."""
    private = _private(next(_made) % 4)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    if kid is not None:
        public["kid"] = kid
    return private, public


class FakeIdp:
    """Serves ``/.well-known/openid-configuration`` and ``/jwks`` from attributes tests change."""

    def __init__(self) -> None:
        idp = self
        self.hits: list[str] = []
        self.jwks: dict = {"keys": []}
        self.discovery_override: dict | None = None
        self.raw: dict[str, tuple[int, bytes, dict]] = {}

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                idp.hits.append(self.path)
                if self.path in idp.raw:
                    status, body, headers = idp.raw[self.path]
                elif self.path == "/.well-known/openid-configuration":
                    status, body, headers = 200, json.dumps(idp.discovery()).encode(), {}
                elif self.path == "/jwks":
                    status, body, headers = 200, json.dumps(idp.jwks).encode(), {}
                else:
                    status, body, headers = 404, b"{}", {}
                self.send_response(status)
                self.send_header("Content-Type", headers.get("Content-Type", "application/json"))
                for name, value in headers.items():
                    if name != "Content-Type":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def discovery(self) -> dict:
        if self.discovery_override is not None:
            return self.discovery_override
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def idp():
    server = FakeIdp()
    with sso_configured(server.issuer, CLIENT_ID, "s3cret"):
        yield server
    server.close()


def claims(idp, **changes) -> dict:
    now = int(time.time())
    base = {"iss": idp.issuer, "aud": CLIENT_ID, "sub": "u-1", "iat": now, "exp": now + 300, "nonce": NONCE}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(private, payload: dict, kid: str | None = None, alg: str = "RS256") -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(payload, private, algorithm=alg, headers=headers)


def verify(token: str, nonce: str | None = NONCE) -> dict:
    backend = oidc.OidcBackend()
    backend.endpoints = oidc.provider_endpoints_now()
    return backend.verify_token(token, nonce=nonce)


def test_a_token_without_kid_is_verified_with_the_only_key(idp):
    private, public = new_key("k1")
    idp.jwks = {"keys": [public]}
    assert verify(sign(private, claims(idp)))["sub"] == "u-1"


def test_a_token_without_kid_is_refused_when_the_key_set_has_two_keys(idp):
    private, public = new_key("k1")
    _, other = new_key("k2")
    idp.jwks = {"keys": [public, other]}
    with pytest.raises(SuspiciousOperation, match="single RSA key"):
        verify(sign(private, claims(idp)))
    assert verify(sign(private, claims(idp), kid="k1"))["sub"] == "u-1"  # saying which key is enough


def test_keys_that_do_not_sign_rs256_do_not_count(idp):
    private, public = new_key("k1")
    _, encryption = new_key("enc")
    encryption["use"] = "enc"
    idp.jwks = {"keys": [public, encryption, {"kty": "oct", "k": "AAAA", "kid": "hmac"}]}
    assert verify(sign(private, claims(idp)))["sub"] == "u-1"


def test_a_rotated_key_is_fetched_again(idp, monkeypatch):
    monkeypatch.setattr(oidc, "JWKS_REFRESH_MIN", 0)
    old, old_public = new_key("old")
    idp.jwks = {"keys": [old_public]}
    verify(sign(old, claims(idp), kid="old"))
    new, new_public = new_key("new")
    idp.jwks = {"keys": [new_public]}
    before = idp.hits.count("/jwks")
    assert verify(sign(new, claims(idp), kid="new"))["sub"] == "u-1"
    assert idp.hits.count("/jwks") == before + 1


def test_an_unknown_key_is_not_fetched_again_and_again(idp):
    private, public = new_key("k1")
    idp.jwks = {"keys": [public]}
    verify(sign(private, claims(idp), kid="k1"))
    before = idp.hits.count("/jwks")
    for _ in range(3):
        with pytest.raises(SuspiciousOperation, match="no key 'nope'"):
            verify(sign(private, claims(idp), kid="nope"))
    assert idp.hits.count("/jwks") == before  # within JWKS_REFRESH_MIN of the last fetch


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"iss": "http://127.0.0.1:1"}, "Invalid issuer"),
        ({"aud": "someone-else"}, "Audience doesn't match"),
        ({"aud": None}, "aud"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"exp": None}, "exp"),
        ({"iat": None}, "iat"),
        ({"iat": int(time.time()) + 3600}, "not yet valid"),
        ({"nbf": int(time.time()) + 3600}, "not yet valid"),
        ({"sub": None}, "sub"),
        ({"nonce": "another"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"aud": [CLIENT_ID, "other"]}, "azp"),
        ({"aud": [CLIENT_ID, "other"], "azp": "other"}, "azp"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_a_token_breaking_a_rule_is_refused(idp, change, message):
    private, public = new_key("k1")
    idp.jwks = {"keys": [public]}
    with pytest.raises(SuspiciousOperation, match=message):
        verify(sign(private, claims(idp, **change), kid="k1"))


def test_several_audiences_are_accepted_when_azp_is_this_client(idp):
    private, public = new_key("k1")
    idp.jwks = {"keys": [public]}
    assert verify(sign(private, claims(idp, aud=[CLIENT_ID, "other"], azp=CLIENT_ID)))["sub"] == "u-1"


def test_a_login_without_a_nonce_is_refused(idp):
    private, public = new_key("k1")
    idp.jwks = {"keys": [public]}
    with pytest.raises(SuspiciousOperation, match="nonce"):
        verify(sign(private, claims(idp, nonce=None)), nonce=None)


def test_a_forged_signature_is_refused(idp):
    _, public = new_key("k1")
    attacker, _ = new_key("k1")
    idp.jwks = {"keys": [public]}
    with pytest.raises(SuspiciousOperation, match="Signature verification failed"):
        verify(sign(attacker, claims(idp), kid="k1"))


def test_other_algorithms_are_refused(idp):
    private, public = new_key("k1")
    idp.jwks = {"keys": [public]}
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # HS256 keyed with the public key (the classic algorithm confusion), and an unsigned token.
    # (PyJWT refuses to make one, so by hand.)
    signing_input = b".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
        for part in ({"alg": "HS256", "typ": "JWT"}, claims(idp))
    )
    mac = base64.urlsafe_b64encode(hmac.new(pem, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    forged = (signing_input + b"." + mac).decode()
    for token in (forged, jwt.encode(claims(idp), None, algorithm="none")):
        with pytest.raises(SuspiciousOperation, match="not RS256"):
            verify(token)
    with pytest.raises(SuspiciousOperation, match="not a JWS"):
        verify("not-a-token")


# --- discovery ----------------------------------------------------------------------------------------


def test_discovery_is_fetched_once_and_cached(idp):
    first = oidc.provider_endpoints_now()
    second = oidc.provider_endpoints_now()
    assert first == second
    assert first.token_endpoint == f"{idp.issuer}/token"
    assert idp.hits.count("/.well-known/openid-configuration") == 1


def test_a_discovery_document_for_another_issuer_is_refused(idp):
    idp.discovery_override = {**idp.discovery(), "issuer": "https://evil.example"}
    with pytest.raises(oidc.ProviderError, match="must be exactly that"):
        oidc.provider_endpoints_now()


def test_plain_http_endpoints_off_loopback_are_refused(idp):
    idp.discovery_override = {**idp.discovery(), "token_endpoint": "http://idp.example/token"}
    with pytest.raises(oidc.ProviderError, match="token_endpoint must use HTTPS"):
        oidc.provider_endpoints_now()


def test_an_oversized_discovery_document_is_refused(idp):
    big = json.dumps({**idp.discovery(), "padding": "x" * (oidc.MAX_RESPONSE_BYTES + 1)}).encode()
    idp.raw["/.well-known/openid-configuration"] = (200, big, {})
    with pytest.raises(oidc.ProviderError, match="more than"):
        oidc.provider_endpoints_now()


def test_a_redirect_is_not_followed(idp):
    idp.raw["/.well-known/openid-configuration"] = (302, b"", {"Location": "http://169.254.169.254/"})
    with pytest.raises(oidc.ProviderError, match="HTTP 302"):
        oidc.provider_endpoints_now()
    assert idp.hits == ["/.well-known/openid-configuration"]


def test_a_provider_without_rs256_is_refused(idp):
    idp.discovery_override = {**idp.discovery(), "id_token_signing_alg_values_supported": ["HS256"]}
    with pytest.raises(oidc.ProviderError, match="RS256"):
        oidc.provider_endpoints_now()


# --- what reaches the provider --------------------------------------------------------------------------


@pytest.mark.django_db
def test_only_the_callback_with_its_nonce_reaches_the_provider(idp, rf):
    from django.contrib.auth import authenticate

    from tests.web import factories

    backend = oidc.OidcBackend()
    assert backend.authenticate(rf.get("/login/?code=c&state=s"), username="a", password="b") is None
    assert backend.authenticate(rf.get("/oidc/callback/?code=c&state=s")) is None  # no nonce
    assert backend.authenticate(rf.get("/login/?code=c&state=s"), nonce="n") is None  # not the callback
    # A password login whose URL carries code and state is a password login.
    user = factories.make_user("viewer", username="quinn")
    request = rf.post("/login/?code=c&state=s")
    assert authenticate(request, username="quinn", password=factories.PASSWORD) == user
    assert idp.hits == []


def test_the_views_answer_404_when_sso_is_off(rf, settings):
    from django.http import Http404

    settings.DNSAUDIT_OIDC_ENABLED = False
    for view, path in (
        (oidc.AuthenticationRequestView, "/oidc/authenticate/"),
        (oidc.CallbackView, "/oidc/callback/?code=c&state=s"),
    ):
        with pytest.raises(Http404):
            view.as_view()(rf.get(path))
    assert oidc.OidcBackend().get_user(1) is None
