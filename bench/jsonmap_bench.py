"""How fast a json mapping scrape is, next to the floor Python can do for the same output.

Shape (issue 3): a document of 1,000 items (about 150 KB), one object metric with a filter, two
labels and three values per item: about 2,000 series.

    floor    json.loads of the body already in memory, then the same series built as
             prometheus_client GaugeMetricFamily objects and rendered by generate_latest;
             no HTTP, no mapping: what any Python exporter must at least spend
    engine   what the exporter does for one scrape of that target: fetch over loopback HTTP
             (exporter.fetch.Fetcher), decode, map (the module's Profile through
             exporter.scrape.Scraper), render (exporter.collect.render)
    probe    the same through a running exporter: GET /probe?module=...&target=... over HTTP,
             when the exporter's configuration knows `modules:` (skipped, and said so, if not)

On these machines json_exporter takes about 45 ms per scrape of this shape (about six times the
floor); the aim is under half that, within 1.5x of the floor. Medians of interleaved rounds, on
shared machines: compare the ratios, not the milliseconds. The target and (for `probe`) the
exporter serve from threads of this process, so their work is charged to `engine` and `probe`,
never to the floor: the ratios err on the exporter's side.

    .venv/bin/python bench/jsonmap_bench.py [--rounds 40] [--items 1000] [--out FILE]

Results go to bench/results/jsonmap.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest

from pharos_monitoring.exporter.fetch import Fetcher
from pharos_monitoring.exporter.jsonmap import load_modules
from pharos_monitoring.exporter.routes import RouteTable
from pharos_monitoring.exporter.scrape import Scraper, Target
from pharos_monitoring.exporter.collect import render
from prometheus_client import CollectorRegistry

ITEMS = 1000
AIM = 1.5  # times the floor
JSON_EXPORTER_MS = 45.0  # json_exporter on these machines, for this shape (issue 3)
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "jsonmap.json"
REGIONS = ("eu-west-1", "us-east-1", "ap-south-1", "sa-east-1")
STATES = ("ACTIVE", "ACTIVE", "DRAINING")  # two thirds pass the filter: about 2,000 series

MODULE = {
    "modules": {
        "bench": {
            "metrics": [
                {
                    "name": "bench_backend",
                    "type": "object",
                    "help": "Backends of the load balancer",
                    "path": '{.backends[?(@.state == "ACTIVE")]}',
                    "labels": {"backend": "{.id}", "region": "{.region}"},
                    "values": {"requests": "{.stats.requests}", "errors": "{.stats.errors}", "latency_seconds": "{.stats.latency}"},
                }
            ]
        }
    }
}


def document(items: int = ITEMS, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    backends = [
        {
            "id": f"backend-{index:04d}",
            "region": rng.choice(REGIONS),
            "state": STATES[index % 3],
            "weight": rng.randint(1, 10),
            "stats": {"requests": rng.randint(0, 10**7), "errors": rng.randint(0, 10**4), "latency": round(rng.random() / 10, 6)},
        }
        for index in range(items)
    ]
    return json.dumps({"service": "edge", "version": "2.4.1", "backends": backends}).encode()


def floor(body: bytes) -> bytes:
    doc = json.loads(body)
    families = [GaugeMetricFamily(f"bench_backend_{key}", "Backends of the load balancer", labels=["backend", "region"]) for key in ("requests", "errors", "latency_seconds")]
    requests_family, errors_family, latency_family = families
    for item in doc["backends"]:
        if item.get("state") == "ACTIVE":
            labels = [item["id"], item["region"]]
            stats = item["stats"]
            requests_family.add_metric(labels, stats["requests"])
            errors_family.add_metric(labels, stats["errors"])
            latency_family.add_metric(labels, stats["latency"])
    return generate_latest(_Collection(families))


class _Collection:
    def __init__(self, families):
        self._families = families

    def collect(self):
        return self._families


def serve(body: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def engine_scraper(url: str):
    module = load_modules(MODULE, "bench")["bench"]
    scraper = Scraper(CollectorRegistry())
    target = Target(url=url, profile=module.profile(), fetcher=Fetcher(), routes=RouteTable(200))

    def scrape() -> bytes:
        outcome = scraper.scrape(target, time.monotonic() + 10)
        assert outcome.success, outcome.detail
        return render(outcome.families)

    return scrape


def probe_scraper(url: str):
    """A scrape through a real exporter's /probe; (None, None, why) when /probe does not know
    json mapping modules yet."""
    import requests

    from pharos_monitoring.exporter import config as config_module
    from pharos_monitoring.exporter.collect import Exporter
    from pharos_monitoring.exporter.serving.server import make_server

    try:
        config = config_module.parse({**MODULE, "probe": {"allow": ["127.0.0.0/8"]}}, "bench")
    except config_module.ConfigError as error:
        return None, None, f"the exporter's configuration does not take modules yet ({error})"
    exporter = Exporter(config)
    server = make_server(exporter, "127.0.0.1:0")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    session = requests.Session()
    probe = f"http://127.0.0.1:{server.server_address[1]}/probe"
    params = {"module": "bench", "target": url}

    def scrape() -> bytes:
        response = session.get(probe, params=params, timeout=10)
        response.raise_for_status()
        return response.content

    try:
        first = scrape()
    except requests.RequestException as error:
        server.shutdown()
        return None, None, f"/probe?module=bench failed ({error})"
    if b"bench_backend_requests" not in first:
        server.shutdown()
        return None, None, "/probe answered without the module's series (modules not wired into /probe yet)"
    return scrape, server, ""


def measure(functions: dict, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):  # interleaved, so that noise hits every contender alike
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--items", type=int, default=ITEMS, help=f"items in the document (default {ITEMS})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    args = parser.parse_args(argv)
    started = time.monotonic()
    body = document(args.items)
    server = serve(body)
    url = f"http://127.0.0.1:{server.server_address[1]}/stats"
    engine = engine_scraper(url)
    probe, exporter_server, probe_skipped = probe_scraper(url)
    series = floor(body).count(b"\nbench_backend_")
    engine_series = engine().count(b"\nbench_backend_")
    print(f"document: {args.items} items, {len(body) / 1024:.0f} KiB; series: floor {series}, engine {engine_series}")
    if series != engine_series:
        print("engine and floor disagree on the series", file=sys.stderr)
        return 1
    contenders = {"floor": lambda: floor(body), "engine": engine}
    if probe is not None:
        contenders["probe"] = probe
    else:
        print(f"probe: skipped, {probe_skipped}")
    for function in contenders.values():  # warm up connections and caches
        function()
    times = measure(contenders, args.rounds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name:7} median {median * 1000:7.2f} ms   {median / medians['floor']:4.2f}x floor")
    print(f"aim: engine and probe within {AIM}x of the floor (json_exporter: about {JSON_EXPORTER_MS:.0f} ms, about 6x)")
    server.shutdown()
    if exporter_server is not None:
        exporter_server.shutdown()
    results = {
        "items": args.items,
        "document_bytes": len(body),
        "series": series,
        "rounds": args.rounds,
        "median_ms": {name: round(median * 1000, 3) for name, median in medians.items()},
        "ratio_to_floor": {name: round(median / medians["floor"], 3) for name, median in medians.items()},
        "probe_skipped": probe_skipped,
        "aim_ratio": AIM,
        "json_exporter_ms": JSON_EXPORTER_MS,
        "python": platform.python_version(),
        "seconds": round(time.monotonic() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
