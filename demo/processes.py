"""Child processes that never outlive their parent: started in their own session, stopped together.

`pharos demo` (demo/supervisor.py) and `pharos up` (pharos/local/up.py) run their parts as children.
Every child gets its own session (and so its own process group): a Ctrl-C in the terminal reaches
the parent alone, which then stops the children in order. On Linux a child also gets SIGTERM
should the parent die without cleaning up (PR_SET_PDEATHSIG). Stopping is SIGTERM, then SIGKILL
of the whole process group once a shared grace period is over.

PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so children are started from
the main thread; and because `preexec_fn` is unsafe once other threads run, the parents here run
no threads of their own (`pharos up` runs even its mail and Slack sinks as a child).
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Callable, Iterable

HOST = "127.0.0.1"
STOP_GRACE_SECONDS = 10
POLL_SECONDS = 0.25


class StartError(Exception):
    """A child could not start; the message names it and says why."""


def parent_death_signal():
    """preexec_fn that asks Linux to SIGTERM the child when its parent dies; None elsewhere."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def arm() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return arm


def pharos_command(*arguments: str) -> list[str]:
    """`pharos ARGUMENTS` with this interpreter, whether or not the console script is on PATH."""
    return [sys.executable, "-m", "pharos_monitoring.cli", *arguments]


def child_environment() -> dict[str, str]:
    # PHAROS_* variables configure the exporter; a child gets its configuration from its flags only.
    return {key: value for key, value in os.environ.items() if not key.startswith("PHAROS_")}


class Child:
    """One child process. Its stderr goes to `log` (a file path) or to ours; its stdout is
    captured (`capture_stdout`), passed through to ours (`inherit_stdout`), or goes where stderr goes."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        log: Path | None = None,
        capture_stdout: bool = False,
        inherit_stdout: bool = False,
        environment: dict[str, str] | None = None,
    ):
        self.name = name
        self.command = command
        self.log = log
        log_file = open(log, "ab") if log is not None else None
        # Without a log, stderr is ours (a child's complaints reach the user) and stdout is dropped.
        stderr: IO | None = log_file
        stdout: int | IO | None = log_file if log_file is not None else subprocess.DEVNULL
        if capture_stdout:
            stdout = subprocess.PIPE
        elif inherit_stdout:
            stdout = None
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env={**child_environment(), **(environment or {})},  # e.g. REPLICA of a Prometheus pair
                start_new_session=True,
                preexec_fn=parent_death_signal(),
            )
        except OSError as error:
            raise StartError(f"cannot start {name} ({command[0]}): {error.strerror or error}") from None
        finally:
            if log_file is not None:
                log_file.close()  # the child holds its own descriptor

    @property
    def pid(self) -> int:
        return self.process.pid

    def exited(self) -> int | None:
        return self.process.poll()

    def why_it_stopped(self) -> str:
        code = self.process.wait()
        where = f"; see {self.log}" if self.log else " (see its messages above)"
        return f"{self.name} exited with code {code}{where}"

    def terminate(self) -> None:
        self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, signum: int) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signum)  # the child leads its own group: grandchildren too
        except ProcessLookupError:
            pass

    def close(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()


def stop_all(children: Iterable[Child], grace: float = STOP_GRACE_SECONDS) -> bool:
    """SIGTERM every child (in the order given), wait at most `grace` seconds for all of them,
    SIGKILL the rest. True when every child stopped by itself."""
    children = list(children)
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace
    clean = True
    for child in children:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            clean = False
            child.kill()
            child.process.wait(timeout=grace)
        finally:
            child.close()
    return clean


def free_port(host: str = HOST) -> int:
    """A port nothing listens on now. Another program could take it before our child binds it:
    the child then says so and the start fails with its message."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def free_ports(count: int, host: str = HOST) -> list[int]:
    """`count` distinct free ports (all held open until all are chosen, so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(probe)
            probe.bind((host, 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def read_line_matching(child: Child, match: Callable[[str], str | None], timeout: float, stop: threading.Event) -> str:
    """Read the child's captured stdout until `match(line)` gives a result; "" once `stop` is set."""
    stream = child.process.stdout
    assert stream is not None, f"{child.name} was started without capture_stdout"
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StartError(f"{child.name} did not report its address within {timeout:g} s")
        readable, _, _ = select.select([stream], [], [], min(remaining, POLL_SECONDS))
        if readable:
            line = stream.readline().decode(errors="replace")
            if not line:
                raise StartError(f"{child.name} exited with code {child.process.wait()} before listening (see its messages above)")
            found = match(line)
            if found:
                return found
    return ""


def wait_until_answers(child: Child, url: str, timeout: float, stop: threading.Event, ready: Callable[[int], bool] | None = None) -> None:
    """Poll `url` until the child answers (any status, or one `ready(status)` accepts)."""
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        if child.exited() is not None:
            raise StartError(f"{child.why_it_stopped()} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, OSError):
            status = 0
        if status and (ready is None or ready(status)):
            return
        if time.monotonic() > deadline:
            raise StartError(f"{child.name} did not answer at {url} within {timeout:g} s" + (f"; see {child.log}" if child.log else ""))
        stop.wait(POLL_SECONDS)


def wait_until_listening(child: Child, host: str, port: int, timeout: float, stop: threading.Event) -> None:
    """Wait until a TCP connection to host:port succeeds (for servers that do not speak HTTP)."""
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        if child.exited() is not None:
            raise StartError(f"{child.why_it_stopped()} while starting")
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise StartError(f"{child.name} did not listen on {host}:{port} within {timeout:g} s" + (f"; see {child.log}" if child.log else ""))
        stop.wait(POLL_SECONDS)
