"""resolv.conf as musl and glibc read it (domain.md §1.4 and §2.4)."""

from __future__ import annotations

import pytest

from dnsaudit.core.resolvconf import parse_glibc, parse_musl

CLUSTER = "default.svc.cluster.local svc.cluster.local cluster.local"


def padded_search_line(length: int) -> str:
    """``search <cluster domains> <one padding domain>`` of exactly ``length`` characters."""
    head = f"search {CLUSTER} "
    pad = length - len(head) - len(".example")
    labels = []
    while pad > 0:
        take = min(pad, 60)
        if pad - take == 1:  # never leave a single char for "." + empty label
            take -= 1
        labels.append("p" * take)
        pad -= take + 1 if pad - take > 0 else take
    line = head + ".".join(labels) + ".example"
    assert len(line) == length, len(line)
    return line


# --- musl -----------------------------------------------------------------------------------------


def test_musl_defaults_without_a_file():
    conf = parse_musl("")
    assert conf.nameservers == ("127.0.0.1",)
    assert (conf.ndots, conf.timeout, conf.attempts) == (1, 5, 2)
    assert conf.search == ()
    assert any("127.0.0.1" in n for n in conf.notes)


@pytest.mark.parametrize("newline", ["\n", ""])
def test_musl_keeps_a_254_character_search_line(newline):
    line = padded_search_line(254)
    conf = parse_musl(f"nameserver 10.96.0.10\n{line}{newline}")
    assert conf.search[:3] == tuple(CLUSTER.split())
    assert not conf.search_line_ignored


@pytest.mark.parametrize("newline", ["\n", ""])
def test_musl_ignores_a_255_character_search_line(newline):
    line = padded_search_line(255)
    # As the last line of the file, with or without its newline.
    conf = parse_musl(f"options ndots:5\nnameserver 10.96.0.10\n{line}{newline}")
    assert conf.search == ()
    assert conf.search_line_ignored
    assert any("255" in n and "ignores" in n for n in conf.notes)
    assert conf.ndots == 5


def test_musl_reads_the_lines_after_a_long_one():
    conf = parse_musl(f"{padded_search_line(255)}\noptions ndots:5\nnameserver 10.96.0.10\n")
    assert conf.search == ()
    assert conf.ndots == 5 and conf.nameservers == ("10.96.0.10",)


def test_musl_long_search_line_leaves_the_earlier_one_in_effect():
    conf = parse_musl(f"search corp.example\n{padded_search_line(300)}\n")
    assert conf.search == ("corp.example",)
    assert conf.search_line_ignored


def test_musl_long_options_line_is_skipped_too():
    conf = parse_musl("options ndots:5" + " " * 250 + "timeout:1\n")
    assert (conf.ndots, conf.timeout) == (1, 5)


def test_musl_last_search_or_domain_line_wins():
    assert parse_musl(f"search {CLUSTER}\ndomain openstacklocal\n").search == ("openstacklocal",)
    assert parse_musl(f"domain openstacklocal\nsearch {CLUSTER}\n").search == tuple(CLUSTER.split())
    # domain is the same keyword as search: all its words count.
    assert parse_musl("domain a.example b.example\n").search == ("a.example", "b.example")


def test_musl_empty_search_line_clears_the_list():
    assert parse_musl("search corp.example\nsearch \n").search == ()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("options ndots:20 attempts:20 timeout:100", (15, 10, 60)),
        ("options ndots:0", (0, 2, 5)),
        ("options timeout:1 attempts:1", (1, 1, 1)),
        ("options edns0 ndots:3", (3, 2, 5)),
        ("options ndots:x", (1, 2, 5)),
    ],
)
def test_musl_options_and_caps(line, expected):
    conf = parse_musl(line + "\n")
    assert (conf.ndots, conf.attempts, conf.timeout) == expected


def test_musl_notes_glibc_only_options_it_ignores():
    conf = parse_musl("options ndots:5 single-request-reopen rotate\n")
    assert conf.ndots == 5
    assert "option single-request-reopen ignored by musl" in conf.notes
    assert "option rotate ignored by musl" in conf.notes


def test_musl_uses_the_first_three_nameservers():
    text = "".join(f"nameserver 10.0.0.{i}\n" for i in range(1, 5))
    conf = parse_musl(text)
    assert conf.nameservers == ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    assert any("10.0.0.4" in n for n in conf.notes)


def test_musl_skips_invalid_nameservers_and_keeps_ipv6_scope():
    conf = parse_musl("nameserver dns.example\nnameserver fe80::1%eth0\n")
    assert conf.nameservers == ("fe80::1%eth0",)


def test_musl_keywords_must_start_the_line():
    conf = parse_musl("  search corp.example\n#search x\nsearchcorp\n")
    assert conf.search == ()


# --- glibc ----------------------------------------------------------------------------------------


def test_glibc_defaults_without_a_file():
    conf = parse_glibc("")
    assert conf.nameservers == ("127.0.0.1",)
    assert (conf.ndots, conf.timeout, conf.attempts) == (1, 5, 2)
    assert conf.flags == frozenset()


def test_glibc_has_no_search_line_length_limit():
    line = padded_search_line(400)
    conf = parse_glibc(line + "\n")
    assert conf.search[:3] == tuple(CLUSTER.split())
    assert len(conf.search) == 4


def test_glibc_last_domain_or_search_wins_and_domain_takes_one_word():
    assert parse_glibc(f"search {CLUSTER}\ndomain openstacklocal extra\n").search == ("openstacklocal",)
    assert parse_glibc(f"domain openstacklocal\nsearch {CLUSTER}\n").search == tuple(CLUSTER.split())


def test_glibc_empty_search_line_keeps_the_earlier_list():
    assert parse_glibc("search corp.example\nsearch \n").search == ("corp.example",)


def test_glibc_keeps_a_dot_search_entry():
    assert parse_glibc(f"search {CLUSTER} .\n").search == (*CLUSTER.split(), ".")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("options ndots:20 attempts:20 timeout:100", (15, 5, 30)),
        ("options ndots:2 timeout:1 attempts:1", (2, 1, 1)),
        ("options\tndots:3", (3, 2, 5)),
    ],
)
def test_glibc_options_and_caps(line, expected):
    conf = parse_glibc(line + "\n")
    assert (conf.ndots, conf.attempts, conf.timeout) == expected


def test_glibc_flags():
    conf = parse_glibc("options rotate single-request-reopen no-tld-query use-vc edns0 trust-ad no-aaaa\n")
    assert conf.flags == {
        "rotate",
        "single-request-reopen",
        "no-tld-query",
        "use-vc",
        "edns0",
        "trust-ad",
        "no-aaaa",
    }
    assert parse_glibc("options single-request\n").flags == {"single-request"}
    assert parse_glibc("options no_tld_query\n").flags == {"no-tld-query"}


def test_glibc_notes_unknown_options():
    conf = parse_glibc("options inet6 frobnicate ndots:2\n")
    assert conf.ndots == 2
    assert "option frobnicate ignored by glibc" in conf.notes
    assert conf.flags == frozenset()


def test_glibc_uses_the_first_three_nameservers_and_skips_comments():
    text = "# nameserver 10.9.9.9\n; nameserver 10.9.9.8\n" + "".join(
        f"nameserver 10.0.0.{i}\n" for i in range(1, 5)
    )
    conf = parse_glibc(text)
    assert conf.nameservers == ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    assert any("10.0.0.4" in n for n in conf.notes)


def test_glibc_keyword_needs_a_blank_after_it():
    assert parse_glibc("search\ncorp.example\n").search == ()
