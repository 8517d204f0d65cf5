"""The dashboards without a live stack: Grafana's schemas, count, uids, determinism, links,
variables, units, and thresholds equal to the alert catalogue's."""

from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path

import pytest

from pharos_monitoring import dashboards
from pharos_monitoring.alerts import catalogue as alert_catalogue
from pharos_monitoring.alerts import recording
from pharos_monitoring.alerts import upstream as alert_upstream
from pharos_monitoring.alerts.model import ENVIRONMENTS
from pharos_monitoring.dashboards import house as h
from pharos_monitoring.dashboards import queries, upstream
from pharos_monitoring.dashboards.units import format_value
from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.cli import main

import grafana_schema

# The application dashboards, fed by the live stack of tests/stack.py, and the Swarm dashboard,
# whose queries tests/test_docker_swarm.py runs against a real swarm.
APPLICATION_UIDS = ["pharos-services-overview", "pharos-service-detail", "pharos-pipeline-health"]
SWARM_UIDS = ["pharos-swarm"]
EXPECTED_UIDS = APPLICATION_UIDS + SWARM_UIDS
MODERN_PANELS = {"timeseries", "stat", "table", "state-timeline"}
BUILTINS = {"__rate_interval", "__interval", "__range"}
DASHBOARDS_DIR = Path(dashboards.__file__).parent


def _boards() -> list[dict]:
    return [json.loads(h.to_json(board)) for board in dashboards.build_all()]


BOARDS = _boards()
BY_UID = {board["uid"]: board for board in BOARDS}
# Built for a Grafana that also has the fleet's global store (`pharos dashboards build --fleet`).
FLEET_BOARDS = [json.loads(h.to_json(board)) for board in dashboards.build_all(fleet=True)]
FLEET_BY_UID = {board["uid"]: board for board in FLEET_BOARDS}


def _panels(board: dict) -> list[dict]:
    return [panel for panel in board["panels"] if panel["type"] != "row"]


# --- count and identity --------------------------------------------------------------------------
def test_four_dashboards_none_forgotten():
    assert len(dashboards.DASHBOARDS) == 4
    assert [board["uid"] for board in BOARDS] == EXPECTED_UIDS
    # Every module of dashboards/ with a build() is registered, so none can drop out silently.
    builders = sorted(path.stem for path in DASHBOARDS_DIR.glob("*.py") if re.search(r"^def build\(", path.read_text(), re.M))
    assert builders == sorted(module.__name__.rsplit(".", 1)[1] for module in dashboards.DASHBOARDS)


def test_uids_are_stable_short_and_unique():
    assert [h.SERVICES_OVERVIEW_UID, h.SERVICE_DETAIL_UID, h.PIPELINE_HEALTH_UID] == APPLICATION_UIDS
    for board in BOARDS:
        assert len(board["uid"]) <= 40 and re.fullmatch(r"[a-z0-9-]+", board["uid"])
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), f"{board['uid']}: duplicate panel ids"


def test_json_is_deterministic_and_sorted(tmp_path):
    again = [h.to_json(board) for board in dashboards.build_all()]
    assert again == [h.to_json(board) for board in dashboards.build_all()]
    for text in again:
        assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"
    assert main(["dashboards", "build", "--out", str(tmp_path)]) == 0
    written = sorted(tmp_path.iterdir())
    assert [path.name for path in written] == sorted(f"{uid}.json" for uid in EXPECTED_UIDS)
    assert sorted(path.read_text() for path in written) == sorted(again)


# --- Grafana's schemas ---------------------------------------------------------------------------
@pytest.mark.parametrize("uid", EXPECTED_UIDS)
@pytest.mark.parametrize("fleet", [False, True], ids=["one-environment", "fleet"])
def test_dashboard_matches_grafana_schemas(uid, fleet):
    assert grafana_schema.dashboard_problems((FLEET_BY_UID if fleet else BY_UID)[uid]) == []


def _fails_somewhere(**relaxation) -> bool:
    return any(grafana_schema.dashboard_problems(board, **relaxation) for board in BOARDS)


@pytest.mark.parametrize(
    "schema, definition, key",
    [(s, d, k) for s, defs in grafana_schema.EXTRA_KEYS.items() for d, keys in defs.items() for k in keys],
)
def test_every_allowed_extra_key_is_needed(schema, definition, key):
    narrower = copy.deepcopy(grafana_schema.EXTRA_KEYS)
    narrower[schema][definition] = tuple(k for k in narrower[schema][definition] if k != key)
    assert _fails_somewhere(extra_keys=narrower), f"{schema}.{definition}.{key} is allowed but never written: remove it"


@pytest.mark.parametrize(
    "schema, definition, key",
    [(s, d, k) for s, defs in grafana_schema.CORRECTIONS.items() for d, keys in defs.items() for k in keys],
)
def test_every_schema_correction_is_needed(schema, definition, key):
    narrower = copy.deepcopy(grafana_schema.CORRECTIONS)
    del narrower[schema][definition][key]
    assert _fails_somewhere(corrections=narrower)


def test_accepting_nulls_is_needed():
    assert _fails_somewhere(nulls=False)


@pytest.mark.parametrize(
    "mistake",
    [
        lambda board: board["panels"][1].update(gridPos={"h": 8, "w": 30, "x": 0, "y": 0}),
        lambda board: board["panels"][1].update(colour="red"),
        lambda board: _first(board, "timeseries")["options"]["legend"].update(displayMode="sideways"),
        lambda board: _first(board, "timeseries")["targets"][0].update(format="csv"),
        lambda board: _first(board, "stat")["options"].pop("reduceOptions"),
        lambda board: board["templating"]["list"][1].pop("name"),
        lambda board: board.update(refresh=60),
    ],
)
def test_schema_check_catches_mistakes(mistake):
    board = copy.deepcopy(BOARDS[0])
    mistake(board)
    assert grafana_schema.dashboard_problems(board)


def _first(board: dict, panel_type: str) -> dict:
    return next(panel for panel in board["panels"] if panel["type"] == panel_type)


# --- panels, layout, queries ---------------------------------------------------------------------
@pytest.mark.parametrize("uid", EXPECTED_UIDS)
def test_modern_panels_on_the_grid_without_overlap(uid):
    occupied = set()
    for panel in BY_UID[uid]["panels"]:
        assert panel["type"] in MODERN_PANELS | {"row"}
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells


@pytest.mark.parametrize("uid", EXPECTED_UIDS)
def test_every_query_uses_the_datasource_variable_and_known_variables(uid):
    board = BY_UID[uid]
    variables = [variable["name"] for variable in board["templating"]["list"]]
    assert variables[0] == h.DATASOURCE_VARIABLE
    for panel in _panels(board):
        assert panel["datasource"] == h.DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == h.DATASOURCE
            used = set(re.findall(r"\$\{?(\w+)", target["expr"])) - {"1"}  # label_replace's capture reference
            assert used <= set(variables) | BUILTINS, f"{panel['title']}: unknown variables {used - set(variables) - BUILTINS}"
            # Every query is limited to the environments selected: on the fleet's global store a
            # query without it would mix every environment (Prometheus' own series included).
            if target["refId"] != h.THRESHOLD_REF:
                assert "$environment" in target["expr"], f"{panel['title']}: not filtered by environment"


def test_variables_are_the_issue_s_four():
    assert [v["name"] for v in BY_UID[h.SERVICE_DETAIL_UID]["templating"]["list"]] == ["datasource", "environment", "service", "instance"]
    assert [v["name"] for v in BY_UID[h.SERVICES_OVERVIEW_UID]["templating"]["list"]] == ["datasource", "environment", "service"]


def _variable(board: dict, name: str) -> dict:
    return next(v for v in board["templating"]["list"] if v["name"] == name)


@pytest.mark.parametrize("uid", EXPECTED_UIDS)
def test_the_environment_is_shown_once(uid):
    """One environment's Prometheus: the data source is the environment, its variable is hidden
    (still resolved: queries and links use it). The fleet's dashboards show it: the global store
    holds every environment. Nothing else differs: the same queries serve both data sources."""
    alone, fleet = BY_UID[uid], FLEET_BY_UID[uid]
    assert _variable(alone, "environment")["hide"] == 2 and _variable(fleet, "environment")["hide"] == 0
    assert all(v["hide"] == 0 for v in alone["templating"]["list"] if v["name"] != "environment")
    for variable in fleet["templating"]["list"]:
        variable["hide"] = _variable(alone, variable["name"])["hide"]
    assert fleet == alone


@pytest.mark.parametrize("uid, multi", [(h.SERVICES_OVERVIEW_UID, True), (h.PIPELINE_HEALTH_UID, True), (h.SERVICE_DETAIL_UID, False), (h.SWARM_UID, False)])
def test_overview_and_pipeline_take_several_environments(uid, multi):
    environment = _variable(FLEET_BY_UID[uid], "environment")
    assert (environment["multi"], environment["includeAll"]) == (multi, multi)
    assert environment["current"] == {"selected": False, "tags": [], "text": "", "value": ""}  # "All" or the first, as Grafana picks
    for panel in _panels(FLEET_BY_UID[uid]):
        for target in panel["targets"]:
            assert '!="$environment"' not in target["expr"] and 'environment="$environment"' not in target["expr"], panel["title"]


_BY = re.compile(r"\b(?:sum|max|min|avg|count|group)\s*(?:by\s*\(([^)]*)\))?\s*\(")


def test_pipeline_keeps_environments_apart():
    """On the global store, every line of the pipeline dashboard is one environment's: an
    Alertmanager that two environments scrape is not counted twice, nor two Prometheus added up."""
    for panel in _panels(BY_UID[h.PIPELINE_HEALTH_UID]):
        for target in panel["targets"]:
            if target["refId"] == h.THRESHOLD_REF:
                continue
            groupings = _BY.findall(target["expr"])
            assert groupings, panel["title"]
            # An aggregation without `by` only inside one that keeps the environment (group without (replica)).
            assert groupings[0] and all("environment" in by.split(", ") for by in groupings if by), f"{panel['title']}: {target['expr']}"
            if "{{" in target["legendFormat"]:
                assert target["legendFormat"].startswith("{{environment}}"), panel["title"]


def test_dashboards_link_to_each_other_keeping_time_and_variables():
    for board in BOARDS:
        targets = {link["url"] for link in board["links"]}
        assert targets <= {f"/d/{uid}" for uid in EXPECTED_UIDS if uid != board["uid"]}, board["uid"]
        # Every dashboard reaches each application dashboard (the swarm one is optional).
        assert targets >= {f"/d/{uid}" for uid in APPLICATION_UIDS if uid != board["uid"]}, board["uid"]
        assert all(link["includeVars"] and link["keepTime"] for link in board["links"])
    # The overview's service cells open the detail with that row's environment and service.
    table = _first(BY_UID[h.SERVICES_OVERVIEW_UID], "table")
    links = [prop["value"][0]["url"] for o in table["fieldConfig"]["overrides"] for prop in o["properties"] if prop["id"] == "links"]
    assert len(links) == 1 and links[0].startswith(f"/d/{h.SERVICE_DETAIL_UID}?")
    for variable in ("environment", "service", "datasource"):
        assert f"var-{variable}" in links[0] or f"${{{variable}:queryparam}}" in links[0]


def test_no_metric_name_is_typed_in_dashboards():
    """Metric names come from the catalogues; a string literal naming one is a second definition."""
    names = {metric.name for metric in c.all_metrics()}
    names |= {m.bucket for m in c.all_metrics()} | {m.count for m in c.all_metrics()} | {m.sum for m in c.all_metrics()}
    names |= {r.record for r in recording.RECORDINGS}
    names |= {value.name for value in vars(alert_upstream).values() if isinstance(value, c.Metric)}
    defined_here = {value.name for value in vars(upstream).values() if isinstance(value, c.Metric)}
    for path in DASHBOARDS_DIR.glob("*.py"):
        literals = {node.value for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        allowed = defined_here if path.name == "upstream.py" else set()
        assert not (literals & (names | defined_here)) - allowed, f"{path.name} types metric names {sorted(literals & names)}"


# --- units and thresholds ------------------------------------------------------------------------
UNITS_OF_THRESHOLDS = {"ratio": h.RATIO, "fraction": h.RATIO, "seconds": h.SECONDS, "per_minute": h.PER_MINUTE}
_PER_ENVIRONMENT = re.compile(r'label_replace\(vector\(([-+.e0-9]+)\), "environment", "(\w+)", "", ""\)')
_EVERYWHERE = re.compile(r"^vector\(([-+.e0-9]+)\)$")


def _threshold_panels():
    for board in BOARDS:
        for panel in _panels(board):
            for target in panel["targets"]:
                if target["refId"] == h.THRESHOLD_REF:
                    yield board["uid"], panel, target


def test_threshold_lines_equal_the_alert_catalogue_in_every_environment():
    checked = 0
    for uid, panel, target in _threshold_panels():
        alert = alert_catalogue_by_name(target["legendFormat"].split(" ")[0])
        line = h.ungated(target["expr"])
        values = {env: float(v) for v, env in _PER_ENVIRONMENT.findall(line)}
        everywhere = _EVERYWHERE.match(line)
        candidates = [name for name in alert.thresholds if UNITS_OF_THRESHOLDS.get(name) == panel["fieldConfig"]["defaults"]["unit"]]
        assert len(candidates) == 1, f"{uid} / {panel['title']}: unit {panel['fieldConfig']['defaults']['unit']} fits none of {alert.name}'s thresholds"
        expected = {env: alert.thresholds[candidates[0]].value(env) for env in ENVIRONMENTS}
        if everywhere:
            assert len(set(expected.values())) == 1 and float(everywhere.group(1)) == expected["production"]
        else:
            assert values == expected, f"{uid} / {panel['title']}"
        checked += 1
    assert checked >= 11  # the application dashboards alone draw 11 threshold lines


def test_threshold_lines_appear_only_when_the_data_comes_near():
    """A line far above the data would stretch the axis and flatten the data (docs/dashboards.md);
    a line that differs per environment is shown per environment, by that environment's data."""
    per_environment = 0
    for uid, panel, target in _threshold_panels():
        line = h.ungated(target["expr"])
        assert line != target["expr"], f"{uid} / {panel['title']}: threshold line drawn whatever the data"
        first = panel["targets"][0]["expr"]
        if _EVERYWHERE.match(line):
            assert target["expr"] == f"({line}) and on () (max({first}) >= min({line}) * {h.NEAR_THRESHOLD})", f"{uid} / {panel['title']}"
        else:
            gate = f"max by (environment) ({first}) >= on (environment) ({line}) * {h.NEAR_THRESHOLD}"
            assert target["expr"] == f"({line}) and on (environment) ({gate})", f"{uid} / {panel['title']}"
            per_environment += 1
    assert per_environment >= 8


@pytest.mark.parametrize(
    "errors, shown",
    [
        ({"production": 0.04, "beta": 0.001}, ["production"]),  # production near its 5 %, beta far below its 10 %
        ({"production": 0.001, "beta": 0.06}, ["beta"]),
        ({"production": 0.03, "beta": 0.07}, ["beta", "production"]),
        ({"production": 0.001, "beta": 0.001}, []),
    ],
    ids=["production-near", "beta-near", "both-near", "none-near"],
)
def test_each_environment_s_threshold_line_follows_its_own_data(errors, shown, tmp_path):
    """The fleet view's 5xx panel with both environments selected, evaluated by Prometheus' own
    engine (`promtool test rules`): an environment's dashed line only where its data comes near."""
    import yaml

    from alerting_tools import PROMTOOL, assert_ok, run

    from pharos_monitoring.dashboards import services_overview as o

    panel = next(panel for panel in _panels(BY_UID[h.SERVICES_OVERVIEW_UID]) if panel["title"] == "5xx ratio")
    text = {"environment": "(beta|production)", "service": "orders"}
    threshold = queries.substitute(next(t["expr"] for t in panel["targets"] if t["refId"] == h.THRESHOLD_REF), text)
    record = recording.HTTP_ERROR_RATIO.record
    inputs = [{"series": f'{record}{{environment="{env}", service="orders"}}', "values": f"{ratio}x10"} for env, ratio in errors.items()]
    expected = [{"labels": f'{{environment="{env}"}}', "value": o.ERROR_RATIO.value(env)} for env in shown]
    tests = {"rule_files": [], "evaluation_interval": "1m", "tests": [{"interval": "1m", "input_series": inputs, "promql_expr_test": [{"expr": threshold, "eval_time": "5m", "exp_samples": expected}]}]}
    (tmp_path / "lines.test.yml").write_text(yaml.safe_dump(tests))
    assert_ok(run(PROMTOOL, "test", "rules", "lines.test.yml", cwd=tmp_path))


def alert_catalogue_by_name(name: str):
    return next(alert for alert in alert_catalogue.ALERTS if alert.name == name)


def test_overview_table_judges_each_environment_by_its_own_thresholds():
    table = _first(BY_UID[h.SERVICES_OVERVIEW_UID], "table")
    closeness = table["targets"][0]["expr"]
    for alert, name in [
        (alert_catalogue.HIGH_ERROR_RATE, "ratio"),
        (alert_catalogue.HIGH_LATENCY, "seconds"),
        (alert_catalogue.SERVICE_INSTANCES_DOWN, "ratio"),
        (alert_catalogue.GC_TIME_HIGH, "fraction"),
        (alert_catalogue.MEMORY_NEAR_LIMIT, "ratio"),
    ]:
        assert str(h.AlertThreshold(alert, name).per_environment()) in closeness


@pytest.mark.parametrize("uid", EXPECTED_UIDS)
def test_every_panel_has_a_unit(uid):
    known = {h.RATIO, h.SECONDS, h.BYTES, h.BYTES_PER_SECOND, h.REQUESTS_PER_SECOND, h.PER_SECOND, h.PER_MINUTE, h.COUNT}
    for panel in _panels(BY_UID[uid]):
        if panel["type"] == "table":
            units = [p["value"] for o in panel["fieldConfig"]["overrides"] for p in o["properties"] if p["id"] == "unit"]
            assert len(units) == len(panel["targets"]) and set(units) <= known, panel["title"]
        elif panel["type"] != "state-timeline":
            assert panel["fieldConfig"]["defaults"]["unit"] in known, panel["title"]


def test_units_follow_what_is_measured():
    for board in BOARDS:
        for panel in _panels(board):
            unit = panel["fieldConfig"]["defaults"].get("unit")
            title = panel["title"].lower()
            if "latency" in title or "duration" in title or title == "uptime":
                assert unit == h.SECONDS, panel["title"]
            if re.search(r"\bratio\b|vs\.|time in gc|gc time", title):
                assert unit == h.RATIO, panel["title"]
            if "memory" in title and "vs." not in title:
                assert unit == h.BYTES, panel["title"]


@pytest.mark.parametrize(
    "value, unit, text",
    [
        (0.0534, h.RATIO, "5.34%"),
        (0.25, h.SECONDS, "250 ms"),
        (90, h.SECONDS, "1.5 min"),
        (3 * 1024**2, h.BYTES, "3 MiB"),
        (2048, h.BYTES_PER_SECOND, "2 KiB/s"),
        (4.15, h.REQUESTS_PER_SECOND, "4.15 req/s"),
        (12, h.PER_MINUTE, "12 cpm"),
        (1500, h.COUNT, "1.5 K"),
    ],
)
def test_renderer_formats_units_as_grafana(value, unit, text):
    assert format_value(value, unit) == text


def test_variable_substitution_formats_as_grafana():
    # Grafana's Prometheus data source (interpolateQueryExpr): several values as (a|b), one as it
    # is, each regex-escaped; a single-value variable's value escaped for the string only.
    assert queries.format_selection(["production", "alpha"], multi=True) == "(production|alpha)"
    assert queries.format_selection(["production"], multi=True) == "production"
    assert queries.format_selection(["127.0.0.1:9841"], multi=True) == "127\\\\.0\\\\.0\\\\.1:9841"
    assert queries.format_selection(["127.0.0.1:9841", "a|b"], multi=True) == "(127\\\\.0\\\\.0\\\\.1:9841|a\\\\|b)"
    assert queries.format_selection(["127.0.0.1:9841"], multi=False) == "127.0.0.1:9841"
    assert queries.substitute('up{job=~"$job", x="${x}"}[$__rate_interval]', {"job": "(a|b)", "x": "y", "__rate_interval": "1m"}) == 'up{job=~"(a|b)", x="y"}[1m]'
    # label_replace's capture references are not variables (Grafana leaves them alone too).
    assert queries.substitute('label_replace(up, "g", "$1", "job", "(.*)")', {}) == 'label_replace(up, "g", "$1", "job", "(.*)")'
    with pytest.raises(queries.VariableError, match=r"\$nope"):
        queries.substitute("up{a=~\"$nope\"}", {})


class _Labels:
    """A data source answering label-value questions only: every environment, service and instance."""

    def label_values(self, label, match, start, end):
        return {"environment": ["alpha", "beta", "production"], "service": ["orders"], "instance": ["127.0.0.1:1"]}[label]


def test_several_environments_are_selected_as_grafana_selects_them():
    overview, detail = FLEET_BY_UID[h.SERVICES_OVERVIEW_UID], FLEET_BY_UID[h.SERVICE_DETAIL_UID]
    everything = queries.resolve_variables(overview, _Labels(), 0, 1, {})
    assert everything.text["environment"] == "(alpha|beta|production)"  # All
    two = queries.resolve_variables(overview, _Labels(), 0, 1, {}, {"environment": ["beta", "production"]})
    assert (two.selected["environment"], two.text["environment"]) == (["beta", "production"], "(beta|production)")
    assert queries.resolve_variables(detail, _Labels(), 0, 1, {}).text["environment"] == "alpha"  # the first
    with pytest.raises(queries.VariableError, match=r"\$environment takes one value, not beta, production"):
        queries.resolve_variables(detail, _Labels(), 0, 1, {}, {"environment": ["beta", "production"]})


def test_build_with_fleet_writes_the_fleet_dashboards(tmp_path):
    assert main(["dashboards", "build", "--fleet", "--out", str(tmp_path)]) == 0
    assert sorted(path.read_text() for path in tmp_path.iterdir()) == sorted(h.to_json(board) for board in dashboards.build_all(fleet=True))


# --- readability (issue 14) ----------------------------------------------------------------------
def _timeseries():
    return [(board["uid"], panel) for board in BOARDS for panel in _panels(board) if panel["type"] == "timeseries"]


def test_legends_are_tables_below_the_graph():
    for uid, panel in _timeseries():
        legend = panel["options"]["legend"]
        assert (legend["placement"], legend["displayMode"], legend["showLegend"]) == ("bottom", "table", True), f"{uid} / {panel['title']}"
        assert legend["calcs"] == h.LEGEND_CALCS


def test_series_at_zero_over_the_range_are_hidden():
    for uid, panel in _timeseries():
        assert h.hide_zero_series_override() in panel["fieldConfig"]["overrides"], f"{uid} / {panel['title']}"


# Stat and table cells an alert watches, by title, and the alert threshold they compare with.
WATCHED = {
    "5xx": (alert_catalogue.HIGH_ERROR_RATE, "ratio"),
    "5xx responses": (alert_catalogue.HIGH_ERROR_RATE, "ratio"),
    "p99": (alert_catalogue.HIGH_LATENCY, "seconds"),
    "p99 latency": (alert_catalogue.HIGH_LATENCY, "seconds"),
    "GC time (worst instance)": (alert_catalogue.GC_TIME_HIGH, "fraction"),
    "Memory vs. limit (fullest)": (alert_catalogue.MEMORY_NEAR_LIMIT, "ratio"),
}


def _cells():
    """(dashboard, title, colour steps or None) of every stat and every table column."""
    for board in BOARDS:
        for panel in _panels(board):
            if panel["type"] == "stat":
                yield board["uid"], panel["title"], panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            elif panel["type"] == "table":
                titles = next(t["options"] for t in panel["transformations"] if t["id"] == "organize")["renameByName"]
                for override in panel["fieldConfig"]["overrides"]:
                    name = override["matcher"]["options"]
                    if name in titles:
                        props = {prop["id"]: prop["value"] for prop in override["properties"]}
                        yield board["uid"], titles[name], props.get("thresholds", {}).get("steps")


def test_every_cell_an_alert_watches_is_coloured_from_the_alert_catalogue():
    checked = 0
    for uid, title, steps in _cells():
        if title in WATCHED:
            alert, name = WATCHED[title]
            strictest = min(alert.thresholds[name].value(env) for env in ENVIRONMENTS)
            assert steps is not None, f"{uid} / {title}: no colours"
            assert [s["color"] for s in steps] == ["green", "orange", "red"], f"{uid} / {title}"
            assert steps[2]["value"] == strictest and steps[1]["value"] == pytest.approx(strictest * h.WARN_SHARE), f"{uid} / {title}"
            checked += 1
    assert checked >= 7  # overview: the 5xx stat and 4 columns; detail: 5xx and p99 of the routes table


def test_overview_names_the_worst_signal_beside_it():
    from pharos_monitoring.dashboards import services_overview

    table = _first(BY_UID[h.SERVICES_OVERVIEW_UID], "table")
    titles = next(t["options"] for t in table["transformations"] if t["id"] == "organize")["renameByName"]
    assert list(titles.values())[:2] == ["Worst vs. alert threshold", "Worst signal"]
    mappings = next(p["value"] for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "Value #B" for p in o["properties"] if p["id"] == "mappings")
    shown = {code: option["text"] for code, option in mappings[0]["options"].items()}
    assert shown == {str(code): name for code, name in enumerate(services_overview.SIGNALS, 1)}
    # Each signal's threshold is in the query that names it, in the same order as the names.
    assert str(services_overview._relative_signals()) in table["targets"][1]["expr"]


_WINDOW = re.compile(r"\[([^\]]+)\]")
_RECORDED_WINDOW = re.compile(r":\w*rate(\w+)\b")


def test_one_rate_window_per_panel():
    """Lines over different windows in one panel disagree (a total below one of its parts)."""
    for board in BOARDS:
        for panel in _panels(board):
            windows = set()
            for target in panel["targets"]:
                if target["refId"] != h.THRESHOLD_REF:
                    windows |= set(_WINDOW.findall(target["expr"])) | set(_RECORDED_WINDOW.findall(target["expr"]))
            assert len(windows) <= 1, f"{board['uid']} / {panel['title']}: windows {sorted(windows)}"


@pytest.mark.parametrize("uid", EXPECTED_UIDS)
def test_every_panel_sits_in_a_collapsible_row(uid):
    panels = BY_UID[uid]["panels"]
    assert panels[0]["type"] == "row", "panels above the first row cannot be collapsed"
    assert all(row["collapsed"] is False for row in panels if row["type"] == "row")


# --- annotations ---------------------------------------------------------------------------------
@pytest.mark.parametrize("uid", [h.SERVICES_OVERVIEW_UID, h.SERVICE_DETAIL_UID])
def test_overview_and_detail_mark_alerts_restarts_and_deploys(uid):
    board = BY_UID[uid]
    annotations = board["annotations"]["list"]
    assert [a["name"] for a in annotations] == ["Alerts firing", "Restarts", "Deploys"]
    variables = {variable["name"] for variable in board["templating"]["list"]}
    for annotation in annotations:
        assert annotation["datasource"] == h.DATASOURCE and annotation["enable"]
        used = set(re.findall(r"\$\{?(\w+)", annotation["expr"]))
        assert "environment" in used and used <= variables, annotation["name"]
    assert c.START_TIME.name in annotations[1]["expr"] and c.RUNTIME_INFO.name in annotations[2]["expr"]
    # Grafana's dashboard schema checks the annotation queries (test_dashboard_matches_grafana_schemas);
    # this proves it looks at them.
    broken = copy.deepcopy(board)
    broken["annotations"]["list"][0]["iconColour"] = "red"
    assert grafana_schema.dashboard_problems(broken)


# --- Swarm: OOM kills ----------------------------------------------------------------------------
def _columns(panel: dict) -> dict[str, tuple[str, dict]]:
    """{column title: (its query, its override properties)} of a table panel."""
    titles = next(t["options"] for t in panel["transformations"] if t["id"] == "organize")["renameByName"]
    exprs = {f"Value #{target['refId']}": target["expr"] for target in panel["targets"]}
    props = {o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]} for o in panel["fieldConfig"]["overrides"]}
    return {title: (exprs[name], props.get(name, {})) for name, title in titles.items()}


@pytest.mark.parametrize("title, keys", [("Services", "service"), ("Recent task failures", "service, node")])
def test_swarm_tables_name_oom_kills_red_where_the_alert_fired(title, keys):
    from pharos_monitoring.dashboards import swarm

    table = next(panel for panel in _panels(BY_UID[h.SWARM_UID]) if panel["title"] == title)
    oom = [(name, column) for name, column in _columns(table).items() if "OOM kills" in name]
    assert len(oom) == 1, f"{title}: no OOM kills column"
    expr, props = oom[0][1]
    assert expr.startswith(f"sum by ({keys}) (increase({c.SWARM_CONTAINER_OOM_KILLS.name}{{") and f"[{swarm.RECENT}])" in expr
    # SwarmContainerOOMKilled fires on any kill (`increase(...) > 0`): red from the first one.
    assert alert_catalogue.SWARM_CONTAINER_OOM_KILLED.expression("production").endswith(" > 0")
    assert props["thresholds"]["steps"] == [{"value": None, "color": "green"}, {"value": 1, "color": "red"}]
    assert props["decimals"] == 0 and props["custom.cellOptions"]["type"] == "color-background"


def test_event_colours_follow_the_alert_s_rule():
    import dataclasses

    from pharos_monitoring.alerts import promql as q

    oom = alert_catalogue.SWARM_CONTAINER_OOM_KILLED
    stricter = dataclasses.replace(oom, expr=lambda t: q.Expr(f"increase({c.SWARM_CONTAINER_OOM_KILLS.name}[5m]) > 2"))
    assert [s["value"] for s in h.event_color_steps(stricter)] == [None, 3]
    with pytest.raises(ValueError, match="AlertThreshold.color_steps"):
        h.event_color_steps(alert_catalogue.SWARM_TASK_RESTART_LOOP)
    with pytest.raises(ValueError, match="is not `count > N`"):
        h.event_color_steps(dataclasses.replace(oom, expr=lambda t: q.Expr("absent(up)")))
