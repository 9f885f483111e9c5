"""The demo registry: stand-ins for every demo image, served over HTTP, read through the mirror support.

The expected verdicts come from ``IMAGE_FACTS`` (what each demo image really is, written for the fleet);
the stand-ins are built from ``demoregistry.STAND_INS``, written separately. The client reads the images
over loopback HTTP exactly as a scan does: the pods' ``imageID`` through ``resolve_image_id``.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile

import pytest
import requests

from dnsaudit.boundary.registry import RegistryClient, resolve_image_id
from dnsaudit.testbed import demoregistry as dr
from dnsaudit.testbed.fakekube import objects
from dnsaudit.testbed.fakekube.fleet import demo_fleet
from dnsaudit.testbed.fakekube.objects import IMAGE_FACTS, canonical_image
from dnsaudit.testbed.imagebuild import OCI_INDEX, sha256


@pytest.fixture(scope="module")
def demo_registry():
    with dr.DemoRegistry() as reg:
        yield reg


@pytest.fixture
def stand_in_digests():
    """Pods built while this is active carry the stand-ins' digests; the previous provider comes back."""
    previous = objects.set_image_digest_provider(dr.demo_image_digest)
    try:
        yield
    finally:
        objects.set_image_digest_provider(previous)


def _repo(ref: str) -> str:
    registry, _, rest = canonical_image(ref).partition("/")
    return f"{dr.PREFIX}/{registry}/{rest.rsplit(':', 1)[0]}"


@pytest.mark.parametrize("ref", sorted(IMAGE_FACTS))
def test_demo_registry_serves_every_demo_image_as_a_multi_arch_index(demo_registry, ref):
    digest = dr.demo_image_digest(ref)
    assert digest, f"no stand-in for {ref}"
    url = f"{demo_registry.url}/v2/{_repo(ref)}/manifests/{digest}"
    r = requests.get(url, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == OCI_INDEX and r.headers["Docker-Content-Digest"] == digest
    assert sha256(r.content) == digest  # the bytes are the digest's
    index = json.loads(r.content)
    assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == ["amd64", "arm64"]
    head = requests.head(url, timeout=10)
    assert head.status_code == 200 and head.content == b"" and head.headers["Docker-Content-Digest"] == digest
    assert int(head.headers["Content-Length"]) == len(r.content)
    for m in index["manifests"]:  # every manifest and blob it names is there
        man = requests.get(f"{demo_registry.url}/v2/{_repo(ref)}/manifests/{m['digest']}", timeout=10)
        assert man.status_code == 200 and sha256(man.content) == m["digest"]
        for desc in [json.loads(man.content)["config"], *json.loads(man.content)["layers"]]:
            blob = requests.get(f"{demo_registry.url}/v2/{_repo(ref)}/blobs/{desc['digest']}", timeout=10)
            assert blob.status_code == 200 and sha256(blob.content) == desc["digest"]


def test_pods_of_the_demo_fleet_get_confirmed_verdicts_that_agree_with_image_facts(
    demo_registry, stand_in_digests
):
    client = RegistryClient(mirrors=demo_registry.mirrors(), upstream_fallback=False, cache={})
    checked: dict[tuple[str, str], str] = {}
    for spec in demo_fleet():
        arch = {
            n["metadata"]["name"]: n["status"]["nodeInfo"]["architecture"]
            for n in spec.objects
            if n.get("kind") == "Node"
        }
        for pod in (o for o in spec.objects if o.get("kind") == "Pod"):
            images = {c["name"]: c["image"] for c in pod["spec"]["containers"]}
            platform = f"linux/{arch[pod['spec']['nodeName']]}"
            for status in pod["status"].get("containerStatuses") or []:
                image = images[status["name"]]
                ref = resolve_image_id(status["imageID"])
                assert ref, f"{image}: imageID {status['imageID']!r} is not pullable"
                if (ref, platform) in checked:
                    continue
                v = client.inspect(ref, platform)
                libc, musl, os_name = IMAGE_FACTS[image]
                assert (v.libc, v.musl_version, v.confidence) == (libc, musl, "confirmed"), (
                    image,
                    v.evidence,
                )
                if os_name.startswith("alpine "):
                    assert v.os_id == "alpine" and v.os_version.startswith(os_name.split()[1] + ".")
                # Nobody may mistake a stand-in's verdict for the real image's.
                assert any("dnsaudit-demo-stand-in" in e for e in v.evidence), v.evidence
                assert any(e.startswith(f"read from mirror {demo_registry.host}/") for e in v.evidence)
                checked[(ref, platform)] = image
    seen = set(checked.values())
    assert len(seen) >= 20, seen  # the demo's pods cover most of the catalogue
    assert {p for _, p in checked} == {"linux/amd64", "linux/arm64"}


def test_without_a_provider_pods_carry_synthetic_digests(stand_in_digests):
    with_provider = objects.image_id("alpine:3.16")
    objects.set_image_digest_provider(None)
    without = objects.image_id("alpine:3.16")
    assert with_provider == f"docker.io/library/alpine@{dr.demo_image_digest('alpine:3.16')}"
    assert without != with_provider and without.startswith("docker.io/library/alpine@sha256:")
    assert objects.image_id("quay.io/x/y:1") == objects.image_id("quay.io/x/y:1")  # not a stand-in: unchanged


def test_stand_in_digests_are_the_same_in_another_process():
    code = "from dnsaudit.testbed.demoregistry import demo_image_digest as d; print(d('alpine:3.16'), d('gcr.io/distroless/static-debian12'))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == [
        dr.demo_image_digest("alpine:3.16"),
        dr.demo_image_digest("gcr.io/distroless/static-debian12:latest"),
    ]


def test_every_stand_in_says_it_is_one_in_its_os_release():
    for ref in IMAGE_FACTS:
        image = dr.stand_in(ref)
        assert image is not None
        texts = []
        for blob in image.blobs.values():
            if blob[:2] != b"\x1f\x8b":
                continue  # a config
            with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tf:
                texts += [tf.extractfile(m).read().decode() for m in tf if m.isfile() and m.name.endswith("os-release")]  # fmt: skip
        assert texts and all(f"dnsaudit demo stand-in for {ref}" in t for t in texts), (ref, texts)


def test_demo_registry_is_read_only_and_says_what_is_unknown(demo_registry):
    base = demo_registry.url
    alpine = _repo("alpine:3.16")
    assert requests.get(f"{base}/v2/", timeout=10).status_code == 200
    r = requests.put(f"{base}/v2/{alpine}/manifests/3.16", data=b"{}", timeout=10)
    assert r.status_code == 405
    r = requests.get(f"{base}/v2/{dr.PREFIX}/docker.io/library/nope/manifests/1", timeout=10)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    r = requests.get(f"{base}/v2/{alpine}/manifests/sha256:{'0' * 64}", timeout=10)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    # A blob of another repository is not served under this one.
    debian = dr.stand_in("debian:bookworm")
    foreign = next(d for d in debian.blobs if d not in dr.stand_in("alpine:3.16").blobs)
    r = requests.get(f"{base}/v2/{alpine}/blobs/{foreign}", timeout=10)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_digest_only_mode_does_not_answer_tags():
    with dr.DemoRegistry(serve_tags=False) as reg:
        url = f"{reg.url}/v2/{_repo('alpine:3.16')}/manifests"
        assert requests.get(f"{url}/3.16", timeout=10).status_code == 404
        assert requests.get(f"{url}/{dr.demo_image_digest('alpine:3.16')}", timeout=10).status_code == 200
    with dr.DemoRegistry() as reg:
        r = requests.get(f"{reg.url}/v2/{_repo('alpine:3.16')}/manifests/3.16", timeout=10)
        assert r.headers["Docker-Content-Digest"] == dr.demo_image_digest("alpine:3.16")


def test_demo_command_puts_its_mirrors_first_and_keeps_the_users_own():
    from clusters.management.commands.demo import _with_demo_mirrors

    old_demo = f"docker.io=127.0.0.1:1/{dr.PREFIX}/docker.io"
    got = _with_demo_mirrors("docker.io=127.0.0.1:2/x", f"{old_demo},docker.io=harbor.corp/hub")
    assert got == "docker.io=127.0.0.1:2/x,docker.io=harbor.corp/hub"
    assert _with_demo_mirrors("docker.io=127.0.0.1:2/x", None) == "docker.io=127.0.0.1:2/x"


def test_a_client_that_resets_its_connection_prints_no_traceback(capsys):
    """`make run` serves the demo registry in the dashboard's process: a client that drops a connection
    (the inspector's early stop, its per-image deadline) is routine, not a traceback on the console."""
    import socket
    import struct
    import time

    with dr.DemoRegistry() as reg:
        host, port = reg.host.split(":")
        for _ in range(3):
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHo")  # a request cut short, then a reset (RST, not FIN)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        time.sleep(0.3)
        assert requests.get(f"{reg.url}/v2/", timeout=5).status_code == 200  # still serving
    assert "Traceback" not in capsys.readouterr().err
