"""Every change made on the dashboard is recorded through the real views: who, what, from where; and the
recorded rows never hold a secret (kubeconfig token, API token, password)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from clusters.models import ApiToken, AuditEvent, Cluster
from tests.auditlog.conftest import changes, events, whole_table
from tests.kubeconfig import factory as kc
from tests.web import factories

ADDR = "192.0.2.10"


@pytest.fixture
def admin(client_as):
    return client_as("admin", REMOTE_ADDR=ADDR)


@pytest.fixture
def operator(client_as):
    return client_as("operator", REMOTE_ADDR=ADDR)


def test_adding_a_cluster_is_recorded_without_its_kubeconfig(admin, db):
    response = admin.post(reverse("clusters:add"), {"kubeconfig_text": kc.token_kubeconfig(), "name": "prod"})
    assert response.status_code == 302
    (event,) = events("cluster.add")
    assert (event.actor, event.via, event.address, event.target, event.success) == (
        "admin",
        "web",
        ADDR,
        "prod",
        True,
    )
    assert kc.TOKEN not in whole_table() and "kind: Config" not in whole_table()


def test_adding_every_context_records_each_cluster(admin, db):
    two = kc.add_context(kc.doc(), kc.doc(context_name="staging", cluster_name="stg", user_name="stg-admin"))
    text = kc.dump(two)
    assert admin.post(reverse("clusters:add"), {"kubeconfig_text": text}).status_code == 200  # the chooser
    assert not changes().exists()
    response = admin.post(
        reverse("clusters:add"), {"kubeconfig_text": text, "choice": "__all__", "name": "all"}
    )
    assert response.status_code == 302
    assert sorted(e.target for e in events("cluster.add")) == sorted(
        Cluster.objects.values_list("name", flat=True)
    )
    assert len(events("cluster.add")) == 2 and kc.TOKEN not in whole_table()


def test_a_refused_kubeconfig_records_nothing(admin, db):
    assert admin.post(reverse("clusters:add"), {"kubeconfig_text": "not: a kubeconfig"}).status_code == 400
    assert not AuditEvent.objects.filter(action="cluster.add").exists()


def test_settings_change_records_which_fields_changed_not_their_values(admin, report):
    url = reverse("clusters:settings", args=[report.cluster.name])
    response = admin.post(
        url,
        {
            "scan_interval_minutes": 60,
            "allow_exec": "on",
            "cluster_domain": "cluster.local",
            "node_resolv_conf": "nameserver 192.168.0.2\nsearch corp.example\n",
            "notes": "a-note-value-7f3e",
            "probe_nameservers_text": "10.96.0.10",
            "probe_names_text": "example.com",
            "cluster_dns_text": "10.96.0.10",
            "pool_0": "nameserver 192.168.0.2\nsearch other.example",
        },
    )
    assert response.status_code == 302
    (change,) = events("cluster.change")
    assert change.target == report.cluster.name and change.actor == "admin" and change.address == ADDR
    assert {"allow_exec", "notes", "scan_interval_minutes"} <= set(change.detail["fields"])
    assert "node_resolv_conf" not in change.detail["fields"] and "pool_0" not in change.detail["fields"]
    assert "a-note-value-7f3e" not in whole_table() and "other.example" not in whole_table()
    entered = {e.detail["pool"]: e.detail["cleared"] for e in events("node_file.enter")}
    assert entered == {"*": False, "default": False}


def test_a_refused_settings_form_records_nothing(admin, report):
    url = reverse("clusters:settings", args=[report.cluster.name])
    data = {"scan_interval_minutes": 60, "cluster_domain": "cluster.local", "probe_names_text": "not a name!"}
    assert admin.post(url, data).status_code == 400
    assert not changes().exists()


def test_deleting_a_cluster_is_recorded(admin, report):
    name = report.cluster.name
    url = reverse("clusters:delete", args=[name])
    admin.post(url, {"confirm_name": "wrong"})
    assert not changes().exists()
    assert admin.post(url, {"confirm_name": name}).status_code == 302
    (event,) = events("cluster.remove")
    assert (event.target, event.actor, event.detail["scans"]) == (name, "admin", 1)


def test_rescan_is_recorded(operator, report):
    url = reverse("clusters:rescan", args=[report.cluster.name])
    operator.post(url, HTTP_HX_REQUEST="true")
    operator.post(url)
    first, second = events("scan.request")
    assert first.detail["created"] is True and second.detail["created"] is False
    assert first.detail["scan"] == second.detail["scan"]
    assert (first.actor, first.target, first.address) == ("operator", report.cluster.name, ADDR)


@pytest.mark.parametrize(
    ("url_name", "action"),
    [
        ("clusters:export_json", "export.json"),
        ("clusters:export_csv", "export.csv"),
        ("clusters:export_html", "export.html"),
        ("clusters:export_bundle", "export.bundle"),
    ],
)
def test_every_report_export_is_recorded(operator, report, url_name, action):
    assert operator.get(reverse(url_name, args=[report.cluster.name])).status_code == 200
    (event,) = events(action)
    assert (event.actor, event.target, event.detail["scan"]) == ("operator", report.cluster.name, report.pk)


@pytest.mark.parametrize(
    ("url_name", "fmt"), [("clusters:workload_patch", "yaml"), ("clusters:workload_kubectl", "sh")]
)
def test_patch_downloads_are_recorded(operator, report, url_name, fmt):
    w = report.workloads.filter(risk="affected").first()
    assert operator.get(reverse(url_name, args=[report.cluster.name, w.pk, 0])).status_code == 200
    (event,) = events("export.patch")
    assert event.target == f"{report.cluster.name}/{w.namespace}/{w.kind}/{w.name}"
    assert event.detail["format"] == fmt and event.detail["scan"] == report.pk


def test_a_refused_export_records_nothing(client_as, report):
    assert (
        client_as("viewer").get(reverse("clusters:export_json", args=[report.cluster.name])).status_code
        == 403
    )
    assert not changes().exists()


def test_token_create_and_revoke_are_recorded_with_the_prefix_never_the_token(client_as, users):
    viewer = client_as("viewer", REMOTE_ADDR=ADDR)
    viewer.post(reverse("clusters:tokens"), {"name": "grafana", "expires": "30"})
    shown = viewer.get(reverse("clusters:tokens")).content.decode()
    token = ApiToken.objects.get(user=users["viewer"])
    secret = re.search(r'id="new-token">(dna_[^<]+)<', shown).group(1)
    assert len(secret) > 30 and ApiToken.hash(secret) == token.digest
    viewer.post(reverse("clusters:revoke_token", args=[token.pk]))
    viewer.post(reverse("clusters:revoke_token", args=[token.pk]))  # already revoked: no second event
    created, revoked = events("token.create"), events("token.revoke")
    assert len(created) == len(revoked) == 1
    assert created[0].target == "grafana" and created[0].detail["token_prefix"] == token.prefix
    assert created[0].detail["expires_in_days"] == 30 and revoked[0].actor == "viewer"
    assert secret not in whole_table() and token.digest not in whole_table()


def test_an_admin_revoking_tokens_in_the_django_admin_is_recorded(client_as, users):
    users["admin"].is_superuser = users["admin"].is_staff = True
    users["admin"].save()
    row, secret = ApiToken.issue(users["viewer"], "ci")
    admin = client_as("admin")
    response = admin.post(
        "/admin/clusters/apitoken/", {"action": "revoke_tokens", "_selected_action": [row.pk]}
    )
    assert response.status_code == 302
    (event,) = events("token.revoke")
    assert (event.actor, event.target, event.detail["owner"], event.detail["admin"]) == (
        "admin",
        "ci",
        "viewer",
        True,
    )
    assert secret not in whole_table()


def test_a_cluster_deleted_in_the_django_admin_is_recorded(client_as, users):
    users["admin"].is_superuser = users["admin"].is_staff = True
    users["admin"].save()
    cluster = factories.make_cluster("old")
    response = client_as("admin").post(f"/admin/clusters/cluster/{cluster.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Cluster.objects.filter(name="old").exists()
    assert [e.target for e in events("cluster.remove")] == ["old"]


def test_reading_pages_records_nothing(client_as, report):
    viewer = client_as("viewer")
    for url in ("/", reverse("clusters:report", args=[report.cluster.name]), reverse("clusters:tokens")):
        assert viewer.get(url).status_code == 200
    assert not changes().exists()


def test_a_token_cannot_make_a_change_so_nothing_is_recorded_for_it(report, users):
    token = ApiToken.issue(users["admin"], "ci")[1]
    response = Client().post(
        reverse("clusters:rescan", args=[report.cluster.name]), HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="scan.request").exists()


def test_a_connection_test_is_recorded_with_its_outcome(admin, cluster):
    # The factory's stored kubeconfig cannot be decrypted: the test fails at once, without any network.
    response = admin.post(reverse("clusters:connection_test", args=[cluster.name]))
    assert response.status_code == 302
    (event,) = events("cluster.connection_test")
    assert (event.actor, event.target, event.success) == ("admin", cluster.name, False)
