"""Helpers for the json mapping tests (tests/test_jsonmap_*.py): load modules from YAML text,
scrape a module over loopback HTTP through the exporter's real fetch and scrape path, and read
the exposition back as series."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from pharos_monitoring.exporter.config import TLS, Auth
from pharos_monitoring.exporter.fetch import Fetcher
from pharos_monitoring.exporter.jsonmap import Module, ModuleStats, load_modules
from pharos_monitoring.exporter.routes import RouteTable
from pharos_monitoring.exporter.scrape import Outcome, Scraper, Target
from pharos_monitoring.exporter.collect import render

from helpers import promtool_check_metrics

Series = dict[tuple[str, frozenset], float]
FIXTURES = Path(__file__).parent / "fixtures" / "jsonmap"
_TIMESTAMPED = re.compile(r"^((?:[^{\s]+|[^{\s]+\{.*\}) \S+) -?\d+$")  # name{labels} value timestamp


def modules_from(text: str, source: str = "test.yml") -> dict[str, Module]:
    return load_modules(yaml.safe_load(text), source)


def module_from(text: str, name: str = "test") -> Module:
    return modules_from(text)[name]


def scrape(module: Module, url: str, stats: ModuleStats | None = None) -> tuple[Outcome, str]:
    """One scrape of `url` through `module`, the way the exporter does it; the exposition is
    linted with promtool before it is returned."""
    fetcher = Fetcher(module.auth or Auth(), module.tls or TLS())
    target = Target(url=url, profile=module.profile(stats), fetcher=fetcher, routes=RouteTable(200))
    try:
        outcome = Scraper(CollectorRegistry()).scrape(target, time.monotonic() + 10)
    finally:
        target.fetcher.close()
    text = render(outcome.families).decode()
    promtool_check_metrics(text)
    return outcome, text


def serve_and_scrape(loopback_server, module: Module, document: Any, stats: ModuleStats | None = None) -> tuple[Outcome, str]:
    body = document if isinstance(document, (bytes, str)) else json.dumps(document)
    return scrape(module, loopback_server(body) + "/stats", stats)


def series(text: str, prefix: str = "") -> Series:
    """{(sample name, labels): value} of an exposition, for samples whose name starts with `prefix`."""
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(prefix):
                out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def key(name: str, **labels: str) -> tuple[str, frozenset]:
    return name, frozenset(labels.items())


def value(text: str, name: str, **labels: str) -> float | None:
    return series(text).get(key(name, **labels))


def dropped(text: str, module: str, reason: str) -> float:
    found = value(text, "pharos_module_scrape_dropped_samples", module=module, reason=reason)
    assert found is not None, f"no pharos_module_scrape_dropped_samples for {module}/{reason}"
    return found


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def families(text: str) -> dict[str, tuple[str, str, set]]:
    """{family: (help, type, {(sample, labels, value)})} of an exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        kind = "untyped" if family.type == "unknown" else family.type
        samples = {(sample.name, frozenset(sample.labels.items()), sample.value) for sample in family.samples}
        out[family.name] = (family.documentation, kind, samples)
    return out


def documented(name: str) -> dict[str, tuple[str, str, set]]:
    """`families` of a documented exposition in tests/fixtures/jsonmap, timestamps left out."""
    lines = []
    for line in (FIXTURES / name).read_text().splitlines():
        timestamped = _TIMESTAMPED.match(line)
        lines.append(timestamped.group(1) if timestamped else line)  # Pharos writes no timestamps
    return families("\n".join(lines) + "\n")
