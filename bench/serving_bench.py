"""Serving under abuse: the healthy probe's latency while clients misbehave, beside a baseline.

    .venv/bin/python bench/serving_bench.py [--quick] [--exporter-command CMD ...] [--out FILE]

Against a real `pharos exporter` process (allow-list 127.0.0.0/8; the targets are
bench/fault_targets.py in a process of its own), each abuse is a phase of two halves: a baseline
(healthy probes alone) and then the same healthy probes while the abuse runs. Healthy probes come
from a few paced clients, each probe on a fresh connection (a connection kept alive from before the
abuse would hide what a new client meets: the backlog, the accept loop, a thread per connection).

1. slow_client_flood: N connections (non-blocking sockets, one selector) send a request line and
   then one header line every few seconds; a connection the server closes is opened again;
2. connect_burst: rounds of 500 connections opened at once, each sending one `GET /`: how many
   complete, and the connect times (a connect over 0.9 s waited for a SYN retransmit);
3. stuck_targets: 50 distinct stuck targets probed by 60 client threads;
4. wrong_passwords: basic auth on (bcrypt cost 10): 200 client threads send distinct wrong
   passwords for the real user while the legitimate client probes with the right one.

Reported per phase: healthy median and p99 (and their ratio to the phase's own baseline), healthy
probes that succeeded vs failed, the abuse's own counts, the exporter's peak threads, RSS and open
files. `--exporter-command` may be given more than once (e.g. the current and an older build): each
command runs every phase in turn, in one run. Every loop is bounded in count and time.
Results go to bench/results/serving.json (or --out).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import errno
import itertools
import json
import multiprocessing
import random
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import bcrypt
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import exporter_bench  # noqa: E402 - sibling modules, found through the line above
import soak  # noqa: E402
from soak import Tally, percentiles, probe_once  # noqa: E402

ROOT = HERE.parent
DEFAULT_OUT = HERE / "results" / "serving.json"
DEFAULT_COMMAND = ".venv/bin/pharos"
USER, PASSWORD = "pharos", "the-right-password"
PHASES = ("slow_client_flood", "connect_burst", "stuck_targets", "wrong_passwords")
SYN_RETRANSMIT_SECONDS = 0.9  # Linux retransmits an unanswered SYN after 1 s


@dataclass(frozen=True)
class Settings:
    seconds: float = 15.0  # each half of a phase: baseline, then under abuse
    latency_clients: int = 2
    probe_interval: float = 0.05  # each latency client: a probe at most every so often
    healthy_targets: int = 20
    slow_clients: int = 1000
    slow_line_seconds: float = 2.0  # a slow client sends one header line so often
    slow_reconnects: int = 2  # connections the server closed are opened again, up to this many x slow_clients
    burst_connections: int = 500
    burst_seconds: float = 20.0  # one round of the burst waits so long at most
    burst_rounds: int = 10
    stuck_targets: int = 50
    stuck_clients: int = 60
    wrong_password_clients: int = 200
    request_timeout: float = 10.0  # of the abusers' requests
    timeout_seconds: float = 2.0  # the exporter's scrape timeout
    per_target: int = 4
    overall: int = 32
    bcrypt_cost: int = 10
    ready_seconds: float = 5.0  # an abuse may take so long to be in full force


QUICK = Settings(seconds=3.0, slow_clients=200, slow_line_seconds=1.0, burst_connections=200, burst_seconds=5.0, burst_rounds=3,
                 stuck_targets=20, stuck_clients=24, wrong_password_clients=40, request_timeout=5.0, timeout_seconds=1.0,
                 ready_seconds=2.0)  # fmt: skip


# --- the exporter ---------------------------------------------------------------------------------
class Exporter(exporter_bench.Exporter):
    """exporter_bench's exporter process, started by a given command; ready at its first HTTP
    answer of any status (with basic auth on, `/` answers 401)."""

    def __init__(self, command: list[str], arguments: list[str], log_path: Path):
        super().__init__(arguments, log_path)
        self.command = command
        self.address: tuple[str, int] = ("127.0.0.1", 0)

    def start(self) -> "Exporter":
        for _attempt in range(3):  # another process may take the port between probe and bind
            port = exporter_bench.free_port()
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [*self.command, "exporter", "--listen", f"127.0.0.1:{port}", "--log-level", "warning", *self.arguments],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                )  # fmt: skip
            self.base, self.address = f"http://127.0.0.1:{port}", ("127.0.0.1", port)
            if self._wait_ready():
                self.psutil = exporter_bench.psutil.Process(self.process.pid)
                return self
        raise RuntimeError(f"the exporter ({' '.join(self.command)}) did not start; its log ends with:\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + exporter_bench.START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                requests.get(self.base + "/", timeout=1)
                return True
            except requests.RequestException:
                time.sleep(0.05)
        self.stop()
        return False

    def figures(self) -> dict:
        try:
            return {"threads": self.psutil.num_threads(), "rss_mb": round(self.rss_mb(), 1), "open_fds": self.psutil.num_fds()}
        except exporter_bench.psutil.Error:
            return {"threads": 0, "rss_mb": 0.0, "open_fds": 0}


# --- healthy probes -------------------------------------------------------------------------------
def probe_healthy(base: str, urls: list[str], settings: Settings, seconds: float, auth: tuple[str, str] | None) -> dict:
    """Paced probes of healthy targets by `latency_clients` clients, each on a fresh connection."""
    tally, stop_at, targets = Tally(), time.monotonic() + seconds, itertools.cycle(urls)
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as session:
            session.auth = auth
            session.headers["Connection"] = "close"
            while (started := time.monotonic()) < stop_at:
                with lock:
                    url = next(targets)
                probe_once(session, base, url, "healthy", tally)
                time.sleep(max(0.0, settings.probe_interval - (time.monotonic() - started)))

    threads = [threading.Thread(target=client, name=f"healthy-{n}") for n in range(settings.latency_clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return healthy_figures(tally)


class Prober:
    """Healthy probes from a process of their own: the abusers' threads in this process must slow
    the probing clients down only through the exporter, not by holding this process' GIL."""

    def __init__(self) -> None:
        self.pool = concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))

    def probe(self, base: str, urls: list[str], settings: Settings, seconds: float, auth: tuple[str, str] | None) -> dict:
        return self.pool.submit(probe_healthy, base, urls, settings, seconds, auth).result(timeout=seconds + 120)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def healthy_figures(tally: Tally) -> dict:
    outcomes = tally.outcomes["healthy"]
    return {
        "healthy_latency_ms": percentiles(tally.latencies["healthy"]),
        "healthy_ok": outcomes.get("success", 0),
        "healthy_failed": sum(outcomes.values()) - outcomes.get("success", 0),
        "healthy_outcomes": dict(outcomes.most_common()),
    }


def phase(prober: Prober, exporter: Exporter, settings: Settings, urls: list[str], abuse, auth=None) -> dict:
    """A baseline of healthy probes alone, then the same probes while `abuse(stop, ready)` runs."""
    requests.get(exporter.base + "/", auth=auth, timeout=30)  # with basic auth: the one bcrypt check of the right password
    baseline = prober.probe(exporter.base, urls, settings, settings.seconds, auth)
    stop, ready, abuse_figures = threading.Event(), threading.Event(), {}
    abuser = threading.Thread(target=lambda: abuse_figures.update(abuse(stop, ready)), name="abuser")
    abuser.start()
    ready.wait(settings.ready_seconds)
    peak, sampling = exporter.figures(), threading.Event()

    def sample() -> None:
        while not sampling.wait(0.25):
            for key, value in exporter.figures().items():
                peak[key] = max(peak[key], value)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    under = prober.probe(exporter.base, urls, settings, settings.seconds, auth)
    stop.set()
    abuser.join(settings.request_timeout + settings.burst_seconds + 60)
    sampling.set()
    sampler.join(5)
    time.sleep(settings.timeout_seconds * 1.5 + 0.5)  # scrapes of stuck targets end before the next baseline
    base_ms, under_ms = baseline["healthy_latency_ms"], under["healthy_latency_ms"]
    return {
        "baseline": baseline,
        "abuse": {**under, "exporter_peak": peak, "abuser_stopped": not abuser.is_alive(), **abuse_figures},
        "median_ratio": ratio(under_ms, base_ms, "median"),
        "p99_ratio": ratio(under_ms, base_ms, "p99"),
        "exporter_after": exporter.figures(),
    }


def ratio(under: dict, base: dict, key: str) -> float | None:
    return under[key] / base[key] if under.get(key) and base.get(key) else None


# --- abuses ---------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    opened_at: float
    connected_at: float | None = None
    next_line: float = 0.0
    buffer: bytearray = field(default_factory=bytearray)


def _open(selector: selectors.BaseSelector, address: tuple[str, int]) -> _Connection | None:
    sock = socket.socket()
    sock.setblocking(False)
    code = sock.connect_ex(address)
    if code not in (0, errno.EINPROGRESS):
        sock.close()
        return None
    connection = _Connection(sock, time.monotonic())
    selector.register(sock, selectors.EVENT_WRITE, connection)
    return connection


def _close(selector: selectors.BaseSelector, connection: _Connection) -> None:
    selector.unregister(connection.sock)
    connection.sock.close()


def _connected(connection: _Connection) -> bool:
    """After the socket turned writable: did the connect succeed? Notes the moment it did."""
    if connection.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
        return False
    connection.connected_at = time.monotonic()
    return True


def slow_client_flood(address: tuple[str, int], settings: Settings):
    def abuse(stop: threading.Event, ready: threading.Event) -> dict:
        selector, counts, lifetimes = selectors.DefaultSelector(), Counter(), []
        open_now: set[_Connection] = set()
        started, held, most_held = time.monotonic(), 0, 0
        hard_stop = started + settings.ready_seconds + settings.seconds + 60

        def open_one() -> None:
            if counts["connects"] >= settings.slow_clients * (1 + settings.slow_reconnects):
                return
            counts["connects"] += 1
            connection = _open(selector, address)
            if connection is None:
                counts["connect_errors"] += 1
            else:
                open_now.add(connection)

        def server_closed(connection: _Connection, answered: bool) -> None:
            nonlocal held
            counts["answered_then_closed" if answered else "closed_or_reset_by_server"] += 1
            lifetimes.append(time.monotonic() - connection.connected_at)
            held -= 1
            open_now.discard(connection)
            _close(selector, connection)
            open_one()

        for _ in range(settings.slow_clients):
            open_one()
        while not stop.is_set() and time.monotonic() < hard_stop:
            for key, _events in selector.select(0.05):
                connection: _Connection = key.data
                if connection.connected_at is None:
                    if not _connected(connection):
                        counts["connect_errors"] += 1
                        open_now.discard(connection)
                        _close(selector, connection)
                        open_one()
                        continue
                    held += 1
                    counts["connected"] += 1
                    connection.sock.send(b"GET /metrics HTTP/1.1\r\n")
                    connection.next_line = time.monotonic() + random.uniform(0, settings.slow_line_seconds)
                    selector.modify(connection.sock, selectors.EVENT_READ, connection)
                    continue
                try:
                    data = connection.sock.recv(4096)
                except OSError:
                    data = b""
                server_closed(connection, answered=bool(data))
            now = time.monotonic()
            for connection in [c for c in open_now if c.connected_at is not None and c.next_line <= now]:
                try:
                    connection.sock.send(f"X-Slow-{counts['header_lines']}: {'x' * 16}\r\n".encode())
                except OSError:
                    server_closed(connection, answered=False)
                    continue
                counts["header_lines"] += 1
                connection.next_line = now + settings.slow_line_seconds
            most_held = max(most_held, held)
            if held >= settings.slow_clients or now - started >= settings.ready_seconds:
                ready.set()
        ready.set()
        for connection in list(open_now):
            _close(selector, connection)
        selector.close()
        return {
            "abuser_count": counts["connects"],
            "slow": {**dict(counts), "most_held_open": most_held, "held_at_end": held,
                     "seconds_until_server_closed": percentiles(lifetimes)},
        }  # fmt: skip

    return abuse


def burst_round(address: tuple[str, int], count: int, seconds: float) -> tuple[Counter, list[float]]:
    """`count` connections opened at once, each sending `GET /`: their outcomes and connect times."""
    selector, outcomes, connect_times = selectors.DefaultSelector(), Counter(), []
    pending = set()
    for _ in range(count):
        connection = _open(selector, address)
        if connection is None:
            outcomes["connect error"] += 1
        else:
            pending.add(connection)
    deadline = time.monotonic() + seconds

    def finish(connection: _Connection, outcome: str) -> None:
        outcomes[outcome] += 1
        pending.discard(connection)
        _close(selector, connection)

    while pending and (remaining := deadline - time.monotonic()) > 0:
        for key, _events in selector.select(min(remaining, 0.1)):
            connection: _Connection = key.data
            if connection.connected_at is None:
                if not _connected(connection):
                    finish(connection, "connect error")
                    continue
                connect_times.append(connection.connected_at - connection.opened_at)
                try:
                    connection.sock.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                except OSError:
                    finish(connection, "reset")
                    continue
                selector.modify(connection.sock, selectors.EVENT_READ, connection)
                continue
            try:
                chunk = connection.sock.recv(65536)
            except OSError:
                finish(connection, "reset")
                continue
            connection.buffer += chunk
            status = answer_status(bytes(connection.buffer), closed=not chunk)
            if status is not None:
                finish(connection, status)
            elif not chunk:
                finish(connection, "closed without an answer")
    for connection in list(pending):
        finish(connection, "no answer in time" if connection.connected_at else "not connected in time")
    selector.close()
    return outcomes, connect_times


def answer_status(data: bytes, closed: bool) -> str | None:
    """`HTTP nnn` once the answer is whole (its Content-Length read, or the server closed)."""
    head, blank, body = data.partition(b"\r\n\r\n")
    if not blank:
        return None
    lines = head.split(b"\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in lines[1:] if line.lower().startswith(b"content-length:")), None)
    if not closed and (length is None or len(body) < length):
        return None
    parts = lines[0].split(b" ")
    return f"HTTP {parts[1].decode(errors='replace')}" if len(parts) > 1 else "malformed answer"


def connect_burst(address: tuple[str, int], settings: Settings):
    def abuse(stop: threading.Event, ready: threading.Event) -> dict:
        outcomes, connect_times, round_seconds = Counter(), [], []
        ready.set()
        for _round in range(settings.burst_rounds):
            if stop.is_set():
                break
            started = time.monotonic()
            round_outcomes, round_times = burst_round(address, settings.burst_connections, settings.burst_seconds)
            round_seconds.append(time.monotonic() - started)
            outcomes.update(round_outcomes)
            connect_times += round_times
            stop.wait(0.2)
        attempts = sum(outcomes.values())
        return {
            "abuser_count": attempts,
            "burst": {
                "rounds": len(round_seconds),
                "connections": attempts,
                "completed": outcomes.get("HTTP 200", 0),
                "outcomes": dict(outcomes.most_common()),
                "connect_ms": percentiles(connect_times),
                "connects_over_0.9s": sum(1 for seconds in connect_times if seconds > SYN_RETRANSMIT_SECONDS),
                "round_seconds": percentiles(round_seconds),
            },
        }

    return abuse


def hammer(workers: int, one_request, stop: threading.Event, ready: threading.Event, name: str) -> None:
    """`workers` client threads, each calling `one_request(session, worker, n)` until `stop`."""

    def client(worker: int) -> None:
        with requests.Session() as session:
            for n in itertools.count():
                if stop.is_set():
                    return
                one_request(session, worker, n)

    threads = [threading.Thread(target=client, args=(worker,), name=f"{name}-{worker}") for worker in range(workers)]
    for thread in threads:
        thread.start()
    ready.set()
    stop.wait()
    for thread in threads:
        thread.join(60)


def stuck_targets(exporter: Exporter, stuck_urls: list[str], settings: Settings):
    def abuse(stop: threading.Event, ready: threading.Event) -> dict:
        tally = Tally()

        def one(session, worker, n):
            probe_once(session, exporter.base, stuck_urls[(worker + n) % len(stuck_urls)], "stuck", tally)

        hammer(settings.stuck_clients, one, stop, ready, "stuck")
        return {"abuser_count": tally.scrapes, "stuck": {"probes": tally.scrapes, "outcomes": dict(tally.outcomes["stuck"].most_common()),
                                                         "latency_ms": percentiles(tally.latencies["stuck"])}}  # fmt: skip

    return abuse


def wrong_passwords(exporter: Exporter, settings: Settings):
    def abuse(stop: threading.Event, ready: threading.Event) -> dict:
        outcomes, lock = Counter(), threading.Lock()

        def one(session, worker, n):
            try:
                status = f"HTTP {session.get(exporter.base + '/metrics', auth=(USER, f'wrong-{worker}-{n}'), timeout=settings.request_timeout).status_code}"
            except requests.RequestException as error:
                status = type(error).__name__
            with lock:
                outcomes[status] += 1

        hammer(settings.wrong_password_clients, one, stop, ready, "wrong-password")
        return {"abuser_count": sum(outcomes.values()), "wrong_passwords": {"requests": sum(outcomes.values()), "outcomes": dict(outcomes.most_common())}}

    return abuse


def web_config(settings: Settings, workdir: Path) -> Path:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(settings.bcrypt_cost)).decode()
    path = workdir / "web.yml"
    path.write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
    return path


# --- running --------------------------------------------------------------------------------------
def run_command(prober: Prober, command: list[str], settings: Settings, targets: soak.Targets, workdir: Path) -> dict:
    started = time.perf_counter()
    healthy = [f"{targets.base}/healthy/{n}/stats" for n in range(settings.healthy_targets)]
    stuck = [f"{targets.stuck_base}/stuck/serving-{n}/stats" for n in range(settings.stuck_targets)]
    config = soak.exporter_config(soak_settings(settings), workdir)
    label = command[-1].replace("/", "_")
    phases, alive = {}, True
    exporter = Exporter(command, ["--config", str(config)], workdir / f"exporter-{label}.log").start()
    try:
        phases["slow_client_flood"] = phase(prober, exporter, settings, healthy, slow_client_flood(exporter.address, settings))
        phases["connect_burst"] = phase(prober, exporter, settings, healthy, connect_burst(exporter.address, settings))
        phases["stuck_targets"] = phase(prober, exporter, settings, healthy, stuck_targets(exporter, stuck, settings))
        alive = exporter.process.poll() is None
    finally:
        exporter.stop()
    secured = Exporter(command, ["--config", str(config), "--web.config.file", str(web_config(settings, workdir))],
                       workdir / f"exporter-auth-{label}.log").start()  # fmt: skip
    try:
        phases["wrong_passwords"] = phase(prober, secured, settings, healthy, wrong_passwords(secured, settings), auth=(USER, PASSWORD))
        alive = alive and secured.process.poll() is None
    finally:
        secured.stop()
    return {"exporter_command": " ".join(command), "phases": phases, "exporter_alive_at_end": alive, "seconds": time.perf_counter() - started}


def soak_settings(settings: Settings) -> soak.Settings:
    return replace(soak.Settings(), timeout_seconds=settings.timeout_seconds, per_target=settings.per_target, overall=settings.overall,
                   max_seconds=settings.seconds * 20 + 600)  # fmt: skip


def run(settings: Settings, commands: list[list[str]], quick: bool) -> dict:
    started = time.perf_counter()
    load_before = exporter_bench.machine()
    prober = Prober()
    try:
        with tempfile.TemporaryDirectory(prefix="pharos-serving-") as temp, soak.fault_targets(soak_settings(settings)) as targets:
            runs = [run_command(prober, command, settings, targets, Path(temp)) for command in commands]
    finally:
        prober.close()
    return {
        "benchmark": "serving",
        "quick": quick,
        "settings": asdict(settings),
        "machine": load_before,
        "load_average_after": exporter_bench.machine()["load_average"],
        "seconds": time.perf_counter() - started,
        "runs": runs,
    }


# --- output ---------------------------------------------------------------------------------------
def abuse_summary(name: str, abuse: dict) -> str:
    if name == "slow_client_flood":
        slow = abuse["slow"]
        return (f"{slow.get('connects', 0)} connects, at most {slow['most_held_open']} held open, {slow.get('closed_or_reset_by_server', 0) + slow.get('answered_then_closed', 0)} closed by the server "
                f"(median after {slow['seconds_until_server_closed'].get('median', 0) / 1e3:.1f} s), {slow.get('header_lines', 0)} header lines")
    if name == "connect_burst":
        burst = abuse["burst"]
        return (f"{burst['completed']}/{burst['connections']} completed in {burst['rounds']} rounds; connect median "
                f"{burst['connect_ms'].get('median', 0):.1f} ms, p99 {burst['connect_ms'].get('p99', 0):.0f} ms, over 0.9 s: {burst['connects_over_0.9s']}; "
                f"{', '.join(f'{k} {v}' for k, v in burst['outcomes'].items())}")
    if name == "stuck_targets":
        stuck = abuse["stuck"]
        return f"{stuck['probes']} stuck probes: {', '.join(f'{k} {v}' for k, v in stuck['outcomes'].items())}"
    wrong = abuse["wrong_passwords"]
    return f"{wrong['requests']} wrong-password requests: {', '.join(f'{k} {v}' for k, v in wrong['outcomes'].items())}"


def table(results: dict) -> str:
    lines = []
    for one in results["runs"]:
        lines += [f"exporter: {one['exporter_command']} (alive at the end: {one['exporter_alive_at_end']})",
                  f"  {'phase':18} {'half':8} {'median ms':>10} {'p99 ms':>9} {'x median':>9} {'x p99':>7} {'ok/failed':>11}  peak threads/RSS MB/fds"]  # fmt: skip
        for name, result in one["phases"].items():
            for half in ("baseline", "abuse"):
                figures = result[half]
                latency = figures["healthy_latency_ms"]
                ratios = (f"{result['median_ratio'] or 0:8.2f}x {result['p99_ratio'] or 0:6.2f}x" if half == "abuse" else " " * 17)
                peak = figures.get("exporter_peak")
                peak_text = f"  {peak['threads']}/{peak['rss_mb']:.0f}/{peak['open_fds']}" if peak else ""
                lines.append(f"  {name if half == 'baseline' else '':18} {half:8} {latency.get('median', 0):10.1f} {latency.get('p99', 0):9.1f} "
                             f"{ratios} {figures['healthy_ok']:>5}/{figures['healthy_failed']:<5}{peak_text}")  # fmt: skip
            failed = {k: v for k, v in result["abuse"]["healthy_outcomes"].items() if k != "success"}
            lines.append(f"  {'':18} abuse: {abuse_summary(name, result['abuse'])}" + (f"; healthy failures: {failed}" if failed else ""))
    if len(results["runs"]) > 1:
        lines.append("side by side (healthy median / p99 under abuse, as a ratio to each run's own baseline):")
        lines.append(f"  {'phase':18} " + " | ".join(f"{Path(one['exporter_command']).parent.parent.name or one['exporter_command']:>24}" for one in results["runs"]))
        for name in PHASES:
            cells = []
            for one in results["runs"]:
                result = one["phases"][name]
                cells.append(f"{result['median_ratio'] or 0:6.2f}x / {result['p99_ratio'] or 0:7.2f}x {result['abuse']['healthy_failed']:>4}f")
            lines.append(f"  {name:18} " + " | ".join(f"{cell:>24}" for cell in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The healthy probe's latency while clients abuse the exporter's server, beside a baseline.")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 s per half-phase, smaller counts (about 40 s)")
    parser.add_argument("--exporter-command", action="append", metavar="CMD",
                        help=f"the pharos command to run (default {DEFAULT_COMMAND}); repeat to compare builds in one run")  # fmt: skip
    parser.add_argument("--seconds", type=float, help=f"each half of a phase (default {Settings.seconds:.0f}, --quick {QUICK.seconds:.0f})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results (default bench/results/serving.json)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else Settings()
    if args.seconds is not None:
        settings = replace(settings, seconds=args.seconds)
    commands = []
    for command in args.exporter_command or [DEFAULT_COMMAND]:
        path = Path(command) if Path(command).is_absolute() else ROOT / command
        commands.append([str(path)] if path.exists() else command.split())
    results = run(settings, commands, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(table(results))
    print(f"results: {args.out} ({results['seconds']:.0f} s)")
    return 0 if all(one["exporter_alive_at_end"] for one in results["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
