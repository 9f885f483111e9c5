"""Authentication against real registries: htpasswd basic auth and token (bearer) auth."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from dnsaudit.boundary.registry import (
    RegistryClient,
    RegistryError,
    credentials_from_dockerconfigjson,
    credentials_from_environment,
)
from dnsaudit.testbed import imagebuild as ib
from tests.registry.conftest import PASSWORD, USER

pytestmark = pytest.mark.registry


def _dockerconfigjson(host: str, user: str, password: str) -> bytes:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": auth}}}).encode()


@pytest.fixture(scope="module")
def basic_image(basic_registry):
    ib.Pusher(basic_registry.url, auth=(USER, PASSWORD)).image("private/app", "v1", ib.alpine())
    return f"{basic_registry.host}/private/app:v1"


def test_basic_auth_with_pull_secret_credentials(basic_image, basic_registry):
    creds = credentials_from_dockerconfigjson(_dockerconfigjson(basic_registry.host, USER, PASSWORD))
    v = RegistryClient(credentials=creds).inspect(basic_image)
    assert v.libc == "musl" and v.musl_version == "1.2.4"


def test_basic_auth_without_credentials_says_credentials_are_required(basic_image):
    with pytest.raises(RegistryError) as e:
        RegistryClient().inspect(basic_image)
    assert e.value.status == 401 and "requires credentials" in str(e.value)


def test_basic_auth_with_wrong_password_says_refused(basic_image, basic_registry):
    client = RegistryClient(credentials={basic_registry.host: (USER, "wrong")})
    with pytest.raises(RegistryError) as e:
        client.inspect(basic_image)
    assert e.value.status == 401 and "registry refused credentials" in str(e.value)
    assert not e.value.transient


def test_docker_config_json_found_through_docker_config(tmp_path, basic_image, basic_registry):
    (tmp_path / "config.json").write_bytes(_dockerconfigjson(f"http://{basic_registry.host}", USER, PASSWORD))
    creds = credentials_from_environment({"DOCKER_CONFIG": str(tmp_path)})
    assert creds == {basic_registry.host: (USER, PASSWORD)}
    assert RegistryClient(credentials=creds).inspect(basic_image).libc == "musl"


def test_registry_auth_file_takes_precedence(tmp_path, basic_registry):
    (tmp_path / "auth.json").write_bytes(_dockerconfigjson(basic_registry.host, "podman", "pw"))
    (tmp_path / "config.json").write_bytes(_dockerconfigjson(basic_registry.host, "docker", "pw"))
    creds = credentials_from_environment(
        {"REGISTRY_AUTH_FILE": str(tmp_path / "auth.json"), "DOCKER_CONFIG": str(tmp_path)}
    )
    assert creds[basic_registry.host][0] == "podman"


def _push_token(ts, repo: str) -> str:
    r = requests.get(
        ts.realm,
        params={"service": "dnsaudit-registry", "scope": f"repository:{repo}:pull,push"},
        auth=(USER, PASSWORD),
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["token"]


@pytest.fixture(scope="module")
def token_image(token_registry):
    reg, ts = token_registry
    pusher = ib.Pusher(reg.url)
    pusher.s.headers["Authorization"] = "Bearer " + _push_token(ts, "team/api")
    pusher.image("team/api", "v1", ib.debian())
    return f"{reg.host}/team/api:v1"


def test_bearer_token_flow_against_registry_token_auth(token_image, token_registry):
    _reg, ts = token_registry
    before = len(ts.requests)
    v = RegistryClient(credentials={token_image.split("/")[0]: (USER, PASSWORD)}).inspect(token_image)
    assert v.libc == "glibc" and v.os_id == "debian"
    asked = ts.requests[before:]
    assert asked, "the client never asked the token service"
    q = asked[0]["query"]
    assert q["service"] == ["dnsaudit-registry"] and q["scope"] == ["repository:team/api:pull"]


def test_bearer_without_credentials_is_refused_clearly(token_image):
    with pytest.raises(RegistryError) as e:
        RegistryClient().inspect(token_image)
    assert e.value.status == 401 and "requires credentials" in str(e.value)


def test_bearer_with_wrong_credentials_is_refused_clearly(token_image):
    client = RegistryClient(credentials={token_image.split("/")[0]: (USER, "nope")})
    with pytest.raises(RegistryError) as e:
        client.inspect(token_image)
    assert "registry refused credentials" in str(e.value)
