"""Delivery under faults on `pharos up --fast`: the mail relay down and Slack answering 500 while an
alert fires, then both back. What Alertmanager tried, what arrived, what was lost.

    .venv/bin/python bench/delivery_faults.py [--runs 3] [--out FILE]

The drill (`drill`, which tests/test_delivery_faults.py runs too), every wait bounded:
1. fault: the SMTP sink down (connections refused), the Slack sink answering 500, then error
   ratio 1 on production/orders (`pharos fault`, as a user would);
2. outage: until Alertmanager has failed PharosHighErrorRate on both integrations and
   Prometheus fires AlertmanagerNotificationsFailing for both, from Alertmanager's own counters;
3. Slack back first: PharosHighErrorRate reaches #production-pages, and the pipeline's own
   alert about mail, AlertmanagerNotificationsFailing{integration="email"}, reaches
   #alerting-pipeline while mail is still down;
4. mail back: PharosHighErrorRate reaches oncall@ by mail;
5. quiet: two more group intervals, in which a duplicate would show.

Slack comes back first on purpose: the local stack routes AlertmanagerNotificationsFailing to a
receiver with both mail and Slack, so whichever integration works carries the news about the
one that does not; while both are down, nothing can reach anyone, and the alert waits in
Alertmanager like any other.

Results go to bench/results/delivery_faults.json; docs/delivery-under-faults.md discusses them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from pharos_monitoring.alerts.catalogue import HIGH_ERROR_RATE, NOTIFICATIONS_FAILING  # noqa: E402 - the repository root is on the path from the line above
from pharos_monitoring.alerts.model import duration_seconds  # noqa: E402
from pharos_monitoring.local import local_stack, sinks  # noqa: E402

DEFAULT_OUT = HERE / "results" / "delivery_faults.json"
FAULTY = "production/orders"
PAGER_CHANNEL = "#production-pages"
PIPELINE_CHANNEL = "#alerting-pipeline"
START_SECONDS = 90
OUTAGE_SECONDS = 150  # the alert (about 15 s), then AlertmanagerNotificationsFailing (rate window + for)
RECOVERY_SECONDS = 60  # Alertmanager retries within a flush, and flushes every group_interval
QUIET_SECONDS = 2 * duration_seconds(local_stack.FAST_INTERVALS["group_interval"]) + 2
POLL_SECONDS = 0.25
INTEGRATIONS = ("email", "slack")
COUNTERS = {
    # Alertmanager 0.25: a notification is one flush of a group to one integration; each of its
    # attempts is a request, retried with backoff until the flush times out.
    "notifications": "alertmanager_notifications_total",
    "notifications_failed": "alertmanager_notifications_failed_total",
    "requests": "alertmanager_notification_requests_total",
    "requests_failed": "alertmanager_notification_requests_failed_total",
}


class DrillError(RuntimeError):
    pass


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL_SECONDS)
    raise DrillError(f"timed out after {seconds:g} s waiting for {what}")


# --- the stack ------------------------------------------------------------------------------------
class LocalStack:
    """`pharos up --fast` in `directory/state` for as long as the with block; its output in
    `directory/up.out`. `described` is its up.json; `exit_code` is set once it stopped."""

    def __init__(self, directory: Path):
        self.state = directory / "state"
        self.output = directory / "up.out"
        self.described: dict = {}
        self.exit_code: int | None = None

    def __enter__(self) -> "LocalStack":
        with open(self.output, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pharos_monitoring.cli", "up", "--fast", "--port-base", "0", "--state-dir", str(self.state)],
                stdout=output,
                stderr=subprocess.STDOUT,
                env={key: value for key, value in os.environ.items() if not key.startswith("PHAROS_")},
            )
        try:
            up_json = self.state / "up.json"
            self.described = wait_for(lambda: self.process.poll() is None and up_json.exists() and json.loads(up_json.read_text()), START_SECONDS, "pharos up to start")
            for prometheus in self.described["prometheus"].values():
                wait_for(lambda: _ready(prometheus), START_SECONDS, f"every target of {prometheus} up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.exit_code = self.process.wait(timeout=60)

    def fault(self, *arguments: str) -> str:
        """`pharos fault ARGUMENTS` for this stack; its output line."""
        result = subprocess.run([sys.executable, "-m", "pharos_monitoring.cli", "fault", *arguments, "--state-dir", str(self.state)], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise DrillError(f"pharos fault {' '.join(arguments)} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def _ready(prometheus: str) -> bool:
    targets = requests.get(prometheus + "/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    alertmanagers = requests.get(prometheus + "/api/v1/alertmanagers", timeout=10).json()["data"]["activeAlertmanagers"]
    return bool(targets) and all(target["health"] == "up" for target in targets) and bool(alertmanagers)


# --- what Alertmanager and Prometheus say -----------------------------------------------------------
def alertmanager_counters(alertmanager: str) -> dict[str, dict[str, float]]:
    """counter -> integration -> value, summed over any other label."""
    text = requests.get(alertmanager + "/metrics", timeout=10).text
    wanted = {name: key for key, name in COUNTERS.items()}
    counters: dict[str, dict[str, float]] = {key: {integration: 0.0 for integration in INTEGRATIONS} for key in COUNTERS}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = wanted.get(sample.name)
            integration = sample.labels.get("integration")
            if key and integration in INTEGRATIONS:
                counters[key][integration] += sample.value
    return counters


def firing(prometheus: str) -> list[dict]:
    """Labels of the alerts firing in this Prometheus."""
    alerts = requests.get(prometheus + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return [alert["labels"] for alert in alerts if alert["state"] == "firing"]


def pipeline_alert_integrations(labels: list[dict]) -> set[str]:
    return {alert.get("integration", "") for alert in labels if alert["alertname"] == NOTIFICATIONS_FAILING.name}


# --- what arrived ------------------------------------------------------------------------------------
def messages(state: Path) -> list[dict]:
    """Every message the sinks kept, oldest first: sink, where (address or channel), title, text, time."""
    kept = [{"sink": "mail", "where": ", ".join(m["to"]), "title": m["subject"], "text": "", "at": m["received_at"]} for m in sinks.read_mail(state)]
    kept += [{"sink": "slack", "where": m["channel"], "title": m["title"], "text": m["text"], "at": m["received_at"]} for m in sinks.read_slack(state)]
    return sorted(kept, key=lambda message: message["at"])


def about(message: dict, alert: str, status: str = "FIRING") -> bool:
    return alert in message["title"] and f"[{status}" in message["title"]


def pager_mail(message: dict) -> bool:
    return message["sink"] == "mail" and message["where"] == local_stack.ONCALL and about(message, HIGH_ERROR_RATE.name)


def pager_slack(message: dict) -> bool:
    return message["sink"] == "slack" and message["where"] == PAGER_CHANNEL and about(message, HIGH_ERROR_RATE.name)


def mail_failure_on_slack(message: dict) -> bool:
    """The pipeline's own alert about mail, in Slack (the label pairs are in the message text)."""
    return message["sink"] == "slack" and message["where"] == PIPELINE_CHANNEL and about(message, NOTIFICATIONS_FAILING.name) and "integration=email" in message["text"]


# --- the drill -----------------------------------------------------------------------------------------
class Timeline:
    """Seconds after the fault at which things were first seen."""

    def __init__(self, start: float):
        self.start = start
        self.events: dict[str, float] = {}

    def mark(self, event: str, at: float | None = None) -> None:
        if event not in self.events:
            self.events[event] = round((at if at is not None else time.time()) - self.start, 2)


def drill(stack: LocalStack) -> dict:
    """The scenario of the module docstring on a running stack; the record of what happened."""
    described, state = stack.described, stack.state
    alertmanager, prometheus = described["alertmanager"], described["prometheus"]["production"]
    before = alertmanager_counters(alertmanager)

    start = time.time()
    timeline = Timeline(start)
    stack.fault("--sink", "smtp", "--down")
    stack.fault("--sink", "slack", "--status", "500")
    stack.fault(FAULTY, "--error-ratio", "1")

    def outage_seen() -> bool:
        counters = alertmanager_counters(alertmanager)
        for integration in INTEGRATIONS:
            if counters["requests_failed"][integration] > before["requests_failed"][integration]:
                timeline.mark(f"first failed attempt, {integration}")
            if counters["notifications_failed"][integration] > before["notifications_failed"][integration]:
                timeline.mark(f"first failed notification, {integration}")
        alerts = firing(prometheus)
        if any(alert["alertname"] == HIGH_ERROR_RATE.name for alert in alerts):
            timeline.mark("PharosHighErrorRate firing")
        for integration in pipeline_alert_integrations(alerts):
            timeline.mark(f"AlertmanagerNotificationsFailing firing, {integration}")
        return all(f"AlertmanagerNotificationsFailing firing, {i}" in timeline.events and f"first failed attempt, {i}" in timeline.events for i in INTEGRATIONS)

    wait_for(outage_seen, OUTAGE_SECONDS, "failed notifications on both integrations and AlertmanagerNotificationsFailing for both")
    during_outage = [message for message in messages(state) if message["at"] >= start]

    slack_back = time.time()
    timeline.mark("Slack restored", slack_back)
    stack.fault("--sink", "slack", "--clear")

    def slack_delivered():
        arrived = [message for message in messages(state) if message["at"] >= slack_back]
        pager = next((message for message in arrived if pager_slack(message)), None)
        pipeline = next((message for message in arrived if mail_failure_on_slack(message)), None)
        return (pager, pipeline) if pager and pipeline else None

    pager, pipeline = wait_for(slack_delivered, RECOVERY_SECONDS, f"PharosHighErrorRate in {PAGER_CHANNEL} and the mail failure in {PIPELINE_CHANNEL}")
    timeline.mark("PharosHighErrorRate in Slack", pager["at"])
    timeline.mark("mail failure alert in Slack", pipeline["at"])

    smtp_back = time.time()
    timeline.mark("SMTP restored", smtp_back)
    stack.fault("--sink", "smtp", "--clear")
    mail = wait_for(lambda: next((m for m in messages(state) if m["at"] >= smtp_back and pager_mail(m)), None), RECOVERY_SECONDS, "the PharosHighErrorRate mail")
    timeline.mark("PharosHighErrorRate by mail", mail["at"])

    time.sleep(QUIET_SECONDS)
    timeline.mark("end")
    after = alertmanager_counters(alertmanager)
    sink_faults = requests.get(described["slack"] + "/-/faults", timeout=10).json()
    everything = messages(state)
    return {
        "timeline_seconds": timeline.events,
        "alertmanager_counters": {key: {i: after[key][i] - before[key][i] for i in INTEGRATIONS} for key in COUNTERS},
        "slack_answers_500": sink_faults["slack"]["refused"],
        "during_outage": [_public(message, start) for message in during_outage],
        "after_recovery": [_public(message, start) for message in everything if message["at"] >= slack_back],
        "pager": {
            "mail_before_smtp_restored": sum(1 for m in everything if pager_mail(m) and m["at"] < smtp_back),
            "mail_after_smtp_restored": sum(1 for m in everything if pager_mail(m) and m["at"] >= smtp_back),
            "slack_before_slack_restored": sum(1 for m in everything if pager_slack(m) and m["at"] < slack_back),
            "slack_after_slack_restored": sum(1 for m in everything if pager_slack(m) and m["at"] >= slack_back),
            "mail_failure_in_slack_before_smtp_restored": sum(1 for m in everything if mail_failure_on_slack(m) and m["at"] < smtp_back),
        },
        "quiet_seconds": QUIET_SECONDS,
    }


def _public(message: dict, start: float) -> dict:
    """A message as the record keeps it: no text (it holds links and label dumps), seconds after the fault."""
    return {"sink": message["sink"], "to": message["where"], "title": message["title"], "seconds": round(message["at"] - start, 2)}


# Derived figures, each the difference of two timeline events: (name, from, to).
SPANS = (
    ("fault -> PharosHighErrorRate firing", None, "PharosHighErrorRate firing"),
    ("alert firing -> first failed attempt, email", "PharosHighErrorRate firing", "first failed attempt, email"),
    ("alert firing -> first failed attempt, slack", "PharosHighErrorRate firing", "first failed attempt, slack"),
    ("first failed attempt -> AlertmanagerNotificationsFailing firing, email", "first failed attempt, email", "AlertmanagerNotificationsFailing firing, email"),
    ("first failed attempt -> AlertmanagerNotificationsFailing firing, slack", "first failed attempt, slack", "AlertmanagerNotificationsFailing firing, slack"),
    ("Slack restored -> page in #production-pages", "Slack restored", "PharosHighErrorRate in Slack"),
    ("Slack restored -> mail failure alert in #alerting-pipeline", "Slack restored", "mail failure alert in Slack"),
    ("SMTP restored -> page by mail", "SMTP restored", "PharosHighErrorRate by mail"),
)


def spans(record: dict) -> dict[str, float]:
    events = record["timeline_seconds"]
    return {name: round(events[end] - (events[begin] if begin else 0.0), 2) for name, begin, end in SPANS}


def one_run(number: int) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        stack = LocalStack(Path(scratch))
        try:
            with stack:
                record = drill(stack)
        except DrillError as error:
            raise DrillError(f"run {number}: {error}\n--- pharos up output ---\n{stack.log()}") from None
    record["spans_seconds"] = spans(record)
    print(f"run {number}:")
    for name, seconds in record["spans_seconds"].items():
        print(f"  {seconds:6.1f} s  {name}")
    print("  Alertmanager counters over the drill:", json.dumps(record["alertmanager_counters"], sort_keys=True))
    print("  pages:", json.dumps(record["pager"], sort_keys=True), flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="drills, each on a fresh pharos up --fast (default 3)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 10:
        parser.error("--runs: from 1 to 10")
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "intervals": dict(local_stack.FAST_INTERVALS)}
    try:
        results["runs"] = [one_run(number) for number in range(1, args.runs + 1)]
    except DrillError as error:
        print(error, file=sys.stderr)
        return 1
    runs = results["runs"]
    results["median_seconds"] = {name: statistics.median(run["spans_seconds"][name] for run in runs) for name, _, _ in SPANS}
    results["median_counters"] = {
        key: {integration: statistics.median(run["alertmanager_counters"][key][integration] for run in runs) for integration in INTEGRATIONS}
        for key in COUNTERS
    }
    results["lost_pages"] = sum(2 - run["pager"]["mail_after_smtp_restored"] - run["pager"]["slack_after_slack_restored"] for run in runs)
    print(f"medians over {len(runs)} runs:")
    for name, seconds in results["median_seconds"].items():
        print(f"  {seconds:6.1f} s  {name}")
    print("  counters:", json.dumps(results["median_counters"], sort_keys=True))
    print(f"pages lost: {results['lost_pages']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
