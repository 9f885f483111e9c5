"""A scripted authoritative DNS server for the resolver lab and the demo fleet.

It answers from a *script*: an ordered list of rules, each matching a name pattern and a query type,
each saying what to answer (records, an rcode, NODATA, no reply, a delay, truncation over UDP). UDP and
TCP listen on the same port. It never crashes on garbage: a packet whose 12-byte header parses but
whose question does not (musl <=1.2.3 sends ``name..`` as a bad label) gets FORMERR; anything shorter
is dropped.

Library use::

    with ScriptedDNS([Rule("*.openstacklocal", Behaviour("NODATA"))]) as dns_server:
        dns_server.port   # the bound port (UDP and TCP)
        dns_server.log    # [(qname, qtype, transport, peer), ...] in the order received

CLI use (the demo's upstream DNS; the lab runs it inside a network namespace)::

    python -m dnsaudit.testbed.fakedns --listen 127.0.0.1:5353 --script FILE.json [--log FILE.jsonl]

Script file format (JSON)::

    {"default": {"action": "NXDOMAIN"},
     "rules": [
       {"name": "*.openstacklocal", "action": "NODATA"},
       {"name": "google.com", "a": ["142.250.1.1"], "aaaa": ["2a00:1450::1"]},
       {"name": "slow.example", "type": "AAAA", "action": "SERVFAIL", "delay": 0.3},
       {"name": "big.example", "many_a": 60, "truncate": true}
     ]}

``action`` is one of ``answer`` (implied when ``a``/``aaaa``/``cname``/``many_a`` is given), ``NXDOMAIN``,
``NODATA``, ``SERVFAIL``, ``REFUSED``, ``NOTIMP``, ``FORMERR``, ``drop``. ``name`` is an exact name, a
suffix wildcard ``*.zone`` (any name strictly below ``zone``) or ``*``. ``type`` is ``A``, ``AAAA`` or
``*`` (default). The first matching rule wins; no match uses ``default``.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnsaudit.core.model import Answer

ACTIONS = ("answer", "NXDOMAIN", "NODATA", "SERVFAIL", "REFUSED", "NOTIMP", "FORMERR", "drop")
_RCODES = {
    "NXDOMAIN": dns.rcode.NXDOMAIN,
    "SERVFAIL": dns.rcode.SERVFAIL,
    "REFUSED": dns.rcode.REFUSED,
    "NOTIMP": dns.rcode.NOTIMP,
    "FORMERR": dns.rcode.FORMERR,
}
#: Classic UDP payload limit; a client that sends EDNS gets its advertised size instead.
UDP_LIMIT = 512
MAX_CNAME_CHAIN = 8


class ScriptError(ValueError):
    """The script (rules or JSON file) is invalid."""


@dataclass(frozen=True)
class Behaviour:
    """What to answer for one (name, type).

    ``action="answer"`` answers NOERROR with the records of the asked type (none of that type = NODATA).
    ``cname`` answers a CNAME to that target and follows it through the script (up to 8 links), adding
    the target's records; an NXDOMAIN target makes the reply NXDOMAIN (as authoritative servers do).
    ``many_a`` adds that many generated A records (10.200.x.y) for large answers.
    ``truncate`` over UDP sends the TC bit with the answer section emptied; TCP gets the full answer.
    Answers over 512 bytes are truncated over UDP anyway (keeping the records that fit).
    ``delay`` is seconds before the reply leaves (both transports).
    """

    action: str = "NXDOMAIN"
    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()
    cname: str | None = None
    many_a: int = 0
    truncate: bool = False
    delay: float = 0.0
    ttl: int = 30

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ScriptError(f"unknown action {self.action!r}; expected one of {', '.join(ACTIONS)}")
        for ip in self.a:
            ipaddress.IPv4Address(ip)
        for ip in self.aaaa:
            ipaddress.IPv6Address(ip)
        if self.delay < 0 or self.many_a < 0:
            raise ScriptError("delay and many_a must not be negative")

    def addresses(self, qtype: str) -> tuple[str, ...]:
        if qtype == "A":
            extra = tuple(f"10.200.{i // 250}.{i % 250 + 1}" for i in range(self.many_a))
            return self.a + extra
        if qtype == "AAAA":
            return self.aaaa
        return ()


@dataclass(frozen=True)
class Rule:
    """``pattern``: exact name, ``*.zone`` or ``*``; ``qtype``: ``A``, ``AAAA`` or ``*``."""

    pattern: str
    behaviour: Behaviour
    qtype: str = "*"

    def matches(self, qname: str, qtype: str) -> bool:
        if self.qtype not in ("*", "ANY") and self.qtype.upper() != qtype:
            return False
        pat = _norm(self.pattern)
        if pat == "*":
            return True
        if pat.startswith("*."):
            return qname.endswith(pat[1:]) and len(qname) > len(pat) - 1
        return qname == pat


def _norm(name: str) -> str:
    """Lower-case, no final dot (``Google.COM.`` -> ``google.com``)."""
    name = name.lower()
    return name[:-1] if name.endswith(".") and name != "." else name


@dataclass
class Script:
    """An ordered rule list plus the default behaviour."""

    rules: list[Rule] = field(default_factory=list)
    default: Behaviour = field(default_factory=Behaviour)

    def behaviour(self, qname: str, qtype: str) -> Behaviour:
        qname = _norm(qname)
        for rule in self.rules:
            if rule.matches(qname, qtype):
                return rule.behaviour
        return self.default

    def resolve(self, qname: str, qtype: str) -> tuple[str, list[tuple[str, str, str]], Behaviour]:
        """(rcode name or action, [(owner, rdtype, value)], first behaviour) after following CNAMEs."""
        first = self.behaviour(qname, qtype)
        records: list[tuple[str, str, str]] = []
        name, b, seen = _norm(qname), first, set()
        for _ in range(MAX_CNAME_CHAIN + 1):
            if b.action != "answer":
                # The first link decides drop/errors; later links only matter for NXDOMAIN/NODATA.
                if b is first:
                    return b.action, records, first
                if b.action == "NXDOMAIN":
                    return "NXDOMAIN", records, first
                return "answer", records, first
            if b.cname and qtype != "CNAME":
                target = _norm(b.cname)
                records.append((name, "CNAME", target + "."))
                if target in seen:
                    return "answer", records, first
                seen.add(name)
                name, b = target, self.behaviour(target, qtype)
                continue
            records.extend((name, qtype, ip) for ip in b.addresses(qtype))
            return "answer", records, first
        return "answer", records, first

    def answer(self, qname: str, qtype: str, transport: str = "udp") -> Answer:
        """What a client of this server sees for one question, as a ``model.Answer`` (the oracle view).

        ``Answer.addresses`` are the final A/AAAA values after the CNAME chain. A chain whose end has no
        address of the asked type gives ``Answer.cname`` (the end of the chain): the reply's answer
        section is not empty, which glibc treats differently from NODATA. A UDP question whose reply
        would carry the TC bit is reported ``truncated=True`` with the addresses that still fit.
        """
        action, records, first = self.resolve(qname, qtype)
        delay = first.delay
        if action == "drop":
            return Answer(None, delay=delay)
        if action in _RCODES:
            return Answer(action, delay=delay)  # type: ignore[arg-type]
        if action == "NODATA":
            records = []  # the first rule itself says NODATA: nothing is sent in the answer section
        if transport == "udp":
            wire_full = _wire_size(qname, records)
            if first.truncate or wire_full > UDP_LIMIT:
                kept = [] if first.truncate else records[: _fit_count(_size_for(qname), records, UDP_LIMIT)]
                return _oracle_answer(kept, qtype, truncated=True, delay=delay)
        return _oracle_answer(records, qtype, truncated=False, delay=delay)

    def to_json(self) -> dict:
        def beh(b: Behaviour) -> dict:
            d: dict[str, Any] = {"action": b.action}
            for k in ("a", "aaaa"):
                if getattr(b, k):
                    d[k] = list(getattr(b, k))
            for k in ("cname", "many_a", "truncate", "delay"):
                if getattr(b, k):
                    d[k] = getattr(b, k)
            return d

        return {
            "default": beh(self.default),
            "rules": [{"name": r.pattern, "type": r.qtype, **beh(r.behaviour)} for r in self.rules],
        }


def behaviour_from_json(d: Mapping[str, Any]) -> Behaviour:
    """A ``Behaviour`` from one rule/default object of the script file format (see module doc)."""
    known = {"name", "type", "action", "a", "aaaa", "cname", "many_a", "truncate", "delay", "ttl"}
    unknown = set(d) - known
    if unknown:
        raise ScriptError(f"unknown rule keys: {', '.join(sorted(unknown))}")
    has_records = bool(d.get("a") or d.get("aaaa") or d.get("cname") or d.get("many_a"))
    action = d.get("action", "answer" if has_records else "NXDOMAIN")
    try:
        return Behaviour(
            action=action,
            a=tuple(d.get("a", ())),
            aaaa=tuple(d.get("aaaa", ())),
            cname=d.get("cname"),
            many_a=int(d.get("many_a", 0)),
            truncate=bool(d.get("truncate", False)),
            delay=float(d.get("delay", 0.0)),
            ttl=int(d.get("ttl", 30)),
        )
    except (TypeError, ValueError) as exc:
        raise ScriptError(f"bad rule {dict(d)!r}: {exc}") from exc


def script_from_json(data: Mapping[str, Any]) -> Script:
    """Parse the JSON script format. Raises ``ScriptError`` with a readable reason."""
    if not isinstance(data, Mapping):
        raise ScriptError("script must be a JSON object with 'rules' and optional 'default'")
    rules = []
    for item in data.get("rules", []):
        if not isinstance(item, Mapping) or "name" not in item:
            raise ScriptError(f"each rule needs a 'name': {item!r}")
        qtype = str(item.get("type", "*")).upper()
        if qtype not in ("*", "ANY", "A", "AAAA"):
            raise ScriptError(f"rule type must be A, AAAA or *: {item!r}")
        rules.append(Rule(str(item["name"]), behaviour_from_json(item), qtype))
    default = behaviour_from_json(data.get("default", {"action": "NXDOMAIN"}))
    return Script(rules, default)


def as_script(behaviours: Script | Iterable[Rule] | Mapping[str, Any]) -> Script:
    if isinstance(behaviours, Script):
        return behaviours
    if isinstance(behaviours, Mapping):
        return script_from_json(behaviours)
    return Script(list(behaviours))


# --- wire helpers ------------------------------------------------------------------------------------


def _rrsets(records: Sequence[tuple[str, str, str]], ttl: int = 30) -> list[dns.rrset.RRset]:
    """Group (owner, type, value) records into RRsets, keeping first-seen order."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for owner, rdtype, value in records:
        grouped.setdefault((owner, rdtype), []).append(value)
    return [
        dns.rrset.from_text_list(owner + ".", ttl, "IN", rdtype, values)
        for (owner, rdtype), values in grouped.items()
    ]


def _wire_size(qname: str, records: Sequence[tuple[str, str, str]]) -> int:
    msg = dns.message.make_query(_norm(qname) + ".", "A")
    msg.use_edns(False)
    msg.answer.extend(_rrsets(records))
    return len(msg.to_wire())


def _fit_count(size_of: Any, records: Sequence[tuple[str, str, str]], limit: int) -> int:
    """The largest n such that the first n records fit in ``limit`` bytes (binary search)."""
    lo, hi = 0, len(records)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size_of(records[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _size_for(qname: str) -> Any:
    """``records -> wire size`` of a reply to ``qname`` carrying them (for :func:`_fit_count`)."""
    return lambda recs: _wire_size(qname, recs)


def _oracle_answer(
    records: Sequence[tuple[str, str, str]], qtype: str, *, truncated: bool, delay: float
) -> Answer:
    """The ``NOERROR`` ``model.Answer`` a client parses from an answer section holding ``records``.

    Addresses are the values of ``qtype``; with none, a CNAME in the section gives ``cname`` (the
    target of the last CNAME, where the chain ends).
    """
    addrs = tuple(v for _, t, v in records if t == qtype)
    targets = [_norm(v) for _, t, v in records if t == "CNAME"]
    cname = targets[-1] if targets and not addrs else None
    return Answer("NOERROR", addresses=addrs, truncated=truncated, delay=delay, cname=cname)


def _lenient_qname(data: bytes) -> str:
    """Best-effort text of the question name of a packet dnspython refused (for the log).

    A label whose length runs past the packet end (musl <=1.2.3 leaves a literal ``.`` byte as a length
    for ``name..``) ends the name and is shown as an extra trailing dot: ``google.com..``.
    """
    labels: list[str] = []
    i = 12
    while i < len(data):
        n = data[i]
        if n == 0:
            return ".".join(labels)
        if n > 63 or i + 1 + n > len(data):
            return ".".join(labels) + ".."
        labels.append(data[i + 1 : i + 1 + n].decode("ascii", "replace").lower())
        i += 1 + n
    return ".".join(labels) + ".."


def _formerr(data: bytes) -> bytes | None:
    """A bare FORMERR reply echoing the query's ID, or None when not even the header parses."""
    if len(data) < 12:
        return None
    qid, flags = struct.unpack("!HH", data[:4])
    if flags & 0x8000:  # a response, not a query: never answer (avoids reflection loops)
        return None
    flags = 0x8000 | (flags & 0x7900) | 0x0080 | dns.rcode.FORMERR  # QR, opcode+RD kept, RA
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


class LogEntry(NamedTuple):
    qname: str
    qtype: str
    transport: str
    peer: str


class ScriptedDNS:
    """The server. A context manager; ``port`` is valid once entered.

    ``log`` holds one ``LogEntry(qname, qtype, transport, peer)`` per question received, in order
    (qname lower-case, no final dot; ``qtype`` ``?`` for malformed queries). ``timed_log`` holds
    ``(time.time(), entry)`` pairs for merging logs of several servers. ``on_query`` (optional) is
    called with each entry as it arrives.
    """

    def __init__(
        self,
        behaviours: Script | Iterable[Rule] | Mapping[str, Any] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        on_query: Any = None,
    ) -> None:
        self.script = as_script(behaviours)
        self.host = host
        self.port = port
        self.log: list[LogEntry] = []
        self.timed_log: list[tuple[float, LogEntry]] = []
        self.on_query = on_query
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None

    # -- lifecycle --
    def start(self) -> ScriptedDNS:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(20):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            udp.bind((self.host, self.port))
            port = udp.getsockname()[1]
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                if self.port:
                    raise
                continue  # an ephemeral UDP port whose TCP twin is taken: try another
            break
        else:  # pragma: no cover - twenty collisions in a row
            raise OSError("could not bind UDP and TCP on one port")
        tcp.listen(64)
        udp.settimeout(0.2)
        tcp.settimeout(0.2)
        self._udp, self._tcp, self.port = udp, tcp, port
        for target in (self._serve_udp, self._serve_tcp):
            t = threading.Thread(target=target, daemon=True, name=f"fakedns-{target.__name__}")
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        for s in (self._udp, self._tcp):
            if s is not None:
                s.close()

    def __enter__(self) -> ScriptedDNS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, qname: str, qtype: str, transport: str = "udp") -> Answer:
        """The oracle view of this server's script (see ``Script.answer``)."""
        return self.script.answer(qname, qtype, transport)

    # -- request handling --
    def _record(self, qname: str, qtype: str, transport: str, peer: Any) -> None:
        entry = LogEntry(qname, qtype, transport, f"{peer[0]}:{peer[1]}")
        with self._lock:
            self.log.append(entry)
            self.timed_log.append((time.time(), entry))
        if self.on_query is not None:
            # A logging callback must never take the server down.
            with contextlib.suppress(Exception):
                self.on_query(entry)

    def handle(self, data: bytes, transport: str, peer: Any) -> tuple[bytes | None, float]:
        """Reply bytes (None = no reply) and the delay before sending. Never raises."""
        try:
            return self._handle(data, transport, peer)
        except Exception:  # garbage must never crash the server
            return _formerr(data), 0.0

    def _handle(self, data: bytes, transport: str, peer: Any) -> tuple[bytes | None, float]:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            reply = _formerr(data)
            if reply is not None:
                self._record(_lenient_qname(data), "?", transport, peer)
            return reply, 0.0
        if query.flags & dns.flags.QR:
            return None, 0.0
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            resp = dns.message.make_response(query)
            resp.set_rcode(dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR)
            return resp.to_wire(want_shuffle=False), 0.0
        q = query.question[0]
        qname = _norm(q.name.to_text())
        qtype = dns.rdatatype.to_text(q.rdtype)
        self._record(qname, qtype, transport, peer)

        action, records, first = self.script.resolve(qname, qtype)
        if action == "drop":
            return None, first.delay
        resp = dns.message.make_response(query)
        # Records go out in script order (want_shuffle=False): a client that keeps only the first N
        # addresses (musl keeps 48) must be predictable.
        # AA and RA: glibc treats NOERROR/0 answers with aa=0, ra=0 as a lame server and moves on.
        resp.flags |= dns.flags.AA | dns.flags.RA
        if action in _RCODES:
            resp.set_rcode(_RCODES[action])
            if action == "NXDOMAIN":
                resp.answer.extend(_rrsets(records, first.ttl))
            return resp.to_wire(want_shuffle=False), first.delay
        if action == "answer":
            resp.answer.extend(_rrsets(records, first.ttl))
        if transport == "udp":
            limit = UDP_LIMIT
            if query.edns >= 0:
                limit = max(UDP_LIMIT, query.payload)
            if first.truncate:
                resp.answer.clear()
                resp.flags |= dns.flags.TC
                return resp.to_wire(want_shuffle=False), first.delay
            wire = resp.to_wire(want_shuffle=False)
            if len(wire) > limit:
                # Keep the whole records that fit, like CoreDNS/miekg `Truncate`.
                def size_of(recs: Sequence[tuple[str, str, str]]) -> int:
                    resp.answer.clear()
                    resp.answer.extend(_rrsets(recs, first.ttl))
                    return len(resp.to_wire(want_shuffle=False))

                n = _fit_count(size_of, records, limit)
                resp.answer.clear()
                resp.answer.extend(_rrsets(records[:n], first.ttl))
                resp.flags |= dns.flags.TC
                wire = resp.to_wire(want_shuffle=False)
            return wire, first.delay
        return resp.to_wire(want_shuffle=False), first.delay

    def _serve_udp(self) -> None:
        assert self._udp is not None
        sock = self._udp
        while not self._stop.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            reply, delay = self.handle(data, "udp", peer)
            if reply is None:
                continue
            if delay > 0:
                threading.Timer(delay, self._send_udp, (reply, peer)).start()
            else:
                self._send_udp(reply, peer)

    def _send_udp(self, reply: bytes, peer: Any) -> None:
        try:
            if self._udp is not None and not self._stop.is_set():
                self._udp.sendto(reply, peer)
        except OSError:
            pass

    def _serve_tcp(self) -> None:
        assert self._tcp is not None
        while not self._stop.is_set():
            try:
                conn, peer = self._tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            threading.Thread(target=self._tcp_conn, args=(conn, peer), daemon=True).start()

    def _tcp_conn(self, conn: socket.socket, peer: Any) -> None:
        conn.settimeout(5)
        try:
            with conn:
                while not self._stop.is_set():
                    head = _recv_exact(conn, 2)
                    if head is None:
                        return
                    (length,) = struct.unpack("!H", head)
                    data = _recv_exact(conn, length)
                    if data is None:
                        return
                    reply, delay = self.handle(data, "tcp", peer)
                    if reply is None:
                        continue
                    if delay > 0:
                        time.sleep(delay)
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:5353`` / ``[::1]:53`` / ``127.0.0.1`` (port 53) -> (host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, "53"
    ipaddress.ip_address(host)
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: serve a script on one or more addresses until interrupted.

    Prints ``listening HOST PORT`` per address on stdout once bound (the lab waits for it), and with
    ``--log FILE`` appends one JSON object per question (``t``, ``qname``, ``qtype``, ``transport``,
    ``peer``, ``server``), flushed at once.
    """
    parser = argparse.ArgumentParser(
        prog="python -m dnsaudit.testbed.fakedns", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--listen", action="append", required=True, help="HOST:PORT (repeatable)")
    parser.add_argument("--script", required=True, help="JSON script file (see module docs)")
    parser.add_argument("--log", help="append received questions to this file as JSON lines")
    args = parser.parse_args(argv)
    try:
        with open(args.script, encoding="utf-8") as fh:
            script = script_from_json(json.load(fh))
        listens = [parse_listen(x) for x in args.listen]
    except (OSError, ValueError) as exc:
        print(f"fakedns: {exc}", file=sys.stderr)
        return 2
    log_fh = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115
    log_lock = threading.Lock()
    servers = []

    def make_logger(server_host: str) -> Any:
        def on_query(entry: LogEntry) -> None:
            if log_fh is None:
                return
            line = json.dumps({"t": time.time(), "server": server_host, **entry._asdict()})
            with log_lock:
                log_fh.write(line + "\n")
                log_fh.flush()

        return on_query

    try:
        for host, port in listens:
            srv = ScriptedDNS(script, host=host, port=port, on_query=make_logger(host)).start()
            servers.append(srv)
            print(f"listening {host} {srv.port}", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"fakedns: cannot listen: {exc}", file=sys.stderr)
        return 1
    finally:
        for srv in servers:
            srv.stop()
        if log_fh is not None:
            log_fh.close()


if __name__ == "__main__":
    import signal

    def _terminate(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())
