"""The kubelet's pod resolv.conf synthesis, checked against the vectors of Kubernetes' own dns_test.go
(ported, not copied) and the K1-K18 vectors and policy matrix of domain.md §4.2/§8.2.

Every expected value here is written out by hand from those sources, never computed by the module.
"""

from __future__ import annotations

import pytest

from dnsaudit.core.kubelet import (
    KubeletDNSError,
    UnreadableNodeFile,
    cluster_searches,
    expanded_limits_for,
    fit_nameservers,
    fit_searches,
    merge_dns_options,
    parse_node_resolv_conf,
    pod_dns_type,
    pod_resolv_conf,
    render_resolv_conf,
    version_tuple,
    workload_resolv_conf,
)
from dnsaudit.core.model import KubeletDNS, ResolvConf, Workload

# --- TestParseResolvConf -------------------------------------------------------------------------

PARSE_VECTORS = [
    ("empty", "", [], [], []),
    ("space", " ", [], [], []),
    ("newline", "\n", [], [], []),
    ("tabs", "\t\n\t", [], [], []),
    ("comment", "#comment\n", [], [], []),
    ("indented-comment", " #comment\n", [], [], []),
    ("two-comments", "#comment\n#comment", [], [], []),
    ("ns-empty-search", "#comment\nnameserver 1.2.3.4\nsearch", ["1.2.3.4"], [], []),
    ("ns", "nameserver 1.2.3.4", ["1.2.3.4"], [], []),
    ("ns-leading-space", " nameserver 1.2.3.4", ["1.2.3.4"], [], []),
    ("ns-leading-tab", "\tnameserver 1.2.3.4", ["1.2.3.4"], [], []),
    ("ns-tab-sep", "nameserver\t1.2.3.4", ["1.2.3.4"], [], []),
    ("ns-mixed-sep", "nameserver \t 1.2.3.4", ["1.2.3.4"], [], []),
    ("ns-accumulate", "nameserver 1.2.3.4\nnameserver 5.6.7.8", ["1.2.3.4", "5.6.7.8"], [], []),
    ("ns-trailing-comment", "nameserver 1.2.3.4 #comment", ["1.2.3.4"], [], []),
    ("search-empty", "search ", [], [], []),
    ("search-one", "search foo", [], ["foo"], []),
    ("search-two", "search foo bar", [], ["foo", "bar"], []),
    ("search-trailing-dot", "search foo. bar", [], ["foo", "bar"], []),
    ("search-three", "search foo bar bat\n", [], ["foo", "bar", "bat"], []),
    ("search-last-wins", "search foo\nsearch bar", [], ["bar"], []),
    ("ns-and-search", "nameserver 1.2.3.4\nsearch foo bar", ["1.2.3.4"], ["foo", "bar"], []),
    (
        "interleaved",
        "nameserver 1.2.3.4\nsearch foo\nnameserver 5.6.7.8\nsearch bar",
        ["1.2.3.4", "5.6.7.8"],
        ["bar"],
        [],
    ),
    (
        "comments-and-junk-line",
        "#comment\nnameserver 1.2.3.4\n#comment\nsearch foo\ncomment",
        ["1.2.3.4"],
        ["foo"],
        [],
    ),
    ("options-empty", "options ", [], [], []),
    ("options-two", "options ndots:5 attempts:2", [], [], ["ndots:5", "attempts:2"]),
    ("options-two-lines", "options ndots:1\noptions ndots:5 attempts:3", [], [], ["ndots:5", "attempts:3"]),
    (
        "everything",
        "nameserver 1.2.3.4\nsearch foo\nnameserver 5.6.7.8\nsearch bar\noptions ndots:5 attempts:4",
        ["1.2.3.4", "5.6.7.8"],
        ["bar"],
        ["ndots:5", "attempts:4"],
    ),
    # Derived from the >=1.25.1 code (PR #112157), the newest behaviour:
    ("search-dot-dropped", "search .", [], [], []),
    ("search-dot-in-middle-dropped", "search foo . bar", [], ["foo", "bar"], []),
    # The kubelet does not parse `domain` (K18) nor anything but the three keywords.
    ("domain-ignored", "domain corp\nsortlist 10.0.0.0/8", [], [], []),
    ("keywords-case-sensitive", "Nameserver 1.2.3.4\nSEARCH foo", [], [], []),
    ("crlf-line-endings", "nameserver 1.2.3.4\r\nsearch foo\r\n", ["1.2.3.4"], ["foo"], []),
]


@pytest.mark.parametrize(
    ("text", "nameservers", "searches", "options"),
    [v[1:] for v in PARSE_VECTORS],
    ids=[v[0] for v in PARSE_VECTORS],
)
def test_kubelet_parses_node_resolv_conf(text, nameservers, searches, options):
    conf = parse_node_resolv_conf(text)
    assert list(conf.nameservers) == nameservers
    assert list(conf.searches) == searches
    assert list(conf.options) == options


@pytest.mark.parametrize(
    "text",
    ["#comment\nnameserver", "#comment\nnameserver\nsearch", "nameserver 1.2.3.4\nnameserver \n"],
    ids=["nameserver-without-address", "nameserver-and-search-empty", "second-nameserver-empty"],
)
def test_nameserver_line_without_address_is_a_parse_error(text):
    with pytest.raises(KubeletDNSError, match="nameserver list is empty"):
        parse_node_resolv_conf(text)


def test_node_file_over_ten_mebibytes_is_refused():
    with pytest.raises(KubeletDNSError):
        parse_node_resolv_conf("#" * ((10 << 20) + 1))


SEARCH_DOT_BY_VERSION = [
    ("1.24-trims-dot-to-empty", "v1.24.9", ["foo", ""]),
    ("1.16-era-trims", "1.18.0", ["foo", ""]),
    ("1.25.0-keeps-dot", "v1.25.0", ["foo", "."]),
    ("1.25.0-eks-keeps-dot", "1.25.0-eks-1", ["foo", "."]),
    ("1.25.0-k3s-keeps-dot", "v1.25.0+k3s1", ["foo", "."]),
    ("1.25.1-drops-dot", "v1.25.1", ["foo"]),
    ("1.30-drops-dot", "v1.30.2", ["foo"]),
    ("unknown-version-newest", None, ["foo"]),
]


@pytest.mark.parametrize(
    ("version", "searches"), [v[1:] for v in SEARCH_DOT_BY_VERSION], ids=[v[0] for v in SEARCH_DOT_BY_VERSION]
)
def test_search_dot_handling_depends_on_kubelet_version(version, searches):
    assert list(parse_node_resolv_conf("search foo. .", version).searches) == searches


@pytest.mark.parametrize(
    ("version", "searches"),
    [("v1.24.0", ["foo.", "."]), ("v1.25.0", ["foo.", "."]), ("v1.26.0", ["foo.", "."])],
    ids=["1.24", "1.25.0", "1.26"],
)
def test_only_one_trailing_dot_is_trimmed(version, searches):
    # strings.TrimSuffix removes one dot: "foo.." -> "foo.", and ".." (not equal to ".") -> ".".
    assert list(parse_node_resolv_conf("search foo.. ..", version).searches) == searches


@pytest.mark.parametrize(
    ("version", "options"),
    [
        ("v1.25.4", ["ndots:2"]),
        ("v1.26.0", ["timeout:1", "ndots:2", "attempts:3"]),
        (None, ["timeout:1", "ndots:2", "attempts:3"]),
    ],
    ids=["before-1.26-last-line-wins", "1.26-merges-by-name", "newest-merges-by-name"],
)
def test_several_options_lines_per_kubelet_version(version, options):
    text = "options timeout:1 ndots:1\noptions attempts:3\noptions ndots:2"
    assert list(parse_node_resolv_conf(text, version).options) == options


# --- version_tuple ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v1.25.0", (1, 25, 0)),
        ("1.25.0-eks-1", (1, 25, 0)),
        ("v1.28.3+k3s1", (1, 28, 3)),
        ("v1.29", (1, 29, 0)),
        ("v1.31.0-rc.1", (1, 31, 0)),
        ("", None),
        (None, None),
        ("latest", None),
    ],
    ids=["plain", "eks", "k3s", "no-patch", "rc", "empty", "none", "garbage"],
)
def test_version_tuple_reads_vendor_versions(text, expected):
    assert version_tuple(text) == expected


@pytest.mark.parametrize(
    ("version", "expanded"),
    [("v1.22.0", False), ("v1.25.9", False), ("v1.26.0", True), ("v1.28.1", True), (None, True)],
    ids=["1.22-alpha-off", "1.25-off", "1.26-beta-on", "1.28-ga", "unknown"],
)
def test_expanded_dns_config_default_per_version(version, expanded):
    assert expanded_limits_for(version) is expanded


# --- TestFormDNSSearchFitsLimits -------------------------------------------------------------------

CLUSTER3 = ["testNS.svc.TEST", "svc.TEST", "TEST"]
LIST_2048 = ["A" * 128] + ["A" * 127] * 15  # 128 + 127*15 + 15 spaces = 2048
PATHS_32 = CLUSTER3 + [str(i) for i in range(4, 33)]

SEARCH_LIMIT_VECTORS = [
    ("3-paths", CLUSTER3, False, CLUSTER3, False),
    ("5-paths", [*CLUSTER3, "AAA", "BBB"], False, [*CLUSTER3, "AAA", "BBB"], False),
    (
        "legacy-256-char-entry-dropped",
        [*CLUSTER3, "AAA", "B" * 256, "BBB"],
        False,
        [*CLUSTER3, "AAA", "BBB"],
        True,
    ),
    ("expanded-2048-chars-fits", LIST_2048, True, LIST_2048, False),
    ("expanded-2050-chars-trailing-dropped", [*LIST_2048, "B"], True, LIST_2048, True),
    (
        "expanded-256-char-entry-dropped",
        [*CLUSTER3, "AAA", "B" * 256, "BBB"],
        True,
        [*CLUSTER3, "AAA", "BBB"],
        True,
    ),
    (
        "legacy-7-paths-cut-to-6",
        [*CLUSTER3, "AAA", "BBB", "CCC", "DDD"],
        False,
        [*CLUSTER3, "AAA", "BBB", "CCC"],
        True,
    ),
    ("expanded-32-paths", PATHS_32, True, PATHS_32, False),
    ("expanded-33-paths-cut-to-32", [*PATHS_32, "33"], True, PATHS_32, True),
    # Our own: exactly 253 characters is kept, 254 dropped.
    ("entry-of-253-kept", ["a" * 253], True, ["a" * 253], False),
    ("entry-of-254-dropped", ["a" * 254, "b"], True, ["b"], True),
    # The kubelet cuts to 32 *before* removing long entries, so a long entry costs a slot: 31 remain.
    (
        "cut-then-drop-long",
        [*PATHS_32[:4], "x" * 254, *PATHS_32[4:]],
        True,
        [*PATHS_32[:4], *PATHS_32[4:31]],
        True,
    ),
    # Legacy 256-char line limit: "x"*200 + " " + "y"*60 = 261 -> the last entry goes.
    ("legacy-line-over-256", ["x" * 200, "y" * 60], False, ["x" * 200], True),
]


@pytest.mark.parametrize(
    ("searches", "expanded", "expected", "event"),
    [v[1:] for v in SEARCH_LIMIT_VECTORS],
    ids=[v[0] for v in SEARCH_LIMIT_VECTORS],
)
def test_kubelet_fits_search_line_to_limits(searches, expanded, expected, event):
    got, ev = fit_searches(searches, expanded_limits=expanded)
    assert got == expected
    if event:
        assert ev == (
            "DNSConfigForming: Search Line limits were exceeded, some search paths have been omitted, "
            "the applied search line is: " + " ".join(expected)
        )
    else:
        assert ev is None


NAMESERVER_LIMIT_VECTORS = [
    ("1", ["127.0.0.1"], ["127.0.0.1"], False),
    ("3", ["127.0.0.1", "10.0.0.10", "8.8.8.8"], ["127.0.0.1", "10.0.0.10", "8.8.8.8"], False),
    (
        "4-cut-to-3",
        ["127.0.0.1", "10.0.0.10", "8.8.8.8", "1.2.3.4"],
        ["127.0.0.1", "10.0.0.10", "8.8.8.8"],
        True,
    ),
]


@pytest.mark.parametrize(
    ("servers", "expected", "event"),
    [v[1:] for v in NAMESERVER_LIMIT_VECTORS],
    ids=[v[0] for v in NAMESERVER_LIMIT_VECTORS],
)
def test_kubelet_keeps_at_most_three_nameservers(servers, expected, event):
    got, ev = fit_nameservers(servers)
    assert got == expected
    assert (ev is not None) is event
    if event:
        assert ev.startswith("DNSConfigForming: Nameserver limits were exceeded")
        assert ev.endswith("127.0.0.1 10.0.0.10 8.8.8.8")


# --- TestMergeDNSOptions ---------------------------------------------------------------------------

MERGE_VECTORS = [
    ("no-dnsconfig-options", None, ["ndots:5", "debug"]),
    (
        "no-duplicates",
        [{"name": "single-request"}, {"name": "attempts", "value": "3"}],
        ["ndots:5", "debug", "single-request", "attempts:3"],
    ),
    (
        "overwrite-duplicates",
        [
            {"name": "ndots", "value": "3"},
            {"name": "debug"},
            {"name": "single-request"},
            {"name": "attempts", "value": "3"},
        ],
        ["ndots:3", "debug", "single-request", "attempts:3"],
    ),
]


@pytest.mark.parametrize(
    ("dns_options", "expected"), [v[1:] for v in MERGE_VECTORS], ids=[v[0] for v in MERGE_VECTORS]
)
def test_dnsconfig_options_merge_by_name_and_win(dns_options, expected):
    got = merge_dns_options(["ndots:5", "debug"], dns_options)
    assert set(got) == set(expected)
    assert len(got) == len(expected)
    # Our contract beyond the kubelet's (which is map-ordered): base order, new names appended.
    assert got == expected


def test_dnsconfig_option_with_empty_value_is_written_bare():
    assert merge_dns_options(["ndots:5"], [{"name": "ndots", "value": ""}]) == ["ndots"]


# --- TestGetPodDNSType + §4.2 policy x hostNetwork -------------------------------------------------

DNS_TYPE_VECTORS = [
    ("ClusterFirst", False, "cluster"),
    ("ClusterFirstWithHostNet", True, "cluster"),
    ("ClusterFirstWithHostNet", False, "cluster"),
    ("Default", False, "host"),
    ("Default", True, "host"),
    ("ClusterFirst", True, "host"),
    ("None", False, "none"),
    ("None", True, "none"),
    ("invalidPolicy", False, "cluster"),
    ("", False, "cluster"),
]


@pytest.mark.parametrize(
    ("policy", "host_network", "expected"),
    DNS_TYPE_VECTORS,
    ids=[f"{p or 'empty'}-hostNet={h}" for p, h, _ in DNS_TYPE_VECTORS],
)
def test_pod_dns_type(policy, host_network, expected):
    assert pod_dns_type(policy, host_network) == expected


def test_unknown_policy_is_treated_as_cluster_first_with_a_note():
    kubelet = KubeletDNS(cluster_dns=("10.96.0.10",), cluster_domain="cluster.local")
    got = pod_resolv_conf("app", "invalidPolicy", False, None, kubelet, "search corp\n")
    assert got.conf.nameservers == ("10.96.0.10",)
    assert got.conf.searches == ("app.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp")
    assert any(e.startswith("InvalidDNSPolicy:") for e in got.events)


K1_FILE = "nameserver 192.168.0.2\nsearch openstacklocal\noptions edns0\n"
KUBELET = KubeletDNS(
    cluster_dns=("10.96.0.10",), cluster_domain="cluster.local", resolv_conf="/etc/resolv.conf"
)
KUBELET_NO_FILE = KubeletDNS(cluster_dns=("10.96.0.10",), cluster_domain="cluster.local", resolv_conf="")
CLUSTER_SEARCH = ["app.svc.cluster.local", "svc.cluster.local", "cluster.local"]
NONE_CONFIG = {
    "nameservers": ["10.96.0.11"],
    "searches": ["only.example"],
    "options": [{"name": "ndots", "value": "2"}],
}

MATRIX = [
    # policy, hostNetwork, kubelet, dnsConfig, nameservers, searches, options
    ("ClusterFirst", False, KUBELET, None, ["10.96.0.10"], [*CLUSTER_SEARCH, "openstacklocal"], ["ndots:5"]),
    ("ClusterFirst", True, KUBELET, None, ["192.168.0.2"], ["openstacklocal"], ["edns0"]),
    (
        "ClusterFirstWithHostNet",
        True,
        KUBELET,
        None,
        ["10.96.0.10"],
        [*CLUSTER_SEARCH, "openstacklocal"],
        ["ndots:5"],
    ),
    (
        "ClusterFirstWithHostNet",
        False,
        KUBELET,
        None,
        ["10.96.0.10"],
        [*CLUSTER_SEARCH, "openstacklocal"],
        ["ndots:5"],
    ),
    ("Default", False, KUBELET, None, ["192.168.0.2"], ["openstacklocal"], ["edns0"]),
    ("Default", True, KUBELET, None, ["192.168.0.2"], ["openstacklocal"], ["edns0"]),
    ("None", False, KUBELET, NONE_CONFIG, ["10.96.0.11"], ["only.example"], ["ndots:2"]),
    ("None", True, KUBELET, NONE_CONFIG, ["10.96.0.11"], ["only.example"], ["ndots:2"]),
    ("Default", False, KUBELET_NO_FILE, None, ["127.0.0.1"], ["."], []),
    ("Default", True, KUBELET_NO_FILE, None, ["127.0.0.1"], ["."], []),
    ("ClusterFirst", False, KUBELET_NO_FILE, None, ["10.96.0.10"], CLUSTER_SEARCH, ["ndots:5"]),
    ("ClusterFirst", True, KUBELET_NO_FILE, None, ["127.0.0.1"], ["."], []),
]


@pytest.mark.parametrize(
    ("policy", "host_network", "kubelet", "dns_config", "nameservers", "searches", "options"),
    MATRIX,
    ids=[f"{m[0]}-hostNet={m[1]}" + ("-resolvConf-empty" if m[2].resolv_conf == "" else "") for m in MATRIX],
)
def test_policy_host_network_matrix(
    policy, host_network, kubelet, dns_config, nameservers, searches, options
):
    got = pod_resolv_conf("app", policy, host_network, dns_config, kubelet, K1_FILE)
    assert got.error is None
    assert list(got.conf.nameservers) == nameservers
    assert list(got.conf.searches) == searches
    assert list(got.conf.options) == options


# --- testGetPodDNS (clusterDNS 203.0.113.1, domain kubernetes.io, pods without namespace) ----------

GET_POD_DNS_HOST_FILE = (
    "nameserver 192.0.2.53\nsearch a.example b.example c.example d.example\noptions rotate\n"
)


def _go_test_kubelet(resolv_conf: str) -> KubeletDNS:
    return KubeletDNS(cluster_dns=("203.0.113.1",), cluster_domain="kubernetes.io", resolv_conf=resolv_conf)


@pytest.mark.parametrize(
    ("policy", "host_network", "nameservers", "first_search", "search_len"),
    [
        ("ClusterFirstWithHostNet", True, ["203.0.113.1"], ".svc.kubernetes.io", 3),
        ("ClusterFirst", True, ["127.0.0.1"], ".", 1),
        ("ClusterFirst", False, ["203.0.113.1"], ".svc.kubernetes.io", 3),
        ("Default", True, ["127.0.0.1"], ".", 1),
    ],
    ids=["cluster-first-with-host-net", "cluster-first-host-net", "cluster-first", "default"],
)
@pytest.mark.parametrize("expanded", [False, True], ids=["legacy", "expanded"])
def test_get_pod_dns_with_resolv_conf_disabled(
    policy, host_network, nameservers, first_search, search_len, expanded
):
    got = pod_resolv_conf(
        "", policy, host_network, None, _go_test_kubelet(""), None, expanded_limits=expanded
    )
    assert list(got.conf.nameservers) == nameservers
    assert got.conf.searches[0] == first_search
    assert len(got.conf.searches) == search_len
    assert got.events == []  # resolvConf "" means no file is read, so nothing is unknown


@pytest.mark.parametrize(("expanded", "cluster_len"), [(False, 6), (True, 7)], ids=["legacy", "expanded"])
def test_get_pod_dns_with_resolv_conf_file(expanded, cluster_len):
    kubelet = _go_test_kubelet("/etc/resolv.conf")
    host = pod_resolv_conf(
        "", "ClusterFirst", True, None, kubelet, GET_POD_DNS_HOST_FILE, expanded_limits=expanded
    )
    assert len(host.conf.searches) == 4
    for policy, host_network in [("ClusterFirstWithHostNet", True), ("ClusterFirst", False)]:
        got = pod_resolv_conf(
            "", policy, host_network, None, kubelet, GET_POD_DNS_HOST_FILE, expanded_limits=expanded
        )
        assert list(got.conf.nameservers) == ["203.0.113.1"]
        # min(len(host)+3, maxPaths): 7 expanded, 6 legacy
        assert len(got.conf.searches) == cluster_len
        assert got.conf.searches[0] == ".svc.kubernetes.io"


# --- TestGetPodDNSCustom --------------------------------------------------------------------------

CUSTOM_FILE = "nameserver 8.8.8.8\nsearch host.domain\n"
CUSTOM_KUBELET = KubeletDNS(
    cluster_dns=("10.0.0.10",), cluster_domain="kubernetes.io", resolv_conf="/tmp/resolv"
)
CUSTOM_CONFIG = {
    "nameservers": ["10.0.0.11"],
    "searches": ["my.domain"],
    "options": [{"name": "ndots", "value": "3"}, {"name": "debug"}],
}
CUSTOM_CLUSTER_SEARCH = [
    "testNS.svc.kubernetes.io",
    "svc.kubernetes.io",
    "kubernetes.io",
    "host.domain",
    "my.domain",
]

CUSTOM_VECTORS = [
    ("none-without-dnsconfig-is-empty", "None", False, None, [], [], set()),
    (
        "none-with-dnsconfig",
        "None",
        False,
        {
            "nameservers": ["203.0.113.1"],
            "searches": ["my.domain", "second.domain"],
            "options": [{"name": "ndots", "value": "3"}, {"name": "debug"}],
        },
        ["203.0.113.1"],
        ["my.domain", "second.domain"],
        {"ndots:3", "debug"},
    ),
    (
        "cluster-first-merged",
        "ClusterFirst",
        False,
        CUSTOM_CONFIG,
        ["10.0.0.10", "10.0.0.11"],
        CUSTOM_CLUSTER_SEARCH,
        {"ndots:3", "debug"},
    ),
    (
        "cluster-first-with-host-net-merged",
        "ClusterFirstWithHostNet",
        True,
        CUSTOM_CONFIG,
        ["10.0.0.10", "10.0.0.11"],
        CUSTOM_CLUSTER_SEARCH,
        {"ndots:3", "debug"},
    ),
    (
        "default-merged",
        "Default",
        False,
        CUSTOM_CONFIG,
        ["8.8.8.8", "10.0.0.11"],
        ["host.domain", "my.domain"],
        {"ndots:3", "debug"},
    ),
]


@pytest.mark.parametrize(
    ("policy", "host_network", "dns_config", "nameservers", "searches", "options"),
    [v[1:] for v in CUSTOM_VECTORS],
    ids=[v[0] for v in CUSTOM_VECTORS],
)
def test_get_pod_dns_custom(policy, host_network, dns_config, nameservers, searches, options):
    got = pod_resolv_conf("testNS", policy, host_network, dns_config, CUSTOM_KUBELET, CUSTOM_FILE)
    assert got.error is None
    assert list(got.conf.nameservers) == nameservers
    assert list(got.conf.searches) == searches
    assert set(got.conf.options) == options
    assert len(got.conf.options) == len(options)


# --- K1-K18 (domain.md §8.2) ------------------------------------------------------------------------

D40 = " ".join(f"d{i}" for i in range(1, 41))
K_VECTORS = [
    # id, node file, kubelet, policy, hostNet, dnsConfig, nameservers, searches, options (set), event reasons
    ("K1", K1_FILE, KUBELET, "ClusterFirst", False, None,
     ["10.96.0.10"], [*CLUSTER_SEARCH, "openstacklocal"], {"ndots:5"}, []),
    ("K2-trailing-dot", "nameserver 192.168.0.2\nsearch openstacklocal.\noptions edns0\n", KUBELET,
     "ClusterFirst", False, None, ["10.96.0.10"], [*CLUSTER_SEARCH, "openstacklocal"], {"ndots:5"}, []),
    ("K3-dedup", "search cluster.local openstacklocal\n", KUBELET, "ClusterFirst", False, None,
     ["10.96.0.10"], [*CLUSTER_SEARCH, "openstacklocal"], {"ndots:5"}, []),
    ("K4-search-dot-1.25.1", "search .\n", KUBELET, "ClusterFirst", False, None,
     ["10.96.0.10"], CLUSTER_SEARCH, {"ndots:5"}, []),
    ("K4-search-dot-1.25.0", "search .\n", KubeletDNS(version="v1.25.0"), "ClusterFirst", False, None,
     ["10.96.0.10"], [*CLUSTER_SEARCH, "."], {"ndots:5"}, []),
    ("K4-search-dot-1.24", "search .\n", KubeletDNS(version="v1.24.3"), "ClusterFirst", False, None,
     ["10.96.0.10"], [*CLUSTER_SEARCH, ""], {"ndots:5"}, []),
    ("K5", "search openstacklocal corp.example\n", KUBELET, "ClusterFirst", False, None,
     ["10.96.0.10"], [*CLUSTER_SEARCH, "openstacklocal", "corp.example"], {"ndots:5"}, []),
    ("K6-cluster-first-host-net", K1_FILE, KUBELET, "ClusterFirst", True, None,
     ["192.168.0.2"], ["openstacklocal"], {"edns0"}, []),
    ("K7-with-host-net", K1_FILE, KUBELET, "ClusterFirstWithHostNet", True, None,
     ["10.96.0.10"], [*CLUSTER_SEARCH, "openstacklocal"], {"ndots:5"}, []),
    ("K8-default", K1_FILE, KUBELET, "Default", False, None,
     ["192.168.0.2"], ["openstacklocal"], {"edns0"}, []),
    ("K9-resolvconf-empty-ipv4", K1_FILE, KubeletDNS(resolv_conf="", node_ips=("192.168.0.5",)), "Default", False,
     None, ["127.0.0.1"], ["."], set(), []),
    ("K9-resolvconf-empty-dual-stack", K1_FILE,
     KubeletDNS(resolv_conf="", node_ips=("192.168.0.5", "fd00::5")), "Default", False, None,
     ["127.0.0.1", "::1"], ["."], set(), []),
    ("K10-resolvconf-empty-cluster", K1_FILE, KUBELET_NO_FILE, "ClusterFirst", False, None,
     ["10.96.0.10"], CLUSTER_SEARCH, {"ndots:5"}, []),
    ("K11-none", K1_FILE, KUBELET, "None", False,
     {"nameservers": ["10.96.0.10"], "searches": CLUSTER_SEARCH, "options": [{"name": "ndots", "value": "5"}]},
     ["10.96.0.10"], CLUSTER_SEARCH, {"ndots:5"}, []),
    ("K12-cluster-first-plus-dnsconfig", K1_FILE, KUBELET, "ClusterFirst", False,
     {"nameservers": ["1.1.1.1"], "searches": ["my.domain"],
      "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]},
     ["10.96.0.10", "1.1.1.1"], [*CLUSTER_SEARCH, "openstacklocal", "my.domain"], {"ndots:2", "edns0"}, []),
    ("K13-searches-repeat-node-domain", K1_FILE, KUBELET, "ClusterFirst", False, {"searches": ["openstacklocal"]},
     ["10.96.0.10"], [*CLUSTER_SEARCH, "openstacklocal"], {"ndots:5"}, []),
    ("K13-searches-empty", K1_FILE, KUBELET, "ClusterFirst", False, {"searches": []},
     ["10.96.0.10"], [*CLUSTER_SEARCH, "openstacklocal"], {"ndots:5"}, []),
    ("K14-no-cluster-dns", K1_FILE, KubeletDNS(cluster_dns=()), "ClusterFirst", False, None,
     ["192.168.0.2"], ["openstacklocal"], {"edns0"}, ["MissingClusterDNS"]),
    ("K15-40-node-domains", f"nameserver 192.168.0.2\nsearch {D40}\n", KUBELET, "ClusterFirst", False, None,
     ["10.96.0.10"], [*CLUSTER_SEARCH, *[f"d{i}" for i in range(1, 30)]], {"ndots:5"}, ["DNSConfigForming"]),
    ("K16-four-nameservers", K1_FILE, KUBELET, "ClusterFirst", False,
     {"nameservers": ["10.0.0.1", "10.0.0.2", "10.0.0.3"]},
     ["10.96.0.10", "10.0.0.1", "10.0.0.2"], [*CLUSTER_SEARCH, "openstacklocal"], {"ndots:5"},
     ["DNSConfigForming"]),
    ("K18-domain-line-ignored", "domain corp\n", KUBELET, "ClusterFirst", False, None,
     ["10.96.0.10"], CLUSTER_SEARCH, {"ndots:5"}, []),
]  # fmt: skip


@pytest.mark.parametrize(
    (
        "node_file",
        "kubelet",
        "policy",
        "host_network",
        "dns_config",
        "nameservers",
        "searches",
        "options",
        "reasons",
    ),
    [v[1:] for v in K_VECTORS],
    ids=[v[0] for v in K_VECTORS],
)
def test_kubelet_vectors(
    node_file, kubelet, policy, host_network, dns_config, nameservers, searches, options, reasons
):
    got = pod_resolv_conf("app", policy, host_network, dns_config, kubelet, node_file)
    assert got.error is None
    assert list(got.conf.nameservers) == nameservers
    assert list(got.conf.searches) == searches
    assert set(got.conf.options) == options
    assert len(got.conf.options) == len(options)
    assert [e.split(":", 1)[0] for e in got.events] == reasons


def test_k4_kubelet_1_24_writes_trailing_space_on_search_line():
    got = pod_resolv_conf("app", "ClusterFirst", False, None, KubeletDNS(version="v1.24.3"), "search .\n")
    assert (
        render_resolv_conf(got.conf).splitlines()[0]
        == "search app.svc.cluster.local svc.cluster.local cluster.local "
    )


def test_k15_search_origin_marks_node_domains():
    got = pod_resolv_conf("app", "ClusterFirst", False, None, KUBELET, f"search {D40}\n")
    assert got.search_origin["app.svc.cluster.local"] == "cluster"
    assert got.search_origin["d29"] == "node"
    assert "d30" not in got.search_origin  # dropped by the 32-path limit
    assert got.events[0].endswith("cluster.local d1 d2 d3 d4 d5 d6 d7 d8 d9 d10 d11 d12 d13 d14 d15 d16 d17 "
                                  "d18 d19 d20 d21 d22 d23 d24 d25 d26 d27 d28 d29")  # fmt: skip


@pytest.mark.parametrize("policy", ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"])
def test_k17_unreadable_node_file_fails_every_pod(policy):
    dns_config = {"nameservers": ["10.96.0.10"]} if policy == "None" else None
    got = pod_resolv_conf(
        "app", policy, False, dns_config, KUBELET, UnreadableNodeFile("no such file or directory")
    )
    assert got.error == "open /etc/resolv.conf: no such file or directory"
    assert got.conf == ResolvConf()


@pytest.mark.parametrize("policy", ["ClusterFirst", "None"])
def test_unparseable_node_file_fails_every_pod(policy):
    got = pod_resolv_conf("app", policy, False, {"nameservers": ["10.0.0.1"]}, KUBELET, "nameserver\n")
    assert got.error is not None
    assert "nameserver list is empty" in got.error
    assert got.conf == ResolvConf()


def test_unreadable_node_file_is_harmless_when_kubelet_reads_no_file():
    got = pod_resolv_conf("app", "ClusterFirst", False, None, KUBELET_NO_FILE, UnreadableNodeFile())
    assert got.error is None
    assert list(got.conf.searches) == CLUSTER_SEARCH


def test_unknown_node_file_is_assumed_empty_and_says_so():
    got = pod_resolv_conf("app", "Default", False, None, KUBELET, None)
    assert got.conf == ResolvConf()
    assert [e.split(":", 1)[0] for e in got.events] == ["NodeResolvConfUnknown"]


def test_ipv6_only_node_gets_only_ipv6_loopback():
    got = pod_resolv_conf(
        "app", "Default", False, None, KubeletDNS(resolv_conf="", node_ips=("fd00::5",)), None
    )
    assert list(got.conf.nameservers) == ["::1"]


def test_cluster_dns_ipv6_is_written_canonically():
    kubelet = KubeletDNS(cluster_dns=("fd00:0:0:0::a",))
    got = pod_resolv_conf("app", "ClusterFirst", False, None, kubelet, "")
    assert list(got.conf.nameservers) == ["fd00::a"]


def test_empty_cluster_domain_keeps_host_searches_only():
    kubelet = KubeletDNS(cluster_dns=("10.96.0.10",), cluster_domain="")
    got = pod_resolv_conf("app", "ClusterFirst", False, None, kubelet, "search corp corp\n")
    assert list(got.conf.searches) == ["corp", "corp"]  # no omitDuplicates on this path


def test_origins_name_every_source():
    got = pod_resolv_conf(
        "app",
        "ClusterFirst",
        False,
        {"nameservers": ["1.1.1.1", "10.96.0.10"], "searches": ["my.domain", "openstacklocal"]},
        KUBELET,
        K1_FILE,
    )
    assert got.nameserver_origin == {"10.96.0.10": "cluster", "1.1.1.1": "dnsConfig"}
    assert got.search_origin == {
        "app.svc.cluster.local": "cluster",
        "svc.cluster.local": "cluster",
        "cluster.local": "cluster",
        "openstacklocal": "node",
        "my.domain": "dnsConfig",
    }


def test_resolv_conf_disabled_search_dot_comes_from_kubelet():
    got = pod_resolv_conf("app", "Default", False, {"searches": ["x.example"]}, KUBELET_NO_FILE, None)
    assert got.search_origin == {".": "kubelet", "x.example": "dnsConfig"}
    assert got.nameserver_origin == {"127.0.0.1": "kubelet"}


def test_cluster_searches():
    assert cluster_searches("app", "cluster.local") == [
        "app.svc.cluster.local",
        "svc.cluster.local",
        "cluster.local",
    ]
    assert cluster_searches("app", "") == []


# --- workload convenience and rendering ------------------------------------------------------------


def test_workload_resolv_conf_uses_legacy_limits_on_old_kubelets():
    node_file = "search " + " ".join(f"d{i}" for i in range(1, 6)) + "\n"
    w = Workload(namespace="app", kind="Deployment", name="web")
    old = workload_resolv_conf(w, KubeletDNS(version="v1.25.2"), node_file)
    new = workload_resolv_conf(w, KubeletDNS(version="v1.27.1"), node_file)
    assert list(old.conf.searches) == [*CLUSTER_SEARCH, "d1", "d2", "d3"]
    assert list(new.conf.searches) == [*CLUSTER_SEARCH, "d1", "d2", "d3", "d4", "d5"]


def test_workload_resolv_conf_reads_policy_and_dnsconfig():
    w = Workload(
        namespace="app",
        kind="Deployment",
        name="web",
        dns_policy="None",
        dns_config={"nameservers": ["10.96.0.10"], "searches": ["app.svc.cluster.local"]},
    )
    got = workload_resolv_conf(w, KUBELET, K1_FILE)
    assert got.conf == ResolvConf(("10.96.0.10",), ("app.svc.cluster.local",), ())
    assert got.dns_type == "none"


@pytest.mark.parametrize(
    ("conf", "text"),
    [
        (
            ResolvConf(("10.96.0.10",), ("app.svc.cluster.local", "svc.cluster.local"), ("ndots:5",)),
            "search app.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
        ),
        (ResolvConf(("1.1.1.1", "8.8.8.8"), (), ()), "nameserver 1.1.1.1\nnameserver 8.8.8.8\n"),
        (ResolvConf((), (), ("ndots:2", "edns0")), "options ndots:2 edns0\n"),
        (ResolvConf(), ""),
    ],
    ids=["all-three", "servers-only", "options-only", "empty"],
)
def test_render_resolv_conf_as_cri_writes_it(conf, text):
    assert render_resolv_conf(conf) == text


def test_rendered_file_parses_back_to_the_same_config():
    conf = ResolvConf(("10.96.0.10", "fd00::a"), ("a.example", "b.example"), ("ndots:5", "edns0"))
    assert parse_node_resolv_conf(render_resolv_conf(conf)) == conf
