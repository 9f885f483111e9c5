"""Rendering of the fixes users paste: workload patches, kubelet files, Kyverno and CoreDNS snippets.

Pure text generation; the *choice* of a fix and its checks live in :mod:`dnsaudit.core.remediation`.
Every YAML document is produced with PyYAML ``safe_dump`` (``sort_keys=False`` so fields read in the
order Kubernetes users expect), every shell command is quoted with :func:`shlex.quote`.

Contracts:

* :func:`workload_patch` nests the pod-spec fields at the workload's ``pod_spec_path`` (Deployment,
  StatefulSet, DaemonSet, ReplicaSet, Job: ``spec.template.spec``; CronJob:
  ``spec.jobTemplate.spec.template.spec``; bare Pod: ``spec``). The result is a strategic-merge patch.
  ``dnsConfig.nameservers``/``searches``/``options`` carry no patch strategy in the Kubernetes API, so a
  strategic merge *replaces* each list we send (we always send all three).
* :func:`kubectl_patch_command` returns a command that works against a live cluster. A Pod's DNS fields
  and a Job's pod template are immutable, so for those kinds the command recreates the object
  (documented in the returned comment line).
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from typing import Any

import yaml

from dnsaudit.core.inventory import POD_SPEC_PATH
from dnsaudit.core.model import Workload

#: kubectl resource names per kind (lower-case singular works for all built-in kinds).
KUBECTL_RESOURCE = {
    "Deployment": "deployment",
    "StatefulSet": "statefulset",
    "DaemonSet": "daemonset",
    "ReplicaSet": "replicaset",
    "Job": "job",
    "CronJob": "cronjob",
    "Pod": "pod",
}

#: Where each kind keeps its pod spec (used when a Workload does not say): the inventory's table.
POD_SPEC_PATHS = POD_SPEC_PATH

#: Kinds whose DNS fields cannot be patched in place: the object must be recreated.
IMMUTABLE_KINDS = {"Pod", "Job"}

#: Where the pod-only resolv.conf is written on nodes by the kubelet fix.
KUBELET_RESOLV_PATH = "/etc/kubernetes/resolv-pods.conf"
KUBELET_CONFIG_PATH = "/var/lib/kubelet/config.yaml"


#: libyaml's emitter when PyYAML was built with it (10x faster; same output for our plain data).
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_yaml(obj: Any) -> str:
    """YAML as users read it: block style, keys in insertion order, unicode kept (``safe_dump`` rules).

    Memoised on the object's JSON form: an audit renders the same policy/file for many workloads.
    """
    try:
        key = json.dumps(obj, sort_keys=False)
    except (TypeError, ValueError):
        return _dump(obj)
    return _dump_cached(key)


def _dump(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


@functools.lru_cache(maxsize=2048)
def _dump_cached(key: str) -> str:
    return _dump(json.loads(key))


def dump_yaml_all(objs: list[Any]) -> str:
    return yaml.safe_dump_all(objs, sort_keys=False, default_flow_style=False, allow_unicode=True)


def dns_fields(dns_policy: str, dns_config: dict | None) -> dict:
    """The pod-spec fragment ``{"dnsPolicy": ..., "dnsConfig": {...}}`` (dnsConfig omitted when None)."""
    out: dict[str, Any] = {"dnsPolicy": dns_policy}
    if dns_config is not None:
        out["dnsConfig"] = dns_config
    return out


def nest(path: tuple[str, ...], leaf: dict) -> dict:
    """``nest(("spec", "template", "spec"), x)`` → ``{"spec": {"template": {"spec": x}}}``."""
    out: dict = leaf
    for key in reversed(path):
        out = {key: out}
    return out


def pod_spec_path(w: Workload) -> tuple[str, ...]:
    return tuple(w.pod_spec_path) or POD_SPEC_PATHS.get(w.kind, ("spec", "template", "spec"))


def workload_patch(w: Workload, dns_policy: str, dns_config: dict | None) -> dict:
    """The strategic-merge patch (no apiVersion/kind/metadata) that sets the DNS fields of ``w``."""
    return nest(pod_spec_path(w), dns_fields(dns_policy, dns_config))


def workload_patch_document(w: Workload, dns_policy: str, dns_config: dict | None) -> dict:
    """The same patch with ``apiVersion``/``kind``/``metadata`` so kustomize (and humans) can place it."""
    meta: dict[str, Any] = {"name": w.name}
    if w.namespace:
        meta["namespace"] = w.namespace
    return {
        "apiVersion": w.api_version,
        "kind": w.kind,
        "metadata": meta,
        **workload_patch(w, dns_policy, dns_config),
    }


def kubectl_patch_command(w: Workload, patch: dict) -> str:
    """The ``kubectl`` command that applies ``patch`` to the live object.

    Mutable kinds: ``kubectl patch <kind> <name> -n <ns> --type strategic -p '<json>'``. A bare Pod's
    dnsPolicy/dnsConfig (and a Job's pod template) are immutable, so for those the command reads the
    object, patches it locally and replaces it (``--force`` deletes and recreates it).
    """
    resource = KUBECTL_RESOURCE.get(w.kind, w.kind.lower())
    payload = json.dumps(patch, separators=(",", ":"), sort_keys=False)
    ns = ["-n", w.namespace] if w.namespace else []
    if w.kind in IMMUTABLE_KINDS:
        get = shlex.join(["kubectl", "get", resource, w.name, *ns, "-o", "yaml"])
        local = shlex.join(
            ["kubectl", "patch", "--local", "-f", "-", "--type", "strategic", "-p", payload, "-o", "yaml"]
        )
        note = (
            f"# {w.kind} DNS fields are immutable: this deletes and recreates {w.kind.lower()} {w.name}"
            + (
                " (a Job with a generated selector may need the manifest fixed and re-applied instead)"
                if w.kind == "Job"
                else ""
            )
        )
        return f"{note}\n{get} | {local} | kubectl replace --force -f -"
    return shlex.join(["kubectl", "patch", resource, w.name, *ns, "--type", "strategic", "-p", payload])


def patch_file_name(w: Workload) -> str:
    """``<kind>-<name>.yaml`` in lower case (the bundle puts it under ``patches/<ns>/``)."""
    return f"{w.kind.lower()}-{w.name}.yaml"


def kustomize_patch_entry(w: Workload, path: str) -> dict:
    """One ``patches:`` entry of a kustomization, targeting exactly this workload."""
    group, _, version = w.api_version.rpartition("/")
    target: dict[str, Any] = {"kind": w.kind, "name": w.name}
    if group:
        target["group"] = group
    target["version"] = version
    if w.namespace:
        target["namespace"] = w.namespace
    return {"path": path, "target": target}


def kustomization(entries: list[dict], resources: list[str] | None = None) -> dict:
    out: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
    if resources:
        out["resources"] = resources
    out["patches"] = entries
    return out


# --- dnsConfig in API shape ------------------------------------------------------------------------


def options_to_api(options: list[str] | tuple[str, ...]) -> list[dict]:
    """``["ndots:5", "edns0"]`` → ``[{"name": "ndots", "value": "5"}, {"name": "edns0"}]``."""
    out: list[dict] = []
    for op in options:
        name, sep, value = op.partition(":")
        out.append({"name": name, "value": value} if sep else {"name": name})
    return out


# --- kubelet ----------------------------------------------------------------------------------------


def strip_search_domains(node_file: str, offending: set[str]) -> str:
    """The node resolv.conf with ``offending`` removed from every ``search`` line (trailing dots ignored).

    ``domain`` lines naming an offending domain are dropped too (the kubelet ignores them, but other
    readers of the file would not). A search line left empty is removed. Comments, nameservers and
    options are kept verbatim.
    """
    norm = {d.rstrip(".") if d != "." else "." for d in offending}
    out: list[str] = []
    for line in node_file.splitlines():
        fields = line.split()
        if fields and fields[0] in ("search", "domain"):
            kept = [f for f in fields[1:] if (f if f == "." else f.rstrip(".")) not in norm]
            if fields[0] == "domain" and len(kept) != len(fields) - 1:
                continue
            if fields[0] == "search":
                if not kept:
                    continue
                line = "search " + " ".join(kept)
        out.append(line)
    return "\n".join(out) + "\n"


def kubelet_configuration(path: str = KUBELET_RESOLV_PATH) -> dict:
    """The KubeletConfiguration fragment that points the kubelet at ``path``."""
    return {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", "resolvConf": path}


def kubelet_flag(path: str = KUBELET_RESOLV_PATH) -> str:
    return f"--resolv-conf={path}"


def cloud_init(
    file_text: str, path: str = KUBELET_RESOLV_PATH, config_path: str = KUBELET_CONFIG_PATH
) -> str:
    """A ``#cloud-config`` that writes the pod resolv.conf, points the kubelet at it and restarts it.

    ``write_files`` runs before ``runcmd`` in cloud-init, so the file exists before the kubelet restarts
    (a missing file would fail every pod sandbox on the node).
    """
    set_field = (
        f"{{ grep -q '^resolvConf:' {config_path} "
        f"&& sed -i 's#^resolvConf:.*#resolvConf: {path}#' {config_path} "
        f"|| echo 'resolvConf: {path}' >> {config_path}; }}"
    )
    # One chained command: the kubelet is only restarted when the file is in place and the field is set.
    doc = {
        "write_files": [{"path": path, "owner": "root:root", "permissions": "0644", "content": file_text}],
        "runcmd": [["sh", "-c", f"test -s {path} && {set_field} && systemctl restart kubelet"]],
    }
    return "#cloud-config\n" + dump_yaml(doc)


# --- Kyverno -----------------------------------------------------------------------------------------


def image_patterns(images: list[str]) -> list[str]:
    """Kyverno wildcard patterns for the given image references: the repository with any tag/digest.

    ``docker.io/library/alpine:3.16`` and ``alpine:3.16`` both give ``alpine*`` and ``*/alpine*``;
    ``ghcr.io/acme/api:1.2-alpine`` gives ``ghcr.io/acme/api*``. Sorted, without duplicates.
    """
    out: set[str] = set()
    for ref in images:
        name = ref.split("@", 1)[0]
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name = name.rsplit(":", 1)[0]
        for prefix in ("docker.io/library/", "index.docker.io/library/", "library/"):
            if name.startswith(prefix):
                name = name[len(prefix) :]
        if "/" not in name:
            out.add(f"{name}*")
            out.add(f"*/{name}*")
        else:
            out.add(f"{name}*")
    return sorted(out)


def kyverno_policy(
    cluster_dns: list[str],
    cluster_domain: str,
    images: list[str],
    *,
    label: tuple[str, str] | None = None,
    name: str = "dnsaudit-musl-dns-config",
) -> dict:
    """A Kyverno ClusterPolicy that gives new musl Pods a full dnsConfig with dnsPolicy None.

    Scope: Pods at CREATE whose containers use one of ``images`` (wildcards) — or, when ``label`` is
    given, Pods carrying that label. kube-system and hostNetwork Pods are excluded, as are Pods that
    already chose a dnsPolicy other than ClusterFirst. Searches are built from ``{{request.namespace}}``
    (reliable at admission; ``metadata.namespace`` of a Pod created by a controller can be empty).
    """
    searches = [f"{{{{request.namespace}}}}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
    preconditions: dict[str, list[dict]] = {
        "all": [
            {"key": "{{ request.object.spec.hostNetwork || `false` }}", "operator": "Equals", "value": False},
            {
                "key": "{{ request.object.spec.dnsPolicy || 'ClusterFirst' }}",
                "operator": "Equals",
                "value": "ClusterFirst",
            },
        ]
    }
    if label is None:
        preconditions["any"] = [
            {
                "key": "{{ request.object.spec.containers[].image }}",
                "operator": "AnyIn",
                "value": image_patterns(images),
            },
            {
                "key": "{{ request.object.spec.initContainers[].image || `[]` }}",
                "operator": "AnyIn",
                "value": image_patterns(images),
            },
        ]
    match_res: dict[str, Any] = {"kinds": ["Pod"], "operations": ["CREATE"]}
    if label is not None:
        match_res["selector"] = {"matchLabels": {label[0]: label[1]}}
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": name,
            "annotations": {
                "policies.kyverno.io/title": "Full dnsConfig for musl (Alpine) Pods",
                "policies.kyverno.io/description": (
                    "musl stops the DNS search at the first answer that is not NXDOMAIN. This policy gives "
                    "matching new Pods dnsPolicy None with only the cluster search domains, so the node's "
                    "extra search domains are not inherited. Generated by dnsaudit."
                ),
            },
        },
        "spec": {
            "background": False,
            "rules": [
                {
                    "name": "musl-pods-cluster-dns-only",
                    "match": {"any": [{"resources": match_res}]},
                    "exclude": {"any": [{"resources": {"namespaces": ["kube-system"]}}]},
                    "preconditions": preconditions,
                    "mutate": {
                        "patchStrategicMerge": {
                            "spec": {
                                "dnsPolicy": "None",
                                "dnsConfig": {
                                    "nameservers": list(cluster_dns[:3]),
                                    "searches": searches,
                                    "options": [{"name": "ndots", "value": "5"}],
                                },
                            }
                        }
                    },
                }
            ],
        },
    }


# --- CoreDNS -----------------------------------------------------------------------------------------


def coredns_template(zone: str) -> str:
    """A CoreDNS ``template`` block answering NXDOMAIN for search-expanded names under ``zone``.

    The ``match`` regex requires at least two labels before the zone (``example.com.<zone>.``), so a
    single-label name such as ``node-1.<zone>`` still falls through to the next plugin (``forward``).
    """
    z = zone.strip(".")
    regex = r"^([^.]+\.){2,}" + re.escape(z).replace(r"\-", "-") + r"\.$"
    return (
        f"template ANY ANY {z} {{\n"
        f'    match "{regex}"\n'
        "    rcode NXDOMAIN\n"
        f'    authority "{z}. 60 IN SOA ns.dnsaudit.invalid. hostmaster.dnsaudit.invalid. 1 60 60 60 60"\n'
        "    fallthrough\n"
        "}\n"
    )


def coredns_custom_configmap(zones: list[str]) -> dict:
    """The k3s ``kube-system/coredns-custom`` ConfigMap: one ``<zone>.override`` key per zone.

    k3s imports ``/etc/coredns/custom/*.override`` inside its ``.:53`` server block, and rewrites its own
    ``coredns`` ConfigMap on restart, so customisations belong here.
    """
    data = {f"dnsaudit-{z.strip('.')}.override": coredns_template(z) for z in zones}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "coredns-custom", "namespace": "kube-system"},
        "data": data,
    }


def corefile_with_templates(corefile: str, zones: list[str]) -> str | None:
    """``corefile`` with the template blocks inserted before the first ``forward`` line, or None.

    None when no ``forward`` line exists (the caller then shows the snippet alone).
    """
    lines = corefile.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("forward "):
            indent = line[: len(line) - len(line.lstrip())]
            block: list[str] = []
            for z in zones:
                block += [indent + t if t else t for t in coredns_template(z).splitlines()]
            return "\n".join([*lines[:i], *block, *lines[i:]]) + "\n"
    return None
