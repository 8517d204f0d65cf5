"""Mistakes in a mapping are reported when the configuration loads, naming the file, the module,
the metric (index and name) and the key, with what to do about it."""

from __future__ import annotations

import pytest

from pharos_monitoring.exporter.config import ConfigError

from jsonmap_support import modules_from


def fails(text: str, *fragments: str) -> str:
    with pytest.raises(ConfigError) as caught:
        modules_from(text, "pharos.yml")
    message = str(caught.value)
    assert message.startswith("pharos.yml: "), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def metric(body: str, extra: str = "") -> str:
    """A module `app` whose third metric is `body` (the first two are fine)."""
    indented = "\n".join("      " + line for line in body.strip().splitlines())
    return f"""
modules:
  app:
{extra}    metrics:
    - name: ok_one
      path: '{{.a}}'
    - name: ok_two
      path: '{{.b}}'
    - {indented.strip()}
"""


@pytest.mark.parametrize(
    "body, fragments",
    [
        (  # a wrong JSONPath: where and what
            "name: orders\npath: '{.orders[?(@.state = \"OPEN\")]}'",
            ["modules.app.metrics[2].path: metric 'orders': invalid JSONPath", "unknown filter operator '='", "use '=='", "column"],
        ),
        ("name: orders\npath: '{.orders'", ["modules.app.metrics[2].path: metric 'orders'", "unclosed action"]),
        ("name: orders\npath: '$.orders.count'", ["metrics[2].path", "has no {...} expression", "did you mean '{.orders.count}'"]),
        ("name: orders\npath: '{.a}'\nlabels:\n  id: '{.items[x]}'", ["metrics[2].labels.id: metric 'orders'", "not a number"]),
        ("name: orders\ntype: object\npath: '{.a[*]}'\nvalues:\n  n: '{.n'", ["metrics[2].values.n: metric 'orders'", "unclosed"]),
        # unknown keys, with a suggestion
        ("name: orders\npath: '{.a}'\nvalutype: gauge", ["metrics[2].valutype: metric 'orders': unknown key; did you mean 'valuetype'?"]),
        ("name: orders\npath: '{.a}'\nlabel: {a: b}", ["metrics[2].label:", "did you mean 'labels'?"]),
        # bad types and values
        ("name: orders\npath: '{.a}'\nvaluetype: gauges", ["metrics[2].valuetype: metric 'orders': 'gauges' is not one of gauge, counter, untyped"]),
        ("name: orders\npath: '{.a}'\ntype: objects", ["metrics[2].type", "'objects' is not one of value, object"]),
        ("name: orders\npath: '{.a}'\nlabels: [a, b]", ["metrics[2].labels: metric 'orders': expected a mapping"]),
        ("name: orders\npath: 12", ["metrics[2].path: metric 'orders': expected str, got int"]),
        ("name: orders\npath: '{.a}'\nallow_missing_key: maybe", ["metrics[2].allow_missing_key", "expected bool"]),
        ("name: orders\npath: '{.a}'\nvalues: {n: '{.n}'}", ["metrics[2].values", "only for metrics of type object"]),
        ("name: orders\ntype: object\npath: '{.a[*]}'", ["metrics[2].values", "needs values"]),
        ("name: orders\ntype: object\npath: '{.a[*]}'\nvalues: {n: lots}", ["metrics[2].values.n", "static value 'lots' is not a number"]),
        ("name: orders\ntype: object\npath: 'x{.a}'\nvalues: {n: '{.n}'}", ["metrics[2].path", "exactly one {...} expression"]),
        ("path: '{.a}'", ["metrics[2].name", "needs a name"]),
        ("name: 9lives\npath: '{.a}'", ["metrics[2].name", "not a valid metric name"]),
        ("name: pharos_orders\npath: '{.a}'", ["metrics[2].name", "reserved for the exporter's own metrics"]),
        ("name: orders\npath: '{.a}'\nlabels: {bad-name: x}", ["metrics[2].labels.bad-name", "not a valid label name"]),
        ("name: orders\npath: '{.a}'\nlabels: {le: x}", ["metrics[2].labels.le", "reserved for histogram buckets"]),
        ("name: orders\npath: '{.a}'\nlabels: {__name__: x}", ["metrics[2].labels.__name__", "reserved for Prometheus"]),
        ("name: orders\npath: '{.a}'\nlabels: {id: x}\nkey_label: id", ["metrics[2].labels", "'id' is defined twice"]),
        ("name: orders\ntype: object\npath: '{.a}'\nparent_labels: {p: '{.x}'}\nvalues: {n: '{.n}'}", ["metrics[2].parent_labels", "need children"]),
        ("name: orders\npath: '{.a}'\nchildren: '{.b}'", ["metrics[2].children", "only for metrics of type object"]),
        ("name: orders\npath: '{.a}'\nvalue_map: {OK: fine}", ["metrics[2].value_map.OK", "expected text mapped to a number"]),
        ("name: orders\npath: '{.a}'\nlabel_map: {tier: {a: b}}", ["metrics[2].label_map.tier", "not a label of this metric"]),
        ("name: orders\npath: '{.a}'\nduplicates: keep", ["metrics[2].duplicates", "not one of drop, sum"]),
        ("name: orders\npath: '{.a}'\nscale: lots", ["metrics[2].scale", "expected a number"]),
        ("name: orders\nengine: jq\npath: '.a'", ["metrics[2].engine", "'jq' is not one of jsonpath, cel"]),
        ("name: orders\nengine: cel\npath: '.a.filter(x)'", ["metrics[2].path: metric 'orders': invalid CEL expression"]),
        ("name: orders\nengine: cel\npath: 'frobnicate(.a)'", ["metrics[2].path", "function 'frobnicate' is not supported"]),
    ],
)
def test_mistakes_in_a_metric_name_the_module_metric_and_key(body, fragments):
    fails(metric(body), *fragments)


@pytest.mark.parametrize(
    "body, fragments",
    [
        ("maps_to: runtime_gc_collection_total\npath: '{.gc}'\nlabels: {kind: major}", ["metrics[2].maps_to", "no catalogue metric 'runtime_gc_collection_total'", "runtime_gc_collections_total"]),
        ("maps_to: runtime_gc_collections_total\npath: '{.gc}'", ["metrics[2].labels", "takes exactly these labels: kind; got none"]),
        ("maps_to: runtime_gc_collections_total\npath: '{.gc}'\nlabels: {kind: young}", ["metrics[2].labels.kind", "must be minor or major; got 'young'"]),
        ("maps_to: runtime_gc_collections_total\npath: '{.gc}'\nlabels: {kind: '{.type}'}", ["metrics[2].labels.kind", "label_map"]),
        ("maps_to: runtime_gc_collections_total\npath: '{.gc}'\nlabels: {kind: '{.type}'}\nlabel_map: {kind: {young: minor}}", ["metrics[2].label_map.kind", "would pass through"]),
        ("maps_to: runtime_gc_collections_total\npath: '{.gc}'\nlabels: {kind: '{.type}'}\nlabel_map: {kind: {young: minor, old: full, '*': ~}}", ["metrics[2].label_map.kind", "label_map gives 'full'"]),
        ("maps_to: runtime_uptime_seconds\nvaluetype: counter\npath: '{.up}'", ["metrics[2].valuetype", "runtime_uptime_seconds is a gauge, not a counter"]),
        ("maps_to: http_server_request_duration_seconds\npath: '{.h}'", ["metrics[2].maps_to", "histograms"]),
        ("name: runtime_uptime_seconds\npath: '{.up}'", ["metrics[2].name", "is a Pharos catalogue name", "maps_to: runtime_uptime_seconds"]),
        ("name: mem\ntype: object\npath: '{.m}'\nvalues: {used: '{.u}'}\nmaps_to: {free: runtime_memory_free_bytes}", ["metrics[2].maps_to.free", "not a key of values"]),
    ],
)
def test_vocabulary_mappings_are_checked_against_the_catalogue(body, fragments):
    fails(metric(body), *fragments)


def test_one_metric_name_with_two_definitions_is_refused():
    fails(
        metric("name: ok_one\npath: '{.c}'\nlabels: {x: y}"),
        "modules.app.metrics[2]", "'ok_one' is also produced by modules.app.metrics[0]",
    )  # fmt: skip


def test_the_same_metric_from_two_entries_with_one_definition_is_fine():
    modules = modules_from(metric("name: ok_one\npath: '{.c}'"))
    assert modules["app"].metric_names == ["ok_one", "ok_two"]


@pytest.mark.parametrize(
    "module, fragments",
    [
        ("headers: {Authorization: Bearer abc}", ["modules.app.headers.Authorization", "secrets are not accepted inline", "credentials_file"]),
        ("http_client_config: {basic_auth: {username: u, password: hunter2}}", ["modules.app.http_client_config.basic_auth.password", "password_file"]),
        ("http_client_config: {bearer_token: abc}", ["http_client_config.bearer_token", "bearer_token_file"]),
        ("http_client_config: {authorization: {credentials: abc}}", ["http_client_config.authorization.credentials", "credentials_file"]),
        ("http_client_config: {authorization: {type: Digest, credentials_file: /etc/hostname}}", ["authorization.type", "only the Bearer type"]),
        ("http_client_config: {basic_auth: {username: u, password_file: /nonexistent/secret}}", ["http_client_config", "cannot read secret file /nonexistent/secret"]),
        ("http_client_config: {oauth2: {client_id: x}}", ["http_client_config.oauth2", "not supported by Pharos"]),
        ("http_client_config: {proxy_url: 'http://proxy:3128'}", ["http_client_config.proxy_url", "not supported by Pharos"]),
        ("http_client_config: {tls_config: {ca_file: /nonexistent/ca.pem}}", ["tls_config.ca_file", "does not exist"]),
        ("http_client_config: {tls_config: {server_name: x}}", ["tls_config.server_name", "not supported"]),
        ("http_client_config: {tls_confg: {}}", ["http_client_config.tls_confg", "did you mean 'tls_config'?"]),
        ("valid_status_codes: [200, 700]", ["valid_status_codes[1]", "between 100 and 599"]),
        ("valid_status_codes: 200", ["valid_status_codes", "list of HTTP status codes"]),
        ("body: {content: '{{ .x | frobnicate }}', templatize: true}", ["modules.app.body.content", "unknown function 'frobnicate'"]),
        ("body: {content: 'a {{ .x ', templatize: true}", ["modules.app.body.content", "unclosed"]),
        ("max_series: 0", ["modules.app.max_series", "greater than 0"]),
        ("metric: []", ["modules.app.metric", "did you mean 'metrics'?"]),
    ],
)
def test_mistakes_in_a_module_name_the_module_and_key(module, fragments):
    fails(metric("name: x\npath: '{.x}'", extra=f"    {module}\n"), *fragments)


def test_module_names_and_shape():
    fails("modules:\n  pharo:\n    metrics: [{name: a, path: '{.a}'}]\n", "modules.pharo", "built-in profile")
    fails("modules:\n  'bad name':\n    metrics: [{name: a, path: '{.a}'}]\n", "may only hold letters")
    fails("modules:\n  app: {}\n", "modules.app.metrics", "non-empty list of metrics")
    fails("modules: [a]\n", "modules: expected a mapping of module name to module")


def test_secrets_from_files_and_environment_are_accepted(tmp_path, monkeypatch):
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    monkeypatch.setenv("APP_TOKEN", "t0ken")
    modules = modules_from(f"""
modules:
  basic:
    http_client_config:
      basic_auth: {{username: monitor, password_file: {password}}}
    metrics: [{{name: a, path: '{{.a}}'}}]
  bearer:
    http_client_config:
      authorization: {{credentials_env: APP_TOKEN}}
      tls_config: {{insecure_skip_verify: true}}
    metrics: [{{name: a, path: '{{.a}}'}}]
""")
    assert modules["basic"].auth.headers() == {"Authorization": "Basic bW9uaXRvcjpzM2NyZXQ="}
    assert modules["bearer"].auth.headers() == {"Authorization": "Bearer t0ken"}
    assert modules["bearer"].tls.insecure_skip_verify
    assert modules["basic"].tls is None  # not set: the exporter's probe TLS settings apply


def test_describe_summarises_a_module_for_check_config():
    modules = modules_from(metric("name: stamped\npath: '{.s}'\nepochTimestamp: '{.t}'", extra="    valid_status_codes: [200, 503]\n"))
    lines = modules["app"].describe()
    assert lines[0] == "  module app: GET, statuses 200, 503, 3 metric entries, at most 50000 series"
    assert "ok_one, ok_two, stamped" in lines[1]
    assert any("epochTimestamp is checked but not exported" in line for line in lines)


def test_epoch_timestamp_paths_are_checked_too():
    fails(metric("name: stamped\npath: '{.s}'\nepochTimestamp: '{.t'"), "metrics[2].epochTimestamp", "unclosed")
