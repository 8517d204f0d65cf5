"""Look for known secret values where they must never be: files, logs, API answers, command lines.

A secret is looked for as it is, URL-encoded, JSON-escaped and base64-encoded at any alignment
(an `Authorization: Basic` header or an SMTP `AUTH PLAIN` line carries it inside a longer
base64 text), in raw bytes, so binary files (Alertmanager's protobuf notification log, Prometheus'
blocks) are read too. `Leak`s name the place, the secret and the form it was found in.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import quote

import psutil
import requests

MIN_BASE64_CHARS = 8  # shorter runs would match by chance


@dataclass(frozen=True)
class Leak:
    where: str
    secret: str  # the secret's name, never its value
    form: str

    def __str__(self) -> str:
        return f"{self.secret} ({self.form}) in {self.where}"


def _base64_runs(value: bytes) -> list[bytes]:
    """The base64 characters that depend on `value` alone, for each of the three alignments."""
    runs = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + value)
        start = -(-4 * offset // 3)  # characters before this one mix in the bytes in front
        end = 8 * (offset + len(value)) // 6  # characters after it mix in the bytes behind
        run = encoded[start:end]
        if len(run) >= MIN_BASE64_CHARS:
            runs.append(run)
    return runs


def forms(value: str) -> dict[str, bytes]:
    """form name -> bytes to look for."""
    raw = value.encode()
    found = {"as is": raw, "URL-encoded": quote(value, safe="").encode(), "JSON-escaped": json.dumps(value)[1:-1].encode()}
    found |= {f"base64 (alignment {index})": run for index, run in enumerate(_base64_runs(raw))}
    return found


class SecretScanner:
    """Knows the secrets (name -> value) and collects every leak found by its `scan_*` methods."""

    def __init__(self, secrets: dict[str, str]):
        assert secrets and all(len(value) >= 12 for value in secrets.values()), "short values would match by chance"
        self.secrets = secrets
        self._needles = [(name, form, needle) for name, value in secrets.items() for form, needle in forms(value).items()]
        self.leaks: list[Leak] = []
        self.places = 0  # how many places were scanned: a scan of nothing finds nothing

    def scan(self, where: str, data: bytes | str, only: Iterable[str] | None = None) -> None:
        """Look for the secrets (or only those named in `only`) in one blob."""
        blob = data.encode(errors="surrogateescape") if isinstance(data, str) else data
        wanted = set(only) if only is not None else None
        self.places += 1
        seen = set()
        for name, form, needle in self._needles:
            if (wanted is None or name in wanted) and name not in seen and needle in blob:
                seen.add(name)
                self.leaks.append(Leak(where, name, form))

    def scan_files(self, root: Path, skip: Iterable[Path] = ()) -> int:
        """Every regular file under `root` (recursively) but those under `skip`; how many."""
        skipped = [Path(path).resolve() for path in skip]
        count = 0
        for path in sorted(Path(root).rglob("*")):
            resolved = path.resolve()
            if not path.is_file() or path.is_symlink() or any(resolved == s or s in resolved.parents for s in skipped):
                continue
            try:
                data = path.read_bytes()
            except OSError:  # removed meanwhile (a WAL segment, a temporary file): nothing left to leak
                continue
            self.scan(str(path), data)
            count += 1
        return count

    def scan_process(self, process: psutil.Process, environ_excludes: Iterable[str] = ()) -> None:
        """Its command line (no secret at all) and environment (none but `environ_excludes`, the
        secrets a user may legitimately pass by environment variable)."""
        name = f"pid {process.pid} ({process.name()})"
        self.scan(f"command line of {name}", "\0".join(process.cmdline()))
        allowed = set(environ_excludes)
        self.scan(f"environment of {name}", "\0".join(f"{k}={v}" for k, v in process.environ().items()), [n for n in self.secrets if n not in allowed])

    def scan_url(self, url: str, timeout: float = 10) -> None:
        answer = requests.get(url, timeout=timeout)
        answer.raise_for_status()
        self.scan(f"answer of {url}", answer.content)

    def scan_prometheus(self, base: str) -> None:
        """What anyone reaching a Prometheus reads: its configuration, flags, targets, rules, alerts,
        and every label value it stores (the TSDB's strings, whatever its compression on disk)."""
        for path in ("/api/v1/status/config", "/api/v1/status/flags", "/api/v1/targets", "/api/v1/rules", "/api/v1/alerts", "/api/v1/alertmanagers"):
            self.scan_url(base + path)
        for label in requests.get(base + "/api/v1/labels", timeout=10).json()["data"]:
            self.scan_url(f"{base}/api/v1/label/{label}/values")

    def scan_alertmanager(self, base: str) -> None:
        for path in ("/api/v2/status", "/api/v2/alerts", "/api/v2/alerts/groups", "/api/v2/silences", "/metrics"):
            self.scan_url(base + path)

    def report(self) -> str:
        return "\n".join(str(leak) for leak in self.leaks)


def process_tree(pids: Iterable[int]) -> Iterator[psutil.Process]:
    """The processes `pids` and all their descendants that still run, each once."""
    seen = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in family:
            if process.pid not in seen:
                seen.add(process.pid)
                yield process


def pharos_up_secrets(state: Path) -> dict[str, str]:
    """The secrets a `pharos up` wrote for itself: file name in STATE/secrets -> value. A webhook
    URL counts twice: whole, and its last path segment (the token, the part that is secret)."""
    found = {}
    for path in sorted((state / "secrets").iterdir()):
        value = path.read_text().strip()
        found[path.name] = value
        if "/services/" in value:
            found[path.name + " token"] = value.rsplit("/", 1)[1]
    return found


def scan_pharos_up(scanner: SecretScanner, state: Path, described: dict, output: Path) -> None:
    """Everything of a running `pharos up` but its own secret files: the state directory (logs,
    generated configuration, data of Prometheus and Alertmanager, received messages), its
    output, what its Prometheus and Alertmanager serve, and the command line and environment of
    every process it started (it passes every secret by file, so none may be in an environment)."""
    scanner.scan_files(state, skip=[state / "secrets"])
    scanner.scan(str(output), output.read_bytes())
    for prometheus in described["prometheus"].values():
        scanner.scan_prometheus(prometheus)
    scanner.scan_alertmanager(described["alertmanager"])
    for process in process_tree([described["pid"], *(child["pid"] for child in described["children"])]):
        try:
            scanner.scan_process(process)
        except psutil.NoSuchProcess:
            continue
