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
class HealthCheck:
    """An optional second request a profile makes for the application's own health check."""

    path: str
    parse: HealthParser
    method: str = "GET"
    accept: str = "application/json"
    # HTTP status codes that still carry a health document to read (e.g. 503 = unhealthy).
    readable_statuses: frozenset[int] = frozenset({200})


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
    body: bytes | None = None  # sent with `method` (json mapping modules POST one)
    valid_statuses: frozenset[int] = frozenset({200})  # statuses whose body is the document
    # Where the format is documented (shown by `pharos exporter --list-profiles`).
    reference: str = ""
