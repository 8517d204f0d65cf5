"""A live monitoring stack for tests: real demo services, real exporters, Prometheus, Alertmanager.

`LiveStack` starts, all on 127.0.0.1:
- one `pharos demo-app` per instance of `INSTANCES` (two environments, two services), each with a
  memory limit, some 5xx and its own traffic, and a sidecar `pharos exporter` beside it that also
  reads the app's process;
- Alertmanager (`prometheus-alertmanager`, clustering off) delivering to a webhook sink in this
  process;
- Prometheus (`/usr/bin/prometheus`) scraping every exporter (job per environment and service,
  with `service` and `environment` labels as the generated scrape configs attach them), itself and
  Alertmanager every second, with the recording and alerting rules of `alerts/`.

Ports of Prometheus and Alertmanager (which cannot take port 0) come from binding port 0 and
closing it just before the process starts. Every wait is bounded; `stop()` ends every process it
started (SIGTERM, then SIGKILL) and removes its directory. The `live_stack` fixture (conftest.py)
shares one stack per test session.
"""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
import yaml

from pharos_monitoring.alerts import prometheus_rules, slo
from pharos_monitoring.exporter.catalogue import Label as L

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
HOST = "127.0.0.1"
RULES_ENVIRONMENT = "production"  # this Prometheus plays production's: its alert thresholds
RUNBOOK_BASE = "https://example.invalid/runbooks.md"
START_TIMEOUT = 60.0
STOP_GRACE = 10.0
SCRAPE_INTERVAL = "1s"


@dataclass(frozen=True)
class Instance:
    environment: str
    service: str
    number: int


# Two environments, two services; production's orders has two instances.
INSTANCES = (
    Instance("production", "orders", 1),
    Instance("production", "orders", 2),
    Instance("production", "billing", 1),
    Instance("alpha", "orders", 1),
)
# Objectives for alpha's orders, the service the dashboards' variables pick first: the burn-rate
# alerts' queries and the error-budget panel have series to read. Loose enough that the demo's 2 %
# of 5xx spends nothing fast.
OBJECTIVES = (
    slo.Objective("alpha", "orders", slo.AVAILABILITY, 0.95),
    slo.Objective("alpha", "orders", slo.LATENCY, 0.95, under_seconds=0.25),
)
DEMO_FLAGS = ("--traffic", "8", "--error-ratio", "0.02", "--memory-limit-mb", "512", "--log-level", "warning")


class StackError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _die_with_parent():
    """preexec_fn: Linux sends the child SIGTERM should the test process die without cleaning up."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Process:
    def __init__(self, name: str, command: list[str], log: Path, capture_stdout: bool = False):
        self.name = name
        self.log = log
        self._log_file = open(log, "wb")
        self.popen = subprocess.Popen(
            command,
            stdout=subprocess.PIPE if capture_stdout else self._log_file,
            stderr=self._log_file,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )

    def wait_http(self, url: str, deadline: float) -> None:
        """Until `url` answers 200; StackError when the process exits first or `deadline` passes."""
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise StackError(f"{self.name} exited with {self.popen.returncode}: {self.tail()}")
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise StackError(f"{self.name} did not answer {url} in time: {self.tail()}")

    def first_line(self, deadline: float) -> str:
        """The first stdout line (the demo-app prints its URL there), waiting until `deadline`."""
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(self.popen.stdout.readline()), daemon=True)
        reader.start()
        reader.join(max(0.0, deadline - time.monotonic()))
        if not result or not result[0]:
            raise StackError(f"{self.name} printed nothing in time; its log: {self.tail()}")
        return result[0].decode().strip()

    def tail(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(STOP_GRACE)
        if self.popen.stdout:
            self.popen.stdout.close()
        self._log_file.close()


class _WebhookSink:
    """Accepts Alertmanager's webhook POSTs and counts them."""

    def __init__(self):
        sink = self
        self.received = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.received += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class LiveStack:
    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="pharos-live-"))
        self.processes: list[_Process] = []
        self.sink: _WebhookSink | None = None
        self.apps: dict[Instance, str] = {}  # instance -> demo-app base URL (POST /faults there)
        self.exporters: dict[Instance, str] = {}  # instance -> exporter host:port
        self.prometheus_url = ""
        self.alertmanager_url = ""

    # --- start -------------------------------------------------------------------------------
    def start(self) -> "LiveStack":
        try:
            deadline = time.monotonic() + START_TIMEOUT
            for instance in INSTANCES:
                self.exporters[instance] = self._start_instance(instance, deadline)
            self.sink = _WebhookSink()
            self.alertmanager_url = self._start_alertmanager(deadline)
            self.prometheus_url = self._start_prometheus(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, command: list[str], capture_stdout: bool = False) -> _Process:
        process = _Process(name, command, self.directory / f"{name}.log", capture_stdout)
        self.processes.append(process)
        return process

    def _pharos(self, *arguments: str) -> list[str]:
        return [sys.executable, "-m", "pharos_monitoring.cli", *arguments]

    def _start_instance(self, instance: Instance, deadline: float) -> str:
        name = f"{instance.environment}-{instance.service}-{instance.number}"
        app = self._spawn(
            f"app-{name}",
            self._pharos("demo-app", "--listen", f"{HOST}:0", "--service", instance.service, "--environment", instance.environment, *DEMO_FLAGS),
            capture_stdout=True,
        )
        app_url = app.first_line(deadline).rsplit(" ", 1)[-1]
        if not app_url.startswith("http://"):
            raise StackError(f"demo-app {name} did not print its URL: {app_url!r}")
        self.apps[instance] = app_url
        address = f"{HOST}:{free_port()}"
        config = {
            "listen": address,
            "targets": [{"name": instance.service, "url": f"{app_url}/stats", "profile": "pharo", "process": {"pid": app.popen.pid}}],
        }
        config_path = self.directory / f"exporter-{name}.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        exporter = self._spawn(f"exporter-{name}", self._pharos("exporter", "--config", str(config_path), "--log-level", "warning"))
        self._wait_http(exporter, f"http://{address}/metrics", deadline)
        return address

    def _start_alertmanager(self, deadline: float) -> str:
        config = {
            "route": {"receiver": "sink", "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1s"},
            "receivers": [{"name": "sink", "webhook_configs": [{"url": self.sink.url, "send_resolved": True}]}],
        }
        config_path = self.directory / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        address = f"{HOST}:{free_port()}"
        process = self._spawn(
            "alertmanager",
            [
                ALERTMANAGER,
                f"--config.file={config_path}",
                f"--storage.path={self.directory / 'alertmanager-data'}",
                f"--web.listen-address={address}",
                "--cluster.listen-address=",  # no gossip port: a single Alertmanager
            ],
        )
        self._wait_http(process, f"http://{address}/-/ready", deadline)
        return f"http://{address}"

    def _start_prometheus(self, deadline: float) -> str:
        address = f"{HOST}:{free_port()}"
        rule_paths = []
        for file_name, content in prometheus_rules.rule_files(RULES_ENVIRONMENT, RUNBOOK_BASE, objectives=OBJECTIVES).items():
            path = self.directory / file_name
            path.write_text(yaml.safe_dump(content, sort_keys=False))
            rule_paths.append(str(path))
        jobs: dict[tuple[str, str], list[str]] = {}
        for instance, exporter in self.exporters.items():
            jobs.setdefault((instance.environment, instance.service), []).append(exporter)
        scrape_configs = [
            {
                "job_name": f"{service}-{environment}",
                "static_configs": [{"targets": targets, "labels": {L.SERVICE: service, L.ENVIRONMENT: environment}}],
            }
            for (environment, service), targets in sorted(jobs.items())
        ]
        own_labels = {L.ENVIRONMENT: RULES_ENVIRONMENT}
        scrape_configs += [
            # `component`, as pharos/config/prometheus_config.py sets it on the monitoring's own jobs.
            {"job_name": "prometheus", "static_configs": [{"targets": [address], "labels": {**own_labels, L.COMPONENT: "prometheus"}}]},
            {
                "job_name": "alertmanager",
                "static_configs": [{"targets": [self.alertmanager_url.split("//")[1]], "labels": {**own_labels, L.COMPONENT: "alertmanager"}}],
            },
        ]
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "rule_files": rule_paths,
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [self.alertmanager_url.split("//")[1]]}]}]},
            "scrape_configs": scrape_configs,
        }
        config_path = self.directory / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        process = self._spawn(
            "prometheus",
            [
                PROMETHEUS,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.directory / 'prometheus-data'}",
                f"--web.listen-address={address}",
                # Alerts fired before Alertmanager is discovered are dropped; resend them soon.
                "--rules.alert.resend-delay=1s",
            ],
        )
        self._wait_http(process, f"http://{address}/-/ready", deadline)
        return f"http://{address}"

    def _wait_http(self, process: _Process, url: str, deadline: float) -> None:
        process.wait_http(url, deadline)

    # --- use ---------------------------------------------------------------------------------
    def set_faults(self, instance: Instance, **knobs) -> None:
        """Change a demo service's fault knobs (demo/faults.py), e.g. error_ratio=0.2."""
        response = requests.post(f"{self.apps[instance]}/faults", json=knobs, timeout=10)
        if response.status_code != 200:
            raise StackError(f"demo-app {instance} refused faults {knobs}: {response.status_code} {response.text}")

    def query(self, expr: str) -> list:
        response = requests.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise StackError(f"Prometheus refused {expr!r}: {body}")
        return body["data"]["result"]

    def wait_for(self, exprs: list[str], limit: float = 90.0) -> list[str]:
        """Poll until every expression returns data or `limit` seconds pass; returns those still empty."""
        ends = time.monotonic() + limit
        pending = list(exprs)
        while pending and time.monotonic() < ends:
            pending = [expr for expr in pending if not self.query(expr)]
            if pending:
                time.sleep(1)
        return pending

    # --- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.sink:
            self.sink.stop()
            self.sink = None
        shutil.rmtree(self.directory, ignore_errors=True)
