"""The DNS boundary (dnsaudit.boundary.dns) against the scripted server on loopback."""

from __future__ import annotations

import pytest

from dnsaudit.boundary.dns import DNSProbeError, live_oracle, parse_server, probe_domain, query
from dnsaudit.testbed.fakedns import Behaviour, Rule, ScriptedDNS
from tests.support import free_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", ("10.0.0.1", 53)),
        ("10.0.0.1:5353", ("10.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[2001:db8::1]", ("2001:db8::1", 53)),
        ("fe80::1%eth0", ("fe80::1%eth0", 53)),
    ],
)
def test_server_addresses_in_every_written_form_are_understood(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["dns.example", "10.0.0.1:99999", "[::1", "10.0.0.1:x", ""])
def test_unusable_server_addresses_are_permanent_errors(text: str) -> None:
    with pytest.raises(DNSProbeError) as err:
        parse_server(text)
    assert err.value.transient is False


def test_answers_become_model_answers() -> None:
    rules = [
        Rule("rec.example", Behaviour("answer", a=("192.0.2.1",))),
        Rule("*.openstacklocal", Behaviour("NODATA")),
        Rule("sf.example", Behaviour("SERVFAIL")),
        Rule("gone.example", Behaviour("drop")),
        Rule("tc.example", Behaviour("answer", a=("192.0.2.2",), truncate=True)),
    ]
    with ScriptedDNS(rules) as srv:
        p = srv.port
        assert query("127.0.0.1", "rec.example", "A", port=p).addresses == ("192.0.2.1",)
        assert query(f"127.0.0.1:{p}", "rec.example.", "AAAA").label == "NODATA"
        assert query("127.0.0.1", "x.openstacklocal", "A", port=p).label == "NODATA"
        assert query("127.0.0.1", "sf.example", "A", port=p, tcp=True).rcode == "SERVFAIL"
        assert query("127.0.0.1", "nx.example", "A", port=p).rcode == "NXDOMAIN"
        assert query("127.0.0.1", "gone.example", "A", port=p, timeout=0.2).rcode is None
        tc = query("127.0.0.1", "tc.example", "A", port=p)
        assert tc.truncated and query("127.0.0.1", "tc.example", "A", port=p, tcp=True).addresses == (
            "192.0.2.2",
        )


def test_nothing_listening_is_no_reply_not_an_error() -> None:
    assert query("127.0.0.1", "x.example", "A", port=free_port(), timeout=0.3).rcode is None


def test_bad_names_and_types_are_permanent_errors() -> None:
    with pytest.raises(DNSProbeError) as err:
        query("127.0.0.1", "a" * 64 + ".example", "A", port=1)
    assert not err.value.transient
    with pytest.raises(DNSProbeError):
        query("127.0.0.1", "x.example", "MX", port=1)


def test_live_oracle_asks_each_question_once_on_the_overridden_port() -> None:
    with ScriptedDNS([Rule("*.openstacklocal", Behaviour("SERVFAIL"))]) as srv:
        oracle = live_oracle(timeout=1.0, port_overrides={"127.0.0.1": srv.port})
        first = oracle("127.0.0.1", "google.com.openstacklocal", "A", "udp")
        again = oracle("127.0.0.1", "Google.com.openstacklocal.", "A", "udp")
        over_tcp = oracle("127.0.0.1", "google.com.openstacklocal", "A", "tcp")
    assert first.rcode == again.rcode == over_tcp.rcode == "SERVFAIL"
    assert [(e.qname, e.transport) for e in srv.log] == [
        ("google.com.openstacklocal", "udp"),
        ("google.com.openstacklocal", "tcp"),
    ]


def test_probe_domain_asks_a_and_aaaa_for_the_random_label() -> None:
    with ScriptedDNS([Rule("*.openstacklocal", Behaviour("NODATA"))]) as srv:
        result = probe_domain("127.0.0.1", "openstacklocal.", "zz-audit-1234.com", port=srv.port)
        safe = probe_domain("127.0.0.1", "corp.example", "zz-audit-1234.com", port=srv.port)
    assert result.qname == "zz-audit-1234.com.openstacklocal"
    assert (result.a.label, result.aaaa.label) == ("NODATA", "NODATA")
    assert (safe.a.rcode, safe.aaaa.rcode) == ("NXDOMAIN", "NXDOMAIN")
    assert [(e.qname, e.qtype) for e in srv.log][:2] == [
        ("zz-audit-1234.com.openstacklocal", "A"),
        ("zz-audit-1234.com.openstacklocal", "AAAA"),
    ]


def test_a_cname_without_address_is_reported_with_the_end_of_its_chain() -> None:
    rules = [
        Rule("api.corp.example", Behaviour("answer", cname="hop.corp.example")),
        Rule("hop.corp.example", Behaviour("answer", cname="api.openstacklocal")),
        Rule("*.openstacklocal", Behaviour("NODATA")),
        Rule("v6.example", Behaviour("answer", cname="final.example")),
        Rule("final.example", Behaviour("answer", aaaa=("2001:db8::4",))),
    ]
    with ScriptedDNS(rules) as srv:
        p = srv.port
        live = query("127.0.0.1", "api.corp.example", "A", port=p)
        a_of_v6 = query("127.0.0.1", "v6.example", "A", port=p)
        aaaa_of_v6 = query("127.0.0.1", "v6.example", "AAAA", port=p)
        plain = query("127.0.0.1", "x.openstacklocal", "A", port=p)
    # Read from the wire by dnspython; it must agree with the server's own oracle view.
    assert (live.rcode, live.addresses, live.cname) == ("NOERROR", (), "api.openstacklocal")
    assert live.label == srv.answer("api.corp.example", "A").label == "CNAME api.openstacklocal (no address)"
    assert a_of_v6.cname == "final.example" and not a_of_v6.addresses
    assert aaaa_of_v6.addresses == ("2001:db8::4",) and aaaa_of_v6.cname is None
    assert plain.cname is None and plain.label == "NODATA"
