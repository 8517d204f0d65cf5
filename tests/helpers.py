"""Helpers shared by the tests."""

from __future__ import annotations

import shutil
import subprocess

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool_check_metrics(text: str | bytes) -> None:
    """Lint an exposition with `promtool check metrics`; AssertionError with promtool's output if it fails."""
    data = text.encode() if isinstance(text, str) else text
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=data, capture_output=True, timeout=60)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace").strip()
        raise AssertionError(f"promtool check metrics failed (exit {result.returncode}):\n{output}")


# --- raw loopback servers: for targets that misbehave in ways http.server cannot -------------
import socket  # noqa: E402 - kept beside the code that uses it
import threading  # noqa: E402
import time  # noqa: E402

LOOPBACK_THREAD_PREFIX = "loopback-"


class RawServer:
    """A TCP server on 127.0.0.1 (ephemeral port) that hands each accepted connection to
    `behave(connection, server)` in a thread of its own.

    Behaviours must end by themselves: they wait with `server.pause(seconds)`, which returns
    early (False) once the server stops. `accepts` counts connections; `requests` keeps the
    request heads read with `read_request`. Threads are named `loopback-...`, so leak checks can
    tell them apart from the exporter's.
    """

    def __init__(self, behave):
        self.behave = behave
        self.accepts = 0
        self.requests: list[dict] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._accepter = threading.Thread(target=self._accept, name=LOOPBACK_THREAD_PREFIX + "accept", daemon=True)
        self._accepter.start()

    def url(self, path: str = "/stats") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def pause(self, seconds: float) -> bool:
        """Wait `seconds`; False when the server is stopping."""
        return not self._stop.wait(seconds)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            self.accepts += 1
            thread = threading.Thread(target=self._serve, args=(connection,), name=LOOPBACK_THREAD_PREFIX + "conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            self.behave(connection, self)
        except OSError:
            pass  # the client went away: exactly what many of these tests provoke
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._accepter.join(timeout=5)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def read_request(connection: socket.socket, server: RawServer, limit: float = 5.0) -> dict | None:
    """Read one request head (and no body); returns {'line': ..., 'headers': {lower-name: value}}."""
    connection.settimeout(0.05)
    data = b""
    ends = time.monotonic() + limit
    while b"\r\n\r\n" not in data and time.monotonic() < ends and server.pause(0):
        try:
            chunk = connection.recv(4096)
        except socket.timeout:
            continue
        if not chunk:
            return None
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    if not head:
        return None
    line, *header_lines = head.split("\r\n")
    headers = {}
    for header in header_lines:
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
    request = {"line": line, "headers": headers}
    server.requests.append(request)
    return request


def hold_open(connection: socket.socket, server: RawServer, limit: float = 30.0) -> None:
    """Keep the connection open, sending nothing, until the client closes it or the server stops."""
    connection.settimeout(0.05)
    ends = time.monotonic() + limit
    while time.monotonic() < ends and server.pause(0):
        try:
            if connection.recv(4096) == b"":
                return
        except socket.timeout:
            continue


def http_response(status: str, body: bytes = b"", headers: dict[str, str] | None = None, length: bool = True) -> bytes:
    """An HTTP/1.1 response that closes the connection; `length=False` leaves out Content-Length."""
    lines = [f"HTTP/1.1 {status}", "Connection: close"]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exporter_threads() -> list[threading.Thread]:
    """Live threads that are not a loopback server's."""
    return [thread for thread in threading.enumerate() if not thread.name.startswith(LOOPBACK_THREAD_PREFIX)]


def wait_until(condition, limit: float = 10.0, step: float = 0.05) -> bool:
    """Poll `condition` until it holds or `limit` seconds pass; returns its last value."""
    ends = time.monotonic() + limit
    while True:
        if condition():
            return True
        if time.monotonic() >= ends:
            return False
        time.sleep(step)


def wait_for(condition, seconds: float, interval: float = 0.25):
    """Poll `condition()` until it returns something truthy, at most `seconds`; return the last value
    (where `wait_until` returns only whether it held)."""
    deadline = time.monotonic() + seconds
    value = condition()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = condition()
    return value
