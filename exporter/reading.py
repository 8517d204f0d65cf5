"""A `Reading`: the samples one scrape of one target produced, in the catalogue's vocabulary.

Profiles fill a Reading through its helpers (`gc`, `memory`, `http`, ...) or the generic `set`,
never by naming a metric themselves. The collector turns Readings into prometheus_client metric
families. Values are checked here, so every profile rejects a wrong type the same way: a
`DocumentError` that names the JSON path.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

from prometheus_client.metrics_core import Metric as Family
from prometheus_client.samples import Sample

from . import catalogue as c


class DocumentError(ValueError):
    """The target's JSON does not have the shape the profile expects."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def number(value: Any, path: str) -> float:
    """`value` as a float, or DocumentError naming `path`. Booleans count as 1/0."""
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

    def __init__(self, route_mapper: RouteMapper | None = None):
        self._scalars: dict[c.Metric, dict[tuple[str, ...], float]] = {}
        self._histograms: dict[c.Metric, dict[tuple[str, ...], _Histogram]] = {}
        self._route = route_mapper if route_mapper is not None else (lambda route: route)

    # --- generic -----------------------------------------------------------------------------
    def set(self, metric: c.Metric, value: float, labels: tuple[str, ...] = ()) -> None:
        """Set one sample; `labels` are values in the order of `metric.labels`."""
        self._scalars.setdefault(metric, {})[labels] = value

    def add(self, metric: c.Metric, value: float, labels: tuple[str, ...] = ()) -> None:
        """Add to one sample (several source entries may map onto one series)."""
        series = self._scalars.setdefault(metric, {})
        series[labels] = series.get(labels, 0.0) + value

    def observe(
        self,
        metric: c.Metric,
        labels: tuple[str, ...],
        count: float,
        total: float | None,
        buckets: Iterable[tuple[float, float]] = (),
    ) -> None:
        """Merge cumulative histogram data (count, sum and `(upper bound, cumulative count)`)."""
        series = self._histograms.setdefault(metric, {})
        histogram = series.get(labels)
        if histogram is None:
            histogram = series[labels] = _Histogram()
        histogram.count += count
        if total is None or histogram.sum is None:
            histogram.sum = None
        else:
            histogram.sum += total
        for bound, cumulative in buckets:
            histogram.buckets[bound] = histogram.buckets.get(bound, 0.0) + cumulative

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
        labels = (method.upper(), self._route(route), status)
        self.observe(c.HTTP_REQUEST_DURATION, labels, count, duration_seconds, duration_buckets)
        if response_bytes is not None:
            self.observe(c.HTTP_RESPONSE_SIZE, labels, count, response_bytes)

    def info(self, runtime: str, runtime_version: str = "", application: str = "", application_version: str = "") -> None:
        self.set(c.RUNTIME_INFO, 1.0, (runtime, runtime_version, application, application_version))

    def health(self, healthy: bool, checks: Mapping[str, bool] | None = None) -> None:
        self.set(c.APP_HEALTHY, 1.0 if healthy else 0.0)
        for name, passed in (checks or {}).items():
            self.set(c.APP_HEALTH_CHECK, 1.0 if passed else 0.0, (name,))

    # --- output ------------------------------------------------------------------------------
    def families(self, extra: Mapping[str, str] | None = None) -> list[Family]:
        """prometheus_client metric families, with `extra` labels prepended to every sample."""
        extra_names = tuple(extra or ())
        extra_values = tuple((extra or {}).values())
        out: list[Family] = []
        for metric, series in self._scalars.items():
            family = Family(metric.family, metric.help, metric.type)
            names = extra_names + metric.labels
            samples = family.samples
            for labels, value in series.items():
                samples.append(Sample(metric.name, dict(zip(names, extra_values + labels)), value, None, None))
            out.append(family)
        for metric, series in self._histograms.items():
            out.append(_histogram_family(metric, series, extra_names, extra_values))
        return out


def _histogram_family(metric, series, extra_names, extra_values) -> Family:
    family = Family(metric.family, metric.help, metric.type)
    names = extra_names + metric.labels
    samples = family.samples
    bucket_name, count_name, sum_name = metric.bucket, metric.count, metric.sum
    for labels, histogram in series.items():
        base = dict(zip(names, extra_values + labels))
        for bound in sorted(histogram.buckets):
            if bound == math.inf:
                continue
            samples.append(Sample(bucket_name, {**base, "le": _le(bound)}, histogram.buckets[bound], None, None))
        samples.append(Sample(bucket_name, {**base, "le": "+Inf"}, histogram.count, None, None))
        samples.append(Sample(count_name, base, histogram.count, None, None))
        if histogram.sum is not None:
            samples.append(Sample(sum_name, base, histogram.sum, None, None))
    return family


def _le(bound: float) -> str:
    return repr(float(bound))
