"""Cluster settings: "Allow exec reads", entered node files checked as the kubelet parses them, and who
entered each file and when (``Cluster.node_resolv_conf_entered``)."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.urls import reverse

from clusters.forms import ClusterSettingsForm
from clusters.models import Cluster
from tests.web import factories

NODE_FILE = "nameserver 192.168.0.2\nsearch corp.example\n"
POOL_FILE = "nameserver 10.0.0.2\nsearch gpu.corp.example\n"


def form_data(**overrides) -> dict:
    data = {
        "scan_interval_minutes": 0,
        "cluster_domain": "cluster.local",
        "node_resolv_conf": "",
        "notes": "",
        "probe_nameservers_text": "",
        "probe_names_text": "example.com",
        "cluster_dns_text": "",
        "pool_0": "",
    }
    data.update(overrides)
    return data


def fresh(cluster: Cluster) -> Cluster:
    return Cluster.objects.get(pk=cluster.pk)


def test_the_page_explains_allow_exec_reads(client_as, report):
    page = client_as("admin").get(reverse("clusters:settings", args=[report.cluster.name])).content.decode()
    assert "Allow exec reads" in page
    assert "runs `cat /etc/resolv.conf` (no shell) in a few running pods per node pool" in page
    assert "Needs get and create on pods/exec; nothing is written." in page
    assert 'name="allow_exec"' in page and "exec_verification" not in page
    assert "last scan: unknown" in page  # where the last scan got pool "default"'s file


def test_saving_records_who_entered_each_file_and_when(client_as, report):
    cluster = report.cluster
    url = reverse("clusters:settings", args=[cluster.name])
    response = client_as("admin").post(
        url, form_data(allow_exec="on", node_resolv_conf=NODE_FILE, pool_0=POOL_FILE)
    )
    assert response.status_code == 302
    c = fresh(cluster)
    assert c.allow_exec is True
    assert c.node_resolv_conf == NODE_FILE
    assert c.pool_resolv_conf == {"default": POOL_FILE}
    assert set(c.node_resolv_conf_entered) == {"*", "default"}
    for record in c.node_resolv_conf_entered.values():
        assert record["by"] == "admin"
        assert datetime.fromisoformat(record["at"]).tzinfo is not None
    page = client_as("admin").get(url).content.decode()
    assert f"entered by admin at {c.node_resolv_conf_entered['default']['at']}" in page


def test_an_unchanged_file_keeps_its_author_a_changed_one_gets_the_new_one(client_as, users, report):
    cluster = report.cluster
    old = {"by": "alice", "at": "2026-01-01T00:00:00+00:00"}
    Cluster.objects.filter(pk=cluster.pk).update(
        node_resolv_conf=NODE_FILE,
        pool_resolv_conf={"default": POOL_FILE},
        node_resolv_conf_entered={"*": old, "default": old},
    )
    url = reverse("clusters:settings", args=[cluster.name])
    changed = "nameserver 10.0.0.2\nsearch other.example\n"
    response = client_as("admin").post(url, form_data(node_resolv_conf=NODE_FILE, pool_0=changed))
    assert response.status_code == 302
    entered = fresh(cluster).node_resolv_conf_entered
    assert entered["*"] == old
    assert entered["default"]["by"] == "admin" and entered["default"]["at"] != old["at"]


def test_a_cleared_textarea_removes_the_file_and_its_record(client_as, report):
    cluster = report.cluster
    Cluster.objects.filter(pk=cluster.pk).update(
        node_resolv_conf=NODE_FILE,
        pool_resolv_conf={"default": POOL_FILE},
        node_resolv_conf_entered={"*": {"by": "alice", "at": "x"}, "default": {"by": "alice", "at": "x"}},
    )
    url = reverse("clusters:settings", args=[cluster.name])
    assert client_as("admin").post(url, form_data(node_resolv_conf=NODE_FILE)).status_code == 302
    c = fresh(cluster)
    assert c.pool_resolv_conf == {}
    assert set(c.node_resolv_conf_entered) == {"*"}
    assert client_as("admin").post(url, form_data()).status_code == 302
    c = fresh(cluster)
    assert c.node_resolv_conf == "" and c.node_resolv_conf_entered == {}


@pytest.mark.parametrize(
    ("field", "text", "expected"),
    [
        (
            "pool_0",
            "nameserver\nsearch corp.example",
            "the kubelet could not parse this resolv.conf: nameserver list is empty",
        ),
        ("node_resolv_conf", "nameserver\n", "the kubelet could not parse this resolv.conf"),
        ("node_resolv_conf", "127.0.0.1 localhost", "does not look like a resolv.conf"),
        ("pool_0", "search corp.example\n" + "#" * 70000, "may be at most 65536 bytes"),
    ],
)
def test_a_file_that_does_not_parse_is_a_form_error_and_nothing_is_saved(
    client_as, report, field, text, expected
):
    cluster = report.cluster
    url = reverse("clusters:settings", args=[cluster.name])
    response = client_as("admin").post(url, form_data(allow_exec="on", **{field: text}))
    assert response.status_code == 400
    page = response.content.decode()
    assert expected in page
    assert 'class="field-error"' in page
    c = fresh(cluster)
    assert (c.allow_exec, c.node_resolv_conf, c.pool_resolv_conf, c.node_resolv_conf_entered) == (
        False,
        "",
        {},
        {},
    )


def test_the_form_alone_records_the_given_user(db):
    cluster = factories.make_cluster("solo")
    form = ClusterSettingsForm(
        form_data(node_resolv_conf="search a.example\r\nnameserver 10.0.0.1"),
        instance=cluster,
        pool_names=[],
        entered_by="carol",
    )
    assert form.is_valid(), form.errors
    saved = form.save()
    assert saved.node_resolv_conf == "search a.example\nnameserver 10.0.0.1\n"
    assert saved.node_resolv_conf_entered["*"]["by"] == "carol"
    errors = ClusterSettingsForm(
        form_data(node_resolv_conf="nameserver"), instance=fresh(cluster), entered_by="carol"
    ).errors
    assert "nameserver list is empty" in errors["node_resolv_conf"][0]
