"""Fixtures shared by the tests."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@pytest.fixture
def loopback_server():
    """Serve on 127.0.0.1 (ephemeral port) until the test ends; returns the base URL.

    `loopback_server(handler_class)` runs a BaseHTTPRequestHandler subclass;
    `loopback_server(body, content_type=..., status=...)` answers every GET with those bytes.
    """
    running = []

    def start(handler, content_type: str = "application/json", status: int = 200) -> str:
        if isinstance(handler, (bytes, str)):
            handler = static_handler(handler, content_type, status)
        server = _QuietServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def static_handler(body: bytes | str, content_type: str = "application/json", status: int = 200):
    """A handler class that answers every GET with `body`."""
    payload = body.encode() if isinstance(body, str) else body

    class Static(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    return Static


@pytest.fixture(scope="session")
def live_stack():
    """A running stack shared by the session: demo services, sidecar exporters, Prometheus and
    Alertmanager on 127.0.0.1 (tests/stack.py); every process is stopped at the end."""
    from stack import LiveStack

    stack = LiveStack().start()
    try:
        yield stack
    finally:
        stack.stop()
