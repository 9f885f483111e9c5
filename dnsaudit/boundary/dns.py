"""DNS boundary: raw queries with dnspython, returned as ``model.Answer``.

This is the only module that talks DNS on the wire. It feeds the resolver simulation
(:mod:`dnsaudit.core.resolver`) with live answers through :func:`live_oracle`, and probes suspicious
search domains with :func:`probe_domain`.

Contract: an answer the server gave (any rcode, NODATA, TC) or no answer within ``timeout``
(``Answer(None)``) is an *observation* and is returned. Only failures to ask at all raise
:class:`DNSProbeError`: a malformed server address or name (``transient=False``) or a local network
error such as an unreachable network (``transient=True``).
"""

from __future__ import annotations

import errno
import ipaddress
import time
from collections.abc import Callable, Mapping

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype

from dnsaudit.core.model import Answer, ProbeResult

Oracle = Callable[[str, str, str, str], Answer]

_RCODE_NAMES = {"NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "NOTIMP", "FORMERR"}


class DNSProbeError(Exception):
    """A query could not be sent. ``transient`` says whether trying again later may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def parse_server(server: str, port: int = 53) -> tuple[str, int]:
    """``"10.0.0.1"``, ``"10.0.0.1:5353"``, ``"::1"``, ``"[::1]:5353"``, ``"fe80::1%eth0"`` -> (host, port).

    Raises ``DNSProbeError(transient=False)`` for anything that is not an IP literal (we never resolve
    a nameserver's name: the point is to ask exactly the server the libc would ask).
    """
    text = server.strip()
    host = text
    if text.startswith("["):
        inner, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise DNSProbeError(f"bad nameserver address {server!r}", transient=False)
        host = inner
        if rest:
            port = _port(rest[1:], server)
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = _port(p, server)
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        raise DNSProbeError(
            f"bad nameserver address {server!r} (expected an IP literal)", transient=False
        ) from None
    return host, port


def _port(text: str, server: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise DNSProbeError(f"bad port in nameserver address {server!r}", transient=False)
    return int(text)


def query(
    server: str, qname: str, qtype: str, *, timeout: float = 2.0, port: int = 53, tcp: bool = False
) -> Answer:
    """Ask ``server`` one question (recursion desired, no EDNS, like musl) and describe the reply.

    ``Answer.addresses`` are the A/AAAA values of ``qtype`` in the answer section (after any CNAME
    chain). ``truncated`` is the TC bit of a UDP reply. ``delay`` is the measured round trip.
    A timeout gives ``Answer(None, delay=timeout)``; so does a UDP "port unreachable" (nothing
    listening), which a libc also sees as no reply.
    """
    if qtype not in ("A", "AAAA"):
        raise DNSProbeError(f"unsupported query type {qtype!r}", transient=False)
    host, port = parse_server(server, port)
    try:
        name = dns.name.from_text(qname.rstrip(".") + ".")
        msg = dns.message.make_query(name, qtype)
    except (dns.exception.DNSException, ValueError) as exc:
        raise DNSProbeError(f"bad query name {qname!r}: {exc}", transient=False) from None
    msg.flags |= dns.flags.RD
    started = time.monotonic()
    try:
        if tcp:
            reply = dns.query.tcp(msg, host, timeout=timeout, port=port)
        else:
            reply = dns.query.udp(msg, host, timeout=timeout, port=port, ignore_unexpected=True)
    except dns.exception.Timeout:
        return Answer(None, delay=timeout)
    except ConnectionRefusedError:
        return Answer(None, delay=time.monotonic() - started)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
            return Answer(None, delay=time.monotonic() - started)
        raise DNSProbeError(f"cannot query {server}: {exc}", transient=True) from exc
    except dns.exception.DNSException as exc:  # a reply that does not parse or match
        raise DNSProbeError(f"bad reply from {server} for {qname} {qtype}: {exc}", transient=True) from exc
    elapsed = round(time.monotonic() - started, 3)
    rcode = dns.rcode.to_text(reply.rcode())
    if rcode not in _RCODE_NAMES:
        # Rcodes the libcs do not distinguish (YXDOMAIN, NOTAUTH...) behave like REFUSED for both.
        rcode = "REFUSED"
    want = dns.rdatatype.from_text(qtype)
    addresses: list[str] = []
    for rrset in reply.answer:
        if rrset.rdtype == want:
            addresses.extend(r.to_text() for r in rrset)
    truncated = bool(reply.flags & dns.flags.TC) and not tcp
    if rcode != "NOERROR":
        addresses = []
    # A CNAME chain without an address is not NODATA to glibc (the answer count is not zero).
    cname = _chain_end(reply, name) if rcode == "NOERROR" and not addresses else None
    return Answer(rcode, addresses=tuple(addresses), truncated=truncated, delay=elapsed, cname=cname)  # type: ignore[arg-type]


def _chain_end(reply: dns.message.Message, qname: dns.name.Name) -> str | None:
    """Where the CNAME chain in ``reply``'s answer section ends (no final dot), or None without one.

    Follows the chain from ``qname`` (loops and over-long chains stop at the last name reached); a
    CNAME that does not hang off the chain still makes the answer section non-empty, so the last
    CNAME target in the section is reported then.
    """
    targets = {
        rrset.name: rrset[0].target for rrset in reply.answer if rrset.rdtype == dns.rdatatype.CNAME and rrset
    }
    if not targets:
        return None
    name, seen = qname, {qname}
    while name in targets and targets[name] not in seen:
        name = targets[name]
        seen.add(name)
    if name == qname:
        name = list(targets.values())[-1]
    return name.to_text(omit_final_dot=True)


def live_oracle(timeout: float = 2.0, port_overrides: Mapping[str, int] | None = None) -> Oracle:
    """An oracle for the resolver simulation that asks the real servers, once per question.

    ``port_overrides`` maps a nameserver (as written in resolv.conf) to the port to use instead of 53
    (tests and demos run servers on unprivileged loopback ports). Answers are cached per
    (server, qname, qtype, transport), so a simulation that asks the same question twice (retries,
    both libcs) sends it once. The oracle raises ``DNSProbeError`` only as :func:`query` does.
    """
    cache: dict[tuple[str, str, str, str], Answer] = {}
    overrides = dict(port_overrides or {})

    def oracle(server: str, qname: str, qtype: str, transport: str) -> Answer:
        key = (server, qname.lower().rstrip("."), qtype, transport)
        if key not in cache:
            port = overrides.get(server, 53)
            cache[key] = query(server, qname, qtype, timeout=timeout, port=port, tcp=transport == "tcp")
        return cache[key]

    oracle.cache = cache  # type: ignore[attr-defined]
    return oracle


def probe_domain(
    server: str, domain: str, probe_name: str, *, timeout: float = 2.0, port: int = 53
) -> ProbeResult:
    """Ask ``server`` A and AAAA for ``<probe_name>.<domain>``: is that search domain safe for musl?

    Only NXDOMAIN for both lets musl go on to the next candidate (domain.md §8.4).
    """
    qname = f"{probe_name.strip('.')}.{domain.strip('.')}"
    return ProbeResult(
        domain=domain,
        probe_name=probe_name,
        qname=qname,
        server=server,
        a=query(server, qname, "A", timeout=timeout, port=port),
        aaaa=query(server, qname, "AAAA", timeout=timeout, port=port),
    )
