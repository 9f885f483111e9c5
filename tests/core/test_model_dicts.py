"""The hand-written ``to_dict`` of the core's result types equals ``dataclasses.asdict`` (what they
replaced, for speed): a field added to a class and forgotten in its ``to_dict`` fails here."""

from __future__ import annotations

from dataclasses import asdict, fields

from dnsaudit.core.model import LibcVerdict, Query, Resolution


def test_libc_verdict_to_dict_is_asdict():
    v = LibcVerdict(
        libc="musl",
        musl_version="1.2.4",
        os_id="alpine",
        os_version="3.19.1",
        evidence=["/lib/ld-musl-x86_64.so.1"],
        confidence="confirmed",
        digest="sha256:" + "ab" * 32,
        platform="linux/amd64",
    )
    d = v.to_dict()
    assert d == asdict(v) and list(d) == [f.name for f in fields(LibcVerdict)]
    d["evidence"].append("changed")
    assert v.evidence == ["/lib/ld-musl-x86_64.so.1"]  # a copy, as asdict gives


def test_resolution_and_query_to_dict_are_asdict():
    q = Query("example.com.corp.", "A", "10.0.0.10", "SERVFAIL", "tcp")
    assert q.to_dict() == asdict(q) and list(q.to_dict()) == [f.name for f in fields(Query)]
    r = Resolution(
        libc="musl",
        name="example.com",
        ok=False,
        error="EAI_AGAIN",
        addresses=["192.0.2.1"],
        queries=[q, Query("example.com.", "AAAA", "10.0.0.10", "NODATA")],
        candidates=["example.com.corp", "example.com"],
        stopped_at="example.com.corp",
        elapsed=5.0,
        explanation="stops at SERVFAIL",
        version="1.2.4",
    )
    d = r.to_dict()
    assert d == asdict(r) and list(d) == [f.name for f in fields(Resolution)]
