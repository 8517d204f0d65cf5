"""Mappings turned into extractors, run once per scrape over the decoded document.

Everything that can be decided from the configuration is decided at load: metric objects, label
order, getters for simple paths, value conversion tables. A scrape then walks the document once
per metric with plain Python calls, and nothing it meets raises: a value that is missing, not a
number, a duplicate label set or over the series limit is dropped and counted by reason, and the
rest of the scrape goes on (json_exporter fails the whole probe on a duplicate).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .. import catalogue as c
from ..reading import Reading
from . import cel
from .jsonpath import MISSING
from .schema import DROP, WILDCARD, LabelSpec, MetricSpec, ValueSpec
from .schema_reader import Reader
from .values import NAN, to_number, to_text, unquote

log = logging.getLogger("pharos.exporter")

# Why a sample was dropped: a bounded set, exposed as the `reason` label of the module metrics.
MISSING_VALUE = "missing"  # the path selects nothing (not counted with allow_missing_key)
NOT_A_NUMBER = "not_a_number"  # text, an object, or several values where one number was expected
DUPLICATE = "duplicate"  # a label set this metric already has in this scrape (the first one is kept)
EXPRESSION_ERROR = "expression_error"  # a CEL expression failed for another reason than a missing key
LIMIT = "limit"  # the module's max_series was reached
DROP_REASONS = (MISSING_VALUE, NOT_A_NUMBER, DUPLICATE, EXPRESSION_ERROR, LIMIT)

_DROP_SERIES: Any = object()  # a label_map said to leave this series out
_TYPES = {"gauge": c.GAUGE, "counter": c.COUNTER, "untyped": "untyped"}
# Catalogue labels whose values dashboards and alerts rely on.
_CATALOGUE_LABEL_VALUES = {c.Label.GC_KIND: c.GC_KINDS}


class Scrape:
    """The state of one module over one scrape: what was written, what was dropped."""

    __slots__ = ("reading", "seen", "series", "limit", "dropped", "examples")

    def __init__(self, reading: Reading, slots: int, limit: int):
        self.reading = reading
        self.seen: list[set] = [set() for _ in range(slots)]
        self.series = 0
        self.limit = limit
        self.dropped: dict[str, int] = {}
        self.examples: dict[tuple[str, str], str] = {}  # (metric, reason) -> the first such drop

    def drop(self, metric: str, reason: str, detail: Callable[[], str], count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count
        key = (metric, reason)
        if key not in self.examples:
            self.examples[key] = detail()


@dataclass
class _Output:
    """One metric family a mapping writes: where, and how it reads a value."""

    metric: c.Metric
    slot: int
    spec: ValueSpec
    convert: Callable[[Any], Any]  # a selected JSON value -> float, or a drop reason
    read: Callable[[Any], Any]  # an item -> float, or a drop reason
    summed: bool  # duplicates: sum
    allow_missing: bool  # allow_missing_key: a missing value is skipped without a count

    def write(self, scrape: Scrape, labels: tuple, value: Any) -> None:
        if value.__class__ is not float:
            if value == MISSING_VALUE and self.allow_missing:
                return
            scrape.drop(self.metric.name, value, lambda: _describe(value, self.spec, labels))
            return
        seen = scrape.seen[self.slot]
        if labels in seen:
            if self.summed:
                scrape.reading.add(self.metric, value, labels)
                return
            scrape.drop(self.metric.name, DUPLICATE, lambda: f"labels {dict(zip(self.metric.labels, labels))} appear more than once; the first is kept")
            return
        if scrape.series >= scrape.limit:
            scrape.drop(self.metric.name, LIMIT, lambda: f"the module's max_series ({scrape.limit}) was reached")
            return
        seen.add(labels)
        scrape.series += 1
        if self.summed:
            scrape.reading.add(self.metric, value, labels)
        else:
            scrape.reading.set(self.metric, value, labels)


def _describe(reason: str, spec: ValueSpec, labels: tuple) -> str:
    where = f"{spec.expr.source!r} ({spec.path})"
    if reason == MISSING_VALUE:
        return f"{where} selects nothing" + (f" for labels {labels}" if labels else "")
    if reason == NOT_A_NUMBER:
        return f"{where} is not a single number" + (f" for labels {labels}" if labels else "")
    return f"{where} failed to evaluate" + (f" for labels {labels}" if labels else "")


@dataclass
class Extractor:
    """One configured metric entry, ready to run."""

    spec: MetricSpec
    outputs: list[_Output]
    # (item, parent, key, parent_key, document) -> the label values, in the outputs' label order;
    # `item_labels(item)` instead when every label is read from the item (the common case).
    labels: Callable[..., tuple]
    item_labels: Callable[[Any], tuple] | None
    may_drop_series: bool  # some label_map maps a value to null
    run: Callable[[Any, Scrape], None] = field(init=False)

    def __post_init__(self) -> None:
        self.run = self._run_value if self.spec.kind == "value" else self._run_object
        sources = {label.source for label in self.spec.labels}
        self._by_key = "key" in sources
        self._by_parent_key = "parent_key" in sources
        self._simple = self.item_labels is not None and self.spec.children is None and not self._by_key

    # --- type: value -------------------------------------------------------------------------
    def _run_value(self, document: Any, scrape: Scrape) -> None:
        spec, output = self.spec, self.outputs[0]
        try:
            results = spec.select.results(document)
        except cel.CelEvalError as error:
            problem = f"{spec.path}.path: {error}"
            scrape.drop(output.metric.name, EXPRESSION_ERROR, lambda: problem)
            return
        if not self._by_key:
            labels = self._labels(document, None, None, None, document)  # a value metric's labels read the document
            if labels is None:
                return
            if not results:
                output.write(scrape, labels, MISSING_VALUE)
            elif len(results) > 1:
                output.write(scrape, labels, NOT_A_NUMBER)
            else:
                output.write(scrape, labels, output.convert(results[0]))
            return
        if not results:
            output.write(scrape, (), MISSING_VALUE)
        for key, value in _entries(results):
            labels = self._labels(document, None, key, None, document)
            if labels is not None:
                output.write(scrape, labels, output.convert(value))

    # --- type: object ------------------------------------------------------------------------
    def _run_object(self, document: Any, scrape: Scrape) -> None:
        spec = self.spec
        try:
            items = self._items(document)
        except cel.CelEvalError as error:
            problem = f"{spec.path}: {error}"
            for output in self.outputs:
                scrape.drop(output.metric.name, EXPRESSION_ERROR, lambda: problem)
            return
        if not items:
            for output in self.outputs:
                output.write(scrape, (), MISSING_VALUE)
            return
        # The common case, a new valid sample, is written here; drops, duplicates and sums go
        # through _Output.write. This loop runs once per series and scrape.
        reading_set = scrape.reading.set
        limit = scrape.limit
        outputs = [(output, scrape.seen[output.slot], output.metric, output.read, not output.summed) for output in self.outputs]
        item_labels, all_labels, may_drop = self.item_labels, self.labels, self.may_drop_series
        for entry in items:
            labels = item_labels(entry) if self._simple else all_labels(*entry, document)
            if may_drop and _DROP_SERIES in labels:
                continue
            item = entry if self._simple else entry[0]
            for output, seen, metric, read, plain in outputs:
                value = read(item)
                if plain and value.__class__ is float and labels not in seen and scrape.series < limit:
                    seen.add(labels)
                    scrape.series += 1
                    reading_set(metric, value, labels)
                else:
                    output.write(scrape, labels, value)

    def _items(self, document: Any) -> list:
        """The objects the series come from: plain items in the simple case, else tuples of
        (item, parent, key, parent_key)."""
        spec = self.spec
        parents = spec.select.items(document)
        if self._simple:
            return parents
        if spec.children is None:
            if self._by_key:
                return [(value, None, key, None) for key, value in _entries(parents)]
            return [(item, None, None, None) for item in parents]
        out = []
        for parent_key, parent in (_entries(parents) if self._by_parent_key else ((None, parent) for parent in parents)):
            children = spec.children.items(parent)
            if self._by_key:
                out.extend((value, parent, key, parent_key) for key, value in _entries(children))
            else:
                out.extend((child, parent, None, parent_key) for child in children)
        return out

    def _labels(self, item, parent, key, parent_key, document) -> tuple | None:
        labels = self.item_labels(item) if self.item_labels is not None else self.labels(item, parent, key, parent_key, document)
        if self.may_drop_series and _DROP_SERIES in labels:
            return None
        return labels


def _entries(results: Iterable[Any]) -> Iterable[tuple[str, Any]]:
    """(key, value) of the objects and arrays among `results`: what key_label iterates over."""
    for result in results:
        if result.__class__ is dict:
            yield from result.items()
        elif result.__class__ is list:
            yield from ((str(index), value) for index, value in enumerate(result))
        else:
            yield "", result


# --- building ----------------------------------------------------------------------------------
class Builder:
    """Builds the extractors of one module, giving each distinct metric one slot and checking
    that names, types and labels agree across the module."""

    def __init__(self, reader: Reader):
        self.reader = reader
        self.metrics: dict[str, tuple[c.Metric, str]] = {}  # family name -> (metric, where)
        self.slots: dict[c.Metric, int] = {}

    def extractor(self, spec: MetricSpec) -> Extractor:
        # Catalogue metrics fix their label order; the entry's own metrics follow it, so that one
        # tuple of label values serves every value of an object.
        catalogue = [self._catalogue_metric(spec, value) for value in spec.values if value.maps_to]
        order = catalogue[0].labels if catalogue else tuple(label.name for label in spec.labels)
        outputs = []
        for value in spec.values:
            metric = self._catalogue_metric(spec, value) if value.maps_to else self._own_metric(spec, value, order)
            if metric.labels != order:
                raise self.reader.fail(f"{spec.path}.maps_to", f"metric {spec.name!r}: {metric.name} orders its labels {metric.labels}, "
                                       f"{catalogue[0].name} {order}; map them in separate entries")  # fmt: skip
            metric = self._register(metric, f"{spec.path}.maps_to.{value.key}" if value.maps_to and value.key else spec.path)
            outputs.append(self._output(spec, value, metric))
        by_name = {label.name: label for label in spec.labels}
        functions = [_label_function(by_name[name]) for name in order]
        may_drop = any(label.table and DROP in label.table.values() for label in spec.labels)
        return Extractor(spec, outputs, _context_labels(functions), _item_labels(functions), may_drop)

    def _own_metric(self, spec: MetricSpec, value: ValueSpec, labels: tuple[str, ...]) -> c.Metric:
        name = spec.name if spec.kind == "value" else f"{spec.name}_{value.key}"
        if spec.valuetype == "counter" and not name.endswith("_total"):
            # prometheus_client writes every counter as NAME_total, so the samples are named so too.
            name += "_total"
        catalogue_names = {metric.name for metric in c.all_metrics()} | {metric.family for metric in c.all_metrics()}
        if name in catalogue_names or name.removesuffix("_total") in catalogue_names:
            raise self.reader.fail(
                f"{spec.path}.name",
                f"metric {spec.name!r}: {name!r} is a Pharos catalogue name; map onto it with `maps_to: {name}` so its labels are checked",
            )
        return c.Metric(name, _TYPES[spec.valuetype], spec.help or name, labels)

    def _catalogue_metric(self, spec: MetricSpec, value: ValueSpec) -> c.Metric:
        where = f"{spec.path}.maps_to" + (f".{value.key}" if value.key else "")
        try:
            metric = c.by_name(value.maps_to)
        except KeyError:
            known = ", ".join(m.name for m in c.all_metrics() if m.type != c.HISTOGRAM and not m.name.startswith("pharos_"))
            raise self.reader.fail(where, f"metric {spec.name!r}: no catalogue metric {value.maps_to!r}; known: {known}") from None
        if metric.type == c.HISTOGRAM or metric.name.startswith("pharos_"):
            raise self.reader.fail(where, f"metric {spec.name!r}: {metric.name} cannot be mapped onto (histograms and the exporter's own metrics are not)")
        if spec.valuetype != "untyped" and _TYPES[spec.valuetype] != metric.type:
            raise self.reader.fail(f"{spec.path}.valuetype", f"metric {spec.name!r}: {metric.name} is a {metric.type}, not a {spec.valuetype}")
        given = {label.name for label in spec.labels}
        if given != set(metric.labels):
            wanted = ", ".join(metric.labels) or "no labels"
            raise self.reader.fail(f"{spec.path}.labels", f"metric {spec.name!r}: {metric.name} takes exactly these labels: {wanted}; got {', '.join(sorted(given)) or 'none'}")
        for label in spec.labels:
            allowed = _CATALOGUE_LABEL_VALUES.get(label.name)
            if allowed is not None:
                self._check_label_values(spec, metric, label, allowed)
        return metric

    def _check_label_values(self, spec: MetricSpec, metric: c.Metric, label: LabelSpec, allowed: tuple[str, ...]) -> None:
        where = f"{spec.path}.labels.{label.name}"
        options = " or ".join(allowed)
        static = getattr(label.expr, "static", None) if label.expr is not None else None
        if label.table is None:
            if static is not None and static in allowed:
                return
            problem = f"got {static!r}" if static is not None else "its values come from the document"
            raise self.reader.fail(where, f"metric {spec.name!r}: label {label.name!r} of {metric.name} must be {options}; {problem}. Give a static value, or a label_map ending in \"'*': null\"")
        targets = [target for target in label.table.values() if target is not DROP]
        wrong = [target for target in targets if target not in allowed]
        if wrong or WILDCARD not in label.table and static is None:
            problem = f"label_map gives {wrong[0]!r}" if wrong else "source values missing from its label_map would pass through unchanged"
            raise self.reader.fail(f"{spec.path}.label_map.{label.name}", f"metric {spec.name!r}: label {label.name!r} of {metric.name} must be {options}; {problem} (add \"'*': null\" to drop the others)")

    def _register(self, metric: c.Metric, where: str) -> c.Metric:
        known = self.metrics.get(metric.family)
        if known is None:
            self.metrics[metric.family] = (metric, where)
            self.slots[metric] = len(self.slots)
            return metric
        existing, first = known
        if existing != metric:
            raise self.reader.fail(
                where,
                f"{metric.name!r} is also produced by {first} with another type, help or label set; "
                "one metric must have one definition (give the entries the same help, valuetype and labels, or rename one)",
            )
        return existing

    def _output(self, spec: MetricSpec, value: ValueSpec, metric: c.Metric) -> _Output:
        convert = _converter(value, spec)
        return _Output(metric, self.slots[metric], value, convert, _reader(value, convert), spec.duplicates == "sum", spec.allow_missing)


def _converter(value: ValueSpec, spec: MetricSpec) -> Callable[[Any], Any]:
    """A selected JSON value -> a float (scaled), or a drop reason."""
    table: dict[str, float] = {**(spec.value_map or {}), **(value.converter or {})}
    default = spec.value_default
    scale = value.scale

    def from_text(text: str):
        if table:
            mapped = table.get(text.lower())
            if mapped is not None:
                return mapped
        number = to_number(text)
        if number is None:
            return NOT_A_NUMBER if default is None else default
        return number

    def convert(raw):
        kind = raw.__class__
        if kind is float:
            number = raw
        elif kind is int:
            try:
                number = float(raw)
            except OverflowError:
                return NOT_A_NUMBER
        elif kind is str:
            number = from_text(raw)
            if number.__class__ is not float:
                return number
        elif kind is bool:
            if table and ("true" in table or "false" in table):
                number = table.get("true" if raw else "false", 1.0 if raw else 0.0)
            else:
                number = 1.0 if raw else 0.0
        elif raw is None:
            number = NAN
        else:
            return NOT_A_NUMBER
        return number * scale if scale != 1.0 else number

    return convert


def _reader(value: ValueSpec, convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An item -> a float, or a drop reason."""
    expr = value.expr
    static = getattr(expr, "static", None)
    if static is not None:
        constant = convert(static)
        return lambda item: constant
    get = getattr(expr, "get", None)
    if get is not None:
        def read_one(item, get=get, missing=MISSING):
            raw = get(item)
            return MISSING_VALUE if raw is missing else convert(raw)

        return read_one

    def read(item):
        try:
            results = expr.results(item)
        except cel.CelEvalError:
            return EXPRESSION_ERROR
        if not results:
            return MISSING_VALUE
        return convert(results[0]) if len(results) == 1 else NOT_A_NUMBER

    return read


# Where a label reads from, as a position in (item, parent, key, parent_key, document).
_POSITIONS = {"item": 0, "parent": 1, "key": 2, "parent_key": 3, "root": 4}


def _label_function(label: LabelSpec) -> tuple[int, Callable[[Any], Any]]:
    """(position, node -> the label's text); a label that selects nothing is empty, as in
    json_exporter; a label_map may turn the text into _DROP_SERIES."""
    position = _POSITIONS[label.source]
    base = (lambda key: key) if label.expr is None else _text_function(label.expr)
    table = label.table
    if not table:
        return position, base
    fallback = table.get(WILDCARD, MISSING)

    def mapped(node):
        text = base(node)
        target = table.get(text, MISSING)
        if target is MISSING:
            target = text if fallback is MISSING else fallback
        return _DROP_SERIES if target is DROP else target

    return position, mapped


def _item_labels(functions: list[tuple[int, Callable]]) -> Callable[[Any], tuple] | None:
    """item -> label values, when every label reads the item; unrolled for the usual counts."""
    if any(position != 0 for position, _ in functions):
        return None
    texts = [function for _, function in functions]
    if not texts:
        return lambda item: ()
    if len(texts) == 1:
        (first,) = texts
        return lambda item: (first(item),)
    if len(texts) == 2:
        first, second = texts
        return lambda item: (first(item), second(item))
    if len(texts) == 3:
        first, second, third = texts
        return lambda item: (first(item), second(item), third(item))
    return lambda item: tuple([text(item) for text in texts])


def _context_labels(functions: list[tuple[int, Callable]]) -> Callable[..., tuple]:
    """(item, parent, key, parent_key, document) -> label values."""
    return lambda *context: tuple([function(context[position]) for position, function in functions])


def _text_function(expr: Any) -> Callable[[Any], str]:
    static = getattr(expr, "static", None)
    if static is not None:
        return lambda node: static
    get = getattr(expr, "get", None)
    if get is not None:
        def text_one(node, get=get, missing=MISSING):
            raw = get(node)
            if raw.__class__ is str:
                return unquote(raw) if raw[:1] in "\"'" else raw
            return "" if raw is missing else to_text(raw)

        return text_one

    def text(node):
        try:
            value = expr.text(node)
        except cel.CelEvalError:
            return ""
        return "" if value is None else value

    return text
