"""The exporter's endpoints, each a function of a `Request` to a `Response`, run on a worker thread.

- `/metrics` (sidecar mode): every configured target, scraped now, plus the exporter's own metrics;
  a family that cannot be rendered is left out, never the page (exporter/exposition.py).
- `/probe?target=...&profile=...` (multi-target mode): one target, scraped now, with a fresh set of
  families; only targets on the allow-list are contacted (403 otherwise), and never the exporter
  itself (a probe of its own `/probe` would nest without end) unless an allow-list URL prefix names
  the exporter's own address.
- `/health`: for Docker's HEALTHCHECK; 200 when every configured target answered in time, 503
  with a JSON reason otherwise.
The scrape deadline is the configured timeout or Prometheus' X-Prometheus-Scrape-Timeout-Seconds
less a margin, whichever is shorter, so the exporter always answers before Prometheus gives up;
the request's cancellation (its client went away) stops the scrape earlier.
"""

from __future__ import annotations

import html
import ipaddress
import json
import logging
from urllib.parse import urlsplit

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .. import __version__
from .. import catalogue as c
from ..collect import Exporter, probe_url, render
from ..config import check_url
from ..fetch import PROBE_LOOP_HEADER as FETCH_LOOP_HEADER
from ..profiles import PROFILES
from .connections import Request, Response

log = logging.getLogger("pharos.exporter")

# A request that a Pharos exporter makes carries this header; an exporter refuses to probe on
# behalf of one, so no chain of probes through exporters can nest.
PROBE_LOOP_HEADER = FETCH_LOOP_HEADER.lower()


class Endpoints:
    def __init__(self, exporter: Exporter, own_addresses: tuple[tuple[str, int], ...] = ()):
        self.exporter = exporter
        self.own_addresses = own_addresses  # where this exporter listens: never a probe target

    def __call__(self, request: Request) -> Response:
        route = {
            "/metrics": self.metrics,
            "/probe": self.probe,
            "/health": self.health,
            "/": self.landing,
        }.get(request.path)
        if route is None:
            return Response.text(404, "not found; see / for the endpoints\n")
        return route(request)

    def inline(self, request: Request) -> Response | None:
        """The answer when it needs no scrape (answered on the event loop), else None."""
        if request.path == "/":
            return self.landing(request)
        if request.path not in ("/metrics", "/probe", "/health"):
            return Response.text(404, "not found; see / for the endpoints\n")
        return None

    def _deadline(self, request: Request) -> float:
        return self.exporter.deadline(request.header("X-Prometheus-Scrape-Timeout-Seconds"))

    # --- /metrics ----------------------------------------------------------------------------
    def metrics(self, request: Request) -> Response:
        exporter = self.exporter
        outcomes = exporter.scrape_all(self._deadline(request), request.cancellation)
        # render() leaves out a family it cannot write, never the page (exporter/exposition.py).
        body = render([family for outcome in outcomes for family in outcome.families]) + exporter.own_metrics()
        return Response(200, CONTENT_TYPE_LATEST, body)

    # --- /probe ------------------------------------------------------------------------------
    def probe(self, request: Request) -> Response:
        exporter, query = self.exporter, request.query
        if request.header(PROBE_LOOP_HEADER) is not None:
            exporter.denied.inc()
            return Response.text(508, "this probe request comes from a Pharos exporter; probes through exporters are refused (they can nest without end)\n")
        target = (query.get("target") or [""])[0]
        profile_name = (query.get("profile") or query.get("module") or [exporter.config.probe.default_profile])[0]
        if not target:
            return Response.text(400, "the 'target' parameter is missing, e.g. /probe?target=orders:8080&profile=pharo\n")
        module = exporter.config.modules.get(profile_name)
        if module is None and profile_name not in PROFILES:
            return Response.text(
                400,
                f"unknown profile {profile_name[:100]!r}; known profiles: {', '.join(sorted(PROFILES))}; "
                f"modules: {', '.join(sorted(exporter.config.modules)) or 'none'}\n",
            )
        url = probe_url(target, profile_name)
        problem = check_url(url)
        if problem:
            return Response.text(400, f"bad target: {problem}\n")
        if self._is_self(url):
            exporter.denied.inc()
            log.warning("probe of %s denied: it is this exporter's own address", url)
            return Response.text(403, f"target {url} is this exporter itself; name it with a URL prefix in probe.allow to probe it anyway\n")
        deadline = self._deadline(request)  # name resolution for the allow-list counts against it
        verdict = exporter.allow.check(url, deadline, request.cancellation)
        if not verdict.allowed:
            exporter.denied.inc()
            why = verdict.why if verdict.why and verdict.why != "not on the allow-list" else ""
            log.warning("probe of %s denied: %s", url, why or "not on the allow-list")
            if not why:
                return Response.text(403, f"target {url} is not on the allow-list (probe.allow in {exporter.config.source})\n")
            return Response.text(403, f"target {url} is refused: {why}\n")
        url = verdict.url  # normalized: what is fetched is exactly what was checked
        params = {name: values for name, values in query.items() if name not in ("target", "module", "profile")}
        outcome = exporter.scraper.scrape(exporter.probe_target(url, profile_name, params), deadline, request.cancellation)
        if module is not None:
            exporter.module_stats.record_scrape(module.name, outcome.success, outcome.duration)
        return Response(200, CONTENT_TYPE_LATEST, render(outcome.families))

    def _is_self(self, url: str) -> bool:
        """Whether `url` names an address and port this exporter listens on, as written (a name
        other than localhost is checked where the connection is made: allowlist.connect_addresses)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        try:
            address = ipaddress.ip_address("127.0.0.1" if host == "localhost" else host)
        except ValueError:
            return False
        port = _port_of(url)
        for own_host, own_port in self.own_addresses:
            own = ipaddress.ip_address(own_host)
            if own_port != port:
                continue
            same = own == address or (own.is_loopback and address.is_loopback)
            if own.is_unspecified:
                same = address.is_loopback or address.is_unspecified or address in _local_addresses()
            if same and not self._explicitly_allowed(parts):
                return True
        return False

    def _explicitly_allowed(self, parts) -> bool:
        return any(entry.startswith(f"{parts.scheme}://{parts.netloc}/") or entry == f"{parts.scheme}://{parts.netloc}" for entry in self.exporter.allow.entries)

    # --- /health -----------------------------------------------------------------------------
    def health(self, request: Request) -> Response:
        exporter = self.exporter
        outcomes = exporter.scrape_all(self._deadline(request), request.cancellation)
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
        return Response(status, "application/json", json.dumps(report, indent=2).encode() + b"\n")

    # --- / -----------------------------------------------------------------------------------
    def landing(self, request: Request) -> Response:
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
        return Response(200, "text/html; charset=utf-8", page.encode())


def _local_addresses() -> set:
    import psutil

    found = set()
    for addresses in psutil.net_if_addrs().values():
        for entry in addresses:
            try:
                found.add(ipaddress.ip_address(entry.address.split("%")[0]))
            except ValueError:
                pass  # a link-layer address
    return found


def _port_of(url: str) -> int:
    parts = urlsplit(url)
    try:
        return parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return -1
