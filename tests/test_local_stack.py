"""What `pharos up` is made of, short of running it whole (tests/test_stack_e2e.py does that):
the stack file it writes and what `pharos build` makes of it, the rule tuning it relies on, its
ports, state directory, refusals, `pharos fault`, the time-to-signal arithmetic, and its process
supervision when a child dies or `pharos up` itself is killed."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from pharos_monitoring.alerts import prometheus_rules
from pharos_monitoring.alerts.catalogue import ALERTS, HIGH_ERROR_RATE, TREND_RANGES
from pharos_monitoring.alerts.prometheus_rules import Tuning
from pharos_monitoring.alerts.recording import WINDOW
from pharos_monitoring.demo.app import AppConfig, DemoApp
from pharos_monitoring.local import local_stack, up_state
from pharos_monitoring.config.build import build
from pharos_monitoring.cli import main
from pharos_monitoring.local.local_stack import Ports
from pharos_monitoring.config.stack_config import StackConfigError, load, parse
from pharos_monitoring.local.time_to_signal import error_rate_signal

from alerting_tools import AMTOOL, PROMTOOL, assert_ok, route_receivers, run

ROOT = Path(__file__).resolve().parent.parent
RANGE = re.compile(r"\[([^\]]+)\]")


def all_expressions(files: dict[str, dict]) -> list[str]:
    return [rule["expr"] for content in files.values() for group in content["groups"] for rule in group["rules"]]


def local_stack_file(tmp_path: Path, fast: bool, secrets: Path | None = None) -> Path:
    ports = Ports.from_base(20000)
    webhooks = local_stack.write_webhook_secrets(secrets or tmp_path / "secrets", ports.slack)
    path = tmp_path / "stack.yml"
    path.write_text(yaml.safe_dump(local_stack.stack_data(ports, webhooks, fast)))
    return path


# --- tuning the rules through the stack file ---------------------------------------------------
def test_every_range_of_the_catalogue_is_the_rate_window():
    """Tuning replaces `[WINDOW]`; a rule with another range would silently keep it, unless it is
    one of the declared fixed-span trends."""
    ranges = {found for expr in all_expressions(prometheus_rules.rule_files("production", "https://x")) for found in RANGE.findall(expr)}
    assert ranges - set(TREND_RANGES) == {WINDOW}


def test_tuning_changes_every_range_and_the_chosen_for_durations_only():
    tuning = Tuning(rate_window="20s", alert_for={HIGH_ERROR_RATE.name: "10s"})
    files = prometheus_rules.rule_files("production", "https://x", tuning)
    ranges = {found for expr in all_expressions(files) for found in RANGE.findall(expr)}
    assert ranges - set(TREND_RANGES) == {"20s"}
    fors = {rule["alert"]: rule["for"] for rule in files[prometheus_rules.ALERTS_FILE]["groups"][0]["rules"]}
    assert fors == {alert.name: ("10s" if alert is HIGH_ERROR_RATE else alert.for_) for alert in ALERTS}
    records = [rule["record"] for rule in files[prometheus_rules.RECORDING_FILE]["groups"][0]["rules"]]
    assert records == [rule["record"] for rule in prometheus_rules.recording_rules()["groups"][0]["rules"]], "names stay"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"intervals": {"scrape_interval": "15s", "rate_window": "30s"}}, "intervals.rate_window: 30s holds fewer than 4 scrapes at scrape_interval 15s"),
        ({"alerts": {"PharosHighErrorRat": {"for": "1m"}}}, "alerts.PharosHighErrorRat: unknown key; known keys here:"),
        ({"alerts": {"PharosHighErrorRate": {"for": "soon"}}}, "alerts.PharosHighErrorRate.for: 'soon' is not a duration"),
        ({"alerts": {"PharosHighErrorRate": {"threshold": 0.5}}}, "alerts.PharosHighErrorRate.threshold: unknown key; known keys here: for"),
    ],
)
def test_tuning_mistakes_name_the_key(tmp_path: Path, change: dict, message: str):
    data = yaml.safe_load(local_stack_file(tmp_path, fast=False).read_text()) | change
    with pytest.raises(StackConfigError, match=re.escape(message)):
        parse(data, "stack.yml")


# --- the local stack file and its build ----------------------------------------------------------
@pytest.mark.parametrize("fast", [False, True], ids=["production-intervals", "fast"])
def test_the_local_stack_builds_into_configuration_the_tools_accept(tmp_path: Path, fast: bool):
    stack = load(str(local_stack_file(tmp_path, fast)))
    out = tmp_path / "config"
    build(stack, out)
    assert sorted(path.name for path in out.iterdir()) == ["beta", "fleet", "production"]
    for environment in ("beta", "production"):
        output = assert_ok(run(PROMTOOL, "check", "config", str(out / environment / "prometheus" / "prometheus.yml")))
        # Alerts, recording rules, objectives (local_stack.OBJECTIVES: beta's) and expected counts: four files in each.
        assert "SUCCESS: 4 rule files found" in output
    alertmanager = out / "production" / "alertmanager" / "alertmanager.yml"
    assert_ok(run(AMTOOL, "check-config", str(alertmanager)))
    assert (out / "beta" / "alertmanager" / "alertmanager.yml").read_bytes() == alertmanager.read_bytes(), "one Alertmanager serves both"
    # The fleet's rules pass their own cases; the Watchdog reaches nobody (the fleet watches it).
    assert "SUCCESS" in assert_ok(run(PROMTOOL, "test", "rules", str(out / "fleet" / "pharos-fleet-tests.yml")))
    assert route_receivers(alertmanager, {"alertname": "Watchdog", "severity": "info", "environment": "production"}) == ["watchdog-heartbeat"]
    silent = {"alertname": "PharosEnvironmentSilent", "severity": "critical"}
    assert route_receivers(alertmanager, silent | {"environment": "production"}) == ["production-pager"]
    page = {"alertname": HIGH_ERROR_RATE.name, "severity": "critical", "service": "orders"}
    assert route_receivers(alertmanager, page | {"environment": "production"}) == ["production-pager"]
    assert route_receivers(alertmanager, page | {"environment": "beta"}) == ["staging-team"]
    rules = (out / "production" / "prometheus" / "rules" / prometheus_rules.ALERTS_FILE).read_text()
    assert ("[20s]" in rules) is fast and ("for: 10s" in rules) is fast and ("[5m]" in rules) is not fast


def test_fast_is_the_catalogue_timing_divided_not_skipped():
    assert local_stack.fast_for("5m") == "10s"
    assert local_stack.fast_for("15m") == "30s"
    assert local_stack.fast_for("3m") == "6s"
    assert local_stack.fast_for("10s") == f"{local_stack.FAST_MIN_FOR_SECONDS}s"


def test_webhook_urls_live_only_in_private_files(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stack_path = local_stack_file(tmp_path, fast=True, secrets=Path("secrets"))  # as `--state-dir` may be relative
    build(load(str(stack_path)), tmp_path / "config")
    secret_files = sorted((tmp_path / "secrets").iterdir())
    assert [path.name for path in secret_files] == ["slack-alerting-pipeline", "slack-production", "slack-production-pages", "slack-staging"]
    urls = [path.read_text().strip() for path in secret_files]
    assert len(set(urls)) == len(urls), "one webhook per channel"
    for path, url in zip(secret_files, urls):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert re.fullmatch(r"http://127\.0\.0\.1:20006/services/TLOCAL/B\d{3}/[0-9a-f]{24}", url)
    alertmanager = yaml.safe_load((tmp_path / "config" / "production" / "alertmanager" / "alertmanager.yml").read_text())
    webhook_files = [slack["api_url_file"] for receiver in alertmanager["receivers"] for slack in receiver.get("slack_configs", [])]
    assert webhook_files and all(Path(path).is_absolute() for path in webhook_files), "Alertmanager reads relative paths from its config's directory"
    generated = [stack_path, *(path for path in (tmp_path / "config").rglob("*") if path.is_file())]
    for path in generated:
        text = path.read_text()
        assert not any(url in text for url in urls), f"{path} holds a webhook URL"
        assert "/services/" not in text, path


def test_ports_from_a_base_are_distinct_and_documented_offsets():
    ports = Ports.from_base(19090)
    assert ports.prometheus == {"production": 19090, "beta": 19091}
    assert (ports.alertmanager, ports.smtp, ports.slack, ports.probe_exporter) == (19093, 19095, 19096, 19097)
    assert ports.apps == {"production/orders": 19098, "beta/orders": 19100} and ports.sidecars == {"production/orders": 19099}
    assert ports.node_exporter == 19102 and (ports.global_store, ports.vmalert) == (19103, 19104)
    assert len(set(ports.all().values())) == len(ports.all())
    free = Ports.free()
    assert len(set(free.all().values())) == len(free.all())


def test_the_ha_shape_adds_a_replica_and_two_alertmanagers_at_documented_offsets():
    light, paired = Ports.from_base(19090), Ports.from_base(19090, ha=True)
    assert not light.ha and paired.ha
    assert paired.replicas("production") == (19090, 19092) and paired.replicas("beta") == (19091,)
    assert paired.alertmanagers() == (19093, 19105, 19107) and paired.alertmanager_gossip == (19094, 19106, 19108)
    assert set(light.all().values()) < set(paired.all().values()), "the light shape's ports stay where they were"
    assert len(set(paired.all().values())) == len(paired.all()) == len(light.all()) + 6
    assert max(paired.all().values()) == 19090 + 18
    free = Ports.free(ha=True)
    assert free.ha and len(set(free.all().values())) == len(free.all()) == len(paired.all())


@pytest.mark.parametrize("fast, peer_timeout", [(False, 15), (True, 2)], ids=["production-intervals", "fast"])
def test_the_ha_stack_file_builds_a_pair_and_a_cluster_of_three(tmp_path: Path, fast: bool, peer_timeout: int):
    ports = Ports.from_base(20000, ha=True)
    path = tmp_path / "stack.yml"
    path.write_text(yaml.safe_dump(local_stack.stack_data(ports, local_stack.write_webhook_secrets(tmp_path / "secrets", ports.slack), fast)))
    stack = load(str(path))
    production, beta = stack.environment("production"), stack.environment("beta")
    members = ("127.0.0.1:20003", "127.0.0.1:20015", "127.0.0.1:20017")
    assert tuple(production.alertmanagers) == tuple(beta.alertmanagers) == members, "both environments send to every member"
    assert beta.ha is None and production.ha.prometheus == ("127.0.0.1:20000", "127.0.0.1:20002")
    # --fast's group_interval of 5 s: (3 - 1) x 2 s stays below it (pharos/config/ha.py).
    assert production.ha.peer_timeout_seconds == peer_timeout
    out = tmp_path / "config"
    build(stack, out)
    flags = yaml.safe_load((out / "production" / "ha.yml").read_text())
    assert [(r["address"], r["environment"]) for r in flags["prometheus"]] == [("127.0.0.1:20000", {"REPLICA": "1"}), ("127.0.0.1:20002", {"REPLICA": "2"})]
    assert [(m["address"], m["cluster_address"]) for m in flags["alertmanager"]] == list(zip(members, ("127.0.0.1:20004", "127.0.0.1:20016", "127.0.0.1:20018")))
    assert all(f"--cluster.peer-timeout={peer_timeout}s" in m["flags"] for m in flags["alertmanager"])
    assert not (out / "beta" / "ha.yml").exists()
    for environment in ("beta", "production"):
        config = out / environment / "prometheus" / "prometheus.yml"
        assert_ok(run(PROMTOOL, "check", "config", str(config)))
        alerting = yaml.safe_load(config.read_text())["alerting"]["alertmanagers"]
        assert [target for each in alerting for sd in each["static_configs"] for target in sd["targets"]] == list(members)
    notifier = yaml.safe_load((out / "fleet" / "notifier.yml").read_text())
    assert notifier["static_configs"][0]["targets"] == list(members), "vmalert sends to every member"
    assert "SUCCESS" in assert_ok(run(PROMTOOL, "test", "rules", str(out / "fleet" / "pharos-fleet-tests.yml")))


def test_a_pair_or_a_cluster_goes_on_without_one_member_and_stops_without_the_last(tmp_path: Path, capsys):
    from pharos_monitoring.local import up

    (tmp_path / "logs").mkdir()
    running = up.Stack(tmp_path, Ports.from_base(20000, ha=True), None, {}, 0, threading.Event())
    first, second, other = (running._start(name, ["sleep", "60"]) for name in ("prometheus production/1", "prometheus production/2", "sinks"))
    running.redundant["production's Prometheus pair"] = ("replicas", [first, second])
    try:
        assert running.goes_on_without(other) == (False, "")
        first.kill()
        first.process.wait(timeout=10)
        assert running.goes_on_without(first) == (True, "production's Prometheus pair goes on with 1 of 2 replicas")
        assert up._wait(running, threading.Event(), duration=1) == 0
        assert capsys.readouterr().err.count("pharos up: prometheus production/1 exited with code -9; see ") == 1
        second.kill()
        second.process.wait(timeout=10)
        assert up._wait(running, threading.Event(), duration=5) == 1
        assert "pharos up: prometheus production/2 exited with code -9; see " in capsys.readouterr().err
        assert running.goes_on_without(second) == (False, "the last of production's Prometheus pair")
    finally:
        running.stop_all()


# --- refusals, before anything starts ----------------------------------------------------------
def test_missing_prometheus_names_the_install_command(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["up", "--state-dir", str(tmp_path / "state"), "--port-base", "0"]) == 1
    error = capsys.readouterr().err
    assert (
        "Prometheus (none of prometheus on PATH), Alertmanager (none of prometheus-alertmanager, alertmanager on PATH), "
        "node_exporter (none of prometheus-node-exporter, node_exporter on PATH), "
        "VictoriaMetrics (none of victoria-metrics, victoria-metrics-prod on PATH) and vmalert (none of vmalert, vmalert-prod on PATH) not installed"
    ) in error
    assert "sudo apt-get install prometheus prometheus-alertmanager prometheus-node-exporter victoria-metrics" in error
    assert not (tmp_path / "state").exists()


def test_a_busy_port_is_named_before_anything_starts(tmp_path: Path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        base = port - 3  # where the Alertmanager would listen
        assert main(["up", "--state-dir", str(tmp_path / "state"), "--port-base", str(base)]) == 1
    error = capsys.readouterr().err  # other ports of the range may be busy too, on a shared machine
    assert error.startswith("pharos up: ports already in use on 127.0.0.1: ")
    assert f" {port} (Alertmanager)" in error and error.endswith("; choose another --port-base, or 0 for free ports\n")
    assert not (tmp_path / "state" / "up.json").exists()


def test_a_directory_of_something_else_is_never_cleaned(tmp_path: Path, capsys):
    precious = tmp_path / "home"
    (precious / "logs").mkdir(parents=True)
    (precious / "logs" / "keep.txt").write_text("mine")
    assert main(["up", "--state-dir", str(precious), "--port-base", "0"]) == 1
    assert "is not empty and was not made by pharos up" in capsys.readouterr().err
    assert (precious / "logs" / "keep.txt").read_text() == "mine"


def test_our_own_leftovers_are_cleaned(tmp_path: Path):
    state = tmp_path / "state"
    up_state.prepare(state)
    (state / "mail").mkdir()
    (state / "mail" / "000001.eml").write_text("old")
    (state / "notes.txt").write_text("the user's")
    up_state.prepare(state)
    assert not (state / "mail").exists()
    assert (state / "notes.txt").exists() and (state / "logs").is_dir()


# --- pharos fault ----------------------------------------------------------------------------------
@pytest.fixture
def demo_app():
    app = DemoApp(AppConfig(host="127.0.0.1", port=0, traffic=0))
    app.start()
    try:
        yield app
    finally:
        app.stop()


def test_fault_by_url_sets_shows_and_clears(demo_app: DemoApp, capsys):
    assert main(["fault", demo_app.url, "--error-ratio", "0.5", "--latency-ms", "20", "--unhealthy"]) == 0
    assert demo_app.faults.settings.error_ratio == 0.5 and demo_app.faults.settings.unhealthy
    assert main(["fault", demo_app.url]) == 0
    shown = capsys.readouterr().out.splitlines()[-1]
    assert shown == f"pharos fault: {demo_app.url}: error_ratio=0.5 latency_ms=20 allocation_pressure=0 stats_hang=off unhealthy=on"
    assert main(["fault", demo_app.url, "--no-unhealthy"]) == 0
    assert not demo_app.faults.settings.unhealthy and demo_app.faults.settings.error_ratio == 0.5
    assert main(["fault", demo_app.url, "--clear"]) == 0
    assert demo_app.faults.settings.error_ratio == 0.0


def test_fault_refusals_say_what_to_do(tmp_path: Path, capsys):
    with pytest.raises(SystemExit):
        main(["fault", "http://127.0.0.1:1", "--error-ratio", "2"])
    assert "error_ratio: 2.0 is out of range; allowed 0 to 1" in capsys.readouterr().err
    assert main(["fault", "production/orders", "--state-dir", str(tmp_path)]) == 1
    assert f"no pharos up runs with state directory {tmp_path}" in capsys.readouterr().err
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    assert main(["fault", url, "--clear"]) == 1
    assert f"cannot reach {url}/faults" in capsys.readouterr().err
    assert main(["fault", url, "--clear", "--error-ratio", "1"]) == 1
    assert "--clear resets every knob; give it alone" in capsys.readouterr().err


# --- time to signal ------------------------------------------------------------------------------
def test_time_to_signal_of_the_shipped_intervals():
    """examples/stack.yml: scrape and evaluation 15s, rate window 5m, for 5m, group_wait 30s."""
    estimate = error_rate_signal(load(str(ROOT / "examples" / "stack.yml")), "production")
    # 7.5 first scrape + 15 second sample (5% of 5m = 15s of errors) + 7.5 + 7.5 evaluations + 300 for + 30 group_wait
    assert (estimate.typical, estimate.worst) == (367.5, 390.0)
    # 285 s until the errors are under 5% of the window, + 7.5 scrape + 15 evaluations + 150 group_interval / 2
    assert estimate.resolved_typical == 457.5
    beta = error_rate_signal(load(str(ROOT / "examples" / "stack.yml")), "beta", fault_ratio=0.5)
    assert [stage.worst for stage in beta.firing][1] == 60.0  # 10% of 5m at half the requests failing
    with pytest.raises(ValueError, match="never crosses"):
        error_rate_signal(load(str(ROOT / "examples" / "stack.yml")), "production", fault_ratio=0.05)


def test_time_to_signal_of_the_fast_local_stack(tmp_path: Path):
    estimate = error_rate_signal(load(str(local_stack_file(tmp_path, fast=True))), "production")
    assert (estimate.typical, estimate.worst) == (15.0, 17.0)


# --- supervision -----------------------------------------------------------------------------------
def start_up(state: Path, output: Path) -> tuple[subprocess.Popen, dict]:
    with open(output, "wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "pharos_monitoring.cli", "up", "--port-base", "0", "--state-dir", str(state), "--traffic", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={key: value for key, value in os.environ.items() if not key.startswith("PHAROS_")},
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and up.poll() is None and not (state / "up.json").exists():
        time.sleep(0.2)
    if not (state / "up.json").exists():
        up.kill()
        up.wait(timeout=30)
        pytest.fail(f"pharos up did not come up:\n{output.read_text()}")
    return up, json.loads((state / "up.json").read_text())


def gone(processes: list[psutil.Process], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_a_child_that_dies_takes_the_stack_down_cleanly(tmp_path: Path):
    up, described = start_up(tmp_path / "state", tmp_path / "up.out")
    children = {child["name"]: psutil.Process(child["pid"]) for child in described["children"]}
    children["demo-app beta/orders"].kill()
    try:
        code = up.wait(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
    output = (tmp_path / "up.out").read_text()
    assert code == 1, output
    assert "pharos up: demo-app beta/orders exited with code -9; see " in output
    assert "stopping everything" in output and "pharos up: stopped 11 processes" in output
    assert gone(list(children.values()), 5)
    assert not (tmp_path / "state" / "up.json").exists()


@pytest.mark.slow
def test_children_do_not_outlive_a_killed_pharos_up(tmp_path: Path):
    up, described = start_up(tmp_path / "state", tmp_path / "up.out")
    children = [psutil.Process(child["pid"]) for child in described["children"]]
    up.kill()  # no chance to clean up: the children's parent-death signal must do it
    up.wait(timeout=30)
    assert gone(children, 30), [p.name() for p in children if p.is_running()]


def test_the_time_to_signal_bench_writes_the_computed_figures(tmp_path: Path):
    out = tmp_path / "time_to_signal.json"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "time_to_signal.py"), "--no-live", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    computed = json.loads(out.read_text())["computed"]
    shipped = computed["production intervals (examples/stack.yml), error ratio 1"]
    assert (shipped["typical_seconds"], shipped["worst_seconds"]) == (367.5, 390.0)
    assert [stage["name"] for stage in shipped["firing_stages"]][-2:] == ["for 5m", "Alertmanager group_wait 30s"]
    assert computed["pharos up --fast, error ratio 1"]["worst_seconds"] == 17.0
    assert "measured_fast" not in json.loads(out.read_text())
