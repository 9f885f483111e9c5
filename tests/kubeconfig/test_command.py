"""manage.py add-cluster: stores, prints the sanitized summary, refuses bad input in one line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from clusters.models import Cluster

from .factory import TOKEN, add_context, cert_user, doc, dump, key_material

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fernet_keys")]


def run(*args: str, stdin: str | None = None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        old = sys.stdin
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()))
        try:
            call_command("add-cluster", *args, stdout=out, stderr=err)
        finally:
            sys.stdin = old
    else:
        call_command("add-cluster", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def no_secret(*texts: str) -> None:
    for text in texts:
        for secret in key_material():
            assert secret not in text


def test_add_cluster_stores_and_prints_the_summary_without_secrets(tmp_path):
    f = tmp_path / "kc.yaml"
    f.write_text(dump(doc(user={**cert_user(), "token": TOKEN})))
    out, err = run("--kubeconfig", str(f), "--skip-test", "--notes", "lab cluster")
    cluster = Cluster.objects.get()
    assert (cluster.name, cluster.notes) == ("prod", "lab cluster")
    assert "stored cluster prod" in out
    assert "https://127.0.0.1:6443" in out and "client-certificate" in out
    assert cluster.summary["ca_fingerprint_sha256"] in out
    assert "CN=kube-admin" in out
    no_secret(out, err)


def test_add_cluster_reads_stdin():
    out, _ = run("--kubeconfig", "-", "--name", "from-stdin", "--skip-test", stdin=dump(doc()))
    assert Cluster.objects.get().name == "from-stdin"
    assert "stored cluster from-stdin" in out


def test_add_cluster_all_contexts(tmp_path):
    f = tmp_path / "kc.yaml"
    f.write_text(dump(add_context(doc(), doc(context_name="dev", cluster_name="d", user_name="d"))))
    out, _ = run("--kubeconfig", str(f), "--all-contexts", "--name", "eu", "--skip-test")
    assert sorted(Cluster.objects.values_list("name", flat=True)) == ["eu-dev", "eu-prod"]
    assert "stored cluster eu-dev" in out and "stored cluster eu-prod" in out


def test_add_cluster_warns_about_insecure_tls(tmp_path):
    f = tmp_path / "kc.yaml"
    f.write_text(dump(doc(cluster={"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True})))
    out, err = run("--kubeconfig", str(f), "--skip-test")
    assert "warning:" in err and "insecure-skip-tls-verify" in err
    assert "NOT VERIFIED" in out


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        (dump(doc(user={"exec": {"command": "sh"}})), (), "refused: user 'prod-admin' sets exec"),
        ("a: [", (), "not valid YAML"),
        (dump(doc()), ("--context", "nope"), "no context named 'nope'"),
        (dump(doc(user={"token": TOKEN, "tokenFile": "/etc/passwd"})), (), "tokenFile"),
    ],
)
def test_add_cluster_refuses_bad_input_and_stores_nothing(tmp_path, content, args, expected):
    f = tmp_path / "kc.yaml"
    f.write_text(content)
    with pytest.raises(CommandError, match=expected) as info:
        run("--kubeconfig", str(f), *args)
    assert str(info.value).startswith("nothing stored: ")
    assert Cluster.objects.count() == 0
    no_secret(str(info.value))


def test_add_cluster_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="cannot read .*nope.yaml: No such file"):
        run("--kubeconfig", str(tmp_path / "nope.yaml"))


def test_add_cluster_name_clash_is_a_clear_error(tmp_path):
    f = tmp_path / "kc.yaml"
    f.write_text(dump(doc()))
    run("--kubeconfig", str(f), "--skip-test")
    with pytest.raises(CommandError, match="'prod' already exists; choose another name with --name"):
        run("--kubeconfig", str(f), "--skip-test")
    run("--kubeconfig", str(f), "--skip-test", "--name", "prod-2")
    assert Cluster.objects.count() == 2


def test_context_and_all_contexts_are_mutually_exclusive(tmp_path):
    f = tmp_path / "kc.yaml"
    f.write_text(dump(doc()))
    with pytest.raises(CommandError, match="not allowed with argument"):
        run("--kubeconfig", str(f), "--context", "prod", "--all-contexts")


def test_real_cli_exits_nonzero_with_one_line_and_no_traceback(tmp_path):
    """The shell contract: exit 1, one readable line on stderr, nothing stored, no secret echoed."""
    env = {
        **os.environ,
        "DNSAUDIT_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DNSAUDIT_FERNET_KEYS": "",
    }
    env.pop("DNSAUDIT_PRODUCTION", None)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT, timeout=120)
    f = tmp_path / "kc.yaml"
    f.write_text(dump(doc(user={"token": TOKEN, "exec": {"command": "sh"}})))
    proc = subprocess.run(
        [*manage, "add-cluster", "--kubeconfig", str(f)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "refused: user 'prod-admin' sets exec" in lines[0]
    assert "Traceback" not in proc.stderr
    no_secret(proc.stdout, proc.stderr)
    count = subprocess.run(
        [*manage, "shell", "-c", "from clusters.models import Cluster; print(Cluster.objects.count())"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert count.stdout.strip().splitlines()[-1] == "0"
    # A valid one from stdin in the same environment: exit 0 (stored, even though 127.0.0.1:6443 is closed).
    proc = subprocess.run(
        [*manage, "add-cluster", "--kubeconfig", "-", "--skip-test"],
        input=dump(doc()),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "stored cluster prod" in proc.stdout
    no_secret(proc.stdout, proc.stderr)
