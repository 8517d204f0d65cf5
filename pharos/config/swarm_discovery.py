"""Docker Swarm discovery: one scrape job for every service that opts in, no job per service.

In the stack file, inside one environment:

    swarm:
      network: pharos-monitoring          # the overlay network Prometheus and the exporter share
      docker_host: unix:///var/run/docker.sock   # a manager's engine, as Prometheus reaches it
      profile: pharo                      # for services without a pharos.profile label
      port: 8080                          # for services without a pharos.port label
      refresh_interval: 30s
      node_exporter_port: 9100            # every node runs node_exporter there: the `node` job (node_scrape.py)
      node_agent_port: 9841               # every node runs a Pharos node agent there: the `pharos-node-agent` job (node_agent.py)

A service opts in with deploy labels (`deploy.labels` in a compose file, `--label` of
`docker service create`):

    pharos.scrape: "true"       # required: only these services are scraped
    pharos.port: "8080"         # where its stats endpoint listens inside the task
    pharos.path: /stats         # the stats path, when not the profile's default
    pharos.profile: pharo       # the exporter profile of its stats

The generated job reads the swarm's tasks (`dockerswarm_sd_configs`, role `tasks`), keeps the
running tasks of opted-in services on the monitoring network, and scrapes each through the
multi-target exporter's `/probe` (the blackbox_exporter pattern, as probe-mode services). Targets get
`service` (the swarm service name), `node` (the node's hostname), `slot` and `environment`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pharos_monitoring.alerts.model import duration_seconds
from pharos_monitoring.exporter.catalogue import Label as L
from pharos_monitoring.exporter.config import DEFAULT_PROFILE, check_docker_host
from pharos_monitoring.exporter.profiles import PROFILES

SWARM_KEY = "swarm"
SWARM_JOB = "swarm-tasks"
DEFAULT_NETWORK = "pharos-monitoring"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DEFAULT_PORT = 8080
DEFAULT_REFRESH_INTERVAL = "30s"

# The deploy labels a service opts in with; Prometheus sees them as __meta_dockerswarm_service_label_<name>.
SCRAPE_LABEL = "pharos.scrape"
PORT_LABEL = "pharos.port"
PATH_LABEL = "pharos.path"
PROFILE_LABEL = "pharos.profile"
DEPLOY_LABELS = (SCRAPE_LABEL, PORT_LABEL, PATH_LABEL, PROFILE_LABEL)
SCRAPE_ON = "true"

_META = "__meta_dockerswarm_"
SERVICE_NAME = _META + "service_name"
NODE_HOSTNAME = _META + "node_hostname"
TASK_SLOT = _META + "task_slot"
TASK_STATE = _META + "task_state"
TASK_DESIRED_STATE = _META + "task_desired_state"
NETWORK_NAME = _META + "network_name"
ADDRESS = "__address__"
PROBE_TARGET_PARAM = "__param_target"
PROBE_PROFILE_PARAM = "__param_profile"


def service_label(deploy_label: str) -> str:
    """The meta label under which Prometheus shows a service's deploy label (names sanitised to [a-zA-Z0-9_])."""
    return _META + "service_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", deploy_label)


@dataclass(frozen=True)
class SwarmDiscovery:
    network: str = DEFAULT_NETWORK
    docker_host: str = DEFAULT_DOCKER_HOST
    profile: str = DEFAULT_PROFILE
    port: int = DEFAULT_PORT
    refresh_interval: str = DEFAULT_REFRESH_INTERVAL
    node_exporter_port: int = 0  # 0: the nodes run no node_exporter to discover
    node_agent_port: int = 0  # 0: the nodes run no node agent (exporter in the containers scope) to discover


_NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def read(reader, value: Any, path: str) -> SwarmDiscovery:
    """The `swarm:` section at `path`; `reader` is the stack file's reader (fail, mapping, string)."""
    data = reader.mapping(value, path, {"network", "docker_host", "profile", "port", "refresh_interval", "node_exporter_port", "node_agent_port"})
    port = _port(reader, data, "port", path, DEFAULT_PORT)
    return SwarmDiscovery(
        network=reader.string(
            data, "network", path, DEFAULT_NETWORK,
            lambda name: "" if _NETWORK_NAME.match(name) else f"{name!r} is not a Docker network name",
        ),
        docker_host=reader.string(data, "docker_host", path, DEFAULT_DOCKER_HOST, check_docker_host),
        profile=reader.string(
            data, "profile", path, DEFAULT_PROFILE,
            lambda p: "" if p in PROFILES else f"unknown profile {p!r}; known profiles: {', '.join(sorted(PROFILES))}",
        ),
        port=port,
        refresh_interval=reader.string(data, "refresh_interval", path, DEFAULT_REFRESH_INTERVAL, _positive_duration),
        node_exporter_port=_port(reader, data, "node_exporter_port", path, 0),
        node_agent_port=_port(reader, data, "node_agent_port", path, 0),
    )


def _port(reader, data: dict, key: str, path: str, default: int) -> int:
    if key not in data:
        return default
    number = data[key]
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 65536:
        raise reader.fail(f"{path}.{key}", f"expected a port number between 1 and 65535, got {number!r}")
    return number


def _positive_duration(text: str) -> str:
    try:
        return "" if duration_seconds(text) > 0 else "must be longer than 0s"
    except ValueError as error:
        return str(error)


def _keep(source: str, regex: str) -> dict:
    return {"source_labels": [source], "regex": regex, "action": "keep"}


def _copy(source: str, target: str) -> dict:
    return {"source_labels": [source], "target_label": target}


def scrape_job(environment_name: str, exporter: str, swarm: SwarmDiscovery) -> dict:
    """The Prometheus scrape config of the swarm's opted-in services (without exporter TLS/auth)."""
    relabel = [
        _keep(service_label(SCRAPE_LABEL), SCRAPE_ON),
        # Desired and current state both running: neither tasks being replaced nor history.
        {"source_labels": [TASK_DESIRED_STATE, TASK_STATE], "regex": "running;running", "action": "keep"},
        # A task on several networks is discovered once per network: keep the one the exporter reaches.
        _keep(NETWORK_NAME, swarm.network.replace(".", r"\.")),  # names hold [A-Za-z0-9_.-]: only the dot is special
        {
            "source_labels": [ADDRESS, service_label(PORT_LABEL)],
            "regex": r"(.+):\d+;(\d+)",
            "replacement": "$1:$2",
            "target_label": ADDRESS,
        },
        _copy(ADDRESS, L.INSTANCE),
        _copy(ADDRESS, PROBE_TARGET_PARAM),
        {
            "source_labels": [ADDRESS, service_label(PATH_LABEL)],
            "regex": "(.+);(/.*)",
            "replacement": "$1$2",
            "target_label": PROBE_TARGET_PARAM,
        },
        {"source_labels": [service_label(PROFILE_LABEL)], "regex": "(.+)", "target_label": PROBE_PROFILE_PARAM},
        _copy(SERVICE_NAME, L.SERVICE),
        _copy(NODE_HOSTNAME, L.NODE),
        _copy(TASK_SLOT, L.SLOT),
        {"target_label": L.ENVIRONMENT, "replacement": environment_name},
        {"target_label": ADDRESS, "replacement": exporter},
    ]
    return {
        "job_name": SWARM_JOB,
        "metrics_path": "/probe",
        "params": {"profile": [swarm.profile]},
        "dockerswarm_sd_configs": [
            {"host": swarm.docker_host, "role": "tasks", "port": swarm.port, "refresh_interval": swarm.refresh_interval}
        ],
        "relabel_configs": relabel,
    }
