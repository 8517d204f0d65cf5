"""The allocation-pressure fault: a background thread that churns garbage at N MB/s.

The garbage is rings of small dicts, each holding a fresh payload: reference counting cannot free
a ring (it is a cycle), so the cycle collector must, and dicts are what its thresholds count.
The last half second of rings is kept alive, as request-scoped caches would be, so that some
objects survive young collections, get promoted (tenured) and eventually need full collections.
Work is done in 100 ms slices of at most 50 ms, so the churn never takes more than half a core
and the HTTP server keeps answering; a rate the thread cannot reach is simply not reached.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import Callable

SLICE_SECONDS = 0.1
MAX_BUSY_PER_SLICE = 0.05
RETAIN_SECONDS = 0.5
RING_LENGTH = 64
PAYLOAD_BYTES = 256
MB = 1024 * 1024


def _ring() -> dict:
    first = node = {"payload": bytes(PAYLOAD_BYTES), "next": None}
    for _ in range(RING_LENGTH - 1):
        node["next"] = node = {"payload": bytes(PAYLOAD_BYTES), "next": None}
    node["next"] = first
    return first


def _ring_bytes() -> int:
    node = {"payload": bytes(PAYLOAD_BYTES), "next": None}
    return RING_LENGTH * (sys.getsizeof(node) + sys.getsizeof(node["payload"]))


class AllocationPressure:
    """Churns `rate()` MB of garbage per second until stopped; `rate` is read every slice."""

    def __init__(self, rate: Callable[[], float]):
        self._rate = rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-allocation-pressure", daemon=True)
        self.churned_bytes = 0
        self.ring_bytes = _ring_bytes()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=5)

    def _run(self) -> None:
        retained: deque[tuple[float, dict]] = deque()
        while not self._stop.wait(SLICE_SECONDS):
            now = time.monotonic()
            while retained and now - retained[0][0] > RETAIN_SECONDS:
                retained.popleft()
            rate = self._rate()
            if rate <= 0:
                retained.clear()
                continue
            rings = max(1, round(rate * MB * SLICE_SECONDS / self.ring_bytes))
            busy_until = now + MAX_BUSY_PER_SLICE
            for _ in range(rings):
                retained.append((now, _ring()))
                self.churned_bytes += self.ring_bytes
                if time.monotonic() > busy_until:
                    break
