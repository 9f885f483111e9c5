"""The whole authorization-code flow against a real OpenID provider on loopback, driven with a
``requests`` session through the live server: dnsaudit's login page, its redirect to the provider, the
provider's authorize form, the callback (code for tokens, ID token verified, userinfo), the dashboard."""

from __future__ import annotations

import html
import re
from importlib.metadata import version
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth.models import Group, User
from django.contrib.auth.signals import user_logged_in

from dnsaudit import oidc
from dnsaudit.core.sso import identity_marker
from tests.web import factories

pytestmark = pytest.mark.django_db(transaction=True)

SSO_BUTTON = re.compile(r'<a class="button" id="sso-login" href="([^"]+)">Sign in with SSO</a>')


def browser_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def start(live_server, session: requests.Session, next_url: str | None = None) -> requests.Response:
    """From dnsaudit's login page, follow "Sign in with SSO" to the provider's authorize form."""
    page = session.get(f"{live_server.url}/login/" + (f"?next={next_url}" if next_url else ""), timeout=10)
    assert page.status_code == 200
    found = SSO_BUTTON.search(page.text)
    assert found, "the login page has no Sign in with SSO button"
    form = session.get(live_server.url + html.unescape(found.group(1)), timeout=10)
    assert form.status_code == 200
    return form


def authorize(session: requests.Session, form: requests.Response, sub: str, *, follow: bool = True):
    """Submit the provider's authorize form as ``sub``: with ``follow``, on through the callback to
    where dnsaudit sends the browser; without, the provider's redirect to the callback."""
    assert 'name="sub"' in form.text
    return session.post(form.url, data={"sub": sub}, allow_redirects=follow, timeout=20)


def sso_login(live_server, provider, sub: str, claims: dict) -> tuple[requests.Session, requests.Response]:
    provider.set_user(sub, claims)
    session = browser_session()
    landed = authorize(session, start(live_server, session), sub)
    return session, landed


def who(session: requests.Session, live_server) -> str | None:
    """The name and role the dashboard's header shows, or None when the session is not logged in."""
    page = session.get(f"{live_server.url}/account/tokens/", timeout=10, allow_redirects=False)
    if page.status_code == 302:
        return None
    found = re.search(r'<div class="who">\s*<span>([^<]*)</span>', page.text)
    return html.unescape(found.group(1)) if found else None


def role_groups(username: str) -> list[str]:
    return sorted(User.objects.get(username=username).groups.values_list("name", flat=True))


def test_a_mapped_group_logs_in_with_its_role(sso, live_server, provider):
    factories.make_cluster("prod-eu")
    logged_in = []

    def record(sender, user, request, **kwargs):
        logged_in.append(user.username)

    user_logged_in.connect(record)
    try:
        session, landed = sso_login(
            live_server, provider, "u-alice", {"preferred_username": "alice", "groups": ["sre", "unrelated"]}
        )
    finally:
        user_logged_in.disconnect(record)
    assert landed.status_code == 200
    assert urlsplit(landed.url).path == "/"  # the fleet overview
    assert "prod-eu" in landed.text
    assert who(session, live_server) == "alice · operator"
    alice = User.objects.get(username="alice")
    assert role_groups("alice") == ["operator"]
    assert not alice.has_usable_password()
    assert alice.last_name == identity_marker(provider.issuer, "u-alice")
    assert not alice.is_staff and not alice.is_superuser
    assert logged_in == ["alice"]  # the audit log hears of SSO logins as of password logins


def test_the_role_is_derived_again_at_every_login(sso, live_server, provider):
    factories.make_cluster("prod-eu")
    claims = {"preferred_username": "bob", "groups": ["platform-admins", "dev"]}
    session, landed = sso_login(live_server, provider, "u-bob", claims)
    assert who(session, live_server) == "bob · admin"
    assert role_groups("bob") == ["admin"]

    # The provider moves bob from platform-admins to dev only: the next login makes him a viewer.
    session, landed = sso_login(live_server, provider, "u-bob", {**claims, "groups": ["dev"]})
    assert who(session, live_server) == "bob · viewer"
    assert role_groups("bob") == ["viewer"]
    assert "prod-eu" in landed.text
    assert session.get(f"{live_server.url}/add-cluster/", timeout=10).status_code == 403

    # Removed from every mapped group: still an account, no role, sees nothing.
    session, landed = sso_login(live_server, provider, "u-bob", {**claims, "groups": []})
    assert who(session, live_server) == "bob · no role"
    assert role_groups("bob") == []
    assert landed.status_code == 403
    assert "prod-eu" not in landed.text
    assert User.objects.filter(username="bob").count() == 1


def test_a_user_without_a_mapped_group_sees_nothing(sso, live_server, provider):
    factories.make_cluster("prod-eu")
    session, landed = sso_login(
        live_server, provider, "u-carl", {"preferred_username": "carl", "groups": ["marketing"]}
    )
    assert who(session, live_server) == "carl · no role"
    assert landed.status_code == 403
    assert "prod-eu" not in landed.text
    api = session.get(f"{live_server.url}/api/v1/clusters", timeout=10)
    assert api.status_code == 403
    assert role_groups("carl") == []


def test_a_role_given_by_hand_is_replaced_by_the_claims_at_the_next_login(sso, live_server, provider):
    sso_login(live_server, provider, "u-dora", {"preferred_username": "dora", "groups": ["dev"]})
    dora = User.objects.get(username="dora")
    dora.groups.add(Group.objects.get_or_create(name="admin")[0])
    assert role_groups("dora") == ["admin", "viewer"]
    session, _ = sso_login(live_server, provider, "u-dora", {"preferred_username": "dora", "groups": ["dev"]})
    assert who(session, live_server) == "dora · viewer"
    assert role_groups("dora") == ["viewer"]


def test_a_local_account_with_the_same_name_is_not_taken_over(sso, live_server, provider):
    erin = factories.make_user("admin", username="erin")
    session, landed = sso_login(
        live_server, provider, "u-erin", {"preferred_username": "erin", "groups": ["platform-admins"]}
    )
    assert who(session, live_server) is None  # nobody is logged in
    assert urlsplit(landed.url).path == "/login/"
    assert "An account named “erin” already exists here and is not linked to single sign-on" in html.unescape(
        landed.text
    )
    assert list(User.objects.filter(username__iexact="erin")) == [erin]
    erin.refresh_from_db()
    assert erin.last_name == "" and erin.check_password(factories.PASSWORD)

    # Nor by a subject that is the local name, or differs only in case.
    for sub, claims in (
        ("erin", {"groups": ["sre"]}),
        ("u-erin2", {"preferred_username": "ERIN", "groups": []}),
    ):
        session, landed = sso_login(live_server, provider, sub, claims)
        assert who(session, live_server) is None
        assert "already exists here" in landed.text
    assert User.objects.count() == 1

    # The local account still logs in with its password.
    local = browser_session()
    page = local.get(f"{live_server.url}/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    local.post(
        f"{live_server.url}/login/",
        data={"username": "erin", "password": factories.PASSWORD, "csrfmiddlewaretoken": token, "next": ""},
        headers={"Referer": f"{live_server.url}/login/"},
        timeout=10,
    )
    assert who(local, live_server) == "erin · admin"


def test_an_sso_account_is_found_by_its_subject_not_its_name(sso, live_server, provider):
    sso_login(live_server, provider, "u-fay", {"preferred_username": "fay", "groups": ["sre"]})
    # Another provider user now calls itself fay: refused, fay's account untouched.
    session, landed = sso_login(
        live_server, provider, "u-mallory", {"preferred_username": "fay", "groups": ["platform-admins"]}
    )
    assert who(session, live_server) is None
    assert "already exists here" in landed.text
    assert role_groups("fay") == ["operator"]
    # fay herself, renamed at the provider, still gets her own account.
    session, _ = sso_login(
        live_server, provider, "u-fay", {"preferred_username": "fay.renamed", "groups": ["dev"]}
    )
    assert who(session, live_server) == "fay · viewer"


def _callback_url(session, live_server, provider, sub: str) -> str:
    """Authorize at the provider, but stop at its redirect to dnsaudit's callback."""
    provider.set_user(sub, {"preferred_username": sub, "groups": ["platform-admins"]})
    redirect = authorize(session, start(live_server, session), sub, follow=False)
    assert redirect.status_code == 302
    location = redirect.headers["Location"]
    assert location.startswith(f"{live_server.url}/oidc/callback/?")
    return location


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query="&".join(f"{k}={requests.utils.quote(v)}" for k, v in query.items())).geturl()


def test_a_forged_state_is_refused(sso, live_server, provider):
    session = browser_session()
    callback = _callback_url(session, live_server, provider, "gina")
    landed = session.get(_with_query(callback, state="forged-state"), timeout=20)
    assert urlsplit(landed.url).path == "/login/"
    assert "Single sign-on failed" in landed.text
    assert who(session, live_server) is None
    assert not User.objects.filter(username="gina").exists()


def test_a_callback_is_used_once(sso, live_server, provider):
    session = browser_session()
    callback = _callback_url(session, live_server, provider, "hana")
    assert urlsplit(session.get(callback, timeout=20).url).path == "/"
    session.post(f"{live_server.url}/logout/", headers={"X-CSRFToken": session.cookies.get("csrftoken", "")})
    # Replayed: its state was consumed (and the provider's code too).
    session = browser_session()
    landed = session.get(callback, timeout=20)
    assert urlsplit(landed.url).path == "/login/"
    assert who(session, live_server) is None


def test_a_code_from_another_browser_session_is_refused(sso, live_server, provider):
    victim = browser_session()
    callback = _callback_url(victim, live_server, provider, "ivan")
    attacker = browser_session()
    landed = attacker.get(callback, timeout=20)
    assert urlsplit(landed.url).path == "/login/"
    assert who(attacker, live_server) is None
    assert not User.objects.filter(username="ivan").exists()


def test_a_code_issued_for_another_nonce_is_refused(sso, live_server, provider):
    """Two logins started in one session: the code of the second, presented with the state of the first,
    brings an ID token whose nonce is not the first login's. (Code swapping; only the nonce catches it.)"""
    session = browser_session()
    first = _callback_url(session, live_server, provider, "jane")
    second = _callback_url(session, live_server, provider, "jane")
    first_state = parse_qs(urlsplit(first).query)["state"][0]
    swapped = _with_query(second, state=first_state)
    landed = session.get(swapped, timeout=20)
    assert urlsplit(landed.url).path == "/login/"
    assert "Single sign-on failed" in landed.text
    assert who(session, live_server) is None
    assert not User.objects.filter(username="jane").exists()
    # The same session then logs in normally: only the swap was refused.
    assert urlsplit(authorize(session, start(live_server, session), "jane").url).path == "/"
    assert who(session, live_server) == "jane · admin"


def test_next_is_kept_through_the_provider(sso, live_server, provider):
    cluster = factories.make_cluster("prod-eu")
    provider.set_user("kim", {"preferred_username": "kim", "groups": ["dev"]})
    session = browser_session()
    form = start(live_server, session, next_url=f"/clusters/{cluster.name}/")
    landed = authorize(session, form, "kim")
    assert urlsplit(landed.url).path == f"/clusters/{cluster.name}/"


def test_a_provider_that_cannot_be_reached_is_said_on_the_login_page(
    provider, client_credentials, live_server
):
    from tests.oidc.conftest import sso_configured
    from tests.support import free_port

    with sso_configured(f"http://127.0.0.1:{free_port()}", *client_credentials):
        session = browser_session()
        page = session.get(f"{live_server.url}/oidc/authenticate/", timeout=20)
        assert urlsplit(page.url).path == "/login/"
        assert "Single sign-on is unavailable right now" in page.text
        assert who(session, live_server) is None


def test_without_configuration_there_is_no_button_and_no_oidc_url(live_server, settings):
    assert settings.DNSAUDIT_OIDC_ENABLED is False
    session = browser_session()
    page = session.get(f"{live_server.url}/login/", timeout=10)
    assert page.status_code == 200 and 'name="password"' in page.text
    assert "Sign in with SSO" not in page.text
    for path in ("/oidc/authenticate/", "/oidc/callback/?code=x&state=y"):
        assert session.get(f"{live_server.url}{path}", timeout=10, allow_redirects=False).status_code == 404
    assert "dnsaudit.oidc.OidcBackend" not in settings.AUTHENTICATION_BACKENDS


def test_failed_sso_callbacks_do_not_lock_anyone_out(sso, live_server, provider, settings):
    """django-axes would count them under (no username, this address) and lock single sign-on for
    everyone behind it; they are not password guesses. Password failures still lock as before."""
    settings.AXES_FAILURE_LIMIT = 2
    factories.make_user("admin", username="lena")
    for attempt in range(3):
        session, landed = sso_login(
            live_server, provider, f"u-imposter{attempt}", {"preferred_username": "lena"}
        )
        assert landed.status_code == 200 and "already exists here" in landed.text
    session, landed = sso_login(
        live_server, provider, "u-max", {"preferred_username": "max", "groups": ["sre"]}
    )
    assert landed.status_code == 200
    assert who(session, live_server) == "max · operator"

    local = browser_session()
    for _ in range(3):
        page = local.get(f"{live_server.url}/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        answer = local.post(
            f"{live_server.url}/login/",
            data={"username": "lena", "password": "wrong", "csrfmiddlewaretoken": token},
            timeout=10,
        )
    assert answer.status_code == 429


def test_a_deactivated_sso_account_cannot_log_in(sso, live_server, provider):
    sso_login(live_server, provider, "u-nora", {"preferred_username": "nora", "groups": ["sre"]})
    User.objects.filter(username="nora").update(is_active=False)
    session, landed = sso_login(
        live_server, provider, "u-nora", {"preferred_username": "nora", "groups": ["sre"]}
    )
    assert urlsplit(landed.url).path == "/login/"
    assert who(session, live_server) is None


def test_an_sso_session_ends_when_the_account_is_deactivated(sso, live_server, provider):
    session, _ = sso_login(live_server, provider, "u-ruth", {"preferred_username": "ruth", "groups": ["sre"]})
    assert who(session, live_server) == "ruth · operator"
    User.objects.filter(username="ruth").update(is_active=False)  # an admin deactivates it
    assert who(session, live_server) is None


def test_an_sso_session_ends_when_the_account_is_unlinked(sso, live_server, provider):
    session, _ = sso_login(live_server, provider, "u-otto", {"preferred_username": "otto", "groups": ["sre"]})
    assert who(session, live_server) == "otto · operator"
    User.objects.filter(username="otto").update(last_name="")  # an admin unlinks it
    assert who(session, live_server) is None


def test_denied_at_the_provider_returns_to_the_login_page(sso, live_server, provider):
    provider.set_user("u-pia", {"preferred_username": "pia", "groups": ["sre"]})
    session = browser_session()
    form = start(live_server, session)
    landed = session.post(form.url, data={"action": "deny"}, timeout=20)
    assert urlsplit(landed.url).path == "/login/"
    assert "Single sign-on failed" in landed.text
    assert who(session, live_server) is None
    assert not User.objects.filter(username="pia").exists()


def test_a_link_to_the_callback_with_an_error_logs_nobody_out(sso, live_server, provider):
    session, _ = sso_login(live_server, provider, "u-rita", {"preferred_username": "rita", "groups": ["sre"]})
    session.get(f"{live_server.url}/oidc/callback/?error=access_denied&state=x", timeout=10)
    assert who(session, live_server) == "rita · operator"


def test_the_providers_tokens_without_kid_are_verified_with_its_only_key(
    sso, live_server, provider, monkeypatch
):
    """oidc-provider-mock with Authlib >= 1.7 signs ID tokens without a ``kid`` header (mozilla-django-oidc
    alone refuses them); its key set has one RSA key, so dnsaudit verifies them with it (see
    dnsaudit.core.sso.select_signing_key). With an older Authlib the tokens name the key: also accepted."""
    seen = []
    real = oidc.signing_key

    def spy(kid):
        key = real(kid)
        seen.append((kid, key["kid"]))
        return key

    monkeypatch.setattr(oidc, "signing_key", spy)
    session, _ = sso_login(live_server, provider, "u-sam", {"preferred_username": "sam", "groups": ["dev"]})
    assert who(session, live_server) == "sam · viewer"
    jwks = requests.get(f"{provider.issuer}/jwks", timeout=10).json()
    assert len(jwks["keys"]) == 1
    ((kid, used),) = seen
    assert used == jwks["keys"][0]["kid"]
    authlib = tuple(int(p) for p in version("authlib").split(".")[:2])
    assert kid is None if authlib >= (1, 7) else kid == used
