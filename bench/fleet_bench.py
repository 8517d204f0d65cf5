"""The fleet's global store at our users' size and ten times beyond, on real binaries.

    .venv/bin/python bench/fleet_bench.py [--quick] [--sizes users,10x] [--rounds K] [--out FILE]

Per size, all on 127.0.0.1 with temporary data directories:
- synthetic sidecars (bench/synthetic_targets.py, a process per 2,000 instances): every Pharo
  instance is a port of its own answering what the real sidecar exporter answered once for a
  bench/payloads.py document of `rows` request rows (its counters advancing at every scrape);
- a stack file with alpha, beta and production, `services` sidecar services each (service k has
  1, 2 or 3 instances, in turn: 2 on average; every 20th service answers 20 % of 5xx, so alerts
  fire), and a `fleet:` section; `pharos build` turns it into what users get: each environment's
  prometheus.yml (remote write, recording and alert rules) and fleet/fleet.yml;
- three Prometheus servers (one per environment, no HA pair), the VictoriaMetrics single node
  with the flags of fleet.yml, and vmalert with the global rules. The Alertmanagers the stack
  names are a port nobody listens on: alerts are evaluated, their delivery is not part of this.

After a warm-up (every target up, the overview's recordings of every environment in the store),
measured side by side in one run:
- ingestion, in a quiet window: samples/s reaching the store, CPU cores used by each component,
  scrapes that fell behind;
- the Services overview (dashboards/services_overview.py, built for the fleet), as Grafana sends it
  with `environment` and `service` at "All" (every value, as `(a|b|...)`: the variables have no
  allValue): its variable, panel and annotation queries over the dashboard's 1 h range, in K
  rounds, each query against the store as Grafana asks it, the store with `nocache=1` (no result
  cache), and production's Prometheus (one environment's data) with the same query for that
  environment. Median and p99 per query class and the store / Prometheus ratio. When the store
  refuses queries as sent (VictoriaMetrics' -search.maxQueryLen is 16 KB), the set is measured again
  with "All" written `.*`, what an `allValue: ".*"` on the variables would send;
- remote-write lag, sampled every few seconds through the quiet window and the queries: each
  Prometheus' highest appended minus highest sent timestamp, and how far the newest sample of
  its own `up` in the store is behind the same series in Prometheus;
- the store after a forced flush: disk (data and index), resident memory, series, samples
  ingested, and disk and memory per million samples.

Sizes: `users` (100 services x 3 environments, scrape and evaluation every 15 s, as shipped) and
`10x` (1,000 x 3, every 60 s: at 15 s two shared cores cannot scrape, rule-evaluate and
remote-write 1.3 million series; the samples/s actually ingested are reported). `--quick` is a tiny
size with `pharos up --fast`'s intervals, for tests/test_bench_smoke.py. The range queries cover
the dashboard's hour, of which only the minutes since the start hold data: in production, with a
full hour, range queries read more. Results go to bench/results/fleet.json and fleet.md (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import psutil
import requests
import yaml
import zlib

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import exporter_bench  # noqa: E402 - sibling modules, found through the line above
import payloads  # noqa: E402
import synthetic_targets  # noqa: E402

from pharos_monitoring.alerts import recording as r  # noqa: E402
from pharos_monitoring.alerts.model import duration_seconds  # noqa: E402
from pharos_monitoring.config import fleet  # noqa: E402
from pharos_monitoring.config.stack_config import PROMETHEUS_JOB  # noqa: E402
from pharos_monitoring.dashboards import house, queries, render, services_overview  # noqa: E402
from pharos_monitoring.dashboards.prometheus import Prometheus  # noqa: E402
from pharos_monitoring.demo.processes import Child, StartError, free_ports, parent_death_signal, stop_all, wait_until_answers  # noqa: E402
from pharos_monitoring.exporter.catalogue import Label as L  # noqa: E402

DEFAULT_OUT = HERE / "results" / "fleet.json"
HOST = "127.0.0.1"
ENVIRONMENTS = ("alpha", "beta", "production")
COMPARED_ENVIRONMENT = "production"  # its Prometheus answers the same queries, for the ratio
INSTANCES_PER_TARGET_PROCESS = 2000
START_TIMEOUT_SECONDS = 120
QUERY_TIMEOUT_SECONDS = 60
MIN_AVAILABLE_BYTES = 2 * 2**30
DASHBOARD_RANGE_SECONDS = 3600  # the overview opens on the last hour
TEMPLATE_TARGET = "pharo-template"  # the sidecar target's name when the template is rendered
BINARIES = {"prometheus": "prometheus", "store": "victoria-metrics", "vmalert": "vmalert"}


@dataclass(frozen=True)
class Size:
    name: str
    services: int  # per environment
    scrape_interval: str
    evaluation_interval: str
    rate_window: str = "5m"
    # Request rows per instance's document: 14 series each, beside ~100 fixed series (210 in all).
    # With 20 rows (378 series) the 10x size's three Prometheus took 16.5 GB in their third minute
    # and were still growing: more than this 24 GB machine holds beside the store.
    rows: int = 8
    instances: tuple[int, ...] = (1, 2, 3)  # service k has instances[k % 3]
    faulty_every: int = 20  # every n-th service answers 20 % of 5xx
    warmup_seconds: float = 240.0  # at least
    warmup_limit_seconds: float = 600.0
    quiet_seconds: float = 45.0  # ingestion measured without queries
    rounds: int = 20
    lag_poll_seconds: float = 2.0


SIZES = {
    "users": Size("users", 100, "15s", "15s"),
    "10x": Size("10x", 1000, "60s", "60s", warmup_seconds=330.0, warmup_limit_seconds=900.0, quiet_seconds=120.0, rounds=5, lag_poll_seconds=3.0),
}
QUICK = Size("quick", 3, "2s", "2s", rate_window="20s", rows=4, warmup_seconds=8.0, warmup_limit_seconds=40.0, quiet_seconds=3.0, rounds=2, lag_poll_seconds=0.5)


# --- the template: what the real sidecar answers for one instance --------------------------------------
def sidecar_template(rows: int, workdir: Path) -> str:
    """/metrics of a real `pharos exporter` in sidecar mode reading a pharo document of `rows`
    request rows and the process beside it (the document's server, standing in for the VM)."""
    (workdir / "pharo.json").write_bytes(payloads.body(rows))
    with exporter_bench.payload_server({"/stats": str(workdir / "pharo.json")}, workdir) as base_url:
        server_pid = next(p.pid for p in psutil.Process().children() if "payload_server.py" in " ".join(p.cmdline()))
        config = workdir / "sidecar.yml"
        config.write_text(yaml.safe_dump({"targets": [{"name": TEMPLATE_TARGET, "url": f"{base_url}/stats", "profile": "pharo", "process": {"pid": server_pid}}]}))
        exporter = exporter_bench.Exporter(["--config", str(config)], workdir / "sidecar.log").start()
        try:
            exposition = requests.get(exporter.base + "/metrics", timeout=10).text
        finally:
            exporter.stop()
    if not exporter_bench.scrape_succeeded(exposition.encode()):
        raise RuntimeError(f"the template sidecar could not read its document:\n{exposition[:2000]}")
    return exposition


# --- the fleet of one size ------------------------------------------------------------------------------
@dataclass
class Service:
    environment: str
    name: str
    ports: list[int] = field(default_factory=list)
    faulty: bool = False


def plan_services(size: Size) -> list[Service]:
    services = []
    for environment in ENVIRONMENTS:
        for k in range(size.services):
            faulty = k % size.faulty_every == size.faulty_every - 1
            services.append(Service(environment, f"service-{k:04d}", [0] * size.instances[k % len(size.instances)], faulty))
    return services


def stack_file(size: Size, services: list[Service], ports: dict[str, int], workdir: Path) -> dict:
    hook = workdir / "slack-webhook"
    hook.write_text("http://127.0.0.1:9/unused\n")
    environments = {}
    for environment in ENVIRONMENTS:
        environments[environment] = {
            "prometheus": f"{HOST}:{ports[environment]}",
            "alertmanagers": [f"{HOST}:{ports['alertmanager']}"],
            "services": {
                service.name: {"mode": "sidecar", "targets": [f"{HOST}:{port}" for port in service.ports]}
                for service in services
                if service.environment == environment
            },
        }
    return {
        "runbook_url": "https://example.com/runbooks.md",
        "intervals": {
            "scrape_interval": size.scrape_interval,
            "scrape_timeout": f"{max(1, duration_seconds(size.scrape_interval) * 2 // 3):g}s",
            "evaluation_interval": size.evaluation_interval,
            "rate_window": size.rate_window,
        },
        "receivers": {"bench": {"slack": [{"channel": "#bench", "webhook_url_file": str(hook)}]}},
        "routes": {"default": "bench"},
        "environments": environments,
        "fleet": {"store": f"{HOST}:{ports['store']}", "vmalert": f"{HOST}:{ports['vmalert']}"},
    }


class Fleet:
    """The processes of one size: synthetic sidecars, VictoriaMetrics, three Prometheus, vmalert."""

    def __init__(self, size: Size, template: Path, workdir: Path):
        self.size, self.template, self.workdir = size, template, workdir
        self.services = plan_services(size)
        self.targets: list[subprocess.Popen] = []
        self.children: dict[str, Child] = {}
        self.ports: dict[str, int] = {}
        self.store_data = workdir / "data" / "global-store"

    # -- start
    def start(self) -> None:
        binaries = {what: shutil.which(name) for what, name in BINARIES.items()}
        missing = [BINARIES[what] for what, path in binaries.items() if not path]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not installed: apt-get install prometheus victoria-metrics")
        self._start_targets()
        self.ports = dict(zip((*ENVIRONMENTS, "store", "vmalert", "alertmanager"), free_ports(len(ENVIRONMENTS) + 3)))
        config = self.workdir / "config"
        stack_path = self.workdir / "stack.yml"
        stack_path.write_text(yaml.safe_dump(stack_file(self.size, self.services, self.ports, self.workdir), sort_keys=False))
        built = subprocess.run([sys.executable, "-m", "pharos_monitoring.cli", "build", "--config", str(stack_path), "--out", str(config)],
                               capture_output=True, text=True, timeout=300)  # fmt: skip
        if built.returncode != 0:
            raise RuntimeError(f"pharos build failed: {built.stderr}")
        flags = yaml.safe_load((config / fleet.FLEET_DIR / fleet.FLAGS_FILE).read_text())
        store = flags["victoria-metrics"]
        self._start("store", [binaries["store"], *store["flags"], f"{store['data_flag']}={self.store_data}"])
        for environment in ENVIRONMENTS:
            self._start(environment, [
                binaries["prometheus"],
                f"--config.file={config / environment / 'prometheus' / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data' / f'prometheus-{environment}'}",
                f"--web.listen-address={HOST}:{self.ports[environment]}",
                # The remote-write flush deadline stays at its default (1 m), as in the compose file: a
                # shorter one (pharos up's 2 s) drops the batches in flight whenever the queue reshards.
            ])  # fmt: skip
        self._wait("store", "/health")
        for environment in ENVIRONMENTS:
            self._wait(environment, "/-/ready")
        # The global rules last: started before the Prometheus servers write, they would find every environment silent.
        rules = flags["vmalert"]
        fleet_dir = config / fleet.FLEET_DIR
        command = [binaries["vmalert"], *rules["flags"], f"{rules['rules_flag']}={fleet_dir / fleet.RULES_DIR / '*.yml'}"]
        if "notifier_flag" in rules:  # the Alertmanagers in a file of their own (as pharos up starts it)
            command.append(f"{rules['notifier_flag']}={fleet_dir / fleet.NOTIFIER_FILE}")
        self._start("vmalert", command)
        self._wait("vmalert", "/health")

    def _wait(self, name: str, path: str) -> None:
        child = self.children[name]
        try:
            wait_until_answers(child, self.url(name) + path, START_TIMEOUT_SECONDS, threading.Event(), ready=lambda status: status == 200)
        except StartError as error:
            tail = "\n".join(child.log.read_text(errors="replace").splitlines()[-15:]) if child.log.exists() else "(no log)"
            raise StartError(f"{error}; its log ends with:\n{tail}") from None

    def _start(self, name: str, command: list[str]) -> None:
        self.children[name] = Child(name, command, log=self.workdir / f"{name}.log")

    def _start_targets(self) -> None:
        instances = [(service, index) for service in self.services for index in range(len(service.ports))]
        for first in range(0, len(instances), INSTANCES_PER_TARGET_PROCESS):
            chunk = instances[first : first + INSTANCES_PER_TARGET_PROCESS]
            manifest = self.workdir / f"targets-{first}.json"
            manifest.write_text(json.dumps({
                "template": str(self.template),
                "template_target": TEMPLATE_TARGET,
                "instances": [{"service": s.name, "seed": zlib.crc32(f"{s.environment}/{s.name}/{i}".encode()), "faulty": s.faulty} for s, i in chunk],
            }))  # fmt: skip
            process = subprocess.Popen(
                [sys.executable, str(HERE / "synthetic_targets.py"), str(manifest), "--max-seconds", "7200"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=parent_death_signal(),
            )  # fmt: skip
            self.targets.append(process)
            line = _read_line(process, START_TIMEOUT_SECONDS)
            for (service, index), port in zip(chunk, json.loads(line)["ports"]):
                service.ports[index] = port

    # -- use
    def url(self, name: str) -> str:
        return f"http://{HOST}:{self.ports[name]}"

    def expected_instances(self, environment: str) -> int:
        return sum(len(s.ports) for s in self.services if s.environment == environment)

    def processes(self) -> dict[str, list[psutil.Process]]:
        found = {"store": [self.children["store"].pid], "vmalert": [self.children["vmalert"].pid],
                 "prometheus (3)": [self.children[e].pid for e in ENVIRONMENTS], "synthetic sidecars": [p.pid for p in self.targets]}  # fmt: skip
        return {name: [psutil.Process(pid) for pid in pids] for name, pids in found.items()}

    def stop(self) -> None:
        for process in self.targets:
            if process.poll() is None:
                process.stdin.close()  # its signal to exit
        stop_all(list(self.children.values()))
        for process in self.targets:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            process.stdout.close()


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not found or not found[0].startswith("{"):
        raise RuntimeError(f"the synthetic sidecars did not report their ports within {timeout:g} s ({found[:1]})")
    return found[0]


# --- reading the processes ------------------------------------------------------------------------------
_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{[^}]*\})?\s+(?P<value>\S+)")


def scrape(url: str, names: tuple[str, ...]) -> dict[str, float]:
    """Sums of the named metrics (every label set) in a /metrics page."""
    sums = dict.fromkeys(names, 0.0)
    for line in requests.get(url + "/metrics", timeout=30).text.splitlines():
        match = _LINE.match(line)
        if match and match.group("name") in sums:
            sums[match.group("name")] += float(match.group("value"))
    return sums


def scrape_labelled(url: str, name: str) -> dict[str, float]:
    out = {}
    for line in requests.get(url + "/metrics", timeout=30).text.splitlines():
        match = _LINE.match(line)
        if match and match.group("name") == name:
            out[match.group("labels") or ""] = float(match.group("value"))
    return out


def instant_value(url: str, expr: str, **extra) -> list[tuple[dict, float]]:
    response = requests.post(url + "/api/v1/query", data={"query": expr, **extra}, timeout=QUERY_TIMEOUT_SECONDS)
    body = response.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{url}: {expr}: {body}")
    return [(item["metric"], float(item["value"][1])) for item in body["data"]["result"]]


def du_mb(path: Path) -> float:
    """Disk used under `path`, as du counts it (allocated blocks)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) / 2**20 if path.exists() else 0.0


def percentiles(seconds: list[float]) -> dict:
    if not seconds:
        return {"count": 0}
    ordered = sorted(seconds)
    return {"count": len(ordered), "median_ms": statistics.median(ordered) * 1e3,
            "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3, "max_ms": ordered[-1] * 1e3}  # fmt: skip


# --- warm-up --------------------------------------------------------------------------------------------
def missing_for_warm(run: Fleet, size: Size) -> list[str]:
    """What the overview still lacks: targets not up, environments without recordings in the store."""
    missing = []
    for environment in ENVIRONMENTS:
        up = instant_value(run.url(environment), f'count(up{{{L.SERVICE}!=""}} == 1)')
        count = int(up[0][1]) if up else 0
        if count < run.expected_instances(environment):
            missing.append(f"{environment}: {count} of {run.expected_instances(environment)} targets up")
    for record in (r.HTTP_ERROR_RATIO.record, r.INSTANCE_UNAVAILABLE.record, r.MEMORY_USED_RATIO.record):
        seen = {m.get(L.ENVIRONMENT) for m, _ in instant_value(run.url("store"), f"count by ({L.ENVIRONMENT}) ({record})", nocache="1")}
        missing += [f"store: no {record} of {e}" for e in ENVIRONMENTS if e not in seen]
    # The curves too: a range query at the dashboard's step, as Grafana asks it (the store holds back
    # its last -search.latencyOffset seconds).
    step, end = dashboard_window(size).step, time.time()
    params = {"query": f"count by ({L.ENVIRONMENT}) ({r.HTTP_ERROR_RATIO.record})", "start": f"{end - 5 * step:.0f}", "end": f"{end:.0f}", "step": f"{step:g}"}
    body = requests.post(run.url("store") + "/api/v1/query_range", data=params, timeout=QUERY_TIMEOUT_SECONDS).json()
    seen = {item["metric"].get(L.ENVIRONMENT) for item in body.get("data", {}).get("result", [])}
    missing += [f"store: no curve of {r.HTTP_ERROR_RATIO.record} in {e}" for e in ENVIRONMENTS if e not in seen]
    return missing


def dashboard_window(size: Size) -> render.Window:
    """The overview's time range as Grafana opens it, and its built-in intervals."""
    end = time.time()
    return render.Window(end - DASHBOARD_RANGE_SECONDS, end, scrape_interval=duration_seconds(size.scrape_interval))


def warm_up(run: Fleet, size: Size) -> dict:
    started = time.monotonic()
    missing = ["not checked"]
    while time.monotonic() - started < size.warmup_limit_seconds:
        try:
            missing = missing_for_warm(run, size)
        except (requests.RequestException, RuntimeError, ValueError) as error:
            missing = [f"not answering yet: {error}"[:200]]
        if not missing and time.monotonic() - started >= size.warmup_seconds:
            break
        available = psutil.virtual_memory().available
        if available < MIN_AVAILABLE_BYTES:  # the machine is shared: stop before it swaps or kills
            raise RuntimeError(f"{size.name}: only {available / 2**30:.1f} GB of memory left during the warm-up; stopped: give this size fewer services or rows")
        time.sleep(min(5.0, size.lag_poll_seconds * 2))
    return {"seconds": round(time.monotonic() - started, 1), "missing": missing}


# --- remote-write lag -----------------------------------------------------------------------------------
HIGHEST_APPENDED = "prometheus_remote_storage_highest_timestamp_in_seconds"
HIGHEST_SENT = "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"


class LagSampler(threading.Thread):
    """Every few seconds: each Prometheus' remote-write lag, and how far its own `up` in the store
    is behind the same series in Prometheus."""

    def __init__(self, running: Fleet, poll: float):
        super().__init__(daemon=True, name="lag-sampler")
        self.running, self.poll = running, poll
        self.stop = threading.Event()
        self.lag: dict[str, list[float]] = {e: [] for e in ENVIRONMENTS}
        self.behind: dict[str, list[float]] = {e: [] for e in ENVIRONMENTS}
        self.errors = 0

    def run(self) -> None:
        while not self.stop.wait(self.poll):
            for environment in ENVIRONMENTS:
                try:
                    values = scrape(self.running.url(environment), (HIGHEST_APPENDED, HIGHEST_SENT))
                    self.lag[environment].append(max(0.0, values[HIGHEST_APPENDED] - values[HIGHEST_SENT]))
                    self.behind[environment].append(self._behind(environment))
                except (requests.RequestException, RuntimeError, ValueError, KeyError, IndexError):
                    self.errors += 1

    def _behind(self, environment: str) -> float:
        """Newest sample of the Prometheus' own `up` in Prometheus minus the newest in the store (the
        export API reads raw samples: no -search.latencyOffset)."""
        own_up = f'up{{job="{PROMETHEUS_JOB}"}}'
        ((_, in_prometheus),) = instant_value(self.running.url(environment), f"timestamp({own_up})")
        params = {"match[]": f'up{{job="{PROMETHEUS_JOB}", {L.ENVIRONMENT}="{environment}"}}', "start": f"{time.time() - 600:.0f}"}
        lines = requests.get(self.running.url("store") + "/api/v1/export", params=params, timeout=30).text.splitlines()
        newest = max((max(json.loads(line)["timestamps"]) for line in lines if line.strip()), default=0) / 1000
        return max(0.0, in_prometheus - newest)

    def figures(self) -> dict:
        def summary(values: list[float]) -> dict:
            return {"count": len(values), "median_s": statistics.median(values), "max_s": max(values)} if values else {"count": 0}

        return {
            "highest_appended_minus_sent": {e: summary(v) for e, v in self.lag.items()},
            "store_behind_prometheus": {e: summary(v) for e, v in self.behind.items()},
            "all": {"highest_appended_minus_sent": summary([x for v in self.lag.values() for x in v]),
                    "store_behind_prometheus": summary([x for v in self.behind.values() for x in v])},  # fmt: skip
            "sampling_errors": self.errors,
        }


# --- ingestion in a quiet window ------------------------------------------------------------------------
STORE_ROWS = "vm_rows_inserted_total"
APPENDED = "prometheus_tsdb_head_samples_appended_total"
REMOTE_FAILED = "prometheus_remote_storage_samples_failed_total"


def quiet_window(run: Fleet, size: Size) -> dict:
    processes = run.processes()

    def cpu() -> dict[str, float]:
        return {name: sum(p.cpu_times().user + p.cpu_times().system for p in group) for name, group in processes.items()}

    failed_before = sum(scrape(run.url(e), (REMOTE_FAILED,))[REMOTE_FAILED] for e in ENVIRONMENTS)
    rows_before = scrape(run.url("store"), (STORE_ROWS,))[STORE_ROWS]
    appended_before = sum(scrape(run.url(e), (APPENDED,))[APPENDED] for e in ENVIRONMENTS)
    cpu_before, wall_before = cpu(), time.monotonic()
    time.sleep(size.quiet_seconds)
    cpu_after, seconds = cpu(), time.monotonic() - wall_before
    rows_after = scrape(run.url("store"), (STORE_ROWS,))[STORE_ROWS]
    appended_after = sum(scrape(run.url(e), (APPENDED,))[APPENDED] for e in ENVIRONMENTS)
    failed_after = sum(scrape(run.url(e), (REMOTE_FAILED,))[REMOTE_FAILED] for e in ENVIRONMENTS)
    interval = duration_seconds(size.scrape_interval)
    health = {}
    for environment in ENVIRONMENTS:
        url = run.url(environment)
        up = instant_value(url, f'count(up{{{L.SERVICE}!=""}} == 1)')
        slowest = instant_value(url, f'max(scrape_duration_seconds{{{L.SERVICE}!=""}})')
        intervals = instant_value(url, 'max(prometheus_target_interval_length_seconds{quantile="0.99"})')
        health[environment] = {
            "targets_up": int(up[0][1]) if up else 0,
            "targets": run.expected_instances(environment),
            "slowest_scrape_s": round(slowest[0][1], 3) if slowest else None,
            "interval_p99_s": round(intervals[0][1], 2) if intervals else None,
        }
    return {
        "seconds": round(seconds, 1),
        "store_samples_per_second": (rows_after - rows_before) / seconds,
        "prometheus_samples_appended_per_second": (appended_after - appended_before) / seconds,
        "remote_write_failed_before": int(failed_before),  # samples the store refused since the start (non-recoverable)
        "remote_write_failed_in_window": int(failed_after - failed_before),
        "scrape_interval_s": interval,
        "cpu_cores": {name: round((cpu_after[name] - cpu_before[name]) / seconds, 3) for name in cpu_before},
        "scrape_health": health,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


# --- the overview's queries -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    kind: str  # variable, stat, table, timeseries, annotation
    name: str
    expr: str  # for a variable: the label_values selector
    threshold_line: bool = False  # an alert threshold, drawn only near the data: often empty
    label: str = ""  # a variable's label
    step: float = 0.0  # an annotation's own step

    def request(self, end: float, window: render.Window) -> tuple[str, str, dict]:
        """(method, path, parameters) as Grafana sends it (POST for queries, its default)."""
        start = end - DASHBOARD_RANGE_SECONDS
        if self.kind == "variable":
            return "GET", f"/api/v1/label/{self.label}/values", {"match[]": self.expr, "start": f"{start:.0f}", "end": f"{end:.0f}"}
        if self.kind == "table":
            return "POST", "/api/v1/query", {"query": self.expr, "time": f"{end:.3f}"}
        step = self.step or window.step
        aligned = end - end % step  # Grafana aligns the range to the step
        return "POST", "/api/v1/query_range", {"query": self.expr, "start": f"{aligned - DASHBOARD_RANGE_SECONDS:.0f}", "end": f"{aligned:.0f}", "step": f"{step:g}"}


def overview() -> dict:
    return json.loads(house.to_json(services_overview.build(fleet=True)))


def plan_queries(board: dict, source: Prometheus, window: render.Window, chosen: dict, all_as_regex: bool) -> tuple[list[Query], dict]:
    """The overview's queries for one data source, its variables resolved as Grafana resolves them."""
    end = time.time()
    resolution = queries.resolve_variables(board, source, end - DASHBOARD_RANGE_SECONDS, end, window.builtins(), chosen)
    text = dict(resolution.text)
    variables = [v for v in board["templating"]["list"] if v["type"] == "query"]
    if all_as_regex:
        for variable in variables:
            text[variable["name"]] = ".*"
    planned = []
    for variable in variables:
        match = queries._LABEL_VALUES.match(variable["query"])
        planned.append(Query("variable", f"${variable['name']}", queries.substitute(match.group("selector"), text), label=match.group("label")))
    for query in queries.panel_queries(board):
        kind = "table" if query.instant else query.panel_type
        planned.append(Query(kind, f"{query.panel} / {query.ref}", queries.substitute(query.expr, text), threshold_line=query.ref == house.THRESHOLD_REF))
    for annotation in board.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            planned.append(Query("annotation", annotation["name"], queries.substitute(annotation["expr"], text), step=duration_seconds(annotation.get("step", "1m"))))
    return planned, {name: len(values) for name, values in resolution.selected.items()}


@dataclass
class Source:
    name: str
    url: str
    queries: list[Query]
    extra: dict = field(default_factory=dict)
    session: requests.Session = field(default_factory=requests.Session)

    def time(self, query: Query, end: float, window: render.Window) -> tuple[float, str, int]:
        method, path, params = query.request(end, window)
        params = {**params, **self.extra}
        started = time.perf_counter()
        try:
            if method == "GET":
                response = self.session.get(self.url + path, params=params, timeout=QUERY_TIMEOUT_SECONDS)
            else:
                response = self.session.post(self.url + path, data=params, timeout=QUERY_TIMEOUT_SECONDS)
            seconds = time.perf_counter() - started
            body = response.json()
        except (requests.RequestException, ValueError) as error:
            return time.perf_counter() - started, type(error).__name__, 0
        if body.get("status") != "success":
            return seconds, f"HTTP {response.status_code}: {str(body.get('error', body))[:160]}", 0
        data = body["data"]
        return seconds, "", len(data["result"]) if isinstance(data, dict) else len(data)


def measure_queries(run: Fleet, size: Size, all_as_regex: bool) -> dict:
    board = overview()
    window = dashboard_window(size)
    store_client, compared_client = Prometheus(run.url("store")), Prometheus(run.url(COMPARED_ENVIRONMENT))
    store_queries, selected = plan_queries(board, store_client, window, {L.ENVIRONMENT: list(ENVIRONMENTS)}, all_as_regex)
    compared_queries, _ = plan_queries(board, compared_client, window, {}, all_as_regex)
    sources = [
        Source("store", run.url("store"), store_queries),
        Source("store_nocache", run.url("store"), store_queries, {"nocache": "1"}),
        Source(f"prometheus_{COMPARED_ENVIRONMENT}", run.url(COMPARED_ENVIRONMENT), compared_queries),
    ]
    samples: dict[str, dict[int, list[float]]] = {s.name: {i: [] for i in range(len(store_queries))} for s in sources}
    errors: dict[str, dict[int, str]] = {s.name: {} for s in sources}
    series: dict[str, dict[int, int]] = {s.name: {} for s in sources}
    totals: dict[str, list[float]] = {s.name: [] for s in sources}
    for round_ in range(size.rounds):
        end = time.time()
        order = sources[round_ % len(sources):] + sources[: round_ % len(sources)]  # no source always first
        total = dict.fromkeys(samples, 0.0)
        for index in range(len(store_queries)):
            for source in order:
                seconds, error, count = source.time(source.queries[index], end, window)
                total[source.name] += seconds
                series[source.name][index] = count
                if error:  # a refusal is quick: it counts in the dashboard's total, not in the query's latency
                    errors[source.name][index] = error
                else:
                    samples[source.name][index].append(seconds)
        for name, seconds in total.items():
            totals[name].append(seconds)
    kinds = sorted({q.kind for q in store_queries}, key=["variable", "stat", "table", "timeseries", "annotation"].index)
    by_kind = {}
    for kind in kinds:
        indexes = [i for i, q in enumerate(store_queries) if q.kind == kind]
        by_kind[kind] = {"queries": len(indexes), **{s.name: percentiles([x for i in indexes for x in samples[s.name][i]]) for s in sources},
                         "refused": {s.name: sum(1 for i in indexes if i in errors[s.name]) for s in sources}}
    per_query = [
        {"kind": q.kind, "name": q.name, "threshold_line": q.threshold_line, "length": len(q.expr), "length_compared": len(compared_queries[i].expr),
         **{s.name: {"median_ms": statistics.median(samples[s.name][i]) * 1e3 if samples[s.name][i] else None, "series": series[s.name].get(i, 0),
                     **({"error": errors[s.name][i]} if i in errors[s.name] else {})} for s in sources}}
        for i, q in enumerate(store_queries)
    ]  # fmt: skip
    return {
        "all_as_regex": all_as_regex,
        "rounds": size.rounds,
        "variables_selected": selected,
        "step_s": window.step,
        "builtins": window.builtins(),
        "by_kind": by_kind,
        "dashboard_total": {name: percentiles(values) for name, values in totals.items()},
        "errors": {name: len(found) for name, found in errors.items()},
        "longest_query_chars": max(len(q.expr) for q in store_queries),
        "per_query": per_query,
    }


# --- the store after the run ----------------------------------------------------------------------------
def store_figures(run: Fleet) -> dict:
    url = run.url("store")
    requests.get(url + "/internal/force_flush", timeout=60)
    time.sleep(2)  # the flush is asynchronous for the in-memory parts
    metrics = scrape(url, (STORE_ROWS,))
    hour_series = scrape_labelled(url, "vm_cache_entries").get('{type="storage/hour_metric_ids"}', 0.0)
    series = requests.get(url + "/api/v1/series/count", timeout=60).json()["data"][0]
    rss_mb = psutil.Process(run.children["store"].pid).memory_info().rss / 2**20
    samples_m = metrics[STORE_ROWS] / 1e6
    disk = {"total_mb": du_mb(run.store_data), "data_mb": du_mb(run.store_data / "data"), "indexdb_mb": du_mb(run.store_data / "indexdb")}
    prometheus = {}
    for environment in ENVIRONMENTS:
        values = scrape(run.url(environment), ("prometheus_tsdb_head_series", APPENDED, "prometheus_remote_storage_samples_failed_total",
                                                "prometheus_remote_storage_samples_dropped_total", "prometheus_remote_storage_samples_retried_total"))  # fmt: skip
        prometheus[environment] = {
            "head_series": int(values["prometheus_tsdb_head_series"]),
            "samples_appended": int(values[APPENDED]),
            "remote_write_failed": int(values["prometheus_remote_storage_samples_failed_total"]),
            "remote_write_dropped": int(values["prometheus_remote_storage_samples_dropped_total"]),
            "remote_write_retried": int(values["prometheus_remote_storage_samples_retried_total"]),
            "rss_mb": round(psutil.Process(run.children[environment].pid).memory_info().rss / 2**20, 1),
            "tsdb_mb": round(du_mb(run.workdir / "data" / f"prometheus-{environment}"), 1),
        }
    logs = {}
    for name in ("store", *ENVIRONMENTS):
        lines = [line for line in run.children[name].log.read_text(errors="replace").splitlines() if re.search(r"\b(error|warn)", line, re.I)]
        logs[name] = {"warnings_and_errors": len(lines), "first": lines[:3], "last": lines[-3:]}
    return {
        "logs": logs,
        "series": int(series),
        "series_this_hour": int(hour_series),
        "samples_ingested": int(metrics[STORE_ROWS]),
        "disk": {key: round(value, 1) for key, value in disk.items()},
        "rss_mb": round(rss_mb, 1),
        "disk_mb_per_million_samples": disk["total_mb"] / samples_m if samples_m else None,
        "data_mb_per_million_samples": disk["data_mb"] / samples_m if samples_m else None,
        "rss_mb_per_million_samples": rss_mb / samples_m if samples_m else None,
        "rss_bytes_per_series": rss_mb * 2**20 / series if series else None,
        "disk_bytes_per_sample": disk["total_mb"] * 2**20 / metrics[STORE_ROWS] if metrics[STORE_ROWS] else None,
        "prometheus": prometheus,
    }


# --- one size -------------------------------------------------------------------------------------------
def run_size(size: Size, template_text: str, workdir: Path) -> dict:
    started = time.monotonic()
    template = workdir / "template.prom"
    template.write_text(template_text)
    run = Fleet(size, template, workdir)
    sampler = None
    try:
        run.start()
        print(f"[{size.name}] started: {sum(len(s.ports) for s in run.services)} instances on {len(run.targets)} target processes", flush=True)
        warm = warm_up(run, size)
        print(f"[{size.name}] warm after {warm['seconds']} s" + (f" (still missing: {warm['missing'][:3]})" if warm["missing"] else ""), flush=True)
        sampler = LagSampler(run, size.lag_poll_seconds)
        sampler.start()
        ingestion = quiet_window(run, size)
        print(f"[{size.name}] quiet window: {ingestion['store_samples_per_second']:.0f} samples/s into the store", flush=True)
        measured = [measure_queries(run, size, all_as_regex=False)]
        if any(measured[0]["errors"].values()):
            print(f"[{size.name}] queries refused as sent ({measured[0]['errors']}): measuring again with All as .*", flush=True)
            measured.append(measure_queries(run, size, all_as_regex=True))
        sampler.stop.set()
        sampler.join(30)
        store = store_figures(run)
    finally:
        if sampler is not None:
            sampler.stop.set()
        run.stop()
    series_per_instance = synthetic_targets.series_count(template_text)
    instances = sum(len(s.ports) for s in run.services)
    return {
        "size": asdict(size),
        "instances": instances,
        "instances_per_environment": {e: run.expected_instances(e) for e in ENVIRONMENTS},
        "faulty_services_per_environment": sum(1 for s in run.services if s.faulty) // len(ENVIRONMENTS),
        "series_per_instance": series_per_instance,
        "target_series": instances * series_per_instance,
        "target_samples_per_second": instances * series_per_instance / duration_seconds(size.scrape_interval),
        "warm_up": warm,
        "ingestion": ingestion,
        "queries": measured,
        "remote_write": sampler.figures(),
        "store": store,
        "seconds": round(time.monotonic() - started, 1),
    }


# --- output ---------------------------------------------------------------------------------------------
def _ms(figures: dict) -> str:
    return f"{figures['median_ms']:8.1f} {figures['p99_ms']:8.1f}" if figures.get("count") else f"{'-':>8} {'-':>8}"


def table(name: str, result: dict) -> str:
    size, ingestion, store = result["size"], result["ingestion"], result["store"]
    compared = f"prometheus_{COMPARED_ENVIRONMENT}"
    lines = [
        f"== {name}: {size['services']} services x {len(ENVIRONMENTS)} environments, {result['instances']} instances"
        f" x {result['series_per_instance']} series = {result['target_series']:,} target series; scrape {size['scrape_interval']},"
        f" evaluation {size['evaluation_interval']}",
        f"ingestion: {ingestion['store_samples_per_second']:,.0f} samples/s into the store"
        f" (targets alone {result['target_samples_per_second']:,.0f}/s; Prometheus appended {ingestion['prometheus_samples_appended_per_second']:,.0f}/s);"
        f" CPU cores: " + ", ".join(f"{k} {v:.2f}" for k, v in ingestion["cpu_cores"].items()),
    ]
    for measured in result["queries"]:
        spelled = "All as .*" if measured["all_as_regex"] else "as Grafana sends it (All = every value)"
        lines += [
            "",
            f"Services overview, {spelled}: {measured['rounds']} rounds, step {measured['step_s']:g} s, "
            f"selected {measured['variables_selected']}, longest query {measured['longest_query_chars']:,} chars, errors {measured['errors']}",
            f"{'class':<11} {'n':>3}   {'store ms':>17}   {'store nocache ms':>17}   {'1 Prometheus ms':>17}   store/Prom",
            f"{'':<11} {'':>3}   {'median      p99':>17}   {'median      p99':>17}   {'median      p99':>17}   median",
        ]
        rows = list(measured["by_kind"].items()) + [("dashboard", {"queries": len(measured["per_query"]), **measured["dashboard_total"]})]
        for kind, figures in rows:
            ratio = figures["store"].get("median_ms", 0) / figures[compared]["median_ms"] if figures[compared].get("median_ms") else float("nan")
            refused = figures.get("refused", {}).get("store", 0)
            lines.append(f"{kind:<11} {figures['queries']:>3}   {_ms(figures['store'])}   {_ms(figures['store_nocache'])}   {_ms(figures[compared])}   {ratio:6.2f}"
                         + (f"   ({refused} refused by the store)" if refused else ""))
    lag = result["remote_write"]["all"]
    appended, behind = lag["highest_appended_minus_sent"], lag["store_behind_prometheus"]
    lines += [
        "",
        f"remote-write lag (highest appended - sent): median {appended.get('median_s', float('nan')):.2f} s, max {appended.get('max_s', float('nan')):.2f} s;"
        f" store behind Prometheus (newest `up`): median {behind.get('median_s', float('nan')):.2f} s, max {behind.get('max_s', float('nan')):.2f} s"
        f" ({appended['count']} samples)",
        f"store: {store['series']:,} series, {store['samples_ingested'] / 1e6:,.1f} M samples ingested; disk {store['disk']['total_mb']:.1f} MB"
        f" (data {store['disk']['data_mb']:.1f}, index {store['disk']['indexdb_mb']:.1f}) = {store['disk_mb_per_million_samples']:.2f} MB"
        f" per M samples ({store['disk_bytes_per_sample']:.2f} B/sample); RSS {store['rss_mb']:.0f} MB = {store['rss_mb_per_million_samples']:.1f} MB"
        f" per M samples ({store['rss_bytes_per_series']:.0f} B/series)",
    ]
    return "\n".join(lines)


def markdown(results: dict) -> str:
    lines = [
        "# Fleet benchmark (bench/fleet_bench.py)",
        "",
        f"`{results['command']}` on {results['machine']['cpus']} shared cores; load average before {results['machine']['load_average']}.",
        "",
    ]
    for name, result in results["sizes"].items():
        lines += ["```", f"{name}: failed: {result['failed']}" if "failed" in result else table(name, result), "```", ""]
    return "\n".join(lines)


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "load_average": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


def sizes_argument(value: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in SIZES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{value!r}: sizes are a comma-separated choice of {', '.join(SIZES)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny fleet with pharos up --fast's intervals, about 45 s (for the smoke test)")
    parser.add_argument("--sizes", type=sizes_argument, default=["users", "10x"], help="comma-separated: users (100 services x 3), 10x (1,000 x 3)")
    parser.add_argument("--rounds", type=int, help="rounds of the overview's queries (default: 20 users, 5 10x, 2 quick)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results; a .md beside it (default {DEFAULT_OUT.relative_to(HERE.parent)})")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop every child on the way out
    sizes = [QUICK] if args.quick else [SIZES[name] for name in args.sizes]
    if args.rounds:
        sizes = [replace(size, rounds=args.rounds) for size in sizes]
    started = time.monotonic()
    results = {"benchmark": "fleet", "quick": args.quick, "machine": machine(), "command": " ".join(["bench/fleet_bench.py", *(argv if argv is not None else sys.argv[1:])]),
               "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sizes": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="pharos-fleet-bench-") as temp:
        workdir = Path(temp)
        templates: dict[int, str] = {}
        for size in sizes:
            if size.rows not in templates:
                templates[size.rows] = sidecar_template(size.rows, workdir)
            size_dir = workdir / size.name
            size_dir.mkdir()
            try:
                results["sizes"][size.name] = run_size(size, templates[size.rows], size_dir)
            except (RuntimeError, StartError, requests.RequestException) as error:  # the next size may still fit
                print(f"[{size.name}] failed: {error}", flush=True)
                results["sizes"][size.name] = {"size": asdict(size), "failed": str(error)}
                continue
            print(table(size.name, results["sizes"][size.name]), flush=True)
            print(flush=True)
            results["seconds"] = round(time.monotonic() - started, 1)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")  # after each size: a later failure keeps it
            args.out.with_suffix(".md").write_text(markdown(results) + "\n")
    print(f"results: {args.out} and {args.out.with_suffix('.md')} ({results['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
