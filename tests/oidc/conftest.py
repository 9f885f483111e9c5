"""A real OpenID provider on loopback (oidc-provider-mock, a Flask app on werkzeug in a thread), and
dnsaudit configured to use it.

``provider``: the running provider (session), with ``set_user(sub, claims)`` through its users endpoint
(``PUT /users/<sub>``: the claims its ID tokens and userinfo carry) and ``register(redirect_uri)``
(dynamic client registration; the provider is started with registration required, so the client secret
is checked, and with the nonce required).
``sso``: dnsaudit configured for that provider as ``DNSAUDIT_OIDC_*`` would (the same
``dnsaudit.core.sso.sso_settings``), its backend listed, and ``dnsaudit.urls`` reloaded so the OIDC URLs
are routed; everything undone afterwards.
"""

from __future__ import annotations

import importlib
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import requests
import werkzeug.serving
from django.conf import settings
from django.test import override_settings
from django.urls import clear_url_caches

from dnsaudit import oidc
from dnsaudit.core.sso import sso_settings

ROLE_MAP = "platform-admins=admin,sre=operator,dev=viewer"
BACKEND = "dnsaudit.oidc.OidcBackend"


class _QuietHandler(werkzeug.serving.WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # one line per request would drown the test output
        pass


@dataclass
class Provider:
    issuer: str

    def _session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # loopback, never through a proxy
        return session

    def set_user(self, sub: str, claims: dict) -> None:
        response = self._session().put(f"{self.issuer}/users/{sub}", json=claims, timeout=10)
        assert response.status_code == 204, response.text

    def register(self, redirect_uri: str) -> tuple[str, str]:
        response = self._session().post(
            f"{self.issuer}/oauth2/clients", json={"redirect_uris": [redirect_uri]}, timeout=10
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return body["client_id"], body["client_secret"]


@pytest.fixture(scope="session")
def provider() -> Iterator[Provider]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Authlib's deprecation warnings about its own jose module
        from oidc_provider_mock import app

    server = werkzeug.serving.make_server(
        "127.0.0.1",
        0,
        app(require_client_registration=True, require_nonce=True),
        threaded=True,
        request_handler=_QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield Provider(issuer=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


@pytest.fixture(scope="session")
def client_credentials(provider, live_server) -> tuple[str, str]:
    """dnsaudit registered at the provider, with the live server's callback as its only redirect URI."""
    return provider.register(f"{live_server.url}/oidc/callback/")


def reload_urls() -> None:
    clear_url_caches()
    if "dnsaudit.urls" in sys.modules:
        importlib.reload(sys.modules["dnsaudit.urls"])
    clear_url_caches()


@contextmanager
def sso_configured(issuer: str, client_id: str, client_secret: str, **env: str) -> Iterator[dict]:
    values = sso_settings(
        {
            "DNSAUDIT_OIDC_ISSUER": issuer,
            "DNSAUDIT_OIDC_CLIENT_ID": client_id,
            "DNSAUDIT_OIDC_CLIENT_SECRET": client_secret,
            "DNSAUDIT_OIDC_ROLE_MAP": ROLE_MAP,
            **env,
        }
    )
    backends = [b for b in settings.AUTHENTICATION_BACKENDS if b != BACKEND] + [BACKEND]
    oidc.reset_cache()
    try:
        with override_settings(**values, AUTHENTICATION_BACKENDS=backends):
            reload_urls()
            yield values
    finally:
        oidc.reset_cache()
        reload_urls()


@pytest.fixture
def sso(provider, client_credentials) -> Iterator[dict]:
    with sso_configured(provider.issuer, *client_credentials) as values:
        yield values


@pytest.fixture(autouse=True)
def _urls_follow_settings():
    """Every test starts with the URLs the current settings give (SSO off unless the environment says)."""
    reload_urls()
    yield
