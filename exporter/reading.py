"""A `Reading`: the samples one scrape of one target produced, in the catalogue's vocabulary.

Profiles fill a Reading through its helpers (`gc`, `memory`, `http`, ...) or the generic `set`,
never by naming a metric themselves. The collector turns Readings into prometheus_client metric
families. Values are checked here, so every profile rejects a wrong type the same way: a
`DocumentError` that names the JSON path.

A Reading also bounds what a target's document can make of it (config `limits`): every label value
of a new series is made encodable (lone surrogates become U+FFFD) and at most
`max_label_value_length` characters long, and at most `max_series_per_target` series are kept.
What was rewritten or left out is counted by reason (`limited`, exported as
`pharos_scrape_limited_series`). The exporter's own metrics (catalogue.OWN_GROUPS) are exempt.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from typing import Any, Callable, Iterable, Mapping

from prometheus_client.metrics_core import Metric as Family
from prometheus_client.samples import Sample

from . import catalogue as c
from . import exposition
from .config import Limits
from .exposition import format_value
from .routes import template

SERIES_LIMIT, LABEL_TOO_LONG, LABEL_NOT_UTF8 = c.LIMIT_REASONS
DEFAULT_LIMITS = Limits()
# The only code points a Python str holds that UTF-8 cannot encode: halves of surrogate pairs.
_SURROGATE = re.compile("[\ud800-\udfff]")
_HASH_LETTERS = str.maketrans("0123456789", "ghijklmnop")


class DocumentError(ValueError):
    """The target's JSON does not have the shape the profile expects."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def number(value: Any, path: str) -> float:
    """`value` as a float, or DocumentError naming `path`. Booleans count as 1/0."""
    kind = value.__class__  # exact types first: this runs for every number of every document
    if kind is float:
        return value
    if kind is int:
        return float(value)
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    raise DocumentError(path, f"expected a number, got {type(value).__name__} {_preview(value)}")


def text(value: Any, path: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, "g") if isinstance(value, float) else str(value)
    raise DocumentError(path, f"expected a string, got {type(value).__name__} {_preview(value)}")


def mapping(value: Any, path: str) -> Mapping[str, Any]:
    if isinstance(value, dict):
        return value
    raise DocumentError(path, f"expected an object, got {type(value).__name__} {_preview(value)}")


def sequence(value: Any, path: str) -> list:
    if isinstance(value, list):
        return value
    raise DocumentError(path, f"expected an array, got {type(value).__name__} {_preview(value)}")


def status_code(value: Any, path: str) -> str:
    """An HTTP status code as label text: an integer from 100 to 599 (JSON Schema's integers
    include 404.0) or such a code written as three digits ("404"); else DocumentError."""
    kind = value.__class__
    if kind is int:
        code = value
    elif kind is float and value.is_integer():
        code = int(value)
    elif kind is str and len(value) == 3 and value.isascii() and value.isdigit():
        code = int(value)
    else:
        raise DocumentError(path, f"expected an HTTP status code (an integer from 100 to 599), got {type(value).__name__} {_preview(value)}")
    if not 100 <= code <= 599:
        raise DocumentError(path, f"expected an HTTP status code (an integer from 100 to 599), got {code}")
    return str(code)


def shorten(value: str, length: int) -> str:
    """`value` cut to `length` characters: its start, "…" and 8 letters (a-p) of a hash of the
    whole value, so that values alike in their start stay apart and keep their series from
    scrape to scrape. Letters, not digits: route templating must not take the hash for an ID."""
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
    return value[: length - 9] + "…" + digest.translate(_HASH_LETTERS)


def _preview(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


class _Histogram:
    __slots__ = ("count", "sum", "buckets")

    def __init__(self) -> None:
        self.count = 0.0
        self.sum: float | None = 0.0
        self.buckets: dict[float, float] = {}


RouteMapper = Callable[[str], str]


class Reading:
    """Samples for the metrics of the catalogue, keyed by metric and label values."""

    def __init__(self, route_mapper: RouteMapper | None = None, limits: Limits = DEFAULT_LIMITS):
        self._scalars: dict[c.Metric, dict[tuple[str, ...], float]] = {}
        self._histograms: dict[c.Metric, dict[tuple[str, ...], _Histogram]] = {}
        self._route = route_mapper if route_mapper is not None else (lambda route: route)
        self._max_series = limits.max_series_per_target
        self._max_length = limits.max_label_value_length
        self._series = 0  # series of the target's document kept so far
        self.limited = dict.fromkeys(c.LIMIT_REASONS, 0)  # series rewritten or left out, by reason

    # --- generic -----------------------------------------------------------------------------
    def set(self, metric: c.Metric, value: float, labels: tuple[str, ...] = ()) -> None:
        """Set one sample; `labels` are values in the order of `metric.labels`."""
        series = self._scalars.get(metric)
        if series is None:
            series = self._scalars[metric] = {}
        if labels not in series:
            labels = self._admit(metric, series, labels, 1)
            if labels is None:
                return
        series[labels] = value

    def add(self, metric: c.Metric, value: float, labels: tuple[str, ...] = ()) -> None:
        """Add to one sample (several source entries may map onto one series)."""
        series = self._scalars.get(metric)
        if series is None:
            series = self._scalars[metric] = {}
        current = series.get(labels)
        if current is None:
            labels = self._admit(metric, series, labels, 1)
            if labels is None:
                return
            current = series.get(labels, 0.0)
        series[labels] = current + value

    def observe(
        self,
        metric: c.Metric,
        labels: tuple[str, ...],
        count: float,
        total: float | None,
        buckets: Iterable[tuple[float, float]] = (),
        rewritten: tuple[str, ...] = (),
    ) -> None:
        """Merge cumulative histogram data (count, sum and `(upper bound, cumulative count)`).
        `rewritten`: reasons for which the caller already rewrote a label value."""
        series = self._histograms.get(metric)
        if series is None:
            series = self._histograms[metric] = {}
        histogram = series.get(labels)
        if histogram is None:
            if not isinstance(buckets, (list, tuple)):
                buckets = list(buckets)
            # A histogram is a series per finite bound, le="+Inf", _count and (if known) _sum.
            lines = 2 + (total is not None) + sum(1 for bound, _ in buckets if bound != math.inf)
            labels = self._admit(metric, series, labels, lines, rewritten)
            if labels is None:
                return
            histogram = series.get(labels)
            if histogram is None:
                histogram = series[labels] = _Histogram()
        histogram.count += count
        if total is None or histogram.sum is None:
            histogram.sum = None
        else:
            histogram.sum += total
        known = histogram.buckets
        for bound, cumulative in buckets:
            known[bound] = known.get(bound, 0.0) + cumulative

    def limit_series(self, limit: int) -> None:
        """Replace the target's series limit with a more specific one (a json mapping module's
        `max_series`). Call it before the first write."""
        self._max_series = limit

    def _admit(self, metric: c.Metric, series: dict, labels: tuple[str, ...], lines: int, rewritten: tuple[str, ...] = ()) -> tuple[str, ...] | None:
        """The labels under which a series not yet in `series` is kept (its values rewritten
        where they must be), or None when the target has used up its series. `lines`: the
        exposition lines the series makes, the unit of the limit and of the counts."""
        if metric.group in c.OWN_GROUPS:
            return labels
        # One C-level pass over all values first (the common case: short ASCII values); the
        # per-value work only when something may need rewriting.
        joined = "".join(labels)
        if not joined.isascii() or len(joined) > self._max_length:
            if not joined.isascii() or any(len(value) > self._max_length for value in labels):
                labels, more = self._clean(labels)
                if labels in series:  # rewritten onto a series already kept: it merges there
                    return labels
                rewritten += more
        if self._series + lines > self._max_series:
            self.limited[SERIES_LIMIT] += lines
            return None
        self._series += lines
        if rewritten:
            for reason in set(rewritten):
                self.limited[reason] += lines
        return labels

    def _clean(self, labels: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Label values made encodable and short enough; the reasons for which any changed."""
        limit, values, reasons = self._max_length, [], []
        for value in labels:
            if not value.isascii() and _SURROGATE.search(value):
                value = _SURROGATE.sub("\ufffd", value)
                reasons.append(LABEL_NOT_UTF8)
            if len(value) > limit:
                value = shorten(value, limit)
                reasons.append(LABEL_TOO_LONG)
            values.append(value)
        return tuple(values), tuple(reasons)

    def value(self, metric: c.Metric, labels: tuple[str, ...] = ()) -> float | None:
        return self._scalars.get(metric, {}).get(labels)

    def __contains__(self, metric: c.Metric) -> bool:
        return metric in self._scalars or metric in self._histograms

    # --- the vocabulary ----------------------------------------------------------------------
    def gc(self, kind: str, collections: float | None = None, seconds: float | None = None) -> None:
        if collections is not None:
            self.add(c.GC_COLLECTIONS, collections, (kind,))
        if seconds is not None:
            self.add(c.GC_DURATION, seconds, (kind,))

    def memory(
        self,
        space: str,
        size: float | None = None,
        free: float | None = None,
        limit: float | None = None,
    ) -> None:
        if size is not None:
            self.set(c.MEMORY_SPACE, size, (space,))
        if free is not None:
            self.set(c.MEMORY_FREE, free, (space,))
        if limit:  # 0 means "no limit" in the runtimes we know
            self.set(c.MEMORY_LIMIT, limit, (space,))

    def http(
        self,
        method: str,
        route: str,
        status: str,
        count: float,
        duration_seconds: float | None = None,
        response_bytes: float | None = None,
        duration_buckets: Iterable[tuple[float, float]] = (),
    ) -> None:
        """One (method, route, status) row of an application's request statistics."""
        rewritten: tuple[str, ...] = ()
        if len(route) > self._max_length:
            # Shortened before the route table, which keeps what it is given. Templating first
            # may strip a query string or IDs and leave a route short enough.
            route = template(route)
            if len(route) > self._max_length:
                route, rewritten = shorten(route, self._max_length), (LABEL_TOO_LONG,)
        # An empty route: the application does not break its requests down by route at all.
        labels = (method.upper(), self._route(route) if route else "", status)
        self.observe(c.HTTP_REQUEST_DURATION, labels, count, duration_seconds, duration_buckets, rewritten)
        if response_bytes is not None:
            self.observe(c.HTTP_RESPONSE_SIZE, labels, count, response_bytes, (), rewritten)

    def processes(self, state: str, priority: float | str, count: float) -> None:
        """Processes or threads in one (state, priority); states are lower-cased, so that
        Stargate's BLOCKED and a format's blocked are one series."""
        if not isinstance(priority, str):
            priority = format(priority, "g")  # 40.0 -> "40": one series per priority, whatever the JSON
        self.add(c.PROCESSES, count, (state.lower(), priority))

    def handle_table(self, table: str, used: float | None = None, free: float | None = None, limit: float | None = None) -> None:
        if used is not None:
            self.set(c.HANDLE_TABLE_SLOTS, used, (table, c.HANDLE_SLOT_USED))
        if free is not None:
            self.set(c.HANDLE_TABLE_SLOTS, free, (table, c.HANDLE_SLOT_FREE))
        if limit is not None:
            self.set(c.HANDLE_TABLE_LIMIT, limit, (table,))

    def health_status(self, status: str) -> None:
        """One of HEALTH_STATUSES: 1 for it, 0 for the others (an enum gauge)."""
        for each in c.HEALTH_STATUSES:
            self.set(c.APP_HEALTH_STATUS, 1.0 if each == status else 0.0, (each,))

    def info(self, runtime: str, runtime_version: str = "", application: str = "", application_version: str = "") -> None:
        self.set(c.RUNTIME_INFO, 1.0, (runtime, runtime_version, application, application_version))

    def health(self, healthy: bool, checks: Mapping[str, bool] | None = None) -> None:
        self.set(c.APP_HEALTHY, 1.0 if healthy else 0.0)
        for name, passed in (checks or {}).items():
            self.set(c.APP_HEALTH_CHECK, 1.0 if passed else 0.0, (name,))

    # --- output ------------------------------------------------------------------------------
    def families(self, extra: Mapping[str, str] | None = None) -> list[Family]:
        """prometheus_client metric families, with `extra` labels prepended to every sample.

        They read this Reading's series when rendered: fill the Reading first, then ask."""
        extra_names = tuple(extra or ())
        extra_values = tuple((extra or {}).values())
        return [
            ReadingFamily(metric, series, extra_names, extra_values)
            for table in (self._scalars, self._histograms)
            for metric, series in table.items()
            if series  # every series of it may have been left out
        ]


class ReadingFamily(Family):
    """One metric of a Reading as a prometheus_client family.

    Rendering is most of a scrape's CPU, so the family writes its exposition lines straight from
    the Reading's series (`sample_lines`, which `exposition.render` uses) and builds
    prometheus_client `Sample`s only when something reads `samples`.
    """

    def __init__(self, metric: c.Metric, series: dict, extra_names: tuple[str, ...], extra_values: tuple[str, ...]):
        super().__init__(metric.family, metric.help, metric.type)
        del self.samples  # Family.__init__ sets an empty list; the cached property fills it on demand
        _check_names(metric)
        self._metric, self._series = metric, series
        self._names, self._extra = extra_names + metric.labels, extra_values

    @functools.cached_property
    def samples(self) -> list[Sample]:  # type: ignore[override] - same type, filled lazily
        metric, names, extra = self._metric, self._names, self._extra
        if metric.type != c.HISTOGRAM:
            return [Sample(metric.name, dict(zip(names, extra + labels)), value, None, None) for labels, value in self._series.items()]
        samples = []
        for labels, histogram in self._series.items():
            base = dict(zip(names, extra + labels))
            for bound in sorted(histogram.buckets):
                if bound != math.inf:
                    samples.append(Sample(metric.bucket, {**base, "le": _le(bound)}, histogram.buckets[bound], None, None))
            samples.append(Sample(metric.bucket, {**base, "le": "+Inf"}, histogram.count, None, None))
            samples.append(Sample(metric.count, base, histogram.count, None, None))
            if histogram.sum is not None:
                samples.append(Sample(metric.sum, base, histogram.sum, None, None))
        return samples

    def sample_lines(self) -> str:
        """The family's sample lines in the text format, exactly as generate_latest writes them."""
        metric, extra = self._metric, self._extra
        labels = exposition.series_labels(self._names)
        if metric.type != c.HISTOGRAM:
            name = metric.name
            return "".join(f"{name}{labels.pairs(extra + key)} {format_value(value)}\n" for key, value in self._series.items())
        bucket, count, total = metric.bucket, metric.count, metric.sum
        lines = []
        le_texts: dict[float, str] = {}  # series of a family mostly share their bounds
        for key, histogram in self._series.items():
            pairs, before_le, after_le = labels.histogram_parts(extra + key)
            buckets = histogram.buckets
            for bound in sorted(buckets):
                if bound != math.inf:
                    le = le_texts.get(bound)
                    if le is None:
                        le = le_texts[bound] = _le(bound)
                    lines.append(f'{bucket}{before_le}le="{le}"{after_le} {format_value(buckets[bound])}\n')
            lines.append(f'{bucket}{before_le}le="+Inf"{after_le} {format_value(histogram.count)}\n')
            lines.append(f"{count}{pairs} {format_value(histogram.count)}\n")
            if histogram.sum is not None:
                lines.append(f"{total}{pairs} {format_value(histogram.sum)}\n")
        return "".join(lines)


@functools.lru_cache(maxsize=None)
def _check_names(metric: c.Metric) -> None:
    names = (metric.bucket, metric.count, metric.sum) if metric.type == c.HISTOGRAM else (metric.name,)
    exposition.check_name(metric.family, names)


def _le(bound: float) -> str:
    return repr(float(bound))
