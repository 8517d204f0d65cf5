"""Grafana-managed alert rules from the catalogue, in Grafana's file-provisioning shape.

Each alert becomes one rule per environment, built with grafanalib (`AlertRulev9` in an
`AlertGroup`) and then converted: grafanalib writes the Ruler-API shape (`grafana_alert: {title,
condition, data, ...}`), which file provisioning rejects ("rule has no title set"); Grafana's
`provisioning/alerting/*.yml` wants those fields flat on the rule. `provisioning_rule` converts.

A rule asks the environment's Prometheus exactly what the Prometheus rule asks (the same text,
from `prometheus_rules.alerting_rule`), so both fire on the same series:

    A  the alert's PromQL, an instant query; it returns only the series past the threshold
    B  reduce A to its last value (what `{value:...}` placeholders show, as `$values.B.Value`)
    C  math `is_number($B)`: every series A returned fires

No data therefore means "nothing is wrong" (`noDataState: OK`); a query that fails is an error
alert of its own (`execErrState: Error`). The recording rules the queries read come from the
same Prometheus, which loads `pharos-recording.yml`.
"""

from __future__ import annotations

import hashlib
import re

from grafanalib import core as g

from pharos_monitoring.exporter.catalogue import Label as L

from . import prometheus_rules, templates
from .catalogue import ALERTS
from .model import Alert, duration_seconds
from .prometheus_rules import Tuning

ORG_ID = 1
QUERY, VALUE, CONDITION = "A", "B", "C"
QUERY_RANGE_SECONDS = 600  # an instant query: the range only bounds how far back Grafana may look
BASE_INTERVAL_SECONDS = 10  # Grafana's scheduler tick: a group interval that is no multiple stops Grafana
UID_MAX = 40  # Grafana's limit for rule and contact point uids
EXPRESSION_DATASOURCE = "__expr__"  # server-side expressions; grafanalib still writes the legacy "-100"
GROUP_NAME = "pharos.alerts"  # as the Prometheus rule group

# grafanalib's state names -> Grafana's (grafanalib 0.7.1 spells NoData "No Data", which Grafana refuses).
_STATES = {
    g.ALERTRULE_STATE_DATA_OK: "OK",
    g.ALERTRULE_STATE_DATA_ALERTING: "Alerting",
    g.ALERTRULE_STATE_DATA_NODATA: "NoData",
    g.ALERTRULE_STATE_DATA_ERROR: "Error",
}
# The keys of grafanalib's Target that Grafana's Prometheus query model has; the others are for
# Graphite and pre-7 Grafana.
_PROMETHEUS_QUERY_KEYS = ("refId", "expr", "instant", "format", "legendFormat", "interval", "intervalFactor", "hide")
# grafanalib writes the settings of every expression type into each expression; keep each type's own.
_EXPRESSION_KEYS = {
    g.EXP_TYPE_MATH: (),
    g.EXP_TYPE_REDUCE: ("reducer", "settings"),
    g.EXP_TYPE_RESAMPLE: ("window", "downsampler", "upsampler"),
    g.EXP_TYPE_CLASSIC: ("conditions",),
}
_COMMON_EXPRESSION_KEYS = ("refId", "type", "expression", "datasource", "hide", "intervalMs", "maxDataPoints")


def uid(*parts: str) -> str:
    """A Grafana uid for these parts: `parts-joined-by-dashes` when that is a valid uid, else a
    shortened form with a digest of the parts, so that it stays unique and the same every build."""
    joined = "-".join(parts)
    if len(joined) <= UID_MAX and re.fullmatch(r"[A-Za-z0-9_-]+", joined):
        return joined
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", joined)[: UID_MAX - len(digest) - 1]
    return f"{readable}-{digest}"


def folder(environment: str) -> str:
    """One folder per environment: rule titles (the alert names) must be unique within a folder."""
    return f"Pharos {environment}"


def group_interval(evaluation_interval: str) -> str:
    """The stack's evaluation interval, rounded up to Grafana's 10s scheduler tick (15s -> 20s)."""
    ticks = max(1, -(-duration_seconds(evaluation_interval) // BASE_INTERVAL_SECONDS))
    return f"{ticks * BASE_INTERVAL_SECONDS}s"


def annotations(alert: Alert, environment: str, runbook_base: str) -> dict[str, str]:
    """The alert's annotations in Grafana's template syntax: `$labels` as in Prometheus, and the
    value as `$values.B.Value` (Grafana's `$value` is a text listing every expression)."""
    thresholds = alert.thresholds_for(environment)

    def grafana(text: str) -> str:
        return templates.expand(
            text,
            thresholds,
            lambda label: f"{{{{ $labels.{label} }}}}",
            lambda fmt: f"{{{{ $values.{VALUE}.Value | {fmt.go} }}}}",
        )

    return {
        "description": grafana(alert.description),
        "runbook_url": alert.runbook_url(runbook_base),
        "summary": grafana(alert.summary),
    }


def alert_rule(alert: Alert, environment: str, datasource_uid: str, runbook_base: str, tuning: Tuning = Tuning()) -> g.AlertRulev9:
    prometheus_rule = prometheus_rules.alerting_rule(alert, environment, runbook_base, tuning)
    return g.AlertRulev9(
        title=alert.name,  # becomes the `alertname` label, which the notification policies match
        uid=uid(environment, alert.name),
        triggers=[
            g.Target(expr=prometheus_rule["expr"], refId=QUERY, datasource=datasource_uid, instant=True),
            g.AlertExpression(
                refId=VALUE,
                expression=QUERY,
                expressionType=g.EXP_TYPE_REDUCE,
                reduceFunction=g.EXP_REDUCER_FUNC_LAST,
                reduceMode=g.EXP_REDUCER_FUNC_DROP_NN,
            ),
            g.AlertExpression(refId=CONDITION, expression=f"is_number(${VALUE})", expressionType=g.EXP_TYPE_MATH),
        ],
        condition=CONDITION,
        # Prometheus adds `environment` from its external labels; Grafana has none, so the rule does.
        labels={**prometheus_rule["labels"], L.ENVIRONMENT: environment},
        annotations=annotations(alert, environment, runbook_base),
        evaluateFor=prometheus_rule["for"],
        noDataAlertState=g.ALERTRULE_STATE_DATA_OK,
        errorAlertState=g.ALERTRULE_STATE_DATA_ERROR,
        timeRangeFrom=QUERY_RANGE_SECONDS,
    )


def alert_group(environment: str, datasource_uid: str, runbook_base: str, evaluation_interval: str, tuning: Tuning = Tuning()) -> g.AlertGroup:
    return g.AlertGroup(
        name=GROUP_NAME,
        folder=folder(environment),
        evaluateInterval=group_interval(evaluation_interval),
        rules=[alert_rule(alert, environment, datasource_uid, runbook_base, tuning) for alert in ALERTS],
    )


# --- grafanalib's Ruler-API shape -> file provisioning -----------------------------------------
def _query(entry: dict) -> dict:
    """A data entry as file provisioning reads it, with a model Grafana's query schemas accept."""
    model = dict(entry["model"])
    if model.get("type") in _EXPRESSION_KEYS:
        keys = _COMMON_EXPRESSION_KEYS + _EXPRESSION_KEYS[model["type"]]
        model = {key: model[key] for key in keys if key in model}
        model["datasource"] = {"type": EXPRESSION_DATASOURCE, "uid": EXPRESSION_DATASOURCE}
        datasource_uid = EXPRESSION_DATASOURCE
    else:
        datasource_uid = entry["datasourceUid"]
        model = {key: model[key] for key in _PROMETHEUS_QUERY_KEYS if key in model}
        model["datasource"] = {"type": "prometheus", "uid": datasource_uid}
        model["range"] = not model["instant"]
    return {
        "refId": entry["refId"],
        "queryType": entry.get("queryType", ""),
        "relativeTimeRange": entry["relativeTimeRange"],
        "datasourceUid": datasource_uid,
        "model": model,
    }


def provisioning_rule(ruler_rule: dict) -> dict:
    """grafanalib's `AlertRulev9.to_json_data()` as a rule of a provisioning file: flat, with
    Grafana's state names and cleaned query models."""
    nested = ruler_rule["grafana_alert"]
    return {
        "uid": ruler_rule["uid"],
        "title": nested["title"],
        "condition": nested["condition"],
        "data": [_query(entry) for entry in nested["data"]],
        "noDataState": _STATES[nested["no_data_state"]],
        "execErrState": _STATES[nested["exec_err_state"]],
        "for": ruler_rule["for"],
        "labels": dict(ruler_rule["labels"]),
        "annotations": dict(ruler_rule["annotations"]),
        "isPaused": False,
    }


def provisioning_group(group: g.AlertGroup, org_id: int = ORG_ID) -> dict:
    ruler_group = group.to_json_data()
    return {
        "orgId": org_id,
        "name": ruler_group["name"],
        "folder": ruler_group["folder"],
        "interval": ruler_group["interval"],
        "rules": [provisioning_rule(rule) for rule in ruler_group["rules"]],
    }


def rules_file(environment: str, datasource_uid: str, runbook_base: str, evaluation_interval: str, tuning: Tuning = Tuning()) -> dict:
    """`provisioning/alerting/rules.yml` of one environment's Grafana."""
    group = alert_group(environment, datasource_uid, runbook_base, evaluation_interval, tuning)
    return {"apiVersion": 1, "groups": [provisioning_group(group)]}
