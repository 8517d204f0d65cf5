"""`promtool test rules` input generated from the catalogue: one test group per case of every alert.

A case with expected alerts states their exact labels and annotations (rendered in Python the way
Prometheus renders the templates); a case without them asserts that the alert stays quiet.

`pharos build` writes these tests beside the rules it writes, for the stack's `for` durations; a
stack with another rate window gets none (the series are a sample a minute, made for `WINDOW`).
"""

from __future__ import annotations

from .catalogue import ALERTS
from .model import TEST_INTERVAL_SECONDS, TEST_SAMPLES, Alert, Case, duration_seconds
from .prometheus_rules import Tuning
from .recording import WINDOW

# Time for rates to fill their window and for recording rules to catch up, before `for` counts.
SETTLE_SECONDS = 10 * 60


def eval_time_seconds(alert: Alert, for_: str | None = None) -> int:
    for_ = alert.for_ if for_ is None else for_
    seconds = duration_seconds(for_) + SETTLE_SECONDS
    if seconds > TEST_INTERVAL_SECONDS * TEST_SAMPLES:
        raise ValueError(f"alert {alert.name}: `for` {for_} is longer than the test series ({TEST_SAMPLES} samples)")
    return seconds


def test_group(alert: Alert, case: Case, environment: str, runbook_base: str, tuning: Tuning = Tuning()) -> dict:
    expected = [
        {
            "exp_labels": {**firing.labels, **alert.labels},
            "exp_annotations": alert.expected_annotations(environment, runbook_base, firing),
        }
        for firing in case.firing
    ]
    for_ = tuning.for_of(alert)
    checks = [{"eval_time": f"{eval_time_seconds(alert, for_)}s", "alertname": alert.name, "exp_alerts": expected}]
    pending = duration_seconds(for_) - TEST_INTERVAL_SECONDS
    if expected and pending > 0:
        # The series hold from the start, so one interval short of `for` the alert is still pending.
        checks.insert(0, {"eval_time": f"{pending}s", "alertname": alert.name, "exp_alerts": []})
    return {
        "name": f"{alert.name} in {environment}: {case.title}",
        "interval": f"{TEST_INTERVAL_SECONDS}s",
        "input_series": [{"series": series.selector(), "values": series.values} for series in case.series],
        "alert_rule_test": checks,
    }


def unit_tests(environment: str, runbook_base: str, rule_files: list[str], tuning: Tuning = Tuning()) -> dict:
    """The content of a promtool test file; `rule_files` are paths relative to where it is written.
    Raises ValueError for a tuning the test series cannot exercise."""
    if tuning.rate_window != WINDOW:
        raise ValueError(f"rate window {tuning.rate_window}: the test series are made for {WINDOW}")
    return {
        "rule_files": rule_files,
        "evaluation_interval": f"{TEST_INTERVAL_SECONDS}s",
        "tests": [
            test_group(alert, case, environment, runbook_base, tuning) for alert in ALERTS for case in alert.test_cases(environment)
        ],
    }
