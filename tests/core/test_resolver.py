"""The musl and glibc getaddrinfo simulations against domain.md §8.1 (R1–R29) and source-level cases.

Expected values come from domain.md's vector table (lab results against the real libcs), not from the
code under test. Versions: 1.1.24 stands for "<1.2.1", 1.2.3 for "1.2.1–1.2.3", 1.2.5 for ">=1.2.4".
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dnsaudit.core.model import Answer
from dnsaudit.core.resolver import (
    MALFORMED_QUERY,
    musl_behaviour_group,
    simulate_glibc,
    simulate_musl,
    table_oracle,
)

CLUSTER = "default.svc.cluster.local svc.cluster.local cluster.local"
S = f"search {CLUSTER} openstacklocal\nnameserver 127.0.0.1\noptions ndots:5\n"
CLUSTER3 = f"search {CLUSTER}\nnameserver 127.0.0.1\noptions ndots:5\n"
FOO_CONF = "search openstacklocal corp.example\nnameserver 127.0.0.1\noptions ndots:5\n"

GOOGLE_A = "142.250.1.1"
GOOGLE_AAAA = "2a00:1450::1"
GOOGLE = {"google.com": {"A": Answer("NOERROR", (GOOGLE_A,)), "AAAA": Answer("NOERROR", (GOOGLE_AAAA,))}}
NODATA = Answer("NOERROR")
FOO = {"foo.corp.example": {"A": Answer("NOERROR", ("192.0.2.10",)), "AAAA": NODATA}}


def both(answer: Answer) -> dict:
    return {"A": answer, "AAAA": answer}


def search_line(length: int) -> str:
    """A ``search`` line (no newline) of exactly ``length`` characters: 3 cluster domains + padding domains."""
    line = f"search {CLUSTER}"
    n = 0
    while len(line) + 1 + len("pad00.example.com") <= length - 20:
        line += f" pad{n:02d}.example.com"
        n += 1
    rest = length - len(line) - 1 - len(".example.com")
    line += " " + "p" * rest + ".example.com"
    assert len(line) == length
    return line


@dataclass(frozen=True)
class Exp:
    """An expected outcome; None fields are not checked."""

    ok: bool
    error: str | None = None
    addresses: frozenset[str] | None = None
    absolute_queried: bool | None = None
    stopped_at: str | None = None
    elapsed: float | None = None
    only_names: frozenset[str] | None = None  # the exact set of names queried
    n_queries: int | None = None


OK_GOOGLE = Exp(True, addresses=frozenset({GOOGLE_A, GOOGLE_AAAA}), absolute_queried=True)

# (id, resolv.conf, name, records, per_server, {version or "glibc": Exp}, absolute name)
V = [
    ("R1", S, "google.com", GOOGLE, None,
     {"1.2.3": Exp(True, addresses=frozenset({GOOGLE_A, GOOGLE_AAAA}), absolute_queried=True, n_queries=10),
      "1.2.5": Exp(True, addresses=frozenset({GOOGLE_A, GOOGLE_AAAA}), absolute_queried=True, n_queries=10),
      "glibc": OK_GOOGLE}),
    ("R2", S, "google.com", {**GOOGLE, "google.com.openstacklocal": both(NODATA)}, None,
     {"1.2.3": Exp(False, "EAI_NONAME", absolute_queried=False, stopped_at="google.com.openstacklocal", elapsed=0.0),
      "1.2.5": Exp(False, "EAI_NODATA", absolute_queried=False, stopped_at="google.com.openstacklocal", elapsed=0.0),
      "glibc": OK_GOOGLE}),
    ("R3", S, "google.com", {**GOOGLE, "google.com.openstacklocal": both(Answer("SERVFAIL"))}, None,
     {"1.2.3": Exp(False, "EAI_AGAIN", absolute_queried=False, stopped_at="google.com.openstacklocal", elapsed=5.0),
      "1.2.5": Exp(False, "EAI_AGAIN", absolute_queried=False, stopped_at="google.com.openstacklocal", elapsed=5.0),
      "glibc": OK_GOOGLE}),
    ("R4", S, "google.com", {**GOOGLE, "google.com.openstacklocal": both(Answer("REFUSED"))}, None,
     {"1.2.3": Exp(False, "EAI_AGAIN", absolute_queried=False, stopped_at="google.com.openstacklocal", elapsed=5.0),
      "1.2.5": Exp(False, "EAI_AGAIN", absolute_queried=False, stopped_at="google.com.openstacklocal", elapsed=5.0),
      "glibc": OK_GOOGLE}),
    ("R5", S, "google.com", {**GOOGLE, "google.com.openstacklocal": both(Answer(None))}, None,
     {"1.2.3": Exp(False, "EAI_AGAIN", absolute_queried=False, stopped_at="google.com.openstacklocal", elapsed=5.0),
      "1.2.5": Exp(False, "EAI_AGAIN", absolute_queried=False, stopped_at="google.com.openstacklocal", elapsed=5.0),
      "glibc": Exp(True, addresses=frozenset({GOOGLE_A, GOOGLE_AAAA}), absolute_queried=True, elapsed=10.0)}),
    ("R6", S, "google.com", {**GOOGLE, "google.com.openstacklocal": both(Answer("NOTIMP"))}, None,
     {"1.2.3": Exp(False, "EAI_AGAIN", absolute_queried=False, elapsed=5.0),
      "1.2.5": Exp(False, "EAI_AGAIN", absolute_queried=False, elapsed=5.0),
      "glibc": OK_GOOGLE}),
    ("R7", S, "google.com", {**GOOGLE, "google.com.openstacklocal": both(Answer("FORMERR"))}, None,
     {"1.2.3": Exp(False, "EAI_AGAIN", absolute_queried=False, elapsed=5.0),
      "1.2.5": Exp(False, "EAI_AGAIN", absolute_queried=False, elapsed=5.0),
      "glibc": OK_GOOGLE}),
    ("R8", S.replace("ndots:5", "ndots:5 timeout:1 attempts:1"), "google.com",
     {**GOOGLE, "google.com.openstacklocal": both(Answer("REFUSED"))}, None,
     {"1.2.3": Exp(False, "EAI_AGAIN", absolute_queried=False, elapsed=1.0),
      "1.2.5": Exp(False, "EAI_AGAIN", absolute_queried=False, elapsed=1.0),
      "glibc": OK_GOOGLE}),
    ("R9", S, "google.com", {**GOOGLE, "*.openstacklocal": {"A": Answer("NOERROR", ("10.9.9.9",)), "AAAA": NODATA}}, None,
     {"1.2.3": Exp(True, addresses=frozenset({"10.9.9.9"}), absolute_queried=False),
      "1.2.5": Exp(True, addresses=frozenset({"10.9.9.9"}), absolute_queried=False),
      "glibc": Exp(True, addresses=frozenset({"10.9.9.9"}), absolute_queried=False)}),
    ("R10", S.replace("ndots:5", "ndots:1"), "google.com", {**GOOGLE, "*.openstacklocal": both(NODATA)}, None,
     {"1.2.3": Exp(True, addresses=frozenset({GOOGLE_A, GOOGLE_AAAA}), only_names=frozenset({"google.com"})),
      "1.2.5": Exp(True, addresses=frozenset({GOOGLE_A, GOOGLE_AAAA}), only_names=frozenset({"google.com"})),
      "glibc": OK_GOOGLE}),
    ("R11", S, "google.com.", {**GOOGLE, "*.openstacklocal": both(NODATA)}, None,
     {"1.2.3": Exp(True, addresses=frozenset({GOOGLE_A, GOOGLE_AAAA}), only_names=frozenset({"google.com"})),
      "1.2.5": Exp(True, addresses=frozenset({GOOGLE_A, GOOGLE_AAAA}), only_names=frozenset({"google.com"})),
      "glibc": OK_GOOGLE}),
    ("R12", f"search {CLUSTER} .\nnameserver 127.0.0.1\noptions ndots:5\n", "google.com", GOOGLE, None,
     {"1.1.24": Exp(False, "EAI_AGAIN", absolute_queried=False, elapsed=5.0),
      "1.2.3": Exp(False, "EAI_AGAIN", absolute_queried=False, elapsed=5.0),
      "1.2.5": OK_GOOGLE,
      "glibc": OK_GOOGLE}),
    ("R13", S, "myservice",
     {"myservice.default.svc.cluster.local": {"A": Answer("NOERROR", ("10.96.0.20",)), "AAAA": NODATA}}, None,
     {"1.2.3": Exp(True, addresses=frozenset({"10.96.0.20"}), only_names=frozenset({"myservice.default.svc.cluster.local"})),
      "1.2.5": Exp(True, addresses=frozenset({"10.96.0.20"}), only_names=frozenset({"myservice.default.svc.cluster.local"})),
      "glibc": Exp(True, addresses=frozenset({"10.96.0.20"}), absolute_queried=False)}),
    ("R14", S, "myservice.otherns",
     {"myservice.otherns.svc.cluster.local": {"A": Answer("NOERROR", ("10.96.0.30",)), "AAAA": NODATA}}, None,
     {"1.2.3": Exp(True, addresses=frozenset({"10.96.0.30"}), absolute_queried=False),
      "1.2.5": Exp(True, addresses=frozenset({"10.96.0.30"}), absolute_queried=False),
      "glibc": Exp(True, addresses=frozenset({"10.96.0.30"}))}),
    ("R15", CLUSTER3.replace("ndots:5", "ndots:1"), "myservice.otherns",
     {"myservice.otherns.svc.cluster.local": {"A": Answer("NOERROR", ("10.96.0.30",)), "AAAA": NODATA}}, None,
     {"1.2.3": Exp(False, "EAI_NONAME", only_names=frozenset({"myservice.otherns"}), stopped_at="myservice.otherns"),
      "1.2.5": Exp(False, "EAI_NONAME", only_names=frozenset({"myservice.otherns"}), stopped_at="myservice.otherns"),
      "glibc": Exp(True, addresses=frozenset({"10.96.0.30"}), absolute_queried=True)}),
    ("R16", CLUSTER3.replace("ndots:5", "ndots:2"), "myservice.otherns.svc",
     {"myservice.otherns.svc.cluster.local": {"A": Answer("NOERROR", ("10.96.0.30",)), "AAAA": NODATA}}, None,
     {"1.2.3": Exp(False, "EAI_NONAME", only_names=frozenset({"myservice.otherns.svc"})),
      "1.2.5": Exp(False, "EAI_NONAME", only_names=frozenset({"myservice.otherns.svc"})),
      "glibc": Exp(True, addresses=frozenset({"10.96.0.30"}), absolute_queried=True)}),
    ("R17", f"search {CLUSTER}\nnameserver 127.0.0.1\nnameserver 127.0.0.2\noptions ndots:5\n", "myservice",
     {"myservice.default.svc.cluster.local": {"A": Answer("NOERROR", ("10.96.0.20",), delay=0.3),
                                              "AAAA": Answer("NOERROR", delay=0.3)}},
     {"127.0.0.2": {}},
     {"1.1.24": Exp(False, "EAI_NONAME", absolute_queried=True),
      "1.2.3": Exp(False, "EAI_NONAME", absolute_queried=True),
      "1.2.5": Exp(False, "EAI_NONAME", absolute_queried=True),
      "glibc": Exp(True, addresses=frozenset({"10.96.0.20"}), elapsed=0.3)}),
    ("R18", search_line(255) + "\nnameserver 127.0.0.1\noptions ndots:5\n", "myservice",
     {"myservice.default.svc.cluster.local": {"A": Answer("NOERROR", ("10.96.0.20",)), "AAAA": NODATA}}, None,
     {"1.2.3": Exp(False, "EAI_NONAME", only_names=frozenset({"myservice"})),
      "1.2.5": Exp(False, "EAI_NONAME", only_names=frozenset({"myservice"})),
      "glibc": Exp(True, addresses=frozenset({"10.96.0.20"}))}),
    ("R19", search_line(254) + "\nnameserver 127.0.0.1\noptions ndots:5\n", "myservice",
     {"myservice.default.svc.cluster.local": {"A": Answer("NOERROR", ("10.96.0.20",)), "AAAA": NODATA}}, None,
     {"1.2.3": Exp(True, addresses=frozenset({"10.96.0.20"})),
      "1.2.5": Exp(True, addresses=frozenset({"10.96.0.20"})),
      "glibc": Exp(True, addresses=frozenset({"10.96.0.20"}))}),
    ("R20", CLUSTER3, "google.com",
     {"google.com": {"A": Answer("NOERROR", (GOOGLE_A,)), "AAAA": Answer("SERVFAIL")}}, None,
     {"1.1.24": Exp(True, addresses=frozenset({GOOGLE_A}), elapsed=5.0),
      "1.2.3": Exp(False, "EAI_AGAIN", absolute_queried=True, stopped_at="google.com", elapsed=5.0),
      "1.2.5": Exp(False, "EAI_AGAIN", absolute_queried=True, stopped_at="google.com", elapsed=5.0),
      "glibc": Exp(True, addresses=frozenset({GOOGLE_A}))}),
    ("R21", S, "google.com", {**GOOGLE, "google.com.default.svc.cluster.local": both(NODATA)}, None,
     {"1.2.3": Exp(False, "EAI_NONAME", absolute_queried=False, stopped_at="google.com.default.svc.cluster.local"),
      "1.2.5": Exp(False, "EAI_NODATA", absolute_queried=False, stopped_at="google.com.default.svc.cluster.local"),
      "glibc": OK_GOOGLE}),
    ("R22", S, "doesnotexist.example", GOOGLE, None,
     {"1.2.3": Exp(False, "EAI_NONAME", absolute_queried=True),
      "1.2.5": Exp(False, "EAI_NONAME", absolute_queried=True),
      "glibc": Exp(False, "EAI_NONAME", absolute_queried=True)}),
    ("R23", S, "a.b.c.d.e.example",
     {"a.b.c.d.e.example": {"A": Answer("NOERROR", ("192.0.2.5",)), "AAAA": NODATA}, "*.openstacklocal": both(NODATA)},
     None,
     {"1.2.3": Exp(True, addresses=frozenset({"192.0.2.5"}), only_names=frozenset({"a.b.c.d.e.example"})),
      "1.2.5": Exp(True, addresses=frozenset({"192.0.2.5"}), only_names=frozenset({"a.b.c.d.e.example"})),
      "glibc": Exp(True, addresses=frozenset({"192.0.2.5"}), only_names=frozenset({"a.b.c.d.e.example"}))}),
    ("R24", CLUSTER3 + "domain openstacklocal\n", "myservice",
     {"myservice.default.svc.cluster.local": {"A": Answer("NOERROR", ("10.96.0.20",)), "AAAA": NODATA}}, None,
     {"1.2.3": Exp(False, "EAI_NONAME"),
      "1.2.5": Exp(False, "EAI_NONAME"),
      "glibc": Exp(False, "EAI_NONAME")}),
    ("R25", FOO_CONF, "foo", {**FOO, "foo.openstacklocal": both(Answer("REFUSED"))}, None,
     {"1.2.3": Exp(False, "EAI_AGAIN", absolute_queried=False, stopped_at="foo.openstacklocal", elapsed=5.0),
      "1.2.5": Exp(False, "EAI_AGAIN", absolute_queried=False, stopped_at="foo.openstacklocal", elapsed=5.0),
      "glibc": Exp(False, "EAI_NONAME", absolute_queried=True, stopped_at="foo.openstacklocal")}),
    ("R26", FOO_CONF, "foo", {**FOO, "foo.openstacklocal": both(Answer("SERVFAIL"))}, None,
     {"1.2.3": Exp(False, "EAI_AGAIN", absolute_queried=False, elapsed=5.0),
      "1.2.5": Exp(False, "EAI_AGAIN", absolute_queried=False, elapsed=5.0),
      "glibc": Exp(True, addresses=frozenset({"192.0.2.10"}))}),
    ("R27", FOO_CONF.replace("ndots:5", "ndots:5 timeout:1 attempts:1"), "foo",
     {**FOO, "foo.openstacklocal": both(Answer(None))}, None,
     {"1.2.3": Exp(False, "EAI_AGAIN", absolute_queried=False, elapsed=1.0),
      "1.2.5": Exp(False, "EAI_AGAIN", absolute_queried=False, elapsed=1.0),
      "glibc": Exp(False, "EAI_NONAME", absolute_queried=True, elapsed=1.0)}),
    ("R28", FOO_CONF, "foo", {**FOO, "foo.openstacklocal": both(NODATA)}, None,
     {"1.2.3": Exp(False, "EAI_NONAME", absolute_queried=False, stopped_at="foo.openstacklocal"),
      "1.2.5": Exp(False, "EAI_NODATA", absolute_queried=False, stopped_at="foo.openstacklocal"),
      "glibc": Exp(True, addresses=frozenset({"192.0.2.10"}))}),
    ("R29", "search cluster.local openstacklocal\nnameserver 127.0.0.1\noptions ndots:5\n", "google.com",
     {**GOOGLE, "google.com.openstacklocal": {"A": NODATA, "AAAA": Answer("NXDOMAIN")}}, None,
     {"1.1.24": Exp(False, "EAI_NONAME", absolute_queried=False, stopped_at="google.com.openstacklocal"),
      "1.2.3": OK_GOOGLE,
      "1.2.5": OK_GOOGLE,
      "glibc": OK_GOOGLE}),
]  # fmt: skip

CASES = [
    pytest.param(
        conf, name, records, per_server, who, exp, id=f"{vid}-{'musl-' + who if who != 'glibc' else who}"
    )
    for vid, conf, name, records, per_server, expectations in V
    for who, exp in expectations.items()
]


def check(res, exp: Exp, name: str) -> None:
    absolute = name.rstrip(".")
    names = [q.name for q in res.queries]
    assert res.ok is exp.ok, res.explanation
    assert res.error == exp.error, res.explanation
    if exp.addresses is not None:
        assert set(res.addresses) == exp.addresses
    if exp.absolute_queried is not None:
        assert (absolute in names) is exp.absolute_queried, names
    if exp.stopped_at is not None:
        assert res.stopped_at == exp.stopped_at
    if exp.elapsed is not None:
        assert res.elapsed == pytest.approx(exp.elapsed, abs=0.05)
    if exp.only_names is not None:
        assert set(names) == exp.only_names
    if exp.n_queries is not None:
        assert len(res.queries) == exp.n_queries
    assert res.explanation


@pytest.mark.parametrize(("conf", "name", "records", "per_server", "who", "exp"), CASES)
def test_resolver_vectors_of_domain_md(conf, name, records, per_server, who, exp):
    oracle = table_oracle(records, per_server=per_server)
    if who == "glibc":
        res = simulate_glibc(name, conf, oracle)
    else:
        res = simulate_musl(name, conf, oracle, version=who)
        assert res.version == who
    check(res, exp, name)


def test_every_vector_r1_to_r29_is_covered_for_musl_and_glibc():
    ids = [v[0] for v in V]
    assert ids == [f"R{i}" for i in range(1, 30)]
    for v in V:
        assert "glibc" in v[5] and ({"1.2.3", "1.2.5"} <= set(v[5])), v[0]


# --- behaviour groups ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "group"),
    [
        ("1.1.12", "<1.1.13"),
        ("1.1.13", "<1.2.1"),
        ("1.1.24-r3", "<1.2.1"),
        ("1.2.0", "<1.2.1"),
        ("1.2.1", "1.2.1-1.2.3"),
        ("1.2.3-r4", "1.2.1-1.2.3"),
        ("1.2.4_git20230717-r5", ">=1.2.4"),
        ("v1.2.5", ">=1.2.4"),
    ],
)
def test_musl_behaviour_group_by_version(version, group):
    assert musl_behaviour_group(version) == group


def test_musl_behaviour_group_rejects_garbage():
    with pytest.raises(ValueError):
        musl_behaviour_group("edge")


def test_musl_before_1_1_13_never_searches():
    records = {"myservice.default.svc.cluster.local": {"A": Answer("NOERROR", ("10.96.0.20",))}}
    res = simulate_musl("myservice", CLUSTER3, table_oracle(records), version="1.1.12")
    assert not res.ok and res.error == "EAI_NONAME"
    assert {q.name for q in res.queries} == {"myservice"}


# --- candidate lists ----------------------------------------------------------------------------


def test_musl_tries_search_domains_first_and_the_absolute_name_last():
    res = simulate_musl("doesnotexist.example", S, table_oracle())
    assert res.candidates == [f"doesnotexist.example.{d}" for d in [*CLUSTER.split(), "openstacklocal"]] + [
        "doesnotexist.example"
    ]
    # A before AAAA for each candidate, one server.
    assert [(q.name, q.type) for q in res.queries[:2]] == [
        ("doesnotexist.example.default.svc.cluster.local", "A"),
        ("doesnotexist.example.default.svc.cluster.local", "AAAA"),
    ]


def test_glibc_asks_the_name_as_is_first_when_it_has_ndots_dots():
    conf = CLUSTER3.replace("ndots:5", "ndots:1")
    res = simulate_glibc("nothere.example", conf, table_oracle())
    assert res.candidates == ["nothere.example"] + [f"nothere.example.{d}" for d in CLUSTER.split()]
    assert res.error == "EAI_NONAME"


def test_glibc_no_tld_query_skips_the_single_label_name():
    conf = CLUSTER3 + "options no-tld-query\n"
    res = simulate_glibc("myservice", conf, table_oracle())
    assert "myservice" not in res.candidates
    assert res.error == "EAI_NONAME"


def test_glibc_search_dot_asks_the_root_name_once():
    conf = f"search {CLUSTER} .\nnameserver 127.0.0.1\noptions ndots:5\n"
    res = simulate_glibc("google.com", conf, table_oracle(GOOGLE))
    assert res.ok
    assert [q.name for q in res.queries].count("google.com") == 2  # A and AAAA, not repeated as-is


def test_musl_1_2_3_records_the_malformed_query_for_search_dot():
    conf = f"search {CLUSTER} .\nnameserver 127.0.0.1\noptions ndots:5\n"
    res = simulate_musl("google.com", conf, table_oracle(GOOGLE), version="1.2.3")
    assert res.stopped_at == "google.com.."
    assert res.queries[-1].answer == MALFORMED_QUERY


def test_musl_1_2_4_skips_the_search_dot_candidate():
    conf = f"search {CLUSTER} .\nnameserver 127.0.0.1\noptions ndots:5\n"
    res = simulate_musl("google.com", conf, table_oracle(GOOGLE), version="1.2.4")
    assert res.ok
    assert "google.com.." not in [q.name for q in res.queries]


LONG_NAME = ".".join(["n" * 50] * 4)  # 203 characters, 3 dots: still searched with ndots:5


def test_musl_skips_a_candidate_longer_than_255_characters_silently():
    domain = "d" * 45 + ".example"  # 203 + 1 + 53 = 257 characters
    conf = f"search {domain} cluster.local\nnameserver 127.0.0.1\noptions ndots:5\n"
    for version in ("1.2.3", "1.2.5"):
        res = simulate_musl(LONG_NAME, conf, table_oracle(), version=version)
        assert res.candidates == [f"{LONG_NAME}.cluster.local", LONG_NAME]
        assert res.error == "EAI_NONAME"


def test_musl_before_1_2_4_stops_on_a_name_res_mkquery_rejects():
    # 203 + 1 + 50 = 254 characters: fits musl's candidate buffer, but res_mkquery refuses names over 253.
    domain = "d" * 42 + ".example"
    conf = f"search {domain} cluster.local\nnameserver 127.0.0.1\noptions ndots:5\n"
    old = simulate_musl(LONG_NAME, conf, table_oracle(), version="1.2.3")
    new = simulate_musl(LONG_NAME, conf, table_oracle(), version="1.2.5")
    assert old.error == "EAI_NONAME" and old.queries == []
    assert old.stopped_at == f"{LONG_NAME}.{domain}"
    assert new.error == "EAI_NONAME"
    assert [q.name for q in new.queries] == [f"{LONG_NAME}.cluster.local"] * 2 + [LONG_NAME] * 2


# --- transport ------------------------------------------------------------------------------------


def test_musl_first_positive_answer_from_any_server_wins():
    conf = "nameserver 10.0.0.1\nnameserver 10.0.0.2\n"
    per_server = {
        "10.0.0.1": {"example.org": both(Answer("SERVFAIL"))},
        "10.0.0.2": {"example.org": {"A": Answer("NOERROR", ("192.0.2.1",), delay=0.2), "AAAA": NODATA}},
    }
    res = simulate_musl("example.org", conf, table_oracle(per_server=per_server))
    assert res.ok and res.addresses == ["192.0.2.1"]
    assert res.elapsed == pytest.approx(0.2)
    assert [(q.type, q.server) for q in res.queries] == [
        ("A", "10.0.0.1"),
        ("A", "10.0.0.2"),
        ("AAAA", "10.0.0.1"),
        ("AAAA", "10.0.0.2"),
    ]


def test_glibc_tries_the_next_server_after_servfail():
    conf = "nameserver 10.0.0.1\nnameserver 10.0.0.2\n"
    per_server = {
        "10.0.0.1": {"example.org": both(Answer("SERVFAIL"))},
        "10.0.0.2": {"example.org": {"A": Answer("NOERROR", ("192.0.2.1",)), "AAAA": NODATA}},
    }
    res = simulate_glibc("example.org", conf, table_oracle(per_server=per_server))
    assert res.ok and res.addresses == ["192.0.2.1"]
    assert [q.server for q in res.queries] == ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2"]


def test_glibc_dead_first_server_costs_timeout_then_second_answers():
    conf = "nameserver 10.0.0.1\nnameserver 10.0.0.2\n"
    per_server = {
        "10.0.0.1": {"example.org": both(Answer(None))},
        "10.0.0.2": {"example.org": {"A": Answer("NOERROR", ("192.0.2.1",)), "AAAA": NODATA}},
    }
    res = simulate_glibc("example.org", conf, table_oracle(per_server=per_server))
    assert res.ok and res.elapsed == pytest.approx(5.0)


def test_glibc_all_servers_dead_costs_retrans_shifted_per_server():
    # res_send.c: server i waits (timeout << i) / nscount for i > 0; two attempts → 2 * (5 + 5) = 20 s.
    conf = "nameserver 10.0.0.1\nnameserver 10.0.0.2\noptions ndots:1\n"
    res = simulate_glibc("example.org", conf, table_oracle(default=Answer(None)))
    assert res.error == "EAI_AGAIN"
    assert res.elapsed == pytest.approx(20.0)


def test_musl_1_2_4_retries_truncated_answers_over_tcp():
    records = {"big.example": {"A": Answer("NOERROR", ("192.0.2.1",), truncated=True), "AAAA": NODATA}}
    res = simulate_musl("big.example", "nameserver 10.0.0.1\n", table_oracle(records), version="1.2.5")
    assert res.ok and res.addresses == ["192.0.2.1"]
    assert ("big.example", "A", "tcp") in [(q.name, q.type, q.transport) for q in res.queries]


def test_musl_1_2_3_uses_a_truncated_answer_without_records_as_nodata():
    records = {
        "big.example": {
            "A": Answer("NOERROR", (), truncated=True),
            "A/tcp": Answer("NOERROR", ("192.0.2.1",)),
        }
    }
    res = simulate_musl("big.example", "nameserver 10.0.0.1\n", table_oracle(records), version="1.2.3")
    assert not res.ok and res.error == "EAI_NONAME"
    assert all(q.transport == "udp" for q in res.queries)
    new = simulate_musl("big.example", "nameserver 10.0.0.1\n", table_oracle(records), version="1.2.5")
    assert new.ok and new.addresses == ["192.0.2.1"]


def test_glibc_retries_both_questions_over_tcp_after_truncation():
    records = {
        "big.example": {
            "A": Answer("NOERROR", (), truncated=True),
            "A/tcp": Answer("NOERROR", ("192.0.2.1",)),
        }
    }
    res = simulate_glibc("big.example", "nameserver 10.0.0.1\n", table_oracle(records))
    assert res.ok and res.addresses == ["192.0.2.1"]
    assert [(q.type, q.transport) for q in res.queries] == [
        ("A", "udp"),
        ("AAAA", "udp"),
        ("A", "tcp"),
        ("AAAA", "tcp"),
    ]


def test_glibc_no_aaaa_asks_only_for_a():
    res = simulate_glibc("google.com", "nameserver 10.0.0.1\noptions no-aaaa\n", table_oracle(GOOGLE))
    assert res.ok and res.addresses == [GOOGLE_A]
    assert {q.type for q in res.queries} == {"A"}


def test_glibc_dropped_aaaa_falls_back_to_single_request_modes():
    # send_dg: one reply + timeout → single-request (resend, wait), then single-request-reopen, then
    # the A reply alone: three full waits with one server.
    records = {"example.org": {"A": Answer("NOERROR", ("192.0.2.1",)), "AAAA": Answer(None)}}
    res = simulate_glibc("example.org", "nameserver 10.0.0.1\n", table_oracle(records))
    assert res.ok and res.addresses == ["192.0.2.1"]
    assert res.elapsed == pytest.approx(15.0)


def test_glibc_nodata_everywhere_is_eai_nodata():
    res = simulate_glibc("myservice", CLUSTER3, table_oracle(default=NODATA))
    assert res.error == "EAI_NODATA"


def test_glibc_servfail_everywhere_is_eai_again():
    res = simulate_glibc("myservice", CLUSTER3, table_oracle(default=Answer("SERVFAIL")))
    assert res.error == "EAI_AGAIN"
    assert "myservice" in res.candidates  # SERVFAIL does not stop the search


def test_glibc_refused_for_a_dotted_name_tried_first_keeps_its_error():
    # as-is first (dots >= ndots): its h_errno (TRY_AGAIN after REFUSED) is what getaddrinfo reports.
    conf = "search corp.example\nnameserver 10.0.0.1\noptions ndots:1\n"
    records = {"svc.ns": both(Answer("REFUSED"))}
    res = simulate_glibc("svc.ns", conf, table_oracle(records))
    assert res.candidates == ["svc.ns", "svc.ns.corp.example"]
    assert res.error == "EAI_AGAIN"


def test_numeric_names_need_no_query():
    for sim in (simulate_musl, simulate_glibc):
        res = sim("10.1.2.3", S, table_oracle())
        assert res.ok and res.addresses == ["10.1.2.3"] and res.queries == []


def test_musl_timeout_zero_sends_nothing_and_fails_at_once():
    res = simulate_musl("google.com", S.replace("ndots:5", "ndots:5 timeout:0"), table_oracle(GOOGLE))
    assert res.error == "EAI_AGAIN" and res.queries == [] and res.elapsed == 0


def test_musl_explanation_names_the_stopping_candidate_and_the_missed_name():
    records = {**GOOGLE, "google.com.openstacklocal": both(NODATA)}
    res = simulate_musl("google.com", S, table_oracle(records))
    assert "google.com.openstacklocal" in res.explanation
    assert "NODATA" in res.explanation and "never tried google.com" in res.explanation


# --- the table oracle -----------------------------------------------------------------------------


def test_table_oracle_matches_case_insensitively_and_answers_nodata_for_a_missing_type():
    oracle = table_oracle({"Example.ORG.": {"A": Answer("NOERROR", ("192.0.2.1",))}})
    assert oracle("s", "example.org", "A", "udp").addresses == ("192.0.2.1",)
    assert oracle("s", "EXAMPLE.org", "AAAA", "udp") == Answer("NOERROR")
    assert oracle("s", "other.org", "A", "udp").rcode == "NXDOMAIN"


def test_table_oracle_wildcards_and_per_server_tables():
    oracle = table_oracle(
        {"*.zone": both(Answer("SERVFAIL")), "a.zone": both(NODATA)},
        per_server={"10.0.0.2": {}},
        default=Answer("REFUSED"),
    )
    assert oracle("10.0.0.1", "x.y.zone", "A", "udp").rcode == "SERVFAIL"
    assert oracle("10.0.0.1", "zone", "A", "udp").rcode == "REFUSED"
    assert oracle("10.0.0.1", "a.zone", "A", "udp") == NODATA
    assert oracle("10.0.0.2", "x.zone", "A", "udp").rcode == "REFUSED"


def test_musl_explanation_points_at_the_fast_nxdomain_of_another_server():
    # R17: "fast NXDOMAIN wins" — the explanation must say which server hid the record.
    conf = f"search {CLUSTER}\nnameserver 127.0.0.1\nnameserver 127.0.0.2\noptions ndots:5\n"
    records = {"myservice.default.svc.cluster.local": {"A": Answer("NOERROR", ("10.96.0.20",), delay=0.3)}}
    res = simulate_musl("myservice", conf, table_oracle(records, per_server={"127.0.0.2": {}}))
    assert "127.0.0.2 answered NXDOMAIN first" in res.explanation


def test_glibc_strict_error_drops_the_good_half_of_a_pair_only_from_2_41():
    # res_send.c (2.41, commit 765325951a): in strict-error mode an error reply means "next server".
    conf = "nameserver 10.0.0.1\noptions strict-error\n"
    records = {"google.com": {"A": Answer("NOERROR", (GOOGLE_A,)), "AAAA": Answer("SERVFAIL")}}
    assert simulate_glibc("google.com", conf, table_oracle(records), version="2.36").ok
    strict = simulate_glibc("google.com", conf, table_oracle(records), version="2.41")
    assert not strict.ok and strict.error == "EAI_AGAIN"


def test_ndots_0_musl_never_searches_glibc_asks_as_is_first_then_searches():
    conf = CLUSTER3.replace("ndots:5", "ndots:0")
    records = {"myservice.default.svc.cluster.local": {"A": Answer("NOERROR", ("10.96.0.20",))}}
    musl = simulate_musl("myservice", conf, table_oracle(records))
    glibc = simulate_glibc("myservice", conf, table_oracle(records))
    assert musl.error == "EAI_NONAME" and musl.candidates == ["myservice"]
    assert glibc.ok and glibc.candidates == ["myservice", "myservice.default.svc.cluster.local"]


def test_glibc_single_request_moves_on_at_once_after_servfail():
    # Lab-checked on Debian 12 glibc 2.36 (bug 30081 fix backported): no wait for the unsent AAAA.
    conf = "search bad.example good.example\nnameserver 127.0.0.1\noptions ndots:5 timeout:1 attempts:1 single-request\n"
    records = {
        "foo.bad.example": both(Answer("SERVFAIL")),
        "foo.good.example": {"A": Answer("NOERROR", ("192.0.2.2",))},
    }
    res = simulate_glibc("foo", conf, table_oracle(records))
    assert res.ok and res.elapsed == pytest.approx(0.0)
    assert [(q.name, q.type) for q in res.queries][:1] == [("foo.bad.example", "A")]
    assert ("foo.bad.example", "AAAA") not in [(q.name, q.type) for q in res.queries]


# --- a CNAME chain that ends without an address ("records but no address") --------------------------
# Sources: musl name_from_dns counts only A/AAAA records from dns_parse (a CNAME only sets the canonical
# name), so to musl this is NODATA in every version. glibc's __res_context_query hands an answer back
# when a reply is NOERROR with ancount > 0, which ends res_search; nss_dns then parses no address and
# reports HOST_NOT_FOUND. Lab-checked: tests/lab scenarios X10, X10b, X10c, X10d.

CNAME_CONF = "search corp.example openstacklocal\nnameserver 127.0.0.1\noptions ndots:5\n"
API = {"api": {"A": Answer("NOERROR", ("192.0.2.12",))}}
TO_BAD_ZONE = Answer("NOERROR", cname="api.openstacklocal")


def _names(res) -> list[str]:
    return list(dict.fromkeys(q.name for q in res.queries))


def test_cname_without_address_is_labelled_as_such_not_nodata():
    assert TO_BAD_ZONE.label == "CNAME api.openstacklocal (no address)"
    assert Answer("NOERROR").label == "NODATA"
    # A chain that ends in records is just records.
    assert Answer("NOERROR", ("192.0.2.1",), cname="x.example").label == "records 192.0.2.1"


@pytest.mark.parametrize(
    ("version", "code"), [("1.1.24", "EAI_NONAME"), ("1.2.3", "EAI_NONAME"), ("1.2.5", "EAI_NODATA")]
)
def test_musl_stops_at_a_cname_without_address_like_nodata(version: str, code: str):
    oracle = table_oracle({**API, "api.corp.example": both(TO_BAD_ZONE)})
    res = simulate_musl("api", CNAME_CONF, oracle, version=version)
    assert (res.ok, res.error) == (False, code)
    assert res.stopped_at == "api.corp.example" and _names(res) == ["api.corp.example"]
    assert "CNAME to api.openstacklocal" in res.explanation


def test_glibc_stops_at_a_cname_without_address_and_never_tries_the_name_as_is():
    oracle = table_oracle({**API, "api.corp.example": both(TO_BAD_ZONE)})
    res = simulate_glibc("api", CNAME_CONF, oracle)
    assert (res.ok, res.error) == (False, "EAI_NONAME")
    assert res.candidates == ["api.corp.example"] and res.stopped_at == "api.corp.example"
    assert [q.answer for q in res.queries] == ["CNAME api.openstacklocal (no address)"] * 2
    # The same server saying plain NODATA lets glibc search on and find the name as-is.
    nodata = simulate_glibc("api", CNAME_CONF, table_oracle({**API, "api.corp.example": both(NODATA)}))
    assert nodata.ok and nodata.addresses == ["192.0.2.12"]


def test_glibc_one_cname_only_reply_ends_the_search_while_musl_moves_on_at_the_other_nxdomain():
    conf = "search corp.example\nnameserver 127.0.0.1\noptions ndots:5\n"
    oracle = table_oracle({**API, "api.corp.example": {"A": TO_BAD_ZONE, "AAAA": Answer("NXDOMAIN")}})
    glibc = simulate_glibc("api", conf, oracle)
    assert (glibc.ok, glibc.error, glibc.candidates) == (False, "EAI_NONAME", ["api.corp.example"])
    musl = simulate_musl("api", conf, oracle, version="1.2.5")
    assert musl.ok and musl.addresses == ["192.0.2.12"] and musl.candidates == ["api.corp.example", "api"]
    # Before 1.2.1 only the A reply's rcode counts: NOERROR (no address) stops the search.
    old = simulate_musl("api", conf, oracle, version="1.1.24")
    assert (old.ok, old.error, old.stopped_at) == (False, "EAI_NONAME", "api.corp.example")


def test_glibc_cname_only_a_with_nodata_aaaa_is_eai_noname_not_eai_nodata():
    oracle = table_oracle({**API, "api.corp.example": {"A": TO_BAD_ZONE, "AAAA": NODATA}})
    res = simulate_glibc("api", CNAME_CONF, oracle)
    assert (res.ok, res.error, res.candidates) == (False, "EAI_NONAME", ["api.corp.example"])


def test_cname_chain_ending_in_aaaa_only_still_resolves_everywhere():
    oracle = table_oracle(
        {
            "api.corp.example": {
                "A": Answer("NOERROR", cname="v6.corp.example"),
                "AAAA": Answer("NOERROR", ("2001:db8::12",)),
            }
        }
    )
    for res in (
        simulate_glibc("api", CNAME_CONF, oracle),
        simulate_musl("api", CNAME_CONF, oracle, version="1.1.24"),
        simulate_musl("api", CNAME_CONF, oracle, version="1.2.5"),
    ):
        assert res.ok and res.addresses == ["2001:db8::12"], res.libc


def test_glibc_dotted_name_with_cname_without_address_as_is_never_searches():
    conf = "search corp.example\nnameserver 127.0.0.1\noptions ndots:1\n"
    oracle = table_oracle(
        {
            "api.example": both(Answer("NOERROR", cname="gone.example")),
            "api.example.corp.example": both(Answer("NOERROR", ("192.0.2.13",))),
        }
    )
    res = simulate_glibc("api.example", conf, oracle)
    assert (res.ok, res.error, res.candidates) == (False, "EAI_NONAME", ["api.example"])


# --- search_step: the probe matrix's "what each libc does next" -----------------------------------------


@pytest.mark.parametrize(
    ("a", "aaaa", "version", "musl", "glibc"),
    [
        (Answer("NXDOMAIN"), Answer("NXDOMAIN"), "1.2.5", "continues", "continues"),
        (Answer("NOERROR"), Answer("NOERROR"), "1.2.5", "stops", "continues"),  # R2: NODATA
        (Answer("SERVFAIL"), Answer("SERVFAIL"), "1.2.5", "stops", "continues"),  # R3
        (Answer(None), Answer(None), "1.2.5", "stops", "continues"),  # R5: glibc tries the name itself
        (Answer("NOERROR"), Answer("NXDOMAIN"), "1.2.5", "continues", "continues"),  # R29, >= 1.2.1
        (Answer("NOERROR"), Answer("NXDOMAIN"), "1.1.24", "stops", "continues"),  # R29, 1.1.24
        (Answer("SERVFAIL"), Answer("NXDOMAIN"), "1.2.5", "stops", "continues"),  # A errored first
        (Answer("NOERROR", ("10.9.9.9",)), Answer("NOERROR"), "1.2.5", "answers", "answers"),  # R9 wildcard
    ],
)
def test_search_step_matches_the_documented_vectors(a, aaaa, version, musl, glibc):
    from dnsaudit.core.resolver import search_step

    assert search_step(a, aaaa, "musl", version) == musl
    assert search_step(a, aaaa, "glibc") == glibc
