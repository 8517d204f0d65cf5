"""Grafana-managed alerting as `pharos build` writes it: rules, contact points and policies checked
against Grafana's alerting schema and its file-provisioning shape, the catalogue complete in every
environment, the policy tree routing like Alertmanager (amtool decides), no secret in the output,
and the same bytes on every build. The queries run against a live Prometheus in
test_grafana_alerting_live.py.

How the file shape meets the schema (`alerting.jsonschema.json` describes the HTTP API's objects;
the files group them differently, and the schema itself is used unchanged, nothing relaxed):
- a rule in a file takes `orgID`, `folderUID` and `ruleGroup` from its group, as Grafana's loader
  does: they are copied onto it before it is checked against `Rule` (the folder's title stands
  for its uid, which Grafana looks up when it loads the file);
- a group is checked against `RuleGroup` under the API's names: name -> title, folder ->
  folderUid, interval "20s" -> 20 (seconds); `orgId` has no place there;
- each integration of a contact point is a `ContactPoint` with the contact point's name;
- a policy is a `NotificationPolicy` once the file's `orgId` is set aside.
Besides the schema, every key must be one Grafana's file loader reads (`FILE_KEYS`, the yaml tags
of the V1 structs in grafana/grafana pkg/services/provisioning/alerting/): anything else it would
silently ignore.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from grafanalib import core as g

import grafana_schema
from alerting_tools import route_receivers
from pharos_monitoring.alerts import grafana, grafana_notifications, prometheus_rules
from pharos_monitoring.alerts.catalogue import ALERTS
from pharos_monitoring.alerts.model import ENVIRONMENTS
from pharos_monitoring.cli import main
from pharos_monitoring.config.grafana_provisioning import ALERT_RULES_FILE, CONTACT_POINTS_FILE, NOTIFICATION_POLICIES_FILE, SMTP_ENV_FILE
from test_build import ROUTING_TABLE, SLACK_SECRET, SMTP_SECRET, stack_data

FILE_KEYS = {
    "rules file": {"apiVersion", "groups", "deleteRules"},
    "group": {"orgId", "name", "folder", "interval", "rules"},
    "rule": {
        "uid", "title", "condition", "data", "dasboardUid", "dashboardUid", "panelId", "noDataState", "execErrState",
        "for", "keepFiringFor", "missing_series_evals_to_resolve", "annotations", "labels", "isPaused",
        "notification_settings", "record",
    },
    "query": {"refId", "queryType", "relativeTimeRange", "datasourceUid", "model"},
    "contact points file": {"apiVersion", "contactPoints", "deleteContactPoints"},
    "contact point": {"orgId", "name", "receivers"},
    "integration": {"uid", "type", "settings", "disableResolveMessage"},
    "policies file": {"apiVersion", "policies", "resetPolicies"},
}
STRICT = {"extra_keys": {}, "corrections": {}, "nulls": False}  # Grafana's schema exactly as published
EXPRESSION_SCHEMAS = {"reduce": "TypeReduce", "math": "TypeMath"}


@pytest.fixture(scope="module")
def secrets(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("secrets")
    for name in ("slack_pages", "slack_production", "slack_staging", "slack_heartbeat"):
        (directory / name).write_text(SLACK_SECRET + "\n")
    (directory / "smtp_password").write_text(SMTP_SECRET + "\n")
    return directory


def grafana_stack(secrets: Path) -> dict:
    return {**stack_data(secrets), "grafana": {}}


@pytest.fixture(scope="module")
def built(tmp_path_factory, secrets: Path) -> Path:
    """Every environment of test_build's stack, with a `grafana:` section, built once for the module."""
    directory = tmp_path_factory.mktemp("built")
    stack = directory / "stack.yml"
    stack.write_text(yaml.safe_dump(grafana_stack(secrets)))
    assert main(["build", "--config", str(stack), "--out", str(directory / "out")]) == 0
    return directory / "out"


def load(built: Path, environment: str, file) -> dict:
    return yaml.safe_load((built / environment / file).read_text())


def groups(built: Path, environment: str) -> list[dict]:
    return load(built, environment, ALERT_RULES_FILE)["groups"]


def rules(built: Path, environment: str) -> list[dict]:
    return [rule for group in groups(built, environment) for rule in group["rules"]]


def _no_schema_problems(document: dict, definition: str, name: str = "alerting") -> list[str]:
    return grafana_schema.problems(document, name, definition, **STRICT)


# --- the file-provisioning shape ---------------------------------------------------------------
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_rules_are_flat_as_file_provisioning_wants_them(built: Path, environment: str):
    document = load(built, environment, ALERT_RULES_FILE)
    assert document["apiVersion"] == 1 and set(document) <= FILE_KEYS["rules file"]
    for group in document["groups"]:
        assert set(group) <= FILE_KEYS["group"]
        assert group["name"] and group["folder"] and group["orgId"] == 1
        for rule in group["rules"]:
            assert "grafana_alert" not in rule, rule["title"]
            assert set(rule) <= FILE_KEYS["rule"], set(rule) - FILE_KEYS["rule"]
            for key in ("uid", "title", "condition", "data", "noDataState", "execErrState", "for"):
                assert rule[key] not in ("", None, []), (rule.get("title"), key)
            assert rule["condition"] in {query["refId"] for query in rule["data"]}
            for query in rule["data"]:
                assert set(query) <= FILE_KEYS["query"]


def test_grafanalib_alone_writes_the_ruler_shape_that_the_conversion_flattens():
    """What the conversion is for: grafanalib's own output is nested, spells NoData wrongly, and
    fails Grafana's schema; its conversion passes."""
    ruler = grafana.alert_rule(ALERTS[0], "production", "prometheus-uid", "https://example.com/runbooks.md").to_json_data()
    assert set(ruler["grafana_alert"]) >= {"title", "condition", "data"} and "title" not in ruler
    assert _no_schema_problems({**ruler, "orgID": 1, "folderUID": "f", "ruleGroup": "g"}, "Rule")
    raw_nodata = g.AlertRulev9(title="t", uid="u", noDataAlertState=g.ALERTRULE_STATE_DATA_NODATA).to_json_data()
    assert raw_nodata["grafana_alert"]["no_data_state"] == "No Data"
    assert grafana.provisioning_rule(raw_nodata)["noDataState"] == "NoData"
    converted = grafana.provisioning_rule(ruler)
    assert _no_schema_problems({**converted, "orgID": 1, "folderUID": "f", "ruleGroup": "g"}, "Rule") == []


# --- Grafana's alerting schema -----------------------------------------------------------------
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_rules_and_groups_match_the_alerting_schema(built: Path, environment: str):
    checked = 0
    for group in groups(built, environment):
        api_group = {
            "title": group["name"],
            "folderUid": group["folder"],
            "interval": int(group["interval"].rstrip("s")),
            "rules": [],
        }
        assert _no_schema_problems(api_group, "RuleGroup") == []
        for rule in group["rules"]:
            api_rule = {**rule, "orgID": group["orgId"], "folderUID": group["folder"], "ruleGroup": group["name"]}
            assert _no_schema_problems(api_rule, "Rule") == [], rule["title"]
            checked += 1
    assert checked == len(ALERTS)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_query_models_match_the_prometheus_and_expression_schemas(built: Path, environment: str):
    for rule in rules(built, environment):
        query, *expressions = rule["data"]
        assert _no_schema_problems(query["model"], "Dataquery", "prometheus") == [], rule["title"]
        assert query["model"]["datasource"] == {"type": "prometheus", "uid": query["datasourceUid"]}
        assert query["model"]["instant"] is True and query["model"]["range"] is False
        for expression in expressions:
            model = expression["model"]
            assert expression["datasourceUid"] == model["datasource"]["uid"] == "__expr__"
            assert _no_schema_problems(model, EXPRESSION_SCHEMAS[model["type"]], "expr") == [], (rule["title"], model["type"])
            assert _no_schema_problems(model, "expr", "expr") == [], (rule["title"], model["type"])


def test_group_intervals_are_multiples_of_grafanas_scheduler_tick(built: Path):
    """Grafana refuses to start on a group interval that is no multiple of 10s."""
    for environment in ENVIRONMENTS:
        for group in groups(built, environment):
            seconds = int(group["interval"].rstrip("s"))
            assert seconds > 0 and seconds % grafana.BASE_INTERVAL_SECONDS == 0
    assert [grafana.group_interval(text) for text in ("1s", "10s", "15s", "1m", "1m5s")] == ["10s", "10s", "20s", "60s", "70s"]


def test_contact_points_and_policies_match_the_alerting_schema(built: Path):
    document = load(built, "production", CONTACT_POINTS_FILE)
    assert document["apiVersion"] == 1 and set(document) <= FILE_KEYS["contact points file"]
    integrations = 0
    for contact_point in document["contactPoints"]:
        assert set(contact_point) <= FILE_KEYS["contact point"] and contact_point["name"]
        for integration in contact_point["receivers"]:
            assert set(integration) <= FILE_KEYS["integration"]
            assert _no_schema_problems({**integration, "name": contact_point["name"]}, "ContactPoint") == []
            integrations += 1
    assert integrations == 9  # pager and team-payments: mail and Slack; three more Slack channels; team-mail and delivery: mail

    policies = load(built, "production", NOTIFICATION_POLICIES_FILE)
    assert policies["apiVersion"] == 1 and set(policies) <= FILE_KEYS["policies file"]
    [root] = policies["policies"]
    assert root["orgId"] == 1
    assert _no_schema_problems({key: value for key, value in root.items() if key != "orgId"}, "NotificationPolicy") == []


def test_a_broken_policy_fails_the_schema():
    """The schema checks are not vacuous: a matcher in Alertmanager's text form is refused."""
    assert _no_schema_problems({"receiver": "x", "object_matchers": ['severity="critical"']}, "NotificationPolicy")
    assert _no_schema_problems({"type": "slack"}, "ContactPoint")


# --- the catalogue, complete in every environment -----------------------------------------------
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_alert_of_the_catalogue_asks_what_its_prometheus_rule_asks(built: Path, environment: str):
    prometheus = yaml.safe_load((built / environment / "prometheus" / "rules" / prometheus_rules.ALERTS_FILE).read_text())
    expected = {rule["alert"]: rule for group in prometheus["groups"] for rule in group["rules"]}
    found = rules(built, environment)
    assert [rule["title"] for rule in found] == [alert.name for alert in ALERTS]
    for rule in found:
        twin = expected[rule["title"]]
        assert rule["data"][0]["model"]["expr"] == twin["expr"], rule["title"]
        assert rule["for"] == twin["for"]
        assert rule["labels"] == {**twin["labels"], "environment": environment}
        # The same text, but Grafana's value: the reduced query B instead of Prometheus' $value.
        assert rule["annotations"] == {key: text.replace("{{ $value |", "{{ $values.B.Value |") for key, text in twin["annotations"].items()}
        assert rule["noDataState"] == "OK" and rule["execErrState"] == "Error"


def test_thresholds_differ_between_environments_as_in_the_catalogue(built: Path):
    def expression(environment: str, title: str) -> str:
        return next(rule["data"][0]["model"]["expr"] for rule in rules(built, environment) if rule["title"] == title)

    assert "> 0.05 " in expression("production", "PharosHighErrorRate")
    assert "> 0.25 " in expression("alpha", "PharosHighErrorRate")
    folders = {environment: groups(built, environment)[0]["folder"] for environment in ENVIRONMENTS}
    assert len(set(folders.values())) == len(ENVIRONMENTS)


def test_the_condition_fires_for_every_series_of_the_query(built: Path):
    for rule in rules(built, "production"):
        query, reduce, condition = rule["data"]
        assert reduce["model"] == {**reduce["model"], "type": "reduce", "expression": query["refId"], "reducer": "last"}
        assert condition["model"]["expression"] == f"is_number(${reduce['refId']})" and rule["condition"] == condition["refId"]


def test_uids_are_unique_valid_and_stable_across_environments(built: Path):
    uids = [rule["uid"] for environment in ENVIRONMENTS for rule in rules(built, environment)]
    uids += [i["uid"] for c in load(built, "production", CONTACT_POINTS_FILE)["contactPoints"] for i in c["receivers"]]
    assert len(uids) == len(set(uids))
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid) for uid in uids), uids
    # Too long for a uid as it is: shortened, with a digest that keeps it unique and the same every build.
    assert grafana.uid("production", "AlertmanagerNotificationsFailing") == "production-AlertmanagerNotifica-4026facf"
    assert grafana.uid("team.mail", "email") != grafana.uid("team-mail", "email")


# --- routing: the same receivers as Alertmanager ------------------------------------------------
def _matches(policy: dict, labels: dict[str, str]) -> bool:
    for name, operator, value in policy.get("object_matchers", []):
        actual = labels.get(name, "")
        hit = actual == value if operator in ("=", "!=") else re.fullmatch(value, actual) is not None
        if hit == (operator in ("!=", "!~")):
            return False
    return True


def policy_receivers(policy: dict, labels: dict[str, str], inherited: str = "") -> list[str]:
    """The contact points a Grafana policy tree picks, by Alertmanager's rules (which Grafana's
    embedded Alertmanager follows): depth first, the first matching child unless it continues."""
    receiver = policy.get("receiver", inherited)
    found: list[str] = []
    for child in policy.get("routes", []):
        if _matches(child, labels):
            found += policy_receivers(child, labels, receiver)
            if not child.get("continue", False):
                break
    return sorted(set(found)) if found else [receiver]


@pytest.mark.parametrize("labels, receivers", ROUTING_TABLE, ids=lambda x: "-".join(x.values()) if isinstance(x, dict) else "")
def test_policies_route_like_alertmanager(built: Path, labels: dict, receivers: list[str]):
    [root] = load(built, "production", NOTIFICATION_POLICIES_FILE)["policies"]
    assert policy_receivers(root, labels) == receivers
    assert route_receivers(built / "production" / "alertmanager" / "alertmanager.yml", labels) == receivers


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_grafana_alert_reaches_the_receiver_alertmanager_would_pick(built: Path, environment: str):
    [root] = load(built, environment, NOTIFICATION_POLICIES_FILE)["policies"]
    alertmanager = built / environment / "alertmanager" / "alertmanager.yml"
    contact_points = {c["name"] for c in load(built, environment, CONTACT_POINTS_FILE)["contactPoints"]}
    seen = set()
    for rule in rules(built, environment):
        labels = {**rule["labels"], "alertname": rule["title"]}  # Grafana names an alert after its rule
        picked = policy_receivers(root, labels)
        assert picked == route_receivers(alertmanager, labels), rule["title"]
        assert set(picked) <= contact_points
        seen.update(picked)
    assert len(seen) >= 2


def test_the_policy_tree_is_alertmanagers_route_tree(built: Path):
    route = yaml.safe_load((built / "production" / "alertmanager" / "alertmanager.yml").read_text())["route"]
    [root] = load(built, "production", NOTIFICATION_POLICIES_FILE)["policies"]

    def shape(node: dict, matchers_key: str, translate) -> tuple:
        timing = tuple(node.get(key) for key in ("group_by", "group_wait", "group_interval", "repeat_interval"))
        matchers = tuple(translate(m) for m in node.get(matchers_key, []))
        children = tuple(shape(child, matchers_key, translate) for child in node.get("routes", []))
        return node["receiver"], timing, matchers, children

    as_text = lambda m: f'{m[0]}{m[1]}"{m[2]}"'  # noqa: E731 - Alertmanager's own notation
    assert shape(root, "object_matchers", as_text) == shape(route, "matchers", lambda m: m)
    with pytest.raises(ValueError, match="cannot translate"):
        grafana_notifications.object_matcher("severity: critical")
    with pytest.raises(ValueError, match="mute_time_intervals"):
        grafana_notifications.policy({"receiver": "x", "mute_time_intervals": ["nights"]})


# --- contact points and secrets ----------------------------------------------------------------
def test_contact_points_hold_addresses_channels_and_file_references(built: Path, secrets: Path):
    contact_points = {c["name"]: c["receivers"] for c in load(built, "production", CONTACT_POINTS_FILE)["contactPoints"]}
    assert sorted(contact_points) == sorted(stack_data(secrets)["receivers"])
    pager = {integration["type"]: integration["settings"] for integration in contact_points["pager"]}
    assert pager["email"]["addresses"] == "oncall@example.com"
    assert pager["slack"]["url"] == f"$__file{{{secrets / 'slack_pages'}}}" and pager["slack"]["recipient"] == "#pages"
    [delivery] = contact_points["delivery"]
    assert delivery["settings"]["addresses"] == "oncall@example.com;team@example.com"


def test_no_secret_is_written_and_every_dollar_is_meant(built: Path):
    grafana_files = [path for path in built.rglob("*") if path.is_file() and "grafana" in path.parts]
    alerting = (ALERT_RULES_FILE, CONTACT_POINTS_FILE, NOTIFICATION_POLICIES_FILE, SMTP_ENV_FILE)
    assert {built / environment / file for environment in ENVIRONMENTS for file in alerting} <= set(grafana_files)
    for path in grafana_files:
        text = path.read_text()
        assert SLACK_SECRET not in text and SMTP_SECRET not in text and "hooks.slack" not in text, path
    # Grafana interpolates contact point settings: a `$` is either a file reference or written `$$`.
    text = (built / "production" / CONTACT_POINTS_FILE).read_text()
    assert re.findall(r"\$(?!__file\{|\$)", text.replace("$$", "")) == []


def test_grafana_reads_the_smtp_password_from_its_file(built: Path, secrets: Path):
    lines = (built / "production" / SMTP_ENV_FILE).read_text().splitlines()
    settings = dict(line.split("=", 1) for line in lines if not line.startswith("#"))
    assert settings == {
        "GF_SMTP_ENABLED": "true",
        "GF_SMTP_FROM_ADDRESS": "pharos@example.com",
        "GF_SMTP_HOST": "127.0.0.1:2525",
        "GF_SMTP_PASSWORD__FILE": str(secrets / "smtp_password"),
        "GF_SMTP_STARTTLS_POLICY": "NoStartTLS",
        "GF_SMTP_USER": "pharos",
    }


def test_a_webhook_file_grafana_cannot_reference_is_refused_naming_it(tmp_path: Path, secrets: Path, capsys):
    data = grafana_stack(secrets)
    data["receivers"]["heartbeat"]["slack"][0]["webhook_url_file"] = "/run/secrets/odd}name"
    stack = tmp_path / "stack.yml"
    stack.write_text(yaml.safe_dump(data))
    assert main(["build", "--config", str(stack), "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert f"{stack}: receivers.heartbeat.slack[0].webhook_url_file: '/run/secrets/odd}}name'" in error


def test_without_a_grafana_section_nothing_of_grafana_is_written(tmp_path: Path, secrets: Path):
    stack = tmp_path / "stack.yml"
    stack.write_text(yaml.safe_dump(stack_data(secrets)))
    assert main(["build", "--config", str(stack), "--out", str(tmp_path / "out"), "--environment", "beta"]) == 0
    assert not (tmp_path / "out" / "grafana").exists()


# --- determinism -------------------------------------------------------------------------------
def test_building_twice_gives_the_same_bytes_whatever_the_hash_seed(tmp_path: Path, secrets: Path):
    stack = tmp_path / "stack.yml"
    stack.write_text(yaml.safe_dump(grafana_stack(secrets)))
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"out-{seed}"
        command = [sys.executable, "-m", "pharos_monitoring.cli", "build", "--config", str(stack), "--out", str(out), "--environment", "production"]
        result = subprocess.run(command, env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, timeout=120)
        assert result.returncode == 0, result.stderr
        outputs.append({str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "grafana").rglob("*")) if p.is_file()})
    assert outputs[0] == outputs[1]
    assert {str(ALERT_RULES_FILE), str(CONTACT_POINTS_FILE), str(NOTIFICATION_POLICIES_FILE), str(SMTP_ENV_FILE)} <= set(outputs[0])
