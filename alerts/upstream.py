"""Metric and label names that Prometheus and Alertmanager define, declared once like our own.

The exporter's vocabulary lives in `exporter/catalogue.py`; these are the few names the alerts need
from the tools around it: Prometheus' synthetic `up`, Alertmanager's delivery counters (checked
against Alertmanager 0.25's own /metrics), and the labels that alert routing is built on.
"""

from __future__ import annotations

from pharos_monitoring.exporter.catalogue import COUNTER, GAUGE, Metric

ALERTNAME = "alertname"  # set by Prometheus on every alert
SEVERITY = "severity"  # set by every alert of the catalogue: critical | warning | info
BUCKET_BOUND = "le"  # a histogram bucket's upper bound
INTEGRATION = "integration"  # Alertmanager's notifier kind: email, slack, webhook, ...
FAILURE_REASON = "reason"  # added to the failure counter by later Alertmanager versions

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
