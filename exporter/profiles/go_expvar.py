"""`go-expvar`: Go's standard `/debug/vars` (package expvar), served by many Go programs.

Only `memstats` (runtime.MemStats) is read; other published variables are the program's own and
belong in a `json` mapping. Go's collector is concurrent and collects the whole heap every cycle,
so every cycle counts as `major`; `PauseTotalNs` is stop-the-world pause time, the part of GC
that stalls the program.
"""

from __future__ import annotations

from typing import Any

from .. import catalogue as c
from ..reading import Reading, mapping, number, sequence, text
from .base import Profile


def parse(document: Any, reading: Reading) -> None:
    doc = mapping(document, "$")
    memstats = mapping(doc.get("memstats"), "$.memstats")

    def field(name):
        return number(memstats[name], f"$.memstats.{name}") if name in memstats else None

    pause_ns = field("PauseTotalNs")
    reading.gc(c.GC_KIND_MAJOR, field("NumGC"), None if pause_ns is None else pause_ns * 1e-9)
    heap_sys, heap_released, heap_alloc = field("HeapSys"), field("HeapReleased"), field("HeapAlloc")
    if heap_sys is not None and heap_released is not None:
        # The heap the runtime holds (spans in use + idle spans not yet returned to the OS); what
        # live objects do not occupy of it is free, so that size - free = HeapAlloc, as for Pharo.
        held = heap_sys - heap_released
        reading.memory("heap", size=held, free=None if heap_alloc is None else held - heap_alloc)
    reading.memory("stack", size=field("StackInuse"))
    if (goal := field("NextGC")) is not None:
        reading.set(c.GC_HEAP_GOAL, goal)
    if (total := field("Sys")) is not None:
        reading.set(c.MEMORY_TOTAL, total)
    reading.info("go", application=_program(doc))


def _program(doc) -> str:
    """The program's file name from expvar's `cmdline` (os.Args), "" when absent."""
    cmdline = sequence(doc.get("cmdline", []), "$.cmdline")
    if not cmdline:
        return ""
    return text(cmdline[0], "$.cmdline[0]").replace("\\", "/").rsplit("/", 1)[-1]


PROFILE = Profile(
    name="go-expvar",
    summary="Go programs publishing runtime.MemStats through expvar at /debug/vars",
    parse=parse,
    default_path="/debug/vars",
    reference="https://pkg.go.dev/expvar and https://pkg.go.dev/runtime#MemStats",
)
