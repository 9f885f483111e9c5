"""Users, RBAC-like allow rules and client-certificate issuing for the test API server."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Rule:
    """An allow rule, like one RBAC PolicyRule bound by a (Cluster)RoleBinding.

    ``resources`` entries are ``resource`` or ``resource/subresource`` (``"*"`` matches anything,
    ``"*/scale"``-style forms are not supported). ``namespaces=None`` is a ClusterRoleBinding (every
    namespace and the cluster scope); a tuple is RoleBindings in exactly those namespaces (cluster-wide
    lists are then forbidden, as on a real cluster). ``names`` restricts to resourceNames (get only).
    """

    verbs: tuple[str, ...]
    groups: tuple[str, ...] = ("",)
    resources: tuple[str, ...] = ("*",)
    namespaces: tuple[str, ...] | None = None
    names: tuple[str, ...] | None = None

    def allows(self, verb: str, group: str, resource: str, namespace: str | None, name: str | None) -> bool:
        if "*" not in self.verbs and verb not in self.verbs:
            return False
        if "*" not in self.groups and group not in self.groups:
            return False
        if "*" not in self.resources and resource not in self.resources:
            return False
        if self.namespaces is not None and (namespace is None or namespace not in self.namespaces):
            return False
        return not (self.names is not None and (name is None or name not in self.names))


#: cluster-admin.
ADMIN_RULES: tuple[Rule, ...] = (Rule(("*",), ("*",), ("*",)),)

_READ = ("get", "list", "watch")
_READ_RESOURCES = (
    "pods",
    "nodes",
    "namespaces",
    "configmaps",
    "services",
    "serviceaccounts",
    "deployments",
    "replicasets",
    "statefulsets",
    "daemonsets",
    "jobs",
    "cronjobs",
    "customresourcedefinitions",
    "clusterpolicies",
    "policies",
)

#: What dnsaudit asks an admin to grant: read workloads, nodes, CRDs, ConfigMaps, pull secrets and
#: ``nodes/proxy`` (for configz). Everything else (exec, writes) is denied.
AUDITOR_RULES: tuple[Rule, ...] = (
    Rule(_READ, ("", "apps", "batch", "apiextensions.k8s.io", "kyverno.io"), _READ_RESOURCES),
    Rule(("get",), ("",), ("secrets",)),
    Rule(("get",), ("",), ("nodes/proxy",)),
)

#: A typical managed-cluster "view" role: reads, but no secrets and no nodes/proxy.
VIEW_RULES: tuple[Rule, ...] = (
    Rule(_READ, ("", "apps", "batch", "apiextensions.k8s.io", "kyverno.io"), _READ_RESOURCES),
)


@dataclass
class User:
    name: str
    groups: tuple[str, ...] = ("system:authenticated",)
    token: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    rules: tuple[Rule, ...] = ADMIN_RULES
    extra: dict = field(default_factory=dict)

    def allowed(
        self, verb: str, group: str, resource: str, namespace: str | None = None, name: str | None = None
    ) -> bool:
        return any(r.allows(verb, group, resource, namespace, name) for r in self.rules)


def new_token() -> str:
    """A bearer token shaped like a ServiceAccount token's length (opaque random)."""
    return secrets.token_urlsafe(40)


def issue_client_cert(
    ca_cert_pem: bytes, ca_key_pem: bytes, user: str, groups: tuple[str, ...]
) -> tuple[bytes, bytes]:
    """A client certificate for ``user`` (CN) and ``groups`` (one O each), signed by the server's CA.

    Kubernetes maps CN to the user name and every O to a group; trustme allows one O only, hence this.
    """
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups if g != "system:authenticated"]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, user))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
