"""`pharos up --fast` end to end on the real stack: demo services, exporters, one Prometheus per
environment, Alertmanager, and the SMTP and Slack sinks, all as the user runs them.

A fault injected with `pharos fault` must reach the mail and Slack sinks once per alert group,
naming the alert, service, environment and summary, and be resolved once the fault is cleared;
SIGTERM must then stop every process. The intervals are shortened by `--fast`, which only changes
the stack file that `pharos build` reads.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from pharos_monitoring.alerts import templates
from pharos_monitoring.alerts.catalogue import HIGH_ERROR_RATE
from pharos_monitoring.alerts.model import duration_seconds
from pharos_monitoring.exporter.catalogue import Label
from pharos_monitoring.local import local_stack, sinks
from pharos_monitoring.cli import main

from helpers import wait_for

pytestmark = pytest.mark.slow

START_SECONDS = 90  # the whole stack answering, on a busy 2-core machine
TARGETS_SECONDS = 60
SIGNAL_SECONDS = 120  # the estimate is under 20 s; the bound only keeps a broken stack from hanging
STOP_SECONDS = 60
FAULTY = "production/orders"
HEALTHY = "beta/orders"
PAGER_MAIL = local_stack.ONCALL
PAGER_CHANNEL = "#production-pages"



def get_json(url: str) -> dict:
    return requests.get(url, timeout=10).json()


def all_targets_up(prometheus: str) -> bool:
    targets = get_json(prometheus + "/api/v1/targets")["data"]["activeTargets"]
    alertmanagers = get_json(prometheus + "/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
    # Until Prometheus has discovered Alertmanager, alerts it sends are dropped.
    return bool(targets) and all(target["health"] == "up" for target in targets) and bool(alertmanagers)


def summary_pattern(service: str, environment: str) -> re.Pattern:
    """The alert's summary as the catalogue words it, whatever the value."""
    text = templates.expand(
        HIGH_ERROR_RATE.summary,
        HIGH_ERROR_RATE.thresholds_for(environment),
        lambda label: {Label.SERVICE: service, Label.ENVIRONMENT: environment}[label],
        lambda fmt: "\0",
    )
    return re.compile(r"[0-9.]+%".join(re.escape(part) for part in text.split("\0")))


def messages(state: Path, status: str) -> tuple[list[dict], list[dict]]:
    """(mails, Slack messages) about PharosHighErrorRate with this status (FIRING or RESOLVED)."""
    alert = HIGH_ERROR_RATE.name
    mails = [m for m in sinks.read_mail(state) if alert in m["subject"] and f"[{status}" in m["subject"]]
    slack = [m for m in sinks.read_slack(state) if alert in m["title"] and f"[{status}" in m["title"]]
    return mails, slack


def both_arrived(state: Path, status: str):
    mails, slack = messages(state, status)
    return (mails, slack) if mails and slack else None


def test_a_fault_reaches_mail_and_slack_once_per_group_and_resolves(tmp_path: Path):
    state = tmp_path / "state"
    output_path = tmp_path / "up.out"
    with open(output_path, "wb") as output:
        up = subprocess.Popen(
            [sys.executable, "-m", "pharos_monitoring.cli", "up", "--fast", "--port-base", "0", "--state-dir", str(state)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={key: value for key, value in os.environ.items() if not key.startswith("PHAROS_")},
        )
    children: list[psutil.Process] = []
    try:
        described = wait_for(lambda: up.poll() is None and (state / "up.json").exists() and json.loads((state / "up.json").read_text()), START_SECONDS)
        assert described, f"pharos up did not come up:\n{output_path.read_text()}"
        children = [psutil.Process(child["pid"]) for child in described["children"]]
        assert len(children) == 11  # node_exporter, the global store and vmalert included
        assert sorted(described["prometheus"]) == ["beta", "production"]
        for environment, prometheus in described["prometheus"].items():
            assert wait_for(lambda: all_targets_up(prometheus), TARGETS_SECONDS), f"targets of {environment} not all up"

        assert main(["fault", "orders", "--error-ratio", "1", "--state-dir", str(state)]) == 1, "a name in two environments is ambiguous"
        assert main(["fault", FAULTY, "--error-ratio", "1", "--state-dir", str(state)]) == 0
        firing = wait_for(lambda: both_arrived(state, "FIRING"), SIGNAL_SECONDS)
        assert firing, f"no firing PharosHighErrorRate by mail and Slack:\n{output_path.read_text()}"

        assert main(["fault", FAULTY, "--clear", "--state-dir", str(state)]) == 0
        resolved = wait_for(lambda: both_arrived(state, "RESOLVED"), SIGNAL_SECONDS)
        assert resolved, f"no resolved PharosHighErrorRate by mail and Slack:\n{output_path.read_text()}"
        # A duplicate would come with the group's next group_interval tick: give it one.
        time.sleep(duration_seconds(local_stack.FAST_INTERVALS["group_interval"]) + 1)
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(timeout=STOP_SECONDS)

    summary = summary_pattern("orders", "production")
    for status in ("FIRING", "RESOLVED"):
        mails, slack = messages(state, status)
        assert [mail["to"] for mail in mails] == [[PAGER_MAIL]], f"{status}: one mail to the pager, got {mails}"
        assert re.search(r"PharosHighErrorRate .*production.*orders", mails[0]["subject"]), mails[0]["subject"]
        assert summary.search(sinks.mail_text(state, mails[0])), f"{status}: the mail has no summary"
        assert [message["channel"] for message in slack] == [PAGER_CHANNEL], f"{status}: one Slack message to {PAGER_CHANNEL}, got {slack}"
        assert slack[0]["title"].endswith("PharosHighErrorRate in production (orders)"), slack[0]["title"]
        assert summary.search(slack[0]["text"]), f"{status}: the Slack message has no summary: {slack[0]['text']}"
        payload = json.loads((state / "slack" / slack[0]["file"]).read_text())
        assert payload["attachments"][0]["title"] == slack[0]["title"]
    everything = [m["subject"] for m in sinks.read_mail(state)] + [m["title"] for m in sinks.read_slack(state)]
    assert not [text for text in everything if "beta" in text and HIGH_ERROR_RATE.name in text], "the healthy environment alerted"

    output = output_path.read_text()
    assert code == 0, output
    assert "pharos up: stopped 11 processes" in output
    assert not [child.pid for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE], "orphans left"
    assert not (state / "up.json").exists()
