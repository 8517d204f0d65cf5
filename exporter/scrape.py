"""One scrape of one target: fetch, decode, map through the profile, report how it went.

Whatever the target does (refuse, stall, answer HTML or garbage), `Scraper.scrape` returns an
`Outcome` by the deadline, with `pharos_scrape_success` 0 and a reason from
`catalogue.SCRAPE_ERROR_REASONS`; it never raises. Families are built fresh every scrape.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import Metric as Family

from . import catalogue as c
from .fetch import Fetcher, ScrapeError
from .process import ProcessWatcher
from .profiles.base import Profile
from .reading import DocumentError, Reading
from .routes import RouteTable

log = logging.getLogger("pharos.exporter")


@dataclass
class Target:
    """A target as the scraper sees it: URL, profile and the state kept between scrapes."""

    url: str
    profile: Profile
    fetcher: Fetcher
    routes: RouteTable
    health: bool = True
    process: ProcessWatcher | None = None
    slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(4))
    labels: dict[str, str] = field(default_factory=dict)  # e.g. {"target": "app"} in sidecar mode

    @property
    def health_url(self) -> str | None:
        if not self.health or self.profile.health is None:
            return None
        return urljoin(self.url, self.profile.health.path)


@dataclass
class Outcome:
    success: bool
    reason: str = ""
    detail: str = ""
    duration: float = 0.0
    size: int = 0
    families: list[Family] = field(default_factory=list)


class Scraper:
    """Scrapes targets within an overall concurrency bound and counts the results."""

    def __init__(self, registry: CollectorRegistry, max_concurrent: int = 32):
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self.scrapes = Counter(
            c.EXPORTER_SCRAPES.family, c.EXPORTER_SCRAPES.help, c.EXPORTER_SCRAPES.labels, registry=registry
        )
        self.errors = Counter(
            c.EXPORTER_SCRAPE_ERRORS.family, c.EXPORTER_SCRAPE_ERRORS.help, c.EXPORTER_SCRAPE_ERRORS.labels, registry=registry
        )
        for reason in c.SCRAPE_ERROR_REASONS:
            self.errors.labels(reason)

    def scrape(self, target: Target, deadline: float) -> Outcome:
        started = time.monotonic()
        reading = Reading(target.routes)
        outcome = Outcome(success=False)
        try:
            with _slot(target.slots, deadline, "this target"), _slot(self._slots, deadline, "the exporter"):
                outcome.size = self._fill(target, reading, deadline)
            outcome.success = True
        except ScrapeError as error:
            outcome.reason, outcome.detail = error.reason, error.detail
        except DocumentError as error:
            outcome.reason, outcome.detail = "invalid_document", f"{error} (profile {target.profile.name})"
        except OverflowError as error:  # an integer too large for a float, e.g. 1e400 written out
            outcome.reason, outcome.detail = "invalid_document", f"a number too large for a float ({error}; profile {target.profile.name})"
        except Exception as error:  # noqa: BLE001 - a scrape must never take the exporter down
            log.exception("internal error while scraping %s", target.url)
            outcome.reason, outcome.detail = "internal_error", f"{type(error).__name__}: {error}"
        outcome.duration = time.monotonic() - started
        if not outcome.success:
            reading = Reading()  # a half-filled reading would mix valid and invalid samples
            log.warning("scrape of %s failed: %s: %s", target.url, outcome.reason, outcome.detail)
            self.errors.labels(outcome.reason).inc()
        self.scrapes.labels(target.profile.name, "success" if outcome.success else "failure").inc()
        if target.process is not None:
            target.process.read(reading)
        _scrape_health(reading, outcome, target)
        outcome.families = reading.families(target.labels)
        return outcome

    def _fill(self, target: Target, reading: Reading, deadline: float) -> int:
        profile = target.profile
        response = target.fetcher.fetch(
            target.url, deadline, profile.method, profile.accept, dict(profile.headers), profile.valid_statuses, profile.body
        )
        profile.parse(decode(response.body, response.content_type), reading)
        health_url = target.health_url
        if health_url is not None:
            _read_health(target, health_url, reading, deadline)
        return len(response.body)


def decode(body: bytes, content_type: str):
    """The JSON document in `body`; ScrapeError(not_json) saying what arrived instead, or
    ScrapeError(invalid_document) for JSON beyond what the decoder accepts."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        kind = content_type.split(";")[0].strip() or "no content type"
        start = body[:60].decode("utf-8", "replace").strip().replace("\n", " ")
        raise ScrapeError("not_json", f"body is not JSON ({kind}; {error}; starts with {start!r})") from None
    except RecursionError:
        raise ScrapeError("invalid_document", "JSON nested too deeply to decode (Python's limit is about 1000 levels)") from None
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise ScrapeError("invalid_document", f"JSON the decoder refuses: {_short(error)}") from None


def _short(error: BaseException) -> str:
    message = str(error)
    return message if len(message) <= 200 else message[:197] + "..."


def _read_health(target: Target, url: str, reading: Reading, deadline: float) -> None:
    health = target.profile.health
    assert health is not None
    try:
        response = target.fetcher.fetch(url, deadline, health.method, health.accept, accept_statuses=health.readable_statuses)
        document = decode(response.body, response.content_type) if response.body.strip() else None
        health.parse(response.status, document, reading)
    except (ScrapeError, DocumentError, OverflowError) as error:
        # The stats answered but the health check did not: the application is not healthy.
        log.warning("health check %s of %s failed: %s", url, target.url, error)
        reading.health(False)


class _slot:
    """Acquire a semaphore before the deadline, or fail with reason concurrency_limit."""

    def __init__(self, semaphore: threading.BoundedSemaphore, deadline: float, whose: str):
        self.semaphore, self.deadline, self.whose = semaphore, deadline, whose

    def __enter__(self):
        if not self.semaphore.acquire(timeout=max(0.0, self.deadline - time.monotonic())):
            raise ScrapeError("concurrency_limit", f"all scrape slots of {self.whose} stayed busy until the deadline")

    def __exit__(self, *exc):
        self.semaphore.release()


def _scrape_health(reading: Reading, outcome: Outcome, target: Target) -> None:
    reading.set(c.SCRAPE_SUCCESS, 1.0 if outcome.success else 0.0)
    reading.set(c.SCRAPE_DURATION, round(outcome.duration, 6))
    reading.set(c.SCRAPE_RESPONSE_SIZE, float(outcome.size))
    reading.set(c.SCRAPE_ROUTES, float(len(target.routes)))
    for reason in c.SCRAPE_ERROR_REASONS:
        reading.set(c.SCRAPE_ERROR, 1.0 if reason == outcome.reason else 0.0, (reason,))
