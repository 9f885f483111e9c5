"""/metrics: Prometheus text format, token or login protected."""

from __future__ import annotations

import re

from django.test import Client
from django.urls import reverse

from clusters.models import Scan
from tests.web import factories

SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN)$'
)


def parse(text: str) -> dict[str, float]:
    """Samples keyed by ``name{labels}``; asserts every line is a valid comment or sample."""
    samples = {}
    typed = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("# HELP ") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, f"not a valid exposition line: {line!r}"
        assert match.group(1) in typed, f"sample before its # TYPE: {line!r}"
        key, value = line.rsplit(" ", 1)
        samples[key] = float(value)
    return samples


def test_metrics_report_workloads_duration_last_success_and_errors(client_as, cluster):
    scan = factories.make_report(cluster, workloads=10)
    factories.make_scan(cluster, status=Scan.FAILED, age_minutes=1, error="boom")
    response = client_as("viewer").get(reverse("clusters:metrics"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    m = parse(response.content.decode())
    label = 'cluster="prod-eu"'
    # Nothing exempted: every workload is in the exempted="false" series, none in "true".
    assert m[f'dnsaudit_workloads{{{label},risk="affected",exempted="false"}}'] == scan.affected
    assert m[f'dnsaudit_workloads{{{label},risk="affected",exempted="true"}}'] == 0
    assert m[f'dnsaudit_workloads{{{label},risk="safe",exempted="false"}}'] == scan.safe
    assert m[f"dnsaudit_scan_duration_seconds{{{label}}}"] == scan.duration
    assert m[f"dnsaudit_last_successful_scan_timestamp_seconds{{{label}}}"] == scan.finished_at.timestamp()
    assert m[f"dnsaudit_last_scan_failed{{{label}}}"] == 1
    assert m[f'dnsaudit_scans{{{label},status="failed"}}'] == 1
    assert m["dnsaudit_clusters"] == 1


def test_metrics_token_is_required_when_set(settings, report):
    settings.DNSAUDIT_METRICS_TOKEN = "s3cret-metrics"
    url = reverse("clusters:metrics")
    assert Client().get(url).status_code == 401
    assert Client().get(url, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    ok = Client().get(url, HTTP_AUTHORIZATION="Bearer s3cret-metrics")
    assert ok.status_code == 200 and "dnsaudit_workloads" in ok.content.decode()


def test_metrics_without_token_setting_need_a_login(settings, client_as, report):
    settings.DNSAUDIT_METRICS_TOKEN = ""
    assert Client().get(reverse("clusters:metrics")).status_code == 401
    assert client_as("norole").get(reverse("clusters:metrics")).status_code == 401
    assert client_as("viewer").get(reverse("clusters:metrics")).status_code == 200


def test_label_values_are_escaped(client_as, db):
    from clusters.views.metrics import escape_label

    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    factories.make_report(factories.make_cluster("x_y"), workloads=1)
    parse(client_as("viewer").get(reverse("clusters:metrics")).content.decode())
