"""How much the exporter costs, as ratios measured side by side in one run.

    .venv/bin/python bench/exporter_bench.py [--quick] [--out FILE]

- overhead: wall time of one scrape of the exporter's /metrics (sidecar mode) divided by the wall
  time of fetching the same JSON directly with requests.Session, for payloads of about 100, 1,000
  and 10,000 series;
- CPU: the exporter process's own CPU per scrape (psutil, before/after a batch) divided by the
  floor, the in-process CPU of `json.loads` + the same series as prometheus_client families +
  `generate_latest` (see payloads.py);
- multi-target: /probe scrapes per second one exporter process sustains over 200 targets with
  bounded client concurrency, its CPU per probe, and the share of one core that 200 targets
  scraped every 15 s need;
- the resident memory of a sidecar after warm-up at 1,000 series;
- with `--baseline-command` (the `pharos` of an older build, e.g. a venv of another commit), that
  build's exporter runs beside the current one, alternately within each round, for the sidecar
  scrapes and the multi-target probes: the CPU per scrape of each (min and median over rounds)
  and new/old ratios (median of the per-round ratios, and of the minimums). The documents then
  leave out the sections the pharo format gained later (VM parameters, processes, handle tables,
  health status), which an older build ignores: both builds turn the same document into the same
  series, and the comparison is of like with like.

The stats documents are served by bench/payload_server.py in a process of its own, so neither its
CPU nor the client's is charged to the exporter. Variants alternate within each round and every
figure is the median over rounds. Results go to bench/results/exporter.json (or --out).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import requests
from prometheus_client.exposition import generate_latest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import payloads  # noqa: E402 - a sibling module, found through the line above

DEFAULT_OUT = HERE / "results" / "exporter.json"
SCRAPE_INTERVAL_SECONDS = 15
AIMS = {"cpu_ratio_at_1000": 1.5, "core_fraction_200_targets": 0.10, "sidecar_rss_mb": 50.0}
START_TIMEOUT_SECONDS = 20.0
MIN_BATCH_CPU_SECONDS = 0.15


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...] = (100, 1000, 10000)
    rounds: int = 5
    batch_seconds: float = 0.6  # each variant, each round: long enough for 10 ms CPU ticks to matter little
    max_batch: int = 400
    targets: int = 200
    multi_series: int = 1000
    multi_seconds: float = 10.0
    concurrency: int = 8


QUICK = Settings(rounds=2, batch_seconds=0.25, multi_seconds=3.0)


# --- processes -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def exporter_command(baseline: list[str] | None = None) -> list[str]:
    if baseline:
        return baseline
    script = Path(sys.executable).parent / "pharos"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pharos_monitoring.cli"]


class Exporter:
    """A real `pharos exporter` process on a loopback port."""

    def __init__(self, arguments: list[str], log_path: Path, command: list[str] | None = None):
        self.arguments, self.log_path, self.command = arguments, log_path, exporter_command(command)
        self.process: subprocess.Popen | None = None
        self.psutil: psutil.Process | None = None
        self.base = ""

    def start(self) -> "Exporter":
        for _attempt in range(3):  # another process may take the port between probe and bind
            port = free_port()
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    self.command + ["exporter", "--listen", f"127.0.0.1:{port}", "--log-level", "warning", *self.arguments],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                )
            self.base = f"http://127.0.0.1:{port}"
            if self._wait_ready():
                self.psutil = psutil.Process(self.process.pid)
                return self
        raise RuntimeError(f"the exporter did not start; its log ends with:\n{self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base + "/", timeout=1).status_code == 200:
                    return True
            time.sleep(0.05)
        self.stop()
        return False

    def cpu_seconds(self) -> float:
        times = self.psutil.cpu_times()
        return times.user + times.system

    def rss_mb(self) -> float:
        return self.psutil.memory_info().rss / 2**20

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@contextlib.contextmanager
def payload_server(manifest: dict[str, str], workdir: Path):
    manifest_path = workdir / "manifest.json"
    manifest_path.write_text(json.dumps(manifest))
    server = subprocess.Popen(
        [sys.executable, str(HERE / "payload_server.py"), str(manifest_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()  # "port N", printed once it listens
        if not line.startswith("port "):
            raise RuntimeError(f"the payload server did not start (it said {line!r})")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        server.stdin.close()  # its signal to exit
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


# --- documents -------------------------------------------------------------------------------
# What the pharo format gained after its first version (docs/pharo-stats.md): a build from before
# ignores these fields, so a comparison with it leaves them out of the documents.
LATER_VM_FIELDS = tuple(field for field, *_ in payloads.VM_PARAMETERS)
LATER_SECTIONS = ("processes", "handleTables")
LATER_FAMILIES = {payloads.c.PROCESSES.name, payloads.c.HANDLE_TABLE_SLOTS.name, payloads.c.HANDLE_TABLE_LIMIT.name, payloads.c.APP_HEALTH_STATUS.name} | {
    metric.family if metric.type == payloads.c.COUNTER else metric.name for *_, metric, _, _ in payloads.VM_PARAMETERS
}


def common_body(rows: int, seed: int = 0) -> bytes:
    """payloads.body without the later sections: the same series from an older build as from this one."""
    document = payloads.document(rows, seed)
    for section in LATER_SECTIONS:
        del document[section]
    for field in LATER_VM_FIELDS:
        del document["vm"][field]
    del document["health"]["status"]
    return json.dumps(document).encode()


def floor(payload: bytes, extra: dict[str, str] | None = None) -> bytes:
    """payloads.floor, also for a document without the later sections (their families left out)."""
    document = json.loads(payload)
    if all(section in document for section in LATER_SECTIONS):
        families = payloads.floor_families(document, extra or {})
    else:
        whole = payloads.document(0)
        document = {**whole, **document, "vm": {**whole["vm"], **document["vm"]}, "health": {**whole["health"], **document["health"]}}
        families = [family for family in payloads.floor_families(document, extra or {}) if family.name not in LATER_FAMILIES]
    return generate_latest(types.SimpleNamespace(collect=lambda: families))


def series_count(payload: bytes) -> int:
    return len(payloads.sample_lines(floor(payload)))


# --- measuring -------------------------------------------------------------------------------
def batch(settings: Settings, once, enough=lambda: True) -> int:
    """Call `once` until the batch lasted batch_seconds and `enough()` holds (at least 3 calls,
    at most max_batch calls or 4 x batch_seconds)."""
    started, count = time.perf_counter(), 0
    while count < settings.max_batch:
        once()
        count += 1
        elapsed = time.perf_counter() - started
        if count >= 3 and (elapsed >= 4 * settings.batch_seconds or elapsed >= settings.batch_seconds and enough()):
            break
    return count


def fetch(session: requests.Session, url: str) -> bytes:
    response = session.get(url, timeout=30)
    response.raise_for_status()
    return response.content


def time_direct(settings, session, url) -> float:
    started = time.perf_counter()
    count = batch(settings, lambda: fetch(session, url))
    return (time.perf_counter() - started) / count


def time_exporter(settings, session, exporter: Exporter) -> tuple[float, float]:
    """Wall seconds per scrape seen by the client, and the exporter's CPU seconds per scrape."""
    url = exporter.base + "/metrics"
    cpu, started = exporter.cpu_seconds(), time.perf_counter()
    # The kernel counts CPU in 10 ms ticks: a batch needs many of them to say anything per scrape.
    count = batch(settings, lambda: fetch(session, url), lambda: exporter.cpu_seconds() - cpu >= MIN_BATCH_CPU_SECONDS)
    return (time.perf_counter() - started) / count, (exporter.cpu_seconds() - cpu) / count


def time_floor(settings, payload: bytes, extra: dict[str, str]) -> float:
    started = time.process_time()
    count = batch(settings, lambda: floor(payload, extra))
    return (time.process_time() - started) / count


def check_same_series(exposition: bytes, payload: bytes, extra: dict[str, str], where: str) -> None:
    """The exporter must yield exactly the floor's series, or the comparison is unfair."""
    ours = {line for line in payloads.sample_lines(exposition) if not line.startswith("pharos_")}
    expected = payloads.sample_lines(floor(payload, extra))
    if ours != expected:
        missing, extra_lines = sorted(expected - ours)[:3], sorted(ours - expected)[:3]
        raise RuntimeError(f"{where}: exporter and floor series differ; missing {missing}, unexpected {extra_lines}")
    if not scrape_succeeded(exposition):
        raise RuntimeError(f"{where}: the scrape did not succeed:\n{exposition[:2000].decode()}")


def scrape_succeeded(exposition: bytes) -> bool:
    lines = [line for line in exposition.splitlines() if line.startswith(b"pharos_scrape_success")]
    return bool(lines) and all(line.endswith(b" 1.0") for line in lines)


def median(values) -> float:
    return statistics.median(values)


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    return [top / bottom for top, bottom in zip(numerators, denominators)]


# --- the two experiments ---------------------------------------------------------------------
def builds(baseline: list[str] | None) -> dict[str, list[str] | None]:
    """The exporters to measure: the current build, and the baseline's when one is given."""
    return {"exporter": None, "baseline": baseline} if baseline else {"exporter": None}


def sidecar_sizes(settings: Settings, base_url: str, bodies: dict[int, bytes], workdir: Path, baseline: list[str] | None = None) -> tuple[list[dict], float]:
    extra = {"target": "app"}
    commands = builds(baseline)
    exporters = {
        (build, size): Exporter(["--target", f"{base_url}/stats/{size}", "--profile", "pharo"], workdir / f"{build}-{size}.log", command).start()
        for build, command in commands.items()
        for size in settings.sizes
    }
    try:
        session = requests.Session()
        for (build, size), exporter in exporters.items():
            for _ in range(3):  # warm-up: connections, route tables, lazy imports
                exposition = fetch(session, exporter.base + "/metrics")
                fetch(session, f"{base_url}/stats/{size}")
            check_same_series(exposition, bodies[size], extra, f"{build} sidecar at {size} series")
            floor(bodies[size], extra)
        variants = ["direct", *commands, "floor"]
        samples = {size: {name: [] for variant in variants for name in (variant, variant + "_cpu")} for size in settings.sizes}

        def measure(variant: str, size: int) -> None:
            measured = samples[size]
            if variant == "direct":
                measured["direct"].append(time_direct(settings, session, f"{base_url}/stats/{size}"))
            elif variant in commands:
                wall, cpu = time_exporter(settings, session, exporters[(variant, size)])
                measured[variant].append(wall)
                measured[variant + "_cpu"].append(cpu)
            else:
                measured["floor"].append(time_floor(settings, bodies[size], extra))

        for round_index in range(settings.rounds):
            flip = round_index % 2 == 1  # alternate the order so drift in machine load hits every variant alike
            for size in reversed(settings.sizes) if flip else settings.sizes:
                for variant in reversed(variants) if flip else variants:
                    measure(variant, size)
        rss_size = min(settings.sizes, key=lambda size: abs(size - 1000))
        rss = exporters[("exporter", rss_size)].rss_mb()
    finally:
        for exporter in exporters.values():
            exporter.stop()
    rows = []
    for size in settings.sizes:
        measured = samples[size]
        row = {
            "series": series_count(bodies[size]),
            "payload_bytes": len(bodies[size]),
            "direct_ms": median(measured["direct"]) * 1e3,
            "exporter_ms": median(measured["exporter"]) * 1e3,
            "exporter_cpu_ms": median(measured["exporter_cpu"]) * 1e3,
            "exporter_cpu_ms_min": min(measured["exporter_cpu"]) * 1e3,
            "floor_cpu_ms": median(measured["floor"]) * 1e3,
            # Ratios within each round (measured side by side), then their median.
            "overhead_ratio": median(ratios(measured["exporter"], measured["direct"])),
            "cpu_ratio": median(ratios(measured["exporter_cpu"], measured["floor"])),
            "rounds": settings.rounds,
        }
        if baseline:
            row.update(versus_baseline(measured["exporter_cpu"], measured["baseline_cpu"]))
            row["baseline_ms"] = median(measured["baseline"]) * 1e3
        rows.append(row)
    return rows, rss


def versus_baseline(ours: list[float], theirs: list[float]) -> dict:
    """CPU per scrape of the current build and the baseline (seconds, one per round), in ms with
    their ratios: the median of the per-round ratios, and the ratio of the minimums."""
    paired = [(one, other) for one, other in zip(ours, theirs) if other > 0]  # a tiny run may see no CPU tick
    return {
        "baseline_cpu_ms": median(theirs) * 1e3,
        "baseline_cpu_ms_min": min(theirs) * 1e3,
        "cpu_vs_baseline": median(one / other for one, other in paired) if paired else math.nan,
        "cpu_vs_baseline_of_min": min(ours) / min(theirs) if min(theirs) > 0 else math.nan,
        "exporter_cpu_ms_rounds": [round(value * 1e3, 3) for value in ours],
        "baseline_cpu_ms_rounds": [round(value * 1e3, 3) for value in theirs],
    }


def drive_probes(settings: Settings, exporter: Exporter, urls: list[str]) -> tuple[int, float, float]:
    """Probes through `exporter` from `settings.concurrency` clients for multi_seconds: the count,
    the wall seconds and the exporter's CPU seconds."""
    counter, stop_at = itertools.count(), time.monotonic() + settings.multi_seconds
    done, failures, lock = [0], [], threading.Lock()

    def client() -> None:
        with requests.Session() as own:
            while time.monotonic() < stop_at:
                url = urls[next(counter) % len(urls)]
                try:
                    body = fetch(own, f"{exporter.base}/probe?target={url}&profile=pharo")
                except requests.RequestException as error:
                    failures.append(str(error))
                    return
                if not scrape_succeeded(body):
                    failures.append(f"probe of {url} did not succeed")
                    return
                with lock:
                    done[0] += 1

    cpu, started = exporter.cpu_seconds(), time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(settings.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(settings.multi_seconds + 60)
    if failures:
        raise RuntimeError(f"multi-target probes failed: {failures[0]}")
    return done[0], time.perf_counter() - started, exporter.cpu_seconds() - cpu


def multi_target(settings: Settings, base_url: str, payload: bytes, workdir: Path, baseline: list[str] | None = None) -> dict:
    urls = [f"{base_url}/t/{index}/stats" for index in range(settings.targets)]
    commands = builds(baseline)
    exporters = {build: Exporter(["--allow", "127.0.0.1/32"], workdir / f"{build}-multi.log", command).start() for build, command in commands.items()}
    # Without a baseline one drive is enough; with one, drives alternate over the rounds.
    drives: dict[str, list[tuple[int, float, float]]] = {build: [] for build in commands}
    try:
        session = requests.Session()
        for build, exporter in exporters.items():
            for url in urls:  # first probe of each target creates its connections and route table
                exposition = fetch(session, f"{exporter.base}/probe?target={url}&profile=pharo")
            check_same_series(exposition, payload, {}, f"{build} multi-target probe")
        for round_index in range(settings.rounds if baseline else 1):
            for build in reversed(commands) if round_index % 2 else commands:
                drives[build].append(drive_probes(settings, exporters[build], urls))
        rss = exporters["exporter"].rss_mb()
    finally:
        for exporter in exporters.values():
            exporter.stop()
    floor = median(time_floor(settings, payload, {}) for _ in range(max(3, settings.rounds)))
    per_scrape = {build: [cpu / count for count, _, cpu in runs] for build, runs in drives.items()}
    scrapes, seconds = sum(run[0] for run in drives["exporter"]), sum(run[1] for run in drives["exporter"])
    cpu = median(per_scrape["exporter"])
    result = {
        "targets": settings.targets,
        "series_per_target": series_count(payload),
        "concurrency": settings.concurrency,
        "drives": len(drives["exporter"]),
        "scrapes": scrapes,
        "seconds": seconds,
        "scrapes_per_second": scrapes / seconds,
        "exporter_cpu_ms_per_scrape": cpu * 1e3,
        "exporter_cpu_ms_min": min(per_scrape["exporter"]) * 1e3,
        "floor_cpu_ms": floor * 1e3,
        "cpu_ratio": cpu / floor,
        "core_fraction_at_15s": settings.targets / SCRAPE_INTERVAL_SECONDS * cpu,
        "rss_mb": rss,
    }
    if baseline:
        result.update(versus_baseline(per_scrape["exporter"], per_scrape["baseline"]))
        result["baseline_scrapes_per_second"] = sum(run[0] for run in drives["baseline"]) / sum(run[1] for run in drives["baseline"])
    return result


# --- output ----------------------------------------------------------------------------------
def table(results: dict) -> str:
    lines = [
        "series  payload   direct  exporter  overhead  exporter CPU  floor CPU  CPU ratio",
        "        bytes     ms      ms        x         ms/scrape     ms         x",
    ]
    for row in results["sidecar"]:
        lines.append(
            f"{row['series']:>6}  {row['payload_bytes']:>7}  {row['direct_ms']:>6.2f}  {row['exporter_ms']:>8.2f}"
            f"  {row['overhead_ratio']:>8.2f}  {row['exporter_cpu_ms']:>12.2f}  {row['floor_cpu_ms']:>9.2f}  {row['cpu_ratio']:>9.2f}"
        )
    multi = results["multi_target"]
    lines += [
        "",
        f"multi-target: {multi['targets']} targets x {multi['series_per_target']} series, {multi['concurrency']} concurrent probes:"
        f" {multi['scrapes_per_second']:.1f} scrapes/s, {multi['exporter_cpu_ms_per_scrape']:.2f} ms CPU/scrape"
        f" ({multi['cpu_ratio']:.2f}x floor {multi['floor_cpu_ms']:.2f} ms)",
        f"  {multi['targets']} targets every {SCRAPE_INTERVAL_SECONDS} s need {multi['core_fraction_at_15s'] * 100:.1f}% of one core"
        f" (aim < {AIMS['core_fraction_200_targets'] * 100:.0f}%); RSS {multi['rss_mb']:.1f} MB",
        f"sidecar RSS after warm-up at {results['sidecar_rss_series']} series: {results['sidecar_rss_mb']:.1f} MB"
        f" (aim < {AIMS['sidecar_rss_mb']:.0f} MB)",
    ]
    if results.get("baseline_command"):
        lines += [
            "",
            f"against the baseline {results['baseline_command']} (exporter CPU per scrape, ms: min / median over rounds; new/old ratio:"
            " median of the per-round ratios, ratio of the minimums):",
        ]
        named = [(f"sidecar {row['series']} series", row) for row in results["sidecar"]] + [("multi-target /probe", multi)]
        for name, row in named:
            lines.append(
                f"  {name:<22} new {row['exporter_cpu_ms_min']:.2f} / {row.get('exporter_cpu_ms', row.get('exporter_cpu_ms_per_scrape')):.2f}"
                f"  old {row['baseline_cpu_ms_min']:.2f} / {row['baseline_cpu_ms']:.2f}"
                f"  ratio {row['cpu_vs_baseline']:.3f} (of minimums {row['cpu_vs_baseline_of_min']:.3f})"
            )
    return "\n".join(lines)


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


def run(settings: Settings, quick: bool, baseline: list[str] | None = None) -> dict:
    started = time.perf_counter()
    body = common_body if baseline else payloads.body
    bodies = {size: body(payloads.rows_for(size)) for size in settings.sizes}
    multi_payload = body(payloads.rows_for(settings.multi_series), seed=1)
    with tempfile.TemporaryDirectory(prefix="pharos-bench-") as temp:
        workdir = Path(temp)
        manifest = {}
        for size, body in bodies.items():
            (workdir / f"stats-{size}.json").write_bytes(body)
            manifest[f"/stats/{size}"] = str(workdir / f"stats-{size}.json")
        (workdir / "multi.json").write_bytes(multi_payload)
        manifest.update({f"/t/{index}/stats": str(workdir / "multi.json") for index in range(settings.targets)})
        load_before = machine()
        with payload_server(manifest, workdir) as base_url:
            sidecar, rss = sidecar_sizes(settings, base_url, bodies, workdir, baseline)
            multi = multi_target(settings, base_url, multi_payload, workdir, baseline)
    at_1000 = min(sidecar, key=lambda row: abs(row["series"] - 1000))
    rss_series = min(sidecar, key=lambda row: abs(row["series"] - 1000))["series"]
    return {
        "benchmark": "exporter",
        "quick": quick,
        "baseline_command": " ".join(baseline) if baseline else None,
        "settings": asdict(settings),
        "machine": load_before,
        "load_average_after": [round(load, 2) for load in os.getloadavg()],
        "seconds": time.perf_counter() - started,
        "sidecar": sidecar,
        "multi_target": multi,
        "sidecar_rss_series": rss_series,
        "sidecar_rss_mb": rss,
        "aims": {
            "cpu_ratio_at_1000": {"aim": AIMS["cpu_ratio_at_1000"], "measured": at_1000["cpu_ratio"], "series": at_1000["series"]},
            "core_fraction_200_targets": {"aim": AIMS["core_fraction_200_targets"], "measured": multi["core_fraction_at_15s"]},
            "sidecar_rss_mb": {"aim": AIMS["sidecar_rss_mb"], "measured": rss},
        },
    }


def sizes_argument(value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated list of series counts, e.g. 100,1000") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: series counts must be positive")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Exporter overhead, CPU against the floor, multi-target throughput, sidecar memory.")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter batches (about 20 s instead of about 1 min)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where to write the JSON results (default {DEFAULT_OUT.relative_to(HERE.parent)})")
    parser.add_argument("--sizes", type=sizes_argument, help="series per payload, comma-separated (default 100,1000,10000)")
    parser.add_argument("--targets", type=int, help="multi-target: number of targets (default 200)")
    parser.add_argument("--multi-series", type=int, help="multi-target: series per target (default 1000)")
    parser.add_argument("--rounds", type=int, help="rounds of alternating variants (default 5, --quick 2)")
    parser.add_argument("--batch-seconds", type=float, help="least duration of one variant's batch (default 0.6, --quick 0.25)")
    parser.add_argument("--multi-seconds", type=float, help="multi-target: how long to drive probes (default 10, --quick 3)")
    parser.add_argument("--baseline-command", metavar="CMD",
                        help="the pharos command of another build (e.g. /tmp/oldvenv/bin/pharos): its exporter runs beside this one, alternately, and the CPU ratios are reported")  # fmt: skip
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else Settings()
    overrides = {
        "sizes": args.sizes,
        "targets": args.targets,
        "multi_series": args.multi_series,
        "rounds": args.rounds,
        "batch_seconds": args.batch_seconds,
        "multi_seconds": args.multi_seconds,
    }
    settings = Settings(**{**asdict(settings), **{key: value for key, value in overrides.items() if value is not None}})
    results = run(settings, args.quick, args.baseline_command.split() if args.baseline_command else None)
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"\nresults: {args.out} ({results['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
