"""The self-monitoring alerts read metrics that Prometheus 2.42 and Alertmanager 0.25 really expose:
each name of alerts/upstream.py is looked up in the /metrics of a real Prometheus (loading the
catalogue's rules, so that its rule-group metrics exist), a real Alertmanager and a real
node_exporter (1.5.0, for the node alerts), on loopback."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from pharos_monitoring.alerts import prometheus_rules, upstream
from pharos_monitoring.alerts.self_monitoring import SELF_MONITORING_ALERTS
from pharos_monitoring.alerts.catalogue import ALERTS
from pharos_monitoring.config.yaml_out import dump
from pharos_monitoring.exporter.catalogue import Metric

from alerting_tools import running_alertmanager

PROMETHEUS = "/usr/bin/prometheus"
UPSTREAM = [value for value in vars(upstream).values() if isinstance(value, Metric)]


def _metrics(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        return response.read().decode()


def _families(exposition: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", exposition, re.MULTILINE))


def _running_prometheus(directory: Path, alertmanager: str):
    for name, content in prometheus_rules.rule_files("production", "https://example.com/runbooks.md").items():
        (directory / name).write_text(dump(content))
    config = directory / "prometheus.yml"
    config.write_text(
        dump(
            {
                "global": {"evaluation_interval": "1s"},
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
                "rule_files": [str(directory / name) for name in (prometheus_rules.ALERTS_FILE, prometheus_rules.RECORDING_FILE)],
            }
        )
    )
    log = open(directory / "prometheus.log", "w")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}", "--web.listen-address=127.0.0.1:0"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, log


def _node_exporter_families() -> set[str]:
    """The families Debian's node_exporter exposes on this machine (the `node` job's alerts read them)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    assert binary, "node_exporter is not installed: apt-get install prometheus-node-exporter (scripts/setup.sh does)"
    process = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", "--no-collector.systemd"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                return _families(_metrics(f"http://127.0.0.1:{port}"))
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_every_upstream_metric_exists_in_the_real_binaries(tmp_path: Path):
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(dump({"route": {"receiver": "nobody"}, "receivers": [{"name": "nobody"}]}))
    with running_alertmanager(am_config, tmp_path) as alertmanager_url:
        alertmanager_families = _families(_metrics(alertmanager_url))
        process, log = _running_prometheus(tmp_path, alertmanager_url.split("//")[1])
        try:
            deadline, families = time.monotonic() + 30, set()
            while time.monotonic() < deadline:
                match = re.search(r'msg="Listening on" address=(127\.0\.0\.1:\d+)', (tmp_path / "prometheus.log").read_text())
                if match:
                    families = _families(_metrics(f"http://{match.group(1)}"))
                    # Rule-group metrics come with the rules, per-Alertmanager ones once it is discovered.
                    if {upstream.RULE_EVALUATION_FAILURES.name, upstream.NOTIFICATIONS_SENT.name} <= families:
                        break
                time.sleep(0.2)
        finally:
            process.terminate()
            process.wait(timeout=10)
            log.close()
    exposed = {"Prometheus": families | {upstream.UP.name}, "Alertmanager": alertmanager_families}  # `up` is synthetic
    exposed["node_exporter"] = _node_exporter_families()
    # The Go client writes a counter's TYPE line with its full name, `_total` included.
    missing = [metric.name for metric in UPSTREAM if metric.name not in exposed[metric.group]]
    assert not missing, f"not exposed by the real binaries: {missing}"


def test_self_monitoring_alerts_are_in_the_catalogue_once():
    names = [alert.name for alert in ALERTS]
    assert all(names.count(alert.name) == 1 for alert in SELF_MONITORING_ALERTS)
