"""The exporter's HTTP server: `/metrics`, `/probe`, `/health` and a landing page.

- `/metrics` (sidecar mode): every configured target, scraped now, plus the exporter's own metrics.
- `/probe?target=...&profile=...` (multi-target mode): one target, scraped now, with a fresh set of
  families; only targets on the allow-list are contacted (403 otherwise).
- `/health`: for Docker's HEALTHCHECK; 200 when every configured target answered in time, 503
  with a JSON reason otherwise.
The scrape deadline is the configured timeout or Prometheus' X-Prometheus-Scrape-Timeout-Seconds
less a margin, whichever is shorter, so the exporter always answers before Prometheus gives up.
"""

from __future__ import annotations

import html
import json
import logging
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from .. import __version__
from .. import catalogue as c
from ..collect import Exporter, probe_url, render
from ..config import check_url
from ..profiles import PROFILES
from .web_access import REALM, WebAccess
from .web_config import WebConfigError

log = logging.getLogger("pharos.exporter")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pharos-exporter/" + __version__
    timeout = 120  # idle keep-alive connections are closed, so their threads end
    # Headers and body go out in separate writes; with Nagle's algorithm on, a small body waits
    # for the client's delayed ACK (about 40 ms per scrape).
    disable_nagle_algorithm = True
    exporter: Exporter  # set on the subclass made by make_server
    web: WebAccess | None = None  # --web.config.file: basic auth and headers for every endpoint

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._admitted():
            return
        parts = urlsplit(self.path)
        route = {
            "/metrics": self._metrics,
            "/probe": self._probe,
            "/health": self._health,
            "/": self._landing,
        }.get(parts.path)
        if route is None:
            self._send(404, "text/plain; charset=utf-8", b"not found; see / for the endpoints\n")
            return
        try:
            route(parse_qs(parts.query))
        except (BrokenPipeError, ConnectionResetError):
            pass  # Prometheus gave up on this request; nobody is left to answer
        except Exception:  # noqa: BLE001 - a bug must cost one response, not the connection
            log.exception("internal error while serving %s", parts.path)
            self._send(500, "text/plain; charset=utf-8", b"internal error in the exporter; see its log\n")

    def _admitted(self) -> bool:
        """Basic auth of the web configuration, before any endpoint (even /health) does anything."""
        if self.web is None:
            return True
        try:
            if self.web.authorized(self.headers.get("Authorization")):
                return True
        except WebConfigError:
            self._send(500, "text/plain; charset=utf-8", b"the exporter's web configuration is invalid; see its log\n")
            return False
        self._send(401, "text/plain; charset=utf-8", b"401 Unauthorized\n", {"WWW-Authenticate": REALM})
        return False

    def _metrics(self, query) -> None:
        exporter = self.exporter
        deadline = exporter.deadline(self.headers.get("X-Prometheus-Scrape-Timeout-Seconds"))
        families = []
        for outcome in exporter.scrape_all(deadline):
            families.extend(outcome.families)
        body = render(families) + generate_latest(exporter.registry)
        self._send(200, CONTENT_TYPE_LATEST, body)

    def _probe(self, query) -> None:
        exporter = self.exporter
        target = (query.get("target") or [""])[0]
        profile_name = (query.get("profile") or query.get("module") or [exporter.config.probe.default_profile])[0]
        if not target:
            self._send(400, "text/plain; charset=utf-8", b"the 'target' parameter is missing, e.g. /probe?target=orders:8080&profile=pharo\n")
            return
        module = exporter.config.modules.get(profile_name)
        if module is None and profile_name not in PROFILES:
            message = f"unknown profile {profile_name!r}; known profiles: {', '.join(sorted(PROFILES))}; modules: {', '.join(sorted(exporter.config.modules)) or 'none'}\n"
            self._send(400, "text/plain; charset=utf-8", message.encode())
            return
        url = probe_url(target, profile_name)
        problem = check_url(url)
        if problem:
            self._send(400, "text/plain; charset=utf-8", f"bad target: {problem}\n".encode())
            return
        if not exporter.allow.allows(url):
            exporter.denied.inc()
            log.warning("probe of %s denied: not on the allow-list", url)
            message = f"target {url} is not on the allow-list (probe.allow in {exporter.config.source})\n"
            self._send(403, "text/plain; charset=utf-8", message.encode())
            return
        deadline = exporter.deadline(self.headers.get("X-Prometheus-Scrape-Timeout-Seconds"))
        params = {name: values for name, values in query.items() if name not in ("target", "module", "profile")}
        outcome = exporter.scraper.scrape(exporter.probe_target(url, profile_name, params), deadline)
        if module is not None:
            exporter.module_stats.record_scrape(module.name, outcome.success, outcome.duration)
        self._send(200, CONTENT_TYPE_LATEST, render(outcome.families))

    def _health(self, query) -> None:
        exporter = self.exporter
        deadline = exporter.deadline(self.headers.get("X-Prometheus-Scrape-Timeout-Seconds"))
        outcomes = exporter.scrape_all(deadline)
        report = {
            "status": "ok" if all(o.success for o in outcomes) else "failing",
            "targets": [
                {
                    "name": target.labels.get(c.Label.TARGET, ""),
                    "url": target.url,
                    "success": outcome.success,
                    "reason": outcome.reason,
                    "detail": outcome.detail,
                    "duration_seconds": round(outcome.duration, 4),
                }
                for target, outcome in zip(exporter.targets, outcomes)
            ],
        }
        status = 200 if report["status"] == "ok" else 503
        self._send(status, "application/json", json.dumps(report, indent=2).encode() + b"\n")

    def _landing(self, query) -> None:
        exporter = self.exporter
        rows = "".join(
            f"<li>{html.escape(t.labels.get(c.Label.TARGET, ''))}: {html.escape(t.url)} ({html.escape(t.profile.name)})</li>"
            for t in exporter.targets
        ) or "<li>none (multi-target mode only)</li>"
        profiles = "".join(f"<li><b>{html.escape(p.name)}</b>: {html.escape(p.summary)}</li>" for p in PROFILES.values())
        page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Pharos exporter</title></head>
<body><h1>Pharos exporter {html.escape(__version__)}</h1>
<ul><li><a href="/metrics">/metrics</a>: configured targets and the exporter's own metrics</li>
<li><a href="/health">/health</a>: 200 when every configured target answers in time, 503 otherwise</li>
<li>/probe?target=HOST:PORT&amp;profile=NAME: one target on the allow-list</li></ul>
<h2>Targets</h2><ul>{rows}</ul><h2>Profiles</h2><ul>{profiles}</ul>
<p>Configuration: {html.escape(exporter.config.source)}</p></body></html>
"""
        self._send(200, "text/html; charset=utf-8", page.encode())

    def _send(self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (*(self.web.headers() if self.web else ()), *(headers or {}).items()):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s %s", self.address_string(), format % args)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    web: WebAccess | None = None

    def finish_request(self, request, client_address) -> None:
        """With TLS, the handshake runs here, in the connection's own thread: a slow client
        must not hold up the accept loop."""
        if self.web is None or not self.web.tls:
            super().finish_request(request, client_address)
            return
        secure = self.web.accept_tls(request)
        if secure is None:
            return
        try:
            super().finish_request(secure, client_address)
        finally:
            secure.close()


def make_server(exporter: Exporter, listen: str, web: WebAccess | None = None) -> Server:
    """The exporter's HTTP server on `listen`; with `web` (--web.config.file), TLS and basic auth."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    handler = type("BoundHandler", (Handler,), {"exporter": exporter, "web": web})
    if ":" in host:
        server_class = type("Server6", (Server,), {"address_family": socket.AF_INET6})
    else:
        server_class = Server
    server = server_class((host, int(port)), handler)
    server.web = web
    return server
