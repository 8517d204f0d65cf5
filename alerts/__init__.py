"""The alert catalogue of Pharos and its renderings.

- `alerts.catalogue`: the alerts (`ALERTS`), their thresholds and test series, and `INHIBITIONS`;
- `alerts.recording`: recording rules shared by alerts and dashboards (`RECORDINGS`);
- `alerts.prometheus_rules`, `alerts.rule_tests`, `alerts.alertmanager`: what `pharos build` writes.

Dashboards take thresholds from here (`thresholds_for`) so that a panel's red line is the alert's.
"""

from __future__ import annotations

from .catalogue import ALERTS, INHIBITIONS
from .model import ENVIRONMENTS, SEVERITIES, Alert


def by_name(name: str) -> Alert:
    for alert in ALERTS:
        if alert.name == name:
            return alert
    raise KeyError(f"no alert named {name!r} in alerts/catalogue.py; known: {', '.join(a.name for a in ALERTS)}")


def thresholds_for(environment: str) -> dict[str, dict[str, float]]:
    """Every alert's thresholds in `environment`: {alert name: {threshold name: value}}."""
    return {alert.name: alert.thresholds_for(environment) for alert in ALERTS if alert.thresholds}


__all__ = ["ALERTS", "ENVIRONMENTS", "INHIBITIONS", "SEVERITIES", "Alert", "by_name", "thresholds_for"]
