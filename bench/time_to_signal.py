"""Time to signal: seconds from a fault to the first mail and the first Slack message.

    .venv/bin/python bench/time_to_signal.py [--runs 3] [--no-live] [--out FILE] [--alert burn-rate]

- computed (pharos/local/time_to_signal.py): the shipped production intervals of examples/stack.yml and
  the `pharos up --fast` intervals, stage by stage, typical and worst case, for a fault that fails
  every request (error ratio 1) and for one that fails half of them;
- measured: `pharos up --fast` on this machine; each run sets error_ratio 1 on production/orders
  with `pharos fault`, notes the time, waits for the PharosHighErrorRate mail and Slack message,
  clears the fault and waits for both resolved notifications. Figures are medians over the runs.
  (The production intervals are not measured: one run would take over six minutes by design.)
- `--alert burn-rate`: the same for PharosErrorBudgetBurn, the error-budget page of the service
  with an availability objective in pharos up (local_stack.OBJECTIVES, beta/orders, 99.9 %).
  Its windows are fixed spans that --fast does not shorten, and on a stack that has run for
  minutes rather than hours they hold little history: see docs/time-to-signal.md before reading
  the figures. Results go to bench/results/time_to_signal_burn_rate.json.

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
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from pharos_monitoring.alerts.catalogue import HIGH_ERROR_RATE  # noqa: E402 - the repository root is on the path from the line above
from pharos_monitoring.alerts.slo import AVAILABILITY, SLO_BURN_PAGE  # noqa: E402
from pharos_monitoring.local import local_stack, sinks  # noqa: E402
from pharos_monitoring.config.stack_config import load  # noqa: E402
from pharos_monitoring.local.time_to_signal import burn_rate_signal, error_rate_signal  # noqa: E402
from pharos_monitoring.config.yaml_out import dump  # noqa: E402

DEFAULT_OUT = HERE / "results" / "time_to_signal.json"
AIM_SECONDS = 45.0  # fault to both messages, with the --fast intervals
FAULTY = "production/orders"
START_SECONDS = 90
SIGNAL_SECONDS = 120


@dataclass(frozen=True)
class Measured:
    """What one kind of measurement faults, and which alert's messages it waits for."""

    alert: str
    faulty: str  # ENVIRONMENT/SERVICE of pharos up
    signal_seconds: float  # bound on fault -> firing messages
    resolved_seconds: float  # bound on clear -> resolved messages
    out: Path


ERROR_RATE = Measured(HIGH_ERROR_RATE.name, FAULTY, SIGNAL_SECONDS, SIGNAL_SECONDS, DEFAULT_OUT)
# The page resolves once the errors are a small enough share of every window of one burn rate;
# on a stack minutes old the 6h and 30m windows hold only those minutes: up to ~2.4 times the
# stack's age at the fault (docs/time-to-signal.md), hence the long bound.
BURN_RATE = Measured(
    SLO_BURN_PAGE.name, next(iter(local_stack.OBJECTIVES)), 300, 3600, HERE / "results" / "time_to_signal_burn_rate.json"
)
KINDS = {"error-rate": ERROR_RATE, "burn-rate": BURN_RATE}


def computed(kind: Measured = ERROR_RATE) -> dict:
    """Typical and worst seconds, stage by stage, for the shipped and the fast intervals."""
    with tempfile.TemporaryDirectory() as scratch:
        ports = local_stack.Ports.from_base(local_stack.DEFAULT_PORT_BASE)
        webhooks = local_stack.write_webhook_secrets(Path(scratch) / "secrets", ports.slack)
        fast_file = Path(scratch) / "stack.yml"
        fast_file.write_text(dump(local_stack.stack_data(ports, webhooks, fast=True)))
        stacks = {"production intervals (examples/stack.yml)": load(str(ROOT / "examples" / "stack.yml")), "pharos up --fast": load(str(fast_file))}
        figures = {}
        for name, stack in stacks.items():
            if kind is BURN_RATE:
                # pharos up's objective, with either stack's intervals (examples/stack.yml has the same 99.9 %).
                objective = local_stack.OBJECTIVES[kind.faulty][AVAILABILITY] / 100
                figures[f"{name}, objective {objective:.1%}, after steady traffic"] = _figure(burn_rate_signal(stack, objective))
                continue
            for fault_ratio in (1.0, 0.5):
                figures[f"{name}, error ratio {fault_ratio:g}"] = _figure(error_rate_signal(stack, "production", fault_ratio))
    return figures


def _figure(estimate) -> dict:
    return {
        "typical_seconds": estimate.typical,
        "worst_seconds": estimate.worst,
        "resolved_typical_seconds": estimate.resolved_typical,
        "resolved_worst_seconds": estimate.resolved_worst,
        "firing_stages": [asdict(stage) for stage in estimate.firing],
        "resolved_stages": [asdict(stage) for stage in estimate.resolved],
    }


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


def _first_after(state: Path, since: float, status: str, alert: str = HIGH_ERROR_RATE.name) -> tuple[float, float] | None:
    """Arrival times of the first mail and Slack message about `alert` with `status` after `since`."""
    def first(entries: list[dict], field: str) -> float | None:
        times = [e["received_at"] for e in entries if e["received_at"] >= since and alert in e[field] and f"[{status}" in e[field]]
        return min(times) if times else None

    mail, slack = first(sinks.read_mail(state), "subject"), first(sinks.read_slack(state), "title")
    return (mail, slack) if mail is not None and slack is not None else None


def _fault(state: Path, *arguments: str, faulty: str = FAULTY) -> None:
    result = subprocess.run([sys.executable, "-m", "pharos_monitoring.cli", "fault", faulty, "--state-dir", str(state), *arguments], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"pharos fault failed: {result.stderr.strip()}")


def measured(runs: int, kind: Measured = ERROR_RATE, warmup: float = 0) -> dict:
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
            ready = time.time()  # every target up: the stack's history starts about here
            time.sleep(warmup)  # history in the windows before the first fault
            results = []
            for run in range(1, runs + 1):
                injected = time.time()
                _fault(state, "--error-ratio", "1", faulty=kind.faulty)
                mail, slack = _wait_for(lambda: _first_after(state, injected, "FIRING", kind.alert), kind.signal_seconds, "the firing notifications")
                cleared = time.time()
                _fault(state, "--clear", faulty=kind.faulty)
                mail_resolved, slack_resolved = _wait_for(lambda: _first_after(state, cleared, "RESOLVED", kind.alert), kind.resolved_seconds, "the resolved notifications")
                row = {"run": run, "mail_seconds": mail - injected, "slack_seconds": slack - injected, "resolved_mail_seconds": mail_resolved - cleared, "resolved_slack_seconds": slack_resolved - cleared}
                row |= {"stack_age_at_fault_seconds": injected - ready, "fault_seconds": cleared - injected}
                results.append(row)
                print(
                    f"  run {run} ({kind.alert}, {kind.faulty}, stack {row['stack_age_at_fault_seconds']:.0f} s old): mail {row['mail_seconds']:.1f} s, "
                    f"Slack {row['slack_seconds']:.1f} s; resolved after {row['resolved_mail_seconds']:.1f} / {row['resolved_slack_seconds']:.1f} s",
                    flush=True,
                )
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n--- pharos up output ---\n{log.read_text()}") from None
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=60)
    medians = {key: statistics.median(row[key] for row in results) for key in results[0] if key != "run"}
    figures = {"runs": results, "median": medians}
    if kind is ERROR_RATE:  # the aim is the error-rate page's; the burn-rate page's pace is the objective's
        figures["both_within_aim"] = max(medians["mail_seconds"], medians["slack_seconds"]) < AIM_SECONDS
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fault/clear cycles on the live stack (default 3)")
    parser.add_argument("--no-live", action="store_true", help="only the computed figures")
    parser.add_argument("--out", type=Path, help=f"default {DEFAULT_OUT.relative_to(ROOT)}; with --alert burn-rate {BURN_RATE.out.relative_to(ROOT)}")
    parser.add_argument("--warmup", type=float, default=0, metavar="SECONDS", help="let the live stack run this long before the first fault (up to 3600)")
    parser.add_argument("--alert", choices=sorted(KINDS), default="error-rate", help="PharosHighErrorRate of production/orders (default), or the error-budget page of pharos up's objective")
    args = parser.parse_args(argv)
    kind = KINDS[args.alert]
    args.out = args.out or kind.out
    if not 1 <= args.runs <= 20:
        parser.error("--runs: from 1 to 20")
    if not 0 <= args.warmup <= 3600:
        parser.error("--warmup: from 0 to 3600 seconds")

    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "aim_seconds": AIM_SECONDS}
    results["alert"] = kind.alert
    results["computed"] = computed(kind)
    print("computed, seconds from fault to notification (typical / worst; resolved typical / worst):")
    for name, figure in results["computed"].items():
        print(f"  {name}: {figure['typical_seconds']:g} / {figure['worst_seconds']:g}; resolved {figure['resolved_typical_seconds']:g} / {figure['resolved_worst_seconds']:g}")
    if not args.no_live:
        print(f"measured on pharos up --fast, {args.runs} runs{f', after {args.warmup:g} s of warm-up' if args.warmup else ''}:", flush=True)
        results["measured_fast"] = measured(args.runs, kind, args.warmup)
        median = results["measured_fast"]["median"]
        aim = results["measured_fast"].get("both_within_aim")
        verdict = "" if aim is None else f" (aim: both under {AIM_SECONDS:g} s: {'met' if aim else 'MISSED'})"
        print(
            f"  median: mail {median['mail_seconds']:.1f} s, Slack {median['slack_seconds']:.1f} s{verdict}; "
            f"resolved after {median['resolved_mail_seconds']:.1f} / {median['resolved_slack_seconds']:.1f} s"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
