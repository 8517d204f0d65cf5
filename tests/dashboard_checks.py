"""Running the application dashboards' queries against a live data source, as Grafana would: shared
by the test against one Prometheus (test_dashboards_live.py) and the one against the fleet's global
store (test_dashboards_fleet.py).

A panel query "returns data" when its range query over the last `QUERY_WINDOW_SECONDS` (instant
for table cells) has at least one series; an alert-threshold line is run without the condition
that shows it only near the data (`house.ungated`), so the line itself is checked.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

from pharos_monitoring import dashboards
from pharos_monitoring.dashboards import house, queries
from pharos_monitoring.dashboards.prometheus import Prometheus

# The dashboards a stack of demo services feeds. The Swarm dashboard needs a swarm:
# tests/test_docker_swarm.py runs its queries against a real one.
APPLICATION_DASHBOARDS = (house.SERVICES_OVERVIEW_UID, house.SERVICE_DETAIL_UID, house.PIPELINE_HEALTH_UID)
TESTED_ELSEWHERE = ("pharos-swarm",)
QUERY_WINDOW_SECONDS = 120
RANGE_STEP_SECONDS = 5
RESOLVE_SECONDS = 3600  # variables list the values of the last hour, as Grafana's default range


@dataclass(frozen=True)
class Planned:
    """One panel query of one dashboard, with the variables it runs with."""

    uid: str
    query: queries.PanelQuery
    text: Mapping[str, str]

    def expr(self) -> str:
        written = house.ungated(self.query.expr) if self.query.ref == house.THRESHOLD_REF else self.query.expr
        return queries.substitute(written, self.text)

    def describe(self) -> str:
        return f"{self.uid} / {self.query.panel} / {self.query.ref}: {self.expr()}"


def dashboards_json(fleet: bool = False) -> list[dict]:
    """The application dashboards as Grafana JSON, in the order of APPLICATION_DASHBOARDS."""
    boards = [json.loads(house.to_json(dashboard)) for dashboard in dashboards.build_all(fleet)]
    assert sorted(board["uid"] for board in boards) == sorted(APPLICATION_DASHBOARDS + TESTED_ELSEWHERE), "a dashboard is neither tested here nor elsewhere"
    return [board for board in boards if board["uid"] in APPLICATION_DASHBOARDS]


def variable_names(board: dict) -> list[str]:
    return [v["name"] for v in board["templating"]["list"] if v["type"] != "datasource"]


def plan(board: dict, prometheus: Prometheus, builtins: Mapping[str, str], chosen: Mapping[str, Sequence[str]] | None = None) -> tuple[queries.Resolution, list[Planned]]:
    """Resolve the board's variables (every one must list values) and plan all its panel queries."""
    end = time.time()
    resolution = queries.resolve_variables(board, prometheus, end - RESOLVE_SECONDS, end, builtins, chosen)
    assert all(resolution.selected[name] for name in variable_names(board)), (board["uid"], resolution.selected)
    planned = [Planned(board["uid"], query, resolution.text) for query in queries.panel_queries(board)]
    assert len(planned) == sum(len(panel.get("targets", [])) for panel in board["panels"])
    return resolution, planned


def series_count(prometheus: Prometheus, planned: Planned) -> int:
    if planned.query.instant:
        return len(prometheus.instant(planned.expr()))
    end = time.time()
    return len(prometheus.range(planned.expr(), end - QUERY_WINDOW_SECONDS, end, RANGE_STEP_SECONDS))


def without_data(prometheus: Prometheus, planned: Sequence[Planned], retry_seconds: float) -> list[Planned]:
    """The planned queries that still return nothing after retrying for up to `retry_seconds`
    (a query may need a little more history than the warm-up gave it)."""
    empty = list(planned)
    ends = time.monotonic() + retry_seconds
    while True:
        empty = [each for each in empty if series_count(prometheus, each) == 0]
        if not empty or time.monotonic() > ends:
            return empty
        time.sleep(2)


def report(empty: Sequence[Planned], total: int) -> str:
    return f"{len(empty)} of {total} panel queries returned no data:\n" + "\n".join(each.describe() for each in empty)
