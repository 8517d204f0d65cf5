"""The monitoring stack in a real swarm: `docker stack deploy` of docker-compose.monitoring.yml.

Images are built here without any registry (tests/docker_engine.py): the Pharos image from the
repository's Dockerfile on a debootstrap base, Prometheus and Alertmanager from the Debian binaries.
Grafana's image cannot be built here (Grafana is in no reachable registry), so its service is
deployed with 0 replicas (GRAFANA_REPLICAS=0): its configs and secrets are created, its
container never runs. The configuration comes from `pharos build` of examples/swarm-stack.yml
with faster intervals and every notification aimed at the containers' own loopback. Prometheus,
inside the swarm, must discover the demo service's tasks through Docker Swarm discovery and scrape
each through the exporter's /probe, with `service`, `node`, `slot` and `environment` labels.
The test's engine runs without iptables, which service VIPs need: its stack file addresses
Prometheus, Alertmanager and the exporter as `tasks.<service>` (the swarm's DNS of the tasks).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L
from pharos_monitoring.config.build import build
from pharos_monitoring.config.stack_config import parse
from pharos_monitoring.config.swarm_discovery import SWARM_JOB
from pharos_monitoring.alerts.upstream import NODE_FILESYSTEM_AVAIL, NODE_JOB

from docker_engine import PYTHON_BASE, ROOT, Engine, EngineError, alertmanager_image, engine, free_tcp_port, image_size, node_exporter_image, pharos_image, prometheus_image, secrets_dir  # noqa: F401 - engine: the session's fixture

pytestmark = pytest.mark.slow

STACK = "pharos"
DEMO_REPLICAS = 2
SERVICES = ("prometheus", "alertmanager", "pharos-exporter", "demo")
DEPLOY_TIMEOUT = 180.0
EXPORTER = "pharos-exporter:9841"  # the exporter service of the compose file


def stack_file(tmp_path: Path) -> Path:
    """examples/swarm-stack.yml, faster, and with every notification kept on the containers' loopback."""
    data = yaml.safe_load((ROOT / "examples" / "swarm-stack.yml").read_text())
    data["intervals"] = {"scrape_interval": "2s", "scrape_timeout": "1s", "evaluation_interval": "2s"}
    data["smtp"]["smarthost"] = "127.0.0.1:25"
    data["smtp"]["require_tls"] = False
    environment = data["environments"]["production"]
    environment["swarm"]["refresh_interval"] = "2s"
    # Service VIPs need iptables, which the test's engine runs without: address the tasks through
    # the swarm's DNS (tasks.<service>) instead; every service here has one task.
    assert environment["exporter"] == EXPORTER, "the example and the compose file name the exporter differently"
    environment["prometheus"] = "tasks.prometheus:9090"
    environment["alertmanagers"] = ["tasks.alertmanager:9093"]
    environment["exporter"] = f"tasks.{EXPORTER}"
    path = tmp_path / "stack.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def container_of(engine: Engine, service: str) -> str:
    ids = engine.text("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={STACK}_{service}").split()
    if not ids:
        raise EngineError(f"no running container of {STACK}_{service}")
    return ids[0]


def prometheus_api(engine: Engine, path: str, query: str = "") -> dict:
    """Prometheus' HTTP API, asked from inside its own container (busybox wget on its loopback)."""
    url = f"http://127.0.0.1:9090{path}" + (f"?query={quote(query, safe='')}" if query else "")
    body = engine.text("exec", container_of(engine, "prometheus"), "wget", "-q", "-O", "-", url, timeout=30)
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return answer["data"]


def services_running(engine: Engine) -> bool:
    return all(engine.replicas(f"{STACK}_{service}") in {(n, n) for n in range(1, 10)} for service in SERVICES)


def demo_targets_up(engine: Engine) -> list[dict]:
    targets = [t for t in prometheus_api(engine, "/api/v1/targets?state=active")["activeTargets"] if t["labels"]["job"] == SWARM_JOB]
    if len(targets) == DEMO_REPLICAS and all(t["health"] == "up" for t in targets):
        return targets
    return []


def describe_targets(engine: Engine) -> str:
    targets = prometheus_api(engine, "/api/v1/targets?state=active")["activeTargets"]
    return "\n".join(f"{t['labels']['job']} {t['labels']['instance']}: {t['health']} {t['lastError']}" for t in targets)


def test_the_stack_discovers_the_demo_tasks_and_scrapes_them_through_the_exporter(engine: Engine, tmp_path: Path):
    started = time.monotonic()
    pharos = pharos_image(engine)
    prometheus = prometheus_image(engine)
    alertmanager = alertmanager_image(engine)
    images_built = time.monotonic()
    image = json.loads(engine.text("image", "inspect", "--format", "{{json .Config}}", pharos))
    assert image["User"] == "10001:10001" and "pharos_monitoring.exporter.healthcheck" in image["Healthcheck"]["Test"]

    out = tmp_path / "build"
    stack = parse(yaml.safe_load(stack_file(tmp_path).read_text()), "stack.yml")
    build(stack, out, "production")
    variables = {
        # Ids, not tags: given a tag, a swarm task first tries to pull it from a registry.
        "PHAROS_IMAGE": engine.image_id(pharos),
        "PROMETHEUS_IMAGE": engine.image_id(prometheus),
        "ALERTMANAGER_IMAGE": engine.image_id(alertmanager),
        "NODE_EXPORTER_IMAGE": engine.image_id(node_exporter_image(engine)),
        "NODE_EXPORTER_PORT": str(free_tcp_port()),
        "GRAFANA_REPLICAS": "0",  # no Grafana image can be built here
        "DEMO_REPLICAS": str(DEMO_REPLICAS),
        "PHAROS_BUILD_DIR": str(out),
        "PHAROS_SECRETS_DIR": str(secrets_dir(tmp_path)),
        "DOCKER_SOCKET": str(engine.socket_path),
        "DOCKER_GID": str(os.stat(engine.socket_path).st_gid),
        # Published ports are not reachable without iptables; free ones keep the host's untouched.
        "PROMETHEUS_PORT": str(free_tcp_port()),
        "ALERTMANAGER_PORT": str(free_tcp_port()),
        "GRAFANA_PORT": str(free_tcp_port()),
    }
    compose = ROOT / "docker-compose.monitoring.yml"
    try:
        engine.docker("stack", "deploy", "--resolve-image", "never", "--compose-file", str(compose), STACK, env=variables)
        engine.wait_until(lambda: services_running(engine), "every service of the stack to run", limit=DEPLOY_TIMEOUT, step=1.0)
        deployed = time.monotonic()
        health = engine.text("inspect", "--format", "{{.State.Health.Status}}", container_of(engine, "pharos-exporter"))
        assert health == "healthy", "the image's HEALTHCHECK (the exporter's /health) does not pass"

        try:
            targets = engine.wait_until(lambda: demo_targets_up(engine), f"{DEMO_REPLICAS} demo tasks discovered and up", limit=90, step=1.0)
        except EngineError as error:
            raise AssertionError(f"{error}; Prometheus' targets:\n{describe_targets(engine)}") from None
        node = engine.text("node", "ls", "--format", "{{.Hostname}}")
        labels = [t["labels"] for t in targets]
        assert {label[L.SERVICE] for label in labels} == {f"{STACK}_demo"}
        assert {label[L.NODE] for label in labels} == {node}
        assert sorted(label[L.SLOT] for label in labels) == [str(n) for n in range(1, DEMO_REPLICAS + 1)]
        assert {label[L.ENVIRONMENT] for label in labels} == {"production"}
        for target in targets:
            # Scraped through the exporter's /probe: the task's address is the target parameter.
            assert target["scrapeUrl"].startswith(f"http://tasks.{EXPORTER}/probe?")
            assert f"target={quote(target['labels'][L.INSTANCE], safe='')}%2Fstats" in target["scrapeUrl"]

        def demo_stats() -> list:
            found = prometheus_api(engine, "/api/v1/query", f'{c.HTTP_REQUEST_DURATION.count}{{job="{SWARM_JOB}"}}')["result"]
            return found if {r["metric"][L.SLOT] for r in found} == {"1", "2"} else []

        engine.wait_until(demo_stats, "the demo's HTTP stats in Prometheus", limit=60, step=1.0)
        success = prometheus_api(engine, "/api/v1/query", f'{c.SCRAPE_SUCCESS.name}{{job="{SWARM_JOB}"}}')["result"]
        assert [r["value"][1] for r in success] == ["1"] * DEMO_REPLICAS

        # The exporter's swarm collector, inside the swarm, on Prometheus' pharos-exporter job.
        def swarm_state() -> list:
            return prometheus_api(engine, "/api/v1/query", f'{c.SWARM_SERVICE_RUNNING.name}{{service="{STACK}_demo"}}')["result"]

        running = engine.wait_until(swarm_state, "the swarm state scraped from the exporter", limit=60, step=1.0)
        assert running[0]["value"][1] == str(DEMO_REPLICAS)
        # node_exporter runs on every node (global) and reads the host through /host; the node job finds every node.
        engine.wait_until(lambda: engine.replicas(f"{STACK}_node-exporter") == (1, 1), "node-exporter on the node", limit=60, step=1.0)
        exposed = engine.text("exec", container_of(engine, "prometheus"), "wget", "-q", "-O", "-", "http://tasks.node-exporter:9100/metrics", timeout=30)
        assert re.search(rf'^{NODE_FILESYSTEM_AVAIL.name}{{[^}}]*mountpoint="/"', exposed, re.MULTILINE), "node_exporter does not see the host's /"
        node_targets = [t["labels"] for t in prometheus_api(engine, "/api/v1/targets?state=active")["activeTargets"] if t["labels"]["job"] == NODE_JOB]
        assert [(labels[L.NODE], labels[L.ENVIRONMENT]) for labels in node_targets] == [(node, "production")]
        up = prometheus_api(engine, "/api/v1/query", 'up{job=~"alertmanager|prometheus|pharos-exporter"}')["result"]
        assert sorted((r["metric"]["job"], r["value"][1]) for r in up) == [("alertmanager", "1"), ("pharos-exporter", "1"), ("prometheus", "1")]
        assert not engine.registry_attempts(), "the engine tried to pull: an image was given by tag"
        size = image_size(engine, pharos) - image_size(engine, PYTHON_BASE)
        print(
            f"\nstack test: the pharos image adds {size / 1e6:.0f} MB to its base; images {images_built - started:.0f} s, deploy {deployed - images_built:.0f} s, "
            f"discovery and checks {time.monotonic() - deployed:.0f} s"
        )
    finally:
        remove_stack(engine)


def remove_stack(engine: Engine) -> None:
    engine.docker("stack", "rm", STACK, check=False)

    def gone() -> bool:
        leftovers = engine.text("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={STACK}")
        services = engine.text("service", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={STACK}")
        networks = engine.text("network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={STACK}")
        return not leftovers and not services and not networks

    engine.wait_until(gone, f"stack {STACK} to be removed", limit=90, step=1.0)
