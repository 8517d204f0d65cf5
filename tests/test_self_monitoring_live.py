"""The monitoring watching itself on `pharos up --fast`: a broken pipeline reaches people.

1. Alertmanager's configuration stops reloading (a broken alertmanager.yml over the one it runs,
   then POST /-/reload; it keeps running on the old one): AlertmanagerFailedReload. Both
   Prometheus servers scrape the one Alertmanager, so it fires once per environment, and the
   routes send a warning of production to production-team (Slack #production only) and one of
   beta to staging-team (mail to staging-team@ and Slack #staging): the mail comes from beta's.
2. A recording rule that promtool accepts but fails at every evaluation (a many-to-many match),
   loaded into production's Prometheus (SIGHUP: pharos up starts it without --web.enable-lifecycle):
   PrometheusRuleFailures, critical, which production routes to production-pager (mail to
   oncall@ and Slack #production-pages).

Each fault is undone in a `finally`, and the resolved messages must follow. The `for` of both
alerts is shortened by --fast (local_stack.fast_for); the seconds from fault to message are printed.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from pharos_monitoring.alerts.self_monitoring import ALERTMANAGER_FAILED_RELOAD, RULE_FAILURES
from pharos_monitoring.local import local_stack, sinks

from alerting_tools import PROMTOOL, assert_ok, run
from helpers import wait_for
from pharos_up import PharosUp

pytestmark = pytest.mark.slow

READY_SECONDS = 120  # every target scraped on a busy 2-core machine
SIGNAL_SECONDS = 240  # the --fast estimate is well under a minute; the bound only stops a broken stack
BROKEN_RULE_GROUP = "broken.by.test"
# Both sides hold every `up` of the environment: "many-to-many matching not allowed" at every evaluation.
BROKEN_RULES = f"""groups:
- name: {BROKEN_RULE_GROUP}
  rules:
  - record: test:up:many_to_many
    expr: up * on (environment) up
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    directory = tmp_path_factory.mktemp("self-monitoring")
    up = PharosUp(directory / "state", directory / "up.out", "--fast")
    try:
        described = up.wait_described()
        for prometheus in described["prometheus"].values():
            query = 'up{job="alertmanager"} == 1 and on () prometheus_config_last_reload_successful == 1'
            assert wait_for(lambda: _query(prometheus, query), READY_SECONDS, interval=1), f"{prometheus} never scraped Alertmanager:\n{up.log()[-3000:]}"
        yield up, described
    finally:
        up.stop()


def _query(prometheus: str, expr: str) -> list[dict]:
    return requests.get(prometheus + "/api/v1/query", params={"query": expr}, timeout=10).json()["data"]["result"]


def _command_line_flag(described: dict, child: str, flag: str) -> str:
    pid = next(each["pid"] for each in described["children"] if each["name"] == child)
    arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return next(argument.split("=", 1)[1] for argument in arguments if argument.startswith(flag + "="))


def _child_pid(described: dict, child: str) -> int:
    return next(each["pid"] for each in described["children"] if each["name"] == child)


def _messages(state: Path, alert: str, status: str, since: float) -> tuple[list[dict], list[dict]]:
    """(mails, Slack messages) about `alert` with `status` that arrived after `since`."""
    mails = [m for m in sinks.read_mail(state) if m["received_at"] >= since and alert in m["subject"] and f"[{status}" in m["subject"]]
    slack = [s for s in sinks.read_slack(state) if s["received_at"] >= since and alert in s["title"] and f"[{status}" in s["title"]]
    return mails, slack


def _arrived(state: Path, alert: str, status: str, since: float, mail_to: set[str], channels: set[str]):
    """The first mail to each of `mail_to` and first message in each of `channels`, once all have come."""
    mails, slack = _messages(state, alert, status, since)
    first_mail = {to: next((m for m in mails if to in m["to"]), None) for to in mail_to}
    first_slack = {channel: next((s for s in slack if s["channel"] == channel), None) for channel in channels}
    if all(first_mail.values()) and all(first_slack.values()):
        return first_mail, first_slack
    return None


def _report(what: str, since: float, first_mail: dict, first_slack: dict) -> None:
    for to, mail in sorted(first_mail.items()):
        print(f"{what}: mail to {to} after {mail['received_at'] - since:.1f} s: {mail['subject']!r}")
    for channel, message in sorted(first_slack.items()):
        print(f"{what}: Slack {channel} after {message['received_at'] - since:.1f} s: {message['title']!r}")


def test_a_failed_alertmanager_reload_reaches_mail_and_slack(stack):
    up, described = stack
    config = Path(_command_line_flag(described, "alertmanager", "--config.file"))
    original = config.read_bytes()
    alert = ALERTMANAGER_FAILED_RELOAD.name
    # Production's warning goes to production-team (Slack only), beta's to staging-team (mail and Slack).
    mail_to, channels = {local_stack.STAGING}, {"#staging", "#production"}
    broken_at = time.time()
    try:
        config.write_bytes(original + b"\nthis_is_not_a_setting: true\n")
        reload = requests.post(described["alertmanager"] + "/-/reload", timeout=30)
        assert reload.status_code != 200, "Alertmanager accepted a broken configuration"
        arrived = wait_for(lambda: _arrived(up.state, alert, "FIRING", broken_at, mail_to, channels), SIGNAL_SECONDS, interval=1)
        assert arrived, f"no firing {alert} by mail to {mail_to} and Slack in {channels}: {_messages(up.state, alert, 'FIRING', broken_at)}"
        _report(f"{alert} firing (fault at reload)", broken_at, *arrived)
        mail = arrived[0][local_stack.STAGING]
        assert "[warning][beta]" in mail["subject"], mail["subject"]
    finally:
        config.write_bytes(original)
        restored_at = time.time()
        assert requests.post(described["alertmanager"] + "/-/reload", timeout=30).status_code == 200, "the restored configuration does not load"
    resolved = wait_for(lambda: _arrived(up.state, alert, "RESOLVED", restored_at, mail_to, channels), SIGNAL_SECONDS, interval=1)
    assert resolved, f"no resolved {alert} after the configuration was restored"
    _report(f"{alert} resolved (after the restore)", restored_at, *resolved)


def test_a_failing_recording_rule_reaches_mail_and_slack(stack, tmp_path: Path):
    up, described = stack
    prometheus = described["prometheus"]["production"]
    rules_dir = Path(_command_line_flag(described, "prometheus production", "--config.file")).parent / "rules"
    broken = rules_dir / "zz-broken-by-test.yml"
    # What a user would check first: promtool finds nothing wrong with it.
    (tmp_path / broken.name).write_text(BROKEN_RULES)
    assert_ok(run(PROMTOOL, "check", "rules", str(tmp_path / broken.name)))
    pid = _child_pid(described, "prometheus production")
    alert = RULE_FAILURES.name
    mail_to, channels = {local_stack.ONCALL}, {"#production-pages"}

    def loaded() -> list[str]:
        groups = requests.get(prometheus + "/api/v1/rules", timeout=10).json()["data"]["groups"]
        return [group["name"] for group in groups if group["name"] == BROKEN_RULE_GROUP]

    broken_at = time.time()
    try:
        broken.write_text(BROKEN_RULES)
        os.kill(pid, signal.SIGHUP)
        assert wait_for(loaded, 60, interval=0.5), "Prometheus did not load the rule file on SIGHUP"
        failing = 'increase(prometheus_rule_evaluation_failures_total{rule_group=~".*broken.by.test"}[1m]) > 0'
        assert wait_for(lambda: _query(prometheus, failing), 60, interval=1), "the rule does not fail at evaluation"
        arrived = wait_for(lambda: _arrived(up.state, alert, "FIRING", broken_at, mail_to, channels), SIGNAL_SECONDS, interval=1)
        assert arrived, f"no firing {alert} by mail to {mail_to} and Slack in {channels}: {_messages(up.state, alert, 'FIRING', broken_at)}"
        _report(f"{alert} firing (fault at SIGHUP)", broken_at, *arrived)
        mail = arrived[0][local_stack.ONCALL]
        assert "[critical][production]" in mail["subject"], mail["subject"]
    finally:
        broken.unlink(missing_ok=True)
        restored_at = time.time()
        os.kill(pid, signal.SIGHUP)
        assert wait_for(lambda: not loaded(), 60, interval=0.5), "the broken rule file is still loaded"
    resolved = wait_for(lambda: _arrived(up.state, alert, "RESOLVED", restored_at, mail_to, channels), SIGNAL_SECONDS, interval=1)
    assert resolved, f"no resolved {alert} after the rule file was removed"
    _report(f"{alert} resolved (after the removal)", restored_at, *resolved)
