"""Targets for the soak benchmark, healthy and faulty, in a process of their own.

    python bench/fault_targets.py STATS_FILE --slow-seconds S [--max-seconds N]

serves on two ports of 127.0.0.1 (printed as `ports MAIN STUCK` once listening), the same paths on
both; the benchmark sends stuck requests to the second, so that the exporter's connections to stuck
targets can be counted on its side (by port):
- /healthy/<n>/stats   the stats document in STATS_FILE (keep-alive);
- /garbage/<n>/stats   random bytes (even n) or an HTML login page (odd n), status 200;
- /slow/<n>/stats      the stats document, after S seconds (set S beyond the exporter's timeout);
- /stuck/<n>/stats     nothing at all: the request is held open until the client leaves (or the
                       process ends).
Every wait ends when standard input closes (the benchmark ended or died) or after --max-seconds.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HTML = b"<!doctype html><html><head><title>Sign in</title></head><body><form>Password</form></body></html>"
STOP = threading.Event()


def make_handler(stats: bytes, slow_seconds: float):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30  # idle keep-alive connections end their thread
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            kind, _, _ = self.path.strip("/").partition("/")
            if kind == "healthy":
                self._answer(stats, "application/json")
            elif kind == "garbage":
                number = int("".join(ch for ch in self.path if ch.isdigit()) or 0)
                self._answer(os.urandom(2048) if number % 2 == 0 else HTML, "application/json" if number % 2 == 0 else "text/html")
            elif kind == "slow":
                if not STOP.wait(slow_seconds):
                    self._answer(stats, "application/json")
            elif kind == "stuck":
                self._hold()
            else:
                self.send_error(404)

        def _hold(self) -> None:
            try:
                # Until the client closes its end (the exporter gave up) or the process stops.
                while not STOP.is_set():
                    readable, _, _ = select.select([self.connection], [], [], 0.2)
                    if readable and not self.connection.recv(1024, 0):
                        break
            except OSError:
                pass
            self.close_connection = True

        def _answer(self, body: bytes, content_type: str) -> None:
            try:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                self.close_connection = True  # the exporter gave up on a slow answer

        def log_message(self, format, *args) -> None:  # noqa: A002 - quiet: the benchmark reads stdout
            pass

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stats", help="the stats document healthy and slow paths answer")
    parser.add_argument("--slow-seconds", type=float, required=True, help="how long /slow paths wait before answering")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="exit after so long in any case")
    args = parser.parse_args()
    with open(args.stats, "rb") as handle:
        stats = handle.read()
    handler = make_handler(stats, args.slow_seconds)
    servers = []
    for _ in range(2):
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.request_queue_size = 256
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    print("ports " + " ".join(str(server.server_address[1]) for server in servers), flush=True)
    stdin_closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stdin_closed.set()), daemon=True).start()
    stdin_closed.wait(args.max_seconds)
    STOP.set()
    for server in servers:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
