"""Alerts on the environments' monitoring, evaluated from outside it: vmalert on the global store.

Every environment's Prometheus writes what it has to the global store (VictoriaMetrics), its
`ALERTS` series included. What an environment cannot say about itself (its Prometheus pair is gone,
its Alertmanagers are gone, its data stops arriving) is said here, by rules that read the store:

- `PharosEnvironmentSilent` (critical): no `Watchdog` from the environment for the silence window.
  The Watchdog always fires, so its `ALERTS` series arrives with every rule evaluation of every
  replica: its absence means that the pair is down, cannot evaluate, or cannot write. This is the
  dead man's switch between swarms; the Watchdog itself reaches no person any more.
- `PharosPrometheusReplicaMissing` (warning): fewer replicas heard than the pair has. The build
  keeps the `replica` label on the Watchdog's `ALERTS` series only (pharos/config/fleet.py), so the
  store can count replicas while deduplicating everything else.
- `PharosAlertmanagerClusterDegraded` (warning), `PharosEnvironmentCannotNotify` (critical):
  fewer Alertmanagers up (or seeing fewer peers) than the environment has; none at all.
- `PharosRemoteWriteBehind`, `PharosRemoteWriteFailing` (warning): the prometheus mixin's remote
  write alerts, read from the store: data that arrives late still says how late it is.

The rules are written per environment (an absence cannot be aggregated over environments that
are all absent), with the environment's expected counts from the stack file as thresholds, and
tested with `promtool test rules` like the catalogue's (vmalert reads the same rule format).
"""

from __future__ import annotations

from dataclasses import dataclass

from pharos_monitoring.exporter.catalogue import Label as L

from . import promql as q
from .model import CRITICAL, INFO, WARNING, Alert, Case, Firing, Series, Threshold, counter, gauge
from .upstream import ALERTNAME, SEVERITY, UP

WATCHDOG_ALERT = "Watchdog"  # alerts.catalogue.WATCHDOG.name (not imported: the catalogue is heavy)
ALERTS_SERIES = "ALERTS"  # Prometheus' series of pending and firing alerts
ALERT_STATE = "alertstate"
REPLICA = L.REPLICA
CLUSTER_MEMBERS = "alertmanager_cluster_members"
REMOTE_HIGHEST_TIMESTAMP = "prometheus_remote_storage_highest_timestamp_in_seconds"
REMOTE_SENT_TIMESTAMP = "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"
REMOTE_FAILED = "prometheus_remote_storage_samples_failed_total"
REMOTE_SENT = "prometheus_remote_storage_samples_total"
REMOTE_LAG_SECONDS = 120  # the prometheus mixin's PrometheusRemoteWriteBehind
REMOTE_WINDOW = "5m"


@dataclass(frozen=True)
class Watched:
    """One environment as the global rules see it."""

    environment: str
    replicas: int  # Prometheus servers writing (1 without `ha:`)
    alertmanagers: int


def _watchdog(environment: str, *matchers: q.Matcher) -> q.Expr:
    return q.selector(ALERTS_SERIES, q.eq(ALERTNAME, WATCHDOG_ALERT), q.eq(L.ENVIRONMENT, environment), *matchers)


def _heartbeat(environment: str, replica: str | None, minutes: int, after: int = 0) -> Series:
    """The Watchdog's ALERTS series as it arrives in the store: present for `minutes`, then gone."""
    labels = {ALERTNAME: WATCHDOG_ALERT, ALERT_STATE: "firing", L.ENVIRONMENT: environment, SEVERITY: INFO}
    if replica is not None:
        labels[REPLICA] = replica
    values = f"1x{minutes}" + (f" _x{after}" if after else "")
    return Series(ALERTS_SERIES, labels, values)


TEST_SERIES_MINUTES = 60


def silent(watched: Watched, window: str) -> Alert:
    environment = watched.environment
    replicas = [str(n) for n in range(1, watched.replicas + 1)] if watched.replicas > 1 else [None]

    def cases(t):
        here = tuple(_heartbeat(environment, replica, TEST_SERIES_MINUTES) for replica in replicas)
        gone = tuple(_heartbeat(environment, replica, 3, TEST_SERIES_MINUTES - 3) for replica in replicas)
        other = tuple(_heartbeat("alpha" if environment != "alpha" else "beta", None, TEST_SERIES_MINUTES) for _ in (0,))
        one_left = (_heartbeat(environment, replicas[0], TEST_SERIES_MINUTES),) + gone[1:]
        return [
            Case("every replica's Watchdog stops arriving", gone + other, (Firing({L.ENVIRONMENT: environment}),)),
            Case("the Watchdog arrives", here),
            Case("one replica of the pair still writes", one_left) if len(replicas) > 1 else Case("another environment is heard", here + other),
        ]

    return Alert(
        name="PharosEnvironmentSilent",
        severity=CRITICAL,
        for_="2m",
        expr=lambda t: q.over_time("absent_over_time", _watchdog(environment), window),
        summary="The monitoring of {label.ENVIRONMENT} is silent",
        description=(
            "No Watchdog from {label.ENVIRONMENT} has reached the global store for " + window + " and more: its "
            "Prometheus servers are down, cannot evaluate rules, or cannot write to the store. Nothing "
            "in {label.ENVIRONMENT} can alert anyone until this is fixed."
        ),
        cases=cases,
    )


def replica_missing(watched: Watched, window: str) -> Alert:
    environment = watched.environment
    replicas = [str(n) for n in range(1, watched.replicas + 1)]

    def cases(t):
        full = tuple(_heartbeat(environment, replica, TEST_SERIES_MINUTES) for replica in replicas)
        one_gone = (_heartbeat(environment, replicas[0], 3, TEST_SERIES_MINUTES - 3),) + full[1:]
        return [
            Case("one replica stops writing", one_gone, (Firing({L.ENVIRONMENT: environment}, watched.replicas - 1),)),
            Case("every replica writes", full),
        ]

    return Alert(
        name="PharosPrometheusReplicaMissing",
        severity=WARNING,
        for_="5m",
        expr=lambda t: q.below(
            q.count_by([L.ENVIRONMENT], q.over_time("last_over_time", _watchdog(environment, q.ne(REPLICA, "")), window)),
            t["replicas"],
        ),
        summary="{label.ENVIRONMENT} has {value:count} of its {threshold.replicas:count} Prometheus replicas",
        description=(
            "Only {value:count} Prometheus replicas of {label.ENVIRONMENT} write to the global store: the others are "
            "down or cannot write. The survivors still alert, without a spare."
        ),
        cases=cases,
        thresholds={"replicas": Threshold(float(watched.replicas))},
    )


def _alertmanager_up(environment: str) -> q.Expr:
    return q.sum_by([L.ENVIRONMENT], q.selector(UP.name, q.eq(L.JOB, "alertmanager"), q.eq(L.ENVIRONMENT, environment)))


def _members(environment: str, count: int) -> list[dict[str, str]]:
    return [
        {L.JOB: "alertmanager", L.INSTANCE: f"alertmanager-{n}:9093", L.ENVIRONMENT: environment, L.COMPONENT: "alertmanager"}
        for n in range(1, count + 1)
    ]


def cluster_degraded(watched: Watched) -> Alert:
    environment = watched.environment
    members = _members(environment, watched.alertmanagers)

    def cases(t):
        n = watched.alertmanagers
        healthy = tuple(gauge(UP.name, labels, 1) for labels in members) + tuple(gauge(CLUSTER_MEMBERS, labels, n) for labels in members)
        one_down = (gauge(UP.name, members[0], 0),) + healthy[1:n] + tuple(gauge(CLUSTER_MEMBERS, labels, n - 1) for labels in members[1:])
        split = healthy[:n] + (gauge(CLUSTER_MEMBERS, members[0], 1),) + healthy[n + 1 :]
        return [
            Case("one Alertmanager is down", one_down, (Firing({L.ENVIRONMENT: environment}, n - 1),)),
            Case("one Alertmanager is cut off from its peers", split, (Firing({L.ENVIRONMENT: environment}, 1),)),
            Case("every member is up and sees all the others", healthy),
        ]

    return Alert(
        name="PharosAlertmanagerClusterDegraded",
        severity=WARNING,
        for_="5m",
        expr=lambda t: q.either(
            q.below(_alertmanager_up(environment), t["members"]),
            q.below(q.aggregate("min", q.selector(CLUSTER_MEMBERS, q.eq(L.ENVIRONMENT, environment)), by=[L.ENVIRONMENT]), t["members"]),
        ),
        summary="The Alertmanager cluster of {label.ENVIRONMENT} is degraded: {value:count} of {threshold.members:count}",
        description=(
            "Fewer Alertmanagers of {label.ENVIRONMENT} are up, or see their peers, than the cluster has: "
            "notifications still go out while one member is left, but a partitioned member may send duplicates "
            "and one more loss may leave none."
        ),
        cases=cases,
        thresholds={"members": Threshold(float(watched.alertmanagers))},
    )


def cannot_notify(watched: Watched) -> Alert:
    environment = watched.environment
    members = _members(environment, watched.alertmanagers)

    def cases(t):
        return [
            Case("every Alertmanager is down", tuple(gauge(UP.name, labels, 0) for labels in members), (Firing({L.ENVIRONMENT: environment}, 0),)),
            Case("one Alertmanager is up", (gauge(UP.name, members[0], 1),) + tuple(gauge(UP.name, labels, 0) for labels in members[1:])),
        ]

    return Alert(
        name="PharosEnvironmentCannotNotify",
        severity=CRITICAL,
        for_="2m",
        expr=lambda t: q.equals(_alertmanager_up(environment), 0),
        summary="No Alertmanager of {label.ENVIRONMENT} is up",
        description=(
            "Prometheus in {label.ENVIRONMENT} evaluates its alerts, but none of its Alertmanagers answers: "
            "nobody hears of them. This message comes from the global rules, through the fleet's Alertmanagers."
        ),
        cases=cases,
    )


_PROMETHEUS_TARGET = {L.JOB: "prometheus", L.INSTANCE: "prometheus-1:9090", L.ENVIRONMENT: "production", L.COMPONENT: "prometheus"}
_REMOTE = {**_PROMETHEUS_TARGET, "remote_name": "global-store", "url": "http://global-store:8428/api/v1/write"}


def _remote_behind_cases(t):
    now = Series(REMOTE_HIGHEST_TIMESTAMP, _PROMETHEUS_TARGET, f"0+60x{TEST_SERIES_MINUTES}")
    return [
        Case(
            "the queue sends ten minutes behind",
            (now, Series(REMOTE_SENT_TIMESTAMP, _REMOTE, f"-600+60x{TEST_SERIES_MINUTES}")),
            (Firing(_REMOTE, 600),),
        ),
        Case("the queue keeps up", (now, Series(REMOTE_SENT_TIMESTAMP, _REMOTE, f"0+60x{TEST_SERIES_MINUTES}"))),
    ]


REMOTE_WRITE_BEHIND = Alert(
    name="PharosRemoteWriteBehind",
    severity=WARNING,
    for_="15m",
    expr=lambda t: q.above(
        q.binary(
            q.over_time("max_over_time", q.selector(REMOTE_HIGHEST_TIMESTAMP), REMOTE_WINDOW),
            "-",
            q.over_time("max_over_time", q.selector(REMOTE_SENT_TIMESTAMP), REMOTE_WINDOW),
            "ignoring(remote_name, url) group_right",
        ),
        REMOTE_LAG_SECONDS,
    ),
    summary="Prometheus {label.INSTANCE} of {label.ENVIRONMENT} writes to the global store {value:seconds} late",
    description=(
        "Remote write of {label.INSTANCE} in {label.ENVIRONMENT} lags {value:seconds} behind what it scrapes: "
        "the global view and the global rules are that late. Prometheus keeps about two hours in its WAL; "
        "past that, the global store loses data."
    ),
    cases=_remote_behind_cases,
)


def _remote_failing_cases(t):
    return [
        Case(
            "one sample in ten fails",
            (counter(REMOTE_FAILED, _REMOTE, 10), counter(REMOTE_SENT, _REMOTE, 100)),
            (Firing(_REMOTE, 0.1),),
        ),
        Case("every sample is written", (counter(REMOTE_FAILED, _REMOTE, 0), counter(REMOTE_SENT, _REMOTE, 100))),
    ]


REMOTE_WRITE_FAILING = Alert(
    name="PharosRemoteWriteFailing",
    severity=WARNING,
    for_="15m",
    expr=lambda t: q.above(
        q.divide(q.rate(q.selector(REMOTE_FAILED), REMOTE_WINDOW), q.rate(q.selector(REMOTE_SENT), REMOTE_WINDOW)),
        t["ratio"],
    ),
    summary="Prometheus {label.INSTANCE} of {label.ENVIRONMENT} fails to write {value:percent} of its samples",
    description=(
        "{value:percent} of the samples {label.INSTANCE} in {label.ENVIRONMENT} sends to the global store fail "
        "(the store refuses them): they are lost for the global view and the global rules."
    ),
    cases=_remote_failing_cases,
    thresholds={"ratio": Threshold(0.01)},
)


def healthy(watched: Watched) -> tuple[Series, ...]:
    """What the store holds of an environment whose monitoring is whole: the background of another
    environment's test cases (each environment's rules see every environment's series)."""
    replicas = [str(n) for n in range(1, watched.replicas + 1)] if watched.replicas > 1 else [None]
    members = _members(watched.environment, watched.alertmanagers)
    return (
        tuple(_heartbeat(watched.environment, replica, TEST_SERIES_MINUTES) for replica in replicas)
        + tuple(gauge(UP.name, labels, 1) for labels in members)
        + tuple(gauge(CLUSTER_MEMBERS, labels, len(members)) for labels in members if len(members) > 1)
    )


def alerts(watched: Watched, window: str) -> tuple[Alert, ...]:
    """The per-environment global alerts for one watched environment."""
    rules = [silent(watched, window)]
    if watched.replicas > 1:
        rules.append(replica_missing(watched, window))
    if watched.alertmanagers > 1:
        rules.append(cluster_degraded(watched))
    rules.append(cannot_notify(watched))
    return tuple(rules)


FLEET_WIDE = (REMOTE_WRITE_BEHIND, REMOTE_WRITE_FAILING)  # once for all environments: their labels name it
