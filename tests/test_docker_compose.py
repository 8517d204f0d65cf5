"""The monitoring stack on one host without a swarm: Debian's docker-compose 1.29 runs
docker-compose.monitoring.yml with docker-compose.single-host.yml over it (docs/docker.md).

On the tests' own engine (tests/docker_engine.py; images built locally, nothing pulled),
Prometheus, Alertmanager, the exporter and one demo run as containers on a user-defined bridge
network, with the fleet's global store and vmalert. The configuration comes from `pharos build`
of examples/swarm-stack.yml turned into a single-host stack: the demo listed as a probe-mode
service instead of Docker Swarm discovery, one Prometheus and one Alertmanager instead of the HA
shape (no task slots, no tasks.<service> names outside a swarm), faster intervals, notifications
aimed at the containers' own loopback. Prometheus' HTTP API, on a port published on 127.0.0.1,
must show the exporter up, the demo's stats arriving through the exporter's /probe, the store and
vmalert up and samples written to the store, and node_exporter, in the host's network namespace,
up in the `node` job (reached at the bridge's gateway as docker-host) counting the host's own
network interfaces. Grafana's image cannot be built here: it is the one service not started (with
the swarm-only ones, which the override puts behind a profile).
`docker-compose down -v` removes everything at the end, whatever happened.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from pharos_monitoring.config.build import build
from pharos_monitoring.config.stack_config import parse
from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L

from docker_engine import (  # noqa: F401 - engine: the session's fixture
    ROOT, Engine, EngineError, alertmanager_image, busybox_image, engine, free_subnet, free_tcp_port, node_exporter_image, pharos_image,
    prometheus_image, secrets_dir, victoria_metrics_image, vmalert_image,
)
from pharos_monitoring.alerts.upstream import NODE_DEVICE, NODE_JOB, NODE_NETWORK_RECEIVE

pytestmark = pytest.mark.slow

DOCKER_COMPOSE = shutil.which("docker-compose")
COMPOSE_FILES = (ROOT / "docker-compose.monitoring.yml", ROOT / "docker-compose.single-host.yml")
PROJECT = "pharossinglehost"
STARTED = ("prometheus", "alertmanager", "pharos-exporter", "demo", "global-store", "vmalert", "node-exporter-host")  # all but Grafana and the swarm's
HOST_ALIAS = "docker-host"  # the host, as the override's Prometheus reaches it (at the bridge's gateway)
DEMO_JOB = "demo"
EXPORTER_JOB = "pharos-exporter"
UP_TIMEOUT = 300.0


def single_host_stack(tmp_path: Path, node_exporter_port: int) -> Path:
    """examples/swarm-stack.yml for one host: the demo as a probe-mode service, node_exporter listed,
    no swarm or ha section."""
    data = yaml.safe_load((ROOT / "examples" / "swarm-stack.yml").read_text())
    data["intervals"] = {"scrape_interval": "2s", "scrape_timeout": "1s", "evaluation_interval": "2s"}
    data["smtp"]["smarthost"] = "127.0.0.1:25"
    data["smtp"]["require_tls"] = False
    environment = data["environments"]["production"]
    del environment["swarm"], environment["ha"]
    environment["alertmanagers"] = ["alertmanager:9093"]
    environment["services"] = {DEMO_JOB: {"mode": "probe", "profile": "pharo", "targets": ["demo:8080"]}}
    environment["node_exporters"] = [f"{HOST_ALIAS}:{node_exporter_port}"]
    path = tmp_path / "single-host-stack.yml"
    path.write_text(yaml.safe_dump(data))
    return path


class Compose:
    """`docker-compose -p PROJECT -f base -f single-host` on the test's engine, with `variables`."""

    def __init__(self, engine: Engine, variables: dict[str, str], env_file: Path):
        self.env = {**engine.env, **variables}
        self.prefix = [DOCKER_COMPOSE, "--project-name", PROJECT, "--env-file", str(env_file)]
        for path in COMPOSE_FILES:
            self.prefix += ["--file", str(path)]

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and result.returncode != 0:
            raise EngineError(f"docker-compose {' '.join(args)} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
        return result


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def api(self, path: str, **params) -> dict:
        answer = requests.get(f"{self.url}{path}", params=params, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list:
        return self.api("/api/v1/query", query=expr)["result"]

    def targets(self) -> list[dict]:
        return self.api("/api/v1/targets", state="active")["activeTargets"]

    def jobs_up(self) -> dict[str, bool]:
        health: dict[str, bool] = {}
        for target in self.targets():
            job = target["labels"]["job"]
            health[job] = health.get(job, True) and target["health"] == "up"
        return health

    def describe(self) -> str:
        try:
            return "\n".join(f"{t['labels']['job']} {t['labels']['instance']}: {t['health']} {t['lastError']}" for t in self.targets())
        except (requests.RequestException, ValueError) as error:
            return f"(Prometheus does not answer: {error})"


def host_interfaces() -> set[str]:
    """The network interfaces of this process's namespace: the host's."""
    with open("/proc/net/dev", encoding="ascii") as lines:
        return {line.split(":")[0].strip() for line in lines.readlines()[2:]}


def reachable(prometheus: Prometheus) -> bool:
    try:
        return requests.get(f"{prometheus.url}/-/ready", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_the_stack_runs_on_one_host_and_prometheus_scrapes_the_demo_through_the_exporter(engine: Engine, tmp_path: Path):
    if DOCKER_COMPOSE is None:
        pytest.skip("docker-compose is not installed: apt-get install docker-compose (Debian's 1.29; scripts/setup.sh should install it)")
    started = time.monotonic()
    pharos = pharos_image(engine)
    out = tmp_path / "build"
    node_exporter_port = free_tcp_port()  # on the host's network: a free port of this machine
    build(parse(yaml.safe_load(single_host_stack(tmp_path, node_exporter_port).read_text()), "single-host-stack.yml"), out)  # production/ and fleet/
    prometheus_port = free_tcp_port()
    subnet = free_subnet()
    env_file = tmp_path / "compose.env"  # empty: a stray .env in the repository must not change the run
    env_file.write_text("")
    compose = Compose(engine, {
        "PHAROS_IMAGE": pharos,
        "PROMETHEUS_IMAGE": prometheus_image(engine),
        "ALERTMANAGER_IMAGE": alertmanager_image(engine),
        "VICTORIA_METRICS_IMAGE": victoria_metrics_image(engine),
        "VMALERT_IMAGE": vmalert_image(engine),
        "NODE_EXPORTER_IMAGE": node_exporter_image(engine),
        "NODE_EXPORTER_PORT": str(node_exporter_port),
        "GRAFANA_IMAGE": busybox_image(engine),  # never started; a local name, so nothing is pulled
        "PHAROS_BUILD_DIR": str(out / "production"),
        "PHAROS_FLEET_BUILD_DIR": str(out / "fleet"),
        "PHAROS_SECRETS_DIR": str(secrets_dir(tmp_path)),
        "DOCKER_SOCKET": str(engine.socket_path),
        "DOCKER_GID": str(os.stat(engine.socket_path).st_gid),
        # Published on the loopback only, on free ports.
        "PROMETHEUS_PORT": f"127.0.0.1:{prometheus_port}",
        "ALERTMANAGER_PORT": f"127.0.0.1:{free_tcp_port()}",
        "GRAFANA_PORT": f"127.0.0.1:{free_tcp_port()}",
        # Its own network: other engines on this machine may use the default subnet.
        "PHAROS_NETWORK": f"{PROJECT}-monitoring",
        "PHAROS_NETWORK_SUBNET": subnet,
        "PHAROS_NETWORK_GATEWAY": str(next(ipaddress.ip_network(subnet).hosts())),  # Docker gives the bridge the first address
    }, env_file)
    prometheus = Prometheus(f"http://127.0.0.1:{prometheus_port}")
    images_built = time.monotonic()
    try:
        compose.run("up", "--detach", "--no-build", *STARTED, timeout=UP_TIMEOUT)
        running = {line.strip() for line in compose.run("ps", "--services", "--filter", "status=running").stdout.splitlines()}
        assert running == set(STARTED), f"running: {sorted(running)}"
        up_done = time.monotonic()

        engine.wait_until(lambda: reachable(prometheus), "Prometheus on its published port", limit=60, step=1.0)

        def exporter_and_demo_up() -> bool:
            jobs = prometheus.jobs_up()
            return jobs.get(EXPORTER_JOB, False) and jobs.get(DEMO_JOB, False)

        try:
            engine.wait_until(exporter_and_demo_up, "the exporter and the demo up in Prometheus", limit=90, step=1.0)
        except EngineError as error:
            raise AssertionError(f"{error}; Prometheus' targets:\n{prometheus.describe()}") from None
        demo_target = next(t for t in prometheus.targets() if t["labels"]["job"] == DEMO_JOB)
        assert demo_target["scrapeUrl"].startswith("http://pharos-exporter:9841/probe?")
        assert demo_target["labels"][L.INSTANCE] == "demo:8080"

        def demo_stats() -> list:
            return prometheus.query(f'{c.HTTP_REQUEST_DURATION.count}{{job="{DEMO_JOB}"}}')

        engine.wait_until(demo_stats, "the demo's HTTP stats in Prometheus", limit=60, step=1.0)
        success = prometheus.query(f'{c.SCRAPE_SUCCESS.name}{{job="{DEMO_JOB}"}}')
        assert [r["value"][1] for r in success] == ["1"], success
        expected_up = [("alertmanager", "1"), ("global-store", "1"), (NODE_JOB, "1"), ("pharos-exporter", "1"), ("prometheus", "1"), ("vmalert", "1")]

        def monitoring_up() -> list:
            return sorted((r["metric"]["job"], r["value"][1]) for r in prometheus.query(f'up{{job=~"alertmanager|prometheus|pharos-exporter|global-store|vmalert|{NODE_JOB}"}}'))

        # Each job is scraped on its own schedule: wait for all of them, bounded.
        try:
            engine.wait_until(lambda: monitoring_up() == expected_up, "alertmanager, prometheus, the exporter, the store, vmalert and node_exporter up", limit=60, step=1.0)
        except EngineError as error:
            raise AssertionError(f"{error}; up: {monitoring_up()}; targets:\n{prometheus.describe()}") from None
        # node_exporter in the host's network namespace: the host's interfaces (this process runs in it), not a container's.
        (node_target,) = [t for t in prometheus.targets() if t["labels"]["job"] == NODE_JOB]
        assert node_target["labels"]["node"] == HOST_ALIAS

        def host_devices() -> tuple:
            host = host_interfaces()
            exposed = requests.get(f"http://127.0.0.1:{node_exporter_port}/metrics", timeout=10).text
            counted = set(re.findall(rf'^{NODE_NETWORK_RECEIVE.name}{{{NODE_DEVICE}="([^"]+)"}}', exposed, re.MULTILINE))
            return (host, counted) if host == host_interfaces() else ()

        host, counted = engine.wait_until(host_devices, "a still picture of the host's interfaces", limit=30, step=1.0)
        # node_exporter leaves the loopback out (seen with Debian's 1.5.0): every other interface, and only those.
        assert counted - {"lo"} == host - {"lo"}, f"node_exporter counts {sorted(counted)}, the host has {sorted(host)}"
        assert prometheus.query(f'{NODE_NETWORK_RECEIVE.name}{{job="{NODE_JOB}"}}')
        # remote_write reaches the store by its service name on the bridge.
        engine.wait_until(lambda: prometheus.query("sum(prometheus_remote_storage_samples_total) > 0"), "samples written to the global store", limit=60, step=1.0)

        # The exporter's container inherits the image's HEALTHCHECK (the compose file sets its timing).
        client = engine.client()
        try:
            exporter = client.containers.get(compose.run("ps", "--quiet", "pharos-exporter").stdout.strip())

            def healthy() -> bool:
                exporter.reload()
                return exporter.attrs["State"].get("Health", {}).get("Status") == "healthy"

            engine.wait_until(healthy, "the exporter container's health status 'healthy'", limit=60, step=1.0)
            # The override's bind mounts are the files pharos build wrote, read-only.
            mounts = {m["Destination"]: m for m in client.containers.get(compose.run("ps", "--quiet", "prometheus").stdout.strip()).attrs["Mounts"]}
            assert mounts["/etc/prometheus/prometheus.yml"]["Source"] == str(out / "production" / "prometheus" / "prometheus.yml")
            assert mounts["/etc/prometheus/prometheus.yml"]["RW"] is False
        finally:
            client.close()
        assert not engine.registry_attempts(), "the engine tried to pull an image"
        print(
            f"\ncompose test: images {images_built - started:.0f} s, up {up_done - images_built:.0f} s, "
            f"scrapes and checks {time.monotonic() - up_done:.0f} s"
        )
    finally:
        down = time.monotonic()
        result = compose.run("down", "--volumes", "--remove-orphans", "--timeout", "5", timeout=180, check=False)
        label = f"label=com.docker.compose.project={PROJECT}"
        leftovers = [engine.text(*listing, "--quiet", "--filter", label) for listing in (("ps", "--all"), ("network", "ls"), ("volume", "ls"))]
        print(f"compose down: {time.monotonic() - down:.0f} s")
        assert not any(leftovers), f"docker-compose down left containers, networks or volumes: {leftovers}; {result.stderr[-1500:]}"
