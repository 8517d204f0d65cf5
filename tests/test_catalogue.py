"""The metric vocabulary follows Prometheus' naming rules and its documentation is current."""

import re
from pathlib import Path

import pytest

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.metrics_doc import render_markdown

ROOT = Path(__file__).resolve().parent.parent
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
METRICS = c.all_metrics()


def test_the_catalogue_is_not_empty_and_names_are_unique():
    names = [metric.name for metric in METRICS]
    assert len(names) >= 25
    assert len(names) == len(set(names))


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.name)
def test_names_follow_prometheus_rules(metric):
    assert SNAKE.match(metric.name)
    assert metric.type in (c.COUNTER, c.GAUGE, c.HISTOGRAM)
    if metric.type == c.COUNTER:
        assert metric.name.endswith("_total"), "counters end in _total"
    else:
        assert not metric.name.endswith("_total"), "only counters end in _total"
    for unit_word in ("milliseconds", "millis", "_ms", "kilobytes", "megabytes", "_kb", "_mb"):
        assert unit_word not in metric.name, "base units only (seconds, bytes)"
    assert metric.help and (metric.help[0].isupper() or metric.help[0].isdigit()) and metric.help.endswith(".")
    assert all(SNAKE.match(label) and label != "le" for label in metric.labels)
    assert len(metric.labels) == len(set(metric.labels))


def test_http_metrics_use_opentelemetry_names():
    assert c.HTTP_REQUEST_DURATION.name == "http_server_request_duration_seconds"
    assert c.HTTP_REQUEST_DURATION.labels == ("http_request_method", "http_route", "http_response_status_code")
    assert c.HTTP_ACTIVE_REQUESTS.name == "http_server_active_requests"


def test_by_name_finds_metrics_and_names_the_missing_one():
    assert c.by_name("runtime_gc_collections_total") is c.GC_COLLECTIONS
    with pytest.raises(KeyError, match="no_such_metric"):
        c.by_name("no_such_metric")


def test_counter_family_drops_total():
    assert c.GC_COLLECTIONS.family == "runtime_gc_collections"
    assert c.HTTP_REQUEST_DURATION.count == "http_server_request_duration_seconds_count"


def test_docs_metrics_md_is_generated_from_the_catalogue():
    documented = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert documented == render_markdown(), "run: python -m pharos_monitoring.exporter.metrics_doc > docs/metrics.md"
