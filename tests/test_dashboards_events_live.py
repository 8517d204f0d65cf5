"""The dashboards' event annotations (house.event_annotations) against a real Prometheus fed by the
real exporter, in front of a demo service that is restarted and then deployed with a new version.

The session's shared stack (tests/stack.py) is not used: restarting one of its instances would
disturb every other test that reads it. This module runs its own small stack instead, from the
same parts: one `pharos demo-app` on a fixed port, a sidecar `pharos exporter` reading it, and a
Prometheus scraping the exporter every second.

Each annotation query runs as Grafana runs it: a range query over the dashboard's range, aligned to
the annotation's step, with the step. The timeline is laid on that grid (g0 is a multiple of the
step, at least one step after the first scrape):

    g0        quiet: the instance has run unchanged for a minute
    g0 + 5 s  restart (same version)       -> a restart at g0 + 60, no deploy
    g0 + 65 s deploy (restart, new version) -> a restart and a deploy at g0 + 120
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import pytest
import yaml

from pharos_monitoring.dashboards import house, queries, service_detail, services_overview
from pharos_monitoring.dashboards.prometheus import Prometheus
from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L

from stack import HOST, PROMETHEUS, _Process, free_port

pytestmark = pytest.mark.slow

ENVIRONMENT, SERVICE = "production", "orders"
FIRST_VERSION, DEPLOYED_VERSION = "1.0.0", "1.1.0"
STEP_SECONDS = 60
assert house.EVENT_STEP == f"{STEP_SECONDS // 60}m", "the timeline below is laid on the annotations' step"
START_SECONDS = 60
BUILTINS = {"__rate_interval": "4s", "__interval": "60s", "__range": "120s"}


class EventStack:
    """A demo-app that can be restarted on its port, its exporter, and a Prometheus."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.app_port = free_port()
        self.app: _Process | None = None
        self.processes: list[_Process] = []
        self.prometheus_url = ""

    def _spawn(self, name: str, command: list[str], capture_stdout: bool = False) -> _Process:
        process = _Process(name, command, self.directory / f"{name}-{len(self.processes)}.log", capture_stdout)
        self.processes.append(process)
        return process

    def start_app(self, version: str) -> None:
        command = [
            sys.executable, "-m", "pharos_monitoring.cli", "demo-app", "--listen", f"{HOST}:{self.app_port}",
            "--service", SERVICE, "--environment", ENVIRONMENT, "--app-version", version, "--traffic", "2", "--log-level", "warning",
        ]
        self.app = self._spawn("app", command, capture_stdout=True)
        line = self.app.first_line(time.monotonic() + START_SECONDS)
        assert line.endswith(f":{self.app_port}"), line

    def stop_app(self) -> None:
        self.app.stop()

    def start(self) -> "EventStack":
        self.start_app(FIRST_VERSION)
        exporter_address = f"{HOST}:{free_port()}"
        config = {"listen": exporter_address, "targets": [{"name": SERVICE, "url": f"http://{HOST}:{self.app_port}/stats", "profile": "pharo"}]}
        (self.directory / "exporter.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        exporter = self._spawn("exporter", [sys.executable, "-m", "pharos_monitoring.cli", "exporter", "--config", str(self.directory / "exporter.yml"), "--log-level", "warning"])
        self._wait(exporter, f"http://{exporter_address}/metrics")
        prometheus_address = f"{HOST}:{free_port()}"
        scrape = {
            "job_name": f"{SERVICE}-{ENVIRONMENT}",
            "static_configs": [{"targets": [exporter_address], "labels": {L.SERVICE: SERVICE, L.ENVIRONMENT: ENVIRONMENT}}],
        }
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}, "scrape_configs": [scrape]}
        (self.directory / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        prometheus = self._spawn(
            "prometheus",
            [PROMETHEUS, f"--config.file={self.directory / 'prometheus.yml'}", f"--storage.tsdb.path={self.directory / 'data'}", f"--web.listen-address={prometheus_address}"],
        )
        self.prometheus_url = f"http://{prometheus_address}"
        self._wait(prometheus, f"{self.prometheus_url}/-/ready")
        return self

    def _wait(self, process: _Process, url: str) -> None:
        process.wait_http(url, time.monotonic() + START_SECONDS)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


@pytest.fixture(scope="module")
def timeline(tmp_path_factory):
    """The stack, taken through the timeline of the module's docstring; returns (stack, g0)."""
    stack = EventStack(tmp_path_factory.mktemp("events")).start()
    try:
        prometheus = Prometheus(stack.prometheus_url)
        deadline = time.monotonic() + START_SECONDS
        while not prometheus.instant(c.START_TIME.name):
            assert time.monotonic() < deadline, "Prometheus never got the demo app's start time"
            time.sleep(0.5)
        first_scrape = time.time()
        g0 = math.ceil((first_scrape + STEP_SECONDS + 2) / STEP_SECONDS) * STEP_SECONDS
        _sleep_until(g0 + 5)
        stack.stop_app()
        stack.start_app(FIRST_VERSION)  # a restart: same port, same version
        _sleep_until(g0 + STEP_SECONDS + 5)
        stack.stop_app()
        stack.start_app(DEPLOYED_VERSION)  # a deploy: a restart with a new version
        _sleep_until(g0 + 2 * STEP_SECONDS + 3)  # the last grid point has been scraped
        yield stack, g0
    finally:
        stack.stop()


def _events(board: dict, prometheus: Prometheus, g0: int) -> dict[str, dict[float, list[dict]]]:
    """{annotation: {time: labels of each series with a sample then}} over [g0, g0 + 2 steps]."""
    start, end = g0, g0 + 2 * STEP_SECONDS
    resolution = queries.resolve_variables(board, prometheus, start, end, BUILTINS)
    found = {}
    for annotation in board["annotations"]["list"]:
        assert annotation["step"] == house.EVENT_STEP
        by_time: dict[float, list[dict]] = {}
        for series in prometheus.range(queries.substitute(annotation["expr"], resolution.text), start, end, STEP_SECONDS):
            for at, _ in series.points:
                by_time.setdefault(at, []).append(series.labels)
        found[annotation["name"]] = by_time
    return found


@pytest.mark.parametrize("module", [services_overview, service_detail], ids=["overview", "detail"])
def test_restart_and_deploy_are_marked_when_they_happen_and_not_otherwise(timeline, module):
    stack, g0 = timeline
    prometheus = Prometheus(stack.prometheus_url)
    board = json.loads(house.to_json(module.build()))
    events = _events(board, prometheus, g0)
    assert sorted(events) == ["Alerts firing", "Deploys", "Restarts"]
    restart, deploy = g0 + STEP_SECONDS, g0 + 2 * STEP_SECONDS
    # g0: the instance ran unchanged over the minute before: no event. Then each change is marked
    # at the first grid point after it, and a restart with the same version is no deploy.
    assert sorted(events["Restarts"]) == [restart, deploy], events["Restarts"]
    assert sorted(events["Deploys"]) == [deploy], events["Deploys"]
    (deployed,) = events["Deploys"][deploy]
    assert deployed[L.APP_VERSION] == DEPLOYED_VERSION and deployed[L.SERVICE] == SERVICE and deployed[L.ENVIRONMENT] == ENVIRONMENT
    for labels in events["Restarts"][restart] + events["Restarts"][deploy]:
        assert (labels[L.ENVIRONMENT], labels[L.SERVICE]) == (ENVIRONMENT, SERVICE)
    assert events["Alerts firing"] == {}  # this Prometheus has no rules: the query runs, nothing fires
