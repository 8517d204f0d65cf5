"""`pharos dashboards build | push | render`: flags and what each prints."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

DEFAULT_FOLDER = "Pharos"
_DURATION = re.compile(r"^(?:now)?-?(\d+)([smhdw])$")
_BEFORE = re.compile(r"^(?:now-|-)?(\d+)([smhdw])$")  # -1h, now-1h (and 1h, as --from always took)
_UNIX_SECONDS = re.compile(r"^\d+(?:\.\d+)?$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
TIME_FORMS = "RFC3339 (2026-12-06T08:05:00Z), unix seconds (1796544300) or -DURATION / now-DURATION (-15m, now-6h)"
FLEET_HELP = "for a Grafana with the fleet's global store: show the environment variable (hidden otherwise: the data source is the environment)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    build = actions.add_parser("build", help="write every dashboard as Grafana JSON (<uid>.json)")
    build.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory for the JSON files (created if missing)")
    build.add_argument("--fleet", action="store_true", help=FLEET_HELP)
    build.set_defaults(run=run_build)

    push = actions.add_parser(
        "push",
        help="upload the dashboards and their folder to a running Grafana (overwrites by uid)",
        description="Credentials from the environment: GRAFANA_TOKEN (service-account token) or --token-file, else GRAFANA_USER and GRAFANA_PASSWORD.",
    )
    push.add_argument("--url", required=True, metavar="URL", help="Grafana's root URL, e.g. http://grafana:3000 or https://host/grafana")
    push.add_argument("--folder", default=DEFAULT_FOLDER, metavar="NAME", help=f"folder to put the dashboards in (default {DEFAULT_FOLDER})")
    push.add_argument("--token-file", type=Path, metavar="FILE", help="file holding a service-account token (instead of GRAFANA_TOKEN)")
    push.add_argument("--fleet", action="store_true", help=FLEET_HELP)
    push.set_defaults(run=run_push)

    render = actions.add_parser("render", help="draw each dashboard to a PNG with live data from Prometheus, without Grafana")
    render.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus' base URL, e.g. http://127.0.0.1:9090")
    render.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory for the PNG files (created if missing)")
    # Let `--from -1h` through: argparse would take "-1h" for an option, as it takes all that
    # starts with "-" but negative numbers (this widens its own pattern for those).
    render._negative_number_matcher = re.compile(r"^-\d+([smhdw]|\.\d+)?$")
    render.add_argument(
        "--from", dest="since", default="-1h", type=_time_point, metavar="TIME",
        help="start of the time range: -DURATION / now-DURATION before --to (-15m, now-6h), or a time as --to takes it (default -1h)",
    )
    render.add_argument(
        "--to", dest="until", default="now", type=_time_point, metavar="TIME",
        help="end of the time range: now, -DURATION / now-DURATION before now, RFC3339 (2026-12-06T08:05:00Z) or unix seconds; "
        "an earlier end draws a stopped stack's saved data (default now)",
    )
    render.add_argument("--scrape-interval", default="15s", type=_duration, metavar="DURATION", help="Prometheus' scrape interval, for $__rate_interval as Grafana computes it (default 15s)")
    render.add_argument("--var", action="append", default=[], type=_variable, metavar="NAME=VALUE[,VALUE]", help="choose a variable's values (default: all for multi-value variables, else the first)")
    render.add_argument("--dashboard", action="append", default=[], metavar="UID", help="render only this dashboard; repeatable (default: all)")
    render.set_defaults(run=run_render)


def _duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like -15m, -1h or 30s")
    return float(int(match.group(1)) * _SECONDS[match.group(2)])


@dataclass(frozen=True)
class TimePoint:
    """A time as `--from` and `--to` take it: `before` seconds back from a reference time
    (relative: --to's reference is now, --from's is --to), or the absolute unix time `at`."""

    text: str
    before: float | None = None
    at: float | None = None

    def resolve(self, reference: float) -> float:
        return self.at if self.at is not None else reference - self.before


def _time_point(text: str) -> TimePoint:
    """argparse's type for --from and --to; its errors are printed after the flag's name."""
    written = text.strip()
    if written == "now":
        return TimePoint(written, before=0.0)
    relative = _BEFORE.match(written)
    if relative:
        return TimePoint(written, before=float(int(relative.group(1)) * _SECONDS[relative.group(2)]))
    if _UNIX_SECONDS.match(written):
        return TimePoint(written, at=float(written))
    try:
        moment = datetime.fromisoformat(written)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time: give {TIME_FORMS}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone: end it with Z (UTC) or an offset such as +01:00")
    return TimePoint(written, at=moment.timestamp())


def time_range(since: TimePoint, until: TimePoint, now: float) -> tuple[float, float]:
    """(start, end) of `--from since --to until`: a relative --to counts back from `now`, a relative
    --from from the end (`--from -1h` is the hour before --to, wherever --to is)."""
    end = until.resolve(now)
    start = since.resolve(end)
    if start >= end:
        raise ValueError(f"--from {since.text} is not before --to {until.text}: the time range would be empty or reversed")
    return start, end


def _variable(text: str) -> tuple[str, list[str]]:
    name, separator, values = text.partition("=")
    if not separator or not name or not values:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE (e.g. environment=production or service=orders,billing)")
    return name.strip(), [value.strip() for value in values.split(",")]


def _json_dashboards(only: list[str] | None = None, fleet: bool = False) -> list[dict]:
    from pharos_monitoring import dashboards
    from pharos_monitoring.dashboards import house

    built = [json.loads(house.to_json(dashboard)) for dashboard in dashboards.build_all(fleet)]
    if only:
        known = [board["uid"] for board in built]
        unknown = [uid for uid in only if uid not in known]
        if unknown:
            raise SystemExit(f"pharos dashboards: unknown --dashboard {', '.join(unknown)}; known: {', '.join(known)}")
        built = [board for board in built if board["uid"] in only]
    return built


def run_build(args: argparse.Namespace) -> int:
    from pharos_monitoring import dashboards
    for path in dashboards.write_all(args.out, args.fleet):
        print(path)
    return 0


def run_push(args: argparse.Namespace) -> int:
    from pharos_monitoring.dashboards import push

    try:
        credentials = push.credentials_from(args.token_file)
        pushed = push.push_all(args.url, args.folder, _json_dashboards(fleet=args.fleet), credentials)
    except push.PushError as error:
        print(f"pharos dashboards push: {error}", file=sys.stderr)
        return 1
    for item in pushed:
        print(f"{item.title}: {item.url} (version {item.version})")
    return 0


def run_render(args: argparse.Namespace) -> int:
    from pharos_monitoring.dashboards import render
    from pharos_monitoring.dashboards.prometheus import Prometheus, PrometheusError
    from pharos_monitoring.dashboards.queries import NoValues, VariableError

    try:
        start, end = time_range(args.since, args.until, time.time())
    except ValueError as error:
        print(f"pharos dashboards render: {error}", file=sys.stderr)
        return 2
    window = render.Window(start, end, args.scrape_interval)
    prometheus = Prometheus(args.prometheus)
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = dict(args.var)
    failed = False
    for board in _json_dashboards(args.dashboard):
        wanted = {name: values for name, values in chosen.items() if any(v["name"] == name for v in board["templating"]["list"])}
        try:
            rendering = render.render(board, prometheus, window, wanted)
        except NoValues as error:
            # e.g. the Swarm dashboard against a Prometheus without a swarm: nothing to draw.
            print(f"pharos dashboards render: {board['uid']}: skipped, no data for it: {error}", file=sys.stderr)
            failed = failed or board["uid"] in args.dashboard
            continue
        except (PrometheusError, VariableError) as error:
            print(f"pharos dashboards render: {board['uid']}: {error}", file=sys.stderr)
            failed = True
            continue
        path = args.out / f"{board['uid']}.png"
        path.write_bytes(rendering.png)
        print(f"{path}: {len(rendering.panels)} panels, {len(rendering.empty)} without data, {len(rendering.errors)} failed")
        for panel in rendering.errors:
            print(f"  {panel.title}: {panel.error}", file=sys.stderr)
        failed = failed or bool(rendering.errors)
    return 1 if failed else 0
