"""Synthetic `pharo` stats documents of a chosen size, and the "floor" they are measured against.

The floor is the least work any exporter of these documents must do: `json.loads` of the body,
the same series built as prometheus_client metric families, and `generate_latest`. It skips
everything the real exporter adds (validation with JSON paths, route templating, scrape-health
metrics, HTTP), so the exporter's CPU divided by the floor's says what that machinery costs.

Sizes are counted in exposition samples, the unit Prometheus stores: every histogram bucket,
`_count` and `_sum` is one series. Every section of the format is in the document (the optional VM
parameters, `processes`, `handleTables`, `health.status` too), so that a benchmark measures the
parsing of each; the request rows make up the rest of the size.
"""

from __future__ import annotations

import json

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from pharos_monitoring.exporter import catalogue as c

MS = 1e-3
DURATION_BUCKETS_MS = [5, 10, 25, 50, 100, 250, 500, 1000]
METHODS = ("GET", "POST", "PUT", "DELETE")
STATUSES = (200, 201, 400, 404, 500)
ROWS_PER_ROUTE = len(METHODS) * len(STATUSES)
# The exporter keeps at most 200 route templates per target by default; staying under it keeps
# every row its own series instead of folding the surplus into `__overflow__`.
MAX_ROUTES = 150
# A server image's processes: one row per (state, priority), as docs/pharo-stats.md has them.
PROCESSES = [
    {"state": "active", "priority": 40, "count": 1},
    {"state": "ready", "priority": 10, "count": 1},
    {"state": "blocked", "priority": 40, "count": 14},
    {"state": "blocked", "priority": 60, "count": 2},
    {"state": "blocked", "priority": 80, "count": 1},
    {"state": "suspended", "priority": 40, "count": 3},
    {"state": "terminated", "priority": 40, "count": 23},
]
HANDLE_TABLES = [{"table": "external_semaphores", "used": 17, "free": 23, "max": 256}]
# The optional `vm` parameters (docs/pharo-stats.md): (field, value, metric, label values, scale).
VM_PARAMETERS = (
    ("totalGCMarkPhaseTime", 1800, c.GC_PHASE_DURATION, (c.GC_KIND_MAJOR, c.GC_PHASE_MARK), MS),
    ("totalGCSweepPhaseTime", 450, c.GC_PHASE_DURATION, (c.GC_KIND_MAJOR, c.GC_PHASE_SWEEP), MS),
    ("totalGCCompactionPhaseTime", 1100, c.GC_PHASE_DURATION, (c.GC_KIND_MAJOR, c.GC_PHASE_COMPACT), MS),
    ("processSwitchCount", 2718281, c.PROCESS_SWITCHES, (), 1.0),
    ("compiledMethodsCount", 40213, c.JIT_COMPILATIONS, (c.JIT_KIND_METHOD,), 1.0),
    ("totalJITCompileMethodsTime", 2250, c.JIT_COMPILATION_DURATION, (c.JIT_KIND_METHOD,), MS),
    ("compiledBlocksCount", 9120, c.JIT_COMPILATIONS, (c.JIT_KIND_BLOCK,), 1.0),
    ("totalJITCompileBlocksTime", 380, c.JIT_COMPILATION_DURATION, (c.JIT_KIND_BLOCK,), MS),
    ("codeCompactionCount", 7, c.JIT_CODE_COMPACTIONS, (), 1.0),
    ("totalCodeCompactionTime", 42, c.JIT_CODE_COMPACTION_DURATION, (), MS),
    ("machineCodeZoneSize", 2097152, c.JIT_CODE_ZONE_SIZE, (), 1.0),
    ("jittedMethodsCount", 3104, c.JIT_CODE_ZONE_METHODS, (), 1.0),
)


def document(rows: int, seed: int = 0) -> dict:
    """A pharo stats document with `rows` (method, route, status) request rows."""
    if rows > MAX_ROUTES * ROWS_PER_ROUTE:
        raise ValueError(f"at most {MAX_ROUTES * ROWS_PER_ROUTE} rows keep every route under the exporter's route cap")
    requests = []
    for index in range(rows):
        route, rest = divmod(index, ROWS_PER_ROUTE)
        method, status = METHODS[rest // len(STATUSES)], STATUSES[rest % len(STATUSES)]
        counts = [(index * 7 + bucket * 13 + seed) % 97 for bucket in range(len(DURATION_BUCKETS_MS))]
        requests.append(
            {
                "method": method,
                "route": f"/api/v1/resource{route}/{{id}}",
                "status": status,
                "count": sum(counts) + index % 5,
                "totalDurationMs": round(sum(counts) * 12.5 + index, 3),
                "responseBytes": sum(counts) * 850 + index,
                "durationBucketCounts": counts,
            }
        )
    return {
        "application": {"name": "bench", "version": "1.0.0"},
        "runtime": {"name": "pharo", "version": "Pharo-11.0.0", "uptimeSeconds": 86400.5, "startTime": 1764300000},
        "vm": {
            "fullGCCount": 12,
            "totalFullGCTime": 3450,
            "incrementalGCCount": 48211,
            "totalIncrementalGCTime": 91234,
            "tenureCount": 1532,
            "oldSpace": 536870912,
            "youngSpaceSize": 16777216,
            "edenSpaceSize": 12582912,
            "freeOldSpaceSize": 134217728,
            "memorySize": 570425344,
            "maxOldSpaceSize": 1073741824,
            **{field: value for field, value, _, _, _ in VM_PARAMETERS},
        },
        "processes": PROCESSES,
        "handleTables": HANDLE_TABLES,
        "http": {"activeRequests": 3, "durationBucketsMs": DURATION_BUCKETS_MS, "requests": requests},
        "health": {"healthy": True, "status": "pass", "checks": {"database": True, "queue": True}},
    }


def body(rows: int, seed: int = 0) -> bytes:
    return json.dumps(document(rows, seed)).encode()


def series_count(payload: bytes) -> int:
    """Exposition samples the payload yields (what the floor renders, comments excluded)."""
    return len(sample_lines(floor(payload)))


def rows_for(series: int) -> int:
    """The number of request rows whose document yields about `series` samples."""
    fixed = series_count(body(0))
    per_row = series_count(body(1)) - fixed
    return max(0, round((series - fixed) / per_row))


def sample_lines(exposition: bytes) -> set[str]:
    return {line for line in exposition.decode().splitlines() if line and not line.startswith("#")}


# --- the floor -------------------------------------------------------------------------------
class _Families:
    def __init__(self, families):
        self._families = families

    def collect(self):
        return self._families


def floor(payload: bytes, extra: dict[str, str] | None = None) -> bytes:
    """json.loads + the same series as prometheus_client families + generate_latest."""
    return generate_latest(_Families(floor_families(json.loads(payload), extra or {})))


def floor_families(doc: dict, extra: dict[str, str]) -> list:
    names, values = list(extra), list(extra.values())

    def family(kind, metric, labels=()):
        return kind(metric.family if kind is CounterMetricFamily else metric.name, metric.help, labels=names + list(labels))

    runtime, application, vm, http = doc["runtime"], doc["application"], doc["vm"], doc["http"]
    info = family(GaugeMetricFamily, c.RUNTIME_INFO, c.RUNTIME_INFO.labels)
    info.add_metric(values + [runtime["name"], runtime["version"], application["name"], application["version"]], 1.0)
    uptime = family(GaugeMetricFamily, c.UPTIME)
    uptime.add_metric(values, float(runtime["uptimeSeconds"]))
    start = family(GaugeMetricFamily, c.START_TIME)
    start.add_metric(values, float(runtime["startTime"]))

    collections = family(CounterMetricFamily, c.GC_COLLECTIONS, c.GC_COLLECTIONS.labels)
    collections.add_metric(values + [c.GC_KIND_MAJOR], float(vm["fullGCCount"]))
    collections.add_metric(values + [c.GC_KIND_MINOR], float(vm["incrementalGCCount"]))
    gc_seconds = family(CounterMetricFamily, c.GC_DURATION, c.GC_DURATION.labels)
    gc_seconds.add_metric(values + [c.GC_KIND_MAJOR], vm["totalFullGCTime"] * MS)
    gc_seconds.add_metric(values + [c.GC_KIND_MINOR], vm["totalIncrementalGCTime"] * MS)
    tenured = family(CounterMetricFamily, c.GC_TENURED_OBJECTS)
    tenured.add_metric(values, float(vm["tenureCount"]))
    space = family(GaugeMetricFamily, c.MEMORY_SPACE, c.MEMORY_SPACE.labels)
    for field, name in (("oldSpace", "old"), ("youngSpaceSize", "young"), ("edenSpaceSize", "eden")):
        space.add_metric(values + [name], float(vm[field]))
    free = family(GaugeMetricFamily, c.MEMORY_FREE, c.MEMORY_FREE.labels)
    free.add_metric(values + ["old"], float(vm["freeOldSpaceSize"]))
    limit = family(GaugeMetricFamily, c.MEMORY_LIMIT, c.MEMORY_LIMIT.labels)
    limit.add_metric(values + ["old"], float(vm["maxOldSpaceSize"]))
    total = family(GaugeMetricFamily, c.MEMORY_TOTAL)
    total.add_metric(values, float(vm["memorySize"]))
    optional: dict[c.Metric, object] = {}
    for field, _, metric, labels, scale in VM_PARAMETERS:
        if metric not in optional:
            optional[metric] = family(CounterMetricFamily if metric.type == c.COUNTER else GaugeMetricFamily, metric, metric.labels)
        optional[metric].add_metric(values + list(labels), vm[field] * scale)

    processes = family(GaugeMetricFamily, c.PROCESSES, c.PROCESSES.labels)
    for row in doc["processes"]:
        processes.add_metric(values + [row["state"], str(row["priority"])], float(row["count"]))
    slots = family(GaugeMetricFamily, c.HANDLE_TABLE_SLOTS, c.HANDLE_TABLE_SLOTS.labels)
    slots_limit = family(GaugeMetricFamily, c.HANDLE_TABLE_LIMIT, c.HANDLE_TABLE_LIMIT.labels)
    for table in doc["handleTables"]:
        slots.add_metric(values + [table["table"], c.HANDLE_SLOT_USED], float(table["used"]))
        slots.add_metric(values + [table["table"], c.HANDLE_SLOT_FREE], float(table["free"]))
        slots_limit.add_metric(values + [table["table"]], float(table["max"]))

    active = family(GaugeMetricFamily, c.HTTP_ACTIVE_REQUESTS)
    active.add_metric(values, float(http["activeRequests"]))
    bounds = [repr(bound * MS) for bound in http["durationBucketsMs"]]
    durations = family(HistogramMetricFamily, c.HTTP_REQUEST_DURATION, c.HTTP_REQUEST_DURATION.labels)
    sizes = family(HistogramMetricFamily, c.HTTP_RESPONSE_SIZE, c.HTTP_RESPONSE_SIZE.labels)
    for row in http["requests"]:
        labels = values + [row["method"], row["route"], str(row["status"])]
        count, running, buckets = float(row["count"]), 0.0, []
        for bound, in_bucket in zip(bounds, row["durationBucketCounts"]):
            running += in_bucket
            buckets.append((bound, running))
        buckets.append(("+Inf", count))
        durations.add_metric(labels, buckets, row["totalDurationMs"] * MS)
        sizes.add_metric(labels, [("+Inf", count)], float(row["responseBytes"]))

    health = doc["health"]
    healthy = family(GaugeMetricFamily, c.APP_HEALTHY)
    healthy.add_metric(values, 1.0 if health["healthy"] else 0.0)
    status = family(GaugeMetricFamily, c.APP_HEALTH_STATUS, c.APP_HEALTH_STATUS.labels)
    for each in c.HEALTH_STATUSES:
        status.add_metric(values + [each], 1.0 if each == health["status"] else 0.0)
    checks = family(GaugeMetricFamily, c.APP_HEALTH_CHECK, c.APP_HEALTH_CHECK.labels)
    for name, passed in health["checks"].items():
        checks.add_metric(values + [name], 1.0 if passed else 0.0)
    return [
        info, uptime, start, collections, gc_seconds, tenured, space, free, limit, total, *optional.values(),
        processes, slots, slots_limit, active, durations, sizes, healthy, status, checks,
    ]
