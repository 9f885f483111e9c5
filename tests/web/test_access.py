"""Every URL × anonymous / no role / viewer / operator / admin: who gets in, who gets 403 or a login."""

from __future__ import annotations

import pytest
from django.urls import reverse

from clusters.models import Cluster, Scan
from tests.web import factories

ANON, NOROLE, VIEWER, OPERATOR, ADMIN = None, "norole", "viewer", "operator", "admin"
WHO = (ANON, NOROLE, VIEWER, OPERATOR, ADMIN)
RANK = {NOROLE: 0, VIEWER: 1, OPERATOR: 2, ADMIN: 3}


@pytest.fixture
def world(report):
    """Objects the URLs point at: the cluster, its report scan, an affected workload with a patch."""
    workload = report.workloads.filter(risk="affected").first()
    return {"name": report.cluster.name, "scan": report.pk, "wl": workload.pk}


# (url name, args from world, minimum role, kind) — kind "page" redirects anonymous users to the login
# page; "api" answers 401 instead.
GET_URLS = [
    ("clusters:fleet", (), VIEWER, "page"),
    ("clusters:report", ("name",), VIEWER, "page"),
    ("clusters:workload", ("name", "wl"), VIEWER, "page"),
    ("clusters:scan_progress", ("name", "scan"), VIEWER, "page"),
    ("clusters:tokens", (), VIEWER, "page"),
    ("clusters:export_json", ("name",), OPERATOR, "page"),
    ("clusters:export_csv", ("name",), OPERATOR, "page"),
    ("clusters:export_html", ("name",), OPERATOR, "page"),
    ("clusters:export_bundle", ("name",), OPERATOR, "page"),
    ("clusters:workload_patch", ("name", "wl", 0), OPERATOR, "page"),
    ("clusters:workload_kubectl", ("name", "wl", 0), OPERATOR, "page"),
    ("clusters:add", (), ADMIN, "page"),
    ("clusters:settings", ("name",), ADMIN, "page"),
    ("clusters:delete", ("name",), ADMIN, "page"),
    ("clusters:api_clusters", (), VIEWER, "api"),
    ("clusters:api_scans", ("name",), VIEWER, "api"),
    ("clusters:api_scan", ("scan",), VIEWER, "api"),
    ("clusters:api_scan_workloads", ("scan",), VIEWER, "api"),
    ("clusters:metrics", (), VIEWER, "api"),
]


def _url(world: dict, name: str, args: tuple) -> str:
    return reverse(name, args=[world[a] if isinstance(a, str) else a for a in args])


@pytest.mark.parametrize("who", WHO, ids=lambda w: w or "anonymous")
@pytest.mark.parametrize(("url_name", "args", "needed", "kind"), GET_URLS, ids=[u[0] for u in GET_URLS])
def test_get_urls_enforce_roles(client_as, world, who, url_name, args, needed, kind):
    url = _url(world, url_name, args)
    response = client_as(who).get(url)
    if who is ANON:
        if kind == "page":
            assert response.status_code == 302
            assert response["Location"].startswith(reverse("login"))
        else:
            assert response.status_code == 401
    elif RANK[who] >= RANK[needed]:
        assert response.status_code == 200, (url, who, response.status_code)
    else:
        assert response.status_code in (403,) if kind == "page" else response.status_code in (401, 403)


POST_URLS = [
    ("clusters:rescan", ("name",), OPERATOR),
    ("clusters:connection_test", ("name",), ADMIN),
    ("clusters:delete", ("name",), ADMIN),
    ("clusters:settings", ("name",), ADMIN),
    ("clusters:add", (), ADMIN),
]


# Every (POST URL, user below its role) pair; the allowed pairs are exercised by the feature tests.
DENIED_POSTS = [
    (who, *post)
    for post in POST_URLS
    for who in (ANON, NOROLE, VIEWER, OPERATOR)
    if who is ANON or RANK[who] < RANK[post[2]]
]


@pytest.mark.parametrize(
    ("who", "url_name", "args", "needed"),
    DENIED_POSTS,
    ids=[f"{p[1]}-{p[0] or 'anonymous'}" for p in DENIED_POSTS],
)
def test_posts_below_the_role_change_nothing(client_as, world, who, url_name, args, needed):
    scans_before = Scan.objects.count()
    response = client_as(who).post(_url(world, url_name, args), {"confirm_name": world["name"]})
    if who is ANON:
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    else:
        assert response.status_code == 403
    assert Scan.objects.count() == scans_before
    assert Cluster.objects.filter(name=world["name"]).exists()


def test_login_and_health_need_no_login(client, db):
    assert client.get(reverse("login")).status_code == 200
    assert client.get(reverse("health")).status_code == 200


def test_pages_link_an_icon_and_favicon_ico_leads_to_it(client, db):
    body = client.get(reverse("login")).content.decode()
    assert 'rel="icon"' in body and "img/favicon.svg" in body
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("img/favicon.svg")


def test_viewer_sees_no_rescan_or_manage_buttons(client_as, world):
    body = client_as(VIEWER).get(reverse("clusters:report", args=[world["name"]])).content.decode()
    assert "Rescan" not in body
    assert reverse("clusters:settings", args=[world["name"]]) not in body
    assert reverse("clusters:export_bundle", args=[world["name"]]) not in body


def test_operator_sees_rescan_and_exports_but_not_settings(client_as, world):
    body = client_as(OPERATOR).get(reverse("clusters:report", args=[world["name"]])).content.decode()
    assert "Rescan" in body
    assert reverse("clusters:export_bundle", args=[world["name"]]) in body
    assert reverse("clusters:settings", args=[world["name"]]) not in body


def test_token_of_one_user_cannot_be_revoked_by_another(client_as, users):
    from clusters.models import ApiToken

    token, _ = ApiToken.issue(users["admin"], "mine")
    response = client_as(VIEWER).post(reverse("clusters:revoke_token", args=[token.pk]))
    assert response.status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_unknown_cluster_is_404_not_500(client_as, db):
    factories.make_cluster("other")
    assert client_as(VIEWER).get(reverse("clusters:report", args=["nope"])).status_code == 404
