"""Exemptions on the dashboard, the API, the exports and /metrics: viewers see, operators create and remove
(tokens never), exempted workloads keep their risk and are shown and counted apart, an expired exemption
stops applying everywhere."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from clusters import exemptions
from clusters.models import ApiToken, AuditEvent, Exemption, WorkloadResult
from tests.web import factories

pytestmark = pytest.mark.django_db
TOMORROW = (date.today() + timedelta(days=1)).isoformat()


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


@pytest.fixture
def scanned(cluster):
    """12 workloads: 4 per namespace ns-0..ns-2, a mix of risks (factories.MIX)."""
    return factories.make_report(cluster, workloads=12, namespaces=3)


def page_url(cluster) -> str:
    return reverse("clusters:exemptions", args=[cluster.name])


def create(client: Client, cluster, **data):
    return client.post(page_url(cluster), {"reason": "accepted", **data})


def affected_in(scan, namespace: str) -> int:
    return scan.workloads.filter(namespace=namespace, risk="affected").count()


def test_viewers_see_the_page_but_only_operators_create_and_remove(client_as, cluster, scanned):
    viewer = client_as("viewer")
    assert viewer.get(page_url(cluster)).status_code == 200
    assert create(viewer, cluster, namespace="ns-0").status_code == 403
    assert not Exemption.objects.exists()
    assert b"Create exemption" not in viewer.get(page_url(cluster)).content

    operator = client_as("operator")
    response = create(
        operator, cluster, namespace="ns-0", reason="ns-0 is retired next month", expires=TOMORROW
    )
    assert response.status_code == 302
    e = Exemption.objects.get()
    assert (e.created_by, e.namespace, e.expires.isoformat()) == ("operator", "ns-0", TOMORROW)
    assert scanned.workloads.filter(exemption__id=e.pk).count() == 4
    event = AuditEvent.objects.get(action="exemption.create")
    assert (event.actor, event.via, event.target) == ("operator", "web", cluster.name)

    remove = reverse("clusters:remove_exemption", args=[cluster.name, e.pk])
    assert viewer.post(remove).status_code == 403
    assert operator.post(remove).status_code == 302
    assert not scanned.workloads.filter(exemption__isnull=False).exists()
    page = viewer.get(page_url(cluster)).content.decode()
    assert "removed" in page and "by operator" in page
    assert AuditEvent.objects.filter(action="exemption.remove", actor="operator").exists()


@pytest.mark.parametrize(
    "data, said",
    [
        ({"reason": ""}, "This field is required"),
        ({"expires": (date.today() - timedelta(days=1)).isoformat()}, "in the past"),
        ({"workload": "web"}, "KIND/NAME"),
        ({"reason": "<script>x</script>\x07"}, "control characters"),
    ],
)
def test_the_form_refuses_bad_input(client_as, cluster, scanned, data, said):
    response = create(client_as("operator"), cluster, **data)
    assert response.status_code == 400
    assert said in response.content.decode()
    assert "<script>x" not in response.content.decode()
    assert not Exemption.objects.exists()


def test_every_risk_count_shows_its_exempted_apart_safe_included(client_as, cluster, scanned):
    operator = client_as("operator")
    report_url = reverse("clusters:report", args=[cluster.name])
    for ns in ("ns-0", "ns-1", "ns-2"):
        create(operator, cluster, namespace=ns, reason=f"{ns} known")
    page = operator.get(report_url).content.decode()
    for risk in ("affected", "at-risk", "safe", "unknown"):
        n = scanned.workloads.filter(risk=risk).count()
        link = f'href="?risk={risk}&amp;exempted=yes#workloads-h">· {n} exempted</a>'
        assert (link in page) == (n > 0), (risk, n)
    assert scanned.workloads.filter(risk="safe").exists()


def test_report_counts_show_exempted_apart_and_rows_carry_a_badge(client_as, cluster, scanned):
    operator = client_as("operator")
    report_url = reverse("clusters:report", args=[cluster.name])
    before = operator.get(report_url).content.decode()  # cached table, before the exemption
    assert "exempted</span>" not in before
    create(operator, cluster, namespace="ns-0", reason="ns-0 known")
    n = affected_in(scanned, "ns-0")
    assert n > 0
    page = operator.get(report_url).content.decode()
    assert f"· {n} exempted" in page  # affected 7 · 2 exempted
    assert page.count("⊘</span> exempted</span>") == 4  # the cached table was not served stale
    assert f'{scanned.affected}</a> <a class="exempted-count small"' in page  # the risk count is unchanged
    only = operator.get(report_url, {"exempted": "yes"}).content.decode()
    assert "4 workloads match the filters" in only
    rest = operator.get(report_url, {"exempted": "no"}).content.decode()
    assert "8 workloads match the filters" in rest
    fleet = operator.get(reverse("clusters:fleet")).content.decode()
    assert f"· {n} exempted" in fleet


def test_an_expired_exemption_stops_applying_everywhere(client_as, cluster, scanned, monkeypatch):
    operator = client_as("operator")
    create(operator, cluster, namespace="ns-0", reason="until tomorrow", expires=TOMORROW)
    assert exemptions.exempted_counts(scanned)["total"] == 4
    later = date.today() + timedelta(days=2)
    monkeypatch.setattr(exemptions, "today", lambda: later)
    assert exemptions.exempted_counts(scanned)["total"] == 0
    page = operator.get(reverse("clusters:report", args=[cluster.name])).content.decode()
    assert "⊘" not in page and "exempted</a>" not in page
    listing = operator.get(page_url(cluster)).content.decode()
    assert 'class="badge exemption-expired">expired' in listing
    api = operator.get(reverse("clusters:api_scan_workloads", args=[scanned.pk])).json()
    assert not any("exemption" in w for w in api["workloads"])


def test_api_lists_creates_and_deletes_for_operators_and_tokens_stay_read_only(
    client_as, users, cluster, scanned
):
    url = reverse("clusters:api_exemptions", args=[cluster.name])
    operator = client_as("operator")
    body = json.dumps(
        {"namespace": "ns-1", "workload": "Deployment/wl-0001", "reason": "api says", "expires": TOMORROW}
    )
    created = operator.post(url, body, content_type="application/json")
    assert created.status_code == 201, created.content
    item = created.json()
    assert (
        item["status"] == "active"
        and item["workloads"]
        == scanned.workloads.filter(namespace="ns-1", kind="Deployment", name="wl-0001").count()
    )
    # A session wrote it (API tokens are read-only): "api" in the audit log means a token.
    assert AuditEvent.objects.get(action="exemption.create").via == "web"

    viewer = client_as("viewer")
    assert viewer.post(url, body, content_type="application/json").status_code == 403
    listed = viewer.get(url).json()
    assert [e["id"] for e in listed["exemptions"]] == [item["id"]]
    bad = operator.post(
        url, json.dumps({"reason": "x", "expires": "2020-01-01"}), content_type="application/json"
    )
    assert bad.status_code == 400 and "in the past" in bad.json()["error"]
    assert operator.post(url, "[]", content_type="application/json").status_code == 400
    assert (
        operator.post(url, json.dumps({"reason": "x", "who": 1}), content_type="application/json").status_code
        == 400
    )

    # An API token reads, never writes.
    _, token = ApiToken.issue(users["admin"], "ci")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert Client().get(url, **auth).status_code == 200
    assert Client().post(url, body, content_type="application/json", **auth).status_code == 403
    one = reverse("clusters:api_exemption", args=[item["id"]])
    assert Client().delete(one, **auth).status_code == 403
    assert Client().get(url).status_code == 401

    # Session writes need the CSRF token, like every other form.
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(users["operator"])
    assert strict.delete(one).status_code == 403
    deleted = operator.delete(one)
    assert deleted.status_code == 200 and deleted.json()["status"] == "removed"
    assert not scanned.workloads.filter(exemption__isnull=False).exists()


def test_the_workloads_api_exports_and_metrics_carry_the_exemption(client_as, cluster, scanned):
    operator = client_as("operator")
    create(
        operator, cluster, workload="Deployment/wl-0000", reason="known, tracked in OPS-7", expires=TOMORROW
    )
    e = Exemption.objects.get()
    row = scanned.workloads.get(name="wl-0000")
    expected = {
        "reason": "known, tracked in OPS-7",
        "source": "dnsaudit",
        "by": "operator",
        "expires": TOMORROW,
        "id": e.pk,
    }

    api = operator.get(reverse("clusters:api_scan_workloads", args=[scanned.pk])).json()["workloads"]
    by_name = {w["name"]: w for w in api}
    assert by_name["wl-0000"]["exemption"] == expected
    assert by_name["wl-0000"]["risk"] == row.risk
    assert sum("exemption" in w for w in api) == 1
    only = operator.get(reverse("clusters:api_scan_workloads", args=[scanned.pk]), {"exempted": "yes"}).json()
    assert [w["name"] for w in only["workloads"]] == ["wl-0000"]
    rest = operator.get(reverse("clusters:api_scan_workloads", args=[scanned.pk]), {"exempted": "no"}).json()
    assert rest["count"] == len(api) - 1

    exported = json.loads(operator.get(reverse("clusters:export_json", args=[cluster.name])).content)
    assert {w["name"]: w.get("exemption") for w in exported["workloads"]}["wl-0000"] == expected
    assert exported["exempted"][row.risk] == 1

    rows = list(
        csv.DictReader(
            io.StringIO(operator.get(reverse("clusters:export_csv", args=[cluster.name])).content.decode())
        )
    )
    mine = next(r for r in rows if r["name"] == "wl-0000")
    assert (mine["exemption_reason"], mine["exemption_source"], mine["exemption_expires"]) == (
        expected["reason"],
        "dnsaudit",
        TOMORROW,
    )
    assert all(r["exemption_reason"] == "" for r in rows if r["name"] != "wl-0000")

    html = operator.get(reverse("clusters:export_html", args=[cluster.name])).content.decode()
    assert "known, tracked in OPS-7" in html and "exempted" in html

    workload_page = operator.get(reverse("clusters:workload", args=[cluster.name, row.pk])).content.decode()
    assert "known, tracked in OPS-7" in workload_page and f"exemption {e.pk} by operator" in workload_page

    metrics = operator.get(reverse("clusters:metrics")).content.decode()
    label = f'cluster="{cluster.name}",risk="{row.risk}"'
    total = WorkloadResult.objects.filter(scan=scanned, risk=row.risk).count()
    assert f'dnsaudit_workloads{{{label},exempted="true"}} 1' in metrics
    assert f'dnsaudit_workloads{{{label},exempted="false"}} {total - 1}' in metrics
