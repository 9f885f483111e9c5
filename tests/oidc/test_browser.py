"""Single sign-on in a real browser (Debian's Chromium through Playwright): dnsaudit's login page, the
"Sign in with SSO" button, the real provider's authorize form on loopback, back to the dashboard with the
role the groups claim maps to; and the same login refused for a name a local account holds."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from dnsaudit.core.sso import is_loopback_host
from tests.support import need_binary
from tests.web import factories
from tests.web.test_browser import CHROMIUM_ARGS, TIMEOUT_MS, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser():
    executable = need_binary("chromium")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # see tests/web/test_browser.py
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1200, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    # Nothing leaves the machine: the provider's form links a stylesheet from a CDN.
    context.route(
        "**/*",
        lambda route: route.continue_()
        if is_loopback_host(urlsplit(route.request.url).hostname)
        else route.abort(),
    )
    page = context.new_page()
    yield page
    context.close()


def sign_in_with_sso(page, provider, sub: str) -> None:
    page.goto("/")
    assert "/login/" in page.url
    page.click("text=Sign in with SSO")
    page.wait_for_url(f"{provider.issuer}/oauth2/authorize?**")
    page.fill("input[name=sub]", sub)
    page.click("button:has-text('Authorize')")


def test_sso_login_in_the_browser(sso, provider, page, live_server):
    factories.make_cluster("prod-eu")
    provider.set_user("u-olga", {"preferred_username": "olga", "groups": ["platform-admins"]})
    page.goto("/login/")
    assert page.locator("#id_password").is_visible()  # the password form is still there, beside SSO
    shot(page, "login-sso")
    sign_in_with_sso(page, provider, "u-olga")
    page.wait_for_url(f"{live_server.url}/")  # the fleet overview
    shot(page, "fleet-after-sso")
    assert page.locator(".who span").inner_text() == "olga · admin"
    assert page.locator("text=prod-eu").first.is_visible()
    assert page.locator("nav >> text=Add cluster").is_visible()

    # Demoted at the provider: after logging out and in again, a viewer.
    provider.set_user("u-olga", {"preferred_username": "olga", "groups": ["dev"]})
    page.click("text=Log out")
    page.wait_for_url("**/login/")
    sign_in_with_sso(page, provider, "u-olga")
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator(".who span").inner_text() == "olga · viewer"
    assert page.locator("nav >> text=Add cluster").count() == 0


def test_sso_refuses_a_local_accounts_name_in_the_browser(sso, provider, page):
    factories.make_user("admin", username="peter")
    provider.set_user("u-peter", {"preferred_username": "peter", "groups": ["platform-admins"]})
    sign_in_with_sso(page, provider, "u-peter")
    page.wait_for_url("**/login/")
    assert "already exists here and is not linked to single sign-on" in page.locator(".messages").inner_text()
    assert page.locator(".who").count() == 0


def test_no_sso_button_without_configuration(page):
    page.goto("/login/")
    assert page.locator("#id_password").is_visible()
    assert page.locator("text=Sign in with SSO").count() == 0
