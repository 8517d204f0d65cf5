"""Request bodies: json_exporter's `body` (a POST), static or templated with the probe's query
parameters."""

from __future__ import annotations

import inspect
import json
from http.server import BaseHTTPRequestHandler

import pytest

from pharos_monitoring.exporter.fetch import Fetcher
from pharos_monitoring.exporter.jsonmap.body import BodyTemplate, BodyTemplateError

from jsonmap_support import module_from, value


def test_a_static_body_is_sent_as_it_is():
    template = BodyTemplate('{"time_diff": "1m25s", "anotherVar": "{{ not a template }}"}', templatize=False)
    assert template.render({"x": ["y"]}) == b'{"time_diff": "1m25s", "anotherVar": "{{ not a template }}"}'


def test_json_exporters_documented_templates():
    # Both examples of json_exporter's README, with &myVal=something on the probe.
    params = {"myVal": ["something"]}
    assert BodyTemplate('{"time_diff": "{{ duration `95` }}","anotherVar": "{{ .myVal | first }}"}', True).render(params) == (
        b'{"time_diff": "1m35s","anotherVar": "something"}'
    )
    rendered = json.loads(BodyTemplate('{"time_diff": "{{ duration `95` }}","anotherVar": "{{ randInt 12 30 }}"}', True).render(params))
    assert rendered["time_diff"] == "1m35s"
    assert 12 <= int(rendered["anotherVar"]) < 30


@pytest.mark.parametrize(
    "content, expected",
    [
        ("{{ .ids }}", "[a b]"),  # a parameter is the list of its values, printed as Go prints it
        ("{{ .ids | last }}", "b"),
        ('{{ .ids | join "," }}', "a,b"),
        ("{{ index .ids 1 }}", "b"),
        ('{{ .absent | first | default "none" }}', "none"),
        ("{{ .absent }}", "[]"),
        ("{{ .ids | first | upper | quote }}", '"A"'),
        ("{{ .ids | toJson }}", '["a","b"]'),
        ("{{ duration 3725 }}", "1h2m5s"),
        ('{{ "text" }} and {{ 12 }}', "text and 12"),
    ],
)
def test_template_functions(content, expected):
    assert BodyTemplate(content, True).render({"ids": ["a", "b"]}).decode() == expected


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{{ .x | nope }}", "unknown function 'nope'"),
        ("{{ if .x }}y{{ end }}", "unknown function 'if'"),
        ("{{ .x", "unclosed '{{'"),
        ("{{ join .x }}", "join takes 2 argument(s), got 1"),
        ("{{ $x := 1 }}", "unsupported template syntax"),
        ("{{ }}", "empty command"),
    ],
)
def test_template_errors(content, problem):
    with pytest.raises(BodyTemplateError, match=None) as caught:
        BodyTemplate(content, True)
    assert problem in str(caught.value)


JOLOKIA_LIKE = """
modules:
  test:
    headers:
      Content-Type: application/json
    body:
      content: '[{"type": "read", "mbean": "{{ .mbean | first | default "java.lang:type=Memory" }}"}]'
      templatize: true
    valid_status_codes: [200]
    metrics:
    - name: heap_used_bytes
      path: '{[0].value.HeapMemoryUsage.used}'
"""


def test_a_module_with_a_body_posts_it():
    module = module_from(JOLOKIA_LIKE)
    assert module.method == "POST"
    assert module.profile().method == "POST"
    assert module.render_body({}) == b'[{"type": "read", "mbean": "java.lang:type=Memory"}]'
    assert module.render_body({"mbean": ["java.lang:type=Runtime"]}) == b'[{"type": "read", "mbean": "java.lang:type=Runtime"}]'
    assert module.valid_statuses == frozenset({200})


def _posting_wired() -> bool:
    """Whether the core sends a Profile's body: the integration step of docs/json-mapping.md."""
    from pharos_monitoring.exporter.profiles.base import Profile

    return "body" in inspect.signature(Fetcher.fetch).parameters and {"body", "valid_statuses"} <= set(Profile.__dataclass_fields__)


@pytest.mark.skipif(not _posting_wired(), reason="Profile.body/valid_statuses and Fetcher.fetch(body=) are not wired yet (docs/json-mapping.md, integration)")
def test_the_body_reaches_the_target_over_http(loopback_server):
    received = []
    answer = json.dumps([{"request": {"type": "read"}, "value": {"HeapMemoryUsage": {"used": 123456}}, "status": 200}]).encode()

    class Jolokia(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            received.append((self.headers.get("Content-Type"), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    import dataclasses
    import time

    from prometheus_client import CollectorRegistry

    from pharos_monitoring.exporter.routes import RouteTable
    from pharos_monitoring.exporter.scrape import Scraper, Target
    from pharos_monitoring.exporter.collect import render

    module = module_from(JOLOKIA_LIKE)
    profile = dataclasses.replace(module.profile(), body=module.render_body({}), valid_statuses=module.valid_statuses)
    target = Target(url=loopback_server(Jolokia) + "/jolokia", profile=profile, fetcher=Fetcher(), routes=RouteTable(10))
    outcome = Scraper(CollectorRegistry()).scrape(target, time.monotonic() + 10)
    assert outcome.success, outcome.detail
    assert received == [("application/json", b'[{"type": "read", "mbean": "java.lang:type=Memory"}]')]
    assert value(render(outcome.families).decode(), "heap_used_bytes") == 123456
