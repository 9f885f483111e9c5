"""DNS probes: how the probe nameservers answer under the nodes' non-cluster search domains."""

from __future__ import annotations

import secrets

from django.conf import settings

from dnsaudit.core.model import ProbeResult

from ..progress import _problem


def probe_dns(cluster, pools, progress, problems) -> list[ProbeResult]:
    """Ask A and AAAA for <probe>.<domain> per non-cluster search domain of each pool's node file.

    Each server is first asked for the first probe name itself (a control question it must answer). A
    server that does not answer that is unreachable from the worker: its silence says nothing about the
    search domains, so none of its answers are used (the scan is partial and those workloads stay
    at-risk instead of affected). Once the control is answered, a timeout under a domain is an
    observation like any rcode (musl fails on it).
    """
    from dnsaudit.boundary.dns import DNSProbeError, probe_domain, query
    from dnsaudit.core.kubelet import parse_node_resolv_conf

    servers = list(cluster.probe_nameservers or [])
    if not servers:
        return []
    domains: set[str] = set()
    for pool in pools:
        if not pool.node_resolv_conf:
            continue
        try:
            conf = parse_node_resolv_conf(pool.node_resolv_conf, pool.kubelet.version)
        except ValueError:
            continue
        cd = pool.kubelet.cluster_domain
        for d in conf.searches:
            if d and d != "." and not (cd and (d == cd or d.endswith("." + cd))):
                domains.add(d)
    if not domains:
        return []
    timeout = float(getattr(settings, "DNSAUDIT_PROBE_TIMEOUT", 2.0))
    names = [*(cluster.probe_names or ["example.com"]), f"dnsaudit-{secrets.token_hex(4)}.com"]
    work = [(s, d, n) for s in servers for d in sorted(domains) for n in names]
    progress.set("dns probes", done=0, total=len(work))
    results: list[ProbeResult] = []
    failures: list[str] = []
    unreachable: set[str] = set()
    for server in servers:
        try:
            control = query(server, names[0], "A", timeout=timeout)
        except DNSProbeError as exc:
            failures.append(f"{server}: {exc}")
            unreachable.add(server)
            continue
        if control.rcode is None:
            failures.append(
                f"{server}: no answer within {timeout:g}s even for {names[0]} (probe server unreachable)"
            )
            unreachable.add(server)
    for server, domain, name in work:
        if server not in unreachable:
            try:
                results.append(probe_domain(server, domain, name, timeout=timeout))
            except DNSProbeError as exc:
                failures.append(f"{server}: {exc}")
        progress.step()
    if failures:
        problems.append(
            _problem(
                "DNS probes",
                "; ".join(sorted(set(failures)))[:500],
                "some search domains have no observed answer: their workloads are at-risk rather than confirmed affected",
            )
        )
    return results
