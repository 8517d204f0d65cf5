"""Faults of the mail and Slack sinks: make delivery fail on purpose, the way real relays fail.

A running `pharos sinks` (and so every `pharos up`) takes them on its Slack port, beside the
webhooks, under `/-/faults` (the `/-/` of Prometheus' own admin paths):

    GET    /-/faults                                 both sinks: fault, time left, deliveries refused
    POST   /-/faults/smtp   {"down": true, "for_seconds": 60}
    POST   /-/faults/smtp   {"status": 451}
    POST   /-/faults/slack  {"status": 500, "for_seconds": 30}
    DELETE /-/faults/slack                           back to normal at once

| sink  | fault             | what a sender sees                                                |
|-------|-------------------|-------------------------------------------------------------------|
| smtp  | `down`            | the port refuses connections: a relay that is down or unreachable |
| smtp  | `status` 400-599  | connections accepted, every MAIL FROM answered with that reply code (421 closing, 451 local error, 554 refused) |
| slack | `status` 400-599  | every webhook POST answered with that HTTP status; nothing is kept |

A POST replaces that sink's fault; `for_seconds` (up to a day) clears it by itself after that
long, without it the fault stays until DELETE. `pharos fault --sink smtp|slack` is the
command-line side (pharos/local/fault.py).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

SMTP = "smtp"
SLACK = "slack"
SINK_NAMES = (SMTP, SLACK)
FAULTS_PATH = "/-/faults"
MAX_FOR_SECONDS = 24 * 3600
KNOBS = {SMTP: ("down", "status", "for_seconds"), SLACK: ("status", "for_seconds")}

# What Slack answers with these statuses (its documented error words); others get a plain word.
SLACK_ERROR_WORDS = {403: "action_prohibited", 404: "no_service", 410: "channel_is_archived", 429: "rate_limited", 500: "rollup_error"}


class SinkFaultError(ValueError):
    """A fault request that cannot be applied; the message names the key and what is allowed."""


@dataclass(frozen=True)
class SinkFault:
    down: bool = False  # smtp only: no listener at all
    status: int = 0  # 0: deliveries are accepted
    until: float | None = None  # time.monotonic() at which it clears by itself

    @property
    def active(self) -> bool:
        return self.down or bool(self.status)


def check(sink: str, document: object, names: dict[str, str] | None = None) -> SinkFault:
    """The fault `document` (a POST body) asks of `sink`, or SinkFaultError saying what is wrong;
    `names` tells how to call the keys in messages (the command line says --status, not status)."""
    name = (names or {}).get
    if sink not in SINK_NAMES:
        raise SinkFaultError(f"no sink {sink!r}; the sinks are {' and '.join(SINK_NAMES)}")
    allowed = ", ".join(name(key, key) for key in KNOBS[sink])
    if not isinstance(document, dict):
        raise SinkFaultError(f"the fault of {sink} must be a JSON object with any of {allowed}")
    unknown = sorted(set(document) - set(KNOBS[sink]))
    if unknown:
        raise SinkFaultError(f"{name(unknown[0], unknown[0])} is no fault of the {sink} sink; its faults: {allowed}")
    down = document.get("down", False)
    if not isinstance(down, bool):
        raise SinkFaultError(f"{name('down', 'down')}: expected true or false, got {down!r}")
    status = document.get("status", 0)
    if isinstance(status, bool) or not isinstance(status, int) or not (status == 0 or 400 <= status <= 599):
        what = "an SMTP reply code" if sink == SMTP else "an HTTP status"
        raise SinkFaultError(f"{name('status', 'status')}: expected {what} from 400 to 599 (or 0 for none), got {status!r}")
    if down and status:
        raise SinkFaultError(f"{name('down', 'down')} and {name('status', 'status')} exclude each other: a sink that is down answers nothing")
    if not (down or status):
        faults = " or ".join(name(key, key) for key in KNOBS[sink] if key != "for_seconds")
        raise SinkFaultError(f"no fault given for {sink}; give {faults}")
    seconds = document.get("for_seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= MAX_FOR_SECONDS):
        raise SinkFaultError(f"{name('for_seconds', 'for_seconds')}: expected a number of seconds above 0 and up to {MAX_FOR_SECONDS}, got {seconds!r}")
    return SinkFault(down=down, status=status, until=None if seconds is None else time.monotonic() + seconds)


class SinkFaults:
    """The faults in force and how many deliveries they refused; safe to use from any thread.

    `on_change(sink)` runs after every change (outside the lock): the SMTP sink opens or closes
    its port there."""

    def __init__(self, on_change: Callable[[str], None] = lambda sink: None):
        self.on_change = on_change
        self._lock = threading.Lock()
        self._faults = {sink: SinkFault() for sink in SINK_NAMES}
        self._refused = {sink: 0 for sink in SINK_NAMES}
        self._timers: dict[str, threading.Timer] = {}

    def set(self, sink: str, document: object) -> None:
        fault = check(sink, document)
        self._replace(sink, fault)

    def clear(self, sink: str) -> None:
        if sink not in SINK_NAMES:
            raise SinkFaultError(f"no sink {sink!r}; the sinks are {' and '.join(SINK_NAMES)}")
        self._replace(sink, SinkFault())

    def fault(self, sink: str) -> SinkFault:
        with self._lock:
            return self._faults[sink]

    def refuse(self, sink: str) -> int:
        """The status to refuse a delivery with (counted as refused), or 0 to accept it."""
        with self._lock:
            status = self._faults[sink].status
            if status:
                self._refused[sink] += 1
            return status

    def describe(self) -> dict:
        now = time.monotonic()
        with self._lock:
            return {
                sink: {
                    "down": fault.down,
                    "status": fault.status,
                    "clears_in_seconds": None if fault.until is None else round(max(0.0, fault.until - now), 1),
                    "refused": self._refused[sink],
                }
                for sink, fault in self._faults.items()
            }

    def close(self) -> None:
        with self._lock:
            timers, self._timers = list(self._timers.values()), {}
        for timer in timers:
            timer.cancel()

    def _replace(self, sink: str, fault: SinkFault, expected: SinkFault | None = None) -> None:
        """Put `fault` in force for `sink`; with `expected`, only if that one is still in force."""
        with self._lock:
            if expected is not None and self._faults[sink] is not expected:
                return  # replaced meanwhile: the newer fault decides
            self._faults[sink] = fault
            previous = self._timers.pop(sink, None)
            if fault.until is not None:
                timer = threading.Timer(max(0.0, fault.until - time.monotonic()), self._expire, (sink, fault))
                timer.daemon = True
                self._timers[sink] = timer
                timer.start()
        if previous is not None:
            previous.cancel()
        self.on_change(sink)

    def _expire(self, sink: str, fault: SinkFault) -> None:
        try:
            self._replace(sink, SinkFault(), expected=fault)
        except OSError as error:  # reopening the SMTP port failed; nobody waits for this thread's answer
            print(f"pharos sinks: the {sink} fault ended but the sink cannot answer again: {error}", flush=True)
