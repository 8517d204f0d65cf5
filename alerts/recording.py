"""Recording rules: the expressions that alerts and dashboards share and that are costly to evaluate.

Each record is named `level:metric:operations` (Prometheus' convention): `service:` series are
aggregated per environment and service, `instance:` series keep every scrape target. Dashboards
query these names (`RECORDINGS`, or the constants) instead of repeating the expressions.
"""

from __future__ import annotations

from dataclasses import dataclass

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L

from . import promql as q
from .upstream import BUCKET_BOUND, UP

WINDOW = "5m"  # every rate of the catalogue: four scrapes at least, even at a 1m interval

# `team` (set per service in the stack file, absent for most) is kept so that alerts on recorded
# series still reach the team's receiver; it never splits a service.
SERVICE_LEVEL = (L.ENVIRONMENT, L.SERVICE, L.TEAM)
INSTANCE_LEVEL = (L.ENVIRONMENT, L.SERVICE, L.TEAM, L.JOB, L.INSTANCE)

# Scrape failures that mean "the instance is not there" (rather than "it answers, but wrongly").
UNREACHABLE_REASONS = ("connection_refused", "connection_error", "timeout")
assert set(UNREACHABLE_REASONS) <= set(c.SCRAPE_ERROR_REASONS), "UNREACHABLE_REASONS must come from the catalogue"

# Our scrape configs give every application target a `service` label; Prometheus' and
# Alertmanager's own jobs have none.
APPLICATION_TARGETS = q.ne(L.SERVICE, "")


@dataclass(frozen=True)
class Recording:
    record: str
    expr: q.Expr
    help: str

    def series(self, *matchers: q.Matcher) -> q.Expr:
        return q.selector(self.record, *matchers)


INSTANCE_UNAVAILABLE = Recording(
    "instance:pharos_unavailable:bool",
    q.either(
        q.max_by(INSTANCE_LEVEL, q.equals(q.selector(c.SCRAPE_SUCCESS.name), 0, as_bool=True)),
        q.max_by(INSTANCE_LEVEL, q.equals(q.selector(UP.name, APPLICATION_TARGETS), 0, as_bool=True)),
    ),
    "1 when an instance gives no usable stats (the exporter cannot read it, or Prometheus cannot "
    "reach the exporter), 0 when it does.",
)
SERVICE_UNAVAILABLE_RATIO = Recording(
    "service:pharos_instances_unavailable:ratio",
    q.divide(
        q.aggregate("sum", INSTANCE_UNAVAILABLE.series(), by=SERVICE_LEVEL),
        q.count_by(SERVICE_LEVEL, INSTANCE_UNAVAILABLE.series()),
    ),
    "Fraction of a service's instances that give no usable stats.",
)
SERVICE_UNAVAILABLE_COUNT = Recording(
    "service:pharos_instances_unavailable:count",
    q.aggregate("sum", INSTANCE_UNAVAILABLE.series(), by=SERVICE_LEVEL),
    "Number of a service's instances that give no usable stats.",
)
HTTP_REQUESTS_RATE = Recording(
    "service:http_server_requests:rate5m",
    q.sum_by(SERVICE_LEVEL, q.rate(q.selector(c.HTTP_REQUEST_DURATION.count), WINDOW)),
    "HTTP requests per second served by a service.",
)
HTTP_ERRORS_RATE = Recording(
    "service:http_server_errors:rate5m",
    q.either(
        q.sum_by(SERVICE_LEVEL, q.rate(q.selector(c.HTTP_REQUEST_DURATION.count, q.matches(L.STATUS, "5..")), WINDOW)),
        # A service without any 5xx yet has no 5xx series: record 0, not nothing.
        q.binary(HTTP_REQUESTS_RATE.series(), "*", 0),
    ),
    "HTTP 5xx responses per second of a service.",
)
HTTP_ERROR_RATIO = Recording(
    "service:http_server_errors:ratio_rate5m",
    q.divide(HTTP_ERRORS_RATE.series(), HTTP_REQUESTS_RATE.series()),
    "Fraction of a service's HTTP responses that are 5xx.",
)


def _latency_quantile(quantile: float, name: str) -> Recording:
    buckets = q.sum_by(SERVICE_LEVEL + (BUCKET_BOUND,), q.rate(q.selector(c.HTTP_REQUEST_DURATION.bucket), WINDOW))
    return Recording(
        f"service:{c.HTTP_REQUEST_DURATION.name}:{name}_rate{WINDOW}",
        q.histogram_quantile(quantile, buckets),
        f"{name} HTTP request duration of a service in seconds, from the applications' buckets.",
    )


HTTP_LATENCY_P50 = _latency_quantile(0.5, "p50")
HTTP_LATENCY_P99 = _latency_quantile(0.99, "p99")
GC_TIME_RATIO = Recording(
    "instance:runtime_gc_time:ratio_rate5m",
    q.sum_without((L.GC_KIND,), q.rate(q.selector(c.GC_DURATION.name), WINDOW)),
    "Fraction of wall-clock time an instance spends in garbage collection, all kinds together.",
)
MEMORY_USED_RATIO = Recording(
    "instance:runtime_memory_used:ratio",
    q.divide(
        # Used = size - free where the runtime reports free bytes, the whole size where it does not.
        q.either(q.binary(q.selector(c.MEMORY_SPACE.name), "-", q.selector(c.MEMORY_FREE.name)), q.selector(c.MEMORY_SPACE.name)),
        q.selector(c.MEMORY_LIMIT.name),
    ),
    "Used fraction of each memory space that has a limit (spaces without one have no series).",
)

# --- instances a service should have, as the stack file declares them ---------------------------
# `expected_instances: N` of a service (pharos/config/stack_config.py) becomes one constant series
# per service, in its own rule file: the catalogue's PharosServiceTargetsMissing reads it, before
# the swarm's desired replicas, without knowing which services the stack declares.
EXPECTED_INSTANCES_RECORD = "service:pharos_instances_expected:count"


@dataclass(frozen=True)
class ExpectedInstances:
    environment: str
    service: str
    count: int
    team: str = ""  # the service's team label, so that its alert still reaches the team

    @property
    def labels(self) -> dict[str, str]:
        return {L.ENVIRONMENT: self.environment, L.SERVICE: self.service, **({L.TEAM: self.team} if self.team else {})}


def expected_instances(*matchers: q.Matcher) -> q.Expr:
    return q.selector(EXPECTED_INSTANCES_RECORD, *matchers)


def expected_instances_rules(declared: tuple[ExpectedInstances, ...]) -> dict:
    """The rule file of the declared counts: `vector(N)` with the service's labels, one per service."""
    rules = [
        {"record": EXPECTED_INSTANCES_RECORD, "expr": str(q.vector(each.count)), "labels": each.labels}
        for each in sorted(declared, key=lambda each: (each.environment, each.service))
    ]
    return {"groups": [{"name": "pharos.expected_instances", "rules": rules}]}


# Evaluation order matters: a record is computed from those above it within the same group.
RECORDINGS = (
    INSTANCE_UNAVAILABLE,
    SERVICE_UNAVAILABLE_RATIO,
    SERVICE_UNAVAILABLE_COUNT,
    HTTP_REQUESTS_RATE,
    HTTP_ERRORS_RATE,
    HTTP_ERROR_RATIO,
    HTTP_LATENCY_P50,
    HTTP_LATENCY_P99,
    GC_TIME_RATIO,
    MEMORY_USED_RATIO,
)
