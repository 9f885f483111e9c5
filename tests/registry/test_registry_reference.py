"""Reference parsing, imageID resolution, pull-secret credentials, scheme choice (no network)."""

from __future__ import annotations

import base64
import json

import pytest

from dnsaudit.boundary.registry import (
    Reference,
    RegistryClient,
    _pick_platform,
    credentials_from_dockerconfigjson,
    parse_reference,
    resolve_image_id,
)

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("ref", "expect"),
    [
        ("alpine", Reference("docker.io", "library/alpine", "latest")),
        ("alpine:3.18", Reference("docker.io", "library/alpine", "3.18")),
        ("bitnami/redis:7", Reference("docker.io", "bitnami/redis", "7")),
        ("docker.io/alpine", Reference("docker.io", "library/alpine", "latest")),
        ("index.docker.io/library/alpine:3", Reference("docker.io", "library/alpine", "3")),
        ("localhost:5000/app", Reference("localhost:5000", "app", "latest")),
        ("localhost/app:1", Reference("localhost", "app", "1")),
        ("127.0.0.1:5000/team/app:v1", Reference("127.0.0.1:5000", "team/app", "v1")),
        ("ghcr.io/org/img@" + D, Reference("ghcr.io", "org/img", None, D)),
        ("ghcr.io/org/img:1.0@" + D, Reference("ghcr.io", "org/img", "1.0", D)),
        ("[::1]:5000/app:x", Reference("[::1]:5000", "app", "x")),
    ],
)
def test_parse_reference(ref, expect):
    assert parse_reference(ref) == expect


def test_docker_hub_uses_the_registry_1_api_host():
    assert parse_reference("alpine").api_host == "registry-1.docker.io"


@pytest.mark.parametrize("bad", ["", "UPPER/case", "alpine@sha256:short", "a b", "repo:bad tag"])
def test_parse_reference_rejects_garbage(bad):
    with pytest.raises(ValueError):
        parse_reference(bad)


@pytest.mark.parametrize(
    ("image_id", "expect"),
    [
        ("docker-pullable://alpine@" + D, "docker.io/library/alpine@" + D),
        ("docker.io/library/alpine@" + D, "docker.io/library/alpine@" + D),
        ("registry.k8s.io/pause@" + D, "registry.k8s.io/pause@" + D),
        (D, None),
        ("", None),
        (None, None),
    ],
)
def test_resolve_image_id(image_id, expect):
    assert resolve_image_id(image_id) == expect


def test_credentials_from_dockerconfigjson_forms():
    auth = base64.b64encode(b"u1:p:with:colons").decode()
    data = {
        "auths": {
            "https://index.docker.io/v1/": {"auth": auth},
            "registry.example.com:5000": {"username": "u2", "password": "p2"},
            "helper.example": {"identitytoken": "x"},
        }
    }
    creds = credentials_from_dockerconfigjson(json.dumps(data).encode())
    assert creds == {"docker.io": ("u1", "p:with:colons"), "registry.example.com:5000": ("u2", "p2")}
    # legacy .dockercfg: hosts at top level
    assert credentials_from_dockerconfigjson({"quay.io": {"auth": auth}}) == {
        "quay.io": ("u1", "p:with:colons")
    }
    # straight from a Secret's data field (base64)
    b64 = base64.b64encode(json.dumps(data).encode()).decode()
    assert credentials_from_dockerconfigjson(b64) == creds
    with pytest.raises(ValueError):
        credentials_from_dockerconfigjson(b"not json")


@pytest.mark.parametrize(
    ("host", "scheme"),
    [("127.0.0.1:5000", "http"), ("127.9.9.9", "http"), ("[::1]:5000", "http"), ("localhost:5000", "http"),
     ("registry.example.com", "https"), ("10.0.0.1:5000", "https"), ("my.insecure:5000", "http")],
)  # fmt: skip
def test_plain_http_only_for_loopback_and_listed(host, scheme):
    assert RegistryClient(insecure_registries=["my.insecure:5000"]).scheme_for(host) == scheme


INDEX = {
    "manifests": [
        {"digest": "att", "platform": {"os": "unknown", "architecture": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
        {"digest": "amd", "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "armv7", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"digest": "armv6", "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
        {"digest": "arm64", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    ]
}  # fmt: skip


@pytest.mark.parametrize(
    ("want", "digest"),
    [
        (("linux", "amd64", None), "amd"),
        (("linux", "arm64", None), "arm64"),
        (("linux", "arm64", "v8"), "arm64"),
        (("linux", "arm", "v6"), "armv6"),
        (("linux", "arm", "v7"), "armv7"),
    ],
)
def test_pick_platform(want, digest):
    assert _pick_platform(INDEX, want, "x")["digest"] == digest
