"""Service detail: what is wrong with this service, and on which instance?

For one environment and service, per instance: whether its stats are readable and it calls itself
healthy, the error budget left of its objectives, HTTP traffic by route, method and status (rate, 5xx, latency), garbage collection by kind
(rate, time, tenures), memory by space against its limit, the runtime's processes by state and
its handle tables, and the process' CPU and memory.
"""

from __future__ import annotations

from pharos_monitoring.alerts import catalogue as alerts
from pharos_monitoring.alerts import promql as q
from pharos_monitoring.alerts import recording as r
from pharos_monitoring.alerts import slo
from pharos_monitoring.alerts.upstream import BUCKET_BOUND, UP
from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L

from . import house as h

UID = h.SERVICE_DETAIL_UID
TITLE = "Pharos / Service detail"
SCOPE = (L.ENVIRONMENT, L.SERVICE, L.INSTANCE)
ROUTE = (L.METHOD, L.ROUTE)
INSTANCE_LEGEND = h.legend_for(L.INSTANCE)
ROUTE_LEGEND = h.legend_for(L.METHOD, L.ROUTE)

ERROR_RATIO = h.AlertThreshold(alerts.HIGH_ERROR_RATE, "ratio")
LATENCY = h.AlertThreshold(alerts.HIGH_LATENCY, "seconds")
GC_TIME = h.AlertThreshold(alerts.GC_TIME_HIGH, "fraction")
FULL_GCS = h.AlertThreshold(alerts.FULL_GC_STORM, "per_minute")
MEMORY = h.AlertThreshold(alerts.MEMORY_NEAR_LIMIT, "ratio")
HANDLE_TABLE = h.AlertThreshold(alerts.HANDLE_TABLE_NEARLY_FULL, "ratio")
READABLE = ((1, "readable", h.GREEN), (0, "no stats", h.RED))
SIDECAR_ONLY = (
    "Only instances whose exporter runs beside them and is told their process (`process:` in its configuration) "
    "have these; an exporter reading stats over the network (/probe) cannot see the process."
)
HEALTHY = ((1, "healthy", h.GREEN), (0, "failing", h.RED))


def _rate(name: str, *extra: q.Matcher) -> q.Expr:
    return q.rate(h.scoped(name, *SCOPE, extra=extra), h.RATE_WINDOW)


def _requests_by(labels) -> q.Expr:
    return q.sum_by(labels, _rate(c.HTTP_REQUEST_DURATION.count))


def _errors_by(labels) -> q.Expr:
    # Routes without any 5xx have no 5xx series: count them as 0, not as missing.
    return q.either(q.sum_by(labels, _rate(c.HTTP_REQUEST_DURATION.count, h.SERVER_ERRORS)), q.binary(_requests_by(labels), "*", 0))


def _latency_by(quantile: float, labels) -> q.Expr:
    return q.histogram_quantile(quantile, q.sum_by(tuple(labels) + (BUCKET_BOUND,), _rate(c.HTTP_REQUEST_DURATION.bucket)))


def _mean_latency_by(labels) -> q.Expr:
    # The exact mean, from _sum / _count: unlike the quantiles it does not depend on the buckets.
    return q.divide(q.sum_by(labels, _rate(c.HTTP_REQUEST_DURATION.sum)), q.sum_by(labels, _rate(c.HTTP_REQUEST_DURATION.count)))


def _gauge(metric: c.Metric, labels=(L.INSTANCE,)) -> q.Expr:
    return q.max_by(labels, h.scoped(metric.name, *SCOPE))


def _budget_left(kind: str) -> q.Expr:
    """Share of the objective's error budget over its period still left (below 0: overspent)."""
    kind_only = q.eq(slo.SLO, kind)
    budget = q.binary(1, "-", h.scoped(slo.OBJECTIVE_RECORD, L.ENVIRONMENT, L.SERVICE, extra=(kind_only,)))
    spent = q.binary(
        h.scoped(slo.PERIOD_RECORD, L.ENVIRONMENT, L.SERVICE, extra=(kind_only,)), "/", budget, f"on ({', '.join(slo.OBJECTIVE_LEVEL)}) group_left ()"
    )
    return q.binary(1, "-", spent)


def build(fleet: bool = False):
    layout = h.Layout()
    on_screen = h.scoped(UP.name, *SCOPE)  # every instance selected, whatever state it is in

    layout.section("Instances")
    layout.add(
        h.state_timeline(
            "Stats readable",
            "Readable: the exporter read the instance's stats. No stats: the instance or its exporter cannot be read.",
            [h.target(q.max_by((L.INSTANCE,), q.binary(1, "-", h.scoped(r.INSTANCE_UNAVAILABLE.record, *SCOPE))), INSTANCE_LEGEND)],
            READABLE,
        ),
        12,
        6,
    )
    layout.add(
        h.state_timeline(
            "Application health",
            "The application's own verdict on itself (its health endpoint or the health in its stats).",
            [h.target(_gauge(c.APP_HEALTHY), INSTANCE_LEGEND)],
            HEALTHY,
        ),
        12,
        6,
    )
    layout.add(h.stat("Uptime", "Time since the runtime started.", [h.target(_gauge(c.UPTIME), INSTANCE_LEGEND)], h.SECONDS), 12, 4)
    layout.add(
        h.state_timeline(
            "Health checks",
            "Each named check the application reports, per instance.",
            [h.target(_gauge(c.APP_HEALTH_CHECK, (L.INSTANCE, L.CHECK)), h.legend_for(L.INSTANCE, L.CHECK))],
            HEALTHY,
        ),
        12,
        4,
    )

    layout.section("Objectives")
    layout.add(
        h.stat(
            "Error budget left",
            f"Share of the error budget of each objective (stack file) left over the last {slo.PERIOD}: 100 % = no error, "
            "0 = the objective is just met, below 0 = missed. Empty for a service without objectives.",
            [h.target(_budget_left(kind), kind, ref=ref) for kind, ref in zip(slo.KINDS, "AB")],
            h.RATIO,
            thresholds=h.steps((None, h.RED), (0, h.ORANGE), (0.25, h.GREEN)),
            graph=True,
            no_value="no objective declared for this service (objectives: in the stack file)",
        ),
        24,
        4,
    )

    layout.section("HTTP")
    layout.add(
        h.timeseries("Requests by route", "Requests per second by method and route.", [h.target(_requests_by(ROUTE), ROUTE_LEGEND)], h.REQUESTS_PER_SECOND),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Responses by status",
            "Responses per second by status code.",
            [h.target(_requests_by((L.STATUS,)), h.legend_for(L.STATUS))],
            h.REQUESTS_PER_SECOND,
            stacked=True,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries("Requests by instance", "Requests per second served by each instance.", [h.target(_requests_by((L.INSTANCE,)), INSTANCE_LEGEND)], h.REQUESTS_PER_SECOND),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "5xx ratio by route",
            "Share of each route's responses that are 5xx.",
            [h.target(q.divide(_errors_by(ROUTE), _requests_by(ROUTE)), ROUTE_LEGEND)],
            h.RATIO,
            threshold=(ERROR_RATIO, on_screen),
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "p99 latency by route",
            "99th percentile of request durations by route, from the application's buckets.",
            [h.target(_latency_by(0.99, ROUTE), ROUTE_LEGEND)],
            h.SECONDS,
            threshold=(LATENCY, on_screen),
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Latency: mean, p50, p90, p99",
            "Request durations of the selected instances, all routes together: the mean (exact, from the sum and count of "
            "durations) beside the 50th, 90th and 99th percentiles (estimated from the application's buckets).",
            [
                h.target(_latency_by(0.99, ()), "p99"),
                h.target(_latency_by(0.9, ()), "p90", ref="B"),
                h.target(_latency_by(0.5, ()), "p50", ref="C"),
                h.target(_mean_latency_by(()), "mean", ref="D"),
            ],
            h.SECONDS,
            threshold=(LATENCY, on_screen),
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries("Requests in flight", "HTTP requests being served, per instance.", [h.target(_gauge(c.HTTP_ACTIVE_REQUESTS), INSTANCE_LEGEND)], h.COUNT),
        8,
        8,
    )
    layout.add(
        h.table(
            "Routes",
            "Every route of the selected instances, busiest first.",
            ROUTE,
            (
                h.Column("Requests/s", _requests_by(ROUTE), h.REQUESTS_PER_SECOND),
                h.Column("5xx", q.divide(_errors_by(ROUTE), _requests_by(ROUTE)), h.RATIO, ERROR_RATIO.color_steps()),
                h.Column("Mean latency", _mean_latency_by(ROUTE), h.SECONDS),
                h.Column("p50", _latency_by(0.5, ROUTE), h.SECONDS),
                h.Column("p90", _latency_by(0.9, ROUTE), h.SECONDS),
                h.Column("p99", _latency_by(0.99, ROUTE), h.SECONDS, LATENCY.color_steps()),
                h.Column("Sent/s", q.sum_by(ROUTE, _rate(c.HTTP_RESPONSE_SIZE.sum)), h.BYTES_PER_SECOND),
            ),
            sort_by="Requests/s",
        ),
        24,
        7,
    )

    layout.section("Garbage collection")
    layout.add(
        h.timeseries(
            "Collections per minute",
            "Garbage collections per minute by kind (minor: young generation, major: whole heap); the red line is the full-GC (major) alert threshold.",
            [h.target(q.binary(q.sum_by((L.INSTANCE, L.GC_KIND), _rate(c.GC_COLLECTIONS.name)), "*", 60), h.legend_for(L.INSTANCE, L.GC_KIND))],
            h.PER_MINUTE,
            threshold=(FULL_GCS, on_screen),
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Time in GC",
            "Share of wall-clock time spent collecting garbage, in total and by kind, all over the same rate window "
            "(the alert compares the total over 5 minutes).",
            [
                h.target(q.sum_by((L.INSTANCE,), _rate(c.GC_DURATION.name)), INSTANCE_LEGEND + " total"),
                h.target(q.sum_by((L.INSTANCE, L.GC_KIND), _rate(c.GC_DURATION.name)), h.legend_for(L.INSTANCE, L.GC_KIND), ref="B"),
            ],
            h.RATIO,
            threshold=(GC_TIME, on_screen),
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Objects tenured",
            "Objects promoted from the young to the old generation, per second.",
            [h.target(q.sum_by((L.INSTANCE,), _rate(c.GC_TENURED_OBJECTS.name)), INSTANCE_LEGEND)],
            h.PER_SECOND,
        ),
        8,
        8,
    )

    layout.section("Memory")
    layout.add(
        h.timeseries(
            "Memory by space",
            "Size of each memory space (spaces nest: eden is part of young).",
            [h.target(_gauge(c.MEMORY_SPACE, (L.INSTANCE, L.SPACE)), h.legend_for(L.INSTANCE, L.SPACE))],
            h.BYTES,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Used vs. limit",
            "Used share of each memory space that has a limit.",
            [h.target(q.max_by((L.INSTANCE, L.SPACE), h.scoped(r.MEMORY_USED_RATIO.record, *SCOPE)), h.legend_for(L.INSTANCE, L.SPACE))],
            h.RATIO,
            threshold=(MEMORY, on_screen),
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Memory from the OS",
            "All memory the runtime obtained from the operating system.",
            [h.target(_gauge(c.MEMORY_TOTAL), INSTANCE_LEGEND)],
            h.BYTES,
        ),
        8,
        8,
    )

    layout.section("Runtime processes")
    layout.add(
        h.timeseries(
            "Processes by state",
            "Processes of the runtime (Pharo processes; threads elsewhere) by state. A total that keeps growing is a "
            "leak: blocked ones wait on what never comes, terminated ones are still referenced.",
            [h.target(q.sum_by((L.INSTANCE, L.STATE), h.scoped(c.PROCESSES.name, *SCOPE)), h.legend_for(L.INSTANCE, L.STATE))],
            h.COUNT,
            stacked=True,
        ),
        12,
        8,
    )
    layout.add(
        h.timeseries(
            "Handle table use",
            "Used share of each bounded handle table (Pharo: external semaphores; a process: file descriptors) "
            "against its limit; when one is full, opening sockets and files fails.",
            [
                h.target(
                    q.max_by(
                        (L.INSTANCE, L.TABLE),
                        q.divide(
                            q.sum_without((L.STATE,), h.scoped(c.HANDLE_TABLE_SLOTS.name, *SCOPE, extra=(q.eq(L.STATE, c.HANDLE_SLOT_USED),))),
                            h.scoped(c.HANDLE_TABLE_LIMIT.name, *SCOPE),
                        ),
                    ),
                    h.legend_for(L.INSTANCE, L.TABLE),
                )
            ],
            h.RATIO,
            threshold=(HANDLE_TABLE, on_screen),
        ),
        12,
        8,
    )

    # Only an exporter beside its application (a sidecar given the app's pid, pid file or name)
    # can read the process; one reading the stats over the network (/probe) cannot, and its
    # instances have no line here.
    layout.section("Process (instances read by a sidecar exporter)")
    layout.add(
        h.timeseries("CPU", "CPU time per second of the application's process (100 % = one core). " + SIDECAR_ONLY, [h.target(q.sum_by((L.INSTANCE,), _rate(c.PROCESS_CPU.name)), INSTANCE_LEGEND)], h.CORES),
        8,
        8,
    )
    layout.add(
        h.timeseries("Resident memory", "Resident memory of the application's process. " + SIDECAR_ONLY, [h.target(_gauge(c.PROCESS_RESIDENT_MEMORY), INSTANCE_LEGEND)], h.BYTES),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Threads and open files",
            "Operating-system threads and open file descriptors of the application's process. " + SIDECAR_ONLY,
            [
                h.target(_gauge(c.PROCESS_THREADS), INSTANCE_LEGEND + " threads"),
                h.target(_gauge(c.PROCESS_OPEN_FDS), INSTANCE_LEGEND + " open files", ref="B"),
            ],
            h.COUNT,
        ),
        8,
        8,
    )

    variables = [
        h.datasource_variable(),
        # One environment: a service's routes and instances are read within it (on the global
        # store too, where the overview compares the environments).
        h.environment_variable(UP, fleet, extra=(r.APPLICATION_TARGETS,)),
        h.label_variable(L.SERVICE, "Service", UP, within=(L.ENVIRONMENT,), extra=(r.APPLICATION_TARGETS,)),
        h.label_variable(L.INSTANCE, "Instance", UP, within=(L.ENVIRONMENT, L.SERVICE), multi=True, extra=(r.APPLICATION_TARGETS,)),
    ]
    links = [
        h.link_to("Services overview", h.SERVICES_OVERVIEW_UID, "Every service, worst first"),
        h.link_to("Pipeline health", h.PIPELINE_HEALTH_UID, "Is the monitoring itself working?"),
        h.link_to("Swarm", h.SWARM_UID, "Nodes and their tasks: CPU, memory, disks, network, failures"),
    ]
    return h.dashboard(UID, TITLE, __doc__.splitlines()[0], variables, layout, links, h.event_annotations(*SCOPE))
