"""``manage.py reader-rbac``: the ClusterRole is exactly what a scan reads.

A demo cluster of the test API server is scanned as a user whose RBAC rules are the printed ClusterRole's
(converted rule by rule): no request of the scan is refused. Removing any one rule makes a stage report
the missing permission, so the role grants nothing the scan does not use; and the connection test checks
the same table.
"""

from __future__ import annotations

import io
import json

import pytest
import yaml
from django.core.management import call_command

from clusters.models import Scan
from dnsaudit.core import permissions as perms
from dnsaudit.core.kubeconfig import parse_kubeconfig
from dnsaudit.testbed.fakekube.auth import Rule
from tests.scans.conftest import _scan_environment, upstream_dns  # noqa: F401  (the scan tests' setup)
from tests.scans.helpers import register, run_scan
from tests.web.conftest import client_as, fast_password_hashing, users  # noqa: F401

pytestmark = pytest.mark.django_db

CLUSTER = "openstack-prod"  # nodes, pull secrets on service accounts, CoreDNS, exec-readable node files


def printed(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("reader-rbac", *args, stdout=out)
    return list(yaml.safe_load_all(out.getvalue()))


def role_of(docs: list[dict]) -> dict:
    return next(d for d in docs if d["kind"] == "ClusterRole")


def to_rules(rbac_rules: list[dict]) -> tuple[Rule, ...]:
    """A ClusterRole's rules (bound by a ClusterRoleBinding) as the test API server's ``Rule`` objects."""
    out = []
    for r in rbac_rules:
        assert set(r) <= {"apiGroups", "resources", "verbs", "resourceNames"}, r
        names = r.get("resourceNames")
        out.append(
            Rule(
                tuple(r["verbs"]),
                tuple(r["apiGroups"]),
                tuple(r["resources"]),
                names=tuple(names) if names else None,
            )
        )
    return tuple(out)


def forbidden(scan: Scan, resource: str = "") -> list[dict]:
    """The scan's problems that report a refused request (of ``resource``, e.g. ``nodes/proxy``)."""
    out = []
    for p in scan.problems:
        text = json.dumps(p)
        if ("forbidden" in text.lower() or "403" in text) and resource in text:
            out.append(p)
    return out


def scan_as(fakekube_fleet, upstream_dns, rules, *, allow_exec: bool, name: str) -> Scan:  # noqa: F811
    fake, spec = fakekube_fleet[CLUSTER]
    fake.add_user(name, rules=rules)
    cluster = register(fake, spec, upstream_dns(spec), user=name, name=name, allow_exec=allow_exec)
    return run_scan(cluster)


def test_the_printed_yaml_has_the_four_objects_and_exec_only_with_allow_exec():
    docs = printed("--namespace", "audit")
    assert [d["kind"] for d in docs] == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Secret"]
    sa, role, binding, secret = docs
    assert sa["metadata"] == {**sa["metadata"], "name": "dnsaudit-reader", "namespace": "audit"}
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "dnsaudit-reader", "namespace": "audit"}
    ]
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "dnsaudit-reader"}
    verbs = {v for r in role["rules"] for v in r["verbs"]}
    assert verbs == {"get", "list"}  # read-only: no watch, no write, no wildcard
    assert all("*" not in json.dumps(r) for r in role["rules"])
    assert not any("exec" in res for r in role["rules"] for res in r["resources"])

    with_exec = role_of(printed("--allow-exec"))["rules"]
    added = [r for r in with_exec if r not in role["rules"]]
    assert added == [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]}]
    assert len(with_exec) == len(role["rules"]) + 1
    assert [d["kind"] for d in printed("--without-token-secret")] == [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
    ]


def test_every_printed_object_is_valid_kubernetes():
    from tests.audit.checks import validate_k8s

    for doc in printed("--allow-exec"):
        validate_k8s(doc)


def test_the_connection_test_checks_the_same_table():
    from dnsaudit.boundary.kube import SELF_TEST_CHECKS

    assert tuple(c[:7] for c in SELF_TEST_CHECKS) == tuple(c[:7] for c in perms.SELF_TEST_CHECKS)
    granted = {
        (g, res, v) for r in perms.cluster_role_rules(allow_exec=True) for g in r["apiGroups"]
        for res in r["resources"] for v in r["verbs"]
    }  # fmt: skip
    checked = {(c[2], c[3] + (f"/{c[4]}" if c[4] else ""), c[1]) for c in perms.SELF_TEST_CHECKS}
    assert granted == checked


def test_help_prints_how_to_make_a_kubeconfig_from_the_service_account():
    from django.core.management import load_command_class

    cmd = load_command_class("clusters", "reader-rbac")
    text = cmd.create_parser("manage.py", "reader-rbac").format_help()
    assert "kubectl create token dnsaudit-reader -n dnsaudit --duration=" in text
    assert "dnsaudit-reader-token" in text and "certificate-authority-data" in text
    assert "add-cluster --kubeconfig" in text


def test_the_kubeconfig_the_steps_write_is_accepted(fakekube):
    """Step 4's heredoc, filled with a server, a CA and a token, is a kubeconfig dnsaudit accepts."""
    import base64
    import re

    steps = perms.kubeconfig_steps("audit", "prod")
    heredoc = re.search(r"<<EOF\n(.*?)\nEOF\n", steps, re.S).group(1)
    user = fakekube.add_user("reader", rules=(), cert=False)
    text = (
        heredoc.replace("$SERVER", fakekube.url)
        .replace("$CA", base64.b64encode(fakekube.ca_pem).decode())
        .replace("$TOKEN", user.token)
    )
    ctx = parse_kubeconfig(text).context("prod")
    assert ctx.token == user.token and ctx.server == fakekube.url and ctx.ca_data


@pytest.mark.parametrize("allow_exec", [False, True], ids=["reads", "with-exec"])
def test_a_scan_as_the_reader_role_is_never_refused(fakekube_fleet, upstream_dns, allow_exec):  # noqa: F811
    args = ("--allow-exec",) if allow_exec else ()
    rules = to_rules(role_of(printed(*args))["rules"])
    scan = scan_as(fakekube_fleet, upstream_dns, rules, allow_exec=allow_exec, name="reader")
    assert scan.status in (Scan.SUCCEEDED, Scan.PARTIAL), scan.error
    assert forbidden(scan) == [], scan.problems
    if allow_exec:
        assert any(p.observed.get("node_resolv_conf") for p in scan.node_pools.all()), "exec reads ran"


def _rule_ids() -> list[str]:
    return [
        r["resources"][0] + ("(" + ",".join(r["resourceNames"]) + ")" if "resourceNames" in r else "")
        for r in perms.cluster_role_rules(allow_exec=True)
    ]


@pytest.mark.parametrize("index", range(len(perms.cluster_role_rules(allow_exec=True))), ids=_rule_ids())
def test_removing_any_one_rule_makes_a_stage_report_the_missing_permission(
    fakekube_fleet,
    upstream_dns,  # noqa: F811
    index,
):
    role = perms.cluster_role_rules(allow_exec=True)
    removed = role[index]
    rules = to_rules(role[:index] + role[index + 1 :])
    scan = scan_as(fakekube_fleet, upstream_dns, rules, allow_exec=True, name=f"without-{index}")
    assert forbidden(scan, removed["resources"][0]), f"nothing reported without {removed}: {scan.problems}"


@pytest.mark.parametrize(
    "user",
    [
        {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws", "args": ["eks"]}},
        {"auth-provider": {"name": "gcp", "config": {}}},
    ],
    ids=["exec", "auth-provider"],
)
def test_the_add_page_shows_how_to_get_a_read_only_token_when_a_plugin_is_refused(client_as, user):  # noqa: F811
    from django.urls import reverse

    from tests.kubeconfig import factory as kc

    admin = client_as("admin")
    page = admin.post(reverse("clusters:add"), {"kubeconfig_text": kc.dump(kc.doc(user=user)), "name": "eks"})
    assert page.status_code == 400
    html = page.content.decode()
    assert "this is how to give dnsaudit its own read-only token" in html.lower()
    assert "kubectl create token dnsaudit-reader -n dnsaudit --duration=" in html
    assert "reader-rbac" in html
    # Other refusals do not show it.
    other = admin.post(reverse("clusters:add"), {"kubeconfig_text": "not: [a, kubeconfig", "name": "x"})
    assert other.status_code == 400 and "read-only token" not in other.content.decode()
