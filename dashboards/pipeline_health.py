"""Pipeline health: can the numbers on the other dashboards, and the alerts, be trusted?

The exporter's view of every target (readable, how fast, why not), Prometheus' view of its scrape
jobs and rule groups, and Alertmanager's deliveries. A gap here explains a gap everywhere else.
"""

from __future__ import annotations

from pharos_monitoring.alerts import catalogue as alerts
from pharos_monitoring.alerts import promql as q
from pharos_monitoring.alerts import recording as r
from pharos_monitoring.alerts.upstream import ALERTMANAGER_NOTIFICATIONS, ALERTMANAGER_NOTIFICATIONS_FAILED, ALERTNAME, INTEGRATION, UP
from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L

from . import house as h
from . import upstream as u

UID = h.PIPELINE_HEALTH_UID
TITLE = "Pharos / Pipeline health"
SCOPE = (L.ENVIRONMENT,)
TARGET = (L.SERVICE, L.INSTANCE, L.TARGET)
TARGET_LEGEND = h.legend_for(L.SERVICE, L.INSTANCE, L.TARGET)
NOTIFICATIONS_FAILING = h.AlertThreshold(alerts.NOTIFICATIONS_FAILING, "ratio")
READABLE = ((1, "readable", h.GREEN), (0, "failing", h.RED))


def _exporter(metric: c.Metric, *extra: q.Matcher) -> q.Expr:
    return h.scoped(metric.name, *SCOPE, extra=extra)


def _rate(name: str, by) -> q.Expr:
    # Prometheus' and Alertmanager's own series: this datasource's, whatever their labels.
    return q.sum_by(by, q.rate(q.selector(name), h.RATE_WINDOW))


def build():
    layout = h.Layout()

    layout.section("Exporter")
    layout.add(
        h.state_timeline(
            "Stats readable, per target",
            "Whether the exporter's last fetch of each target's stats succeeded and matched its profile.",
            [h.target(q.max_by(TARGET, _exporter(c.SCRAPE_SUCCESS)), TARGET_LEGEND)],
            READABLE,
        ),
        12,
        8,
    )
    layout.add(
        h.timeseries(
            "Fetch duration, per target",
            "Time the exporter took to fetch and convert each target's stats.",
            [h.target(q.max_by(TARGET, _exporter(c.SCRAPE_DURATION)), TARGET_LEGEND)],
            h.SECONDS,
        ),
        12,
        8,
    )
    layout.add(
        h.timeseries(
            "Failing targets by reason",
            "Targets whose last fetch failed, by reason (0 everywhere is good).",
            [h.target(q.sum_by((c.Label.REASON,), _exporter(c.SCRAPE_ERROR)), h.legend_for(c.Label.REASON))],
            h.COUNT,
            stacked=True,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Fetches by result",
            "Fetches of targets per second across all exporters, by profile and result.",
            [h.target(q.sum_by((c.Label.PROFILE, c.Label.RESULT), q.rate(_exporter(c.EXPORTER_SCRAPES), h.RATE_WINDOW)), h.legend_for(c.Label.PROFILE, c.Label.RESULT))],
            h.PER_SECOND,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Stats document size, per target",
            "Size of each target's stats response.",
            [h.target(q.max_by(TARGET, _exporter(c.SCRAPE_RESPONSE_SIZE)), TARGET_LEGEND)],
            h.BYTES,
        ),
        8,
        8,
    )

    layout.section("Prometheus")
    layout.add(
        h.timeseries(
            "Scrape targets down, per job",
            "Targets of each job whose last scrape by Prometheus failed.",
            [h.target(q.sum_by((L.JOB,), q.binary(1, "-", q.selector(UP.name))), h.legend_for(L.JOB))],
            h.COUNT,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Scrape duration, slowest target per job",
            "How long Prometheus' scrapes take; close to the scrape timeout means scrapes are about to fail.",
            [h.target(q.max_by((L.JOB,), q.selector(u.SCRAPE_DURATION.name)), h.legend_for(L.JOB))],
            h.SECONDS,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Firing alerts by name",
            "Alerts Prometheus fires. Watchdog always fires: its absence means alerting is broken.",
            [h.target(q.count_by((ALERTNAME,), q.selector(u.ALERTS.name, q.eq(u.ALERT_STATE, u.FIRING))), h.legend_for(ALERTNAME))],
            h.COUNT,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Rule evaluation failures",
            "Failed rule evaluations per second, by rule group (0 is good).",
            [h.target(_rate(u.RULE_EVALUATION_FAILURES.name, (u.RULE_GROUP,)), h.legend_for(u.RULE_GROUP))],
            h.PER_SECOND,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Rule group evaluation time vs. interval",
            "Last evaluation time of each rule group as a share of its interval; at 100 % evaluations are skipped.",
            [
                h.target(
                    q.divide(
                        q.max_by((u.RULE_GROUP,), q.selector(u.RULE_GROUP_DURATION.name)),
                        q.max_by((u.RULE_GROUP,), q.selector(u.RULE_GROUP_INTERVAL.name)),
                    ),
                    h.legend_for(u.RULE_GROUP),
                )
            ],
            h.RATIO,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Skipped rule evaluations",
            "Rule-group evaluations skipped per second because the previous one was still running.",
            [h.target(_rate(u.RULE_GROUP_MISSED.name, (u.RULE_GROUP,)), h.legend_for(u.RULE_GROUP))],
            h.PER_SECOND,
        ),
        8,
        8,
    )

    layout.section("Alertmanager")
    notifications = _rate(ALERTMANAGER_NOTIFICATIONS.name, (INTEGRATION,))
    layout.add(
        h.timeseries(
            "Notifications by integration",
            "Notifications Alertmanager attempts per second, by integration.",
            [h.target(notifications, h.legend_for(INTEGRATION))],
            h.PER_SECOND,
        ),
        8,
        8,
    )
    failed = _rate(ALERTMANAGER_NOTIFICATIONS_FAILED.name, (INTEGRATION,))
    layout.add(
        h.timeseries(
            "Failed notifications by integration",
            "Share of each integration's notifications that Alertmanager failed to deliver (integrations that sent nothing are left out).",
            [h.target(q.divide(failed, q.above(notifications, 0)), h.legend_for(INTEGRATION))],
            h.RATIO,
            threshold=(NOTIFICATIONS_FAILING, q.selector(ALERTMANAGER_NOTIFICATIONS.name)),
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Alerts held by Alertmanager",
            "Alerts Alertmanager holds, by state (suppressed: silenced or inhibited).",
            [h.target(q.sum_by((u.ALERTMANAGER_STATE,), q.selector(u.ALERTMANAGER_ALERTS.name)), h.legend_for(u.ALERTMANAGER_STATE))],
            h.COUNT,
        ),
        8,
        8,
    )

    variables = [
        h.datasource_variable(),
        h.label_variable(L.ENVIRONMENT, "Environment", UP, multi=True, extra=(r.APPLICATION_TARGETS,)),
    ]
    links = [
        h.link_to("Services overview", h.SERVICES_OVERVIEW_UID, "Every service, worst first"),
        h.link_to("Service detail", h.SERVICE_DETAIL_UID, "Per instance: GC, memory, HTTP by route, process, health"),
    ]
    return h.dashboard(UID, TITLE, __doc__.splitlines()[0], variables, layout, links)
