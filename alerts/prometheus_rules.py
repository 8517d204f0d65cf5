"""Prometheus rule files from the catalogue: alerting rules (thresholds of one environment) and
the recording rules they and the dashboards share."""

from __future__ import annotations

from .catalogue import ALERTS
from .model import Alert
from .recording import RECORDINGS

ALERTS_FILE = "pharos-alerts.yml"
RECORDING_FILE = "pharos-recording.yml"


def recording_rules() -> dict:
    rules = [{"record": recording.record, "expr": str(recording.expr)} for recording in RECORDINGS]
    return {"groups": [{"name": "pharos.recording", "rules": rules}]}


def alerting_rule(alert: Alert, environment: str, runbook_base: str) -> dict:
    return {
        "alert": alert.name,
        "expr": alert.expression(environment),
        "for": alert.for_,
        "labels": alert.labels,
        "annotations": alert.annotations(environment, runbook_base),
    }


def alerting_rules(environment: str, runbook_base: str) -> dict:
    rules = [alerting_rule(alert, environment, runbook_base) for alert in ALERTS]
    return {"groups": [{"name": "pharos.alerts", "rules": rules}]}


def rule_files(environment: str, runbook_base: str) -> dict[str, dict]:
    """File name -> content of every rule file for one environment's Prometheus."""
    return {
        ALERTS_FILE: alerting_rules(environment, runbook_base),
        RECORDING_FILE: recording_rules(),
    }
