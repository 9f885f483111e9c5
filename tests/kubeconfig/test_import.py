"""clusters.registry.import_kubeconfig / load_context: all-or-nothing imports, names, encryption at rest."""

from __future__ import annotations

import base64

import pytest
from django.db import connection

from clusters import crypto
from clusters.models import Cluster
from clusters.registry import ImportResult, KubeconfigError, RegistryError, import_kubeconfig, load_context
from dnsaudit.core.kubeconfig import parse_kubeconfig

from .factory import PASSWORD, SERVER, TOKEN, add_context, b64, cert_user, doc, dump, key_material, pki

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fernet_keys")]


def three_contexts() -> dict:
    d = add_context(doc(), doc(context_name="dev", cluster_name="dev-c", user_name="dev-u", user=cert_user()))
    return add_context(
        d,
        doc(
            context_name="lab",
            cluster_name="lab-c",
            user_name="lab-u",
            cluster={"server": "https://127.0.0.2:6443", "insecure-skip-tls-verify": True},
        ),
    )


def raw_column_values() -> list[str]:
    """What the database really holds (bypassing the ORM), every column of every cluster row as text."""
    with connection.cursor() as cur:
        cur.execute(f"SELECT * FROM {Cluster._meta.db_table}")
        return [str(v) for row in cur.fetchall() for v in row]


def test_token_kubeconfig_imports_one_cluster_named_after_the_context():
    result = import_kubeconfig(dump(doc()).encode(), notes="first")
    assert isinstance(result, ImportResult)
    [cluster] = result.clusters
    cluster.refresh_from_db()
    assert (cluster.name, cluster.context, cluster.server, cluster.notes) == ("prod", "prod", SERVER, "first")
    assert cluster.summary["auth_kind"] == "token"
    assert cluster.summary["ca_fingerprint_sha256"]
    assert result.warnings == []


def test_client_certificate_kubeconfig_imports():
    [cluster] = import_kubeconfig(dump(doc(user=cert_user())), name="certs").clusters
    assert cluster.name == "certs"
    assert cluster.summary["auth_kind"] == "client-certificate"
    assert load_context(cluster).client_key_data.startswith(b"-----BEGIN")


def test_insecure_kubeconfig_imports_with_a_visible_warning_kept_in_the_summary():
    result = import_kubeconfig(dump(doc(cluster={"server": SERVER, "insecure-skip-tls-verify": True})))
    [cluster] = result.clusters
    assert any("insecure-skip-tls-verify" in w for w in result.warnings)
    assert cluster.summary["insecure_skip_tls_verify"] is True
    assert cluster.summary["warnings"] == result.warnings


def test_demo_flag_is_stored():
    [cluster] = import_kubeconfig(dump(doc()), is_demo=True).clusters
    assert Cluster.objects.get(pk=cluster.pk).is_demo is True


def test_all_contexts_imports_one_cluster_per_context():
    result = import_kubeconfig(dump(three_contexts()), all_contexts=True)
    assert [c.name for c in result.clusters] == ["prod", "dev", "lab"]
    assert sorted(Cluster.objects.values_list("context", flat=True)) == ["dev", "lab", "prod"]
    assert load_context(Cluster.objects.get(name="dev")).auth_kind == "client-certificate"
    assert any("lab-c" in w for w in result.warnings)


def test_all_contexts_with_name_prefixes_each_context():
    result = import_kubeconfig(dump(three_contexts()), all_contexts=True, name="acme")
    assert [c.name for c in result.clusters] == ["acme-prod", "acme-dev", "acme-lab"]


def test_named_context_is_imported_and_others_ignored():
    [cluster] = import_kubeconfig(dump(three_contexts()), context="dev").clusters
    assert (cluster.name, cluster.context) == ("dev", "dev")
    assert Cluster.objects.count() == 1


def test_context_names_are_slugified():
    d = doc(context_name="arn:aws:eks:eu-west-1:123456789012:cluster/Prod_1", current=None)
    [cluster] = import_kubeconfig(dump(d)).clusters
    assert cluster.name == "arn-aws-eks-eu-west-1-123456789012-cluster-prod_1"
    assert cluster.context == "arn:aws:eks:eu-west-1:123456789012:cluster/Prod_1"


def test_name_clash_is_refused_and_name_keeps_two_kubeconfigs_apart():
    import_kubeconfig(dump(doc()))
    with pytest.raises(
        RegistryError, match=r"a cluster named 'prod' already exists; choose another name with --name"
    ):
        import_kubeconfig(dump(doc()))
    [second] = import_kubeconfig(dump(doc()), name="prod-eu").clusters
    assert second.name == "prod-eu"
    assert Cluster.objects.count() == 2


def test_a_clash_on_one_context_stores_none_of_all_contexts():
    import_kubeconfig(dump(doc(context_name="lab", current="lab")))
    with pytest.raises(RegistryError, match="'lab' already exists"):
        import_kubeconfig(dump(three_contexts()), all_contexts=True)
    assert list(Cluster.objects.values_list("name", flat=True)) == ["lab"]


def test_one_hostile_context_stores_none_of_all_contexts():
    d = add_context(
        doc(), doc(context_name="eks", cluster_name="e", user_name="e", user={"exec": {"command": "aws"}})
    )
    with pytest.raises(KubeconfigError, match="refused: user 'e' sets exec"):
        import_kubeconfig(dump(d), all_contexts=True)
    assert Cluster.objects.count() == 0


@pytest.mark.parametrize(
    ("data", "kwargs", "expected"),
    [
        (b"\xff\xfe\x00", {}, "not UTF-8"),
        ("a: [", {}, "not valid YAML"),
        ("a: &x 1\nb: *x\n", {}, "anchors and aliases"),
        (dump(doc()), {"context": "nope"}, "no context named 'nope'"),
        (dump(doc(cluster={"certificate-authority-data": "xx"})), {}, "has no server"),
        (
            dump(doc(cluster={"server": SERVER, "certificate-authority-data": b64(b"x")})),
            {},
            "PEM certificate",
        ),
        (dump(doc(user={"tokenFile": "/etc/shadow"})), {}, "tokenFile"),
        (dump(doc()), {"name": "Bad Name!"}, "is not valid"),
        (dump(doc()), {"context": "prod", "all_contexts": True}, "not both"),
        (dump(doc(context_name="!!!", current="!!!")), {}, "choose one with --name"),
    ],
)
def test_bad_input_changes_nothing(data, kwargs, expected):
    with pytest.raises(ValueError, match=expected) as info:
        import_kubeconfig(data, **kwargs)
    assert Cluster.objects.count() == 0
    for secret in key_material():
        assert secret not in str(info.value)


def test_size_limit_comes_from_settings(settings):
    settings.DNSAUDIT_KUBECONFIG_MAX_BYTES = 100
    with pytest.raises(KubeconfigError, match="over the 100-byte limit"):
        import_kubeconfig(dump(doc()))
    assert Cluster.objects.count() == 0


def test_two_contexts_slugifying_to_one_name_are_refused():
    d = add_context(doc(context_name="Prod"), doc(context_name="prod", cluster_name="c2", user_name="u2"))
    with pytest.raises(RegistryError, match="several contexts would get the cluster name 'prod'"):
        import_kubeconfig(dump(d), all_contexts=True)
    assert Cluster.objects.count() == 0


# --- encryption at rest ------------------------------------------------------------------------------


def test_database_holds_neither_token_nor_password_nor_key():
    user = {**cert_user(), "token": TOKEN}
    import_kubeconfig(dump(doc(user=user)), name="a")
    import_kubeconfig(dump(doc(user={"username": "admin", "password": PASSWORD})), name="b")
    stored = "\n".join(raw_column_values())
    for secret in [*key_material(), b64(pki().cert_pem)[:40], "BEGIN"]:
        assert secret not in stored
    # The column is a Fernet token (version byte 0x80), not the YAML.
    for token in Cluster.objects.values_list("kubeconfig_encrypted", flat=True):
        assert base64.urlsafe_b64decode(token)[0] == 0x80


def test_stored_kubeconfig_decrypts_to_the_minimal_one_context_kubeconfig():
    [cluster] = import_kubeconfig(dump(three_contexts()), context="prod").clusters
    text = crypto.decrypt(Cluster.objects.get(pk=cluster.pk).kubeconfig_encrypted)
    kc = parse_kubeconfig(text)
    assert kc.contexts == ["prod"]
    assert kc.context("prod").token == TOKEN
    assert "dev-u" not in text and "lab-c" not in text


def test_load_context_revalidates_a_tampered_row():
    [cluster] = import_kubeconfig(dump(doc())).clusters
    hostile = dump(doc(user={"exec": {"command": "sh", "args": ["-c", "true"]}}))
    Cluster.objects.filter(pk=cluster.pk).update(kubeconfig_encrypted=crypto.encrypt(hostile))
    cluster.refresh_from_db()
    with pytest.raises(KubeconfigError, match="sets exec"):
        load_context(cluster)


def test_load_context_with_a_lost_key_says_so(settings):
    [cluster] = import_kubeconfig(dump(doc())).clusters
    settings.DNSAUDIT_FERNET_KEYS = [crypto.generate_key()]
    with pytest.raises(crypto.DecryptionError, match="DNSAUDIT_FERNET_KEYS"):
        load_context(cluster)


def test_import_result_and_cluster_str_show_no_secret():
    result = import_kubeconfig(dump(doc(user={**cert_user(), "token": TOKEN})))
    [cluster] = result.clusters
    for text in (str(cluster), repr(cluster), repr(result), str(cluster.summary)):
        for secret in key_material():
            assert secret not in text
