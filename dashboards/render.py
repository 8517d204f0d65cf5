"""`pharos dashboards render`: a dashboard drawn to a PNG with live data from Prometheus.

Not Grafana, but what a reviewer needs to judge a dashboard change without one: every panel at
its grid position with its title; time series with a legend (sorted by maximum, as the
dashboards sort theirs), units on the y axis and the alert thresholds as dashed red lines; stat
values coloured by their thresholds; tables merged, sorted and coloured as the dashboard says;
state timelines. Queries are the dashboard's own, with its variables resolved as Grafana would
(dashboards/queries.py). Times are UTC.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display: draw into memory only

from matplotlib import dates as mdates  # noqa: E402 - after choosing the backend
from matplotlib import ticker  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from . import house as h  # noqa: E402
from .prometheus import Prometheus, PrometheusError, Series  # noqa: E402
from .queries import resolve_variables, substitute  # noqa: E402
from .units import format_value  # noqa: E402

COLUMN_PX = 64  # 24 columns: 1536 px wide
ROW_PX = 30  # Grafana's grid row height
HEADER_PX = 56
MARGIN_PX = 4
TITLE_PX = 22
DPI = 100
MAX_POINTS = 240  # per series: about one every 6 px of a full-width panel
BACKGROUND, PANEL, BORDER, TEXT, MUTED = "#f4f5f5", "#ffffff", "#d8d9da", "#24292e", "#6e7173"
# Grafana's named colours and its classic palette.
NAMED = {h.GREEN: "#56a64b", h.RED: "#e02f44", h.ORANGE: "#ff780a", h.BLUE: "#3274d9", h.GREY: "#8e8e8e"}
# Series are coloured by a hash of their name (`series_color`): the more colours, the fewer names
# that share one in a panel. Grafana's classic colours, the light shades left out (unreadable on white).
PALETTE = (
    "#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0", "#508642", "#cca300", "#447ebc", "#c15c17",
    "#890f02", "#0a437c", "#6d1f62", "#584477", "#629e51", "#e5ac0e", "#64b0c8", "#e0752d", "#bf1b00", "#0a50a1", "#962d82", "#614d93",
)
UTC = timezone.utc
TABLE_FONT, HEADER_MIN_FONT = 6.8, 4.5  # points; a header shrinks to the second only when two lines are not enough
TABLE_ROW_PX = 17
LEGEND_LINE_PX = 12.5  # one legend entry: 6.2 pt text at DPI with matplotlib's label spacing (11 let the last ones spill out of the panel)
_LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class Window:
    """The time range, and Grafana's built-in intervals for it."""

    start: float
    end: float
    scrape_interval: float = 15.0

    @property
    def step(self) -> float:
        return max(self.scrape_interval, math.ceil((self.end - self.start) / MAX_POINTS))

    def builtins(self) -> dict[str, str]:
        # Grafana: $__rate_interval = max($__interval + scrape interval, 4 * scrape interval).
        rate = max(self.step + self.scrape_interval, 4 * self.scrape_interval)
        return {"__interval": f"{self.step:g}s", "__rate_interval": f"{rate:g}s", "__range": f"{self.end - self.start:.0f}s"}


@dataclass
class PanelOutcome:
    title: str
    type: str
    series: int = 0
    error: str = ""
    colors: dict[str, str] = field(default_factory=dict)  # of a time series: legend name -> colour drawn


@dataclass
class Rendering:
    png: bytes
    panels: list[PanelOutcome] = field(default_factory=list)

    @property
    def errors(self) -> list[PanelOutcome]:
        return [panel for panel in self.panels if panel.error]

    @property
    def empty(self) -> list[PanelOutcome]:
        return [panel for panel in self.panels if not panel.error and panel.series == 0]


@dataclass
class _Drawn:
    """One query's result, named as its legend says."""

    ref: str
    name: str
    series: Series


# --- data ----------------------------------------------------------------------------------------
def legend_name(legend: str, labels: Mapping[str, str]) -> str:
    if legend:
        return _LEGEND_LABEL.sub(lambda match: labels.get(match.group(1), ""), legend).strip()
    pairs = ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items()) if key != "__name__")
    return labels.get("__name__", "") + "{" + pairs + "}"


def _load(panel: dict, prometheus: Prometheus, variables: Mapping[str, str], window: Window, ranged: bool) -> list[_Drawn]:
    drawn = []
    for query in panel.get("targets", []):
        expr = substitute(query["expr"], variables)
        if ranged:
            result = prometheus.range(expr, window.start, window.end, window.step)
        else:
            result = prometheus.instant(expr, window.end)
        legend = query.get("legendFormat", "")
        drawn += [_Drawn(query["refId"], legend_name(legend, series.labels), series) for series in result]
    return drawn


def _string_hash(text: str) -> int:
    """Grafana's `stringHash` (Java's String.hashCode): 31 * hash + code unit over the UTF-16 code
    units, in signed 32-bit arithmetic."""
    value = 0
    encoded = text.encode("utf-16-le")
    for index in range(0, len(encoded), 2):
        value = (value * 31 + int.from_bytes(encoded[index : index + 2], "little")) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def series_color(name: str) -> str:
    """The colour of the series named `name` under `palette-classic-by-name` (house.SERIES_COLORS),
    as Grafana picks it: the palette colour at |hash(name)| modulo the palette's length. The same
    name has the same colour in every panel and every picture; two names may share one."""
    return PALETTE[abs(_string_hash(name)) % len(PALETTE)]


def _finite(values: Sequence[float]) -> list[float]:
    return [value for value in values if math.isfinite(value)]


def threshold_color(value: float, steps: Sequence[dict]) -> str:
    color = steps[0]["color"] if steps else h.GREY
    for step in steps:
        if step["value"] is not None and value >= step["value"]:
            color = step["color"]
    return NAMED.get(color, color)


def _overrides_for(panel: dict, name: str) -> dict:
    """Properties of the field overrides matching field `name` by name, as {property id: value}."""
    found = {}
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        if override["matcher"] == {"id": "byName", "options": name}:
            found.update({prop["id"]: prop["value"] for prop in override["properties"]})
    return found


# --- geometry ------------------------------------------------------------------------------------
class _Canvas:
    def __init__(self, grid_rows: int):
        self.width = h.GRID_COLUMNS * COLUMN_PX
        self.height = HEADER_PX + grid_rows * ROW_PX
        self.figure = Figure(figsize=(self.width / DPI, self.height / DPI), dpi=DPI, facecolor=BACKGROUND)

    def rect(self, left_px: float, top_px: float, width_px: float, height_px: float) -> list[float]:
        """Figure coordinates (left, bottom, width, height) of a box given in pixels from the top left."""
        return [left_px / self.width, 1 - (top_px + height_px) / self.height, width_px / self.width, height_px / self.height]

    def text(self, left_px: float, top_px: float, text: str, **style) -> None:
        self.figure.text(left_px / self.width, 1 - top_px / self.height, text, va="top", ha=style.pop("ha", "left"), **style)

    def box(self, left_px: float, top_px: float, width_px: float, height_px: float, color: str, edge: str = BORDER, layer: float = -2) -> None:
        """A filled rectangle; below the axes (zorder 0) unless `layer` says otherwise."""
        left, bottom, width, height = self.rect(left_px, top_px, width_px, height_px)
        rectangle = Rectangle((left, bottom), width, height, transform=self.figure.transFigure, facecolor=color, edgecolor=edge, linewidth=0.8, zorder=layer)
        self.figure.add_artist(rectangle)


@dataclass(frozen=True)
class _Area:
    """A panel's content area in pixels (below its title)."""

    left: float
    top: float
    width: float
    height: float


# --- panels --------------------------------------------------------------------------------------
def _no_data(canvas: _Canvas, area: _Area, message: str = "No data", color: str = MUTED) -> None:
    canvas.text(area.left + area.width / 2, area.top + area.height / 2 - 6, message, ha="center", fontsize=8, color=color, wrap=True)


def _time_axis(ax, window: Window, width_px: float) -> None:
    ax.set_xlim(datetime.fromtimestamp(window.start, UTC), datetime.fromtimestamp(window.end, UTC))
    seconds = window.end - window.start <= 3 * 60
    label_px = 56 if seconds else 38  # room one tick label needs
    locator = mdates.AutoDateLocator(minticks=2, maxticks=max(3, int(width_px // label_px)), tz=UTC)
    locator.intervald[mdates.MINUTELY] = [1, 2, 5, 10, 15, 30]  # matplotlib's default jumps from 1 to 5
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S" if seconds else "%H:%M", tz=UTC))
    ax.tick_params(labelsize=6.5, colors=MUTED, length=2)
    for spine in ax.spines.values():
        spine.set_color(BORDER)


def _draw_timeseries(canvas: _Canvas, area: _Area, panel: dict, drawn: list[_Drawn], window: Window) -> dict[str, str]:
    """Draws the panel; returns the colour of each data series drawn, by name."""
    defaults = panel["fieldConfig"]["defaults"]
    by_name = defaults.get("color", {}).get("mode") == h.SERIES_COLORS
    unit = defaults.get("unit", "")
    stacked = defaults.get("custom", {}).get("stacking", {}).get("mode") == "normal"
    data = [d for d in drawn if d.ref != h.THRESHOLD_REF]
    thresholds = [d for d in drawn if d.ref == h.THRESHOLD_REF]
    hidden = 0
    if h.hide_zero_series_override() in panel["fieldConfig"].get("overrides", []):
        shown = [d for d in data if max(_finite([v for _, v in d.series.points]) or [0.0]) > 0]
        hidden, data = len(data) - len(shown), shown
    below = panel.get("options", {}).get("legend", {}).get("placement") == "bottom"
    legend_width = area.width * 0.38 if panel["gridPos"]["w"] >= 8 and not below else 0
    legend_height = min(area.height * 0.4, LEGEND_LINE_PX * (len(data) + len(thresholds)) + 4) if below and data else 0
    plot_width = area.width - 58 - legend_width
    ax = canvas.figure.add_axes(canvas.rect(area.left + 52, area.top + 4, plot_width, area.height - 20 - legend_height))
    ax.set_facecolor(PANEL)
    _time_axis(ax, window, plot_width)
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: format_value(value, unit)))
    ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=4))
    ax.grid(True, color="#eeeeee", linewidth=0.6)

    # Worst first, as the dashboards' legends are sorted (by maximum, descending).
    data.sort(key=lambda d: max(_finite([v for _, v in d.series.points]) or [-math.inf]), reverse=True)
    baseline: dict[float, float] = {}
    entries = []
    plotted: list[float] = []  # what the axis must show: stacked sums, not the raw values
    colors = {}
    for index, item in enumerate(data):
        color = series_color(item.name) if by_name else PALETTE[index % len(PALETTE)]  # else Grafana's palette-classic: by index
        colors[item.name] = color
        times = [t for t, _ in item.series.points]
        values = [v for _, v in item.series.points]
        if stacked:
            bottoms = [baseline.get(t, 0.0) for t in times]
            values = [b + (v if math.isfinite(v) else 0.0) for b, v in zip(bottoms, values)]
            baseline.update(zip(times, values))
        stamps = [datetime.fromtimestamp(t, UTC) for t in times]
        ax.plot(stamps, values, color=color, linewidth=1)
        plotted += values
        if stacked:
            ax.fill_between(stamps, bottoms, values, color=color, alpha=0.35, linewidth=0)
        finite = _finite([v for _, v in item.series.points])
        entries.append((Line2D([], [], color=color, linewidth=2), (item.name, f"  max {format_value(max(finite), unit) if finite else '-'}")))
    for item in thresholds:
        stamps = [datetime.fromtimestamp(t, UTC) for t, _ in item.series.points]
        values = [v for _, v in item.series.points]
        ax.plot(stamps, values, color=NAMED[h.RED], linewidth=1.2, linestyle=(0, (5, 4)))
        plotted += values
        entries.append((Line2D([], [], color=NAMED[h.RED], linewidth=1.2, linestyle=(0, (5, 4))), (item.name, "")))
    _y_range(ax, defaults.get("custom", {}), plotted)
    if not data:
        _no_data(canvas, area, f"{hidden} series, all at 0 over the range (hidden)" if hidden else "No data", color=MUTED)
    if legend_height and entries:
        _legend(canvas, _Area(area.left + 8, area.top + area.height - legend_height + 4, area.width - 8, legend_height), area.width - 8, entries)
    elif legend_width and entries:
        _legend(canvas, area, legend_width, entries)
    return colors


def _legend(canvas: _Canvas, area: _Area, width: float, entries: list[tuple[Line2D, tuple[str, str]]]) -> None:
    """The legend at the right of (or below) a time series, in the last `width` pixels of `area`:
    as many entries as fit, names shortened to fit."""
    fits = max(1, int((area.height - 4) // LEGEND_LINE_PX))
    shown = entries[:fits] if len(entries) <= fits else entries[: fits - 1]
    room = int((width - 28) / 4.7)  # characters of 6.2 pt text that fit
    handles, labels = [e[0] for e in shown], [_shorten(name, room - len(suffix)) + suffix for _, (name, suffix) in shown]
    if len(shown) < len(entries):
        handles.append(Line2D([], [], color=PANEL))
        labels.append(f"... {len(entries) - len(shown)} more")
    legend_ax = canvas.figure.add_axes(canvas.rect(area.left + area.width - width, area.top, width - 4, area.height))
    legend_ax.axis("off")
    legend_ax.legend(handles, labels, loc="upper left", fontsize=6.2, frameon=False, handlelength=1.5, borderaxespad=0, labelspacing=0.35)


def _y_range(ax, custom: dict, values: list[float]) -> None:
    """The data's range, stretched to Grafana's soft limits (axisSoftMin, axisSoftMax), with headroom."""
    finite = _finite(values) or [0.0]
    low, high = min(finite), max(finite)
    if custom.get("axisSoftMin") is not None:
        low = min(low, custom["axisSoftMin"])
    if custom.get("axisSoftMax") is not None:
        high = max(high, custom["axisSoftMax"])
    if high <= low:
        high = low + 1  # a flat line at the bottom, not one in the middle of nowhere
    ax.set_ylim(low, high + (high - low) * 0.05)


def _shorten(text: str, room: int) -> str:
    """`text` cut to `room` characters in the middle, keeping its start and its end."""
    if len(text) <= room:
        return text
    room = max(room, 9)
    head = (room - 1) // 3
    return text[:head] + "…" + text[len(text) - (room - 1 - head) :]


def _draw_stat(canvas: _Canvas, area: _Area, panel: dict, drawn: list[_Drawn]) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    unit, decimals = defaults.get("unit", ""), defaults.get("decimals")
    steps = defaults.get("thresholds", {}).get("steps", [])
    background = panel.get("options", {}).get("colorMode") == "background"
    if not drawn:
        _no_data(canvas, area, defaults.get("noValue", "No data"))
        return
    count = len(drawn)
    columns = min(count, max(1, int(area.width // 110)))
    rows = math.ceil(count / columns)
    cell_width, cell_height = area.width / columns, area.height / rows
    for index, item in enumerate(drawn):
        value = item.series.points[-1][1]
        left = area.left + (index % columns) * cell_width
        top = area.top + (index // columns) * cell_height
        color = threshold_color(value, steps)
        if background:
            canvas.box(left + 2, top + 2, cell_width - 4, cell_height - 4, color, edge=color, layer=-1)
        text_color = "#ffffff" if background else NAMED[h.BLUE]
        size = max(8.0, min(26.0, cell_height * 0.42, cell_width * 0.16))
        show_name = count > 1
        if show_name:
            canvas.text(left + cell_width / 2, top + 5, item.name, ha="center", fontsize=6.5, color=text_color if background else MUTED)
        canvas.text(left + cell_width / 2, top + (cell_height - size * 1.3) / 2 + (5 if show_name else 0), format_value(value, unit, decimals), ha="center", fontsize=size, color=text_color, weight="bold")


def _table_rows(panel: dict, drawn: list[_Drawn]) -> tuple[list[str], list[str], list[list[float | str]]]:
    """Keys, value-field names and rows of a table panel: the `merge` of its instant queries,
    shaped by its `organize` transformation, sorted by its `sortBy`."""
    organize = next(t["options"] for t in panel.get("transformations", []) if t["id"] == "organize")
    order = sorted(organize["indexByName"], key=organize["indexByName"].get)
    keys = [name for name in order if not name.startswith("Value #")]
    values = [name for name in order if name.startswith("Value #")]
    merged: dict[tuple[str, ...], dict[str, float]] = {}
    for item in drawn:
        key = tuple(item.series.labels.get(k, "") for k in keys)
        merged.setdefault(key, {})[f"Value #{item.ref}"] = item.series.points[-1][1]
    rows = [list(key) + [fields.get(name, math.nan) for name in values] for key, fields in merged.items()]
    titles = organize.get("renameByName", {})
    for sort in panel.get("options", {}).get("sortBy", []):
        names = [titles.get(name, name) for name in keys + values]
        if sort["displayName"] in names:
            column = names.index(sort["displayName"])
            rows.sort(key=lambda row: row[column] if isinstance(row[column], float) and math.isfinite(row[column]) else -math.inf, reverse=sort.get("desc", False))
    return keys, values, rows


_MEASURE = RendererAgg(1, 1, DPI)


def _text_px(text: str, size: float, bold: bool = False) -> float:
    """Width in pixels of `text` drawn at `size` points."""
    return _MEASURE.get_text_width_height_descent(text, FontProperties(size=size, weight="bold" if bold else "normal"), ismath=False)[0]


def _two_lines(header: str) -> str:
    """`header` broken at the space that makes its longer line shortest."""
    words = header.split(" ")
    splits = [" ".join(words[:cut]) + "\n" + " ".join(words[cut:]) for cut in range(1, len(words))]
    return min(splits, key=lambda text: max(_text_px(line, TABLE_FONT, bold=True) for line in text.split("\n")), default=header)


def _usable_px(cell_px: float) -> float:
    return cell_px * (1 - 2 * 0.1) - 2  # matplotlib's cell text starts 10 % in (Cell.PAD)


def _column_widths(header: list[str], text: list[list[str]], total_px: float) -> list[float]:
    """Column widths in pixels: each column's widest text (a header counts as two lines), shares
    of `total_px` in proportion to it."""
    natural = []
    for column, title in enumerate(header):
        title_px = max(_text_px(line, TABLE_FONT, bold=True) for line in _two_lines(title).split("\n"))
        cells_px = [_text_px(row[column], TABLE_FONT) for row in text]
        natural.append(max([title_px, *cells_px, 24.0]) / 0.8 + 2)
    return [total_px * width / sum(natural) for width in natural]


def _fit_header(title: str, cell_px: float) -> tuple[str, float]:
    """The header as it fits its cell: on one line, else on two, else on two in smaller type."""
    room = _usable_px(cell_px)
    if _text_px(title, TABLE_FONT, bold=True) <= room:
        return title, TABLE_FONT
    wrapped = _two_lines(title)
    widest = max(_text_px(line, TABLE_FONT, bold=True) for line in wrapped.split("\n"))
    return wrapped, max(HEADER_MIN_FONT, min(TABLE_FONT, TABLE_FONT * room / widest))


def _draw_table(canvas: _Canvas, area: _Area, panel: dict, drawn: list[_Drawn]) -> None:
    if not drawn:
        _no_data(canvas, area)
        return
    keys, values, rows = _table_rows(panel, drawn)
    titles = next(t["options"] for t in panel["transformations"] if t["id"] == "organize").get("renameByName", {})
    header = keys + [titles.get(name, name) for name in values]
    text, colors = [], []
    for row in rows:
        text_row, color_row = list(row[: len(keys)]), [PANEL] * len(keys)
        for name, value in zip(values, row[len(keys) :]):
            props = _overrides_for(panel, name)
            text_row.append("" if math.isnan(value) else _mapped(value, props.get("mappings", [])) or format_value(value, props.get("unit", ""), props.get("decimals")))
            colored = props.get("custom.cellOptions", {}).get("type") == "color-background" and not math.isnan(value)
            color_row.append(_tint(threshold_color(value, props["thresholds"]["steps"])) if colored else PANEL)
        text.append(text_row)
        colors.append(color_row)
    table_px = area.width - 4
    widths = _column_widths(header, text, table_px)
    fitted = [_fit_header(title, cell_px) for title, cell_px in zip(header, widths)]
    header_px = TABLE_ROW_PX * (1.7 if any("\n" in title for title, _ in fitted) else 1)
    shown = max(1, int((area.height - header_px) // TABLE_ROW_PX))
    ax = canvas.figure.add_axes(canvas.rect(area.left + 2, area.top, table_px, area.height))
    ax.axis("off")
    table = ax.table(
        cellText=text[:shown], colLabels=[title for title, _ in fitted], cellColours=colors[:shown], colWidths=[w / table_px for w in widths],
        loc="upper center", cellLoc="left", colLoc="left",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(TABLE_FONT)
    for (row, column), cell in table.get_celld().items():
        cell.set_height((header_px if row == 0 else TABLE_ROW_PX) / area.height)
        cell.set_edgecolor(BORDER)
        if row == 0:
            cell.set_text_props(weight="bold", color=TEXT, fontsize=fitted[column][1], linespacing=1.0)
            cell.set_facecolor("#f0f1f2")
    if len(rows) > shown:
        canvas.text(area.left + 4, area.top + area.height - 12, f"... {len(rows) - shown} more rows", fontsize=6.5, color=MUTED)


def _mapped(value: float, mappings: Sequence[dict]) -> str:
    """The text a Grafana value mapping shows for `value`, or "" when none maps it."""
    for mapping in mappings:
        if mapping.get("type") == "value":
            found = mapping["options"].get(format(value, "g"))
            if found and "text" in found:
                return found["text"]
    return ""


def _tint(color: str) -> str:
    """A lighter version of `color` for cell backgrounds, so that black text stays readable."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{int(channel + (255 - channel) * 0.55):02x}" for channel in (red, green, blue))


def _draw_state_timeline(canvas: _Canvas, area: _Area, panel: dict, drawn: list[_Drawn], window: Window) -> None:
    if not drawn:
        _no_data(canvas, area)
        return
    states = {}
    for mapping in panel["fieldConfig"]["defaults"].get("mappings", []):
        states.update(mapping.get("options", {}))
    label_width = min(area.width * 0.35, 8 + 5.2 * max(len(item.name) for item in drawn))
    plot_width = area.width - label_width - 8
    ax = canvas.figure.add_axes(canvas.rect(area.left + label_width, area.top + 2, plot_width, area.height - 18))
    ax.set_facecolor(PANEL)
    _time_axis(ax, window, plot_width)
    drawn = sorted(drawn, key=lambda item: item.name)
    for row, item in enumerate(drawn):
        points = item.series.points
        for (start, value), (end, _) in zip(points, points[1:] + [(points[-1][0] + window.step, points[-1][1])]):
            state = states.get(format(value, "g"), {})
            color = NAMED.get(state.get("color", h.GREY), state.get("color", NAMED[h.GREY]))
            ax.broken_barh([(mdates.date2num(datetime.fromtimestamp(start, UTC)), (end - start) / 86400)], (row + 0.1, 0.8), facecolors=color, linewidth=0)
    ax.set_ylim(len(drawn), 0)
    ax.set_yticks([row + 0.5 for row in range(len(drawn))])
    ax.set_yticklabels([item.name for item in drawn], fontsize=6.5, color=TEXT)
    legend = [Line2D([], [], color=NAMED.get(s["color"], s["color"]), linewidth=5) for s in states.values()]
    ax.legend(legend, [s["text"] for s in states.values()], loc="lower right", fontsize=6, frameon=False, ncol=len(legend), bbox_to_anchor=(1, 1), borderaxespad=0)


# --- dashboards ----------------------------------------------------------------------------------
def render(dashboard: dict, prometheus: Prometheus, window: Window, chosen: Mapping[str, Sequence[str]] | None = None) -> Rendering:
    """Draw `dashboard` with data from `prometheus` over `window`; failures are reported per panel."""
    resolution = resolve_variables(dashboard, prometheus, window.start, window.end, window.builtins(), chosen)
    panels = dashboard.get("panels", [])
    grid_rows = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=1)
    canvas = _Canvas(grid_rows)
    _header(canvas, dashboard, window, resolution.selected)
    outcomes = []
    for panel in panels:
        outcome = _render_panel(canvas, panel, prometheus, resolution.text, window)
        if outcome is not None:
            outcomes.append(outcome)
    return Rendering(_png(canvas), outcomes)


def _header(canvas: _Canvas, dashboard: dict, window: Window, selected: Mapping[str, list[str]]) -> None:
    canvas.text(MARGIN_PX * 2, 10, dashboard.get("title", ""), fontsize=13, weight="bold", color=TEXT)
    start, end = datetime.fromtimestamp(window.start, UTC), datetime.fromtimestamp(window.end, UTC)
    span = f"{start:%Y-%m-%d %H:%M} to {end.strftime('%H:%M' if end.date() == start.date() else '%Y-%m-%d %H:%M')} UTC"
    chosen = "   ".join(f"{name}: {', '.join(values)}" for name, values in selected.items())
    canvas.text(MARGIN_PX * 2, 34, f"{span}    {chosen}", fontsize=7.5, color=MUTED)


def _render_panel(canvas: _Canvas, panel: dict, prometheus: Prometheus, variables: Mapping[str, str], window: Window) -> PanelOutcome | None:
    grid = panel["gridPos"]
    left = grid["x"] * COLUMN_PX + MARGIN_PX
    top = HEADER_PX + grid["y"] * ROW_PX + MARGIN_PX
    width, height = grid["w"] * COLUMN_PX - 2 * MARGIN_PX, grid["h"] * ROW_PX - 2 * MARGIN_PX
    if panel["type"] == "row":
        canvas.text(left, top + 4, panel.get("title", ""), fontsize=10, weight="bold", color=TEXT)
        return None
    canvas.box(left, top, width, height, PANEL)
    canvas.text(left + 6, top + 5, panel.get("title", ""), fontsize=8, weight="bold", color=TEXT)
    area = _Area(left + 4, top + TITLE_PX, width - 8, height - TITLE_PX - 4)
    outcome = PanelOutcome(panel.get("title", ""), panel["type"])
    ranged = panel["type"] in ("timeseries", "state-timeline")
    try:
        drawn = _load(panel, prometheus, variables, window, ranged)
    except PrometheusError as error:
        outcome.error = str(error)
        _no_data(canvas, area, f"query failed: {error}"[:160], color=NAMED[h.RED])
        return outcome
    outcome.series = len([d for d in drawn if d.ref != h.THRESHOLD_REF])
    if panel["type"] == "timeseries":
        outcome.colors = _draw_timeseries(canvas, area, panel, drawn, window)
    elif panel["type"] == "stat":
        _draw_stat(canvas, area, panel, drawn)
    elif panel["type"] == "table":
        _draw_table(canvas, area, panel, drawn)
    elif panel["type"] == "state-timeline":
        _draw_state_timeline(canvas, area, panel, drawn, window)
    else:
        outcome.error = f"panel type {panel['type']!r} is not drawn by the renderer"
        _no_data(canvas, area, outcome.error, color=NAMED[h.RED])
    return outcome


def _png(canvas: _Canvas) -> bytes:
    raw = io.BytesIO()
    FigureCanvasAgg(canvas.figure).print_png(raw)
    # A 256-colour palette keeps screenshots of flat panels a fraction of their RGB size.
    image = Image.open(io.BytesIO(raw.getvalue())).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small = io.BytesIO()
    image.save(small, format="PNG", optimize=True)
    return small.getvalue()
