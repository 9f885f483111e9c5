"""The pure rules of exemptions (dnsaudit.core.exemptions): annotations read as a pair from the object or
its pod template, bounded and never raising; entered values refused when bad; matching and precedence."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsaudit.core import exemptions as ex

TODAY = date(2026, 12, 1)


def test_the_objects_own_annotation_pair_wins_over_its_templates_and_pairs_are_never_mixed():
    own = {"annotations": {ex.REASON_KEY: "owner says", "unrelated": "x"}}
    template = {"annotations": {ex.REASON_KEY: "template says", ex.UNTIL_KEY: "2027-01-01"}}
    # The object's reason without a date does not borrow the template's date.
    assert ex.kept_annotations(own, template) == {ex.REASON_KEY: "owner says"}
    assert ex.kept_annotations({"annotations": {"other": "y"}}, template) == {
        ex.REASON_KEY: "template says",
        ex.UNTIL_KEY: "2027-01-01",
    }
    # Only the two keys are kept; nothing without the reason key.
    assert ex.kept_annotations({"annotations": {ex.UNTIL_KEY: "2027-01-01"}}, None) == {}


@pytest.mark.parametrize("value", [None, 5, ["x"], {"a": 1}, "not a mapping"])
def test_malformed_annotations_are_ignored_not_crashed_on(value):
    assert ex.kept_annotations({"annotations": value}, {"annotations": value}) == {}
    assert ex.kept_annotations(value, value) == {}
    if not isinstance(value, str):
        assert ex.kept_annotations({"annotations": {ex.REASON_KEY: value}}) == {}


def test_a_valid_annotation_gives_the_report_shape():
    got, note = ex.from_annotations({ex.REASON_KEY: "known, fix in Q1", ex.UNTIL_KEY: "2026-12-31"}, TODAY)
    assert note is None
    assert got == {
        "reason": "known, fix in Q1",
        "source": "annotation",
        "by": None,
        "expires": "2026-12-31",
        "id": None,
    }
    # The last day applies; no date means no expiry.
    assert (
        ex.from_annotations({ex.REASON_KEY: "r", ex.UNTIL_KEY: "2026-12-01"}, TODAY)[0]["expires"]
        == "2026-12-01"
    )
    assert ex.from_annotations({ex.REASON_KEY: "r"}, TODAY)[0]["expires"] is None


@pytest.mark.parametrize(
    "bad", ["tomorrow", "2026-13-01", "2026-02-30", "01/12/2027", "2027-1-1", "2027-01-01\nx"]
)
def test_a_bad_date_ignores_the_annotation_with_a_note(bad):
    got, note = ex.from_annotations({ex.REASON_KEY: "r", ex.UNTIL_KEY: bad}, TODAY)
    assert got is None
    assert "not a date (YYYY-MM-DD)" in note and "ignored" in note
    assert "\n" not in note  # the value is quoted escaped


def test_an_expired_annotation_does_not_apply_and_says_so():
    got, note = ex.from_annotations({ex.REASON_KEY: "r", ex.UNTIL_KEY: "2026-11-30"}, TODAY)
    assert got is None and "expired on 2026-11-30" in note


def test_an_empty_reason_is_ignored_with_a_note():
    got, note = ex.from_annotations({ex.REASON_KEY: " \t\x00 "}, TODAY)
    assert got is None and "needs a reason" in note


def test_reasons_from_the_cluster_are_cleaned_and_bounded():
    got, _ = ex.from_annotations({ex.REASON_KEY: "line one\nline\x1b[31m two\u2028" + "x" * 2000}, TODAY)
    reason = got["reason"]
    assert len(reason) == ex.MAX_REASON and reason.endswith("…")
    assert not any(ord(c) < 32 or c == "\u2028" for c in reason)
    assert reason.startswith("line one line [31m two x")


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([ex.REASON_KEY, ex.UNTIL_KEY, "x"]),
        st.one_of(st.text(max_size=3000), st.integers(), st.none(), st.lists(st.text())),
    )
)
def test_any_annotation_value_gives_an_exemption_or_a_note_never_an_error(annotations):
    kept = ex.kept_annotations({"annotations": annotations})
    got, note = ex.from_annotations(kept, TODAY)
    assert got is None or (0 < len(got["reason"]) <= ex.MAX_REASON and got["source"] == "annotation")
    assert (got is None) == (note is not None or not kept)


@pytest.mark.parametrize(
    "pattern, image, digest, expected",
    [
        ("alpine", "docker.io/library/alpine:3.19", None, True),
        ("alpine:3.19", "alpine:3.19", None, True),
        ("alpine:3.19", "alpine:3.20", None, False),
        ("alpine:latest", "alpine", None, True),
        ("docker.io/library/alpine", "index.docker.io/library/alpine:edge", None, True),
        ("alpine", "registry.corp:5000/alpine:3.19", None, False),
        ("registry.corp:5000/team/app", "registry.corp:5000/team/app:1.2", None, True),
        ("app@sha256:" + "a" * 64, "app:1.2", "sha256:" + "a" * 64, True),
        ("app@sha256:" + "a" * 64, "app:1.2", "sha256:" + "b" * 64, False),
        ("python", "python-alpine:3", None, False),
        ("not a ref", "alpine", None, False),
    ],
)
def test_image_references_match_after_normalisation(pattern, image, digest, expected):
    assert ex.image_matches(pattern, image, digest) is expected


REPORT = {
    "namespace": "payments",
    "kind": "Deployment",
    "name": "api",
    "containers": [{"name": "api", "image": "python:3.12-alpine", "digest": None}],
}


@pytest.mark.parametrize(
    "scope, expected",
    [
        (ex.Scope(1), True),
        (ex.Scope(1, namespace="payments"), True),
        (ex.Scope(1, namespace="shop"), False),
        (ex.Scope(1, workload="deployment/api"), True),
        (ex.Scope(1, workload="Deployment/api2"), False),
        (ex.Scope(1, workload="StatefulSet/api"), False),
        (ex.Scope(1, image="python"), True),
        (ex.Scope(1, image="python:3.12-alpine", namespace="payments", workload="Deployment/api"), True),
        (ex.Scope(1, image="alpine", namespace="payments"), False),
    ],
)
def test_a_dnsaudit_exemption_matches_when_every_field_it_sets_matches(scope, expected):
    assert ex.matches(scope, REPORT) is expected


def test_the_longest_lasting_then_most_specific_then_newest_dnsaudit_exemption_is_chosen():
    cluster_wide = ex.Scope(1, reason="all")
    ns_soon = ex.Scope(2, namespace="payments", expires=date(2026, 12, 5), reason="ns")
    wl_later = ex.Scope(3, workload="Deployment/api", expires=date(2027, 1, 1), reason="wl")
    ns_forever = ex.Scope(4, namespace="payments", reason="ns forever")
    expired = ex.Scope(5, workload="Deployment/api", expires=date(2026, 11, 1), reason="old")
    assert ex.choose([ns_soon, wl_later], REPORT, TODAY) == wl_later
    assert ex.choose([cluster_wide, ns_forever, wl_later], REPORT, TODAY) == ns_forever
    assert ex.choose([expired], REPORT, TODAY) is None
    assert ex.choose([cluster_wide, expired], REPORT, TODAY) == cluster_wide
    assert ex.choose([ns_soon], REPORT, date(2026, 12, 6)) is None


def test_the_exemption_that_applies_longest_wins_and_the_annotation_on_equal_terms():
    annotation = {"reason": "ours", "source": "annotation", "by": None, "expires": "2026-12-10", "id": None}
    forever = ex.Scope(7, reason="dnsaudit", by="alice")
    as_dnsaudit = {"reason": "dnsaudit", "source": "dnsaudit", "by": "alice", "expires": None, "id": 7}
    # A dnsaudit exemption without expiry outlasts the annotation: the row must not lose the exemption
    # when the annotation ends (it keeps one exemption and its last day).
    assert ex.resolve(annotation, [forever], REPORT, TODAY) == as_dnsaudit
    assert ex.resolve(annotation, [forever], REPORT, date(2026, 12, 11)) == as_dnsaudit
    # The annotation lasts longer, or as long: it wins.
    short = ex.Scope(8, reason="short", by="bob", expires=date(2026, 12, 8))
    assert ex.resolve(annotation, [short], REPORT, TODAY) is annotation
    same = ex.Scope(9, reason="same", by="bob", expires=date(2026, 12, 10))
    assert ex.resolve(annotation, [same], REPORT, TODAY) is annotation
    no_expiry = dict(annotation, expires=None)
    assert ex.resolve(no_expiry, [forever], REPORT, TODAY) is no_expiry
    # Alone, each applies until its last day.
    assert ex.resolve(annotation, [], REPORT, TODAY) is annotation
    assert ex.resolve(annotation, [], REPORT, date(2026, 12, 11)) is None
    assert ex.resolve(None, [], REPORT, TODAY) is None


@pytest.mark.parametrize(
    "check, value, message",
    [
        (ex.check_reason, "", "a reason is required"),
        (ex.check_reason, "   ", "a reason is required"),
        (ex.check_reason, "x" * 501, "at most 500"),
        (ex.check_reason, "two\nlines", "control characters"),
        (ex.check_namespace, "Payments", "DNS-1123 label"),
        (ex.parse_workload, "web", "KIND/NAME"),
        (ex.parse_workload, "Deployment/Web_1", "DNS-1123 subdomain"),
        (ex.parse_image, "not an image", "not an image reference"),
        (ex.parse_date, "2026-02-30", "not a date"),
    ],
)
def test_entered_values_are_refused_when_bad(check, value, message):
    with pytest.raises(ValueError, match=message):
        check(value)


def test_an_entered_expiry_may_be_today_but_not_in_the_past():
    assert ex.parse_expires("2026-12-01", TODAY) == TODAY
    assert ex.parse_expires("", TODAY) is None
    with pytest.raises(ValueError, match="in the past"):
        ex.parse_expires("2026-11-30", TODAY)
