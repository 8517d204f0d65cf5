"""The mail and Slack sinks: a real SMTP conversation and Slack's webhook answers, messages kept
whole with an index, one printed line each, and the webhook URL (a secret) kept nowhere."""

from __future__ import annotations

import argparse
import json
import smtplib
import select
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests

from pharos_monitoring.local import sinks
from pharos_monitoring.local.sinks import Sinks

WEBHOOK_PATH = "/services/T000/B000/secret-token-not-to-be-kept-4471"
TIMEOUT = 30


@pytest.fixture
def running(tmp_path: Path):
    lines: list[str] = []
    with Sinks(tmp_path, ("127.0.0.1", 0), ("127.0.0.1", 0), announce=lines.append) as started:
        started.lines = lines
        yield started


def alert_mail(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "pharos@example.com"
    message["To"] = "oncall@example.com"
    message["Subject"] = subject
    message.set_content("plain text part")
    message.add_alternative("<html><head><style>h1 {color: red}</style></head><body><h1>Summary &amp; more</h1></body></html>", subtype="html")
    return message


def test_smtp_keeps_the_whole_message_and_indexes_it(running: Sinks, tmp_path: Path):
    with smtplib.SMTP("127.0.0.1", running.smtp.port, timeout=TIMEOUT) as client:
        client.send_message(alert_mail("[FIRING:1] PharosHighErrorRate production orders (critical)"), to_addrs=["oncall@example.com", "team@example.com"])
        client.send_message(alert_mail("[RESOLVED] PharosHighErrorRate production orders (critical)"))
    mails = sinks.read_mail(tmp_path)
    assert [(m["seq"], m["subject"]) for m in mails] == [
        (1, "[FIRING:1] PharosHighErrorRate production orders (critical)"),
        (2, "[RESOLVED] PharosHighErrorRate production orders (critical)"),
    ]
    assert mails[0]["to"] == ["oncall@example.com", "team@example.com"] and mails[0]["from"] == "pharos@example.com"
    kept = sinks.mail_message(tmp_path, mails[0])
    assert kept["Subject"] == mails[0]["subject"] and kept.is_multipart()
    text = sinks.mail_text(tmp_path, mails[0])
    assert "Summary & more" in text and "plain text part" in text
    assert "color" not in text and "<h1>" not in text
    assert running.lines[0] == "pharos sinks: mail #1 to oncall@example.com, team@example.com: [FIRING:1] PharosHighErrorRate production orders (critical)"


def test_slack_answers_like_slack_and_keeps_the_payload_but_not_the_webhook(running: Sinks, tmp_path: Path):
    payload = {"channel": "#production-pages", "username": "Alertmanager", "attachments": [{"title": "[FIRING:1] X in production", "text": "*summary*"}]}
    answer = requests.post(running.slack.url + WEBHOOK_PATH, json=payload, timeout=TIMEOUT)
    assert (answer.status_code, answer.text) == (200, "ok")
    form = requests.post(running.slack.url + WEBHOOK_PATH, data={"payload": json.dumps({"text": "plain"})}, timeout=TIMEOUT)
    assert (form.status_code, form.text) == (200, "ok")

    refused = {
        "not JSON": requests.post(running.slack.url + WEBHOOK_PATH, data=b"{", headers={"Content-Type": "application/json"}, timeout=TIMEOUT),
        "no text": requests.post(running.slack.url + WEBHOOK_PATH, json={"channel": "#x"}, timeout=TIMEOUT),
        "not a webhook": requests.post(running.slack.url + "/api/chat.postMessage", json=payload, timeout=TIMEOUT),
    }
    assert {why: (r.status_code, r.text) for why, r in refused.items()} == {
        "not JSON": (400, "invalid_payload"),
        "no text": (400, "no_text"),
        "not a webhook": (404, "no_service"),
    }

    messages = sinks.read_slack(tmp_path)
    assert [(m["channel"], m["title"], m["text"]) for m in messages] == [
        ("#production-pages", "[FIRING:1] X in production", "*summary*"),
        ("", "plain", ""),
    ]
    assert json.loads((tmp_path / "slack" / messages[0]["file"]).read_text()) == payload
    assert messages[0]["webhook"] == messages[1]["webhook"] and len(messages[0]["webhook"]) == 12
    assert running.lines == ["pharos sinks: slack #1 in #production-pages: [FIRING:1] X in production", "pharos sinks: slack #2 in (no channel): plain"]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert "secret-token" not in path.read_text(), f"{path} holds the webhook URL"


def test_numbers_continue_after_an_earlier_run(tmp_path: Path):
    for expected in (1, 2):
        with Sinks(tmp_path, ("127.0.0.1", 0), ("127.0.0.1", 0), announce=lambda line: None) as running:
            requests.post(running.slack.url + WEBHOOK_PATH, json={"text": f"run {expected}"}, timeout=TIMEOUT)
        assert sinks.read_slack(tmp_path)[-1]["seq"] == expected
    assert sorted(path.name for path in (tmp_path / "slack").glob("*.json")) == ["000001.json", "000002.json"]


@pytest.mark.parametrize("address", ["0.0.0.0:2525", "192.0.2.1:25", "mail.example.com:25", "127.0.0.1"])
def test_the_sinks_listen_on_loopback_only(address: str):
    with pytest.raises(argparse.ArgumentTypeError):
        sinks.loopback_address(address)


def test_loopback_addresses_are_accepted():
    assert sinks.loopback_address("localhost:0") == ("127.0.0.1", 0)
    assert sinks.loopback_address("[::1]:2525") == ("::1", 2525)


def test_pharos_sinks_runs_until_sigterm(tmp_path: Path):
    process = subprocess.Popen(
        [sys.executable, "-m", "pharos_monitoring.cli", "sinks", "--dir", str(tmp_path), "--smtp", "127.0.0.1:0", "--slack", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def next_line() -> str:
        readable, _, _ = select.select([process.stdout], [], [], TIMEOUT)
        return process.stdout.readline().decode() if readable else ""

    try:
        first = next_line()
        assert first.startswith("pharos sinks: SMTP on 127.0.0.1:"), first
        slack_url = first.split("Slack webhooks at ")[1].split("/services")[0]
        assert requests.post(slack_url + WEBHOOK_PATH, json={"text": "hello"}, timeout=TIMEOUT).text == "ok"
        assert next_line().strip() == "pharos sinks: slack #1 in (no channel): hello"
    finally:
        process.terminate()
        code = process.wait(timeout=TIMEOUT)
        process.stdout.close()
        process.stderr.close()
    assert code == 0
    assert sinks.read_slack(tmp_path)[0]["title"] == "hello"


def test_pagerduty_answers_like_the_events_api_and_keeps_the_event_but_not_the_key(running: Sinks, tmp_path: Path):
    key = "integration-key-not-to-be-kept-3390"
    trigger = {
        "routing_key": key,
        "event_action": "trigger",
        "payload": {"summary": "[FIRING:1] X in production", "source": "Alertmanager", "severity": "critical"},
    }
    answer = requests.post(running.slack.url + sinks.PAGERDUTY_PATH, json=trigger, timeout=TIMEOUT)
    assert answer.status_code == 202
    dedup_key = answer.json()["dedup_key"]
    assert answer.json() == {"status": "success", "message": "Event processed", "dedup_key": dedup_key} and dedup_key
    resolve = {"routing_key": key, "event_action": "resolve", "dedup_key": dedup_key}
    assert requests.post(running.slack.url + sinks.PAGERDUTY_PATH, json=resolve, timeout=TIMEOUT).status_code == 202

    refused = {
        "no key": {**trigger, "routing_key": ""},
        "unknown action": {**trigger, "event_action": "page"},
        "PagerDuty has no severity 'page'": {**trigger, "payload": {**trigger["payload"], "severity": "page"}},
        "resolve without dedup_key": {"routing_key": key, "event_action": "resolve"},
    }
    answers = {why: requests.post(running.slack.url + sinks.PAGERDUTY_PATH, json=event, timeout=TIMEOUT) for why, event in refused.items()}
    assert {why: (a.status_code, a.json()["status"]) for why, a in answers.items()} == {why: (400, "invalid event") for why in refused}
    assert answers["unknown action"].json()["errors"] == ["'event_action' must be one of trigger, acknowledge, resolve"]

    kept = sinks.read_pagerduty(tmp_path)
    assert [(e["seq"], e["event_action"], e["dedup_key"], e["summary"], e["severity"]) for e in kept] == [
        (1, "trigger", dedup_key, "[FIRING:1] X in production", "critical"),
        (2, "resolve", dedup_key, "", ""),
    ]
    assert kept[0]["routing_key_id"] == kept[1]["routing_key_id"] and len(kept[0]["routing_key_id"]) == 12
    event = sinks.pagerduty_event(tmp_path, kept[0])
    assert event["payload"] == trigger["payload"] and "routing_key" not in event
    assert running.lines == [
        f"pharos sinks: pagerduty #1 trigger {dedup_key}: [FIRING:1] X in production",
        f"pharos sinks: pagerduty #2 resolve {dedup_key}: ",
    ]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert key not in path.read_text(), f"{path} holds the routing key"
