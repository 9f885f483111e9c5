"""Content-Security-Policy on every page, templates that live with it, and login throttling (django-axes).

The browser half (marked ``browser``) opens the main pages in Debian's Chromium and checks that the
policy blocks nothing they need: no CSP violation, htmx filters and the progress bar still work.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.urls import reverse

from clusters.access import client_ip
from tests.web import factories
from tests.web.test_browser import browser, login  # noqa: F401  (the module-scoped Chromium fixture)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
#: The self-contained HTML export is a download, not a page: it carries its own inline styles.
DOWNLOADS = {"clusters/export_report.html"}


def csp_of(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    policy = {}
    for part in header.split(";"):
        name, *values = part.split()
        policy[name] = values
    return policy


# --- the header -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "url"),
    [
        (None, "/login/"),
        ("viewer", "/"),
        ("viewer", "report"),
        ("viewer", "workload"),
        ("viewer", "/account/tokens/"),
        ("admin", "/add-cluster/"),
    ],
)
def test_pages_carry_a_strict_policy(client_as, report, who, url):
    if url == "report":
        url = reverse("clusters:report", args=[report.cluster.name])
    elif url == "workload":
        workload = report.workloads.first()
        url = reverse("clusters:workload", args=[report.cluster.name, workload.pk])
    response = client_as(who).get(url)
    assert response.status_code == 200
    policy = csp_of(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"] and policy["form-action"] == ["'self'"]
    header = response["Content-Security-Policy"]
    assert "unsafe-inline" not in header and "unsafe-eval" not in header


def test_api_and_admin_carry_the_policy_too(client_as, users, report):
    users["admin"].is_staff = users["admin"].is_superuser = True
    users["admin"].save()
    assert "Content-Security-Policy" in client_as("viewer").get(reverse("clusters:api_clusters"))
    assert "Content-Security-Policy" in client_as("admin").get("/admin/")


def test_html_export_stays_a_self_contained_download(client_as, report):
    response = client_as("operator").get(reverse("clusters:export_html", args=[report.cluster.name]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    body = response.content.decode()
    assert "<style>" in body  # its own styles, inline: a saved file has no server and no policy
    assert not re.search(r"<(?:script|link)[^>]+(?:src|href)=", body)


# --- templates live with the policy ----------------------------------------------------------------


def _page_templates() -> list[Path]:
    return sorted(p for p in TEMPLATES.rglob("*.html") if str(p.relative_to(TEMPLATES)) not in DOWNLOADS)


@pytest.mark.parametrize("path", _page_templates(), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_templates_have_no_inline_script_style_or_handlers(path):
    text = re.sub(r"\{#.*?#\}", "", path.read_text())  # template comments render nothing
    for tag in re.findall(r"<script\b[^>]*>", text):
        assert "src=" in tag, f"{path}: inline <script> (the CSP blocks it; put it in static/js/)"
    assert "<style" not in text, f"{path}: inline <style> (the CSP blocks it; use static/css/)"
    assert not re.search(r"\sstyle\s*=", text), f"{path}: style= attribute (the CSP blocks it)"
    assert not re.search(r"\son[a-z]+\s*=", text), f"{path}: inline event handler (the CSP blocks it)"
    assert "javascript:" not in text and "hx-on" not in text and "js:" not in text


def test_htmx_is_told_not_to_inject_styles_or_eval(client_as, report):
    body = client_as("viewer").get("/").content.decode()
    config = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", body)
    assert config, "base.html must configure htmx for the CSP"
    import json

    values = json.loads(config.group(1))
    assert values["includeIndicatorStyles"] is False and values["allowEval"] is False
    css = (ROOT / "static" / "css" / "dnsaudit.css").read_text()
    assert ".htmx-indicator" in css  # the rules htmx would have injected


# --- login throttling -------------------------------------------------------------------------------


def _login(client: Client, username: str, password: str, addr: str = "10.1.1.1"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=addr)


@pytest.fixture
def alice(db):
    return factories.make_user("viewer", username="alice")


def test_lockout_after_the_configured_failures_with_a_clear_page(settings, alice):
    assert settings.AXES_FAILURE_LIMIT == 5 and settings.AXES_LOCKOUT_PARAMETERS == [
        ["username", "ip_address"]
    ]
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = _login(client, "alice", "wrong")
        assert response.status_code == 200 and "didn't match" in response.content.decode()
    locked = _login(client, "alice", "wrong")
    assert locked.status_code == 429
    body = locked.content.decode()
    assert "Too many failed logins" in body and "alice" in body
    assert f"after {settings.AXES_FAILURE_LIMIT} failed attempts" in body
    assert f"Try again in {settings.DNSAUDIT_LOGIN_LOCKOUT_MINUTES} minutes" in body
    assert "axes_reset_username alice" in body
    assert locked["Retry-After"] == str(settings.DNSAUDIT_LOGIN_LOCKOUT_MINUTES * 60)
    assert "Content-Security-Policy" in locked
    # Locked means locked: the right password is refused too, and nobody is logged in.
    right = _login(client, "alice", factories.PASSWORD)
    assert right.status_code == 429 and "_auth_user_id" not in client.session


def test_lockout_is_per_username_and_address(settings, alice):
    factories.make_user("viewer", username="bob")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(Client(), "alice", "wrong", addr="10.1.1.1")
    assert _login(Client(), "alice", factories.PASSWORD, addr="10.1.1.1").status_code == 429
    # Another address for the same user, and another user from the same address, still get in.
    assert _login(Client(), "alice", factories.PASSWORD, addr="10.2.2.2").status_code == 302
    assert _login(Client(), "bob", factories.PASSWORD, addr="10.1.1.1").status_code == 302


def test_success_resets_the_count(settings, alice):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(Client(), "alice", "wrong")
    assert _login(Client(), "alice", factories.PASSWORD).status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(Client(), "alice", "wrong")
    assert _login(Client(), "alice", factories.PASSWORD).status_code == 302


def test_admin_lifts_a_lockout_with_axes_reset(settings, alice):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(Client(), "alice", "wrong")
    assert _login(Client(), "alice", factories.PASSWORD).status_code == 429
    call_command("axes_reset_username", "alice")
    assert _login(Client(), "alice", factories.PASSWORD).status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(Client(), "alice", "wrong")
    call_command("axes_reset")
    assert _login(Client(), "alice", factories.PASSWORD).status_code == 302


def test_admin_login_is_throttled_too(settings, alice):
    alice.is_staff = True
    alice.save()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        Client().post("/admin/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR="10.1.1.1")
    assert _login(Client(), "alice", factories.PASSWORD).status_code == 429


def test_client_address_comes_from_the_proxy_only_when_trusted(settings):
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    settings.DNSAUDIT_TRUSTED_PROXY = False
    assert client_ip(request) == "10.0.0.5"  # a client-written header is ignored
    settings.DNSAUDIT_TRUSTED_PROXY = True
    assert client_ip(request) == "203.0.113.9"  # what the proxy appended, not what the client wrote
    bare = RequestFactory().get("/", REMOTE_ADDR="10.0.0.5")
    assert client_ip(bare) == "10.0.0.5"


# --- in a real browser: nothing the pages need is blocked -------------------------------------------


@pytest.fixture
def csp_page(browser, live_server):  # noqa: F811
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda msg: problems.append(msg.text)
        if msg.type in ("error", "warning")
        and ("Content Security Policy" in msg.text or "Refused" in msg.text)
        else None,
    )
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # Every violation also fires a DOM event; collect those, page after page.
    page.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation', "
        "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    page.csp_problems = problems
    yield page
    context.close()


def _assert_no_violations(page) -> None:
    events = page.evaluate("window.__csp || []")
    assert not events and not page.csp_problems, (events, page.csp_problems)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_main_pages_run_under_the_policy_in_chromium(csp_page, settings):
    from clusters.models import Scan

    page = csp_page
    cluster = factories.make_cluster("prod-eu")
    scan = factories.make_report(cluster, workloads=60, namespaces=4)
    factories.make_user("admin", username="ada")
    login(page, "ada")
    _assert_no_violations(page)

    page.goto("/")
    assert page.locator("h1").inner_text() == "Fleet"
    _assert_no_violations(page)

    # htmx filters: the table is swapped in place and the URL pushed, under the policy.
    page.goto("/clusters/prod-eu/")
    page.evaluate("window.__stillHere = true")
    page.select_option("select[name=risk]", "affected")
    page.wait_for_url("**risk=affected**")
    page.wait_for_function(
        "document.querySelectorAll('#workloads tbody tr').length > 0 && "
        "[...document.querySelectorAll('#workloads tbody tr')].every(r => r.innerText.includes('affected'))"
    )
    assert page.evaluate("window.__stillHere === true")
    assert page.locator("#workloads tbody tr").count() == scan.workloads.filter(risk="affected").count()
    _assert_no_violations(page)

    workload = scan.workloads.filter(risk="affected").first()
    page.goto(f"/clusters/prod-eu/workloads/{workload.pk}/")
    assert "stopped here" in page.locator(".side-musl").first.inner_text()
    _assert_no_violations(page)

    page.goto("/account/tokens/")
    page.fill("#id_name", "grafana")
    page.select_option("#id_expires", "30")
    page.click("button:has-text('Create token')")
    assert page.inner_text("#new-token").startswith("dna_")
    assert "active" in page.inner_text("#tokens")
    _assert_no_violations(page)

    page.goto("/clusters/prod-eu/settings/")
    _assert_no_violations(page)
    # The Django admin, as a superuser: index, the token list with its revoke action, a change form.
    from django.contrib.auth.models import User

    User.objects.filter(username="ada").update(is_staff=True, is_superuser=True)
    for path in ("/admin/", "/admin/clusters/apitoken/", f"/admin/clusters/cluster/{cluster.pk}/change/"):
        page.goto(path)
        assert page.locator("#site-name").count() == 1, path
        _assert_no_violations(page)

    # The progress bar: an active scan is polled by htmx until it finishes, then the report is swapped in.
    running = factories.make_scan(
        cluster, status=Scan.RUNNING, age_minutes=0, progress_done=3, progress_total=10
    )
    page.goto("/clusters/prod-eu/")
    page.wait_for_selector("#scan-slot progress")
    assert "listing pods" in page.inner_text("#scan-slot")
    Scan.objects.filter(pk=running.pk).update(status=Scan.SUCCEEDED, finished_at=running.created_at, stage="")
    page.wait_for_selector("#scan-slot >> text=The report below is now this scan's", timeout=20_000)
    _assert_no_violations(page)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_lockout_page_in_chromium(csp_page, settings):
    page = csp_page
    factories.make_user("viewer", username="mallory")
    page.goto("/login/")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page.fill("#id_username", "mallory")
        page.fill("#id_password", "wrong")
        page.click("button[type=submit]")
        page.wait_for_load_state()
    assert "Too many failed logins" in page.inner_text("h1")
    assert "axes_reset_username mallory" in page.inner_text("main")
    _assert_no_violations(page)
