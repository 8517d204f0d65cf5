"""Time to signal: seconds from a fault to the first mail and the first Slack message.

    .venv/bin/python bench/time_to_signal.py [--runs 3] [--no-live] [--out FILE]

- computed (pharos/local/time_to_signal.py): the shipped production intervals of examples/stack.yml and
  the `pharos up --fast` intervals, stage by stage, typical and worst case, for a fault that fails
  every request (error ratio 1) and for one that fails half of them;
- measured: `pharos up --fast` on this machine; each run sets error_ratio 1 on production/orders
  with `pharos fault`, notes the time, waits for the PharosHighErrorRate mail and Slack message,
  clears the fault and waits for both resolved notifications. Figures are medians over the runs.
  (The production intervals are not measured: one run would take over six minutes by design.)

Results go to bench/results/time_to_signal.json (or --out); docs/time-to-signal.md discusses them.
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
from dataclasses import asdict
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from pharos_monitoring.alerts.catalogue import HIGH_ERROR_RATE  # noqa: E402 - the repository root is on the path from the line above
from pharos_monitoring.local import local_stack, sinks  # noqa: E402
from pharos_monitoring.config.stack_config import load  # noqa: E402
from pharos_monitoring.local.time_to_signal import error_rate_signal  # noqa: E402
from pharos_monitoring.config.yaml_out import dump  # noqa: E402

DEFAULT_OUT = HERE / "results" / "time_to_signal.json"
AIM_SECONDS = 45.0  # fault to both messages, with the --fast intervals
FAULTY = "production/orders"
START_SECONDS = 90
SIGNAL_SECONDS = 120


def computed() -> dict:
    """Typical and worst seconds, stage by stage, for the shipped and the fast intervals."""
    with tempfile.TemporaryDirectory() as scratch:
        ports = local_stack.Ports.from_base(local_stack.DEFAULT_PORT_BASE)
        webhooks = local_stack.write_webhook_secrets(Path(scratch) / "secrets", ports.slack)
        fast_file = Path(scratch) / "stack.yml"
        fast_file.write_text(dump(local_stack.stack_data(ports, webhooks, fast=True)))
        stacks = {"production intervals (examples/stack.yml)": load(str(ROOT / "examples" / "stack.yml")), "pharos up --fast": load(str(fast_file))}
        figures = {}
        for name, stack in stacks.items():
            for fault_ratio in (1.0, 0.5):
                estimate = error_rate_signal(stack, "production", fault_ratio)
                figures[f"{name}, error ratio {fault_ratio:g}"] = {
                    "typical_seconds": estimate.typical,
                    "worst_seconds": estimate.worst,
                    "resolved_typical_seconds": estimate.resolved_typical,
                    "resolved_worst_seconds": estimate.resolved_worst,
                    "firing_stages": [asdict(stage) for stage in estimate.firing],
                    "resolved_stages": [asdict(stage) for stage in estimate.resolved],
                }
    return figures


# --- live ----------------------------------------------------------------------------------------
def _wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {seconds:g} s waiting for {what}")


def _targets_up(prometheus: str) -> bool:
    targets = requests.get(prometheus + "/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    alertmanagers = requests.get(prometheus + "/api/v1/alertmanagers", timeout=10).json()["data"]["activeAlertmanagers"]
    return bool(targets) and all(t["health"] == "up" for t in targets) and bool(alertmanagers)


def _first_after(state: Path, since: float, status: str) -> tuple[float, float] | None:
    """Arrival times of the first mail and Slack message about the alert with `status` after `since`."""
    def first(entries: list[dict], field: str) -> float | None:
        times = [e["received_at"] for e in entries if e["received_at"] >= since and HIGH_ERROR_RATE.name in e[field] and f"[{status}" in e[field]]
        return min(times) if times else None

    mail, slack = first(sinks.read_mail(state), "subject"), first(sinks.read_slack(state), "title")
    return (mail, slack) if mail is not None and slack is not None else None


def _fault(state: Path, *arguments: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pharos_monitoring.cli", "fault", FAULTY, "--state-dir", str(state), *arguments], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"pharos fault failed: {result.stderr.strip()}")


def measured(runs: int) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        state = Path(scratch) / "state"
        log = Path(scratch) / "up.out"
        with open(log, "wb") as output:
            up = subprocess.Popen(
                [sys.executable, "-m", "pharos_monitoring.cli", "up", "--fast", "--port-base", "0", "--state-dir", str(state)],
                stdout=output,
                stderr=subprocess.STDOUT,
                env={key: value for key, value in os.environ.items() if not key.startswith("PHAROS_")},
            )
        try:
            described = _wait_for(lambda: (state / "up.json").exists() and json.loads((state / "up.json").read_text()), START_SECONDS, "pharos up")
            for prometheus in described["prometheus"].values():
                _wait_for(lambda: _targets_up(prometheus), START_SECONDS, f"every target of {prometheus} up")
            results = []
            for run in range(1, runs + 1):
                injected = time.time()
                _fault(state, "--error-ratio", "1")
                mail, slack = _wait_for(lambda: _first_after(state, injected, "FIRING"), SIGNAL_SECONDS, "the firing notifications")
                cleared = time.time()
                _fault(state, "--clear")
                mail_resolved, slack_resolved = _wait_for(lambda: _first_after(state, cleared, "RESOLVED"), SIGNAL_SECONDS, "the resolved notifications")
                row = {"run": run, "mail_seconds": mail - injected, "slack_seconds": slack - injected, "resolved_mail_seconds": mail_resolved - cleared, "resolved_slack_seconds": slack_resolved - cleared}
                results.append(row)
                print(f"  run {run}: mail {row['mail_seconds']:.1f} s, Slack {row['slack_seconds']:.1f} s; resolved after {row['resolved_mail_seconds']:.1f} / {row['resolved_slack_seconds']:.1f} s", flush=True)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n--- pharos up output ---\n{log.read_text()}") from None
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=60)
    medians = {key: statistics.median(row[key] for row in results) for key in results[0] if key != "run"}
    return {"runs": results, "median": medians, "both_within_aim": max(medians["mail_seconds"], medians["slack_seconds"]) < AIM_SECONDS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fault/clear cycles on the live stack (default 3)")
    parser.add_argument("--no-live", action="store_true", help="only the computed figures")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 20:
        parser.error("--runs: from 1 to 20")

    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "aim_seconds": AIM_SECONDS}
    results["computed"] = computed()
    print("computed, seconds from fault to notification (typical / worst; resolved typical / worst):")
    for name, figure in results["computed"].items():
        print(f"  {name}: {figure['typical_seconds']:g} / {figure['worst_seconds']:g}; resolved {figure['resolved_typical_seconds']:g} / {figure['resolved_worst_seconds']:g}")
    if not args.no_live:
        print(f"measured on pharos up --fast, {args.runs} runs:", flush=True)
        results["measured_fast"] = measured(args.runs)
        median = results["measured_fast"]["median"]
        print(
            f"  median: mail {median['mail_seconds']:.1f} s, Slack {median['slack_seconds']:.1f} s "
            f"(aim: both under {AIM_SECONDS:g} s: {'met' if results['measured_fast']['both_within_aim'] else 'MISSED'}); "
            f"resolved after {median['resolved_mail_seconds']:.1f} / {median['resolved_slack_seconds']:.1f} s"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
