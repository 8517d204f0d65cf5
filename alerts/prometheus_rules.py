"""Prometheus rule files from the catalogue: alerting rules (thresholds of one environment) and
the recording rules they and the dashboards share.

A stack may shorten the catalogue's timing (a local stack, an end-to-end test): `Tuning` gives
another range for every `rate()` and other `for` durations per alert. The recorded series keep
their names (`...:ratio_rate5m`), so dashboards and alerts find them whatever the range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from . import slo
from .catalogue import ALERTS
from .model import Alert
from .recording import RECORDINGS, WINDOW, ExpectedInstances, expected_instances_rules

ALERTS_FILE = "pharos-alerts.yml"
RECORDING_FILE = "pharos-recording.yml"
SLO_FILE = "pharos-slo.yml"  # only for an environment whose services have objectives
EXPECTED_FILE = "pharos-expected-instances.yml"  # only for an environment whose services declare expected_instances

# Every range selector of the catalogue is `[WINDOW]` (tests/test_local_stack.py checks it).
_CATALOGUE_RANGE = re.compile(r"\[" + re.escape(WINDOW) + r"\]")


@dataclass(frozen=True)
class Tuning:
    rate_window: str = WINDOW
    alert_for: Mapping[str, str] = field(default_factory=dict)  # alert name -> its `for`

    def expression(self, text: str) -> str:
        return text if self.rate_window == WINDOW else _CATALOGUE_RANGE.sub(f"[{self.rate_window}]", text)

    def for_of(self, alert: Alert) -> str:
        return self.alert_for.get(alert.name, alert.for_)


def recording_rules(tuning: Tuning = Tuning()) -> dict:
    rules = [{"record": recording.record, "expr": tuning.expression(str(recording.expr))} for recording in RECORDINGS]
    return {"groups": [{"name": "pharos.recording", "rules": rules}]}


def alerting_rule(alert: Alert, environment: str, runbook_base: str, tuning: Tuning = Tuning()) -> dict:
    return {
        "alert": alert.name,
        "expr": tuning.expression(alert.expression(environment)),
        "for": tuning.for_of(alert),
        "labels": alert.labels,
        "annotations": alert.annotations(environment, runbook_base),
    }


def alerting_rules(environment: str, runbook_base: str, tuning: Tuning = Tuning()) -> dict:
    rules = [alerting_rule(alert, environment, runbook_base, tuning) for alert in ALERTS]
    return {"groups": [{"name": "pharos.alerts", "rules": rules}]}


def rule_files(
    environment: str,
    runbook_base: str,
    tuning: Tuning = Tuning(),
    objectives: tuple[slo.Objective, ...] = (),
    expected: tuple[ExpectedInstances, ...] = (),
) -> dict[str, dict]:
    """File name -> content of every rule file for one environment's Prometheus. The objectives'
    windows are fixed spans (alerts/slo.py): tuning the rate window leaves them as they are.
    `expected`: the instance counts the stack file declares (alerts/recording.py)."""
    files = {
        ALERTS_FILE: alerting_rules(environment, runbook_base, tuning),
        RECORDING_FILE: recording_rules(tuning),
    }
    if objectives:
        files[SLO_FILE] = slo.rule_file(objectives)
    if expected:
        files[EXPECTED_FILE] = expected_instances_rules(expected)
    return files
