"""High availability inside one environment: a Prometheus pair and an Alertmanager cluster.

In the stack file, inside one environment (opt-in; without it, one Prometheus and the listed
Alertmanagers without gossip, as before):

    alertmanagers: [alertmanager-1:9093, alertmanager-2:9093, alertmanager-3:9093]
    ha:
      prometheus: [prometheus-1:9090, prometheus-2:9090]       # the pair (or more), each replica's address
      alertmanager_cluster: [alertmanager-1:9094, alertmanager-2:9094, alertmanager-3:9094]
                          # each Alertmanager's gossip address, in the order of `alertmanagers`

What `pharos build` makes of it (docs/fleet.md has the picture and the failure table):
- one prometheus.yml for every replica, with the external label `replica: ${REPLICA}` (each
  replica runs with REPLICA set and `--enable-feature=expand-external-labels`, without which the
  label would silently be the text `${REPLICA}`), `alert_relabel_configs` dropping `replica` so
  that the replicas' alerts are identical and the cluster deduplicates them, every Alertmanager
  in `alerting`, and every replica in the `prometheus` job: each replica watches the others;
- `ha.yml` beside it: the command-line flags each replica and each cluster member needs (the
  gossip flags are flags, not configuration), with the peer timeout this stack's grouping allows.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from pharos_monitoring.alerts.alertmanager import Timing
from pharos_monitoring.alerts.model import duration_seconds

HA_KEY = "ha"
FLAGS_FILE = "ha.yml"
REPLICA_LABEL = "replica"
REPLICA_VARIABLE = "REPLICA"
EXPAND_EXTERNAL_LABELS = "--enable-feature=expand-external-labels"
ALERTMANAGER_PEER_TIMEOUT_DEFAULT_SECONDS = 15  # Alertmanager's own default


@dataclass(frozen=True)
class HighAvailability:
    prometheus: tuple[str, ...]  # every replica's address
    alertmanager_cluster: tuple[str, ...]  # gossip addresses, in the order of the environment's alertmanagers
    peer_timeout_seconds: int


def peer_timeout_seconds(peers: int, timing: Timing) -> int:
    """The longest whole `--cluster.peer-timeout` (at most Alertmanager's 15 s) that keeps the last
    peer's wait, (peers - 1) x timeout, below the shortest group_interval of the routes.

    Peer k of a cluster waits k x peer-timeout before sending what peer 0 should have sent. When
    that wait outlasts a group_interval, a late peer sends its stale "firing" after the first
    peer's "resolved", then a second "resolved" (measured here: 5 of 6 resolves with the default
    15 s and a 5 s group_interval; 0 of 6 with 2 s). 0 when no whole second fits."""
    shortest = min(duration_seconds(timing.group_interval), duration_seconds(timing.watchdog_repeat_interval))
    fits = -(-shortest // (peers - 1)) - 1  # the largest whole t with (peers - 1) * t < shortest
    return int(min(ALERTMANAGER_PEER_TIMEOUT_DEFAULT_SECONDS, fits))


def read(reader, value: Any, path: str, alertmanagers: tuple[str, ...], timing: Timing, address_check) -> HighAvailability:
    """The `ha:` section at `path`; `reader` is the stack file's reader (fail, mapping, strings)."""
    data = reader.mapping(value, path, {"prometheus", "alertmanager_cluster"})
    replicas = reader.strings(data, "prometheus", path, address_check)
    if len(replicas) < 2:
        raise reader.fail(f"{path}.prometheus", "list at least two Prometheus replicas (HOST:PORT each): one replica is no pair")
    cluster = reader.strings(data, "alertmanager_cluster", path, address_check)
    if len(cluster) != len(alertmanagers):
        raise reader.fail(
            f"{path}.alertmanager_cluster",
            f"give one gossip address (HOST:PORT) per Alertmanager, in the order of alertmanagers: {len(alertmanagers)} expected, got {len(cluster)}",
        )
    if len(cluster) < 2:
        raise reader.fail(f"{path}.alertmanager_cluster", "a cluster needs at least two Alertmanagers (three survive one loss with a majority)")
    if set(cluster) & set(alertmanagers):
        raise reader.fail(f"{path}.alertmanager_cluster", "a gossip address must differ from the Alertmanager's web address (another port)")
    timeout = peer_timeout_seconds(len(cluster), timing)
    if timeout < 1:
        raise reader.fail(
            f"{path}.alertmanager_cluster",
            f"intervals.group_interval {timing.group_interval} is too short for a cluster of {len(cluster)}: "
            f"(peers - 1) x a peer timeout of at least 1s must stay below it; make it at least {len(cluster)}s",
        )
    return HighAvailability(replicas, cluster, timeout)


# --- prometheus.yml ----------------------------------------------------------------------------
def external_labels(ha: HighAvailability | None) -> dict:
    return {} if ha is None else {REPLICA_LABEL: "${" + REPLICA_VARIABLE + "}"}


def alert_relabel_configs(ha: HighAvailability | None) -> list[dict]:
    """Without `replica`, the replicas send identical alerts: one notification per group."""
    return [] if ha is None else [{"action": "labeldrop", "regex": REPLICA_LABEL}]


# --- ha.yml: the flags ---------------------------------------------------------------------------
def _listen(address: str) -> str:
    """Where a process listens to be reached at `address`: that IP, or every interface for a name."""
    host, _, port = address.rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return f"0.0.0.0:{port}"
    return address


def flags(ha: HighAvailability, alertmanagers: tuple[str, ...]) -> dict:
    """What every process of the HA shape is started with, besides its config file and data dir."""
    replicas = [
        {
            "address": address,
            "environment": {REPLICA_VARIABLE: str(number)},  # 1, 2: what Swarm's {{.Task.Slot}} gives
            "flags": [EXPAND_EXTERNAL_LABELS, f"--web.listen-address={_listen(address)}"],
        }
        for number, address in enumerate(ha.prometheus, start=1)
    ]
    members = []
    for web, gossip in zip(alertmanagers, ha.alertmanager_cluster):
        peers = [f"--cluster.peer={other}" for other in ha.alertmanager_cluster if other != gossip]
        members.append(
            {
                "address": web,
                "cluster_address": gossip,
                "flags": [
                    f"--web.listen-address={_listen(web)}",
                    f"--cluster.listen-address={_listen(gossip)}",
                    *peers,
                    f"--cluster.peer-timeout={ha.peer_timeout_seconds}s",
                ],
            }
        )
    return {"prometheus": replicas, "alertmanager": members}
