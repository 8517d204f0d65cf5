"""What a profile is: how to ask one runtime for its stats, and how to read its answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..reading import Reading

# parse(document, reading): fill `reading` from the decoded JSON; raise reading.DocumentError
# (with the JSON path) when the document does not have the expected shape.
Parser = Callable[[Any, Reading], None]
# parse_health(status_code, document_or_None, reading): record the application's health.
HealthParser = Callable[[int, Any, Reading], None]


@dataclass(frozen=True)
class ApplicationInfo:
    """What an application says about itself that changes only on deploy: the `runtime_info` labels
    beyond the runtime's name. A profile with an `info` endpoint takes it as `parse(..., info=)`."""

    runtime_version: str = ""
    application: str = ""
    application_version: str = ""


# parse_info(document): the ApplicationInfo in the decoded JSON; reading.DocumentError if malformed.
InfoParser = Callable[[Any], ApplicationInfo]


@dataclass(frozen=True)
class HealthCheck:
    """An optional second request a profile makes for the application's own health check."""

    path: str
    parse: HealthParser
    method: str = "GET"
    accept: str = "application/json"
    # HTTP status codes that still carry a health document to read (e.g. 503 = unhealthy).
    readable_statuses: frozenset[int] = frozenset({200})


@dataclass(frozen=True)
class InfoEndpoint:
    """An optional request for the application's name and versions, made when a target enables it:
    at most once per scrape, and its answer kept between scrapes."""

    path: str  # relative to the stats URL, like HealthCheck.path
    parse: InfoParser
    accept: str = "application/json"
    refresh_seconds: float = 300.0  # after an answer: names and versions change only on deploy
    retry_seconds: float = 60.0  # after a failure (the last answer stays in use meanwhile)


@dataclass(frozen=True)
class Profile:
    """One runtime's stats endpoint, mapped onto the catalogue's vocabulary."""

    name: str
    summary: str
    parse: Parser
    default_path: str = "/stats"
    method: str = "GET"
    accept: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    health: HealthCheck | None = None
    info: InfoEndpoint | None = None  # read only where the target's config sets application_info
    body: bytes | None = None  # sent with `method` (json mapping modules POST one)
    valid_statuses: frozenset[int] = frozenset({200})  # statuses whose body is the document
    # Where the format is documented (shown by `pharos exporter --list-profiles`).
    reference: str = ""
