"""Docker Swarm state and task containers as metrics: an opt-in collector of the exporter.

`pharos exporter --swarm` (or `swarm: {enabled: true}` in the configuration) registers a
`SwarmCollector` on the exporter's own registry. What it reads is its scope
(`--swarm-scope`, `swarm: {scope: ...}`):

- `state`: the swarm's cluster state, which only a manager can list: the nodes, the services with
  their task counts, every task the swarm keeps (current ones and each slot's history) and the
  tasks that failed. One exporter per swarm, on a manager: every such series names its node itself.
- `containers`: the task containers of the engine the exporter talks to, on any node, workers
  included (it lists no node, service or task): their health, which exited ones the kernel's OOM
  killer ended, and their CPU, memory and network. One per node (the compose file's global
  `pharos-node-agent` service); every series carries this engine's hostname as `node`.
- `all` (the default): both, from one engine: right for a one-node swarm, where the manager's
  containers are all the containers.

Every scrape of `/metrics` reads the engine once, through the `docker` package; a reading that
fails (state on a worker, an engine that does not answer) serves none of its series and
`pharos_swarm_collector_success` 0, with a log message that says why and what to do. The CPU,
memory and network of the task containers are too slow to read during a scrape: a background
thread reads them (exporter/container_stats.py) and each scrape serves its last reading. No series
belongs to both scopes, so a `state` exporter and `containers` agents never emit one twice.

Names and label values come from `exporter/catalogue.py` (the `SWARM_*` entries). The only state
kept between scrapes is in the two counters: the engine lists a failed task (and its exited
container) for as long as it keeps the slot's history, so each is counted once, by its id.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import catalogue as c
from .container_stats import DEFAULT_INTERVAL_SECONDS, DEFAULT_WORKERS, ContainerStats

log = logging.getLogger("pharos.exporter.swarm")

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# Labels the engine puts on every container of a swarm task.
SERVICE_NAME_LABEL = "com.docker.swarm.service.name"
STACK_LABEL = "com.docker.stack.namespace"
_SERVICE_MODES = {"Replicated": "replicated", "Global": "global", "ReplicatedJob": "replicated-job", "GlobalJob": "global-job"}

# What one collector reads (see the module's docstring).
ALL, STATE, CONTAINERS = "all", "state", "containers"
SCOPES = (ALL, STATE, CONTAINERS)


def check_scope(scope: str) -> str:
    """A problem with a scope's name, or ''."""
    return "" if scope in SCOPES else f"unknown scope {scope!r}; allowed: {', '.join(SCOPES)}"


class SwarmError(Exception):
    """The swarm state could not be read; the message says from where and what to do."""


@dataclass(frozen=True)
class SwarmState:
    """One reading of the engine: the API's own documents, as lists of dicts; what `scope` does
    not read stays empty."""

    nodes: list[dict]
    services: list[dict]
    tasks: list[dict]
    local_node: str  # hostname of the engine the exporter talks to
    containers_by_health: Mapping[str, list[dict]] = field(default_factory=dict)
    exited_containers: list[dict] = field(default_factory=list)  # task containers of the engine's own node
    scope: str = ALL

    @property
    def has_cluster(self) -> bool:
        return self.scope != CONTAINERS

    @property
    def has_containers(self) -> bool:
        return self.scope != STATE

    def service_names(self) -> dict[str, str]:
        return {service["ID"]: service["Spec"]["Name"] for service in self.services}

    def node_names(self) -> dict[str, str]:
        return {node["ID"]: node.get("Description", {}).get("Hostname", node["ID"]) for node in self.nodes}

    def services_with_containers(self) -> set[str]:
        """Services with a task container on this engine, running or exited, by the containers' own labels."""
        containers = [*(container for listed in self.containers_by_health.values() for container in listed), *self.exited_containers]
        return {name for container in containers if (name := (container.get("Labels") or {}).get(SERVICE_NAME_LABEL))}


def read_state(api, scope: str = ALL) -> SwarmState:
    """Read `scope` through a `docker.APIClient`; SwarmError when the engine cannot give it (the
    cluster state on a worker). The containers scope calls no manager-only endpoint."""
    if check_scope(scope):
        raise ValueError(check_scope(scope))
    info = api.info()
    swarm = info.get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active":
        raise SwarmError(f"the engine is not part of a swarm (state {swarm.get('LocalNodeState') or 'inactive'!r})")
    cluster, containers = scope != CONTAINERS, scope != STATE
    if cluster and not swarm.get("ControlAvailable"):
        raise SwarmError("the engine is a swarm worker; nodes, services and tasks can only be read on a manager")
    by_health = {
        health: api.containers(filters={"label": SERVICE_NAME_LABEL, "health": health}) for health in c.SWARM_HEALTH_STATES
    } if containers else {}
    return SwarmState(
        nodes=api.nodes() if cluster else [],
        services=api.services(status=True) if cluster else [],
        tasks=api.tasks() if cluster else [],
        local_node=info.get("Name", ""),
        containers_by_health=by_health,
        exited_containers=api.containers(all=True, filters={"label": SERVICE_NAME_LABEL, "status": "exited"}) if containers else [],
        scope=scope,
    )


class FailureCounter:
    """`swarm_task_failures_total`: each task that ended failed or rejected, counted once.

    Every (service, node) pair with tasks starts at 0, so that `increase()` sees the first failure.
    Counts of services that no longer exist are dropped; ids of tasks the engine no longer lists
    are forgotten (they cannot come back)."""

    def __init__(self) -> None:
        self._counted: set[str] = set()
        self._totals: Counter[tuple[str, str]] = Counter()

    def update(self, state: SwarmState) -> dict[tuple[str, str], int]:
        services, nodes = state.service_names(), state.node_names()
        listed_failures = set()
        pairs = set()
        for task in state.tasks:
            service = services.get(task.get("ServiceID", ""))
            if service is None:
                continue  # its service was removed between the two API calls
            pair = (service, nodes.get(task.get("NodeID", ""), ""))
            pairs.add(pair)
            if task.get("Status", {}).get("State") in c.SWARM_TASK_FAILED_STATES:
                listed_failures.add(task["ID"])
                if task["ID"] not in self._counted:
                    self._counted.add(task["ID"])
                    self._totals[pair] += 1
        self._counted &= listed_failures
        for pair in pairs:
            self._totals.setdefault(pair, 0)
        existing = set(services.values())
        self._totals = Counter({pair: total for pair, total in self._totals.items() if pair[0] in existing})
        return dict(self._totals)


class OomKillCounter:
    """`swarm_container_oom_kills_total`: task containers of the engine's node the OOM killer ended.

    The swarm's task only says "task: non-zero exit (137)", a SIGKILL from whoever sent it; the
    container's `State.OOMKilled` says it was the kernel's OOM killer, and only the engine that ran
    the container can be asked. An exited task container never runs again, so each is inspected
    once (one call per newly exited container, none for the others) and ids the engine no longer
    lists are forgotten. Every service with a task on this node starts at 0, so that `increase()`
    sees the first kill: from the task list when the reading has one, else (the containers scope,
    on a worker) from the labels of the task containers here, running or exited; a service's count
    goes when its service is removed, or, without a task list, when none of its containers is left here."""

    def __init__(self) -> None:
        self._verdicts: dict[str, tuple[str, bool]] = {}  # container id -> (service, OOM-killed)
        self._totals: Counter[str] = Counter()

    def update(self, state: SwarmState, inspect: Callable[[str], dict]) -> dict[tuple[str, str], int]:
        listed = set()
        for container in state.exited_containers:
            container_id = container["Id"]
            listed.add(container_id)
            if container_id in self._verdicts:
                continue
            try:
                killed = bool((inspect(container_id).get("State") or {}).get("OOMKilled"))
            except Exception as error:  # noqa: BLE001 - removed in between, or a hiccup: asked again next scrape if still listed
                log.debug("cannot inspect container %s: %s", container_id[:12], error)
                continue
            service = (container.get("Labels") or {}).get(SERVICE_NAME_LABEL, "")
            self._verdicts[container_id] = (service, killed)
            self._totals[service] += killed
        self._verdicts = {key: verdict for key, verdict in self._verdicts.items() if key in listed}
        if state.has_cluster:
            services, nodes = state.service_names(), state.node_names()
            here = {
                services[task["ServiceID"]] for task in state.tasks
                if nodes.get(task.get("NodeID", "")) == state.local_node and task.get("ServiceID", "") in services
            }
            existing = set(services.values())
        else:
            here = existing = state.services_with_containers()
        for service in here:
            self._totals.setdefault(service, 0)
        self._totals = Counter({service: total for service, total in self._totals.items() if service in existing})
        return {(service, state.local_node): total for service, total in sorted(self._totals.items())}


def _enum(metric: c.Metric, rows: Iterable[tuple[tuple[str, ...], str]], values: tuple[str, ...]) -> GaugeMetricFamily:
    """An enum-like gauge: for each row (its labels, its current value), 1 for that value, 0 for the others."""
    family = GaugeMetricFamily(metric.name, metric.help, labels=metric.labels)
    for labels, current in rows:
        for value in values:
            family.add_metric([*labels, value], 1.0 if value == current else 0.0)
    return family


def _image(spec: dict) -> str:
    """The image as `docker service ls` shows it: without the digest the engine pins it to."""
    image = spec.get("TaskTemplate", {}).get("ContainerSpec", {}).get("Image", "")
    return image.split("@", 1)[0]


def families(state: SwarmState, failures: Mapping[tuple[str, str], int], oom_kills: Mapping[tuple[str, str], int] | None = None) -> list:
    """The metric families of one reading, those of its scope only (pure: no engine, no clock)."""
    return (state_families(state, failures) if state.has_cluster else []) + (container_families(state, oom_kills or {}) if state.has_containers else [])


def state_families(state: SwarmState, failures: Mapping[tuple[str, str], int]) -> list:
    """Nodes, services, tasks and task failures: what only a manager can read."""
    services, nodes = state.service_names(), state.node_names()
    result = []

    info = GaugeMetricFamily(c.SWARM_NODE_INFO.name, c.SWARM_NODE_INFO.help, labels=c.SWARM_NODE_INFO.labels)
    node_rows, availability_rows = [], []
    for node in sorted(state.nodes, key=lambda n: nodes[n["ID"]]):
        name = nodes[node["ID"]]
        engine = node.get("Description", {}).get("Engine", {}).get("EngineVersion", "")
        info.add_metric([name, node["ID"], node.get("Spec", {}).get("Role", ""), engine], 1.0)
        node_rows.append(((name,), node.get("Status", {}).get("State", "unknown")))
        availability_rows.append(((name,), node.get("Spec", {}).get("Availability", "")))
    result += [
        info,
        _enum(c.SWARM_NODE_STATE, node_rows, c.SWARM_NODE_STATES),
        _enum(c.SWARM_NODE_AVAILABILITY, availability_rows, c.SWARM_NODE_AVAILABILITIES),
    ]

    running_tasks = Counter(
        services.get(task.get("ServiceID", ""))
        for task in state.tasks
        if task.get("Status", {}).get("State") == c.SWARM_TASK_RUNNING
    )
    service_info = GaugeMetricFamily(c.SWARM_SERVICE_INFO.name, c.SWARM_SERVICE_INFO.help, labels=c.SWARM_SERVICE_INFO.labels)
    desired = GaugeMetricFamily(c.SWARM_SERVICE_DESIRED.name, c.SWARM_SERVICE_DESIRED.help, labels=c.SWARM_SERVICE_DESIRED.labels)
    running = GaugeMetricFamily(c.SWARM_SERVICE_RUNNING.name, c.SWARM_SERVICE_RUNNING.help, labels=c.SWARM_SERVICE_RUNNING.labels)
    update_rows = []
    for service in sorted(state.services, key=lambda s: s["Spec"]["Name"]):
        spec, name = service["Spec"], service["Spec"]["Name"]
        mode_key = next(iter(spec.get("Mode", {})), "")
        service_info.add_metric(
            [name, _SERVICE_MODES.get(mode_key, mode_key.lower()), _image(spec), spec.get("Labels", {}).get(STACK_LABEL, "")], 1.0
        )
        status = service.get("ServiceStatus")
        if status:  # engines with API 1.41 and later count the tasks themselves
            desired.add_metric([name], float(status.get("DesiredTasks", 0)))
            running.add_metric([name], float(status.get("RunningTasks", 0)))
        else:
            desired.add_metric([name], float(spec.get("Mode", {}).get("Replicated", {}).get("Replicas", 0)))
            running.add_metric([name], float(running_tasks[name]))
        update_rows.append(((name,), (service.get("UpdateStatus") or {}).get("State", "")))
    result += [service_info, desired, running, _enum(c.SWARM_SERVICE_UPDATE_STATE, update_rows, c.SWARM_UPDATE_STATES)]

    tasks = GaugeMetricFamily(c.SWARM_TASKS.name, c.SWARM_TASKS.help, labels=c.SWARM_TASKS.labels)
    counted = Counter()
    for task in state.tasks:
        service = services.get(task.get("ServiceID", ""))
        if service is None:
            continue
        node = nodes.get(task.get("NodeID", ""), "")
        counted[(service, node, task.get("Status", {}).get("State", ""), task.get("DesiredState", ""))] += 1
    for labels, count in sorted(counted.items()):
        tasks.add_metric(list(labels), float(count))
    result.append(tasks)

    current = GaugeMetricFamily(c.SWARM_TASK_CURRENT.name, c.SWARM_TASK_CURRENT.help, labels=c.SWARM_TASK_CURRENT.labels)
    current_rows = set()
    for task in state.tasks:
        service = services.get(task.get("ServiceID", ""))
        if service is None or task.get("DesiredState") != c.SWARM_TASK_RUNNING:
            continue
        slot = task.get("Slot")
        name = f"{service}.{slot}" if slot else f"{service}.{task.get('NodeID', '')}"
        current_rows.add((service, name, nodes.get(task.get("NodeID", ""), ""), task.get("Status", {}).get("State", "")))
    for labels in sorted(current_rows):
        current.add_metric(list(labels), 1.0)
    result.append(current)

    failed = CounterMetricFamily(c.SWARM_TASK_FAILURES.family, c.SWARM_TASK_FAILURES.help, labels=c.SWARM_TASK_FAILURES.labels)
    for (service, node), total in sorted(failures.items()):
        failed.add_metric([service, node], float(total))
    result.append(failed)
    return result


def container_families(state: SwarmState, oom_kills: Mapping[tuple[str, str], int]) -> list:
    """OOM kills and health of the task containers on the engine's own node: what any node can read."""
    killed = CounterMetricFamily(c.SWARM_CONTAINER_OOM_KILLS.family, c.SWARM_CONTAINER_OOM_KILLS.help, labels=c.SWARM_CONTAINER_OOM_KILLS.labels)
    for (service, node), total in sorted(oom_kills.items()):
        killed.add_metric([service, node], float(total))

    containers = GaugeMetricFamily(c.SWARM_CONTAINERS.name, c.SWARM_CONTAINERS.help, labels=c.SWARM_CONTAINERS.labels)
    for health in c.SWARM_HEALTH_STATES:
        per_service = Counter((container.get("Labels") or {}).get(SERVICE_NAME_LABEL, "") for container in state.containers_by_health.get(health, []))
        for service, count in sorted(per_service.items()):
            containers.add_metric([service, state.local_node, health], float(count))
    return [killed, containers]


class SwarmCollector:
    """A prometheus_client collector reading its scope of the swarm on every collect(); it never raises."""

    def __init__(
        self,
        docker_host: str = "",
        timeout_seconds: float = 10.0,
        container_stats_interval: float = DEFAULT_INTERVAL_SECONDS,
        container_stats_workers: int = DEFAULT_WORKERS,
        scope: str = ALL,
    ):
        if check_scope(scope):
            raise ValueError(check_scope(scope))
        self.docker_host = docker_host
        self.timeout_seconds = timeout_seconds
        self.scope = scope
        self._api = None
        # The state scope reads no container: no background reader either.
        self._container_stats = None if scope == STATE else ContainerStats(
            lambda: self._new_client(container_stats_workers), container_stats_interval, container_stats_workers
        )
        self._failures = FailureCounter()
        self._oom_kills = OomKillCounter()
        # One reading at a time: it guards the counters, and two concurrent scrapes
        # would only double the load on the manager.
        self._lock = threading.Lock()
        self._last_problem = ""

    @property
    def where(self) -> str:
        return self.docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST

    def describe(self):
        return []  # registration must not read the engine (see prometheus_client's collector protocol)

    @property
    def what(self) -> str:
        return "the swarm's task containers" if self.scope == CONTAINERS else "the swarm state"

    def collect(self):
        if self._container_stats is not None:
            self._container_stats.start()  # on the first scrape, not at registration
        started = time.monotonic()
        with self._lock:
            try:
                api = self._client()
                state = read_state(api, self.scope)
                failures = self._failures.update(state) if state.has_cluster else {}
                oom_kills = self._oom_kills.update(state, api.inspect_container) if state.has_containers else {}
                readings = families(state, failures, oom_kills)
                success = 1.0
                self._report("")
            except Exception as error:  # noqa: BLE001 - any failure to read becomes success 0, never a 500
                readings, success = [], 0.0
                self._close()
                self._report(self._explain(error))
        yield from readings
        if self._container_stats is not None:
            yield from self._container_stats.families()
        yield GaugeMetricFamily(c.SWARM_COLLECTOR_SUCCESS.name, c.SWARM_COLLECTOR_SUCCESS.help, value=success)
        yield GaugeMetricFamily(c.SWARM_COLLECTOR_DURATION.name, c.SWARM_COLLECTOR_DURATION.help, value=time.monotonic() - started)

    def close(self) -> None:
        if self._container_stats is not None:
            self._container_stats.stop()
        with self._lock:
            self._close()

    def _new_client(self, connections: int = 10):
        import docker

        options = docker.utils.kwargs_from_env()
        if self.docker_host:
            options["base_url"] = self.docker_host
        # version="auto" asks the engine which API it speaks: the Debian engine is older than the package's default.
        return docker.APIClient(version="auto", timeout=self.timeout_seconds, max_pool_size=max(1, connections), **options)

    def _client(self):
        if self._api is None:
            self._api = self._new_client()
        return self._api

    def _close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    def _explain(self, error: Exception) -> str:
        if isinstance(error, SwarmError):
            if self.scope == CONTAINERS:
                hint = "point swarm.docker_host (or DOCKER_HOST) at the engine of a swarm node"
            else:
                hint = (
                    f"read the swarm state on a manager node (--swarm-scope {STATE} or {ALL} there, swarm.docker_host), "
                    f"and only the task containers elsewhere (--swarm-scope {CONTAINERS})"
                )
            return f"cannot read {self.what} from {self.where}: {error}; {hint}"
        return (
            f"cannot read {self.what} from {self.where}: {type(error).__name__}: {error}; "
            "check that the engine runs and that the exporter may use its socket (mount it, and run as a member of its group)"
        )

    def _report(self, problem: str) -> None:
        """Log a problem when it starts or changes, and its end: not once per scrape."""
        if problem and problem != self._last_problem:
            log.warning("%s", problem)
        elif not problem and self._last_problem:
            log.info("reading %s from %s works again", self.what, self.where)
        self._last_problem = problem
