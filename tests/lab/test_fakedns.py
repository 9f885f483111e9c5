"""The scripted DNS server, asked over real UDP/TCP sockets on loopback with plain dnspython."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from dnsaudit.testbed.fakedns import Behaviour, Rule, Script, ScriptedDNS, ScriptError, script_from_json

ROOT = Path(__file__).resolve().parents[2]


def ask(
    port: int, name: str, qtype: str = "A", *, tcp: bool = False, timeout: float = 2.0
) -> dns.message.Message:
    q = dns.message.make_query(name, qtype)
    if tcp:
        return dns.query.tcp(q, "127.0.0.1", port=port, timeout=timeout)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=timeout)


def addrs(msg: dns.message.Message, qtype: str = "A") -> set[str]:
    want = dns.rdatatype.from_text(qtype)
    return {r.to_text() for rr in msg.answer if rr.rdtype == want for r in rr}


def test_records_are_answered_authoritatively_with_recursion_available() -> None:
    rules = [Rule("google.com", Behaviour("answer", a=("142.250.1.1",), aaaa=("2a00:1450::1",)))]
    with ScriptedDNS(rules) as srv:
        a = ask(srv.port, "google.com.")
        aaaa = ask(srv.port, "GOOGLE.com.", "AAAA", tcp=True)
    assert a.rcode() == dns.rcode.NOERROR and addrs(a) == {"142.250.1.1"}
    assert addrs(aaaa, "AAAA") == {"2a00:1450::1"}
    assert a.flags & dns.flags.AA and a.flags & dns.flags.RA
    assert [(e.qname, e.qtype, e.transport) for e in srv.log] == [
        ("google.com", "A", "udp"),
        ("google.com", "AAAA", "tcp"),
    ]


def test_nodata_is_noerror_without_answers_and_still_authoritative() -> None:
    with ScriptedDNS([Rule("*.openstacklocal", Behaviour("NODATA"))]) as srv:
        msg = ask(srv.port, "google.com.openstacklocal.")
    assert msg.rcode() == dns.rcode.NOERROR and not msg.answer
    assert msg.flags & dns.flags.AA and msg.flags & dns.flags.RA  # glibc must not call it lame


@pytest.mark.parametrize("rcode", ["NXDOMAIN", "SERVFAIL", "REFUSED", "NOTIMP", "FORMERR"])
def test_each_error_rcode_is_sent_as_scripted(rcode: str) -> None:
    with ScriptedDNS([Rule("bad.example", Behaviour(rcode))]) as srv:
        assert dns.rcode.to_text(ask(srv.port, "bad.example.").rcode()) == rcode
        assert dns.rcode.to_text(ask(srv.port, "bad.example.", "AAAA", tcp=True).rcode()) == rcode


def test_wildcard_matches_names_below_the_zone_but_not_the_zone_and_first_rule_wins() -> None:
    rules = [
        Rule("keep.openstacklocal", Behaviour("answer", a=("10.0.0.1",))),
        Rule("*.openstacklocal", Behaviour("SERVFAIL")),
    ]
    with ScriptedDNS(rules) as srv:
        assert addrs(ask(srv.port, "keep.openstacklocal.")) == {"10.0.0.1"}
        assert ask(srv.port, "a.b.openstacklocal.").rcode() == dns.rcode.SERVFAIL
        assert ask(srv.port, "openstacklocal.").rcode() == dns.rcode.NXDOMAIN  # default


def test_rules_can_differ_per_query_type() -> None:
    rules = [
        Rule("mixed.example", Behaviour("answer", a=("192.0.2.1",)), "A"),
        Rule("mixed.example", Behaviour("SERVFAIL"), "AAAA"),
    ]
    with ScriptedDNS(rules) as srv:
        assert addrs(ask(srv.port, "mixed.example.")) == {"192.0.2.1"}
        assert ask(srv.port, "mixed.example.", "AAAA").rcode() == dns.rcode.SERVFAIL


def test_drop_sends_nothing_and_delay_holds_the_reply() -> None:
    rules = [
        Rule("gone.example", Behaviour("drop")),
        Rule("slow.example", Behaviour("answer", a=("192.0.2.2",), delay=0.3)),
    ]
    with ScriptedDNS(rules) as srv:
        with pytest.raises(dns.exception.Timeout):
            ask(srv.port, "gone.example.", timeout=0.3)
        t0 = time.monotonic()
        assert addrs(ask(srv.port, "slow.example.")) == {"192.0.2.2"}
        assert time.monotonic() - t0 >= 0.29
        assert [e.qname for e in srv.log] == ["gone.example", "slow.example"]


def test_truncate_sets_tc_over_udp_and_tcp_gets_the_full_answer() -> None:
    with ScriptedDNS([Rule("tc.example", Behaviour("answer", a=("192.0.2.3",), truncate=True))]) as srv:
        udp = ask(srv.port, "tc.example.")
        tcp = ask(srv.port, "tc.example.", tcp=True)
    assert udp.flags & dns.flags.TC and not udp.answer
    assert not tcp.flags & dns.flags.TC and addrs(tcp) == {"192.0.2.3"}


def test_large_answer_is_cut_to_512_bytes_over_udp_keeping_whole_records() -> None:
    with ScriptedDNS([Rule("big.example", Behaviour("answer", many_a=60))]) as srv:
        q = dns.message.make_query("big.example.", "A", use_edns=False)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(2)
        sock.sendto(q.to_wire(), ("127.0.0.1", srv.port))
        wire = sock.recv(65535)
        sock.close()
        tcp = ask(srv.port, "big.example.", tcp=True)
    udp = dns.message.from_wire(wire)
    assert len(wire) <= 512 and udp.flags & dns.flags.TC
    assert 0 < len(addrs(udp)) < 60
    assert len(addrs(tcp)) == 60
    assert srv.answer("big.example", "A", "udp").addresses == tuple(
        sorted(addrs(udp), key=lambda a: [int(x) for x in a.split(".")])
    )


def test_cname_chain_is_followed_inside_the_script() -> None:
    rules = [
        Rule("www.example", Behaviour("answer", cname="edge.example")),
        Rule("edge.example", Behaviour("answer", cname="final.example")),
        Rule("final.example", Behaviour("answer", a=("192.0.2.4",))),
        Rule("dangling.example", Behaviour("answer", cname="nowhere.example")),
    ]
    with ScriptedDNS(rules) as srv:
        msg = ask(srv.port, "www.example.")
        dangling = ask(srv.port, "dangling.example.")
    assert addrs(msg) == {"192.0.2.4"}
    assert [rr.rdtype for rr in msg.answer].count(dns.rdatatype.CNAME) == 2
    assert dangling.rcode() == dns.rcode.NXDOMAIN  # the target does not exist


def _musl123_bad_query(qid: int) -> bytes:
    # What musl <=1.2.3 res_mkquery builds for "google.com..": the last '.' stays as a length byte.
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    return header + b"\x06google\x03com\x2e\x00" + struct.pack("!HH", 1, 1)


def test_malformed_query_gets_formerr_with_its_id_and_is_logged() -> None:
    with ScriptedDNS([]) as srv:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(2)
        sock.sendto(_musl123_bad_query(0x4242), ("127.0.0.1", srv.port))
        reply = sock.recv(512)
        sock.close()
    qid, flags = struct.unpack("!HH", reply[:4])
    assert qid == 0x4242 and flags & 0x8000 and flags & 0xF == dns.rcode.FORMERR
    assert srv.log[0].qname == "google.com.." and srv.log[0].qtype == "?"


def test_garbage_never_crashes_the_server() -> None:
    import random

    rng = random.Random(1234)
    with ScriptedDNS([Rule("ok.example", Behaviour("answer", a=("192.0.2.5",)))]) as srv:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for n in [0, 1, 11, 12, 13, 40, 300, 1500]:
            for _ in range(20):
                sock.sendto(bytes(rng.getrandbits(8) for _ in range(n)), ("127.0.0.1", srv.port))
        with socket.create_connection(("127.0.0.1", srv.port)) as tcp:
            tcp.sendall(b"\x00\x05abcde\xff\xff")  # a short frame, then a frame that never completes
        sock.close()
        assert addrs(ask(srv.port, "ok.example.")) == {"192.0.2.5"}
        assert addrs(ask(srv.port, "ok.example.", tcp=True)) == {"192.0.2.5"}


def test_script_json_round_trips_and_rejects_bad_rules() -> None:
    data = {
        "default": {"action": "NXDOMAIN"},
        "rules": [
            {"name": "*.openstacklocal", "action": "NODATA"},
            {"name": "google.com", "a": ["142.250.1.1"], "type": "A"},
        ],
    }
    script = script_from_json(data)
    assert script_from_json(script.to_json()) == script
    assert script.answer("google.com", "A").addresses == ("142.250.1.1",)
    assert script.answer("x.openstacklocal", "AAAA").label == "NODATA"
    for bad in (
        {"rules": [{"name": "x", "action": "MAYBE"}]},
        {"rules": [{"a": ["1.2.3.4"]}]},
        {"rules": [{"name": "x", "a": ["nope"]}]},
    ):
        with pytest.raises((ScriptError, ValueError)):
            script_from_json(bad)


def test_oracle_view_matches_what_the_wire_says() -> None:
    from dnsaudit.boundary.dns import query

    script = Script(
        [
            Rule("rec.example", Behaviour("answer", a=("192.0.2.6",), aaaa=("2001:db8::6",))),
            Rule("*.nodata", Behaviour("NODATA")),
            Rule("sf.example", Behaviour("SERVFAIL")),
            Rule("ref.example", Behaviour("REFUSED")),
            Rule("drop.example", Behaviour("drop")),
            Rule("tc.example", Behaviour("answer", a=("192.0.2.7",), truncate=True)),
            Rule("big.example", Behaviour("answer", many_a=50)),
        ]
    )
    with ScriptedDNS(script) as srv:
        for name in [
            "rec.example",
            "x.nodata",
            "sf.example",
            "ref.example",
            "drop.example",
            "tc.example",
            "big.example",
            "nx.example",
        ]:
            for qtype in ("A", "AAAA"):
                for transport in ("udp", "tcp"):
                    wire = query("127.0.0.1", name, qtype, port=srv.port, tcp=transport == "tcp", timeout=0.3)
                    want = script.answer(name, qtype, transport)
                    got = (wire.rcode, set(wire.addresses), wire.truncated)
                    assert got == (want.rcode, set(want.addresses), want.truncated), (name, qtype, transport)


def test_cli_serves_a_script_file_and_logs_questions_as_json_lines(tmp_path: Path) -> None:
    from tests.support import free_port

    script = tmp_path / "s.json"
    script.write_text(json.dumps({"rules": [{"name": "*.openstacklocal", "action": "SERVFAIL"}]}))
    log = tmp_path / "q.jsonl"
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dnsaudit.testbed.fakedns",
            "--listen",
            f"127.0.0.1:{port}",
            "--script",
            str(script),
            "--log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout.readline().split() == ["listening", "127.0.0.1", str(port)]
        assert ask(port, "x.openstacklocal.").rcode() == dns.rcode.SERVFAIL
        assert ask(port, "y.example.", "AAAA", tcp=True).rcode() == dns.rcode.NXDOMAIN
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
        proc.stdout.close()
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [(x["qname"], x["qtype"], x["transport"]) for x in lines] == [
        ("x.openstacklocal", "A", "udp"),
        ("y.example", "AAAA", "tcp"),
    ]


def test_cli_rejects_a_bad_script_with_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"rules": [{"name": "x", "action": "PERHAPS"}]}')
    out = subprocess.run(
        [sys.executable, "-m", "dnsaudit.testbed.fakedns", "--listen", "127.0.0.1:0", "--script", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert out.returncode == 2 and "PERHAPS" in out.stderr and "Traceback" not in out.stderr


def test_cname_chain_without_address_is_sent_and_reported_as_its_end() -> None:
    script = Script(
        [
            Rule("api.corp.example", Behaviour("answer", cname="hop.corp.example")),
            Rule("hop.corp.example", Behaviour("answer", cname="api.openstacklocal")),
            Rule("*.openstacklocal", Behaviour("NODATA")),
            Rule("tc.example", Behaviour("answer", cname="api.openstacklocal", truncate=True)),
            Rule("v4.example", Behaviour("answer", cname="final.example")),
            Rule("final.example", Behaviour("answer", a=("192.0.2.4",))),
        ]
    )
    with ScriptedDNS(script) as srv:
        msg = ask(srv.port, "api.corp.example.", "AAAA")
        tc = ask(srv.port, "tc.example.")
    # On the wire: NOERROR with the two CNAMEs (a non-zero answer count) and no address.
    assert msg.rcode() == dns.rcode.NOERROR and not addrs(msg, "AAAA")
    assert [rr.rdtype for rr in msg.answer] == [dns.rdatatype.CNAME, dns.rdatatype.CNAME]
    chain = script.answer("api.corp.example", "AAAA")
    assert (chain.rcode, chain.addresses, chain.cname) == ("NOERROR", (), "api.openstacklocal")
    assert chain.label == "CNAME api.openstacklocal (no address)"
    # A chain that ends in records is records; a NODATA rule of its own is NODATA.
    assert script.answer("v4.example", "A").cname is None
    assert script.answer("x.openstacklocal", "A").label == "NODATA"
    # Truncated over UDP with the answer section emptied: nothing to see; TCP has the chain.
    assert tc.flags & dns.flags.TC and not tc.answer
    assert script.answer("tc.example", "A", "udp").cname is None
    assert script.answer("tc.example", "A", "tcp").cname == "api.openstacklocal"
