"""The `pharos-node-agent` scrape job: the task containers of every swarm node, from its own exporter.

Only the engine that runs a container can say how much CPU, memory and network it uses and
whether the OOM killer ended it, so every node runs a Pharos exporter in the swarm collector's
containers scope (`pharos exporter --swarm-scope containers`: the global `pharos-node-agent`
service of docker-compose.monitoring.yml), and the manager's exporter reads the cluster state
alone (`--swarm-scope state`). In the stack file, inside one environment:

    swarm:
      node_agent_port: 9841     # every node runs a node agent on the monitoring network, on this port

The job finds the agents as the `swarm-tasks` job finds opted-in services: Docker Swarm discovery
(role `tasks`, through `swarm.docker_host`), the running tasks of services with the deploy label
`pharos.node-agent: "true"`, at their address on `swarm.network`. Each target gets `environment`,
`node` (the node's hostname, as the agent's own series name it) and `component` (an agent down is
PharosMonitoringComponentDown). The agent's series keep their own `node` (`honor_labels`): they
carry it already, and the target's would otherwise rename theirs to `exported_node`.
"""

from __future__ import annotations

from pharos_monitoring.exporter.catalogue import Label as L

from .swarm_discovery import NETWORK_NAME, NODE_HOSTNAME, TASK_DESIRED_STATE, TASK_STATE, SwarmDiscovery, service_label

NODE_AGENT_JOB = "pharos-node-agent"
NODE_AGENT_LABEL = "pharos.node-agent"  # the deploy label of the agent service: "true"
DEFAULT_NODE_AGENT_PORT = 9841  # the exporter's own


def scrape_job(environment_name: str, swarm: SwarmDiscovery | None) -> dict | None:
    """The node agents' job of one environment; None when its swarm runs none (no `node_agent_port`)."""
    if swarm is None or swarm.node_agent_port == 0:
        return None
    return {
        "job_name": NODE_AGENT_JOB,
        "honor_labels": True,
        "dockerswarm_sd_configs": [
            {"host": swarm.docker_host, "role": "tasks", "port": swarm.node_agent_port, "refresh_interval": swarm.refresh_interval}
        ],
        "relabel_configs": [
            {"source_labels": [service_label(NODE_AGENT_LABEL)], "regex": "true", "action": "keep"},
            {"source_labels": [TASK_DESIRED_STATE, TASK_STATE], "regex": "running;running", "action": "keep"},
            {"source_labels": [NETWORK_NAME], "regex": swarm.network.replace(".", r"\."), "action": "keep"},
            {"source_labels": [NODE_HOSTNAME], "target_label": L.NODE},
            {"target_label": L.ENVIRONMENT, "replacement": environment_name},
            {"target_label": L.COMPONENT, "replacement": NODE_AGENT_JOB},
        ],
    }
