"""Fuzzing the kubeconfig parser: any upload ends in a ``Kubeconfig`` or a ``KubeconfigError``, quickly."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import given

from dnsaudit.core.kubeconfig import KubeconfigError, parse_kubeconfig
from tests.fuzz.bytegen import Reader
from tests.fuzz.common import bounded, seeds

pytestmark = pytest.mark.fuzz

KEYS = [
    "apiVersion", "kind", "clusters", "contexts", "users", "current-context", "name", "cluster", "user",
    "context", "server", "certificate-authority-data", "certificate-authority", "insecure-skip-tls-verify",
    "tls-server-name", "proxy-url", "token", "tokenFile", "username", "password", "client-certificate-data",
    "client-key-data", "client-certificate", "exec", "auth-provider", "as", "namespace", "extensions",
]  # fmt: skip
NAMES = ["prod", "dev", "admin", "https://127.0.0.1:6443", "http://10.0.0.1", "https://[::1]:443", "ftp://x",
         "https://", "https://a b", "Config", "v1", "/etc/passwd", "true"]  # fmt: skip
SHAPE = {
    "apiVersion": ["v1", "v2"],
    "kind": ["Config", "List"],
    "clusters": ({"name": "name", "cluster": {
        "server": "name", "certificate-authority-data": "b64", "insecure-skip-tls-verify": "bool",
        "tls-server-name": "name", "proxy-url": "name", "certificate-authority": "name"}},),
    "users": ({"name": "name", "user": {
        "token": "name", "username": "name", "password": "name", "client-certificate-data": "b64",
        "client-key-data": "b64", "exec": "value", "tokenFile": "name", "as": "name"}},),
    "contexts": ({"name": "name", "context": {"cluster": "name", "user": "name", "namespace": "name"}},),
    "current-context": "name",
}  # fmt: skip


def _text(r: Reader) -> str | bytes:
    k = r.below(8)
    if k == 0:
        return bytes(r.byte() for _ in range(r.below(200)))
    if k == 1:
        return r.text(KEYS + NAMES + [":", "- ", "{", "}", "[", "]", "&a", "*a", "!!binary", "'"], 40)
    doc = r.shaped(SHAPE, KEYS, NAMES)
    text = json.dumps(doc, default=str)  # JSON is YAML; the cheap way to write it
    for key in ("b64",):  # fill the base64 places with real base64 of arbitrary bytes
        while f'"{key}"' in text:
            text = text.replace(
                f'"{key}"',
                json.dumps(base64.b64encode(bytes(r.byte() for _ in range(r.below(40)))).decode()),
                1,
            )
    return text


@given(seeds)
def test_kubeconfig(seed):
    r = Reader(seed)
    data = _text(r)
    with bounded():
        try:
            kc = parse_kubeconfig(data)
        except KubeconfigError:
            return
        for name in [*kc.contexts, kc.current_context]:
            for call in (kc.context, kc.warnings_for):
                with contextlib.suppress(KubeconfigError):
                    call(name)
        with contextlib.suppress(KubeconfigError):
            kc.default_context()
