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
SLO = "slo"  # ours: which objective of a service an SLO series or alert is about (alerts/slo.py)

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


# --- node_exporter: host metrics of every machine (the `node` job of pharos/config/node_scrape.py) --
# Checked against the /metrics of Debian's prometheus-node-exporter 1.5.0.
NODE_JOB = "node"  # the scrape job of node_exporter; its targets carry `node` and `environment`
NODE_MOUNTPOINT = "mountpoint"
NODE_FSTYPE = "fstype"
NODE_DEVICE = "device"
NODE_CPU_MODE = "mode"
NODE_CPU_IDLE = "idle"
# File systems that are not disks: their free space says nothing about a disk filling up.
NODE_VIRTUAL_FSTYPES = ("tmpfs", "ramfs", "squashfs", "overlay", "nsfs", "fuse.lxcfs")
# Network devices that are not the machine's own traffic (loopback, container bridges and veths).
NODE_VIRTUAL_DEVICES = ("lo", "veth.*", "docker.*", "br-.*", "ifb.*")


def _node(name: str, type_: str, help_: str, labels: tuple[str, ...] = ()) -> Metric:
    return Metric(name, type_, help_, labels, "node_exporter")


NODE_FILESYSTEM_AVAIL = _node(
    "node_filesystem_avail_bytes", GAUGE, "Bytes of a file system that unprivileged users may still fill.", (NODE_DEVICE, NODE_FSTYPE, NODE_MOUNTPOINT)
)
NODE_FILESYSTEM_SIZE = _node("node_filesystem_size_bytes", GAUGE, "Size of a file system in bytes.", (NODE_DEVICE, NODE_FSTYPE, NODE_MOUNTPOINT))
NODE_MEMORY_AVAILABLE = _node(
    "node_memory_MemAvailable_bytes", GAUGE, "Memory the kernel estimates is available for new work without swapping (MemAvailable)."
)
NODE_MEMORY_TOTAL = _node("node_memory_MemTotal_bytes", GAUGE, "Physical memory the kernel manages (MemTotal).")
NODE_CPU_SECONDS = _node("node_cpu_seconds_total", COUNTER, "Seconds each CPU spent in each mode.", ("cpu", NODE_CPU_MODE))
NODE_NETWORK_RECEIVE = _node("node_network_receive_bytes_total", COUNTER, "Bytes received by a network device.", (NODE_DEVICE,))
NODE_NETWORK_TRANSMIT = _node("node_network_transmit_bytes_total", COUNTER, "Bytes sent by a network device.", (NODE_DEVICE,))
