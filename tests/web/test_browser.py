"""The dashboard in a real browser: Debian's Chromium driven by Playwright against the live server.

Flows: log in; fleet; cluster report; filter the workloads table (swapped in place by htmx, URL pushed)
and reload the shared URL; open a workload and read its traces; download a patch and the bundle; a viewer
has no rescan button and gets 403 when posting anyway; add a cluster from the test API server's kubeconfig
and run the connection test; rescan and watch the progress reach the fresh report.

Screenshots of the main pages go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.support import need_binary
from tests.web import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser():
    executable = need_binary("chromium")
    # Playwright's sync API keeps an event loop in this thread; the factories' ORM calls are still
    # synchronous code, so tell Django not to refuse them.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(
        base_url=live_server.url, accept_downloads=True, viewport={"width": 1360, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def login(page, username: str, password: str = factories.PASSWORD, screenshot: str | None = None) -> None:
    page.goto("/")
    assert "/login/" in page.url  # every page needs a login
    if screenshot:
        shot(page, screenshot)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")


@pytest.fixture
def fleet_data(db):
    cluster = factories.make_cluster("prod-eu")
    scan = factories.make_report(
        cluster,
        workloads=60,
        namespaces=4,
        status="partial",
        problems=[
            {
                "fact": "kubelet configz (nodes/proxy)",
                "error": "403 forbidden for user auditor",
                "impact": "clusterDNS and the kubelet resolvConf path were assumed from the cluster settings",
            }
        ],
    )
    other = factories.make_cluster("staging-us", is_demo=True)
    factories.make_report(other, workloads=6)
    factories.make_scan(
        other, status="failed", age_minutes=1, error="API server unreachable: connection refused"
    )
    return {"cluster": cluster, "scan": scan}


def test_browse_filter_share_the_url_and_read_traces(page, fleet_data):
    factories.make_user("viewer", username="vera")
    login(page, "vera", screenshot="00-login")
    # Keyboard users get a visible skip link first.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('skip')")
    assert page.locator("h1").inner_text() == "Fleet"
    row = page.locator("#cluster-prod-eu")
    assert "Partial" in row.inner_text() and "403 forbidden" in row.inner_text()
    assert "connection refused" in page.locator("#cluster-staging-us").inner_text()
    shot(page, "01-fleet")

    page.click("text=prod-eu")
    page.wait_for_url("**/clusters/prod-eu/")
    assert "corp.example" in page.locator("#pools-h + details").inner_text()
    shot(page, "02-report")

    # Filter in place: the table is swapped by htmx (the page is not reloaded) and the URL is pushed.
    page.evaluate("window.__stillHere = true")
    page.select_option("select[name=risk]", "affected")
    page.wait_for_url("**risk=affected**")
    page.wait_for_function(
        "document.querySelectorAll('#workloads tbody tr').length > 0 && "
        "[...document.querySelectorAll('#workloads tbody tr')].every(r => r.innerText.includes('affected'))"
    )
    assert page.evaluate("window.__stillHere === true")
    filtered = page.locator("#workloads tbody tr").count()
    expected = fleet_data["scan"].workloads.filter(risk="affected").count()
    assert filtered == expected

    # The shared URL renders the same view from scratch.
    shared = page.url
    page.goto(shared)
    assert page.evaluate("window.__stillHere === undefined")
    assert page.locator("select[name=risk]").input_value() == "affected"
    assert page.locator("#workloads tbody tr").count() == expected
    shot(page, "03-report-filtered")

    # Sort by name descending through the column header, still in place.
    page.click("#workloads thead >> text=Workload")
    page.wait_for_url("**sort=name**")
    page.click("#workloads thead >> text=Workload")
    page.wait_for_url("**sort=-name**")
    names = page.locator("#workloads tbody th").all_inner_texts()
    assert names == sorted(names, reverse=True)

    page.locator("#workloads tbody th a").first.click()
    page.wait_for_url("**/workloads/**")
    musl = page.locator(".side-musl").first.inner_text()
    glibc = page.locator(".side-glibc").first.inner_text()
    assert "stopped here" in musl and "EAI_NODATA" in musl and "corp.example" in musl
    assert "resolves" in glibc and "93.184.215.14" in glibc
    assert "search " in page.locator("#resolv-conf").inner_text()
    shot(page, "04-workload")


def test_operator_downloads_a_patch_and_the_bundle(page, fleet_data):
    factories.make_user("operator", username="otto")
    login(page, "otto")
    w = fleet_data["scan"].workloads.filter(risk="affected").first()
    page.goto(f"/clusters/prod-eu/workloads/{w.pk}/")
    with page.expect_download() as info:
        page.locator("text=Download .yaml").first.click()
    patch = yaml.safe_load(Path(info.value.path()).read_text())
    assert patch["spec"]["template"]["spec"]["dnsPolicy"] == "None"

    page.goto("/clusters/prod-eu/")
    with page.expect_download() as info:
        page.click("text=fix bundle (.zip)")
    zf = zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes()))
    names = zf.namelist()
    assert "README.md" in names and "report.json" in names
    assert f"patches/{w.namespace}/deployment-{w.name}.yaml" in names and "apply-dnsconfig.sh" in names
    assert len(json.loads(zf.read("report.json"))["workloads"]) == 60


def test_viewer_has_no_rescan_button_and_a_post_is_refused(page, fleet_data):
    factories.make_user("viewer", username="vic")
    login(page, "vic")
    page.goto("/clusters/prod-eu/")
    assert page.locator("button", has_text="Rescan").count() == 0
    status = page.evaluate(
        """async () => {
            const headers = JSON.parse(document.body.getAttribute('hx-headers'));
            const r = await fetch('/clusters/prod-eu/rescan/', {method: 'POST', headers});
            return r.status;
        }"""
    )
    assert status == 403
    assert not fleet_data["cluster"].scans.filter(status__in=("queued", "running")).exists()

    # The viewer makes an API token: shown once, then usable on the API.
    page.click("nav >> text=API tokens")
    page.fill("#id_name", "grafana")
    page.click("button:has-text('Create token')")
    token = page.inner_text("#new-token").strip()
    assert token.startswith("dna_")
    shot(page, "12-api-tokens")
    status = page.evaluate(
        """async (token) => (await fetch('/api/v1/clusters', {headers: {Authorization: 'Bearer ' + token},
                                                              credentials: 'omit'})).status""",
        token,
    )
    assert status == 200
    page.goto("/account/tokens/")
    assert token not in page.content() and "grafana" in page.inner_text("main")


def test_admin_adds_a_cluster_from_the_test_api_server_and_tests_the_connection(page, fakekube_server):
    factories.make_user("admin", username="ada")
    login(page, "ada")
    page.click("text=No clusters yet") if page.locator("text=No clusters yet").count() else None
    shot(page, "05-fleet-empty")
    page.click("nav >> text=Add cluster")
    page.fill("#id_kubeconfig_text", fakekube_server.kubeconfig("admin"))
    page.fill("#id_name", "fake-lab")
    shot(page, "06-add-cluster")
    page.click("button:has-text('Add cluster')")
    page.wait_for_url("**/clusters/fake-lab/settings/")
    assert "Added fake-lab" in page.inner_text("main")
    page.click("button:has-text('Run the connection and permission test')")
    page.wait_for_selector("#connection-result .notice.ok", timeout=30_000)
    result = page.inner_text("#connection-result")
    assert "Reachable" in result and "pods" in result.lower()
    shot(page, "07-connection-test")


def test_operator_rescans_and_watches_progress_reach_the_report(page, fakekube_server, monkeypatch):
    """A real scan of the demo cluster ``openstack-prod`` served by the test API server, exactly as
    ``make run`` sets it up: its images are read through a registry mirror on loopback holding the
    demo's (synthetic) images, and DNS probes go to a scripted server on loopback that answers like the
    cluster's upstream. Nothing leaves the machine."""
    from clusters.registry import import_kubeconfig
    from dnsaudit.boundary.registry import MIRRORS_ENV
    from dnsaudit.testbed.demoregistry import DemoRegistry, demo_image_digest
    from dnsaudit.testbed.fakedns import Behaviour, Rule, ScriptedDNS
    from dnsaudit.testbed.fakekube import objects as fake_objects
    from dnsaudit.testbed.fakekube.fleet import DEMO_USER, demo_fleet, serve

    previous = fake_objects.set_image_digest_provider(demo_image_digest)
    try:
        spec = next(s for s in demo_fleet() if s.name == "openstack-prod")
    finally:
        fake_objects.set_image_digest_provider(previous)
    serve([spec], fakekube_server)
    server = fakekube_server.cluster("openstack-prod")
    rules = [Rule(f"*.{domain}", Behaviour(action)) for domain, action in spec.upstream.items()]
    with DemoRegistry(serve_tags=False) as images, ScriptedDNS(rules) as dns:
        monkeypatch.setenv(MIRRORS_ENV, images.mirrors_env())
        cluster = import_kubeconfig(server.kubeconfig(DEMO_USER), name="openstack-prod").clusters[0]
        # Every pool of this demo cluster has the same node file; an admin enters it once for all pools.
        cluster.node_resolv_conf = spec.pools[0].node_resolv_conf
        cluster.probe_nameservers = [f"127.0.0.1:{dns.port}"]
        cluster.save()
        factories.make_user("operator", username="opal")
        login(page, "opal")
        page.goto("/clusters/openstack-prod/")
        assert "No report yet" in page.inner_text("#report-body")
        page.click("button:has-text('Rescan')")
        page.wait_for_selector("#scan-slot progress")
        shot(page, "08-rescan-progress")
        page.wait_for_selector("#report-body dl.counts", timeout=120_000)
        shot(page, "09-report-after-rescan")
        assert "Scan " in page.inner_text("#scan-slot")
        scan = cluster.scans.order_by("-pk").first()
        assert scan.status in ("succeeded", "partial"), (scan.status, scan.error)
        # Workloads with running pods were read from the (mirrored) registry, not guessed from names.
        running = scan.workloads.exclude(name__in=["legacy-worker", "report-export"])
        assert running and all(
            c["confidence"] == "confirmed" for w in running for c in w.report["containers"]
        )
        assert page.locator("#workloads tbody tr").count() == min(scan.workloads_total, 50)
        counts = page.locator("#report-body dl.counts dd").all_inner_texts()
        assert counts[:4] == [str(scan.affected), str(scan.at_risk), str(scan.safe), str(scan.unknown)]
        # The probe matrix shows what the node's search domain answered.
        assert "openstacklocal" in page.inner_text("#report-body section:has(#pools-h)")
        # The bundle of the real scan carries the cluster-level fixes the audit produced.
        with page.expect_download() as info:
            page.click("text=fix bundle (.zip)")
        names = zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes())).namelist()
        assert "README.md" in names and "verify.sh" in names
        if scan.affected:
            assert any(n.startswith("kubelet/") for n in names), names
        # The workload page of a workload the scan judged affected shows its traces and fix.
        affected = scan.workloads.filter(risk="affected").order_by("namespace", "name").first()
        if affected is not None:
            page.click(f"#workloads >> text={affected.name}")
            page.wait_for_url(f"**/workloads/{affected.pk}/")
            assert "affected" in page.inner_text(".verdict")
            shot(page, "10-workload-after-rescan")
        # From the fleet: the row's Rescan shows the progress in place until the scan ends.
        page.goto("/")
        page.click("#cluster-openstack-prod button:has-text('Rescan')")
        page.wait_for_selector("#scan-slot-openstack-prod progress")
        page.wait_for_selector("#scan-slot-openstack-prod >> text=Open the report", timeout=120_000)
        assert cluster.scans.count() == 2
        shot(page, "11-fleet-after-rescan")


def test_report_filters_and_pages_work_without_javascript(browser, live_server, fleet_data):
    """Readable without JavaScript: the filter form is a plain GET form and the pager has real links."""
    factories.make_user("viewer", username="nojs")
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        login(page, "nojs")
        page.goto("/clusters/prod-eu/")
        page.select_option("select[name=kind]", "StatefulSet")
        page.click("form#filters button[type=submit]")
        page.wait_for_url("**kind=StatefulSet**")
        kinds = page.locator("#workloads tbody tr td:nth-child(3)").all_inner_texts()
        expected = fleet_data["scan"].workloads.filter(kind="StatefulSet").count()
        assert kinds == ["StatefulSet"] * expected
        page.goto("/clusters/prod-eu/?sort=name")
        page.click("a[rel=next]")
        page.wait_for_url("**page=2**")
        assert page.locator("#workloads tbody tr").count() == 10  # 60 rows, 50 per page
    finally:
        context.close()
