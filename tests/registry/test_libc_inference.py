"""Verdicts from the image reference alone: only names that say what they are count."""

from __future__ import annotations

import pytest

from dnsaudit.core.libc import infer_from_reference


@pytest.mark.parametrize(
    ("ref", "libc", "os_id", "musl"),
    [
        ("busybox:1.36-musl", "musl", None, None),
        ("busybox:1.36-glibc", "unknown", None, None),
        ("python:3.12-slim", "glibc", "debian", None),
        ("postgres:16", "glibc", "debian", None),
        ("docker.io/library/postgres:16", "glibc", "debian", None),
        ("postgres:16-alpine3.19", "musl", "alpine", "1.2.4"),
        ("cgr.dev/chainguard/static:latest", "static", "wolfi", None),
        ("cgr.dev/chainguard/wolfi-base:latest", "glibc", "wolfi", None),
        # Not an official image: the name says nothing, so nothing is claimed.
        ("myorg/python:3", "unknown", None, None),
        ("quay.io/team/nginx:1.27", "unknown", None, None),
    ],
)
def test_reference_inference(ref, libc, os_id, musl):
    v = infer_from_reference(ref)
    assert (v.libc, v.os_id, v.musl_version) == (libc, os_id, musl)
    assert v.confidence == "inferred"
    assert v.evidence and ref in v.evidence[0]
