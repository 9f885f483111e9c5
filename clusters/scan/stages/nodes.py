"""Node pools with their kubelet DNS facts (configz when readable, else the cluster's settings)."""

from __future__ import annotations

import ipaddress
import re

from dnsaudit.core.model import KubeletDNS, NodePool

from ..progress import _problem

_DOMAIN = re.compile(r"[A-Za-z0-9_.-]{0,253}")
_PATH = re.compile(r"(/[A-Za-z0-9_.+-]{1,255}){1,32}|")


class _Malformed(ValueError):
    """configz answered, but a DNS field is not what a kubelet writes: the pool's facts are assumed."""


def _checked(value: object, pattern: re.Pattern, what: str) -> str | None:
    from dnsaudit.core.inventory import shown

    if value is None:
        return None
    if isinstance(value, str) and pattern.fullmatch(value):
        return value
    raise _Malformed(f"the kubelet's configz has a malformed {what}: {shown(value)}")


def _cluster_dns(value: object) -> tuple[str, ...]:
    from dnsaudit.core.inventory import shown

    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > 16:
        raise _Malformed(f"the kubelet's configz has a malformed clusterDNS: {shown(value)}")
    out = []
    for ip in value:
        try:
            out.append(str(ipaddress.ip_address(ip)))
        except ValueError:
            raise _Malformed(
                f"the kubelet's configz has a clusterDNS that is not an IP: {shown(ip)}"
            ) from None
    return tuple(out)


def pools_with_kubelet_facts(cluster, client, grouped, problems, progress) -> list[NodePool]:
    """Kubelet DNS facts per pool: configz when readable, else the cluster's settings (assumed)."""
    from dnsaudit.boundary.kube import KubeError

    assumed_dns = tuple(cluster.cluster_dns or ["10.96.0.10"])
    pools: list[NodePool] = []
    progress.set("kubelet config", done=0, total=len(grouped))
    for name, group in grouped.items():
        node_names = [n["metadata"]["name"] for n in group.nodes]
        observed = {"kubelet_config": False, "node_resolv_conf": False}
        notes: list[str] = []
        assumed: list[str] = []
        kubelet = KubeletDNS(
            cluster_dns=assumed_dns,
            cluster_domain=cluster.cluster_domain,
            version=group.kubelet_version or None,
        )
        try:
            raw = client.kubelet_configz(node_names[0])
            conf = raw.get("kubeletconfig", raw)
            kubelet = KubeletDNS(
                cluster_dns=_cluster_dns(conf.get("clusterDNS")),
                cluster_domain=_checked(conf.get("clusterDomain"), _DOMAIN, "clusterDomain") or "",
                resolv_conf=_checked(conf.get("resolvConf"), _PATH, "resolvConf")
                if "resolvConf" in conf
                else "/etc/resolv.conf",
                version=group.kubelet_version or None,
            )
            observed["kubelet_config"] = True
        except (KubeError, _Malformed) as exc:
            what = (
                "forbidden (needs get on nodes/proxy)"
                if getattr(exc, "reason", "") == "Forbidden"
                else str(exc)
            )
            notes.append(f"kubelet configz unreadable on {node_names[0]}: {what}")
            problem = _problem(
                f"kubelet config of pool {name}",
                what,
                f"assumed clusterDNS {', '.join(assumed_dns)}, clusterDomain {cluster.cluster_domain} and "
                "resolvConf /etc/resolv.conf from the cluster's settings",
            )
            # A pool's own assumption: quoted in the verdicts of that pool's workloads only.
            problem["pool"] = name
            problems.append(problem)
            assumed.append(f"kubelet config of pool {name} ({what}): {problem['impact']}")
        pools.append(
            NodePool(
                name=name,
                kubelet=kubelet,
                node_resolv_conf=None,  # learned by the node-files stage
                nodes=node_names,
                architecture=group.architecture or "amd64",
                os=group.os or "linux",
                observed=observed,
                notes=notes,
                assumed=assumed,
            )
        )
        progress.step()
    if not pools:
        pools.append(
            NodePool(
                name="default",
                kubelet=KubeletDNS(cluster_dns=assumed_dns, cluster_domain=cluster.cluster_domain),
                observed={"kubelet_config": False, "node_resolv_conf": False},
                notes=["no nodes could be read: all facts assumed from the cluster's settings"],
            )
        )
    return pools
