"""The demo's own garbage collector and memory, measured for real and named as Pharo's `Smalltalk vm`.

CPython has a generational cycle collector (generations 0, 1, 2) on top of reference counting;
Pharo's Spur VM has a scavenger for new space and a full mark-compact of the whole heap. The demo
reports CPython's figures under the Pharo names like this:

| Pharo field | what the demo measures |
|---|---|
| incrementalGCCount, totalIncrementalGCTime | collections of generations 0 and 1 (the young ones), counted and timed (ms) between the `start` and `stop` phases of `gc.callbacks` |
| fullGCCount, totalFullGCTime | collections of generation 2, which examine every tracked object |
| tenureCount | objects promoted into generation 2 by generation-1 collections: the objects in generations 0 and 1 when the collection starts minus those it collected. Survivors of full collections are not counted: their young and old garbage cannot be told apart |
| edenSpaceSize | shallow size (`sys.getsizeof`) of the objects now in generation 0 |
| youngSpaceSize | the same for generations 0 and 1 (eden is part of young, as in Pharo) |
| memorySize | resident set size of the process (RSS, through psutil) |
| oldSpace | RSS minus youngSpaceSize: everything resident that is not young |
| freeOldSpaceSize | bytes the C allocator holds but does not use (glibc `mallinfo2().fordblks`): a lower bound, since pymalloc's free blocks are not included; omitted where glibc is not |
| maxOldSpaceSize | the memory limit the process really runs under: cgroup `memory.max` (v2) or `memory.limit_in_bytes` (v1), or the soft RLIMIT_DATA/RLIMIT_AS, the smallest that is finite; 0 (no limit) otherwise |
| processSwitchCount | voluntary plus involuntary context switches of the process, all its threads, ended ones included (`getrusage(RUSAGE_SELF)`): operating-system switches between threads, the nearest CPython has to Pharo's switches between processes |

Left out because CPython has nothing honest to report: the GC phase times (its collector has no
separate mark, sweep or compaction phases to time) and every JIT field (CPython 3.11 has no JIT).

Only GC-tracked containers (dicts, lists, instances...) count towards the collector's thresholds,
which is why the allocation-pressure fault churns dicts rather than plain bytes.

The `processes` section lists the process's operating-system threads (`/proc/<pid>/task/*/stat`),
their kernel state named as Pharo's process states (R running or runnable: `active`; S and D
sleeping: `blocked`; T and t stopped: `suspended`; Z and X: `terminated`) and their nice value as
the priority. The one handle table is `file_descriptors`: open descriptors against the soft
RLIMIT_NOFILE, the point where `open()` and `accept()` start failing with EMFILE.
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import sys
import time
from pathlib import Path
from typing import NamedTuple

import psutil

# A cgroup or rlimit at or above this is the kernel's way of saying "unlimited".
_UNLIMITED = 2**60


class GCTotals(NamedTuple):
    full_count: int = 0
    full_ms: float = 0.0
    incremental_count: int = 0
    incremental_ms: float = 0.0
    tenured: int = 0


class GCMonitor:
    """Counts and times the collector's runs through `gc.callbacks` while installed.

    The totals are one immutable tuple replaced at each `stop`, so a reader never sees a count
    without its time; no lock is taken inside a callback, where the collector holds the GIL.
    """

    def __init__(self) -> None:
        self.totals = GCTotals()
        self._started = 0.0
        self._young_at_start = 0

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        generation = info.get("generation", 0)
        if phase == "start":
            if generation == 1:
                self._young_at_start = len(gc.get_objects(0)) + len(gc.get_objects(1))
            # Taken last, so that counting the young objects is not billed to the collector.
            self._started = time.perf_counter()
            return
        elapsed_ms = (time.perf_counter() - self._started) * 1000.0
        totals = self.totals
        if generation >= 2:
            self.totals = totals._replace(full_count=totals.full_count + 1, full_ms=totals.full_ms + elapsed_ms)
            return
        tenured = 0
        if generation == 1:
            tenured = max(0, self._young_at_start - info.get("collected", 0) - info.get("uncollectable", 0))
        self.totals = totals._replace(
            incremental_count=totals.incremental_count + 1,
            incremental_ms=totals.incremental_ms + elapsed_ms,
            tenured=totals.tenured + tenured,
        )


def vm_section(monitor: GCMonitor, process: psutil.Process) -> dict:
    """The `vm` section of the stats document, measured now."""
    totals = monitor.totals
    eden = _shallow_size(gc.get_objects(0))
    young = eden + _shallow_size(gc.get_objects(1))
    resident = process.memory_info().rss
    vm = {
        "fullGCCount": totals.full_count,
        "totalFullGCTime": round(totals.full_ms, 3),
        "incrementalGCCount": totals.incremental_count,
        "totalIncrementalGCTime": round(totals.incremental_ms, 3),
        "tenureCount": totals.tenured,
        "oldSpace": max(0, resident - young),
        "youngSpaceSize": young,
        "edenSpaceSize": eden,
        "memorySize": resident,
        "maxOldSpaceSize": memory_limit(),
        "processSwitchCount": process_switches(process),
    }
    free = _malloc_free_bytes()
    if free is not None:
        vm["freeOldSpaceSize"] = free
    return vm


def process_switches(process: psutil.Process) -> int:
    """Context switches of `process` since it started. For the demo's own process, getrusage:
    it counts every thread, ended ones too, so the counter never goes down (psutil's
    num_ctx_switches reads /proc/PID/status, which counts the main thread alone)."""
    if process.pid == os.getpid():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_nvcsw + usage.ru_nivcsw
    switches = process.num_ctx_switches()
    return switches.voluntary + switches.involuntary


_THREAD_STATES = {"R": "active", "S": "blocked", "D": "blocked", "T": "suspended", "t": "suspended", "Z": "terminated", "X": "terminated"}


def processes_section(process: psutil.Process) -> list[dict]:
    """The `processes` section: the threads of `process` by state and nice value."""
    groups: dict[tuple[str, int], int] = {}
    try:
        tasks = list(Path(f"/proc/{process.pid}/task").iterdir())
    except OSError:  # no procfs: every thread counted as active at nice 0
        return [{"state": "active", "priority": 0, "count": process.num_threads()}]
    for task in tasks:
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the thread ended while we looked
        key = (_THREAD_STATES.get(fields[0], "ready"), int(fields[16]))
        groups[key] = groups.get(key, 0) + 1
    return [{"state": state, "priority": nice, "count": count} for (state, nice), count in sorted(groups.items())]


def handle_tables_section(process: psutil.Process) -> list[dict]:
    """The `handleTables` section: file descriptors in use against the soft RLIMIT_NOFILE."""
    used = process.num_fds()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    table = {"table": "file_descriptors", "used": used}
    if soft != resource.RLIM_INFINITY:
        table.update(free=max(0, soft - used), max=soft)
    return [table]


def _shallow_size(objects: list) -> int:
    return sum(map(sys.getsizeof, objects))


def memory_limit() -> int:
    """The smallest finite memory limit on this process in bytes, or 0 when there is none."""
    limits = []
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    for kind in (resource.RLIMIT_DATA, resource.RLIMIT_AS):
        soft, _ = resource.getrlimit(kind)
        if soft != resource.RLIM_INFINITY:
            limits.append(soft)
    finite = [limit for limit in limits if 0 < limit < _UNLIMITED]
    return min(finite) if finite else 0


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
    ]


def _load_mallinfo2():
    try:
        function = ctypes.CDLL(None).mallinfo2  # glibc 2.33 and later
    except (OSError, AttributeError):
        return None
    function.restype = _MallInfo2
    function.argtypes = []
    return function


_mallinfo2 = _load_mallinfo2()


def _malloc_free_bytes() -> int | None:
    return None if _mallinfo2 is None else int(_mallinfo2().fordblks)
