"""Issue #9 items 4 and 6 in a real browser (Debian's Chromium through Playwright, like test_browser.py).

* The fleet: while a cluster's scan runs, its row polls the progress fragment; when the scan ends, the
  row's status badge and counts and the fleet totals change in place (htmx out-of-band swaps), without a
  reload. The scan is driven through the database (what the scanner writes), so no cluster is needed.
* The report opens with "What to do"; its link opens the cluster-level fix it names.
* The workload page collapses the lookups where musl and glibc agree.

Screenshots go to ``test-artifacts/screenshots/`` (``20-…``).
"""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from clusters.models import Scan
from tests.web import factories
from tests.web.test_browser import browser, login, page, shot  # noqa: F401 - fixtures
from tests.web.test_report_plan import demo_scan  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_fleet_row_and_totals_follow_a_scan_that_ends(page):  # noqa: F811
    prod = factories.make_cluster("prod")
    factories.make_report(prod, workloads=5, age_minutes=30)  # 1 affected
    factories.make_report(factories.make_cluster("other"), workloads=10)  # 2 affected
    running = factories.make_scan(prod, status=Scan.RUNNING, age_minutes=0)
    factories.make_user("viewer", username="fay")
    login(page, "fay")
    page.evaluate("window.__stillHere = true")
    assert page.inner_text("#count-prod-affected").strip() == "1"
    totals = page.inner_text("#fleet-totals")
    assert "affected 3" in " ".join(totals.split())
    page.wait_for_selector("#scan-slot-prod progress")

    Scan.objects.filter(pk=running.pk).update(
        status=Scan.SUCCEEDED, finished_at=timezone.now(), affected=4, at_risk=2, safe=6, unknown=0
    )
    page.wait_for_selector("#scan-slot-prod >> text=Open the report")
    # (expect() polls from Python: a wait_for_function string would be refused by the page's CSP.)
    expect(page.locator("#count-prod-affected")).to_have_text("4")
    assert page.inner_text("#count-prod-at-risk").strip() == "2"
    assert "just now" in page.inner_text("#status-prod")
    assert "affected 6" in " ".join(page.inner_text("#fleet-totals").split())
    assert page.evaluate("window.__stillHere === true")  # swapped in place, not reloaded
    # The other row is untouched and the table is still one table with one row per cluster.
    assert page.locator("table.fleet tbody tr").count() == 2
    assert page.inner_text("#count-other-affected").strip() == "2"
    shot(page, "20-fleet-after-inline-scan")


def test_report_starts_with_what_to_do_and_its_link_opens_the_fix(page, demo_scan):  # noqa: F811
    factories.make_user("operator", username="ora")
    login(page, "ora")
    page.goto("/clusters/openstack-prod/")
    plan = page.locator("#plan")
    assert "kubelet resolvConf on pool general fixes" in " ".join(plan.inner_text().split())
    # Right after the "Not known" notice.
    order = page.evaluate(
        "[...document.querySelectorAll('#report-body > *')].map(e => e.id || e.className).slice(0, 3)"
    )
    assert order[:2] == ["node-file-gaps", "plan"], order
    shot(page, "21-report-what-to-do")
    target = plan.locator("a", has_text="the fix").get_attribute("href")
    assert not page.locator(target).evaluate("d => d.open")
    plan.locator("a", has_text="the fix").click()
    expect(page.locator(target)).to_have_attribute("open", "")
    assert page.locator(target).is_visible()
    assert plan.locator("a", has_text="download the bundle").count() == 1
    # The busiest pool is the one open.
    assert page.locator("details.pool[open]").get_attribute("data-pool") == "general"


def test_workload_page_collapses_agreeing_lookups(page, demo_scan):  # noqa: F811
    row = demo_scan.workloads.get(namespace="payments", kind="Deployment", name="payments-api")
    factories.make_user("viewer", username="val")
    login(page, "val")
    page.goto(f"/clusters/openstack-prod/workloads/{row.pk}/")
    differs = page.locator("article.trace.differs")
    agree = page.locator("details.trace.agree")
    assert differs.count() >= 1 and agree.count() >= 1
    assert differs.first.locator(".side-musl table").is_visible()
    assert not agree.first.locator(".side-musl table").is_visible()
    agree.first.locator("summary").click()
    assert agree.first.locator(".side-musl table").is_visible()
    shot(page, "22-workload-lookups")
