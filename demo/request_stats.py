"""The demo's own HTTP request statistics, kept the way the `pharo` format reports them.

One row per (method, route template, status): count, total duration, bytes sent and a duration
histogram with fixed millisecond bounds whose buckets count requests per bucket (not cumulatively;
the exporter accumulates them). Requests slower than the last bound are in `count` only.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

# Fixed upper bounds (ms). Healthy demo requests take well under 5 ms: with 5 ms as the first
# bound every quantile was a guess inside one bucket (p50 2.5 ms, p99 4.95 ms whatever happened).
# Fine from a quarter of a millisecond, about 1.5x apart up to a second, then coarse up to the
# 30-second ceiling of the latency fault.
DURATION_BUCKETS_MS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 25, 50, 75, 100, 150, 250, 500, 750, 1000, 2500, 5000, 10000, 30000)


@dataclass
class _Row:
    count: int = 0
    total_duration_ms: float = 0.0
    response_bytes: int = 0
    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS_MS))


class RequestStats:
    """Thread-safe counters for every request the demo answers (except /stats, see app.py)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str | None, int], _Row] = {}
        self._active = 0

    def started(self) -> None:
        with self._lock:
            self._active += 1

    def finished(self, method: str, route: str | None, status: int, duration_ms: float, response_bytes: int) -> None:
        """Count one answered request; `route` is None when no route matched (an unknown path)."""
        bucket = bisect.bisect_left(DURATION_BUCKETS_MS, duration_ms)
        with self._lock:
            self._active -= 1
            row = self._rows.get((method, route, status))
            if row is None:
                row = self._rows[(method, route, status)] = _Row()
            row.count += 1
            row.total_duration_ms += duration_ms
            row.response_bytes += response_bytes
            if bucket < len(DURATION_BUCKETS_MS):
                row.bucket_counts[bucket] += 1

    def abandoned(self) -> None:
        """A request that ended without an answer (the client went away): in flight no more."""
        with self._lock:
            self._active -= 1

    def document(self) -> dict:
        """The `http` section of the stats document."""
        with self._lock:
            rows = [(key, _Row(r.count, r.total_duration_ms, r.response_bytes, list(r.bucket_counts))) for key, r in self._rows.items()]
            active = self._active
        requests = []
        for (method, route, status), row in sorted(rows, key=lambda item: (item[0][1] or "", item[0][0], item[0][2])):
            entry = {"method": method}
            if route is not None:
                entry["route"] = route
            entry.update(
                status=status,
                count=row.count,
                totalDurationMs=round(row.total_duration_ms, 3),
                responseBytes=row.response_bytes,
                durationBucketCounts=row.bucket_counts,
            )
            requests.append(entry)
        return {"activeRequests": active, "durationBucketsMs": list(DURATION_BUCKETS_MS), "requests": requests}
