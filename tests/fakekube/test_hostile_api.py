"""A hostile API server cannot stall or blow up the client (dnsaudit.boundary.kube, ``KubeLimits``).

The test API server's hostile faults (``endless_continue``, ``huge_body``, ``gzip``, ``trickle``) against
the client: every read ends by itself, with a ``KubeError`` that says why, within its limits, with the
memory it holds bounded by the body cap (measured with ``tracemalloc``).
"""

from __future__ import annotations

import gc
import time
import tracemalloc

import pytest

from dnsaudit.boundary.kube import KubeClient, KubeError, KubeLimits
from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.pytest_fixtures import context_for

MiB = 1 << 20


@pytest.fixture
def pods(fakekube):
    fakekube.reset(
        [
            o.namespace("app"),
            *(
                o.pod(f"web-{i}", "app", [o.C("app", "nginx:1.27")], o.PodOpts(), node_name="n1")
                for i in range(6)
            ),
        ]
    )
    return fakekube


def client(fake, **limits) -> KubeClient:
    return KubeClient.from_context(context_for(fake, "admin"), timeout=5, limits=KubeLimits(**limits))


def requests_to(fake, needle: str) -> list[str]:
    return [t for _m, t, _u, _s in fake.faults.log if needle in t]


# --- continue tokens -------------------------------------------------------------------------------


def test_the_same_continue_token_twice_is_a_loop(pods):
    pods.faults.endless_continue(r"^/api/v1/pods\?", same_token=True)
    with client(pods) as kc, pytest.raises(KubeError) as err:
        list(kc.iter_list("pods", page_size=2))
    assert err.value.reason == "InvalidResponse" and not err.value.transient
    assert "same continue token twice" in str(err.value)
    assert len(requests_to(pods, "/api/v1/pods?")) == 2  # the first page, then the loop is seen


def test_endless_fresh_tokens_stop_at_the_page_cap(pods):
    pods.faults.endless_continue(r"^/api/v1/pods\?")
    with client(pods, max_list_pages=25) as kc, pytest.raises(KubeError) as err:
        list(kc.iter_list("pods", page_size=500))
    assert err.value.reason == "TooLarge" and "more than 25 pages" in str(err.value)
    assert "DNSAUDIT_KUBE_MAX_LIST_PAGES" in str(err.value)
    assert len(requests_to(pods, "/api/v1/pods?")) == 25


def test_endless_fresh_tokens_with_items_stop_at_the_item_cap(pods):
    pods.faults.endless_continue(r"^/api/v1/pods\?")
    with client(pods, max_list_items=40) as kc, pytest.raises(KubeError) as err:
        list(kc.iter_list("pods", page_size=500))  # 6 pods a page, again and again
    assert err.value.reason == "TooLarge" and "more than 40 items" in str(err.value)
    assert len(requests_to(pods, "/api/v1/pods?")) == 7


def test_default_limits_end_an_endless_list(pods):
    pods.faults.endless_continue(r"^/api/v1/nodes\?")
    started = time.monotonic()
    with client(pods) as kc, pytest.raises(KubeError) as err:
        list(kc.iter_list("nodes"))
    assert err.value.reason == "TooLarge" and f"more than {KubeLimits().max_list_pages} pages" in str(
        err.value
    )
    assert time.monotonic() - started < 120


def test_the_deadline_is_checked_before_every_page(pods):
    pods.faults.page_cap = 1
    calls = []
    with client(pods) as kc:
        kc.page_check = lambda: calls.append(1)
        got = list(kc.iter_list("pods", page_size=1))
    assert len(got) == 6
    assert len(requests_to(pods, "/api/v1/pods?")) == 6  # six pages with one pod each
    assert len(calls) >= 6  # before each page (and between the chunks of each body)

    class Stop(Exception):
        pass

    seen = []

    def stop_on_third():
        seen.append(1)
        if len(seen) == 3:
            raise Stop

    pods.faults.log.clear()
    with client(pods) as kc:
        kc.page_check = stop_on_third
        with pytest.raises(Stop):
            list(kc.iter_list("pods", page_size=1))
    assert len(requests_to(pods, "/api/v1/pods?")) <= 2


# --- bodies ----------------------------------------------------------------------------------------


def _bounded_read(fake, kc, resource="pods"):
    gc.collect()
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(KubeError) as err:
            list(kc.iter_list(resource))
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return err.value, peak, time.monotonic() - started


def test_a_300_mb_body_is_refused_at_the_cap_with_memory_bounded(pods):
    pods.faults.huge_body(r"^/api/v1/pods\?", size=300 * MiB)
    with client(pods) as kc:  # the default cap: 32 MiB
        err, peak, took = _bounded_read(pods, kc)
        assert err.reason == "TooLarge" and not err.transient
        assert "more than 32 MiB" in str(err) and "DNSAUDIT_KUBE_MAX_RESPONSE_BYTES" in str(err)
        # Refused from its Content-Length, before reading: nothing of the body is held.
        assert peak < 4 * MiB, peak
        assert took < 10
        # The connection was not reused with 300 MB unread on it: the next request works.
        pods.faults.clear()
        assert len(list(kc.iter_list("pods"))) == 6


def test_a_300_mb_body_without_a_length_is_cut_at_the_cap(pods, monkeypatch):
    """Streamed and counted: a body whose length is not declared (or lies) is read up to the cap only."""
    pods.faults.huge_body(r"^/api/v1/pods\?", size=300 * MiB)
    with client(pods, max_response_bytes=8 * MiB) as kc:
        real = kc._read_body

        def undeclared(raw, *a, **kw):
            raw.headers.pop("Content-Length", None)
            return real(raw, *a, **kw)

        monkeypatch.setattr(kc, "_read_body", undeclared)
        err, peak, took = _bounded_read(pods, kc)
    assert err.reason == "TooLarge" and "more than 8 MiB" in str(err)
    # What the client held: the body up to the cap, plus a read buffer.
    assert peak < 8 * MiB * 2 + 2 * MiB, peak
    assert took < 30


def test_a_gzip_bomb_is_refused_at_the_cap_on_decoded_bytes(pods):
    pods.faults.huge_body(r"^/api/v1/pods\?", size=300 * MiB, gzip=True)
    with client(pods, max_response_bytes=8 * MiB) as kc:
        err, peak, took = _bounded_read(pods, kc)
    assert err.reason == "TooLarge" and "more than 8 MiB" in str(err)
    assert peak < 8 * MiB * 2 + 2 * MiB, peak
    assert took < 30


def test_identity_is_asked_and_a_gzip_answer_is_decoded_by_the_client(pods):
    pods.faults.gzip(r"^/api/v1/pods\?")
    with client(pods) as kc:
        got = list(kc.iter_list("pods"))
    assert len(got) == 6


def test_an_unknown_encoding_is_refused(pods, monkeypatch):
    from dnsaudit.testbed.fakekube import server

    monkeypatch.setattr(server, "_gzip", lambda body: body)  # "gzip" header, plain body: corrupt
    pods.faults.gzip(r"^/api/v1/pods\?")
    with client(pods) as kc, pytest.raises(KubeError) as err:
        list(kc.iter_list("pods"))
    assert err.value.reason == "InvalidResponse" and "corrupt gzip" in str(err.value)


def test_a_trickling_server_is_cut_at_the_response_time_limit(pods):
    pods.faults.trickle(r"^/api/v1/pods\?", seconds=0.2)
    started = time.monotonic()
    with client(pods, response_seconds=1.5) as kc, pytest.raises(KubeError) as err:
        list(kc.iter_list("pods"))
    took = time.monotonic() - started
    assert err.value.reason == "Timeout" and "more than 1.5 s" in str(err.value)
    assert took < 1.5 + 1.0


def test_a_flood_of_empty_objects_is_refused_before_parsing(pods, monkeypatch):
    from dnsaudit.testbed.fakekube import server

    flood = b'{"items":[' + b",".join([b"{}"] * 200_000) + b"]}"
    monkeypatch.setattr(server, "_endless_page", lambda body, rule: flood)
    pods.faults.endless_continue(r"^/api/v1/pods\?")
    with client(pods) as kc, pytest.raises(KubeError) as err:
        list(kc.iter_list("pods"))
    assert err.value.reason == "InvalidResponse" and "JSON objects" in str(err.value)


@pytest.mark.parametrize(
    "page",
    [
        b"[]",
        b'"items"',
        b'{"items": {"a": 1}}',
        b'{"items": [1, 2]}',
        b'{"metadata": {"continue": 5}}',
        b"[" * 100_000,
        # Not JSON, though Python's json module reads them (orjson, which the boundary uses, does not).
        b'{"items": [{"metadata": {"name": "a"}, "spec": {"x": NaN}}]}',
        b'{"items": [{"metadata": {"name": "a"}, "spec": {"x": Infinity}}]}',
        b'{"items": [{"metadata": {"name": "\\ud800"}}]}',
        b'\xef\xbb\xbf{"items": []}',
    ],
)
def test_malformed_pages_are_invalid_responses(pods, monkeypatch, page):
    from dnsaudit.testbed.fakekube import server

    monkeypatch.setattr(server, "_endless_page", lambda body, rule: page)
    pods.faults.endless_continue(r"^/api/v1/pods\?")
    with client(pods) as kc, pytest.raises(KubeError) as err:
        list(kc.iter_list("pods"))
    assert err.value.reason == "InvalidResponse"


MEMORY_PROBE = r"""
import gc, resource, sys
from dnsaudit.boundary.kube import KubeClient, KubeError
from dnsaudit.testbed.fakekube import objects as o
from dnsaudit.testbed.fakekube.pytest_fixtures import context_for
from dnsaudit.testbed.fakekube.server import FakeKube

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

with FakeKube() as fake:
    fake.reset([o.namespace("app")])
    kc = KubeClient.from_context(context_for(fake, "admin"), timeout=30)
    list(kc.iter_list("pods"))  # connection, client and imports warmed up
    fake.faults.huge_body(r"^/api/v1/pods\?", size=300 << 20, gzip=sys.argv[1] == "gzip")
    real = kc._read_body
    def undeclared(raw, *a, **kw):
        raw.headers.pop("Content-Length", None)  # read it: no refusal from the declared length
        return real(raw, *a, **kw)
    kc._read_body = undeclared
    gc.collect()
    base = rss()
    try:
        list(kc.iter_list("pods"))
    except KubeError as exc:
        assert exc.reason == "TooLarge", exc
    print(rss() - base)
"""


@pytest.mark.parametrize("mode", ["plain", "gzip"])
def test_the_worker_memory_for_a_300_mb_body_is_the_cap(mode):
    """The figure for the README: a fresh interpreter reads a 300 MB body (streamed, no length declared)
    or a gzip bomb decoding to 300 MB, with the default 32 MiB cap; its peak RSS grows by about the cap
    (measured: +36 MiB and +33 MiB)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, mode], capture_output=True, text=True, timeout=120, check=True
    )
    grew = int(out.stdout.strip().splitlines()[-1])
    assert grew < KubeLimits().max_response_bytes + 24 * MiB, f"+{grew / MiB:.0f} MiB"
