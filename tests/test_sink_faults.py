"""The sinks as a mail relay with AUTH and as a failing relay and Slack: SMTP AUTH as Alertmanager
speaks it, faults set and cleared over `/-/faults` and with `pharos fault --sink`, and what a
sender sees meanwhile (refused connections, SMTP reply codes, HTTP statuses), with nothing kept."""

from __future__ import annotations

import base64
import smtplib
import socket
import time
from pathlib import Path

import pytest
import requests

from pharos_monitoring.local import sinks
from pharos_monitoring.cli import main
from pharos_monitoring.local.sinks import Sinks

USER, PASSWORD = "alertmanager", "relay-password-3f9c"
WEBHOOK = "/services/T000/B000/not-kept-token-5521"
TIMEOUT = 30


@pytest.fixture
def relay(tmp_path: Path):
    lines: list[str] = []
    with Sinks(tmp_path, ("127.0.0.1", 0), ("127.0.0.1", 0), announce=lines.append, smtp_credentials=(USER, PASSWORD)) as started:
        started.lines = lines
        yield started


def send(relay: Sinks, subject: str, password: str | None = PASSWORD) -> None:
    with smtplib.SMTP("127.0.0.1", relay.smtp.port, timeout=TIMEOUT) as client:
        if password is not None:
            client.login(USER, password)
        client.sendmail("pharos@example.com", ["oncall@example.com"], f"Subject: {subject}\r\n\r\nbody\r\n")


def faults_url(relay: Sinks, sink: str = "") -> str:
    return relay.slack.url + "/-/faults" + (f"/{sink}" if sink else "")


def wait_for(condition, seconds: float = TIMEOUT):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_mail_needs_the_password(relay: Sinks, tmp_path: Path):
    with pytest.raises(smtplib.SMTPSenderRefused) as unauthenticated:
        send(relay, "no auth", password=None)
    assert unauthenticated.value.smtp_code == 530
    with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
        send(relay, "wrong", password="not-" + PASSWORD)
    assert wrong.value.smtp_code == 535
    send(relay, "right")
    assert [mail["subject"] for mail in sinks.read_mail(tmp_path)] == ["right"]


def test_login_asks_in_the_words_real_relays_use(relay: Sinks):
    """Alertmanager's LOGIN checks the server's prompts ("Username:", "Password:")."""
    with socket.create_connection(("127.0.0.1", relay.smtp.port), timeout=TIMEOUT) as connection:
        replies = connection.makefile("rb")
        replies.readline()
        connection.sendall(b"EHLO alertmanager\r\n")
        features = []
        while not (line := replies.readline()).startswith(b"250 "):
            features.append(line)
        assert any(b"AUTH" in line and b"LOGIN" in line and b"PLAIN" in line for line in features), features
        prompts = []
        for answer in (b"AUTH LOGIN\r\n", base64.b64encode(USER.encode()) + b"\r\n"):
            connection.sendall(answer)
            code, _, prompt = replies.readline().strip().partition(b" ")
            assert code == b"334"
            prompts.append(base64.b64decode(prompt))
        connection.sendall(base64.b64encode(PASSWORD.encode()) + b"\r\n")
        assert replies.readline().startswith(b"235 ")
    assert prompts == [b"Username:", b"Password:"]


def test_a_password_with_a_line_break_is_refused_and_explained(relay: Sinks):
    with pytest.raises(smtplib.SMTPAuthenticationError):
        send(relay, "newline", password=PASSWORD + "\n")
    hint = [line for line in relay.lines if "line break" in line]
    assert hint and "without a final newline" in hint[0] and PASSWORD not in hint[0]


def test_smtp_down_refuses_connections_until_cleared_on_the_same_port(relay: Sinks, tmp_path: Path):
    port = relay.smtp.port
    answer = requests.post(faults_url(relay, "smtp"), json={"down": True}, timeout=TIMEOUT)
    assert answer.status_code == 200 and answer.json()["down"] is True
    with pytest.raises(ConnectionRefusedError):
        send(relay, "while down")
    assert requests.delete(faults_url(relay, "smtp"), timeout=TIMEOUT).json()["down"] is False
    assert relay.smtp.port == port
    send(relay, "after")
    assert [mail["subject"] for mail in sinks.read_mail(tmp_path)] == ["after"]


def test_smtp_status_answers_every_sender_and_counts(relay: Sinks, tmp_path: Path):
    requests.post(faults_url(relay, "smtp"), json={"status": 451}, timeout=TIMEOUT).raise_for_status()
    for _ in range(2):
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            send(relay, "refused")
        assert refused.value.smtp_code == 451
    assert requests.get(faults_url(relay), timeout=TIMEOUT).json()["smtp"]["refused"] == 2
    assert sinks.read_mail(tmp_path) == []


def test_slack_status_keeps_nothing_and_a_timed_fault_clears_itself(relay: Sinks, tmp_path: Path):
    set_fault = requests.post(faults_url(relay, "slack"), json={"status": 500, "for_seconds": 0.5}, timeout=TIMEOUT)
    assert set_fault.json()["status"] == 500 and 0 < set_fault.json()["clears_in_seconds"] <= 0.5
    failed = requests.post(relay.slack.url + WEBHOOK, json={"text": "during"}, timeout=TIMEOUT)
    assert (failed.status_code, failed.text) == (500, "rollup_error")
    assert wait_for(lambda: requests.get(faults_url(relay, "slack"), timeout=TIMEOUT).json()["status"] == 0), "the fault did not clear itself"
    delivered = requests.post(relay.slack.url + WEBHOOK, json={"text": "after"}, timeout=TIMEOUT)
    assert (delivered.status_code, delivered.text) == (200, "ok")
    assert [message["title"] for message in sinks.read_slack(tmp_path)] == ["after"]
    assert requests.get(faults_url(relay), timeout=TIMEOUT).json()["slack"] == {"clears_in_seconds": None, "down": False, "refused": 1, "status": 0}


def test_a_newer_fault_outlives_the_timer_of_an_older_one(relay: Sinks):
    requests.post(faults_url(relay, "slack"), json={"status": 500, "for_seconds": 0.2}, timeout=TIMEOUT).raise_for_status()
    requests.post(faults_url(relay, "slack"), json={"status": 503}, timeout=TIMEOUT).raise_for_status()
    time.sleep(0.5)
    assert requests.get(faults_url(relay, "slack"), timeout=TIMEOUT).json()["status"] == 503


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("slack", {"status": 200}, 400, "from 400 to 599"),
        ("slack", {"down": True}, 400, "down is no fault of the slack sink"),
        ("smtp", {"down": True, "status": 451}, 400, "exclude each other"),
        ("smtp", {"status": 451, "for_seconds": 0}, 400, "for_seconds"),
        ("smtp", {}, 400, "no fault given"),
        ("pager", {"status": 500}, 404, "no sink 'pager'"),
    ],
)
def test_fault_requests_that_cannot_apply_say_why(relay: Sinks, path: str, body: dict, status: int, words: str):
    answer = requests.post(faults_url(relay, path), json=body, timeout=TIMEOUT)
    assert answer.status_code == status and words in answer.text, answer.text
    assert requests.get(faults_url(relay), timeout=TIMEOUT).json()["smtp"]["status"] == 0


def test_pharos_fault_sink_sets_shows_and_clears(relay: Sinks, capsys):
    url = relay.slack.url
    assert main(["fault", url, "--sink", "slack", "--status", "500", "--for", "60"]) == 0
    assert "answers 500 to every webhook, clears in" in capsys.readouterr().out
    assert main(["fault", url, "--sink", "smtp", "--down"]) == 0
    assert not relay.smtp.listening
    assert main(["fault", url, "--sink", "smtp"]) == 0
    assert "smtp sink: down (connections refused)" in capsys.readouterr().out
    for sink in ("smtp", "slack"):
        assert main(["fault", url, "--sink", sink, "--clear"]) == 0
    assert relay.smtp.listening and "slack sink: delivering" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["--sink", "slack", "--down"], "--down is no fault of the slack sink"),
        (["--sink", "slack", "--error-ratio", "1"], "--error-ratio is a knob of demo services"),
        (["--status", "500"], "add --sink"),
        ([], "name a service"),
        (["--sink", "smtp", "--clear", "--down"], "give it without"),
        (["--sink", "smtp", "--status", "250"], "--status: expected an SMTP reply code"),
        (["orders", "--sink", "slack"], "give no service name"),
    ],
)
def test_pharos_fault_sink_mistakes_name_the_flag(arguments: list[str], words: str, tmp_path: Path, capsys):
    assert main(["fault", *arguments, "--state-dir", str(tmp_path)]) == 1
    assert words in capsys.readouterr().err


def test_pharos_sinks_names_a_missing_password_file(tmp_path: Path, capsys):
    missing = tmp_path / "nope"
    assert main(["sinks", "--dir", str(tmp_path), "--smtp", "127.0.0.1:0", "--slack", "127.0.0.1:0", "--smtp-password-file", str(missing)]) == 1
    assert f"cannot read --smtp-password-file {missing}" in capsys.readouterr().err
