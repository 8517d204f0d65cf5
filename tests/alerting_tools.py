"""Running promtool, amtool and a real Alertmanager from tests, on loopback only."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # promtool test rules of the SLO windows (days of series) takes ~2 minutes on a loaded 2-core machine
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=cwd)


def assert_ok(result: subprocess.CompletedProcess) -> str:
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, f"{' '.join(result.args)} failed (exit {result.returncode}):\n{output}"
    return output


def route_receivers(config: Path, labels: dict[str, str]) -> list[str]:
    """The receivers `amtool config routes test` resolves for an alert with these labels."""
    pairs = [f"{key}={value}" for key, value in sorted(labels.items())]
    result = run(AMTOOL, "config", "routes", "test", f"--config.file={config}", *pairs)
    assert_ok(result)
    return sorted(result.stdout.strip().split(","))


@contextlib.contextmanager
def running_alertmanager(config: Path, workdir: Path, port: int = 0):
    """A real Alertmanager on 127.0.0.1 (on `port`, else one chosen by the kernel); yields its base
    URL. With a port, it is also the external URL, which links in notifications point to."""
    log_path = workdir / "alertmanager.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={workdir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                *([f"--web.external-url=http://127.0.0.1:{port}"] if port else []),
                "--cluster.listen-address=",  # no gossip port: a single instance
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield _wait_for_address(process, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_for_address(process: subprocess.Popen, log_path: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r'msg="Listening on" address=(127\.0\.0\.1:\d+)', log_path.read_text())
        if match:
            return f"http://{match.group(1)}"
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"Alertmanager did not start:\n{log_path.read_text()}")


def post_alerts(base_url: str, alerts: list[dict]) -> None:
    request = urllib.request.Request(
        f"{base_url}/api/v2/alerts", data=json.dumps(alerts).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def alert_states(base_url: str) -> dict[str, dict]:
    """alertname -> the `status` Alertmanager reports (state, inhibitedBy, silencedBy)."""
    with urllib.request.urlopen(f"{base_url}/api/v2/alerts", timeout=10) as response:
        return {alert["labels"]["alertname"]: alert["status"] for alert in json.load(response)}
