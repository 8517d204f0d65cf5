"""Our conventions on top of grafanalib: the one module of house helpers the dashboards share.

grafanalib (`grafanalib.core`) is the neutral model of Grafana's JSON; this module is our house
style layered on it, as grafanalib's own `weave.py` is Weaveworks'. It decides, once for every
dashboard:

- the Prometheus datasource is a variable (`${datasource}`), and every other variable is named
  after the label it filters (`$environment`, `$service`, `$instance`), so a selector is built from
  label names alone (`scoped`);
- every query is limited to the environments selected and keeps them apart (`environment` in
  every grouping), so that the same query serves one environment's Prometheus and the fleet's
  global store, where all environments sit side by side. The environment variable is shown only
  on dashboards built for a fleet (`environment_variable`): on one environment's Prometheus the
  data source already is the environment, and a second picker would show it twice;
- only modern panel types (TimeSeries, Stat, Table, StateTimeline), with the options Grafana 10+
  expects filled in through grafanalib's `extraJson`;
- a panel compared with an alert draws the alert's threshold as a dashed red series, computed in
  PromQL from the alert catalogue for each environment on screen (`AlertThreshold`): thresholds
  differ per environment, and a static Grafana threshold could only show one of them. An
  environment's line is drawn only once that environment's data comes within `NEAR_THRESHOLD` of
  it, so a threshold far above the data never flattens the data against the bottom of the axis
  (the axis follows the data), and one environment near its line draws no other's;
- readable at a glance: legends below the graph as tables (mean, max, last), series that stay at
  zero over the whole range hidden, each series coloured by its name so that it keeps its colour
  from panel to panel (`SERIES_COLORS`), and every stat or table cell an alert watches coloured
  by steps taken from the alert catalogue (`AlertThreshold.color_steps`, `event_color_steps`);
- panels are laid out left to right in rows of 24 columns (`Layout`), ids follow layout order,
  and JSON is written with sorted keys, so the same code always gives the same bytes.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import attr
from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

from pharos_monitoring.alerts import promql as q
from pharos_monitoring.alerts.model import ENVIRONMENTS, Alert
from pharos_monitoring.alerts.upstream import ALERTNAME, SEVERITY
from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L

SCHEMA_VERSION = 39  # the dashboard schema of Grafana 10.4 and 11; grafanalib's default (12) predates TimeSeries
TAGS = ("pharos",)
DATASOURCE_VARIABLE = "datasource"
DATASOURCE = {"type": "prometheus", "uid": "${" + DATASOURCE_VARIABLE + "}"}
GRID_COLUMNS = 24
RATE_WINDOW = "$__rate_interval"  # Grafana picks at least four scrape intervals

# Grafana unit ids (grafana/packages/grafana-data/src/valueFormats/categories.ts).
RATIO = "percentunit"  # 0..1 shown as 0..100 %
SECONDS = "s"
BYTES = "bytes"
BYTES_PER_SECOND = "Bps"
REQUESTS_PER_SECOND = "reqps"
PER_SECOND = "cps"  # counts per second
PER_MINUTE = "cpm"  # counts per minute
COUNT = "short"
CORES = "percentunit"  # CPU seconds per second: 100 % is one core

GREEN, ORANGE, RED, BLUE, GREY = "green", "orange", "red", "blue", "text"
SERVER_ERRORS = q.matches(L.STATUS, "5..")  # HTTP 5xx responses
THRESHOLD_REF = "T"  # refId of the alert-threshold series of a panel
LEGEND_PLACEMENT = "bottom"  # below the graph: the graph keeps the panel's full width
LEGEND_CALCS = ["mean", "max", "lastNotNull"]
# A series' colour comes from its name (the legend text), not from its place in the panel: the
# same service and environment is one colour in every panel (Grafana's field colour mode; the
# renderer applies the same rule, render.series_color).
SERIES_COLORS = "palette-classic-by-name"
# An environment's threshold line appears once its largest value in the panel reaches this share
# of its threshold: the axis then spans at most twice the data, never a flat line at the bottom.
NEAR_THRESHOLD = 0.5
# Table cells and stats an alert watches: orange from this share of the threshold, red at it.
WARN_SHARE = 0.8
# Joins a threshold line to the condition that shows it (see `near`): one condition for a line
# that is the same everywhere, one per environment for lines that differ.
_NEAR_GATE = ") and on () ("
_NEAR_GATE_PER_ENVIRONMENT = f") and on ({L.ENVIRONMENT}) ("

# Stable uids: links between the dashboards and bookmarks depend on them.
SERVICES_OVERVIEW_UID = "pharos-services-overview"
SERVICE_DETAIL_UID = "pharos-service-detail"
PIPELINE_HEALTH_UID = "pharos-pipeline-health"
SWARM_UID = "pharos-swarm"


# --- variables -----------------------------------------------------------------------------------
def datasource_variable() -> g.Template:
    # An empty current value lets Grafana take the default data source: the environment's
    # Prometheus. Any other Prometheus-type source can be chosen, the fleet's global store too
    # (VictoriaMetrics answers Prometheus' query API).
    return g.Template(name=DATASOURCE_VARIABLE, label="Data source", query="prometheus", type="datasource", default="")


def label_variable(
    label: str,
    title: str,
    source: c.Metric,
    within: Sequence[str] = (),
    multi: bool = False,
    extra: Iterable[q.Matcher] = (),
    shown: bool = True,
) -> g.Template:
    """A variable named after `label`, listing its values on `source` within the variables `within`.
    A multi-value variable offers "All" and selects it by default."""
    query = f"label_values({scoped(source.name, *within, extra=extra)}, {label})"
    return g.Template(
        name=label,
        label=title,
        query=query,
        dataSource=DATASOURCE,
        refresh=g.REFRESH_ON_TIME_RANGE_CHANGE,
        multi=multi,
        includeAll=multi,
        sort=g.SORT_ALPHA_IGNORE_CASE_ASC,
        default="",
        hide=g.SHOW if shown else g.HIDE_VARIABLE,
    )


def environment_variable(source: c.Metric, fleet: bool, multi: bool = False, extra: Iterable[q.Matcher] = ()) -> g.Template:
    """`$environment`, listing the environments that have `source`.

    Built for a fleet (`fleet=True`), it is shown: on the global store it lists every environment,
    and a multi-value one selects them all by default, side by side. Built for one environment's
    Prometheus, it is hidden, as a multi-cluster mixin hides its cluster variable: the data source
    already is the environment, a second picker would only show it again. Hidden, it still takes
    its value (the one environment, or what a link's `var-environment` says), so every query and
    link works the same on both kinds of data source.
    """
    return label_variable(L.ENVIRONMENT, "Environment", source, multi=multi, extra=extra, shown=fleet)


def scoped(name: str, *labels: str, extra: Iterable[q.Matcher] = ()) -> q.Expr:
    """`name{label=~"$label", ...}`: a selector limited to what the dashboard's variables select."""
    return q.selector(name, *(q.matches(label, "$" + label) for label in labels), *extra)


def selected_or_unlabelled(label: str) -> q.Matcher:
    """`label=~"$label|"`: the selected values, and series without the label. A Prometheus' alerts
    on aggregates (the Watchdog) have no `environment` on its own data source; in the global store
    they have it (the `environment` external label is added on remote write)."""
    return q.matches(label, "$" + label + "|")


# --- alert thresholds ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AlertThreshold:
    """One threshold of one alert of the catalogue, as the dashboards show it."""

    alert: Alert
    name: str

    def __post_init__(self) -> None:
        if self.name not in self.alert.thresholds:
            raise KeyError(f"alert {self.alert.name} has no threshold {self.name!r}; it has {sorted(self.alert.thresholds)}")

    def value(self, environment: str) -> float:
        return self.alert.thresholds[self.name].value(environment)

    @property
    def default(self) -> float:
        return self.alert.thresholds[self.name].default

    def per_environment(self) -> q.Expr:
        """One series per known environment, `{environment="..."}`, whose value is the threshold there."""
        series = [
            q.Expr(f'label_replace({q.vector(self.value(env))}, "{L.ENVIRONMENT}", "{env}", "", "")')
            for env in ENVIRONMENTS
        ]
        expr = series[0]
        for more in series[1:]:
            expr = q.either(expr, more)
        return expr

    @property
    def same_everywhere(self) -> bool:
        return len({self.value(env) for env in ENVIRONMENTS}) == 1

    def line(self, on_screen: q.Expr) -> q.Expr:
        """The threshold of every environment that `on_screen` (series with an environment label) shows."""
        if self.same_everywhere:
            return q.vector(self.default)  # also right for series that carry no environment label
        return q.binary(
            self.per_environment(),
            "and",
            q.aggregate("group", on_screen, by=(L.ENVIRONMENT,)),
            f"on ({L.ENVIRONMENT})",
        )

    def relative(self, signal: q.Expr) -> q.Expr:
        """`signal` divided by its environment's threshold: 1 means "at the alert threshold".

        Environments the catalogue does not know are held to the default threshold.
        """
        known = q.binary(signal, "/", self.per_environment(), f"on ({L.ENVIRONMENT}) group_left ()")
        return q.either(known, q.binary(signal, "/", self.default))

    def near(self, on_screen: q.Expr, signal: q.Expr) -> q.Expr:
        """`line(on_screen)`, but each environment's line only while that environment's `signal`
        reaches `NEAR_THRESHOLD` of its threshold: a line far above the data would stretch the axis
        and flatten the data, and on the fleet view one environment near its threshold should not
        draw the others' lines. A threshold that is the same everywhere is one line, shown while
        any environment's signal comes near it."""
        line = self.line(on_screen)
        if self.same_everywhere:
            reached = q.binary(q.aggregate("max", signal), ">=", q.binary(q.aggregate("min", line), "*", NEAR_THRESHOLD))
            return q.Expr(f"({line}{_NEAR_GATE}{reached})")
        reached = q.binary(q.max_by((L.ENVIRONMENT,), signal), ">=", q.binary(line, "*", NEAR_THRESHOLD), f"on ({L.ENVIRONMENT})")
        return q.Expr(f"({line}{_NEAR_GATE_PER_ENVIRONMENT}{reached})")

    def color_steps(self) -> list[dict]:
        """Colour steps for a stat or table cell: one Grafana threshold holds one value, so the
        strictest environment's threshold. A cell is never green where its environment alerts;
        the overview's "worst vs. alert threshold" judges each environment by its own."""
        strictest = min(self.value(env) for env in ENVIRONMENTS)
        return steps((None, GREEN), (round(strictest * WARN_SHARE, 12), ORANGE), (strictest, RED))

    @property
    def legend(self) -> str:
        if self.same_everywhere:
            return f"{self.alert.name} threshold"
        return f"{self.alert.name} threshold ({{{{{L.ENVIRONMENT}}}}})"


_FIRES_ABOVE = re.compile(r" > ([0-9.e+-]+)$")


def event_color_steps(alert: Alert) -> list[dict]:
    """Colour steps for a count of the events `alert` fires on (an OOM kill): an alert without a
    named threshold, whose rule is `count > N` in every environment. Green while the count stays
    at N, red from the first whole event above it: where the cell is red, the alert fired."""
    if alert.thresholds:
        raise ValueError(f"alert {alert.name} has thresholds {sorted(alert.thresholds)}: colour its cells with AlertThreshold.color_steps")
    limits = set()
    for environment in ENVIRONMENTS:
        found = _FIRES_ABOVE.search(alert.expression(environment))
        if not found:
            raise ValueError(f"alert {alert.name} is not `count > N` in {environment}: {alert.expression(environment)}")
        limits.add(float(found.group(1)))
    if len(limits) != 1:
        raise ValueError(f"alert {alert.name} fires above {sorted(limits)} in different environments: one cell colour cannot show them")
    return steps((None, GREEN), (math.floor(limits.pop()) + 1, RED))


def ungated(expr: str) -> str:
    """A threshold query without the condition `AlertThreshold.near` added: the line itself."""
    for gate in (_NEAR_GATE_PER_ENVIRONMENT, _NEAR_GATE):
        if gate in expr:
            return expr.rsplit(gate, 1)[0].removeprefix("(")
    return expr


# --- queries -------------------------------------------------------------------------------------
@attr.s
class PrometheusTarget(g.Target):
    """grafanalib's Target without the keys it writes for Graphite and pre-7 Grafana (`target`,
    `metric`, `query`, `step`), which Grafana's Prometheus query model does not have."""

    def to_json_data(self):
        data = super().to_json_data()
        for legacy in ("target", "metric", "query", "step"):
            data.pop(legacy)
        return data


@attr.s
class Section(g.RowPanel):
    """grafanalib's RowPanel keeps every attribute of a panel; a Grafana row has only these."""

    def to_json_data(self):
        data = super().to_json_data()
        return {key: data[key] for key in ("collapsed", "gridPos", "id", "panels", "title", "type")}


def target(expr: q.Expr | str, legend: str = "", ref: str = "A", instant: bool = False, table: bool = False) -> g.Target:
    return PrometheusTarget(
        expr=str(expr),
        legendFormat=legend,
        refId=ref,
        instant=instant,
        format=g.TABLE_TARGET_FORMAT if table else g.TIME_SERIES_TARGET_FORMAT,
        datasource=DATASOURCE,
    )


def steps(*pairs: tuple[float | None, str]) -> list[dict]:
    """Grafana threshold steps from (value, colour) pairs; the first value is None (minus infinity)."""
    return [{"value": value, "color": color} for value, color in pairs]


def legend_for(*labels: str) -> str:
    return " ".join("{{" + label + "}}" for label in labels)


# --- panels --------------------------------------------------------------------------------------
def _field_thresholds(pairs: Sequence[dict]) -> dict:
    return {"mode": "absolute", "steps": list(pairs)}


def timeseries(
    title: str,
    description: str,
    targets: Sequence[g.Target],
    unit: str,
    threshold: tuple[AlertThreshold, q.Expr] | None = None,
    stacked: bool = False,
    soft_max: float | None = None,
) -> g.TimeSeries:
    """A TimeSeries with its legend below as a table sorted worst (largest) first; series that
    stay at zero over the range are hidden.

    `threshold` = (alert threshold, series on screen) adds the alert's threshold as a dashed red
    series for each environment shown, once the first query's values come near it.
    """
    targets = list(targets)
    overrides = [hide_zero_series_override()]
    if threshold is not None:
        alert_threshold, on_screen = threshold
        line = alert_threshold.near(on_screen, q.Expr(targets[0].expr))
        targets.append(target(line, alert_threshold.legend, THRESHOLD_REF))
        overrides.append(threshold_line_override())
    custom_extra = {"axisSoftMin": 0}
    if soft_max is not None:
        custom_extra["axisSoftMax"] = soft_max
    return g.TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=targets,
        unit=unit,
        colorMode=SERIES_COLORS,
        fillOpacity=10 if not stacked else 40,
        stacking={"mode": "normal", "group": "A"} if stacked else {"mode": "none"},
        lineWidth=1,
        showPoints="never",
        legendDisplayMode="table",
        legendPlacement=LEGEND_PLACEMENT,
        legendCalcs=list(LEGEND_CALCS),
        tooltipMode="multi",
        tooltipSort="desc",
        overrides=overrides,
        maxDataPoints=None,
        extraJson={
            "fieldConfig": {"defaults": {"custom": custom_extra, "thresholds": _field_thresholds(steps((None, GREEN)))}},
            "options": {"legend": {"showLegend": True, "sortBy": "Max", "sortDesc": True}},
        },
    )


def hide_zero_series_override() -> dict:
    """Grafana's answer to the old graph panel's hideZero: a series whose largest value over the
    range is 0 (all our series are >= 0) is left out of the graph, the legend and the tooltip."""
    return {
        "matcher": {"id": "byValue", "options": {"reducer": "max", "op": "lte", "value": 0}},
        "properties": [{"id": "custom.hideFrom", "value": {"legend": True, "tooltip": True, "viz": True}}],
    }


def threshold_line_override() -> dict:
    return {
        "matcher": {"id": "byFrameRefID", "options": THRESHOLD_REF},
        "properties": [
            {"id": "color", "value": {"mode": "fixed", "fixedColor": RED}},
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "custom.lineWidth", "value": 2},
            {"id": "custom.fillOpacity", "value": 0},
        ],
    }


def stat(
    title: str,
    description: str,
    targets: Sequence[g.Target],
    unit: str,
    thresholds: Sequence[dict] = (),
    decimals: int | None = None,
    graph: bool = False,
    no_value: str = "no data",
) -> g.Stat:
    """A Stat showing the last value of each series, coloured by `thresholds` (blue when none);
    `no_value` is what it says when no series has a value (why, where that is normal)."""
    return g.Stat(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=list(targets),
        format=unit,
        decimals=decimals,
        colorMode="background" if thresholds else "value",
        graphMode="area" if graph else "none",
        reduceCalc="lastNotNull",
        textMode="value_and_name" if len(targets) > 1 else "value",
        thresholds=list(thresholds) or steps((None, BLUE)),
        noValue=no_value,
        maxDataPoints=None,
        extraJson={
            "options": {"wideLayout": True, "showPercentChange": False, "percentChangeColorMode": "standard"},
        },
    )


@dataclass(frozen=True)
class Column:
    """One value column of a table: the instant query `expr` (one row per label set), its title,
    unit, colour steps and value mappings (a number shown as a word, see `value_names`)."""

    title: str
    expr: q.Expr
    unit: str = COUNT
    thresholds: Sequence[dict] = ()
    decimals: int | None = None
    mappings: Sequence[dict] = ()


def value_names(names: Sequence[str]) -> list[dict]:
    """Grafana value mappings that show 1, 2, ... as `names` (PromQL values are numbers only)."""
    return [{"type": "value", "options": {str(code): {"text": name, "index": code - 1} for code, name in enumerate(names, 1)}}]


def table(title: str, description: str, keys: Sequence[str], columns: Sequence[Column], sort_by: str, links: Sequence[dict] = ()) -> g.Table:
    """A table with one row per value of the `keys` labels and one column per `Column`, merged
    from instant queries and sorted by the column titled `sort_by`, largest first."""
    refs = [chr(ord("A") + index) for index in range(len(columns))]
    targets = [target(column.expr, ref=ref, instant=True, table=True) for column, ref in zip(columns, refs)]
    # The merge gives each query's values a column named "Value #<refId>"; organize keeps the
    # keys and the values, in that order, under their titles.
    value_names = [f"Value #{ref}" for ref in refs]
    index = {name: position for position, name in enumerate(list(keys) + value_names)}
    organize = {
        "id": "organize",
        "options": {
            "excludeByName": {"Time": True},
            "indexByName": index,
            "renameByName": {name: column.title for name, column in zip(value_names, columns)},
            "includeByName": {name: True for name in index},
        },
    }
    overrides = []
    for name, column in zip(value_names, columns):
        properties = [{"id": "unit", "value": column.unit}]
        if column.decimals is not None:
            properties.append({"id": "decimals", "value": column.decimals})
        if column.mappings:
            properties.append({"id": "mappings", "value": list(column.mappings)})
        if column.thresholds:
            properties.append({"id": "thresholds", "value": _field_thresholds(column.thresholds)})
            properties.append({"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}})
        overrides.append({"matcher": {"id": "byName", "options": name}, "properties": properties})
    for link in links:
        overrides.append(link)
    return g.Table(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=targets,
        transformations=[{"id": "merge", "options": {}}, organize],
        overrides=overrides,
        sortBy=[g.TableSortByField(displayName=sort_by, desc=True)],
        maxDataPoints=None,
        extraJson={
            "fieldConfig": {"defaults": {"thresholds": _field_thresholds(steps((None, GREY))), "custom": {"inspect": False}}},
            "options": {"frameIndex": 0, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "countRows": False}},
        },
    )


def column_link(column: str, title: str, url: str) -> dict:
    """A field override that turns the cells of `column` into a link (Grafana data-link syntax)."""
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [{"id": "links", "value": [{"title": title, "url": url}]}],
    }


def state_timeline(title: str, description: str, targets: Sequence[g.Target], states: Sequence[tuple[float, str, str]]) -> g.StateTimeline:
    """A StateTimeline whose values are the `states` (value, text, colour): 1 healthy, 0 not."""
    mappings = [
        {"type": "value", "options": {format(value, "g"): {"text": text, "color": color, "index": position}}}
        for position, (value, text, color) in enumerate(states)
    ]
    return g.StateTimeline(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=list(targets),
        mappings=mappings,
        colorMode="thresholds",
        showValue="never",
        rowHeight=0.8,
        maxDataPoints=None,
        extraJson={"fieldConfig": {"defaults": {"thresholds": _field_thresholds(steps((None, GREY)))}}, "options": {"legend": {"showLegend": False, "calcs": []}, "tooltip": {"sort": "none"}}},
    )


# --- annotations ---------------------------------------------------------------------------------
EVENT_STEP = "1m"  # the step of the event queries, and the window in which they look for a change


def annotation(name: str, expr: q.Expr, title: str, text: str, color: str, tags: Sequence[str] = ()) -> dict:
    """A Prometheus annotation query: every sample of `expr` marks the graphs at its time (a run
    of samples, a region)."""
    return {
        "name": name,
        "datasource": DATASOURCE,
        "enable": True,
        "hide": False,
        "iconColor": color,
        "expr": str(expr),
        "step": EVENT_STEP,
        "titleFormat": title,
        "textFormat": text,
        "tagKeys": ",".join(tags),
        "useValueForTime": False,
    }


def event_annotations(*scope: str) -> list[dict]:
    """Alerts firing, instance restarts and deploys of what the variables `scope` select: what
    changed just before a graph did."""
    from . import upstream as u  # dashboards/upstream.py: the ALERTS series

    # A service's alerts have no instance label: an instance filter would hide them.
    firing = scoped(u.ALERTS.name, *(label for label in scope if label != L.INSTANCE), extra=(q.eq(u.ALERT_STATE, u.FIRING),))
    start = scoped(c.START_TIME.name, *scope)
    # The start time is computed from the uptime and moves by up to a second between scrapes.
    restarted = q.above(q.binary(start, "-", q.Expr(f"{start} offset {EVENT_STEP}")), 5)
    instance = (L.ENVIRONMENT, L.SERVICE, L.INSTANCE)
    info = scoped(c.RUNTIME_INFO.name, *scope)
    before = q.Expr(f"{info} offset {EVENT_STEP}")
    versions = instance + (L.APP_VERSION,)
    # A version an instance did not run a step ago, on an instance that was there (not a new one).
    deployed = q.binary(
        q.unless(q.aggregate("group", info, by=versions), q.aggregate("group", before, by=versions)),
        "and",
        q.aggregate("group", before, by=instance),
        f"on ({', '.join(instance)})",
    )
    return [
        annotation("Alerts firing", firing, "{{" + ALERTNAME + "}}", legend_for(L.SERVICE, L.INSTANCE), RED, (ALERTNAME, SEVERITY)),
        annotation("Restarts", restarted, "restart", legend_for(L.SERVICE, L.INSTANCE), ORANGE, (L.SERVICE,)),
        annotation("Deploys", deployed, "deploy {{" + L.APP_VERSION + "}}", legend_for(L.SERVICE, L.INSTANCE), BLUE, (L.SERVICE,)),
    ]


# --- layout and dashboards -----------------------------------------------------------------------
class Layout:
    """Places panels left to right in rows of 24 columns; `section` starts a titled row."""

    def __init__(self) -> None:
        self.panels: list = []
        self._x = 0
        self._y = 0
        self._row_height = 0

    def _new_line(self) -> None:
        self._y += self._row_height
        self._x = 0
        self._row_height = 0

    def section(self, title: str) -> None:
        self._new_line()
        self.panels.append(Section(title=title, gridPos=g.GridPos(h=1, w=GRID_COLUMNS, x=0, y=self._y), collapsed=False, panels=[]))
        self._y += 1

    def add(self, panel, width: int, height: int) -> None:
        if not 0 < width <= GRID_COLUMNS:
            raise ValueError(f"panel {panel.title!r}: width {width} is not within 1..{GRID_COLUMNS}")
        if self._x + width > GRID_COLUMNS:
            self._new_line()
        self.panels.append(attr.evolve(panel, gridPos=g.GridPos(h=height, w=width, x=self._x, y=self._y)))
        self._x += width
        self._row_height = max(self._row_height, height)


def link_to(title: str, uid: str, tooltip: str) -> g.DashboardLink:
    """A link to another Pharos dashboard that keeps the time range and the variables."""
    return g.DashboardLink(
        title=title,
        type="link",
        uri=f"/d/{uid}",
        tooltip=tooltip,
        icon="dashboard",
        includeVars=True,
        keepTime=True,
    )


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: Sequence[g.Template],
    layout: Layout,
    links: Sequence[g.DashboardLink],
    annotations: Sequence[dict] = (),
) -> g.Dashboard:
    return g.Dashboard(
        uid=uid,
        title=title,
        description=description,
        tags=list(TAGS),
        editable=False,  # generated: change the code, not the dashboard
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        refresh="1m",
        time=g.Time("now-1h", "now"),
        timezone="browser",
        schemaVersion=SCHEMA_VERSION,
        templating=g.Templating(list=list(variables)),
        panels=layout.panels,
        links=list(links),
        annotations=g.Annotations(list=list(annotations)),
    ).auto_panel_ids()


def to_json(dashboard: g.Dashboard) -> str:
    """The dashboard as Grafana JSON: sorted keys, two-space indent, a final newline."""
    return json.dumps(dashboard.to_json_data(), cls=DashboardEncoder, sort_keys=True, indent=2) + "\n"
