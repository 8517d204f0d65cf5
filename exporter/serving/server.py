"""The exporter's server: its endpoints (endpoints.py) served by the connection layer
(connections.py), with TLS and basic auth from `--web.config.file` (web_access.py)."""

from __future__ import annotations

from ..collect import Exporter
from .connections import HTTPServer, Limits, listening_socket
from .endpoints import Endpoints
from .web_access import WebAccess


def make_server(exporter: Exporter, listen: str, web: WebAccess | None = None, limits: Limits | None = None) -> HTTPServer:
    """The exporter's HTTP server, bound and listening on `listen`; with `web`
    (--web.config.file), TLS and basic auth. OSError when the address cannot be had."""
    limits = limits or Limits()
    sock = listening_socket(listen)
    host, port = sock.getsockname()[:2]
    server = HTTPServer(sock, Endpoints(exporter, ((host, port),)), web, limits)
    exporter.watch_server(server.stats)
    return server
