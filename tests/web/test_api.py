"""The read-only JSON API with session and per-user token auth, and the token page."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from clusters.models import ApiToken
from tests.web import factories


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_creating_a_token_shows_it_once_and_stores_only_its_hash(client_as, users):
    viewer = client_as("viewer")
    created = viewer.post(reverse("clusters:tokens"), {"name": "grafana"})
    assert created.status_code == 302  # post/redirect/get: a refresh does not make a second token
    body = viewer.get(created["Location"]).content.decode()
    token = re.search(r"dna_[A-Za-z0-9_-]{20,}", body).group(0)
    stored = ApiToken.objects.get(user=users["viewer"])
    assert stored.name == "grafana" and stored.digest == ApiToken.hash(token)
    assert token not in str(ApiToken.objects.values_list().get())
    again = viewer.get(reverse("clusters:tokens")).content.decode()
    assert token not in again and stored.prefix in again


def test_token_authenticates_api_and_revoking_stops_it(client_as, users, report):
    _, token = ApiToken.issue(users["viewer"], "ci")
    api = Client()
    response = api.get(reverse("clusters:api_clusters"), **bearer(token))
    assert response.status_code == 200
    names = [c["name"] for c in response.json()["clusters"]]
    assert names == [report.cluster.name]
    assert ApiToken.objects.get(name="ci").last_used_at is not None
    tok = ApiToken.objects.get(name="ci")
    client_as("viewer").post(reverse("clusters:revoke_token", args=[tok.pk]))
    assert api.get(reverse("clusters:api_clusters"), **bearer(token)).status_code == 401


def test_wrong_or_missing_token_is_401_with_challenge(db):
    response = Client().get(reverse("clusters:api_clusters"), **bearer("dna_not-a-token"))
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert Client().get(reverse("clusters:api_clusters")).status_code == 401


def test_token_of_user_without_role_is_403(users, report):
    _, token = ApiToken.issue(users["norole"], "x")
    assert Client().get(reverse("clusters:api_clusters"), **bearer(token)).status_code == 403


def test_token_cannot_post(users, report):
    """Tokens are for the read-only API: a token request is not exempt from CSRF on POST."""
    _, token = ApiToken.issue(users["admin"], "x")
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("clusters:rescan", args=[report.cluster.name]), **bearer(token))
    assert response.status_code == 403


def test_scans_scan_and_workloads_endpoints(client_as, cluster):
    old = factories.make_report(cluster, workloads=4, age_minutes=60)
    scan = factories.make_report(cluster, workloads=10)
    viewer = client_as("viewer")
    scans = viewer.get(reverse("clusters:api_scans", args=[cluster.name])).json()["scans"]
    assert [s["id"] for s in scans] == [scan.pk, old.pk]
    detail = viewer.get(reverse("clusters:api_scan", args=[scan.pk])).json()
    assert detail["scan"]["status"] == "succeeded" and detail["node_pools"][0]["name"] == "default"
    assert detail["scan"]["counts"]["affected"] == scan.affected
    url = reverse("clusters:api_scan_workloads", args=[scan.pk])
    data = viewer.get(url).json()
    assert data["count"] == 10 and len(data["workloads"]) == 10
    affected = viewer.get(url, {"risk": "affected"}).json()["workloads"]
    assert {w["name"] for w in affected} == set(
        scan.workloads.filter(risk="affected").values_list("name", flat=True)
    )
    both = viewer.get(url, {"risk": "affected,at-risk"}).json()
    assert both["count"] == scan.affected + scan.at_risk
    page2 = viewer.get(url, {"page_size": 4, "page": 2}).json()
    assert page2["pages"] == 3 and len(page2["workloads"]) == 4
    assert viewer.get(url, {"page_size": 4, "page": 9}).status_code == 404


def test_api_unknown_objects_are_json_404(client_as, db):
    viewer = client_as("viewer")
    for url in (reverse("clusters:api_scans", args=["nope"]), reverse("clusters:api_scan", args=[999])):
        response = viewer.get(url)
        assert response.status_code == 404 and "error" in response.json()


def test_api_is_read_only(client_as, report):
    response = client_as("admin").post(reverse("clusters:api_clusters"))
    assert response.status_code == 405


@pytest.mark.parametrize("count", [10, 200])
def test_api_workloads_queries_are_constant(client_as, django_assert_max_num_queries, count):
    c = factories.make_cluster(f"api-{count}")
    scan = factories.make_report(c, workloads=count)
    viewer = client_as("viewer")
    viewer.get(reverse("clusters:api_clusters"))  # warm the session
    with django_assert_max_num_queries(6):
        viewer.get(reverse("clusters:api_scan_workloads", args=[scan.pk]))
