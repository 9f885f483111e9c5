"""What ``getaddrinfo(name)`` does under musl and under glibc, simulated over scripted DNS answers.

Pure: no sockets, no clock. The caller passes the resolv.conf *content* and an :data:`Oracle` — a function
that says what a given nameserver answers to one question — and gets a :class:`~dnsaudit.core.model.
Resolution`: the outcome (addresses or the ``EAI_*`` code), the candidates the search loop tried, every
query's first transmission with what it got back, the time the call takes and a plain-English
explanation. A differential test suite runs the real libcs against a scripted server and checks these
predictions; the source references below are what the model follows.

Scope and assumptions (both libcs):

* ``getaddrinfo(name, NULL, hints)`` with ``AF_UNSPEC`` and no flags, so A and AAAA are both asked.
* ``/etc/hosts`` is out of scope (musl reads it before DNS with exact names only; glibc's ``files``
  module likewise): a name listed there never reaches this simulation. glibc's ``hosts:`` line is
  assumed to be ``files dns``; nscd is assumed absent.
* Numeric names (IP literals) return at once without a query.
* Answers are deterministic per (server, name, type, transport); ``Answer.delay`` orders replies.

musl (``src/network/lookup_name.c``, ``res_msend.c``, ``res_mkquery.c``; groups from
:func:`musl_behaviour_group`):

* Candidates: ``name.d`` for each search domain, then the name itself *last* — only when the name has
  fewer dots than ``ndots`` and no trailing dot (otherwise the name alone). Before 1.1.13 there is no
  search at all. A candidate longer than 255 characters is skipped silently.
* The search stops at the first candidate whose outcome is not "nonexistent": success, NODATA, or no
  usable answer. Only NXDOMAIN (and, from 1.2.4, a name ``res_mkquery`` rejects) moves on.
* Transport: each query goes to *all* nameservers at once; the first NOERROR/NXDOMAIN reply from any
  server wins; SERVFAIL, REFUSED, NOTIMP and FORMERR are ignored, so they cost the whole ``timeout``
  (total per candidate, not per server or attempt) and end in ``EAI_AGAIN``. From 1.2.4 a truncated
  reply is retried over TCP with the same server; before, the truncated reply is used as it is.
* Pairing: before 1.2.1 any record in either reply is success, else only the A reply's rcode counts.
  From 1.2.1 each reply is checked in turn (A first): missing → ``EAI_AGAIN``, NXDOMAIN → next
  candidate. NODATA is ``EAI_NODATA`` from 1.2.4, ``EAI_NONAME`` before. Only A/AAAA records count, so
  a CNAME chain without an address (``Answer.cname``) is NODATA to musl.
* ``search .`` gives the candidate ``name..``: up to 1.2.3 musl sends a malformed packet (recorded with
  the answer :data:`MALFORMED_QUERY`), which servers reject or drop, so the lookup times out with
  ``EAI_AGAIN``; from 1.2.4 the candidate is skipped.

glibc (``resolv/res_query.c``, ``res_send.c``, ``nss_dns/dns-host.c``, ``sysdeps/posix/getaddrinfo.c``;
2.36 unless a version is named):

* Candidates: with ``dots >= ndots`` (or a trailing dot) the name as-is *first*, then the search list;
  otherwise the search list, then the name as-is (unless ``no-tld-query`` and no dots, or a ``.`` entry
  already asked the root-qualified name).
* The search goes on after NXDOMAIN, NODATA and SERVFAIL; it stops after REFUSED, NOTIMP, FORMERR or a
  timeout, and then the name as-is is still tried.
* A NOERROR reply with records but no address (a CNAME chain that ends without one, ``Answer.cname``)
  is not NODATA: ``res_query`` returns it (ancount > 0 in either reply), so the search ends there,
  nothing else is tried, and ``nss_dns`` finding no address makes it ``EAI_NONAME``.
* Transport: servers one after another, ``attempts`` rounds; per server ``timeout << i`` seconds
  (divided by the server count for i > 0). A and AAAA go out together; SERVFAIL/REFUSED/NOTIMP on both
  means the next server; on one of them, the other reply is used alone (2.41+ ``strict-error`` turns
  that off). One reply plus a timeout on the other switches to ``single-request`` and then
  ``single-request-reopen`` mode for the rest of the call. A truncated reply repeats both questions over
  TCP with the same server.
* Versions mean the release branch as distributions ship it: Debian 12's 2.36 carries the backported
  fix for bug 30081 (in single-request mode an error reply moves on at once instead of waiting).
* Error codes: ``TRY_AGAIN`` → ``EAI_AGAIN``; ``NO_DATA`` → ``EAI_NODATA``; ``HOST_NOT_FOUND`` and
  ``NO_RECOVERY`` → ``EAI_NONAME``. (``getaddrinfo`` maps only ``TRY_AGAIN`` and ``NO_DATA`` specially,
  in ``get_nss_addresses``; ``NO_RECOVERY`` never becomes ``EAI_FAIL`` on this path.)
* Not modelled: the "lame server" rule (NOERROR, no answer, ``aa=0 ra=0``), ``rotate``'s random start
  (we start at the first server), ``HOSTALIASES``, ``LOCALDOMAIN``/``RES_OPTIONS``; a TCP server that
  never answers makes real glibc hang, we treat it as a closed connection.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from dnsaudit.core.model import Answer, Query, Resolution
from dnsaudit.core.resolvconf import GlibcConf, MuslConf, parse_glibc, parse_musl

#: ``(server, qname, qtype, transport) -> Answer``. ``qname`` is the name as sent (no trailing dot,
#: case preserved); ``qtype`` is ``"A"`` or ``"AAAA"``; ``transport`` is ``"udp"`` or ``"tcp"``.
Oracle = Callable[[str, str, str, str], Answer]

#: The answer recorded for musl ≤1.2.3's malformed ``name..`` query (what a server makes of it).
MALFORMED_QUERY = "FORMERR (malformed query)"

#: musl's ``MAXADDRS``: at most 48 addresses are returned.
MUSL_MAXADDRS = 48

_OK_RCODES = ("NOERROR", "NXDOMAIN")
NXDOMAIN = Answer("NXDOMAIN")
_GLIBC_BAD_RCODES = ("SERVFAIL", "NOTIMP", "REFUSED")  # send_dg: "try the next server"

# h_errno values (netdb.h), as names.
HOST_NOT_FOUND = "HOST_NOT_FOUND"
TRY_AGAIN = "TRY_AGAIN"
NO_RECOVERY = "NO_RECOVERY"
NO_DATA = "NO_DATA"
_H_ERRNO_TO_EAI = {TRY_AGAIN: "EAI_AGAIN", NO_DATA: "EAI_NODATA", HOST_NOT_FOUND: "EAI_NONAME"}


# --- versions --------------------------------------------------------------------------------------


def _version_tuple(version: str) -> tuple[int, int, int]:
    """``"1.2.4_git20230717-r5"`` / ``"v1.2.3"`` / ``"2.36"`` → ``(1, 2, 4)`` / ``(1, 2, 3)`` / ``(2, 36, 0)``."""
    m = re.match(r"\s*v?(\d+)\.(\d+)(?:\.(\d+))?", version or "")
    if not m:
        raise ValueError(f"not a version: {version!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def musl_behaviour_group(version: str) -> str:
    """The resolver behaviour group of a musl version.

    ``"<1.1.13"`` (no search domains at all), ``"<1.2.1"`` (paired A/AAAA judged on the A reply),
    ``"1.2.1-1.2.3"`` (per-reply checks, NODATA = ``EAI_NONAME``, no TCP, ``name..`` malformed) or
    ``">=1.2.4"`` (``EAI_NODATA``, TCP fallback, rejected names skipped). Raises ``ValueError`` when the
    string holds no version.
    """
    v = _version_tuple(version)
    if v < (1, 1, 13):
        return "<1.1.13"
    if v < (1, 2, 1):
        return "<1.2.1"
    if v < (1, 2, 4):
        return "1.2.1-1.2.3"
    return ">=1.2.4"


# --- oracle helper ---------------------------------------------------------------------------------


def _norm(name: str) -> str:
    name = name.lower()
    return name[:-1] if name.endswith(".") else name


def table_oracle(
    records: Mapping[str, Mapping[str, Answer]] | None = None,
    *,
    default: Answer = NXDOMAIN,
    per_server: Mapping[str, Mapping[str, Mapping[str, Answer]]] | None = None,
) -> Oracle:
    """An :data:`Oracle` from tables: ``records[qname][qtype] -> Answer``.

    * ``qname`` keys match case-insensitively, with or without a trailing dot. A key ``*.zone`` matches
      any name below ``zone`` (the longest such suffix wins; an exact key wins over any wildcard).
    * ``qtype`` keys: ``"A"``, ``"AAAA"``, ``"*"`` (both), or ``"A/tcp"``/``"AAAA/tcp"`` for what the
      server says over TCP. Without a ``/tcp`` key a truncated answer is given in full (``truncated``
      cleared) over TCP.
    * A name present in the table with no entry for the asked type answers NODATA (``NOERROR``, no
      records), as a real zone does. An unknown name answers ``default``.
    * ``per_server[server]`` replaces ``records`` entirely for that server (``default`` still applies).
    """

    def compile_table(table: Mapping[str, Mapping[str, Answer]] | None) -> tuple[dict, list]:
        exact: dict[str, Mapping[str, Answer]] = {}
        wild: list[tuple[str, Mapping[str, Answer]]] = []
        for key, entry in (table or {}).items():
            k = _norm(key)
            if k.startswith("*."):
                wild.append((k[1:], entry))  # ".zone"
            else:
                exact[k] = entry
        wild.sort(key=lambda item: -len(item[0]))
        return exact, wild

    base = compile_table(records)
    servers = {server: compile_table(table) for server, table in (per_server or {}).items()}

    def lookup(table: tuple[dict, list], qname: str, qtype: str, transport: str) -> Answer:
        exact, wild = table
        q = _norm(qname)
        entry = exact.get(q)
        if entry is None:
            entry = next((e for suffix, e in wild if q.endswith(suffix) and len(q) > len(suffix)), None)
        if entry is None:
            return default
        if transport == "tcp" and f"{qtype}/tcp" in entry:
            return entry[f"{qtype}/tcp"]
        answer = entry.get(qtype, entry.get("*"))
        if answer is None:
            return Answer("NOERROR")
        if transport == "tcp" and answer.truncated:
            answer = replace(answer, truncated=False)
        return answer

    def oracle(server: str, qname: str, qtype: str, transport: str) -> Answer:
        table = servers.get(server, base)
        return lookup(table, qname, qtype, transport)

    return oracle


# --- shared bits -----------------------------------------------------------------------------------


def _ip_literal(name: str) -> str | None:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return None


def _label(answer: Answer, note: str = "") -> str:
    text = answer.label
    if answer.truncated and answer.rcode is not None:
        text += " (truncated)"
    return text + note


def _addresses(replies: list[tuple[str, Answer]]) -> list[str]:
    """Records of the NOERROR replies, A first then AAAA."""
    out: list[str] = []
    for qtype in ("A", "AAAA"):
        for t, a in replies:
            if t == qtype and a.rcode == "NOERROR":
                out.extend(a.addresses)
    return out


@dataclass
class _Trace:
    """First transmissions, ordered by send time (stable for equal times)."""

    items: list[tuple[float, int, Query]] = field(default_factory=list)
    seen: set[tuple[str, str, str, str]] = field(default_factory=set)

    def add(self, at: float, query: Query) -> None:
        key = (query.name, query.type, query.server, query.transport)
        if key in self.seen:
            return
        self.seen.add(key)
        self.items.append((at, len(self.items), query))

    def queries(self) -> list[Query]:
        return [q for _, _, q in sorted(self.items, key=lambda item: (item[0], item[1]))]


# --- musl ------------------------------------------------------------------------------------------


@dataclass
class _MuslStep:
    """The outcome of ``name_from_dns`` for one candidate."""

    code: str  # "ok", "next" (0: nonexistent, go on), or an EAI_* name
    elapsed: float = 0.0
    addresses: list[str] = field(default_factory=list)
    why: str = ""  # plain-English reason when it is not "ok"


def _musl_mkquery(name: str, group: str) -> str:
    """What musl's ``res_mkquery`` does with ``name``: ``"ok"``, ``"reject"`` or ``"malformed"``.

    One trailing dot is dropped. From 1.2.4 a second trailing dot is rejected; before, it ends up as a
    bogus length byte in the packet (malformed). Empty labels elsewhere, labels over 63 bytes and names
    over 253 characters are rejected in every version.
    """
    s = name[:-1] if name.endswith(".") else name
    trailing = s.endswith(".")
    if trailing and group == ">=1.2.4":
        return "reject"
    if len(s) > 253:
        return "reject"
    labels = s.split(".")
    if trailing:
        labels = labels[:-1]
    if any(len(label) == 0 or len(label) > 63 for label in labels):
        return "reject"
    return "malformed" if trailing else "ok"


def _musl_exchange(
    conf: MuslConf, qname: str, oracle: Oracle, group: str, start: float, trace: _Trace, race_notes: list[str]
) -> tuple[dict[str, Answer], float]:
    """``__res_msend_rc`` for the A and AAAA questions of one candidate.

    Returns the accepted reply per question type (missing = none accepted within ``timeout``) and the
    time the exchange took: until every question has an accepted reply, else the full ``timeout``.
    """
    total = float(conf.timeout)
    qtypes = ("A", "AAAA")
    if total <= 0:
        return {}, 0.0  # the send loop never runs
    replies: dict[tuple[str, str], Answer] = {}
    for qtype in qtypes:  # every question to every server, A first
        for server in conf.nameservers:
            answer = oracle(server, qname, qtype, "udp")
            replies[(qtype, server)] = answer
            late = " (too late)" if answer.rcode is not None and answer.delay >= total else ""
            trace.add(start, Query(qname, qtype, server, _label(answer, late), "udp"))

    accepted: dict[str, Answer] = {}
    done_at: dict[str, float] = {}
    abort_at: float | None = None
    for qtype in qtypes:
        best: tuple[float, int, str, Answer] | None = None
        for index, server in enumerate(conf.nameservers):
            answer = replies[(qtype, server)]
            # Only NOERROR/NXDOMAIN are accepted; SERVFAIL is re-sent at once, the rest are ignored.
            usable = answer.rcode in _OK_RCODES and answer.delay < total
            if usable and (best is None or (answer.delay, index) < (best[0], best[1])):
                best = (answer.delay, index, server, answer)
        if best is None:
            continue
        at, _, server, answer = best
        if answer.rcode == "NXDOMAIN":
            hidden = [
                s
                for s in conf.nameservers
                if replies[(qtype, s)].rcode == "NOERROR" and replies[(qtype, s)].addresses
            ]
            if hidden:
                race_notes.append(
                    f"{qname} {qtype} has records on {', '.join(hidden)}, but {server} answered NXDOMAIN first "
                    "and musl takes the first answer from any nameserver"
                )
        if answer.truncated and group == ">=1.2.4":
            tcp = oracle(server, qname, qtype, "tcp")
            trace.add(start + at, Query(qname, qtype, server, _label(tcp), "tcp"))
            if tcp.rcode is None or at + tcp.delay >= total:
                continue  # the TCP slot stays pending until the timeout
            if tcp.rcode in _OK_RCODES:
                accepted[qtype] = replace(tcp, truncated=False)
                done_at[qtype] = at + tcp.delay
            else:
                # Any other rcode over TCP aborts the whole exchange ("goto out").
                end = at + tcp.delay
                abort_at = end if abort_at is None else min(abort_at, end)
            continue
        accepted[qtype] = answer  # before 1.2.4 a truncated reply is parsed as it is
        done_at[qtype] = at

    if abort_at is not None:
        accepted = {t: a for t, a in accepted.items() if done_at[t] <= abort_at}
        return accepted, abort_at
    if len(accepted) == len(qtypes):
        return accepted, max(done_at.values())
    return accepted, total


def _musl_classify(group: str, accepted: dict[str, Answer], timeout: int) -> _MuslStep:
    """The end of ``name_from_dns``: success, "nonexistent" (go on) or an error that stops the search."""
    replies = [(t, accepted[t]) for t in ("A", "AAAA") if t in accepted]
    addresses = _addresses(replies)[:MUSL_MAXADDRS]
    missing = [t for t in ("A", "AAAA") if t not in accepted]
    no_answer = (
        f"no server gave a usable answer to {' and '.join(missing)} within the {timeout} s timeout "
        "(musl ignores SERVFAIL, REFUSED, NOTIMP and FORMERR replies)"
    )
    if group in ("<1.1.13", "<1.2.1"):
        if addresses:
            return _MuslStep("ok", addresses=addresses)
        a = accepted.get("A")
        if a is None:
            return _MuslStep("EAI_AGAIN", why=no_answer)
        if a.rcode == "NOERROR":
            if a.cname:
                return _MuslStep(
                    "EAI_NONAME",
                    why=f"the A reply was a CNAME to {a.cname} without an address (musl counts only A/AAAA records)",
                )
            return _MuslStep("EAI_NONAME", why="the A reply was NODATA (NOERROR without records)")
        if a.rcode == "NXDOMAIN":
            return _MuslStep("next")
        return _MuslStep("EAI_FAIL", why=f"the A reply was {a.rcode}")
    for qtype in ("A", "AAAA"):
        a = accepted.get(qtype)
        if a is None:
            return _MuslStep("EAI_AGAIN", why=no_answer)
        if a.rcode == "NXDOMAIN":
            return _MuslStep("next")
        if a.rcode != "NOERROR":
            return _MuslStep("EAI_FAIL", why=f"the {qtype} reply was {a.rcode}")
    if addresses:
        return _MuslStep("ok", addresses=addresses)
    code = "EAI_NODATA" if group == ">=1.2.4" else "EAI_NONAME"
    chain = next((accepted[t].cname for t in ("A", "AAAA") if accepted[t].cname), None)
    if chain:
        return _MuslStep(
            code,
            why=f"the server answered with a CNAME to {chain} but no address (musl counts only A/AAAA "
            "records, so this is NODATA to it)",
        )
    return _MuslStep(code, why="the server answered NODATA (no address, not NXDOMAIN)")


def _musl_candidate(
    conf: MuslConf,
    candidate: str,
    oracle: Oracle,
    group: str,
    start: float,
    trace: _Trace,
    race_notes: list[str],
) -> _MuslStep:
    """``name_from_dns`` for one candidate."""
    built = _musl_mkquery(candidate, group)
    if built == "reject":
        if group == ">=1.2.4":
            return _MuslStep("next", why="res_mkquery rejects the name; musl ≥1.2.4 skips it")
        return _MuslStep(
            "EAI_NONAME", why="res_mkquery rejects the name (empty or over-long label, or too long)"
        )
    if built == "malformed":
        if conf.timeout <= 0:
            return _MuslStep("EAI_AGAIN", why="timeout:0 sends nothing")
        for qtype in ("A", "AAAA"):
            for server in conf.nameservers:
                trace.add(start, Query(candidate, qtype, server, MALFORMED_QUERY, "udp"))
        return _MuslStep(
            "EAI_AGAIN",
            elapsed=float(conf.timeout),
            why=(
                "musl ≤1.2.3 builds a malformed query for a name ending in two dots (a 'search .' entry); "
                f"servers answer FORMERR or drop it, musl ignores both and gives up after {conf.timeout} s"
            ),
        )
    qname = candidate[:-1] if candidate.endswith(".") else candidate
    accepted, elapsed = _musl_exchange(conf, qname, oracle, group, start, trace, race_notes)
    step = _musl_classify(group, accepted, conf.timeout)
    step.elapsed = elapsed
    return step


def simulate_musl(name: str, resolv_conf: str, oracle: Oracle, version: str = "1.2.5") -> Resolution:
    """Simulate musl's ``getaddrinfo(name)`` (``AF_UNSPEC``) against ``oracle``.

    ``resolv_conf`` is the file's content; ``version`` is the musl version (any string
    :func:`musl_behaviour_group` understands). Never raises for odd input; see the module docstring for
    what is modelled.
    """
    group = musl_behaviour_group(version)
    conf = parse_musl(resolv_conf)
    res = Resolution(libc="musl", name=name, ok=False, error=None, version=version)

    if not name or len(name) >= 255:
        res.error = "EAI_NONAME"
        res.explanation = "musl rejects an empty name or one of 255 characters or more before any query."
        return res
    literal = _ip_literal(name)
    if literal is not None:
        res.ok, res.addresses = True, [literal]
        res.explanation = f"{name} is an IP address; musl returns it without asking DNS."
        return res
    if conf.attempts == 0 and conf.timeout > 0:
        res.error = "EAI_SYSTEM"
        res.explanation = (
            "options attempts:0 makes musl divide by zero when it computes the retry interval: "
            "the process crashes (SIGFPE) instead of resolving."
        )
        return res

    dots = name.count(".")
    trailing = name.endswith(".")
    base = name[:-1] if trailing else name
    if not base or base.endswith("."):
        res.error = "EAI_NONAME"
        res.explanation = "musl rejects a name that ends in more than one dot."
        return res

    notes: list[str] = []
    search: tuple[str, ...] = conf.search
    if group == "<1.1.13":
        if search:
            notes.append(f"musl {version} has no search-domain support (added in 1.1.13)")
        search = ()
    elif trailing:
        search = ()
    elif dots >= conf.ndots and search:
        notes.append(
            f"{name} has {dots} dot{'s' if dots != 1 else ''} (ndots:{conf.ndots}), so musl asks only the name "
            "itself and never appends a search domain"
        )
        search = ()
    if conf.search_line_ignored and not trailing and dots < conf.ndots:
        notes.append("the search line is longer than 254 characters, so musl ignores it")

    candidates: list[str] = []
    for domain in search:
        if len(base) + 1 + len(domain) < 256:
            candidates.append(f"{base}.{domain}")
        else:
            notes.append(f"{base}.{domain} is longer than 255 characters: musl skips it silently")
    candidates.append(name)

    trace = _Trace()
    race_notes: list[str] = []
    clock = 0.0
    final: _MuslStep | None = None
    skipped: list[str] = []
    for candidate in candidates:
        tried = candidate[:-1] if candidate == name and trailing else candidate
        res.candidates.append(tried)
        step = _musl_candidate(conf, candidate, oracle, group, clock, trace, race_notes)
        clock += step.elapsed
        if step.code == "next":
            if step.why:
                skipped.append(f"{tried}: {step.why}")
            continue
        final = step
        res.stopped_at = tried if step.code != "ok" else None
        break

    res.queries = trace.queries()
    res.elapsed = round(clock, 6)
    absolute = base
    if final is not None and final.code == "ok":
        res.ok, res.addresses = True, final.addresses
        via = res.candidates[-1]
        res.explanation = f"musl resolved {name} as {via}" + (
            f" after {len(res.candidates) - 1} NXDOMAIN answer{'s' if len(res.candidates) != 2 else ''}."
            if len(res.candidates) > 1
            else "."
        )
    elif final is not None:
        res.error = final.code
        stop = res.stopped_at or absolute
        skipped_absolute = stop != absolute
        text = f"musl stopped at {stop}: {final.why}"
        if skipped_absolute:
            text += f", so musl never tried {absolute}."
        else:
            text += "."
        if final.why.startswith("the server answered NODATA"):
            text += " glibc treats NODATA as 'try the next candidate'."
        elif "CNAME" in final.why:
            text += " glibc stops there too: a reply with records ends its search even without an address."
        elif final.code == "EAI_AGAIN" and skipped_absolute and "malformed" not in final.why:
            text += " glibc moves on after SERVFAIL and, after REFUSED/NOTIMP/FORMERR or a timeout, still tries the name as-is."
        res.explanation = text
    else:
        res.error = "EAI_NONAME"
        res.stopped_at = res.candidates[-1] if res.candidates else None
        res.explanation = (
            f"Every name musl tried ({', '.join(res.candidates)}) answered NXDOMAIN or was skipped."
            if len(res.candidates) > 1
            else f"{res.candidates[0]} answered NXDOMAIN."
        )
    extra = notes + skipped + race_notes
    if extra:
        res.explanation += " Note: " + "; ".join(extra) + "."
    return res


# --- glibc -----------------------------------------------------------------------------------------


def _glibc_name_ok(wire: str) -> bool:
    """Whether ``ns_name_pton`` takes ``wire`` (already without its one trailing dot)."""
    if wire == "":
        return True  # the root
    if len(wire) > 253 or wire.endswith("."):
        return False
    return all(0 < len(label) <= 63 for label in wire.split("."))


def _glibc_hnok(name: str) -> bool:
    """``res_hnok`` as ``_nss_dns_gethostbyname4_r``'s ``check_name`` applies it."""
    wire = name[:-1] if name.endswith(".") else name
    if not name.isprintable() or not _glibc_name_ok(wire):
        return False
    if wire.startswith("-"):
        return False
    return all(re.fullmatch(r"[0-9A-Za-z_-]+", label) for label in wire.split(".") if label)


@dataclass
class _GlibcQuery:
    """The result of ``__res_context_query`` for one name, and of parsing it.

    ``ok`` means ``res_query`` returned the answer (a NOERROR reply with records), which ends the
    search. ``addresses`` may still be empty: a CNAME-only answer (``Answer.cname``) parses to no
    address, and ``nss_dns`` reports ``HOST_NOT_FOUND``.
    """

    ok: bool
    h_errno: str | None = None
    addresses: list[str] = field(default_factory=list)
    summary: str = ""


class _Glibc:
    """One ``getaddrinfo`` call's resolver context: options, the clock and the trace.

    The single-request fallback flags are set in the context and stay for the rest of the call, as
    glibc sets them in ``_res.options`` (2.36) / ``_res._flags`` (2.40+).
    """

    def __init__(self, conf: GlibcConf, oracle: Oracle, version: tuple[int, int, int], trace: _Trace):
        self.conf = conf
        self.oracle = oracle
        self.version = version
        self.trace = trace
        flags = conf.flags
        self.single_request = "single-request" in flags
        self.single_reopen = "single-request-reopen" in flags
        self.use_vc = "use-vc" in flags
        self.no_aaaa = "no-aaaa" in flags and version >= (2, 36)
        self.strict = "strict-error" in flags and version >= (2, 41)
        self.rotate = "rotate" in flags and len(conf.nameservers) > 1
        self.rotation = 0
        self.clock = 0.0
        self.gotsomewhere = False
        self.errno = ""
        self.hp_rcode = "NOERROR"  # rcode in the first answer buffer (what the search loop looks at)
        self.h_errno: str | None = HOST_NOT_FOUND

    # -- transport --

    def _send_udp(self, server: str, wire: str, qtype: str, pending: list) -> None:
        answer = self.oracle(server, wire, qtype, "udp")
        self.trace.add(self.clock, Query(wire, qtype, server, _label(answer), "udp"))
        if answer.rcode is not None:
            pending.append((self.clock + answer.delay, len(pending), qtype, answer))

    def _send_dg(self, ns: int, wire: str, types: tuple[str, ...]) -> tuple[str, tuple | None]:
        """``send_dg``: returns ``("next", None)``, ``("tcp", None)`` or ``("answer", (r1, r2))``.

        ``r1``/``r2`` are ``(qtype, Answer)`` for the first and second answer buffer, or None when that
        buffer holds no usable reply (``resplen``/``resplen2`` of 0).
        """
        nscount = len(self.conf.nameservers)
        server = self.conf.nameservers[ns]
        seconds = self.conf.timeout << ns
        if ns > 0:
            seconds = int(seconds / nscount)
        seconds = max(seconds, 1)
        pair = len(types) == 2
        save_gotsomewhere = self.gotsomewhere
        buf1: tuple[str, Answer] | None = None  # survives the fallback retries, like resplen does
        while True:  # "retry:" label
            single = self.single_request or self.single_reopen
            finish = self.clock + seconds
            recv = dict.fromkeys(types, False)
            buf2: tuple[str, Answer] | None = None
            pending: list[tuple[float, int, str, Answer]] = []
            if pair and not single:
                self._send_udp(server, wire, types[0], pending)
                self._send_udp(server, wire, types[1], pending)
            else:
                self._send_udp(server, wire, types[0], pending)
            retry = False
            while not retry:
                pending.sort(key=lambda item: (item[0], item[1]))
                if not pending or pending[0][0] >= finish:
                    self.clock = finish
                    if buf1 is not None and any(recv.values()):
                        # One reply came, the other did not: fall back to sequential sending.
                        if not single:
                            self.single_request = True
                        elif not self.single_reopen:
                            self.single_reopen = True
                        else:
                            return "answer", (buf1, None)
                        self.gotsomewhere = save_gotsomewhere
                        retry = True
                        continue
                    self.gotsomewhere = True
                    return "next", None
                at, _, qtype, answer = pending.pop(0)
                self.clock = max(self.clock, at)
                self.gotsomewhere = True
                first = not any(recv.values())
                if first or not pair:
                    self.hp_rcode = answer.rcode or "NOERROR"
                if answer.rcode in _GLIBC_BAD_RCODES:
                    if self.strict:
                        return "next", None
                    if any(recv.values()):
                        return ("answer", (buf1, None)) if buf1 is not None else ("next", None)
                    if pair and (self.version < (2, 34) or not single):
                        # Wait for the other reply. In single-request mode it was never sent: before the
                        # fix for bug 30081 (2.41, backported to the 2.34-2.40 release branches that
                        # distributions ship, e.g. Debian 12's 2.36) glibc waited out the timeout.
                        buf1 = None
                        recv[qtype] = True
                        continue
                    return "next", None
                if answer.truncated:
                    return "tcp", None
                if first or not pair:
                    buf1 = (qtype, answer)
                else:
                    buf2 = (qtype, answer)
                recv[qtype] = True
                if not all(recv.values()):
                    if single:
                        self._send_udp(server, wire, types[1], pending)
                    continue
                return "answer", (buf1, buf2)

    def _send_vc(self, ns: int, wire: str, types: tuple[str, ...]) -> tuple | None:
        """``send_vc``: both questions over TCP, any rcode is final. None = no answer (next server)."""
        server = self.conf.nameservers[ns]
        answers = []
        for qtype in types:
            answer = self.oracle(server, wire, qtype, "tcp")
            self.trace.add(self.clock, Query(wire, qtype, server, _label(answer), "tcp"))
            answers.append((qtype, replace(answer, truncated=False)))
        self.clock += max(a.delay for _, a in answers)
        if any(a.rcode is None for _, a in answers):
            return None
        self.hp_rcode = answers[0][1].rcode or "NOERROR"
        return (answers[0], answers[1] if len(answers) > 1 else None)

    def _send(self, wire: str, types: tuple[str, ...]) -> tuple | None:
        """``__res_context_send``: the servers in turn, ``attempts`` rounds. None = failure (errno set)."""
        nscount = len(self.conf.nameservers)
        self.gotsomewhere = False
        offset = 0
        if self.rotate:
            offset = self.rotation % nscount
            self.rotation += 1
        v_circuit = self.use_vc
        tries = 0
        while tries < self.conf.attempts:
            for shift in range(nscount):
                ns = (shift + offset) % nscount
                while True:  # "same_ns:" label
                    if v_circuit:
                        tries = self.conf.attempts  # one TCP attempt per server
                        result = self._send_vc(ns, wire, types)
                        if result is None:
                            break
                        self.errno = ""
                        return result
                    kind, payload = self._send_dg(ns, wire, types)
                    if kind == "next":
                        break
                    if kind == "tcp":
                        v_circuit = True
                        continue
                    self.errno = ""
                    return payload
            tries += 1
        if v_circuit:
            self.errno = "EIO"
        else:
            self.errno = "ETIMEDOUT" if self.gotsomewhere else "ECONNREFUSED"
        return None

    # -- query and search --

    def query(self, full: str) -> _GlibcQuery:
        """``__res_context_querydomain`` + ``__res_context_query`` for one candidate name."""
        self.hp_rcode = "NOERROR"
        wire = full[:-1] if full.endswith(".") else full
        if not _glibc_name_ok(wire):
            self.h_errno = NO_RECOVERY
            return _GlibcQuery(False, NO_RECOVERY, summary="the name is not valid in a DNS query (not sent)")
        types = ("A",) if self.no_aaaa else ("A", "AAAA")
        sent = self._send(wire, types)
        if sent is None:
            self.h_errno = TRY_AGAIN
            what = (
                "no server answered" if self.hp_rcode == "NOERROR" else f"every server said {self.hp_rcode}"
            )
            return _GlibcQuery(False, TRY_AGAIN, summary=what)
        r1, r2 = sent
        hp = r1 if r1 is not None else r2
        hp2 = r2 if r2 is not None else hp
        assert hp is not None and hp2 is not None
        replies = [hp] if hp is hp2 else [hp, hp2]
        # res_query hands the answer back when either reply is NOERROR with a non-zero answer count:
        # addresses, or a CNAME chain that ends without one. Only then does the search stop there.
        if any(a.rcode == "NOERROR" and (a.addresses or a.cname) for _, a in replies):
            addresses = _addresses(replies)
            if addresses:
                self.h_errno = None
                return _GlibcQuery(True, None, addresses)
            # nss_dns finds no A/AAAA record in the answer section: NOTFOUND with HOST_NOT_FOUND.
            self.h_errno = HOST_NOT_FOUND
            chain = next(a.cname for _, a in replies if a.rcode == "NOERROR" and a.cname)
            return _GlibcQuery(True, HOST_NOT_FOUND, summary=f"CNAME {chain} (no address)")
        rcode = hp2[1].rcode if hp[1].rcode == "NOERROR" else hp[1].rcode
        h = {"NXDOMAIN": HOST_NOT_FOUND, "SERVFAIL": TRY_AGAIN, "NOERROR": NO_DATA}.get(
            rcode or "", NO_RECOVERY
        )
        self.h_errno = h
        summary = {"NOERROR": "NODATA"}.get(rcode or "", rcode or "no reply")
        return _GlibcQuery(False, h, summary=summary)


def simulate_glibc(
    name: str, resolv_conf: str, oracle: Oracle, version: str = "2.36", *, hostname: str | None = None
) -> Resolution:
    """Simulate glibc's ``getaddrinfo(name)`` (``AF_UNSPEC``, ``hosts: files dns``) against ``oracle``.

    ``hostname``: the host name the process sees; when the file has no ``search``/``domain`` line and
    the host name has a dot, glibc searches the host name's domain (``res_init``). Defaults to no
    host-name domain. Never raises for odd input.
    """
    conf = parse_glibc(resolv_conf)
    ver = _version_tuple(version)
    res = Resolution(libc="glibc", name=name, ok=False, error=None, version=version)
    literal = _ip_literal(name)
    if literal is not None:
        res.ok, res.addresses = True, [literal]
        res.explanation = f"{name} is an IP address; glibc returns it without asking DNS."
        return res
    if not name or not _glibc_hnok(name):
        res.error = "EAI_NONAME"
        res.explanation = f"glibc refuses {name!r} as a host name (res_hnok) and sends no query."
        return res

    search = list(conf.search)
    if not search and hostname and "." in hostname:
        search = [hostname.split(".", 1)[1]]

    trace = _Trace()
    g = _Glibc(conf, oracle, ver, trace)
    dots = name.count(".")
    trailing = name.endswith(".")
    saved_herrno: str | None = None
    tried_as_is = got_nodata = got_servfail = root_on_list = searched = False
    stop_at: str | None = None
    stop_why = ""
    outcomes: list[str] = []
    success: tuple[str, _GlibcQuery] | None = None

    def ask(full: str) -> _GlibcQuery:
        shown = full[:-1] if full.endswith(".") and full[:-1] == name.rstrip(".") else full
        res.candidates.append(shown)
        result = g.query(full)
        outcomes.append(f"{shown}: {'ok' if result.ok and result.addresses else result.summary}")
        return result

    def finish() -> Resolution:
        res.queries = trace.queries()
        res.elapsed = round(g.clock, 6)
        return res

    if dots >= conf.ndots or trailing:
        result = ask(name)
        if result.ok:
            success = (res.candidates[-1], result)
        elif trailing:
            stop_at, stop_why = res.candidates[-1], result.summary
        else:
            saved_herrno = result.h_errno
            tried_as_is = True

    if success is None and not trailing:
        for domain in search:
            searched = True
            d = domain[1:] if domain.startswith(".") else domain
            if d == "":
                root_on_list = True
            result = ask(f"{name}.{d}")
            if result.ok:
                success = (res.candidates[-1], result)
                break
            if g.errno == "ECONNREFUSED":
                g.h_errno = TRY_AGAIN
                stop_at, stop_why = res.candidates[-1], "no nameserver could be reached"
                break
            if result.h_errno == NO_DATA:
                got_nodata = True
                continue
            if result.h_errno == HOST_NOT_FOUND:
                continue
            if result.h_errno == TRY_AGAIN and g.hp_rcode == "SERVFAIL":
                got_servfail = True
                continue
            stop_at, stop_why = res.candidates[-1], result.summary
            break

    connrefused = g.errno == "ECONNREFUSED" and stop_why == "no nameserver could be reached"
    if success is None and not trailing and not connrefused:
        no_tld = "no-tld-query" in conf.flags
        if (dots or not searched or not no_tld) and not (tried_as_is or root_on_list):
            result = ask(name)
            if result.ok:
                success = (res.candidates[-1], result)

    if success is not None and not success[1].addresses:
        via, result = success
        res.error = _H_ERRNO_TO_EAI.get(result.h_errno or HOST_NOT_FOUND, "EAI_NONAME")
        res.stopped_at = via
        text = f"glibc failed ({res.error}) after trying {', '.join(outcomes)}."
        text += (
            f" {via} answered {result.summary}: a reply with records ends glibc's search (no later "
            "candidate is tried) even when none of the records is an address."
        )
        res.explanation = text
        return finish()

    if success is not None:
        via, result = success
        res.ok, res.addresses = True, result.addresses
        res.explanation = f"glibc resolved {name} as {via}" + (
            f" after trying {', '.join(res.candidates[:-1])}." if len(res.candidates) > 1 else "."
        )
        return finish()

    if connrefused:
        h = TRY_AGAIN
    elif saved_herrno is not None:
        h = saved_herrno
    elif got_nodata:
        h = NO_DATA
    elif got_servfail:
        h = TRY_AGAIN
    else:
        h = g.h_errno or HOST_NOT_FOUND
    res.error = _H_ERRNO_TO_EAI.get(h, "EAI_NONAME")
    res.stopped_at = stop_at or (res.candidates[-1] if res.candidates else None)
    text = f"glibc failed ({res.error}) after trying {', '.join(outcomes)}."
    if stop_at and not trailing and stop_at != name:
        text += (
            f" The search stopped at {stop_at} ({stop_why}); glibc ends the search on REFUSED, NOTIMP, "
            "FORMERR or a timeout, then tries only the name as-is."
        )
    res.explanation = text
    return finish()


def search_step(a: Answer, aaaa: Answer, libc: str, version: str | None = None) -> str:
    """What a libc does when a search candidate gets these A/AAAA answers: ``"continues"`` to the next
    candidate, ``"stops"`` the search without an address, or ``"answers"`` (the candidate's records are
    returned — a wildcard answering for every name, which is wrong for both libcs).

    Decided by running the simulation on a one-domain search list, so the probe matrix on the dashboard
    follows exactly the same rules as the verdicts (paired A/AAAA handling, musl version groups, glibc's
    continue/stop table).
    """
    probe, domain = "dnsaudit-probe", "probed.zone"
    candidate = f"{probe}.{domain}"
    conf = f"search {domain}\nnameserver 192.0.2.53\noptions ndots:5 timeout:1 attempts:1\n"
    found = Answer("NOERROR", ("192.0.2.1",))

    def oracle(server: str, qname: str, qtype: str, transport: str) -> Answer:
        name = qname.rstrip(".").lower()
        if name == candidate:
            return a if qtype == "A" else aaaa
        if name == probe:
            return found if qtype == "A" else Answer("NOERROR")
        return Answer("NXDOMAIN")

    if libc == "musl":
        result = simulate_musl(probe, conf, oracle, version or "1.2.5")
    else:
        result = simulate_glibc(probe, conf, oracle, version or "2.36")
    if any(q.name.rstrip(".").lower() == probe for q in result.queries):
        return "continues"
    return "answers" if result.ok else "stops"
