"""Pipeline health: can the numbers on the other dashboards, and the alerts, be trusted?

The exporter's view of every target (readable, how fast, why not), Prometheus' view of its scrape
jobs and rule groups, Prometheus' own health (configuration, storage, ingestion, alert sending,
service discovery), and Alertmanager's configuration and deliveries. A gap here explains a gap
everywhere else.

Every series is that of the environments selected, and every line is one environment's: on the
fleet's global store each environment's Prometheus and Alertmanager are shown side by side, never
added together (an Alertmanager two environments scrape would otherwise count twice).
"""

from __future__ import annotations

from pharos_monitoring.alerts import catalogue as alerts
from pharos_monitoring.alerts import promql as q
from pharos_monitoring.alerts import recording as r
from pharos_monitoring.alerts import upstream as au
from pharos_monitoring.alerts.upstream import ALERTMANAGER_NOTIFICATIONS, ALERTMANAGER_NOTIFICATIONS_FAILED, ALERTNAME, INTEGRATION, UP
from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L

from . import house as h
from . import upstream as u

UID = h.PIPELINE_HEALTH_UID
TITLE = "Pharos / Pipeline health"
SCOPE = (L.ENVIRONMENT,)
ENV = (L.ENVIRONMENT,)  # in every grouping: environments side by side, never added together
ENV_LEGEND = h.legend_for(L.ENVIRONMENT)
TARGET = (L.ENVIRONMENT, L.SERVICE, L.INSTANCE, L.TARGET)
TARGET_LEGEND = h.legend_for(*TARGET)
NOTIFICATIONS_FAILING = h.AlertThreshold(alerts.NOTIFICATIONS_FAILING, "ratio")
READABLE = ((1, "readable", h.GREEN), (0, "failing", h.RED))
RELOADED = ((1, "loaded", h.GREEN), (0, "reload failed", h.RED))
FAILURES = h.steps((None, h.GREEN), (1, h.RED))
# `rule_group` is `<rules file path>;<group>`: legends show the group's name, not a cut-off path.
GROUP_NAME = "group_name"
GROUP_LEGEND = h.legend_for(L.ENVIRONMENT, GROUP_NAME)


def _own(name: str, *extra: q.Matcher) -> q.Expr:
    """Series of the environments selected: the exporters', and Prometheus' and Alertmanager's own
    (their scrape jobs carry the `environment` label, pharos/config/prometheus_config.py)."""
    return h.scoped(name, *SCOPE, extra=extra)


def _exporter(metric: c.Metric, *extra: q.Matcher) -> q.Expr:
    return _own(metric.name, *extra)


def _rate(name: str, by) -> q.Expr:
    return q.sum_by(ENV + tuple(by), q.rate(_own(name), h.RATE_WINDOW))


def _by_group_name(expr: q.Expr) -> q.Expr:
    return q.Expr(f'label_replace({expr}, "{GROUP_NAME}", "$1", "{u.RULE_GROUP}", ".*;(.*)")')


def _total(metric) -> q.Expr:
    return q.sum_by(ENV, _own(metric.name))


def _firing_alerts() -> q.Expr:
    """Firing alerts by environment and name. The Watchdog has no `environment` on its own
    Prometheus (it fires on no series), and in the global store it keeps `replica` (one per
    replica of a pair, for the fleet's rules): each alert counts once whatever the data source."""
    firing = q.selector(u.ALERTS.name, q.eq(u.ALERT_STATE, u.FIRING), h.selected_or_unlabelled(L.ENVIRONMENT))
    return q.count_by((L.ENVIRONMENT, ALERTNAME), q.aggregate("group", firing, without=(L.REPLICA,)))


def build(fleet: bool = False):
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
            "Targets whose last fetch failed, by reason (reasons at 0 are hidden: nothing drawn is good).",
            [h.target(q.sum_by(ENV + (c.Label.REASON,), _exporter(c.SCRAPE_ERROR)), h.legend_for(L.ENVIRONMENT, c.Label.REASON))],
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
            [h.target(q.sum_by(ENV + (c.Label.PROFILE, c.Label.RESULT), q.rate(_exporter(c.EXPORTER_SCRAPES), h.RATE_WINDOW)), h.legend_for(L.ENVIRONMENT, c.Label.PROFILE, c.Label.RESULT))],
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
            [h.target(q.sum_by(ENV + (L.JOB,), q.binary(1, "-", _own(UP.name))), h.legend_for(L.ENVIRONMENT, L.JOB))],
            h.COUNT,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Scrape duration, slowest target per job",
            "How long Prometheus' scrapes take; close to the scrape timeout means scrapes are about to fail.",
            [h.target(q.max_by(ENV + (L.JOB,), _own(u.SCRAPE_DURATION.name)), h.legend_for(L.ENVIRONMENT, L.JOB))],
            h.SECONDS,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Firing alerts by name",
            "Alerts Prometheus fires. Watchdog always fires: its absence means alerting is broken.",
            [h.target(_firing_alerts(), h.legend_for(L.ENVIRONMENT, ALERTNAME))],
            h.COUNT,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Rule evaluation failures",
            "Failed rule evaluations per second, by rule group (groups at 0 are hidden: nothing drawn is good).",
            [h.target(_by_group_name(_rate(u.RULE_EVALUATION_FAILURES.name, (u.RULE_GROUP,))), GROUP_LEGEND)],
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
                    _by_group_name(
                        q.divide(
                            q.max_by(ENV + (u.RULE_GROUP,), _own(u.RULE_GROUP_DURATION.name)),
                            q.max_by(ENV + (u.RULE_GROUP,), _own(u.RULE_GROUP_INTERVAL.name)),
                        )
                    ),
                    GROUP_LEGEND,
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
            "Rule-group evaluations skipped per second because the previous one was still running (groups at 0 are hidden).",
            [h.target(_by_group_name(_rate(u.RULE_GROUP_MISSED.name, (u.RULE_GROUP,))), GROUP_LEGEND)],
            h.PER_SECOND,
        ),
        8,
        8,
    )

    layout.section("Prometheus itself")
    layout.add(
        h.state_timeline(
            "Configuration reloads",
            "Whether Prometheus' and Alertmanager's last configuration reload succeeded. After a failed reload both keep "
            "running the previous configuration: a change you made is not in effect.",
            [
                h.target(q.aggregate("min", _own(au.CONFIG_RELOAD_SUCCESSFUL.name), by=ENV), ENV_LEGEND + " Prometheus"),
                h.target(q.aggregate("min", _own(au.ALERTMANAGER_CONFIG_RELOAD_SUCCESSFUL.name), by=ENV), ENV_LEGEND + " Alertmanager", ref="B"),
            ],
            RELOADED,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Series in the head block",
            "Series Prometheus holds in memory; a sudden climb is a label with too many values (memory follows it).",
            [h.target(_total(u.HEAD_SERIES), ENV_LEGEND + " head series")],
            h.COUNT,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Samples ingested per second",
            "Samples Prometheus appends per second; a drop with unchanged targets means scrapes are failing or slower.",
            [h.target(q.sum_by(ENV, q.rate(_own(u.HEAD_SAMPLES_APPENDED.name), h.RATE_WINDOW)), ENV_LEGEND + " samples/s")],
            h.PER_SECOND,
        ),
        8,
        8,
    )
    layout.add(
        h.stat(
            "Storage failures in the time range",
            "Failed compactions, write-ahead-log writes (samples lost) and block reloads over the dashboard's time range (0 is good).",
            [
                h.target(q.sum_by(ENV, q.over_time("increase", _own(au.TSDB_COMPACTIONS_FAILED.name), "$__range")), ENV_LEGEND + " compactions"),
                h.target(q.sum_by(ENV, q.over_time("increase", _own(au.TSDB_WAL_WRITES_FAILED.name), "$__range")), ENV_LEGEND + " WAL writes", ref="B"),
                h.target(q.sum_by(ENV, q.over_time("increase", _own(au.TSDB_RELOADS_FAILED.name), "$__range")), ENV_LEGEND + " block reloads", ref="C"),
            ],
            h.COUNT,
            FAILURES,
            decimals=0,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Alerts sent to Alertmanager",
            "Alerts Prometheus sends per second, and the sends that failed, per Alertmanager (failures hidden while at 0).",
            [
                h.target(_rate(au.NOTIFICATIONS_SENT.name, (au.ALERTMANAGER_URL,)), h.legend_for(L.ENVIRONMENT, au.ALERTMANAGER_URL) + " sent"),
                h.target(_rate(au.NOTIFICATIONS_ERRORS.name, (au.ALERTMANAGER_URL,)), h.legend_for(L.ENVIRONMENT, au.ALERTMANAGER_URL) + " failed", ref="B"),
            ],
            h.PER_SECOND,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Alert queue towards Alertmanager vs. capacity",
            "Share of Prometheus' notification queue in use; when full, new alerts are dropped.",
            [h.target(q.divide(_total(au.NOTIFICATIONS_QUEUE_LENGTH), _total(au.NOTIFICATIONS_QUEUE_CAPACITY)), ENV_LEGEND + " queue")],
            h.RATIO,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Service discovery",
            "Targets service discovery finds, per scrape job, and discovery configurations that failed to load (hidden while 0).",
            [
                h.target(q.sum_by(ENV + (u.SD_CONFIG,), _own(u.SD_DISCOVERED_TARGETS.name)), h.legend_for(L.ENVIRONMENT, u.SD_CONFIG)),
                h.target(_total(u.SD_FAILED_CONFIGS), ENV_LEGEND + " failed configurations", ref="B"),
            ],
            h.COUNT,
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
            [h.target(notifications, h.legend_for(L.ENVIRONMENT, INTEGRATION))],
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
            [h.target(q.divide(failed, q.above(notifications, 0)), h.legend_for(L.ENVIRONMENT, INTEGRATION))],
            h.RATIO,
            threshold=(NOTIFICATIONS_FAILING, _own(ALERTMANAGER_NOTIFICATIONS.name)),
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Alerts held by Alertmanager",
            "Alerts Alertmanager holds, by state (suppressed: silenced or inhibited).",
            [h.target(q.sum_by(ENV + (u.ALERTMANAGER_STATE,), _own(u.ALERTMANAGER_ALERTS.name)), h.legend_for(L.ENVIRONMENT, u.ALERTMANAGER_STATE))],
            h.COUNT,
        ),
        8,
        8,
    )

    variables = [
        h.datasource_variable(),
        h.environment_variable(UP, fleet, multi=True, extra=(r.APPLICATION_TARGETS,)),
    ]
    links = [
        h.link_to("Services overview", h.SERVICES_OVERVIEW_UID, "Every service, worst first"),
        h.link_to("Service detail", h.SERVICE_DETAIL_UID, "Per instance: GC, memory, HTTP by route, process, health"),
    ]
    return h.dashboard(UID, TITLE, __doc__.splitlines()[0], variables, layout, links)
