"""`pharos fault`: change the fault knobs of a running demo service (`pharos demo-app`).

    pharos fault production/orders --error-ratio 0.5 --latency-ms 200
    pharos fault orders --clear                # a name alone when one environment has it
    pharos fault http://127.0.0.1:8080 --unhealthy
    pharos fault production/orders             # show the current knobs

Names are looked up in the up.json of a running `pharos up` (--state-dir); a URL is used as is.
The knobs are those of demo/faults.py, checked here before anything is sent.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from demo.faults import KNOBS, FaultError, check

from . import up_state
from .up import DEFAULT_STATE_DIR

TIMEOUT_SECONDS = 10


class FaultCommandError(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="SERVICE", help="ENVIRONMENT/SERVICE of a running pharos up (or SERVICE when only one environment has it), or the service's URL")
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR, metavar="DIR", help=f"state directory of the pharos up to look names up in (default {DEFAULT_STATE_DIR})")
    knobs = parser.add_argument_group("knobs (any combination; none shows the current values)")
    for name, knob in KNOBS.items():
        flag = "--" + name.replace("_", "-")
        if knob.kind is bool:
            knobs.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=f"turn {name} on (--no-{flag[2:]}: off)")
        else:
            unit = f" {knob.unit}" if knob.unit else ""
            knobs.add_argument(flag, dest=name, type=_number(name), default=None, metavar="N", help=f"{knob.low:g} to {knob.high:g}{unit}")
    knobs.add_argument("--clear", action="store_true", help="reset every knob (no fault)")


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
