"""Cluster add-ons the remediation depends on: the CoreDNS configuration and whether Kyverno is served."""

from __future__ import annotations

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
    corefile = ((cm or {}).get("data") or {}).get("Corefile", "")
    facts["corefile"] = corefile
    facts["variant"] = (
        "k3s" if ("NodeHosts" in corefile or custom is not None) else ("kubeadm" if corefile else "unknown")
    )
    facts["node_local_dns"] = nodelocal is not None
    texts = [corefile, *(((custom or {}).get("data") or {}).values())]
    zones = []
    for text in texts:
        for line in (text or "").splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[0] == "template":
                zones.extend(p.rstrip(".{") for p in parts[3:] if p != "{")
    facts["template_zones"] = sorted(set(zones))
    return facts


def kyverno_installed(client, problems: list[dict]) -> bool:
    """Whether the API serves ``kyverno.io``; when that cannot be read, Kyverno is assumed absent."""
    from dnsaudit.boundary.kube import KubeError

    try:
        return _retry(lambda: client.api_group_served("kyverno.io"))
    except KubeError as exc:
        problems.append(_problem("kyverno", str(exc), "Kyverno is assumed absent"))
        return False
