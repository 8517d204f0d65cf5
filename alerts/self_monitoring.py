"""Alerts on the alerting pipeline itself: Prometheus, Alertmanager and the scrape jobs that watch them.

Learnt from the prometheus and alertmanager mixins (names kept where the meaning is theirs), with
this project's ranges: every range is the catalogue's `WINDOW`, so that `Tuning` can shorten it.
A failure counter that keeps rising for the alert's `for` means a failure that repeats (Prometheus
retries compaction and reloads every minute); a single failure does not page anyone.

Severities: `critical` where alerts stop being true or stop reaching anyone (rules fail to evaluate,
no Alertmanager takes this Prometheus' alerts, samples are lost); `warning` for what degrades
or endangers the pipeline without silencing it yet (a reload failed and the old configuration
still runs, one of several Alertmanagers fails, a queue fills, a target hits a scrape limit).
"""

from __future__ import annotations

from pharos_monitoring.exporter.catalogue import Label as L
from pharos_monitoring.exporter.catalogue import Metric

from . import promql as q
from .model import CRITICAL, TEST_SAMPLES, WARNING, Alert, Case, Firing, Series, Threshold, counter, gauge
from .recording import WINDOW
from .upstream import (
    ALERTMANAGER_CONFIG_RELOAD_SUCCESSFUL,
    ALERTMANAGER_URL,
    ALERTMANAGERS_DISCOVERED,
    CONFIG_RELOAD_SUCCESSFUL,
    NOTIFICATIONS_ERRORS,
    NOTIFICATIONS_QUEUE_CAPACITY,
    NOTIFICATIONS_QUEUE_LENGTH,
    NOTIFICATIONS_SENT,
    RULE_EVALUATION_FAILURES,
    RULE_GROUP,
    RULE_GROUP_MISSED,
    SCRAPES_OVER_BODY_SIZE_LIMIT,
    SCRAPES_OVER_LABEL_LIMIT,
    SCRAPES_OVER_SAMPLE_LIMIT,
    TSDB_COMPACTIONS_FAILED,
    TSDB_RELOADS_FAILED,
    TSDB_WAL_WRITES_FAILED,
    UP,
)

_ENV = "production"  # as in alerts/catalogue.py: the value does not matter to the rules
_PROMETHEUS = {L.JOB: "prometheus", L.INSTANCE: "prometheus:9090", L.ENVIRONMENT: _ENV, L.COMPONENT: "prometheus"}
_ALERTMANAGER = {L.JOB: "alertmanager", L.INSTANCE: "alertmanager:9093", L.ENVIRONMENT: _ENV, L.COMPONENT: "alertmanager"}
# The scrape configs set `component` on the monitoring's own jobs only (pharos/config/prometheus_config.py).
MONITORING_TARGETS = q.ne(L.COMPONENT, "")
QUEUE_HORIZON_SECONDS = 30 * 60  # how far ahead a filling notification queue is extrapolated


def _increase(metric: Metric) -> q.Expr:
    return q.over_time("increase", q.selector(metric.name), WINDOW)


def _counter_cases(metric: Metric, labels: dict[str, str], what: str):
    """A failure counter: rising every minute must fire, standing still must not."""
    return lambda t: [
        Case(f"{what} every minute", (counter(metric.name, labels, 1),), (Firing(labels),)),
        Case(f"no {what}", (counter(metric.name, labels, 0),)),
    ]


def _failures(name: str, metric: Metric, severity: str, for_: str, what: str, summary: str, description: str, labels=None) -> Alert:
    """An alert on a failure counter of Prometheus' that keeps rising."""
    return Alert(
        name=name,
        severity=severity,
        for_=for_,
        expr=lambda t: q.above(_increase(metric), 0),
        summary=summary,
        description=description,
        cases=_counter_cases(metric, labels or _PROMETHEUS, what),
    )


# --- configuration -----------------------------------------------------------------------------
def _reload_cases(metric: Metric, labels: dict[str, str]):
    return lambda t: [
        Case("the last reload failed", (gauge(metric.name, labels, 0),), (Firing(labels),)),
        Case("the last reload succeeded", (gauge(metric.name, labels, 1),)),
    ]


PROMETHEUS_BAD_CONFIG = Alert(
    name="PrometheusBadConfig",
    severity=WARNING,
    for_="10m",
    expr=lambda t: q.equals(q.over_time("max_over_time", q.selector(CONFIG_RELOAD_SUCCESSFUL.name), WINDOW), 0),
    summary="Prometheus {label.INSTANCE} in {label.ENVIRONMENT} cannot load its configuration",
    description=(
        "The last configuration reload of {label.INSTANCE} failed 10 minutes ago or more: it still runs the "
        "configuration it had before, and will not start again after a restart until the file is fixed."
    ),
    cases=_reload_cases(CONFIG_RELOAD_SUCCESSFUL, _PROMETHEUS),
)

ALERTMANAGER_FAILED_RELOAD = Alert(
    name="AlertmanagerFailedReload",
    severity=WARNING,
    for_="10m",
    expr=lambda t: q.equals(q.over_time("max_over_time", q.selector(ALERTMANAGER_CONFIG_RELOAD_SUCCESSFUL.name), WINDOW), 0),
    summary="Alertmanager {label.INSTANCE} in {label.ENVIRONMENT} cannot load its configuration",
    description=(
        "The last configuration reload of {label.INSTANCE} failed 10 minutes ago or more: it still routes with "
        "the configuration it had before, and will not start again after a restart until the file is fixed."
    ),
    cases=_reload_cases(ALERTMANAGER_CONFIG_RELOAD_SUCCESSFUL, _ALERTMANAGER),
)

# --- rules -------------------------------------------------------------------------------------
_RULE_GROUP = {**_PROMETHEUS, RULE_GROUP: "/etc/prometheus/rules/pharos-recording.yml;pharos.recording"}

RULE_FAILURES = _failures(
    "PrometheusRuleFailures",
    RULE_EVALUATION_FAILURES,
    CRITICAL,  # every alert reads recording rules: a failing rule silently blinds them
    "15m",
    "a failed evaluation",
    "Prometheus {label.INSTANCE} fails to evaluate rules of {label.RULE_GROUP}",
    "Rules of {label.RULE_GROUP} in {label.ENVIRONMENT} fail to evaluate for 15 minutes: the alerts that read "
    "them cannot fire. The Prometheus log and its /rules page name the rule and the error.",
    _RULE_GROUP,
)
MISSING_RULE_EVALUATIONS = _failures(
    "PrometheusMissingRuleEvaluations",
    RULE_GROUP_MISSED,
    WARNING,
    "15m",
    "a missed evaluation",
    "Prometheus {label.INSTANCE} skips evaluations of {label.RULE_GROUP}",
    "Evaluating {label.RULE_GROUP} in {label.ENVIRONMENT} takes longer than its interval for 15 minutes: "
    "evaluations are skipped and alerts come late. Look for slow queries on the /rules page.",
    _RULE_GROUP,
)

# --- delivery to Alertmanager --------------------------------------------------------------------
def _not_connected_cases(t):
    return [
        Case("no Alertmanager discovered", (gauge(ALERTMANAGERS_DISCOVERED.name, _PROMETHEUS, 0),), (Firing(_PROMETHEUS),)),
        Case("two Alertmanagers discovered", (gauge(ALERTMANAGERS_DISCOVERED.name, _PROMETHEUS, 2),)),
    ]


NOT_CONNECTED_TO_ALERTMANAGERS = Alert(
    name="PrometheusNotConnectedToAlertmanagers",
    severity=CRITICAL,
    for_="10m",
    expr=lambda t: q.below(q.over_time("max_over_time", q.selector(ALERTMANAGERS_DISCOVERED.name), WINDOW), 1),
    summary="Prometheus {label.INSTANCE} in {label.ENVIRONMENT} sends its alerts to no Alertmanager",
    description=(
        "{label.INSTANCE} has known no Alertmanager for 10 minutes: none of its alerts reaches anyone "
        "(this one only through Grafana or a dead man's switch missing the Watchdog). Check `alerting:` in prometheus.yml."
    ),
    cases=_not_connected_cases,
)


def _send_error_ratio() -> q.Expr:
    return q.divide(
        q.rate(q.selector(NOTIFICATIONS_ERRORS.name), WINDOW), q.rate(q.selector(NOTIFICATIONS_SENT.name), WINDOW)
    )


def _sends(alertmanager: str, failing: float) -> tuple:
    labels = {**_PROMETHEUS, ALERTMANAGER_URL: f"http://{alertmanager}/api/v2/alerts"}
    return (counter(NOTIFICATIONS_SENT.name, labels, 100), counter(NOTIFICATIONS_ERRORS.name, labels, 100 * failing))


def _error_sending_some_cases(t):
    failing = min(1.0, 10 * t["ratio"])
    firing = {**_PROMETHEUS, ALERTMANAGER_URL: "http://alertmanager-1:9093/api/v2/alerts"}
    return [
        Case(
            "one of two Alertmanagers refuses",
            _sends("alertmanager-1:9093", failing) + _sends("alertmanager-2:9093", 0),
            (Firing(firing, failing),),
        ),
        Case("a rare error", _sends("alertmanager-1:9093", t["ratio"] / 2)),
    ]


ERROR_SENDING_TO_SOME = Alert(
    name="PrometheusErrorSendingAlertsToSomeAlertmanagers",
    severity=WARNING,
    for_="15m",
    expr=lambda t: q.above(_send_error_ratio(), t["ratio"]),
    thresholds={"ratio": Threshold(0.01)},
    summary="Prometheus {label.INSTANCE} fails to send {value:percent} of its alerts to {label.ALERTMANAGER}",
    description=(
        "{value:percent} of the alerts {label.INSTANCE} in {label.ENVIRONMENT} sends to {label.ALERTMANAGER} fail "
        "(threshold {threshold.ratio:percent}) for 15 minutes; the other Alertmanagers still receive them."
    ),
    cases=_error_sending_some_cases,
)


def _error_sending_any_cases(t):
    failing = min(1.0, 10 * t["ratio"])
    return [
        Case(
            "every Alertmanager refuses",
            _sends("alertmanager-1:9093", failing) + _sends("alertmanager-2:9093", failing),
            (Firing(_PROMETHEUS, failing),),
        ),
        Case("one of two Alertmanagers refuses", _sends("alertmanager-1:9093", failing) + _sends("alertmanager-2:9093", 0)),
    ]


ERROR_SENDING_TO_ANY = Alert(
    name="PrometheusErrorSendingAlertsToAnyAlertmanager",
    severity=CRITICAL,
    for_="15m",
    expr=lambda t: q.above(q.aggregate("min", _send_error_ratio(), without=(ALERTMANAGER_URL,)), t["ratio"]),
    thresholds={"ratio": Threshold(0.03)},
    summary="Prometheus {label.INSTANCE} fails to send {value:percent} of its alerts to every Alertmanager",
    description=(
        "Even the best of the Alertmanagers of {label.INSTANCE} in {label.ENVIRONMENT} refuses {value:percent} of its "
        "alerts (threshold {threshold.ratio:percent}) for 15 minutes: alerts are lost."
    ),
    cases=_error_sending_any_cases,
)


def _queue_cases(t):
    def queue(per_minute: float, start: float = 0) -> tuple:
        length = Series(NOTIFICATIONS_QUEUE_LENGTH.name, _PROMETHEUS, f"{start:g}+{per_minute:g}x{TEST_SAMPLES}")
        return (length, gauge(NOTIFICATIONS_QUEUE_CAPACITY.name, _PROMETHEUS, 10000))

    return [
        Case("the queue grows by 300 alerts a minute", queue(300), (Firing(_PROMETHEUS),)),
        Case("a steady queue", queue(0, 50)),
    ]


NOTIFICATION_QUEUE_RUNNING_FULL = Alert(
    name="PrometheusNotificationQueueRunningFull",
    severity=WARNING,
    for_="15m",
    expr=lambda t: q.above(
        q.predict_linear(q.selector(NOTIFICATIONS_QUEUE_LENGTH.name), WINDOW, QUEUE_HORIZON_SECONDS),
        q.over_time("min_over_time", q.selector(NOTIFICATIONS_QUEUE_CAPACITY.name), WINDOW),
    ),
    summary="The alert queue of Prometheus {label.INSTANCE} fills up",
    description=(
        "At its recent pace, the queue of alerts {label.INSTANCE} in {label.ENVIRONMENT} has to send "
        "will be full within 30 minutes; then alerts are dropped. Alertmanager is slow or unreachable."
    ),
    cases=_queue_cases,
)

# --- storage -----------------------------------------------------------------------------------
TSDB_RELOADS_FAILING = _failures(
    "PrometheusTSDBReloadsFailing",
    TSDB_RELOADS_FAILED,
    WARNING,
    "15m",
    "a failed reload",
    "Prometheus {label.INSTANCE} cannot reload its storage blocks",
    "{label.INSTANCE} in {label.ENVIRONMENT} fails to reload blocks from disk for 15 minutes: the disk, its "
    "permissions or a corrupt block. The Prometheus log names the block.",
)
TSDB_COMPACTIONS_FAILING = _failures(
    "PrometheusTSDBCompactionsFailing",
    TSDB_COMPACTIONS_FAILED,
    WARNING,
    "15m",
    "a failed compaction",
    "Prometheus {label.INSTANCE} cannot compact its storage",
    "{label.INSTANCE} in {label.ENVIRONMENT} fails to compact its storage for 15 minutes: memory and the "
    "write-ahead log grow until it runs out of either. Usually a full disk; the log says.",
)
TSDB_WAL_FAILING = _failures(
    "PrometheusTSDBWALFailing",
    TSDB_WAL_WRITES_FAILED,
    CRITICAL,  # samples are lost: the alerts reading them see nothing
    "5m",
    "a failed write",
    "Prometheus {label.INSTANCE} cannot write its write-ahead log",
    "{label.INSTANCE} in {label.ENVIRONMENT} fails to write samples to its write-ahead log for 5 minutes: "
    "samples are lost and alerts are blind to them. Usually a full or read-only disk.",
)

# --- scrape limits (set in pharos/config/prometheus_config.py from the stack's scrape_limits) ---
SAMPLE_LIMIT_HIT = _failures(
    "PrometheusScrapeSampleLimitHit",
    SCRAPES_OVER_SAMPLE_LIMIT,
    WARNING,
    "5m",
    "a scrape over the limit",
    "Prometheus {label.INSTANCE} refuses scrapes with more samples than sample_limit",
    "Scrapes of {label.INSTANCE} in {label.ENVIRONMENT} return more series than `scrape_limits.sample_limit` "
    "for 5 minutes: those targets are down (up == 0). Find them with `scrape_samples_scraped`, then "
    "fix the series explosion or raise the limit in the stack file.",
)
LABEL_LIMIT_HIT = _failures(
    "PrometheusLabelLimitHit",
    SCRAPES_OVER_LABEL_LIMIT,
    WARNING,
    "5m",
    "a scrape over the limit",
    "Prometheus {label.INSTANCE} refuses scrapes with more labels than label_limit",
    "Scrapes of {label.INSTANCE} in {label.ENVIRONMENT} return series with more labels than "
    "`scrape_limits.label_limit` for 5 minutes: those targets are down (up == 0); the targets page says which.",
)
BODY_SIZE_LIMIT_HIT = _failures(
    "PrometheusScrapeBodySizeLimitHit",
    SCRAPES_OVER_BODY_SIZE_LIMIT,
    WARNING,
    "5m",
    "a scrape over the limit",
    "Prometheus {label.INSTANCE} refuses scrapes larger than body_size_limit",
    "Scrapes of {label.INSTANCE} in {label.ENVIRONMENT} return bodies larger than "
    "`scrape_limits.body_size_limit` for 5 minutes: those targets are down (up == 0); the targets page says which.",
)

# --- the monitoring's own targets ----------------------------------------------------------------
def _component_down_cases(t):
    application = {L.JOB: "orders", L.INSTANCE: "orders-1:9841", L.ENVIRONMENT: _ENV, L.SERVICE: "orders"}
    return [
        Case("Alertmanager does not answer", (gauge(UP.name, _ALERTMANAGER, 0), gauge(UP.name, _PROMETHEUS, 1)), (Firing(_ALERTMANAGER),)),
        Case("an application target is down: another alert's", (gauge(UP.name, _ALERTMANAGER, 1), gauge(UP.name, application, 0))),
    ]


MONITORING_COMPONENT_DOWN = Alert(
    name="PharosMonitoringComponentDown",
    severity=WARNING,
    for_="5m",
    expr=lambda t: q.equals(q.selector(UP.name, MONITORING_TARGETS), 0),
    summary="{label.COMPONENT} {label.INSTANCE} in {label.ENVIRONMENT} is down",
    description=(
        "Prometheus cannot scrape {label.COMPONENT} at {label.INSTANCE} (job {label.JOB}) for 5 minutes: it is "
        "down, unreachable or too slow. An Alertmanager down loses its share of notifications; the exporter "
        "down makes every probed service look down."
    ),
    cases=_component_down_cases,
)

# In the order the rule file lists them: what blinds the alerts first.
SELF_MONITORING_ALERTS = (
    RULE_FAILURES,
    NOT_CONNECTED_TO_ALERTMANAGERS,
    ERROR_SENDING_TO_ANY,
    TSDB_WAL_FAILING,
    ERROR_SENDING_TO_SOME,
    NOTIFICATION_QUEUE_RUNNING_FULL,
    MISSING_RULE_EVALUATIONS,
    PROMETHEUS_BAD_CONFIG,
    ALERTMANAGER_FAILED_RELOAD,
    TSDB_RELOADS_FAILING,
    TSDB_COMPACTIONS_FAILING,
    SAMPLE_LIMIT_HIT,
    LABEL_LIMIT_HIT,
    BODY_SIZE_LIMIT_HIT,
    MONITORING_COMPONENT_DOWN,
)
