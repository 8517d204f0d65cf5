"""What collecting needs, whoever serves it: the configuration, the sidecar targets, the probed
targets remembered between probes, the scraper and the exporter's own registry.

The serving side (exporter/serving/) turns requests into calls of `scrape_all` and `probe_target`
plus `Scraper.scrape`, and `render` turns the families into the text exposition.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import __version__
from . import catalogue as c
from . import exposition
from .cancellation import NEVER, Cancellation
from .config import Config
from .fetch import Fetcher
from .jsonmap import ModuleStats
from .process import ProcessWatcher
from .profiles import PROFILES, get as get_profile
from .routes import RouteTable
from .scrape import Outcome, Scraper, Target
from .slots import SlotAccount
from .serving.allowlist import AllowList

log = logging.getLogger("pharos.exporter")

# Probed targets whose keep-alive connections stay open: above a typical fleet per exporter (a
# hundred instances, scraped in turn), far below the file-descriptor limit.
PROBE_CONNECTIONS_KEPT = 256


def render(families) -> bytes:
    """The text exposition of the scraped families, one HELP/TYPE per name across targets
    (same bytes as generate_latest, written much faster; see exporter/exposition.py)."""
    return exposition.render(families)


class Exporter:
    """Everything the handlers need: configuration, targets, scraper, own registry."""

    def __init__(self, config: Config):
        self.config = config
        self.registry = CollectorRegistry()
        ProcessCollector(namespace="pharos", registry=self.registry)
        info = Gauge(
            c.EXPORTER_BUILD_INFO.name, c.EXPORTER_BUILD_INFO.help, c.EXPORTER_BUILD_INFO.labels, registry=self.registry
        )
        info.labels(__version__, platform.python_version()).set(1)
        self.denied = Counter(c.EXPORTER_PROBES_DENIED.family, c.EXPORTER_PROBES_DENIED.help, registry=self.registry)
        self.scraper = Scraper(self.registry, config.limits.max_concurrent_scrapes, config.limits)
        # Only with modules configured: families without samples are noise on /metrics.
        self.module_stats = ModuleStats(self.registry) if config.modules else None
        for name in config.modules:
            self.module_stats.prepare(name)
        # The profiles this exporter will scrape with start at 0 (a probe may still name another).
        in_use = {target.profile for target in config.targets} | set(config.modules)
        if config.probe.allow:
            in_use.add(config.probe.default_profile)
        for profile_name in sorted(in_use):
            for result in ("success", "failure"):
                self.scraper.scrapes.labels(profile_name, result)
        self.allow = AllowList(config.probe.allow)
        self.swarm = None
        if config.swarm.enabled:
            from .swarm import SwarmCollector  # the docker package is imported only when asked for

            self.swarm = SwarmCollector(
                config.swarm.docker_host,
                config.limits.timeout_seconds,
                config.swarm.container_stats_interval_seconds,
                config.swarm.container_stats_workers,
                scope=config.swarm.scope,
            )
            self.registry.register(self.swarm)
        self.targets = [self._sidecar_target(spec) for spec in config.targets]
        self._probe_targets: OrderedDict[tuple[str, str], Target] = OrderedDict()
        self._connected: OrderedDict[tuple[str, str], Target] = OrderedDict()
        self._probe_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.targets)), thread_name_prefix="pharos-scrape") if len(self.targets) > 1 else None

    def _sidecar_target(self, spec) -> Target:
        limits = self.config.limits
        return Target(
            url=spec.url,
            profile=get_profile(spec.profile),
            fetcher=Fetcher(spec.auth, spec.tls, limits.max_response_bytes),
            routes=RouteTable(limits.max_routes_per_target, spec.routes),
            health=spec.health,
            process=ProcessWatcher(spec.process) if spec.process else None,
            slots=SlotAccount(limits.max_concurrent_per_target),
            labels={c.Label.TARGET: spec.name},
            application_info=spec.application_info,
        )

    def deadline(self, prometheus_timeout: str | None) -> float:
        limits = self.config.limits
        timeout = limits.timeout_seconds
        if prometheus_timeout:
            try:
                offered = float(prometheus_timeout)
            except ValueError:
                offered = 0.0
            if offered > 0:
                margin = min(limits.timeout_margin_seconds, offered / 2)
                timeout = min(timeout, offered - margin)
        return time.monotonic() + timeout

    def scrape_all(self, deadline: float, cancellation: Cancellation = NEVER) -> list[Outcome]:
        if self._pool is None:
            return [self.scraper.scrape(target, deadline, cancellation) for target in self.targets]
        futures = [self._pool.submit(self.scraper.scrape, target, deadline, cancellation) for target in self.targets]
        return [future.result() for future in futures]

    def own_metrics(self) -> bytes:
        """The exporter's own registry in the text format (generate_latest's bytes, written faster)."""
        return exposition.render_registry(self.registry)

    def watch_server(self, stats) -> None:
        """Expose the HTTP server's counts (serving/connections.py ServerStats) on /metrics."""
        self.registry.register(_ServerCollector(stats))

    def probe_target(self, url: str, profile_name: str, params: dict[str, list[str]] | None = None) -> Target:
        """The remembered state of a probed target (connections, route table), created on first use.
        `profile_name` may name a json mapping module; then `params`, the probe's other query
        parameters, are the data of the module's body template."""
        module = self.config.modules.get(profile_name)
        key = (url, profile_name if module is None else f"{profile_name}?{sorted((params or {}).items())}")
        with self._probe_lock:
            target = self._probe_targets.get(key)
            if target is not None:
                self._probe_targets.move_to_end(key)
                self._keep_connected(key, target)
                return target
            probe, limits = self.config.probe, self.config.limits
            if module is None:
                profile, auth, tls, health = get_profile(profile_name), probe.auth, probe.tls, probe.health
            else:  # a module's own http_client_config wins; it has no health check
                profile, auth, tls, health = module.profile(self.module_stats, params), module.auth or probe.auth, module.tls or probe.tls, False
            target = Target(
                url=url,
                profile=profile,
                fetcher=Fetcher(auth, tls, limits.max_response_bytes, allow=self.allow),
                routes=RouteTable(limits.max_routes_per_target, probe.routes),
                health=health,
                slots=SlotAccount(limits.max_concurrent_per_target),
            )
            self._probe_targets[key] = target
            while len(self._probe_targets) > probe.max_targets_remembered:
                evicted_key, evicted = self._probe_targets.popitem(last=False)
                self._connected.pop(evicted_key, None)
                evicted.fetcher.close()
            self._keep_connected(key, target)
            return target

    def _keep_connected(self, key: tuple[str, str], target: Target) -> None:
        """Keep-alive connections for the most recently probed targets only: thousands of
        remembered targets must not hold thousands of sockets. Closed fetchers reconnect."""
        self._connected[key] = target
        self._connected.move_to_end(key)
        while len(self._connected) > PROBE_CONNECTIONS_KEPT:
            _, idle = self._connected.popitem(last=False)
            idle.fetcher.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self.swarm is not None:
            self.swarm.close()
        for target in self.targets:
            target.fetcher.close()
        with self._probe_lock:
            for target in self._probe_targets.values():
                target.fetcher.close()
            self._probe_targets.clear()
            self._connected.clear()


def probe_url(target: str, profile_name: str) -> str:
    """`host:port` or a URL without a path becomes the profile's default stats URL."""
    if "://" not in target:
        target = "http://" + target
    parts = urlsplit(target)
    if parts.path in ("", "/") and not parts.query:
        default_path = PROFILES[profile_name].default_path if profile_name in PROFILES else "/"
        target = f"{parts.scheme}://{parts.netloc}{default_path}"
    return target


class _ServerCollector:
    def __init__(self, stats) -> None:
        self.stats = stats

    def collect(self):
        stats = self.stats
        yield GaugeMetricFamily(c.EXPORTER_HTTP_CONNECTIONS.name, c.EXPORTER_HTTP_CONNECTIONS.help, value=stats.connections_open)
        yield GaugeMetricFamily(c.EXPORTER_HTTP_IN_FLIGHT.name, c.EXPORTER_HTTP_IN_FLIGHT.help, value=stats.in_flight)
        rejected = CounterMetricFamily(c.EXPORTER_HTTP_REJECTED.family, c.EXPORTER_HTTP_REJECTED.help, labels=c.EXPORTER_HTTP_REJECTED.labels)
        for reason, count in stats.rejected.items():
            rejected.add_metric([reason], count)
        yield rejected

    def describe(self):
        return []
