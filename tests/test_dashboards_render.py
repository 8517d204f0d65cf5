"""`pharos dashboards render` without a Prometheus: its time range flags, and how it draws what a
(fake) Prometheus answers: series colours by name, table headers, threshold lines per environment."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone

import pytest

from pharos_monitoring.cli import main
from pharos_monitoring.dashboards import cli, render

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc).timestamp()
AT_0805 = datetime(2026, 12, 6, 8, 5, tzinfo=timezone.utc).timestamp()


# --- --from and --to -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, before, at",
    [
        ("now", 0, None),
        ("-15m", 900, None),
        ("now-6h", 6 * 3600, None),
        ("1h", 3600, None),  # --from always took a bare duration as "before"
        ("2026-12-06T08:05:00Z", None, AT_0805),
        ("2026-12-06T09:05:00+01:00", None, AT_0805),
        ("2026-12-06T08:05:00.5Z", None, AT_0805 + 0.5),
        (str(int(AT_0805)), None, AT_0805),
        (f"{AT_0805:.3f}", None, AT_0805),
    ],
)
def test_time_points_are_read_in_every_form(text, before, at):
    point = cli._time_point(text)
    assert (point.before, point.at) == (before, at)


@pytest.mark.parametrize("text", ["yesterday", "-1y", "now+1h", "2026-13-01T00:00:00Z", "", "--1h"])
def test_a_time_that_is_none_of_the_forms_says_which_forms_there_are(text):
    with pytest.raises(argparse.ArgumentTypeError, match="RFC3339.*unix seconds.*-DURATION"):
        cli._time_point(text)


def test_a_time_without_a_zone_is_refused_rather_than_guessed():
    with pytest.raises(argparse.ArgumentTypeError, match="no time zone: end it with Z"):
        cli._time_point("2026-12-06T08:05:00")


@pytest.mark.parametrize(
    "since, until, expected",
    [
        ("-1h", "now", (NOW - 3600, NOW)),
        ("-1h", "-30m", (NOW - 5400, NOW - 1800)),  # relative --to: before now
        ("-10m", "2026-12-06T08:05:00Z", (AT_0805 - 600, AT_0805)),  # relative --from: before --to
        ("now-10m", str(int(AT_0805)), (AT_0805 - 600, AT_0805)),
        ("2026-12-06T08:00:00Z", "2026-12-06T08:05:00Z", (AT_0805 - 300, AT_0805)),
        ("2026-12-06T08:00:00Z", "now", (AT_0805 - 300, NOW)),
    ],
)
def test_from_counts_back_from_to(since, until, expected):
    assert cli.time_range(cli._time_point(since), cli._time_point(until), NOW) == expected


def test_a_range_that_ends_before_it_starts_is_refused_naming_both_flags():
    with pytest.raises(ValueError, match=r"--from 2026-12-06T08:10:00Z is not before --to 2026-12-06T08:05:00Z"):
        cli.time_range(cli._time_point("2026-12-06T08:10:00Z"), cli._time_point("2026-12-06T08:05:00Z"), NOW)


def _render_arguments(tmp_path, *more: str) -> list[str]:
    return ["dashboards", "render", "--prometheus", "http://127.0.0.1:1", "--out", str(tmp_path), "--dashboard", "pharos-services-overview", *more]


@pytest.mark.parametrize("flag", ["--to", "--from"])
def test_a_bad_time_is_an_error_naming_the_flag(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as stopped:
        main(_render_arguments(tmp_path, flag, "tomorrow"))
    assert stopped.value.code == 2
    assert f"argument {flag}: 'tomorrow' is not a time" in capsys.readouterr().err


def test_the_command_draws_the_range_it_is_given(tmp_path, capsys, monkeypatch):
    """The window given to the renderer, and variables resolved over it, end at --to."""
    windows = []

    def fake_render(board, prometheus, window, chosen=None):
        windows.append(window)
        return render.Rendering(b"png")

    monkeypatch.setattr(render, "render", fake_render)
    assert main(_render_arguments(tmp_path, "--from", "-10m", "--to", "2026-12-06T08:05:00Z")) == 0
    assert [(w.start, w.end) for w in windows] == [(AT_0805 - 600, AT_0805)]
    assert main(_render_arguments(tmp_path, "--from", "2026-12-06T08:10:00Z", "--to", "2026-12-06T08:05:00Z")) == 2
    assert "--from 2026-12-06T08:10:00Z is not before --to 2026-12-06T08:05:00Z" in capsys.readouterr().err
    assert len(windows) == 1


# --- drawing what a Prometheus answers -----------------------------------------------------------
class FakePrometheus:
    """Answers every query with one series per environment of `values` ({environment: value}),
    labelled with every label the dashboards' legends name; `values_for(expr)` may vary them per
    query. Alert-threshold lines (`label_replace(vector(...` ) answer as Prometheus would not:
    the renderer's part is only to draw what comes back."""

    LABELS = {"service": "orders", "instance": "orders-1", "job": "orders", "route": "/api", "method": "GET"}

    def __init__(self, values_for):
        self.values_for = values_for
        self.queries: list[str] = []

    def label_values(self, label, match, start, end):
        return ["beta", "production"] if label == "environment" else [self.LABELS.get(label, "x")]

    def _series(self, expr: str, times: list[float]):
        self.queries.append(expr)
        return [
            render.Series({**self.LABELS, "environment": environment}, [(t, value) for t in times])
            for environment, value in self.values_for(expr).items()
        ]

    def range(self, expr, start, end, step):
        return self._series(expr, [start + step * i for i in range(int((end - start) // step) + 1)])

    def instant(self, expr, at=None):
        return self._series(expr, [at])


def _overview() -> dict:
    from pharos_monitoring.dashboards import house, services_overview

    return json.loads(house.to_json(services_overview.build()))


def test_a_series_has_one_colour_in_every_panel_whatever_its_place():
    """Production orders is the largest series in some panels, the smallest in others: drawn by
    its place in the legend, its colour would change from panel to panel."""
    import zlib

    def values_for(expr: str) -> dict[str, float]:
        production_on_top = zlib.crc32(expr.encode()) % 2 == 0
        return {"production": 2.0 if production_on_top else 1.0, "beta": 1.0 if production_on_top else 2.0}

    board = _overview()
    window = render.Window(NOW - 600, NOW, 15)
    rendering = render.render(board, FakePrometheus(values_for), window)
    drawn = [panel for panel in rendering.panels if panel.colors]
    assert len(drawn) >= 5
    for name in ("production orders", "beta orders"):
        assert {panel.colors[name] for panel in drawn} == {render.series_color(name)}, name
    # It matters: production is first in some panels' legends and second in others'.
    firsts = {next(iter(sorted(panel.colors, key=lambda n: -values_for_panel(board, panel.title, values_for)[n]))) for panel in drawn}
    assert firsts == {"production orders", "beta orders"}
    assert render.series_color("production orders") != render.series_color("beta orders")


def values_for_panel(board: dict, title: str, values_for) -> dict[str, float]:
    panel = next(p for p in board["panels"] if p.get("title") == title)
    return {f"{env} orders": value for env, value in values_for(_substituted(panel["targets"][0]["expr"])).items()}


def _substituted(expr: str) -> str:
    from pharos_monitoring.dashboards import queries

    text = {"environment": "(beta|production)", "service": "orders", "__rate_interval": "60s", "__interval": "15s", "__range": "600s"}
    return queries.substitute(expr, text)


def test_every_time_series_panel_colours_series_by_name():
    from pharos_monitoring import dashboards
    from pharos_monitoring.dashboards import house

    for board in dashboards.build_all():
        data = json.loads(house.to_json(board))
        for panel in data["panels"]:
            if panel["type"] == "timeseries":
                assert panel["fieldConfig"]["defaults"]["color"] == {"mode": "palette-classic-by-name"}, f"{data['uid']} / {panel['title']}"


def test_series_colours_follow_grafana_s_string_hash():
    # Java's String.hashCode, which Grafana's stringHash is: "hello" -> 99162322, and it wraps.
    assert render._string_hash("hello") == 99162322
    assert render._string_hash("production orders") == -529184724
    assert render._string_hash("") == 0
    assert render.series_color("production orders") == render.PALETTE[529184724 % len(render.PALETTE)]


# --- table headers -------------------------------------------------------------------------------
def _all_boards() -> list[dict]:
    from pharos_monitoring import dashboards
    from pharos_monitoring.dashboards import house

    return [json.loads(house.to_json(board)) for board in dashboards.build_all()]


def _headers(board: dict) -> list[str]:
    found = []
    for panel in board["panels"]:
        if panel["type"] == "table":
            organize = next(t["options"] for t in panel["transformations"] if t["id"] == "organize")
            found += [organize["renameByName"].get(name, name) for name in organize["indexByName"]]
    return found


def _drawn_figure(board: dict, monkeypatch):
    """The figure `render` draws for `board` from the fake Prometheus, before it becomes a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvases = []
    monkeypatch.setattr(render, "_png", lambda canvas: canvases.append(canvas) or b"")
    rendering = render.render(board, FakePrometheus(lambda expr: {"production": 2.0, "beta": 1.0}), render.Window(NOW - 600, NOW, 15))
    assert not rendering.errors
    agg = FigureCanvasAgg(canvases[0].figure)
    agg.draw()
    return canvases[0].figure, agg.get_renderer()


def _header_fit(board: dict, monkeypatch) -> dict[str, bool]:
    """{header: drawn on two lines} of every table of `board`; fails on a header outside its cell."""
    figure, renderer = _drawn_figure(board, monkeypatch)
    wrapped = {}
    for table in (table for ax in figure.axes for table in ax.tables):
        for (row, _), cell in table.get_celld().items():
            if row != 0:
                continue
            box, text = cell.get_window_extent(renderer), cell.get_text().get_window_extent(renderer)
            title = cell.get_text().get_text()
            assert box.x0 <= text.x0 and text.x1 <= box.x1, f"{board['uid']}: header {title!r} is {text.width:.0f} px in a {box.width:.0f} px cell"
            assert box.y0 <= text.y0 and text.y1 <= box.y1, f"{board['uid']}: header {title!r} is taller than its cell"
            wrapped[title.replace("\n", " ")] = "\n" in title
    return wrapped


def test_every_table_header_fits_its_cell(monkeypatch):
    boards = _all_boards()
    for board in boards:
        assert set(_header_fit(board, monkeypatch)) == set(_headers(board))


def test_the_longest_header_wraps_to_fit_a_narrow_table(monkeypatch):
    boards = _all_boards()
    longest = max((header for board in boards for header in _headers(board)), key=len)
    assert longest == "Memory vs. limit (fullest)"  # the overview's, one of its twelve columns
    overview = next(board for board in boards if longest in _headers(board))
    table = next(panel for panel in overview["panels"] if panel["type"] == "table")
    table["gridPos"]["w"] = 12  # the table at half its width: 12 columns in 760 px
    wrapped = _header_fit(overview, monkeypatch)
    assert wrapped[longest] is True


def test_a_header_that_fits_stays_on_one_line_in_full_size_type():
    assert render._fit_header("Missing", 200) == ("Missing", render.TABLE_FONT)
    title, size = render._fit_header("Memory vs. limit (fullest)", 100)
    assert title == "Memory vs.\nlimit (fullest)" and size == render.TABLE_FONT  # the break that balances the lines
    title, size = render._fit_header("Memory vs. limit (fullest)", 40)  # too narrow for two lines: smaller type
    assert "\n" in title and render.HEADER_MIN_FONT <= size < render.TABLE_FONT
