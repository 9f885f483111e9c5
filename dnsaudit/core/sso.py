"""Single sign-on (OpenID Connect) rules, as plain functions over plain data.

What the Django edge (``dnsaudit/oidc.py``) decides with them:

* **Configuration** (:func:`sso_settings`): SSO is off unless ``DNSAUDIT_OIDC_ISSUER``,
  ``DNSAUDIT_OIDC_CLIENT_ID`` and ``DNSAUDIT_OIDC_CLIENT_SECRET`` are all set; some but not all of them is
  a mistake that stops the start. ``DNSAUDIT_OIDC_GROUPS_CLAIM`` (default ``groups``) names the claim
  holding the user's groups and ``DNSAUDIT_OIDC_ROLE_MAP`` (``platform-admins=admin,sre=operator``) maps
  groups to dnsaudit's roles; ``DNSAUDIT_OIDC_SCOPES`` (default ``openid profile email``) is what the
  login asks for (Dex and Okta put groups in the token only for the ``groups`` scope).
* **Where the provider may be reached** (:func:`url_problem`): HTTPS, or plain HTTP on a loopback host
  only (a provider on the same machine, as in the tests).
* **The discovery document** (:func:`provider_endpoints`): its ``issuer`` must be exactly the configured
  one (OpenID Connect Discovery 1.0 §4.3) and every endpoint obeys the rule above (an HTTPS issuer's
  endpoints are all HTTPS).
* **The signing key** (:func:`select_signing_key`): by ``kid``; a token without ``kid`` is accepted only
  when the key set holds exactly one RSA signing key (RFC 7515 makes ``kid`` optional; OpenID Connect
  Core §10.1 requires it only when there are several keys).
* **The role** (:func:`role_for_groups`): the highest role any of the user's groups maps to, or None.
* **Who the user is** (:func:`identity_marker`, :func:`username_for`): an SSO account is found by a
  digest of issuer and subject, never by its name or e-mail, so a provider user can never take over a
  local account that happens to share its name.

No Django, no network.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

#: dnsaudit's roles, lowest first: the group names ``clusters.access.ROLES`` uses (a test keeps them equal).
ROLES = ("viewer", "operator", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}

ISSUER_ENV = "DNSAUDIT_OIDC_ISSUER"
CLIENT_ID_ENV = "DNSAUDIT_OIDC_CLIENT_ID"
CLIENT_SECRET_ENV = "DNSAUDIT_OIDC_CLIENT_SECRET"
GROUPS_CLAIM_ENV = "DNSAUDIT_OIDC_GROUPS_CLAIM"
ROLE_MAP_ENV = "DNSAUDIT_OIDC_ROLE_MAP"
SCOPES_ENV = "DNSAUDIT_OIDC_SCOPES"
DEFAULT_GROUPS_CLAIM = "groups"
DEFAULT_SCOPES = "openid profile email"

#: The only ID token signature dnsaudit accepts.
SIGNING_ALG = "RS256"
#: What Django accepts as a username (``UnicodeUsernameValidator``) and its length.
_USERNAME = re.compile(r"^[\w.@+-]{1,150}\Z")
#: The prefix of :func:`identity_marker`, kept in the account's ``last_name``.
MARKER_PREFIX = "sso:"


class SsoConfigError(ValueError):
    """The SSO settings or the provider's discovery document cannot be used; the message says why."""


@dataclass(frozen=True)
class ProviderEndpoints:
    """What dnsaudit uses of a provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    #: ``client_secret_basic`` when the provider accepts it (the OAuth default), else ``client_secret_post``.
    token_auth_method: str = "client_secret_basic"
    extra: dict = field(default_factory=dict, compare=False, repr=False)


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_problem(url: object) -> str | None:
    """Why dnsaudit will not talk to ``url`` as an OpenID provider, or None when it may.

    HTTPS anywhere; plain HTTP only to a loopback host (``127.0.0.0/8``, ``::1``, ``localhost``), so
    tokens and the client secret never cross a network in clear. No credentials in the URL, no fragment.
    """
    if not isinstance(url, str) or not url:
        return "is not a URL"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http"):
        return "must be an https:// URL"
    if not host:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    if parts.fragment:
        return "must not have a fragment"
    if parts.scheme == "https" or is_loopback_host(host):
        return None
    return "must use HTTPS (plain HTTP only to a provider on this machine: 127.0.0.1, ::1, localhost)"


def discovery_url(issuer: str) -> str:
    """``{issuer}/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0 §4)."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def parse_role_map(text: str) -> dict[str, str]:
    """``"platform-admins=admin, sre=operator,dev=viewer"`` -> ``{group: role}``.

    The last ``=`` splits (a group name may hold one); spaces around items are ignored; a role must be
    one of :data:`ROLES`; a group mapped twice to different roles is refused.
    """
    mapping: dict[str, str] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        group, sep, role = item.rpartition("=")
        group, role = group.strip(), role.strip()
        if not sep or not group:
            raise SsoConfigError(f"{ROLE_MAP_ENV}: {item!r} is not GROUP=ROLE")
        if role not in _RANK:
            raise SsoConfigError(
                f"{ROLE_MAP_ENV}: {role!r} (for group {group!r}) is not one of {', '.join(ROLES)}"
            )
        if mapping.get(group, role) != role:
            raise SsoConfigError(
                f"{ROLE_MAP_ENV}: group {group!r} is mapped to both {mapping[group]} and {role}"
            )
        mapping[group] = role
    return mapping


def sso_settings(env: Mapping[str, str]) -> dict[str, object]:
    """The Django settings single sign-on needs, from the environment ``env``.

    Always ``DNSAUDIT_OIDC_ENABLED``; when it is true also the ``DNSAUDIT_OIDC_*`` values dnsaudit reads
    and the ``OIDC_*`` settings of mozilla-django-oidc (endpoints are not among them: they come from the
    discovery document at the first login). Raises :class:`SsoConfigError` with the reason.
    """

    def get(name: str) -> str:
        return (env.get(name) or "").strip()

    issuer, client_id, secret = get(ISSUER_ENV), get(CLIENT_ID_ENV), get(CLIENT_SECRET_ENV)
    given = {ISSUER_ENV: issuer, CLIENT_ID_ENV: client_id, CLIENT_SECRET_ENV: secret}
    if not any(given.values()):
        return {"DNSAUDIT_OIDC_ENABLED": False}
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise SsoConfigError(
            f"single sign-on needs {ISSUER_ENV}, {CLIENT_ID_ENV} and {CLIENT_SECRET_ENV} together; "
            f"missing: {', '.join(missing)}"
        )
    problem = url_problem(issuer)
    if problem is None and (urlsplit(issuer).query or "?" in issuer):
        problem = "must not have a query"
    if problem:
        raise SsoConfigError(f"{ISSUER_ENV}={issuer!r} {problem}")
    groups_claim = get(GROUPS_CLAIM_ENV) or DEFAULT_GROUPS_CLAIM
    role_map = parse_role_map(env.get(ROLE_MAP_ENV) or "")
    scopes = " ".join((get(SCOPES_ENV) or DEFAULT_SCOPES).replace(",", " ").split())
    if "openid" not in scopes.split():
        raise SsoConfigError(f"{SCOPES_ENV}={scopes!r} must include openid")
    return {
        "DNSAUDIT_OIDC_ENABLED": True,
        "DNSAUDIT_OIDC_ISSUER": issuer,
        "DNSAUDIT_OIDC_GROUPS_CLAIM": groups_claim,
        "DNSAUDIT_OIDC_ROLE_MAP": role_map,
        # mozilla-django-oidc
        "OIDC_RP_CLIENT_ID": client_id,
        "OIDC_RP_CLIENT_SECRET": secret,
        "OIDC_RP_SIGN_ALGO": SIGNING_ALG,
        "OIDC_RP_SCOPES": scopes,
        "OIDC_USE_NONCE": True,
        "OIDC_USE_PKCE": True,
        "OIDC_TIMEOUT": 10,
        "OIDC_CREATE_USER": True,
        "OIDC_AUTHENTICATE_CLASS": "dnsaudit.oidc.AuthenticationRequestView",
        "OIDC_CALLBACK_CLASS": "dnsaudit.oidc.CallbackView",
        # django-axes: a failed callback is no password guess (see dnsaudit.oidc.axes_exempt)
        "AXES_WHITELIST_CALLABLE": "dnsaudit.oidc.axes_exempt",
    }


def provider_endpoints(document: object, issuer: str) -> ProviderEndpoints:
    """Check a discovery document against the configured ``issuer`` and return its endpoints."""
    if not isinstance(document, dict):
        raise SsoConfigError("the discovery document is not a JSON object")
    if document.get("issuer") != issuer:
        raise SsoConfigError(
            f"the discovery document names the issuer {str(document.get('issuer'))[:200]!r}; "
            f"{ISSUER_ENV} must be exactly that (it is {issuer!r})"
        )
    found: dict[str, str | None] = {}
    issuer_https = (
        urlsplit(issuer).scheme == "https"
    )  # then plain HTTP is never accepted, not even to loopback
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        value = document.get(name)
        if value is None and name == "userinfo_endpoint":
            found[name] = None
            continue
        problem = url_problem(value)
        if problem is None and issuer_https and urlsplit(value).scheme != "https":  # type: ignore[arg-type]
            problem = "must use HTTPS like the issuer"
        if problem:
            raise SsoConfigError(f"the discovery document's {name} {problem}")
        found[name] = value  # type: ignore[assignment]
    algs = document.get("id_token_signing_alg_values_supported")
    if isinstance(algs, list) and SIGNING_ALG not in algs:
        raise SsoConfigError(
            f"the provider does not sign ID tokens with {SIGNING_ALG} (it offers {algs[:10]})"
        )
    methods = document.get("token_endpoint_auth_methods_supported")
    method = "client_secret_basic"
    if isinstance(methods, list) and "client_secret_basic" not in methods:
        if "client_secret_post" not in methods:
            raise SsoConfigError(
                "the token endpoint accepts neither client_secret_basic nor client_secret_post"
            )
        method = "client_secret_post"
    return ProviderEndpoints(
        issuer=issuer,
        authorization_endpoint=found["authorization_endpoint"],  # type: ignore[arg-type]
        token_endpoint=found["token_endpoint"],  # type: ignore[arg-type]
        jwks_uri=found["jwks_uri"],  # type: ignore[arg-type]
        userinfo_endpoint=found["userinfo_endpoint"],
        token_auth_method=method,
    )


def _signing_rsa_keys(jwks: object) -> list[dict]:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise SsoConfigError("the provider's JWKS has no key list")
    return [
        key
        for key in keys
        if isinstance(key, dict)
        and key.get("kty") == "RSA"
        and key.get("use", "sig") == "sig"
        and key.get("alg", SIGNING_ALG) == SIGNING_ALG
        and isinstance(key.get("n"), str)
        and isinstance(key.get("e"), str)
    ]


def select_signing_key(jwks: object, kid: object) -> dict | None:
    """The JWK that verifies a token whose header has ``kid`` (None: no ``kid`` header), or None.

    With a ``kid``: the RSA signing key of that id. Without: the key set's only RSA signing key — with
    two or more, a token that does not say which is refused (None).
    """
    keys = _signing_rsa_keys(jwks)
    if kid is not None:
        matching = [key for key in keys if key.get("kid") == kid]
        return matching[0] if len(matching) == 1 else None
    return keys[0] if len(keys) == 1 else None


def claim_value(claims: Mapping[str, object], name: str) -> object:
    """``claims[name]``; when there is no such top-level claim, ``name`` as a dotted path
    (``realm_access.roles`` for Keycloak realm roles). Missing: None."""
    if name in claims:
        return claims[name]
    value: object = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def groups_from_claims(claims: Mapping[str, object], claim: str) -> list[str]:
    """The user's groups: a list of strings (other items ignored), or one string; anything else: none."""
    value = claim_value(claims, claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def role_for_groups(groups: Iterable[str], role_map: Mapping[str, str]) -> str | None:
    """The highest role any of ``groups`` maps to; None when none is mapped (the user sees nothing)."""
    roles = [role_map[group] for group in groups if group in role_map]
    return max(roles, key=_RANK.__getitem__) if roles else None


def identity_marker(issuer: str, subject: str) -> str:
    """What marks the account of (``issuer``, ``subject``): ``sso:`` + SHA-256 hex (fits the 150
    characters of ``last_name`` whatever the subject's length; ``sub`` may be 255)."""
    digest = hashlib.sha256(json.dumps([issuer, subject]).encode()).hexdigest()  # unambiguous pair
    return MARKER_PREFIX + digest


def username_for(claims: Mapping[str, object]) -> str | None:
    """The account name for a new SSO user: ``preferred_username``, else ``sub``, the first that is a
    valid Django username (letters, digits, ``@.+-_``, at most 150); None when neither is."""
    for name in ("preferred_username", "sub"):
        value = claims.get(name)
        if isinstance(value, str) and _USERNAME.match(value):
            return value
    return None
