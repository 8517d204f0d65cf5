"""CPU, memory and network of the swarm's task containers on the exporter's node, read in the background.

The engine's stats endpoint takes about a second per container (`one_shot`; two without it),
whatever the concurrency, and ~1.5 ms of our CPU: reading 100 containers while Prometheus waits
would outlast any scrape timeout. So a background thread reads the stats of every running task
container every `interval_seconds`, through a bounded pool of `workers` connections, and a
scrape serves the last complete reading together with its age
(`pharos_swarm_container_stats_age_seconds`). CPU and network are the engine's counters since the
container started, so one reading per container is enough for `rate()`; memory is the usage
`docker stats` shows (without the page cache the kernel may drop) and the container's limit.

Series carry `service`, `task` (`web.1`: the service and slot, or the node id for a global
service, without the task id, so that a replaced task keeps its name) and `node` (this engine's
hostname), never container ids: their number is bounded by the tasks that run here.

The swarm collector (exporter/swarm.py) runs this reader in its `all` and `containers` scopes, not
in `state`: it only lists this engine's containers and reads their stats, which works on a worker
as on a manager, so one exporter per node in the containers scope (the compose file's
`pharos-node-agent`) covers every task container of the swarm.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import catalogue as c

log = logging.getLogger("pharos.exporter.container_stats")

SERVICE_NAME_LABEL = "com.docker.swarm.service.name"  # labels the engine puts on every task container
TASK_NAME_LABEL = "com.docker.swarm.task.name"  # SERVICE.SLOT.TASKID (SERVICE.NODEID.TASKID when global)
TASK_ID_LABEL = "com.docker.swarm.task.id"
DEFAULT_INTERVAL_SECONDS = 15.0
DEFAULT_WORKERS = 16  # the engine answers each in about a second whatever the concurrency: 100 containers in ~7 s


@dataclass(frozen=True)
class Usage:
    service: str
    task: str
    cpu_seconds: float
    memory_bytes: float
    memory_limit_bytes: float
    received_bytes: float
    sent_bytes: float


@dataclass(frozen=True)
class Reading:
    node: str
    usages: tuple[Usage, ...]
    finished: float  # the clock's time when the reading was complete
    duration_seconds: float
    failures: int  # containers whose stats could not be read (gone in between, engine errors)


def task_name(labels: dict) -> str:
    """`web.1` from the task container's labels: the task's name without its id."""
    name, task_id = labels.get(TASK_NAME_LABEL, ""), labels.get(TASK_ID_LABEL, "")
    if task_id and name.endswith("." + task_id):
        return name[: -len(task_id) - 1]
    return name


def usage(labels: dict, stats: dict) -> Usage:
    """One container's use, from its labels and one answer of the engine's stats endpoint."""
    cpu = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage", 0)
    memory = stats.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    # As `docker stats`: inactive page cache is memory the kernel takes back before it kills anything.
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    networks = (stats.get("networks") or {}).values()
    return Usage(
        service=labels.get(SERVICE_NAME_LABEL, ""),
        task=task_name(labels),
        cpu_seconds=cpu / 1e9,
        memory_bytes=float(max(0, memory.get("usage", 0) - inactive)),
        memory_limit_bytes=float(memory.get("limit", 0)),
        received_bytes=float(sum(network.get("rx_bytes", 0) for network in networks)),
        sent_bytes=float(sum(network.get("tx_bytes", 0) for network in networks)),
    )


def read(api, workers: int = DEFAULT_WORKERS, clock: Callable[[], float] = time.monotonic) -> Reading:
    """Read every running task container of the engine once, `workers` at a time."""
    started = clock()
    node = api.info().get("Name", "")
    containers = api.containers(filters={"label": SERVICE_NAME_LABEL})

    def one(container: dict) -> Usage | None:
        try:
            return usage(container.get("Labels") or {}, api.stats(container["Id"], stream=False, one_shot=True))
        except Exception as error:  # noqa: BLE001 - a container that ended in between is no reason to lose the others
            log.debug("no stats for container %s: %s", container.get("Id", "")[:12], error)
            return None

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="container-stats") as pool:
        results = list(pool.map(one, containers))
    usages = tuple(sorted((u for u in results if u is not None), key=lambda u: (u.service, u.task)))
    finished = clock()
    return Reading(node, usages, finished, finished - started, sum(1 for u in results if u is None))


def families(reading: Reading | None, now: float) -> list:
    """The metric families of the last reading (none before the first one), with its age at `now`."""
    if reading is None:
        return []
    labels = c.SWARM_CONTAINER_CPU.labels
    cpu = CounterMetricFamily(c.SWARM_CONTAINER_CPU.family, c.SWARM_CONTAINER_CPU.help, labels=labels)
    memory = GaugeMetricFamily(c.SWARM_CONTAINER_MEMORY.name, c.SWARM_CONTAINER_MEMORY.help, labels=labels)
    limit = GaugeMetricFamily(c.SWARM_CONTAINER_MEMORY_LIMIT.name, c.SWARM_CONTAINER_MEMORY_LIMIT.help, labels=labels)
    received = CounterMetricFamily(c.SWARM_CONTAINER_RECEIVED.family, c.SWARM_CONTAINER_RECEIVED.help, labels=labels)
    sent = CounterMetricFamily(c.SWARM_CONTAINER_SENT.family, c.SWARM_CONTAINER_SENT.help, labels=labels)
    seen = set()
    for each in reading.usages:
        key = (each.service, each.task, reading.node)
        if key in seen:
            continue  # two containers of one task (the old one still stopping): the first is enough
        seen.add(key)
        cpu.add_metric(list(key), each.cpu_seconds)
        memory.add_metric(list(key), each.memory_bytes)
        limit.add_metric(list(key), each.memory_limit_bytes)
        received.add_metric(list(key), each.received_bytes)
        sent.add_metric(list(key), each.sent_bytes)
    return [
        cpu, memory, limit, received, sent,
        GaugeMetricFamily(c.CONTAINER_STATS_AGE.name, c.CONTAINER_STATS_AGE.help, value=max(0.0, now - reading.finished)),
        GaugeMetricFamily(c.CONTAINER_STATS_DURATION.name, c.CONTAINER_STATS_DURATION.help, value=reading.duration_seconds),
        GaugeMetricFamily(c.CONTAINER_STATS_FAILURES.name, c.CONTAINER_STATS_FAILURES.help, value=float(reading.failures)),
    ]


class ContainerStats:
    """The background reader: `start()` once, `families()` on every scrape, `stop()` at the end."""

    def __init__(self, api_factory: Callable[[], object], interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
                 workers: int = DEFAULT_WORKERS, clock: Callable[[], float] = time.monotonic):
        self._api_factory = api_factory
        self.interval_seconds = interval_seconds
        self.workers = workers
        self._clock = clock
        self._latest: Reading | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="container-stats", daemon=True)
                self._thread.start()

    def families(self) -> list:
        return families(self._latest, self._clock())

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to end and wait a little: a reading in progress ends on its own (the thread is a daemon)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        api, problem = None, ""
        while not self._stop.is_set():
            started = self._clock()
            try:
                api = api or self._api_factory()
                self._latest = read(api, self.workers, self._clock)
                if problem:
                    log.info("reading container stats works again")
                problem = ""
            except Exception as error:  # noqa: BLE001 - keep serving the last reading; its age tells how old it is
                if str(error) != problem:
                    log.warning("cannot read container stats: %s: %s", type(error).__name__, error)
                problem = str(error)
                if api is not None:
                    api.close()
                api = None
            # A reading longer than the interval starts the next one at once, never two at a time.
            self._stop.wait(max(0.0, self.interval_seconds - (self._clock() - started)))
        if api is not None:
            api.close()
