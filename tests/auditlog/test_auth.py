"""Logins, failed logins (a django-axes lockout included) and logouts: recorded with the attempted
username and the address, never the password."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.auditlog.conftest import events, whole_table
from tests.web import factories

WRONG = "Wr0ng-pass-SECRET-91c2"


def _login(client: Client, username: str, password: str, addr: str = "10.1.1.1"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=addr)


@pytest.fixture
def alice(db):
    return factories.make_user("viewer", username="alice")


def test_login_and_logout_are_recorded_with_the_address(alice):
    client = Client()
    assert _login(client, "alice", factories.PASSWORD, addr="10.7.7.7").status_code == 302
    assert client.post(reverse("logout"), REMOTE_ADDR="10.7.7.7").status_code in (200, 302)
    login, logout = events()
    assert (login.action, login.actor, login.via, login.address, login.success) == (
        "auth.login",
        "alice",
        "web",
        "10.7.7.7",
        True,
    )
    assert (logout.action, logout.actor, logout.address) == ("auth.logout", "alice", "10.7.7.7")
    assert factories.PASSWORD not in whole_table()


def test_a_failed_login_records_the_attempted_username_never_the_password(alice):
    assert _login(Client(), "alice", WRONG).status_code == 200
    assert _login(Client(), "nobody-such", WRONG, addr="10.2.2.2").status_code == 200
    first, second = events("auth.login_failed")
    assert (first.actor, first.success, first.address, first.detail) == (
        "alice",
        False,
        "10.1.1.1",
        {"reason": "bad credentials"},
    )
    assert second.actor == "nobody-such" and second.address == "10.2.2.2"
    assert WRONG not in whole_table()


def test_a_lockout_and_every_locked_out_attempt_are_recorded_as_failed(settings, alice):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "alice", WRONG)
    # Locked out: even the right password is refused, and that attempt is recorded as a failure too.
    assert _login(client, "alice", factories.PASSWORD).status_code == 429
    failed = events("auth.login_failed")
    assert len(failed) == settings.AXES_FAILURE_LIMIT + 1
    reasons = [e.detail["reason"] for e in failed]
    assert reasons == ["bad credentials"] * (settings.AXES_FAILURE_LIMIT - 1) + ["locked out"] * 2
    assert all(e.actor == "alice" and not e.success for e in failed)
    assert not events("auth.login")
    assert WRONG not in whole_table() and factories.PASSWORD not in whole_table()


def test_a_failed_login_on_the_admin_login_page_is_recorded(alice):
    Client().post("/admin/login/", {"username": "alice", "password": WRONG}, REMOTE_ADDR="10.4.4.4")
    (event,) = events("auth.login_failed")
    assert (event.actor, event.address) == ("alice", "10.4.4.4") and WRONG not in whole_table()
