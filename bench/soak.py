"""Soak: tens of thousands of /probe scrapes of a real multi-target exporter, faults mixed in.

    .venv/bin/python bench/soak.py [--quick] [--scrapes N] [--max-seconds S] [--out FILE]

A `pharos exporter` process (allow-list 127.0.0.0/8) probes targets served by
bench/fault_targets.py in a process of its own: healthy pharo documents, garbage (random bytes,
HTML), slow answers (beyond the scrape timeout), stuck requests (never answered), and down targets
(a port that refuses). Reported:

- soak: the exporter's resident memory, threads and open files after warm-up and after the load,
  with the growth in % (aim: at most 5 %), sampled along the way too; scrapes per second; how the
  scrapes of each kind of target ended; any probe that did not answer 200 (there should be none);
- starvation: latency of healthy probes alone, then while clients hammer one stuck target (the
  per-target bound keeps it to max_concurrent_per_target scrapes), then while they hammer more
  stuck targets than the overall bound admits (max_concurrent_scrapes): median and p99 of each,
  and the most connections the exporter held open to stuck targets at once (counted on its side).

Every phase is bounded by a count and by time. Results go to bench/results/soak.json (or --out).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from exporter_bench import Exporter, machine  # noqa: E402 - a sibling module, found through the line above

ROOT = HERE.parent
DEFAULT_OUT = HERE / "results" / "soak.json"
STATS_DOCUMENT = ROOT / "tests" / "fixtures" / "profiles" / "pharo.json"
GROWTH_AIM_PERCENT = 5.0
_SUCCESS = re.compile(rb"^pharos_scrape_success (\S+)$", re.M)
_REASON = re.compile(rb'^pharos_scrape_error\{reason="(\w+)"\} 1(?:\.0)?$', re.M)


@dataclass(frozen=True)
class Settings:
    scrapes: int = 30_000
    max_seconds: float = 300.0  # the soak phase ends at whichever comes first
    warmup_scrapes: int = 3_000
    workers: int = 16
    healthy: int = 100
    garbage: int = 10
    slow: int = 5
    stuck: int = 5
    down: int = 5
    timeout_seconds: float = 1.0
    per_target: int = 4  # the exporter's max_concurrent_per_target
    overall: int = 32  # and max_concurrent_scrapes
    sample_seconds: float = 5.0
    starvation_seconds: float = 10.0
    latency_workers: int = 4
    hammer_workers: int = 48
    many_stuck: int = 16  # for the overall bound: more stuck targets than overall / per_target


QUICK = Settings(scrapes=2_500, max_seconds=8.0, warmup_scrapes=400, healthy=30, garbage=4, slow=2, stuck=2, down=2,
                 timeout_seconds=0.5, sample_seconds=2.0, starvation_seconds=2.0, hammer_workers=40)  # fmt: skip


# --- processes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Targets:
    """bench/fault_targets.py's two ports: everything, and the stuck targets apart."""

    base: str
    stuck_base: str
    port: int
    stuck_port: int


@contextlib.contextmanager
def fault_targets(settings: Settings):
    server = subprocess.Popen(
        [sys.executable, str(HERE / "fault_targets.py"), str(STATS_DOCUMENT), "--slow-seconds", str(settings.timeout_seconds + 1.0),
         "--max-seconds", str(settings.max_seconds + 600)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = server.stdout.readline()  # "ports MAIN STUCK"
        if not line.startswith("ports "):
            raise RuntimeError(f"the fault targets did not start (they said {line!r})")
        main, stuck = (int(port) for port in line.split()[1:3])
        yield Targets(f"http://127.0.0.1:{main}", f"http://127.0.0.1:{stuck}", main, stuck)
    finally:
        server.stdin.close()  # its signal to exit
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


@contextlib.contextmanager
def refusing_ports(count: int):
    """Ports bound but not listening: connections are refused, and no other process can take them."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        yield [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def exporter_config(settings: Settings, workdir: Path) -> Path:
    path = workdir / "soak-exporter.yml"
    path.write_text(
        "probe:\n  allow: [127.0.0.0/8]\n"
        f"limits:\n  timeout_seconds: {settings.timeout_seconds}\n"
        f"  max_concurrent_per_target: {settings.per_target}\n  max_concurrent_scrapes: {settings.overall}\n"
    )
    return path


def connections_to(exporter: Exporter, ports: tuple[int, ...]) -> int:
    """Sockets the exporter holds open to these ports: closed ones have no file any more."""
    return sum(1 for connection in exporter.psutil.net_connections(kind="tcp") if connection.raddr and connection.raddr.port in ports)


def process_figures(exporter: Exporter, targets: Targets) -> dict:
    """RSS, threads and open files of the exporter; of the files, the kept-alive connections to
    the targets are counted apart: they fill up to a bound (targets x per-target concurrency)
    as concurrency per target varies, while any other growth would be a leak."""
    process = exporter.psutil
    fds = process.num_fds()
    to_targets = connections_to(exporter, (targets.port, targets.stuck_port))
    return {
        "rss_mb": process.memory_info().rss / 2**20,
        "threads": process.num_threads(),
        "open_fds": fds,
        "target_connections": to_targets,
        "other_fds": fds - to_targets,
    }


# --- probing ------------------------------------------------------------------------------------
class Tally:
    """What the probes of one phase saw: outcomes per kind of target, latencies, failures."""

    def __init__(self) -> None:
        self.outcomes: defaultdict[str, Counter] = defaultdict(Counter)
        self.latencies: defaultdict[str, list[float]] = defaultdict(list)
        self.http_failures: list[str] = []
        self.scrapes = 0
        self.lock = threading.Lock()

    def record(self, kind: str, seconds: float, response: requests.Response | None, error: str = "") -> None:
        if response is None or response.status_code != 200:
            outcome = error or f"HTTP {response.status_code}"
        else:
            success = _SUCCESS.search(response.content)
            reason = _REASON.search(response.content)
            outcome = "success" if success and float(success.group(1)) == 1.0 else (reason.group(1).decode() if reason else "unreadable")
        with self.lock:
            self.scrapes += 1
            self.outcomes[kind][outcome] += 1
            self.latencies[kind].append(seconds)
            if outcome.startswith("HTTP") or error:
                self.http_failures.append(f"{kind}: {outcome}")


def probe_once(session: requests.Session, exporter: str, url: str, kind: str, tally: Tally) -> None:
    started = time.perf_counter()
    try:
        response = session.get(f"{exporter}/probe", params={"target": url, "profile": "pharo"}, timeout=30)
    except requests.RequestException as error:
        tally.record(kind, time.perf_counter() - started, None, f"{type(error).__name__}")
        return
    tally.record(kind, time.perf_counter() - started, response)


def drive(exporter: str, plan, workers: int, stop_at: float, tally: Tally) -> None:
    """`workers` clients take (kind, url) from `plan` until it runs out or `stop_at` passes."""
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as session:  # closed at the end, so the exporter's thread for it ends too
            while time.monotonic() < stop_at:
                with lock:
                    item = next(plan, None)
                if item is None:
                    return
                probe_once(session, exporter, item[1], item[0], tally)

    threads = [threading.Thread(target=client, name=f"soak-client-{n}") for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, stop_at - time.monotonic()) + 60)


def target_mix(settings: Settings, targets: Targets, down_ports: list[int]) -> list[tuple[str, str]]:
    mix = [("healthy", f"{targets.base}/healthy/{n}/stats") for n in range(settings.healthy)]
    mix += [("garbage", f"{targets.base}/garbage/{n}/stats") for n in range(settings.garbage)]
    mix += [("slow", f"{targets.base}/slow/{n}/stats") for n in range(settings.slow)]
    mix += [("stuck", f"{targets.stuck_base}/stuck/{n}/stats") for n in range(settings.stuck)]
    mix += [("down", f"http://127.0.0.1:{port}/stats") for port in down_ports]
    return mix


def random_plan(mix: list, count: int, seed: int):
    chooser = random.Random(seed)
    return iter([chooser.choice(mix) for _ in range(count)])


# --- phases -------------------------------------------------------------------------------------
def soak(settings: Settings, exporter: Exporter, mix: list, targets: Targets) -> dict:
    figures = lambda: process_figures(exporter, targets)  # noqa: E731 - a short alias
    everything_once = iter(mix)
    drive(exporter.base, everything_once, settings.workers, time.monotonic() + 120, Tally())
    drive(exporter.base, random_plan(mix, settings.warmup_scrapes, seed=1), settings.workers, time.monotonic() + settings.max_seconds, Tally())
    settle = settings.timeout_seconds * 1.5 + 2.5  # stuck scrapes end, the fetch watchdog goes idle
    time.sleep(settle)
    start = figures()
    samples = [{"seconds": 0.0, **start}]
    tally, started = Tally(), time.monotonic()
    done = threading.Event()

    def sample() -> None:
        while not done.wait(settings.sample_seconds):
            samples.append({"seconds": round(time.monotonic() - started, 1), **figures()})

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    drive(exporter.base, random_plan(mix, settings.scrapes, seed=2), settings.workers, started + settings.max_seconds, tally)
    seconds = time.monotonic() - started
    done.set()
    sampler.join(settings.sample_seconds + 5)
    time.sleep(settle)
    end = figures()
    loaded = samples[1:] or samples
    return {
        "scrapes": tally.scrapes,
        "seconds": seconds,
        "scrapes_per_second": tally.scrapes / seconds,
        "start": start,
        "end": end,
        "growth_percent": {key: growth(start[key], end[key]) for key in start},
        # Under load (first and last sample while probing): the threads serving clients included.
        "under_load": {"first": loaded[0], "last": loaded[-1], "growth_percent": {key: growth(loaded[0][key], loaded[-1][key]) for key in start}},
        "target_connections_bound": (settings.healthy + settings.garbage + settings.slow + settings.stuck) * settings.per_target,
        "samples": samples,
        "outcomes": {kind: dict(counts.most_common()) for kind, counts in sorted(tally.outcomes.items())},
        "latency_ms": {kind: percentiles(values) for kind, values in sorted(tally.latencies.items())},
        "http_failures": len(tally.http_failures),
        "http_failure_examples": tally.http_failures[:5],
    }


def growth(before: float, after: float) -> float:
    return (after - before) / before * 100 if before else 0.0


def percentiles(seconds: list[float]) -> dict:
    if not seconds:
        return {"count": 0}
    ordered = sorted(seconds)
    return {
        "count": len(ordered),
        "median": statistics.median(ordered) * 1e3,
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
        "max": ordered[-1] * 1e3,
    }


def starvation(settings: Settings, exporter: Exporter, targets: Targets) -> dict:
    healthy = [("healthy", f"{targets.base}/healthy/{n}/stats") for n in range(settings.healthy)]
    one_stuck = [("stuck", f"{targets.stuck_base}/stuck/starve-one/stats")]
    many_stuck = [("stuck", f"{targets.stuck_base}/stuck/starve-many-{n}/stats") for n in range(settings.many_stuck)]
    phases = {}
    for name, hammered in (("alone", []), ("one_stuck_target", one_stuck), ("many_stuck_targets", many_stuck)):
        tally, hammer = Tally(), Tally()
        stop_at = time.monotonic() + settings.starvation_seconds
        endless_healthy = (healthy[n % len(healthy)] for n in range(10**7))
        clients = [threading.Thread(target=drive, args=(exporter.base, endless_healthy, settings.latency_workers, stop_at, tally))]
        if hammered:
            endless_stuck = (hammered[n % len(hammered)] for n in range(10**7))
            clients.append(threading.Thread(target=drive, args=(exporter.base, endless_stuck, settings.hammer_workers, stop_at, hammer)))
        for client in clients:
            client.start()
        most_open = 0  # the exporter's sockets to stuck targets, counted on its side every 50 ms
        while any(client.is_alive() for client in clients) and time.monotonic() < stop_at + 120:
            most_open = max(most_open, connections_to(exporter, (targets.stuck_port,)))
            time.sleep(0.05)
        for client in clients:
            client.join(settings.starvation_seconds + 120)
        phases[name] = {
            "healthy_latency_ms": percentiles(tally.latencies["healthy"]),
            "healthy_per_second": len(tally.latencies["healthy"]) / settings.starvation_seconds,
            "healthy_outcomes": dict(tally.outcomes["healthy"].most_common()),
            "stuck_outcomes": dict(hammer.outcomes["stuck"].most_common()),
            "stuck_probes": hammer.scrapes,
            "most_connections_to_stuck_targets": most_open,
        }
        time.sleep(settings.timeout_seconds * 1.5)  # let the stuck scrapes of this phase end
    alone = phases["alone"]
    for phase in phases.values():
        phase["healthy_median_ratio"] = phase["healthy_latency_ms"]["median"] / alone["healthy_latency_ms"]["median"]
        phase["healthy_throughput_ratio"] = phase["healthy_per_second"] / alone["healthy_per_second"]
    return phases


def run(settings: Settings, quick: bool) -> dict:
    started = time.perf_counter()
    load_before = machine()
    with tempfile.TemporaryDirectory(prefix="pharos-soak-") as temp, fault_targets(settings) as targets, refusing_ports(settings.down) as ports:
        workdir = Path(temp)
        exporter = Exporter(["--config", str(exporter_config(settings, workdir))], workdir / "exporter.log").start()
        try:
            soaked = soak(settings, exporter, target_mix(settings, targets, ports), targets)
            starved = starvation(settings, exporter, targets)
            final = process_figures(exporter, targets)
            alive = exporter.process.poll() is None
        finally:
            exporter.stop()
    return {
        "benchmark": "soak",
        "quick": quick,
        "settings": asdict(settings),
        "machine": load_before,
        "load_average_after": machine()["load_average"],
        "seconds": time.perf_counter() - started,
        "exporter_alive_at_end": alive,
        "soak": soaked,
        "starvation": starved,
        "after_everything": final,
        "aims": {
            "growth_percent_at_most": GROWTH_AIM_PERCENT,
            # Kept-alive connections to targets are held to their bound instead (see process_figures).
            "met": all(abs(soaked["growth_percent"][key]) <= GROWTH_AIM_PERCENT for key in ("rss_mb", "threads", "other_fds"))
            and soaked["end"]["target_connections"] <= soaked["target_connections_bound"],
        },
    }


# --- output -------------------------------------------------------------------------------------
def table(results: dict) -> str:
    soaked, settings = results["soak"], results["settings"]
    start, end, growth = soaked["start"], soaked["end"], soaked["growth_percent"]
    lines = [
        f"soak: {soaked['scrapes']} probes in {soaked['seconds']:.0f} s ({soaked['scrapes_per_second']:.0f}/s), "
        f"{settings['workers']} clients; HTTP failures: {soaked['http_failures']}; exporter alive: {results['exporter_alive_at_end']}",
        "                     idle: start      end   growth | under load: first     last   growth",
    ]
    load = soaked["under_load"]
    for key, label, form in (("rss_mb", "RSS MB", ".1f"), ("threads", "threads", "d"), ("open_fds", "open fds", "d"),
                             ("target_connections", "  to targets", "d"), ("other_fds", "  other fds", "d")):  # fmt: skip
        lines.append(
            f"{label:18} {start[key]:{'11' + form}} {end[key]:{'8' + form}} {growth[key]:+7.1f}% |"
            f" {load['first'][key]:{'17' + form}} {load['last'][key]:{'8' + form}} {load['growth_percent'][key]:+7.1f}%"
        )
    lines += [
        f"  aim: RSS, threads and other fds grow at most {GROWTH_AIM_PERCENT:.0f}%, connections to targets stay within"
        f" {soaked['target_connections_bound']} (targets x per-target concurrency): {'met' if results['aims']['met'] else 'NOT met'}",
        f"  RSS along the way: {min(s['rss_mb'] for s in soaked['samples']):.1f} to {max(s['rss_mb'] for s in soaked['samples']):.1f} MB",
        "outcomes by kind of target:",
    ]
    for kind, outcomes in soaked["outcomes"].items():
        latency = soaked["latency_ms"][kind]
        summary = ", ".join(f"{outcome} {count}" for outcome, count in outcomes.items())
        lines.append(f"  {kind:8} {summary}  (median {latency['median']:.1f} ms, p99 {latency['p99']:.1f} ms)")
    lines.append(f"starvation: healthy probes by {settings['latency_workers']} clients while {settings['hammer_workers']} clients hammer stuck targets")
    for name, phase in results["starvation"].items():
        latency = phase["healthy_latency_ms"]
        outcomes = ", ".join(f"{outcome} {count}" for outcome, count in phase["healthy_outcomes"].items())
        stuck = ", ".join(f"{outcome} {count}" for outcome, count in phase["stuck_outcomes"].items()) or "-"
        lines.append(
            f"  {name:19} healthy median {latency['median']:7.1f} ms ({phase['healthy_median_ratio']:.1f}x), p99 {latency['p99']:7.1f} ms, "
            f"{phase['healthy_per_second']:.0f} probes/s ({phase['healthy_throughput_ratio']:.2f}x); "
            f"healthy: {outcomes}; stuck: {stuck}; exporter's connections to stuck targets at most: {phase['most_connections_to_stuck_targets']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Soak the multi-target exporter with faults mixed in; memory, threads, files, starvation.")
    parser.add_argument("--quick", action="store_true", help="a smoke run of about 20 s instead of up to about 6 min")
    parser.add_argument("--scrapes", type=int, help=f"probes in the soak phase (default {Settings.scrapes})")
    parser.add_argument("--max-seconds", type=float, help=f"the soak phase ends after so long in any case (default {Settings.max_seconds:.0f})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results (default bench/results/soak.json)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else Settings()
    if args.scrapes is not None:
        settings = replace(settings, scrapes=args.scrapes, warmup_scrapes=min(settings.warmup_scrapes, max(1, args.scrapes // 10)))
    if args.max_seconds is not None:
        settings = replace(settings, max_seconds=args.max_seconds)
    results = run(settings, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(table(results))
    print(f"results: {args.out}")
    return 0 if results["exporter_alive_at_end"] and not results["soak"]["http_failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
