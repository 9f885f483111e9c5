"""``clusters.auditlog.record``: who, via what, from where, never a secret, never an exception."""

from __future__ import annotations

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, login
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import DatabaseError, transaction
from django.test import RequestFactory

from clusters import auditlog
from clusters.models import ApiToken, AuditEvent, Cluster
from tests.auditlog.conftest import events, whole_table
from tests.kubeconfig import factory as kc
from tests.web import factories


def _request(user=None, **meta):
    request = RequestFactory().post("/somewhere", **meta)
    SessionMiddleware(lambda r: None).process_request(request)
    if user is not None:
        request.user = user
    return request


def test_actor_address_and_via_come_from_the_request(users):
    auditlog.record(
        "scan.request", request=_request(users["operator"], REMOTE_ADDR="10.3.4.5"), target="prod"
    )
    (event,) = events()
    assert (event.actor, event.via, event.address, event.target, event.success) == (
        "operator",
        "web",
        "10.3.4.5",
        "prod",
        True,
    )


def test_address_is_the_proxys_entry_only_behind_a_trusted_proxy(settings, users):
    meta = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.9"}
    settings.DNSAUDIT_TRUSTED_PROXY = False
    auditlog.record("a.b", request=_request(users["admin"], **meta))
    settings.DNSAUDIT_TRUSTED_PROXY = True
    auditlog.record("a.b", request=_request(users["admin"], **meta))
    assert [e.address for e in events()] == ["10.0.0.5", "203.0.113.9"]


def test_a_request_authenticated_by_an_api_token_is_via_api(users):
    request = _request(users["viewer"], REMOTE_ADDR="::1")
    request.api_token = ApiToken.issue(users["viewer"], "ci")[0]
    auditlog.record("export.json", request=request, target="prod")
    assert (events()[0].via, events()[0].address) == ("api", "::1")


def test_without_a_request_cli_is_the_os_user_and_nothing_is_system(db, monkeypatch):
    monkeypatch.setenv("USER", "ops-jane")
    monkeypatch.setenv("LOGNAME", "ops-jane")
    auditlog.record("keys.rotate", via="cli")
    auditlog.record("audit.prune")
    cli, system = events()
    assert (cli.actor, cli.via, cli.address) == ("ops-jane", "cli", None)
    assert (system.actor, system.via) == ("", "system")


def test_an_address_that_is_not_an_ip_is_left_out(users):
    auditlog.record("a.b", request=_request(users["admin"], REMOTE_ADDR="not-an-address"))
    assert events()[0].address is None


def test_secrets_in_detail_are_redacted_by_key_and_by_value(db):
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY-----"
    auditlog.record(
        "cluster.change",
        target="prod",
        kubeconfig=kc.token_kubeconfig(),
        password=kc.PASSWORD,
        notification_urls=["slack://hook"],
        apprise_url="mailtos://alice:pw-SECRET-url@mail.example",
        note=f"see https://bob:{kc.TOKEN}@git.example/repo and Bearer abc.def.ghi",
        pasted=f"apiVersion: v1\nkind: Config\nusers:\n- user:\n    token: {kc.TOKEN}\n",
        token_text="dna_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
        words="the key dna_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345 leaked",
        nested={"deeper": {"client-key-data": "c2VjcmV0", "pem": pem}},
        fields=["allow_exec", "notes"],
        token_prefix="dna_AbCdEfGh",
    )
    detail = events()[0].detail
    table = whole_table()
    for secret in (
        kc.TOKEN,
        kc.PASSWORD,
        "pw-SECRET-url",
        "slack://hook",
        "abc.def.ghi",
        "MIIabc",
        "c2VjcmV0",
    ):
        assert secret not in table, secret
    assert "ABCDEFGHIJKLMNOP" not in table
    assert detail["kubeconfig"] == detail["password"] == detail["notification_urls"] == "[redacted]"
    assert detail["apprise_url"] == "[redacted]"  # a key naming a URL: the whole value goes
    assert detail["note"].startswith("see https://[redacted]@git.example/repo")
    assert detail["words"] == "the key [redacted] leaked"
    # What is not a secret stays: the names of changed fields, a token's short prefix.
    assert detail["fields"] == ["allow_exec", "notes"] and detail["token_prefix"] == "dna_AbCdEfGh"


def test_detail_sizes_are_bounded(db):
    auditlog.record(
        "a.b",
        target="x" * 5000,
        big="y" * 10_000,
        many=list(range(1000)),
        deep={"a": {"b": {"c": {"d": {"e": 1}}}}},
    )
    event = events()[0]
    assert len(event.target) <= 512 and event.target.endswith("…")
    assert len(event.detail["big"]) <= auditlog.MAX_STRING
    assert len(event.detail["many"]) == auditlog.MAX_ITEMS + 1 and event.detail["many"][-1] == "… 950 more"
    assert event.detail["deep"]["a"]["b"]["c"] == "…"


def test_a_failure_to_record_is_logged_and_never_raised_nor_breaks_the_callers_transaction(
    db, monkeypatch, caplog
):
    def broken(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(AuditEvent.objects, "create", broken)
    with transaction.atomic():
        auditlog.record("cluster.remove", target="prod")  # must not raise
        factories.make_cluster("still-works")  # the caller's transaction goes on
    assert Cluster.objects.filter(name="still-works").exists()
    assert "could not record the audit event 'cluster.remove'" in caplog.text


def test_a_database_error_while_recording_leaves_the_callers_transaction_usable(db, monkeypatch):
    """A real database error inside the caller's transaction: the savepoint around the insert keeps the
    transaction alive (PostgreSQL refuses every later query of an aborted transaction otherwise)."""
    from django.db import connection

    def failing_insert(*args, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM dnsaudit_no_such_table")

    monkeypatch.setattr(AuditEvent.objects, "create", failing_insert)
    with transaction.atomic():
        factories.make_cluster("before")
        auditlog.record("cluster.add", target="x")
        factories.make_cluster("after")
    assert set(Cluster.objects.values_list("name", flat=True)) == {"before", "after"}


def test_nul_characters_are_dropped(db):
    auditlog.record("a.b", target="pr\x00od", note="x\x00y")
    event = events()[0]
    assert (event.target, event.detail["note"]) == ("prod", "xy")


@pytest.mark.parametrize(
    ("backend", "via"),
    [
        ("mozilla_django_oidc.auth.OIDCAuthenticationBackend", "sso"),
        ("django.contrib.auth.backends.ModelBackend", "web"),
    ],
)
def test_a_login_through_the_oidc_backend_is_via_sso(users, backend, via):
    request = _request(REMOTE_ADDR="10.9.9.9")
    login(request, users["viewer"], backend=backend)
    assert request.session[BACKEND_SESSION_KEY] == backend
    (event,) = events("auth.login")
    assert (event.actor, event.via, event.address) == ("viewer", via, "10.9.9.9")


def test_a_refused_single_sign_on_callback_is_a_failed_login_via_sso(db):
    """The OIDC callback authenticates with a nonce, not a password: when every backend refuses it,
    Django's failed-login signal fires on the callback's request, recorded as via sso."""
    from django.contrib.auth.signals import user_login_failed

    request = RequestFactory().get("/oidc/callback/?code=x&state=y", REMOTE_ADDR="192.0.2.9")
    user_login_failed.send(sender=__name__, credentials={"nonce": "********"}, request=request)
    password = RequestFactory().post("/login/", REMOTE_ADDR="192.0.2.9")
    user_login_failed.send(sender=__name__, credentials={"username": "mallory"}, request=password)
    rows = {e.via: e for e in events()}
    assert rows["sso"].action == "auth.login_failed" and rows["sso"].detail == {
        "reason": "single sign-on refused"
    }
    assert rows["web"].actor == "mallory" and rows["web"].detail == {"reason": "bad credentials"}
    assert rows["sso"].address == "192.0.2.9" and not rows["sso"].success
