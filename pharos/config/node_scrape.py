"""The `node` scrape job: host metrics (CPU, memory, disks, network) from node_exporter.

In the stack file, inside one environment, either or both of:

    node_exporters: [host-1:9100, host-2:9100]   # machines with node_exporter, listed
    swarm:
      node_exporter_port: 9100                   # every node of the swarm runs node_exporter on this port
                                                 # (the global `node-exporter` service of docker-compose.monitoring.yml)

Listed machines get `node` = the host part of their address; swarm nodes, found by Docker Swarm
discovery (role `nodes`, through `swarm.docker_host`), get `node` = the node's hostname, as the
swarm collector's series name it, so that host and swarm series join on `node`. Every target gets
`environment`. The node alerts (alerts/catalogue.py) and the Swarm dashboard read this job.
"""

from __future__ import annotations

from pharos_monitoring.alerts.upstream import NODE_JOB
from pharos_monitoring.exporter.catalogue import Label as L

from .swarm_discovery import NODE_HOSTNAME, SwarmDiscovery

NODE_EXPORTERS_KEY = "node_exporters"
DEFAULT_NODE_EXPORTER_PORT = 9100
ADDRESS = "__address__"


def scrape_job(environment_name: str, targets: tuple[str, ...], swarm: SwarmDiscovery | None) -> dict | None:
    """The `node` job of one environment; None when it has no node_exporter to scrape."""
    discover = swarm is not None and swarm.node_exporter_port > 0
    if not targets and not discover:
        return None
    job: dict = {"job_name": NODE_JOB}
    if targets:
        job["static_configs"] = [{"targets": list(targets)}]
    if discover:
        job["dockerswarm_sd_configs"] = [
            {"host": swarm.docker_host, "role": "nodes", "port": swarm.node_exporter_port, "refresh_interval": swarm.refresh_interval}
        ]
    job["relabel_configs"] = [
        {"source_labels": [ADDRESS], "regex": r"(.+):\d+", "target_label": L.NODE, "replacement": "$1"},
        # Discovered nodes: their hostname, as the swarm collector names them (empty for listed machines).
        {"source_labels": [NODE_HOSTNAME], "regex": "(.+)", "target_label": L.NODE, "replacement": "$1"},
        {"target_label": L.ENVIRONMENT, "replacement": environment_name},
    ]
    return job
