"""`pharos demo`: one demo-app and one exporter (sidecar) as child processes, stopped together.

Both children run `python -m pharos.cli ...` with this interpreter, on 127.0.0.1 only. They get
their own session, so a Ctrl-C reaches this process alone and it stops them in order (SIGTERM,
then SIGKILL after a grace period); on Linux they also get SIGTERM should this process die
without cleaning up (PR_SET_PDEATHSIG), so no child outlives it (demo/processes.py).

With `--port-base 0` the demo-app picks a free port itself; the exporter's port is found by
binding port 0 and releasing it just before the exporter starts (another program could take it in
between: the exporter would then say so and the demo stops).
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.request

from pharos_monitoring.exporter import catalogue as c

from .processes import HOST, POLL_SECONDS, Child, StartError, free_port, pharos_command, read_line_matching, stop_all, wait_until_answers

START_TIMEOUT_SECONDS = 30
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


def run(port_base: int, duration: float, traffic: float) -> int:
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGTERM, signal.SIGINT)}
    children: list[Child] = []
    try:
        code = _supervise(children, port_base, duration, traffic, stop)
    finally:
        clean = stop_all(reversed(children))
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if children:
            names = " and ".join(child.name for child in children)
            print(f"pharos demo: stopped {names}" + ("" if clean else " (some had to be killed)"), flush=True)
    return code if clean else 1


def _supervise(children: list[Child], port_base: int, duration: float, traffic: float, stop: threading.Event) -> int:
    try:
        app_url, exporter_url = _start(children, port_base, traffic, stop)
    except StartError as error:
        print(f"pharos demo: {error}", file=sys.stderr)
        return 1
    if stop.is_set():
        return 0
    _introduce(children, app_url, exporter_url, duration)
    return _wait(children, stop, duration)


def _start(children: list[Child], port_base: int, traffic: float, stop: threading.Event) -> tuple[str, str]:
    app_port = port_base
    app = Child("demo-app", pharos_command("demo-app", "--listen", f"{HOST}:{app_port}", "--traffic", f"{traffic:g}", "--memory-limit-mb", "1024", "--log-level", "warning"), capture_stdout=True)
    children.append(app)
    app_url = read_line_matching(app, _listening_url, START_TIMEOUT_SECONDS, stop)
    exporter_port = port_base + 1 if port_base else free_port()
    exporter_url = f"http://{HOST}:{exporter_port}"
    exporter = Child("exporter", pharos_command("exporter", "--target", f"{app_url}/stats", "--profile", "pharo", "--listen", f"{HOST}:{exporter_port}", "--log-level", "warning"))
    children.append(exporter)
    wait_until_answers(exporter, exporter_url + "/", START_TIMEOUT_SECONDS, stop)
    return app_url, exporter_url


def _listening_url(line: str) -> str | None:
    found = _LISTENING.search(line)
    return found.group(1) if found else None


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
