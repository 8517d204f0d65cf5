"""`pharos demo-app`: a real HTTP service that reports its own GC and request stats (`pharo` format).

Endpoints:
- application: `GET /api/orders`, `GET /api/orders/{id}` (numeric), `POST /api/orders`,
  `GET /api/customers/{uuid}`; the fault knobs apply to these only;
- `GET /stats`: the stats document (docs/pharo-stats.md); `GET /health`: 200 (status pass or warn) or
  503 (fail);
- `GET|POST|DELETE /faults`: read, change, reset the fault knobs (demo/faults.py); `GET /`: index.

Every request is counted per method, route template and status, except `GET /stats` itself:
a scrape is not traffic, and counting it would keep `activeRequests` at 1 or more on every scrape.
A request that matches no route is counted without a route (the exporter shows `__unknown__`),
so that scanners probing random paths cannot multiply the series.

While `stats_hang` is on, `GET /stats` holds the connection without answering until the hang is
turned off (then it answers) or for at most `stats_hang_limit_seconds` (then it closes the
connection unanswered); at most `MAX_HANGING` requests hang at once, further ones are closed at
once, so threads cannot pile up.
"""

from __future__ import annotations

import json
import logging
import platform
import random
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import psutil

from pharos_monitoring.exporter import __version__

from .faults import FaultError, Faults, FaultSettings
from .orders import OrderStore, RequestError
from .pressure import AllocationPressure
from .request_stats import RequestStats
from .runtime_stats import GCMonitor, handle_tables_section, memory_limit, processes_section, vm_section
from .traffic import TrafficGenerator

log = logging.getLogger("pharos.demo")

MAX_BODY_BYTES = 64 * 1024
MAX_HANGING = 32
MEMORY_CHECK_THRESHOLD = 0.9  # the "memory" health check fails above this share of the limit
MEMORY_WARN_THRESHOLD = 0.75  # above this share the health status is "warn": working, but near the check's threshold


@dataclass(frozen=True)
class AppConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    service: str = "orders"
    environment: str = "demo"
    traffic: float = 5.0  # requests per second from the built-in generator; 0 = off
    faults: FaultSettings = field(default_factory=FaultSettings)
    stats_hang_limit_seconds: float = 60.0
    seed: int | None = None
    version: str = __version__  # the application version the stats report; a deploy changes it


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    template: str
    action: Callable  # (app, match, query, body) -> (status, payload)


def _route(method: str, template: str, regex: str, action: Callable) -> Route:
    return Route(method, re.compile(f"^{regex}$"), template, action)


UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
APPLICATION_ROUTES = (
    _route("GET", "/api/orders", r"/api/orders", lambda app, m, q, b: app.store.list_orders(q)),
    _route("POST", "/api/orders", r"/api/orders", lambda app, m, q, b: app.store.create_order(b)),
    _route("GET", "/api/orders/{id}", r"/api/orders/([0-9]{1,18})", lambda app, m, q, b: app.store.get_order(m.group(1))),
    _route("GET", "/api/customers/{uuid}", rf"/api/customers/({UUID})", lambda app, m, q, b: app.store.get_customer(m.group(1))),
)
OPERATIONAL_ROUTES = (
    _route("GET", "/", r"/", lambda app, m, q, b: (200, app.index())),
    # GET /stats is answered before routing (uncounted); listed so that other methods get 405.
    _route("GET", "/stats", r"/stats", lambda app, m, q, b: (200, app.stats_document())),
    _route("GET", "/health", r"/health", lambda app, m, q, b: app.health_response()),
    _route("GET", "/faults", r"/faults", lambda app, m, q, b: (200, app.faults_document())),
    _route("POST", "/faults", r"/faults", lambda app, m, q, b: app.change_faults(b)),
    _route("DELETE", "/faults", r"/faults", lambda app, m, q, b: app.reset_faults()),
)


class DemoApp:
    """The service: start() binds and serves in background threads, stop() ends everything."""

    def __init__(self, config: AppConfig):
        self.config = config
        rng = random.Random(config.seed)
        self.store = OrderStore(rng=rng)
        self.stats = RequestStats()
        self.faults = Faults(config.faults)
        self.gc_monitor = GCMonitor()
        self.process = psutil.Process()
        self.stopping = threading.Event()
        self.hang_slots = threading.BoundedSemaphore(MAX_HANGING)
        self._error_rng = random.Random(config.seed)
        self._pressure = AllocationPressure(lambda: self.faults.settings.allocation_pressure)
        self._traffic: TrafficGenerator | None = None
        self._server: _Server | None = None
        self._serving: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        handler = type("BoundDemoHandler", (Handler,), {"app": self})
        server_class = _Server6 if ":" in self.config.host else _Server
        self._server = server_class((self.config.host, self.config.port), handler)
        self.gc_monitor.install()
        # A short poll interval makes stop() quick; the idle cost is five wake-ups a second.
        self._serving = threading.Thread(target=self._server.serve_forever, args=(0.2,), name="demo-http", daemon=True)
        self._serving.start()
        self._pressure.start()
        if self.config.traffic > 0:
            self._traffic = TrafficGenerator(_loopback(self.config.host), self.port, self.config.traffic, self.store, self.config.seed)
            self._traffic.start()

    def stop(self) -> None:
        self.stopping.set()
        self.faults.release_waiters()
        if self._traffic is not None:
            self._traffic.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._pressure.stop()
        self.gc_monitor.uninstall()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the app first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = _loopback(self.config.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    # --- what the endpoints answer -----------------------------------------------------------
    def stats_document(self) -> dict:
        healthy, checks, status = self.health()
        started = self.process.create_time()
        return {
            "application": {"name": self.config.service, "version": self.config.version, "environment": self.config.environment},
            "runtime": {
                "name": "cpython",
                "version": platform.python_version(),
                "uptimeSeconds": round(max(0.0, time.time() - started), 3),
                "startTime": round(started, 3),
            },
            "vm": vm_section(self.gc_monitor, self.process),
            "processes": processes_section(self.process),
            "handleTables": handle_tables_section(self.process),
            "http": self.stats.document(),
            "health": {"healthy": healthy, "status": status, "checks": checks},
        }

    def health(self) -> tuple[bool, dict[str, bool], str]:
        """Healthy, the named checks, and the status word (pass | warn | fail) kept in step with them."""
        limit = memory_limit()
        resident = self.process.memory_info().rss
        checks = {
            # The injected fault stands for the order store becoming unavailable.
            "order_store": not self.faults.settings.unhealthy,
            "memory": limit == 0 or resident < MEMORY_CHECK_THRESHOLD * limit,
        }
        healthy = all(checks.values())
        if not healthy:
            status = "fail"
        elif limit and resident >= MEMORY_WARN_THRESHOLD * limit:
            status = "warn"
        else:
            status = "pass"
        return healthy, checks, status

    def health_response(self) -> tuple[int, dict]:
        healthy, checks, status = self.health()
        return (200 if healthy else 503), {"healthy": healthy, "status": status, "checks": checks}

    def faults_document(self) -> dict:
        return {**self.faults.document(), "allocation_churned_mb": round(self._pressure.churned_bytes / 2**20, 1)}

    def change_faults(self, body: object) -> tuple[int, dict]:
        try:
            self.faults.update(body)
        except FaultError as error:
            raise RequestError(400, f"{error}; see GET / for the fault knobs") from None
        log.info("faults now %s", self.faults.document())
        return 200, self.faults_document()

    def reset_faults(self) -> tuple[int, dict]:
        self.faults.reset()
        log.info("faults reset")
        return 200, self.faults_document()

    def index(self) -> dict:
        return {
            "service": self.config.service,
            "environment": self.config.environment,
            "application": [f"{r.method} {r.template}" for r in APPLICATION_ROUTES],
            "operations": [f"{r.method} {r.template}" for r in OPERATIONAL_ROUTES],
            "faults": self.faults_document(),
            "fault_knobs": {
                "error_ratio": "0..1, share of application requests answered 500",
                "latency_ms": "0..30000, added to application requests",
                "allocation_pressure": "0..100 MB/s of garbage churned in the background",
                "stats_hang": "true: GET /stats holds the connection without answering",
                "unhealthy": "true: /health answers 503 and the stats report a failing check",
            },
            "example": "curl -X POST -d '{\"error_ratio\": 0.2}' http://HOST:PORT/faults",
        }

    def inject_application_faults(self) -> None:
        """Latency, then maybe an error, for one application request."""
        settings = self.faults.settings
        if settings.latency_ms > 0:
            self.stopping.wait(settings.latency_ms / 1000.0)
        if settings.error_ratio > 0 and self._error_rng.random() < settings.error_ratio:
            raise RequestError(500, f"injected fault: error_ratio is {settings.error_ratio:g}")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pharos-demo/" + __version__
    timeout = 30  # idle keep-alive connections are closed, so their threads end
    # Headers and body go out in separate writes; with Nagle's algorithm on, the body waits for
    # the client's delayed ACK, about 40 ms per kept-alive request (bench/demo_latency.py).
    disable_nagle_algorithm = True
    app: DemoApp  # set on the subclass made by DemoApp.start

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if urlsplit(self.path).path == "/stats":
            self._stats()
        else:
            self._counted("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._counted("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._counted("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._counted("DELETE")

    def do_PATCH(self) -> None:  # noqa: N802
        self._counted("PATCH")

    # --- /stats, not counted -----------------------------------------------------------------
    def _stats(self) -> None:
        app = self.app
        if app.faults.settings.stats_hang and not self._hang():
            self.close_connection = True
            return
        try:
            self._send(200, json.dumps(app.stats_document()).encode())
        except OSError:  # the scraper gave up (after a hang, typically) and went away
            self.close_connection = True

    def _hang(self) -> bool:
        """Hold the request while stats_hang is on; True when it should be answered after all."""
        app = self.app
        if not app.hang_slots.acquire(blocking=False):
            return False
        try:
            ended = app.faults.wait_while_hanging(app.config.stats_hang_limit_seconds, app.stopping)
        finally:
            app.hang_slots.release()
        return ended and not app.stopping.is_set()

    # --- everything else, counted ------------------------------------------------------------
    def _counted(self, method: str) -> None:
        stats = self.app.stats
        started = time.perf_counter()
        stats.started()
        route, status, body = None, 500, b""
        try:
            route, status, payload = self._dispatch(method)
            body = json.dumps(payload).encode()
            self._send(status, body)
        except OSError:  # the client went away before the answer was sent
            stats.abandoned()
            self.close_connection = True
            return
        stats.finished(method, route, status, (time.perf_counter() - started) * 1000.0, len(body))

    def _dispatch(self, method: str) -> tuple[str | None, int, object]:
        parts = urlsplit(self.path)
        route, action, match, application, allowed = _match(method, parts.path)
        try:
            body = self._read_body()  # read before any refusal, so a kept-alive connection stays in step
            if action is None and allowed:
                self._extra_headers = {"Allow": allowed}
                raise RequestError(405, f"{method} is not allowed on {route}; allowed: {allowed}")
            if action is None:
                raise RequestError(404, f"no route for {parts.path}; GET / lists the endpoints")
            if application:
                self.app.inject_application_faults()
            status, payload = action(self.app, match, parse_qs(parts.query), body)
            return route, status, payload
        except RequestError as error:
            return route, error.status, {"error": str(error)}
        except Exception as error:  # noqa: BLE001 - a bug answers 500 and is logged, the server lives on
            log.exception("%s %s failed", method, self.path)
            return route, 500, {"error": f"internal error: {type(error).__name__}"}

    def _read_body(self) -> object:
        length_header = self.headers.get("Content-Length")
        if not length_header:
            return None
        if not length_header.isdigit():
            self.close_connection = True
            raise RequestError(400, f"Content-Length {length_header!r} is not a number")
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body would otherwise be taken for the next request
            raise RequestError(413, f"request body of {length} bytes exceeds the limit of {MAX_BODY_BYTES}")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RequestError(400, f"request body is not JSON: {error}") from None

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in getattr(self, "_extra_headers", {}).items():
            self.send_header(name, value)
        self._extra_headers = {}
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s %s", self.address_string(), format % args)


def _match(method: str, path: str):
    """(route template, action, regex match, is application route, allowed methods if not `method`)."""
    allowed: list[Route] = []
    for application, routes in ((True, APPLICATION_ROUTES), (False, OPERATIONAL_ROUTES)):
        for route in routes:
            match = route.pattern.match(path)
            if match is None:
                continue
            if route.method == method:
                return route.template, route.action, match, application, ""
            allowed.append(route)
    if allowed:
        methods = ", ".join(sorted({route.method for route in allowed}))
        return allowed[0].template, None, None, False, methods
    return None, None, None, False, ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        # Clients that go away are normal (scrapers time out); anything else is a bug worth a trace.
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("connection from %s ended: %s", client_address, error)
        else:
            log.exception("request from %s failed", client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _loopback(host: str) -> str:
    """Where the demo reaches itself: loopback when it listens on every address."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host
