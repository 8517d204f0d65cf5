"""A scrape's cancellation: set when nobody waits for its answer any more.

The server cancels a request's scrapes when its client disconnects (Prometheus gave up, or a
hostile client walked away); everything a scrape waits on (a scrape slot, a DNS answer, a socket)
watches the cancellation beside the deadline, so the work stops and its slots are freed at once
instead of at the deadline. Like Go's `context.Context`, without the deadline, which stays a
`time.monotonic()` value.
"""

from __future__ import annotations

import threading
from typing import Callable


GONE = "client went away"  # the usual why: scrapes end with reason `timeout` and this detail


class Cancellation:
    def __init__(self) -> None:
        self.why = ""  # set by cancel(), quoted in the failed scrape's detail
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds; True when cancelled meanwhile."""
        return self._event.wait(max(0.0, timeout))

    def cancel(self, why: str = GONE) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.why = why
            self._event.set()
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when cancelled (now, if already); returns a function that unregisters it."""
        with self._lock:
            if not self._event.is_set():
                key = self._next
                self._next += 1
                self._callbacks[key] = callback

                def remove() -> None:
                    with self._lock:
                        self._callbacks.pop(key, None)

                return remove
        callback()
        return lambda: None


class _Never(Cancellation):
    def cancel(self, why: str = GONE) -> None:
        raise RuntimeError("NEVER is shared and cannot be cancelled; make a Cancellation of your own")


NEVER: Cancellation = _Never()  # for callers with nobody to walk away (tests, benchmarks)
