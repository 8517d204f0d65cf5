"""The Prometheus text format (0.0.4), written fast for the families a `Reading` yields.

prometheus_client's `generate_latest` spends most of a scrape's CPU on work that is the same
for every sample of a series: validating and escaping label names, sorting label pairs, escaping
values. `SeriesLabels` does that once per series (a histogram series has many lines), so each
line is one string format. The output is byte for byte what `generate_latest` writes
(tests/test_exposition.py compares them); families that did not come from a Reading still go
through `generate_latest`.
"""

from __future__ import annotations

import functools
import logging
from typing import Iterable, Sequence

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric as Family
from prometheus_client.openmetrics.exposition import escape_label_name, escape_metric_name
from prometheus_client.utils import floatToGoString

log = logging.getLogger("pharos.exporter")

# Names generate_latest moves into families of their own (OpenMetrics-only samples).
_OPENMETRICS_SUFFIXES = ("_created", "_gsum", "_gcount")


def format_value(value: float) -> str:
    """A sample value as generate_latest writes it (Go's notation: 1e+06, +Inf, NaN).

    Counts are whole numbers, and for those below a million (above -1e15) Python's repr,
    which floatToGoString returns as it is there, is the integer and ".0": formatting an int is
    cheaper than the shortest-repr search for a float. Zero goes the long way to keep "-0.0".
    """
    if value.__class__ is float and -1e15 < value < 1e6 and value != 0 and value.is_integer():
        return f"{int(value)}.0"
    return floatToGoString(value)


def label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def header(name: str, documentation: str, kind: str) -> str:
    """The HELP and TYPE lines of a family, as generate_latest writes them for the types a
    Reading holds (a counter family's name lacks the `_total` its samples have)."""
    if kind == "counter":
        name += "_total"
    elif kind == "unknown":  # json mappings' untyped metrics (prometheus_client stores them so)
        kind = "untyped"
    name = escape_metric_name(name)
    documentation = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {documentation}\n# TYPE {name} {kind}\n"


class SeriesLabels:
    """The label names of a family, prepared once: sorted as the text format sorts them.

    `pairs(values)` gives the `{...}` part of a line for values in the order of `names`;
    `histogram_parts(values)` also gives the parts before and after a bucket's `le="..."`.
    """

    def __init__(self, names: Sequence[str]):
        # A name given twice keeps its last value, as in the dict of a prometheus_client Sample.
        last = {name: index for index, name in enumerate(names)}
        self.order = [last[name] for name in sorted(last)]
        self.prefixes = [escape_label_name(name) + '="' for name in sorted(last)]
        self.le_position = sum(1 for name in last if name < "le")
        self.has_le = "le" in last

    def pairs(self, values: Sequence[str]) -> str:
        key = (self, tuple(values))
        text = _pairs_kept.get(key)
        if text is None:
            quoted = self._quoted(values)
            text = _keep(_pairs_kept, key, "{" + ",".join(quoted) + "}" if quoted else "")
        return text

    def histogram_parts(self, values: Sequence[str]) -> tuple[str, str, str]:
        """`('{a="x",z="y"}', '{a="x",', ',z="y"}')`: the labels of `_count` and `_sum`, and
        the parts of a bucket's labels before and after its `le="..."`."""
        if self.has_le:
            raise ValueError("a histogram's labels may not include 'le', the bucket label")
        key = (self, tuple(values))
        parts = _histogram_kept.get(key)
        if parts is None:
            quoted = self._quoted(values)
            before, after = quoted[: self.le_position], quoted[self.le_position :]
            pairs = "{" + ",".join(quoted) + "}" if quoted else ""
            parts = _keep(_histogram_kept, key, (pairs, "{" + "".join(pair + "," for pair in before), "".join("," + pair for pair in after) + "}"))
        return parts

    def _quoted(self, values: Sequence[str]) -> list[str]:
        return [prefix + label_value(values[index]) + '"' for prefix, index in zip(self.prefixes, self.order)]


# Label sets come back scrape after scrape (and from every probed target of one kind): their text
# is kept instead of being quoted and escaped again, and the strings made again, for every series
# of every scrape. Bounded (a few MB at most): emptied when full.
TEXT_KEPT = 4096
_pairs_kept: dict = {}
_histogram_kept: dict = {}


def _keep(kept: dict, key, text):
    if len(kept) >= TEXT_KEPT:
        kept.clear()
    kept[key] = text
    return text


@functools.lru_cache(maxsize=256)
def series_labels(names: tuple[str, ...]) -> SeriesLabels:
    """SeriesLabels for `names`, made once: families are rebuilt every scrape, their label names
    are not."""
    return SeriesLabels(names)


class _Collection:
    def __init__(self, families):
        self._families = families

    def collect(self):
        return self._families


def render(families: Iterable[Family]) -> bytes:
    """The text exposition of `families`; families of the same name (several targets report the
    same metrics) share one HELP/TYPE header, since an exposition may not repeat it.

    Never raises for a family it cannot write (a label value UTF-8 cannot encode, say): that
    family is left out and logged, the others of its name and the rest of the page stay."""
    groups: dict[str, list[Family]] = {}
    for family in families:
        groups.setdefault(family.name, []).append(family)
    parts: list[bytes] = []
    for group in groups.values():
        try:
            parts.append(_group(group))
        except Exception:  # noqa: BLE001 - find the family at fault, keep the others
            parts.append(_without_failing(group))
    return b"".join(parts)


def _group(group: list[Family]) -> bytes:
    first = group[0]
    # Reading's families write their own lines (a `sample_lines()` method); others cannot.
    if all(hasattr(family, "sample_lines") for family in group):
        lines = [header(first.name, first.documentation, first.type)]
        lines.extend(family.sample_lines() for family in group)
        return "".join(lines).encode("utf-8")
    return _generic(group)


def _without_failing(group: list[Family]) -> bytes:
    kept = []
    for family in group:
        try:
            _group([family])
            kept.append(family)
        except Exception as error:  # noqa: BLE001
            log.error("left out a family of %s that cannot be rendered (a bug: please report it): %s: %s", family.name, type(error).__name__, error)
    try:
        return _group(kept) if kept else b""
    except Exception as error:  # noqa: BLE001 - fine alone, not together: leave the name out
        log.error("left out %s, which cannot be rendered: %s: %s", group[0].name, type(error).__name__, error)
        return b""


def _generic(group: list[Family]) -> bytes:
    first = group[0]
    if len(group) == 1:
        return generate_latest(_Collection(group))
    combined = Family(first.name, first.documentation, first.type, first.unit)
    combined.samples = [sample for family in group for sample in family.samples]
    return generate_latest(_Collection([combined]))


# The samples a plain gauge or counter has (a counter's `_created` goes through generate_latest).
_PLAIN_SAMPLES = {"gauge": "", "counter": "_total"}


def render_registry(registry) -> bytes:
    """generate_latest(registry), byte for byte, faster for its gauges and counters.

    The exporter's own metrics are on every /metrics, and generate_latest validates and escapes
    every name of every sample on every call (0.22 -> 0.17 ms per /metrics on the bench machine).
    Other families (histograms, samples with timestamps, `_created`) still go through it."""
    parts = []
    for family in registry.collect():
        text = _plain_family(family)
        parts.append(text if text is not None else generate_latest(_Collection([family])).decode("utf-8"))
    return "".join(parts).encode("utf-8")


def _plain_family(family: Family) -> str | None:
    suffix = _PLAIN_SAMPLES.get(family.type)
    if suffix is None:
        return None
    name = family.name + suffix
    lines = [header(family.name, family.documentation, family.type)]
    for sample in family.samples:
        if sample.name != name or sample.timestamp is not None:
            return None
        labels = sample.labels
        pairs = "{" + ",".join(_label_prefix(key) + label_value(labels[key]) + '"' for key in sorted(labels)) + "}" if labels else ""
        lines.append(f"{_metric_name(name)}{pairs} {format_value(sample.value)}\n")
    return "".join(lines)


_label_prefix = functools.lru_cache(maxsize=256)(lambda name: escape_label_name(name) + '="')
_metric_name = functools.lru_cache(maxsize=256)(escape_metric_name)


def check_name(family_name: str, sample_names: Iterable[str]) -> None:
    """Reading families write sample lines themselves: refuse names generate_latest would move
    or escape, so that the fast path can never differ from it."""
    for name in sample_names:
        if escape_metric_name(name) != name:
            raise ValueError(f"metric name {name!r} is not valid in the text format")
        if any(name == family_name + suffix for suffix in _OPENMETRICS_SUFFIXES):
            raise ValueError(f"sample name {name!r} would be moved to a family of its own")
