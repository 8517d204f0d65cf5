"""Names that Prometheus and Alertmanager define and only the dashboards use, declared once.

Our own vocabulary is `exporter/catalogue.py`; the names the alerts share with the dashboards (`up`,
Alertmanager's notification counters, Prometheus' rule-group counters, `le`) are in
`alerts/upstream.py`. These are the rest: what the pipeline-health dashboard reads from Prometheus' and Alertmanager's own /metrics (checked
against Prometheus 2.42 and Alertmanager 0.25), and the `ALERTS` series Prometheus writes for every
pending or firing alert.
"""

from __future__ import annotations

from pharos_monitoring.alerts.upstream import ALERTNAME, RULE_EVALUATION_FAILURES, RULE_GROUP, RULE_GROUP_MISSED  # noqa: F401 (re-exported)
from pharos_monitoring.exporter.catalogue import COUNTER, GAUGE, Metric

ALERT_STATE = "alertstate"  # label of ALERTS: pending | firing
FIRING = "firing"
ALERTMANAGER_STATE = "state"  # label of alertmanager_alerts: active | suppressed | unprocessed
ACTIVE = "active"

ALERTS = Metric(
    "ALERTS",
    GAUGE,
    "1 for every pending or firing alert, with the alert's labels (written by Prometheus).",
    (ALERTNAME, ALERT_STATE),
    "Prometheus",
)
SCRAPE_DURATION = Metric(
    "scrape_duration_seconds",
    GAUGE,
    "How long Prometheus' last scrape of the target took (written by Prometheus).",
    (),
    "Prometheus",
)
RULE_GROUP_DURATION = Metric(
    "prometheus_rule_group_last_duration_seconds",
    GAUGE,
    "Duration of the last evaluation of a rule group.",
    (RULE_GROUP,),
    "Prometheus",
)
RULE_GROUP_INTERVAL = Metric(
    "prometheus_rule_group_interval_seconds",
    GAUGE,
    "The configured evaluation interval of a rule group.",
    (RULE_GROUP,),
    "Prometheus",
)
ALERTMANAGER_ALERTS = Metric(
    "alertmanager_alerts",
    GAUGE,
    "Alerts Alertmanager holds, by state.",
    (ALERTMANAGER_STATE,),
    "Alertmanager",
)

# Prometheus' own health beyond what the self-monitoring alerts read (alerts/upstream.py).
SD_CONFIG = "config"  # label of the service-discovery metrics: the scrape job (or alerting config)
HEAD_SERIES = Metric("prometheus_tsdb_head_series", GAUGE, "Series in Prometheus' in-memory head block.", (), "Prometheus")
HEAD_SAMPLES_APPENDED = Metric(
    "prometheus_tsdb_head_samples_appended_total", COUNTER, "Samples Prometheus appended to its head block.", (), "Prometheus"
)
SD_DISCOVERED_TARGETS = Metric(
    "prometheus_sd_discovered_targets", GAUGE, "Targets service discovery currently finds, by configuration.", (SD_CONFIG,), "Prometheus"
)
SD_FAILED_CONFIGS = Metric(
    "prometheus_sd_failed_configs", GAUGE, "Service-discovery configurations that failed to load.", (), "Prometheus"
)
