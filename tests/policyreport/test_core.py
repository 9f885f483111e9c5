"""The PolicyReport mapping (dnsaudit.core.policyreport) over plain report dicts: verdicts to results, names,
node pools, hostile strings, sizes; every object validated against the v1alpha2 CRD schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pydantic
import pytest
import yaml

from dnsaudit.core import policyreport as pr
from tests.policyreport.checks import dns1123_subdomain, validate_policy_report

GENERATED = "2026-12-01T20:00:00+00:00"
FINISHED = "2026-12-01T19:58:30.250000+00:00"


def workload(ns="shop", kind="Deployment", name="web", risk="affected", **extra) -> dict:
    out = {
        "namespace": ns,
        "kind": kind,
        "name": name,
        "containers": [
            {
                "name": "main",
                "image": "alpine:3.19",
                "libc": "musl",
                "musl_version": "1.2.4",
                "confidence": "confirmed",
                "digest": None,
            }
        ],
        "dns_policy": "ClusterFirst",
        "host_network": False,
        "resolv_conf": {"nameservers": ["10.96.0.10"], "searches": [], "options": ["ndots:5"]},
        "risk": risk,
        "reasons": [f"{name}: musl stops at example.com.corp.example (NODATA)"] if risk != "safe" else [],
        "remediation": {"recommended": "dnsConfig", "alternatives": [], "why": "x"},
        "node_pool": "general",
        "affected_names": ["example.com"] if risk == "affected" else [],
        "node_resolv_conf_source": "observed",
        "inherits_node_file": True,
    }
    out.update(extra)
    return out


def pool(name="general", source="observed", searches=("corp.example",), probes=None, **extra) -> dict:
    out = {
        "name": name,
        "nodes": 3,
        "kubelet_version": "v1.30.4",
        "architecture": "amd64",
        "cluster_dns": ["10.96.0.10"],
        "cluster_domain": "cluster.local",
        "resolv_conf_path": "/etc/resolv.conf",
        "node_resolv_conf": "",
        "node_resolv_conf_source": source,
        "node_resolv_conf_evidence": [],
        "searches": [
            {"domain": d, "origin": f"node resolv.conf ({source})", "cluster": False} for d in searches
        ],
        "observed": {},
        "probes": probes if probes is not None else [],
    }
    out.update(extra)
    return out


def probe(domain, answer) -> dict:
    return {
        "domain": domain,
        "probe_name": "example.com",
        "qname": f"example.com.{domain}",
        "server": "10.0.0.2",
        "a": answer,
        "aaaa": answer,
        "musl": "continues" if answer == "NXDOMAIN" else "stops",
        "glibc": "continues",
    }


def report(workloads, pools=(), gaps=()) -> dict:
    return {
        "cluster": {
            "name": "prod-eu",
            "context": "c",
            "server": "https://x",
            "is_demo": False,
            "auth": "token",
        },
        "scan": {"id": 42, "status": "succeeded", "finished_at": FINISHED},
        "node_pools": list(pools),
        "node_file_gaps": list(gaps),
        "workloads": list(workloads),
    }


def reports(rep: dict) -> list[dict]:
    docs = pr.policy_reports(rep, generated_at=GENERATED)
    for d in docs:
        validate_policy_report(d)
    return docs


def by_name(docs) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs}


# --- workloads -------------------------------------------------------------------------------------------


def test_each_verdict_maps_to_its_result_and_severity():
    docs = reports(
        report(
            [
                workload(name="a", risk="affected"),
                workload(name="b", risk="at-risk"),
                workload(name="c", risk="unknown"),
                workload(name="d", risk="safe"),
            ]
        )
    )
    results = {r["resources"][0]["name"]: r for r in by_name(docs)["dnsaudit-shop"]["results"]}
    assert [(results[n]["result"], results[n].get("severity")) for n in "abcd"] == [
        ("fail", "high"),
        ("warn", "medium"),
        ("warn", "low"),
        ("pass", None),
    ]
    a = results["a"]
    assert a["message"] == "a: musl stops at example.com.corp.example (NODATA)"
    assert a["resources"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "a"}
    ]
    assert a["source"] == "dnsaudit" and a["policy"] == pr.POLICY and a["rule"] == pr.RULE_WORKLOAD
    assert a["properties"]["risk"] == "affected" and a["properties"]["libc"] == "musl"
    assert a["properties"]["images"] == "alpine:3.19" and a["properties"]["scan"] == "42"
    assert a["timestamp"] == {"seconds": 1796155110, "nanos": 250_000_000}  # the scan's finished_at
    assert results["d"]["message"]  # a safe workload without reasons still says something
    assert by_name(docs)["dnsaudit-shop"]["summary"] == {
        "pass": 1,
        "fail": 1,
        "warn": 2,
        "error": 0,
        "skip": 0,
    }


def test_an_exempted_workload_is_skipped_with_the_exemption_reason_and_keeps_its_risk():
    exemption = {
        "reason": "vendor image, fix in Q1",
        "source": "annotation",
        "by": "alice",
        "expires": "2027-03-31",
        "id": 7,
    }
    docs = reports(report([workload(name="legacy", exemption=exemption), workload(name="new")]))
    res = {r["resources"][0]["name"]: r for r in docs[0]["results"]}
    skipped = res["legacy"]
    assert skipped["result"] == "skip" and "severity" not in skipped
    assert skipped["message"].startswith("Exempted by alice until 2027-03-31: vendor image, fix in Q1.")
    assert "musl stops" in skipped["message"]  # the finding is still there
    assert {k: v for k, v in skipped["properties"].items() if k.startswith("exemption_") or k == "risk"} == {
        "risk": "affected",
        "exemption_reason": "vendor image, fix in Q1",
        "exemption_source": "annotation",
        "exemption_by": "alice",
        "exemption_expires": "2027-03-31",
        "exemption_id": "7",
    }
    assert res["new"]["result"] == "fail"
    assert docs[0]["summary"]["skip"] == 1 and docs[0]["summary"]["fail"] == 1


@pytest.mark.parametrize(
    ("kind", "given", "expected"),
    [
        ("Deployment", None, "apps/v1"),
        ("StatefulSet", None, "apps/v1"),
        ("DaemonSet", None, "apps/v1"),
        ("ReplicaSet", None, "apps/v1"),
        ("CronJob", None, "batch/v1"),
        ("Job", None, "batch/v1"),
        ("Pod", None, "v1"),
        ("Rollout", "argoproj.io/v1alpha1", "argoproj.io/v1alpha1"),
        ("Rollout", None, None),
        ("Rollout", "not a version\n", None),
        ("Deployment", "extensions/v1beta1", "apps/v1"),  # the kind decides for the built-in kinds
    ],
)
def test_resource_api_version_comes_from_the_kind(kind, given, expected):
    extra = {"apiVersion": given} if given else {}
    (doc, _cluster) = reports(report([workload(kind=kind, **extra)]))
    ref = doc["results"][0]["resources"][0]
    assert ref.get("apiVersion") == expected
    assert ref["kind"] == kind


def test_one_report_per_namespace_sorted_then_the_cluster_report():
    docs = reports(
        report(
            [workload(ns="zeta", name="z"), workload(ns="alpha", name="a1"), workload(ns="alpha", name="a2")]
        )
    )
    assert [(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in docs] == [
        ("PolicyReport", "dnsaudit-alpha", "alpha"),
        ("PolicyReport", "dnsaudit-zeta", "zeta"),
        ("ClusterPolicyReport", "dnsaudit-cluster", None),
    ]
    for d in docs:
        assert d["apiVersion"] == "wgpolicyk8s.io/v1alpha2"
        assert d["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "dnsaudit"}
        assert d["metadata"]["annotations"] == {
            "dnsaudit.io/cluster": "prod-eu",
            "dnsaudit.io/scan": "42",
            "dnsaudit.io/generated-at": GENERATED,
        }
    assert len(docs[0]["results"]) == 2 and len(docs[1]["results"]) == 1


def test_an_empty_report_still_has_the_cluster_report():
    docs = reports(report([]))
    assert [d["kind"] for d in docs] == ["ClusterPolicyReport"]
    assert docs[0]["results"] == [] and set(docs[0]["summary"].values()) == {0}


def test_results_take_the_generated_time_when_the_scan_has_no_finish_time():
    rep = report([workload()])
    rep["scan"]["finished_at"] = None
    docs = reports(rep)
    assert docs[0]["results"][0]["timestamp"] == {"seconds": 1796155200, "nanos": 0}
    assert pr.timestamp("garbage", "also garbage") == {"seconds": 0, "nanos": 0}
    assert pr.timestamp("2026-12-01T20:00:00", "") == {"seconds": 1796155200, "nanos": 0}  # naive is UTC


# --- names -----------------------------------------------------------------------------------------------


def test_report_names_are_valid_and_distinct():
    assert pr.report_name("shop") == "dnsaudit-shop"
    assert pr.report_name("a" * 63) == "dnsaudit-" + "a" * 63
    long = "a" * 250
    names = {pr.report_name(s) for s in (long, long + "b", "Shop", "shop_", "sh op", "", "-x-", "ü")}
    assert len(names) == 8
    for n in names:
        assert dns1123_subdomain(n) and n.startswith("dnsaudit-"), n
    assert len(pr.report_name(long)) <= 253


def test_hostile_strings_stay_data():
    """Reasons, images, pools and exemption text from the cluster: bounded, control characters gone, and a
    YAML or document break inside them stays inside its string."""
    evil = "x\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: pwn}\n\x1b[31m\u202eevil" + "y" * 5000
    w = workload(
        name="web",
        reasons=[evil, "second"],
        node_pool=evil,
        containers=[
            {
                "name": "c",
                "image": evil,
                "libc": "musl",
                "musl_version": None,
                "confidence": "inferred",
                "digest": None,
            }
        ],
        exemption={"reason": evil, "source": evil, "by": evil, "expires": evil, "id": evil},
    )
    rep = report([w], pools=[pool(name=evil, searches=[evil], probes=[probe(evil, "SERVFAIL")])])
    rep["cluster"]["name"] = evil
    docs = reports(rep)
    text = pr.dump_yaml(docs)
    assert text.isascii()
    assert text.count("\n---\n") + text.startswith("---\n") == len(docs) == 2
    assert list(yaml.safe_load_all(text)) == docs
    assert "Secret" not in [d["kind"] for d in yaml.safe_load_all(text)]
    for d in docs:
        for r in d["results"]:
            assert len(r["message"]) <= pr.MAX_MESSAGE
            for v in [r["message"], *r["properties"].values()]:
                assert not any(ch in v for ch in "\n\r\x1b\u202e"), v
            assert all(len(v) <= pr.MAX_PROPERTY for v in r["properties"].values())
        assert all(len(v) <= pr.MAX_PROPERTY for v in d["metadata"]["annotations"].values())


@pytest.mark.parametrize(
    "identity",
    [
        {"namespace": "Bad_NS"},
        {"namespace": ""},
        {"namespace": "a" * 64},
        {"name": "web\nkind: Secret"},
        {"name": "x" * 254},
        {"kind": "Deploy ment"},
        {"kind": 7},
    ],
)
def test_a_workload_with_an_invalid_identity_is_an_error_result_not_a_reference(identity):
    docs = reports(report([workload(**identity), workload(name="fine")]))
    ns_docs = [d for d in docs if d["kind"] == "PolicyReport"]
    assert [r["resources"][0]["name"] for d in ns_docs for r in d["results"]] == ["fine"]
    cluster = docs[-1]
    errors = [r for r in cluster["results"] if r["result"] == "error"]
    assert len(errors) == 1 and errors[0]["properties"] == {"workloads": "1"}
    assert cluster["summary"]["error"] == 1
    bad = str(next(iter(identity.values())))
    assert bad not in json.dumps(docs) or bad in ("", "7")


# --- sizes -----------------------------------------------------------------------------------------------


def test_a_large_namespace_continues_in_numbered_reports_each_small_enough_for_kubectl_apply():
    ws = [workload(name=f"app-{i:05d}", reasons=["r" * 2000]) for i in range(600)]
    docs = reports(report(ws))
    ns_docs = [d for d in docs if d["kind"] == "PolicyReport"]
    assert len(ns_docs) >= 2
    assert ns_docs[0]["metadata"]["name"] == "dnsaudit-shop"
    assert [d["metadata"]["name"] for d in ns_docs[1:]] == [
        f"dnsaudit-shop-{i}" for i in range(2, len(ns_docs) + 1)
    ]
    names = [r["resources"][0]["name"] for d in ns_docs for r in d["results"]]
    assert names == [w["name"] for w in ws]  # every workload once, in order
    for d in ns_docs:
        assert len(json.dumps(d)) < 256 * 1024  # client-side apply stores the object in an annotation
        assert d["summary"]["fail"] == len(d["results"])


# --- node pools ------------------------------------------------------------------------------------------


def _pool_results(*pools, gaps=()):
    docs = reports(report([], pools=pools, gaps=gaps))
    return {r["properties"]["node_pool"]: r for r in docs[-1]["results"]}


def test_pool_results_follow_what_is_known_about_the_node_search_domains():
    gap = {
        "source": "unknown",
        "pools": ["dark"],
        "musl_workloads": 4,
        "message": "node search domains unknown on pool dark: 4 musl workloads at risk — allow exec reads",
    }
    res = _pool_results(
        pool("breaks", probes=[probe("corp.example", "SERVFAIL")]),
        pool("clean", probes=[probe("corp.example", "NXDOMAIN")]),
        pool("none", searches=()),
        pool("dark", source="unknown", searches=()),
        pool(
            "guessed",
            source="inferred",
            searches=("openstacklocal",),
            probes=[probe("openstacklocal", "NODATA")],
        ),
        pool("unprobed", searches=("corp.example",)),
        pool("dot", searches=(".",), kubelet_version="v1.25.0+k3s1"),
        pool("broken", searches=("",)),
        gaps=[gap],
    )
    outcome = {name: (r["result"], r.get("severity")) for name, r in res.items()}
    assert outcome == {
        "breaks": ("fail", "high"),
        "clean": ("pass", None),
        "none": ("pass", None),
        "dark": ("warn", "medium"),
        "guessed": ("warn", "medium"),
        "unprobed": ("warn", "low"),
        "dot": ("fail", "high"),
        "broken": ("warn", "medium"),
    }
    assert "example.com.corp.example" in res["breaks"]["message"] and "SERVFAIL" in res["breaks"]["message"]
    assert res["breaks"]["properties"]["breaking_domains"] == "corp.example"
    assert res["dark"]["message"] == gap["message"]  # the report's own gap sentence
    assert res["guessed"]["message"].startswith("node search domains inferred, not read, on pool guessed")
    assert "Likely" in res["guessed"]["message"]
    assert "search ." in res["dot"]["message"] and "1.2.3" in res["dot"]["message"]
    assert res["dark"]["properties"]["node_file_source"] == "unknown"
    assert res["breaks"]["properties"]["nodes"] == "3"
    assert all(r["rule"] == pr.RULE_POOL and "resources" not in r for r in res.values())


def test_cluster_domains_are_not_node_domains():
    p = pool("general", searches=())
    p["searches"] = [{"domain": "cluster.local", "origin": "node", "cluster": True}]
    p["probes"] = [probe("cluster.local", "NODATA")]
    assert _pool_results(p)["general"]["result"] == "pass"


# --- the validator can fail -----------------------------------------------------------------------------


def test_the_schema_check_rejects_what_the_crd_would():
    (doc, _c) = reports(report([workload()]))
    bad_cases = []
    for path, value in (
        (("results", 0, "severity"), "critical"),  # not in the v1alpha2 enum
        (("results", 0, "result"), "failed"),
        (("results", 0, "properties", "risk"), 3),
        (("results", 0, "timestamp"), {"seconds": 1}),
        (("results", 0, "resource"), [{"kind": "Pod"}]),  # misspelt: would be pruned silently
        (("summary", "fail"), 0),  # no longer equals the results
        (("metadata", "name"), "Dnsaudit_Shop"),
        (("kind",), "PolicyReports"),
    ):
        d = copy.deepcopy(doc)
        target = d
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        bad_cases.append(d)
    for d in bad_cases:
        with pytest.raises((jsonschema.ValidationError, pydantic.ValidationError, AssertionError)):
            validate_policy_report(d)
    d = copy.deepcopy(doc)
    del d["results"][0]["policy"]
    with pytest.raises(jsonschema.ValidationError):
        validate_policy_report(d)


def test_json_list_and_yaml_stream_carry_the_same_objects():
    docs = reports(report([workload(), workload(ns="data", name="db", risk="safe")], pools=[pool()]))
    lst = pr.as_list(docs)
    assert lst["apiVersion"] == "v1" and lst["kind"] == "List" and lst["items"] == docs
    assert list(yaml.safe_load_all(pr.dump_yaml(docs))) == json.loads(json.dumps(docs))


def test_the_core_is_pure():
    """No Django, network or client import: the mapping runs on plain data anywhere (its own imports are the
    standard library, PyYAML and the core's name rules)."""
    import ast
    import sys

    tree = ast.parse(Path(pr.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." + (node.module or "") if node.level else node.module.split(".")[0])
    outside = {m for m in imported if not m.startswith(".") and m not in sys.stdlib_module_names}
    assert outside == {"yaml"}, outside
    assert {m for m in imported if m.startswith(".")} == {".inventory"}
