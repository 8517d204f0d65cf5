"""The alert catalogue: one definition per alert, each with the series that prove it.

Read an alert from top to bottom: what it watches (`expr`, built from `exporter.catalogue` names),
how bad it is (`severity`, `for`), its thresholds (a default and per-environment overrides), what a
human reads (`summary`, `description`, and the runbook section in `docs/runbooks.md`), and the cases
`promtool test rules` runs: series where it must fire and series where it must keep quiet.

Fleet scale: per-instance problems are `warning`s, grouped by Alertmanager into one notification
per service; pages (`critical`) are for service-wide symptoms. `INHIBITIONS` keep a down service
from also paging for everything that follows from it.
"""

from __future__ import annotations

from typing import Mapping

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L

from . import promql as q
from . import recording as r
from . import slo
from .model import CRITICAL, INFO, WARNING, Alert, Case, Firing, Inhibition, Series, Threshold, counter, gauge
from .self_monitoring import SELF_MONITORING_ALERTS
from .upstream import ALERTMANAGER_NOTIFICATIONS, ALERTMANAGER_NOTIFICATIONS_FAILED, BUCKET_BOUND, FAILURE_REASON, INTEGRATION, UP

# --- labels of the test series -----------------------------------------------------------------
# The environment label is what the scrape configs attach; its value does not matter to the rules.
_ENV = "production"


def _probed(service: str, n: int) -> dict[str, str]:
    """Labels of an instance scraped through the exporter's /probe (instance = the application)."""
    return {L.JOB: service, L.INSTANCE: f"{service}-{n}:8080", L.SERVICE: service, L.ENVIRONMENT: _ENV}


def _sidecar(service: str, n: int) -> dict[str, str]:
    """Labels of an instance scraped through its sidecar exporter (instance = the exporter)."""
    return {L.JOB: service, L.INSTANCE: f"{service}-{n}:9841", L.SERVICE: service, L.ENVIRONMENT: _ENV, L.TARGET: service}


def _service(service: str) -> dict[str, str]:
    return {L.ENVIRONMENT: _ENV, L.SERVICE: service}


def _scrape_errors(labels: Mapping[str, str], failing_reason: str | None) -> tuple:
    """The exporter's per-reason error gauges after one scrape: 1 for the reason it failed, if any."""
    return tuple(
        gauge(c.SCRAPE_ERROR.name, {**labels, L.REASON: reason}, 1 if reason == failing_reason else 0)
        for reason in c.SCRAPE_ERROR_REASONS
    )


def _unreachable() -> str:
    return q.one_of(r.UNREACHABLE_REASONS)


# --- instances and services --------------------------------------------------------------------
def _instance_down_cases(t):
    labels = _probed("orders", 1)
    return [
        Case("the instance times out", _scrape_errors(labels, "timeout"), (Firing(labels),)),
        Case("the instance answers, but not JSON: not down", _scrape_errors(labels, "not_json")),
    ]


INSTANCE_DOWN = Alert(
    name="PharosInstanceDown",
    severity=WARNING,
    for_="3m",
    expr=lambda t: q.equals(
        q.max_without((L.REASON,), q.selector(c.SCRAPE_ERROR.name, q.matches(L.REASON, _unreachable()))), 1
    ),
    summary="{label.INSTANCE} of {label.SERVICE} in {label.ENVIRONMENT} is down",
    description=(
        "The exporter cannot reach {label.INSTANCE} (connection refused, unreachable or timed out) "
        "for 3 minutes: {label.SERVICE} runs with one instance fewer."
    ),
    cases=_instance_down_cases,
)


def _instances_down_cases(t):
    def fleet(service: str, size: int, down: int, team: str = "") -> tuple:
        series = []
        for n in range(size):
            labels = {**_probed(service, n), **({L.TEAM: team} if team else {})}
            if n == 0 and down:
                series.append(gauge(UP.name, labels, 0))  # the exporter itself does not answer
                continue
            series.append(gauge(UP.name, labels, 1))
            series.append(gauge(c.SCRAPE_SUCCESS.name, labels, 0 if n < down else 1))
        return tuple(series)

    size, least = 10, int(t["min_instances"])
    needed = max(least, next(k for k in range(1, size + 1) if k / size >= t["ratio"]))
    small = least + 1  # a service where losing fewer than min_instances is already past the ratio
    return [
        Case(f"{needed} of {size} instances give no stats", fleet("orders", size, needed), (Firing(_service("orders"), needed / size),)),
        Case(f"{needed - 1} of {size} instances give no stats", fleet("orders", size, needed - 1)),
        Case(f"{least - 1} of {small} instances give no stats: fewer than min_instances", fleet("catalog", small, least - 1)),
        # The team label survives the recording rules, so that the page also reaches the team.
        Case(
            "the only instance of a team's service gives no stats: all of it is down",
            fleet("billing", 1, 1, team="payments"),
            (Firing({**_service("billing"), L.TEAM: "payments"}, 1),),
        ),
    ]


SERVICE_INSTANCES_DOWN = Alert(
    name="PharosServiceInstancesDown",
    severity=CRITICAL,
    for_="3m",
    # Both a share and a count: one lost instance of three is a third of the service, but no page;
    # a service that is entirely down pages whatever its size.
    expr=lambda t: q.both(
        q.at_least(r.SERVICE_UNAVAILABLE_RATIO.series(), t["ratio"]),
        q.group(
            q.either(
                q.at_least(r.SERVICE_UNAVAILABLE_COUNT.series(), t["min_instances"]),
                q.at_least(r.SERVICE_UNAVAILABLE_RATIO.series(), 1),
            )
        ),
    ),
    thresholds={"ratio": Threshold(0.25, alpha=0.5, beta=0.5), "min_instances": Threshold(2)},
    summary="{value:percent} of {label.SERVICE} in {label.ENVIRONMENT} is down",
    description=(
        "{value:percent} of the instances of {label.SERVICE} (threshold {threshold.ratio:percent}, and at least "
        "{threshold.min_instances:count} instances or all of them) give no usable stats for 3 minutes: "
        "they are down, or the exporter cannot read them."
    ),
    cases=_instances_down_cases,
)


def _exporter_down_cases(t):
    labels = _sidecar("orders", 1)
    foreign = {L.JOB: "node-exporter", L.INSTANCE: "host-1:9100", L.ENVIRONMENT: _ENV}
    without_target = {key: value for key, value in labels.items() if key != L.TARGET}
    return [
        Case("the sidecar exporter does not answer", (gauge(UP.name, without_target, 0),), (Firing(without_target),)),
        Case("a job that is not an application is down", (gauge(UP.name, without_target, 1), gauge(UP.name, foreign, 0))),
    ]


EXPORTER_DOWN = Alert(
    name="PharosExporterDown",
    severity=WARNING,
    for_="5m",
    expr=lambda t: q.equals(q.selector(UP.name, r.APPLICATION_TARGETS), 0),
    summary="Prometheus cannot scrape the exporter for {label.INSTANCE} of {label.SERVICE}",
    description=(
        "Prometheus' scrapes of job {label.JOB}, {label.INSTANCE} in {label.ENVIRONMENT} fail for 5 minutes: "
        "the exporter is down, unreachable or slower than the scrape timeout. Nothing is known about the instance."
    ),
    cases=_exporter_down_cases,
)


def _scrape_failing_cases(t):
    labels = _sidecar("orders", 1)
    return [
        Case(
            "the stats do not match the profile",
            _scrape_errors(labels, "invalid_document"),
            (Firing({**labels, L.REASON: "invalid_document"}),),
        ),
        Case("the instance is down: not a scrape problem", _scrape_errors(labels, "connection_refused")),
    ]


SCRAPE_FAILING = Alert(
    name="PharosScrapeFailing",
    severity=WARNING,
    for_="10m",
    expr=lambda t: q.equals(q.selector(c.SCRAPE_ERROR.name, q.not_matches(L.REASON, _unreachable())), 1),
    summary="The exporter cannot read the stats of {label.INSTANCE} of {label.SERVICE}: {label.REASON}",
    description=(
        "{label.INSTANCE} answers, but its stats are unusable for 10 minutes (reason {label.REASON}): "
        "wrong profile, credentials, TLS, or a changed stats format. The exporter's log names the details."
    ),
    cases=_scrape_failing_cases,
)


# --- HTTP --------------------------------------------------------------------------------------
def _requests(labels, method, route, status, per_minute) -> tuple:
    row = {**labels, L.METHOD: method, L.ROUTE: route, L.STATUS: status}
    return (counter(c.HTTP_REQUEST_DURATION.count, row, per_minute),)


def _error_rate_cases(t):
    labels = _sidecar("orders", 1)
    busy = max(1.0, 2 * t["min_request_rate"]) * 60  # requests per minute, well above the traffic floor
    quiet = t["min_request_rate"] / 2 * 60

    def traffic(per_minute, error_ratio):
        return _requests(labels, "GET", "/orders/{id}", "200", per_minute * (1 - error_ratio)) + _requests(
            labels, "POST", "/orders", "503", per_minute * error_ratio
        )

    high = min(1.0, 2 * t["ratio"])
    return [
        Case("many 5xx under traffic", traffic(busy, high), (Firing(_service("orders"), high),)),
        Case("few 5xx under traffic", traffic(busy, t["ratio"] / 2)),
        Case("many 5xx, but hardly any traffic", traffic(quiet, high)),
        Case(
            "many 5xx of a service with an availability objective: its burn rates page",
            traffic(busy, high) + (slo.objective_gauge(_ENV, "orders", slo.AVAILABILITY, 0.999),),
        ),
    ]


HIGH_ERROR_RATE = Alert(
    name="PharosHighErrorRate",
    severity=CRITICAL,
    for_="5m",
    # A service with an availability objective pages on its error budget (PharosErrorBudgetBurn) instead.
    expr=lambda t: slo.without_objective(
        q.both(
            q.above(r.HTTP_ERROR_RATIO.series(), t["ratio"]),
            q.above(r.HTTP_REQUESTS_RATE.series(), t["min_request_rate"]),
        ),
        slo.AVAILABILITY,
    ),
    thresholds={
        "ratio": Threshold(0.05, alpha=0.25, beta=0.1),
        "min_request_rate": Threshold(0.5, alpha=0.1, beta=0.1),  # requests/s below which ratios mean little
    },
    summary="{value:percent} of the HTTP requests to {label.SERVICE} in {label.ENVIRONMENT} fail",
    description=(
        "{value:percent} of the responses of {label.SERVICE} over 5 minutes are 5xx "
        "(threshold {threshold.ratio:percent}), for 5 minutes."
    ),
    cases=_error_rate_cases,
)


def _latency_cases(t):
    labels = _sidecar("orders", 1)
    limit = t["seconds"]
    bounds = (limit / 4, limit / 2, 2 * limit, 4 * limit)
    per_minute = max(1.0, 2 * t["min_request_rate"]) * 60

    def histogram(slowest_bucket: int) -> tuple:
        """Every request in bucket `slowest_bucket` (between bounds[i-1] and bounds[i])."""
        row = {**labels, L.METHOD: "GET", L.ROUTE: "/orders/{id}", L.STATUS: "200"}
        series = [
            counter(c.HTTP_REQUEST_DURATION.bucket, {**row, BUCKET_BOUND: format(bound, "g")}, per_minute if i >= slowest_bucket else 0)
            for i, bound in enumerate(bounds)
        ]
        series.append(counter(c.HTTP_REQUEST_DURATION.bucket, {**row, BUCKET_BOUND: "+Inf"}, per_minute))
        series.append(counter(c.HTTP_REQUEST_DURATION.count, row, per_minute))
        return tuple(series)

    # histogram_quantile interpolates linearly within the bucket that holds the quantile.
    slow_p99 = bounds[2] + (bounds[3] - bounds[2]) * 0.99
    return [
        Case("every request takes 2-4 times the limit", histogram(3), (Firing(_service("orders"), slow_p99),)),
        Case("every request takes a quarter to half the limit", histogram(1)),
        Case(
            "slow requests of a service with a latency objective: its burn rates page",
            histogram(3) + (slo.objective_gauge(_ENV, "orders", slo.LATENCY, 0.99),),
        ),
    ]


HIGH_LATENCY = Alert(
    name="PharosHighLatency",
    severity=CRITICAL,
    for_="10m",
    # A service with a latency objective pages on its error budget (PharosErrorBudgetBurn) instead.
    expr=lambda t: slo.without_objective(
        q.both(
            q.above(r.HTTP_LATENCY_P99.series(), t["seconds"]),
            q.above(r.HTTP_REQUESTS_RATE.series(), t["min_request_rate"]),
        ),
        slo.LATENCY,
    ),
    thresholds={
        "seconds": Threshold(1.0, alpha=3.0, beta=2.0),
        "min_request_rate": Threshold(0.5, alpha=0.1, beta=0.1),
    },
    summary="{label.SERVICE} in {label.ENVIRONMENT} is slow: p99 {value:seconds}",
    description=(
        "The 99th percentile of the HTTP request durations of {label.SERVICE} is {value:seconds} "
        "(threshold {threshold.seconds:seconds}) for 10 minutes."
    ),
    cases=_latency_cases,
)


# --- runtime -----------------------------------------------------------------------------------
def _gc_seconds(labels, major_per_minute, minor_per_minute) -> tuple:
    return (
        counter(c.GC_DURATION.name, {**labels, L.GC_KIND: c.GC_KIND_MAJOR}, major_per_minute),
        counter(c.GC_DURATION.name, {**labels, L.GC_KIND: c.GC_KIND_MINOR}, minor_per_minute),
    )


def _gc_time_cases(t):
    labels = _sidecar("orders", 1)
    high = min(0.9, 2 * t["fraction"])
    # A third of the GC time in full collections, the rest in scavenges; seconds of GC per minute.
    return [
        Case("GC takes twice the threshold", _gc_seconds(labels, 20 * high, 40 * high), (Firing(labels, high),)),
        Case("GC takes half the threshold", _gc_seconds(labels, 10 * t["fraction"], 20 * t["fraction"])),
    ]


GC_TIME_HIGH = Alert(
    name="PharosGCTimeHigh",
    severity=WARNING,
    for_="15m",
    expr=lambda t: q.above(r.GC_TIME_RATIO.series(), t["fraction"]),
    thresholds={"fraction": Threshold(0.1, alpha=0.25, beta=0.2)},
    summary="{label.INSTANCE} of {label.SERVICE} spends {value:percent} of its time in GC",
    description=(
        "{label.INSTANCE} of {label.SERVICE} in {label.ENVIRONMENT} spends {value:percent} of wall-clock time "
        "collecting garbage (threshold {threshold.fraction:percent}) for 15 minutes."
    ),
    cases=_gc_time_cases,
)


def _full_gc_cases(t):
    labels = _sidecar("orders", 1)

    def collections(major_per_minute):
        return (
            counter(c.GC_COLLECTIONS.name, {**labels, L.GC_KIND: c.GC_KIND_MAJOR}, major_per_minute),
            counter(c.GC_COLLECTIONS.name, {**labels, L.GC_KIND: c.GC_KIND_MINOR}, 600),
        )

    storm = 2 * t["per_minute"]
    return [
        Case("full GCs at twice the threshold", collections(storm), (Firing(labels, storm),)),
        Case("many scavenges, few full GCs", collections(t["per_minute"] / 2)),
    ]


FULL_GC_STORM = Alert(
    name="PharosFullGCStorm",
    severity=WARNING,
    for_="10m",
    expr=lambda t: q.above(
        q.binary(
            q.sum_without((L.GC_KIND,), q.rate(q.selector(c.GC_COLLECTIONS.name, q.eq(L.GC_KIND, c.GC_KIND_MAJOR)), r.WINDOW)),
            "*",
            60,
        ),
        t["per_minute"],
    ),
    thresholds={"per_minute": Threshold(2.0, alpha=6.0)},
    summary="Full-GC storm on {label.INSTANCE} of {label.SERVICE}: {value:number} per minute",
    description=(
        "{label.INSTANCE} of {label.SERVICE} in {label.ENVIRONMENT} runs {value:number} full garbage "
        "collections a minute (threshold {threshold.per_minute:number}) for 10 minutes: the old space is "
        "nearly full of live objects, or something forces collections."
    ),
    cases=_full_gc_cases,
)

_GIB = 1024**3


def _memory_cases(t):
    labels = _sidecar("orders", 1)
    old = {**labels, L.SPACE: "old"}
    young = {**labels, L.SPACE: "young"}
    near = (1 + t["ratio"]) / 2
    used = round(near * _GIB)

    def spaces(size, free=None):
        series = [
            gauge(c.MEMORY_SPACE.name, old, size),
            gauge(c.MEMORY_LIMIT.name, old, _GIB),
            gauge(c.MEMORY_SPACE.name, young, 16 * 1024**2),  # no limit: never alerts
        ]
        if free is not None:
            series.append(gauge(c.MEMORY_FREE.name, old, free))
        return tuple(series)

    return [
        Case("old space used close to its limit", spaces(used + 1024**2, 1024**2), (Firing(old, used / _GIB),)),
        Case("a runtime that reports no free bytes", spaces(used), (Firing(old, used / _GIB),)),
        Case("old space grown to its limit, but mostly free", spaces(_GIB, _GIB // 2)),
    ]


MEMORY_NEAR_LIMIT = Alert(
    name="PharosMemoryNearLimit",
    severity=WARNING,
    for_="10m",
    expr=lambda t: q.above(r.MEMORY_USED_RATIO.series(), t["ratio"]),
    thresholds={"ratio": Threshold(0.9, alpha=0.95)},
    summary="{label.SPACE} space of {label.INSTANCE} of {label.SERVICE} is {value:percent} full",
    description=(
        "{label.INSTANCE} of {label.SERVICE} in {label.ENVIRONMENT} uses {value:percent} of the limit of its "
        "{label.SPACE} space (threshold {threshold.ratio:percent}) for 10 minutes: it will soon fail to allocate."
    ),
    cases=_memory_cases,
)


def _health_cases(t):
    labels = _sidecar("orders", 1)

    def health(healthy, **checks):
        series = [gauge(c.APP_HEALTHY.name, labels, healthy)]
        series += [gauge(c.APP_HEALTH_CHECK.name, {**labels, L.CHECK: name}, passed) for name, passed in checks.items()]
        return tuple(series)

    return [
        Case("the database check fails", health(0, database=0, queue=1), (Firing({**labels, L.CHECK: "database"}),)),
        Case("unhealthy, without named checks", health(0), (Firing(labels),)),
        Case("every check passes", health(1, database=1, queue=1)),
    ]


HEALTH_CHECK_FAILING = Alert(
    name="PharosHealthCheckFailing",
    severity=WARNING,
    for_="5m",
    # A failing named check is reported by itself; the overall flag only when no named check explains it.
    expr=lambda t: q.either(
        q.equals(q.selector(c.APP_HEALTH_CHECK.name), 0),
        q.group(
            q.unless(
                q.equals(q.selector(c.APP_HEALTHY.name), 0),
                q.equals(q.selector(c.APP_HEALTH_CHECK.name), 0),
                ignoring=(L.CHECK,),
            )
        ),
    ),
    summary="{label.INSTANCE} of {label.SERVICE} reports itself unhealthy",
    description=(
        "{label.INSTANCE} of {label.SERVICE} in {label.ENVIRONMENT} fails its own health check for 5 minutes "
        "(the check label, when present, names which one)."
    ),
    cases=_health_cases,
)


# --- the alerting pipeline itself --------------------------------------------------------------
WATCHDOG = Alert(
    name="Watchdog",
    severity=INFO,
    for_="0s",
    expr=lambda t: q.vector(1),
    summary="Alerting works: this alert always fires",
    description=(
        "Always firing, so that its absence at the receiving end proves a break between Prometheus, "
        "Alertmanager and the receivers. Route it to a dead man's switch; never silence it."
    ),
    cases=lambda t: [Case("no input at all", (), (Firing({}, 1),))],
)


def _delivery_cases(t):
    labels = {L.JOB: "alertmanager", L.INSTANCE: "alertmanager:9093", L.ENVIRONMENT: _ENV}
    failing = min(1.0, 2 * t["ratio"])

    def notifications(integration, per_minute, failed_per_minute):
        row = {**labels, INTEGRATION: integration}
        return (
            counter(ALERTMANAGER_NOTIFICATIONS.name, row, per_minute),
            counter(ALERTMANAGER_NOTIFICATIONS_FAILED.name, row, failed_per_minute),
        )

    return [
        Case(
            "Slack refuses, mail delivers",
            notifications("slack", 10, 10 * failing) + notifications("email", 10, 0),
            (Firing({**labels, INTEGRATION: "slack"}, failing),),
        ),
        Case("a rare failure", notifications("slack", 10, 10 * t["ratio"] / 2)),
    ]


NOTIFICATIONS_FAILING = Alert(
    name="AlertmanagerNotificationsFailing",
    severity=CRITICAL,
    for_="5m",
    expr=lambda t: q.above(
        q.divide(
            q.sum_without((FAILURE_REASON,), q.rate(q.selector(ALERTMANAGER_NOTIFICATIONS_FAILED.name), r.WINDOW)),
            q.sum_without((FAILURE_REASON,), q.rate(q.selector(ALERTMANAGER_NOTIFICATIONS.name), r.WINDOW)),
        ),
        t["ratio"],
    ),
    thresholds={"ratio": Threshold(0.01)},
    summary="Alertmanager {label.INSTANCE} fails to deliver {value:percent} of its {label.INTEGRATION} notifications",
    description=(
        "{value:percent} of the {label.INTEGRATION} notifications of {label.INSTANCE} in {label.ENVIRONMENT} "
        "fail (threshold {threshold.ratio:percent}) for 5 minutes: alerts may not reach anyone through it."
    ),
    cases=_delivery_cases,
)

# The catalogue, in the order the rule file lists it.
ALERTS = (
    SERVICE_INSTANCES_DOWN,
    INSTANCE_DOWN,
    EXPORTER_DOWN,
    SCRAPE_FAILING,
    HIGH_ERROR_RATE,
    HIGH_LATENCY,
    GC_TIME_HIGH,
    FULL_GC_STORM,
    MEMORY_NEAR_LIMIT,
    HEALTH_CHECK_FAILING,
    NOTIFICATIONS_FAILING,
    *SELF_MONITORING_ALERTS,  # Prometheus, Alertmanager and their scrape jobs (alerts/self_monitoring.py)
    WATCHDOG,
)

# Alerts that fire by design whatever the data: they have no case where they must keep quiet.
ALWAYS_FIRING = (WATCHDOG,)

_INSTANCE_SYMPTOMS = (SCRAPE_FAILING, GC_TIME_HIGH, FULL_GC_STORM, MEMORY_NEAR_LIMIT, HEALTH_CHECK_FAILING)

INHIBITIONS = (
    Inhibition(
        sources=(SERVICE_INSTANCES_DOWN,),
        targets=(INSTANCE_DOWN, EXPORTER_DOWN, HIGH_ERROR_RATE, HIGH_LATENCY) + slo.SLO_ALERTS + _INSTANCE_SYMPTOMS,
        equal=(L.ENVIRONMENT, L.SERVICE),
        why="a service that is down pages once, not again for each instance, its errors and its latency",
    ),
    Inhibition(
        sources=(INSTANCE_DOWN, EXPORTER_DOWN),
        targets=_INSTANCE_SYMPTOMS,
        equal=(L.ENVIRONMENT, L.SERVICE, L.INSTANCE),
        why="an instance that cannot be seen has no trustworthy GC, memory or health readings",
    ),
)


# --- Docker Swarm (the exporter's swarm collector, exporter/swarm.py) ------------------------
# The swarm metrics come from the exporters' own /metrics (the state on a manager, each node's task
# containers from its node agent): the series carry the scrape job's target labels, and `service` /
# `node` from the collector.
def _swarm_collector(**labels: str) -> dict[str, str]:
    return {L.JOB: "pharos-exporter", L.INSTANCE: "manager-1:9841", L.ENVIRONMENT: _ENV, **labels}


def _service_degraded_cases(t):
    labels = _swarm_collector(**{L.SERVICE: "shop_orders"})

    def replicas(running: int, desired: int) -> tuple:
        return (gauge(c.SWARM_SERVICE_RUNNING.name, labels, running), gauge(c.SWARM_SERVICE_DESIRED.name, labels, desired))

    return [
        Case("one of three tasks runs", replicas(1, 3), (Firing(labels, 1),)),
        Case("every task runs", replicas(3, 3)),
        Case("scaled to zero", replicas(0, 0)),
    ]


SWARM_SERVICE_DEGRADED = Alert(
    name="SwarmServiceDegraded",
    severity=WARNING,
    for_="5m",
    expr=lambda t: q.binary(q.selector(c.SWARM_SERVICE_RUNNING.name), "<", q.selector(c.SWARM_SERVICE_DESIRED.name)),
    summary="Swarm service {label.SERVICE} in {label.ENVIRONMENT} runs fewer tasks than desired",
    description=(
        "Only {value:number} tasks of swarm service {label.SERVICE} run, fewer than it should, for 5 minutes: "
        "its tasks fail, cannot be placed (constraints, resources, a missing image) or lost their node."
    ),
    cases=_service_degraded_cases,
)


def _node_down_cases(t):
    def node(name: str, state: str, availability: str = "active") -> tuple:
        series = [
            gauge(c.SWARM_NODE_STATE.name, _swarm_collector(**{L.NODE: name, L.STATE: value}), 1 if value == state else 0)
            for value in c.SWARM_NODE_STATES
        ]
        series += [
            gauge(c.SWARM_NODE_AVAILABILITY.name, _swarm_collector(**{L.NODE: name, L.AVAILABILITY: value}), 1 if value == availability else 0)
            for value in c.SWARM_NODE_AVAILABILITIES
        ]
        return tuple(series)

    down = _swarm_collector(**{L.NODE: "worker-2", L.STATE: "down"})
    return [
        Case("a worker is down", node("worker-1", c.SWARM_NODE_READY) + node("worker-2", "down"), (Firing(down, 1),)),
        Case("every node is ready", node("worker-1", c.SWARM_NODE_READY) + node("worker-2", c.SWARM_NODE_READY)),
        Case("a drained node is switched off for maintenance", node("worker-2", "down", "drain")),
    ]


SWARM_NODE_DOWN = Alert(
    name="SwarmNodeDown",
    severity=WARNING,
    for_="3m",
    # A drained node was emptied on purpose: it going down is maintenance, not an incident.
    expr=lambda t: q.unless(
        q.equals(q.selector(c.SWARM_NODE_STATE.name, q.ne(L.STATE, c.SWARM_NODE_READY)), 1),
        q.equals(q.selector(c.SWARM_NODE_AVAILABILITY.name, q.eq(L.AVAILABILITY, "drain")), 1),
        ignoring=(L.STATE, L.AVAILABILITY),
    ),
    summary="Swarm node {label.NODE} in {label.ENVIRONMENT} is {label.STATE}",
    description=(
        "The swarm managers see node {label.NODE} as {label.STATE} for 3 minutes: its tasks are being moved to "
        "other nodes, which may lack the capacity for them."
    ),
    cases=_node_down_cases,
)


def _restart_loop_cases(t):
    labels = _swarm_collector(**{L.SERVICE: "shop_orders", L.NODE: "worker-1"})
    service = _swarm_collector(**{L.SERVICE: "shop_orders"})
    looping = 4 * t["per_minute"]
    return [
        Case("a task fails and is replaced over and over", (counter(c.SWARM_TASK_FAILURES.name, labels, looping),), (Firing(service, looping),)),
        Case("a failure now and then", (counter(c.SWARM_TASK_FAILURES.name, labels, t["per_minute"] / 4),)),
    ]


SWARM_TASK_RESTART_LOOP = Alert(
    name="SwarmTaskRestartLoop",
    severity=WARNING,
    for_="5m",
    expr=lambda t: q.above(
        q.binary(q.sum_without((L.NODE,), q.rate(q.selector(c.SWARM_TASK_FAILURES.name), r.WINDOW)), "*", 60),
        t["per_minute"],
    ),
    thresholds={"per_minute": Threshold(0.5)},
    summary="Tasks of swarm service {label.SERVICE} keep failing: {value:number} per minute",
    description=(
        "Tasks of {label.SERVICE} in {label.ENVIRONMENT} end failed or rejected {value:number} times a minute "
        "(threshold {threshold.per_minute:number}) for 5 minutes: the swarm restarts them in a loop."
    ),
    cases=_restart_loop_cases,
)



def _oom_killed_cases(t):
    labels = _swarm_collector(**{L.SERVICE: "shop_orders", L.NODE: "worker-1"})

    def killed_at(minute: int) -> tuple:
        """One kill at sample `minute` (a sample a minute; the rule is checked at minute 10, `for` 0s)."""
        return (Series(c.SWARM_CONTAINER_OOM_KILLS.name, labels, f"0x{minute - 1} 1x50"),)

    return [
        Case("a container is OOM-killed three minutes before", killed_at(7), (Firing(labels),)),
        Case("an OOM kill eight minutes before, none since", killed_at(2)),
        Case("no container OOM-killed", (counter(c.SWARM_CONTAINER_OOM_KILLS.name, labels, 0),)),
        # The exporter counts the OOM-killed containers the engine still lists when it starts.
        Case("kills from before the exporter started", (gauge(c.SWARM_CONTAINER_OOM_KILLS.name, labels, 2),)),
    ]


SWARM_CONTAINER_OOM_KILLED = Alert(
    name="SwarmContainerOOMKilled",
    severity=WARNING,
    # An OOM kill is an event: it fires at once and resolves one rate window after the last one.
    for_="0s",
    expr=lambda t: q.above(q.over_time("increase", q.selector(c.SWARM_CONTAINER_OOM_KILLS.name), r.WINDOW), 0),
    summary="A container of swarm service {label.SERVICE} was OOM-killed on {label.NODE}",
    description=(
        "The kernel's OOM killer ended a task container of {label.SERVICE} on {label.NODE} in {label.ENVIRONMENT} "
        "within the last 5 minutes: the task used all the memory its limit (or the node) allows, and the swarm "
        "replaces it, losing whatever it was doing."
    ),
    cases=_oom_killed_cases,
)

SWARM_ALERTS = (SWARM_SERVICE_DEGRADED, SWARM_NODE_DOWN, SWARM_TASK_RESTART_LOOP, SWARM_CONTAINER_OOM_KILLED)
ALERTS = ALERTS + SWARM_ALERTS

# Error-budget burn rates of the services with objectives (alerts/slo.py; the stack file declares them).
ALERTS = ALERTS + slo.SLO_ALERTS


# --- Pharo operations: processes and handle tables (issue 12) ---------------------------------
def _handle_table_cases(t):
    labels = _sidecar("orders", 1)
    table = {**labels, L.TABLE: c.HANDLE_TABLE_EXTERNAL_SEMAPHORES}
    limit = 1000
    near = round((1 + t["ratio"]) / 2 * limit)

    def slots(used, free):
        return (
            gauge(c.HANDLE_TABLE_SLOTS.name, {**table, L.STATE: c.HANDLE_SLOT_USED}, used),
            gauge(c.HANDLE_TABLE_SLOTS.name, {**table, L.STATE: c.HANDLE_SLOT_FREE}, free),
            gauge(c.HANDLE_TABLE_LIMIT.name, table, limit),
        )

    return [
        Case("the external semaphore table is nearly full", slots(near, 10), (Firing(table, near / limit),)),
        # Used plus free is the table's current size; it grows up to the limit: no free slot now is no alarm.
        Case("a small table with no free slot yet, far from its limit", slots(40, 0)),
    ]


HANDLE_TABLE_NEARLY_FULL = Alert(
    name="PharosHandleTableNearlyFull",
    severity=WARNING,
    for_="10m",
    expr=lambda t: q.above(
        q.divide(
            q.sum_without((L.STATE,), q.selector(c.HANDLE_TABLE_SLOTS.name, q.eq(L.STATE, c.HANDLE_SLOT_USED))),
            q.selector(c.HANDLE_TABLE_LIMIT.name),
        ),
        t["ratio"],
    ),
    thresholds={"ratio": Threshold(0.8, alpha=0.9, beta=0.9)},
    summary="{label.TABLE} table of {label.INSTANCE} of {label.SERVICE} is {value:percent} full",
    description=(
        "{label.INSTANCE} of {label.SERVICE} in {label.ENVIRONMENT} uses {value:percent} of the slots of its "
        "{label.TABLE} table (threshold {threshold.ratio:percent}) for 10 minutes: once it is full, opening "
        "sockets and files fails."
    ),
    cases=_handle_table_cases,
)

_PROCESSES_TOTAL = q.sum_without((L.STATE, L.PRIORITY), q.selector(c.PROCESSES.name))


def _processes_growing_cases(t):
    labels = _sidecar("orders", 1)
    steady = gauge(c.PROCESSES.name, {**labels, L.STATE: "blocked", L.PRIORITY: "40"}, 14)
    leaking = {**labels, L.STATE: "blocked", L.PRIORITY: "30"}
    per_minute = 2 * t["per_hour"] / 60
    return [
        Case("a forked process is left behind every few seconds", (steady, counter(c.PROCESSES.name, leaking, per_minute)),
             (Firing(labels, 60 * per_minute),)),
        # One burst of processes, then flat: a step, not a trend.
        Case("a burst of processes once", (steady, Series(c.PROCESSES.name, leaking, f"40x29 {40 + 4 * t['per_hour']:g}x30"))),
        Case("many processes, but not more and more", (gauge(c.PROCESSES.name, leaking, 5000),)),
    ]


# Trends over fixed spans (subqueries): what they measure is "over the last hour", not a rate
# over the rate window, so tuning the rate window (pharos up --fast) leaves them as they are.
TREND_RANGES = ("1h:1m", "15m:1m")

PROCESSES_GROWING = Alert(
    name="PharosProcessesGrowing",
    severity=WARNING,
    for_="30m",
    # A trend over the last hour that is still going on (the slope over 15 minutes), not a level:
    # images differ too much in how many processes they keep for one threshold to fit them all.
    expr=lambda t: q.both(
        q.above(q.binary(q.over_time("deriv", _PROCESSES_TOTAL, TREND_RANGES[0]), "*", 3600), t["per_hour"]),
        q.above(q.over_time("deriv", _PROCESSES_TOTAL, TREND_RANGES[1]), 0),
    ),
    thresholds={"per_hour": Threshold(30, alpha=60, beta=60)},
    summary="Processes of {label.INSTANCE} of {label.SERVICE} grow by {value:number} an hour",
    description=(
        "The processes of {label.INSTANCE} of {label.SERVICE} in {label.ENVIRONMENT} have grown steadily by "
        "{value:number} an hour (threshold {threshold.per_hour:number}) for 30 minutes: something forks "
        "processes that never end, or keeps terminated ones referenced."
    ),
    cases=_processes_growing_cases,
)

PHARO_OPERATIONS_ALERTS = (HANDLE_TABLE_NEARLY_FULL, PROCESSES_GROWING)
ALERTS = ALERTS + PHARO_OPERATIONS_ALERTS


# --- Machines: node_exporter's host metrics (the `node` job; issue 14) ----------------------------
# The series of node_exporter carry the `node` job's target labels: `node` (the machine's name,
# the swarm node's hostname when discovered) and `environment`.
from . import upstream as u  # noqa: E402 - this block's own names, kept beside it
from .model import TEST_SAMPLES  # noqa: E402
def _node_exporter(**labels: str) -> dict[str, str]:
    node = labels.pop(L.NODE, "host-1")
    return {L.JOB: u.NODE_JOB, L.INSTANCE: f"{node}:9100", L.NODE: node, L.ENVIRONMENT: _ENV, **labels}


_DISK = 2**37  # 128 GiB: powers of two keep every ratio of the test series exact
_MINUTE_OF_WRITES = 2**26  # 64 MiB a minute: a 32 GiB free space is gone in about 8.5 hours


def _filesystem_filling_cases(t):
    root = _node_exporter(**{u.NODE_DEVICE: "/dev/vda1", u.NODE_FSTYPE: "ext4", u.NODE_MOUNTPOINT: "/"})
    assert _DISK // 4 / _MINUTE_OF_WRITES / 60 < t["hours"], "the filling case must empty the disk within the alert's horizon"
    assert 0.25 < t["free_ratio"] < 7 / 8, "a quarter free must be below the level, seven eighths above it"

    def filesystem(labels, free_at_start: int, written_per_minute: int) -> tuple:
        values = f"{free_at_start}-{written_per_minute}x{TEST_SAMPLES}" if written_per_minute else f"{free_at_start}x{TEST_SAMPLES}"
        return (Series(u.NODE_FILESYSTEM_AVAIL.name, labels, values), gauge(u.NODE_FILESYSTEM_SIZE.name, labels, _DISK))

    quarter, low = _DISK // 4, int(_DISK * t["free_ratio"])
    tmpfs = {**root, u.NODE_DEVICE: "tmpfs", u.NODE_FSTYPE: "tmpfs", u.NODE_MOUNTPOINT: "/run"}
    return [
        Case("a quarter free and 64 MiB written a minute", filesystem(root, quarter, _MINUTE_OF_WRITES), (Firing(root),)),
        Case("little free, but no longer filling", filesystem(root, low // 2, 0)),
        Case("filling fast, but most of it free", filesystem(root, _DISK - _DISK // 8, _MINUTE_OF_WRITES)),
        Case("a tmpfs filling up is memory, not disk", filesystem(tmpfs, quarter, _MINUTE_OF_WRITES)),
    ]


_DISKS = (q.not_matches(u.NODE_FSTYPE, q.one_of(u.NODE_VIRTUAL_FSTYPES)),)
# The span whose trend predicts a disk's free space: long enough that a burst of writes is not a trend.
FILL_TREND_RANGE = "6h"
TREND_RANGES = TREND_RANGES + (FILL_TREND_RANGE,)

NODE_FILESYSTEM_FILLING_UP = Alert(
    name="NodeFilesystemFillingUp",
    severity=WARNING,
    for_="30m",
    # A trend and a level: a disk that is mostly free may fill fast for a while (a backup, a
    # download) without being a problem, and a nearly full disk that stays so is not an emergency.
    expr=lambda t: q.both(
        q.below(
            q.divide(q.selector(u.NODE_FILESYSTEM_AVAIL.name, *_DISKS), q.selector(u.NODE_FILESYSTEM_SIZE.name, *_DISKS)),
            t["free_ratio"],
        ),
        q.below(q.predict_linear(q.selector(u.NODE_FILESYSTEM_AVAIL.name, *_DISKS), FILL_TREND_RANGE, int(t["hours"] * 3600)), 0),
    ),
    thresholds={"free_ratio": Threshold(0.3, production=0.4), "hours": Threshold(24, production=48)},
    summary="Disk {label.MOUNTPOINT} of {label.NODE} in {label.ENVIRONMENT} is full within {threshold.hours:count} hours",
    description=(
        "{label.MOUNTPOINT} ({label.DEVICE}) of {label.NODE} has less than {threshold.free_ratio:percent} free and, "
        "at the rate it filled over the last 6 hours, is full within {threshold.hours:count} hours (for 30 minutes)."
    ),
    cases=_filesystem_filling_cases,
)


def _memory_pressure_cases(t):
    labels = _node_exporter()
    total = 2**34  # 16 GiB
    short = total // 32  # 3.125 % available

    def memory(available: int) -> tuple:
        return (gauge(u.NODE_MEMORY_AVAILABLE.name, labels, available), gauge(u.NODE_MEMORY_TOTAL.name, labels, total))

    assert short / total < t["ratio"] < 0.5
    return [
        Case("3 % of the memory available", memory(short), (Firing(labels, short / total),)),
        Case("half of the memory available", memory(total // 2)),
    ]


NODE_MEMORY_PRESSURE = Alert(
    name="NodeMemoryPressure",
    severity=WARNING,
    for_="15m",
    expr=lambda t: q.below(q.divide(q.selector(u.NODE_MEMORY_AVAILABLE.name), q.selector(u.NODE_MEMORY_TOTAL.name)), t["ratio"]),
    thresholds={"ratio": Threshold(0.05, production=0.1)},
    summary="{label.NODE} in {label.ENVIRONMENT} has {value:percent} of its memory available",
    description=(
        "Only {value:percent} of the memory of {label.NODE} is available without swapping (threshold "
        "{threshold.ratio:percent}) for 15 minutes: the kernel is about to reclaim hard, swap or kill processes "
        "(the OOM killer), and tasks placed on it may not fit."
    ),
    cases=_memory_pressure_cases,
)


def _node_exporter_down_cases(t):
    host_1, host_2 = _node_exporter(), _node_exporter(**{L.NODE: "host-2"})
    application = {L.JOB: "orders", L.INSTANCE: "orders-1:9841", L.ENVIRONMENT: _ENV, L.SERVICE: "orders"}
    return [
        Case("node_exporter on host-2 does not answer", (gauge(UP.name, host_1, 1), gauge(UP.name, host_2, 0)), (Firing(host_2),)),
        Case("every node_exporter answers", (gauge(UP.name, host_1, 1), gauge(UP.name, host_2, 1))),
        Case("an application target is down: another alert's", (gauge(UP.name, host_1, 1), gauge(UP.name, application, 0))),
    ]


NODE_EXPORTER_DOWN = Alert(
    name="NodeExporterDown",
    severity=WARNING,
    for_="5m",
    # Without it the two alerts above are silent for that machine: no series, no alert.
    expr=lambda t: q.equals(q.selector(UP.name, q.eq(L.JOB, u.NODE_JOB)), 0),
    summary="node_exporter on {label.NODE} in {label.ENVIRONMENT} is down",
    description=(
        "Prometheus cannot scrape node_exporter at {label.INSTANCE} (node {label.NODE}) for 5 minutes: the "
        "machine's disk and memory alerts are blind for it. The exporter is down or unreachable, or the machine is."
    ),
    cases=_node_exporter_down_cases,
)

NODE_ALERTS = (NODE_FILESYSTEM_FILLING_UP, NODE_MEMORY_PRESSURE, NODE_EXPORTER_DOWN)
ALERTS = ALERTS + NODE_ALERTS


# --- Services that vanish (issue 13) ------------------------------------------------------------
# A service whose every target left service discovery has no `up` series at all: no other alert of
# it can fire. Remembered for `VANISHED_RANGE` after its last target went (a fixed span).
VANISHED_RANGE = "1h"
TREND_RANGES = TREND_RANGES + (VANISHED_RANGE,)
_APPLICATION_UP = q.selector(UP.name, r.APPLICATION_TARGETS)


def _vanished_cases(t):
    gone = "1x5 stale"  # scraped for five minutes, then out of discovery

    def targets(service: str, *values: str | float) -> tuple:
        return tuple(
            Series(UP.name, _probed(service, n), value) if isinstance(value, str) else gauge(UP.name, _probed(service, n), value)
            for n, value in enumerate(values, start=1)
        )

    return [
        Case("every target of a service leaves discovery", targets("orders", gone, gone), (Firing(_service("orders"), 0),)),
        Case("one of two targets leaves discovery", targets("orders", gone, 1)),
        Case("every target down, but still discovered", targets("orders", 0, 0)),
    ]


SERVICE_VANISHED = Alert(
    name="PharosServiceVanished",
    severity=CRITICAL,
    for_="5m",
    # Targets now, or 0 for a service that had some within VANISHED_RANGE: 0 is vanished.
    expr=lambda t: q.equals(
        q.either(
            q.count_by(r.SERVICE_LEVEL, _APPLICATION_UP),
            q.binary(q.aggregate("group", q.over_time("max_over_time", _APPLICATION_UP, VANISHED_RANGE), by=r.SERVICE_LEVEL), "*", 0),
        ),
        0,
    ),
    summary="{label.SERVICE} in {label.ENVIRONMENT} has no scrape target left",
    description=(
        "Prometheus scraped {label.SERVICE} in {label.ENVIRONMENT} within the last hour, but for 5 minutes no "
        "target of it is left: its discovery lists none (every swarm task gone, a file_sd list emptied, the "
        "service removed from the stack). Nothing is known about it, and none of its other alerts can fire."
    ),
    cases=_vanished_cases,
)

ALERTS = ALERTS + (SERVICE_VANISHED,)


def declared_targets(declared: r.ExpectedInstances, count: int) -> tuple[Series, ...]:
    """`up` of `count` targets of a service that declares `expected_instances`."""
    return tuple(
        gauge(UP.name, {L.JOB: declared.service, L.INSTANCE: f"{declared.service}-{n}:8080", **declared.labels}, 1) for n in range(1, count + 1)
    )


def declared_count_cases(declared: r.ExpectedInstances) -> list[Case]:
    """Cases for one service whose stack file declares `expected_instances`: fewer targets (one
    fewer, none at all) fire, as many stay quiet. The declared count is not among the series:
    the catalogue's cases add it, `pharos build`'s tests load the rule file it wrote (alerts/expected_instances.py)."""
    fewer = sorted({declared.count - 1, 0}, reverse=True)
    return [
        *(
            Case(
                f"{count} of the {declared.count} declared instances of {declared.service} are targets",
                declared_targets(declared, count),
                (Firing(declared.labels, count),),
            )
            for count in fewer
        ),
        Case(f"all {declared.count} declared instances of {declared.service} are targets", declared_targets(declared, declared.count)),
    ]


def _targets_missing_cases(t):
    desired = gauge(c.SWARM_SERVICE_DESIRED.name, _swarm_collector(**{L.SERVICE: "shop_orders"}), 3)
    declared = r.ExpectedInstances(_ENV, "billing", 3, team="payments")
    record = gauge(r.EXPECTED_INSTANCES_RECORD, declared.labels, declared.count)

    def targets(count: int, service: str = "shop_orders") -> tuple:
        return tuple(gauge(UP.name, _probed(service, n), 1) for n in range(1, count + 1))

    return [
        Case("two targets of a swarm service that should run three tasks", (desired,) + targets(2), (Firing(_service("shop_orders"), 2),)),
        Case("as many targets as desired tasks", (desired,) + targets(3)),
        Case("a swarm service that is not scraped", (desired,)),
        *(Case(case.title, (record,) + case.series, case.firing) for case in declared_count_cases(declared)),
        # The stack file knows the service better than the swarm: its count wins where both are.
        Case(
            "a declared count of two wins over three desired tasks",
            (desired, gauge(r.EXPECTED_INSTANCES_RECORD, _service("shop_orders"), 2)) + targets(2),
        ),
    ]


# Expected: the count the stack file declares (`expected_instances`, a recorded constant), or else
# the tasks the swarm should run (the exporter's swarm collector).
_EXPECTED = q.max_by(
    (L.ENVIRONMENT, L.SERVICE),
    q.binary(r.expected_instances(), "or", q.selector(c.SWARM_SERVICE_DESIRED.name), f"on ({L.ENVIRONMENT}, {L.SERVICE})"),
)

SERVICE_TARGETS_MISSING = Alert(
    name="PharosServiceTargetsMissing",
    severity=WARNING,
    for_="10m",
    # Targets now, or 0 for a declared service without any: a declared service is meant to be
    # scraped, so none at all is missing too (PharosServiceVanished pages as well if it had some
    # within the hour). A swarm service without targets may just not be opted in: not counted.
    expr=lambda t: q.binary(
        q.binary(
            q.count_by(r.SERVICE_LEVEL, _APPLICATION_UP),
            "or",
            q.binary(r.expected_instances(), "*", 0),
            f"on ({L.ENVIRONMENT}, {L.SERVICE})",
        ),
        "<",
        _EXPECTED,
        f"on ({L.ENVIRONMENT}, {L.SERVICE}) group_left ()",
    ),
    summary="Prometheus scrapes only {value:count} targets of {label.SERVICE} in {label.ENVIRONMENT}",
    description=(
        "Prometheus has {value:count} scrape targets for {label.SERVICE} in {label.ENVIRONMENT}, fewer than expected "
        "(the stack file's expected_instances, or else the tasks the swarm should run), for 10 minutes: instances "
        "do not run, or run without being discovered (a file_sd list short of entries; a task not on the "
        "monitoring network, not running yet, or without the pharos.scrape label)."
    ),
    cases=_targets_missing_cases,
)

ALERTS = ALERTS + (SERVICE_TARGETS_MISSING,)
