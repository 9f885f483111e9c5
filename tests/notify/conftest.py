"""Fixtures for the notification tests: a webhook receiver (apprise ``json://``) and an SMTP server
(aiosmtpd) on loopback, a closed port for a dead target, and settings for each test.

Nothing leaves the machine: every target is ``127.0.0.1``.
"""

from __future__ import annotations

import json
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.fernet import Fernet

from tests.support import free_port


class Webhook:
    """An HTTP server on loopback that records every JSON body posted to it (``posts``)."""

    def __init__(self, status: int = 200) -> None:
        self.posts: list[dict] = []
        self.paths: list[str] = []
        self.status = status
        self.received = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), 1024 * 1024)
                body = self.rfile.read(length)
                hook.paths.append(self.path)
                hook.posts.append(json.loads(body or b"{}"))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                hook.received.set()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hooks/dnsaudit") -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.stop()


@pytest.fixture
def failing_webhook():
    """A receiver that answers every post with 500."""
    hook = Webhook(status=500)
    yield hook
    hook.stop()


class Mailbox:
    """The messages an aiosmtpd server on loopback received (``messages``: parsed e-mails)."""

    def __init__(self) -> None:
        self.messages: list = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(
            message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        )
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


@pytest.fixture
def dead_url() -> str:
    """A webhook URL on a closed loopback port, with a password and a path token that must never show."""
    return f"json://hookuser:S3cretPassw0rd@127.0.0.1:{free_port()}/hooks/T0KENPATH0123"


@pytest.fixture(autouse=True)
def _notify_settings(settings, tmp_path):
    settings.DNSAUDIT_FERNET_KEYS = [Fernet.generate_key().decode()]
    settings.VAR_DIR = tmp_path / "var"
    settings.DNSAUDIT_NOTIFY_URLS = []
    settings.DNSAUDIT_BASE_URL = "https://dnsaudit.example.test"
    settings.DNSAUDIT_NOTIFY_TIMEOUT = 5
    settings.CELERY_BROKER_URL = ""
