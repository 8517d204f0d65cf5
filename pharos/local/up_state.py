"""The state directory of `pharos up`: what it owns there, and `up.json`, which says what runs where.

    STATE/.pharos-up         marks the directory as ours (nothing else is ever deleted)
    STATE/stack.yml          the stack file `pharos build` reads
    STATE/secrets/           Slack webhook URLs, one file per channel (mode 0600)
    STATE/config/ENV/        what `pharos build` wrote for each environment
    STATE/config/exporter-*.yml  each sidecar exporter's target and its app's pid
    STATE/data/              Prometheus and Alertmanager storage
    STATE/logs/              one log per process
    STATE/mail/, slack/      what the sinks received (index.jsonl + one file per message)
    STATE/up.json            written once everything answers, removed at shutdown

`pharos fault` and tests read up.json to find services by name.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import psutil

MARKER = ".pharos-up"
STATE_FILE = "up.json"
OWNED = ("stack.yml", "secrets", "config", "data", "logs", "mail", "slack", STATE_FILE)


class StateError(Exception):
    """The state directory cannot be used; the message says why and what to do."""


def prepare(directory: Path) -> None:
    """Make `directory` ready for a fresh run: created if missing, our leftovers removed."""
    if directory.exists() and not directory.is_dir():
        raise StateError(f"--state-dir {directory} is a file; give a directory")
    if directory.exists() and any(directory.iterdir()) and not (directory / MARKER).exists():
        raise StateError(
            f"--state-dir {directory} is not empty and was not made by pharos up (no {MARKER} in it); "
            "choose a new or empty directory"
        )
    running = running_pid(directory)
    if running:
        raise StateError(f"another pharos up (pid {running}) uses {directory}; stop it first or choose another --state-dir")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).touch()
    for name in OWNED:
        path = directory / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for name in ("data", "logs"):
        (directory / name).mkdir()


def running_pid(directory: Path) -> int | None:
    """The pid of the pharos up that wrote directory/up.json, if it still runs."""
    try:
        pid = int(json.loads((directory / STATE_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        process = psutil.Process(pid)
        alive = process.status() != psutil.STATUS_ZOMBIE and "up" in process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        alive = False
    return pid if alive else None


def write(directory: Path, state: dict) -> None:
    temporary = directory / (STATE_FILE + ".tmp")
    temporary.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, directory / STATE_FILE)  # readers never see half a file


def remove(directory: Path) -> None:
    try:
        (directory / STATE_FILE).unlink()
    except FileNotFoundError:
        pass


def read(directory: Path) -> dict:
    """up.json of a running pharos up, or StateError saying what is wrong."""
    path = directory / STATE_FILE
    if not path.exists():
        raise StateError(f"no pharos up runs with state directory {directory} (no {path}); start one with: pharos up --state-dir {directory}")
    try:
        state = json.loads(path.read_text())
    except ValueError as error:
        raise StateError(f"{path} is not valid JSON ({error}); restart pharos up") from None
    if running_pid(directory) is None:
        raise StateError(f"the pharos up that wrote {path} (pid {state.get('pid')}) is no longer running; start it again")
    return state
