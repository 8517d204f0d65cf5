"""Service level objectives in the stack file: per service, in one environment's `services:`.

    services:
      orders:
        mode: sidecar
        targets: [orders-1:9841]
        objectives:
          availability: 99.9                  # % of requests answered without a 5xx, over 30 days
          latency: {percent: 99, under: 0.5}  # % of requests answered in under 0.5 s, over 30 days

`under` must be one of the bucket bounds of the service's `http_server_request_duration_seconds`
histogram (its `le` values): the share of fast requests is read from that bucket. `pharos build`
renders the objectives' recording rules and their tests (alerts/slo.py, alerts/slo_tests.py).
"""

from __future__ import annotations

from typing import Any

from pharos_monitoring.alerts.slo import AVAILABILITY, KINDS, LATENCY, Objective

OBJECTIVES_KEY = "objectives"
# Below 95 % a total outage takes most of an hour to page: the workbook's burn rates are not made for it.
LOWEST_PERCENT = 95.0


def _number(reader, data: dict, key: str, path: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise reader.fail(f"{path}.{key}", f"expected a number, got {value!r}")
    return float(value)


def _percent(reader, data: dict, key: str, path: str) -> float:
    percent = _number(reader, data, key, path)
    if not LOWEST_PERCENT <= percent < 100:
        raise reader.fail(
            f"{path}.{key}",
            f"{percent:g} is not a percentage from {LOWEST_PERCENT:g} up to (not including) 100, e.g. 99.9",
        )
    return round(percent / 100, 10)


def read(reader, value: Any, path: str, environment: str, service: str, team: str) -> tuple[Objective, ...]:
    """The `objectives:` of one service at `path`; `reader` is the stack file's reader (fail, mapping)."""
    data = reader.mapping(value, path, set(KINDS))
    objectives = []
    if AVAILABILITY in data:
        objectives.append(Objective(environment, service, AVAILABILITY, _percent(reader, data, AVAILABILITY, path), team=team))
    if LATENCY in data:
        latency_path = f"{path}.{LATENCY}"
        latency = reader.mapping(data[LATENCY], latency_path, {"percent", "under"})
        if "percent" not in latency or "under" not in latency:
            raise reader.fail(latency_path, "a latency objective needs percent (e.g. 99) and under (seconds, a bucket bound, e.g. 0.5)")
        under = _number(reader, latency, "under", latency_path)
        if under <= 0:
            raise reader.fail(f"{latency_path}.under", f"expected seconds above 0, got {under:g}")
        objectives.append(Objective(environment, service, LATENCY, _percent(reader, latency, "percent", latency_path), under, team))
    return tuple(objectives)
