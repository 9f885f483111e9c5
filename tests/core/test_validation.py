"""The API server's dnsPolicy/dnsConfig validation (domain.md §4.4, vectors V1-V7 of §8.3)."""

from __future__ import annotations

import pytest

from dnsaudit.core.validation import (
    dns1123_subdomain_errors,
    is_valid_ip,
    validate_dns_config,
    validate_dns_policy,
)

CLUSTER_SEARCH = ["app.svc.cluster.local", "svc.cluster.local", "cluster.local"]


def test_v1_policy_none_requires_dnsconfig():
    assert validate_dns_config("None", None) == [
        "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"
    ]


@pytest.mark.parametrize(
    "dns_config",
    [{"searches": ["x"]}, {"nameservers": []}, {}],
    ids=["searches-only", "empty-nameservers", "empty-dnsconfig"],
)
def test_v2_policy_none_requires_a_nameserver(dns_config):
    assert validate_dns_config("None", dns_config) == [
        "spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"
    ]


def test_v3_more_than_three_nameservers_rejected():
    errs = validate_dns_config("ClusterFirst", {"nameservers": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"]})
    assert errs == [
        'spec.dnsConfig.nameservers: Invalid value: ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"]: '
        "must not have more than 3 nameservers"
    ]


IP_VECTORS = [
    ("10.0.0.300", False),
    ("10.96.0.10", True),
    ("fd00::a", True),
    ("::1", True),
    ("::ffff:10.0.0.1", True),
    ("fe80::1%eth0", False),
    ("10.0.0", False),
    ("", False),
    ("dns.example", False),
    (" 10.0.0.1", False),
]


@pytest.mark.parametrize(("ip", "ok"), IP_VECTORS, ids=[v[0] or "empty" for v in IP_VECTORS])
def test_v4_nameservers_must_be_ip_addresses(ip, ok):
    errs = validate_dns_config("ClusterFirst", {"nameservers": [ip]})
    assert is_valid_ip(ip) is ok
    if ok:
        assert errs == []
    else:
        assert errs == [
            f'spec.dnsConfig.nameservers[0]: Invalid value: "{ip}": '
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        ]


def test_v5_more_than_32_search_paths_rejected():
    searches = [f"d{i}.example" for i in range(33)]
    errs = validate_dns_config("ClusterFirst", {"searches": searches})
    assert len(errs) == 1
    assert errs[0].startswith("spec.dnsConfig.searches: Invalid value: [")
    assert errs[0].endswith("must not have more than 32 search paths")
    assert validate_dns_config("ClusterFirst", {"searches": searches[:32]}) == []


def _searches_of_length(total: int) -> list[str]:
    """Valid subdomains whose space-joined length is exactly ``total`` (labels of at most 63 chars)."""
    entry = ".".join(["a" * 63] * 3) + ".b"  # 193 characters
    out: list[str] = []
    while len(" ".join([*out, entry])) <= total:
        out.append(entry)
    rest = total - len(" ".join(out)) - 1
    out.append("c" * rest)
    assert len(" ".join(out)) == total
    return out


@pytest.mark.parametrize(("total", "ok"), [(2048, True), (2049, False)], ids=["2048-fits", "2049-rejected"])
def test_v5_search_line_over_2048_characters_rejected(total, ok):
    errs = validate_dns_config("ClusterFirst", {"searches": _searches_of_length(total)})
    if ok:
        assert errs == []
    else:
        assert len(errs) == 1
        assert errs[0].endswith(
            "must not have more than 2048 characters (including spaces) in the search list"
        )


SEARCH_VECTORS = [
    # id, entry, valid when relaxed, valid when strict
    ("trailing-dot", "openstacklocal.", True, True),
    ("plain", "my.domain", True, True),
    ("lone-dot", ".", True, False),
    ("underscore", "abc_d.example.com", True, False),
    ("leading-underscore-label", "_sip._tcp.example.com", True, False),
    ("uppercase", "Corp.Example", False, False),
    ("empty", "", False, False),
    ("double-dot", "a..b", False, False),
    ("two-trailing-dots", "a..", False, False),
    ("leading-hyphen", "-a.example", False, False),
    ("254-chars", "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 62, False, False),
]


@pytest.mark.parametrize(
    ("entry", "relaxed_ok", "strict_ok"), [v[1:] for v in SEARCH_VECTORS], ids=[v[0] for v in SEARCH_VECTORS]
)
def test_v6_search_entries_are_dns_subdomains(entry, relaxed_ok, strict_ok):
    relaxed = validate_dns_config("ClusterFirst", {"searches": [entry]}, relaxed_search=True)
    strict = validate_dns_config("ClusterFirst", {"searches": [entry]}, relaxed_search=False)
    assert (relaxed == []) is relaxed_ok
    assert (strict == []) is strict_ok
    for err in relaxed + strict:
        assert err.startswith("spec.dnsConfig.searches[0]: Invalid value: ")


def test_v6_lone_dot_rejected_with_the_strict_message():
    errs = validate_dns_config("ClusterFirst", {"searches": ["."]}, relaxed_search=False)
    assert errs == [
        'spec.dnsConfig.searches[0]: Invalid value: "": a lowercase RFC 1123 subdomain must consist of lower case '
        "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    ]


def test_253_character_subdomain_is_the_longest_allowed():
    name = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61
    assert len(name) == 253
    assert dns1123_subdomain_errors(name) == []
    assert dns1123_subdomain_errors(name + "d") == ["must be no more than 253 characters"]


@pytest.mark.parametrize(
    ("options", "bad_index"),
    [
        ([{"name": ""}], 0),
        ([{"name": "ndots", "value": "5"}, {"value": "1"}], 1),
        ([{"name": "edns0"}], None),
    ],
    ids=["empty-name", "missing-name", "valid"],
)
def test_v7_option_names_must_not_be_empty(options, bad_index):
    errs = validate_dns_config("ClusterFirst", {"options": options})
    if bad_index is None:
        assert errs == []
    else:
        assert errs == [f"spec.dnsConfig.options[{bad_index}]: Required value: must not be empty"]


def test_option_values_are_free_form():
    assert validate_dns_config("Default", {"options": [{"name": "ndots", "value": "not-a-number"}]}) == []


def test_full_none_remediation_is_valid():
    dns_config = {
        "nameservers": ["10.96.0.10"],
        "searches": CLUSTER_SEARCH,
        "options": [{"name": "ndots", "value": "5"}, {"name": "edns0"}],
    }
    assert validate_dns_config("None", dns_config) == []


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("ClusterFirst", []),
        ("ClusterFirstWithHostNet", []),
        ("Default", []),
        ("None", []),
        ("", ["spec.dnsPolicy: Required value"]),
        (
            "clusterfirst",
            [
                'spec.dnsPolicy: Unsupported value: "clusterfirst": supported values: '
                '"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"'
            ],
        ),
    ],
    ids=["cluster-first", "with-host-net", "default", "none", "empty", "wrong-case"],
)
def test_dns_policy_must_be_known(policy, expected):
    assert validate_dns_policy(policy) == expected


def test_errors_are_reported_under_the_given_pod_spec_path():
    errs = validate_dns_config("None", None, field_path="spec.template.spec")
    assert errs == [
        "spec.template.spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"
    ]


def test_every_problem_is_reported_together():
    errs = validate_dns_config(
        "ClusterFirst",
        {"nameservers": ["10.0.0.300"], "searches": ["UPPER"], "options": [{"name": ""}]},
    )
    assert [e.split(":", 1)[0] for e in errs] == [
        "spec.dnsConfig.nameservers[0]",
        "spec.dnsConfig.searches[0]",
        "spec.dnsConfig.options[0]",
    ]
