"""A loopback HTTP server that answers fixed stats documents, run as its own process.

It runs apart from the benchmark so that its CPU is charged to neither the exporter nor the
client. `python bench/payload_server.py MANIFEST` serves, for every `"path": "file"` entry of the
JSON manifest, that file's bytes at that path (HTTP/1.1, keep-alive), prints `port N` once it
listens on 127.0.0.1, and exits when its standard input closes (the benchmark ended or died) or
after --max-seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(bodies: dict[str, bytes]):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 60  # an idle keep-alive connection ends its thread
        # Headers and body leave in two writes; with Nagle's algorithm the body would wait for the
        # client's delayed ACK (40 ms on Linux) and every small fetch would look 40 ms slow.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            payload = bodies.get(self.path)
            status = 200 if payload is not None else 404
            payload = payload if payload is not None else b'{"error": "no such path"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format, *args) -> None:  # noqa: A002 - quiet: the benchmark reads stdout
            pass

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", help="JSON object mapping URL paths to files")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="exit after so long in any case")
    args = parser.parse_args()
    with open(args.manifest, encoding="utf-8") as handle:
        manifest = json.load(handle)
    files: dict[str, bytes] = {}
    for name in set(manifest.values()):
        with open(name, "rb") as handle:
            files[name] = handle.read()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler({path: files[name] for path, name in manifest.items()}))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"port {server.server_address[1]}", flush=True)
    stdin_closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stdin_closed.set()), daemon=True).start()
    stdin_closed.wait(args.max_seconds)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
