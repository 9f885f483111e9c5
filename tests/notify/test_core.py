"""The rules of dnsaudit.core.notify: a problem's reason (fact + error class), fingerprints, messages,
redaction. Plain data, no database."""

from __future__ import annotations

from dnsaudit.core import notify as core

FACTS = core.ScanFacts(cluster="prod-eu", scan_id=7, link=None, counts={"affected": 2, "workloads": 9})


def test_the_error_class_ignores_names_addresses_and_counts():
    assert (
        core.error_class("403 Forbidden: nodes/node-a/proxy")
        == core.error_class("nodes/node-b/proxy: 403")
        == "403"
    )
    assert core.error_class("forbidden (403) for deployments in 3 namespace(s)") == "403"
    assert core.error_class("10.0.0.53:53 timed out after 2.0 s") == "timeout"
    assert core.error_class("connection refused by 127.0.0.1:6443") == "refused"
    assert (
        core.error_class("the API server could not be reached at https://x:6443: timed out") == "unreachable"
    )
    assert core.error_class("certificate verify failed") == "tls"
    # Ports and octets are not HTTP statuses.
    assert core.error_class("listening on 127.0.0.1:443, got nothing odd") != "443"
    assert core.error_class("pod web-7d9f8 has 3 odd lines") == core.error_class(
        "pod web-7d9f8 has 12 odd lines"
    )


def test_a_partial_reason_is_new_only_when_its_fact_or_error_class_is():
    before = [{"fact": "kubelet config of pool a", "error": "403 Forbidden (node-1)"}]
    same = [{"fact": "kubelet config of pool a", "error": "403 Forbidden (node-2)"}]
    assert core.partial_event(FACTS, same, before) is None
    other_class = [{"fact": "kubelet config of pool a", "error": "502 Bad Gateway"}]
    event = core.partial_event(FACTS, other_class, before)
    assert event is not None and event.keys == ("kubelet config of pool a: 502",)
    other_fact = [{"fact": "kubelet config of pool b", "error": "403 Forbidden"}]
    assert core.partial_event(FACTS, other_fact, before).keys == ("kubelet config of pool b: 403",)
    # No previous finished scan: every reason is new.
    assert core.partial_event(FACTS, same, None) is not None


def test_the_fingerprint_is_the_sorted_set_of_keys():
    assert core.fingerprint(["b", "a", "a"]) == core.fingerprint(["a", "b"]) != core.fingerprint(["a"])
    event = core.new_findings_event(
        FACTS, [("x/Deployment/b", "at-risk"), ("x/Deployment/a", "affected")], first_scan=False
    )
    assert event.fingerprint == core.fingerprint(["x/Deployment/a", "x/Deployment/b"])


def test_messages_name_at_most_five_and_count_the_rest():
    new = [(f"ns/Deployment/w{i:02}", "at-risk") for i in range(12)]
    event = core.new_findings_event(FACTS, new, first_scan=False)
    assert sum(line.startswith("- ") for line in event.body.splitlines()) == core.SHOWN == 5
    assert "… and 7 more." in event.body
    assert "DNSAUDIT_BASE_URL is not set" in event.body
    assert core.new_findings_event(FACTS, [], first_scan=True) is None


def test_redaction_removes_every_piece_of_the_url():
    text = "failed to post to https://hooks.example/abc and to SeCrEt host"
    out = core.redact(text, {"SeCrEt"})
    assert "SeCrEt" not in out and "hooks.example" not in out and "[redacted URL]" in out


def test_text_from_a_cluster_reaches_a_message_as_one_printable_bounded_line():
    hostile = "forbidden\x1b[31m\u202e\nfake line\r\n- default/Pod/x (affected)" + "x" * 500
    problems = [{"fact": "the kubelet config of pool general", "error": hostile}]
    event = core.partial_event(FACTS, problems, None)
    listed = [line for line in event.body.splitlines() if line.startswith("- ")]
    assert len(listed) == 1  # the newline inside the error did not forge a second workload line
    assert all(ch.isprintable() for ch in event.body.replace("\n", ""))
    assert len(listed[0]) < 400
    failed = core.failed_event(FACTS, hostile)
    assert "\x1b" not in failed.body and "\u202e" not in failed.body and "fake line" in failed.body
