"""json_exporter compatibility: its own example configuration and test suite, reproduced.

The fixtures in tests/fixtures/jsonmap/json_exporter-* are json_exporter's files as they are
(prometheus-community/json_exporter, Apache-2.0): `examples/config.yml`, `examples/data.json`,
`examples/animal-data.json`, and its README's documented output for them
(`json_exporter-expected.prom`, `json_exporter-animals-expected.prom`); and its valueconverter test
case (`test/config/test-converter.yml`, `test/serve/test-converter.json`,
`test/response/test-converter.txt`). Each is served on loopback and scraped through the
exporter's own fetch/scrape/render path; the output must hold exactly the documented families,
help texts, types and samples. One documented difference: Pharos never writes sample timestamps
(see docs/json-mapping.md), so the documented `epochTimestamp` column is not compared.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from pharos_monitoring.exporter.config import ConfigError
from pharos_monitoring.exporter.jsonmap import load_modules_file

from jsonmap_support import documented, dropped, families, module_from, scrape, serve_and_scrape, value

FIXTURES = Path(__file__).parent / "fixtures" / "jsonmap"


@pytest.fixture(scope="module")
def example_modules():
    return load_modules_file(str(FIXTURES / "json_exporter-config.yml"))


def test_the_example_configuration_loads_as_it_is(example_modules):
    assert sorted(example_modules) == ["animals", "default"]
    assert example_modules["default"].headers == {"X-Dummy": "my-test-header"}
    assert example_modules["default"].method == "GET"


@pytest.mark.parametrize(
    "module, data, expected",
    [
        ("default", "json_exporter-data.json", "json_exporter-expected.prom"),
        ("animals", "json_exporter-animal-data.json", "json_exporter-animals-expected.prom"),
    ],
)
def test_the_documented_example_gives_the_documented_series(loopback_server, example_modules, module, data, expected):
    outcome, text = serve_and_scrape(loopback_server, example_modules[module], (FIXTURES / data).read_bytes())
    assert outcome.success, outcome.detail
    wanted = documented(expected)
    ours = families(text)
    mapped = {name: family for name, family in ours.items() if not name.startswith("pharos_")}
    assert set(mapped) == set(wanted)
    for name, (help_text, kind, samples) in wanted.items():
        assert mapped[name] == (help_text, kind, samples), name
    assert dropped(text, module, "missing") == 0  # allow_missing_key: absent, and not counted


def test_module_headers_reach_the_target(loopback_server, example_modules):
    seen = {}
    body = (FIXTURES / "json_exporter-data.json").read_bytes()

    class Recording(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            seen.update({name.lower(): content for name, content in self.headers.items()})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    outcome, _ = scrape(example_modules["default"], loopback_server(Recording) + "/examples/data.json")
    assert outcome.success
    assert seen["x-dummy"] == "my-test-header"
    assert seen["accept"] == "application/json"


def test_valueconverter_cases_of_json_exporters_own_test_suite(loopback_server):
    modules = load_modules_file(str(FIXTURES / "json_exporter-converter-config.yml"))
    outcome, text = serve_and_scrape(loopback_server, modules["default"], (FIXTURES / "json_exporter-converter-data.json").read_bytes())
    assert outcome.success
    wanted = documented("json_exporter-converter-expected.prom")
    ours = {name: family for name, family in families(text).items() if not name.startswith("pharos_")}
    assert ours == wanted
    # test4 (no converter) and test7's INACTIVE (not in its converter) are dropped, not exported:
    assert dropped(text, "default", "not_a_number") == 2


VALUE_DOCUMENT = {
    "int": 42,
    "float": 2.5,
    "numeric_text": "1.5e3",
    "true_text": "true",
    "t": "T",
    "yes": True,
    "no": False,
    "null": None,
    "words": "1000 MB",
    "object": {"a": 1},
    "list": [1, 2],
    "padded": " 7",
    "underscored": "1_000",
    "hex_float": "0x1p-2",
    "infinite": "+Inf",
}


@pytest.mark.parametrize(
    "field, expected",
    [
        ("int", 42.0),
        ("float", 2.5),
        ("numeric_text", 1500.0),  # strconv.ParseFloat
        ("true_text", 1.0),  # strconv.ParseBool
        ("t", 1.0),
        ("yes", 1.0),  # booleans as 1/0
        ("no", 0.0),
        ("null", "NaN"),  # json_exporter prints <nil> and turns it into NaN
        ("hex_float", 0.25),
        ("infinite", float("inf")),
        ("words", None),  # not a number: dropped
        ("object", None),
        ("list", None),
        ("padded", None),  # Go refuses what Python's float() would take
        ("underscored", None),
    ],
)
def test_values_convert_as_json_exporter_converts_them(loopback_server, field, expected):
    module = module_from(f"""
modules:
  test:
    metrics:
    - name: converted
      path: '{{.{field}}}'
""")
    outcome, text = serve_and_scrape(loopback_server, module, VALUE_DOCUMENT)
    assert outcome.success
    got = value(text, "converted")
    if expected is None:
        assert got is None
        assert dropped(text, "test", "not_a_number") == 1
    elif expected == "NaN":
        assert got != got
    else:
        assert got == expected


def test_labels_print_values_as_json_exporter_prints_them(loopback_server):
    module = module_from("""
modules:
  test:
    metrics:
    - name: printed
      path: '{.one}'
      labels:
        number: '{.big}'
        fraction: '{.fraction}'
        flag: '{.flag}'
        several: '{.list[*]}'
        nested: '{.object}'
        absent: '{.nope}'
        mixed: 'v{.one}-{.flag}'
""")
    document = {"one": 1, "big": 12345678901.0, "fraction": 0.000001, "flag": False, "list": ["a", "b"], "object": {"z": 1, "a": [True]}}
    outcome, text = serve_and_scrape(loopback_server, module, document)
    assert outcome.success
    assert value(
        text, "printed", number="12345678901", fraction="0.000001", flag="false", several="a b",
        nested='{"a":[true],"z":1}', absent="", mixed="v1-false",
    ) == 1.0  # fmt: skip


def test_a_counter_is_named_with_total_as_prometheus_client_writes_counters(loopback_server):
    module = module_from("""
modules:
  test:
    metrics:
    - name: requests
      valuetype: counter
      path: '{.requests}'
    - name: bytes_total
      valuetype: counter
      path: '{.bytes}'
""")
    outcome, text = serve_and_scrape(loopback_server, module, {"requests": 7, "bytes": 1024})
    assert outcome.success
    assert "# TYPE requests_total counter" in text
    assert value(text, "requests_total") == 7
    assert value(text, "bytes_total") == 1024


def test_the_single_module_format_of_json_exporter_0_3_becomes_module_default(tmp_path, loopback_server):
    config = tmp_path / "config.yml"
    config.write_text("""
headers:
  X-Dummy: old
metrics:
- name: example_global_value
  path: '{ .counter }'
  labels:
    environment: beta
""")
    modules = load_modules_file(str(config))
    assert list(modules) == ["default"]
    outcome, text = serve_and_scrape(loopback_server, modules["default"], (FIXTURES / "json_exporter-data.json").read_bytes())
    assert value(text, "example_global_value", environment="beta") == 1234


def test_the_0_2_list_format_is_refused_with_the_way_forward(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("- name: example_global_value\n  path: $.counter\n")
    with pytest.raises(ConfigError, match=r"0\.2 format.*'\{\.counter\}'"):
        load_modules_file(str(config))


def test_a_document_is_decoded_once_per_scrape_however_many_metrics_read_it(loopback_server, example_modules, monkeypatch):
    calls = []
    original = json.loads

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    module = example_modules["default"]
    url = loopback_server((FIXTURES / "json_exporter-data.json").read_bytes()) + "/data.json"
    monkeypatch.setattr(json, "loads", counting)
    outcome, _ = scrape(module, url)
    assert outcome.success
    assert len(calls) == 1  # eight metric entries, twelve labels, five values: one decode
