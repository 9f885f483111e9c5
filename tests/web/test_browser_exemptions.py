"""Exemptions in a real browser (Debian's Chromium through Playwright, like test_browser.py).

* An operator goes from the cluster report to its Exemptions page, creates one exemption for a namespace
  (with a last day in the future) and one for a ``KIND/NAME`` workload; the page lists both as active with
  the workloads they cover. On the report the exempted rows carry the "exempted" badge, the counts read
  ``N · M exempted`` and the ``exempted=yes`` filter keeps only those rows. Removing the namespace
  exemption (its button, CSRF from the page) takes the badge off its rows and no others.
* An admin then finds ``exemption.create`` and ``exemption.remove`` with the operator's name in ``/audit/``.
* A viewer sees the exemptions (and the badge) but no form and no Remove button.

No page raises a CSP violation, a console error or an uncaught exception (the watcher of
test_security_headers.py, plus every console error). Screenshots go to ``test-artifacts/screenshots/``
(``30-…``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from clusters import exemptions
from clusters.models import Exemption
from tests.web import factories
from tests.web.test_browser import browser, login, shot  # noqa: F401 - fixtures
from tests.web.test_security_headers import _assert_no_violations, csp_page  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REASON_NS = "batch jobs of ns-0 resolve only cluster names; reviewed by SRE"
REASON_WL = "wl-0005 is retired next sprint"


@pytest.fixture
def watched(csp_page):  # noqa: F811
    """The CSP-watching page, also failing on any console error (not only the CSP ones)."""
    errors: list[str] = []

    def on_console(msg) -> None:
        if msg.type == "error":
            errors.append(f"{msg.text} ({msg.location.get('url')})")

    csp_page.on("console", on_console)
    # Where a violation came from, for the failure message (the shared watcher keeps only the directive).
    csp_page.add_init_script(
        "window.__cspWhere = []; document.addEventListener('securitypolicyviolation', e => "
        "window.__cspWhere.push([e.violatedDirective, e.sourceFile, e.lineNumber, e.columnNumber, "
        "e.target && e.target.outerHTML ? e.target.outerHTML.slice(0, 160) : String(e.target)]));"
    )
    csp_page.console_errors = errors
    return csp_page


def clean(page) -> None:
    where = page.evaluate("window.__cspWhere || []")
    assert not where, where
    _assert_no_violations(page)
    assert not page.console_errors, page.console_errors


def text(locator) -> str:
    return " ".join(locator.inner_text().split())


@pytest.fixture
def scan(db):
    """prod-eu, 10 rows over two namespaces. ns-0: wl-0000 affected, wl-0002 at-risk, wl-0004 unknown,
    wl-0006 and wl-0008 safe; ns-1: wl-0005 affected (Deployment), wl-0007 at-risk, wl-0009 unknown, …"""
    scan = factories.make_report(factories.make_cluster("prod-eu"), workloads=10, namespaces=2)
    assert (scan.affected, scan.at_risk, scan.safe, scan.unknown) == (2, 2, 4, 2)
    return scan


def counts(page) -> dict[str, str]:
    """The report's summary: risk -> the text of its count (``2 · 1 exempted``)."""
    out = {}
    for div in page.locator("#report-body dl.counts > div").all():
        badge = div.locator("dt .badge")
        if badge.count():
            label = next(c[5:] for c in badge.get_attribute("class").split() if c.startswith("risk-"))
        else:
            label = text(div.locator("dt"))
        out[label] = text(div.locator("dd"))
    return out


def exempted_rows(page) -> set[str]:
    """``namespace/name`` of the workloads table's rows that carry the "exempted" badge."""
    rows = page.locator("#workloads tbody tr:has(.badge.exempted)")
    return {f"{text(r.locator('td').first)}/{text(r.locator('th'))}" for r in rows.all()}


def test_operator_exempts_sees_the_report_change_and_removes_and_admin_reads_the_audit(watched, scan):
    page = watched
    factories.make_user("operator", username="otto")
    factories.make_user("admin", username="ada")
    login(page, "otto")
    clean(page)

    # The report before: no badge, plain counts; its summary links to the Exemptions page.
    page.goto("/clusters/prod-eu/")
    assert exempted_rows(page) == set()
    assert counts(page)["affected"] == "2"
    page.click("#report-body section.summary >> a:text-is('Exemptions')")
    page.wait_for_url("**/clusters/prod-eu/exemptions/")
    assert "No exemption entered in dnsaudit." in text(page.locator("#exemptions"))
    clean(page)

    # A namespace, with a last day in the future.
    until = (exemptions.today() + timedelta(days=30)).isoformat()
    form = page.locator("form#new-exemption")
    form.locator("#id_namespace").fill("ns-0")
    form.locator("#id_reason").fill(REASON_NS)
    form.locator("#id_expires").fill(until)
    form.locator("button:has-text('Create exemption')").click()
    page.wait_for_load_state()
    ns_ex = Exemption.objects.get(namespace="ns-0")
    expect(page.locator(f"#exemption-{ns_ex.pk}")).to_be_visible()
    assert f"Exemption {ns_ex.pk} created: 5 workloads of the current report exempted." in text(
        page.locator("ul.messages")
    )
    cells = page.locator(f"#exemption-{ns_ex.pk} > *").all_inner_texts()
    assert [c.strip() for c in cells[:8]] == [
        str(ns_ex.pk),
        "active",
        "ns-0",
        "*",
        "*",
        REASON_NS,
        until,
        "5",
    ]
    assert cells[8].strip().startswith("otto ")
    assert (ns_ex.created_by, ns_ex.expires.isoformat()) == ("otto", until)
    clean(page)

    # A KIND/NAME workload in the other namespace, no expiry.
    form.locator("#id_workload").fill("Deployment/wl-0005")
    form.locator("#id_reason").fill(REASON_WL)
    form.locator("button:has-text('Create exemption')").click()
    page.wait_for_load_state()
    wl_ex = Exemption.objects.get(workload="Deployment/wl-0005")
    expect(page.locator(f"#exemption-{wl_ex.pk}")).to_be_visible()
    cells = page.locator(f"#exemption-{wl_ex.pk} > *").all_inner_texts()
    assert [c.strip() for c in cells[:8]] == [
        str(wl_ex.pk),
        "active",
        "*",
        "Deployment/wl-0005",
        "*",
        REASON_WL,
        "never",
        "1",
    ]
    assert page.locator("#exemptions tbody tr.exemption-active").count() == 2
    shot(page, "30-exemptions")
    clean(page)

    # The report: badges on exactly the six rows, counts with their exempted part, risk unchanged.
    page.click("a:has-text('← prod-eu report')")
    page.wait_for_url("**/clusters/prod-eu/")
    ns0 = {"ns-0/wl-0000", "ns-0/wl-0002", "ns-0/wl-0004", "ns-0/wl-0006", "ns-0/wl-0008"}
    assert exempted_rows(page) == {*ns0, "ns-1/wl-0005"}
    assert counts(page) == {
        "affected": "2 · 2 exempted",
        "at-risk": "2 · 1 exempted",
        "safe": "4 · 2 exempted",
        "unknown": "2 · 1 exempted",
        "Workloads": "10",
    }
    badge = page.locator("#workloads tbody tr:has(.badge.exempted)", has_text="wl-0005").locator(
        ".badge.exempted"
    )
    assert badge.get_attribute("title") and REASON_WL in badge.get_attribute("title")
    assert "6 workloads exempted" in text(page.locator("#report-body section.summary"))
    shot(page, "31-report-exempted")
    clean(page)

    # exempted=yes keeps only the exempted rows (swapped in place, URL pushed). Reloaded first: a
    # full-page screenshot leaves an empty style="" on elements, which htmx's settle would copy with
    # setAttribute into the swapped #sort-input, and the page's CSP rightly refuses that.
    page.reload()
    page.select_option("select[name=exempted]", "yes")
    page.wait_for_url("**exempted=yes**")
    expect(page.locator("#workloads tbody tr")).to_have_count(6)
    assert page.locator("#workloads tbody tr:not(:has(.badge.exempted))").count() == 0
    clean(page)
    # The "· 2 exempted" link of the affected count: the two exempted affected rows.
    page.goto("/clusters/prod-eu/")
    page.click("#report-body dl.counts a.exempted-count >> nth=0")
    page.wait_for_url("**risk=affected**exempted=yes**")
    expect(page.locator("#workloads tbody tr")).to_have_count(2)
    clean(page)

    # Remove the namespace exemption with its button.
    page.goto("/clusters/prod-eu/exemptions/")
    page.click(f"button[aria-label='Remove exemption {ns_ex.pk}']")
    page.wait_for_load_state()
    expect(page.locator(f"#exemption-{ns_ex.pk} .badge")).to_have_text("removed")
    assert f"Exemption {ns_ex.pk} removed: 5 workloads changed." in text(page.locator("ul.messages"))
    assert "by otto" in text(page.locator(f"#exemption-{ns_ex.pk}"))
    assert page.locator(f"#exemption-{ns_ex.pk} button").count() == 0
    assert page.locator(f"#exemption-{wl_ex.pk} .badge").inner_text() == "active"
    clean(page)

    page.goto("/clusters/prod-eu/")
    assert exempted_rows(page) == {"ns-1/wl-0005"}
    after = counts(page)
    assert (after["affected"], after["at-risk"], after["unknown"]) == ("2 · 1 exempted", "2", "2"), after
    clean(page)

    # The admin's audit log names the operator for each change.
    page.context.clear_cookies()
    login(page, "ada")
    page.goto("/audit/")
    rows = page.locator("#audit-events tbody tr")
    events = []
    for r in rows.all():
        cells = [c.strip() for c in r.locator("td").all_inner_texts()]
        if cells[3].startswith("exemption."):
            events.append((cells[1], cells[3], cells[4], cells[6]))
    assert sorted(events) == [
        ("otto", "exemption.create", "prod-eu", "ok"),
        ("otto", "exemption.create", "prod-eu", "ok"),
        ("otto", "exemption.remove", "prod-eu", "ok"),
    ], events
    assert REASON_NS in text(page.locator("#audit-events"))
    clean(page)


def test_viewer_sees_exemptions_but_cannot_change_them(watched, scan):
    cluster = scan.cluster
    ex, applied = exemptions.create(cluster, reason=REASON_WL, by="otto", workload="Deployment/wl-0005")
    assert applied == 1
    page = watched
    factories.make_user("viewer", username="vera")
    login(page, "vera")
    page.goto("/clusters/prod-eu/exemptions/")
    row = page.locator(f"#exemption-{ex.pk}")
    assert "active" in text(row) and REASON_WL in text(row)
    assert page.locator("form#new-exemption").count() == 0
    assert page.locator("#exemptions button").count() == 0
    assert page.locator("form[action*='/remove/']").count() == 0
    assert "Actions" not in text(page.locator("#exemptions thead"))
    clean(page)
    page.goto("/clusters/prod-eu/")
    assert exempted_rows(page) == {"ns-1/wl-0005"}
    clean(page)
