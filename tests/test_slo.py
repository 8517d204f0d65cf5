"""Service level objectives: the stack file's objectives become recording rules for the workbook's
windows, and promtool proves for each objective that a total outage pages in minutes, a 1-minute
blip pages nobody and a slow leak warns without paging; the burn rates live in one place."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from pharos_monitoring.alerts import prometheus_rules, slo, slo_tests
from pharos_monitoring.alerts.catalogue import HIGH_ERROR_RATE, HIGH_LATENCY
from pharos_monitoring.alerts.model import CRITICAL, WARNING, duration_seconds
from pharos_monitoring.alerts.slo import AVAILABILITY, LATENCY, Objective
from pharos_monitoring.cli import main
from pharos_monitoring.config.build import SLO_TESTS_FILE
from pharos_monitoring.config.yaml_out import dump
from pharos_monitoring.local.time_to_signal import burn_rate_signal

from alerting_tools import PROMTOOL, assert_ok, run
from test_build import secrets, stack_data, write_stack  # noqa: F401 - `secrets` is a fixture

RUNBOOK_BASE = "https://example.com/pharos/docs/runbooks.md"
OBJECTIVES = (
    Objective("production", "orders", AVAILABILITY, 0.999, team="payments"),
    Objective("production", "orders", LATENCY, 0.99, under_seconds=0.5, team="payments"),
    Objective("production", "catalog", AVAILABILITY, 0.9999),
)


def write_slo_tests(directory: Path, objectives=OBJECTIVES, edit=lambda text: text, cases: str = "") -> Path:
    """The objectives' rules (after `edit`) and their promtool tests: every case, or those whose title holds `cases`."""
    files = prometheus_rules.rule_files("production", RUNBOOK_BASE, objectives=objectives)
    for name, content in files.items():
        (directory / name).write_text(edit(dump(content)))
    test_file = directory / "slo-tests.yml"
    tests = slo_tests.unit_tests(objectives, RUNBOOK_BASE, [prometheus_rules.SLO_FILE, prometheus_rules.ALERTS_FILE])
    tests["tests"] = [group for group in tests["tests"] if cases in group["name"]]
    test_file.write_text(dump(tests))
    return test_file


# --- the proofs, run by promtool ---------------------------------------------------------------
def test_outage_pages_blip_pages_nobody_leak_warns_for_every_objective(tmp_path: Path):
    test_file = write_slo_tests(tmp_path)
    output = assert_ok(run(PROMTOOL, "test", "rules", test_file.name, cwd=tmp_path))
    assert "SUCCESS" in output
    titles = [group["name"] for group in yaml.safe_load(test_file.read_text())["tests"]]
    assert len(titles) == 3 * len(OBJECTIVES)
    assert sum("pages nobody" in title for title in titles) == 2 * len(OBJECTIVES)


def test_a_total_outage_of_a_999_service_pages_within_three_minutes_with_the_shipped_intervals():
    objective = OBJECTIVES[0]
    phases = slo_tests.outage(objective)
    seconds = slo_tests.signal_seconds(slo.SLO_BURN_PAGE, objective, phases, phases[0][0])
    assert 120 <= seconds <= 180
    group = slo_tests.objective_tests(objective, RUNBOOK_BASE)[0]
    assert group["alert_rule_test"][-1]["eval_time"] == f"{phases[0][0] + seconds + slo_tests.STEP_SECONDS}s"


@pytest.mark.parametrize(
    "wrong, right",
    [("14.4 *", "1.44 *"), ("on (environment, service, slo) group_left () (1 *", "on (environment, service, slo) group_left () (10 *")],
    ids=["a fast page ten times too eager", "a ticket ten times too lazy"],
)
def test_the_tests_catch_a_burn_rate_edited_in_the_rules(tmp_path: Path, wrong: str, right: str):
    # The outage case would still pass; the blip and the leak must not.
    test_file = write_slo_tests(tmp_path, OBJECTIVES[:1], edit=lambda text: text.replace(wrong, right), cases="nobody")
    assert right in (tmp_path / prometheus_rules.ALERTS_FILE).read_text()
    result = run(PROMTOOL, "test", "rules", test_file.name, cwd=tmp_path)
    assert result.returncode != 0


# --- one place for windows and factors ---------------------------------------------------------
def test_windows_and_factors_are_the_workbooks_and_reach_the_rules():
    assert {severity: [(r.factor, r.long, r.short) for r in rates] for severity, rates in slo.BURN_RATES.items()} == {
        CRITICAL: [(14.4, "1h", "5m"), (6, "6h", "30m")],
        WARNING: [(1, "3d", "6h")],
    }
    assert [round(rate.budget_spent, 3) for rates in slo.BURN_RATES.values() for rate in rates] == [0.02, 0.05, 0.1]
    files = prometheus_rules.rule_files("production", RUNBOOK_BASE, objectives=OBJECTIVES[:2])
    records = [rule["record"] for group in files[prometheus_rules.SLO_FILE]["groups"] for rule in group["rules"]]
    assert records[: len(slo.WINDOWS)] == [f"slo:sli_error:ratio_rate{window}" for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")]
    expressions = "\n".join(rule["expr"] for group in files[prometheus_rules.SLO_FILE]["groups"] for rule in group["rules"])
    assert 'le="0.5"' in expressions and 'service="orders"' in expressions and 'environment="production"' in expressions
    alerts = {rule["alert"]: rule["expr"] for rule in files[prometheus_rules.ALERTS_FILE]["groups"][0]["rules"]}
    assert "slo:sli_error:ratio_rate1h > on (environment, service, slo) group_left () (14.4 * (1 - slo:objective:ratio))" in alerts[slo.SLO_BURN_PAGE.name]
    assert re.findall(r"ratio_rate(\w+) >", alerts[slo.SLO_BURN_TICKET.name]) == ["3d", "6h"]


def test_services_with_an_objective_leave_the_threshold_alerts_to_the_burn_rates():
    assert 'unless on (environment, service) slo:objective:ratio{slo="availability"}' in HIGH_ERROR_RATE.expression("production")
    assert 'unless on (environment, service) slo:objective:ratio{slo="latency"}' in HIGH_LATENCY.expression("production")


def test_the_time_to_signal_of_the_burn_rate_page_with_the_shipped_intervals(tmp_path: Path, secrets: Path):  # noqa: F811
    from pharos_monitoring.config.stack_config import load

    stack = load(str(write_stack(tmp_path, stack_data(secrets))))
    estimate = burn_rate_signal(stack, 0.999)
    assert (estimate.typical, estimate.worst) == (172.5, 195.0)
    assert burn_rate_signal(stack, 0.99).typical > 10 * 60, "the looser the objective, the longer a total outage takes to matter"


# --- the stack file ----------------------------------------------------------------------------
def with_objectives(secrets: Path) -> dict:
    data = stack_data(secrets)
    services = data["environments"]["production"]["services"]
    services["orders"]["objectives"] = {"availability": 99.9, "latency": {"percent": 99, "under": 0.5}}
    services["catalog"]["objectives"] = {"availability": 99.5}
    return data


def test_the_build_writes_slo_rules_and_their_passing_tests(tmp_path: Path, secrets: Path):  # noqa: F811
    out = tmp_path / "out"
    assert main(["build", "--config", str(write_stack(tmp_path, with_objectives(secrets))), "--out", str(out), "--environment", "production"]) == 0
    prometheus_dir = out / "prometheus"
    output = assert_ok(run(PROMTOOL, "check", "config", str(prometheus_dir / "prometheus.yml")))
    assert "SUCCESS: 4 rule files found" in output
    rules = yaml.safe_load((prometheus_dir / "rules" / prometheus_rules.SLO_FILE).read_text())
    assert [group["name"] for group in rules["groups"]] == ["pharos.slo.catalog.availability", "pharos.slo.orders.availability", "pharos.slo.orders.latency"]
    assert "SUCCESS" in assert_ok(run(PROMTOOL, "test", "rules", SLO_TESTS_FILE, cwd=prometheus_dir))
    assert "SUCCESS" in assert_ok(run(PROMTOOL, "test", "rules", "pharos-tests.yml", cwd=prometheus_dir))
    # An environment without objectives gets an SLO file without rules (the compose file mounts it
    # by name) and no tests, and a rebuild replaces those of the build before.
    assert main(["build", "--config", str(write_stack(tmp_path, stack_data(secrets))), "--out", str(out), "--environment", "production"]) == 0
    assert not (prometheus_dir / SLO_TESTS_FILE).exists()
    assert yaml.safe_load((prometheus_dir / "rules" / prometheus_rules.SLO_FILE).read_text()) == {"groups": []}


@pytest.mark.parametrize(
    "objectives, message",
    [
        ({"availability": 100}, "objectives.availability: 100 is not a percentage from 95 up to (not including) 100"),
        ({"availability": "99.9%"}, "objectives.availability: expected a number, got '99.9%'"),
        ({"latency": {"percent": 99}}, "objectives.latency: a latency objective needs percent (e.g. 99) and under"),
        ({"latency": {"percent": 99, "under": 0}}, "objectives.latency.under: expected seconds above 0"),
        ({"uptime": 99}, "objectives.uptime: unknown key; known keys here: availability, latency"),
    ],
)
def test_a_mistake_in_an_objective_names_the_key(tmp_path: Path, secrets: Path, capsys, objectives: dict, message: str):  # noqa: F811
    data = copy.deepcopy(stack_data(secrets))
    data["environments"]["production"]["services"]["orders"]["objectives"] = objectives
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(tmp_path / "out")]) == 1
    assert f"environments.production.services.orders.{message}" in capsys.readouterr().err


def test_windows_are_durations_prometheus_and_the_model_read():
    assert [duration_seconds(window) for window in slo.WINDOWS] == [300, 1800, 3600, 7200, 21600, 86400, 259200]
    assert duration_seconds(slo.PERIOD) == 30 * 86400
