"""High availability of one environment and the fleet above it, on the real binaries, from a
`pharos build` output.

The stack is `pharos up --fast`'s own stack file (pharos/local/local_stack.py) for production
only, with an `ha:` section and its `fleet:`: two Prometheus replicas and a cluster of three
Alertmanagers, each started with the flags the build writes into ha.yml; the global store
(VictoriaMetrics) and vmalert with the flags and rules of fleet/; a demo service behind its
sidecar exporter, and the loopback mail and Slack sinks (`pharos sinks`). One stack serves the
tests of this module, in order (each leaves it as the next expects):

1. the store stopped for two minutes while traffic runs: no gap once it is back;
2. the store holds the pair once: a global rate equals one replica's, across that outage;
3. while PharosHighErrorRate is pending, one Prometheus and the Alertmanager that would send
   (cluster position 0) are killed with SIGKILL: exactly one "firing" and one "resolved" message
   per channel, and the survivors report the dead components;
4. the fleet reports the missing replica;
5. the whole pair stopped: the fleet's PharosEnvironmentSilent names production, by mail and Slack.

Everything listens on 127.0.0.1 on ports picked free, keeps its data under a temporary directory,
and is killed at the end; every wait is bounded. The figures it prints are what docs/fleet.md quotes.
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
from pharos_monitoring.config import fleet, ha
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
FLEET_SIGNAL_SECONDS = 150  # the silence window, the alert's `for`, the store's latency offset
RESEND_DELAY = "2s"
STORE_DOWN_SECONDS = 120



def get_json(url: str):
    try:
        return requests.get(url, timeout=5).json()
    except (requests.RequestException, ValueError):
        return None


def query(prometheus: str, expr: str) -> list:
    answer = get_json(f"{prometheus}/api/v1/query?query={requests.utils.quote(expr)}")
    return answer["data"]["result"] if answer and answer.get("status") == "success" else []


def stack_file(directory: Path, ports: dict[str, list[int]]) -> Path:
    """local_stack's --fast stack, production only, with a Prometheus pair, three Alertmanagers
    and the fleet's store and vmalert."""
    layout = Ports(
        prometheus={"production": ports["prometheus"][0], "beta": ports["prometheus"][1]},
        alertmanager=ports["alertmanager"][0],
        smtp=ports["smtp"][0],
        slack=ports["slack"][0],
        probe_exporter=ports["unused"][0],
        apps={"production/orders": ports["app"][0], "beta/orders": ports["unused"][0]},
        sidecars={"production/orders": ports["sidecar"][0]},
        global_store=ports["store"][0],
        vmalert=ports["vmalert"][0],
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


class Stack:
    """The HA environment and its fleet, started once for the module."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.binaries = find_binaries()
        counts = {"prometheus": 2, "alertmanager": 3, "gossip": 3, "smtp": 1, "slack": 1, "app": 1, "sidecar": 1, "unused": 1, "store": 1, "vmalert": 1}
        picked = iter(free_ports(sum(counts.values())))
        self.ports = {name: [next(picked) for _ in range(count)] for name, count in counts.items()}
        self.config = load(str(stack_file(directory, self.ports)))
        self.out = directory / "build"
        build(self.config, self.out, ENVIRONMENT)
        build(self.config, self.out / fleet.FLEET_DIR, fleet.FLEET_DIR)
        self.flags = yaml.safe_load((self.out / ha.FLAGS_FILE).read_text())
        self.fleet_flags = yaml.safe_load((self.out / fleet.FLEET_DIR / fleet.FLAGS_FILE).read_text())
        self.state, self.logs = directory / "state", directory / "logs"
        self.logs.mkdir()
        self.stop = threading.Event()
        self.children: list[Child] = []
        self.app_url = f"http://{HOST}:{self.ports['app'][0]}"
        self.store_url = f"http://{HOST}:{self.ports['store'][0]}"
        self.alertmanagers: list[tuple[Child, str]] = []
        self.replicas: list[tuple[Child, str]] = []
        self.timings: dict[str, float] = {}

    def _start(self, name: str, command: list[str], **options) -> Child:
        child = Child(name, command, log=self.logs / f"{name}.log", **options)
        self.children.append(child)
        return child

    def start_store(self) -> Child:
        store = self.fleet_flags["victoria-metrics"]
        command = [self.binaries["VictoriaMetrics"], *store["flags"], f"{store['data_flag']}={self.directory / 'global-store'}"]
        child = self._start("global-store", command)
        wait_until_answers(child, f"{self.store_url}/health", START_SECONDS, self.stop, ready=lambda status: status == 200)
        return child

    def start(self) -> "Stack":
        started_at = time.monotonic()
        ports, out = self.ports, self.out
        sink = self._start("sinks", pharos_command("sinks", "--dir", str(self.state), "--smtp", f"{HOST}:{ports['smtp'][0]}", "--slack", f"{HOST}:{ports['slack'][0]}"))
        app = self._start("demo-app", pharos_command("demo-app", "--listen", f"{HOST}:{ports['app'][0]}", "--service", SERVICE, "--environment", ENVIRONMENT, "--traffic", "20", "--memory-limit-mb", "1024"))
        sidecar_config = self.directory / "sidecar.yml"
        sidecar_config.write_text(dump({"listen": f"{HOST}:{ports['sidecar'][0]}", "targets": [{"name": SERVICE, "url": f"{self.app_url}/stats", "profile": "pharo"}]}))
        sidecar = self._start("sidecar", pharos_command("exporter", "--config", str(sidecar_config)))
        self.store = self.start_store()
        for number, member in enumerate(self.flags["alertmanager"], start=1):
            command = [self.binaries["Alertmanager"], f"--config.file={out / 'alertmanager' / 'alertmanager.yml'}", f"--storage.path={self.directory / f'alertmanager-{number}'}", *member["flags"]]
            self.alertmanagers.append((self._start(f"alertmanager-{number}", command), f"http://{member['address']}"))
        for number, replica in enumerate(self.flags["prometheus"], start=1):
            command = [self.binaries["Prometheus"], f"--config.file={out / 'prometheus' / 'prometheus.yml'}", f"--storage.tsdb.path={self.directory / f'prometheus-{number}'}", *replica["flags"]]
            # Alerts fired before the Alertmanagers are discovered are dropped and sent again only after
            # the resend delay (1m by default): the Watchdog check below would wait that long.
            command += [f"--rules.alert.resend-delay={RESEND_DELAY}", "--storage.remote.flush-deadline=2s"]
            self.replicas.append((self._start(f"prometheus-{number}", command, environment=replica["environment"]), f"http://{replica['address']}"))

        wait_until_listening(sink, HOST, ports["smtp"][0], START_SECONDS, self.stop)
        wait_until_answers(app, f"{self.app_url}/health", START_SECONDS, self.stop, ready=lambda status: status == 200)
        wait_until_answers(sidecar, f"http://{HOST}:{ports['sidecar'][0]}/", START_SECONDS, self.stop, ready=lambda status: status == 200)
        for child, url in self.alertmanagers + self.replicas:
            wait_until_answers(child, f"{url}/-/ready", START_SECONDS, self.stop, ready=lambda status: status == 200)
        rules = self.fleet_flags["vmalert"]
        vmalert_url = f"http://{HOST}:{ports['vmalert'][0]}"
        built = out / fleet.FLEET_DIR
        command = [self.binaries["vmalert"], *rules["flags"], f"{rules['rules_flag']}={built / fleet.RULES_DIR / '*.yml'}", f"{rules['notifier_flag']}={built / fleet.NOTIFIER_FILE}"]
        vmalert = self._start("vmalert", command)
        wait_until_answers(vmalert, f"{vmalert_url}/health", START_SECONDS, self.stop, ready=lambda status: status == 200)
        running_at = time.monotonic()
        for _, url in self.alertmanagers:
            assert wait_for(lambda: cluster_ready(url, len(self.alertmanagers)), SETTLE_SECONDS), f"{url}: the cluster did not settle: {get_json(url + '/api/v2/status')}"
        settled_at = time.monotonic()
        for _, url in self.replicas:
            assert wait_for(lambda: prometheus_ready(url, len(self.alertmanagers)), START_SECONDS), f"{url}: targets not all up or Alertmanagers not all found: {describe(url)}"
        self.started = time.time()
        self.timings |= {"answering": running_at - started_at, "settled": settled_at - running_at, "ready": time.monotonic() - settled_at}
        return self

    def close(self) -> None:
        self.stop.set()
        stop_all(reversed(self.children), grace=5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("ha"))
    try:
        yield running.start()
    finally:
        running.close()


def store_query(stack: Stack, expr: str) -> list:
    # nocache: the store would otherwise answer from its cache of what it had a moment ago
    answer = get_json(f"{stack.store_url}/api/v1/query?nocache=1&query={requests.utils.quote(expr)}")
    return answer["data"]["result"] if answer and answer.get("status") == "success" else []


def raw_timestamps(stack: Stack, selector: str, start: float, end: float) -> list[float]:
    """Every sample the store kept for `selector` between start and end, in seconds."""
    answer = requests.get(f"{stack.store_url}/api/v1/export", params={"match[]": selector, "start": f"{start:.3f}", "end": f"{end:.3f}"}, timeout=10)
    answer.raise_for_status()
    stamps = set()
    for line in answer.text.splitlines():
        stamps.update(stamp / 1000 for stamp in yaml.safe_load(line)["timestamps"])
    return sorted(stamps)


def test_the_store_down_two_minutes_loses_nothing(stack: Stack):
    """Prometheus keeps what it could not write (its WAL) and catches up when the store is back."""
    scrape = duration_seconds(stack.config.intervals.scrape_interval)
    selector = f'up{{job="{SERVICE}"}}'
    assert wait_for(lambda: raw_timestamps(stack, selector, stack.started - 60, time.time() + 60), SIGNAL_SECONDS), "nothing reaches the store"
    time.sleep(max(0.0, stack.started + 40 - time.time()))  # half a minute of data before the outage
    stack.store.terminate()
    assert stack.store.process.wait(timeout=30) is not None
    stopped = time.time()
    time.sleep(STORE_DOWN_SECONDS)
    restarted = time.time()
    stack.store = stack.start_store()
    # Caught up: the store has samples from after its restart.
    assert wait_for(lambda: [t for t in raw_timestamps(stack, selector, restarted, time.time() + 60) if t > restarted], SIGNAL_SECONDS), "nothing new arrived"
    caught_up = time.time() - restarted
    stamps = raw_timestamps(stack, selector, stopped - 30, restarted + 5)
    gaps = [later - earlier for earlier, later in zip(stamps, stamps[1:])]
    assert stamps and stamps[0] < stopped - 20 and stamps[-1] > restarted, (stamps[:3], stamps[-3:], stopped, restarted)
    assert max(gaps) <= 2 * scrape + 1, f"a gap of {max(gaps):.1f} s in the store around its outage ({stopped:.0f}..{restarted:.0f})"
    expected = (restarted + 5 - (stopped - 30)) / scrape
    assert len(stamps) >= 0.98 * expected, f"{len(stamps)} samples kept of about {expected:.0f}"
    for _, url in stack.replicas:
        lost = query(url, 'sum(prometheus_remote_storage_samples_failed_total) + sum(prometheus_remote_storage_samples_dropped_total)')
        assert lost and float(lost[0]["value"][1]) == 0, f"{url}: samples failed or dropped: {lost}"
    print(f"\nfleet: store down {STORE_DOWN_SECONDS} s; caught up {caught_up:.1f} s after its restart; {len(stamps)} samples, largest gap {max(gaps):.1f} s")


def test_the_store_holds_the_pair_once(stack: Stack):
    """Both replicas write every series; the store keeps one: a global rate equals a replica's (2 %),
    also over the minutes the store was down."""
    # Each replica carries its own `replica` (expanded from REPLICA): what federation and remote write see.
    for number, (_, url) in enumerate(stack.replicas, start=1):
        federated = requests.get(f"{url}/federate", params={"match[]": 'up{job="prometheus"}'}, timeout=5).text
        assert f'replica="{number}"' in federated and "${REPLICA}" not in federated, federated
    # The Watchdog's series keeps `replica` in the store, one per replica: what the fleet counts.
    heard = lambda: {r["metric"].get("replica") for r in store_query(stack, f'ALERTS{{alertname="{WATCHDOG.name}", environment="{ENVIRONMENT}"}}')}
    assert wait_for(lambda: heard() == {"1", "2"}, SIGNAL_SECONDS), f"the store does not hear both replicas' Watchdog: {heard()}"

    counter = f'sum(http_server_request_duration_seconds_count{{job="{SERVICE}"}})'
    assert wait_for(lambda: store_query(stack, counter), SIGNAL_SECONDS), "no request counts in the store"
    # The rate over the same minutes on both sides, from the counter at the two ends: since the
    # stack started, across the store's outage of the test before. (Their rate() differ by design:
    # VictoriaMetrics' does not extrapolate to the window's edges as Prometheus' does.) Each end
    # may come from either replica's scrape, up to a scrape interval apart: minutes make that
    # small. The store answers up to its latency offset late: both ends lie before it.
    lag = 2 * fleet.latency_offset_seconds(stack.config.intervals.scrape_interval)
    end = time.time() - lag
    start = stack.started + 30
    assert end - start > STORE_DOWN_SECONDS, "runs after the outage test"

    def value(url: str, at: float, nocache: str = "") -> float:
        answer = get_json(f"{url}/api/v1/query?{nocache}time={at:.3f}&query={requests.utils.quote(counter)}")
        return float(answer["data"]["result"][0]["value"][1])

    global_rate = (value(stack.store_url, end, "nocache=1&") - value(stack.store_url, start, "nocache=1&")) / (end - start)
    replica_rate = (value(stack.replicas[0][1], end) - value(stack.replicas[0][1], start)) / (end - start)
    series = store_query(stack, f'count(http_server_request_duration_seconds_count{{job="{SERVICE}"}})')
    replica_series = query(stack.replicas[0][1], f'count(http_server_request_duration_seconds_count{{job="{SERVICE}"}})')
    assert series[0]["value"][1] == replica_series[0]["value"][1], "the store keeps each series of the pair twice"
    assert abs(global_rate - replica_rate) <= 0.02 * replica_rate, f"global {global_rate:.3f}/s vs one replica {replica_rate:.3f}/s"
    print(f"\nfleet: request rate over {end - start:.0f} s, global {global_rate:.3f}/s, replica 1 {replica_rate:.3f}/s ({100 * (global_rate / replica_rate - 1):+.2f} %)")


def test_a_pair_and_a_cluster_of_three_lose_one_each_mid_alert_and_notify_once(stack: Stack):
    timing = stack.config.timing
    peer_timeout = stack.config.environment(ENVIRONMENT).ha.peer_timeout_seconds
    replicas, alertmanagers, state, app_url = stack.replicas, stack.alertmanagers, stack.state, stack.app_url
    # Both replicas fire the Watchdog and send it to every member: without `replica` it is one
    # alert in each (with it, two: the pair would notify twice for everything).
    senders = "sum by (instance) (prometheus_notifications_sent_total{job=\"prometheus\"}) > 0"
    assert wait_for(lambda: len(query(replicas[0][1], senders)) == len(replicas), SIGNAL_SECONDS), "a replica sent no alert"
    for _, url in alertmanagers:
        watchdogs = get_json(f"{url}/api/v2/alerts?filter=alertname%3D%22{WATCHDOG.name}%22")
        assert len(watchdogs) == 1 and "replica" not in watchdogs[0]["labels"], f"{url}: the pair's Watchdog is not one alert: {watchdogs}"

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
    killed_at = stack.timings["killed"] = time.monotonic()
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
    assert down == {("prometheus", stack.flags["prometheus"][0]["address"]), ("alertmanager", sender.split("//")[1])}, down

    requests.delete(f"{app_url}/faults", timeout=5).raise_for_status()
    cleared_at = time.monotonic()
    assert wait_for(lambda: arrived(HIGH_ERROR_RATE.name, "RESOLVED"), SIGNAL_SECONDS), f"no resolved {HIGH_ERROR_RATE.name} by mail and Slack"
    resolved_at = time.monotonic()
    # A late peer's duplicate comes within its wait (position x peer timeout) after a group_interval tick.
    time.sleep(duration_seconds(timing.group_interval) + (len(alertmanagers) - 1) * peer_timeout + 1)

    for status in ("FIRING", "RESOLVED"):
        mails, slack = messages(state, HIGH_ERROR_RATE.name, status)
        assert [mail["to"] for mail in mails] == [[PAGER_MAIL]], f"{status}: one mail to the pager, got {mails}"
        assert [message["channel"] for message in slack] == [PAGER_CHANNEL], f"{status}: one Slack message to {PAGER_CHANNEL}, got {slack}"
    t = stack.timings
    print(
        f"\nHA: processes answering {t['answering']:.1f} s, cluster settled {t['settled']:.1f} s later, "
        f"replicas ready {t['ready']:.1f} s later; "
        f"fault -> firing {fired_at - fault_at:.1f} s (kill {killed_at - fault_at:.1f} s after the fault), "
        f"kill -> {MONITORING_COMPONENT_DOWN.name} in {TEAM_CHANNEL} {told_at - killed_at:.1f} s, "
        f"fault cleared -> resolved {resolved_at - cleared_at:.1f} s; peer timeout {peer_timeout} s, "
        f"messages: firing 1 mail + 1 Slack, resolved 1 mail + 1 Slack"
    )


def test_the_fleet_reports_the_missing_replica(stack: Stack):
    """After the kill above, the global rules count one replica of two, from outside the environment."""
    assert "killed" in stack.timings, "runs after the kill test"
    missing = "PharosPrometheusReplicaMissing"
    told = wait_for(lambda: [m for m in messages(stack.state, missing, "FIRING")[1] if m["channel"] == TEAM_CHANNEL], FLEET_SIGNAL_SECONDS)
    assert told, f"no {missing} in {TEAM_CHANNEL}: {sinks.read_slack(stack.state)}"
    print(f"\nfleet: kill -> {missing} in {TEAM_CHANNEL} {time.monotonic() - stack.timings['killed']:.1f} s")


def test_the_whole_pair_stopped_pages_from_the_fleet(stack: Stack):
    """The environment cannot say it is gone; the fleet's dead man's switch does, by mail and Slack."""
    silent = "PharosEnvironmentSilent"
    assert not messages(stack.state, silent, "FIRING")[1], "the environment was reported silent while it ran"
    for child, _ in stack.replicas:
        child.kill()
    stopped_at = time.monotonic()

    def paged():
        mails, slack = messages(stack.state, silent, "FIRING")
        mails = [m for m in mails if m["to"] == [PAGER_MAIL] and ENVIRONMENT in m["subject"]]
        slack = [m for m in slack if m["channel"] == PAGER_CHANNEL and ENVIRONMENT in m["title"]]
        return (mails, slack) if mails and slack else None

    assert wait_for(paged, FLEET_SIGNAL_SECONDS), f"no {silent} for {ENVIRONMENT} by mail and Slack: {sinks.read_slack(stack.state)}"
    seconds = time.monotonic() - stopped_at
    window = fleet.silence_window(stack.config.intervals)
    print(f"\nfleet: pair stopped -> {silent} ({ENVIRONMENT}) by mail and Slack in {seconds:.1f} s (window {window}, for {stack.config.alert_for.get(silent)})")
