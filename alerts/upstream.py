"""Metric and label names that Prometheus and Alertmanager define, declared once like our own.

The exporter's vocabulary lives in `exporter/catalogue.py`; these are the names the alerts need
from the tools around it: Prometheus' synthetic `up`, Prometheus' and Alertmanager's own metrics
that the self-monitoring alerts read (checked against the /metrics of Prometheus 2.42 and
Alertmanager 0.25), and the labels that alert routing is built on.
"""

from __future__ import annotations

from pharos_monitoring.exporter.catalogue import COUNTER, GAUGE, Metric

ALERTNAME = "alertname"  # set by Prometheus on every alert
SEVERITY = "severity"  # set by every alert of the catalogue: critical | warning | info
BUCKET_BOUND = "le"  # a histogram bucket's upper bound
INTEGRATION = "integration"  # Alertmanager's notifier kind: email, slack, webhook, ...
FAILURE_REASON = "reason"  # added to the failure counter by later Alertmanager versions
RULE_GROUP = "rule_group"  # `<file>;<group>` on Prometheus' rule-group metrics
ALERTMANAGER_URL = "alertmanager"  # the Alertmanager API URL on Prometheus' notification counters

UP = Metric(
    "up",
    GAUGE,
    "1 when Prometheus' last scrape of the target succeeded, 0 otherwise (written by Prometheus).",
    (),
    "Prometheus",
)
ALERTMANAGER_NOTIFICATIONS = Metric(
    "alertmanager_notifications_total",
    COUNTER,
    "Notifications Alertmanager attempted, by integration.",
    (INTEGRATION,),
    "Alertmanager",
)
ALERTMANAGER_NOTIFICATIONS_FAILED = Metric(
    "alertmanager_notifications_failed_total",
    COUNTER,
    "Notifications Alertmanager failed to deliver, by integration.",
    (INTEGRATION,),
    "Alertmanager",
)


def _prometheus(name: str, type_: str, help_: str, labels: tuple[str, ...] = ()) -> Metric:
    return Metric(name, type_, help_, labels, "Prometheus")


# --- Prometheus' own health (alerts/self_monitoring.py) ----------------------------------------
CONFIG_RELOAD_SUCCESSFUL = _prometheus(
    "prometheus_config_last_reload_successful", GAUGE, "1 when the last configuration reload succeeded, 0 otherwise."
)
RULE_EVALUATION_FAILURES = _prometheus(
    "prometheus_rule_evaluation_failures_total", COUNTER, "Rule evaluations that failed, by rule group.", (RULE_GROUP,)
)
RULE_GROUP_MISSED = _prometheus(
    "prometheus_rule_group_iterations_missed_total",
    COUNTER,
    "Rule-group evaluations skipped because the previous one was still running.",
    (RULE_GROUP,),
)
ALERTMANAGERS_DISCOVERED = _prometheus(
    "prometheus_notifications_alertmanagers_discovered", GAUGE, "Alertmanagers this Prometheus knows and sends to."
)
NOTIFICATIONS_SENT = _prometheus(
    "prometheus_notifications_sent_total", COUNTER, "Alerts sent, by Alertmanager, failed sends included.", (ALERTMANAGER_URL,)
)
NOTIFICATIONS_ERRORS = _prometheus(
    "prometheus_notifications_errors_total", COUNTER, "Alerts that could not be sent, by Alertmanager.", (ALERTMANAGER_URL,)
)
NOTIFICATIONS_QUEUE_LENGTH = _prometheus(
    "prometheus_notifications_queue_length", GAUGE, "Alerts waiting in the queue towards Alertmanager."
)
NOTIFICATIONS_QUEUE_CAPACITY = _prometheus(
    "prometheus_notifications_queue_capacity", GAUGE, "How many alerts the queue towards Alertmanager holds."
)
TSDB_RELOADS_FAILED = _prometheus(
    "prometheus_tsdb_reloads_failures_total", COUNTER, "Failed reloads of the storage's blocks from disk."
)
TSDB_COMPACTIONS_FAILED = _prometheus(
    "prometheus_tsdb_compactions_failed_total", COUNTER, "Failed compactions of the storage's blocks."
)
TSDB_WAL_WRITES_FAILED = _prometheus(
    "prometheus_tsdb_wal_writes_failed_total", COUNTER, "Failed writes to the write-ahead log: samples lost."
)
SCRAPES_OVER_SAMPLE_LIMIT = _prometheus(
    "prometheus_target_scrapes_exceeded_sample_limit_total", COUNTER, "Scrapes refused for exceeding sample_limit."
)
SCRAPES_OVER_LABEL_LIMIT = _prometheus(
    "prometheus_target_scrape_pool_exceeded_label_limits_total",
    COUNTER,
    "Scrapes refused for exceeding label_limit, label_name_length_limit or label_value_length_limit.",
)
SCRAPES_OVER_BODY_SIZE_LIMIT = _prometheus(
    "prometheus_target_scrapes_exceeded_body_size_limit_total", COUNTER, "Scrapes refused for exceeding body_size_limit."
)

# --- Alertmanager's own health ------------------------------------------------------------------
ALERTMANAGER_CONFIG_RELOAD_SUCCESSFUL = Metric(
    "alertmanager_config_last_reload_successful",
    GAUGE,
    "1 when Alertmanager's last configuration reload succeeded, 0 otherwise.",
    (),
    "Alertmanager",
)
