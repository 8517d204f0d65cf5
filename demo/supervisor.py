"""`pharos demo`: one demo-app and one exporter (sidecar) as child processes, stopped together.

Both children run `python -m pharos.cli ...` with this interpreter, on 127.0.0.1 only. They get
their own session, so a Ctrl-C reaches this process alone and it stops them in order (SIGTERM,
then SIGKILL after a grace period); on Linux they also get SIGTERM should this process die
without cleaning up (PR_SET_PDEATHSIG), so no child outlives it.

With `--port-base 0` the demo-app picks a free port itself; the exporter's port is found by
binding port 0 and releasing it just before the exporter starts (another program could take it in
between: the exporter would then say so and the demo stops).
"""

from __future__ import annotations

import ctypes
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from exporter import catalogue as c

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 30
STOP_GRACE_SECONDS = 10
POLL_SECONDS = 0.25
SAMPLE_METRICS = (
    c.SCRAPE_SUCCESS.name,
    c.RUNTIME_INFO.name,
    c.GC_COLLECTIONS.name,
    c.GC_DURATION.name,
    c.MEMORY_SPACE.name,
    c.HTTP_ACTIVE_REQUESTS.name,
    c.HTTP_REQUEST_DURATION.count,
    c.APP_HEALTHY.name,
)
SAMPLE_LINES = 16
_LISTENING = re.compile(r"listening on (http://\S+)")


class DemoError(Exception):
    """The demo could not start; the message says which part and why."""


def _parent_death_signal():
    """preexec_fn that asks Linux to SIGTERM the child when its parent dies; None elsewhere."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def arm() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return arm


class Child:
    def __init__(self, name: str, arguments: list[str], capture_stdout: bool = False):
        self.name = name
        environment = {key: value for key, value in os.environ.items() if not key.startswith("PHAROS_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pharos.cli", *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
            env=environment,
            start_new_session=True,
            preexec_fn=_parent_death_signal(),
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def exited(self) -> int | None:
        return self.process.poll()

    def stop(self) -> bool:
        """SIGTERM, then SIGKILL after the grace period; True when it stopped by itself."""
        try:
            if self.process.poll() is not None:
                return True
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS)
                return True
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_GRACE_SECONDS)
                return False
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()


def run(port_base: int, duration: float, traffic: float) -> int:
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGTERM, signal.SIGINT)}
    children: list[Child] = []
    try:
        code = _supervise(children, port_base, duration, traffic, stop)
    finally:
        clean = all([child.stop() for child in reversed(children)])
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if children:
            names = " and ".join(child.name for child in children)
            print(f"pharos demo: stopped {names}" + ("" if clean else " (some had to be killed)"), flush=True)
    return code if clean else 1


def _supervise(children: list[Child], port_base: int, duration: float, traffic: float, stop: threading.Event) -> int:
    try:
        app_url, exporter_url = _start(children, port_base, traffic, stop)
    except DemoError as error:
        print(f"pharos demo: {error}", file=sys.stderr)
        return 1
    if stop.is_set():
        return 0
    _introduce(children, app_url, exporter_url, duration)
    return _wait(children, stop, duration)


def _start(children: list[Child], port_base: int, traffic: float, stop: threading.Event) -> tuple[str, str]:
    app_port = port_base
    app = Child("demo-app", ["demo-app", "--listen", f"{HOST}:{app_port}", "--traffic", f"{traffic:g}", "--memory-limit-mb", "1024", "--log-level", "warning"], capture_stdout=True)
    children.append(app)
    app_url = _listening_url(app, time.monotonic() + START_TIMEOUT_SECONDS, stop)
    exporter_port = port_base + 1 if port_base else _free_port()
    exporter_url = f"http://{HOST}:{exporter_port}"
    exporter = Child("exporter", ["exporter", "--target", f"{app_url}/stats", "--profile", "pharo", "--listen", f"{HOST}:{exporter_port}", "--log-level", "warning"])
    children.append(exporter)
    _wait_until_answers(exporter, exporter_url + "/", time.monotonic() + START_TIMEOUT_SECONDS, stop)
    return app_url, exporter_url


def _listening_url(child: Child, deadline: float, stop: threading.Event) -> str:
    stream = child.process.stdout
    assert stream is not None
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DemoError(f"{child.name} did not report its address within {START_TIMEOUT_SECONDS} s")
        readable, _, _ = select.select([stream], [], [], min(remaining, POLL_SECONDS))
        if readable:
            line = stream.readline().decode(errors="replace")
            if not line:
                raise DemoError(f"{child.name} exited with code {child.process.wait()} before listening (see its messages above)")
            found = _LISTENING.search(line)
            if found:
                return found.group(1)
    return ""


def _wait_until_answers(child: Child, url: str, deadline: float, stop: threading.Event) -> None:
    while not stop.is_set():
        code = child.exited()
        if code is not None:
            raise DemoError(f"{child.name} exited with code {code} while starting (see its messages above)")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered, even if not with 200
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise DemoError(f"{child.name} did not answer at {url} within {START_TIMEOUT_SECONDS} s")
        stop.wait(POLL_SECONDS)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _introduce(children: list[Child], app_url: str, exporter_url: str, duration: float) -> None:
    app, exporter = children
    print(
        f"""pharos demo: running
  demo-app (pid {app.pid}): {app_url}/
      stats:   curl {app_url}/stats
      health:  curl {app_url}/health
      faults:  curl {app_url}/faults
               curl -X POST -d '{{"error_ratio": 0.2, "latency_ms": 300}}' {app_url}/faults
  exporter (pid {exporter.pid}): {exporter_url}/
      metrics: curl {exporter_url}/metrics
      health:  curl {exporter_url}/health
Some of what the exporter now exposes:""",
        flush=True,
    )
    for line in _metrics_sample(exporter_url + "/metrics"):
        print("  " + line)
    ending = f"stopping after {duration:g} s" if duration else "Ctrl-C stops both"
    print(f"pharos demo: {ending}", flush=True)


def _metrics_sample(url: str) -> list[str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            text = response.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        return [f"(could not read {url}: {error})"]
    lines = [line for line in text.splitlines() if line and not line.startswith("#") and line.split("{")[0].split(" ")[0] in SAMPLE_METRICS]
    return lines[:SAMPLE_LINES] or ["(no samples yet)"]


def _wait(children: list[Child], stop: threading.Event, duration: float) -> int:
    ends = time.monotonic() + duration if duration else None
    while not stop.wait(POLL_SECONDS):
        for child in children:
            code = child.exited()
            if code is not None:
                print(f"pharos demo: {child.name} exited unexpectedly with code {code}; stopping", file=sys.stderr)
                return 1
        if ends is not None and time.monotonic() >= ends:
            break
    return 0
