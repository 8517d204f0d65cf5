"""`expected_instances` in the stack file: `pharos build` records the declared count per service and
PharosServiceTargetsMissing fires when fewer targets exist (before the swarm's desired replicas);
promtool proves it on the rule files the build wrote, and a count edited by hand fails those tests."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pharos_monitoring.alerts import prometheus_rules
from pharos_monitoring.alerts.catalogue import SERVICE_TARGETS_MISSING
from pharos_monitoring.alerts.recording import EXPECTED_INSTANCES_RECORD
from pharos_monitoring.cli import main
from pharos_monitoring.config.build import EXPECTED_TESTS_FILE, RULE_TESTS_FILE

from alerting_tools import PROMTOOL, assert_ok, run
from test_build import secrets, stack_data, write_stack  # noqa: F401 - the fixture

DECLARED = "environments/production/services"


def with_counts(secrets: Path) -> dict:  # noqa: F811
    data = stack_data(secrets)
    services = data["environments"]["production"]["services"]
    services["catalog"]["expected_instances"] = 3  # one listed target and file-based discovery
    services["orders"]["expected_instances"] = 2  # both listed: team payments
    return data


def _build(tmp_path: Path, data: dict) -> Path:
    out = tmp_path / "out"
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(out), "--environment", "production"]) == 0
    return out / "prometheus"


def test_the_build_records_each_declared_count_and_tests_it(tmp_path: Path, secrets: Path):  # noqa: F811
    prometheus_dir = _build(tmp_path, with_counts(secrets))
    assert "SUCCESS: 4 rule files found" in assert_ok(run(PROMTOOL, "check", "config", str(prometheus_dir / "prometheus.yml")))
    rules = yaml.safe_load((prometheus_dir / "rules" / prometheus_rules.EXPECTED_FILE).read_text())["groups"][0]["rules"]
    assert rules == [
        {"record": EXPECTED_INSTANCES_RECORD, "expr": "vector(3)", "labels": {"environment": "production", "service": "catalog"}},
        {"record": EXPECTED_INSTANCES_RECORD, "expr": "vector(2)", "labels": {"environment": "production", "service": "orders", "team": "payments"}},
    ]
    assert "SUCCESS" in assert_ok(run(PROMTOOL, "test", "rules", EXPECTED_TESTS_FILE, cwd=prometheus_dir))
    tests = yaml.safe_load((prometheus_dir / EXPECTED_TESTS_FILE).read_text())["tests"]
    fired = [group["name"] for group in tests if group["alert_rule_test"][-1]["exp_alerts"]]
    quiet = [group["name"] for group in tests if not group["alert_rule_test"][-1]["exp_alerts"]]
    assert len(fired) == 4 and len(quiet) == 2, "one fewer and none at all fire, as many keeps quiet, for both services"
    assert all(name.startswith(f"{SERVICE_TARGETS_MISSING.name} in production") for name in fired + quiet)
    # The orders' alert carries its team label, so that it reaches the team's receiver.
    labels = [alert["exp_labels"] for group in tests for alert in group["alert_rule_test"][-1]["exp_alerts"]]
    assert {"service": "orders", "team": "payments"}.items() <= next(label for label in labels if label["service"] == "orders").items()
    # The catalogue's own cases feed their counts themselves and still pass beside the stack's.
    assert "SUCCESS" in assert_ok(run(PROMTOOL, "test", "rules", RULE_TESTS_FILE, cwd=prometheus_dir))
    assert prometheus_rules.EXPECTED_FILE not in (prometheus_dir / RULE_TESTS_FILE).read_text()

    # Without declared counts: a rule file without rules (the compose file mounts it by name) and
    # no tests; a rebuild replaces those of the build before.
    assert _build(tmp_path, stack_data(secrets)) == prometheus_dir
    assert not (prometheus_dir / EXPECTED_TESTS_FILE).exists()
    assert yaml.safe_load((prometheus_dir / "rules" / prometheus_rules.EXPECTED_FILE).read_text()) == {"groups": []}


@pytest.mark.parametrize("wrong", ["vector(2)", "vector(4)"])
def test_the_build_tests_catch_a_count_edited_in_its_output(tmp_path: Path, secrets: Path, wrong: str):  # noqa: F811
    prometheus_dir = _build(tmp_path, with_counts(secrets))
    rules = prometheus_dir / "rules" / prometheus_rules.EXPECTED_FILE
    rules.write_text(rules.read_text().replace("vector(3)", wrong))
    result = run(PROMTOOL, "test", "rules", EXPECTED_TESTS_FILE, cwd=prometheus_dir)
    assert result.returncode != 0 and f"{SERVICE_TARGETS_MISSING.name} in production" in result.stdout + result.stderr


def test_the_declared_count_comes_before_the_swarms_desired_replicas():
    expression = SERVICE_TARGETS_MISSING.expression("production")
    assert f"{EXPECTED_INSTANCES_RECORD} or on (environment, service) swarm_service_replicas_desired" in expression
    titles = [case.title for case in SERVICE_TARGETS_MISSING.test_cases("production")]
    assert "a declared count of two wins over three desired tasks" in titles
    assert "0 of the 3 declared instances of billing are targets" in titles  # a declared service is meant to be scraped
    assert "a swarm service that is not scraped" in titles  # an undeclared one without targets is not counted


@pytest.mark.parametrize(
    "service, value, message",
    [
        ("catalog", "3", "expected a whole number of instances, at least 1, got '3'"),
        ("catalog", 0, "expected a whole number of instances, at least 1, got 0"),
        ("catalog", -2, "expected a whole number of instances, at least 1, got -2"),
        ("catalog", 2.5, "expected a whole number of instances, at least 1, got 2.5"),
        ("catalog", True, "expected a whole number of instances, at least 1, got True"),
        ("orders", 3, "3 instances expected, but only 2 targets are listed and no files: Prometheus can never find more"),
    ],
)
def test_a_wrong_count_names_the_key(tmp_path: Path, secrets: Path, capsys, service: str, value, message: str):  # noqa: F811
    data = copy.deepcopy(stack_data(secrets))
    data["environments"]["production"]["services"][service]["expected_instances"] = value
    stack = write_stack(tmp_path, data)
    assert main(["build", "--config", str(stack), "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert f"pharos build: {stack}: environments.production.services.{service}.expected_instances: {message}" in error
    assert not (tmp_path / "out").exists()
