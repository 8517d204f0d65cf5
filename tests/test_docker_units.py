"""The Docker pieces that need no engine: the image's health check, the `swarm` configuration of the
exporter, the failure counter of the swarm collector, and the swarm discovery `pharos build` writes
(checked by promtool)."""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pharos_monitoring.exporter.config import ConfigError, Swarm, parse as parse_exporter_config
from pharos_monitoring.exporter.healthcheck import check, default_url
from pharos_monitoring.exporter.main import add_arguments, build_config, summary
from pharos_monitoring.exporter.swarm import FailureCounter, SwarmState, families
from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L
from pharos_monitoring.alerts.upstream import NODE_JOB
from pharos_monitoring.config import swarm_discovery
from pharos_monitoring.config.build import build
from pharos_monitoring.config.stack_config import StackConfigError, load, parse as parse_stack

from alerting_tools import PROMTOOL, assert_ok, run

ROOT = Path(__file__).resolve().parent.parent
SWARM_STACK = ROOT / "examples" / "swarm-stack.yml"


# --- the image's health check --------------------------------------------------------------------
def test_the_health_check_passes_on_200_and_fails_on_503_or_silence(loopback_server):
    healthy = loopback_server(b'{"status": "ok"}')
    failing = loopback_server(b'{"status": "failing"}', status=503)
    assert check(f"{healthy}/health") == (True, f"{healthy}/health: HTTP 200")
    ok, message = check(f"{failing}/health")
    assert not ok and "HTTP 503" in message and "failing" in message
    ok, message = check("http://127.0.0.1:9/health")
    assert not ok and "no answer" in message


def test_the_health_check_command_exits_0_or_1(loopback_server):
    healthy = loopback_server(b"{}")
    command = [sys.executable, "-m", "pharos_monitoring.exporter.healthcheck"]
    assert subprocess.run([*command, f"{healthy}/health"], capture_output=True, timeout=30).returncode == 0
    failed = subprocess.run([*command, "http://127.0.0.1:9/health"], capture_output=True, text=True, timeout=30)
    assert failed.returncode == 1 and failed.stdout.startswith("unhealthy: ")


def test_the_health_check_asks_the_port_the_exporter_listens_on(monkeypatch):
    monkeypatch.delenv("PHAROS_HEALTH_URL", raising=False)
    monkeypatch.setenv("PHAROS_LISTEN", "0.0.0.0:9999")
    assert default_url() == "http://127.0.0.1:9999/health"
    monkeypatch.delenv("PHAROS_LISTEN")
    assert default_url() == "http://127.0.0.1:9841/health"
    monkeypatch.setenv("PHAROS_HEALTH_URL", "https://127.0.0.1:9841/health")
    assert default_url() == "https://127.0.0.1:9841/health"


# --- the exporter's swarm configuration ----------------------------------------------------------
def parse_flags(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pharos exporter")
    add_arguments(parser)
    return parser.parse_args(argv)


def test_swarm_is_off_unless_asked_for_by_file_or_flag():
    assert parse_exporter_config({}, "x.yml").swarm == Swarm()
    config = parse_exporter_config({"swarm": {"enabled": True, "docker_host": "unix:///run/docker.sock"}}, "x.yml")
    assert config.swarm == Swarm(True, "unix:///run/docker.sock")
    flagged = build_config(parse_flags(["--swarm"]))
    assert flagged.swarm.enabled and flagged.swarm.docker_host == ""
    assert "swarm: nodes, services and tasks from DOCKER_HOST" in summary(flagged)
    assert not build_config(parse_flags([])).swarm.enabled
    tuned = parse_exporter_config({"swarm": {"enabled": True, "container_stats_interval_seconds": 5, "container_stats_workers": 4}}, "x.yml")
    assert (tuned.swarm.container_stats_interval_seconds, tuned.swarm.container_stats_workers) == (5.0, 4)


@pytest.mark.parametrize(
    "swarm, problem",
    [
        ({"enabled": "yes"}, "swarm.enabled: expected bool"),
        ({"docker_host": "/var/run/docker.sock"}, "swarm.docker_host: '/var/run/docker.sock' is not a Docker Engine address"),
        ({"docker": "unix:///x"}, "swarm.docker: unknown key"),
        ({"container_stats_interval_seconds": 0.1}, "swarm.container_stats_interval_seconds: must be between 1 and 3600 seconds"),
        ({"container_stats_workers": 0}, "swarm.container_stats_workers: must be between 1 and 64 connections"),
    ],
)
def test_a_bad_swarm_section_names_the_key(swarm, problem):
    with pytest.raises(ConfigError, match=f"x.yml: {problem}"):
        parse_exporter_config({"swarm": swarm}, "x.yml")


# --- the failure counter -------------------------------------------------------------------------
def _state(tasks: list[tuple[str, str, str]], services=("web",)) -> SwarmState:
    """Tasks as (id, service, state), all on node n1."""
    return SwarmState(
        nodes=[{"ID": "n1", "Description": {"Hostname": "node-1"}, "Spec": {"Role": "manager", "Availability": "active"}, "Status": {"State": "ready"}}],
        services=[{"ID": f"s-{name}", "Spec": {"Name": name, "Mode": {"Replicated": {"Replicas": 1}}}} for name in services],
        tasks=[{"ID": task, "ServiceID": f"s-{service}", "NodeID": "n1", "Status": {"State": state}, "DesiredState": "shutdown"} for task, service, state in tasks],
        local_node="node-1",
    )


def test_each_failed_task_counts_once_however_often_it_is_listed():
    counter = FailureCounter()
    assert counter.update(_state([("t1", "web", "running")])) == {("web", "node-1"): 0}
    assert counter.update(_state([("t1", "web", "failed"), ("t2", "web", "running")])) == {("web", "node-1"): 1}
    assert counter.update(_state([("t1", "web", "failed"), ("t2", "web", "rejected"), ("t3", "web", "running")])) == {("web", "node-1"): 2}
    # The engine prunes t1 from its history: the count stays, t1 is forgotten.
    assert counter.update(_state([("t2", "web", "rejected"), ("t3", "web", "complete")])) == {("web", "node-1"): 2}
    # The service is removed: its counter goes too.
    assert counter.update(_state([], services=())) == {}


def test_families_of_a_reading_use_the_catalogue_and_zero_fill_enums():
    state = _state([("t1", "web", "running")])
    state.services[0]["ServiceStatus"] = {"DesiredTasks": 3, "RunningTasks": 1}
    state.services[0]["UpdateStatus"] = {"State": "paused"}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for family in families(state, {("web", "node-1"): 4}) for s in family.samples}
    assert samples[(c.SWARM_SERVICE_DESIRED.name, ((L.SERVICE, "web"),))] == 3
    assert samples[(c.SWARM_SERVICE_RUNNING.name, ((L.SERVICE, "web"),))] == 1
    updates = {dict(labels)[L.STATE]: value for (name, labels), value in samples.items() if name == c.SWARM_SERVICE_UPDATE_STATE.name}
    assert updates == {state: 1.0 if state == "paused" else 0.0 for state in c.SWARM_UPDATE_STATES}
    nodes = {dict(labels)[L.STATE]: value for (name, labels), value in samples.items() if name == c.SWARM_NODE_STATE.name}
    assert nodes == {state: 1.0 if state == c.SWARM_NODE_READY else 0.0 for state in c.SWARM_NODE_STATES}
    assert samples[(c.SWARM_TASK_FAILURES.name, ((L.NODE, "node-1"), (L.SERVICE, "web")))] == 4
    catalogue_names = {m.name for m in c.all_metrics()} | {m.family for m in c.all_metrics()}
    assert {name for name, _ in samples} <= catalogue_names


def test_each_current_task_is_named_by_its_slot_or_node_and_history_is_left_out():
    state = _state([("t1", "web", "failed"), ("t2", "web", "starting")])
    state.tasks[1].update({"DesiredState": "running", "Slot": 2})
    state.tasks.append({"ID": "t3", "ServiceID": "s-web", "NodeID": "n1", "Status": {"State": "running"}, "DesiredState": "running"})  # global: no slot
    current = [s.labels for family in families(state, {}) for s in family.samples if s.name == c.SWARM_TASK_CURRENT.name]
    assert current == [
        {L.SERVICE: "web", L.TASK: "web.2", L.NODE: "node-1", L.STATE: "starting"},
        {L.SERVICE: "web", L.TASK: "web.n1", L.NODE: "node-1", L.STATE: "running"},
    ]


# --- swarm discovery in pharos build -------------------------------------------------------------
def test_the_swarm_example_builds_a_config_promtool_accepts(tmp_path: Path):
    build(load(str(SWARM_STACK)), tmp_path, "production")
    config_file = tmp_path / "prometheus" / "prometheus.yml"
    assert_ok(run(PROMTOOL, "check", "config", str(config_file)))
    jobs = {job["job_name"]: job for job in yaml.safe_load(config_file.read_text())["scrape_configs"]}
    swarm = jobs[swarm_discovery.SWARM_JOB]
    assert swarm["dockerswarm_sd_configs"][0]["role"] == "tasks"
    assert swarm["metrics_path"] == "/probe"
    targets = {rule.get("target_label") for rule in swarm["relabel_configs"]}
    assert {L.SERVICE, L.NODE, L.SLOT, L.ENVIRONMENT, "__param_target", "__address__"} <= targets
    assert swarm["relabel_configs"][-1] == {"target_label": "__address__", "replacement": "pharos-exporter:9841"}
    # One job for every opted-in service: no job per service.
    assert [name for name in jobs if name not in ("prometheus", "alertmanager", "pharos-exporter", "global-store", "vmalert")] == [swarm_discovery.SWARM_JOB, NODE_JOB, "pharos-node-agent"]
    # Every node of the swarm, through the same engine, labelled by its hostname as the swarm collector's series.
    node = jobs[NODE_JOB]
    assert node["dockerswarm_sd_configs"] == [{"host": "unix:///var/run/docker.sock", "role": "nodes", "port": 9100, "refresh_interval": "30s"}]
    assert {"source_labels": [swarm_discovery.NODE_HOSTNAME], "regex": "(.+)", "target_label": "node", "replacement": "$1"} in node["relabel_configs"]
    assert "metrics_path" not in node and "static_configs" not in node


def _swarm_stack(**changes) -> dict:
    data = yaml.safe_load(SWARM_STACK.read_text())
    environment = data["environments"]["production"]
    for key, value in changes.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return data


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"exporter": None}, "environments.production.exporter: missing; swarm discovery scrapes every task through the multi-target exporter"),
        ({"swarm": {"port": 70000}}, "environments.production.swarm.port: expected a port number between 1 and 65535, got 70000"),
        ({"swarm": {"profile": "pharoh"}}, "environments.production.swarm.profile: unknown profile 'pharoh'"),
        ({"swarm": {"network": "bad name"}}, "environments.production.swarm.network: 'bad name' is not a Docker network name"),
        ({"swarm": {"refresh_interval": "0s"}}, "environments.production.swarm.refresh_interval: must be longer than 0s"),
        ({"swarm": {"host": "unix:///x"}}, "environments.production.swarm.host: unknown key"),
        ({"swarm": {"node_exporter_port": "9100"}}, "environments.production.swarm.node_exporter_port: expected a port number between 1 and 65535, got '9100'"),
        ({"node_exporters": ["db-1"]}, r"environments.production.node_exporters\[0\]: 'db-1' is not HOST:PORT"),
        ({"swarm": None, "services": None}, "environments.production.services: missing; .*or discover them with swarm:"),
    ],
)
def test_a_bad_swarm_section_names_the_key_and_what_to_do(changes, problem):
    with pytest.raises(StackConfigError, match=f"swarm.yml: {problem}"):
        parse_stack(_swarm_stack(**changes), "swarm.yml")


def test_a_service_cannot_take_the_swarm_jobs_name():
    data = _swarm_stack(services={swarm_discovery.SWARM_JOB: {"mode": "probe", "profile": "pharo", "targets": ["a:1"]}})
    with pytest.raises(StackConfigError, match="is the name of a job Pharos generates"):
        parse_stack(data, "swarm.yml")


def test_grafana_files_only_for_a_stack_with_a_grafana_section(tmp_path: Path):
    data = copy.deepcopy(_swarm_stack())
    del data["grafana"]
    written = build(parse_stack(data, "swarm.yml"), tmp_path / "without", "production")
    assert not any("grafana" in path.parts for path in written)
    written = build(parse_stack(_swarm_stack(), "swarm.yml"), tmp_path / "with", "production")
    datasources = yaml.safe_load((tmp_path / "with" / "grafana/provisioning/datasources/pharos.yml").read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    dashboards = {path.name for path in written if path.suffix == ".json"}
    assert "pharos-swarm.json" in dashboards
