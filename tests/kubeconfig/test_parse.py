"""dnsaudit.core.kubeconfig: what is accepted, what is refused and with which message (pure, no Django)."""

from __future__ import annotations

import base64
import hashlib
import ssl

import pytest
import yaml

from dnsaudit.core.kubeconfig import KubeconfigError, minimal_kubeconfig, parse_kubeconfig, summarize

from .factory import PASSWORD, SERVER, TOKEN, add_context, b64, cert_user, doc, dump, key_material, pki


def refused(text: str | bytes, context: str | None = "prod", **kw) -> str:
    """Parse and resolve ``context``; return the refusal message (fails the test if accepted)."""
    with pytest.raises(KubeconfigError) as info:
        kc = parse_kubeconfig(text, **kw)
        if context is not None:
            kc.context(context)
    message = str(info.value)
    for secret in key_material():
        assert secret not in message
    return message


# --- accepted ----------------------------------------------------------------------------------------


def test_token_user_gives_a_token_context_with_ca():
    kc = parse_kubeconfig(dump(doc()))
    ctx = kc.context("prod")
    assert kc.contexts == ["prod"]
    assert kc.current_context == "prod"
    assert (ctx.server, ctx.cluster, ctx.user, ctx.token, ctx.auth_kind) == (
        SERVER,
        "prod-cluster",
        "prod-admin",
        TOKEN,
        "token",
    )
    assert ctx.ca_data is not None and ssl.PEM_cert_to_DER_cert(
        ctx.ca_data.decode()
    ) == ssl.PEM_cert_to_DER_cert(pki().ca_pem.decode())
    assert kc.warnings_for("prod") == []


def test_client_certificate_user_keeps_cert_and_key():
    ctx = parse_kubeconfig(dump(doc(user=cert_user()))).context("prod")
    assert ctx.auth_kind == "client-certificate"
    assert b"BEGIN CERTIFICATE" in ctx.client_cert_data
    assert b"PRIVATE KEY" in ctx.client_key_data


def test_basic_auth_user_is_accepted():
    ctx = parse_kubeconfig(dump(doc(user={"username": "admin", "password": PASSWORD}))).context("prod")
    assert (ctx.auth_kind, ctx.username, ctx.password) == ("basic", "admin", PASSWORD)


def test_insecure_skip_tls_verify_is_accepted_with_a_warning():
    kc = parse_kubeconfig(dump(doc(cluster={"server": SERVER, "insecure-skip-tls-verify": True})))
    assert kc.context("prod").insecure_skip_tls_verify is True
    warnings = kc.warnings_for("prod")
    assert any("insecure-skip-tls-verify" in w and "prod-cluster" in w for w in warnings)


def test_plain_http_server_is_accepted_with_a_warning():
    kc = parse_kubeconfig(dump(doc(cluster={"server": "http://127.0.0.1:8080"})))
    assert kc.context("prod").server == "http://127.0.0.1:8080"
    assert any("plain http" in w for w in kc.warnings_for("prod"))


def test_disable_compression_and_extensions_are_fine():
    cluster = {"server": SERVER, "certificate-authority-data": b64(pki().ca_pem), "disable-compression": True}
    cluster["extensions"] = [{"name": "x", "extension": {"a": 1}}]
    kc = parse_kubeconfig(dump(doc(cluster=cluster)))
    assert kc.context("prod").server == SERVER
    assert kc.warnings_for("prod") == []


def test_unknown_fields_are_dropped_with_a_warning_naming_them():
    kc = parse_kubeconfig(dump(doc(user={"token": TOKEN, "shiny-new-field": "x"})))
    assert any("shiny-new-field" in w and "prod-admin" in w for w in kc.warnings_for("prod"))
    assert "shiny-new-field" not in minimal_kubeconfig(kc.context("prod"))


def test_expired_client_certificate_is_accepted_with_a_warning():
    p = pki()
    user = {"client-certificate-data": b64(p.expired_cert_pem), "client-key-data": b64(p.expired_key_pem)}
    kc = parse_kubeconfig(dump(doc(user=user)))
    assert any("expired on 2020-01-02" in w for w in kc.warnings_for("prod"))
    assert summarize(kc.context("prod"))["client_cert_expired"] is True


def test_utf8_bom_and_json_kubeconfigs_parse():
    import json

    assert parse_kubeconfig("\ufeff" + dump(doc())).context("prod").token == TOKEN
    assert parse_kubeconfig(json.dumps(doc()).encode()).context("prod").token == TOKEN


def test_default_context_is_current_context_or_the_only_one():
    two = add_context(doc(), doc(context_name="dev", cluster_name="dev-c", user_name="dev-u"))
    assert parse_kubeconfig(dump(two)).default_context() == "prod"
    assert parse_kubeconfig(dump(doc(current=None))).default_context() == "prod"
    two["current-context"] = ""
    with pytest.raises(KubeconfigError, match="no current-context.*--context.*'prod', 'dev'"):
        parse_kubeconfig(dump(two)).default_context()


def test_unrelated_exec_user_does_not_block_another_context():
    hostile = doc(
        context_name="eks", cluster_name="eks-c", user_name="eks-u", user={"exec": {"command": "aws"}}
    )
    kc = parse_kubeconfig(dump(add_context(doc(), hostile)))
    assert kc.context("prod").token == TOKEN
    assert "exec" in refused(dump(add_context(doc(), hostile)), "eks")


def test_minimal_kubeconfig_round_trips_and_holds_only_one_context():
    two = add_context(doc(user=cert_user()), doc(context_name="dev", cluster_name="dev-c", user_name="dev-u"))
    two["contexts"][0]["context"]["namespace"] = "team-a"
    ctx = parse_kubeconfig(dump(two)).context("prod")
    text = minimal_kubeconfig(ctx)
    again = parse_kubeconfig(text)
    assert again.contexts == ["prod"]
    assert again.context("prod") == ctx
    assert ctx.namespace == "team-a"
    assert "dev" not in yaml.safe_load(text)["contexts"][0]["name"]


# --- the sanitized summary ---------------------------------------------------------------------------


def test_summary_has_fingerprint_subject_and_no_secret():
    ctx = parse_kubeconfig(dump(doc(user=cert_user()))).context("prod")
    summary = summarize(ctx, ["w1"])
    # Independent fingerprint: stdlib PEM->DER and hashlib.
    der = ssl.PEM_cert_to_DER_cert(pki().ca_pem.decode())
    assert summary["ca_fingerprint_sha256"].replace(":", "").lower() == hashlib.sha256(der).hexdigest()
    assert "CN=kube-admin" in summary["client_cert_subject"]
    assert summary["client_cert_not_after"].startswith("3000-01-01")
    assert summary["auth_kind"] == "client-certificate"
    assert summary["warnings"] == ["w1"]
    text = repr(summary)
    for secret in key_material():
        assert secret not in text


def test_summary_of_token_and_basic_contexts_carries_no_secret():
    for user in ({"token": TOKEN}, {"username": "admin", "password": PASSWORD}):
        text = repr(summarize(parse_kubeconfig(dump(doc(user=user))).context("prod")))
        assert TOKEN not in text and PASSWORD not in text


def test_kubeconfig_repr_shows_no_secret():
    kc = parse_kubeconfig(dump(doc(user={**cert_user(), "token": TOKEN})))
    for secret in key_material():
        assert secret not in repr(kc) and secret not in str(kc)


def test_kube_context_repr_shows_no_secret():
    ctx = parse_kubeconfig(dump(doc(user={**cert_user(), "token": TOKEN}))).context("prod")
    for secret in key_material():
        assert secret not in repr(ctx)


# --- refused: input that is not a usable kubeconfig ---------------------------------------------------


def test_over_the_size_limit_is_refused_before_parsing():
    message = refused(b"a" * 2001, max_bytes=2000)
    assert "2001 bytes" in message and "2000-byte limit" in message


def test_default_size_limit_is_one_mebibyte():
    big = dump(doc()) + "#" + "x" * 1_048_576 + "\n"
    assert "limit" in refused(big)


def test_binary_is_refused_as_not_utf8():
    assert "not UTF-8" in refused(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", context=None)


def test_nul_bytes_are_refused_as_binary():
    assert "binary" in refused(b"apiVersion: v1\x00\x00", context=None)


def test_empty_file_is_refused():
    assert "empty" in refused(b"  \n", context=None)


def test_not_yaml_is_refused_with_line_and_without_echoing_the_line():
    text = f"apiVersion: v1\nusers:\n- name: u\n  user: {{token: {TOKEN}\n"
    message = refused(text, context=None)
    assert message.startswith("not valid YAML at line")


def test_yaml_scalar_or_list_is_not_a_kubeconfig():
    assert "expected a mapping" in refused("just a string\n", context=None)
    assert "is a list" in refused("- a\n- b\n", context=None)


def test_other_kubernetes_objects_are_not_kubeconfigs():
    assert "kind is 'Deployment', expected Config" in refused("kind: Deployment\napiVersion: apps/v1\n", None)
    assert "apiVersion is 'v2'" in refused("kind: Config\napiVersion: v2\ncontexts: []\n", None)
    assert "no contexts and no clusters" in refused("foo: bar\n", context=None)
    assert "has no contexts" in refused("kind: Config\napiVersion: v1\nclusters: []\ncontexts: []\n", None)


def test_several_yaml_documents_are_refused():
    assert "not valid YAML" in refused(dump(doc()) + "---\n" + dump(doc()), context=None)


def test_yaml_alias_bomb_is_refused_quickly():
    # The classic "billion laughs": 9 levels of 9 aliases each would expand to 9**9 strings.
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    message = refused("\n".join(lines) + "\n", context=None)
    assert "anchors and aliases" in message and "line 1" in message


def test_single_anchor_or_merge_key_is_refused():
    text = dump(doc()).replace("  cluster:\n", "  cluster: &c\n", 1)
    assert "anchors and aliases" in refused(text, context=None)
    assert "anchors and aliases" in refused("base: &b {x: 1}\nother:\n  <<: *b\n", context=None)


def test_deep_nesting_is_refused():
    assert "nested more than" in refused("x: " + "[" * 5000 + "]" * 5000 + "\n", context=None)
    assert "nested more than" in refused("x: " + "{a: " * 100 + "1" + "}" * 100 + "\n", context=None)


def test_too_many_values_are_refused_quickly():
    import time

    start = time.monotonic()
    message = refused("x: [" + ",".join(["1"] * 400_000) + "]\n", context=None)
    assert "more than 20000 values" in message
    assert time.monotonic() - start < 5


def test_a_kubeconfig_with_a_hundred_contexts_is_fine():
    d = doc()
    for i in range(100):
        d = add_context(d, doc(context_name=f"c{i}", cluster_name=f"k{i}", user_name=f"u{i}"))
    kc = parse_kubeconfig(dump(d))
    assert len(kc.contexts) == 101
    assert kc.context("c99").token == TOKEN


def test_custom_yaml_tags_are_refused():
    assert "not valid YAML" in refused("x: !!python/object/apply:os.system ['true']\n", context=None)


def test_duplicate_context_names_are_refused():
    d = add_context(doc(), doc())
    assert "appears twice" in refused(dump(d), context=None)


def test_no_such_context_lists_the_available_ones():
    message = refused(dump(doc()), "staging")
    assert "no context named 'staging'" in message and "'prod'" in message


def test_context_pointing_at_missing_cluster_or_user_is_refused():
    d = doc()
    d["contexts"][0]["context"]["cluster"] = "ghost"
    assert "points at cluster 'ghost'" in refused(dump(d))
    d = doc()
    d["contexts"][0]["context"]["user"] = "nobody"
    assert "points at user 'nobody'" in refused(dump(d))


def test_cluster_without_server_is_refused():
    assert "cluster 'prod-cluster' has no server" in refused(
        dump(doc(cluster={"insecure-skip-tls-verify": True}))
    )


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("ftp://10.0.0.1", "must be an https://"),
        ("10.0.0.1:6443", "must be an https://"),
        ("https://", "must be an https://"),
        ("https://admin:hunter2@10.0.0.1", "must not carry credentials"),
        ("https://10.0.0.1:99999", "not a valid URL"),
        ("https://10.0.0.1/?x=1", "query string"),
    ],
)
def test_bad_server_urls_are_refused(server, expected):
    message = refused(dump(doc(cluster={"server": server, "insecure-skip-tls-verify": True})))
    assert expected in message and "prod-cluster" in message
    assert "hunter2" not in message


def test_ca_that_is_not_base64_is_refused():
    message = refused(dump(doc(cluster={"server": SERVER, "certificate-authority-data": "not base64!!"})))
    assert "cluster 'prod-cluster': certificate-authority-data is not valid base64" in message


def test_ca_that_is_base64_but_not_a_certificate_is_refused():
    cluster = {"server": SERVER, "certificate-authority-data": b64(b"hello world")}
    assert "does not decode to a PEM certificate" in refused(dump(doc(cluster=cluster)))
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    cluster = {"server": SERVER, "certificate-authority-data": b64(broken)}
    assert "not a valid X.509 certificate" in refused(dump(doc(cluster=cluster)))


def test_ca_together_with_insecure_is_refused():
    cluster = {
        "server": SERVER,
        "certificate-authority-data": b64(pki().ca_pem),
        "insecure-skip-tls-verify": True,
    }
    assert "keep only one" in refused(dump(doc(cluster=cluster)))


def test_client_cert_or_key_that_does_not_decode_is_refused():
    p = pki()
    bad_cert = {"client-certificate-data": b64(b"junk"), "client-key-data": b64(p.key_pem)}
    assert "user 'prod-admin': client-certificate-data does not decode" in refused(dump(doc(user=bad_cert)))
    bad_key = {"client-certificate-data": b64(p.cert_pem), "client-key-data": "%%%"}
    assert "user 'prod-admin': client-key-data is not valid base64" in refused(dump(doc(user=bad_key)))
    garbage_key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    bad_key = {"client-certificate-data": b64(p.cert_pem), "client-key-data": b64(garbage_key)}
    assert "client-key-data is not a valid PEM private key" in refused(dump(doc(user=bad_key)))


def test_client_cert_without_key_or_with_a_foreign_key_is_refused():
    p = pki()
    assert "client-key-data is missing" in refused(
        dump(doc(user={"client-certificate-data": b64(p.cert_pem)}))
    )
    foreign = {"client-certificate-data": b64(p.cert_pem), "client-key-data": b64(p.other_key_pem)}
    assert "does not belong to client-certificate-data" in refused(dump(doc(user=foreign)))


def test_token_with_newline_is_refused():
    assert "single line" in refused(dump(doc(user={"token": "abc\r\nX-Evil: 1"})))


def test_token_and_basic_auth_together_are_refused():
    assert "keep only one" in refused(dump(doc(user={"token": TOKEN, "username": "a", "password": "b"})))


# --- refused: anything that would run a command or read a local file on our machines -----------------


@pytest.mark.parametrize(
    ("user", "field", "why"),
    [
        (
            {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "sh"}},
            "exec",
            "run a command",
        ),
        ({"auth-provider": {"name": "oidc", "config": {"client-id": "x"}}}, "auth-provider", "run commands"),
        ({"tokenFile": "/etc/passwd"}, "tokenFile", "reads a local file"),
        (
            {"client-certificate": "/etc/ssl/c.pem", "client-key-data": "eA=="},
            "client-certificate",
            "file path",
        ),
        ({"client-key": "/etc/ssl/k.pem"}, "client-key", "file path"),
        ({"token": "t", "as": "system:admin"}, "as", "impersonation"),
        ({"token": "t", "as-groups": ["system:masters"]}, "as-groups", "impersonation"),
    ],
)
def test_users_that_run_commands_or_read_files_are_refused(user, field, why):
    message = refused(dump(doc(user=user)))
    assert message.startswith(f"refused: user 'prod-admin' sets {field}:")
    assert why in message


def test_exec_refusal_says_what_to_use_instead():
    message = refused(dump(doc(user={"exec": {"command": "aws", "args": ["eks", "get-token"]}})))
    assert "exec credential plugins run a command on the dnsaudit worker" in message
    assert "use a token or client-certificate-data" in message


@pytest.mark.parametrize(
    ("cluster", "field", "why"),
    [
        (
            {"server": SERVER, "certificate-authority": "/etc/ssl/ca.pem"},
            "certificate-authority",
            "file path",
        ),
        ({"server": SERVER, "proxy-url": "socks5://10.0.0.1:1080"}, "proxy-url", "not supported"),
    ],
)
def test_clusters_that_read_files_or_use_proxies_are_refused(cluster, field, why):
    message = refused(dump(doc(cluster=cluster)))
    assert message.startswith(f"refused: cluster 'prod-cluster' sets {field}:")
    assert why in message


def test_refusal_of_exec_does_not_depend_on_field_order_or_other_credentials():
    user = {"token": TOKEN, "exec": {"command": "sh"}}
    assert "sets exec" in refused(dump(doc(user=user)))
    raw = base64.b64encode(dump(doc(user=user)).encode())
    assert raw  # the same file as base64 is simply not YAML of a kubeconfig
    assert "not a kubeconfig" in refused(raw, context=None)
