"""`pharos build`: configuration that promtool and amtool accept, routes that go where the stack
says, inhibitions a real Alertmanager applies, byte-identical rebuilds, and no secret in the output."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pharos_monitoring.alerts.catalogue import ALERTS
from pharos_monitoring.alerts.upstream import NODE_JOB
from pharos_monitoring.exporter.catalogue import Label as L
from pharos_monitoring.cli import main
from pharos_monitoring.config import node_agent, swarm_discovery
from pharos_monitoring.config.build import RULE_TESTS_FILE as BUILD_RULE_TESTS
from pharos_monitoring.config.stack_config import StackConfigError, parse as parse_stack

from alerting_tools import AMTOOL, PROMTOOL, alert_states, assert_ok, post_alerts, route_receivers, run, running_alertmanager

SLACK_SECRET = "https://hooks.slack.example/services/T000/B000/SECRET-WEBHOOK-0451"
SMTP_SECRET = "smtp-password-never-inline-7781"


def stack_data(secrets: Path) -> dict:
    def slack(channel: str, name: str) -> list[dict]:
        return [{"channel": channel, "webhook_url_file": str(secrets / name)}]

    return {
        "runbook_url": "https://example.com/pharos/docs/runbooks.md",
        "intervals": {"scrape_interval": "15s", "scrape_timeout": "10s"},
        "smtp": {
            "smarthost": "127.0.0.1:2525",
            "from": "pharos@example.com",
            "auth_username": "pharos",
            "auth_password_file": str(secrets / "smtp_password"),
            "require_tls": False,
        },
        "receivers": {
            "pager": {"email": ["oncall@example.com"], "slack": slack("#pages", "slack_pages")},
            "team-production": {"slack": slack("#production", "slack_production")},
            "team-staging": {"slack": slack("#staging", "slack_staging")},
            "team-mail": {"email": ["team@example.com"]},
            "heartbeat": {"slack": slack("#heartbeat", "slack_heartbeat")},
            "delivery": {"email": ["oncall@example.com", "team@example.com"]},
            "team-payments": {"email": ["payments@example.com"], "slack": slack("#payments", "slack_production")},
        },
        "routes": {
            "default": "team-mail",
            "alerts": {"Watchdog": "heartbeat", "AlertmanagerNotificationsFailing": "delivery"},
            "environments": {
                "production": {"critical": "pager", "warning": "team-production", "info": "team-production"},
                "beta": {"critical": "team-staging", "warning": "team-staging"},
            },
            "teams": {"payments": "team-payments"},
        },
        "environments": {
            "production": {
                "alertmanagers": ["127.0.0.1:9093"],
                "exporter": "127.0.0.1:9841",
                "services": {
                    "orders": {"mode": "sidecar", "targets": ["127.0.0.1:9842", "127.0.0.1:9843"], "team": "payments"},
                    "catalog": {"mode": "probe", "profile": "pharo", "targets": ["127.0.0.1:8080"], "files": ["file_sd/catalog.yml"]},
                },
            },
            "beta": {
                "alertmanagers": ["127.0.0.1:9093"],
                "services": {"orders": {"mode": "sidecar", "files": ["file_sd/orders-*.json"]}},
            },
            "alpha": {
                "alertmanagers": ["127.0.0.1:9093"],
                "services": {"orders": {"mode": "sidecar", "targets": ["127.0.0.1:9842"]}},
            },
        },
    }


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    for name in ("slack_pages", "slack_production", "slack_staging", "slack_heartbeat"):
        (directory / name).write_text(SLACK_SECRET + "\n")
    (directory / "smtp_password").write_text(SMTP_SECRET + "\n")
    return directory


def write_stack(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "stack.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def built(tmp_path: Path, secrets: Path) -> Path:
    """Every environment of the test stack, built into DIR/<environment>."""
    stack = write_stack(tmp_path, stack_data(secrets))
    out = tmp_path / "out"
    assert main(["build", "--config", str(stack), "--out", str(out)]) == 0
    return out


def files_of(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file()}


# --- the tools that consume the output accept it ---------------------------------------------
@pytest.mark.parametrize("environment", ["production", "beta", "alpha"])
def test_promtool_accepts_prometheus_yml_and_its_rules(built: Path, environment: str):
    output = assert_ok(run(PROMTOOL, "check", "config", str(built / environment / "prometheus" / "prometheus.yml")))
    # The alerts and recording rules, and the objectives' and expected counts' files, empty here
    # (written all the same: the compose file mounts each by name).
    assert "SUCCESS: 4 rule files found" in output
    assert "is valid prometheus config file syntax" in output
    assert output.count("rules found") == 4 and "FAILED" not in output


@pytest.mark.parametrize("environment", ["production", "beta", "alpha"])
def test_the_build_carries_promtool_unit_tests_that_pass_on_its_own_rules(built: Path, environment: str):
    prometheus_dir = built / environment / "prometheus"
    output = assert_ok(run(PROMTOOL, "test", "rules", BUILD_RULE_TESTS, cwd=prometheus_dir))
    assert "SUCCESS" in output
    tests = yaml.safe_load((prometheus_dir / BUILD_RULE_TESTS).read_text())
    assert {group["alert_rule_test"][-1]["alertname"] for group in tests["tests"]} == {alert.name for alert in ALERTS}


def test_the_build_tests_catch_a_threshold_edited_in_its_output(built: Path):
    """The promise to a user: change a rule by hand and the shipped tests say so."""
    rules = built / "production" / "prometheus" / "rules" / "pharos-alerts.yml"
    rules.write_text(rules.read_text().replace("service:pharos_instances_unavailable:ratio >= 0.25", "service:pharos_instances_unavailable:ratio >= 0.5"))
    result = run(PROMTOOL, "test", "rules", BUILD_RULE_TESTS, cwd=rules.parent.parent)
    assert result.returncode != 0 and "PharosServiceInstancesDown in production" in result.stdout + result.stderr


def test_tests_follow_the_stacks_for_and_are_left_out_for_another_rate_window(tmp_path: Path, secrets: Path):
    data = stack_data(secrets) | {"alerts": {"PharosHighErrorRate": {"for": "1m"}, "PrometheusRuleFailures": {"for": "30m"}}}
    out = tmp_path / "out"
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(out), "--environment", "production"]) == 0
    assert_ok(run(PROMTOOL, "test", "rules", BUILD_RULE_TESTS, cwd=out / "prometheus"))
    data["intervals"] = {"scrape_interval": "15s", "scrape_timeout": "10s", "rate_window": "1m"}
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(out), "--environment", "production"]) == 0
    assert not (out / "prometheus" / BUILD_RULE_TESTS).exists(), "tests made for 5m rates would fail against 1m rates"


def test_amtool_accepts_alertmanager_yml(built: Path):
    output = assert_ok(run(AMTOOL, "check-config", str(built / "production" / "alertmanager" / "alertmanager.yml")))
    assert " - 3 inhibit rules" in output  # the catalogue's two, and critical-silences-warning per service
    assert " - 7 receivers" in output


# --- routing: `amtool config routes test` ------------------------------------------------------
ROUTING_TABLE = [
    # (labels of an alert, receivers it must reach)
    ({"alertname": "PharosHighErrorRate", "severity": "critical", "environment": "production", "service": "orders"}, ["pager"]),
    ({"alertname": "PharosInstanceDown", "severity": "warning", "environment": "production", "service": "orders"}, ["team-production"]),
    ({"alertname": "PharosHighLatency", "severity": "critical", "environment": "beta", "service": "orders"}, ["team-staging"]),
    ({"alertname": "PharosGCTimeHigh", "severity": "warning", "environment": "beta", "service": "orders"}, ["team-staging"]),
    ({"alertname": "PharosHighErrorRate", "severity": "critical", "environment": "alpha", "service": "orders"}, ["team-mail"]),
    ({"alertname": "PharosInstanceDown", "severity": "info", "environment": "beta"}, ["team-mail"]),
    ({"alertname": "Watchdog", "severity": "info", "environment": "production"}, ["heartbeat"]),
    ({"alertname": "Watchdog", "severity": "info", "environment": "alpha"}, ["heartbeat"]),
    ({"alertname": "AlertmanagerNotificationsFailing", "severity": "critical", "environment": "production"}, ["delivery"]),
    ({"alertname": "PharosHighErrorRate", "severity": "critical"}, ["team-mail"]),  # no environment label at all
    # A service with a team: its team hears of everything; pages still reach whoever is on call.
    ({"alertname": "PharosInstanceDown", "severity": "warning", "environment": "production", "service": "orders", "team": "payments"}, ["team-payments"]),
    ({"alertname": "PharosServiceInstancesDown", "severity": "critical", "environment": "production", "service": "orders", "team": "payments"}, ["pager", "team-payments"]),
    ({"alertname": "PharosHighErrorRate", "severity": "critical", "environment": "beta", "service": "orders", "team": "payments"}, ["team-payments", "team-staging"]),
    ({"alertname": "Watchdog", "severity": "info", "environment": "production", "team": "payments"}, ["heartbeat"]),
]


@pytest.mark.parametrize("labels, receivers", ROUTING_TABLE, ids=lambda x: "-".join(x.values()) if isinstance(x, dict) else "")
def test_routes(built: Path, labels: dict, receivers: list[str]):
    assert route_receivers(built / "production" / "alertmanager" / "alertmanager.yml", labels) == receivers


def test_every_alert_of_the_catalogue_reaches_a_receiver_in_production(built: Path):
    config = built / "production" / "alertmanager" / "alertmanager.yml"
    expected = {"Watchdog": ["heartbeat"], "AlertmanagerNotificationsFailing": ["delivery"]}
    by_severity = {"critical": ["pager"], "warning": ["team-production"], "info": ["team-production"]}
    for alert in ALERTS:
        labels = {"alertname": alert.name, "severity": alert.severity, "environment": "production"}
        assert route_receivers(config, labels) == expected.get(alert.name, by_severity[alert.severity]), alert.name


def test_alertmanager_settings(built: Path):
    config = yaml.safe_load((built / "production" / "alertmanager" / "alertmanager.yml").read_text())
    assert config["global"]["smtp_require_tls"] is False
    assert config["route"]["group_by"] == ["alertname", L.ENVIRONMENT, L.SERVICE]
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    for receiver in receivers.values():
        for integration in receiver.get("email_configs", []) + receiver.get("slack_configs", []):
            assert integration["send_resolved"] is True
    assert [c["to"] for c in receivers["delivery"]["email_configs"]] == ["oncall@example.com", "team@example.com"]
    watchdog = next(route for route in config["route"]["routes"] if route["receiver"] == "heartbeat")
    # One heartbeat per minute: Alertmanager sends at every group_interval tick once repeat_interval
    # has passed, and a repeat_interval equal to group_interval misses every second tick.
    assert (watchdog["group_interval"], watchdog["repeat_interval"]) == ("1m", "30s")


# --- inhibition, applied by a real Alertmanager ------------------------------------------------
@pytest.mark.slow
def test_a_down_service_does_not_also_page_for_its_latency(built: Path, tmp_path: Path):
    def alert(name, severity, service, instance=""):
        labels = {"alertname": name, "severity": severity, L.ENVIRONMENT: "production", L.SERVICE: service}
        if instance:
            labels[L.INSTANCE] = instance
        return {"labels": labels, "annotations": {"summary": name}}

    posted = [
        alert("PharosServiceInstancesDown", "critical", "orders"),
        alert("PharosHighLatency", "critical", "orders"),
        alert("PharosInstanceDown", "warning", "orders", "orders-1:9841"),
        alert("PharosHighErrorRate", "critical", "billing"),  # another service: pages
        alert("SwarmServiceDegraded", "warning", "billing"),  # a warning of a paging service: waits
        alert("PharosExporterDown", "warning", "catalog", "catalog-1:8080"),
        alert("PharosMemoryNearLimit", "warning", "catalog", "catalog-1:8080"),  # same instance: silent
        alert("PharosGCTimeHigh", "warning", "catalog", "catalog-2:8080"),  # another instance: notifies
        {"labels": {"alertname": "PrometheusRuleFailures", "severity": "critical", L.ENVIRONMENT: "production"}},
        # A critical alert without a service silences no warning without one.
        {"labels": {"alertname": "PrometheusBadConfig", "severity": "warning", L.ENVIRONMENT: "production"}},
    ]
    with running_alertmanager(built / "production" / "alertmanager" / "alertmanager.yml", tmp_path) as url:
        post_alerts(url, posted)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = alert_states(url)
            if len(states) == len(posted) and states["PharosHighLatency"]["inhibitedBy"] and states["SwarmServiceDegraded"]["inhibitedBy"]:
                break
            time.sleep(0.1)
    state = {name: status["state"] for name, status in states.items()}
    assert state == {
        "PharosServiceInstancesDown": "active",
        "PharosHighLatency": "suppressed",
        "PharosInstanceDown": "suppressed",
        "PharosHighErrorRate": "active",
        "SwarmServiceDegraded": "suppressed",
        "PharosExporterDown": "active",
        "PharosMemoryNearLimit": "suppressed",
        "PharosGCTimeHigh": "active",
        "PrometheusRuleFailures": "active",
        "PrometheusBadConfig": "active",
    }


# --- Prometheus configuration ------------------------------------------------------------------
def test_scrape_configs(built: Path):
    config = yaml.safe_load((built / "production" / "prometheus" / "prometheus.yml").read_text())
    assert config["global"]["external_labels"] == {L.ENVIRONMENT: "production"}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert sorted(jobs) == ["alertmanager", "catalog", "orders", "pharos-exporter", "prometheus"]

    def set_labels(job):
        return {rule["target_label"]: rule["replacement"] for rule in job["relabel_configs"] if "replacement" in rule}

    assert set_labels(jobs["orders"]) == {L.SERVICE: "orders", L.ENVIRONMENT: "production", L.TEAM: "payments"}
    for own in ("prometheus", "alertmanager", "pharos-exporter"):
        # PharosMonitoringComponentDown watches exactly the jobs with a component label.
        assert set_labels(jobs[own]) == {L.ENVIRONMENT: "production", L.COMPONENT: own}
    for job in jobs.values():
        assert (job["sample_limit"], job["label_limit"], job["body_size_limit"]) == (20000, 40, "10MB")
    assert jobs["orders"]["static_configs"] == [{"targets": ["127.0.0.1:9842", "127.0.0.1:9843"]}]
    assert "metrics_path" not in jobs["orders"]

    probe = jobs["catalog"]
    assert probe["metrics_path"] == "/probe"
    assert probe["params"] == {"profile": ["pharo"]}
    assert probe["relabel_configs"][:3] == [
        {"source_labels": ["__address__"], "target_label": "__param_target"},
        {"source_labels": ["__param_target"], "target_label": L.INSTANCE},
        {"target_label": "__address__", "replacement": "127.0.0.1:9841"},
    ]
    assert set_labels(probe) == {"__address__": "127.0.0.1:9841", L.SERVICE: "catalog", L.ENVIRONMENT: "production"}
    assert probe["file_sd_configs"] == [{"files": ["file_sd/catalog.yml"], "refresh_interval": "1m"}]
    assert config["rule_files"] == ["rules/*.yml"]


# --- determinism and secrets -------------------------------------------------------------------
def test_scrape_limits_come_from_the_stack_file_and_promtool_accepts_them(tmp_path: Path, secrets: Path):
    data = stack_data(secrets) | {"scrape_limits": {"sample_limit": 500, "label_limit": 0, "body_size_limit": "512KB"}}
    out = tmp_path / "out"
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(out), "--environment", "alpha"]) == 0
    config_path = out / "prometheus" / "prometheus.yml"
    assert_ok(run(PROMTOOL, "check", "config", str(config_path)))
    for job in yaml.safe_load(config_path.read_text())["scrape_configs"]:
        assert (job["sample_limit"], job["label_limit"], job["body_size_limit"]) == (500, 0, "512KB")


def test_building_twice_gives_the_same_bytes_whatever_the_hash_seed(tmp_path: Path, secrets: Path):
    stack = write_stack(tmp_path, stack_data(secrets))
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"out-{seed}"
        environment = {**os.environ, "PYTHONHASHSEED": seed}
        command = [sys.executable, "-m", "pharos_monitoring.cli", "build", "--config", str(stack), "--out", str(out)]
        assert subprocess.run(command, env=environment, capture_output=True, timeout=120).returncode == 0
        outputs.append(files_of(out))
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) == 3 * 7  # per environment: prometheus.yml, four rule files (two without rules here), their tests, alertmanager.yml
    assert main(["build", "--config", str(stack), "--out", str(tmp_path / "out-1")]) == 0
    assert files_of(tmp_path / "out-1") == outputs[0]


def test_secrets_appear_only_as_file_paths(built: Path, secrets: Path):
    for name, content in files_of(built).items():
        text = content.decode()
        assert SLACK_SECRET not in text, name
        assert SMTP_SECRET not in text, name
        assert "hooks.slack" not in text, name
    alertmanager = (built / "production" / "alertmanager" / "alertmanager.yml").read_text()
    assert f"smtp_auth_password_file: {secrets / 'smtp_password'}" in alertmanager
    assert f"api_url_file: {secrets / 'slack_pages'}" in alertmanager


# --- the command -------------------------------------------------------------------------------
def test_one_environment_goes_straight_into_out(tmp_path: Path, secrets: Path):
    stack = write_stack(tmp_path, stack_data(secrets))
    out = tmp_path / "out"
    stale = out / "prometheus" / "rules" / "renamed-long-ago.yml"
    stale.parent.mkdir(parents=True)
    stale.write_text("groups: []\n")
    assert main(["build", "--config", str(stack), "--out", str(out), "--environment", "beta"]) == 0
    assert sorted(files_of(out)) == [
        "alertmanager/alertmanager.yml",
        f"prometheus/{BUILD_RULE_TESTS}",
        "prometheus/prometheus.yml",
        "prometheus/rules/pharos-alerts.yml",
        "prometheus/rules/pharos-expected-instances.yml",
        "prometheus/rules/pharos-recording.yml",
        "prometheus/rules/pharos-slo.yml",
    ]
    config = yaml.safe_load((out / "prometheus" / "prometheus.yml").read_text())
    assert config["global"]["external_labels"] == {L.ENVIRONMENT: "beta"}
    # beta's thresholds, not production's
    assert "service:http_server_errors:ratio_rate5m > 0.1 " in (out / "prometheus" / "rules" / "pharos-alerts.yml").read_text()


def test_an_unknown_environment_is_refused_before_writing(tmp_path: Path, secrets: Path, capsys):
    stack = write_stack(tmp_path, stack_data(secrets))
    out = tmp_path / "out"
    assert main(["build", "--config", str(stack), "--out", str(out), "--environment", "gamma"]) == 1
    assert "environments: no environment 'gamma'; this stack has alpha, beta, production" in capsys.readouterr().err
    assert not out.exists()


def _set(data: dict, path: str, value) -> None:
    keys = path.split("/")
    for key in keys[:-1]:
        data = data[int(key)] if isinstance(data, list) else data[key]
    if value is _DELETE:
        del data[keys[-1]]
    else:
        data[keys[-1]] = value


_DELETE = object()

MISTAKES = [
    ("receivers/pager/slack/0/webhook_url", "https://hooks.slack.com/x", "receivers.pager.slack[0].webhook_url: secrets are not accepted inline"),
    ("smtp/auth_password", "hunter2", "smtp.auth_password: secrets are not accepted inline"),
    ("environments/production/services/orders/mode", "side", "environments.production.services.orders.mode: expected sidecar or probe, got 'side'"),
    ("intervals/scrape_timeout", "15s", "intervals.scrape_timeout: 15s must be shorter than scrape_interval 15s"),
    ("intervals/scrape_interval", "15 seconds", "intervals.scrape_interval: '15 seconds' is not a duration"),
    ("routes/environments/production/critical", "nobody", "routes.environments.production.critical: no receiver 'nobody'"),
    ("routes/alerts/Watchdog", _DELETE, "routes.alerts: no route for Watchdog"),
    ("routes/alerts/PharosTypo", "pager", "routes.alerts.PharosTypo: unknown key"),
    ("environments/production/exporter", _DELETE, "environments.production.exporter: missing; service catalog uses mode probe"),
    ("environments/staging", {"alertmanagers": ["127.0.0.1:9093"]}, "environments.staging: unknown environment"),
    ("environments/production/services/catalog/profile", "pharoh", "environments.production.services.catalog.profile: unknown profile 'pharoh'"),
    ("environments/production/services/alertmanager", {"mode": "sidecar", "targets": ["127.0.0.1:1"]}, "is the name of a job Pharos generates"),
    ("environments/production/services/orders/targets", ["orders-1"], "targets[0]: 'orders-1' is not HOST:PORT"),
    ("smtp", _DELETE, "receivers.delivery.email: mail receivers need the top-level smtp section"),
    ("receivers/team-mail/email", ["a@example.com, b@example.com"], "is not one mail address"),
    ("scrape_limits", {"sample_limit": -1}, "scrape_limits.sample_limit: expected a whole number, 0 for no limit, got -1"),
    ("scrape_limits", {"body_size_limit": "10 megabytes"}, "scrape_limits.body_size_limit: '10 megabytes' is not a size like 10MB"),
    ("scrape_limits", {"samples": 5}, "scrape_limits.samples: unknown key"),
    ("environments/alpha/services/orders/team", "billing", "environments.alpha.services.orders.team: no team 'billing' in routes.teams"),
    ("routes/teams/payments", "nobody", "routes.teams.payments: no receiver 'nobody'"),
]


@pytest.mark.parametrize("path, value, message", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_mistake_in_the_stack_names_file_and_key(tmp_path: Path, secrets: Path, capsys, path, value, message):
    data = copy.deepcopy(stack_data(secrets))
    _set(data, path, value)
    stack = write_stack(tmp_path, data)
    assert main(["build", "--config", str(stack), "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"pharos build: {stack}: ")
    assert message in error
    assert not (tmp_path / "out").exists()


def test_the_example_stack_builds_into_configuration_the_tools_accept(tmp_path: Path):
    example = Path(__file__).resolve().parent.parent / "examples" / "stack.yml"
    assert main(["build", "--config", str(example), "--out", str(tmp_path)]) == 0
    for environment in ("alpha", "beta", "production"):
        assert_ok(run(PROMTOOL, "check", "config", str(tmp_path / environment / "prometheus" / "prometheus.yml")))
        assert_ok(run(AMTOOL, "check-config", str(tmp_path / environment / "alertmanager" / "alertmanager.yml")))
    pager = route_receivers(tmp_path / "production" / "alertmanager" / "alertmanager.yml", {"severity": "critical", "environment": "production"})
    assert pager == ["production-pager"]


def test_the_node_job_scrapes_listed_machines_and_discovered_swarm_nodes(tmp_path: Path, secrets: Path):
    data = copy.deepcopy(stack_data(secrets))
    production = data["environments"]["production"]
    production["node_exporters"] = ["db-1:9100", "127.0.0.1:9100"]
    production["swarm"] = {"docker_host": "unix:///var/run/docker.sock", "node_exporter_port": 9100}
    out = tmp_path / "out"
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(out), "--environment", "production"]) == 0
    config_path = out / "prometheus" / "prometheus.yml"
    assert_ok(run(PROMTOOL, "check", "config", str(config_path)))
    jobs = {job["job_name"]: job for job in yaml.safe_load(config_path.read_text())["scrape_configs"]}
    node = jobs[NODE_JOB]
    assert node["static_configs"] == [{"targets": ["db-1:9100", "127.0.0.1:9100"]}]
    assert node["dockerswarm_sd_configs"] == [{"host": "unix:///var/run/docker.sock", "role": "nodes", "port": 9100, "refresh_interval": "30s"}]
    assert {L.ENVIRONMENT: "production"}.items() <= {r["target_label"]: r.get("replacement") for r in node["relabel_configs"] if "source_labels" not in r}.items()
    # No node_exporter anywhere in beta: no node job there.
    beta = tmp_path / "beta"
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(beta), "--environment", "beta"]) == 0
    assert NODE_JOB not in {job["job_name"] for job in yaml.safe_load((beta / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]}


def test_the_node_agent_job_finds_every_agent_task_with_environment_node_and_component(tmp_path: Path, secrets: Path):
    """`swarm.node_agent_port`: one target per task of the global pharos-node-agent service (an
    exporter in the containers scope on every node), found by Docker Swarm discovery as the exporter
    of the opted-in services is, reached as a Pharos exporter (exporter_auth applies)."""
    data = copy.deepcopy(stack_data(secrets))
    production = data["environments"]["production"]
    production["swarm"] = {"docker_host": "unix:///var/run/docker.sock", "network": "pharos.monitoring", "node_agent_port": 9841}
    production["exporter_auth"] = {"username": "prometheus", "password_file": str(secrets / "smtp_password")}
    out = tmp_path / "out"
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(out), "--environment", "production"]) == 0
    config_path = out / "prometheus" / "prometheus.yml"
    assert_ok(run(PROMTOOL, "check", "config", str(config_path)))
    jobs = {job["job_name"]: job for job in yaml.safe_load(config_path.read_text())["scrape_configs"]}
    agent = jobs[node_agent.NODE_AGENT_JOB]
    assert agent["dockerswarm_sd_configs"] == [{"host": "unix:///var/run/docker.sock", "role": "tasks", "port": 9841, "refresh_interval": "30s"}]
    assert agent["basic_auth"] == jobs["pharos-exporter"]["basic_auth"]
    # The agents' series carry their node already: theirs stays `node`, not `exported_node`.
    assert agent["honor_labels"] is True and "metrics_path" not in agent
    keep = {tuple(rule["source_labels"]): rule["regex"] for rule in agent["relabel_configs"] if rule.get("action") == "keep"}
    assert keep == {
        (swarm_discovery.service_label(node_agent.NODE_AGENT_LABEL),): "true",
        (swarm_discovery.TASK_DESIRED_STATE, swarm_discovery.TASK_STATE): "running;running",
        (swarm_discovery.NETWORK_NAME,): r"pharos\.monitoring",
    }
    assert {"source_labels": [swarm_discovery.NODE_HOSTNAME], "target_label": L.NODE} in agent["relabel_configs"]
    set_labels = {rule["target_label"]: rule["replacement"] for rule in agent["relabel_configs"] if "replacement" in rule}
    assert set_labels == {L.ENVIRONMENT: "production", L.COMPONENT: node_agent.NODE_AGENT_JOB}
    # Without node_agent_port, no agent job; a service may not take its name.
    del production["swarm"]["node_agent_port"]
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(tmp_path / "without"), "--environment", "production"]) == 0
    assert node_agent.NODE_AGENT_JOB not in {job["job_name"] for job in yaml.safe_load((tmp_path / "without" / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]}
    production["services"][node_agent.NODE_AGENT_JOB] = {"mode": "sidecar", "targets": ["a:1"]}
    with pytest.raises(StackConfigError, match="is the name of a job Pharos generates"):
        parse_stack(data, "stack.yml")


@pytest.mark.parametrize("port", ["9841", 0, 70000])
def test_a_bad_node_agent_port_names_the_key(secrets: Path, port):
    data = copy.deepcopy(stack_data(secrets))
    data["environments"]["production"]["swarm"] = {"node_agent_port": port}
    with pytest.raises(StackConfigError, match=f"stack.yml: environments.production.swarm.node_agent_port: expected a port number between 1 and 65535, got {port!r}"):
        parse_stack(data, "stack.yml")


def test_the_node_job_names_each_target_by_its_machine(tmp_path: Path):
    """Prometheus' own relabelling of the generated job, on a real node_exporter: `node` is the
    host of a listed address, and the job's series reach the alerts' expressions."""
    import re
    import shutil
    import socket

    import requests

    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        pytest.skip("node_exporter is not installed: apt-get install prometheus-node-exporter (scripts/setup.sh does)")
    from pharos_monitoring.alerts.catalogue import NODE_FILESYSTEM_FILLING_UP, NODE_MEMORY_PRESSURE
    from pharos_monitoring.config.node_scrape import scrape_job

    def free_port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    exporter_port, prometheus_port = free_port(), free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [scrape_job("production", (f"127.0.0.1:{exporter_port}",), None)],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    children = [
        subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{exporter_port}", "--no-collector.systemd"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        def query(expr: str) -> list:
            try:
                answer = requests.get(f"http://127.0.0.1:{prometheus_port}/api/v1/query", params={"query": expr}, timeout=5).json()
            except (requests.RequestException, ValueError):
                return []
            return answer["data"]["result"]

        deadline = time.monotonic() + 60
        while not (up := query(f'up{{job="{NODE_JOB}"}}')) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert up and up[0]["value"][1] == "1", up
        assert up[0]["metric"][L.NODE] == "127.0.0.1" and up[0]["metric"][L.ENVIRONMENT] == "production"
        # Each side of the alerts' comparisons must find node_exporter's series (predict_linear needs two scrapes).
        for alert in (NODE_FILESYSTEM_FILLING_UP, NODE_MEMORY_PRESSURE):
            for part in (part for part in re.split(r" (?:and|<) ", alert.expression("production")) if "node_" in part):
                deadline = time.monotonic() + 30
                while not query(part) and time.monotonic() < deadline:
                    time.sleep(0.5)
                assert query(part), f"{alert.name}: {part} returns nothing from a real node_exporter"
    finally:
        for child in children:
            child.terminate()
            child.wait(20)


# --- high availability: a Prometheus pair and an Alertmanager cluster (pharos/config/ha.py) ------
HA_ALERTMANAGERS = ["127.0.0.1:9093", "127.0.0.1:9193", "127.0.0.1:9293"]
HA_SECTION = {"prometheus": ["127.0.0.1:9090", "127.0.0.1:9190"], "alertmanager_cluster": ["127.0.0.1:9094", "127.0.0.1:9194", "127.0.0.1:9294"]}


def _ha_data(secrets: Path, alertmanagers: list[str], section: dict) -> dict:
    data = copy.deepcopy(stack_data(secrets))
    data["intervals"] |= {"group_interval": "5s"}
    data["environments"]["production"] |= {"alertmanagers": alertmanagers, "ha": copy.deepcopy(section)}
    return data


def ha_stack_data(secrets: Path) -> dict:
    return _ha_data(secrets, HA_ALERTMANAGERS, HA_SECTION)


def _built_production(tmp_path: Path, data: dict) -> tuple[Path, dict]:
    """`pharos build` of production into tmp_path/out, checked by promtool and amtool: the output
    directory and its prometheus.yml."""
    out = tmp_path / "out"
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(out), "--environment", "production"]) == 0
    assert_ok(run(PROMTOOL, "check", "config", str(out / "prometheus" / "prometheus.yml")))
    assert_ok(run(AMTOOL, "check-config", str(out / "alertmanager" / "alertmanager.yml")))
    return out, yaml.safe_load((out / "prometheus" / "prometheus.yml").read_text())


def test_ha_builds_a_pair_that_sends_identical_alerts_to_every_alertmanager(tmp_path: Path, secrets: Path):
    out, config = _built_production(tmp_path, ha_stack_data(secrets))
    # One file for both replicas: each expands ${REPLICA} (--enable-feature=expand-external-labels).
    assert config["global"]["external_labels"] == {L.ENVIRONMENT: "production", "replica": "${REPLICA}"}
    assert config["alerting"] == {
        "alert_relabel_configs": [{"action": "labeldrop", "regex": "replica"}],
        "alertmanagers": [{"static_configs": [{"targets": HA_ALERTMANAGERS}]}],
    }
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["prometheus"]["static_configs"] == [{"targets": HA_SECTION["prometheus"]}]  # each replica watches the other
    assert jobs["alertmanager"]["static_configs"] == [{"targets": HA_ALERTMANAGERS}]

    flags = yaml.safe_load((out / "ha.yml").read_text())
    assert [(r["address"], r["environment"], r["flags"]) for r in flags["prometheus"]] == [
        ("127.0.0.1:9090", {"REPLICA": "1"}, ["--enable-feature=expand-external-labels", "--web.listen-address=127.0.0.1:9090"]),
        ("127.0.0.1:9190", {"REPLICA": "2"}, ["--enable-feature=expand-external-labels", "--web.listen-address=127.0.0.1:9190"]),
    ]
    assert flags["alertmanager"][1] == {
        "address": "127.0.0.1:9193",
        "cluster_address": "127.0.0.1:9194",
        "flags": [
            "--web.listen-address=127.0.0.1:9193",
            "--cluster.listen-address=127.0.0.1:9194",
            "--cluster.peer=127.0.0.1:9094",
            "--cluster.peer=127.0.0.1:9294",
            "--cluster.peer-timeout=2s",  # (3 - 1) x 2 s < group_interval 5 s
        ],
    }
    # Without `ha:` again, the flags of the earlier build go: they would start the wrong shape.
    assert main(["build", "--config", str(write_stack(tmp_path, stack_data(secrets))), "--out", str(out), "--environment", "production"]) == 0
    assert not (out / "ha.yml").exists()


def test_ha_names_listen_on_every_interface_and_ips_on_themselves():
    from pharos_monitoring.config import ha

    pair = ha.HighAvailability(("prometheus-1:9090", "10.0.0.2:9090"), ("am-1:9094", "am-2:9094"), 15)
    flags = ha.flags(pair, ("am-1:9093", "am-2:9093"))
    assert flags["prometheus"][0]["flags"][-1] == "--web.listen-address=0.0.0.0:9090"
    assert flags["prometheus"][1]["flags"][-1] == "--web.listen-address=10.0.0.2:9090"
    assert flags["alertmanager"][0]["flags"][:3] == ["--web.listen-address=0.0.0.0:9093", "--cluster.listen-address=0.0.0.0:9094", "--cluster.peer=am-2:9094"]


@pytest.mark.parametrize(
    "group_interval, watchdog, peers, seconds",
    [("5s", "1m", 3, 2), ("4s", "1m", 3, 1), ("5m", "1m", 3, 15), ("10s", "1m", 2, 9), ("5m", "20s", 3, 9), ("2s", "1m", 3, 0)],
)
def test_the_peer_timeout_keeps_the_last_peers_wait_below_group_interval(group_interval, watchdog, peers, seconds):
    from pharos_monitoring.alerts.alertmanager import Timing
    from pharos_monitoring.config import ha

    assert ha.peer_timeout_seconds(peers, Timing(group_interval=group_interval, watchdog_repeat_interval=watchdog)) == seconds


HA_MISTAKES = [
    ("environments/production/ha/prometheus", ["127.0.0.1:9090"], "environments.production.ha.prometheus: list at least two Prometheus replicas"),
    ("environments/production/ha/alertmanager_cluster", ["127.0.0.1:9094", "127.0.0.1:9194"], "ha.alertmanager_cluster: give one gossip address (HOST:PORT) per Alertmanager, in the order of alertmanagers: 3 expected, got 2"),
    ("environments/production/ha/alertmanager_cluster", ["127.0.0.1:9093", "127.0.0.1:9194", "127.0.0.1:9294"], "must differ from the Alertmanager's web address"),
    ("environments/production/ha/replicas", 2, "environments.production.ha.replicas: unknown key"),
    ("intervals/group_interval", "2s", "intervals.group_interval 2s is too short for a cluster of 3"),
]


@pytest.mark.parametrize("path, value, message", HA_MISTAKES, ids=[f"{m[0]}-{i}" for i, m in enumerate(HA_MISTAKES)])
def test_a_mistake_in_the_ha_section_names_file_and_key(tmp_path: Path, secrets: Path, capsys, path, value, message):
    data = ha_stack_data(secrets)
    _set(data, path, value)
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(tmp_path / "out")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- the DNS form of `ha:`: one name for every replica or member (a swarm's tasks.<service>) ------
HA_DNS_SECTION = {"prometheus": {"dns": "tasks.prometheus:9090", "replicas": 2}, "alertmanager_cluster": {"dns": "tasks.alertmanager:9094", "members": 3}}


def ha_dns_stack_data(secrets: Path) -> dict:
    return _ha_data(secrets, ["tasks.alertmanager:9093"], HA_DNS_SECTION)


def test_ha_by_dns_sends_to_every_address_of_the_name_and_scrapes_every_replica(tmp_path: Path, secrets: Path):
    out, config = _built_production(tmp_path, ha_dns_stack_data(secrets))
    assert config["global"]["external_labels"] == {L.ENVIRONMENT: "production", "replica": "${REPLICA}"}
    # Every A record of the name is an Alertmanager: every replica sends to every task, wherever it runs.
    assert config["alerting"] == {
        "alert_relabel_configs": [{"action": "labeldrop", "regex": "replica"}],
        "alertmanagers": [{"dns_sd_configs": [{"names": ["tasks.alertmanager"], "type": "A", "port": 9093}]}],
    }
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["prometheus"]["dns_sd_configs"] == [{"names": ["tasks.prometheus"], "type": "A", "port": 9090}]
    assert jobs["alertmanager"]["dns_sd_configs"] == [{"names": ["tasks.alertmanager"], "type": "A", "port": 9093}]
    assert "static_configs" not in jobs["prometheus"] and "static_configs" not in jobs["alertmanager"]

    # One entry for all the tasks behind a name: they share their flags; the slot tells replicas apart.
    flags = yaml.safe_load((out / "ha.yml").read_text())
    assert flags["prometheus"] == [
        {
            "address": "tasks.prometheus:9090",
            "environment": {"REPLICA": "{{.Task.Slot}}"},
            "flags": ["--enable-feature=expand-external-labels", "--web.listen-address=0.0.0.0:9090"],
            "replicas": 2,
        }
    ]
    assert flags["alertmanager"] == [
        {
            "address": "tasks.alertmanager:9093",
            "cluster_address": "tasks.alertmanager:9094",
            "flags": [
                "--web.listen-address=0.0.0.0:9093",
                "--cluster.listen-address=0.0.0.0:9094",
                "--cluster.peer=tasks.alertmanager:9094",  # Alertmanager resolves it into every member
                "--cluster.peer-timeout=2s",  # (3 - 1) x 2 s < group_interval 5 s
            ],
            "members": 3,
        }
    ]


@pytest.mark.parametrize("members, timeout", [(2, "4s"), (3, "2s"), (5, "1s")])
def test_by_dns_the_peer_timeout_follows_the_member_count(tmp_path: Path, secrets: Path, members: int, timeout: str):
    data = ha_dns_stack_data(secrets)
    data["environments"]["production"]["ha"]["alertmanager_cluster"]["members"] = members
    out = tmp_path / "out"
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(out), "--environment", "production"]) == 0
    assert f"--cluster.peer-timeout={timeout}" in yaml.safe_load((out / "ha.yml").read_text())["alertmanager"][0]["flags"]


def test_the_two_forms_mix_a_listed_pair_with_a_cluster_by_dns(tmp_path: Path, secrets: Path):
    data = ha_dns_stack_data(secrets)
    data["environments"]["production"]["ha"]["prometheus"] = ["prometheus-1:9090", "prometheus-2:9090"]
    out = tmp_path / "out"
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(out), "--environment", "production"]) == 0
    assert_ok(run(PROMTOOL, "check", "config", str(out / "prometheus" / "prometheus.yml")))
    config = yaml.safe_load((out / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["prometheus-1:9090", "prometheus-2:9090"]}]
    assert "dns_sd_configs" in config["alerting"]["alertmanagers"][0]
    assert [r["environment"] for r in yaml.safe_load((out / "ha.yml").read_text())["prometheus"]] == [{"REPLICA": "1"}, {"REPLICA": "2"}]


HA_DNS_MISTAKES = [
    ("environments/production/ha/prometheus/replicas", 1, "environments.production.ha.prometheus.replicas: give how many Prometheus replicas tasks.prometheus:9090 stands for, a whole number of at least 2; got 1"),
    ("environments/production/ha/prometheus/replicas", _DELETE, "environments.production.ha.prometheus.replicas: give how many Prometheus replicas"),
    ("environments/production/ha/prometheus/dns", "10.0.0.1:9090", "environments.production.ha.prometheus.dns: '10.0.0.1:9090' is an IP address; give a name that resolves to every Prometheus replica (tasks.<service>:PORT in a swarm)"),
    ("environments/production/ha/prometheus/dns", "tasks.prometheus", "environments.production.ha.prometheus.dns: 'tasks.prometheus' is not HOST:PORT"),
    ("environments/production/ha/prometheus", "tasks.prometheus:9090", "environments.production.ha.prometheus: expected a list of Prometheus replica addresses (HOST:PORT each) or {dns: NAME:PORT, replicas: N}, got str"),
    ("environments/production/ha/alertmanager_cluster/members", "three", "environments.production.ha.alertmanager_cluster.members: give how many Alertmanagers tasks.alertmanager:9094 stands for"),
    ("environments/production/ha/alertmanager_cluster/peers", "tasks.alertmanager:9094", "environments.production.ha.alertmanager_cluster.peers: unknown key; known keys here: dns, members"),
    ("environments/production/ha/alertmanager_cluster/dns", "tasks.alertmanager:9093", "must differ from the Alertmanager's web address"),
    ("environments/production/alertmanagers", ["tasks.alertmanager:9093", "tasks.other:9093"], "environments.production.alertmanagers: with alertmanager_cluster by DNS, list the one name that resolves to every member's web address, e.g. [tasks.alertmanager:9093]"),
    ("environments/production/alertmanagers", ["10.0.0.1:9093"], "environments.production.alertmanagers: with alertmanager_cluster by DNS, list the one name"),
    ("intervals/group_interval", "2s", "intervals.group_interval 2s is too short for a cluster of 3"),
]


@pytest.mark.parametrize("path, value, message", HA_DNS_MISTAKES, ids=[f"{m[0]}-{i}" for i, m in enumerate(HA_DNS_MISTAKES)])
def test_a_mistake_in_the_dns_form_of_ha_names_file_key_and_what_to_write(tmp_path: Path, secrets: Path, capsys, path, value, message):
    data = ha_dns_stack_data(secrets)
    _set(data, path, value)
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(tmp_path / "out")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
