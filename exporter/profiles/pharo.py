"""`pharo`: the stats endpoint Pharos defines for Pharo images (GC, scheduling and JIT as `Smalltalk vm`
names them, processes by state and priority, handle tables, Zinc HTTP request statistics, health).
The format is specified in `docs/pharo-stats.md` and
`exporter/profiles/schemas/pharo-stats.schema.json`; `pharos demo-app` serves it.
"""

from __future__ import annotations

import math
import time
from typing import Any

from .. import catalogue as c
from ..reading import DocumentError, Reading, mapping, number, sequence, status_code, text
from .base import Profile

MS = 1e-3

# (field in "vm", memory space, role). Sizes are bytes; `maxOldSpaceSize` 0 means unlimited.
_SPACES = (
    ("oldSpace", "old", "size"),
    ("freeOldSpaceSize", "old", "free"),
    ("maxOldSpaceSize", "old", "limit"),
    ("youngSpaceSize", "young", "size"),
    ("edenSpaceSize", "eden", "size"),
)

# (field in "vm", metric, label values, scale to base units): the optional VM parameters beyond GC
# and memory. Pharo reports phase times for full GCs only; the JIT's figures are nil (left out)
# on a VM without the Cog JIT.
_VM_PARAMETERS = (
    ("totalGCMarkPhaseTime", c.GC_PHASE_DURATION, (c.GC_KIND_MAJOR, c.GC_PHASE_MARK), MS),  # parameterAt: 72
    ("totalGCSweepPhaseTime", c.GC_PHASE_DURATION, (c.GC_KIND_MAJOR, c.GC_PHASE_SWEEP), MS),  # 73
    ("totalGCCompactionPhaseTime", c.GC_PHASE_DURATION, (c.GC_KIND_MAJOR, c.GC_PHASE_COMPACT), MS),  # 18
    ("processSwitchCount", c.PROCESS_SWITCHES, (), 1.0),  # 56
    ("compiledMethodsCount", c.JIT_COMPILATIONS, (c.JIT_KIND_METHOD,), 1.0),  # 75
    ("totalJITCompileMethodsTime", c.JIT_COMPILATION_DURATION, (c.JIT_KIND_METHOD,), MS),  # 76
    ("compiledBlocksCount", c.JIT_COMPILATIONS, (c.JIT_KIND_BLOCK,), 1.0),  # 77
    ("totalJITCompileBlocksTime", c.JIT_COMPILATION_DURATION, (c.JIT_KIND_BLOCK,), MS),  # 78
    ("codeCompactionCount", c.JIT_CODE_COMPACTIONS, (), 1.0),  # 62
    ("totalCodeCompactionTime", c.JIT_CODE_COMPACTION_DURATION, (), MS),  # 63
    ("machineCodeZoneSize", c.JIT_CODE_ZONE_SIZE, (), 1.0),  # 46
    ("jittedMethodsCount", c.JIT_CODE_ZONE_METHODS, (), 1.0),  # 64
)


def parse(document: Any, reading: Reading) -> None:
    doc = mapping(document, "$")
    _runtime(doc, reading)
    if "vm" in doc:
        _vm(mapping(doc["vm"], "$.vm"), reading)
    # Before `http`, whose rows may be many: over the series limit, these few are kept.
    if "processes" in doc:
        _processes(doc["processes"], reading)
    if "handleTables" in doc:
        _handle_tables(doc["handleTables"], reading)
    if "http" in doc:
        _http(mapping(doc["http"], "$.http"), reading)
    if "health" in doc:
        _health(mapping(doc["health"], "$.health"), reading)


def _runtime(doc, reading: Reading) -> None:
    runtime = mapping(doc.get("runtime", {}), "$.runtime")
    application = mapping(doc.get("application", {}), "$.application")
    reading.info(
        text(runtime.get("name", "pharo"), "$.runtime.name"),
        text(runtime.get("version", ""), "$.runtime.version"),
        text(application.get("name", ""), "$.application.name"),
        text(application.get("version", ""), "$.application.version"),
    )
    if "uptimeSeconds" in runtime:
        uptime = number(runtime["uptimeSeconds"], "$.runtime.uptimeSeconds")
        reading.set(c.UPTIME, uptime)
        if "startTime" not in runtime:
            # Rounded so that the derived start time does not wobble between scrapes.
            reading.set(c.START_TIME, float(round(time.time() - uptime)))
    if "startTime" in runtime:
        reading.set(c.START_TIME, number(runtime["startTime"], "$.runtime.startTime"))


def _vm(vm, reading: Reading) -> None:
    def field(name):
        return number(vm[name], f"$.vm.{name}") if name in vm else None

    full_ms, incremental_ms = field("totalFullGCTime"), field("totalIncrementalGCTime")
    reading.gc(c.GC_KIND_MAJOR, field("fullGCCount"), None if full_ms is None else full_ms * MS)
    reading.gc(c.GC_KIND_MINOR, field("incrementalGCCount"), None if incremental_ms is None else incremental_ms * MS)
    tenures = field("tenureCount")
    if tenures is not None:
        reading.set(c.GC_TENURED_OBJECTS, tenures)
    for name, space, role in _SPACES:
        value = field(name)
        if value is not None:
            reading.memory(space, **{role: value})
    total = field("memorySize")
    if total is not None:
        reading.set(c.MEMORY_TOTAL, total)
    for name, metric, labels, scale in _VM_PARAMETERS:
        if name in vm:
            reading.set(metric, number(vm[name], f"$.vm.{name}") * scale, labels)


def _processes(rows, reading: Reading) -> None:
    for index, row in enumerate(sequence(rows, "$.processes")):
        path = f"$.processes[{index}]"
        row = mapping(row, path)
        reading.processes(
            text(row.get("state"), f"{path}.state"),
            number(row.get("priority"), f"{path}.priority"),
            number(row.get("count"), f"{path}.count"),
        )


def _handle_tables(rows, reading: Reading) -> None:
    for index, row in enumerate(sequence(rows, "$.handleTables")):
        path = f"$.handleTables[{index}]"
        row = mapping(row, path)
        used, free, limit = (number(row[key], f"{path}.{key}") if key in row else None for key in ("used", "free", "max"))
        reading.handle_table(text(row.get("table"), f"{path}.table"), used, free, limit)


def _health(health, reading: Reading) -> None:
    """`healthy` and `status` each give their own metric, as the image states them: a document
    whose two disagree (healthy with status fail) is not refused, since refusing it would drop
    every other metric of the scrape over a contradiction the image alone can resolve."""
    checks = mapping(health.get("checks", {}), "$.health.checks")
    reading.health(
        bool(number(health.get("healthy"), "$.health.healthy")),
        {name: bool(number(passed, f"$.health.checks.{name}")) for name, passed in checks.items()},
    )
    if "status" in health:
        status = health["status"]
        if status not in c.HEALTH_STATUSES:  # exactly the IETF health-check draft's words
            raise DocumentError("$.health.status", f"expected \"pass\", \"warn\" or \"fail\", got {type(status).__name__} {status!r:.40}")
        reading.health_status(status)


def _http(http, reading: Reading) -> None:
    if "activeRequests" in http:
        reading.set(c.HTTP_ACTIVE_REQUESTS, number(http["activeRequests"], "$.http.activeRequests"))
    bounds = [bound * MS for bound in _bounds_ms(http)]
    for index, row in enumerate(sequence(http.get("requests", []), "$.http.requests")):
        path = f"$.http.requests[{index}]"
        row = mapping(row, path)
        count = number(row.get("count"), f"{path}.count")
        duration_ms = row.get("totalDurationMs")
        response_bytes = row.get("responseBytes")
        reading.http(
            text(row.get("method", "GET"), f"{path}.method"),
            text(row.get("route", c.ROUTE_UNKNOWN), f"{path}.route"),
            status_code(row.get("status"), f"{path}.status"),
            count,
            None if duration_ms is None else number(duration_ms, f"{path}.totalDurationMs") * MS,
            None if response_bytes is None else number(response_bytes, f"{path}.responseBytes"),
            _cumulative(bounds, row.get("durationBucketCounts"), path, count),
        )


def _bounds_ms(http) -> list[float]:
    """`durationBucketsMs`: finite numbers > 0, strictly ascending, so that the buckets make a
    valid, monotonic histogram. A last `Infinity` is the +Inf bucket the exporter adds anyway."""
    values = sequence(http.get("durationBucketsMs", []), "$.http.durationBucketsMs")
    bounds: list[float] = []
    for index, value in enumerate(values):
        path = f"$.http.durationBucketsMs[{index}]"
        bound = number(value, path)
        if not (0 < bound < math.inf or bound == math.inf and index == len(values) - 1):
            raise DocumentError(path, f"bounds must be finite numbers greater than 0, got {bound:g}")
        if bounds and bound <= bounds[-1]:
            raise DocumentError(path, f"bounds must be strictly ascending, but {bound:g} follows {bounds[-1]:g}")
        bounds.append(bound)
    return bounds


def _cumulative(bounds, counts, path, total):
    """Pharo images count requests per bucket; Prometheus buckets are cumulative. Requests slower
    than the last bound are `count` minus the sum, so the sum may not exceed `count`."""
    if counts is None:
        return ()
    counts = sequence(counts, f"{path}.durationBucketCounts")
    if len(counts) != len(bounds):
        raise DocumentError(
            f"{path}.durationBucketCounts",
            f"has {len(counts)} entries but $.http.durationBucketsMs has {len(bounds)}",
        )
    running, out = 0.0, []
    for index, (bound, count) in enumerate(zip(bounds, counts)):
        running += number(count, f"{path}.durationBucketCounts[{index}]")
        out.append((bound, running))
    if running > total:
        raise DocumentError(
            f"{path}.durationBucketCounts",
            f"sums to {running:g}, more than the row's count {total:g}; entries count requests per bucket, not cumulatively",
        )
    return out


PROFILE = Profile(
    name="pharo",
    summary="Pharo images: GC, memory, scheduling and JIT as `Smalltalk vm` reports them, processes, Zinc HTTP request statistics",
    parse=parse,
    default_path="/stats",
    reference="docs/pharo-stats.md",
)
