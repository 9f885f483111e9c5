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
import hashlib
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
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[misc,valid-type]
    """``safe_dump`` rules, with multi-line strings as literal blocks (``|``) so files read as written."""


def _str_representer(dumper: Any, data: str) -> Any:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_representer)


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
    return yaml.dump_all(objs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


# --- names from a cluster are data ------------------------------------------------------------------

_SAFE_PART = re.compile(r"[^A-Za-z0-9._-]+")
_COMMENT_UNSAFE = re.compile(r"[^A-Za-z0-9 ._,:;/@+=()\[\]-]")


def safe_part(text: str) -> str:
    """One file-name segment for a cluster string (namespace, kind, name, pool).

    Kubernetes names are already safe and come back unchanged; anything else (a hostile owner reference,
    a name with ``/``, ``..``, newlines, quotes) is reduced to ``[A-Za-z0-9._-]`` and given a short hash of
    the original, so two different hostile names never share a file.
    """
    cleaned = _SAFE_PART.sub("_", text).strip("._")[:100]
    if cleaned == text and cleaned:
        return cleaned
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned or 'unnamed'}-{digest}"


def shell_comment(text: str) -> str:
    """``text`` made fit for a ``#`` comment line: one line, nothing but plain printable characters
    (every other character becomes ``?``). Comments never hold a raw cluster string."""
    return _COMMENT_UNSAFE.sub("?", text)[:200]


def heredoc(command: str, body: str) -> str:
    """``command <<'DELIM'`` + ``body`` + ``DELIM``: a quoted here-document (no expansion at all) whose
    delimiter does not occur as a line of ``body``."""
    delim = "DNSAUDIT_EOF"
    lines = set(body.splitlines())
    n = 0
    while delim in lines:
        n += 1
        delim = f"DNSAUDIT_EOF_{n}"
    text = body if body.endswith("\n") else body + "\n"
    return f"{command} <<'{delim}'\n{text}{delim}"


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
        # The comment names no cluster string (names are data: they only appear shell-quoted).
        note = "# The DNS fields of this object are immutable: this deletes and recreates it" + (
            " (a Job with a generated selector may need the manifest fixed and re-applied instead)"
            if w.kind == "Job"
            else ""
        )
        return f"{note}\n{get} | {local} | kubectl replace --force -f -"
    return shlex.join(["kubectl", "patch", resource, w.name, *ns, "--type", "strategic", "-p", payload])


def patch_file_name(w: Workload) -> str:
    """``<kind>-<name>.yaml`` (kind in lower case; the bundle puts it under ``patches/<ns>/``)."""
    return patch_file_for(w.kind, w.name)


def patch_file_for(kind: str, name: str) -> str:
    return f"{safe_part(kind.lower())}-{safe_part(name)}.yaml"


def patch_path_for(namespace: str, kind: str, name: str) -> str:
    """``<ns>/<kind>-<name>.yaml``: where a workload's patch lives under ``patches/`` in the bundle and
    under ``audit-manifests --write-patches DIR``."""
    return f"{safe_part(namespace or 'default')}/{patch_file_for(kind, name)}"


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
    """A Kustomization built as data (dump it with :func:`dump_yaml`, never by string formatting)."""
    out: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
    if resources is not None:
        out["resources"] = resources
    out["patches"] = entries
    return out


def target_of(doc: dict) -> dict:
    """A kustomize patch ``target`` for a patch document (its apiVersion, kind, name, namespace)."""
    group, _, version = str(doc.get("apiVersion") or "").rpartition("/")
    meta = doc.get("metadata") or {}
    target: dict[str, Any] = {}
    if group:
        target["group"] = group
    target["version"] = version
    target["kind"] = str(doc.get("kind") or "")
    target["name"] = str(meta.get("name") or "")
    if meta.get("namespace"):
        target["namespace"] = str(meta["namespace"])
    return target


# --- shell commands from patch documents (data in, quoted words out) -------------------------------


def _doc_identity(doc: dict) -> tuple[str, str, str]:
    meta = doc.get("metadata") or {}
    return str(doc.get("kind") or ""), str(meta.get("name") or ""), str(meta.get("namespace") or "")


def patch_file_command(doc: dict, path: str) -> str:
    """The kubectl command(s) applying the strategic-merge patch document ``doc`` stored at ``path``.

    Mutable kinds: ``kubectl patch``; a Pod or Job is read, patched locally and replaced (recreated)."""
    kind, name, namespace = _doc_identity(doc)
    resource = KUBECTL_RESOURCE.get(kind, kind.lower())
    ns = ["-n", namespace] if namespace else []
    if kind in IMMUTABLE_KINDS:
        get = shlex.join(["kubectl", "get", resource, name, *ns, "-o", "yaml"])
        local = shlex.join(
            [
                "kubectl",
                "patch",
                "--local",
                "-f",
                "-",
                "--type",
                "strategic",
                "--patch-file",
                path,
                "-o",
                "yaml",
            ]
        )
        return f"{get} | {local} | kubectl replace --force -f -"
    return shlex.join(["kubectl", "patch", resource, name, *ns, "--type", "strategic", "--patch-file", path])


def patch_inline_command(doc: dict) -> str:
    """Like :func:`patch_file_command` with the patch inline (``-p '<json>'``): a self-contained command."""
    kind, name, namespace = _doc_identity(doc)
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    if kind == "Pod" and "labels" in (doc.get("metadata") or {}):
        body["metadata"] = {"labels": doc["metadata"]["labels"]}
    payload = json.dumps(body, separators=(",", ":"), sort_keys=False)
    resource = KUBECTL_RESOURCE.get(kind, kind.lower())
    ns = ["-n", namespace] if namespace else []
    if kind in IMMUTABLE_KINDS:
        get = shlex.join(["kubectl", "get", resource, name, *ns, "-o", "yaml"])
        local = shlex.join(
            ["kubectl", "patch", "--local", "-f", "-", "--type", "strategic", "-p", payload, "-o", "yaml"]
        )
        return f"{get} | {local} | kubectl replace --force -f -"
    return shlex.join(["kubectl", "patch", resource, name, *ns, "--type", "strategic", "-p", payload])


def load_patch_document(text: str) -> dict | None:
    """A stored patch YAML as a document with a workload identity, or None when it is not one."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(doc, dict):
        return None
    kind, name, _ = _doc_identity(doc)
    if not kind or not name or not isinstance(doc.get("apiVersion"), str):
        return None
    return doc


API_VERSION_GUESS = {"Pod": "v1", "Job": "batch/v1", "CronJob": "batch/v1"}


def complete_patch_document(text: str, identity: dict | None = None) -> dict | None:
    """A stored workload patch YAML as a full patch document; ``apiVersion``/``kind``/``metadata`` missing
    from it (rows stored by older versions) are taken from ``identity`` (a report: namespace, kind, name).
    None when the text holds no ``spec`` patch."""
    identity = identity or {}
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("spec"), dict):
        return None
    kind = str(doc.get("kind") or identity.get("kind") or "")
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    namespace = meta.get("namespace") or identity.get("namespace")
    out = {
        "apiVersion": str(doc.get("apiVersion") or API_VERSION_GUESS.get(kind, "apps/v1")),
        "kind": kind,
        "metadata": {
            "name": str(meta.get("name") or identity.get("name") or ""),
            **({"namespace": str(namespace)} if namespace else {}),
            **({"labels": meta["labels"]} if isinstance(meta.get("labels"), dict) else {}),
        },
        **{k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")},
    }
    return out if out["kind"] and out["metadata"]["name"] else None


def remedy_script(rem: dict, identity: dict | None = None) -> str | None:
    """A standalone ``.sh`` for one stored remediation (``Remedy.to_dict()``), or None when it has none.

    Built from the remediation's *data* (its patch document, policy, ConfigMap), never from stored command
    text: every cluster string is a shell-quoted word or inside a quoted here-document, and comments hold
    only fixed text. ``dnsConfig``: the patch inline; ``kyverno``: the policy, then the workload's label;
    ``coredns`` (k3s form): the ConfigMap, then a CoreDNS restart.
    """
    kind = rem.get("kind")
    files = rem.get("extra_files") or {}
    lines: list[str] = []
    if kind == "dnsConfig":
        doc = complete_patch_document(rem.get("patch_yaml") or "", identity)
        if doc is None:
            return None
        lines.append("# Sets dnsPolicy None and a full dnsConfig on the workload (a rollout follows).")
        if doc.get("kind") in IMMUTABLE_KINDS:
            lines.append("# The DNS fields of this object are immutable: this deletes and recreates it.")
        lines.append(patch_inline_command(doc))
    elif kind == "kyverno":
        policy = files.get(KYVERNO_POLICY_FILE) or rem.get("patch_yaml") or ""
        if not policy:
            return None
        lines.append("# The ClusterPolicy, then the label that puts the workload in its scope.")
        lines.append(heredoc("kubectl apply -f -", policy))
        for path, text in sorted(files.items()):
            if path.startswith("kyverno/labels/"):
                doc = load_patch_document(text)
                if doc is not None:
                    lines.append(patch_inline_command(doc))
    elif kind == "coredns":
        cm = files.get("coredns/k3s-coredns-custom.yaml")
        if not cm or "k3s" not in (rem.get("kubectl") or ""):
            return None
        lines.append("# k3s: the coredns-custom ConfigMap, then CoreDNS restarted to read it.")
        lines.append(heredoc("kubectl apply -f -", cm))
        lines.append("kubectl -n kube-system rollout restart deployment coredns")
    else:
        return None
    return "#!/bin/sh\n# Generated by dnsaudit.\nset -eu\n" + "\n".join(lines) + "\n"


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


#: The label the bundle puts on the pod template of each workload the Kyverno policy is for.
KYVERNO_LABEL = ("dnsaudit.io/musl-dns", "cluster-only")
KYVERNO_POLICY_NAME = "dnsaudit-musl-dns-config"
KYVERNO_POLICY_FILE = "kyverno/clusterpolicy.yaml"


def exact_images(images: list[str]) -> list[str]:
    """The image references as Pods carry them in ``spec.containers[].image`` (sorted, unique, no wildcard:
    a reference the scan judged musl, tag or digest as written in the pod template)."""
    return sorted({i for i in images if i and "*" not in i and "?" not in i})


def kyverno_policy(
    cluster_dns: list[str],
    cluster_domain: str,
    images: list[str],
    *,
    label: tuple[str, str] = KYVERNO_LABEL,
    name: str = KYVERNO_POLICY_NAME,
) -> dict:
    """A Kyverno ClusterPolicy that gives new musl Pods a full dnsConfig with dnsPolicy None.

    Scope (all must hold): a Pod at CREATE, carrying ``label`` (which the bundle puts on the pod template of
    exactly the workloads the scan found needing it), one of whose containers or init containers runs one of
    ``images`` — the exact references the scan judged musl (never a wildcard, so a glibc or static image
    cannot match) — not hostNetwork, with dnsPolicy ClusterFirst (unset counts as ClusterFirst: ``None``,
    ``Default`` and ``ClusterFirstWithHostNet`` Pods are left alone), outside kube-system. Searches are built
    from ``{{request.namespace}}`` (reliable at admission; a controller's Pod may have no
    ``metadata.namespace`` yet).
    """
    refs = exact_images(images)
    searches = [f"{{{{request.namespace}}}}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
    preconditions: dict[str, list[dict]] = {
        "all": [
            {"key": "{{ request.object.spec.hostNetwork || `false` }}", "operator": "Equals", "value": False},
            {
                "key": "{{ request.object.spec.dnsPolicy || 'ClusterFirst' }}",
                "operator": "Equals",
                "value": "ClusterFirst",
            },
        ],
        "any": [
            {"key": "{{ request.object.spec.containers[].image }}", "operator": "AnyIn", "value": refs},
            {
                "key": "{{ request.object.spec.initContainers[].image || `[]` }}",
                "operator": "AnyIn",
                "value": refs,
            },
        ],
    }
    match_res: dict[str, Any] = {
        "kinds": ["Pod"],
        "operations": ["CREATE"],
        "selector": {"matchLabels": {label[0]: label[1]}},
    }
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": name,
            "annotations": {
                "policies.kyverno.io/title": "Full dnsConfig for musl (Alpine) Pods",
                "policies.kyverno.io/description": (
                    "musl stops the DNS search at the first answer that is not NXDOMAIN. This policy gives "
                    f"new Pods labelled {label[0]}={label[1]} that run an image dnsaudit found to use musl "
                    "dnsPolicy None with only the cluster search domains, so the node's extra search domains "
                    "are not inherited. Generated by dnsaudit."
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


def label_patch_document(w: Workload, label: tuple[str, str] = KYVERNO_LABEL) -> dict:
    """The strategic-merge patch adding ``label`` to the Pods of ``w`` (its pod template's labels; a bare
    Pod's own labels). Changing the template rolls the Pods, and the new ones pass the Kyverno policy."""
    path = pod_spec_path(w)
    meta: dict[str, Any] = {"name": w.name}
    if w.namespace:
        meta["namespace"] = w.namespace
    labels = {label[0]: label[1]}
    doc: dict[str, Any] = {"apiVersion": w.api_version, "kind": w.kind, "metadata": meta}
    if path == ("spec",):  # a bare Pod: its own labels
        doc["metadata"] = {**meta, "labels": labels}
        return doc
    template_path = path[:-1]  # ... .template
    return {**doc, **nest((*template_path, "metadata"), {"labels": labels})}


# --- CoreDNS -----------------------------------------------------------------------------------------


_ZONE_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def is_dns_zone(zone: str) -> bool:
    """Whether ``zone`` (trailing dot allowed) is a DNS name fit for a Corefile: labels of letters, digits,
    ``-`` and ``_`` (1-63 characters, no leading/trailing hyphen), 253 characters at most. A search domain
    read from a cluster that is anything else (quotes, braces, spaces, newlines) is refused."""
    z = zone[:-1] if zone.endswith(".") else zone
    if not z or len(z) > 253:
        return False
    return all(_ZONE_LABEL.match(label) for label in z.split("."))


def coredns_template(zone: str) -> str:
    """A CoreDNS ``template`` block answering NXDOMAIN for search-expanded names under ``zone``.

    The ``match`` regex requires at least two labels before the zone (``example.com.<zone>.``), so a
    single-label name such as ``node-1.<zone>`` still falls through to the next plugin (``forward``).
    ValueError when ``zone`` is not a DNS name (:func:`is_dns_zone`).
    """
    if not is_dns_zone(zone):
        raise ValueError(f"not a DNS name, refused in a Corefile: {zone!r}")
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
    data = {f"dnsaudit-{z.strip('.')}.override": coredns_template(z) for z in zones if is_dns_zone(z)}
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
                if is_dns_zone(z):
                    block += [indent + t if t else t for t in coredns_template(z).splitlines()]
            return "\n".join([*lines[:i], *block, *lines[i:]]) + "\n"
    return None
