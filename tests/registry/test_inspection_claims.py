"""One inspection per distinct digest across scans running at once (issue 12), and layer records shared
through the database: the scan's image stage against the real registry, HTTP fetches counted in the
registry's own access log."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from dnsaudit.testbed import imagebuild as ib

pytestmark = [pytest.mark.registry]

REPO_ROOT = Path(__file__).resolve().parents[2]


class _Progress:
    def set(self, *a, **kw):
        pass

    def step(self, n=1):
        pass


@pytest.fixture(autouse=True)
def _cold_process():
    """Nothing this process learnt in earlier tests (layer records, recent verdicts) may help."""
    from clusters.scan.stages.images import reset_process_caches

    reset_process_caches()
    yield
    reset_process_caches()


@pytest.fixture(scope="module")
def pusher(registry):
    return ib.Pusher(registry.url)


class SlowProxy:
    """A loopback HTTP proxy in front of the registry that holds every answer ``delay`` seconds, so that
    inspections started by two workers surely overlap (fetches are still counted in the registry's log)."""

    def __init__(self, upstream: str, delay: float) -> None:
        import requests

        session = requests.Session()
        session.trust_env = False

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                time.sleep(delay)
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization")}
                headers["User-Agent"] = self.headers.get("User-Agent", "")
                r = session.get(f"http://{upstream}{self.path}", headers=headers, allow_redirects=False)
                self.send_response(r.status_code)
                for k in ("Content-Type", "Docker-Content-Digest", "Location", "WWW-Authenticate"):
                    if k in r.headers:
                        self.send_header(k, r.headers[k])
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _images(pusher, registry, prefix: str, n: int) -> list[str]:
    """``n`` distinct digest-pinned images on one shared Alpine-like base, each its own repository."""
    base = ib.alpine_layer()
    base.file("/usr/share/bulk.bin", os.urandom(256 * 1024))
    refs = []
    for i in range(n):
        app = ib.Layer().exe("/app/server", ib.elf_stub(ib.MUSL_LOADER_X86_64)).file("/app/i", str(i))
        digest, _ = pusher.image(f"{prefix}-{i}", None, ib.Image([base, app], entrypoint=["/app/server"]))
        refs.append(f"{registry.host}/{prefix}-{i}@{digest}")
    return refs


def _fetches(registry, prefix: str, what: str) -> dict[str, int]:
    """``{repository: GETs of /v2/<repository>/<what>/…}`` by dnsaudit, from the registry's access log."""
    pattern = re.compile(rf'"GET /v2/({re.escape(prefix)}-\d+)/{what}/[^ ]+ HTTP/1\.1" 200 .*"dnsaudit"')
    counts: dict[str, int] = {}
    for line in registry.log.read_text(errors="replace").splitlines():
        m = pattern.search(line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def _stage(refs: list[str]) -> dict:
    from django.db import connection

    from clusters.scan.stages.images import inspect_images

    inv = SimpleNamespace(
        workloads=[], images={(r, None, "linux/amd64") for r in refs}, pull_secrets={}, service_accounts={}
    )
    try:
        return inspect_images(None, inv, [], _Progress())
    finally:
        connection.close()


def _wait_log(registry, prefix: str, expected: int, what: str = "manifests") -> dict[str, int]:
    """The access log is written as responses complete: give it a moment to catch up."""
    deadline = time.monotonic() + 5
    while True:
        counts = _fetches(registry, prefix, what)
        if sum(counts.values()) >= expected or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_two_scans_at_once_in_one_worker_inspect_each_digest_once(pusher, registry):
    prefix = f"claim-{uuid.uuid4().hex[:8]}"
    refs = _images(pusher, registry, prefix, 6)
    start = threading.Barrier(2)
    results: list[dict] = []

    def scan():
        start.wait()
        results.append(_stage(refs))

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 2
    for verdicts in results:
        assert {verdicts[f"{r}@linux/amd64"].libc for r in refs} == {"musl"}
        assert {verdicts[f"{r}@linux/amd64"].confidence for r in refs} == {"confirmed"}
    counts = _wait_log(registry, prefix, len(refs))
    assert counts == {f"{prefix}-{i}": 1 for i in range(6)}, "a digest was inspected twice"


_WORKER = r"""
import json, os, sys
import django
django.setup()
from types import SimpleNamespace
from clusters.scan.stages.images import inspect_images
import dnsaudit.boundary.registry, dnsaudit.core.libc  # imported before the start, as in a warm worker

class P:
    def set(self, *a, **kw): pass
    def step(self, n=1): pass

refs = json.loads(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
inv = SimpleNamespace(workloads=[], images={(r, None, "linux/amd64") for r in refs}, pull_secrets={},
                      service_accounts={})
verdicts = inspect_images(None, inv, [], P())
print(json.dumps({k: v.libc for k, v in verdicts.items()}), flush=True)
"""


def _database_url(db: dict) -> str:
    from urllib.parse import quote

    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_inspect_each_digest_once(pusher, registry, postgres_database):
    """A second worker process (its own memory, its own connection) waits on the first's advisory lock
    and reads the verdict it saved, instead of fetching the image again."""
    from django.db import connection

    prefix = f"claimw-{uuid.uuid4().hex[:8]}"
    slow = SlowProxy(registry.host, 0.4)
    refs = [r.replace(registry.host, slow.host) for r in _images(pusher, registry, prefix, 6)]
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(connection.settings_dict),
        "DJANGO_SETTINGS_MODULE": "dnsaudit.settings",
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _WORKER, json.dumps(refs)],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        mine: list[dict] = []
        worker = threading.Thread(target=lambda: mine.append(_stage(refs)))
        child.stdin.write("go\n")
        child.stdin.flush()
        worker.start()
        out, _ = child.communicate(timeout=120)
        worker.join(120)
    finally:
        if child.poll() is None:
            child.kill()
        slow.close()
    theirs = json.loads(out.strip().splitlines()[-1])
    assert set(theirs.values()) == {"musl"}
    assert {mine[0][f"{r}@linux/amd64"].libc for r in refs} == {"musl"}
    counts = _wait_log(registry, prefix, len(refs))
    assert counts == {f"{prefix}-{i}": 1 for i in range(6)}, "two workers inspected the same digest"


@pytest.mark.django_db(transaction=True)
def test_layer_records_in_the_database_spare_another_worker_the_base(pusher, registry, postgres_database):
    """A worker that never saw the base layer (a fresh process: its memory is empty) reads the base's
    record from the database and fetches only the image's own layer."""
    from clusters.models import ImageVerdict
    from clusters.scan.stages.images import reset_process_caches

    prefix = f"layers-{uuid.uuid4().hex[:8]}"
    refs = _images(pusher, registry, prefix, 2)
    _stage(refs[:1])
    rows = ImageVerdict.objects.filter(key__startswith="layer:", confidence="layer")
    assert rows.count() == 2  # the base (its prefix) and the first image's own layer
    reset_process_caches()
    verdict = _stage(refs[1:])[f"{refs[1]}@linux/amd64"]
    assert verdict.libc == "musl" and verdict.musl_version == "1.2.4"
    assert any("1 known from earlier inspections" in e for e in verdict.evidence)
    blobs = _wait_log(registry, prefix, 5, what="blobs")
    # first image: config + its layer + the base; second image: config + its own layer only
    assert blobs == {f"{prefix}-0": 3, f"{prefix}-1": 2}


def test_a_claim_never_holds_a_waiter_past_its_wait():
    """An owner that never finishes (a stuck inspection) does not stop the other scans: they inspect
    themselves after the bounded wait."""
    from clusters.scan.stages.images import Claims

    claims = Claims()
    entered = threading.Event()
    release = threading.Event()

    def stuck_owner():
        with claims.hold("k@linux/amd64", 60) as (owner, _found):
            assert owner
            entered.set()
            release.wait(30)

    t = threading.Thread(target=stuck_owner)
    t.start()
    try:
        assert entered.wait(5)
        t0 = time.monotonic()
        with claims.hold("k@linux/amd64", 0.3) as (owner, found):
            waited = time.monotonic() - t0
        assert (owner, found) == (False, None)
        assert 0.25 <= waited < 5
    finally:
        release.set()
        t.join(5)


@pytest.mark.django_db(transaction=True)
def test_database_claim_waits_boundedly_then_reads_the_holders_verdict(postgres_database):
    """Across workers: while another session holds the key's lock, the claim polls; when the holder's
    verdict appears it is returned; a holder that never saves one is waited for at most ``wait``."""
    import psycopg

    from clusters.models import ImageVerdict
    from clusters.scan.stages.images import _advisory_key, database_claim

    db = postgres_database
    key = f"example.test/app@sha256:{'c' * 64}@linux/amd64"
    other = psycopg.connect(
        host=db.get("HOST") or "127.0.0.1",
        port=db.get("PORT") or 5432,
        user=db.get("USER"),
        password=db.get("PASSWORD") or None,
        dbname=db["NAME"],
        autocommit=True,
    )
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [_advisory_key(key)])
        t0 = time.monotonic()
        with database_claim(key, 0.5, poll=0.05) as found:
            assert found is None
        assert 0.45 <= time.monotonic() - t0 < 5  # bounded: it gave up and would inspect itself

        def holder_saves():
            from django.db import connection

            time.sleep(0.3)
            try:
                ImageVerdict.objects.create(
                    key=key, verdict={"libc": "musl", "confidence": "confirmed"}, confidence="confirmed"
                )
            finally:
                connection.close()

        saver = threading.Thread(target=holder_saves)
        saver.start()
        with database_claim(key, 10, poll=0.05) as found:
            assert found == {"libc": "musl", "confidence": "confirmed"}
        saver.join(5)
    finally:
        other.close()
