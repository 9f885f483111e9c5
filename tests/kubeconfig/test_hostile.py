"""No uploaded kubeconfig may make dnsaudit run a command or read a local file. This tests exactly that.

Hostile kubeconfigs (an ``exec`` plugin and a gcp ``auth-provider`` that would create marker files,
``tokenFile``/``client-certificate``/``client-key``/``certificate-authority`` paths pointing at real
sentinel files, an oidc provider) go through the parser, ``import_kubeconfig``, ``add-cluster``
(in-process and the real CLI) and ``connection_test``, in child processes under an audit hook that
records every process-creating event and every Python-level open of the sentinel directory, while this
process watches that directory with inotify (which also sees reads made inside C libraries such as
OpenSSL). Zero commands, zero sentinel reads, no marker file.

Two controls keep the test honest: the child ends with a deliberate command and a deliberate read of
``control.txt``, which both detectors must see; and the same kubeconfigs fed to the official client's
``load_kube_config`` really do run the commands and read the files.
"""

from __future__ import annotations

import ctypes
import json
import os
import stat
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.support import need

from .factory import SERVER, b64, dump, pki

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

IN_ACCESS, IN_OPEN = 0x1, 0x20


class Inotify:
    """Names of files opened or read in one directory, by any process (Linux inotify via ctypes)."""

    def __init__(self, directory: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        need(self.fd >= 0, "inotify is not available")
        wd = libc.inotify_add_watch(self.fd, os.fsencode(directory), IN_OPEN | IN_ACCESS)
        need(wd >= 0, "inotify_add_watch failed")

    def names(self) -> set[str]:
        seen: set[str] = set()
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return seen
            offset = 0
            while offset < len(buf):
                _wd, _mask, _cookie, length = struct.unpack_from("iIII", buf, offset)
                name = buf[offset + 16 : offset + 16 + length].rstrip(b"\0").decode()
                if name:
                    seen.add(name)
                offset += 16 + length

    def close(self) -> None:
        os.close(self.fd)


@dataclass
class Lab:
    root: Path
    kube_dir: Path
    sentinel_dir: Path
    marker_dir: Path
    expected: dict[str, str]  # file -> refusal text it must get
    sentinels: list[str]


def build_lab(root: Path) -> Lab:
    kube_dir, sentinel_dir, marker_dir = root / "kubeconfigs", root / "sentinel", root / "markers"
    for d in (kube_dir, sentinel_dir, marker_dir):
        d.mkdir()
    p = pki()
    (sentinel_dir / "token").write_text("sentinel-token-value\n")
    (sentinel_dir / "ca.crt").write_bytes(p.ca_pem)
    (sentinel_dir / "client.crt").write_bytes(p.cert_pem)
    (sentinel_dir / "client.key").write_bytes(p.key_pem)
    (sentinel_dir / "control.txt").write_text("control\n")
    gcp_script = root / "gcp-helper.sh"
    gcp_script.write_text(f"#!/bin/sh\ntouch {marker_dir / 'gcp-ran'}\necho '{{\"token\": \"x\"}}'\n")
    gcp_script.chmod(gcp_script.stat().st_mode | stat.S_IXUSR)

    good_cluster = {"server": SERVER, "certificate-authority-data": b64(p.ca_pem)}
    exec_user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "/bin/sh",
            "args": ["-c", f"touch {marker_dir / 'exec-ran'}; echo '{{}}'"],
            "interactiveMode": "Never",
        }
    }
    cases: dict[str, tuple[dict, dict, str]] = {
        "exec.yaml": (good_cluster, exec_user, "sets exec"),
        "token-and-exec.yaml": (good_cluster, {"token": "t0ken", **exec_user}, "sets exec"),
        "gcp.yaml": (
            good_cluster,
            {
                "auth-provider": {
                    "name": "gcp",
                    "config": {"cmd-path": str(gcp_script), "token-key": "{.token}"},
                }
            },
            "sets auth-provider",
        ),
        "oidc.yaml": (
            good_cluster,
            {
                "auth-provider": {
                    "name": "oidc",
                    "config": {
                        "client-id": "dnsaudit",
                        "id-token": "x.y.z",
                        "idp-issuer-url": "https://127.0.0.1:1",
                        "idp-certificate-authority": str(sentinel_dir / "ca.crt"),
                    },
                }
            },
            "sets auth-provider",
        ),
        "tokenfile.yaml": (good_cluster, {"tokenFile": str(sentinel_dir / "token")}, "sets tokenFile"),
        "tokenfile-relative.yaml": (good_cluster, {"tokenFile": "../sentinel/token"}, "sets tokenFile"),
        "client-cert-path.yaml": (
            good_cluster,
            {
                "client-certificate": str(sentinel_dir / "client.crt"),
                "client-key": str(sentinel_dir / "client.key"),
            },
            "sets client-certificate",
        ),
        "client-key-path.yaml": (
            good_cluster,
            {"client-certificate-data": b64(p.cert_pem), "client-key": str(sentinel_dir / "client.key")},
            "sets client-key",
        ),
        "ca-path.yaml": (
            {"server": SERVER, "certificate-authority": str(sentinel_dir / "ca.crt")},
            {"token": "t0ken"},
            "sets certificate-authority",
        ),
    }
    expected = {}
    everything: dict = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    for i, (fname, (cluster, user, why)) in enumerate(cases.items()):
        d = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": f"c{i}", "cluster": cluster}],
            "users": [{"name": f"u{i}", "user": user}],
            "contexts": [{"name": f"ctx{i}", "context": {"cluster": f"c{i}", "user": f"u{i}"}}],
            "current-context": f"ctx{i}",
        }
        (kube_dir / fname).write_text(dump(d))
        expected[fname] = why
        for key in ("clusters", "users", "contexts"):
            everything[key] += d[key]
    # A good context first, the hostile ones after: --all-contexts must still store nothing.
    everything["clusters"].insert(0, {"name": "fine", "cluster": good_cluster})
    everything["users"].insert(0, {"name": "fine", "user": {"token": "t0ken"}})
    everything["contexts"].insert(0, {"name": "fine", "context": {"cluster": "fine", "user": "fine"}})
    everything["current-context"] = "ctx0"
    (kube_dir / "everything.yaml").write_text(dump(everything))
    expected["everything.yaml"] = "sets exec"
    sentinels = ["token", "ca.crt", "client.crt", "client.key"]
    return Lab(root, kube_dir, sentinel_dir, marker_dir, expected, sentinels)


@pytest.fixture
def lab(tmp_path) -> Lab:
    need(sys.platform.startswith("linux"), "inotify needs Linux")
    need(Path("/bin/sh").exists(), "/bin/sh is needed to build the hostile exec command")
    return build_lab(tmp_path)


def child_env(lab: Lab) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "dnsaudit.settings",
        "DNSAUDIT_VAR_DIR": str(lab.root / "var"),
        "DATABASE_URL": f"sqlite:///{lab.root / 'db.sqlite3'}",
        "DNSAUDIT_FERNET_KEYS": Fernet.generate_key().decode(),
        "DNSAUDIT_PRODUCTION": "0",
    }
    # The child must find no ambient kubeconfig either.
    env.pop("KUBECONFIG", None)
    return env


def test_hostile_kubeconfigs_run_no_command_and_read_no_file(lab):
    watcher = Inotify(lab.sentinel_dir)
    try:
        log, results_path = lab.root / "audit.json", lab.root / "results.json"
        proc = subprocess.run(
            [
                sys.executable,
                str(HERE / "audited.py"),
                str(log),
                str(lab.sentinel_dir),
                str(HERE / "hostile_run.py"),
                str(lab.kube_dir),
                str(lab.sentinel_dir),
                str(results_path),
            ],
            env=child_env(lab),
            cwd=lab.root,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        opened = watcher.names()
    finally:
        watcher.close()
    events = json.loads(log.read_text())
    results = json.loads(results_path.read_text())

    # Every entry point refused every hostile file, for the right reason, and stored nothing.
    for phase in ("parse", "import", "command", "connection_test"):
        for fname, why in lab.expected.items():
            outcome = results[phase][fname]
            assert why in outcome, (phase, fname, outcome)
            assert "sentinel-token-value" not in outcome
    assert results["connection_test"]["stored clusters"] == "0"

    # Nothing ran and nothing was read, except the deliberate control at the end.
    hostile = [e for e in events if e[0] != "control"]
    assert hostile == []
    assert not any(lab.marker_dir.iterdir())
    assert opened == {"control.txt"}

    # The detectors work: the control's command and read were seen by both.
    control = [e for e in events if e[0] == "control"]
    assert any(e[1] == "subprocess.Popen" for e in control)
    assert any(e[1] == "open" and e[2].endswith("control.txt") for e in control)
    assert results["control"]["control.txt"] == "control\n"


def test_real_add_cluster_cli_runs_nothing_for_hostile_kubeconfigs(lab):
    env = child_env(lab)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    watcher = Inotify(lab.sentinel_dir)
    try:
        for fname, why in lab.expected.items():
            log = lab.root / f"cli-{fname}.json"
            proc = subprocess.run(
                [
                    sys.executable,
                    str(HERE / "audited.py"),
                    str(log),
                    str(lab.sentinel_dir),
                    str(ROOT / "manage.py"),
                    "add-cluster",
                    "--all-contexts",
                    "--kubeconfig",
                    str(lab.kube_dir / fname),
                ],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 1, (fname, proc.stdout, proc.stderr)
            assert why in proc.stderr and "Traceback" not in proc.stderr, (fname, proc.stderr)
            assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
            assert json.loads(log.read_text()) == [], fname
        opened = watcher.names()
    finally:
        watcher.close()
    assert opened == set()
    assert not any(lab.marker_dir.iterdir())


def test_control_the_official_client_would_run_and_read_these_kubeconfigs(lab):
    """The payloads are live: kubernetes.config.load_kube_config runs the commands and reads the files,
    and inotify sees a CA file read by OpenSSL (a read no audit hook reports)."""
    script = (
        "import ssl, sys\n"
        "from kubernetes import config\n"
        "for f in sys.argv[1:-1]:\n"
        "    try:\n"
        "        config.load_kube_config(config_file=f)\n"
        "    except Exception as exc:\n"
        "        print(f, type(exc).__name__, exc)\n"
        "ssl.create_default_context(cafile=sys.argv[-1])\n"
    )
    watcher = Inotify(lab.sentinel_dir)
    try:
        files = [
            str(lab.kube_dir / f)
            for f in ("exec.yaml", "gcp.yaml", "tokenfile.yaml", "tokenfile-relative.yaml")
        ]
        subprocess.run(
            [sys.executable, "-c", script, *files, str(lab.sentinel_dir / "ca.crt")],
            env=child_env(lab),
            cwd=lab.root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        opened = watcher.names()
    finally:
        watcher.close()
    assert (lab.marker_dir / "exec-ran").exists()
    assert (lab.marker_dir / "gcp-ran").exists()
    assert {"token", "ca.crt"} <= opened
