"""The swarm collector's scopes (exporter/swarm.py): `state` on a manager, `containers` on every
node, `all` (both) for a one-node swarm; their configuration key and flag.

A fake engine answers like the Engine API and refuses the manager-only endpoints (nodes, services,
tasks) when it is a worker, as a real worker does. The containers scope must work there without
calling them; the two scopes together must give what `all` gives, no series from both. The last
test runs the three scopes against the tests' real engine (tests/docker_engine.py).
"""

from __future__ import annotations

import logging
import time

import pytest

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter import container_stats as cs
from pharos_monitoring.exporter.catalogue import Label as L
from pharos_monitoring.exporter.config import ConfigError, Swarm, parse
from pharos_monitoring.exporter.main import add_arguments, build_config, summary
from pharos_monitoring.exporter.swarm import ALL, CONTAINERS, SCOPES, SERVICE_NAME_LABEL, STATE, OomKillCounter, SwarmCollector, SwarmState

from docker_engine import Engine, busybox_image, engine  # noqa: F401 - engine: the session's fixture

NODE = "worker-1"
# Series of the cluster state (only a manager lists nodes, services and tasks) ...
STATE_SERIES = {
    c.SWARM_NODE_INFO.name, c.SWARM_NODE_STATE.name, c.SWARM_NODE_AVAILABILITY.name, c.SWARM_SERVICE_INFO.name,
    c.SWARM_SERVICE_DESIRED.name, c.SWARM_SERVICE_RUNNING.name, c.SWARM_SERVICE_UPDATE_STATE.name, c.SWARM_TASKS.name,
    c.SWARM_TASK_CURRENT.name, c.SWARM_TASK_FAILURES.name,
}
# ... and of the engine's own task containers (any node can read them).
CONTAINER_SERIES = {
    c.SWARM_CONTAINERS.name, c.SWARM_CONTAINER_OOM_KILLS.name, c.SWARM_CONTAINER_CPU.name, c.SWARM_CONTAINER_MEMORY.name,
    c.SWARM_CONTAINER_MEMORY_LIMIT.name, c.SWARM_CONTAINER_RECEIVED.name, c.SWARM_CONTAINER_SENT.name,
    c.CONTAINER_STATS_AGE.name, c.CONTAINER_STATS_DURATION.name, c.CONTAINER_STATS_FAILURES.name,
}
# Every collector's own health: one per exporter, whatever its scope.
OWN_SERIES = {c.SWARM_COLLECTOR_SUCCESS.name, c.SWARM_COLLECTOR_DURATION.name}
MANAGER_ONLY = ("nodes", "services", "tasks")
STATS = {"cpu_stats": {"cpu_usage": {"total_usage": 10**9}}, "memory_stats": {"usage": 100, "limit": 1000}, "networks": {"eth0": {"rx_bytes": 5, "tx_bytes": 7}}}


def task_container(container_id: str, service: str, slot: int) -> dict:
    task_id = f"t-{container_id}"
    return {"Id": container_id, "Labels": {SERVICE_NAME_LABEL: service, cs.TASK_NAME_LABEL: f"{service}.{slot}.{task_id}", cs.TASK_ID_LABEL: task_id}}


class FakeEngine:
    """An engine of a swarm node with `running` task containers (health -> containers) and `exited` ones."""

    def __init__(self, manager: bool, running: dict[str, list[dict]], exited: list[dict] = (), oom_killed: tuple[str, ...] = ()):
        self.manager, self.running, self.exited, self.oom_killed = manager, running, list(exited), set(oom_killed)
        self.calls: list[str] = []

    def info(self):
        self.calls.append("info")
        return {"Name": NODE, "Swarm": {"LocalNodeState": "active", "ControlAvailable": self.manager}}

    def _manager_only(self, endpoint: str) -> None:
        self.calls.append(endpoint)
        if not self.manager:  # what a worker's engine answers (HTTP 503)
            raise RuntimeError("503 Server Error: This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state.")

    def nodes(self):
        self._manager_only("nodes")
        return [{"ID": "n1", "Description": {"Hostname": NODE, "Engine": {"EngineVersion": "20.10"}}, "Spec": {"Role": "manager", "Availability": "active"}, "Status": {"State": "ready"}}]

    def services(self, status=False):
        self._manager_only("services")
        return [{"ID": f"s-{name}", "Spec": {"Name": name, "Mode": {"Replicated": {"Replicas": 1}}}} for name in ("web", "db", "cache")]

    def tasks(self):
        self._manager_only("tasks")
        containers = [*(container for listed in self.running.values() for container in listed), *self.exited]
        return [
            {"ID": labels[cs.TASK_ID_LABEL], "ServiceID": f"s-{labels[SERVICE_NAME_LABEL]}", "NodeID": "n1", "Slot": int(labels[cs.TASK_NAME_LABEL].split(".")[1]),
             "DesiredState": "shutdown" if container in self.exited else "running", "Status": {"State": "failed" if container in self.exited else "running"}}
            for container in containers for labels in [container["Labels"]]
        ]

    def containers(self, all=False, filters=None):
        self.calls.append("containers")
        assert filters["label"] == SERVICE_NAME_LABEL
        if filters.get("status") == "exited":
            return self.exited
        if "health" in filters:
            return self.running.get(filters["health"], [])
        return [container for listed in self.running.values() for container in listed]

    def inspect_container(self, container_id):
        self.calls.append("inspect")
        return {"State": {"OOMKilled": container_id in self.oom_killed}}

    def stats(self, container_id, stream, one_shot):
        return STATS

    def close(self):
        pass


class Collector(SwarmCollector):
    """The real collector, talking to a fake engine."""

    def __init__(self, fake: FakeEngine, scope: str):
        super().__init__(container_stats_interval=3600, scope=scope)
        self.fake = fake

    def _new_client(self, connections: int = 10):
        return self.fake


def worker(**changes) -> FakeEngine:
    running = {"healthy": [task_container("c1", "web", 1)], "none": [task_container("c2", "web", 2), task_container("c3", "cache", 1)]}
    return FakeEngine(**{"manager": False, "running": running, "exited": [task_container("c9", "db", 1)], "oom_killed": ("c9",), **changes})


def collect(collector: SwarmCollector, wait_for_stats: bool = False) -> list:
    """One scrape; with `wait_for_stats`, the first one after the background reader's first reading."""
    deadline = time.monotonic() + 10
    while True:
        found = [sample for family in collector.collect() for sample in family.samples]
        if not wait_for_stats or any(s.name == c.CONTAINER_STATS_AGE.name for s in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def value(found: list, name: str, **labels) -> float | None:
    return next((s.value for s in found if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())), None)


# --- the scopes --------------------------------------------------------------------------------
def test_the_containers_scope_works_on_a_worker_without_asking_for_cluster_state():
    fake = worker()
    collector = Collector(fake, CONTAINERS)
    try:
        found = collect(collector, wait_for_stats=True)
    finally:
        collector.close()
    assert not set(MANAGER_ONLY) & set(fake.calls), fake.calls
    assert value(found, c.SWARM_COLLECTOR_SUCCESS.name) == 1
    assert {s.name for s in found} == CONTAINER_SERIES | OWN_SERIES
    # Every series names this engine's hostname as its node.
    assert {s.labels[L.NODE] for s in found if L.NODE in s.labels} == {NODE}
    assert value(found, c.SWARM_CONTAINERS.name, service="web", health="healthy") == 1
    assert value(found, c.SWARM_CONTAINERS.name, service="web", health="none") == 1
    assert {s.labels[L.TASK] for s in found if s.name == c.SWARM_CONTAINER_CPU.name} == {"web.1", "web.2", "cache.1"}


def test_in_the_containers_scope_oom_kills_start_at_0_for_every_service_with_a_container_here():
    collector = Collector(worker(), CONTAINERS)
    try:
        found = collect(collector)
    finally:
        collector.close()
    kills = {s.labels[L.SERVICE]: s.value for s in found if s.name == c.SWARM_CONTAINER_OOM_KILLS.name}
    # web and cache from their running containers' labels, db from its exited (OOM-killed) one: no task list needed.
    assert kills == {"web": 0, "cache": 0, "db": 1}


def test_without_a_task_list_a_service_s_oom_count_goes_with_its_last_container_here():
    counter = OomKillCounter()

    def state(running: list[tuple[str, str]], exited: list[tuple[str, str]]) -> SwarmState:
        return SwarmState(
            nodes=[], services=[], tasks=[], local_node=NODE, scope=CONTAINERS,
            containers_by_health={"none": [{"Id": cid, "Labels": {SERVICE_NAME_LABEL: service}} for cid, service in running]},
            exited_containers=[{"Id": cid, "Labels": {SERVICE_NAME_LABEL: service}} for cid, service in exited],
        )

    inspect = lambda container_id: {"State": {"OOMKilled": container_id == "x1"}}  # noqa: E731
    assert counter.update(state([("r1", "web")], []), inspect) == {("web", NODE): 0}
    assert counter.update(state([("r2", "web")], [("x1", "web")]), inspect) == {("web", NODE): 1}
    # The exited container is pruned, a running one is left: the count stays.
    assert counter.update(state([("r2", "web")], []), inspect) == {("web", NODE): 1}
    # The service has no container here any more (moved, or removed): its count goes.
    assert counter.update(state([], []), inspect) == {}


def test_the_state_scope_reads_no_container_and_starts_no_background_reader():
    fake = worker(manager=True)
    collector = Collector(fake, STATE)
    try:
        found = collect(collector)
        time.sleep(0.05)
    finally:
        collector.close()
    assert "containers" not in fake.calls and "inspect" not in fake.calls, fake.calls
    assert value(found, c.SWARM_COLLECTOR_SUCCESS.name) == 1
    assert {s.name for s in found} == STATE_SERIES | OWN_SERIES


def test_the_two_scopes_together_give_what_all_gives_and_no_series_twice():
    names = {}
    for scope in SCOPES:
        collector = Collector(worker(manager=True), scope)
        try:
            names[scope] = {(s.name, tuple(sorted(s.labels.items()))) for s in collect(collector, wait_for_stats=scope != STATE)}
        finally:
            collector.close()
    own = {(name, ()) for name in OWN_SERIES}
    assert names[STATE] & names[CONTAINERS] == own
    assert names[STATE] | names[CONTAINERS] == names[ALL]
    assert {name for name, _ in names[ALL]} == STATE_SERIES | CONTAINER_SERIES | OWN_SERIES


def test_the_state_scope_on_a_worker_fails_with_success_0_and_says_what_to_do(caplog):
    collector = Collector(worker(), STATE)
    with caplog.at_level(logging.WARNING, logger="pharos.exporter.swarm"):
        found = collect(collector)
    collector.close()
    assert [s.name for s in found] == [c.SWARM_COLLECTOR_SUCCESS.name, c.SWARM_COLLECTOR_DURATION.name]
    assert value(found, c.SWARM_COLLECTOR_SUCCESS.name) == 0
    assert "the engine is a swarm worker" in caplog.text and f"only the task containers elsewhere (--swarm-scope {CONTAINERS})" in caplog.text


def test_an_unknown_scope_is_refused_by_the_collector():
    with pytest.raises(ValueError, match="unknown scope 'nodes'; allowed: all, state, containers"):
        SwarmCollector(scope="nodes")


# --- configuration and flags -------------------------------------------------------------------
def parse_flags(args: list[str]):
    import argparse

    parser = argparse.ArgumentParser(prog="pharos exporter")
    add_arguments(parser)
    return parser.parse_args(args)


def test_the_scope_comes_from_the_file_or_the_flag_and_defaults_to_all():
    assert Swarm().scope == ALL
    assert parse({"swarm": {"enabled": True, "scope": "containers"}}, "pharos.yml").swarm.scope == CONTAINERS
    flagged = build_config(parse_flags(["--swarm-scope", "state"]))
    assert flagged.swarm.enabled and flagged.swarm.scope == STATE  # a scope implies --swarm
    assert "swarm: nodes, services and tasks from DOCKER_HOST or unix:///var/run/docker.sock (scope state)" in summary(flagged)
    assert "(scope containers)" in summary(build_config(parse_flags(["--swarm", "--swarm-scope=containers"])))
    assert build_config(parse_flags(["--swarm"])).swarm.scope == ALL


@pytest.mark.parametrize(
    "swarm, problem",
    [
        ({"scope": "nodes"}, "pharos.yml: swarm.scope: unknown scope 'nodes'; allowed: all, state, containers"),
        ({"scope": ["state"]}, "pharos.yml: swarm.scope: expected str, got list"),
        ({"scopes": "state"}, "pharos.yml: swarm.scopes: unknown key; known keys here: container_stats_interval_seconds, container_stats_workers, docker_host, enabled, scope"),
    ],
)
def test_a_bad_scope_names_the_key_and_the_allowed_values(swarm, problem):
    with pytest.raises(ConfigError) as caught:
        parse({"swarm": swarm}, "pharos.yml")
    assert str(caught.value).startswith(problem)


def test_a_bad_scope_flag_names_the_flag_and_the_allowed_values(capsys):
    with pytest.raises(SystemExit) as exited:
        parse_flags(["--swarm-scope", "nodes"])
    assert exited.value.code == 1
    assert "argument --swarm-scope: invalid choice: 'nodes' (choose from 'all', 'state', 'containers')" in capsys.readouterr().err


# --- a real engine -----------------------------------------------------------------------------
SCOPED = "scoped"


@pytest.mark.slow
def test_on_a_real_engine_each_scope_serves_its_series_only(engine: Engine):
    engine.docker("service", "create", "--detach", "--no-resolve-image", "--name", SCOPED, "--replicas", "2", engine.image_id(busybox_image(engine)), "sleep", "3600")
    collectors = {scope: SwarmCollector(engine.host, timeout_seconds=30, container_stats_interval=1.0, scope=scope) for scope in SCOPES}
    try:
        engine.wait_until(lambda: engine.replicas(SCOPED) == (2, 2), f"{SCOPED} to run 2 of 2 tasks", limit=90)
        node = engine.text("node", "ls", "--format", "{{.Hostname}}")

        def both_tasks(scope: str) -> list:
            found = [s for family in collectors[scope].collect() for s in family.samples]
            tasks = {s.labels[L.TASK] for s in found if s.name == c.SWARM_CONTAINER_CPU.name and s.labels[L.SERVICE] == SCOPED}
            return found if tasks == {f"{SCOPED}.1", f"{SCOPED}.2"} else []

        containers = engine.wait_until(lambda: both_tasks(CONTAINERS), f"the containers scope's stats of both {SCOPED} tasks", limit=60, step=1.0)
        everything = engine.wait_until(lambda: both_tasks(ALL), f"the all scope's stats of both {SCOPED} tasks", limit=60, step=1.0)
        state = [s for family in collectors[STATE].collect() for s in family.samples]
        for found in (containers, state, everything):
            assert value(found, c.SWARM_COLLECTOR_SUCCESS.name) == 1
        assert {s.name for s in containers} == CONTAINER_SERIES | OWN_SERIES
        assert {s.name for s in state} <= STATE_SERIES | OWN_SERIES and c.SWARM_TASKS.name in {s.name for s in state}
        assert {s.labels[L.NODE] for s in containers if L.NODE in s.labels} == {node}
        assert value(containers, c.SWARM_CONTAINER_OOM_KILLS.name, service=SCOPED, node=node) == 0
        assert value(containers, c.SWARM_CONTAINERS.name, service=SCOPED, node=node, health="none") == 2
        # The same node's containers, read the same way in both scopes that read them.
        assert {s.name for s in everything} == STATE_SERIES | CONTAINER_SERIES | OWN_SERIES
    finally:
        for collector in collectors.values():
            collector.close()
        engine.docker("service", "rm", SCOPED, check=False)
