"""The messages people receive, rendered by the real Alertmanager 0.25 from the templates `pharos
build` writes, delivered to the loopback sinks (mail, Slack, PagerDuty Events API v2).

One critical alert of the catalogue fires and resolves; each channel must receive exactly one
firing and one resolved message. What they must say: severity and environment in the title, a
mail subject a filter can sort, a text/plain part beside the HTML, links to the service-detail
dashboard (environment, service, time range), to a silence filled with the group's matchers and
to the runbook, and, once resolved, no value stated as if it were current. The links are checked
against what they point at: the dashboard uid is the service-detail dashboard's, the silence's
matchers select the alert in the running Alertmanager, the runbook anchor is a section of
docs/runbooks.md.

With PHAROS_QUOTE_MESSAGES=FILE the messages received are also written to FILE, to be quoted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import os
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from alerting_tools import AMTOOL, assert_ok, post_alerts, run, running_alertmanager
from helpers import wait_for
from pharos_monitoring.alerts import alertmanager
from pharos_monitoring.alerts.catalogue import HIGH_ERROR_RATE
from pharos_monitoring.alerts.model import Firing
from pharos_monitoring.config.build import alertmanager_config, build
from pharos_monitoring.demo.processes import free_port
from pharos_monitoring.config.stack_config import StackConfigError, load, parse
from pharos_monitoring.config.yaml_out import dump
from pharos_monitoring.dashboards import service_detail
from pharos_monitoring.exporter.catalogue import Label as L
from pharos_monitoring.local import sinks
from pharos_monitoring.local.sinks import Sinks

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENT, SERVICE = "production", "orders"
RUNBOOK_BASE = "https://example.invalid/docs/runbooks.md"
GRAFANA_URL = "https://grafana.example.com"
PAGER_MAIL, PAGER_CHANNEL, TEAM_CHANNEL = "oncall@example.com", "#production-pages", "#production"
ROUTING_KEY = "R0UT1NGKEY-not-to-be-kept-5521"  # what a PagerDuty integration key file holds
WEBHOOK_PATH = "/services/T000/B000/secret-webhook-token-8812"
ERROR_RATIO = 0.075  # the value while firing: "7.5%" in the annotations
SIGNAL_SECONDS = 20
GROUP_INTERVAL = "2s"


def stack_data(secrets: Path, smtp_port: int, sink_url: str) -> dict:
    slack = lambda channel: {"channel": channel, "webhook_url_file": str(secrets / "slack")}  # noqa: E731
    return {
        "runbook_url": RUNBOOK_BASE,
        "intervals": {"group_wait": "1s", "group_interval": GROUP_INTERVAL, "repeat_interval": "1h"},
        "smtp": {"smarthost": f"127.0.0.1:{smtp_port}", "from": "pharos@example.com", "require_tls": False},
        "receivers": {
            "production-pager": {
                "email": [PAGER_MAIL],
                "slack": [slack(PAGER_CHANNEL)],
                "pagerduty": [{"routing_key_file": str(secrets / "pagerduty_routing_key"), "url": f"{sink_url}{sinks.PAGERDUTY_PATH}"}],
            },
            "production-team": {"slack": [slack(TEAM_CHANNEL)]},
            "heartbeat": {"slack": [slack("#heartbeat")]},
        },
        "routes": {
            "default": "production-team",
            "alerts": {"Watchdog": "heartbeat"},
            "environments": {ENVIRONMENT: {"critical": "production-pager", "warning": "production-team"}},
        },
        "grafana": {"url": GRAFANA_URL},
        "environments": {
            ENVIRONMENT: {"alertmanagers": ["127.0.0.1:9093"], "services": {SERVICE: {"mode": "sidecar", "targets": ["127.0.0.1:9841"]}}},
        },
    }


def go_duration(delta: dt.timedelta) -> str:
    """A whole-second duration as Go prints it: 3m5s, 1h0m5s."""
    minutes, seconds = divmod(int(delta.total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + f"{seconds}s"


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def received(directory: Path) -> dict[str, list[dict]]:
    return {"mail": sinks.read_mail(directory), "slack": sinks.read_slack(directory), "pagerduty": sinks.read_pagerduty(directory)}


def arrived(directory: Path, count: int):
    """What the sinks kept, once each channel (mail, Slack, PagerDuty) has `count` messages."""
    kept = received(directory)
    return kept if all(len(messages) >= count for messages in kept.values()) else None


def silence_matchers(url: str) -> dict[str, str]:
    """label -> value of the matchers in the `filter` of an Alertmanager silence-form URL."""
    fragment = urllib.parse.urlsplit(url).fragment
    path, _, query = fragment.partition("?")
    assert path == "/silences/new", url
    (text,) = urllib.parse.parse_qs(query)["filter"]
    assert text.startswith("{") and text.endswith("}"), text
    pairs = re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"', text)
    assert ",".join(f'{name}="{value}"' for name, value in pairs) == text[1:-1], f"not a list of equality matchers: {text}"
    return dict(pairs)


def matching_alerts(base_url: str, matchers: dict[str, str]) -> list[dict]:
    """The alerts the running Alertmanager selects with these matchers (its own matcher parser)."""
    query = urllib.parse.urlencode([("filter", f'{name}="{value}"') for name, value in sorted(matchers.items())])
    with urllib.request.urlopen(f"{base_url}/api/v2/alerts?{query}", timeout=10) as answer:
        return json.load(answer)


@pytest.fixture(scope="module")
def delivered(tmp_path_factory) -> dict:
    """Run the scenario once: the alert fires, then resolves; returns what arrived and where."""
    work = tmp_path_factory.mktemp("messages")
    secrets, kept = work / "secrets", work / "sinks"
    secrets.mkdir()
    with Sinks(kept, ("127.0.0.1", 0), ("127.0.0.1", 0), announce=lambda line: None) as running:
        (secrets / "slack").write_text(running.slack.url + WEBHOOK_PATH)
        (secrets / "pagerduty_routing_key").write_text(ROUTING_KEY + "\n")
        stack_file = work / "stack.yml"
        stack_file.write_text(yaml.safe_dump(stack_data(secrets, running.smtp.port, running.slack.url)))
        stack = load(str(stack_file))
        build(stack, work / "build", ENVIRONMENT)
        config = work / "alertmanager.yml"
        config.write_text(dump(alertmanager_config(stack)))
        port = free_port()

        labels = {**HIGH_ERROR_RATE.labels, "alertname": HIGH_ERROR_RATE.name, L.ENVIRONMENT: ENVIRONMENT, L.SERVICE: SERVICE}
        annotations = HIGH_ERROR_RATE.expected_annotations(ENVIRONMENT, RUNBOOK_BASE, Firing({L.ENVIRONMENT: ENVIRONMENT, L.SERVICE: SERVICE}, ERROR_RATIO))
        started = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=3)
        with running_alertmanager(config, work, port) as base_url:
            post_alerts(base_url, [{"labels": labels, "annotations": annotations, "startsAt": iso(started)}])
            firing = wait_for(lambda: arrived(kept, 1), SIGNAL_SECONDS)
            assert firing, f"not every channel got the firing message: {received(kept)}\n{(work / 'alertmanager.log').read_text()}"
            firing_slack = json.loads((kept / "slack" / firing["slack"][0]["file"]).read_text())
            silence = firing_slack["attachments"][0]["actions"][1]["url"]
            selected = matching_alerts(base_url, silence_matchers(silence))
            # The link leads to this Alertmanager's web UI, whose page opens the form of the fragment.
            assert silence.startswith(f"{base_url}/#/silences/new?"), silence
            with urllib.request.urlopen(silence.split("#")[0], timeout=10) as page:
                assert page.status == 200 and b"Alertmanager" in page.read()

            ended = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
            post_alerts(base_url, [{"labels": labels, "annotations": annotations, "startsAt": iso(started), "endsAt": iso(ended)}])
            assert wait_for(lambda: arrived(kept, 2), SIGNAL_SECONDS), f"not every channel got the resolved message: {received(kept)}"
            time.sleep(int(GROUP_INTERVAL[:-1]) + 1)  # a duplicate would come with the group's next tick
        log = (work / "alertmanager.log").read_text()
    return {
        "kept": kept, "work": work, "stack": stack, "labels": labels, "annotations": annotations,
        "started": started, "ended": ended, "selected": selected, "log": log, "config": config,
    }


def slack_messages(delivered: dict) -> list[dict]:
    return [json.loads((delivered["kept"] / "slack" / entry["file"]).read_text()) for entry in sinks.read_slack(delivered["kept"])]


def mail_parts(delivered: dict, entry: dict) -> dict[str, str]:
    message = sinks.mail_message(delivered["kept"], entry)
    assert message.get_content_type() == "multipart/alternative", message.get_content_type()
    parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
    assert sorted(parts) == ["text/html", "text/plain"], sorted(parts)
    return parts


def html_links(page: str) -> dict[str, str]:
    """Link text -> href of every <a> of an HTML part, entities decoded as a browser does."""
    return {text: html.unescape(href) for href, text in re.findall(r'<a href="([^"]*)">([^<]*)</a>', page)}


# --- exactly one firing and one resolved message per channel ---------------------------------------
def test_each_channel_receives_one_firing_and_one_resolved_message(delivered: dict):
    kept = received(delivered["kept"])
    assert [m["subject"] for m in kept["mail"]] == [
        f"[PHAROS][FIRING][critical][{ENVIRONMENT}] {HIGH_ERROR_RATE.name} {ENVIRONMENT}/{SERVICE}",
        f"[PHAROS][RESOLVED][critical][{ENVIRONMENT}] {HIGH_ERROR_RATE.name} {ENVIRONMENT}/{SERVICE}",
    ]
    assert [m["to"] for m in kept["mail"]] == [[PAGER_MAIL], [PAGER_MAIL]]
    assert [(m["channel"], m["title"]) for m in kept["slack"]] == [
        (PAGER_CHANNEL, f"[FIRING:1][critical] {HIGH_ERROR_RATE.name} in {ENVIRONMENT} ({SERVICE})"),
        (PAGER_CHANNEL, f"[RESOLVED][critical] {HIGH_ERROR_RATE.name} in {ENVIRONMENT} ({SERVICE})"),
    ]
    assert [m["event_action"] for m in kept["pagerduty"]] == ["trigger", "resolve"]


# --- links ---------------------------------------------------------------------------------------
def test_slack_buttons_link_the_dashboard_a_prefilled_silence_and_the_runbook(delivered: dict):
    started, ended = int(delivered["started"].timestamp()), int(delivered["ended"].timestamp())
    for payload, to in zip(slack_messages(delivered), ("now", str((ended + 900) * 1000))):
        attachment = payload["attachments"][0]
        buttons = {action["text"]: action for action in attachment["actions"]}
        assert list(buttons) == ["Dashboard", "Silence", "Runbook"]
        assert {action["type"] for action in buttons.values()} == {"button"}

        dashboard = urllib.parse.urlsplit(buttons["Dashboard"]["url"])
        assert (dashboard.scheme, dashboard.netloc, dashboard.path) == ("https", "grafana.example.com", f"/d/{service_detail.UID}")
        assert service_detail.build().uid == service_detail.UID  # the uid Grafana will know it by
        assert urllib.parse.parse_qs(dashboard.query) == {
            "from": [str((started - 3600) * 1000)],
            "to": [to],
            f"var-{L.ENVIRONMENT}": [ENVIRONMENT],
            f"var-{L.SERVICE}": [SERVICE],
        }
        assert silence_matchers(buttons["Silence"]["url"]) == {"alertname": HIGH_ERROR_RATE.name, L.ENVIRONMENT: ENVIRONMENT, L.SERVICE: SERVICE}
        assert buttons["Runbook"]["url"] == HIGH_ERROR_RATE.runbook_url(RUNBOOK_BASE)
    assert attachment["color"] == "good" and slack_messages(delivered)[0]["attachments"][0]["color"] == "danger"


def test_the_silence_matchers_select_the_alert_in_the_running_alertmanager(delivered: dict):
    assert [alert["labels"] for alert in delivered["selected"]] == [delivered["labels"]]


def test_the_runbook_link_names_a_section_of_the_runbooks():
    headings = re.findall(r"^## (\S+)$", (ROOT / "docs" / "runbooks.md").read_text(), re.MULTILINE)
    assert HIGH_ERROR_RATE.runbook_anchor in {heading.lower() for heading in headings}


def test_mail_has_a_text_part_beside_the_html_with_the_same_links(delivered: dict):
    slack_links = [{a["text"]: a["url"] for a in payload["attachments"][0]["actions"]} for payload in slack_messages(delivered)]
    for entry, expected in zip(sinks.read_mail(delivered["kept"]), slack_links):
        parts = mail_parts(delivered, entry)
        links = html_links(parts["text/html"])
        assert {text: links[text] for text in expected} == expected
        assert links["Alertmanager"].startswith("http")
        for text, url in expected.items():
            assert f"{text}: {url}" in parts["text/plain"].splitlines(), (text, parts["text/plain"])


# --- what the messages say -----------------------------------------------------------------------
def test_the_firing_messages_say_what_fails_and_since_when(delivered: dict):
    summary, description = delivered["annotations"]["summary"], delivered["annotations"]["description"]
    assert "7.5%" in summary and "7.5%" in description
    since = delivered["started"].strftime("%Y-%m-%d %H:%M:%S UTC")
    firing_slack = slack_messages(delivered)[0]["attachments"][0]["text"]
    firing_mail = mail_parts(delivered, sinks.read_mail(delivered["kept"])[0])
    for text in (firing_slack, firing_mail["text/plain"], html.unescape(firing_mail["text/html"])):
        assert summary in text and description in text and f"Firing since {since}" in text, text
    assert f"`{L.SERVICE}={SERVICE}`" in firing_slack  # label pairs, as the delivery-failure drill reads them


def test_a_resolved_message_says_when_it_ended_and_no_value_as_if_current(delivered: dict):
    summary, description = delivered["annotations"]["summary"], delivered["annotations"]["description"]
    lasted = go_duration(delivered["ended"] - delivered["started"])
    ended = f"Resolved at {delivered['ended'].strftime('%Y-%m-%d %H:%M:%S UTC')}, after {lasted}."
    resolved_slack = slack_messages(delivered)[1]["attachments"][0]
    resolved_mail = mail_parts(delivered, sinks.read_mail(delivered["kept"])[1])
    resolved_pager = sinks.pagerduty_event(delivered["kept"], sinks.read_pagerduty(delivered["kept"])[1])
    texts = {
        "slack": resolved_slack["text"],
        "mail text": resolved_mail["text/plain"],
        "mail html": html.unescape(re.sub(r"<[^>]+>", "", resolved_mail["text/html"])),
        "pagerduty": resolved_pager["payload"]["custom_details"]["resolved"],
    }
    for channel, text in texts.items():
        assert ended in text, (channel, text)
        assert description not in text, f"{channel}: the description states the last value as current: {text}"
        # The value appears once, as what the alert said while it fired.
        assert text.count("7.5%") == 1 and f"While firing: {summary}" in text, (channel, text)
    titles = [resolved_slack["title"], sinks.read_mail(delivered["kept"])[1]["subject"], resolved_pager["payload"]["summary"]]
    assert not [title for title in titles if "%" in title], titles


# --- the pager -----------------------------------------------------------------------------------
def test_the_pager_gets_the_critical_alert_with_the_key_from_its_file_and_its_resolve(delivered: dict):
    kept = sinks.read_pagerduty(delivered["kept"])
    events = [sinks.pagerduty_event(delivered["kept"], entry) for entry in kept]
    assert {entry["routing_key_id"] for entry in kept} == {hashlib.sha256(ROUTING_KEY.encode()).hexdigest()[:12]}, "the key, its newline trimmed"
    assert kept[0]["dedup_key"] == kept[1]["dedup_key"]
    trigger = events[0]["payload"]
    assert trigger["severity"] == "critical" and (trigger["group"], trigger["component"], trigger["class"]) == (ENVIRONMENT, SERVICE, HIGH_ERROR_RATE.name)
    assert trigger["summary"] == f"[FIRING:1][critical] {HIGH_ERROR_RATE.name} in {ENVIRONMENT} ({SERVICE}): {delivered['annotations']['summary']}"
    slack_links = {a["text"]: a["url"] for a in slack_messages(delivered)[0]["attachments"][0]["actions"]}
    assert {link["text"]: link["href"] for link in events[0]["links"]} == slack_links


def test_no_secret_reaches_the_configuration_the_sinks_or_the_log(delivered: dict):
    places = [path for path in delivered["work"].rglob("*") if path.is_file() and "secrets" not in path.parts]
    assert len(places) > 8
    for path in places:
        text = path.read_text(errors="replace")
        assert ROUTING_KEY not in text and "secret-webhook-token" not in text, path


# --- the configuration ---------------------------------------------------------------------------
def test_amtool_accepts_the_built_configuration_and_the_one_with_links(delivered: dict):
    for config in (delivered["work"] / "build" / "alertmanager" / "alertmanager.yml", delivered["config"]):
        assert_ok(run(AMTOOL, "check-config", str(config)))
    built = yaml.safe_load((delivered["work"] / "build" / "alertmanager" / "alertmanager.yml").read_text())
    pager = next(receiver for receiver in built["receivers"] if receiver["name"] == "production-pager")
    assert [config["routing_key_file"] for config in pager["pagerduty_configs"]] == [str(delivered["work"] / "secrets" / "pagerduty_routing_key")]


def test_without_a_grafana_url_there_is_no_dashboard_link():
    receiver = alertmanager.Receiver("pager", slack=(alertmanager.SlackChannel("#pages", "/run/secrets/slack"),))
    config = alertmanager.render([receiver], alertmanager.Routing("pager", {"Watchdog": "pager"}))
    (slack,) = config["receivers"][0]["slack_configs"]
    assert [action["text"] for action in slack["actions"]] == ["Silence", "Runbook"]


@pytest.mark.parametrize(
    "receiver, problem",
    [
        ({"pagerduty": [{"routing_key": "abc"}]}, "receivers.pager.pagerduty[0].routing_key: secrets are not accepted inline"),
        ({"pagerduty": [{"url": "http://127.0.0.1:1/v2/enqueue"}]}, "receivers.pager.pagerduty[0].routing_key_file: missing"),
        ({"pagerduty": [{"routing_key_file": "/run/secrets/pd", "url": "ftp://x"}]}, "receivers.pager.pagerduty[0].url: 'ftp://x' is not an http(s) URL"),
        ({"pagerduty": {"routing_key_file": "/run/secrets/pd"}}, "receivers.pager.pagerduty: expected a list of services"),
    ],
)
def test_pagerduty_mistakes_name_the_key(receiver: dict, problem: str, tmp_path: Path):
    data = stack_data(tmp_path, 25, "http://127.0.0.1:1")
    data["receivers"]["pager"] = receiver
    with pytest.raises(StackConfigError, match=re.escape(problem)):
        parse(data, "stack.yml")


def test_a_grafana_url_with_a_query_is_refused():
    data = stack_data(Path("/run/secrets"), 25, "http://127.0.0.1:1")
    data["grafana"] = {"url": "https://grafana.example.com/?orgId=1"}
    with pytest.raises(StackConfigError, match=re.escape("grafana.url: 'https://grafana.example.com/?orgId=1' is not Grafana's http(s) address")):
        parse(data, "stack.yml")


# --- for the issue note --------------------------------------------------------------------------
def test_quote_the_messages_when_asked(delivered: dict):
    target = os.environ.get("PHAROS_QUOTE_MESSAGES")
    if not target:
        pytest.skip("set PHAROS_QUOTE_MESSAGES=FILE to write the received messages to FILE")
    lines = []
    for entry, payload in zip(sinks.read_slack(delivered["kept"]), slack_messages(delivered)):
        attachment = payload["attachments"][0]
        lines += [f"=== Slack #{entry['seq']} to {payload['channel']} ===", f"title: {attachment['title']}", "text:", attachment["text"]]
        lines += [f"button {action['text']}: {action['url']}" for action in attachment["actions"]] + [""]
    for entry in sinks.read_mail(delivered["kept"]):
        parts = mail_parts(delivered, entry)
        lines += [f"=== Mail #{entry['seq']} to {', '.join(entry['to'])} ===", f"Subject: {entry['subject']}", "--- text/plain ---", parts["text/plain"], "--- text/html ---", parts["text/html"]]
    for entry in sinks.read_pagerduty(delivered["kept"]):
        event = sinks.pagerduty_event(delivered["kept"], entry)
        lines += [f"=== PagerDuty #{entry['seq']} {entry['event_action']} ===", json.dumps(event, indent=2, sort_keys=True), ""]
    Path(target).write_text("\n".join(lines), encoding="utf-8")
