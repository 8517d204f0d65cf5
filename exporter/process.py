"""The target's process, when the exporter runs beside it: CPU, memory, threads, open files.

The process is found by pid, pid file or name (first match, the oldest one) and looked up again
when it has gone, so a restarted application is picked up without restarting the exporter.
"""

from __future__ import annotations

import logging

import psutil

from . import catalogue as c
from .config import Process
from .reading import Reading

log = logging.getLogger("pharos.exporter")


class ProcessWatcher:
    def __init__(self, spec: Process):
        self.spec = spec
        self._process: psutil.Process | None = None

    def _find(self) -> psutil.Process | None:
        if self._process is not None and self._process.is_running():
            return self._process
        self._process = None
        pid = self.spec.pid
        if self.spec.pid_file:
            try:
                with open(self.spec.pid_file, encoding="ascii") as handle:
                    pid = int(handle.read().strip())
            except (OSError, ValueError) as error:
                log.warning("pid file %s unreadable: %s", self.spec.pid_file, error)
                return None
        try:
            if pid:
                self._process = psutil.Process(pid)
            elif self.spec.name:
                matches = [p for p in psutil.process_iter(["name", "create_time"]) if p.info["name"] == self.spec.name]
                if matches:
                    self._process = min(matches, key=lambda p: p.info["create_time"])
        except psutil.Error as error:
            log.warning("process %s not found: %s", pid or self.spec.name, error)
        return self._process

    def read(self, reading: Reading) -> None:
        process = self._find()
        if process is None:
            reading.set(c.PROCESS_UP, 0.0)
            return
        try:
            with process.oneshot():
                times = process.cpu_times()
                memory = process.memory_info()
                reading.set(c.PROCESS_CPU, times.user + times.system)
                reading.set(c.PROCESS_RESIDENT_MEMORY, float(memory.rss))
                reading.set(c.PROCESS_VIRTUAL_MEMORY, float(memory.vms))
                reading.set(c.PROCESS_THREADS, float(process.num_threads()))
                reading.set(c.PROCESS_START_TIME, process.create_time())
                try:
                    reading.set(c.PROCESS_OPEN_FDS, float(process.num_fds()))
                except (psutil.AccessDenied, AttributeError):
                    pass
        except psutil.Error as error:
            log.warning("reading process %s failed: %s", process.pid, error)
            self._process = None
            reading.set(c.PROCESS_UP, 0.0)
            return
        reading.set(c.PROCESS_UP, 1.0)
