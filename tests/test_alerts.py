"""The alert catalogue: rule files promtool accepts, and `promtool test rules` cases generated from
the catalogue's own data, in every environment: each alert fires where it must and keeps quiet
where it must not."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pharos_monitoring import alerts
from pharos_monitoring.alerts import prometheus_rules, rule_tests, templates
from pharos_monitoring.alerts.catalogue import ALERTS, ALWAYS_FIRING, INHIBITIONS
from pharos_monitoring.alerts.model import ENVIRONMENTS, SEVERITIES, Alert, Threshold
from pharos_monitoring.alerts.recording import RECORDINGS
from pharos_monitoring.alerts import promql as q
from pharos_monitoring.exporter import catalogue
from pharos_monitoring.config.yaml_out import dump

from alerting_tools import PROMTOOL, assert_ok, run

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK_BASE = "https://example.com/pharos/docs/runbooks.md"


def write_rules_and_tests(directory: Path, rules_environment: str, tests_environment: str) -> Path:
    for name, content in prometheus_rules.rule_files(rules_environment, RUNBOOK_BASE).items():
        (directory / name).write_text(dump(content))
    rule_files = list(prometheus_rules.rule_files(rules_environment, RUNBOOK_BASE))
    test_file = directory / "pharos-tests.yml"
    test_file.write_text(dump(rule_tests.unit_tests(tests_environment, RUNBOOK_BASE, rule_files)))
    return test_file


# --- every alert carries its proof -----------------------------------------------------------
@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("alert", ALERTS, ids=lambda alert: alert.name)
def test_every_alert_has_a_firing_case_and_a_quiet_case(alert: Alert, environment: str):
    cases = alert.test_cases(environment)
    assert any(case.firing for case in cases), f"{alert.name} has no case in which it must fire"
    quiet = [case for case in cases if not case.firing]
    if alert in ALWAYS_FIRING:
        assert not quiet, f"{alert.name} fires whatever the data; a quiet case for it cannot pass"
    else:
        assert quiet, f"{alert.name} has no case in which it must keep quiet"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_promtool_unit_tests_pass_in_every_environment(tmp_path: Path, environment: str):
    test_file = write_rules_and_tests(tmp_path, environment, environment)
    output = assert_ok(run(PROMTOOL, "test", "rules", test_file.name, cwd=tmp_path))
    assert "SUCCESS" in output
    groups = rule_tests.unit_tests(environment, RUNBOOK_BASE, [])["tests"]
    assert len(groups) == sum(len(alert.test_cases(environment)) for alert in ALERTS) >= 2 * len(ALERTS) - len(ALWAYS_FIRING)


def test_unit_tests_fail_against_another_environments_thresholds(tmp_path: Path):
    """The cases follow each environment's thresholds: alpha's cases against production's rules fail."""
    test_file = write_rules_and_tests(tmp_path, "production", "alpha")
    result = run(PROMTOOL, "test", "rules", test_file.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "PharosHighErrorRate in alpha" in result.stdout + result.stderr


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_promtool_accepts_the_rule_files(tmp_path: Path, environment: str):
    paths = []
    for name, content in prometheus_rules.rule_files(environment, RUNBOOK_BASE).items():
        (tmp_path / name).write_text(dump(content))
        paths.append(str(tmp_path / name))
    output = assert_ok(run(PROMTOOL, "check", "rules", *paths))
    assert f"SUCCESS: {len(ALERTS)} rules found" in output
    assert f"SUCCESS: {len(RECORDINGS)} rules found" in output


# --- the catalogue's shape -------------------------------------------------------------------
def test_alert_names_are_unique_camel_case_with_a_known_severity():
    names = [alert.name for alert in ALERTS]
    assert len(names) == len(set(names))
    for alert in ALERTS:
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", alert.name), alert.name
        assert alert.severity in SEVERITIES


def test_the_issue_list_of_alerts_is_covered():
    expected = {
        "PharosInstanceDown", "PharosServiceInstancesDown", "PharosExporterDown", "PharosScrapeFailing",
        "PharosHighErrorRate", "PharosHighLatency", "PharosGCTimeHigh", "PharosFullGCStorm",
        "PharosMemoryNearLimit", "PharosHealthCheckFailing", "Watchdog", "AlertmanagerNotificationsFailing",
    }  # fmt: skip
    assert expected <= {alert.name for alert in ALERTS}


def test_every_alert_has_a_runbook_section():
    headings = re.findall(r"^## (\S+)$", (ROOT / "docs" / "runbooks.md").read_text(), re.MULTILINE)
    from pharos_monitoring.config.fleet import FLEET_ALERT_NAMES  # the fleet's, evaluated by vmalert

    assert sorted(headings) == sorted([alert.name for alert in ALERTS] + list(FLEET_ALERT_NAMES))
    for alert in ALERTS:
        assert alert.runbook_url(RUNBOOK_BASE) == f"{RUNBOOK_BASE}#{alert.name.lower()}"


def test_thresholds_differ_per_environment_and_reach_the_rules():
    error_rate = alerts.by_name("PharosHighErrorRate")
    values = {environment: alerts.thresholds_for(environment)["PharosHighErrorRate"]["ratio"] for environment in ENVIRONMENTS}
    assert len(set(values.values())) == len(ENVIRONMENTS)
    for environment, value in values.items():
        assert f"> {value:g}" in error_rate.expression(environment)
        assert templates.FORMATS["percent"].python(value) in error_rate.annotations(environment, RUNBOOK_BASE)["description"]


def test_thresholds_for_lists_only_alerts_with_thresholds():
    listed = alerts.thresholds_for("production")
    assert "Watchdog" not in listed
    assert set(listed["PharosHighLatency"]) == {"seconds", "min_request_rate"}
    with pytest.raises(KeyError, match="unknown environment 'staging'"):
        Threshold(1.0).value("staging")


def test_inhibitions_never_let_an_alert_silence_itself():
    for inhibition in INHIBITIONS:
        assert not {a.name for a in inhibition.sources} & {a.name for a in inhibition.targets}
        assert inhibition.equal


def test_recording_rules_come_after_the_records_they_use():
    seen: set[str] = set()
    records = {recording.record for recording in RECORDINGS}
    for recording in RECORDINGS:
        used = set(re.findall(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", str(recording.expr))) & records
        assert used <= seen, f"{recording.record} uses {used - seen} before it is recorded"
        seen.add(recording.record)


# --- one name, one place ---------------------------------------------------------------------
def _names_owned_elsewhere() -> tuple[set[str], set[str]]:
    from pharos_monitoring.alerts import upstream

    metrics = set()
    upstream_metrics = [value for value in vars(upstream).values() if isinstance(value, catalogue.Metric)]
    for metric in catalogue.all_metrics() + upstream_metrics:
        metrics |= {metric.name, metric.bucket, metric.count, metric.sum}
    labels = {value for name, value in vars(catalogue.Label).items() if name.isupper()}
    # Not ALERTMANAGER_URL: "alertmanager" is also the name of a job, which test series type as a value.
    labels |= {upstream.ALERTNAME, upstream.SEVERITY, upstream.BUCKET_BOUND, upstream.INTEGRATION, upstream.RULE_GROUP}
    return metrics, labels


@pytest.mark.parametrize("module", sorted(p.name for p in (ROOT / "alerts").glob("*.py") if p.name != "upstream.py"))
def test_alerts_never_type_a_metric_or_label_name(module: str):
    """Names come from exporter/catalogue.py (or alerts/upstream.py for Prometheus' and
    Alertmanager's own), so that a rename breaks a test, not an alert."""
    metrics, labels = _names_owned_elsewhere()
    labels -= {"alertname"}  # also a key of promtool's test file format (alert_rule_test.alertname)
    labels -= {"availability"}  # also a kind of objective (alerts/slo.py), a value of the `slo` label
    tree = ast.parse((ROOT / "alerts" / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            assert text not in metrics | labels, f"alerts/{module}:{node.lineno}: {text!r} is typed, import it"
            tokens = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text))
            typed_metrics = {token for token in tokens if "_" in token} & metrics
            assert not typed_metrics, f"alerts/{module}:{node.lineno}: metric {typed_metrics} is typed, import it"


# --- building blocks -------------------------------------------------------------------------
def test_promql_parenthesises_only_where_precedence_needs_it():
    a, b, c = q.selector("a"), q.selector("b"), q.selector("c")
    assert str(q.divide(q.either(a, b), c)) == "(a or b) / c"
    assert str(q.either(q.divide(a, b), c)) == "a / b or c"
    assert str(q.binary(a, "-", q.binary(b, "-", c))) == "a - (b - c)"
    assert str(q.binary(q.binary(a, "-", b), "-", c)) == "a - b - c"
    assert str(q.both(q.above(a, 0.5), q.above(b, 1))) == "a > 0.5 and b > 1"
    assert str(q.selector("m", q.eq("l", 'x"y'))) == 'm{l="x\\"y"}'


def test_templates_render_as_prometheus_does():
    text = "{label.SERVICE} at {value:percent} (limit {threshold.ratio:percent})"
    assert templates.to_prometheus(text, {"ratio": 0.05}) == "{{ $labels.service }} at {{ $value | humanizePercentage }} (limit 5%)"
    assert templates.render(text, {"ratio": 0.05}, {"service": "orders"}, 0.125) == "orders at 12.5% (limit 5%)"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("{label.SERVISE}", "unknown label"),
        ("{value}", "needs a format"),
        ("{threshold.ratoi:percent}", "no threshold 'ratoi'"),
        ("{{ $labels.service }}", "not Go template braces"),
        ("a { b", "brace that is not part of a placeholder"),
    ],
)
def test_a_bad_annotation_template_names_the_alert_and_the_placeholder(text: str, problem: str):
    with pytest.raises(ValueError, match=f"alert Broken: .*{re.escape(problem)}"):
        Alert(
            name="Broken",
            severity="warning",
            for_="1m",
            expr=lambda t: q.vector(1),
            summary=text,
            description="fine",
            cases=lambda t: [],
            thresholds={"ratio": Threshold(0.5)},
        )
