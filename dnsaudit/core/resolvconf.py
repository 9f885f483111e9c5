"""``/etc/resolv.conf`` as each libc reads it: musl's ``__get_resolv_conf`` and glibc's ``res_vinit``.

The kubelet's reading of the node file lives in :mod:`dnsaudit.core.kubelet`; this module is about what a
program *inside* the pod sees. The two libcs disagree on more than one might think:

musl (``src/network/resolvconf.c``, same logic 1.1.13–1.2.5):

* Lines are read with ``fgets`` into a 256-byte buffer. A line that does not fit (255 characters or more,
  not counting the newline) is skipped entirely, whatever keyword it starts with. For a ``search`` line
  that means *no search at all* (or the previous ``search``/``domain`` line, if there was one).
* ``options``: only ``ndots:``, ``attempts:`` and ``timeout:`` are understood, each found with ``strstr``
  anywhere on the line (first occurrence); caps 15 / 10 / 60. Everything else is ignored.
* ``nameserver``: the first three valid IP literals (``MAXNS``); none at all means ``127.0.0.1``.
* ``search`` and ``domain`` are the same keyword; the last such line wins, stored raw (an empty ``search``
  line clears the list).
* No comment handling: ``#`` lines simply match no keyword. Keywords must start the line.

glibc (``resolv/res_init.c``, 2.26 and later):

* ``getline``: no line-length limit. Lines starting with ``#`` or ``;`` are comments.
* A keyword must be followed by a space or tab.
* ``domain`` sets a one-entry list (its first word); ``search`` sets the list (words split on space/tab).
  The last one wins; a keyword with nothing after it is ignored (the earlier list stays).
* ``options``: ``ndots:``/``timeout:``/``attempts:`` with caps 15 / 30 / 5, plus the flags in
  :data:`GLIBC_FLAGS` (prefix match, in glibc's table order); unknown options are ignored.
* Nameservers: IPv4 dotted quads or IPv6 (``%scope`` allowed); only the first three are used; none means
  ``127.0.0.1``.
* Not modelled: ``LOCALDOMAIN``/``RES_OPTIONS`` environment variables and the default search domain
  derived from the host name when the file has no ``search``/``domain`` line (see
  :func:`dnsaudit.core.resolver.simulate_glibc`'s ``hostname`` argument).

Both parsers are pure functions over the file's text and never raise on bad input: what the libc
silently ignores is reported in ``notes`` (human-readable, one remark per item).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

#: ``MAXNS`` in both libcs: nameservers after the third are ignored.
MAXNS = 3
#: musl's ``char line[256]``: ``fgets`` keeps at most 255 bytes, so 254 characters plus the newline.
MUSL_LINE_MAX = 254
MUSL_DEFAULT_NAMESERVER = "127.0.0.1"
GLIBC_DEFAULT_NAMESERVER = "127.0.0.1"

MUSL_CAPS = {"ndots": 15, "attempts": 10, "timeout": 60}
GLIBC_CAPS = {"ndots": 15, "attempts": 5, "timeout": 30}  # RES_MAXNDOTS, RES_MAXRETRY, RES_MAXRETRANS

#: glibc's option table, in its order (``strncmp`` prefix match, first hit wins) -> the flag we record.
#: ``strict-error`` only exists from glibc 2.41; ``no-aaaa`` from 2.36; ``trust-ad`` from 2.31.
GLIBC_FLAGS: tuple[tuple[str, str], ...] = (
    ("rotate", "rotate"),
    ("edns0", "edns0"),
    ("single-request-reopen", "single-request-reopen"),
    ("single-request", "single-request"),
    ("no_tld_query", "no-tld-query"),
    ("no-tld-query", "no-tld-query"),
    ("no-reload", "no-reload"),
    ("use-vc", "use-vc"),
    ("trust-ad", "trust-ad"),
    ("no-aaaa", "no-aaaa"),
    ("strict-error", "strict-error"),
)

_C_SPACE = " \t\n\v\f\r"  # C isspace() in the "C" locale


@dataclass(frozen=True)
class MuslConf:
    """What musl's ``__get_resolv_conf`` ends up with.

    ``search`` is the token list of the winning ``search``/``domain`` line (empty when none or when that
    line was too long). ``search_line_ignored`` is true when the ``search``/``domain`` line that would
    have won was skipped because it did not fit musl's 256-byte line buffer.
    """

    nameservers: tuple[str, ...] = (MUSL_DEFAULT_NAMESERVER,)
    search: tuple[str, ...] = ()
    ndots: int = 1
    timeout: int = 5
    attempts: int = 2
    search_line_ignored: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class GlibcConf:
    """What glibc's resolver configuration ends up with (``struct resolv_conf``).

    ``nameservers`` holds at most three servers (the ones glibc uses). ``timeout`` is ``retrans`` and
    ``attempts`` is ``retry``. ``flags`` holds the recognised option flags (see :data:`GLIBC_FLAGS`).
    """

    nameservers: tuple[str, ...] = (GLIBC_DEFAULT_NAMESERVER,)
    search: tuple[str, ...] = ()
    ndots: int = 1
    timeout: int = 5
    attempts: int = 2
    flags: frozenset[str] = field(default_factory=frozenset)
    notes: tuple[str, ...] = ()


# --- helpers ---------------------------------------------------------------------------------------


def _c_strtoul_digits(s: str) -> int | None:
    """The leading decimal digits of ``s`` as an int (``strtoul`` after an ``isdigit`` check), or None."""
    end = 0
    while end < len(s) and s[end].isascii() and s[end].isdigit():
        end += 1
    return int(s[:end]) if end else None


def _c_atoi(s: str) -> int:
    """C ``atoi``: optional leading whitespace and sign, then digits; 0 when there are none."""
    i = 0
    while i < len(s) and s[i] in _C_SPACE:
        i += 1
    sign = 1
    if i < len(s) and s[i] in "+-":
        sign = -1 if s[i] == "-" else 1
        i += 1
    value = _c_strtoul_digits(s[i:])
    return sign * value if value is not None else 0


def _ip_literal(token: str) -> str | None:
    """A nameserver address as both libcs accept it (IPv4 dotted quad, IPv6 with optional ``%scope``).

    Returns the address as written (scope kept) or None. musl's and glibc's IPv4 parsers also take the
    old short forms (``127.1``); those are rare enough in resolv.conf that we reject them.
    """
    addr = token.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    if "%" in token and ip.version == 4:
        return None
    return token


def _musl_lines(text: str) -> list[tuple[str, bool]]:
    """Split ``text`` the way musl's ``fgets(line, 256, f)`` loop sees it.

    Returns ``(line, fits)`` pairs; ``line`` keeps its newline, as ``fgets`` does. A line fits when its
    content is at most 254 characters: 255 content characters fill the buffer without a newline, and
    musl skips such a line (also when it is the last line without a newline, because ``fgets`` stops at
    the full buffer before it can see the end of the file).
    """
    out = []
    parts = text.split("\n")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if last and part == "":
            break
        out.append((part + ("" if last else "\n"), len(part) <= MUSL_LINE_MAX))
    return out


# --- musl ------------------------------------------------------------------------------------------


def parse_musl(text: str) -> MuslConf:
    """Parse resolv.conf content as musl 1.1.13+ does (``__get_resolv_conf``).

    Contract: never raises; anything musl ignores or changes is described in ``notes``.
    """
    ndots, timeout, attempts = 1, 5, 2
    nameservers: list[str] = []
    search_raw: str | None = None
    search_line_ignored = False
    notes: list[str] = []
    extra_ns: list[str] = []
    ignored_options: list[str] = []

    for line, fits in _musl_lines(text):
        if not fits:
            content = line.rstrip("\n")
            keyword = content[:6]
            if keyword in ("search", "domain") and len(content) > 6 and content[6] in _C_SPACE:
                # This line would have replaced the search list; musl drops it instead.
                search_line_ignored = True
                notes.append(
                    f"{keyword} line is {len(content)} characters (> {MUSL_LINE_MAX}): musl ignores it, "
                    + (
                        "so there is no search list"
                        if search_raw is None
                        else "so the earlier search/domain line stays in effect"
                    )
                )
            else:
                notes.append(
                    f"line of {len(content)} characters (> {MUSL_LINE_MAX}) ignored by musl: {content[:40]}…"
                )
            continue

        if line.startswith("options") and len(line) > 7 and line[7] in _C_SPACE:
            for key, attr_cap in MUSL_CAPS.items():
                marker = key + ":"
                pos = line.find(marker)
                if pos < 0:
                    continue
                rest = line[pos + len(marker) :]
                value = _c_strtoul_digits(rest)
                if value is None:
                    continue
                capped = min(value, attr_cap)
                if capped != value:
                    notes.append(f"option {key}:{value} capped to {capped} by musl")
                if key == "ndots":
                    ndots = capped
                elif key == "attempts":
                    attempts = capped
                else:
                    timeout = capped
            for token in line[8:].split():
                name = token.split(":", 1)[0]
                if name not in MUSL_CAPS:
                    ignored_options.append(token)
            continue

        if line.startswith("nameserver") and len(line) > 10 and line[10] in _C_SPACE:
            rest = line[11:].lstrip(_C_SPACE)
            token = rest.split(None, 1)[0] if rest.split() else ""
            ip = _ip_literal(token)
            if ip is None:
                notes.append(f"nameserver {token!r} is not an IP literal: musl ignores it")
            elif len(nameservers) >= MAXNS:
                extra_ns.append(ip)
            else:
                nameservers.append(ip)
            continue

        if line[:6] in ("search", "domain") and len(line) > 6 and line[6] in _C_SPACE:
            # musl starts reading at line+7 (the keyword, one separator), then skips whitespace.
            search_raw = line[7:].lstrip(_C_SPACE)
            search_line_ignored = False

    for opt in ignored_options:
        notes.append(f"option {opt} ignored by musl")
    if extra_ns:
        notes.append(f"only the first {MAXNS} nameservers are used; musl ignores {', '.join(extra_ns)}")
    if not nameservers:
        nameservers = [MUSL_DEFAULT_NAMESERVER]
        notes.append(f"no usable nameserver line: musl uses {MUSL_DEFAULT_NAMESERVER}")
    if attempts == 0:
        notes.append("attempts:0 makes musl divide by zero (retry interval = timeout/attempts)")
    if timeout == 0:
        notes.append("timeout:0: musl sends no query at all and every lookup fails with EAI_AGAIN")

    search = tuple(search_raw.split()) if search_raw else ()
    return MuslConf(
        nameservers=tuple(nameservers),
        search=search,
        ndots=ndots,
        timeout=timeout,
        attempts=attempts,
        search_line_ignored=search_line_ignored,
        notes=tuple(notes),
    )


# --- glibc -----------------------------------------------------------------------------------------


def _glibc_match(line: str, keyword: str) -> bool:
    """glibc's ``MATCH``: the keyword, then a space or a tab (a newline does not count)."""
    return line.startswith(keyword) and len(line) > len(keyword) and line[len(keyword)] in " \t"


def parse_glibc(text: str) -> GlibcConf:
    """Parse resolv.conf content as glibc 2.26+ does (``res_vinit_1``/``res_setoptions``).

    Contract: never raises; anything glibc ignores or changes is described in ``notes``.
    """
    ndots, timeout, attempts = 1, 5, 2
    flags: set[str] = set()
    nameservers: list[str] = []
    search: list[str] = []
    notes: list[str] = []

    for raw in text.split("\n"):
        line = raw
        if not line or line[0] in "#;":
            continue
        if _glibc_match(line, "domain"):
            rest = line[6:].lstrip(" \t")
            if not rest:
                continue
            search = [rest.split(None, 1)[0]] if rest.split() else []
            continue
        if _glibc_match(line, "search"):
            rest = line[6:].lstrip(" \t")
            if not rest:
                continue
            # Words are split on space and tab only (not \r or other whitespace).
            search = [w for w in rest.replace("\t", " ").split(" ") if w]
            continue
        if _glibc_match(line, "nameserver"):
            rest = line[10:].lstrip(" \t")
            token = rest.replace("\t", " ").split(" ", 1)[0]
            ip = _ip_literal(token)
            if ip is None:
                notes.append(f"nameserver {token!r} is not an IP address: glibc ignores it")
            else:
                nameservers.append(ip)
            continue
        if _glibc_match(line, "options"):
            for token in [t for t in line[7:].replace("\t", " ").split(" ") if t]:
                if token.startswith("ndots:"):
                    value = _c_atoi(token[6:])
                    if value > GLIBC_CAPS["ndots"]:
                        notes.append(f"option ndots:{value} capped to 15 by glibc")
                        value = GLIBC_CAPS["ndots"]
                    elif value < 0:
                        # res_state.ndots is a 4-bit field: a negative value wraps.
                        value &= 15
                        notes.append(f"option {token} wraps to ndots:{value} in glibc")
                    ndots = value
                elif token.startswith("timeout:"):
                    value = _c_atoi(token[8:])
                    if value > GLIBC_CAPS["timeout"]:
                        notes.append(f"option timeout:{value} capped to 30 by glibc")
                        value = GLIBC_CAPS["timeout"]
                    timeout = value
                elif token.startswith("attempts:"):
                    value = _c_atoi(token[9:])
                    if value > GLIBC_CAPS["attempts"]:
                        notes.append(f"option attempts:{value} capped to 5 by glibc")
                        value = GLIBC_CAPS["attempts"]
                    attempts = value
                else:
                    for prefix, flag in GLIBC_FLAGS:
                        if token.startswith(prefix):
                            flags.add(flag)
                            break
                    else:
                        notes.append(f"option {token} ignored by glibc")
            continue

    if len(nameservers) > MAXNS:
        notes.append(
            f"only the first {MAXNS} nameservers are used; glibc ignores {', '.join(nameservers[MAXNS:])}"
        )
        nameservers = nameservers[:MAXNS]
    if not nameservers:
        nameservers = [GLIBC_DEFAULT_NAMESERVER]
        notes.append(f"no usable nameserver line: glibc uses {GLIBC_DEFAULT_NAMESERVER}")
    if timeout <= 0:
        notes.append(f"timeout:{timeout}: glibc waits at least 1 s per server")
    if attempts <= 0:
        notes.append(f"attempts:{attempts}: glibc sends no query and every lookup fails with EAI_AGAIN")
    if "strict-error" in flags:
        notes.append("option strict-error only exists in glibc 2.41 and later")

    return GlibcConf(
        nameservers=tuple(nameservers),
        search=tuple(search),
        ndots=ndots,
        timeout=timeout,
        attempts=attempts,
        flags=frozenset(flags),
        notes=tuple(notes),
    )
