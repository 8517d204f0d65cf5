"""The README's ```sh blocks, run as written on this machine (after scripts/setup.sh).

Every command line of every block is run, except the few listed in SKIPPED (with the reason) and
the long-running ones in LONG_RUNNING, which are started, checked to come up, and stopped. What
the test changes, and only that: loopback ports become free ones (the machine is shared), and
`pharos up` and the commands that talk to it get a private --state-dir (and render a temporary
--out).
"""

from __future__ import annotations

import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from pharos_monitoring.local.local_stack import Ports

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

SKIPPED = {
    "./scripts/test.sh": "the whole test suite, this test among them; CI runs it (.ci/run)",
    ".venv/bin/pharos dashboards push": "needs a Grafana, which no reachable registry has; "
    "tests/test_dashboards_push.py pushes to a loopback stand-in",
}
LONG_RUNNING = {
    "./scripts/demo.sh": "runs until Ctrl-C: test_demo_script_comes_up starts it with --duration",
    ".venv/bin/pharos up": "runs until Ctrl-C: test_stack_commands_against_pharos_up starts it",
}
# Commands that talk to a running `pharos up`: run by test_stack_commands_against_pharos_up.
NEEDS_PHAROS_UP = (".venv/bin/pharos fault", ".venv/bin/pharos dashboards render")
PHAROS_UP_PORT_BASE = 19090  # local_stack.DEFAULT_PORT_BASE, the ports the README shows


def sh_blocks() -> list[list[str]]:
    """The command lines of each ```sh block (comment lines and blank lines dropped)."""
    blocks = re.findall(r"^```sh\n(.*?)^```", README.read_text(), flags=re.S | re.M)
    return [[line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")] for block in blocks]


def command_of(line: str) -> str:
    return line.split("#", 1)[0].strip()


def listed(line: str, table) -> str | None:
    command = command_of(line)
    return next((prefix for prefix in table if command == prefix or command.startswith(prefix + " ")), None)


def runnable_blocks() -> list[tuple[int, list[str]]]:
    """The blocks with lines this test runs directly, without the lines handled elsewhere."""
    kept = []
    for index, lines in enumerate(sh_blocks()):
        runnable = [line for line in lines if not listed(line, SKIPPED) and not listed(line, LONG_RUNNING) and not listed(line, NEEDS_PHAROS_UP)]
        if runnable:
            kept.append((index, runnable))
    return kept


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_base(span: int = max(Ports.from_base(0, ha=True).all().values()) + 1) -> int:
    """A base N with N..N+span-1 all free on loopback."""
    for _ in range(50):
        base = free_port()
        if base + span > 65535:
            continue
        try:
            sockets = []
            for port in range(base, base + span):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    pytest.fail(f"no {span} consecutive free ports on loopback")


def with_free_ports(script: str, ports: dict[str, str]) -> str:
    """Every 127.0.0.1:PORT of the README on a free port, the same one for the same README port."""

    def replace(match: re.Match) -> str:
        port = match.group(1)
        ports.setdefault(port, str(free_port()))
        return f"127.0.0.1:{ports[port]}"

    return re.sub(r"127\.0\.0\.1:(\d{2,5})", replace, script)


def run_script(lines: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    # Background jobs (`cmd &`) are stopped however the script ends.
    script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + "\n".join(lines) + "\n"
    return subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_readme_starts_with_the_two_setup_commands():
    text = README.read_text()
    first_block = text.index("```")
    assert text[first_block:].startswith("```sh\n")
    assert [command_of(line) for line in sh_blocks()[0]] == ["./scripts/demo.sh", "./scripts/test.sh"]


def test_every_pharos_command_is_called_from_the_venv():
    """Copy-pasteable after scripts/setup.sh: `pharos` alone is not on the PATH."""
    for lines in sh_blocks():
        for line in lines:
            assert not re.search(r"(^|[;&|]\s*)pharos(\s|$)", command_of(line)), f"README calls `pharos` without .venv/bin/: {line}"


@pytest.mark.parametrize("index,lines", runnable_blocks(), ids=lambda value: f"block{value}" if isinstance(value, int) else "")
def test_block_runs_as_written(index, lines):
    ports: dict[str, str] = {}
    script = [with_free_ports(line, ports) for line in lines]
    result = run_script(script)
    assert result.returncode == 0, f"README block {index} failed:\n{chr(10).join(script)}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    if any("pharos_scrape_success" in line for line in lines):
        # The sidecar and the probe both reached the demo service.
        assert re.findall(r"^pharos_scrape_success\{.*\} 1\.0$", result.stdout, flags=re.M), result.stdout


def test_nothing_is_skipped_that_the_readme_does_not_say():
    commands = [command_of(line) for lines in sh_blocks() for line in lines]
    for table in (SKIPPED, LONG_RUNNING, NEEDS_PHAROS_UP):
        for prefix in table:
            assert any(command == prefix or command.startswith(prefix + " ") for command in commands), f"{prefix!r} is no longer in the README"


@pytest.mark.slow
def test_demo_script_comes_up():
    """./scripts/demo.sh as in the README, on free ports and for a few seconds."""
    result = subprocess.run(
        ["./scripts/demo.sh", "--port-base", "0", "--duration", "6"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"http://127\.0\.0\.1:\d+", result.stdout), result.stdout


@pytest.mark.slow
def test_stack_commands_against_pharos_up(tmp_path):
    """`pharos up` as in the README (free ports, private state directory), then the README's
    commands that need it: the faults and the dashboards' render."""
    base = free_port_base()
    state_dir = tmp_path / "state"

    def adapted(line: str) -> str:
        line = re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{int(m.group(1)) - PHAROS_UP_PORT_BASE + base}", line)
        line = line.replace(".venv/bin/pharos fault ", f".venv/bin/pharos fault --state-dir {state_dir} ")
        return line.replace("--out build/shots", f"--out {tmp_path / 'shots'}")  # keep the checkout's build/ out of a shared run

    up_line = next(command_of(line) for lines in sh_blocks() for line in lines if listed(line, {".venv/bin/pharos up": ""}))
    up = subprocess.Popen(
        [*shlex.split(up_line), "--fast", "--port-base", str(base), "--state-dir", str(state_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        prometheus = f"http://127.0.0.1:{base}"
        _wait_for_data(prometheus, up)
        needing_up = [adapted(line) for lines in sh_blocks() for line in lines if listed(line, NEEDS_PHAROS_UP)]
        assert needing_up
        for line in needing_up:
            result = run_script([line], timeout=180)
            assert result.returncode == 0, f"{line}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        assert sorted(path.name for path in (tmp_path / "shots").iterdir()), "render wrote no PNG"
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()


def _wait_for_data(prometheus: str, up: subprocess.Popen, limit: float = 120) -> None:
    """Until the production Prometheus has scraped every sidecar exporter successfully."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if up.poll() is not None:
            pytest.fail(f"pharos up stopped with status {up.returncode}: {up.stdout.read()}")
        try:
            answer = requests.get(f"{prometheus}/api/v1/query", params={"query": "min(pharos_scrape_success) == 1"}, timeout=5).json()
            if answer["data"]["result"]:
                return
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(1)
    pytest.fail(f"{prometheus} has no successful scrape after {limit} s")
