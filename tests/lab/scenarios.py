"""Lab scenarios: domain.md §8.1 R1–R29 plus cases of our own (X*).

Timeouts are ``timeout:1 attempts:1`` wherever the outcome does not depend on them (so the lab stays
fast); R3 and R5 keep the libc defaults (5 s / 2 attempts) to check the time a failure costs.
``documented`` is what domain.md says the real libc does (``OK`` or the ``EAI_*`` code). Where the real
libcs disagree with domain.md the value holds the real behaviour and a ``CONTRADICTS domain.md`` note.
"""

from __future__ import annotations

from dnsaudit.testbed.fakedns import Behaviour, Rule, Script
from tests.lab.harness import Scenario

CLUSTER = "default.svc.cluster.local svc.cluster.local cluster.local"
S_SEARCH = f"{CLUSTER} openstacklocal"
FAST = "timeout:1 attempts:1"


def conf(search: str | None, options: str = f"ndots:5 {FAST}", ns: tuple[str, ...] = ("127.0.0.1",)) -> str:
    lines = []
    if search is not None:
        lines.append(f"search {search}")
    lines += [f"nameserver {n}" for n in ns]
    if options:
        lines.append(f"options {options}")
    return "\n".join(lines) + "\n"


def rec(name: str, *, a: tuple[str, ...] = (), aaaa: tuple[str, ...] = (), qtype: str = "*", **kw) -> Rule:
    return Rule(name, Behaviour("answer", a=a, aaaa=aaaa, **kw), qtype)


def act(name: str, action: str, qtype: str = "*", **kw) -> Rule:
    return Rule(name, Behaviour(action, **kw), qtype)


GOOGLE = rec("google.com", a=("142.250.1.1",), aaaa=("2a00:1450::1",))
MYSVC = rec("myservice.default.svc.cluster.local", a=("10.96.0.20",))
OTHERNS = rec("myservice.otherns.svc.cluster.local", a=("10.96.0.21",))
LONG_NAME = ".".join(c * 63 for c in "abc")  # 191 chars, 2 dots
FOO_CORP = rec("foo.corp.example", a=("192.0.2.10",))


def one(*rules: Rule) -> dict[str, Script]:
    return {"127.0.0.1": Script(list(rules))}


ALL_OK = {"glibc": "OK", "musl-1.2.3": "OK", "musl-1.2.5": "OK"}


def musl(code: str, glibc: str = "OK", code_123: str | None = None) -> dict[str, str]:
    return {"glibc": glibc, "musl-1.2.3": code_123 or code, "musl-1.2.5": code}


def _search_line(total: int) -> str:
    """A ``search`` line of exactly ``total`` characters (without the newline), cluster domains first."""
    line = f"search {CLUSTER}"
    i = 0
    while len(line) < total:
        room = total - len(line) - 1  # one space before each extra domain
        n = room if room <= 50 else 40  # after a 40-char chunk more than 10 remain, so never 0
        line += " " + (f"p{i}" + "x" * n)[:n]
        i += 1
    assert len(line) == total
    return line


def _long_search_conf(total: int) -> str:
    return _search_line(total) + "\nnameserver 127.0.0.1\noptions ndots:5 timeout:1 attempts:1\n"


SCENARIOS: list[Scenario] = [
    Scenario(
        "R1", conf(S_SEARCH), "google.com", one(GOOGLE), documented=ALL_OK, note="all NXDOMAIN, absolute last"
    ),
    Scenario(
        "R2",
        conf(S_SEARCH),
        "google.com",
        one(GOOGLE, act("*.openstacklocal", "NODATA")),
        documented=musl("EAI_NODATA", code_123="EAI_NONAME"),
    ),
    Scenario(
        "R3",
        conf(S_SEARCH, options="ndots:5"),
        "google.com",
        one(GOOGLE, act("*.openstacklocal", "SERVFAIL")),
        documented=musl("EAI_AGAIN"),
        note="default timeout 5 s",
    ),
    Scenario(
        "R4",
        conf(S_SEARCH),
        "google.com",
        one(GOOGLE, act("*.openstacklocal", "REFUSED")),
        documented=musl("EAI_AGAIN"),
    ),
    Scenario(
        "R5",
        conf(S_SEARCH, options="ndots:5"),
        "google.com",
        one(GOOGLE, act("*.openstacklocal", "drop")),
        documented=musl("EAI_AGAIN"),
        note="defaults: musl 5 s, glibc 10 s",
    ),
    Scenario(
        "R6",
        conf(S_SEARCH),
        "google.com",
        one(GOOGLE, act("*.openstacklocal", "NOTIMP")),
        documented=musl("EAI_AGAIN"),
    ),
    Scenario(
        "R7",
        conf(S_SEARCH),
        "google.com",
        one(GOOGLE, act("*.openstacklocal", "FORMERR")),
        documented=musl("EAI_AGAIN"),
    ),
    Scenario(
        "R8",
        conf(S_SEARCH),
        "google.com",
        one(GOOGLE, act("*.openstacklocal", "REFUSED")),
        documented=musl("EAI_AGAIN"),
    ),
    Scenario(
        "R9",
        conf(S_SEARCH),
        "google.com",
        one(GOOGLE, rec("*.openstacklocal", a=("10.9.9.9",))),
        documented=ALL_OK,
        note="wildcard: wrong IP everywhere",
    ),
    Scenario(
        "R10",
        conf(S_SEARCH, options=f"ndots:1 {FAST}"),
        "google.com",
        one(GOOGLE, act("*.openstacklocal", "NODATA")),
        documented=ALL_OK,
    ),
    Scenario(
        "R11",
        conf(S_SEARCH),
        "google.com.",
        one(GOOGLE, act("*.openstacklocal", "NODATA")),
        documented=ALL_OK,
    ),
    Scenario(
        "R12",
        conf(f"{CLUSTER} ."),
        "google.com",
        one(GOOGLE),
        documented=musl("OK", code_123="EAI_AGAIN"),
        note="search . : musl<=1.2.3 sends a malformed google.com..",
    ),
    Scenario(
        "R13", conf(S_SEARCH), "myservice", one(MYSVC, act("*.openstacklocal", "NODATA")), documented=ALL_OK
    ),
    Scenario("R14", conf(S_SEARCH), "myservice.otherns", one(OTHERNS), documented=ALL_OK),
    Scenario(
        "R15",
        conf(CLUSTER, options=f"ndots:1 {FAST}"),
        "myservice.otherns",
        one(OTHERNS),
        documented=musl("EAI_NONAME"),
    ),
    Scenario(
        "R16",
        conf(CLUSTER, options=f"ndots:2 {FAST}"),
        "myservice.otherns.svc",
        one(OTHERNS),
        documented=musl("EAI_NONAME"),
    ),
    Scenario(
        "R17",
        conf(CLUSTER, ns=("127.0.0.1", "127.0.0.2")),
        "myservice",
        {
            "127.0.0.1": Script([rec("myservice.default.svc.cluster.local", a=("10.96.0.20",), delay=0.3)]),
            "127.0.0.2": Script([]),
        },
        documented=musl("EAI_NONAME"),
        note="parallel nameservers: the fast NXDOMAIN wins",
    ),
    Scenario(
        "R18",
        _long_search_conf(255),
        "myservice",
        one(MYSVC),
        documented=musl("EAI_NONAME"),
        note="255-char search line ignored by musl",
    ),
    Scenario(
        "R19", _long_search_conf(254), "myservice", one(MYSVC), documented=ALL_OK, note="254 chars still fits"
    ),
    Scenario(
        "R20",
        conf(CLUSTER),
        "google.com",
        one(rec("google.com", a=("142.250.1.1",), qtype="A"), act("google.com", "SERVFAIL", "AAAA")),
        documented=musl("EAI_AGAIN"),
    ),
    Scenario(
        "R21",
        conf(S_SEARCH),
        "google.com",
        one(GOOGLE, act("google.com.default.svc.cluster.local", "NODATA")),
        documented=musl("EAI_NODATA", code_123="EAI_NONAME"),
    ),
    Scenario(
        "R22",
        conf(S_SEARCH),
        "doesnotexist.example",
        one(GOOGLE),
        documented=musl("EAI_NONAME", glibc="EAI_NONAME"),
    ),
    Scenario(
        "R23",
        conf(S_SEARCH),
        "a.b.c.d.e.example",
        one(rec("a.b.c.d.e.example", a=("192.0.2.5",)), act("*.openstacklocal", "NODATA")),
        documented=ALL_OK,
    ),
    Scenario(
        "R24",
        f"search {CLUSTER}\nnameserver 127.0.0.1\ndomain openstacklocal\noptions ndots:5 {FAST}\n",
        "myservice",
        one(MYSVC),
        documented=musl("EAI_NONAME", glibc="EAI_NONAME"),
    ),
    Scenario(
        "R25",
        conf("openstacklocal corp.example"),
        "foo",
        one(FOO_CORP, act("*.openstacklocal", "REFUSED")),
        documented=musl("EAI_AGAIN", glibc="EAI_NONAME"),
    ),
    Scenario(
        "R26",
        conf("openstacklocal corp.example"),
        "foo",
        one(FOO_CORP, act("*.openstacklocal", "SERVFAIL")),
        documented=musl("EAI_AGAIN"),
    ),
    Scenario(
        "R27",
        conf("openstacklocal corp.example"),
        "foo",
        one(FOO_CORP, act("*.openstacklocal", "drop")),
        documented=musl("EAI_AGAIN", glibc="EAI_NONAME"),
    ),
    Scenario(
        "R28",
        conf("openstacklocal corp.example"),
        "foo",
        one(FOO_CORP, act("*.openstacklocal", "NODATA")),
        documented=musl("EAI_NODATA", code_123="EAI_NONAME"),
    ),
    Scenario(
        "R29",
        conf("cluster.local openstacklocal"),
        "google.com",
        one(GOOGLE, act("*.openstacklocal", "NODATA", "A"), act("*.openstacklocal", "NXDOMAIN", "AAAA")),
        documented=ALL_OK,
    ),
    # --- our own ---------------------------------------------------------------------------------------
    Scenario(
        "X01-dead-first-server",
        conf(None, options=FAST, ns=("127.0.0.1", "127.0.0.2")),
        "google.com",
        {"127.0.0.1": Script([act("*", "drop")]), "127.0.0.2": Script([GOOGLE])},
        documented=ALL_OK,
        note="musl asks both at once; glibc waits out the first server",
    ),
    Scenario(
        "X02-servfail-server-and-good-server",
        conf(None, options=FAST, ns=("127.0.0.1", "127.0.0.2")),
        "google.com",
        {"127.0.0.1": Script([act("*", "SERVFAIL")]), "127.0.0.2": Script([GOOGLE])},
        documented=ALL_OK,
    ),
    Scenario(
        "X03-servers-disagree-on-bad-domain",
        conf(S_SEARCH, ns=("127.0.0.1", "127.0.0.2")),
        "google.com",
        {
            "127.0.0.1": Script([GOOGLE, act("*.openstacklocal", "SERVFAIL")]),
            "127.0.0.2": Script([GOOGLE]),
        },
        documented=ALL_OK,
        note="musl drops the SERVFAIL and takes the other server's NXDOMAIN",
    ),
    Scenario(
        "X04-large-answer-truncated",
        conf(None, options=FAST),
        "big.example",
        one(Rule("big.example", Behaviour("answer", many_a=60))),
        documented=ALL_OK,
        note="UDP keeps the records that fit; 1.2.5 and glibc retry over TCP",
    ),
    Scenario(
        "X05-tc-with-empty-answer",
        conf(None, options=FAST),
        "tc.example",
        one(Rule("tc.example", Behaviour("answer", a=("192.0.2.7",), truncate=True))),
        documented=musl("OK", code_123="EAI_NONAME"),
        note="musl<1.2.4 has no TCP fallback: an empty TC reply is NODATA",
    ),
    Scenario(
        "X06-single-label",
        conf("d1.example d2.example", options=f"ndots:1 {FAST}"),
        "myhost",
        one(rec("myhost.d2.example", a=("192.0.2.8",))),
        documented=ALL_OK,
    ),
    Scenario(
        "X07-ndots0-single-label",
        conf("d1.example", options=f"ndots:0 {FAST}"),
        "myhost",
        one(rec("myhost.d1.example", a=("192.0.2.8",))),
        documented=musl("EAI_NONAME"),
        note="ndots:0: musl never searches; glibc tries as-is then the search list",
    ),
    Scenario(
        "X08-search-dot-only",
        conf(".", options=f"ndots:1 {FAST}"),
        "myhost",
        one(rec("myhost", a=("192.0.2.9",))),
        documented=musl("OK", code_123="EAI_AGAIN"),
    ),
    Scenario(
        "X09-cname-chain",
        conf(None, options=FAST),
        "www.example",
        one(
            Rule("www.example", Behaviour("answer", cname="edge.example")),
            Rule("edge.example", Behaviour("answer", cname="final.example")),
            rec("final.example", a=("192.0.2.11",), aaaa=("2001:db8::11",)),
        ),
        documented=ALL_OK,
    ),
    Scenario(
        "X10-cname-to-bad-zone-in-search",
        conf("corp.example openstacklocal"),
        "api",
        one(
            Rule("api.corp.example", Behaviour("answer", cname="api.openstacklocal")),
            act("*.openstacklocal", "NODATA"),
            rec("api", a=("192.0.2.12",)),
        ),
        documented=musl("EAI_NODATA", glibc="EAI_NONAME", code_123="EAI_NONAME"),
        note="lab finding: a CNAME-only NOERROR answer also ends glibc's search (ancount > 0), "
        "and glibc does not try the name as-is afterwards",
    ),
    Scenario(
        "X10b-cname-only-a-nxdomain-aaaa-in-search",
        conf("corp.example"),
        "api",
        one(
            Rule("api.corp.example", Behaviour("answer", cname="api.openstacklocal"), "A"),
            act("api.corp.example", "NXDOMAIN", "AAAA"),
            act("*.openstacklocal", "NODATA"),
            rec("api", a=("192.0.2.12",)),
        ),
        documented=musl("OK", glibc="EAI_NONAME"),
        note="the one reply with records (the A reply's CNAME) ends glibc's search; musl >=1.2.1 moves on "
        "at the AAAA reply's NXDOMAIN and finds the name as-is",
    ),
    Scenario(
        "X10c-cname-only-a-nodata-aaaa-in-search",
        conf("corp.example openstacklocal"),
        "api",
        one(
            Rule("api.corp.example", Behaviour("answer", cname="api.openstacklocal"), "A"),
            act("api.corp.example", "NODATA", "AAAA"),
            act("*.openstacklocal", "NODATA"),
            rec("api", a=("192.0.2.12",)),
        ),
        documented=musl("EAI_NODATA", glibc="EAI_NONAME", code_123="EAI_NONAME"),
        note="one CNAME-only reply is enough to end glibc's search; the other reply's NODATA does not make "
        "it EAI_NODATA",
    ),
    Scenario(
        "X10d-cname-to-aaaa-only-name",
        conf("corp.example openstacklocal"),
        "api",
        one(
            Rule("api.corp.example", Behaviour("answer", cname="v6.corp.example")),
            rec("v6.corp.example", aaaa=("2001:db8::12",)),
            rec("api", a=("192.0.2.12",)),
        ),
        documented=ALL_OK,
        note="a CNAME chain ending in an AAAA record only: the A reply is CNAME-only, the AAAA reply has the "
        "address, and every libc returns it",
    ),
    Scenario(
        "X11-a-nxdomain-aaaa-nodata-in-search",
        conf("cluster.local openstacklocal"),
        "google.com",
        one(GOOGLE, act("*.openstacklocal", "NXDOMAIN", "A"), act("*.openstacklocal", "NODATA", "AAAA")),
        documented=ALL_OK,
    ),
    Scenario(
        "X12-four-nameservers-fourth-ignored",
        conf(None, options=FAST, ns=("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")),
        "google.com",
        {
            "127.0.0.1": Script([act("*", "REFUSED")]),
            "127.0.0.2": Script([act("*", "REFUSED")]),
            "127.0.0.3": Script([act("*", "REFUSED")]),
            "127.0.0.4": Script([GOOGLE]),
        },
        documented=musl("EAI_AGAIN", glibc="EAI_AGAIN"),
        note="only the first three nameservers are used",
    ),
    Scenario(
        "X13-domain-line-only",
        f"domain corp.example\nnameserver 127.0.0.1\noptions {FAST}\n",
        "foo",
        one(FOO_CORP),
        documented=ALL_OK,
    ),
    Scenario(
        "X14-real-name-a-ok-aaaa-nxdomain",
        conf(None, options=FAST),
        "odd.example",
        one(rec("odd.example", a=("192.0.2.13",), qtype="A"), act("odd.example", "NXDOMAIN", "AAAA")),
        documented=musl("EAI_NONAME"),
        note="lab finding: musl >=1.2.1 treats NXDOMAIN in either reply as 'does not exist' even when "
        "the other reply has an A record; glibc uses the A record",
    ),
    Scenario(
        "X15-candidate-too-long-skipped",
        conf("x" * 60 + "." + "y" * 60 + "." + "z" * 60 + "." + "w" * 50 + " corp.example"),
        "foo",
        one(FOO_CORP),
        documented=ALL_OK,
        note="foo.<235 chars> is 239 chars: fits; see X16 for one that does not",
    ),
    Scenario(
        "X16-long-domain-makes-search-line-too-long",
        conf("x" * 62 + "." + "y" * 62 + "." + "z" * 62 + "." + "w" * 62 + " corp.example"),
        "foo",
        one(FOO_CORP),
        documented=musl("EAI_NONAME", glibc="EAI_NONAME"),
        note="musl ignores the 271-char search line; glibc stops its search at the 255-char candidate "
        "it cannot encode and tries only the name as-is",
    ),
    Scenario(
        "X18-long-name-candidate-too-long",
        conf("p" * 60 + ".example corp.example"),
        LONG_NAME,
        one(rec(LONG_NAME + ".corp.example", a=("192.0.2.14",))),
        documented=musl("OK", glibc="EAI_NONAME"),
        note="musl skips a candidate over 254 chars and goes on; glibc ends the search there",
    ),
    Scenario(
        "X17-ndots-default-dotted-name-absolute-first",
        conf(CLUSTER, options=FAST),
        "google.com",
        one(GOOGLE, act("google.com.default.svc.cluster.local", "NODATA")),
        documented=ALL_OK,
        note="ndots:1 default: absolute name first and it answers",
    ),
]

assert len({s.id for s in SCENARIOS}) == len(SCENARIOS)
BY_ID = {s.id: s for s in SCENARIOS}
