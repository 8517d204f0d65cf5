"""The swarm collector against a real Docker Engine: it must agree with the engine's own view.

A dockerd of the test's own runs a one-node swarm (tests/docker_engine.py). Services run a busybox
image imported from the host's busybox-static. The engine's view comes from the `docker` CLI
(`service ls`, `service ps`, `node ls`, `ps`), the collector's through the `docker` package; each
comparison reads the CLI, then the collector, then the CLI again, and only counts when the engine
did not change in between. Then a real exporter with `--swarm` is scraped by a real Prometheus
with the catalogue's swarm alerts (timing shortened), and the alerts must fire for the failing
service and keep quiet for the healthy one.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
import yaml

from pharos_monitoring.alerts import prometheus_rules
from pharos_monitoring.config import node_scrape
from pharos_monitoring.alerts.catalogue import SWARM_NODE_DOWN, SWARM_SERVICE_DEGRADED, SWARM_TASK_RESTART_LOOP
from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L
from pharos_monitoring.exporter.config import Config, Swarm
from pharos_monitoring.exporter.collect import Exporter
from pharos_monitoring.exporter.serving.server import make_server
from pharos_monitoring.exporter.swarm import SwarmCollector
from helpers import promtool_check_metrics

from docker_engine import Engine, EngineError, busybox_image, engine, free_tcp_port  # noqa: F401 - engine: the session's fixture

pytestmark = pytest.mark.slow

BUSYBOX = "local/busybox:test"
HEALTHY = "web"
FAILING = "crashing"
STATS = "stats"
SNAPSHOT_ATTEMPTS = 40


@pytest.fixture(scope="module", autouse=True)
def services_removed_at_the_end(engine: Engine):
    """The engine outlives this module (other Docker tests share it): leave no service behind."""
    yield
    for service in (HEALTHY, FAILING, STATS):
        engine.docker("service", "rm", service, check=False)


def busybox(engine: Engine) -> str:
    return engine.image_id(busybox_image(engine, BUSYBOX))


@pytest.fixture(scope="module")
def collector(engine: Engine):
    collector = SwarmCollector(engine.host, timeout_seconds=30)
    yield collector
    collector.close()


# --- the two views -----------------------------------------------------------------------------
def engine_view(engine: Engine, services: tuple[str, ...]) -> dict:
    """What the CLI says about the services of the test: replicas, tasks, nodes, container health."""
    view: dict = {"replicas": {}, "tasks": Counter(), "health": Counter()}
    for service in services:
        view["replicas"][service] = engine.replicas(service)
        for task in engine.json_lines("service", "ps", service):
            state = task["CurrentState"].split()[0].lower()
            view["tasks"][(service, task["Node"], state, task["DesiredState"].lower())] += 1
        for health in c.SWARM_HEALTH_STATES:
            containers = engine.text("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}", "--filter", f"health={health}")
            if containers:
                view["health"][(service, health)] += len(containers.split())
    view["nodes"] = {
        node["Hostname"]: (node["Status"].lower(), node["Availability"].lower(), "manager" if node["ManagerStatus"] else "worker", node["EngineVersion"])
        for node in engine.json_lines("node", "ls")
    }
    return view


def samples(collector: SwarmCollector) -> list:
    return [sample for family in collector.collect() for sample in family.samples]


def collector_view(found: list, services: tuple[str, ...]) -> dict:
    """The same facts, read from one collection of the collector."""
    view: dict = {"replicas": {}, "tasks": Counter(), "health": Counter(), "nodes": {}}
    by_name: dict = {}
    for sample in found:
        by_name.setdefault(sample.name, []).append(sample)
    running = {s.labels[L.SERVICE]: int(s.value) for s in by_name[c.SWARM_SERVICE_RUNNING.name]}
    desired = {s.labels[L.SERVICE]: int(s.value) for s in by_name[c.SWARM_SERVICE_DESIRED.name]}
    for service in services:
        view["replicas"][service] = (running[service], desired[service])
    for s in by_name.get(c.SWARM_TASKS.name, []):
        if s.labels[L.SERVICE] in services:
            view["tasks"][(s.labels[L.SERVICE], s.labels[L.NODE], s.labels[L.STATE], s.labels[L.DESIRED_STATE])] += int(s.value)
    for s in by_name.get(c.SWARM_CONTAINERS.name, []):
        if s.labels[L.SERVICE] in services:
            view["health"][(s.labels[L.SERVICE], s.labels[L.HEALTH])] += int(s.value)
    state = {s.labels[L.NODE]: s.labels[L.STATE] for s in by_name[c.SWARM_NODE_STATE.name] if s.value == 1}
    availability = {s.labels[L.NODE]: s.labels[L.AVAILABILITY] for s in by_name[c.SWARM_NODE_AVAILABILITY.name] if s.value == 1}
    for s in by_name[c.SWARM_NODE_INFO.name]:
        node = s.labels[L.NODE]
        view["nodes"][node] = (state[node], availability[node], s.labels[L.ROLE], s.labels[L.ENGINE_VERSION])
    return view


def agreeing_snapshot(engine: Engine, collector: SwarmCollector, services: tuple[str, ...]) -> tuple[dict, list]:
    """The engine's view and a collection taken while the engine did not change."""
    for _ in range(SNAPSHOT_ATTEMPTS):
        before = engine_view(engine, services)
        found = samples(collector)
        if engine_view(engine, services) == before:
            return before, found
        time.sleep(0.3)
    raise AssertionError(f"the engine changed during each of {SNAPSHOT_ATTEMPTS} readings; cannot compare")


def assert_views_agree(engine: Engine, collector: SwarmCollector, services: tuple[str, ...]) -> dict:
    expected, found = agreeing_snapshot(engine, collector, services)
    assert collector_view(found, services) == expected
    assert next(s.value for s in found if s.name == c.SWARM_COLLECTOR_SUCCESS.name) == 1
    return expected


def start_failing_service(engine: Engine) -> None:
    """A service whose only task exits with status 3 at once, replaced every 2 s, forever."""
    if FAILING not in engine.text("service", "ls", "--format", "{{.Name}}").split():
        engine.docker(
            "service", "create", "--detach", "--no-resolve-image", "--name", FAILING, "--restart-condition", "any", "--restart-delay", "2s",
            busybox(engine), "sh", "-c", "exit 3",
        )


def wait_for_replicas(engine: Engine, service: str, running: int) -> None:
    engine.wait_until(lambda: engine.replicas(service) == (running, running), f"{service} to run {running} of {running} tasks", limit=90)


# --- the tests ---------------------------------------------------------------------------------
def test_the_collector_agrees_with_the_engine_when_scaling_up_and_down(engine: Engine, collector: SwarmCollector):
    engine.docker(
        "service", "create", "--detach", "--no-resolve-image", "--name", HEALTHY, "--replicas", "1",
        "--health-cmd", "true", "--health-interval", "1s", "--health-start-period", "1s",
        busybox(engine), "httpd", "-f", "-p", "8080",
    )
    wait_for_replicas(engine, HEALTHY, 1)
    view = assert_views_agree(engine, collector, (HEALTHY,))
    assert view["replicas"][HEALTHY] == (1, 1)
    (node, (state, availability, role, _)), = view["nodes"].items()
    assert (state, availability, role) == ("ready", "active", "manager")

    engine.docker("service", "scale", "--detach", f"{HEALTHY}=3")
    wait_for_replicas(engine, HEALTHY, 3)
    engine.wait_until(lambda: engine_view(engine, (HEALTHY,))["health"][(HEALTHY, "healthy")] == 3, "3 healthy containers", limit=60)
    view = assert_views_agree(engine, collector, (HEALTHY,))
    assert view["tasks"][(HEALTHY, node, "running", "running")] == 3

    engine.docker("service", "scale", "--detach", f"{HEALTHY}=1")
    wait_for_replicas(engine, HEALTHY, 1)
    engine.wait_until(lambda: sum(engine_view(engine, (HEALTHY,))["tasks"].values()) == 1, "the scaled-down tasks to go", limit=60)
    view = assert_views_agree(engine, collector, (HEALTHY,))
    assert view["replicas"][HEALTHY] == (1, 1)


def test_the_collector_counts_each_failure_of_a_task_that_keeps_failing(engine: Engine, collector: SwarmCollector):
    start_failing_service(engine)
    failed_seen: set[str] = set()

    def three_failures() -> bool:
        samples(collector)  # the collector sees each failure while it is listed, as a scrape would
        failed_seen.update(t["ID"] for t in engine.json_lines("service", "ps", FAILING) if t["CurrentState"].startswith("Failed"))
        return len(failed_seen) >= 3

    engine.wait_until(three_failures, "three failed tasks", limit=90, step=1.0)
    view = assert_views_agree(engine, collector, (FAILING,))
    assert view["replicas"][FAILING][1] == 1
    assert sum(count for (_, _, state, _), count in view["tasks"].items() if state == "failed") >= 3

    # Counted once each, across collections: the engine lists a failed task for several scrapes.
    _, found = agreeing_snapshot(engine, collector, (FAILING,))
    failed_seen.update(t["ID"] for t in engine.json_lines("service", "ps", FAILING) if t["CurrentState"].startswith("Failed"))
    failures = sum(s.value for s in found if s.name == c.SWARM_TASK_FAILURES.name and s.labels[L.SERVICE] == FAILING)
    assert failures == len(failed_seen)


def test_a_stopped_engine_gives_success_0_not_an_error(tmp_path: Path):
    collector = SwarmCollector(f"unix://{tmp_path}/no-such.sock", timeout_seconds=2)
    found = samples(collector)
    assert [(s.name, s.value) for s in found if s.name == c.SWARM_COLLECTOR_SUCCESS.name] == [(c.SWARM_COLLECTOR_SUCCESS.name, 0)]
    assert not [s for s in found if s.name.startswith("swarm_")]


# --- through the exporter and a real Prometheus --------------------------------------------------
FAST = prometheus_rules.Tuning(
    rate_window="20s",
    alert_for={alert.name: "10s" for alert in (SWARM_SERVICE_DEGRADED, SWARM_NODE_DOWN, SWARM_TASK_RESTART_LOOP)},
)


@pytest.fixture(scope="module")
def swarm_exporter(engine: Engine):
    exporter = Exporter(Config(listen="127.0.0.1:0", swarm=Swarm(enabled=True, docker_host=engine.host)))
    server = make_server(exporter, "127.0.0.1:0")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    exporter.close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def prometheus(swarm_exporter: str, tmp_path_factory):
    """A real Prometheus scraping the exporter every second, with the catalogue's rules (fast timing)."""
    directory = tmp_path_factory.mktemp("prometheus")
    (directory / "rules").mkdir()
    node_exporter_port = free_tcp_port()
    node_exporter = subprocess.Popen(
        [shutil.which("prometheus-node-exporter") or "node_exporter", f"--web.listen-address=127.0.0.1:{node_exporter_port}", "--no-collector.systemd"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for name, content in prometheus_rules.rule_files("production", "https://example.invalid/runbooks.md", FAST).items():
        (directory / "rules" / name).write_text(yaml.safe_dump(content))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "rule_files": [str(directory / "rules" / "*.yml")],
        "scrape_configs": [
            {
                "job_name": "pharos-exporter",
                "static_configs": [{"targets": [swarm_exporter]}],
                "relabel_configs": [{"target_label": L.ENVIRONMENT, "replacement": "production"}],
            },
            node_scrape.scrape_job("production", (f"127.0.0.1:{node_exporter_port}",), None),
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_tcp_port()
    log = open(directory / "prometheus.log", "wb")
    process = subprocess.Popen(
        ["prometheus", f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, (directory / "prometheus.log").read_text()[-2000:]
            try:
                if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.3)
        yield url
    finally:
        for child in (process, node_exporter):
            child.terminate()
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        log.close()


def query(prometheus: str, expr: str) -> list:
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def firing(prometheus: str, alert: str) -> set[str]:
    return {r["metric"].get(L.SERVICE, r["metric"].get(L.NODE, "")) for r in query(prometheus, f'ALERTS{{alertname="{alert}", alertstate="firing"}}')}


def test_the_exporter_serves_the_swarm_and_its_alerts_fire_for_the_failing_service(engine: Engine, swarm_exporter: str, prometheus: str):
    start_failing_service(engine)
    body = requests.get(f"http://{swarm_exporter}/metrics", timeout=30).text
    promtool_check_metrics(body)
    assert f"{c.SWARM_COLLECTOR_SUCCESS.name} 1.0" in body
    assert f'{c.SWARM_SERVICE_DESIRED.name}{{{L.SERVICE}="{HEALTHY}"}} 1.0' in body

    def degraded_and_looping() -> bool:
        return FAILING in firing(prometheus, SWARM_SERVICE_DEGRADED.name) and FAILING in firing(prometheus, SWARM_TASK_RESTART_LOOP.name)

    try:
        engine.wait_until(degraded_and_looping, f"{SWARM_SERVICE_DEGRADED.name} and {SWARM_TASK_RESTART_LOOP.name} for {FAILING}", limit=120, step=1.0)
    except EngineError as error:
        raise AssertionError(f"{error}; alerts now: {query(prometheus, 'ALERTS')}") from None
    assert HEALTHY not in firing(prometheus, SWARM_SERVICE_DEGRADED.name) | firing(prometheus, SWARM_TASK_RESTART_LOOP.name)
    assert not firing(prometheus, SWARM_NODE_DOWN.name)
    assert not engine.registry_attempts(), "the engine tried to pull: an image was given by tag"


def test_every_query_of_the_swarm_dashboard_returns_data(engine: Engine, prometheus: str):
    """The Swarm dashboard against the Prometheus above: each variable lists values, each panel query
    returns data (a query that returns nothing is a broken panel)."""
    import json

    from pharos_monitoring.dashboards import house, queries, swarm
    from pharos_monitoring.dashboards.prometheus import Prometheus

    board = json.loads(house.to_json(swarm.build()))
    client = Prometheus(prometheus)
    builtins = {"__rate_interval": "4s", "__interval": "1s", "__range": "1h"}

    def empty_panels() -> list[str]:
        end = time.time()
        text = queries.resolve_variables(board, client, end - 120, end, builtins).text
        empty = []
        for panel_query in queries.panel_queries(board):
            expr = queries.substitute(panel_query.expr, text)
            found = client.instant(expr) if panel_query.instant else client.range(expr, end - 60, end, 2)
            if not found:
                empty.append(f"{panel_query.panel} ({panel_query.ref}): {expr}")
        return empty

    deadline = time.monotonic() + 60
    while (empty := empty_panels()) and time.monotonic() < deadline:
        time.sleep(2)
    assert not empty, "panels without data:\n" + "\n".join(empty)
    assert len(queries.panel_queries(board)) >= 10


def test_the_collector_serves_cpu_memory_and_network_of_each_running_task(engine: Engine):
    """The background reading of container stats: each running task of a service appears with its
    service, task and node, and the reading's age stays below a few intervals."""
    engine.docker("service", "create", "--detach", "--no-resolve-image", "--name", STATS, "--replicas", "2", busybox(engine), "sleep", "3600")
    wait_for_replicas(engine, STATS, 2)
    node = engine.text("node", "ls", "--format", "{{.Hostname}}")
    collector = SwarmCollector(engine.host, timeout_seconds=30, container_stats_interval=1.0)
    try:
        def read() -> dict:
            found = samples(collector)
            by_task = {}
            for sample in found:
                if sample.name == c.SWARM_CONTAINER_CPU.name and sample.labels[L.SERVICE] == STATS:
                    by_task[sample.labels[L.TASK]] = sample
            return {"tasks": by_task, "samples": found} if len(by_task) == 2 else {}

        reading = engine.wait_until(read, f"stats of both tasks of {STATS}", limit=60, step=1.0)
        assert set(reading["tasks"]) == {f"{STATS}.1", f"{STATS}.2"}
        assert {s.labels[L.NODE] for s in reading["tasks"].values()} == {node}
        assert all(s.value > 0 for s in reading["tasks"].values()), "a running container has used some CPU"
        found = reading["samples"]
        memory = [s for s in found if s.name == c.SWARM_CONTAINER_MEMORY.name and s.labels[L.SERVICE] == STATS]
        assert len(memory) == 2 and all(s.value > 0 for s in memory)
        limits = [s for s in found if s.name == c.SWARM_CONTAINER_MEMORY_LIMIT.name and s.labels[L.SERVICE] == STATS]
        assert all(s.value >= m.value for s, m in zip(limits, memory))
        for name in (c.SWARM_CONTAINER_RECEIVED.name, c.SWARM_CONTAINER_SENT.name):
            assert len([s for s in found if s.name == name and s.labels[L.SERVICE] == STATS]) == 2
        age = next(s.value for s in found if s.name == c.CONTAINER_STATS_AGE.name)
        assert 0 <= age < 30
        assert set(L_ for s in found if s.name == c.SWARM_CONTAINER_CPU.name for L_ in s.labels) == {L.SERVICE, L.TASK, L.NODE}
    finally:
        collector.close()
        engine.docker("service", "rm", STATS, check=False)


def test_the_dashboards_node_by_task_table_matches_docker_node_ps(engine: Engine, prometheus: str):
    """The Swarm dashboard's picture of the nodes and the tasks they hold ("Tasks held by each node",
    node x task coloured by state), run as Grafana runs it against the Prometheus above, lists what
    `docker node ps` lists for every node: each current task (desired state running) with its node
    and state. The crashing service's task lives for milliseconds between restart delays, so it is
    seldom a current task: where either side lists it, only the task and its node must match."""
    import json

    from pharos_monitoring.dashboards import house, queries, swarm
    from pharos_monitoring.dashboards.prometheus import Prometheus

    if HEALTHY not in engine.text("service", "ls", "--format", "{{.Name}}").split():
        engine.docker("service", "create", "--detach", "--no-resolve-image", "--name", HEALTHY, "--replicas", "2", busybox(engine), "sleep", "3600")
    else:
        engine.docker("service", "scale", "--detach", f"{HEALTHY}=2")
    wait_for_replicas(engine, HEALTHY, 2)
    start_failing_service(engine)
    board = json.loads(house.to_json(swarm.build()))
    (panel,) = [p for p in queries.panel_queries(board) if p.panel == "Tasks held by each node"]
    client = Prometheus(prometheus)

    def engine_rows() -> set[tuple[str, str, str]]:
        rows = set()
        for node in engine.text("node", "ls", "--format", "{{.Hostname}}").split():
            for task in engine.json_lines("node", "ps", node, "--no-trunc", "--filter", "desired-state=running"):
                rows.add((node, task["Name"], task["CurrentState"].split()[0].lower()))
        return rows

    def dashboard_rows() -> set[tuple[str, str, str]]:
        end = time.time()
        text = queries.resolve_variables(board, client, end - 120, end, {"__rate_interval": "4s", "__interval": "1s", "__range": "1h"}).text
        return {(r["metric"][L.NODE], r["metric"][L.TASK], r["metric"][L.STATE]) for r in query(prometheus, queries.substitute(panel.expr, text)) if float(r["value"][1]) > 0}

    def steady(rows: set) -> set:
        return {row for row in rows if not row[1].startswith(FAILING + ".")}

    def flapping(rows: set) -> set:
        return {row[:2] for row in rows if row[1].startswith(FAILING + ".")}

    seen: list = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        before, shown, after = engine_rows(), dashboard_rows(), engine_rows()
        seen.append((before, shown))
        if steady(before) == steady(after) == steady(shown) and flapping(before) == flapping(after) == flapping(shown):
            break
        time.sleep(1)
    else:
        raise AssertionError(f"the dashboard's node x task table never matched `docker node ps`; last: engine {seen[-1][0]}, dashboard {seen[-1][1]}")
    assert {(task, state) for _, task, state in steady(shown) if task.startswith(HEALTHY + ".")} == {(f"{HEALTHY}.1", "running"), (f"{HEALTHY}.2", "running")}
