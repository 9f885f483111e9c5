"""OpenID Connect single sign-on: mozilla-django-oidc with dnsaudit's provider, identity and role rules.

On only when ``DNSAUDIT_OIDC_ISSUER``, ``DNSAUDIT_OIDC_CLIENT_ID`` and ``DNSAUDIT_OIDC_CLIENT_SECRET`` are
set (``dnsaudit.core.sso.sso_settings``): then ``dnsaudit/urls.py`` routes ``/oidc/authenticate/`` and
``/oidc/callback/`` here and the login page shows "Sign in with SSO". The flow is the authorization-code
flow with ``state``, ``nonce`` and PKCE (S256).

* **Provider**: its endpoints come from ``{issuer}/.well-known/openid-configuration``, fetched at the first
  login and cached for :data:`DISCOVERY_TTL`; the key set likewise, fetched again (at most every
  :data:`JWKS_REFRESH_MIN` seconds) when a token names a key it does not hold (key rotation). Every answer
  is read with a timeout, a deadline and a byte cap, redirects are not followed, and every URL must be
  HTTPS unless the provider is on loopback (``dnsaudit.core.sso.url_problem``).
* **ID token**: RS256 only, verified with the provider's key (a token without ``kid`` only when the key
  set has one RSA signing key); ``iss`` must be the issuer, ``aud`` must hold the client id (and ``azp``
  be the client id when there are several audiences), ``exp``/``iat`` present and valid (60 s leeway),
  ``nonce`` the one this browser session sent. The userinfo answer must be about the same ``sub``.
* **Account**: an SSO account is found by ``sso:`` + SHA-256(issuer, sub), kept in its ``last_name``
  (no migration; the admin shows it) — never by name or e-mail. A new one is named
  ``preferred_username`` (else ``sub``) and gets an unusable password; if that name is already taken by
  another account (a local one, or another provider user) the login is refused with a message: no
  account is ever taken over.
* **Role**: re-derived at every login from ``DNSAUDIT_OIDC_GROUPS_CLAIM`` through
  ``DNSAUDIT_OIDC_ROLE_MAP``: the account's role groups become exactly the mapped highest role, or none
  (then it sees nothing, like any user without a role). Other groups and ``is_superuser`` are not touched.

Logins go through ``django.contrib.auth.login``, so ``user_logged_in`` is sent as for a password login.
Tokens and the client secret are never logged or stored.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch, path, reverse
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from dnsaudit.core.sso import (
    MARKER_PREFIX,
    ROLES,
    SIGNING_ALG,
    ProviderEndpoints,
    SsoConfigError,
    discovery_url,
    groups_from_claims,
    identity_marker,
    provider_endpoints,
    role_for_groups,
    select_signing_key,
    username_for,
)

log = logging.getLogger(__name__)

#: Seconds the discovery document and the key set are reused before being fetched again.
DISCOVERY_TTL = 3600
#: A token naming an unknown key makes dnsaudit fetch the key set again, but not more often than this.
JWKS_REFRESH_MIN = 30
#: What one answer from the provider may make dnsaudit read, and for how long.
MAX_RESPONSE_BYTES = 256 * 1024
RESPONSE_DEADLINE = 20
#: Clock skew tolerated on ``exp``/``iat``/``nbf``.
LEEWAY = 60

FAILED = "Single sign-on failed. Try again, or ask an admin if it keeps failing."
UNAVAILABLE = "Single sign-on is unavailable right now: the identity provider could not be reached."


class ProviderError(Exception):
    """The provider could not be reached or gave an answer dnsaudit cannot use (never holds a token)."""


def _enabled() -> bool:
    return bool(getattr(settings, "DNSAUDIT_OIDC_ENABLED", False))


def _timeout() -> float:
    return float(getattr(settings, "OIDC_TIMEOUT", 10))


def fetch_json(url: str, *, method: str = "GET", **kwargs) -> tuple[int, object, str]:
    """``(status, parsed body, content type)`` of one request to the provider, read within
    :data:`MAX_RESPONSE_BYTES` and :data:`RESPONSE_DEADLINE`, redirects not followed. A body that is not
    JSON parses as None (``application/jwt`` userinfo, an HTML error page)."""
    deadline = time.monotonic() + RESPONSE_DEADLINE
    try:
        with requests.request(
            method, url, timeout=_timeout(), stream=True, allow_redirects=False, **kwargs
        ) as response:
            body = bytearray()
            for chunk in response.iter_content(16 * 1024):
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise ProviderError(f"{url} answered more than {MAX_RESPONSE_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise ProviderError(f"{url} took more than {RESPONSE_DEADLINE} s to answer")
            status, ctype = response.status_code, response.headers.get("Content-Type", "")
    except requests.RequestException as exc:
        raise ProviderError(f"{url} could not be reached: {type(exc).__name__}") from None
    try:
        parsed = json.loads(bytes(body))
    except ValueError:
        parsed = None
    return status, parsed, ctype


@dataclass
class _Provider:
    endpoints: ProviderEndpoints
    fetched_at: float
    jwks: object = None
    jwks_fetched_at: float = 0.0


_providers: dict[str, _Provider] = {}
_lock = threading.Lock()


def reset_cache() -> None:
    """Forget every discovery document and key set (tests; a changed provider)."""
    with _lock:
        _providers.clear()


def _provider() -> _Provider:
    issuer = settings.DNSAUDIT_OIDC_ISSUER
    with _lock:
        cached = _providers.get(issuer)
    if cached and time.monotonic() - cached.fetched_at < DISCOVERY_TTL:
        return cached
    status, document, _ = fetch_json(discovery_url(issuer))
    if status != 200:
        raise ProviderError(f"{discovery_url(issuer)} answered HTTP {status}")
    try:
        endpoints = provider_endpoints(document, issuer)
    except SsoConfigError as exc:
        raise ProviderError(str(exc)) from None
    fresh = _Provider(endpoints=endpoints, fetched_at=time.monotonic())
    with _lock:
        _providers[issuer] = fresh
    return fresh


def provider_endpoints_now() -> ProviderEndpoints:
    """The configured provider's endpoints (cached discovery). Raises :class:`ProviderError`."""
    return _provider().endpoints


def _fetch_jwks(provider: _Provider) -> object:
    status, jwks, _ = fetch_json(provider.endpoints.jwks_uri)
    if status != 200 or not isinstance(jwks, dict):
        raise ProviderError(f"{provider.endpoints.jwks_uri} answered HTTP {status} without a key set")
    provider.jwks, provider.jwks_fetched_at = jwks, time.monotonic()
    return jwks


def signing_key(kid: str | None) -> dict:
    """The provider's JWK for a token with ``kid`` (None: no ``kid``), fetching the key set when it is
    not cached, is older than :data:`DISCOVERY_TTL`, or lacks that key (rotation)."""
    provider = _provider()
    age = time.monotonic() - provider.jwks_fetched_at
    jwks = provider.jwks if provider.jwks is not None and age < DISCOVERY_TTL else _fetch_jwks(provider)
    try:
        key = select_signing_key(jwks, kid)
        if key is None and time.monotonic() - provider.jwks_fetched_at >= JWKS_REFRESH_MIN:
            key = select_signing_key(_fetch_jwks(provider), kid)
    except SsoConfigError as exc:
        raise ProviderError(str(exc)) from None
    if key is None:
        which = f"key {kid[:100]!r}" if kid is not None else "a single RSA key (the token names none)"
        raise SuspiciousOperation(f"the provider's key set has no {which} for {SIGNING_ALG}")
    return key


def _refuse(request: HttpRequest, reason: str, *, shown: str | None = None) -> None:
    """Record why a login is refused: logged (``reason``) and shown on the login page (``shown``)."""
    log.warning("single sign-on refused: %s", reason)
    if shown:
        request.dnsaudit_sso_error = shown


def axes_exempt(request: HttpRequest | None, credentials: dict | None = None) -> bool:
    """django-axes' ``AXES_WHITELIST_CALLABLE`` while SSO is on: the OIDC callback is not counted.

    A failed callback is no password guess (passwords are checked, and throttled, by the provider; a
    code is a one-time random value bound to this session's state), and it has no username: axes would
    count it under (no username, address) and, after ``DNSAUDIT_LOGIN_FAILURE_LIMIT`` failures, lock
    single sign-on for everyone behind that address. Password logins are counted as before.
    """
    if request is None or (credentials or {}).get("username") is not None:
        return False
    try:
        return request.path == reverse("oidc_authentication_callback")
    except NoReverseMatch:
        return False


class OidcBackend(OIDCAuthenticationBackend):
    """The authentication backend of the OIDC callback (listed after django-axes' and ``ModelBackend``).

    It answers only the callback's ``authenticate(request, nonce=..., code_verifier=...)``: a password
    login never reaches the provider, even with ``code``/``state`` in its query string.
    """

    def __init__(self, *args, **kwargs):
        # Not the parent's __init__: it wants endpoints in settings; ours come from discovery.
        self.UserModel = get_user_model()
        self.OIDC_RP_CLIENT_ID = getattr(settings, "OIDC_RP_CLIENT_ID", "")
        self.OIDC_RP_CLIENT_SECRET = getattr(settings, "OIDC_RP_CLIENT_SECRET", "")
        self.OIDC_RP_SIGN_ALGO = SIGNING_ALG
        self.OIDC_RP_IDP_SIGN_KEY = None

    def authenticate(self, request, nonce=None, code_verifier=None, **kwargs):
        if not _enabled() or request is None or not nonce or kwargs:
            return None
        if request.path != reverse("oidc_authentication_callback"):
            return None
        try:
            endpoints = provider_endpoints_now()
        except ProviderError as exc:
            _refuse(request, str(exc), shown=UNAVAILABLE)
            return None
        self.endpoints = endpoints
        self.OIDC_OP_TOKEN_ENDPOINT = endpoints.token_endpoint
        self.OIDC_OP_USER_ENDPOINT = endpoints.userinfo_endpoint
        self.OIDC_OP_JWKS_ENDPOINT = endpoints.jwks_uri
        try:
            return super().authenticate(request, nonce=nonce, code_verifier=code_verifier)
        except ProviderError as exc:
            _refuse(request, str(exc), shown=UNAVAILABLE)
            return None

    # --- talking to the provider -------------------------------------------------------------------

    def get_token(self, payload):
        """The token endpoint's answer to the code; the client authenticates as the provider prefers
        (``client_secret_basic``, form-encoded as RFC 6749 §2.3.1 says, else ``client_secret_post``)."""
        data = dict(payload)
        auth = None
        if self.endpoints.token_auth_method == "client_secret_basic":
            data.pop("client_secret", None)
            auth = (quote(self.OIDC_RP_CLIENT_ID, safe=""), quote(self.OIDC_RP_CLIENT_SECRET, safe=""))
        status, body, _ = fetch_json(
            self.endpoints.token_endpoint,
            method="POST",
            data=data,
            auth=auth,
            headers={"Accept": "application/json"},
        )
        if status != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            raise ProviderError(f"the token endpoint answered HTTP {status} ({str(error)[:100]})")
        if not isinstance(body.get("id_token"), str):
            raise ProviderError("the token endpoint answered without an ID token")
        return body

    def verify_token(self, token, **kwargs):
        """The ID token's claims, once its signature, ``iss``, ``aud``/``azp``, ``exp``/``iat`` and
        ``nonce`` are checked; :class:`SuspiciousOperation` otherwise."""
        nonce = kwargs.get("nonce")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise SuspiciousOperation("the ID token is not a JWS") from None
        if header.get("alg") != SIGNING_ALG:
            raise SuspiciousOperation(
                f"the ID token is signed with {str(header.get('alg'))[:20]!r}, not {SIGNING_ALG}"
            )
        kid = header.get("kid")
        jwk = signing_key(kid if isinstance(kid, str) else None)
        try:
            key = jwt.PyJWK(jwk, algorithm=SIGNING_ALG).key
            claims = jwt.decode(
                token,
                key,
                algorithms=[SIGNING_ALG],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=self.endpoints.issuer,
                leeway=LEEWAY,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.PyJWKError:
            raise SuspiciousOperation("the provider's signing key is not a usable RSA key") from None
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"the ID token was refused: {exc}") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("the ID token's azp is not this client")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise SuspiciousOperation("the ID token has no subject")
        if not nonce or claims.get("nonce") != nonce:
            raise SuspiciousOperation("the ID token's nonce is not the one this login sent")
        return claims

    def get_userinfo(self, access_token, id_token, payload):
        """The userinfo endpoint's claims (JSON), or {} when the provider has none; about ``payload``'s
        subject or refused. A signed (``application/jwt``) answer is not used: the ID token's claims serve."""
        if not self.endpoints.userinfo_endpoint:
            return {}
        status, body, ctype = fetch_json(
            self.endpoints.userinfo_endpoint, headers={"Authorization": f"Bearer {access_token}"}
        )
        if status != 200:
            raise ProviderError(f"the userinfo endpoint answered HTTP {status}")
        if ctype.lower().startswith("application/jwt"):
            log.info(
                "single sign-on: the userinfo answer is signed (application/jwt); using the ID token's claims"
            )
            return {}
        if not isinstance(body, dict):
            raise ProviderError("the userinfo endpoint answered something that is not a JSON object")
        if body.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("the userinfo answer is about another subject than the ID token")
        return body

    # --- the account -------------------------------------------------------------------------------

    def get_or_create_user(self, access_token, id_token, payload):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        claims = {**payload, **userinfo}
        issuer, subject = self.endpoints.issuer, payload["sub"]
        marker = identity_marker(issuer, subject)
        with transaction.atomic():
            found = list(self.UserModel.objects.filter(last_name=marker)[:2])
            if len(found) > 1:
                raise SuspiciousOperation("two accounts carry the same single sign-on identity")
            user = found[0] if found else self._create(claims, marker)
            email = claims.get("email")
            if isinstance(email, str) and len(email) <= 254 and email != user.email:
                user.email = email
                user.save(update_fields=["email"])
            role = self.apply_role(user, claims)
        log.info("single sign-on: %s logged in with role %s", user.get_username(), role or "none")
        return user

    def _create(self, claims: dict, marker: str):
        username = username_for(claims)
        if username is None:
            _refuse(self.request, "neither preferred_username nor sub is a valid username", shown=FAILED)
            raise SuspiciousOperation("no usable username in the claims")
        if self.UserModel.objects.filter(username__iexact=username).exists():
            _refuse(
                self.request,
                f"an account named {username!r} exists and is not this provider user's",
                shown=(
                    f"An account named “{username}” already exists here and is not linked to single "
                    "sign-on, so it was not used. Ask an admin."
                ),
            )
            raise SuspiciousOperation("the username is taken by another account")
        user = self.UserModel.objects.create_user(username, password=None)  # unusable password
        user.last_name = marker
        user.save(update_fields=["last_name"])
        return user

    def apply_role(self, user, claims: dict) -> str | None:
        """Make the account's role groups exactly what the claims map to now; return that role."""
        groups = groups_from_claims(claims, settings.DNSAUDIT_OIDC_GROUPS_CLAIM)
        role = role_for_groups(groups, settings.DNSAUDIT_OIDC_ROLE_MAP)
        stale = user.groups.filter(name__in=ROLES).exclude(name=role or "")
        user.groups.remove(*stale)
        if role:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        user.__dict__.pop("_dnsaudit_role", None)  # clusters.access.role_of caches the role on the object
        return role

    def filter_users_by_claims(self, claims):  # never by e-mail (the parent's rule): see get_or_create_user
        return self.UserModel.objects.none()

    def update_user(self, user, claims):  # pragma: no cover - get_or_create_user does it
        return user

    def get_user(self, user_id):
        """Session users of this backend: only active accounts that are SSO accounts, only while SSO is on
        (deactivating an account ends its open sessions, as Django's own backend does)."""
        if not _enabled():
            return None
        user = super().get_user(user_id)
        if user is None or not user.is_active or not user.last_name.startswith(MARKER_PREFIX):
            return None
        return user


class AuthenticationRequestView(OIDCAuthenticationRequestView):
    """``/oidc/authenticate/``: send the browser to the provider (endpoint from discovery)."""

    def __init__(self, *args, **kwargs):
        View.__init__(self, *args, **kwargs)  # not the parent's: it reads the endpoint from settings
        self.OIDC_RP_CLIENT_ID = getattr(settings, "OIDC_RP_CLIENT_ID", "")

    def get(self, request):
        if not _enabled():
            raise Http404("single sign-on is not configured")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_endpoints_now().authorization_endpoint
        except ProviderError as exc:
            log.warning("single sign-on unavailable: %s", exc)
            messages.error(request, UNAVAILABLE)
            return HttpResponseRedirect(resolve_url(settings.LOGIN_URL))
        return super().get(request)


class CallbackView(OIDCAuthenticationCallbackView):
    """``/oidc/callback/``: the provider sends the browser back here with ``code`` and ``state``. Any
    failure — an unknown ``state``, a refused token, a taken username, the provider unreachable — logs
    why and returns to the login page with a message; nobody is logged in."""

    def get(self, request):
        if not _enabled():
            raise Http404("single sign-on is not configured")
        if request.GET.get("error"):
            # Refused or cancelled at the provider. Unlike the parent, never log out whoever is logged in
            # here: a link to this URL must not end someone's session (logout needs a POST).
            states = request.session.get("oidc_states")
            if isinstance(states, dict) and states.pop(request.GET.get("state"), None) is not None:
                request.session.modified = True
            log.info("single sign-on: the provider answered %s", request.GET["error"][:100])
            return self.login_failure()
        try:
            return super().get(request)
        except SuspiciousOperation as exc:
            log.warning("single sign-on refused: %s", exc)
            return self.login_failure()

    def login_failure(self):
        messages.error(self.request, getattr(self.request, "dnsaudit_sso_error", FAILED))
        return HttpResponseRedirect(resolve_url(settings.LOGIN_URL))


urlpatterns = [
    path(
        "authenticate/",
        login_not_required(AuthenticationRequestView.as_view()),
        name="oidc_authentication_init",
    ),
    path("callback/", login_not_required(CallbackView.as_view()), name="oidc_authentication_callback"),
]
