"""manage.py set-cluster / remove-cluster / add-cluster --allow-exec: exit codes, output, what is stored."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from clusters.models import Cluster, NodePoolResult, Scan

from .factory import add_context, doc, dump

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fernet_keys")]

NODE_FILE = "nameserver 192.168.0.2\nsearch corp.example openstacklocal\noptions edns0\n"
POOL_FILE = "nameserver 10.0.0.2\nsearch gpu.corp.example\n"


def run(command: str, *args: str, stdin: str | bytes | None = None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    if stdin is not None:
        raw = stdin.encode() if isinstance(stdin, str) else stdin
        sys.stdin = io.TextIOWrapper(io.BytesIO(raw))
    try:
        call_command(command, *args, stdout=out, stderr=err)
    finally:
        sys.stdin = old
    return out.getvalue(), err.getvalue()


def usage_error(command: str, *args: str, stdin: str | bytes | None = None) -> str:
    """Run a command that must refuse with exit status 2; return its message."""
    with pytest.raises(CommandError) as info:
        run(command, *args, stdin=stdin)
    assert info.value.returncode == 2, info.value
    return str(info.value)


def make_cluster(name: str = "prod", **fields) -> Cluster:
    return Cluster.objects.create(
        name=name, context=name, server="https://127.0.0.1:6443", kubeconfig_encrypted="x", **fields
    )


def scanned(cluster: Cluster, *pools: str, status: str = Scan.SUCCEEDED) -> Scan:
    now = timezone.now()
    scan = Scan.objects.create(cluster=cluster, status=status, started_at=now, finished_at=now)
    for pool in pools:
        NodePoolResult.objects.create(scan=scan, name=pool, node_resolv_conf_source="observed")
    return scan


def snapshot(cluster: Cluster) -> tuple:
    c = Cluster.objects.get(pk=cluster.pk)
    return c.allow_exec, c.node_resolv_conf, c.pool_resolv_conf, c.node_resolv_conf_entered


# --- set-cluster -----------------------------------------------------------------------------------------


def test_without_options_it_prints_the_settings():
    cluster = make_cluster()
    before = snapshot(cluster)
    out, err = run("set-cluster", "prod")
    assert err == ""
    assert "cluster       prod" in out
    assert "allow exec    no" in out
    assert "no finished scan yet" in out
    assert "  *  not entered" in out
    assert snapshot(cluster) == before


def test_allow_and_forbid_exec():
    cluster = make_cluster()
    out, _ = run("set-cluster", "prod", "--allow-exec")
    assert "allow exec    yes" in out
    assert Cluster.objects.get(pk=cluster.pk).allow_exec is True
    out, _ = run("set-cluster", "prod", "--no-allow-exec")
    assert "allow exec    no" in out
    assert Cluster.objects.get(pk=cluster.pk).allow_exec is False


def test_allow_exec_together_with_no_allow_exec_is_bad_usage():
    cluster = make_cluster(allow_exec=True)
    message = usage_error("set-cluster", "prod", "--allow-exec", "--no-allow-exec")
    assert message == "choose --allow-exec or --no-allow-exec, not both"
    assert Cluster.objects.get(pk=cluster.pk).allow_exec is True


def test_unknown_cluster_is_bad_usage():
    make_cluster()
    assert usage_error("set-cluster", "nope") == "no cluster named 'nope' (known: prod)"


def test_the_all_pools_file_is_entered_by_cli_with_its_search_line(tmp_path):
    cluster = make_cluster()
    scanned(cluster, "general", "gpu")
    f = tmp_path / "resolv.conf"
    f.write_text(NODE_FILE)
    out, _ = run("set-cluster", "prod", "--node-resolv-conf", str(f))
    c = Cluster.objects.get(pk=cluster.pk)
    assert c.node_resolv_conf == NODE_FILE
    record = c.node_resolv_conf_entered["*"]
    assert record["by"] == "cli"
    assert datetime.fromisoformat(record["at"]).tzinfo is not None
    assert f"*        entered by cli at {record['at']}: search corp.example openstacklocal" in out
    assert "general  not entered: the all-pools file (*) applies (last scan: observed)" in out
    assert "gpu      not entered: the all-pools file (*) applies (last scan: observed)" in out


def test_a_pool_file_from_stdin():
    cluster = make_cluster()
    scanned(cluster, "general", "gpu")
    out, _ = run("set-cluster", "prod", "--node-resolv-conf", "-", "--pool", "gpu", stdin=POOL_FILE)
    c = Cluster.objects.get(pk=cluster.pk)
    assert c.pool_resolv_conf == {"gpu": POOL_FILE}
    assert c.node_resolv_conf == ""
    assert set(c.node_resolv_conf_entered) == {"gpu"}
    assert "gpu      entered by cli at" in out and ": search gpu.corp.example (last scan: observed)" in out
    assert "general  not entered (last scan: observed)" in out


def test_entering_the_same_file_again_keeps_who_and_when_and_a_change_updates_them(tmp_path):
    cluster = make_cluster(
        node_resolv_conf=NODE_FILE,
        node_resolv_conf_entered={"*": {"by": "alice", "at": "2026-01-01T00:00:00+00:00"}},
    )
    f = tmp_path / "resolv.conf"
    f.write_text(NODE_FILE)
    out, _ = run("set-cluster", "prod", "--node-resolv-conf", str(f))
    assert "entered by alice at 2026-01-01T00:00:00+00:00" in out
    f.write_text("nameserver 192.168.0.2\nsearch corp.example\n")
    run("set-cluster", "prod", "--node-resolv-conf", str(f))
    assert Cluster.objects.get(pk=cluster.pk).node_resolv_conf_entered["*"]["by"] == "cli"


def test_clearing_removes_the_file_and_its_record():
    cluster = make_cluster(
        node_resolv_conf=NODE_FILE,
        pool_resolv_conf={"gone": POOL_FILE},
        node_resolv_conf_entered={"*": {"by": "alice", "at": "x"}, "gone": {"by": "bob", "at": "y"}},
    )
    # "gone" is in no scan: its file can still be removed.
    out, _ = run("set-cluster", "prod", "--clear-node-resolv-conf", "--pool", "gone")
    c = Cluster.objects.get(pk=cluster.pk)
    assert c.pool_resolv_conf == {} and set(c.node_resolv_conf_entered) == {"*"}
    assert "gone" not in out
    run("set-cluster", "prod", "--clear-node-resolv-conf")
    c = Cluster.objects.get(pk=cluster.pk)
    assert c.node_resolv_conf == "" and c.node_resolv_conf_entered == {}


def test_pool_needs_a_finished_scan(tmp_path):
    cluster = make_cluster()
    scanned(cluster, "general", status=Scan.FAILED)
    f = tmp_path / "resolv.conf"
    f.write_text(NODE_FILE)
    message = usage_error("set-cluster", "prod", "--node-resolv-conf", str(f), "--pool", "general")
    assert "has no finished scan yet" in message
    assert "manage.py scan prod --wait" in message and "omit --pool" in message
    assert snapshot(cluster) == (False, "", {}, {})


def test_unknown_pool_names_the_pools_of_the_newest_scan(tmp_path):
    cluster = make_cluster()
    scanned(cluster, "old")
    newest = scanned(cluster, "general", "gpu")
    f = tmp_path / "resolv.conf"
    f.write_text(NODE_FILE)
    message = usage_error("set-cluster", "prod", "--node-resolv-conf", str(f), "--pool", "old")
    assert message == (
        f"cluster prod has no node pool 'old' in its newest scan (scan {newest.pk}): pools are general, gpu; "
        "or omit --pool to set the file for every pool"
    )
    assert "'*' is not a pool name" in usage_error(
        "set-cluster", "prod", "--node-resolv-conf", str(f), "--pool", "*"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"nameserver\nsearch corp.example\n",
            "the kubelet could not parse this resolv.conf: nameserver list is empty",
        ),
        (b"127.0.0.1 localhost\n", "does not look like a resolv.conf"),
        (b"search corp.example\n" + b"#" * (64 * 1024), "is larger than 65536 bytes"),
        (b"search caf\xe9.example\n", "is not UTF-8 text"),
        (b"\n  \n", "is empty: use --clear-node-resolv-conf"),
    ],
)
def test_bad_files_are_refused_and_change_nothing(tmp_path, content, expected):
    cluster = make_cluster()
    f = tmp_path / "resolv.conf"
    f.write_bytes(content)
    message = usage_error("set-cluster", "prod", "--allow-exec", "--node-resolv-conf", str(f))
    assert expected in message
    assert message.startswith(str(f))
    assert snapshot(cluster) == (False, "", {}, {})


def test_missing_file_and_contradicting_options_are_bad_usage(tmp_path):
    make_cluster()
    assert "cannot read" in usage_error("set-cluster", "prod", "--node-resolv-conf", str(tmp_path / "nope"))
    assert "--pool goes with" in usage_error("set-cluster", "prod", "--pool", "general")
    assert "not both" in usage_error(
        "set-cluster", "prod", "--node-resolv-conf", "-", "--clear-node-resolv-conf", stdin=NODE_FILE
    )


# --- remove-cluster --------------------------------------------------------------------------------------


def test_remove_cluster_deletes_it_with_its_scans():
    cluster = make_cluster()
    other = make_cluster("staging")
    scanned(cluster, "general")
    scanned(cluster, "general")
    scanned(other, "general")
    out, _ = run("remove-cluster", "prod")
    assert out.strip() == (
        "removed cluster prod (context prod, server https://127.0.0.1:6443), its stored kubeconfig and 2 scans"
    )
    assert list(Cluster.objects.values_list("name", flat=True)) == ["staging"]
    assert Scan.objects.count() == 1 and NodePoolResult.objects.count() == 1


def test_remove_unknown_cluster_is_bad_usage():
    make_cluster()
    assert usage_error("remove-cluster", "nope") == "no cluster named 'nope' (known: prod)"
    assert Cluster.objects.count() == 1


# --- add-cluster --allow-exec ----------------------------------------------------------------------------


def test_add_cluster_allow_exec(tmp_path):
    f = tmp_path / "kc.yaml"
    f.write_text(dump(doc()))
    out, _ = run("add-cluster", "--kubeconfig", str(f), "--skip-test", "--allow-exec")
    assert Cluster.objects.get(name="prod").allow_exec is True
    assert "allow exec   yes" in out
    out, _ = run("add-cluster", "--kubeconfig", str(f), "--skip-test", "--name", "prod-2")
    assert Cluster.objects.get(name="prod-2").allow_exec is False
    assert "allow exec   no" in out


def test_add_cluster_allow_exec_with_all_contexts(tmp_path):
    f = tmp_path / "kc.yaml"
    f.write_text(dump(add_context(doc(), doc(context_name="dev", cluster_name="d", user_name="d"))))
    run(
        "add-cluster", "--kubeconfig", str(f), "--all-contexts", "--name", "eu", "--skip-test", "--allow-exec"
    )
    assert dict(Cluster.objects.values_list("name", "allow_exec")) == {"eu-dev": True, "eu-prod": True}


# --- the real command line -------------------------------------------------------------------------------


def test_real_cli_exit_codes_one_line_no_traceback(tmp_path):
    env = {
        **os.environ,
        "DNSAUDIT_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DNSAUDIT_FERNET_KEYS": "",
    }
    env.pop("DNSAUDIT_PRODUCTION", None)
    manage = [sys.executable, str(ROOT / "manage.py")]

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*manage, *args], input=stdin, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )

    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT, timeout=120)
    proc = cli("add-cluster", "--kubeconfig", "-", "--skip-test", "--allow-exec", stdin=dump(doc()))
    assert proc.returncode == 0, proc.stderr
    assert "allow exec   yes" in proc.stdout

    for args, stdin, expected in [
        (("set-cluster", "nope"), None, "no cluster named 'nope' (known: prod)"),
        (("set-cluster", "prod", "--allow-exec", "--no-allow-exec"), None, "not both"),
        (
            ("set-cluster", "prod", "--node-resolv-conf", "-", "--pool", "general"),
            NODE_FILE,
            "no finished scan",
        ),
        (("set-cluster", "prod", "--node-resolv-conf", "-"), "nameserver\n", "could not parse"),
        (("remove-cluster", "nope"), None, "no cluster named 'nope'"),
    ]:
        proc = cli(*args, stdin=stdin)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (args, proc.stderr)
        assert "Traceback" not in proc.stderr

    proc = cli("set-cluster", "prod", "--no-allow-exec", "--node-resolv-conf", "-", stdin=NODE_FILE)
    assert proc.returncode == 0, proc.stderr
    assert "allow exec    no" in proc.stdout
    assert "entered by cli at" in proc.stdout and "search corp.example openstacklocal" in proc.stdout

    proc = cli("remove-cluster", "prod")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("removed cluster prod ")
    assert cli("set-cluster", "prod").returncode == 2
