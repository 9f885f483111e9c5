"""Helpers for the scan tests: the settings an admin enters, running a scan, reading its rows."""

from __future__ import annotations

from dnsaudit.testbed.fakedns import Behaviour, Rule, ScriptedDNS
from dnsaudit.testbed.fakekube.fleet import DEMO_USER, ClusterSpec

# The external name every scan probes and simulates (the cluster's probe_names).
EXTERNAL = "example.com"


def upstream_rules(spec: ClusterSpec, *, nodata: bool = False) -> list[Rule]:
    """What the demo's upstream resolver answers: the spec's verdict per node search domain, records for
    the external probe name, NXDOMAIN otherwise. ``nodata`` turns SERVFAIL domains into NODATA."""
    rules = [Rule(EXTERNAL, Behaviour("answer", a=("93.184.215.14",), aaaa=("2606:2800::1",)))]
    for domain, verdict in spec.upstream.items():
        if domain in ("", "."):
            continue
        action = "NODATA" if (nodata and verdict == "SERVFAIL") else verdict
        rules.append(Rule(f"*.{domain}", Behaviour(action)))
    return rules


def pool_names(spec: ClusterSpec) -> dict[str, str]:
    """Spec pool name -> the pool name the scan (and the dashboard) shows for those nodes."""
    from dnsaudit.core.inventory import group_node_pools

    nodes = [o for o in spec.objects if o.get("kind") == "Node"]
    grouped = group_node_pools(nodes)
    out = {}
    for p in spec.pools:
        for name, g in grouped.items():
            if {n["metadata"]["name"] for n in g.nodes} & set(p.nodes):
                out[p.name] = name
    return out


def register(
    fake_cluster,
    spec: ClusterSpec,
    dns: ScriptedDNS | None = None,
    *,
    user: str = DEMO_USER,
    name: str | None = None,
    **overrides,
):
    """Import the fake cluster's kubeconfig as an admin would and enter the settings an admin knows:
    the node resolv.conf per pool, the cluster DNS, the probe nameserver and the external probe name."""
    from clusters.registry import import_kubeconfig

    result = import_kubeconfig(fake_cluster.kubeconfig(user), name=name or spec.name)
    cluster = result.clusters[0]
    names = pool_names(spec)
    cluster.pool_resolv_conf = {names[p.name]: p.node_resolv_conf for p in spec.pools if p.name in names}
    cluster.node_resolv_conf = spec.pools[0].node_resolv_conf
    cluster.cluster_dns = list(spec.cluster_dns)
    cluster.cluster_domain = spec.pools[0].cluster_domain
    cluster.probe_nameservers = [f"127.0.0.1:{dns.port}"] if dns else []
    cluster.probe_names = [EXTERNAL]
    for key, value in overrides.items():
        setattr(cluster, key, value)
    cluster.save()
    return cluster


def run_scan(cluster, **kw):
    """Queue and run one scan in this thread (as the in-process runner does); returns the finished row."""
    from clusters.scan import execute_scan, request_scan

    scan, created = request_scan(cluster, trigger="manual", dispatch_now=False)
    assert created, f"a scan was already active: {scan}"
    out = execute_scan(scan.pk, worker="test", **kw)
    assert out is not None
    return out


def rows(scan) -> dict[str, object]:
    """``"ns/Kind/name" -> WorkloadResult`` of a scan."""
    return {f"{w.namespace}/{w.kind}/{w.name}": w for w in scan.workloads.all()}


def single_pool_spec(
    objects: list[dict], nodes: list[str], node_resolv_conf: str | None = None
) -> ClusterSpec:
    """A one-pool cluster spec around ``objects`` (nodes named ``nodes``), with the openstack-prod node file
    (``search openstacklocal``) and upstream (SERVFAIL under it) unless told otherwise."""
    from dnsaudit.testbed.fakekube.fleet import openstack_prod

    spec = openstack_prod()
    spec.objects = objects
    spec.pools = spec.pools[:1]
    spec.pools[0].nodes = list(nodes)
    if node_resolv_conf is not None:
        spec.pools[0].node_resolv_conf = node_resolv_conf
    return spec


def assert_last_good(cluster, good) -> None:
    """Nothing lost: ``good`` is still the cluster's report, with all its rows."""
    from clusters.models import Scan

    last = cluster.last_report_scan()
    assert last is not None and last.pk == good.pk, f"last report is {last}, expected {good}"
    want = sorted(good.workloads.values_list("namespace", "kind", "name", "risk"))
    fresh = Scan.objects.get(pk=good.pk)
    assert sorted(fresh.workloads.values_list("namespace", "kind", "name", "risk")) == want
    assert fresh.workloads.count() == fresh.workloads_total > 0
    assert fresh.node_pools.count() > 0
