"""The fast exposition writer must produce exactly the bytes prometheus_client's generate_latest
writes for the same families (text format 0.0.4)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter import exposition
from pharos_monitoring.exporter.reading import Reading
from helpers import promtool_check_metrics

AWKWARD = ['say "hi"', "back\\slash", "new\nline", 'all\\"\n', "", "é ☃ 𝄞", "\\n literally"]
VALUES = [0.0, -0.0, 1.0, 0.1, 42.0, -3.5, 999999.0, 1000000.0, 1234567.0, 1e21, 1e-9, 2.0**60, -1e15, math.inf, -math.inf, math.nan]


class Collection:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


def reference(families) -> bytes:
    """generate_latest over the families' Samples, one family per name as the server merges them."""
    groups: dict[str, list] = {}
    for family in families:
        groups.setdefault(family.name, []).append(family)
    merged = []
    for group in groups.values():
        combined = Metric(group[0].name, group[0].documentation, group[0].type)
        combined.samples = [sample for family in group for sample in family.samples]
        merged.append(combined)
    return generate_latest(Collection(merged))


def awkward_reading() -> Reading:
    reading = Reading()
    reading.info("pharo", 'v"1\\', "orders\nline", "")
    for index, value in enumerate(VALUES):
        reading.set(c.MEMORY_SPACE, value, (f"space{index}",))
    for kind, value in zip(c.GC_KINDS, (math.inf, 12.0)):
        reading.gc(kind, collections=value, seconds=value / 1000)
    reading.set(c.UPTIME, math.nan)
    for index, route in enumerate(AWKWARD):
        reading.http("get", route, str(200 + index), 10.0 + index, 1.5 * index, 2048.0 * index, [(0.005, 1.0), (0.1, 4.0), (math.inf, 10.0 + index)])
    reading.observe(c.HTTP_REQUEST_DURATION, ("POST", "/no-sum", "201"), 3.0, None, [(0.5, 1.0), (0.25, 0.0)])
    reading.observe(c.HTTP_REQUEST_DURATION, ("PUT", "/no-buckets", "204"), 7.0, 0.7)
    reading.health(False, {"database": True, 'quote"check': False})
    return reading


def test_awkward_values_and_labels_render_as_generate_latest_does():
    families = awkward_reading().families({"target": 'app "one"\\\n'})
    fast = exposition.render(families)
    assert fast == reference(families)
    assert b'http_route="say \\"hi\\""' in fast and b'http_route="new\\nline"' in fast
    assert b"runtime_uptime_seconds" in fast and b"NaN" in fast and b"+Inf" in fast


def test_families_of_several_targets_share_one_header():
    first, second = awkward_reading().families({"target": "a"}), awkward_reading().families({"target": "b"})
    fast = exposition.render(first + second)
    assert fast == reference(first + second)
    assert fast.count(b"# TYPE http_server_request_duration_seconds histogram") == 1


def test_output_passes_promtool():
    reading = Reading()
    reading.info("pharo", "11", "orders", "1.0")
    reading.http("GET", "/orders/{id}", "200", 12.0, 0.5, 4096.0, [(0.01, 3.0), (0.1, 10.0)])
    reading.set(c.START_TIME, 1764300000.0)
    promtool_check_metrics(exposition.render(reading.families({"target": "app"})))


def test_samples_are_still_prometheus_client_samples():
    reading = Reading()
    reading.http("GET", "/a", "200", 5.0, 0.25, None, [(0.1, 2.0)])
    (family,) = reading.families({"target": "t"})
    assert [(s.name, s.labels, s.value) for s in family.samples] == [
        ("http_server_request_duration_seconds_bucket", {"target": "t", "http_request_method": "GET", "http_route": "/a", "http_response_status_code": "200", "le": "0.1"}, 2.0),
        ("http_server_request_duration_seconds_bucket", {"target": "t", "http_request_method": "GET", "http_route": "/a", "http_response_status_code": "200", "le": "+Inf"}, 5.0),
        ("http_server_request_duration_seconds_count", {"target": "t", "http_request_method": "GET", "http_route": "/a", "http_response_status_code": "200"}, 5.0),
        ("http_server_request_duration_seconds_sum", {"target": "t", "http_request_method": "GET", "http_route": "/a", "http_response_status_code": "200"}, 0.25),
    ]


def test_families_from_elsewhere_go_through_generate_latest():
    foreign = GaugeMetricFamily("runtime_memory_bytes", c.MEMORY_SPACE.help, labels=["space"])
    foreign.add_metric(["odd\nspace"], 5.0)
    ours = Reading()
    ours.memory("old", size=7.0)
    families = ours.families() + [foreign]
    assert exposition.render(families) == reference(families)


def test_user_defined_metrics_render_as_generate_latest_does():
    # Mappings (the json profile) define their own metrics: untyped ones, a label called `le`,
    # a label that repeats the sidecar's `target` label (the later value wins, as in a dict).
    untyped = c.Metric("queue_depth", "untyped", "Depth of a queue.", ("queue",))
    with_le = c.Metric("tier_level", c.GAUGE, "A level.", ("le", "tier"))
    with_target = c.Metric("shards_total", c.COUNTER, "Shards.", ("target",))
    reading = Reading()
    reading.set(untyped, 3.0, ("a\\b",))
    reading.set(with_le, 1.0, ("high", "gold"))
    reading.add(with_target, 2.0, ("inner",))
    families = reading.families({"target": "outer"})
    fast = exposition.render(families)
    assert fast == reference(families)
    assert b"# TYPE queue_depth untyped" in fast and b'shards_total{target="inner"} 2.0' in fast


def test_names_the_fast_path_cannot_write_are_refused():
    with pytest.raises(ValueError, match="may not include 'le'"):
        exposition.SeriesLabels(("route", "le")).histogram_parts(("/", "0.5"))
    with pytest.raises(ValueError, match="not valid"):
        exposition.check_name("x", ["bad-name"])
    with pytest.raises(ValueError, match="family of its own"):
        exposition.check_name("x", ["x_created"])


def test_every_catalogue_metric_takes_the_fast_path():
    for metric in c.all_metrics():
        names = (metric.bucket, metric.count, metric.sum) if metric.type == c.HISTOGRAM else (metric.name,)
        exposition.check_name(metric.family, names)
        exposition.SeriesLabels((c.Label.TARGET,) + metric.labels)


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(min_value=-(2**70), max_value=2**70))
def test_values_are_formatted_as_floatToGoString_does(value):
    assert exposition.format_value(value) == floatToGoString(value)


label_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(label_text, label_text, st.floats(min_value=0, max_value=1e12), st.floats(allow_nan=True, allow_infinity=True)), max_size=6),
    target=label_text,
)
def test_any_reading_renders_as_generate_latest_does(rows, target):
    reading = Reading()
    for route, check, count, value in rows:
        reading.http("GET", route, "200", count, value, value, [(0.5, count / 2), (1.0, count)])
        reading.set(c.APP_HEALTH_CHECK, value, (check,))
    families = reading.families({"target": target})
    assert exposition.render(families) == reference(families)
