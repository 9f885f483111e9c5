"""deploy/: every kustomization renders with the real ``kubectl kustomize`` and every rendered object validates
with kubernetes-validate (strict, offline); the reader RBAC is ``reader-rbac``'s output; the pods are
locked down (non-root, read-only root, no privilege escalation, no capabilities, requests and limits,
probes on /health); and the commands of deploy/, docker-compose.yml and the Dockerfile agree."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.urls import resolve

from tests.audit.checks import validate_k8s
from tests.audit.helpers import kubectl
from tests.scans.test_compose import check_command, shell_commands

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUSTOMIZATIONS = sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))
OVERLAYS = [p for p in KUSTOMIZATIONS if p.parent.name == "overlays"]
APP_COMPONENTS = ("web", "worker", "beat")


def render(folder: Path) -> list[dict]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {str(p.relative_to(DEPLOY)): render(p) for p in KUSTOMIZATIONS}


def dockerfile_cmd() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    return json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def app_deployments(objs: list[dict]) -> dict[str, dict]:
    return {
        o["metadata"]["labels"]["app.kubernetes.io/component"]: o
        for o in objs
        if o["kind"] == "Deployment" and o["metadata"]["labels"].get("app.kubernetes.io/name") == "dnsaudit"
    }


def test_there_is_a_base_and_two_overlays():
    assert {str(p.relative_to(DEPLOY)) for p in KUSTOMIZATIONS} == {
        "base",
        "overlays/bundled",
        "overlays/external",
    }


@pytest.mark.parametrize("folder", [str(p.relative_to(DEPLOY)) for p in KUSTOMIZATIONS])
def test_every_kustomization_renders_and_every_object_validates(rendered, folder):
    objs = rendered[folder]
    assert objs
    for obj in objs:
        validate_k8s(obj)
        assert obj["metadata"].get("namespace", "dnsaudit") == "dnsaudit" or obj["kind"].startswith("Cluster")


def test_the_reader_rbac_is_reader_rbacs_output():
    out = io.StringIO()
    call_command("reader-rbac", "--namespace", "dnsaudit", "--without-token-secret", stdout=out)
    committed = (DEPLOY / "base" / "rbac.yaml").read_text()
    body = "".join(line for line in committed.splitlines(keepends=True) if not line.startswith("#"))
    assert body == out.getvalue(), "regenerate deploy/base/rbac.yaml with the command in its first line"


@pytest.mark.parametrize("overlay", [str(p.relative_to(DEPLOY)) for p in OVERLAYS])
def test_app_pods_are_locked_down_and_use_the_reader_account(rendered, overlay):
    objs = rendered[overlay]
    deployments = app_deployments(objs)
    assert set(deployments) == set(APP_COMPONENTS)
    config = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "dnsaudit-config")
    assert config["data"]["DNSAUDIT_IN_CLUSTER"] == "true" and config["data"]["DNSAUDIT_PRODUCTION"] == "1"
    assert "localhost" in config["data"]["ALLOWED_HOSTS"].split(",")  # the probes' Host
    sa = next(o for o in objs if o["kind"] == "ServiceAccount")
    binding = next(o for o in objs if o["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == sa["metadata"]["namespace"] == "dnsaudit"
    uid = int(re.search(r"^USER (\d+)$", (ROOT / "Dockerfile").read_text(), re.M).group(1))
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == sa["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
        mounts_tmp = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for c in pod["containers"] + pod["initContainers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], name
            assert any(m["mountPath"] == "/tmp" and m["name"] in mounts_tmp for m in c["volumeMounts"]), name
            env = {e["name"]: e for e in c.get("env", [])}
            refs = [r.get("secretRef", {}).get("name") for r in c.get("envFrom", [])]
            assert "dnsaudit-secrets" in refs, name  # SECRET_KEY and DNSAUDIT_FERNET_KEYS
            if overlay.endswith("bundled"):
                assert "DATABASE_URL" in env and "REDIS_URL" in env and "POSTGRES_PASSWORD" in env
                assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "dnsaudit-postgres"
            else:
                assert "dnsaudit-external" in refs and "DATABASE_URL" not in env
    web = deployments["web"]["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert resolve(web[probe]["httpGet"]["path"]).url_name == "health"
    assert any(o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "dnsaudit" for o in objs)
    services = {o["metadata"]["name"] for o in objs if o["kind"] == "Service"}
    assert "dnsaudit-web" in services
    if overlay.endswith("bundled"):
        assert {"dnsaudit-postgres", "dnsaudit-redis"} <= services


def test_deploy_compose_and_the_dockerfile_run_the_same_commands(rendered):
    deployments = app_deployments(rendered["overlays/bundled"])
    cmd = {n: d["spec"]["template"]["spec"]["containers"][0]["command"] for n, d in deployments.items()}
    init = {n: d["spec"]["template"]["spec"]["initContainers"][0]["command"] for n, d in deployments.items()}
    services = compose()["services"]
    # web: the image's CMD, which compose runs after migrate; deploy runs migrate in the init container.
    migrate, gunicorn = shell_commands(services["web"]["command"])
    assert cmd["web"] == dockerfile_cmd() == gunicorn
    assert init["web"] == migrate
    assert cmd["worker"] == services["worker"]["command"]
    # beat: the same command; its schedule file on the writable /tmp (the root filesystem is read-only).
    beat = list(services["beat"]["command"])
    beat[beat.index("--schedule") + 1] = "/tmp/celerybeat-schedule"
    assert cmd["beat"] == beat
    for argv in [*cmd.values(), init["web"]]:
        check_command(argv)
    for name in ("worker", "beat"):
        assert init[name][:2] == ["sh", "-c"] and "python manage.py migrate --check" in init[name][2]
    liveness = deployments["worker"]["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    assert liveness["exec"]["command"] == services["worker"]["healthcheck"]["test"][1:]
    images = {c["image"] for d in deployments.values() for c in d["spec"]["template"]["spec"]["containers"]}
    assert len(images) == 1  # one image


def test_the_dockerfile_builds_a_non_root_production_image():
    text = (ROOT / "Dockerfile").read_text()
    assert "ENV DNSAUDIT_PRODUCTION=1" in text
    uid = re.search(r"^USER (\d+)$", text, re.M)
    assert uid and int(uid.group(1)) >= 1000, "a numeric, non-root USER (runAsNonRoot can verify it)"
    assert f"--uid {uid.group(1)}" in text
    assert re.search(r"^RUN .*manage\.py collectstatic --noinput", text, re.M)  # at build time
    assert text.index("collectstatic") < text.index("USER ")
