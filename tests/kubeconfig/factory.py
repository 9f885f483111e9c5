"""Builders for kubeconfigs used by the kubeconfig tests: real certificates (trustme), known secrets.

Every secret is a distinctive string so tests can assert it never appears where it must not.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
from dataclasses import dataclass
from functools import cache

import trustme
import yaml

TOKEN = "tok-SECRET-5f1d2c9a8b7e6d5c4b3a"
PASSWORD = "pw-SECRET-0a9b8c7d6e5f"
SERVER = "https://127.0.0.1:6443"


@dataclass(frozen=True)
class Pki:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    other_key_pem: bytes  # a key that does not belong to cert_pem
    expired_cert_pem: bytes
    expired_key_pem: bytes


@cache
def pki() -> Pki:
    ca = trustme.CA(organization_name="dnsaudit test CA")
    leaf = ca.issue_cert("kube-admin.example", common_name="kube-admin", organization_name="system:masters")
    other = ca.issue_cert("other.example")
    past = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    expired = ca.issue_cert(
        "old.example", common_name="old-admin", not_before=past, not_after=past + dt.timedelta(days=1)
    )
    return Pki(
        ca_pem=ca.cert_pem.bytes(),
        cert_pem=leaf.cert_chain_pems[0].bytes(),
        key_pem=leaf.private_key_pem.bytes(),
        other_key_pem=other.private_key_pem.bytes(),
        expired_cert_pem=expired.cert_chain_pems[0].bytes(),
        expired_key_pem=expired.private_key_pem.bytes(),
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def key_material() -> list[str]:
    """Strings that must never leak: the token, the password, the private key (PEM body and base64)."""
    p = pki()
    key_body = [line for line in p.key_pem.decode().splitlines() if line and not line.startswith("-----")]
    return [TOKEN, PASSWORD, b64(p.key_pem)[:40], key_body[0]]


def doc(
    *,
    user: dict | None = None,
    cluster: dict | None = None,
    context_name: str = "prod",
    cluster_name: str = "prod-cluster",
    user_name: str = "prod-admin",
    current: str | None = "prod",
) -> dict:
    """A one-context kubeconfig dict; ``user``/``cluster`` replace the default token user / CA cluster."""
    if cluster is None:
        cluster = {"server": SERVER, "certificate-authority-data": b64(pki().ca_pem)}
    if user is None:
        user = {"token": TOKEN}
    d = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": context_name, "context": {"cluster": cluster_name, "user": user_name}}],
        "preferences": {},
    }
    if current is not None:
        d["current-context"] = current
    return d


def add_context(d: dict, other: dict) -> dict:
    """Merge the entries of ``other`` into a copy of ``d`` (a multi-context kubeconfig)."""
    out = copy.deepcopy(d)
    for key in ("clusters", "users", "contexts"):
        out[key] = out[key] + copy.deepcopy(other[key])
    return out


class _NoAliasDumper(yaml.SafeDumper):
    """Write shared objects out in full (PyYAML would emit &anchors, which the parser refuses)."""

    def ignore_aliases(self, data):
        return True


def dump(d: dict) -> str:
    return yaml.dump(d, Dumper=_NoAliasDumper, sort_keys=False)


def token_kubeconfig(**kw) -> str:
    return dump(doc(**kw))


def cert_user() -> dict:
    p = pki()
    return {"client-certificate-data": b64(p.cert_pem), "client-key-data": b64(p.key_pem)}
