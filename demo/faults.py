"""Fault knobs: what the demo can be told to do wrong, validated and bounded.

Set at start by flags (`--error-ratio` ...) and at run time by `POST /faults` with a JSON object
holding any of the knobs; `GET /faults` answers the current values, `DELETE /faults` resets them.

| knob | type, range | effect |
|---|---|---|
| error_ratio | number 0..1 | that fraction of application requests (/api/...) is answered 500 |
| latency_ms | number 0..30000 | added to every application request before it is handled |
| allocation_pressure | number 0..100 (MB/s) | a background thread churns that much garbage -> more GC |
| stats_hang | boolean | GET /stats holds the connection without answering (bounded, see app.py) |
| unhealthy | boolean | /health answers 503, the stats report healthy false and a failing check |
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Knob:
    name: str
    kind: type  # float or bool
    low: float = 0.0
    high: float = 0.0
    unit: str = ""


KNOBS = {
    knob.name: knob
    for knob in (
        Knob("error_ratio", float, 0.0, 1.0),
        Knob("latency_ms", float, 0.0, 30000.0, "ms"),
        Knob("allocation_pressure", float, 0.0, 100.0, "MB/s"),
        Knob("stats_hang", bool),
        Knob("unhealthy", bool),
    )
}


class FaultError(ValueError):
    """A knob value that cannot be applied; the message names the knob and what is allowed."""


@dataclass(frozen=True)
class FaultSettings:
    error_ratio: float = 0.0
    latency_ms: float = 0.0
    allocation_pressure: float = 0.0
    stats_hang: bool = False
    unhealthy: bool = False


def check(name: str, value) -> float | bool:
    """`value` as the knob `name` wants it, or FaultError saying what is allowed."""
    knob = KNOBS.get(name)
    if knob is None:
        raise FaultError(f"unknown fault {name!r}; known faults: {', '.join(KNOBS)}")
    if knob.kind is bool:
        if not isinstance(value, bool):
            raise FaultError(f"{name}: expected true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise FaultError(f"{name}: expected a number between {knob.low:g} and {knob.high:g}{_unit(knob)}, got {value!r}")
    if not knob.low <= value <= knob.high:
        raise FaultError(f"{name}: {value!r} is out of range; allowed {knob.low:g} to {knob.high:g}{_unit(knob)}")
    return float(value)


def _unit(knob: Knob) -> str:
    return f" {knob.unit}" if knob.unit else ""


class Faults:
    """The current settings; readers take `settings` (immutable), writers call `update`."""

    def __init__(self, initial: FaultSettings | None = None):
        self._lock = threading.Lock()
        self.settings = initial or FaultSettings()
        # Set whenever the settings change, so that a hanging /stats can notice the hang ending.
        self._changed = threading.Condition(self._lock)

    def update(self, changes: object) -> FaultSettings:
        """Apply a JSON object of knob values, all or nothing; FaultError names the first bad one."""
        if not isinstance(changes, dict):
            raise FaultError(f"expected a JSON object such as {{\"error_ratio\": 0.2}}, got {type(changes).__name__}")
        checked = {name: check(name, value) for name, value in changes.items()}
        with self._lock:
            self.settings = replace(self.settings, **checked)
            self._changed.notify_all()
            return self.settings

    def reset(self) -> FaultSettings:
        with self._lock:
            self.settings = FaultSettings()
            self._changed.notify_all()
            return self.settings

    def wait_while_hanging(self, timeout: float, stopping: threading.Event) -> bool:
        """Block while `stats_hang` is on, at most `timeout` seconds; True when the hang ended."""
        with self._lock:
            return self._changed.wait_for(lambda: not self.settings.stats_hang or stopping.is_set(), timeout)

    def release_waiters(self) -> None:
        with self._lock:
            self._changed.notify_all()

    def document(self) -> dict:
        return asdict(self.settings)
