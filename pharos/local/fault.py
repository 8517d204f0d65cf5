"""`pharos fault`: change the fault knobs of a running demo service (`pharos demo-app`), or make
the mail and Slack sinks fail (`pharos sinks`, pharos/local/sink_faults.py).

    pharos fault production/orders --error-ratio 0.5 --latency-ms 200
    pharos fault orders --clear                # a name alone when one environment has it
    pharos fault http://127.0.0.1:8080 --unhealthy
    pharos fault production/orders             # show the current knobs

    pharos fault --sink smtp --down            # the SMTP port refuses connections
    pharos fault --sink smtp --status 451      # every MAIL FROM answered 451
    pharos fault --sink slack --status 500 --for 60   # Slack answers 500 for a minute
    pharos fault --sink slack --clear
    pharos fault --sink smtp                   # show the fault and how many deliveries it refused

Names and the sinks are looked up in the up.json of a running `pharos up` (--state-dir); a URL is
used as is (for --sink, the URL of the Slack sink, which takes the faults of both).
The knobs are those of demo/faults.py, checked here before anything is sent.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from pharos_monitoring.demo.faults import KNOBS, FaultError, check

from . import up_state
from .sink_faults import FAULTS_PATH, MAX_FOR_SECONDS, SINK_NAMES, SMTP, SinkFaultError, check as check_sink_fault
from .up import DEFAULT_STATE_DIR

TIMEOUT_SECONDS = 10
SINK_FLAGS = {"down": "--down", "status": "--status", "for_seconds": "--for"}


class FaultCommandError(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="SERVICE", nargs="?",
        help="ENVIRONMENT/SERVICE of a running pharos up (or SERVICE when only one environment has it), or the service's URL; "
        "with --sink: omitted, or the URL of the Slack sink",
    )
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR, metavar="DIR", help=f"state directory of the pharos up to look names up in (default {DEFAULT_STATE_DIR})")
    knobs = parser.add_argument_group("knobs (any combination; none shows the current values)")
    for name, knob in KNOBS.items():
        flag = "--" + name.replace("_", "-")
        if knob.kind is bool:
            knobs.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=f"turn {name} on (--no-{flag[2:]}: off)")
        else:
            unit = f" {knob.unit}" if knob.unit else ""
            knobs.add_argument(flag, dest=name, type=_number(name), default=None, metavar="N", help=f"{knob.low:g} to {knob.high:g}{unit}")
    knobs.add_argument("--clear", action="store_true", help="reset every knob (no fault); with --sink, that sink's fault")
    sink = parser.add_argument_group("the mail and Slack sinks (with --sink; none of the knobs above shows the sink's fault)")
    sink.add_argument("--sink", choices=SINK_NAMES, help="act on this sink of pharos up instead of a service")
    sink.add_argument("--down", action="store_true", help="smtp: close the port, connections are refused")
    sink.add_argument("--status", type=int, metavar="CODE", help="smtp: answer every MAIL FROM with this reply code; slack: answer every webhook with this HTTP status (400 to 599)")
    sink.add_argument("--for", dest="for_seconds", type=float, metavar="SECONDS", help=f"clear the sink's fault by itself after this long (up to {MAX_FOR_SECONDS}); default: until --clear")


def _number(name: str):
    def parse(text: str) -> float:
        try:
            return check(name, float(text))
        except ValueError as error:  # FaultError is a ValueError
            message = str(error) if isinstance(error, FaultError) else f"{text!r} is not a number"
            raise argparse.ArgumentTypeError(message) from None

    return parse


def resolve(target: str, state_dir: Path) -> tuple[str, str]:
    """(display name, base URL) of the service `target` names."""
    if target.startswith(("http://", "https://")):
        return target, target.rstrip("/")
    services = up_state.read(state_dir)["services"]
    matches = [service for service in services if target in (service["name"], service["service"])]
    names = ", ".join(service["name"] for service in services)
    if not matches:
        raise FaultCommandError(f"no service {target!r} in the pharos up of {state_dir}; its services: {names}")
    if len(matches) > 1:
        raise FaultCommandError(f"{target!r} runs in several environments; name one of {', '.join(m['name'] for m in matches)}")
    return matches[0]["name"], matches[0]["url"]


def _call(method: str, url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace").strip()
        raise FaultCommandError(f"{url} refused the change ({error.code}): {detail}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise FaultCommandError(f"cannot reach {url}: {reason}; is the service running?") from None


def run(args: argparse.Namespace) -> int:
    changes = {name: getattr(args, name) for name in KNOBS if getattr(args, name) is not None}
    sink_flags = [flag for flag, given in (("--down", args.down), ("--status", args.status is not None), ("--for", args.for_seconds is not None)) if given]
    if args.sink:
        if changes:
            flag = "--" + next(iter(changes)).replace("_", "-")
            print(f"pharos fault: {flag} is a knob of demo services, not of the {args.sink} sink; the sinks take --down, --status and --for", file=sys.stderr)
            return 1
        return _run_sink(args)
    if sink_flags:
        print(f"pharos fault: {sink_flags[0]} is a fault of the sinks; add --sink {' or --sink '.join(SINK_NAMES)}", file=sys.stderr)
        return 1
    if not args.target:
        print("pharos fault: name a service (ENVIRONMENT/SERVICE, SERVICE or its URL), or a sink with --sink smtp|slack", file=sys.stderr)
        return 1
    if args.clear and changes:
        print("pharos fault: --clear resets every knob; give it alone", file=sys.stderr)
        return 1
    try:
        name, url = resolve(args.target, Path(args.state_dir))
        if args.clear:
            document = _call("DELETE", url + "/faults")
        elif changes:
            document = _call("POST", url + "/faults", changes)
        else:
            document = _call("GET", url + "/faults")
    except (FaultCommandError, up_state.StateError) as error:
        print(f"pharos fault: {error}", file=sys.stderr)
        return 1
    knobs = " ".join(f"{knob}={_show(document.get(knob))}" for knob in KNOBS)
    print(f"pharos fault: {name}: {knobs}", flush=True)
    return 0


def _show(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _run_sink(args: argparse.Namespace) -> int:
    fault = {key: value for key, value in (("down", args.down or None), ("status", args.status), ("for_seconds", args.for_seconds)) if value is not None}
    try:
        if args.clear and fault:
            raise FaultCommandError("--clear ends the sink's fault; give it without --down, --status or --for")
        if fault:
            check_sink_fault(args.sink, fault, SINK_FLAGS)  # the sinks check again; this names the flag before anything is sent
        base = _sinks_url(args.target, Path(args.state_dir))
        url = f"{base}{FAULTS_PATH}/{args.sink}"
        if args.clear:
            document = _call("DELETE", url)
        elif fault:
            document = _call("POST", url, fault)
        else:
            document = _call("GET", url)
    except SinkFaultError as error:
        print(f"pharos fault: --sink {args.sink}: {error}", file=sys.stderr)
        return 1
    except (FaultCommandError, up_state.StateError) as error:
        print(f"pharos fault: {error}", file=sys.stderr)
        return 1
    print(f"pharos fault: {args.sink} sink: {describe_sink_fault(args.sink, document)}", flush=True)
    return 0


def _sinks_url(target: str | None, state_dir: Path) -> str:
    if target is None:
        return up_state.read(state_dir)["slack"].rstrip("/")
    if target.startswith(("http://", "https://")):
        return target.rstrip("/")
    raise FaultCommandError(f"with --sink, give no service name ({target!r}); give nothing, or the URL of the Slack sink of a pharos sinks")


def describe_sink_fault(sink: str, document: dict) -> str:
    if document.get("down"):
        state = "down (connections refused)"
    elif document.get("status"):
        state = f"answers {document['status']} to every {'MAIL FROM' if sink == SMTP else 'webhook'}"
    else:
        state = "delivering"
    clears = document.get("clears_in_seconds")
    if clears is not None:
        state += f", clears in {clears:g}s"
    return f"{state}; {document.get('refused', 0)} deliveries answered with a fault status so far"
