"""The dashboards against the fleet's global store: `pharos up --fast` (two environments, each with
its own Prometheus, both writing to one VictoriaMetrics), queried at the store's root as Grafana's
`pharos-fleet` data source queries it, with both environments selected.

Both demo services are given the same fault (30 % of 5xx): the alert fires in both environments,
so Alertmanager notifies (the pipeline's notification panels have data), and the overview must put
production first, although the raw ratios are alike, because production's threshold is half of
beta's: each service is judged by its own environment's thresholds.

Every variable must list values and every panel query of every application dashboard must return
data (tests/dashboard_checks.py runs them as Grafana would); the overview must show both
environments side by side, worst first. The queries are the same ones test_dashboards_live.py runs
against a single Prometheus.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

import pytest

from pharos_monitoring.alerts import recording as r
from pharos_monitoring.alerts.catalogue import HIGH_ERROR_RATE
from pharos_monitoring.alerts import slo
from pharos_monitoring.alerts.model import duration_seconds
from pharos_monitoring.alerts.upstream import ALERTNAME, SLO, UP
from pharos_monitoring.cli import main
from pharos_monitoring.config.stack_config import SIDECAR
from pharos_monitoring.dashboards import house, queries, render, service_detail
from pharos_monitoring.dashboards import services_overview as overview
from pharos_monitoring.dashboards import upstream as u
from pharos_monitoring.dashboards.prometheus import Prometheus
from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L
from pharos_monitoring.local import local_stack

from dashboard_checks import QUERY_WINDOW_SECONDS, Planned, dashboards_json, plan, report, without_data
from helpers import wait_for
from pharos_up import PharosUp

pytestmark = pytest.mark.slow

SELECTED = ["beta", "production"]  # every environment of pharos up, as a person picks them
FAULT_RATIO = 0.3  # of 5xx, in both: above both thresholds (production 5 %, beta 10 %), twice as far in production
ARRIVAL_SECONDS = 150  # both environments' series in the store, rates and recordings included
RETRY_SECONDS = 90
SETTLED_SECONDS = 15  # older samples are all in the store: a remote-write batch (5 s) and the store's latency offset
SCRAPE_SECONDS = duration_seconds(local_stack.FAST_INTERVALS["scrape_interval"])


@dataclass
class Fleet:
    store: Prometheus
    described: dict  # up.json
    builtins: dict[str, str]  # Grafana's intervals for the test's time range and scrape interval

    def probe_only(self) -> set[str]:
        """Environments whose services are read over the network only: no process metrics."""
        modes = {}
        for service in self.described["services"]:
            modes.setdefault(service["environment"], set()).add(service["mode"])
        return {environment for environment, kinds in modes.items() if SIDECAR not in kinds}

    @property
    def objectives(self) -> set[tuple[str, str]]:
        """(environment, slo) of every objective declared: the error-budget panel has data there only."""
        return {(series.labels[L.ENVIRONMENT], series.labels[SLO]) for series in self.store.instant(slo.OBJECTIVE_RECORD)}


def _environments(store: Prometheus, expr: str) -> set[str]:
    return {series.labels.get(L.ENVIRONMENT, "") for series in store.instant(f"count by ({L.ENVIRONMENT}) ({expr})")}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fleet")
    up = PharosUp(directory / "state", directory / "up.out", "--fast")
    try:
        described = up.wait_described()
        assert sorted(described["prometheus"]) == SELECTED
        for service in described["services"]:
            assert main(["fault", service["name"], "--error-ratio", f"{FAULT_RATIO:g}", "--state-dir", str(up.state)]) == 0
        store = Prometheus(described["global_store"])
        rate_window = f"{4 * SCRAPE_SECONDS:g}s"
        # What the dashboards read, from both environments (process metrics: where a sidecar reads them).
        needed = {
            f"{UP.name}{{{r.APPLICATION_TARGETS}}}": set(SELECTED),
            r.INSTANCE_UNAVAILABLE.record: set(SELECTED),
            r.HTTP_ERROR_RATIO.record: set(SELECTED),
            r.HTTP_LATENCY_P99.record: set(SELECTED),
            r.GC_TIME_RATIO.record: set(SELECTED),
            r.MEMORY_USED_RATIO.record: set(SELECTED),
            u.ALERTS.name: set(SELECTED),
            # The fault pages in both: by its error rate in production, by its burn rate in beta (an objective).
            f'{u.ALERTS.name}{{{ALERTNAME}=~"{HIGH_ERROR_RATE.name}|{slo.SLO_BURN_PAGE.name}", {u.ALERT_STATE}="{u.FIRING}"}}': set(SELECTED),
            f"rate({c.PROCESS_CPU.name}[{rate_window}])": {"production"},
        }
        missing = lambda: [expr for expr, wanted in needed.items() if not wanted <= _environments(store, expr)]  # noqa: E731
        assert wait_for(lambda: not missing(), ARRIVAL_SECONDS, interval=2), f"the global store never had {missing()}:\n{up.log()[-3000:]}"
        end = time.time()
        builtins = render.Window(end - QUERY_WINDOW_SECONDS, end, scrape_interval=SCRAPE_SECONDS).builtins()
        yield Fleet(store, described, builtins)
    finally:
        up.stop()


def _expected_empty(fleet: Fleet, environment: str, planned: Planned, panels: dict[str, dict]) -> str:
    """Why a panel query of the service detail has nothing to show in `environment`, or ""."""
    panel = panels[planned.query.panel]
    if planned.query.panel == "Error budget left":
        (objective,) = set(re.findall(rf'{SLO}="(\w+)"', planned.query.expr))
        if (environment, objective) not in fleet.objectives:
            return f"pharos up's stack file declares no {objective} objective in {environment}"
    if service_detail.SIDECAR_ONLY in panel["description"] and environment in fleet.probe_only():
        return f"{environment}'s service is read through /probe: no process to read"
    return ""


def test_every_variable_and_panel_query_returns_data_with_both_environments(fleet):
    store = fleet.store
    # The premise of the two exemptions below, checked rather than assumed.
    assert fleet.objectives == {("beta", "availability")}, "pharos up's objectives changed: change the exemption"
    assert fleet.probe_only() == {"beta"}

    planned: list[Planned] = []
    exempt: list[tuple[Planned, str]] = []
    for board in dashboards_json(fleet=True):
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables[L.ENVIRONMENT]["hide"] == 0, f"{board['uid']}: the fleet's dashboards show the environment"
        if variables[L.ENVIRONMENT]["multi"]:
            resolution, queries_of_board = plan(board, store, fleet.builtins, {L.ENVIRONMENT: SELECTED})
            assert resolution.selected[L.ENVIRONMENT] == SELECTED
            assert resolution.text[L.ENVIRONMENT] == "(beta|production)"  # as Grafana writes two values
            # Left alone, "All" selects every environment the store has: the same two.
            assert plan(board, store, fleet.builtins)[0].selected[L.ENVIRONMENT] == SELECTED
            planned += queries_of_board
            continue
        # One environment at a time (the service detail): each of them in turn.
        panels = {panel["title"]: panel for panel in board["panels"]}
        for environment in SELECTED:
            for each in plan(board, store, fleet.builtins, {L.ENVIRONMENT: [environment]})[1]:
                why = _expected_empty(fleet, environment, each, panels)
                if why:
                    exempt.append((each, why))
                else:
                    planned.append(each)
    # the error budget (both objectives) in production and beta's latency one; the process row (4) in beta
    assert len(exempt) == 2 + 1 + 4

    empty = without_data(store, planned, RETRY_SECONDS)
    assert not empty, report(empty, len(planned))


def test_annotation_queries_run_against_the_store(fleet):
    end = time.time()
    checked = 0
    for board in dashboards_json(fleet=True):
        if not board.get("annotations", {}).get("list"):
            continue
        multi = next(v for v in board["templating"]["list"] if v["name"] == L.ENVIRONMENT)["multi"]
        chosen = {L.ENVIRONMENT: SELECTED if multi else SELECTED[-1:]}
        resolution = queries.resolve_variables(board, fleet.store, end - 3600, end, fleet.builtins, chosen)
        for annotation in board["annotations"]["list"]:
            fleet.store.range(queries.substitute(annotation["expr"], resolution.text), end - 600, end, 60)
            checked += 1
    assert checked == 6


def _overview() -> dict:
    return next(board for board in dashboards_json(fleet=True) if board["uid"] == house.SERVICES_OVERVIEW_UID)


def test_the_overview_shows_both_environments_side_by_side_worst_first(fleet):
    board = _overview()
    rendering = wait_for(lambda: _clean(render.render(board, fleet.store, _window(), {L.ENVIRONMENT: SELECTED})), RETRY_SECONDS, interval=2)
    assert rendering, "the overview did not draw every panel with data from the store"

    window = _window()
    end = window.end
    resolution = queries.resolve_variables(board, fleet.store, end - 3600, end, window.builtins(), {L.ENVIRONMENT: SELECTED})
    # The table: one row per environment and service, both environments, sorted worst first.
    table = next(panel for panel in board["panels"] if panel["type"] == "table")
    keys, values, rows = render._table_rows(table, render._load(table, fleet.store, resolution.text, window, ranged=False))
    environments = [row[keys.index(L.ENVIRONMENT)] for row in rows]
    # One service (orders) in each; production first: the same 5xx ratio is further beyond its threshold.
    assert environments == ["production", "beta"], rows
    worst = [row[len(keys)] for row in rows]  # 'Worst vs. alert threshold', the first value column
    assert worst == sorted(worst, reverse=True) and worst[-1] >= 1, rows
    names = [overview.SIGNALS[int(row[len(keys) + 1]) - 1] for row in rows]  # 'Worst signal'
    assert names == ["5xx", "5xx"], rows
    # Every graph draws both environments' lines.
    for panel in board["panels"]:
        if panel["type"] == "timeseries":
            drawn = render._load(panel, fleet.store, resolution.text, window, ranged=True)
            shown = {item.series.labels.get(L.ENVIRONMENT) for item in drawn if item.ref != house.THRESHOLD_REF}
            assert shown == set(SELECTED), (panel["title"], shown)


def test_each_environment_is_judged_by_its_own_thresholds(fleet):
    """'Worst vs. alert threshold' is, per environment and service, the largest signal divided by
    that environment's threshold from the alert catalogue: computed here from the raw signals."""
    text = {L.ENVIRONMENT: "(beta|production)", L.SERVICE: ".*"}
    rows = [(environment, "orders") for environment in SELECTED]

    def settled():
        # An instant a little in the past, whose samples have all arrived: both queries see the same data.
        at = time.time() - SETTLED_SECONDS
        shown = {
            (series.labels[L.ENVIRONMENT], series.labels[L.SERVICE]): series.points[0][1]
            for series in fleet.store.instant(queries.substitute(str(overview.closeness()), text), at)
        }
        return (at, shown) if sorted(shown) == rows else None

    found = wait_for(settled, RETRY_SECONDS, interval=2)
    assert found, "the overview's closeness never showed both environments"
    at, shown = found
    signals = [
        (overview.ERROR_RATIO, overview._error_ratio()),
        (overview.LATENCY, overview._latency_p99()),
        (overview.UNAVAILABLE, overview._unavailable_ratio()),
        (overview.GC_TIME, overview._gc_time_worst()),
        (overview.MEMORY, overview._memory_fullest()),
    ]
    expected: dict[tuple[str, str], float] = {}
    for threshold, expr in signals:
        for series in fleet.store.instant(queries.substitute(str(expr), text), at):
            key = (series.labels[L.ENVIRONMENT], series.labels[L.SERVICE])
            if math.isnan(series.points[0][1]):
                continue  # max by ignores NaN beside numbers
            expected[key] = max(expected.get(key, float("-inf")), series.points[0][1] / threshold.value(key[0]))
    assert shown == pytest.approx(expected, rel=1e-9)


def _window() -> render.Window:
    end = time.time()
    return render.Window(end - QUERY_WINDOW_SECONDS, end, scrape_interval=SCRAPE_SECONDS)


def _clean(rendering: render.Rendering) -> render.Rendering | None:
    return rendering if not rendering.errors and not rendering.empty else None
