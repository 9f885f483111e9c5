"""Workload page, rescan with progress, cluster management and CSRF."""

from __future__ import annotations

import re

import pytest
from django.middleware.csrf import get_token
from django.test import Client
from django.urls import reverse

from clusters.models import Cluster, Scan
from tests.kubeconfig import factory as kc
from tests.web import factories

# --- workload page -------------------------------------------------------------------------------------


def test_workload_page_explains_the_verdict(client_as, report):
    w = report.workloads.filter(risk="affected").first()
    body = (
        client_as("viewer")
        .get(reverse("clusters:workload", args=[report.cluster.name, w.pk]))
        .content.decode()
    )
    # The effective resolv.conf as the file.
    assert (
        "search ns-0.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10"
        in body
    )
    # musl and glibc side by side: musl stopped at the NODATA domain, glibc resolved.
    musl = body.split("side-musl", 1)[1].split("side-glibc", 1)[0]
    glibc = body.split("side-glibc", 1)[1].split("</article>", 1)[0]
    assert "example.com.corp.example" in musl and "(stopped here)" in musl and "EAI_NODATA" in musl
    assert "stopped here" not in glibc and "93.184.215.14" in glibc and "resolves" in glibc
    assert "musl and glibc disagree" in body
    # Image evidence and the remediation with its copy button; viewers get no download links.
    assert "apk database: musl 1.2.4" in body and "alpine" in body
    assert "recommended" in body and "dnsPolicy: None" in body and 'data-copy="#patch-0"' in body
    assert "Download .yaml" not in body


def test_workload_page_offers_downloads_to_operators(client_as, report):
    w = report.workloads.filter(risk="affected").first()
    body = (
        client_as("operator")
        .get(reverse("clusters:workload", args=[report.cluster.name, w.pk]))
        .content.decode()
    )
    assert reverse("clusters:workload_patch", args=[report.cluster.name, w.pk, 0]) in body
    assert reverse("clusters:workload_kubectl", args=[report.cluster.name, w.pk, 0]) in body


def test_safe_workload_says_nothing_to_fix(client_as, report):
    w = report.workloads.filter(risk="safe").first()
    body = (
        client_as("viewer")
        .get(reverse("clusters:workload", args=[report.cluster.name, w.pk]))
        .content.decode()
    )
    assert "Nothing to fix" in body


# --- rescan and progress ----------------------------------------------------------------------------------


def test_rescan_creates_one_scan_and_returns_the_active_one(client_as, report):
    operator = client_as("operator")
    url = reverse("clusters:rescan", args=[report.cluster.name])
    first = operator.post(url, HTTP_HX_REQUEST="true")
    active = Scan.objects.get(cluster=report.cluster, status=Scan.QUEUED)
    second = operator.post(url, HTTP_HX_REQUEST="true")
    assert Scan.objects.filter(cluster=report.cluster, status__in=Scan.ACTIVE).count() == 1
    for response in (first, second):
        body = response.content.decode()
        assert f"Scan {active.pk}" in body and "<progress" in body
        assert 'hx-trigger="load delay:1s"' in body
    assert active.requested_by.username == "operator"
    # Without htmx: redirect back to the report, which shows the progress and keeps the old report.
    plain = operator.post(url)
    assert plain.status_code == 302
    page = operator.get(plain["Location"]).content.decode()
    assert f"Scan {active.pk}" in page and f"Scan {report.pk}" in page


def test_progress_fragment_polls_while_active_and_stops_when_done(client_as, report):
    viewer = client_as("viewer")
    scan = factories.make_scan(
        report.cluster, status=Scan.RUNNING, progress_done=3, progress_total=12, stage="inspecting images"
    )
    url = reverse("clusters:scan_progress", args=[report.cluster.name, scan.pk]) + "?where=report"
    running = viewer.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert (
        "hx-trigger" in running
        and "inspecting images" in running
        and 'value="25"' in running
        and "3 / 12" in running
    )
    Scan.objects.filter(pk=scan.pk).update(status=Scan.SUCCEEDED, progress_done=12)
    done = viewer.get(url, HTTP_HX_REQUEST="true").content.decode()
    # The self-poll stops (no trigger on the box) and one loader fetches the fresh report body.
    box = re.search(r'<div class="progress-box[^>]*>', done).group(0)
    assert "hx-trigger" not in box and "hx-get" not in box
    assert 'hx-select="#report-body"' in done and 'hx-trigger="load"' in done
    Scan.objects.filter(pk=scan.pk).update(status=Scan.FAILED, error="API server unreachable")
    failed = viewer.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "API server unreachable" in failed and "hx-select" not in failed
    # Without htmx: a full page that refreshes itself while active (noscript).
    page = viewer.get(reverse("clusters:scan_progress", args=[report.cluster.name, scan.pk])).content.decode()
    assert "<html" in page


# --- management -------------------------------------------------------------------------------------------


def test_admin_adds_a_cluster_from_pasted_kubeconfig(client_as, db):
    admin = client_as("admin")
    response = admin.post(reverse("clusters:add"), {"kubeconfig_text": kc.token_kubeconfig(), "name": "prod"})
    assert response.status_code == 302 and response["Location"] == reverse("clusters:settings", args=["prod"])
    cluster = Cluster.objects.get(name="prod")
    assert cluster.server == kc.SERVER
    assert kc.TOKEN not in cluster.kubeconfig_encrypted
    settings_page = admin.get(response["Location"]).content.decode()
    assert kc.TOKEN not in settings_page and "Added prod" in settings_page


def test_admin_adds_a_cluster_from_an_upload(client_as, db):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile(
        "config", kc.token_kubeconfig().encode(), content_type="application/octet-stream"
    )
    response = client_as("admin").post(reverse("clusters:add"), {"kubeconfig_file": upload})
    assert response.status_code == 302
    assert Cluster.objects.filter(name="prod").exists()  # named after the context


def test_several_contexts_show_a_chooser_then_import_the_chosen_one(client_as, db):
    two = kc.add_context(kc.doc(), kc.doc(context_name="staging", cluster_name="stg", user_name="stg-admin"))
    text = kc.dump(two)
    admin = client_as("admin")
    chooser = admin.post(reverse("clusters:add"), {"kubeconfig_text": text})
    body = chooser.content.decode()
    assert chooser.status_code == 200 and 'value="staging"' in body and 'value="prod"' in body
    assert not Cluster.objects.exists()
    done = admin.post(reverse("clusters:add"), {"kubeconfig_text": text, "choice": "staging"})
    assert done.status_code == 302
    assert list(Cluster.objects.values_list("name", flat=True)) == ["staging"]
    admin.post(reverse("clusters:add"), {"kubeconfig_text": text, "choice": "__all__", "name": "all"})
    assert set(Cluster.objects.values_list("name", flat=True)) == {"staging", "all-prod", "all-staging"}


def test_refused_kubeconfig_shows_the_reason_and_stores_nothing(client_as, db):
    exec_user = {"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}}
    response = client_as("admin").post(
        reverse("clusters:add"), {"kubeconfig_text": kc.dump(kc.doc(user=exec_user))}
    )
    assert response.status_code == 400
    assert "exec" in response.content.decode()
    assert not Cluster.objects.exists()
    empty = client_as("admin").post(reverse("clusters:add"), {})
    assert empty.status_code == 400 and "upload a kubeconfig file or paste one" in empty.content.decode()


def test_settings_save_probe_names_nameservers_and_pool_resolv_conf(client_as, report):
    admin = client_as("admin")
    url = reverse("clusters:settings", args=[report.cluster.name])
    page = admin.get(url).content.decode()
    assert "resolv.conf of pool default" in page
    response = admin.post(
        url,
        {
            "scan_interval_minutes": 60,
            "allow_exec": "on",
            "cluster_domain": "cluster.local",
            "node_resolv_conf": "nameserver 192.168.0.2\nsearch corp.example\n",
            "notes": "",
            "probe_nameservers_text": "10.96.0.10\n10.96.0.11:53",
            "probe_names_text": "example.com\napi.github.com",
            "cluster_dns_text": "10.96.0.10",
            "pool_0": "nameserver 192.168.0.2\nsearch other.example",
        },
    )
    assert response.status_code == 302
    c = Cluster.objects.get(pk=report.cluster.pk)
    assert c.probe_names == ["example.com", "api.github.com"]
    assert c.probe_nameservers == ["10.96.0.10", "10.96.0.11:53"]
    assert c.scan_interval_minutes == 60 and c.allow_exec is True
    assert c.pool_resolv_conf == {"default": "nameserver 192.168.0.2\nsearch other.example\n"}
    bad = admin.post(
        url,
        {"scan_interval_minutes": 0, "cluster_domain": "cluster.local", "probe_names_text": "not a name!"},
    )
    assert bad.status_code == 400 and "not a DNS name" in bad.content.decode()


def test_delete_needs_the_typed_name(client_as, report):
    admin = client_as("admin")
    url = reverse("clusters:delete", args=[report.cluster.name])
    assert "Type" in admin.get(url).content.decode()
    assert admin.post(url, {"confirm_name": "wrong"}).status_code == 400
    assert Cluster.objects.filter(pk=report.cluster.pk).exists()
    assert admin.post(url, {"confirm_name": report.cluster.name}).status_code == 302
    assert not Cluster.objects.filter(pk=report.cluster.pk).exists()
    assert not Scan.objects.filter(pk=report.pk).exists()


# --- CSRF -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "url_name", "needs_cluster"),
    [
        ("operator", "clusters:rescan", True),
        ("admin", "clusters:delete", True),
        ("admin", "clusters:settings", True),
        ("admin", "clusters:add", False),
        ("viewer", "clusters:tokens", False),
    ],
)
def test_posts_without_csrf_token_are_refused(users, report, role, url_name, needs_cluster):
    client = Client(enforce_csrf_checks=True)
    client.force_login(users[role])
    url = reverse(url_name, args=[report.cluster.name] if needs_cluster else [])
    before = (Scan.objects.count(), Cluster.objects.count())
    response = client.post(url, {"confirm_name": report.cluster.name, "name": "t"})
    assert response.status_code == 403
    assert (Scan.objects.count(), Cluster.objects.count()) == before


def test_htmx_posts_carry_the_csrf_header(users, report):
    """The page puts the token in ``hx-headers`` on <body>; a POST with that header is accepted."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["operator"])
    page = client.get(reverse("clusters:report", args=[report.cluster.name])).content.decode()
    token = re.search(r"hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'", page).group(1)
    response = client.post(
        reverse("clusters:rescan", args=[report.cluster.name]), HTTP_X_CSRFTOKEN=token, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert Scan.objects.filter(cluster=report.cluster, status=Scan.QUEUED).exists()
    assert get_token  # imported for symmetry with Django's own helpers
