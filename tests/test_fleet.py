"""The fleet's configuration from `pharos build`: remote write to the global store, the global
rules and their promtool cases, the flags of victoria-metrics and vmalert, the Watchdog kept from
people, Grafana's global data source, and the stack-file mistakes named with their key.

On the real binaries: tests/test_ha_e2e.py (a pair and its store) and tests/test_dashboards_fleet.py."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from pharos_monitoring.alerts import fleet as fleet_alerts
from pharos_monitoring.config import fleet
from pharos_monitoring.config.build import build
from pharos_monitoring.config.grafana_provisioning import DASHBOARDS_DIR, DATASOURCES_FILE, FLEET_DATASOURCE_UID
from pharos_monitoring.config.stack_config import StackConfigError, load, parse

from alerting_tools import AMTOOL, PROMTOOL, assert_ok, route_receivers, run


def stack_data() -> dict:
    return {
        "runbook_url": "https://example.com/docs/runbooks.md",
        "smtp": {"smarthost": "127.0.0.1:2525", "from": "pharos@example.com", "require_tls": False},
        "receivers": {"pager": {"email": ["oncall@example.com"]}, "team": {"email": ["team@example.com"]}},
        "routes": {"default": "team", "environments": {"production": {"critical": "pager"}}},
        "grafana": {},
        "fleet": {"store": "global-store:8428", "vmalert": "vmalert:8880", "retention": "1y"},
        "environments": {
            "production": {
                "alertmanagers": ["alertmanager-1:9093", "alertmanager-2:9093", "alertmanager-3:9093"],
                "ha": {
                    "prometheus": ["prometheus-1:9090", "prometheus-2:9090"],
                    "alertmanager_cluster": ["alertmanager-1:9094", "alertmanager-2:9094", "alertmanager-3:9094"],
                },
                "services": {"orders": {"mode": "sidecar", "targets": ["orders-1:9841"]}},
            },
            "beta": {
                "alertmanagers": ["alertmanager-beta:9093"],
                "services": {"orders": {"mode": "sidecar", "targets": ["orders-beta:9841"]}},
            },
        },
    }


@pytest.fixture
def built(tmp_path: Path) -> Path:
    path = tmp_path / "stack.yml"
    path.write_text(yaml.safe_dump(stack_data()))
    build(load(str(path)), tmp_path / "out")
    return tmp_path / "out"


def test_every_environment_writes_to_the_store_and_watches_it(built: Path):
    for environment in ("production", "beta"):
        config_path = built / environment / "prometheus" / "prometheus.yml"
        assert "SUCCESS" in assert_ok(run(PROMTOOL, "check", "config", str(config_path)))
        config = yaml.safe_load(config_path.read_text())
        (remote,) = config["remote_write"]
        assert remote["url"] == "http://global-store:8428/api/v1/write"
        relabel = remote["write_relabel_configs"]
        # `replica` goes, but from the Watchdog's ALERTS series, by which the store counts the replicas.
        assert relabel[0]["source_labels"] == ["__name__", "alertname"] and relabel[0]["regex"] == "ALERTS;Watchdog"
        assert relabel[1] == {"source_labels": [fleet.KEEP_REPLICA], "regex": "", "target_label": "replica", "replacement": ""}
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        assert jobs["global-store"]["static_configs"] == [{"targets": ["global-store:8428"]}]
        assert jobs["vmalert"]["static_configs"] == [{"targets": ["vmalert:8880"]}]
        assert {"target_label": "component", "replacement": "vmalert"} in jobs["vmalert"]["relabel_configs"]


def test_without_a_fleet_nothing_is_written_for_it(tmp_path: Path):
    data = stack_data()
    del data["fleet"]
    data["routes"]["alerts"] = {"Watchdog": "team"}
    path = tmp_path / "stack.yml"
    path.write_text(yaml.safe_dump(data))
    build(load(str(path)), tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["beta", "production"]
    config = yaml.safe_load((tmp_path / "out" / "production" / "prometheus" / "prometheus.yml").read_text())
    assert "remote_write" not in config and "vmalert" not in {job["job_name"] for job in config["scrape_configs"]}


def test_the_global_rules_pass_their_cases_and_a_threshold_edited_by_hand_fails_them(built: Path):
    tests = built / "fleet" / fleet.TESTS_FILE
    assert "SUCCESS" in assert_ok(run(PROMTOOL, "test", "rules", str(tests)))
    rules = yaml.safe_load((built / "fleet" / fleet.RULES_DIR / fleet.RULES_FILE).read_text())
    (group,) = rules["groups"]
    assert group["params"] == {"nocache": ["1"]}, "vmalert must ask the store for fresh data"
    named = [(rule["alert"], rule["labels"].get("environment")) for rule in group["rules"]]
    assert named == [
        ("PharosEnvironmentSilent", "beta"),
        ("PharosEnvironmentCannotNotify", "beta"),
        ("PharosEnvironmentSilent", "production"),
        ("PharosPrometheusReplicaMissing", "production"),
        ("PharosAlertmanagerClusterDegraded", "production"),
        ("PharosEnvironmentCannotNotify", "production"),
        ("PharosRemoteWriteBehind", None),
        ("PharosRemoteWriteFailing", None),
    ]
    # The promtool copy is the same rules without vmalert's keys.
    promtool_copy = yaml.safe_load((built / "fleet" / fleet.PROMTOOL_RULES_FILE).read_text())
    assert promtool_copy["groups"][0]["rules"] == group["rules"]
    # Tests that cannot fail prove nothing: a pair expected to have three replicas must fail them.
    edited = (built / "fleet" / fleet.PROMTOOL_RULES_FILE).read_text().replace(" < 2", " < 3")
    assert edited != (built / "fleet" / fleet.PROMTOOL_RULES_FILE).read_text()
    (built / "fleet" / fleet.PROMTOOL_RULES_FILE).write_text(edited)
    result = run(PROMTOOL, "test", "rules", str(tests))
    assert result.returncode != 0 and "PharosPrometheusReplicaMissing" in result.stdout + result.stderr


def test_the_silence_window_covers_the_way_into_the_store():
    class Intervals:
        scrape_interval, evaluation_interval = "15s", "15s"

    assert fleet.silence_window(Intervals) == "70s"  # twice (a 5 s batch + a 30 s latency offset)
    Intervals.scrape_interval, Intervals.evaluation_interval = "2s", "1s"
    assert fleet.silence_window(Intervals) == "20s"  # pharos up --fast
    Intervals.scrape_interval, Intervals.evaluation_interval = "1m", "1m"
    assert fleet.silence_window(Intervals) == "250s"  # four evaluations would be 240 s


def test_the_flags_of_the_store_and_vmalert(built: Path):
    flags = yaml.safe_load((built / "fleet" / fleet.FLAGS_FILE).read_text())
    store, rules = flags["victoria-metrics"], flags["vmalert"]
    assert store["flags"] == [
        "-httpListenAddr=:8428",
        "-retentionPeriod=1y",
        "-dedup.minScrapeInterval=15s",  # the scrape interval: a pair counts once
        "-search.latencyOffset=30s",
        "-search.maxQueryLen=1MB",  # the overview of 1,000 services x 3 sends 133 KB
    ]
    assert "-datasource.url=http://global-store:8428" in rules["flags"] and "-remoteRead.url=http://global-store:8428" in rules["flags"]
    # The global alerts go to the most production-like environment's Alertmanagers, each of them.
    assert rules["notifier_flag"] == "-notifier.config"
    notifier = yaml.safe_load((built / "fleet" / fleet.NOTIFIER_FILE).read_text())
    assert notifier == {"static_configs": [{"targets": [f"alertmanager-{n}:9093" for n in (1, 2, 3)]}]}


def test_the_watchdog_reaches_no_one_and_the_global_alerts_route_like_the_others(built: Path):
    config = built / "production" / "alertmanager" / "alertmanager.yml"
    assert_ok(run(AMTOOL, "check-config", str(config)))
    rendered = yaml.safe_load(config.read_text())
    heartbeat = next(receiver for receiver in rendered["receivers"] if receiver["name"] == fleet.HEARTBEAT_RECEIVER)
    assert heartbeat == {"name": fleet.HEARTBEAT_RECEIVER}, "the Watchdog's receiver must have no integration"
    assert route_receivers(config, {"alertname": "Watchdog", "severity": "info", "environment": "production"}) == [fleet.HEARTBEAT_RECEIVER]
    assert route_receivers(config, {"alertname": "PharosEnvironmentSilent", "severity": "critical", "environment": "production"}) == ["pager"]


def test_grafana_gets_the_global_data_source_beside_the_environments(built: Path):
    sources = yaml.safe_load((built / "production" / DATASOURCES_FILE).read_text())["datasources"]
    assert [(s["uid"], s["isDefault"]) for s in sources] == [("pharos-prometheus", True), (FLEET_DATASOURCE_UID, False)]
    assert sources[1]["url"] == "http://global-store:8428" and sources[1]["type"] == "prometheus"
    # With the global store, the environment picker is shown (hide 0); one environment's Grafana hides it.
    overview = json.loads((built / "production" / DASHBOARDS_DIR / "pharos-services-overview.json").read_text())
    (environment,) = [v for v in overview["templating"]["list"] if v["name"] == "environment"]
    assert environment["hide"] == 0 and environment["multi"] is True


def test_the_fleet_alerts_may_be_tuned_and_routed_by_name(tmp_path: Path):
    data = stack_data()
    data["alerts"] = {"PharosEnvironmentSilent": {"for": "30s"}}
    data["routes"]["alerts"] = {"PharosEnvironmentSilent": "pager"}
    stack = parse(data, "stack.yml")
    rules = fleet.rule_file(stack)["groups"][0]["rules"]
    assert {rule["for"] for rule in rules if rule["alert"] == "PharosEnvironmentSilent"} == {"30s"}
    assert stack.routing.by_alert["PharosEnvironmentSilent"] == "pager"


def _with(change) -> dict:
    data = copy.deepcopy(stack_data())
    change(data)
    return data


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["fleet"].pop("store"), "stack.yml: fleet.store: missing; this key is required"),
        (lambda d: d["fleet"].pop("vmalert"), "stack.yml: fleet.vmalert: missing; this key is required"),
        (lambda d: d["fleet"].update(store="http://store:8428"), "fleet.store: 'http://store:8428' is not HOST:PORT"),
        (lambda d: d["fleet"].update(retention="90"), "fleet.retention: '90' is not a retention VictoriaMetrics takes: a whole number with h, d, w or y (e.g. 90d, 1y)"),
        (lambda d: d["fleet"].update(retention="12h"), "fleet.retention: '12h': VictoriaMetrics keeps at least 24h"),
        (lambda d: d["fleet"].update(replicas=2), "fleet.replicas: unknown key; known keys here: alertmanagers, retention, store, vmalert"),
        (lambda d: d["receivers"].update({"watchdog-heartbeat": {"email": ["x@example.com"]}}), "receivers.watchdog-heartbeat: this name is the fleet's own receiver"),
        (lambda d: d["routes"].update(alerts={"PharosNoSuchAlert": "team"}), "routes.alerts.PharosNoSuchAlert: unknown key"),
    ],
)
def test_fleet_mistakes_name_the_key(change, message):
    with pytest.raises(StackConfigError, match=re.escape(message)):
        parse(_with(change), "stack.yml")


def test_without_a_fleet_the_watchdog_still_needs_a_route():
    data = _with(lambda d: d.pop("fleet"))
    with pytest.raises(StackConfigError, match=re.escape("routes.alerts: no route for Watchdog")):
        parse(data, "stack.yml")


def test_every_global_alert_has_a_runbook_section():
    runbook = (Path(__file__).parent.parent / "docs" / "runbooks.md").read_text()
    for name in fleet.FLEET_ALERT_NAMES:
        assert re.search(rf"^## {name}$", runbook, re.MULTILINE), f"docs/runbooks.md has no section for {name}"
    assert fleet_alerts.WATCHDOG_ALERT == "Watchdog"
