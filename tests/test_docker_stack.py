"""The monitoring stack in a real swarm: `docker stack deploy` of docker-compose.monitoring.yml.

Images are built here without any registry (tests/docker_engine.py): the Pharos image from the
repository's Dockerfile on a debootstrap base; Prometheus, Alertmanager, VictoriaMetrics and vmalert
from the Debian binaries. Grafana's image cannot be built here (Grafana is in no reachable
registry), so its service is deployed with 0 replicas (GRAFANA_REPLICAS=0): its configs and
secrets are created, its container never runs. The configuration comes from `pharos build` of
examples/swarm-stack.yml (the HA shape by DNS and the fleet) with faster intervals and every
notification aimed at the containers' own loopback. The stack is deployed once for the module:
- Prometheus, inside the swarm, must discover the demo service's tasks through Docker Swarm
  discovery and scrape each through the exporter's /probe, with `service`, `node`, `slot` and
  `environment` labels;
- the three Alertmanager tasks form one cluster (each one's /api/v2/status lists three peers,
  advertised on the monitoring network), and each Prometheus replica sends to all three;
- the two Prometheus replicas write to the global store with their own `replica` (the Watchdog's
  ALERTS series keeps it), everything else once;
- the node agent (an exporter in the swarm collector's containers scope, on every node) serves the
  CPU, memory, network, health and OOM kills of the stack's task containers with the node's
  hostname, scraped by the `pharos-node-agent` job; the manager's exporter (state scope) serves
  none of them, and no swarm series comes from both;
- node_exporter, on the host's network, counts the host's own network interfaces (those of
  /proc/net/dev in the test's process, which runs in the host's namespace as dockerd does).
The test's engine runs without iptables, which service VIPs need: its stack file addresses every
service as `tasks.<service>` (the swarm's DNS of the tasks). HTTP APIs are asked from inside the
containers (busybox wget): published ports need iptables too.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import yaml

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L
from pharos_monitoring.config import fleet, ha
from pharos_monitoring.config.build import build
from pharos_monitoring.config.stack_config import parse
from pharos_monitoring.config.node_agent import NODE_AGENT_JOB
from pharos_monitoring.config.swarm_discovery import SWARM_JOB
from pharos_monitoring.alerts.upstream import NODE_DEVICE, NODE_FILESYSTEM_AVAIL, NODE_JOB, NODE_NETWORK_RECEIVE

from docker_engine import (  # noqa: F401 - engine: the session's fixture
    PYTHON_BASE, ROOT, Engine, EngineError, alertmanager_image, engine, free_tcp_port, image_size, node_exporter_image, pharos_image,
    prometheus_image, secrets_dir, victoria_metrics_image, vmalert_image,
)

pytestmark = pytest.mark.slow

STACK = "pharos"
VANISHED = "PharosServiceVanished"
DEMO_REPLICAS = 2
PROMETHEUS_REPLICAS = 2
ALERTMANAGER_MEMBERS = 3
SERVICES = ("prometheus", "alertmanager", "pharos-exporter", "pharos-node-agent", "demo", "global-store", "vmalert")
DEPLOY_TIMEOUT = 240.0
EXPORTER = "pharos-exporter:9841"  # the exporter service of the compose file
SUBNET = ipaddress.ip_network("10.231.0.0/16")  # the compose file's default PHAROS_NETWORK_SUBNET


def stack_file(tmp_path: Path) -> Path:
    """examples/swarm-stack.yml, faster, and with every notification kept on the containers' loopback."""
    data = yaml.safe_load((ROOT / "examples" / "swarm-stack.yml").read_text())
    data["intervals"] = {"scrape_interval": "2s", "scrape_timeout": "1s", "evaluation_interval": "2s"}
    data["smtp"]["smarthost"] = "127.0.0.1:25"
    data["smtp"]["require_tls"] = False
    environment = data["environments"]["production"]
    environment["swarm"]["refresh_interval"] = "2s"
    # Service VIPs need iptables, which the test's engine runs without: address the tasks through
    # the swarm's DNS (tasks.<service>) instead.
    assert environment["exporter"] == EXPORTER, "the example and the compose file name the exporter differently"
    assert environment["ha"]["prometheus"]["replicas"] == PROMETHEUS_REPLICAS
    assert environment["ha"]["alertmanager_cluster"]["members"] == ALERTMANAGER_MEMBERS
    environment["prometheus"] = "tasks.prometheus:9090"
    environment["exporter"] = f"tasks.{EXPORTER}"
    data["fleet"] |= {"store": f"tasks.{data['fleet']['store']}", "vmalert": f"tasks.{data['fleet']['vmalert']}"}
    data["alerts"] = {VANISHED: {"for": "10s"}}  # the last test scales the demo to 0
    path = tmp_path / "stack.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def _flag(flags: list[str], name: str) -> str:
    (value,) = [flag.partition("=")[2] for flag in flags if flag.partition("=")[0] == name]
    return value


def compose_variables(out: Path) -> dict[str, str]:
    """The compose file's variables for what `pharos build` wrote into ha.yml and fleet/fleet.yml."""
    members = yaml.safe_load((out / "production" / ha.FLAGS_FILE).read_text())["alertmanager"][0]
    flags = yaml.safe_load((out / fleet.FLEET_DIR / fleet.FLAGS_FILE).read_text())
    store, vmalert = flags["victoria-metrics"]["flags"], flags["vmalert"]["flags"]
    return {
        "PROMETHEUS_REPLICAS": str(PROMETHEUS_REPLICAS),
        "ALERTMANAGER_REPLICAS": str(members[ha.MEMBERS_KEY]),
        "ALERTMANAGER_PEER_TIMEOUT": _flag(members["flags"], "--cluster.peer-timeout"),
        "GLOBAL_STORE_RETENTION": _flag(store, "-retentionPeriod"),
        "PHAROS_SCRAPE_INTERVAL": _flag(store, "-dedup.minScrapeInterval"),
        "GLOBAL_STORE_LATENCY_OFFSET": _flag(store, "-search.latencyOffset"),
        "GLOBAL_STORE_URL": _flag(vmalert, "-datasource.url"),
        "PHAROS_EVALUATION_INTERVAL": _flag(vmalert, "-evaluationInterval"),
    }


def containers_of(engine: Engine, service: str) -> list[str]:
    ids = engine.text("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={STACK}_{service}").split()
    if not ids:
        raise EngineError(f"no running container of {STACK}_{service}")
    return ids


def container_of(engine: Engine, service: str) -> str:
    return containers_of(engine, service)[0]


def fetch(engine: Engine, container: str, url: str) -> dict:
    """A JSON document from `url`, asked from inside `container` (busybox wget)."""
    return json.loads(engine.text("exec", container, "wget", "-q", "-O", "-", url, timeout=30))


def prometheus_api(engine: Engine, path: str, query: str = "", container: str = "") -> dict:
    """Prometheus' HTTP API, asked from inside one of its containers (busybox wget on its loopback)."""
    url = f"http://127.0.0.1:9090{path}" + (f"?query={quote(query, safe='')}" if query else "")
    answer = fetch(engine, container or container_of(engine, "prometheus"), url)
    assert answer["status"] == "success", answer
    return answer["data"]


def services_running(engine: Engine) -> bool:
    return all(engine.replicas(f"{STACK}_{service}") in {(n, n) for n in range(1, 10)} for service in SERVICES)


@dataclass
class Deployed:
    engine: Engine
    out: Path
    pharos: str
    node_exporter_port: int


@pytest.fixture(scope="module")
def deployed(engine: Engine, tmp_path_factory) -> Deployed:
    """The stack, deployed once for the module's tests and removed after them, whatever happened."""
    tmp_path = tmp_path_factory.mktemp("stack")
    started = time.monotonic()
    pharos = pharos_image(engine)
    images = {
        # Ids, not tags: given a tag, a swarm task first tries to pull it from a registry.
        "PHAROS_IMAGE": engine.image_id(pharos),
        "PROMETHEUS_IMAGE": engine.image_id(prometheus_image(engine)),
        "ALERTMANAGER_IMAGE": engine.image_id(alertmanager_image(engine)),
        "NODE_EXPORTER_IMAGE": engine.image_id(node_exporter_image(engine)),
        "VICTORIA_METRICS_IMAGE": engine.image_id(victoria_metrics_image(engine)),
        "VMALERT_IMAGE": engine.image_id(vmalert_image(engine)),
    }
    images_built = time.monotonic()
    out = tmp_path / "build"
    build(parse(yaml.safe_load(stack_file(tmp_path).read_text()), "stack.yml"), out)
    node_exporter_port = free_tcp_port()  # on the host's network: a free port of this machine
    variables = {
        **images,
        **compose_variables(out),
        "NODE_EXPORTER_PORT": str(node_exporter_port),
        "GRAFANA_REPLICAS": "0",  # no Grafana image can be built here
        "DEMO_REPLICAS": str(DEMO_REPLICAS),
        "PHAROS_BUILD_DIR": str(out / "production"),
        "PHAROS_FLEET_BUILD_DIR": str(out / fleet.FLEET_DIR),
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
        deployed_at = time.monotonic()
        yield Deployed(engine, out, pharos, node_exporter_port)
        print(f"\nstack tests: images {images_built - started:.0f} s, deploy {deployed_at - images_built:.0f} s, checks {time.monotonic() - deployed_at:.0f} s")
    finally:
        remove_stack(engine)


def demo_targets_up(engine: Engine) -> list[dict]:
    targets = [t for t in prometheus_api(engine, "/api/v1/targets?state=active")["activeTargets"] if t["labels"]["job"] == SWARM_JOB]
    if len(targets) == DEMO_REPLICAS and all(t["health"] == "up" for t in targets):
        return targets
    return []


def describe_targets(engine: Engine) -> str:
    targets = prometheus_api(engine, "/api/v1/targets?state=active")["activeTargets"]
    return "\n".join(f"{t['labels']['job']} {t['labels']['instance']}: {t['health']} {t['lastError']}" for t in targets)


def node_exporter_metrics(deployed: Deployed) -> str:
    """node_exporter's exposition, read from the host (it listens on the host's network), or ''."""
    try:
        return requests.get(f"http://127.0.0.1:{deployed.node_exporter_port}/metrics", timeout=10).text
    except requests.RequestException:
        return ""


def test_the_stack_discovers_the_demo_tasks_and_scrapes_them_through_the_exporter(deployed: Deployed):
    engine = deployed.engine
    image = json.loads(engine.text("image", "inspect", "--format", "{{json .Config}}", deployed.pharos))
    assert image["User"] == "10001:10001" and "pharos_monitoring.exporter.healthcheck" in image["Healthcheck"]["Test"]
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
    # node_exporter runs on every node (global), on its network, and reads the host through /host; the node job finds every node.
    engine.wait_until(lambda: engine.replicas(f"{STACK}_node-exporter") == (1, 1), "node-exporter on the node", limit=60, step=1.0)
    exposed = engine.wait_until(lambda: node_exporter_metrics(deployed), "node_exporter's metrics on the host's network", limit=60, step=1.0)
    assert re.search(rf'^{NODE_FILESYSTEM_AVAIL.name}{{[^}}]*mountpoint="/"', exposed, re.MULTILINE), "node_exporter does not see the host's /"
    node_targets = [t["labels"] for t in prometheus_api(engine, "/api/v1/targets?state=active")["activeTargets"] if t["labels"]["job"] == NODE_JOB]
    assert [(labels[L.NODE], labels[L.ENVIRONMENT]) for labels in node_targets] == [(node, "production")]
    assert not engine.registry_attempts(), "the engine tried to pull: an image was given by tag"
    size = image_size(engine, deployed.pharos) - image_size(engine, PYTHON_BASE)
    print(f"\nstack test: the pharos image adds {size / 1e6:.0f} MB to its base")


# --- every node's task containers and host --------------------------------------------------------
# The series of the task containers: the node agents' alone.
CONTAINER_SERIES = (
    c.SWARM_CONTAINER_CPU, c.SWARM_CONTAINER_MEMORY, c.SWARM_CONTAINER_MEMORY_LIMIT, c.SWARM_CONTAINER_RECEIVED,
    c.SWARM_CONTAINER_SENT, c.SWARM_CONTAINERS, c.SWARM_CONTAINER_OOM_KILLS, c.CONTAINER_STATS_AGE,
)


def stack_tasks(engine: Engine) -> set[tuple[str, str]]:
    """(service, SERVICE.SLOT or SERVICE.NODEID) of every running task container of the stack, as the engine names them."""
    rows = engine.text(
        "ps", "--filter", f"label=com.docker.stack.namespace={STACK}",
        "--format", '{{.Label "com.docker.swarm.service.name"}} {{.Label "com.docker.swarm.task.name"}} {{.Label "com.docker.swarm.task.id"}}',
    )
    return {(service, task.removesuffix("." + task_id)) for service, task, task_id in (row.split() for row in rows.splitlines())}


def test_every_node_agent_serves_its_nodes_task_containers_and_the_manager_exporter_none(deployed: Deployed):
    engine = deployed.engine
    node = engine.text("node", "ls", "--format", "{{.Hostname}}")

    def agents_up() -> list:
        targets = [t for t in prometheus_api(engine, "/api/v1/targets?state=active")["activeTargets"] if t["labels"]["job"] == NODE_AGENT_JOB]
        return targets if targets and all(t["health"] == "up" for t in targets) else []

    try:
        targets = engine.wait_until(agents_up, "the node agent discovered and up", limit=90, step=1.0)
    except EngineError as error:
        raise AssertionError(f"{error}; Prometheus' targets:\n{describe_targets(engine)}") from None
    # One per node (global), labelled as the other jobs' targets and the agent's own series.
    assert [(t["labels"][L.NODE], t["labels"][L.ENVIRONMENT], t["labels"][L.COMPONENT]) for t in targets] == [(node, "production", NODE_AGENT_JOB)]
    assert ipaddress.ip_address(targets[0]["labels"][L.INSTANCE].rpartition(":")[0]) in SUBNET

    def cpu_of_every_task() -> list:
        found = prometheus_api(engine, "/api/v1/query", f'{c.SWARM_CONTAINER_CPU.name}{{job="{NODE_AGENT_JOB}"}}')["result"]
        served = {(r["metric"][L.SERVICE], r["metric"][L.TASK]) for r in found}
        return found if found and stack_tasks(engine) <= served else []

    try:
        cpu = engine.wait_until(cpu_of_every_task, "the CPU of every task container of the stack from the node agent", limit=90, step=2.0)
    except EngineError as error:
        raise AssertionError(f"{error}; the engine's tasks {sorted(stack_tasks(engine))}") from None
    assert {(r["metric"][L.NODE], r["metric"][L.ENVIRONMENT]) for r in cpu} == {(node, "production")}
    assert not [r for r in cpu if "exported_node" in r["metric"]], "the target's node renamed the series' own"
    demo = f"{STACK}_demo"
    for metric in (c.SWARM_CONTAINER_MEMORY, c.SWARM_CONTAINER_RECEIVED):
        found = prometheus_api(engine, "/api/v1/query", f'{metric.name}{{job="{NODE_AGENT_JOB}", {L.SERVICE}="{demo}"}}')["result"]
        assert sorted(r["metric"][L.TASK] for r in found) == [f"{demo}.{n}" for n in range(1, DEMO_REPLICAS + 1)]
        assert all(float(r["value"][1]) > 0 for r in found), found
    # OOM kills start at 0 for every service with a task container here; health as the engine has it.
    kills = prometheus_api(engine, "/api/v1/query", f'{c.SWARM_CONTAINER_OOM_KILLS.name}{{job="{NODE_AGENT_JOB}"}}')["result"]
    assert {service for service, _ in stack_tasks(engine)} <= {r["metric"][L.SERVICE] for r in kills}
    assert {(r["metric"][L.NODE], r["value"][1]) for r in kills if r["metric"][L.SERVICE].startswith(STACK + "_")} == {(node, "0")}
    healthy = f'{c.SWARM_CONTAINERS.name}{{job="{NODE_AGENT_JOB}", {L.SERVICE}="{demo}", {L.HEALTH}="healthy"}}'
    found = engine.wait_until(lambda: prometheus_api(engine, "/api/v1/query", f"{healthy} == {DEMO_REPLICAS}")["result"], "both demo containers healthy", limit=60, step=1.0)
    assert [r["metric"][L.NODE] for r in found] == [node]
    success = prometheus_api(engine, "/api/v1/query", c.SWARM_COLLECTOR_SUCCESS.name)["result"]
    assert {(r["metric"]["job"], r["metric"].get(L.NODE, ""), r["value"][1]) for r in success} == {(NODE_AGENT_JOB, node, "1"), ("pharos-exporter", "", "1")}

    # The manager's exporter, in the state scope: the cluster state, none of the containers' series.
    exposed = engine.text("exec", container_of(engine, "prometheus"), "wget", "-q", "-O", "-", f"http://tasks.{EXPORTER}/metrics", timeout=30)
    names = {line.split("{")[0].split(" ")[0] for line in exposed.splitlines() if line and not line.startswith("#")}
    assert c.SWARM_TASKS.name in names and f"{c.SWARM_COLLECTOR_SUCCESS.name} 1.0" in exposed
    assert not names & {metric.name for metric in CONTAINER_SERIES}, sorted(names & {metric.name for metric in CONTAINER_SERIES})
    # Across both jobs, each swarm series comes from one of them only.
    both = prometheus_api(engine, "/api/v1/query", 'count by (__name__) (count by (__name__, job) ({__name__=~"swarm_.+"})) > 1')["result"]
    assert not both, f"series served by both the exporter and the node agent: {both}"


def host_interfaces() -> set[str]:
    """The network interfaces of this process's namespace, the host's (as dockerd's)."""
    with open("/proc/net/dev", encoding="ascii") as lines:
        return {line.split(":")[0].strip() for line in lines.readlines()[2:]}


def test_node_exporter_counts_the_host_s_network_interfaces(deployed: Deployed):
    """node_exporter on the host's network, read at 127.0.0.1 from the host: the devices of its
    network counters are the host's interfaces, not its container's (eth0, lo)."""
    engine = deployed.engine

    def devices() -> tuple[set, set]:
        # Containers starting or stopping add and remove veths on the host: compare a still picture.
        before = host_interfaces()
        exposed = node_exporter_metrics(deployed)
        if not exposed:
            return ()
        counted = set(re.findall(rf'^{NODE_NETWORK_RECEIVE.name}{{{NODE_DEVICE}="([^"]+)"}}', exposed, re.MULTILINE))
        return (before, counted) if host_interfaces() == before else ()

    try:
        host, counted = engine.wait_until(devices, f"node_exporter's metrics at 127.0.0.1:{deployed.node_exporter_port}", limit=60, step=1.0)
    except EngineError as error:
        raise AssertionError(f"{error}; node-exporter: {engine.text('service', 'ps', '--no-trunc', f'{STACK}_node-exporter')}") from None
    # node_exporter leaves the loopback out (seen with Debian's 1.5.0): every other interface, and only those.
    assert counted - {"lo"} == host - {"lo"}, f"node_exporter counts {sorted(counted)}, the host has {sorted(host)}"


# --- the HA shape: a cluster of three, a pair, the global store --------------------------------
def cluster_status(engine: Engine, container: str) -> dict:
    return fetch(engine, container, "http://127.0.0.1:9093/api/v2/status")["cluster"]


def test_the_three_alertmanagers_form_one_cluster_on_the_monitoring_network(deployed: Deployed):
    engine = deployed.engine
    members = containers_of(engine, "alertmanager")
    assert len(members) == ALERTMANAGER_MEMBERS

    def settled() -> list[dict]:
        statuses = [cluster_status(engine, member) for member in members]
        return statuses if all(s["status"] == "ready" and len(s["peers"]) == ALERTMANAGER_MEMBERS for s in statuses) else []

    try:
        statuses = engine.wait_until(settled, f"{ALERTMANAGER_MEMBERS} peers in every member's /api/v2/status", limit=120, step=2.0)
    except EngineError as error:
        raise AssertionError(f"{error}: {[cluster_status(engine, member) for member in members]}") from None
    # One cluster: every member lists the same peers, each advertised on the monitoring network
    # (not docker_gwbridge, which only its own node reaches).
    peers = [{(peer["name"], peer["address"]) for peer in status["peers"]} for status in statuses]
    assert all(each == peers[0] for each in peers)
    assert all(ipaddress.ip_address(address.rpartition(":")[0]) in SUBNET for _, address in peers[0]), peers[0]
    # The notification log and silences are kept per member, in a volume per task slot.
    volumes = set(engine.text("volume", "ls", "--format", "{{.Name}}").split())
    slots = {f"{STACK}_alertmanager-data-{n}" for n in range(1, ALERTMANAGER_MEMBERS + 1)} | {f"{STACK}_prometheus-data-{n}" for n in range(1, PROMETHEUS_REPLICAS + 1)}
    assert slots <= volumes, f"missing per-slot volumes: {sorted(slots - volumes)}"


def test_each_prometheus_replica_sends_to_every_alertmanager_and_scrapes_every_member(deployed: Deployed):
    engine = deployed.engine
    replicas = containers_of(engine, "prometheus")
    assert len(replicas) == PROMETHEUS_REPLICAS
    for replica in replicas:
        def discovered() -> bool:
            alertmanagers = prometheus_api(engine, "/api/v1/alertmanagers", container=replica)["activeAlertmanagers"]
            jobs = [t["labels"]["job"] for t in prometheus_api(engine, "/api/v1/targets?state=active", container=replica)["activeTargets"] if t["health"] == "up"]
            return len(alertmanagers) == ALERTMANAGER_MEMBERS and jobs.count("alertmanager") == ALERTMANAGER_MEMBERS and jobs.count("prometheus") == PROMETHEUS_REPLICAS

        try:
            engine.wait_until(discovered, "every Alertmanager and both replicas through DNS, in each replica", limit=90, step=2.0)
        except EngineError as error:
            raise AssertionError(f"{error}; targets:\n{describe_targets(engine)}") from None


def test_both_replicas_write_to_the_global_store_with_their_own_replica_label(deployed: Deployed):
    engine = deployed.engine
    store = f"{_flag(yaml.safe_load((deployed.out / fleet.FLEET_DIR / fleet.FLAGS_FILE).read_text())['vmalert']['flags'], '-datasource.url')}/api/v1/query"
    asker = container_of(engine, "prometheus")

    def query(expression: str) -> list:
        answer = fetch(engine, asker, f"{store}?nocache=1&query={quote(expression, safe='')}")
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def both_replicas() -> list:
        found = query('count by (replica) (ALERTS{alertname="Watchdog", environment="production"})')
        return found if sorted(r["metric"].get("replica") for r in found) == ["1", "2"] else []

    try:
        engine.wait_until(both_replicas, "the Watchdog of replicas 1 and 2 in the global store", limit=120, step=2.0)
    except EngineError as error:
        raise AssertionError(f"{error}; found {query('count by (replica) (ALERTS)')}") from None
    # Everything else arrives without `replica`: the pair's identical series are one in the store.
    # (each member's `up` arrives once its task is discovered by DNS and scraped: wait for all three)
    members = lambda: [found for found in [query('up{job="alertmanager", environment="production"}')] if len(found) == ALERTMANAGER_MEMBERS]  # noqa: E731
    (up,) = engine.wait_until(members, f"the store holding `up` of the {ALERTMANAGER_MEMBERS} Alertmanagers", limit=60, step=2.0)
    assert not any("replica" in r["metric"] for r in up), up


def test_a_service_scaled_to_zero_fires_the_vanished_service_alert(deployed: Deployed):
    """Swarm discovery finds no task of the demo any more: nothing would fire without this alert. (Last:
    it leaves the demo at 0.)"""
    engine = deployed.engine
    demo = f"{STACK}_demo"
    engine.docker("service", "scale", "--detach", f"{demo}=0")
    firing = f'ALERTS{{alertname="{VANISHED}", alertstate="firing", {L.SERVICE}="{demo}"}}'

    def vanished() -> list:
        return prometheus_api(engine, "/api/v1/query", firing)["result"]

    try:
        (alert,) = engine.wait_until(vanished, f"{VANISHED} for {demo}", limit=120, step=2.0)
    except EngineError as error:
        raise AssertionError(f"{error}; alerts now: {prometheus_api(engine, '/api/v1/query', 'ALERTS')['result']}") from None
    assert alert["metric"][L.ENVIRONMENT] == "production" and alert["metric"]["severity"] == "critical"


def remove_stack(engine: Engine) -> None:
    engine.docker("stack", "rm", STACK, check=False)

    def gone() -> bool:
        leftovers = engine.text("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={STACK}")
        services = engine.text("service", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={STACK}")
        networks = engine.text("network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={STACK}")
        return not leftovers and not services and not networks

    engine.wait_until(gone, f"stack {STACK} to be removed", limit=90, step=1.0)
    # Volumes outlive a stack: the per-slot ones are named after the stack's services.
    volumes = [name for name in engine.text("volume", "ls", "--format", "{{.Name}}").split() if name.startswith(f"{STACK}_")]
    if volumes:
        engine.docker("volume", "rm", *volumes, check=False)
