"""The demo service's latency on kept-alive connections, with TCP_NODELAY on and off, side by side.

    .venv/bin/python bench/demo_latency.py [--requests 200] [--out FILE]

Two demo services run in this process on loopback, identical but for the handler's
`disable_nagle_algorithm` (the service's setting, demo/app.py, and the old default of
http.server). One kept-alive connection per service (http.client, which sets TCP_NODELAY on its
own side) sends `--requests` requests to each path, in rounds that alternate between the two
services, so the machine's noise falls on both. Prints the median and 90th percentile per path
and variant, and their ratio; --out also writes them as JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, installed or not

from pharos_monitoring.demo.app import AppConfig, DemoApp  # noqa: E402

PATHS = ("/stats", "/api/orders")
ROUNDS = 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per path and variant (default 200)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    results = measure(max(ROUNDS, args.requests))
    print(f"demo service, kept-alive GET, median (p90) over {args.requests} requests per cell, in ms")
    print(f"{'path':14} {'TCP_NODELAY on':>18} {'off (Nagle)':>18} {'off / on':>9}")
    for path, cells in results.items():
        on, off = cells["nodelay"], cells["nagle"]
        print(f"{path:14} {on['median_ms']:>8.2f} ({on['p90_ms']:6.2f}) {off['median_ms']:>8.2f} ({off['p90_ms']:6.2f}) {off['median_ms'] / on['median_ms']:>8.0f}x")
    if args.out:
        args.out.write_text(json.dumps({"requests": args.requests, "paths": results}, indent=2, sort_keys=True) + "\n")
    return 0


def measure(requests: int) -> dict[str, dict[str, dict[str, float]]]:
    apps = {"nodelay": _start(nodelay=True), "nagle": _start(nodelay=False)}
    try:
        timings = {path: {variant: [] for variant in apps} for path in PATHS}
        connections = {variant: http.client.HTTPConnection("127.0.0.1", app.port, timeout=10) for variant, app in apps.items()}
        for variant in apps:  # connect and warm up outside the timings
            _get(connections[variant], "/stats")
        per_round = requests // ROUNDS
        for round_index in range(ROUNDS):
            count = per_round if round_index < ROUNDS - 1 else requests - per_round * (ROUNDS - 1)
            for path in PATHS:
                for variant, connection in connections.items():
                    timings[path][variant].extend(_get(connection, path) for _ in range(count))
        for connection in connections.values():
            connection.close()
    finally:
        for app in apps.values():
            app.stop()
    return {
        path: {variant: {"median_ms": statistics.median(ms), "p90_ms": statistics.quantiles(ms, n=10)[-1]} for variant, ms in cells.items()}
        for path, cells in timings.items()
    }


def _start(nodelay: bool) -> DemoApp:
    app = DemoApp(AppConfig(host="127.0.0.1", port=0, traffic=0.0, seed=1))
    app.start()
    app._server.RequestHandlerClass.disable_nagle_algorithm = nodelay  # read per connection
    return app


def _get(connection: http.client.HTTPConnection, path: str) -> float:
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    elapsed = (time.perf_counter() - started) * 1000.0
    if response.status != 200 or response.will_close:
        raise SystemExit(f"GET {path}: status {response.status}, connection kept alive: {not response.will_close}")
    return elapsed


if __name__ == "__main__":
    sys.exit(main())
