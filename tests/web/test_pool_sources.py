"""The node-pool section says where each pool's node file came from, and tells an empty file (the node
adds no search domain) from an unknown one."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.web import factories

pytestmark = pytest.mark.django_db


def pool_section(body: str, name: str) -> str:
    m = re.search(rf"<summary><strong>{name}</strong>.*?</details>", body, re.S)
    assert m, f"no pool {name} on the page"
    return m.group(0)


def test_each_pool_says_its_source_and_an_empty_file_is_not_unknown(client_as):
    cluster = factories.make_cluster("sources")
    scan = factories.make_scan(cluster)
    factories.make_pool(
        scan,
        name="seen",
        node_resolv_conf="",
        searches=[],
        probes=[],
        node_resolv_conf_source="observed",
        node_resolv_conf_evidence=["read in pod shop/web-1 on node n1 (exec: cat /etc/resolv.conf)"],
    )
    factories.make_pool(
        scan, name="dark", node_resolv_conf="", searches=[], probes=[], node_resolv_conf_source="unknown"
    )
    body = client_as("viewer").get(reverse("clusters:report", args=[cluster.name])).content.decode()
    seen, dark = pool_section(body, "seen"), pool_section(body, "dark")
    assert 'data-source="observed"' in seen and "read in pod shop/web-1" in seen
    assert "empty: the node adds no search domain" in seen and "not known" not in seen
    assert 'data-source="unknown"' in dark and "not known: allow exec reads" in dark
    assert "node search domains unknown on pool dark" in body
