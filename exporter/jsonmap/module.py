"""A json mapping module at run time: the Profile the scraper uses, and what a Profile does not
carry (request body, accepted statuses, credentials), plus the module's own metrics.

Per scrape, the mapping adds to the probe's output (the `module` label names the module):
    pharos_module_scrape_series              series the mapping wrote
    pharos_module_scrape_dropped_samples     samples it dropped, by reason (see extract.DROP_REASONS)
    pharos_module_scrape_mapping_seconds     time spent mapping the decoded document
Across scrapes, on the exporter's own /metrics (through ModuleStats):
    pharos_module_scrapes_total{module,result}       result: success | failure
    pharos_module_scrape_duration_seconds{module}    a summary: _sum and _count
    pharos_module_dropped_samples_total{module,reason}
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Summary

from .. import catalogue as c
from ..config import Auth, TLS
from ..profiles.base import Profile
from ..reading import Reading
from .extract import DROP_REASONS, EXPRESSION_ERROR, Extractor, Scrape
from .schema import ModuleSpec

log = logging.getLogger("pharos.exporter")

MODULE_LABEL = "module"
_EXPORTER = "Exporter"
SCRAPE_SERIES = c.Metric(
    "pharos_module_scrape_series",
    c.GAUGE,
    "Series the json mapping module wrote in this scrape.",
    (MODULE_LABEL,),
    _EXPORTER,
)
SCRAPE_DROPPED = c.Metric(
    "pharos_module_scrape_dropped_samples",
    c.GAUGE,
    "Samples the json mapping module dropped in this scrape, by reason: missing, not_a_number, duplicate, expression_error, limit.",
    (MODULE_LABEL, c.Label.REASON),
    _EXPORTER,
)
SCRAPE_MAPPING_SECONDS = c.Metric(
    "pharos_module_scrape_mapping_seconds",
    c.GAUGE,
    "Time the json mapping module took to map the decoded document in this scrape, in seconds.",
    (MODULE_LABEL,),
    _EXPORTER,
)
MODULE_METRICS = (SCRAPE_SERIES, SCRAPE_DROPPED, SCRAPE_MAPPING_SECONDS)


class ModuleStats:
    """The modules' counters on the exporter's own registry (its /metrics)."""

    def __init__(self, registry: CollectorRegistry):
        self.scrapes = Counter(
            "pharos_module_scrapes", "Scrapes through each json mapping module, by result (success | failure).",
            (MODULE_LABEL, c.Label.RESULT), registry=registry,
        )  # fmt: skip
        self.duration = Summary(
            "pharos_module_scrape_duration_seconds", "Time scrapes through each json mapping module took (fetch, decode, mapping), in seconds.",
            (MODULE_LABEL,), registry=registry,
        )  # fmt: skip
        self.dropped = Counter(
            "pharos_module_dropped_samples", "Samples the json mapping modules dropped, by module and reason.",
            (MODULE_LABEL, c.Label.REASON), registry=registry,
        )  # fmt: skip

    def record_scrape(self, module: str, success: bool, seconds: float) -> None:
        self.scrapes.labels(module, "success" if success else "failure").inc()
        self.duration.labels(module).observe(seconds)

    def record_drops(self, module: str, dropped: Mapping[str, int]) -> None:
        for reason, count in dropped.items():
            self.dropped.labels(module, reason).inc(count)

    def prepare(self, module: str) -> None:
        """Create the module's series at zero, so rates work from the first scrape."""
        for result in ("success", "failure"):
            self.scrapes.labels(module, result)
        self.duration.labels(module)
        for reason in DROP_REASONS:
            self.dropped.labels(module, reason)


class Module:
    """One configured module: `profile()` for the scraper, the request settings beside it."""

    def __init__(self, spec: ModuleSpec, extractors: list[Extractor], slots: int, source: str):
        self.name = spec.name
        self.source = source
        self.headers: dict[str, str] = dict(spec.headers)
        # None when the module's http_client_config does not set them: the probe's apply.
        self.auth: Auth | None = spec.auth
        self.tls: TLS | None = spec.tls
        self.valid_statuses: frozenset[int] = spec.valid_statuses
        self.body_template = spec.body
        self.max_series = spec.max_series
        self.specs = spec.metrics
        self._extractors = extractors
        self._slots = slots
        self._warned: set[tuple[str, str]] = set()
        self._warned_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Module({self.name!r}, {len(self._extractors)} metrics)"

    @property
    def method(self) -> str:
        """json_exporter POSTs when the module has a body, and GETs otherwise."""
        return "POST" if self.body_template is not None else "GET"

    def render_body(self, params: Mapping[str, Sequence[str]] | None = None) -> bytes | None:
        """The request body for a probe whose query parameters are `params`, or None (a GET)."""
        return None if self.body_template is None else self.body_template.render(params)

    @property
    def metric_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for extractor in self._extractors:
            for output in extractor.outputs:
                seen.setdefault(output.metric.name)
        return list(seen)

    def profile(self, stats: ModuleStats | None = None, params: Mapping[str, Sequence[str]] | None = None) -> Profile:
        """A Profile whose parse fills a Reading with this module's series (and its own metrics);
        `params` are the probe's query parameters, the data of a templated body."""

        def parse(document: Any, reading: Reading) -> None:
            self.map(document, reading, stats)

        return Profile(
            name=self.name,
            summary=f"json mapping module ({len(self._extractors)} metrics) from {self.source}",
            parse=parse,
            default_path="/",
            method=self.method,
            headers=self.headers,
            reference="docs/json-mapping.md",
            body=self.render_body(params),
            valid_statuses=self.valid_statuses,
        )

    def map(self, document: Any, reading: Reading, stats: ModuleStats | None = None) -> Scrape:
        """Fill `reading` from `document`; never raises. Returns what was written and dropped."""
        started = time.perf_counter()
        reading.limit_series(self.max_series)  # the module's own limit replaces limits.max_series_per_target
        scrape = Scrape(reading, self._slots, self.max_series)
        for extractor in self._extractors:
            try:
                extractor.run(document, scrape)
            except Exception as error:  # noqa: BLE001 - one metric must not lose the others
                name = extractor.spec.name
                detail = f"{type(error).__name__}: {error}"
                scrape.drop(name, EXPRESSION_ERROR, lambda: detail, len(extractor.outputs))
                if self._first_time(name, "internal"):
                    log.exception("module %s: metric %s failed on this document; please report this", self.name, name)
        seconds = time.perf_counter() - started
        reading.set(SCRAPE_SERIES, float(scrape.series), (self.name,))
        for reason in DROP_REASONS:
            reading.set(SCRAPE_DROPPED, float(scrape.dropped.get(reason, 0)), (self.name, reason))
        reading.set(SCRAPE_MAPPING_SECONDS, round(seconds, 6), (self.name,))
        self._report(scrape)
        if stats is not None and scrape.dropped:
            stats.record_drops(self.name, scrape.dropped)
        return scrape

    def _report(self, scrape: Scrape) -> None:
        """Each kind of drop is logged as a warning the first time it happens, then at debug level:
        the per-scrape metric carries the ongoing count without flooding the log."""
        for (metric, reason), example in scrape.examples.items():
            if self._first_time(metric, reason):
                log.warning("module %s: %s: dropped samples (%s): %s; further drops of this kind are logged at debug level", self.name, metric, reason, example)
            else:
                log.debug("module %s: %s: dropped samples (%s): %s", self.name, metric, reason, example)

    def _first_time(self, metric: str, reason: str) -> bool:
        with self._warned_lock:
            if (metric, reason) in self._warned:
                return False
            self._warned.add((metric, reason))
            return True

    def describe(self) -> list[str]:
        """Lines for `--check-config`."""
        statuses = "2xx" if self.valid_statuses == frozenset(range(200, 300)) else ", ".join(map(str, sorted(self.valid_statuses)))
        entries = f"{len(self._extractors)} metric {'entry' if len(self._extractors) == 1 else 'entries'}"
        lines = [f"  module {self.name}: {self.method}, statuses {statuses}, {entries}, at most {self.max_series} series"]
        names = self.metric_names
        lines.append("    metrics: " + ", ".join(names))
        for spec in self.specs:
            if spec.timestamp is not None:
                lines.append(f"    note: {spec.path} ({spec.name}): epochTimestamp is checked but not exported; Pharos never sets sample timestamps")
        return lines
