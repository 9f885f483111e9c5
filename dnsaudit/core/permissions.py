"""Every Kubernetes API permission a scan uses: the one table the reader ClusterRole and the connection
test are both derived from.

Pure data and pure functions (no Django, no client). Each :class:`Permission` row is one kind of request a
scan stage makes (``clusters/scan/stages``): the verb, API group, resource (and subresource), where it is
made (every namespace / cluster scope, or one namespace), the resource names it is limited to, whether it
is only needed for exec reads (``Cluster.allow_exec``), and what the audit loses without it.

* :func:`cluster_role_rules` turns the table into RBAC ``rules`` (one rule per resource; ``resourceNames``
  kept): ``manage.py reader-rbac`` prints them, ``deploy/base/rbac.yaml`` is its committed output.
* :data:`SELF_TEST_CHECKS` turns it into ``KubeClient.self_test``'s SelfSubjectAccessReviews (one per
  verb), the "permissions" table of the connection test.

Not in the table, because every authenticated user may do them on a default cluster (the built-in
``system:discovery``, ``system:public-info-viewer`` and ``system:basic-user`` roles): ``GET /version``,
the discovery documents (``/apis``: whether ``kyverno.io`` is served) and ``create
selfsubjectaccessreviews`` (the connection test itself). A scan never writes, watches or lists
namespaces when the cluster-wide lists are allowed (it lists namespaces only to fall back to
namespace-by-namespace lists when a cluster-wide list is forbidden).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The names ``reader-rbac`` gives the ServiceAccount, ClusterRole, ClusterRoleBinding and token Secret.
READER_NAME = "dnsaudit-reader"
READER_SECRET = f"{READER_NAME}-token"
READER_NAMESPACE = "dnsaudit"
LABELS = {"app.kubernetes.io/name": "dnsaudit", "app.kubernetes.io/component": "reader"}


@dataclass(frozen=True)
class Permission:
    """One request a scan stage makes, and what the report lacks when it is refused."""

    stage: str  # the scan stage (clusters/scan/stages/<stage>.py or the pipeline's step)
    fact: str  # the connection test's name for it
    verb: str
    group: str  # "" is the core group
    resource: str
    loss: str
    subresource: str | None = None
    namespace: str | None = None  # None: every namespace (or cluster-scoped); else only this one
    names: tuple[str, ...] | None = None  # resourceNames it is limited to (get only)
    exec_only: bool = False  # only with exec reads allowed (reader-rbac --allow-exec)

    @property
    def required(self) -> bool:
        """Needed by every scan (False: only by scans with exec reads allowed)."""
        return not self.exec_only

    @property
    def rbac_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    @property
    def permission(self) -> str:
        """``list deployments (apps) (all namespaces)``: the words the connection test shows."""
        text = f"{self.verb} {self.rbac_resource}"
        if self.group:
            text += f" ({self.group})"
        if self.names:
            text += f" named {', '.join(self.names)}"
        return text + (f" in {self.namespace}" if self.namespace else " (all namespaces)")


_WORKLOAD_LOSS = (
    "{what} cannot be listed (nor, without list on namespaces, namespace by namespace): those workloads are "
    "missing from the report."
)


def _workloads(resource: str, group: str, what: str) -> Permission:
    return Permission("workloads", resource, "list", group, resource, _WORKLOAD_LOSS.format(what=what))


#: Every permission a scan uses, in the order the stages run.
PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "nodes", "nodes", "list", "", "nodes", "Node pools, kubelet versions and architectures are unknown."
    ),
    Permission(
        "nodes",
        "kubelet configz",
        "get",
        "",
        "nodes",
        "The kubelet's resolvConf/clusterDNS/clusterDomain are assumed from the cluster's settings, not observed.",
        subresource="proxy",
    ),
    Permission(
        "workloads",
        "pods",
        "list",
        "",
        "pods",
        "No workload can be audited from running pods; images and digests are unknown.",
    ),
    _workloads("deployments", "apps", "Deployments"),
    _workloads("statefulsets", "apps", "StatefulSets"),
    _workloads("daemonsets", "apps", "DaemonSets"),
    _workloads("replicasets", "apps", "ReplicaSets (a Deployment's pods are attached through them)"),
    _workloads("jobs", "batch", "Jobs"),
    _workloads("cronjobs", "batch", "CronJobs (suspended ones included)"),
    Permission(
        "addons",
        "CoreDNS config",
        "get",
        "",
        "configmaps",
        "The CoreDNS variant and any existing template fix are unknown.",
        namespace="kube-system",
        names=("coredns", "coredns-custom", "node-local-dns"),
    ),
    Permission(
        "images",
        "service accounts",
        "list",
        "",
        "serviceaccounts",
        "Pull secrets attached to service accounts are not used: private images are inspected anonymously.",
    ),
    Permission(
        "images",
        "pull secrets",
        "get",
        "",
        "secrets",
        "Private images cannot be inspected; their libc stays unknown.",
    ),
    # The official client opens exec with a websocket GET: that needs get on pods/exec, and from
    # Kubernetes 1.35 also create (AuthorizePodWebsocketUpgradeCreatePermission).
    Permission(
        "nodefiles, verification",
        "exec reads: node files and verification",
        "get",
        "",
        "pods",
        "The nodes' search domains cannot be read in pods (they stay entered, inferred or unknown: musl "
        "workloads that inherit unknown ones are at-risk), and pods cannot be checked against the computed "
        "resolv.conf. Only used when exec reads are allowed for the cluster (off by default).",
        subresource="exec",
        exec_only=True,
    ),
    Permission(
        "nodefiles, verification",
        "exec reads (Kubernetes 1.35+)",
        "create",
        "",
        "pods",
        "On Kubernetes 1.35 and later exec reads also need create on pods/exec.",
        subresource="exec",
        exec_only=True,
    ),
)

#: What ``KubeClient.self_test`` checks, one SelfSubjectAccessReview per row:
#: (fact, verb, group, resource, subresource, namespace, what the audit loses, resource name or None).
#: A row limited to resource names is checked for its first name.
SELF_TEST_CHECKS: tuple[tuple[str, str, str, str, str | None, str | None, str, str | None], ...] = tuple(
    (p.fact, p.verb, p.group, p.resource, p.subresource, p.namespace, p.loss, p.names[0] if p.names else None)
    for p in PERMISSIONS
)


def permissions(*, allow_exec: bool = False) -> tuple[Permission, ...]:
    """The rows a scan uses: without ``allow_exec``, the exec-only ones are left out."""
    return tuple(p for p in PERMISSIONS if allow_exec or not p.exec_only)


def cluster_role_rules(*, allow_exec: bool = False) -> list[dict]:
    """RBAC PolicyRules granting exactly :func:`permissions`: one rule per (group, resource, names), with
    the verbs of its rows, in table order."""
    rules: dict[tuple, dict] = {}
    for p in permissions(allow_exec=allow_exec):
        key = (p.group, p.rbac_resource, p.names)
        rule = rules.get(key)
        if rule is None:
            rule = {"apiGroups": [p.group], "resources": [p.rbac_resource], "verbs": []}
            if p.names:
                rule["resourceNames"] = list(p.names)
            rules[key] = rule
        if p.verb not in rule["verbs"]:
            rule["verbs"].append(p.verb)
    for rule in rules.values():
        rule["verbs"].sort()
    return list(rules.values())


def reader_objects(
    namespace: str = READER_NAMESPACE, *, allow_exec: bool = False, token_secret: bool = True
) -> list[dict]:
    """ServiceAccount, ClusterRole, ClusterRoleBinding and (``token_secret``) a long-lived token Secret."""
    labels = dict(LABELS)
    objs: list[dict] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": READER_NAME, "namespace": namespace, "labels": labels},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": READER_NAME, "labels": labels},
            "rules": cluster_role_rules(allow_exec=allow_exec),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": READER_NAME, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": READER_NAME},
            "subjects": [{"kind": "ServiceAccount", "name": READER_NAME, "namespace": namespace}],
        },
    ]
    if token_secret:
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/service-account-token",
                "metadata": {
                    "name": READER_SECRET,
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": {"kubernetes.io/service-account.name": READER_NAME},
                },
            }
        )
    return objs


def kubeconfig_steps(namespace: str = READER_NAMESPACE, cluster: str = "my-cluster") -> str:
    """The shell steps that turn the reader ServiceAccount into a kubeconfig dnsaudit accepts (a token and
    the cluster's CA and server: no exec plugin). Run them where ``kubectl`` already reaches the cluster
    (an EKS/GKE/AKS kubeconfig with its exec plugin is fine there)."""
    ns = namespace
    return f"""\
# 1. In the cluster to audit (as an admin): a read-only ServiceAccount and its ClusterRole.
kubectl create namespace {ns}
python manage.py reader-rbac --namespace {ns} | kubectl apply -f -
#    (add --allow-exec to also grant get/create on pods/exec for exec reads)

# 2. Its token: a bound token (renew before it expires; clusters may cap --duration) ...
TOKEN=$(kubectl create token {READER_NAME} -n {ns} --duration=8760h)
#    ... or the long-lived token of the Secret reader-rbac created (revoked by deleting the Secret):
TOKEN=$(kubectl get secret {READER_SECRET} -n {ns} -o jsonpath='{{.data.token}}' | base64 -d)

# 3. The API server (from the kubeconfig kubectl uses now) and the cluster's CA (the Secret's ca.crt):
SERVER=$(kubectl config view --minify --raw -o jsonpath='{{.clusters[0].cluster.server}}')
CA=$(kubectl get secret {READER_SECRET} -n {ns} -o jsonpath='{{.data.ca\\.crt}}')

# 4. A kubeconfig with only data in it, and register it:
cat > {cluster}.kubeconfig <<EOF
apiVersion: v1
kind: Config
clusters:
- name: {cluster}
  cluster: {{server: "$SERVER", certificate-authority-data: "$CA"}}
users:
- name: {READER_NAME}
  user: {{token: "$TOKEN"}}
contexts:
- name: {cluster}
  context: {{cluster: {cluster}, user: {READER_NAME}}}
current-context: {cluster}
EOF
python manage.py add-cluster --kubeconfig {cluster}.kubeconfig --name {cluster}
#    (or upload {cluster}.kubeconfig on the Add cluster page)
"""
