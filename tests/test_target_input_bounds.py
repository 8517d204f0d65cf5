"""Bounded output from any input (issue 11): whatever strings, how many series and which statuses
or bucket bounds a target's document holds, the exporter's output stays valid and bounded.

- label values that come from a target are always encodable (lone surrogates replaced by U+FFFD)
  and at most `limits.max_label_value_length` characters long;
- a target adds at most `limits.max_series_per_target` series; what was left out or rewritten is
  counted in `pharos_scrape_limited_series{reason}`;
- HTTP statuses and histogram bucket bounds that break the format fail the scrape with reason
  `invalid_document` and the JSON path;
- one family that cannot be rendered costs that family, never the page.

Every document is served by a loopback server and scraped through the real fetch path. Sizes of
expositions are asserted, never timings.
"""

from __future__ import annotations

import json
import math
import time

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter import exposition
from pharos_monitoring.exporter.config import ConfigError, Limits, parse
from pharos_monitoring.exporter.fetch import Fetcher
from pharos_monitoring.exporter.profiles import PROFILES
from pharos_monitoring.exporter.reading import Reading
from pharos_monitoring.exporter.routes import RouteTable
from pharos_monitoring.exporter.scrape import Scraper, Target

from helpers import promtool_check_metrics
from jsonmap_support import module_from, serve_and_scrape
from test_server import FIXTURE, running

DEFAULTS = Limits()
MAX_BYTES = 32 * 1024 * 1024
LONE_SURROGATE = "\ud800"
REPLACEMENT = "\ufffd"
HOSTILE_ROWS = 100_000
EXPOSITION_BOUND = 5 * 1024 * 1024  # bytes, for the hostile documents of about 10 MB


# --- documents ---------------------------------------------------------------------------------
def pharo_body(document) -> bytes:
    # json.dumps writes a lone surrogate as the escape "\ud800", as a buggy target would.
    return json.dumps(document, allow_nan=True).encode()


def row(method="GET", route="/orders/{id}", status=200, **extra) -> dict:
    return {"method": method, "route": route, "status": status, "count": 1, "totalDurationMs": 1, "responseBytes": 1, **extra}


def many_methods() -> dict:
    return {"http": {"requests": [row(method=f"M{index}") for index in range(HOSTILE_ROWS)]}}


def many_statuses() -> dict:
    # Every valid status code with 200 methods: 100,000 rows the format allows.
    return {"http": {"requests": [row(method=f"M{index % 200}", status=100 + index // 200) for index in range(HOSTILE_ROWS)]}}


def many_checks() -> dict:
    return {"health": {"healthy": True, "checks": {f"check{index}": True for index in range(HOSTILE_ROWS)}}}


# Series an unbounded exporter writes for these documents: a row without buckets is two
# histograms of _count, _sum and le="+Inf" each; runtime_info is always there.
SERIES_PER_ROW = 6
UNBOUNDED = {
    "methods": (many_methods, HOSTILE_ROWS * SERIES_PER_ROW + 1),
    "statuses": (many_statuses, HOSTILE_ROWS * SERIES_PER_ROW + 1),
    "checks": (many_checks, HOSTILE_ROWS + 2),  # + application_healthy
}


# --- scraping ----------------------------------------------------------------------------------
def scrape(loopback_server, body: bytes, profile: str = "pharo", limits: Limits | None = None):
    """One scrape through the real fetch and scrape path; (outcome, exposition text)."""
    url = loopback_server(body) + "/stats"
    fetcher = Fetcher(max_bytes=MAX_BYTES)
    target = Target(url=url, profile=PROFILES[profile], fetcher=fetcher, routes=RouteTable(DEFAULTS.max_routes_per_target),
                    health=False, labels={"target": "app"})
    scraper = Scraper(CollectorRegistry()) if limits is None else Scraper(CollectorRegistry(), limits=limits)
    try:
        outcome = scraper.scrape(target, time.monotonic() + 120)
    finally:
        fetcher.close()
    rendered = exposition.render(outcome.families)
    return outcome, rendered.decode("utf-8")


def samples(text: str) -> list:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def target_series(text: str, target: str = "app") -> list:
    """Samples from the target's document (not the exporter's pharos_* view of the scrape)."""
    return [s for s in samples(text) if s.labels.get("target") == target and not s.name.startswith("pharos_")]


def limited(text: str, reason: str, target: str = "app") -> float | None:
    for sample in samples(text):
        if sample.name == "pharos_scrape_limited_series" and sample.labels == {"target": target, "reason": reason}:
            return sample.value
    return None


# --- (a) every label value is encodable ------------------------------------------------------
def with_surrogate(where: str) -> dict:
    document = json.loads(FIXTURE)
    bad = f"x{LONE_SURROGATE}y"
    if where == "route":
        document["http"]["requests"][0]["route"] = "/orders/" + bad
    elif where == "method":
        document["http"]["requests"][0]["method"] = bad
    elif where == "info":
        document["runtime"]["version"] = bad
    elif where == "check":
        document["health"]["checks"][bad] = True
    return document


WHERE = ["route", "method", "info", "check"]


@pytest.mark.parametrize("where", WHERE)
def test_a_lone_surrogate_is_replaced_when_scraping_and_rendering(where, loopback_server):
    outcome, text = scrape(loopback_server, pharo_body(with_surrogate(where)))
    assert outcome.success, outcome.detail
    promtool_check_metrics(text)
    values = [value for sample in target_series(text) for value in sample.labels.values()]
    assert any(f"x{REPLACEMENT}y" in value.lower() for value in values), where  # methods are upper-cased
    assert limited(text, "label_not_utf8") >= 1


@pytest.mark.parametrize("where", WHERE)
def test_a_lone_surrogate_costs_nothing_on_the_sidecar_page(where, loopback_server):
    hostile, good = loopback_server(pharo_body(with_surrogate(where))), loopback_server(FIXTURE)
    config = {"targets": [{"name": "hostile", "url": hostile + "/stats"}, {"name": "good", "url": good + "/stats"}],
              "limits": {"timeout_seconds": 30}}
    with running(config) as (base, _):
        response = requests.get(base + "/metrics", timeout=60)
    assert response.status_code == 200
    promtool_check_metrics(response.text)
    found = samples(response.text)
    names = {(sample.name, sample.labels.get("target")) for sample in found}
    assert (c.GC_COLLECTIONS.name, "good") in names, "the other target's series"
    assert (c.GC_COLLECTIONS.name, "hostile") in names, "the hostile target's own other series"
    assert (c.EXPORTER_SCRAPES.name, None) in names, "the exporter's own metrics"
    assert {s.value for s in found if s.name == c.SCRAPE_SUCCESS.name} == {1.0}


def test_render_drops_only_the_family_it_cannot_encode():
    good = Reading()
    good.gc(c.GC_KIND_MAJOR, collections=3)
    broken = GaugeMetricFamily("from_elsewhere", "A family that did not come from a Reading.", labels=["name"])
    broken.add_metric([LONE_SURROGATE], 1.0)
    text = exposition.render([*good.families({"target": "a"}), broken]).decode("utf-8")
    promtool_check_metrics(text)
    assert 'runtime_gc_collections_total{kind="major",target="a"} 3.0' in text
    assert "from_elsewhere" not in text


def test_render_drops_one_targets_family_and_keeps_the_others_of_that_name():
    good, bad = Reading(), Reading()
    good.gc(c.GC_KIND_MAJOR, collections=3)
    bad.gc(c.GC_KIND_MAJOR, collections=4)
    families = [*good.families({"target": "good"}), *bad.families({"target": LONE_SURROGATE})]  # extra labels are not checked
    text = exposition.render(families).decode("utf-8")
    promtool_check_metrics(text)
    assert 'target="good"' in text and text.count("# TYPE runtime_gc_collections_total") == 1
    assert "4.0" not in text


# --- (b) caps on series and on label values ---------------------------------------------------
@pytest.mark.parametrize("kind", UNBOUNDED)
def test_a_hostile_number_of_series_is_capped_and_counted(kind, loopback_server):
    make, unbounded = UNBOUNDED[kind]
    body = pharo_body(make())
    outcome, text = scrape(loopback_server, body)
    assert outcome.success, outcome.detail
    kept = len(target_series(text))
    assert kept <= DEFAULTS.max_series_per_target
    assert kept + limited(text, "series_limit") == unbounded, "every series left out is counted"
    assert len(text.encode()) < EXPOSITION_BOUND, f"{len(text.encode()):,} bytes of exposition for a {len(body):,}-byte document"
    promtool_check_metrics(text)


def test_the_exporters_own_series_are_never_capped(loopback_server):
    outcome, text = scrape(loopback_server, pharo_body(many_methods()))
    names = {sample.name for sample in samples(text)}
    for metric in (c.SCRAPE_SUCCESS, c.SCRAPE_DURATION, c.SCRAPE_RESPONSE_SIZE, c.SCRAPE_ERROR, c.SCRAPE_ROUTES):
        assert metric.name in names


def test_the_caps_are_configurable(loopback_server):
    limits = Limits(max_series_per_target=50, max_label_value_length=40)
    document = many_methods()
    document["http"]["requests"][0]["route"] = "/" + "a" * 100
    outcome, text = scrape(loopback_server, pharo_body(document), limits=limits)
    assert outcome.success
    series = target_series(text)
    assert len(series) <= 50
    assert max(len(value) for sample in series for value in sample.labels.values()) <= 40
    assert limited(text, "label_too_long") == 6  # the six series of the first row


def test_the_caps_are_read_from_the_configuration():
    limits = parse({"limits": {"max_series_per_target": 500, "max_label_value_length": 64}}, "test.yml").limits
    assert (limits.max_series_per_target, limits.max_label_value_length) == (500, 64)
    for key, value in [("max_series_per_target", 0), ("max_label_value_length", 8), ("max_label_value_length", "long")]:
        with pytest.raises(ConfigError, match=f"limits.{key}"):
            parse({"limits": {key: value}}, "test.yml")


def test_sidecar_page_stays_bounded_for_a_hostile_document(loopback_server):
    hostile, good = loopback_server(pharo_body(many_methods())), loopback_server(FIXTURE)
    config = {"targets": [{"name": "hostile", "url": hostile + "/stats"}, {"name": "good", "url": good + "/stats"}],
              "limits": {"timeout_seconds": 60}}
    with running(config) as (base, _):
        response = requests.get(base + "/metrics", timeout=120)
    assert response.status_code == 200
    assert len(response.content) < EXPOSITION_BOUND
    assert len(target_series(response.text, "hostile")) <= DEFAULTS.max_series_per_target
    assert limited(response.text, "series_limit", "hostile") > 0
    assert any(s.name == c.GC_COLLECTIONS.name for s in target_series(response.text, "good"))


@pytest.mark.parametrize("where", ["route", "method", "info", "check"])
def test_a_megabyte_label_value_is_shortened(where, loopback_server):
    huge = "/" + "a" * (1024 * 1024)
    document = json.loads(FIXTURE)
    if where == "route":
        document["http"]["requests"][0]["route"] = huge
    elif where == "method":
        document["http"]["requests"][0]["method"] = huge
    elif where == "info":
        document["runtime"]["version"] = huge
    else:
        document["health"]["checks"][huge] = True
    outcome, text = scrape(loopback_server, pharo_body(document))
    assert outcome.success, outcome.detail
    promtool_check_metrics(text)
    longest = max(len(value) for sample in target_series(text) for value in sample.labels.values())
    assert longest <= DEFAULTS.max_label_value_length
    assert len(text.encode()) < 64 * 1024
    assert limited(text, "label_too_long") >= 1


def test_shortened_values_stay_apart_and_stable(loopback_server):
    document = {"http": {"requests": [row(route="/" + "a" * 1000 + "/one"), row(route="/" + "a" * 1000 + "/two")]}}
    _, first = scrape(loopback_server, pharo_body(document))
    _, second = scrape(loopback_server, pharo_body(document))
    routes = {s.labels[c.Label.ROUTE] for s in target_series(first) if c.Label.ROUTE in s.labels}
    assert len(routes) == 2, "two long routes that differ only at the end are still two series"
    assert routes == {s.labels[c.Label.ROUTE] for s in target_series(second) if c.Label.ROUTE in s.labels}


def test_stargate_labels_are_bounded_too(loopback_server):
    rows = [{"value": 1, "http_method": f"M{index}", "url": f"/x{LONE_SURROGATE}", "response_code": 200} for index in range(30_000)]
    document = [{"name": "HTTP request count", "type": "Counter", "value": 30_000, "metrics": rows}]
    outcome, text = scrape(loopback_server, pharo_body(document), profile="stargate")
    assert outcome.success, outcome.detail
    promtool_check_metrics(text)
    assert len(target_series(text)) <= DEFAULTS.max_series_per_target
    assert limited(text, "series_limit") > 0 and limited(text, "label_not_utf8") > 0


def test_json_mapping_labels_are_bounded_too(loopback_server):
    module = module_from("""
modules:
  test:
    metrics:
    - name: cache_hit_ratio
      path: '{.caches}'
      key_label: cache
""")
    caches = {f"c{LONE_SURROGATE}": 0.5, "x" * 5000: 0.25}
    outcome, text = serve_and_scrape(loopback_server, module, json.dumps({"caches": caches}).encode())
    assert outcome.success, outcome.detail
    labels = [s.labels["cache"] for s in samples(text) if s.name == "cache_hit_ratio"]
    assert f"c{REPLACEMENT}" in labels
    assert max(map(len, labels)) <= DEFAULTS.max_label_value_length


# --- (c) statuses and bucket bounds as the format says -----------------------------------------
@pytest.mark.parametrize("status", ["teapot", 200.5, 99999, 99, 600, "2000", " 200", True, None, -200, "200.0"])
def test_statuses_the_format_refuses(status, loopback_server):
    document = {"http": {"requests": [row(), row(status=status)]}}
    outcome, text = scrape(loopback_server, pharo_body(document))
    assert outcome.reason == "invalid_document"
    assert "$.http.requests[1].status" in outcome.detail
    promtool_check_metrics(text)


@pytest.mark.parametrize("status, label", [(200, "200"), ("404", "404"), (503.0, "503"), (100, "100"), (599, "599")])
def test_statuses_the_format_accepts(status, label, loopback_server):
    outcome, text = scrape(loopback_server, pharo_body({"http": {"requests": [row(status=status)]}}))
    assert outcome.success, outcome.detail
    assert {s.labels[c.Label.STATUS] for s in target_series(text) if c.Label.STATUS in s.labels} == {label}


def test_stargate_statuses_are_checked(loopback_server):
    rows = [{"value": 1, "http_method": "GET", "url": "/x", "response_code": "teapot"}]
    document = [{"name": "HTTP request count", "type": "Counter", "value": 1, "metrics": rows}]
    outcome, _ = scrape(loopback_server, pharo_body(document), profile="stargate")
    assert outcome.reason == "invalid_document"
    assert "$[0].metrics[0].response_code" in outcome.detail


@pytest.mark.parametrize(
    "bounds, index",
    [
        ([5, math.nan, 25], 1),
        ([-math.inf, 10, 25], 0),
        ([5, 25, 10], 2),
        ([25, 10, 5], 1),
        ([0, 10, 25], 0),
        ([-5, 10, 25], 0),
        ([5, math.inf, 25], 1),
        ([5, 10, 10], 2),
    ],
    ids=["nan", "minus_inf", "descending_at_end", "descending", "zero", "negative", "inf_not_last", "repeated"],
)
def test_bucket_bounds_the_format_refuses(bounds, index, loopback_server):
    document = {"http": {"durationBucketsMs": bounds, "requests": [row(durationBucketCounts=[0, 0, 0])]}}
    outcome, text = scrape(loopback_server, pharo_body(document))
    assert outcome.reason == "invalid_document", outcome.detail
    assert f"$.http.durationBucketsMs[{index}]" in outcome.detail
    promtool_check_metrics(text)


def test_a_last_infinite_bound_is_the_implicit_one(loopback_server):
    document = {"http": {"durationBucketsMs": [5, 10, math.inf], "requests": [row(count=3, durationBucketCounts=[1, 1, 1])]}}
    outcome, text = scrape(loopback_server, pharo_body(document))
    assert outcome.success, outcome.detail
    promtool_check_metrics(text)
    buckets = {s.labels["le"]: s.value for s in target_series(text) if s.name == c.HTTP_REQUEST_DURATION.bucket}
    assert buckets == {"0.005": 1.0, "0.01": 2.0, "+Inf": 3.0}
