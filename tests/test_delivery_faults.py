"""Delivery under faults on the live `pharos up --fast` stack (bench/delivery_faults.py's drill):
the SMTP sink down and the Slack sink answering 500 while PharosHighErrorRate fires, then Slack
back, then mail back.

Nothing may arrive while a sink refuses; after each recovery the page must arrive exactly once
per integration (Alertmanager's notification log, not luck, keeps it from repeating); the
pipeline's own failure must be alerted from Alertmanager's counters and reach people through
the integration that works; and the failures logged on the way must not carry a secret.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from secret_scan import SecretScanner, pharos_up_secrets, scan_pharos_up

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import delivery_faults  # noqa: E402 - found through the line above
from delivery_faults import INTEGRATIONS, LocalStack, drill  # noqa: E402

pytestmark = pytest.mark.slow


def test_notifications_survive_a_mail_outage_and_slack_errors_and_arrive_once(tmp_path: Path):
    stack = LocalStack(tmp_path)
    with stack:
        try:
            record = drill(stack)
        except delivery_faults.DrillError as error:
            pytest.fail(f"{error}\n--- pharos up output ---\n{stack.log()}")
        scanner = SecretScanner(pharos_up_secrets(stack.state))
        scan_pharos_up(scanner, stack.state, stack.described, stack.output)
    assert stack.exit_code == 0, stack.log()

    assert record["during_outage"] == [], "a sink that refuses kept a message"
    pager, arrived = record["pager"], record["after_recovery"]
    assert (pager["mail_before_smtp_restored"], pager["mail_after_smtp_restored"]) == (0, 1), f"one page by mail, after mail is back: {arrived}"
    assert (pager["slack_before_slack_restored"], pager["slack_after_slack_restored"]) == (0, 1), f"one page in Slack, after Slack is back: {arrived}"
    assert pager["mail_failure_in_slack_before_smtp_restored"] >= 1, f"the mail outage was not told in Slack: {arrived}"

    counters = record["alertmanager_counters"]
    for integration in INTEGRATIONS:
        assert counters["notifications_failed"][integration] >= 1, (integration, counters)
        assert counters["requests_failed"][integration] < counters["requests"][integration], f"{integration}: no attempt succeeded after recovery"
    # Every failed Slack attempt Alertmanager counted is one 500 the sink answered: no other cause.
    assert counters["requests_failed"]["slack"] == record["slack_answers_500"], (counters, record["slack_answers_500"])

    assert scanner.places > 50, "the scan saw almost nothing"
    assert not scanner.leaks, scanner.report()
