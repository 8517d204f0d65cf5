"""High availability inside one environment: a Prometheus pair and an Alertmanager cluster.

In the stack file, inside one environment (opt-in; without it, one Prometheus and the listed
Alertmanagers without gossip, as before):

    alertmanagers: [alertmanager-1:9093, alertmanager-2:9093, alertmanager-3:9093]
    ha:
      prometheus: [prometheus-1:9090, prometheus-2:9090]       # the pair (or more), each replica's address
      alertmanager_cluster: [alertmanager-1:9094, alertmanager-2:9094, alertmanager-3:9094]
                          # each Alertmanager's gossip address, in the order of `alertmanagers`

or, where one DNS name stands for every replica or member (a Docker Swarm's `tasks.<service>`;
each key takes either form):

    alertmanagers: [tasks.alertmanager:9093]   # the one name of every member's web address
    ha:
      prometheus: {dns: tasks.prometheus:9090, replicas: 2}
      alertmanager_cluster: {dns: tasks.alertmanager:9094, members: 3}

What `pharos build` makes of it (docs/fleet.md has the picture and the failure table):
- one prometheus.yml for every replica, with the external label `replica: ${REPLICA}` (each
  replica runs with REPLICA set and `--enable-feature=expand-external-labels`, without which the
  label would silently be the text `${REPLICA}`), `alert_relabel_configs` dropping `replica` so
  that the replicas' alerts are identical and the cluster deduplicates them, every Alertmanager
  in `alerting`, and every replica in the `prometheus` job: each replica watches the others.
  A DNS name becomes `dns_sd_configs` (type A): every address it resolves to is a target, so every
  Prometheus sends to every member and scrapes every replica, however the tasks move;
- `ha.yml` beside it: the command-line flags each replica and each cluster member needs (the
  gossip flags are flags, not configuration), with the peer timeout this stack's grouping allows
  (from the member count). Alertmanager resolves a `--cluster.peer` name into all its addresses.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from pharos_monitoring.alerts.alertmanager import Timing
from pharos_monitoring.alerts.model import duration_seconds
from pharos_monitoring.exporter.catalogue import Label as L

HA_KEY = "ha"
FLAGS_FILE = "ha.yml"
REPLICA_LABEL = L.REPLICA
REPLICA_VARIABLE = "REPLICA"
EXPAND_EXTERNAL_LABELS = "--enable-feature=expand-external-labels"
ALERTMANAGER_PEER_TIMEOUT_DEFAULT_SECONDS = 15  # Alertmanager's own default


DNS_KEY = "dns"
REPLICAS_KEY = "replicas"
MEMBERS_KEY = "members"
SWARM_TASK_SLOT = "{{.Task.Slot}}"  # what Swarm puts in a replica's REPLICA: 1, 2, ...


@dataclass(frozen=True)
class HighAvailability:
    prometheus: tuple[str, ...]  # every replica's address; by DNS, the one name of them all
    alertmanager_cluster: tuple[str, ...]  # gossip addresses, in the order of the environment's alertmanagers; by DNS, one name
    peer_timeout_seconds: int
    # By DNS: how many replicas and members the names stand for (0: the static form, one address each).
    dns_replicas: int = 0
    dns_members: int = 0

    @property
    def replicas(self) -> int:
        return self.dns_replicas or len(self.prometheus)

    @property
    def members(self) -> int:
        return self.dns_members or len(self.alertmanager_cluster)


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


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _by_dns(reader, value: dict, path: str, count_key: str, what: str, address_check) -> tuple[str, int]:
    """`{dns: NAME:PORT, <count_key>: N}`: a name that resolves to every one of N processes."""
    data = reader.mapping(value, path, {DNS_KEY, count_key})
    name = reader.string(data, DNS_KEY, path, None, address_check)
    if _is_ip(name.rpartition(":")[0]):
        raise reader.fail(
            f"{path}.{DNS_KEY}",
            f"{name!r} is an IP address; give a name that resolves to every {what} (tasks.<service>:PORT in a swarm), "
            f"or list the addresses instead of `{DNS_KEY}:`",
        )
    count = data.get(count_key)
    if not isinstance(count, int) or isinstance(count, bool) or count < 2:
        raise reader.fail(f"{path}.{count_key}", f"give how many {what}s {name} stands for, a whole number of at least 2; got {count!r}")
    return name, count


def _addresses_or_dns(reader, data: dict, key: str, path: str, count_key: str, what: str, address_check) -> tuple[tuple[str, ...], int]:
    """Either form of `key`: (addresses, 0) or ((name,), count)."""
    value = data.get(key)
    if isinstance(value, dict):
        name, count = _by_dns(reader, value, f"{path}.{key}", count_key, what, address_check)
        return (name,), count
    if value is not None and not isinstance(value, list):
        raise reader.fail(
            f"{path}.{key}",
            f"expected a list of {what} addresses (HOST:PORT each) or {{{DNS_KEY}: NAME:PORT, {count_key}: N}}, got {type(value).__name__}",
        )
    return reader.strings(data, key, path, address_check), 0


def read(reader, value: Any, path: str, alertmanagers: tuple[str, ...], timing: Timing, address_check) -> HighAvailability:
    """The `ha:` section at `path`; `reader` is the stack file's reader (fail, mapping, strings)."""
    data = reader.mapping(value, path, {"prometheus", "alertmanager_cluster"})
    replicas, dns_replicas = _addresses_or_dns(reader, data, "prometheus", path, REPLICAS_KEY, "Prometheus replica", address_check)
    if len(replicas) < 2 and not dns_replicas:
        raise reader.fail(
            f"{path}.prometheus",
            f"list at least two Prometheus replicas (HOST:PORT each): one replica is no pair; or give one name for all of them: {{{DNS_KEY}: tasks.prometheus:9090, {REPLICAS_KEY}: 2}}",
        )
    cluster, dns_members = _addresses_or_dns(reader, data, "alertmanager_cluster", path, MEMBERS_KEY, "Alertmanager", address_check)
    alertmanagers_path = path.rpartition(".")[0] + ".alertmanagers"
    if dns_members:
        if len(alertmanagers) != 1 or _is_ip(alertmanagers[0].rpartition(":")[0]):
            raise reader.fail(
                alertmanagers_path,
                f"with alertmanager_cluster by DNS, list the one name that resolves to every member's web address, e.g. [tasks.alertmanager:9093]; got {list(alertmanagers)}",
            )
    elif len(cluster) != len(alertmanagers):
        raise reader.fail(
            f"{path}.alertmanager_cluster",
            f"give one gossip address (HOST:PORT) per Alertmanager, in the order of alertmanagers: {len(alertmanagers)} expected, got {len(cluster)}",
        )
    members = dns_members or len(cluster)
    if members < 2:
        raise reader.fail(f"{path}.alertmanager_cluster", "a cluster needs at least two Alertmanagers (three survive one loss with a majority)")
    if set(cluster) & set(alertmanagers):
        raise reader.fail(f"{path}.alertmanager_cluster", "a gossip address must differ from the Alertmanager's web address (another port)")
    timeout = peer_timeout_seconds(members, timing)
    if timeout < 1:
        raise reader.fail(
            f"{path}.alertmanager_cluster",
            f"intervals.group_interval {timing.group_interval} is too short for a cluster of {members}: "
            f"(peers - 1) x a peer timeout of at least 1s must stay below it; make it at least {members}s",
        )
    return HighAvailability(replicas, cluster, timeout, dns_replicas, dns_members)


# --- prometheus.yml ----------------------------------------------------------------------------
def external_labels(ha: HighAvailability | None) -> dict:
    return {} if ha is None else {REPLICA_LABEL: "${" + REPLICA_VARIABLE + "}"}


def alert_relabel_configs(ha: HighAvailability | None) -> list[dict]:
    """Without `replica`, the replicas send identical alerts: one notification per group."""
    return [] if ha is None else [{"action": "labeldrop", "regex": REPLICA_LABEL}]


def discovery(addresses: tuple[str, ...], by_dns: bool) -> dict:
    """How Prometheus finds `addresses`: as listed, or each name's every A record (a swarm's
    `tasks.<service>` resolves to one address per running task), grouped by port."""
    if not by_dns:
        return {"static_configs": [{"targets": list(addresses)}]}
    ports: dict[int, list[str]] = {}
    for address in addresses:
        host, _, port = address.rpartition(":")
        ports.setdefault(int(port), []).append(host)
    return {"dns_sd_configs": [{"names": names, "type": "A", "port": port} for port, names in ports.items()]}


def prometheus_targets(ha: HighAvailability | None, prometheus: str) -> dict:
    """Every replica of a pair; without one, the environment's Prometheus itself."""
    return discovery((prometheus,), False) if ha is None else discovery(ha.prometheus, ha.dns_replicas > 0)


def alertmanager_targets(ha: HighAvailability | None, alertmanagers: tuple[str, ...]) -> dict:
    return discovery(alertmanagers, ha is not None and ha.dns_members > 0)


# --- ha.yml: the flags ---------------------------------------------------------------------------
def _listen(address: str) -> str:
    """Where a process listens to be reached at `address`: that IP, or every interface for a name."""
    host, _, port = address.rpartition(":")
    return address if _is_ip(host) else f"0.0.0.0:{port}"


def flags(ha: HighAvailability, alertmanagers: tuple[str, ...]) -> dict:
    """What every process of the HA shape is started with, besides its config file and data dir.
    By DNS, one entry stands for all the replicas (or members) behind the name: they share flags."""
    if ha.dns_replicas:
        replicas = [_replica(ha.prometheus[0], SWARM_TASK_SLOT) | {REPLICAS_KEY: ha.dns_replicas}]
    else:
        replicas = [_replica(address, str(number)) for number, address in enumerate(ha.prometheus, start=1)]
    members = []
    for web, gossip in zip(alertmanagers, ha.alertmanager_cluster):
        # A name resolves to every member (itself included, which Alertmanager skips).
        peers = [f"--cluster.peer={other}" for other in ha.alertmanager_cluster if other != gossip or ha.dns_members]
        member = {
            "address": web,
            "cluster_address": gossip,
            "flags": [
                f"--web.listen-address={_listen(web)}",
                f"--cluster.listen-address={_listen(gossip)}",
                *peers,
                f"--cluster.peer-timeout={ha.peer_timeout_seconds}s",
            ],
        }
        members.append(member | ({MEMBERS_KEY: ha.dns_members} if ha.dns_members else {}))
    return {"prometheus": replicas, "alertmanager": members}


def _replica(address: str, replica: str) -> dict:
    return {
        "address": address,
        "environment": {REPLICA_VARIABLE: replica},  # 1, 2: what Swarm's {{.Task.Slot}} gives
        "flags": [EXPAND_EXTERNAL_LABELS, f"--web.listen-address={_listen(address)}"],
    }
