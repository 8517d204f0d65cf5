"""OOM-killed task containers: the swarm collector's reading of them, faked and on a real engine.

A swarm task whose container the kernel's OOM killer ended shows only "task: non-zero exit (137)"
(any SIGKILL); the engine that ran the container knows better (`State.OOMKilled`). The collector
inspects each exited task container of its own node once and counts the OOM-killed ones in
`swarm_container_oom_kills_total`. The real-engine test runs a service that allocates past its
memory limit beside one that exits with an error: only the first may count.
"""

from __future__ import annotations

import time

import pytest

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L
from pharos_monitoring.exporter.swarm import SERVICE_NAME_LABEL, OomKillCounter, SwarmCollector, SwarmState, families

from docker_engine import Engine, busybox_image, engine  # noqa: F401 - engine: the session's fixture

NODE = "node-1"


def _state(exited: list[tuple[str, str]], tasks: list[tuple[str, str]] = (), services=("web", "db")) -> SwarmState:
    """Exited containers as (id, service) on this node; tasks as (service, node id)."""
    return SwarmState(
        nodes=[{"ID": "n1", "Description": {"Hostname": NODE}}, {"ID": "n2", "Description": {"Hostname": "node-2"}}],
        services=[{"ID": f"s-{name}", "Spec": {"Name": name}} for name in services],
        tasks=[{"ID": f"t{i}", "ServiceID": f"s-{service}", "NodeID": node} for i, (service, node) in enumerate(tasks)],
        local_node=NODE,
        exited_containers=[{"Id": cid, "Labels": {SERVICE_NAME_LABEL: service}} for cid, service in exited],
    )


class Inspector:
    """The engine's `inspect_container`, answering from a table of verdicts and counting the calls."""

    def __init__(self, oom_killed: dict[str, bool]):
        self.oom_killed = oom_killed
        self.asked: list[str] = []

    def __call__(self, container_id: str) -> dict:
        self.asked.append(container_id)
        if container_id not in self.oom_killed:
            raise RuntimeError(f"404 no such container {container_id}")
        return {"State": {"Status": "exited", "ExitCode": 137, "OOMKilled": self.oom_killed[container_id]}}


def test_each_oom_killed_container_counts_once_and_is_inspected_once():
    counter = OomKillCounter()
    inspect = Inspector({"c1": True, "c2": False, "c3": True})
    # Every service with a task on this node starts at 0; one with tasks elsewhere only has no series here.
    assert counter.update(_state([], tasks=[("web", "n1"), ("db", "n2")]), inspect) == {("web", NODE): 0}
    assert counter.update(_state([("c1", "web"), ("c2", "web")], tasks=[("web", "n1")]), inspect) == {("web", NODE): 1}
    assert counter.update(_state([("c1", "web"), ("c2", "web"), ("c3", "web")], tasks=[("web", "n1")]), inspect) == {("web", NODE): 2}
    assert inspect.asked == ["c1", "c2", "c3"]  # an exited container never runs again: one look is enough
    # The engine prunes c1 with the slot's history: the count stays, c1 is forgotten.
    assert counter.update(_state([("c2", "web"), ("c3", "web")], tasks=[("web", "n1")]), inspect) == {("web", NODE): 2}
    assert inspect.asked == ["c1", "c2", "c3"]
    # The service is removed: its counter goes too.
    assert counter.update(_state([], services=("db",)), inspect) == {}


def test_a_container_that_cannot_be_inspected_is_asked_about_again_later():
    counter = OomKillCounter()
    inspect = Inspector({})
    assert counter.update(_state([("c1", "web")], tasks=[("web", "n1")]), inspect) == {("web", NODE): 0}
    inspect.oom_killed["c1"] = True  # the engine answers again
    assert counter.update(_state([("c1", "web")], tasks=[("web", "n1")]), inspect) == {("web", NODE): 1}
    assert inspect.asked == ["c1", "c1"]


def test_the_family_is_the_catalogue_s_counter():
    state = _state([], tasks=[("web", "n1")])
    found = [s for family in families(state, {}, {("web", NODE): 3}) for s in family.samples if s.name == c.SWARM_CONTAINER_OOM_KILLS.name]
    assert [(s.labels, s.value) for s in found] == [({L.SERVICE: "web", L.NODE: NODE}, 3.0)]
    # Without a reading of OOM kills (an older caller) the family is there and empty.
    assert not [s for family in families(state, {}) for s in family.samples if s.name == c.SWARM_CONTAINER_OOM_KILLS.name]


# --- a real engine -----------------------------------------------------------------------------
HOG, QUITTER = "oom-hog", "oom-quitter"


@pytest.mark.slow
def test_the_collector_counts_a_real_oom_kill_and_not_an_error_exit(engine: Engine):
    image = engine.image_id(busybox_image(engine))
    try:
        # ash doubles a string until the cgroup's 16 MiB are gone: the OOM killer ends it (exit 137).
        engine.docker(
            "service", "create", "--detach", "--name", HOG, "--limit-memory", "16m", "--restart-max-attempts", "1",
            "--restart-delay", "1s", image, "sh", "-c", 'a=xxxxxxxxxxxxxxxx; while true; do a="$a$a"; done',
        )
        engine.docker("service", "create", "--detach", "--name", QUITTER, "--restart-max-attempts", "1", "--restart-delay", "1s", image, "sh", "-c", "sleep 1; exit 3")
        collector = SwarmCollector(engine.host, timeout_seconds=30, container_stats_interval=3600)
        try:
            deadline, counted = time.monotonic() + 60, {}
            while time.monotonic() < deadline:
                samples = [s for family in collector.collect() for s in family.samples]
                counted = {s.labels[L.SERVICE]: s.value for s in samples if s.name == c.SWARM_CONTAINER_OOM_KILLS.name}
                if counted.get(HOG, 0) >= 2 and QUITTER in counted:
                    break
                time.sleep(1)
        finally:
            collector.close()
        exited = engine.json_lines("ps", "--all", "--filter", f"label={SERVICE_NAME_LABEL}", "--filter", "status=exited")
        verdicts = {row["ID"]: engine.text("inspect", "--format", "{{.State.OOMKilled}} {{.State.ExitCode}}", row["ID"]) for row in exited}
        assert counted.get(HOG, 0) >= 2, f"OOM kills counted {counted}; the engine's exited containers: {verdicts}"
        assert counted.get(QUITTER) == 0, f"an error exit is no OOM kill: {counted}"
        assert {verdict for verdict in verdicts.values()} == {"true 137", "false 3"}
    finally:
        for service in (HOG, QUITTER):
            engine.docker("service", "rm", service, check=False)
