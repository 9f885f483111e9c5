"""The pure SSO rules (dnsaudit.core.sso): settings, role map, URLs, keys, claims, names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clusters import access
from dnsaudit.core import sso

ROOT = Path(__file__).resolve().parents[2]
ON = {
    "DNSAUDIT_OIDC_ISSUER": "https://idp.example/realms/ops",
    "DNSAUDIT_OIDC_CLIENT_ID": "dnsaudit",
    "DNSAUDIT_OIDC_CLIENT_SECRET": "s3cret",
}


def test_the_roles_are_the_dashboards_roles():
    assert sso.ROLES == access.ROLES


def test_sso_is_off_unless_configured():
    assert sso.sso_settings({}) == {"DNSAUDIT_OIDC_ENABLED": False}
    assert sso.sso_settings({"DNSAUDIT_OIDC_ROLE_MAP": "sre=operator"}) == {"DNSAUDIT_OIDC_ENABLED": False}


def test_sso_settings_when_configured():
    values = sso.sso_settings(
        {**ON, "DNSAUDIT_OIDC_ROLE_MAP": "platform-admins=admin,sre=operator,dev=viewer"}
    )
    assert values["DNSAUDIT_OIDC_ENABLED"] is True
    assert values["DNSAUDIT_OIDC_ISSUER"] == "https://idp.example/realms/ops"
    assert values["DNSAUDIT_OIDC_GROUPS_CLAIM"] == "groups"
    assert values["DNSAUDIT_OIDC_ROLE_MAP"] == {
        "platform-admins": "admin",
        "sre": "operator",
        "dev": "viewer",
    }
    assert values["OIDC_RP_CLIENT_ID"] == "dnsaudit" and values["OIDC_RP_CLIENT_SECRET"] == "s3cret"
    assert values["OIDC_RP_SIGN_ALGO"] == "RS256"
    assert values["OIDC_USE_NONCE"] is True and values["OIDC_USE_PKCE"] is True
    assert values["OIDC_RP_SCOPES"] == "openid profile email"
    assert sso.sso_settings({**ON, "DNSAUDIT_OIDC_SCOPES": "openid,profile groups"})["OIDC_RP_SCOPES"] == (
        "openid profile groups"
    )
    with pytest.raises(sso.SsoConfigError, match="must include openid"):
        sso.sso_settings({**ON, "DNSAUDIT_OIDC_SCOPES": "profile groups"})
    assert (
        sso.sso_settings({**ON, "DNSAUDIT_OIDC_GROUPS_CLAIM": "realm_access.roles"})[
            "DNSAUDIT_OIDC_GROUPS_CLAIM"
        ]
        == "realm_access.roles"
    )


@pytest.mark.parametrize("missing", sorted(ON))
def test_part_of_the_settings_is_a_mistake(missing):
    with pytest.raises(sso.SsoConfigError, match=f"missing: {missing}"):
        sso.sso_settings({k: v for k, v in ON.items() if k != missing})


@pytest.mark.parametrize(
    ("issuer", "message"),
    [
        ("http://idp.example", "must use HTTPS"),
        ("ftp://idp.example", "https://"),
        ("https://user:pw@idp.example", "credentials"),
        ("https://idp.example?x=1", "query"),
        ("idp.example", "https://"),
    ],
)
def test_an_issuer_must_be_https_unless_on_loopback(issuer, message):
    with pytest.raises(sso.SsoConfigError, match=message):
        sso.sso_settings({**ON, "DNSAUDIT_OIDC_ISSUER": issuer})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5556/dex",
        "http://[::1]:8080",
        "http://localhost:8080/x",
        "http://127.8.9.1/",
        "https://idp.example",
    ],
)
def test_loopback_may_speak_plain_http(url):
    assert sso.url_problem(url) is None


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1/", "http://localhost.example/", "http://127.0.0.1.nip.io/", None, 7, ""]
)
def test_anything_else_must_be_https(url):
    assert sso.url_problem(url) is not None


def test_the_role_map_is_parsed_strictly():
    assert sso.parse_role_map(" a=admin , b = viewer ,,") == {"a": "admin", "b": "viewer"}
    assert sso.parse_role_map("team=x=operator") == {"team=x": "operator"}  # the last '=' splits
    assert sso.parse_role_map("") == {}
    for bad, message in (
        ("sre", "GROUP=ROLE"),
        ("=admin", "GROUP=ROLE"),
        ("sre=root", "not one of"),
        ("sre=admin,sre=viewer", "both"),
    ):
        with pytest.raises(sso.SsoConfigError, match=message):
            sso.parse_role_map(bad)
    assert sso.parse_role_map("sre=admin,sre=admin") == {"sre": "admin"}


def test_the_highest_mapped_role_wins():
    mapping = {"platform-admins": "admin", "sre": "operator", "dev": "viewer"}
    assert sso.role_for_groups(["dev", "sre"], mapping) == "operator"
    assert sso.role_for_groups(["dev", "platform-admins", "sre"], mapping) == "admin"
    assert sso.role_for_groups(["marketing"], mapping) is None
    assert sso.role_for_groups([], mapping) is None
    assert sso.role_for_groups(["SRE"], mapping) is None  # group names are compared exactly


def test_groups_come_from_the_named_claim_or_a_dotted_path():
    claims = {
        "groups": ["a", 3, "b"],
        "realm_access": {"roles": ["r"]},
        "one": "solo",
        "https://corp.example/groups": ["x"],
    }
    assert sso.groups_from_claims(claims, "groups") == ["a", "b"]
    assert sso.groups_from_claims(claims, "realm_access.roles") == ["r"]
    assert sso.groups_from_claims(claims, "one") == ["solo"]
    assert sso.groups_from_claims(claims, "https://corp.example/groups") == ["x"]
    assert sso.groups_from_claims(claims, "missing") == []
    assert sso.groups_from_claims({"groups": {"not": "a list"}}, "groups") == []


def test_a_token_without_kid_needs_a_single_rsa_signing_key():
    rsa = {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "a"}
    other = {**rsa, "kid": "b"}
    assert sso.select_signing_key({"keys": [rsa]}, None) == rsa
    assert sso.select_signing_key({"keys": [rsa, other]}, None) is None
    assert sso.select_signing_key({"keys": [rsa, other]}, "b") == other
    assert sso.select_signing_key({"keys": [rsa, other]}, "c") is None
    assert sso.select_signing_key({"keys": [rsa, {**rsa, "kid": "e", "use": "enc"}]}, None) == rsa
    assert sso.select_signing_key({"keys": [rsa, {"kty": "EC", "kid": "ec"}]}, None) == rsa
    assert sso.select_signing_key({"keys": [{**rsa, "alg": "RS512"}]}, None) is None
    assert sso.select_signing_key({"keys": [rsa, {**rsa}]}, "a") is None  # ambiguous kid
    with pytest.raises(sso.SsoConfigError):
        sso.select_signing_key({"no": "keys"}, None)


def test_names_and_identities():
    assert sso.username_for({"preferred_username": "alice", "sub": "123"}) == "alice"
    assert sso.username_for({"preferred_username": "Alice Smith", "sub": "u-123"}) == "u-123"
    assert sso.username_for({"sub": "x" * 151}) is None
    marker = sso.identity_marker("https://idp.example", "x" * 255)
    assert marker.startswith("sso:") and len(marker) <= 150
    assert marker != sso.identity_marker("https://other.example", "x" * 255)
    assert sso.identity_marker("a", "b\nc") != sso.identity_marker("a\nb", "c")


def test_a_partial_configuration_stops_the_start():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNSAUDIT_OIDC_")}
    env["DNSAUDIT_OIDC_ISSUER"] = "https://idp.example"
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert (
        "single sign-on needs DNSAUDIT_OIDC_ISSUER, DNSAUDIT_OIDC_CLIENT_ID and DNSAUDIT_OIDC_CLIENT_SECRET"
        in done.stderr
    )
    env.update(
        {
            "DNSAUDIT_OIDC_CLIENT_ID": "c",
            "DNSAUDIT_OIDC_CLIENT_SECRET": "s",
            "DNSAUDIT_OIDC_ROLE_MAP": "sre=operator",
        }
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_discovery_endpoints_follow_the_issuers_rules():
    issuer = "https://idp.example/realms/ops"
    doc = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/certs",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
    }
    found = sso.provider_endpoints(doc, issuer)
    assert found.userinfo_endpoint is None and found.token_auth_method == "client_secret_post"
    assert sso.provider_endpoints(
        {**doc, "token_endpoint_auth_methods_supported": None}, issuer
    ).token_auth_method == ("client_secret_basic")
    for change, message in (
        ({"token_endpoint": "http://127.0.0.1:8080/token"}, "token_endpoint must use HTTPS like the issuer"),
        ({"jwks_uri": "http://idp.example/certs"}, "jwks_uri must use HTTPS"),
        ({"authorization_endpoint": None}, "authorization_endpoint is not a URL"),
        ({"issuer": issuer + "/"}, "must be exactly that"),
        ({"token_endpoint_auth_methods_supported": ["private_key_jwt"]}, "neither"),
    ):
        with pytest.raises(sso.SsoConfigError, match=message):
            sso.provider_endpoints({**doc, **change}, issuer)
    with pytest.raises(sso.SsoConfigError, match="not a JSON object"):
        sso.provider_endpoints(["x"], issuer)
