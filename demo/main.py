"""`pharos demo-app` and `pharos demo`: flags, start and clean stop.

`pharos demo-app --listen HOST:PORT` serves the demo service (demo/app.py) until SIGTERM or
Ctrl-C. Port 0 picks a free port; the first line on stdout is always
`pharos demo-app: listening on http://HOST:PORT` (flushed), so scripts can read the address.
`pharos demo` runs a demo-app and an exporter beside it (demo/supervisor.py).
"""

from __future__ import annotations

import argparse
import logging
import resource
import signal
import sys
import threading

from .faults import KNOBS, FaultError, FaultSettings, check

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_PORT_BASE = 9840  # demo-app on 9840, its exporter on 9841 (the exporter's usual port)
MAX_TRAFFIC = 200.0
# With a memory limit, thread stacks are made small: glibc's default 8 MiB per thread counts
# towards RLIMIT_DATA and would exhaust it with a few dozen connections.
LIMITED_THREAD_STACK_BYTES = 512 * 1024
MIN_MEMORY_LIMIT_MB = 128


def add_app_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", default=DEFAULT_LISTEN, type=_listen, metavar="HOST:PORT", help=f"address to serve on; port 0 picks a free one (default {DEFAULT_LISTEN})")
    parser.add_argument("--service", default="orders", metavar="NAME", help="application name reported in the stats (default orders)")
    parser.add_argument("--environment", default="demo", metavar="ENV", help="environment reported in the stats (default demo)")
    parser.add_argument("--app-version", metavar="VERSION", help="application version reported in the stats, to play a deploy (default: Pharos' version)")
    _add_traffic_argument(parser)
    faults = parser.add_argument_group("faults at start (change them at run time with POST /faults)")
    faults.add_argument("--error-ratio", type=_knob("error_ratio"), default=0.0, metavar="RATIO", help="share of application requests answered 500, 0..1")
    faults.add_argument("--latency-ms", type=_knob("latency_ms"), default=0.0, metavar="MS", help="latency added to application requests, 0..30000")
    faults.add_argument("--allocation-pressure", type=_knob("allocation_pressure"), default=0.0, metavar="MB_PER_S", help="garbage churned per second in the background, 0..100 MB")
    faults.add_argument("--stats-hang", action="store_true", help="GET /stats holds the connection without answering")
    faults.add_argument("--unhealthy", action="store_true", help="/health answers 503 and the stats report a failing check")
    parser.add_argument("--stats-hang-limit", type=_bounded_float("--stats-hang-limit", 1, 600), default=60.0, metavar="SECONDS", help="longest a hanging /stats holds its connection (default 60)")
    parser.add_argument("--memory-limit-mb", type=_memory_limit, default=0.0, metavar="MB", help="enforce a data-segment limit (RLIMIT_DATA), reported as maxOldSpaceSize; 0 = none (default)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port-base", type=_port_base, default=DEFAULT_PORT_BASE, metavar="N", help=f"demo-app on 127.0.0.1:N, exporter on N+1; 0 picks free ports (default {DEFAULT_PORT_BASE})")
    parser.add_argument("--duration", type=_bounded_float("--duration", 0, 7 * 24 * 3600), default=0.0, metavar="SECONDS", help="stop after this long; 0 runs until Ctrl-C or SIGTERM (default)")
    _add_traffic_argument(parser)


def run_app(args: argparse.Namespace) -> int:
    from .app import AppConfig, DemoApp

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    host, port = args.listen
    if args.memory_limit_mb:
        _limit_memory(int(args.memory_limit_mb * 1024 * 1024))
    faults = FaultSettings(args.error_ratio, args.latency_ms, args.allocation_pressure, args.stats_hang, args.unhealthy)
    config = AppConfig(
        host=host,
        port=port,
        service=args.service,
        environment=args.environment,
        traffic=args.traffic,
        faults=faults,
        stats_hang_limit_seconds=args.stats_hang_limit,
        **({"version": args.app_version} if args.app_version else {}),
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    app = DemoApp(config)
    try:
        app.start()
    except OSError as error:
        print(f"pharos demo-app: cannot listen on {host}:{port}: {error.strerror}; choose another --listen", file=sys.stderr)
        app.stop()
        return 1
    print(f"pharos demo-app: listening on {app.url}", flush=True)
    logging.getLogger("pharos.demo").info(
        "service %s (%s): stats at %s/stats, traffic %g requests/s, faults %s",
        config.service, config.environment, app.url, config.traffic, app.faults.document(),
    )
    while not stop.wait(0.2):  # a short wait: signal handlers run between waits
        pass
    app.stop()
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from .supervisor import run

    return run(args.port_base, args.duration, args.traffic)


# --- argument types --------------------------------------------------------------------------
def _add_traffic_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--traffic", type=_bounded_float("--traffic", 0, MAX_TRAFFIC), default=5.0, metavar="RPS", help=f"requests per second the built-in generator sends to the application routes, 0..{MAX_TRAFFIC:g}; 0 = off (default 5)")


def _listen(text: str) -> tuple[str, int]:
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (port 0 to 65535, 0 picks a free one), e.g. 127.0.0.1:8080")
    return host.strip("[]") or "0.0.0.0", int(port)


def _port_base(text: str) -> int:
    if not text.isdigit() or not (int(text) == 0 or 1 <= int(text) <= 65534):
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 1 to 65534 (the exporter takes the next one), or 0 for free ports")
    return int(text)


def _knob(name: str):
    knob = KNOBS[name]

    def parse(text: str) -> float:
        try:
            return check(name, float(text))
        except ValueError as error:  # FaultError is a ValueError
            message = str(error) if isinstance(error, FaultError) else f"{text!r} is not a number from {knob.low:g} to {knob.high:g}"
            raise argparse.ArgumentTypeError(message) from None

    return parse


def _bounded_float(flag: str, low: float, high: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{flag}: {text!r} is not a number from {low:g} to {high:g}")
        return value

    return parse


def _memory_limit(text: str) -> float:
    value = _bounded_float("--memory-limit-mb", 0, 1 << 20)(text)
    if 0 < value < MIN_MEMORY_LIMIT_MB:
        raise argparse.ArgumentTypeError(f"--memory-limit-mb: {text} is too small; the interpreter alone needs about 50 MB, give 0 (no limit) or at least {MIN_MEMORY_LIMIT_MB}")
    return value


def _limit_memory(limit_bytes: int) -> None:
    threading.stack_size(LIMITED_THREAD_STACK_BYTES)
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit_bytes = min(limit_bytes, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit_bytes, hard))
