"""dnsaudit.core.plan: the smallest set of changes that fixes every affected and at-risk workload."""

from __future__ import annotations

from dnsaudit.core.plan import PlanWorkload, artifact_index, plan_fixes

ALL = ("dnsConfig", "kyverno", "coredns", "base-image")


def wl(key, risk="affected", recommended="kubelet", alternatives=ALL, pool="general", ref=None):
    return PlanWorkload(key, risk, recommended, tuple(alternatives), pool, ref)


def kubelet_artifact(pool):
    return {"kind": "kubelet", "title": f"x (node pool {pool})", "files": {f"kubelet/{pool}/resolv.conf": ""}}


def test_one_pool_change_and_one_patch_as_in_the_issue():
    rows = [wl(f"shop/Deployment/app-{i}") for i in range(6)]
    rows.append(wl("storefront/Deployment/web", recommended="dnsConfig", alternatives=("base-image",)))
    rows.append(wl("shop/Deployment/fine", risk="safe", recommended="none", alternatives=()))
    plan = plan_fixes(rows, [kubelet_artifact("general"), {"kind": "coredns", "title": "c", "files": {}}])
    assert plan.summary == (
        "kubelet resolvConf on pool general fixes 6 · dnsConfig patch on storefront/web fixes 1"
    )
    assert plan.targets == 7 and plan.fixed == 7 and not plan.unfixable
    assert plan.steps[0].artifact == 0 and plan.steps[1].artifact is None
    assert plan.steps[1].workloads == ["storefront/Deployment/web"]


def test_a_change_recommended_for_nobody_is_never_chosen_even_if_it_covers_more():
    # CoreDNS would fix all five at once, but the audit recommends the kubelet change on each pool.
    rows = [wl(f"a/Deployment/x{i}", pool="general") for i in range(3)]
    rows += [wl(f"b/Deployment/y{i}", pool="arm") for i in range(2)]
    plan = plan_fixes(rows)
    assert [(s.kind, s.target, s.count) for s in plan.steps] == [
        ("kubelet", "general", 3),
        ("kubelet", "arm", 2),
    ]


def test_a_cluster_change_absorbs_workloads_for_which_it_is_an_alternative():
    # Kyverno is recommended for two workloads and passes its checks for the third, whose own
    # recommendation is a per-workload patch: one change instead of two.
    rows = [
        wl("a/Deployment/one", recommended="kyverno", alternatives=("dnsConfig",)),
        wl("a/Deployment/two", recommended="kyverno", alternatives=("dnsConfig",)),
        wl("b/Deployment/three", risk="at-risk", recommended="dnsConfig", alternatives=("kyverno",)),
    ]
    plan = plan_fixes(rows, [{"kind": "kyverno", "title": "k", "files": {}}])
    assert len(plan.steps) == 1
    step = plan.steps[0]
    assert (step.kind, step.where, step.count, step.recommended_for, step.artifact) == (
        "kyverno",
        "the cluster",
        3,
        2,
        0,
    )


def test_greedy_takes_the_biggest_change_first_and_counts_add_up():
    rows = [wl(f"n/Deployment/g{i}", pool="general", alternatives=("dnsConfig",)) for i in range(4)]
    rows += [wl(f"n/Deployment/a{i}", pool="arm", alternatives=("dnsConfig",)) for i in range(1)]
    rows += [wl("n/StatefulSet/own", recommended="dnsConfig", alternatives=("kubelet",), pool="arm")]
    plan = plan_fixes(rows)
    # The arm pool's kubelet change fixes two (one recommends it, the other has it as an alternative):
    # better than a kubelet change plus a patch.
    assert [(s.target, s.count) for s in plan.steps] == [("general", 4), ("arm", 2)]
    assert sum(s.count for s in plan.steps) == plan.targets == 6


def test_ties_prefer_the_recommended_change_then_cluster_scope():
    rows = [wl("n/Deployment/x", recommended="dnsConfig", alternatives=("kubelet",))]
    plan = plan_fixes(rows)
    # Both fix the only workload; the one the audit recommends wins.
    assert [s.kind for s in plan.steps] == ["dnsConfig"]


def test_unfixable_unknown_and_safe_workloads():
    rows = [
        wl("n/Deployment/nofix", recommended="none", alternatives=()),
        wl("n/Deployment/q", risk="unknown", recommended="none", alternatives=()),
        wl("n/Deployment/ok", risk="safe", recommended="none", alternatives=()),
        wl("n/Deployment/weird", recommended="something-new", alternatives=()),
    ]
    plan = plan_fixes(rows)
    assert plan.steps == []
    assert [w.key for w in plan.unfixable] == ["n/Deployment/nofix", "n/Deployment/weird"]
    assert (plan.targets, plan.unknown, plan.fixed, plan.summary) == (2, 1, 0, "")


def test_nothing_to_do():
    plan = plan_fixes([wl("n/Deployment/ok", risk="safe", recommended="none", alternatives=())])
    assert (plan.targets, plan.steps, plan.unfixable) == (0, [], [])


def test_refs_follow_their_workloads_and_as_dict_is_plain_data():
    rows = [wl("n/Deployment/b", ref=2), wl("n/Deployment/a", ref=1)]
    data = plan_fixes(rows, [kubelet_artifact("general")]).as_dict()
    step = data["steps"][0]
    assert step["workloads"] == ["n/Deployment/a", "n/Deployment/b"] and step["refs"] == [1, 2]
    assert step["sentence"] == "kubelet resolvConf on pool general fixes 2" and step["count"] == 2
    assert data["summary"] == step["sentence"] and data["fixed"] == 2


def test_artifact_index_finds_the_pool_by_files_or_title():
    arts = [
        {"kind": "kyverno", "title": "k", "files": {}},
        {"kind": "kubelet", "title": "resolv.conf (node pool arm)", "files": {}},
        kubelet_artifact("general"),
    ]
    assert artifact_index(arts, "kubelet", "general") == 2
    assert artifact_index(arts, "kubelet", "arm") == 1
    assert artifact_index(arts, "kubelet", "infra") is None
    assert artifact_index(arts, "kyverno") == 0 and artifact_index(arts, "coredns") is None


def test_the_demo_cluster_is_fixed_by_its_pool_change():
    """openstack-prod audited by the real core: every affected workload recommends the kubelet change on
    pool general, so the plan is that one change, matching the cluster-level fix the audit rendered."""
    from dnsaudit.core.audit import AuditContext, cluster_remediation
    from tests.web.factories import demo_audits

    pairs = demo_audits()
    audits = [a for _, a in pairs]
    rows = [
        PlanWorkload(
            f"{a.report['namespace']}/{a.report['kind']}/{a.report['name']}",
            a.report["risk"],
            a.report["remediation"]["recommended"],
            tuple(a.report["remediation"]["alternatives"]),
            a.report["node_pool"],
        )
        for a in audits
    ]
    remediation = cluster_remediation(audits, AuditContext(pools={}, default_pool="general"))
    plan = plan_fixes(rows, remediation["artifacts"])
    targets = sum(1 for r in rows if r.risk in ("affected", "at-risk"))
    assert targets and plan.fixed == targets and not plan.unfixable
    first = plan.steps[0]
    assert (first.kind, first.target) == ("kubelet", "general")
    assert remediation["artifacts"][first.artifact]["kind"] == "kubelet"
