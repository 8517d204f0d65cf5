"""Every dashboard against a live Prometheus that scraped the real exporter in front of real demo
services (tests/stack.py): each variable must list values, each panel query must return data,
and `pharos dashboards render` must draw every dashboard from it."""

from __future__ import annotations

import io
import time

import pytest

from pharos_monitoring.dashboards import house, queries
from pharos_monitoring.dashboards.prometheus import Prometheus
from pharos_monitoring.exporter import catalogue as c

from dashboard_checks import APPLICATION_DASHBOARDS, QUERY_WINDOW_SECONDS, dashboards_json, plan, report, without_data

pytestmark = pytest.mark.slow

# Grafana's built-ins as it would set them for a one-hour view of a Prometheus scraping every second.
BUILTINS = {"__rate_interval": "15s", "__interval": "5s", "__range": "1h"}
RETRY_SECONDS = 60  # a query may need a little more history than the warm-up gave it


@pytest.fixture(scope="module")
def warm_stack(live_stack):
    """The live stack once every kind of series the dashboards read has arrived."""
    from pharos_monitoring.alerts import recording as r

    from pharos_monitoring.dashboards import upstream as u

    needed = [
        r.HTTP_ERROR_RATIO.record,
        r.HTTP_LATENCY_P99.record,
        r.GC_TIME_RATIO.record,
        r.MEMORY_USED_RATIO.record,
        f"rate({c.PROCESS_CPU.name}[{BUILTINS['__rate_interval']}])",
        f"{u.ALERTS.name}",
        'rate(alertmanager_notifications_total{integration="webhook"}[15s]) > 0',
    ]
    missing = live_stack.wait_for(needed, limit=120)
    assert not missing, f"the live stack never produced {missing}"
    return live_stack


def test_every_variable_and_panel_query_returns_data(warm_stack):
    prometheus = Prometheus(warm_stack.prometheus_url)
    boards = dashboards_json()
    assert [board["uid"] for board in boards] == list(APPLICATION_DASHBOARDS)

    planned = []
    for board in boards:
        # Every variable (but the datasource) resolves to at least one real value.
        planned += plan(board, prometheus, BUILTINS)[1]
    empty = without_data(prometheus, planned, RETRY_SECONDS)
    assert not empty, report(empty, len(planned))


def test_annotation_queries_run(warm_stack):
    """Alerts, restarts and deploys are events the test stack may not have had: each query must
    run (no syntax or variable error) over the last hour, with the dashboard's variables."""
    prometheus = Prometheus(warm_stack.prometheus_url)
    checked = 0
    for board in dashboards_json():
        end = time.time()
        resolution = queries.resolve_variables(board, prometheus, end - 3600, end, BUILTINS)
        for annotation in board.get("annotations", {}).get("list", []):
            prometheus.range(queries.substitute(annotation["expr"], resolution.text), end - 3600, end, 60)
            checked += 1
    assert checked == 6


def test_overview_names_the_worst_signal(warm_stack):
    """'Worst signal' names the signal whose value 'Worst vs. alert threshold' shows."""
    from pharos_monitoring.dashboards import services_overview as o

    prometheus = Prometheus(warm_stack.prometheus_url)
    text = {"environment": ".*", "service": ".*"}
    worst = {tuple(s.labels.values()): s.points[0][1] for s in prometheus.instant(queries.substitute(str(o.worst_signal()), text))}
    relative = prometheus.instant(queries.substitute(str(o._relative_signals()), text))
    assert worst
    for key, code in worst.items():
        mine = {s.labels[o.SIGNAL]: s.points[0][1] for s in relative if tuple(s.labels[k] for k in o.BY_SERVICE) == key}
        assert mine[o.SIGNALS[int(code) - 1]] == max(mine.values()), (key, mine)


def test_alert_threshold_lines_equal_the_catalogue(warm_stack):
    """The dashed threshold series Prometheus computes are the alert's threshold in each environment."""
    from pharos_monitoring.dashboards import service_detail, services_overview

    prometheus = Prometheus(warm_stack.prometheus_url)
    thresholds = [
        services_overview.ERROR_RATIO,
        services_overview.LATENCY,
        services_overview.UNAVAILABLE,
        services_overview.GC_TIME,
        services_overview.MEMORY,
        service_detail.FULL_GCS,
    ]
    checked = 0
    for threshold in thresholds:
        for series in prometheus.instant(str(threshold.per_environment())):
            environment = series.labels["environment"]
            assert series.points[0][1] == pytest.approx(threshold.value(environment)), (threshold.alert.name, environment)
            checked += 1
    assert checked == len(thresholds) * 3


def test_render_draws_every_dashboard_with_data(warm_stack):
    from PIL import Image

    from pharos_monitoring.dashboards import render

    prometheus = Prometheus(warm_stack.prometheus_url)
    end = time.time()
    window = render.Window(end - QUERY_WINDOW_SECONDS, end, scrape_interval=5)
    for board in dashboards_json():
        rendering = render.render(board, prometheus, window)
        image = Image.open(io.BytesIO(rendering.png))
        rows = max(panel["gridPos"]["y"] + panel["gridPos"]["h"] for panel in board["panels"])
        assert image.format == "PNG" and image.size == (24 * render.COLUMN_PX, render.HEADER_PX + rows * render.ROW_PX)
        drawn = [panel for panel in board["panels"] if panel["type"] != "row"]
        assert [outcome.title for outcome in rendering.panels] == [panel["title"] for panel in drawn]
        assert rendering.errors == [] and rendering.empty == [], (board["uid"], rendering.errors, rendering.empty)
        # Not a blank page: most of each panel's pixels are not the page background.
        assert len(image.getcolors(maxcolors=1024) or range(1025)) > 16


def test_render_command_writes_pngs(warm_stack, tmp_path, capsys):
    from pharos_monitoring.cli import main

    arguments = ["dashboards", "render", "--prometheus", warm_stack.prometheus_url, "--out", str(tmp_path)]
    assert main(arguments + ["--from", "-2m", "--scrape-interval", "5s", "--var", "environment=production", "--dashboard", "pharos-service-detail"]) == 0
    assert [path.name for path in tmp_path.iterdir()] == ["pharos-service-detail.png"]
    assert "0 failed" in capsys.readouterr().out
    assert main(arguments + ["--var", "environment=staging", "--dashboard", "pharos-service-detail"]) == 1
    assert "environment: staging not among its values" in capsys.readouterr().err
