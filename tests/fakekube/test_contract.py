"""Contract: the same assertions against the test API server and, when configured, a real cluster.

Set ``DNSAUDIT_CONTRACT_KUBECONFIG`` to a kubeconfig with data fields (certificate/key data or a token) to
run them against a real cluster too; without it only the test API server case is collected (no real
cluster exists on the CI machines, so that case is never required and never shows as a skip).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import yaml

from dnsaudit.boundary.kube import KubeClient
from dnsaudit.core.model import KubeContext
from dnsaudit.testbed.fakekube.fleet import managed_clean
from dnsaudit.testbed.fakekube.pytest_fixtures import context_for


def context_from_file(path: str) -> KubeContext:
    doc = yaml.safe_load(Path(path).read_text())
    current = doc.get("current-context")
    ctx = next(c for c in doc["contexts"] if c["name"] == current)["context"]
    cl = next(c for c in doc["clusters"] if c["name"] == ctx["cluster"])["cluster"]
    us = next(u for u in doc["users"] if u["name"] == ctx["user"])["user"]

    def data(d, key):
        return base64.b64decode(d[key]) if key in d else None

    return KubeContext(
        name=current,
        cluster=ctx["cluster"],
        user=ctx["user"],
        server=cl["server"],
        ca_data=data(cl, "certificate-authority-data"),
        client_cert_data=data(us, "client-certificate-data"),
        client_key_data=data(us, "client-key-data"),
        token=us.get("token"),
        insecure_skip_tls_verify=bool(cl.get("insecure-skip-tls-verify")),
    )


REAL_KUBECONFIG = os.environ.get("DNSAUDIT_CONTRACT_KUBECONFIG", "")


@pytest.fixture(params=["fake", "real"] if REAL_KUBECONFIG else ["fake"])
def contract_context(request, fakekube):
    if request.param == "real":
        return context_from_file(REAL_KUBECONFIG)
    managed_clean().install(fakekube.default)
    return context_for(fakekube, "dnsaudit")


def test_contract_lists_and_discovery(contract_context):
    with KubeClient.from_context(contract_context, timeout=20) as kc:
        version = kc.server_version()
        assert version["major"] and version["gitVersion"].startswith("v")
        nodes = list(kc.iter_list("nodes", page_size=50))
        assert nodes and all(n["status"]["nodeInfo"]["architecture"] for n in nodes)
        pods = list(kc.iter_list("pods", page_size=50))
        assert pods and all("kind" not in p for p in pods)
        assert all(isinstance(p["metadata"]["resourceVersion"], str) for p in pods)
        assert len({p["metadata"]["uid"] for p in pods}) == len(pods)
        assert not kc.api_group_served("no-such-group.dnsaudit.invalid")
        report = kc.self_test()
        assert report and all({"fact", "permission", "allowed", "loss"} <= set(r) for r in report)
