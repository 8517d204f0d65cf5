"""The `modules:` of a configuration, read and checked into specs, expressions compiled.

json_exporter's keys keep their names and meaning; the Pharos additions are documented in
docs/json-mapping.md. Every error names the file, the key path and the metric, e.g.
`config.yml: modules.default.metrics[2].path: metric 'example_value': unclosed action ...`.
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from ..config import Auth, TLS
from . import cel
from .body import BodyTemplate, BodyTemplateError
from .client import parse_client, parse_headers, parse_statuses
from .jsonpath import PathSyntaxError, compile_template
from .schema_reader import Reader, scalar_text
from .values import parse_go_number

log = logging.getLogger("pharos.exporter")

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
MODULE_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")
DEFAULT_MAX_SERIES = 50_000
WILDCARD = "*"  # the key of a value_map or label_map entry that applies to every other value
DROP = None  # a label_map target that drops the series

MODULE_KEYS = {"headers", "metrics", "http_client_config", "body", "valid_status_codes", "max_series"}
_METRIC_KEYS = {
    # json_exporter
    "name", "path", "type", "valuetype", "help", "labels", "values", "valueconverter",
    "epochTimestamp", "epochtimestamp", "allow_missing_key", "engine",
    # Pharos
    "key_label", "children", "parent_labels", "parent_key_label", "root_labels", "value_map", "label_map",
    "maps_to", "scale", "duplicates",
}  # fmt: skip


@dataclass(frozen=True)
class LabelSpec:
    name: str
    source: str  # "item" (the document, for a value metric) | "parent" | "root" | "key" | "parent_key"
    expr: Any = None  # a compiled expression; None for key labels
    table: dict | None = None  # label_map: text -> text or DROP


@dataclass(frozen=True)
class ValueSpec:
    key: str  # the `values` key; "" for a metric of type value
    expr: Any
    path: str  # where it is configured, for messages
    converter: dict[str, float] | None = None  # json_exporter's valueconverter for this value
    scale: float = 1.0
    maps_to: str = ""  # a catalogue metric name


@dataclass(frozen=True)
class MetricSpec:
    path: str  # modules.<module>.metrics[<i>]
    name: str
    kind: str  # value | object
    valuetype: str  # gauge | counter | untyped
    help: str
    select: Any  # the compiled `path`
    labels: tuple[LabelSpec, ...]
    values: tuple[ValueSpec, ...]
    children: Any = None
    value_map: dict[str, float] | None = None
    value_default: float | None = None
    allow_missing: bool = False
    duplicates: str = "drop"
    engine: str = "jsonpath"
    timestamp: Any = None  # accepted and checked, never exported (see docs)


@dataclass(frozen=True)
class ModuleSpec:
    name: str
    path: str
    metrics: tuple[MetricSpec, ...]
    headers: dict[str, str] = field(default_factory=dict)
    auth: Auth | None = None  # None: the exporter's own probe credentials apply
    tls: TLS | None = None
    valid_statuses: frozenset[int] = frozenset(range(200, 300))
    body: BodyTemplate | None = None
    max_series: int = DEFAULT_MAX_SERIES


def parse_module(reader: Reader, name: Any, value: Any, path: str, reserved: set[str]) -> ModuleSpec:
    if not isinstance(name, str) or not MODULE_NAME.match(name):
        raise reader.fail(path, f"module name {name!r} may only hold letters, digits and _.:-")
    if name in reserved:
        raise reader.fail(path, f"{name!r} is the name of a built-in profile; give the module another name")
    data = reader.mapping(value, path, MODULE_KEYS)
    metrics_value = data.get("metrics")
    if not isinstance(metrics_value, list) or not metrics_value:
        raise reader.fail(f"{path}.metrics", "every module needs a non-empty list of metrics")
    metrics = tuple(_metric(reader, entry, f"{path}.metrics[{index}]") for index, entry in enumerate(metrics_value))
    auth, tls = parse_client(reader, data.get("http_client_config"), f"{path}.http_client_config")
    return ModuleSpec(
        name=name,
        path=path,
        metrics=metrics,
        headers=parse_headers(reader, data.get("headers"), f"{path}.headers"),
        auth=auth,
        tls=tls,
        valid_statuses=parse_statuses(reader, data.get("valid_status_codes"), f"{path}.valid_status_codes"),
        body=_body(reader, data.get("body"), f"{path}.body"),
        max_series=reader.typed(data, "max_series", path, int, DEFAULT_MAX_SERIES, _positive),
    )


def _body(reader: Reader, value: Any, path: str) -> BodyTemplate | None:
    data = reader.mapping(value, path, {"content", "templatize"})
    content = reader.typed(data, "content", path, str, "")
    templatize = reader.typed(data, "templatize", path, bool, False)
    if not content:
        return None
    try:
        return BodyTemplate(content, templatize)
    except BodyTemplateError as error:
        raise reader.fail(f"{path}.content", str(error)) from None


def _positive(value) -> str:
    return "" if value > 0 else f"must be greater than 0, got {value}"


class _MetricReader:
    """Reads one metric entry; every message names the metric."""

    def __init__(self, reader: Reader, data: dict, path: str):
        self.reader, self.data, self.path = reader, data, path
        self.label = ""
        self.engine = "jsonpath"

    def fail(self, key: str, problem: str):
        where = f"{self.path}.{key}" if key else self.path
        prefix = f"metric {self.label!r}: " if self.label else ""
        return self.reader.fail(where, prefix + problem)

    def typed(self, key: str, kind: type, default: Any) -> Any:
        value = self.data.get(key)
        if value is None:
            return default
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            raise self.fail(key, f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
        return value

    def check_keys(self) -> None:
        for key in self.data:
            if key not in _METRIC_KEYS:
                close = difflib.get_close_matches(str(key), sorted(_METRIC_KEYS), n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.fail(str(key), f"unknown key{hint} Known keys of a metric: {', '.join(sorted(_METRIC_KEYS))}")

    def compile(self, text: str, key: str):
        try:
            if self.engine == "cel":
                return cel.compile_expression(text)
            return compile_template(text)
        except (PathSyntaxError, cel.CelSyntaxError) as error:
            kind = "CEL expression" if self.engine == "cel" else "JSONPath"
            raise self.fail(key, f"invalid {kind}: {error}") from None

    def text_mapping(self, key: str) -> dict[str, str]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {type(value).__name__}")
        out = {}
        for name, item in value.items():
            text = scalar_text(item)
            if text is None:
                raise self.fail(f"{key}.{name}", f"expected a string, got {type(item).__name__}")
            out[str(name)] = text
        return out

    def label_name(self, name: Any, key: str) -> str:
        if not isinstance(name, str) or not LABEL_NAME.match(name):
            raise self.fail(key, f"{name!r} is not a valid label name (letters, digits and _, not starting with a digit)")
        if name.startswith("__"):
            raise self.fail(key, f"label names starting with '__' are reserved for Prometheus, got {name!r}")
        if name in ("le", "target"):
            why = "histogram buckets" if name == "le" else "the exporter's target label (sidecar mode)"
            raise self.fail(key, f"label name {name!r} is reserved for {why}; choose another")
        return name


def _metric(reader: Reader, value: Any, path: str) -> MetricSpec:
    data = reader.mapping(value, path, None)
    m = _MetricReader(reader, data, path)
    for key in ("name", "maps_to"):  # how messages name the metric
        if isinstance(data.get(key), str) and data[key]:
            m.label = data[key]
            break
    m.check_keys()
    m.engine = m.typed("engine", str, "jsonpath")
    if m.engine not in ("jsonpath", "cel"):
        raise m.fail("engine", f"{m.engine!r} is not one of jsonpath, cel")
    kind = m.typed("type", str, "value")
    if kind not in ("value", "object"):
        raise m.fail("type", f"{kind!r} is not one of value, object")
    valuetype = m.typed("valuetype", str, "untyped")
    if valuetype not in ("gauge", "counter", "untyped"):
        raise m.fail("valuetype", f"{valuetype!r} is not one of gauge, counter, untyped")
    name = m.typed("name", str, "")
    if name and not METRIC_NAME.match(name):
        raise m.fail("name", f"{name!r} is not a valid metric name (letters, digits, _ and :, not starting with a digit)")
    if name.startswith("pharos_"):
        raise m.fail("name", "names starting with 'pharos_' are reserved for the exporter's own metrics")
    select = _path(m, "path", required=True, kind=kind)
    children = None
    if data.get("children") is not None:
        if kind != "object":
            raise m.fail("children", "children is only for metrics of type object")
        children = _path(m, "children", required=True, kind="object")
    labels = _labels(m, children is not None)
    values, value_map, value_default = _values(m, kind, select)
    if not name and not all(spec.maps_to for spec in values):
        raise m.fail("name", "every metric needs a name (or maps_to naming a catalogue metric for each of its values)")
    timestamp = None
    for key in ("epochTimestamp", "epochtimestamp"):
        if data.get(key) is not None:
            timestamp = m.compile(m.typed(key, str, ""), key)
    return MetricSpec(
        path=path,
        name=name or values[0].maps_to,
        kind=kind,
        valuetype=valuetype,
        help=m.typed("help", str, "") or name or "",
        select=select,
        labels=labels,
        values=values,
        children=children,
        value_map=value_map,
        value_default=value_default,
        allow_missing=m.typed("allow_missing_key", bool, False),
        duplicates=_choice(m, "duplicates", ("drop", "sum"), "drop"),
        engine=m.engine,
        timestamp=timestamp,
    )


def _choice(m: _MetricReader, key: str, choices: tuple[str, ...], default: str) -> str:
    value = m.typed(key, str, default)
    if value not in choices:
        raise m.fail(key, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _path(m: _MetricReader, key: str, required: bool, kind: str):
    text = m.typed(key, str, "")
    if not text:
        raise m.fail(key, "a JSONPath is required, e.g. '{.counter}'" if m.engine == "jsonpath" else "a CEL expression is required, e.g. '.counter'")
    expr = m.compile(text, key)
    if m.engine == "jsonpath":
        if expr.static is not None:
            hint = f"; did you mean '{{{text[1:]}}}'?" if text.startswith("$.") else f"; write it as '{{.{text}}}'?" if METRIC_NAME.match(text) else ""
            raise m.fail(key, f"{text!r} has no {{...}} expression, so it selects nothing (json_exporter 0.3+ writes paths as '{{.counter}}'){hint}")
        if kind == "object" and expr.action is None:
            raise m.fail(key, f"the {key} of an object metric must be exactly one {{...}} expression, got {text!r}")
    return expr


def _labels(m: _MetricReader, has_children: bool) -> tuple[LabelSpec, ...]:
    specs: list[LabelSpec] = []
    for name, text in m.text_mapping("labels").items():
        specs.append(LabelSpec(m.label_name(name, f"labels.{name}"), "item", m.compile(text, f"labels.{name}")))
    parent = m.text_mapping("parent_labels")
    if parent and not has_children:
        raise m.fail("parent_labels", "parent_labels need children: they are read from the objects `path` selects, the series from their `children`")
    for name, text in parent.items():
        specs.append(LabelSpec(m.label_name(name, f"parent_labels.{name}"), "parent", m.compile(text, f"parent_labels.{name}")))
    for name, text in m.text_mapping("root_labels").items():
        specs.append(LabelSpec(m.label_name(name, f"root_labels.{name}"), "root", m.compile(text, f"root_labels.{name}")))
    for key, source in (("key_label", "key"), ("parent_key_label", "parent_key")):
        label = m.typed(key, str, "")
        if not label:
            continue
        if source == "parent_key" and not has_children:
            raise m.fail(key, "parent_key_label needs children; use key_label to label series with the keys `path` iterates")
        specs.append(LabelSpec(m.label_name(label, key), source))
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise m.fail("labels", f"label {spec.name!r} is defined twice (labels, parent_labels, root_labels, key_label and parent_key_label share one set of names)")
        seen.add(spec.name)
    tables = _label_maps(m, seen)
    return tuple(LabelSpec(spec.name, spec.source, spec.expr, tables.get(spec.name)) for spec in specs)


def _label_maps(m: _MetricReader, names: set[str]) -> dict[str, dict]:
    value = m.data.get("label_map")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise m.fail("label_map", "expected a mapping of label name to {source text: label value}")
    tables = {}
    for label, table in value.items():
        if label not in names:
            raise m.fail(f"label_map.{label}", f"{label!r} is not a label of this metric; its labels: {', '.join(sorted(names)) or 'none'}")
        if not isinstance(table, dict) or not table:
            raise m.fail(f"label_map.{label}", "expected a mapping of source text to label value (null drops the series)")
        out = {}
        for source, target in table.items():
            key = scalar_text(source)
            mapped = DROP if target is None else scalar_text(target)
            if key is None or (target is not None and mapped is None):
                raise m.fail(f"label_map.{label}.{source}", "expected text to text (or null to drop the series)")
            out[key] = mapped
        tables[label] = out
    return tables


def _values(m: _MetricReader, kind: str, select: Any) -> tuple[tuple[ValueSpec, ...], dict | None, float | None]:
    value_map, value_default = _value_map(m)
    maps_to = m.data.get("maps_to")
    scale = m.data.get("scale")
    if kind == "value":
        for key in ("values", "valueconverter"):
            if m.data.get(key) is not None:
                raise m.fail(key, f"{key} is only for metrics of type object")
        if maps_to is not None and not isinstance(maps_to, str):
            raise m.fail("maps_to", "a metric of type value maps to one catalogue metric: give its name")
        spec = ValueSpec("", select, f"{m.path}.path", None, _scale(m, scale, ""), maps_to or "")
        return (spec,), value_map, value_default
    texts = m.text_mapping("values")
    if not texts:
        raise m.fail("values", "a metric of type object needs values, e.g. {count: '{.count}'}")
    converters = _converters(m)
    if maps_to is not None and not isinstance(maps_to, dict):
        raise m.fail("maps_to", "for a metric of type object, maps_to is a mapping of value key to catalogue metric name")
    for key in maps_to or {}:
        if key not in texts:
            raise m.fail(f"maps_to.{key}", f"{key!r} is not a key of values ({', '.join(texts)})")
    if isinstance(scale, dict):
        for key in scale:
            if key not in texts:
                raise m.fail(f"scale.{key}", f"{key!r} is not a key of values ({', '.join(texts)})")
    specs = []
    for key, text in texts.items():
        if not METRIC_NAME.match(f"x_{key}"):
            raise m.fail(f"values.{key}", f"{key!r} cannot be part of a metric name (letters, digits, _ and :)")
        expr = m.compile(text, f"values.{key}")
        static = getattr(expr, "static", None)
        if static is not None and parse_go_number(static) is None and value_map is None:
            raise m.fail(f"values.{key}", f"the static value {static!r} is not a number")
        target = (maps_to or {}).get(key, "")
        if target and not isinstance(target, str):
            raise m.fail(f"maps_to.{key}", "expected a catalogue metric name")
        specs.append(ValueSpec(key, expr, f"{m.path}.values.{key}", converters.pop(text, None), _scale(m, scale, key), target))
    for unused in converters:
        log.warning("%s: %s.valueconverter: %r matches no value path of metric %r; it has no effect", m.reader.source, m.path, unused, m.label)
    return tuple(specs), value_map, value_default


def _value_map(m: _MetricReader) -> tuple[dict[str, float] | None, float | None]:
    value = m.data.get("value_map")
    if value is None:
        return None, None
    if not isinstance(value, dict) or not value:
        raise m.fail("value_map", "expected a mapping of text to number, e.g. {GREEN: 0, AMBER: 1, RED: 2, '*': 3}")
    table: dict[str, float] = {}
    default = None
    for source, target in value.items():
        key = scalar_text(source)
        if key is None or isinstance(target, bool) or not isinstance(target, (int, float)):
            raise m.fail(f"value_map.{source}", f"expected text mapped to a number, got {target!r}")
        if key == WILDCARD:
            default = float(target)
        else:
            table[key.lower()] = float(target)  # matched case-insensitively, as json_exporter's valueconverter
    return table, default


def _converters(m: _MetricReader) -> dict[str, dict[str, float]]:
    value = m.data.get("valueconverter")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise m.fail("valueconverter", "expected a mapping of value path to {text: number}")
    out = {}
    for path, table in value.items():
        if not isinstance(table, dict):
            raise m.fail(f"valueconverter.{path}", "expected a mapping of text to number")
        converted = {}
        for source, target in table.items():
            number = parse_go_number(scalar_text(target) or "")
            if scalar_text(source) is None or number is None:
                raise m.fail(f"valueconverter.{path}.{source}", f"expected text mapped to a number, got {target!r}")
            converted[scalar_text(source).lower()] = number
        out[str(path)] = converted
    return out


def _scale(m: _MetricReader, scale: Any, key: str) -> float:
    if scale is None:
        return 1.0
    if isinstance(scale, dict):
        scale = scale.get(key, 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise m.fail("scale", f"expected a number (or a mapping of value key to number), got {scale!r}")
    return float(scale)
