"""Renders the metric vocabulary (`exporter/catalogue.py`) as `docs/metrics.md`.

    python -m pharos_monitoring.exporter.metrics_doc > docs/metrics.md

`tests/test_catalogue.py` fails when the file and the catalogue disagree.
"""

from __future__ import annotations

from . import catalogue as c

_INTRO = """# Metrics: the Pharos vocabulary

This is the contract between the exporter, the dashboards and the alerts. Every runtime's
profile maps its own stats onto these names, so one set of dashboards and alerts serves Pharo
images, Go programs and any JSON service mapped onto the vocabulary.

Generated from `exporter/catalogue.py` by `python -m pharos_monitoring.exporter.metrics_doc`; do not edit by hand.

Conventions: base units (seconds, bytes), `_total` on counters, OpenTelemetry semantic-convention
names where one exists (`http_server_*`, labels `http_request_method`, `http_route`,
`http_response_status_code`), `runtime_*` for runtime-neutral names OpenTelemetry lacks, `pharos_*`
for the exporter's own view. In sidecar mode every sample also carries `target` (the configured
target's name); through `/probe` it does not (Prometheus' `instance` identifies the target).
Histograms without buckets in the application's report expose only `le="+Inf"`, `_count` and `_sum`:
rates and averages work for every runtime, quantiles only where buckets exist.
"""

_VALUES = f"""
## Label values

- `kind` (GC): {", ".join(f"`{kind}`" for kind in c.GC_KINDS)}: `minor` collects the young generation
  (Pharo: scavenge, reported as incremental GC), `major` the whole heap (Pharo: full GC; Go: every cycle).
- `http_route`: a route template; IDs in paths collapse to `{{id}}`. Beyond the per-target cap
  (`limits.max_routes_per_target`) routes are summed under `{c.ROUTE_OVERFLOW}`; rows without a
  route are `{c.ROUTE_UNKNOWN}`.
- `reason` (scrape errors): {", ".join(f"`{reason}`" for reason in c.SCRAPE_ERROR_REASONS)}.
"""


def render_markdown() -> str:
    lines = [_INTRO]
    groups: dict[str, list[c.Metric]] = {}
    for metric in c.all_metrics():
        groups.setdefault(metric.group, []).append(metric)
    for group, metrics in groups.items():
        lines.append(f"\n## {group}\n")
        lines.append("| metric | type | labels | meaning |")
        lines.append("|---|---|---|---|")
        for metric in metrics:
            labels = ", ".join(f"`{label}`" for label in metric.labels) or "none"
            lines.append(f"| `{metric.name}` | {metric.type} | {labels} | {metric.help} |")
    lines.append(_VALUES)
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
