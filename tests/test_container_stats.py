"""The background reading of task containers' stats (exporter/container_stats.py), without an engine:
what one stats answer becomes, that the pool stays within its bound, and what a scrape serves."""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter import container_stats as cs
from pharos_monitoring.exporter.catalogue import Label as L
from helpers import promtool_check_metrics

# The shape of the Engine API's /containers/ID/stats?stream=false&one-shot=true (cgroup v1).
STATS = {
    "cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000}},
    "precpu_stats": {},
    "memory_stats": {"usage": 50 * 2**20, "limit": 256 * 2**20, "stats": {"total_inactive_file": 10 * 2**20}},
    "networks": {"eth0": {"rx_bytes": 1000, "tx_bytes": 300}, "eth1": {"rx_bytes": 24, "tx_bytes": 12}},
}


def labels(service: str, slot: int, task_id: str) -> dict:
    return {cs.SERVICE_NAME_LABEL: service, cs.TASK_NAME_LABEL: f"{service}.{slot}.{task_id}", cs.TASK_ID_LABEL: task_id}


def test_one_answer_becomes_cpu_seconds_memory_without_cache_and_network_totals():
    used = cs.usage(labels("shop_orders", 2, "x7k2"), STATS)
    assert (used.service, used.task) == ("shop_orders", "shop_orders.2")
    assert used.cpu_seconds == 2.5
    assert used.memory_bytes == 40 * 2**20 and used.memory_limit_bytes == 256 * 2**20
    assert (used.received_bytes, used.sent_bytes) == (1024, 312)
    # cgroup v2 names the page cache inactive_file; a container without networks has 0 traffic.
    v2 = cs.usage(labels("a", 1, "t"), {"memory_stats": {"usage": 100, "stats": {"inactive_file": 40}}})
    assert (v2.memory_bytes, v2.received_bytes, v2.cpu_seconds) == (60, 0, 0)


def test_a_global_task_keeps_its_node_id_and_loses_its_task_id():
    assert cs.task_name({cs.TASK_NAME_LABEL: "agent.n0d3.t4sk", cs.TASK_ID_LABEL: "t4sk"}) == "agent.n0d3"
    assert cs.task_name({}) == ""


class FakeEngine:
    """Answers like the engine: a second per stats call, scaled down; counts concurrent calls."""

    def __init__(self, containers: int, delay: float = 0.02, failing: int = 0):
        self.listed = [{"Id": f"{n:064d}", "Labels": labels("web", n + 1, f"t{n}")} for n in range(containers)]
        self.delay, self.failing = delay, failing
        self.active = self.most = 0
        self.lock = threading.Lock()

    def info(self):
        return {"Name": "manager-1"}

    def containers(self, filters):
        assert filters == {"label": cs.SERVICE_NAME_LABEL}
        return self.listed

    def stats(self, container_id, stream, one_shot):
        assert (stream, one_shot) == (False, True)
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        time.sleep(self.delay)
        with self.lock:
            self.active -= 1
        if int(container_id) < self.failing:
            raise RuntimeError("No such container")
        return STATS

    def close(self):
        pass


def test_a_reading_uses_at_most_its_workers_and_skips_containers_that_fail():
    engine = FakeEngine(40, failing=3)
    reading = cs.read(engine, workers=8)
    assert engine.most <= 8 and engine.most > 1
    assert len(reading.usages) == 37 and reading.failures == 3 and reading.node == "manager-1"
    assert [u.task for u in reading.usages][:2] == ["web.10", "web.11"]  # sorted by service and task


def test_a_scrape_serves_the_last_reading_with_its_age_and_lints():
    engine = FakeEngine(3)
    reading = cs.read(engine, workers=2, clock=lambda: 100.0)
    samples = [s for m in cs.families(reading, now=112.5) for s in m.samples]
    cpu = [s.labels for s in samples if s.name == c.SWARM_CONTAINER_CPU.name]
    assert cpu == [{L.SERVICE: "web", L.TASK: f"web.{n}", L.NODE: "manager-1"} for n in (1, 2, 3)]
    assert [s.value for s in samples if s.name == c.CONTAINER_STATS_AGE.name] == [12.5]
    assert cs.families(None, now=1.0) == []

    class Served:
        def collect(self):
            return cs.families(reading, now=112.5)

    registry = CollectorRegistry()
    registry.register(Served())
    from prometheus_client import generate_latest

    promtool_check_metrics(generate_latest(registry).decode())
    assert registry.get_sample_value(c.SWARM_CONTAINER_MEMORY.name, {L.SERVICE: "web", L.TASK: "web.2", L.NODE: "manager-1"}) == 40 * 2**20


def test_the_background_reader_keeps_reading_and_stops():
    engine = FakeEngine(2, delay=0.001)
    reader = cs.ContainerStats(lambda: engine, interval_seconds=0.05, workers=2)
    reader.start()
    try:
        deadline = time.monotonic() + 10
        while not reader.families() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reader.families(), "no reading within 10 s"
    finally:
        reader.stop()
    assert not any(thread.name == "container-stats" for thread in threading.enumerate())
