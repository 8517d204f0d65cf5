"""`pharos up` as a test starts it: a child process with its own state directory, waited for until
it has written up.json (bounded), and stopped with SIGTERM (then SIGKILL) at the end. Everything it
runs listens on 127.0.0.1, on ports picked free (`--port-base 0`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

START_SECONDS = 90  # the whole stack answering, on a busy 2-core machine
STOP_SECONDS = 60


class PharosUp:
    def __init__(self, state: Path, output: Path, *flags: str):
        self.state = state
        self.output = output
        with open(output, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pharos_monitoring.cli", "up", "--port-base", "0", "--state-dir", str(state), *flags],
                stdout=log,
                stderr=subprocess.STDOUT,
                # The stack file decides everything: no PHAROS_* setting of the caller's leaks in.
                env={key: value for key, value in os.environ.items() if not key.startswith("PHAROS_")},
            )

    def wait_described(self, seconds: float = START_SECONDS) -> dict:
        """up.json once `pharos up` has started everything; AssertionError with its output if not."""
        up_json = self.state / "up.json"
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.process.poll() is None and not up_json.exists():
            time.sleep(0.2)
        if self.process.poll() is None and up_json.exists():
            return json.loads(up_json.read_text())
        self.stop()
        raise AssertionError(f"pharos up did not come up within {seconds:g} s:\n{self.log()}")

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def running(self) -> bool:
        return self.process.poll() is None

    def wait_said(self, text: str, seconds: float) -> bool:
        """Whether `pharos up` printed `text` within `seconds` (bounded; False as soon as it exits without)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if self.process.poll() is not None:
                return text in self.log()
            time.sleep(0.2)
        return text in self.log()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout=STOP_SECONDS)
