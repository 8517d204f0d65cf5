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
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urljoin

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import Metric as Family

from . import catalogue as c
from .cancellation import NEVER, Cancellation
from .config import Limits
from .fetch import Fetcher, ScrapeError
from .process import ProcessWatcher
from .profiles.base import ApplicationInfo, Profile
from .reading import DocumentError, Reading
from .routes import RouteTable
from .slots import FairSlots, SlotAccount, SlotUnavailable

log = logging.getLogger("pharos.exporter")


class InfoCache:
    """A target's last application info (Profile.info) and when to ask for it again. Scrapes of
    one target may overlap: one of them asks, the others use what is kept."""

    def __init__(self) -> None:
        self.info = ApplicationInfo()
        self._due: float | None = None  # time.monotonic() of the next request; None: the next scrape
        self._asking = False
        self._lock = threading.Lock()

    def claim(self) -> bool:
        """True when this scrape is to ask now; it must then call `settle`."""
        with self._lock:
            if self._asking or (self._due is not None and time.monotonic() < self._due):
                return False
            self._asking = True
            return True

    def settle(self, info: ApplicationInfo | None, wait_seconds: float) -> None:
        """`info` answered (None: the request failed, the last answer stays); ask again in `wait_seconds`."""
        with self._lock:
            if info is not None:
                self.info = info
            self._due = time.monotonic() + wait_seconds
            self._asking = False


@dataclass
class Target:
    """A target as the scraper sees it: URL, profile and the state kept between scrapes."""

    url: str
    profile: Profile
    fetcher: Fetcher
    routes: RouteTable
    health: bool = True
    process: ProcessWatcher | None = None
    # This target's standing in the exporter's FairSlots: SlotAccount(limits.max_concurrent_per_target).
    # A BoundedSemaphore (how targets were built before) is taken for its size.
    slots: SlotAccount = field(default_factory=SlotAccount)
    labels: dict[str, str] = field(default_factory=dict)  # e.g. {"target": "app"} in sidecar mode
    application_info: bool = False  # also read profile.info (config `application_info`)
    info_cache: InfoCache = field(default_factory=InfoCache)

    def __post_init__(self) -> None:
        if not isinstance(self.slots, SlotAccount):
            self.slots = SlotAccount(getattr(self.slots, "_initial_value", 4))

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


# Scrapes at once, all targets together. 128 rather than 32: with fair slots a stuck target holds
# about one slot per scrape interval for its timeout, so the pool is sized for the stuck targets a
# fleet can have at once while healthy ones keep their latency (more than capacity stuck targets
# at once make healthy scrapes wait for the next freed slot, first in line). Idle slots cost
# nothing; each busy one is a socket and at most max_response_bytes of buffered body.
DEFAULT_MAX_CONCURRENT = 128


class Scraper:
    """Scrapes targets within an overall concurrency bound, shared fairly (exporter/slots.py), and
    counts the results."""

    def __init__(self, registry: CollectorRegistry, max_concurrent: int = DEFAULT_MAX_CONCURRENT, limits: Limits | None = None):
        self.slots = FairSlots(max_concurrent)
        self.limits = limits if limits is not None else Limits()  # what one target's document may add
        self.scrapes = Counter(
            c.EXPORTER_SCRAPES.family, c.EXPORTER_SCRAPES.help, c.EXPORTER_SCRAPES.labels, registry=registry
        )
        self.errors = Counter(
            c.EXPORTER_SCRAPE_ERRORS.family, c.EXPORTER_SCRAPE_ERRORS.help, c.EXPORTER_SCRAPE_ERRORS.labels, registry=registry
        )
        for reason in c.SCRAPE_ERROR_REASONS:
            self.errors.labels(reason)

    def scrape(self, target: Target, deadline: float, cancellation: Cancellation | None = NEVER) -> Outcome:
        """Scrape `target` by `deadline` (`time.monotonic()`); when `cancellation` is cancelled
        (its client went away) every wait stops at once, the slots are freed, and the outcome is
        reason `timeout` with the cancellation's why ("client went away") in its detail."""
        cancellation = cancellation or NEVER
        started = time.monotonic()
        reading = Reading(target.routes, self.limits)
        outcome = Outcome(success=False)
        try:
            with self._slot(target, deadline, cancellation):
                outcome.size = self._fill(target, reading, deadline, cancellation)
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
        if outcome.reason == "timeout":
            target.slots.proven = False  # it hangs: it shares the unproven half of the slots
        elif outcome.reason != "concurrency_limit":
            target.slots.proven = True
        if target.process is not None:
            target.process.read(reading)
        _scrape_health(reading, outcome, target)
        outcome.families = reading.families(target.labels)
        return outcome

    @contextmanager
    def _slot(self, target: Target, deadline: float, cancellation: Cancellation):
        try:
            granted_at = self.slots.acquire(target.slots, deadline, cancellation)
        except SlotUnavailable as refused:
            if refused.why == "cancelled":
                raise ScrapeError("timeout", f"{cancellation.why}: {refused.detail}") from None
            raise ScrapeError("concurrency_limit", refused.detail) from None
        try:
            yield
        finally:
            self.slots.release(target.slots, granted_at)

    def _fill(self, target: Target, reading: Reading, deadline: float, cancellation: Cancellation = NEVER) -> int:
        profile = target.profile
        response = target.fetcher.fetch(
            target.url,
            deadline,
            profile.method,
            profile.accept,
            dict(profile.headers),
            profile.valid_statuses,
            profile.body,
            cancellation=cancellation,
        )
        document = decode(response.body, response.content_type)
        info = self._application_info(target, deadline, cancellation)
        if info is None:
            profile.parse(document, reading)
        else:
            profile.parse(document, reading, info=info)
        health_url = target.health_url
        if health_url is not None:
            _read_health(target, health_url, reading, deadline, cancellation)
        return len(response.body)

    def _application_info(self, target: Target, deadline: float, cancellation: Cancellation = NEVER) -> ApplicationInfo | None:
        """The target's application info, or None where its profile has none or its config leaves
        it off. One request at most, and only when the kept answer is due for a refresh; a failure
        keeps the last answer and counts in pharos_exporter_scrape_errors_total, never failing the scrape."""
        endpoint = target.profile.info
        if endpoint is None or not target.application_info:
            return None
        cache = target.info_cache
        if not cache.claim():
            return cache.info
        info, wait = None, endpoint.retry_seconds
        url = urljoin(target.url, endpoint.path)
        # Half the time left at most: the names are a nicety, the health check after them is not.
        now = time.monotonic()
        try:
            response = target.fetcher.fetch(url, now + (deadline - now) / 2, "GET", endpoint.accept, cancellation=cancellation)
            info, wait = endpoint.parse(decode(response.body, response.content_type)), endpoint.refresh_seconds
        except (ScrapeError, DocumentError, OverflowError) as error:
            reason = error.reason if isinstance(error, ScrapeError) else "invalid_document"
            log.warning("application info %s of %s failed (%s), keeping the last answer: %s", url, target.url, reason, error)
            if not cancellation.cancelled:
                self.errors.labels(reason).inc()
        finally:
            cache.settle(info, wait)
        return cache.info


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


def _read_health(target: Target, url: str, reading: Reading, deadline: float, cancellation: Cancellation = NEVER) -> None:
    health = target.profile.health
    assert health is not None
    try:
        response = target.fetcher.fetch(
            url, deadline, health.method, health.accept, accept_statuses=health.readable_statuses, cancellation=cancellation
        )
        document = decode(response.body, response.content_type) if response.body.strip() else None
        health.parse(response.status, document, reading)
    except (ScrapeError, DocumentError, OverflowError) as error:
        # The stats answered but the health check did not: the application is not healthy.
        log.warning("health check %s of %s failed: %s", url, target.url, error)
        reading.health(False)


def _scrape_health(reading: Reading, outcome: Outcome, target: Target) -> None:
    reading.set(c.SCRAPE_SUCCESS, 1.0 if outcome.success else 0.0)
    reading.set(c.SCRAPE_DURATION, round(outcome.duration, 6))
    reading.set(c.SCRAPE_RESPONSE_SIZE, float(outcome.size))
    reading.set(c.SCRAPE_ROUTES, float(len(target.routes)))
    for reason in c.SCRAPE_ERROR_REASONS:
        reading.set(c.SCRAPE_ERROR, 1.0 if reason == outcome.reason else 0.0, (reason,))
    if outcome.success:  # a failed scrape read no document, so nothing was limited
        for reason, series in reading.limited.items():
            reading.set(c.SCRAPE_LIMITED_SERIES, float(series), (reason,))
