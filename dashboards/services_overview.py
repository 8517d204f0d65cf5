"""Services overview: which service, in which environment, needs attention first?

One row per environment and service: instances up out of expected, request rate, 5xx ratio, p99
latency, GC time, memory against its limit and firing alerts, sorted by how close the service is
to its nearest alert threshold. The graphs below show the same signals over time, each with the
alert threshold of every environment on screen.

On the fleet's global store the environments sit side by side in one table, worst first: each
service is judged by its own environment's thresholds (`closeness`), so a service at 90 % of
production's threshold ranks above one at 50 % of beta's, whatever their raw values.
"""

from __future__ import annotations

from pharos_monitoring.alerts import catalogue as alerts
from pharos_monitoring.alerts import promql as q
from pharos_monitoring.alerts import recording as r
from pharos_monitoring.alerts.upstream import UP
from pharos_monitoring.exporter.catalogue import Label as L

from . import house as h
from . import upstream as u

UID = h.SERVICES_OVERVIEW_UID
TITLE = "Pharos / Services overview"
SCOPE = (L.ENVIRONMENT, L.SERVICE)
BY_SERVICE = (L.ENVIRONMENT, L.SERVICE)
SERVICE_LEGEND = h.legend_for(L.ENVIRONMENT, L.SERVICE)

ERROR_RATIO = h.AlertThreshold(alerts.HIGH_ERROR_RATE, "ratio")
LATENCY = h.AlertThreshold(alerts.HIGH_LATENCY, "seconds")
UNAVAILABLE = h.AlertThreshold(alerts.SERVICE_INSTANCES_DOWN, "ratio")
GC_TIME = h.AlertThreshold(alerts.GC_TIME_HIGH, "fraction")
MEMORY = h.AlertThreshold(alerts.MEMORY_NEAR_LIMIT, "ratio")
# Colours of "how close to the alert threshold": 1 = at the threshold.
CLOSENESS = h.steps((None, h.GREEN), (0.8, h.ORANGE), (1, h.RED))
ALERT_COUNT = h.steps((None, h.GREEN), (1, h.RED))


def _unavailable():
    return h.scoped(r.INSTANCE_UNAVAILABLE.record, *SCOPE)


def _requests():
    return h.scoped(r.HTTP_REQUESTS_RATE.record, *SCOPE)


def _error_ratio():
    return h.scoped(r.HTTP_ERROR_RATIO.record, *SCOPE)


def _latency_p99():
    return h.scoped(r.HTTP_LATENCY_P99.record, *SCOPE)


def _unavailable_ratio():
    return h.scoped(r.SERVICE_UNAVAILABLE_RATIO.record, *SCOPE)


def _gc_time_worst():
    return q.max_by(BY_SERVICE, h.scoped(r.GC_TIME_RATIO.record, *SCOPE))


def _memory_fullest():
    return q.max_by(BY_SERVICE, h.scoped(r.MEMORY_USED_RATIO.record, *SCOPE))


def _instances_up():
    return q.sum_by(BY_SERVICE, q.binary(1, "-", _unavailable()))


def _instances_expected():
    return q.count_by(BY_SERVICE, _unavailable())


def _firing_alerts():
    firing = h.scoped(u.ALERTS.name, *SCOPE, extra=(q.eq(u.ALERT_STATE, u.FIRING),))
    # Services without a firing alert count 0, not "no data".
    return q.either(q.count_by(BY_SERVICE, firing), q.binary(_instances_expected(), "*", 0))


SIGNAL = "signal"  # label naming which signal a closeness series is (only in these queries)
# The signals compared with their alert thresholds, by the name the table shows.
SIGNALS = ("5xx", "p99 latency", "instances down", "GC time", "memory")


def _either(exprs):
    combined = exprs[0]
    for more in exprs[1:]:
        combined = q.either(combined, more)
    return combined


def _relative_signals():
    """Every signal relative to its alert threshold, each with its own `signal` label value, so
    that `or` keeps them all."""
    relative = (
        ERROR_RATIO.relative(_error_ratio()),
        LATENCY.relative(_latency_p99()),
        UNAVAILABLE.relative(_unavailable_ratio()),
        GC_TIME.relative(_gc_time_worst()),
        MEMORY.relative(_memory_fullest()),
    )
    return _either([q.Expr(f'label_replace({expr}, "{SIGNAL}", "{name}", "", "")') for name, expr in zip(SIGNALS, relative)])


def closeness():
    """Per service, the largest signal relative to its alert threshold (1 = at the threshold)."""
    return q.max_by(BY_SERVICE, _relative_signals())


def worst_signal():
    """Per service, which signal `closeness` took: its position in SIGNALS (1, 2, ...), which the
    table shows as the name (a query's value can only be a number)."""
    codes = _either([q.Expr(f'label_replace(vector({code}), "{SIGNAL}", "{name}", "", "")') for code, name in enumerate(SIGNALS, 1)])
    worst = q.Expr(f"topk by ({', '.join(BY_SERVICE)}) (1, {_relative_signals()})")
    return q.sum_by(BY_SERVICE, q.binary(q.binary(worst, "*", 0), "+", codes, f"on ({SIGNAL}) group_left ()"))


def build(fleet: bool = False):
    layout = h.Layout()
    layout.section("Fleet")
    stats = (
        h.stat("Instances up", "Instances that give usable stats.", [h.target(q.aggregate("sum", q.binary(1, "-", _unavailable())))], h.COUNT, decimals=0),
        h.stat("Instances expected", "Instances Prometheus is told to scrape.", [h.target(q.aggregate("count", _unavailable()))], h.COUNT, decimals=0),
        h.stat("Requests", "HTTP requests per second, all selected services.", [h.target(q.aggregate("sum", _requests()))], h.REQUESTS_PER_SECOND, graph=True),
        h.stat(
            "5xx responses",
            "Share of HTTP responses that are 5xx, all selected services.",
            [h.target(q.divide(q.aggregate("sum", h.scoped(r.HTTP_ERRORS_RATE.record, *SCOPE)), q.aggregate("sum", _requests())))],
            h.RATIO,
            ERROR_RATIO.color_steps(),
            graph=True,
        ),
        h.stat(
            "Services at an alert threshold",
            "Services whose worst signal is at or beyond its alert threshold (the table's first column at 100 % or more).",
            [h.target(q.either(q.aggregate("count", q.at_least(closeness(), 1)), q.vector(0)))],
            h.COUNT,
            ALERT_COUNT,
            decimals=0,
        ),
        h.stat(
            "Firing alerts",
            "Alerts Prometheus fires for the selected services.",
            [h.target(q.either(q.aggregate("count", h.scoped(u.ALERTS.name, *SCOPE, extra=(q.eq(u.ALERT_STATE, u.FIRING),))), q.vector(0)))],
            h.COUNT,
            ALERT_COUNT,
            decimals=0,
        ),
    )
    for panel in stats:
        layout.add(panel, 4, 4)

    detail_url = (
        f"/d/{h.SERVICE_DETAIL_UID}?var-{L.ENVIRONMENT}=${{__data.fields.{L.ENVIRONMENT}}}"
        f"&var-{L.SERVICE}=${{__data.fields.{L.SERVICE}}}&${{{h.DATASOURCE_VARIABLE}:queryparam}}&${{__url_time_range}}"
    )
    layout.add(
        h.table(
            "Services, worst first",
            "One row per environment and service. 'Worst vs. alert threshold' is the signal closest to its alert "
            "threshold in that environment (100 % = at the threshold), named in 'Worst signal'; rows are sorted by it. "
            "The other cells turn orange at 80 % and red at 100 % of the strictest environment's alert threshold. "
            "Click a service for its detail.",
            BY_SERVICE,
            (
                h.Column("Worst vs. alert threshold", closeness(), h.RATIO, CLOSENESS, decimals=0),
                h.Column("Worst signal", worst_signal(), h.COUNT, decimals=0, mappings=h.value_names(SIGNALS)),
                h.Column("Up", _instances_up(), h.COUNT, decimals=0),
                h.Column("Expected", _instances_expected(), h.COUNT, decimals=0),
                h.Column("Requests/s", _requests(), h.REQUESTS_PER_SECOND),
                h.Column("5xx", _error_ratio(), h.RATIO, ERROR_RATIO.color_steps()),
                h.Column("p99 latency", _latency_p99(), h.SECONDS, LATENCY.color_steps()),
                h.Column("GC time (worst instance)", _gc_time_worst(), h.RATIO, GC_TIME.color_steps()),
                h.Column("Memory vs. limit (fullest)", _memory_fullest(), h.RATIO, MEMORY.color_steps()),
                h.Column("Firing alerts", _firing_alerts(), h.COUNT, ALERT_COUNT, decimals=0),
            ),
            sort_by="Worst vs. alert threshold",
            links=[h.column_link(L.SERVICE, "Service detail", detail_url)],
        ),
        24,
        8,
    )

    layout.section("Signals over time")
    per_service = [
        ("Requests per second", "HTTP requests per second, per service.", _requests(), h.REQUESTS_PER_SECOND, None),
        ("5xx ratio", "Share of HTTP responses that are 5xx, over 5 minutes.", _error_ratio(), h.RATIO, ERROR_RATIO),
        ("p99 latency", "99th percentile of HTTP request durations, from the applications' buckets.", _latency_p99(), h.SECONDS, LATENCY),
        ("Instances without usable stats", "Share of a service's instances that are down or unreadable; services at 0 are hidden (nothing drawn: all readable).", _unavailable_ratio(), h.RATIO, UNAVAILABLE),
        ("GC time (worst instance)", "Share of wall-clock time the service's busiest instance spends in GC.", _gc_time_worst(), h.RATIO, GC_TIME),
        ("Memory vs. limit (fullest space)", "Used share of the fullest memory space that has a limit.", _memory_fullest(), h.RATIO, MEMORY),
    ]
    for title, description, expr, unit, threshold in per_service:
        line = (threshold, expr) if threshold else None
        layout.add(h.timeseries(title, description, [h.target(expr, SERVICE_LEGEND)], unit, threshold=line), 12, 8)

    variables = [
        h.datasource_variable(),
        h.environment_variable(UP, fleet, multi=True, extra=(r.APPLICATION_TARGETS,)),
        h.label_variable(L.SERVICE, "Service", UP, within=(L.ENVIRONMENT,), multi=True, extra=(r.APPLICATION_TARGETS,)),
    ]
    links = [
        h.link_to("Service detail", h.SERVICE_DETAIL_UID, "Per instance: GC, memory, HTTP by route, process, health"),
        h.link_to("Pipeline health", h.PIPELINE_HEALTH_UID, "Is the monitoring itself working?"),
    ]
    return h.dashboard(UID, TITLE, __doc__.splitlines()[0], variables, layout, links, h.event_annotations(*SCOPE))

