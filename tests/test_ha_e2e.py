"""High availability of one environment on the real binaries, from a `pharos build` output.

The stack is `pharos up --fast`'s own stack file (pharos/local/local_stack.py) for production
only, with an `ha:` section: two Prometheus replicas and a cluster of three Alertmanagers, each
started with the flags the build writes into ha.yml, a demo service behind its sidecar exporter,
and the loopback mail and Slack sinks (`pharos sinks`). While PharosHighErrorRate is pending,
one Prometheus and the Alertmanager that would send (cluster position 0) are killed with SIGKILL;
the survivors must still deliver exactly one "firing" and one "resolved" message for the group,
to each channel, and the surviving Prometheus must report the dead components.

Everything listens on 127.0.0.1 on ports picked free, keeps its data under tmp_path, and is
killed at the end; every wait is bounded. The figures it prints are what docs/fleet.md quotes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from pharos_monitoring.alerts.catalogue import HIGH_ERROR_RATE, WATCHDOG
from pharos_monitoring.alerts.model import duration_seconds
from pharos_monitoring.alerts.self_monitoring import MONITORING_COMPONENT_DOWN
from pharos_monitoring.config import ha
from pharos_monitoring.config.build import build
from pharos_monitoring.config.stack_config import load
from pharos_monitoring.demo.processes import Child, free_ports, pharos_command, stop_all, wait_until_answers, wait_until_listening
from pharos_monitoring.local import local_stack, sinks
from pharos_monitoring.local.local_stack import HOST, Ports
from pharos_monitoring.local.up import find_binaries
from pharos_monitoring.config.yaml_out import dump

from helpers import wait_for

pytestmark = pytest.mark.slow

ENVIRONMENT = "production"
SERVICE = "orders"
PAGER_MAIL = local_stack.ONCALL
PAGER_CHANNEL = "#production-pages"
TEAM_CHANNEL = "#production"  # where warnings of production go: PharosMonitoringComponentDown
START_SECONDS = 60
SETTLE_SECONDS = 40
SIGNAL_SECONDS = 60
RESEND_DELAY = "2s"



def get_json(url: str):
    try:
        return requests.get(url, timeout=5).json()
    except (requests.RequestException, ValueError):
        return None


def query(prometheus: str, expr: str) -> list:
    answer = get_json(f"{prometheus}/api/v1/query?query={requests.utils.quote(expr)}")
    return answer["data"]["result"] if answer and answer.get("status") == "success" else []


def stack_file(directory: Path, ports: dict[str, list[int]]) -> Path:
    """local_stack's --fast stack, production only, with a Prometheus pair and three Alertmanagers."""
    layout = Ports(
        prometheus={"production": ports["prometheus"][0], "beta": ports["prometheus"][1]},
        alertmanager=ports["alertmanager"][0],
        smtp=ports["smtp"][0],
        slack=ports["slack"][0],
        probe_exporter=ports["unused"][0],
        apps={"production/orders": ports["app"][0], "beta/orders": ports["unused"][0]},
        sidecars={"production/orders": ports["sidecar"][0]},
    )
    webhooks = local_stack.write_webhook_secrets(directory / "secrets", layout.slack)
    data = local_stack.stack_data(layout, webhooks, fast=True)
    production = data["environments"][ENVIRONMENT]
    production.pop("node_exporters", None)  # no node_exporter here: this test is about the pair and the cluster
    production["alertmanagers"] = [f"{HOST}:{port}" for port in ports["alertmanager"]]
    production[ha.HA_KEY] = {
        "prometheus": [f"{HOST}:{port}" for port in ports["prometheus"]],
        "alertmanager_cluster": [f"{HOST}:{port}" for port in ports["gossip"]],
    }
    data["environments"] = {ENVIRONMENT: production}
    path = directory / "stack.yml"
    path.write_text(dump(data))
    return path


def cluster_ready(alertmanager: str, size: int) -> bool:
    status = get_json(f"{alertmanager}/api/v2/status")
    cluster = (status or {}).get("cluster") or {}
    return cluster.get("status") == "ready" and len(cluster.get("peers") or []) == size


def prometheus_ready(prometheus: str, alertmanagers: int) -> bool:
    targets = (get_json(f"{prometheus}/api/v1/targets") or {}).get("data", {}).get("activeTargets", [])
    found = (get_json(f"{prometheus}/api/v1/alertmanagers") or {}).get("data", {}).get("activeAlertmanagers", [])
    return bool(targets) and all(target["health"] == "up" for target in targets) and len(found) == alertmanagers


def describe(prometheus: str) -> str:
    targets = (get_json(f"{prometheus}/api/v1/targets") or {}).get("data", {}).get("activeTargets", [])
    found = (get_json(f"{prometheus}/api/v1/alertmanagers") or {}).get("data", {}).get("activeAlertmanagers", [])
    lines = [f"{t['labels']['job']} {t['labels']['instance']}: {t['health']} {t['lastError']}" for t in targets]
    return "\n".join(lines + [f"{len(found)} Alertmanagers found"])


def messages(state: Path, alert: str, status: str) -> tuple[list[dict], list[dict]]:
    mails = [m for m in sinks.read_mail(state) if alert in m["subject"] and f"[{status}" in m["subject"]]
    slack = [m for m in sinks.read_slack(state) if alert in m["title"] and f"[{status}" in m["title"]]
    return mails, slack


def test_a_pair_and_a_cluster_of_three_lose_one_each_mid_alert_and_notify_once(tmp_path: Path):
    binaries = find_binaries()
    counts = {"prometheus": 2, "alertmanager": 3, "gossip": 3, "smtp": 1, "slack": 1, "app": 1, "sidecar": 1, "unused": 1}
    picked = iter(free_ports(sum(counts.values())))
    ports = {name: [next(picked) for _ in range(count)] for name, count in counts.items()}
    stack = load(str(stack_file(tmp_path, ports)))
    out = tmp_path / "build"
    build(stack, out, ENVIRONMENT)
    flags = yaml.safe_load((out / ha.FLAGS_FILE).read_text())
    timing = stack.timing
    peer_timeout = stack.environment(ENVIRONMENT).ha.peer_timeout_seconds

    state, logs = tmp_path / "state", tmp_path / "logs"
    logs.mkdir()
    stop = threading.Event()
    children: list[Child] = []

    def start(name: str, command: list[str], **options) -> Child:
        child = Child(name, command, log=logs / f"{name}.log", **options)
        children.append(child)
        return child

    started_at = time.monotonic()
    try:
        sink = start("sinks", pharos_command("sinks", "--dir", str(state), "--smtp", f"{HOST}:{ports['smtp'][0]}", "--slack", f"{HOST}:{ports['slack'][0]}"))
        app_url = f"http://{HOST}:{ports['app'][0]}"
        app = start("demo-app", pharos_command("demo-app", "--listen", f"{HOST}:{ports['app'][0]}", "--service", SERVICE, "--environment", ENVIRONMENT, "--traffic", "20", "--memory-limit-mb", "1024"))
        sidecar_config = tmp_path / "sidecar.yml"
        sidecar_config.write_text(dump({"listen": f"{HOST}:{ports['sidecar'][0]}", "targets": [{"name": SERVICE, "url": f"{app_url}/stats", "profile": "pharo"}]}))
        sidecar = start("sidecar", pharos_command("exporter", "--config", str(sidecar_config)))
        alertmanagers = []
        for number, member in enumerate(flags["alertmanager"], start=1):
            command = [binaries["Alertmanager"], f"--config.file={out / 'alertmanager' / 'alertmanager.yml'}", f"--storage.path={tmp_path / f'alertmanager-{number}'}", *member["flags"]]
            alertmanagers.append((start(f"alertmanager-{number}", command), f"http://{member['address']}"))
        replicas = []
        for number, replica in enumerate(flags["prometheus"], start=1):
            command = [binaries["Prometheus"], f"--config.file={out / 'prometheus' / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / f'prometheus-{number}'}", *replica["flags"]]
            # Alerts fired before the Alertmanagers are discovered are dropped and sent again only after
            # the resend delay (1m by default): the Watchdog check below would wait that long.
            command.append(f"--rules.alert.resend-delay={RESEND_DELAY}")
            replicas.append((start(f"prometheus-{number}", command, environment=replica["environment"]), f"http://{replica['address']}"))

        wait_until_listening(sink, HOST, ports["smtp"][0], START_SECONDS, stop)
        wait_until_answers(app, f"{app_url}/health", START_SECONDS, stop, ready=lambda status: status == 200)
        wait_until_answers(sidecar, f"http://{HOST}:{ports['sidecar'][0]}/", START_SECONDS, stop, ready=lambda status: status == 200)
        for child, url in alertmanagers + replicas:
            wait_until_answers(child, f"{url}/-/ready", START_SECONDS, stop, ready=lambda status: status == 200)
        running_at = time.monotonic()
        for _, url in alertmanagers:
            assert wait_for(lambda: cluster_ready(url, len(alertmanagers)), SETTLE_SECONDS), f"{url}: the cluster did not settle: {get_json(url + '/api/v2/status')}"
        settled_at = time.monotonic()
        for _, url in replicas:
            assert wait_for(lambda: prometheus_ready(url, len(alertmanagers)), START_SECONDS), f"{url}: targets not all up or Alertmanagers not all found: {describe(url)}"
        # Each replica carries its own `replica` (expanded from REPLICA): what federation and remote write see.
        for number, (_, url) in enumerate(replicas, start=1):
            federated = requests.get(f"{url}/federate", params={"match[]": 'up{job="prometheus"}'}, timeout=5).text
            assert f'replica="{number}"' in federated and "${REPLICA}" not in federated, federated

        # Both replicas fire the Watchdog and send it to every member: without `replica` it is one
        # alert in each (with it, two: the pair would notify twice for everything).
        senders = "sum by (instance) (prometheus_notifications_sent_total{job=\"prometheus\"}) > 0"
        assert wait_for(lambda: len(query(replicas[0][1], senders)) == len(replicas), SIGNAL_SECONDS), "a replica sent no alert"
        for _, url in alertmanagers:
            watchdogs = get_json(f"{url}/api/v2/alerts?filter=alertname%3D%22{WATCHDOG.name}%22")
            assert len(watchdogs) == 1 and "replica" not in watchdogs[0]["labels"], f"{url}: the pair's Watchdog is not one alert: {watchdogs}"

        checked_at = time.monotonic()
        requests.post(f"{app_url}/faults", json={"error_ratio": 1}, timeout=5).raise_for_status()
        fault_at = time.monotonic()
        pending = f'ALERTS{{alertname="{HIGH_ERROR_RATE.name}", alertstate="pending"}}'
        assert wait_for(lambda: all(query(url, pending) for _, url in replicas), SIGNAL_SECONDS), "PharosHighErrorRate never pending on both replicas"

        # Kill the Alertmanager that would notify (position 0: the first of the sorted peer names) and a Prometheus.
        names = {url: get_json(f"{url}/api/v2/status")["cluster"]["name"] for _, url in alertmanagers}
        sender = min(names, key=names.get)
        doomed = [child for child, url in alertmanagers if url == sender] + [replicas[0][0]]
        assert all(query(url, pending) for _, url in replicas), "the alert fired before the kill: no test of a kill mid-alert"
        for child in doomed:
            child.kill()
        killed_at = time.monotonic()
        survivor = replicas[1][1]

        def arrived(alert: str, status: str):
            mails, slack = messages(state, alert, status)
            return (mails, slack) if mails and slack else None

        assert wait_for(lambda: arrived(HIGH_ERROR_RATE.name, "FIRING"), SIGNAL_SECONDS), f"no firing {HIGH_ERROR_RATE.name} by mail and Slack"
        fired_at = time.monotonic()
        told = wait_for(lambda: [m for m in messages(state, MONITORING_COMPONENT_DOWN.name, "FIRING")[1] if m["channel"] == TEAM_CHANNEL], SIGNAL_SECONDS)
        assert told, "the surviving Prometheus did not report the dead components"
        told_at = time.monotonic()
        down = {(r["metric"]["job"], r["metric"]["instance"]) for r in query(survivor, 'up == 0')}
        assert down == {("prometheus", flags["prometheus"][0]["address"]), ("alertmanager", sender.split("//")[1])}, down

        requests.delete(f"{app_url}/faults", timeout=5).raise_for_status()
        cleared_at = time.monotonic()
        assert wait_for(lambda: arrived(HIGH_ERROR_RATE.name, "RESOLVED"), SIGNAL_SECONDS), f"no resolved {HIGH_ERROR_RATE.name} by mail and Slack"
        resolved_at = time.monotonic()
        # A late peer's duplicate comes within its wait (position x peer timeout) after a group_interval tick.
        time.sleep(duration_seconds(timing.group_interval) + (len(alertmanagers) - 1) * peer_timeout + 1)
    finally:
        stop.set()
        stop_all(reversed(children), grace=5)

    for status in ("FIRING", "RESOLVED"):
        mails, slack = messages(state, HIGH_ERROR_RATE.name, status)
        assert [mail["to"] for mail in mails] == [[PAGER_MAIL]], f"{status}: one mail to the pager, got {mails}"
        assert [message["channel"] for message in slack] == [PAGER_CHANNEL], f"{status}: one Slack message to {PAGER_CHANNEL}, got {slack}"
    print(
        f"\nHA: processes answering {running_at - started_at:.1f} s, cluster settled {settled_at - running_at:.1f} s later, "
        f"replicas ready {checked_at - settled_at:.1f} s later; "
        f"fault -> firing {fired_at - fault_at:.1f} s (kill {killed_at - fault_at:.1f} s after the fault), "
        f"kill -> {MONITORING_COMPONENT_DOWN.name} in {TEAM_CHANNEL} {told_at - killed_at:.1f} s, "
        f"fault cleared -> resolved {resolved_at - cleared_at:.1f} s; peer timeout {peer_timeout} s, "
        f"messages: firing 1 mail + 1 Slack, resolved 1 mail + 1 Slack"
    )
