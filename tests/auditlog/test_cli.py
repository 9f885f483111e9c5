"""The commands that change something record it ``via="cli"``, with the OS user as the actor; never a
secret."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from clusters.models import Cluster, Scan
from tests.auditlog.conftest import changes, events, whole_table
from tests.kubeconfig import factory as kc
from tests.web import factories

NODE_FILE = "nameserver 192.168.0.2\nsearch corp.example\n"


@pytest.fixture(autouse=True)
def _os_user_and_keys(monkeypatch, settings, tmp_path):
    monkeypatch.setenv("USER", "ops-jane")
    monkeypatch.setenv("LOGNAME", "ops-jane")
    settings.DNSAUDIT_FERNET_KEYS = [Fernet.generate_key().decode()]
    settings.VAR_DIR = tmp_path / "var"


def run(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue()


def test_add_cluster_is_recorded_without_the_kubeconfig(db, tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(kc.token_kubeconfig())
    run("add-cluster", "--kubeconfig", str(path), "--name", "prod", "--skip-test")
    (event,) = events("cluster.add")
    assert (event.actor, event.via, event.address, event.target) == ("ops-jane", "cli", None, "prod")
    assert event.detail == {"context": "prod", "allow_exec": False}
    assert kc.TOKEN not in whole_table()


def test_a_refused_add_cluster_records_nothing(db, tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text("nonsense: [")
    with pytest.raises(CommandError):
        run("add-cluster", "--kubeconfig", str(path), "--skip-test")
    assert not changes().exists()


def test_set_cluster_records_the_change_and_the_entered_node_file(db, tmp_path):
    factories.make_cluster("prod")
    node_file = tmp_path / "resolv.conf"
    node_file.write_text(NODE_FILE)
    run("set-cluster", "prod", "--allow-exec", "--node-resolv-conf", str(node_file))
    run("set-cluster", "prod", "--clear-node-resolv-conf")
    run("set-cluster", "prod")  # only prints: nothing recorded
    (change,) = events("cluster.change")
    assert change.via == "cli" and change.detail == {"fields": ["allow_exec"], "allow_exec": True}
    entered, cleared = events("node_file.enter")
    assert entered.detail == {"pool": "*", "cleared": False} and cleared.detail == {
        "pool": "*",
        "cleared": True,
    }
    assert "corp.example" not in whole_table()


def test_remove_cluster_is_recorded_and_an_unknown_name_is_not(db):
    cluster = factories.make_cluster("prod")
    factories.make_scan(cluster)
    run("remove-cluster", "prod")
    with pytest.raises(CommandError):
        run("remove-cluster", "prod")
    (event,) = events("cluster.remove")
    assert (event.actor, event.via, event.target, event.detail) == ("ops-jane", "cli", "prod", {"scans": 1})


def test_scan_request_is_recorded(db):
    cluster = factories.make_cluster("prod")
    running = factories.make_scan(cluster, status=Scan.RUNNING)
    run("scan", "prod")  # a scan is already running: reported, not duplicated
    (event,) = events("scan.request")
    assert (event.via, event.target, event.detail) == ("cli", "prod", {"scan": running.pk, "created": False})


def test_a_scan_that_fails_is_still_recorded_as_requested(transactional_db):
    factories.make_cluster("prod")  # its stored kubeconfig cannot be decrypted: the scan fails
    with pytest.raises(CommandError) as info:
        run("scan", "prod", "--json")
    assert info.value.returncode == 1
    (event,) = events("scan.request")
    assert event.detail["created"] is True and event.target == "prod"


def test_rotate_keys_is_recorded(settings, db):
    import_path = kc.token_kubeconfig()
    from clusters.registry import import_kubeconfig

    import_kubeconfig(import_path, name="prod")
    settings.DNSAUDIT_FERNET_KEYS = [Fernet.generate_key().decode(), *settings.DNSAUDIT_FERNET_KEYS]
    run("rotate-keys")
    (event,) = events("keys.rotate")
    assert (event.via, event.actor, event.detail) == ("cli", "ops-jane", {"clusters": 1})
    assert Cluster.objects.count() == 1 and kc.TOKEN not in whole_table()
