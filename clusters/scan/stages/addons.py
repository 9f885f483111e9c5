"""Cluster add-ons the remediation depends on: the CoreDNS configuration and whether Kyverno is served."""

from __future__ import annotations

import re

from ..progress import _problem, _retry


def coredns_facts(client, problems) -> dict:
    from dnsaudit.boundary.kube import KubeError

    facts: dict = {"variant": "unknown", "template_zones": [], "corefile": ""}
    try:
        cm = _retry(lambda: client.get_configmap("kube-system", "coredns"))
        custom = _retry(lambda: client.get_configmap("kube-system", "coredns-custom"))
        nodelocal = _retry(lambda: client.get_configmap("kube-system", "node-local-dns"))
    except KubeError as exc:
        problems.append(
            _problem(
                "CoreDNS configuration",
                str(exc),
                "cannot tell whether a CoreDNS template fix exists; the CoreDNS remediation is shown without that check",
            )
        )
        return facts
    corefile = _data(cm).get("Corefile", "")
    facts["corefile"] = corefile
    facts["variant"] = (
        "k3s" if ("NodeHosts" in corefile or custom is not None) else ("kubeadm" if corefile else "unknown")
    )
    facts["node_local_dns"] = nodelocal is not None
    texts = [corefile, *_data(custom).values()]
    zones = []
    for text in texts:
        for line in (text or "").splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[0] == "template":
                found = (p.rstrip(".{") for p in parts[3:] if p != "{")
                zones.extend(z for z in found if z == "" or _ZONE.fullmatch(z))  # a DNS name (or the root)
    facts["template_zones"] = sorted(set(zones))
    return facts


_ZONE = re.compile(r"[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63}){0,127}")

#: The most of a ConfigMap's text read for the CoreDNS facts (a Corefile is a few KiB; a ConfigMap at most 1 MiB).
CONFIGMAP_TEXT_MAX = 1 << 20


def _data(cm: object) -> dict[str, str]:
    """A ConfigMap's ``data`` with only its string values (what a hostile API server sends is data too)."""
    data = cm.get("data") if isinstance(cm, dict) else None
    if not isinstance(data, dict):
        return {}
    return {k: v[:CONFIGMAP_TEXT_MAX] for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def kyverno_installed(client, problems: list[dict]) -> bool:
    """Whether the API serves ``kyverno.io``; when that cannot be read, Kyverno is assumed absent."""
    from dnsaudit.boundary.kube import KubeError

    try:
        return _retry(lambda: client.api_group_served("kyverno.io"))
    except KubeError as exc:
        problems.append(_problem("kyverno", str(exc), "Kyverno is assumed absent"))
        return False
