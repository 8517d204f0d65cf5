"""`stargate`: the operational metrics of ba-st/Stargate, the REST framework for Pharo.

`GET /operations/metrics` with `Accept: application/vnd.stargate.operational-metrics+json` and a
bearer token (a JWT granting `read:metrics`) answers a JSON array of metrics, each
`{"name", "description", "type": "Gauge"|"Counter", "value"}` plus, for broken-down ones, a
`"metrics"` list of `{"value", "timestamp", <label>: <value>, ...}`. Metrics are found by `name`;
those not listed below are ignored. A composite's own `value` is the sum of its breakdown and is
not used. HTTP statistics are three counters (requests, response bytes, milliseconds) over the same
label sets (`http_method`, `url`, `response_code`, `url_template`, or the subset the application's
`breakdownCategories` keeps); they are joined here row by row. A category the breakdown left out
stays an empty label (absent in PromQL): without `url` and `url_template` there is no route to
report, which is not the same as a request that matched none (`__unknown__`).

The `running system` provider (Pharo; GemStone's `running gem` has the process count only) reports
"Process count" by `status` and `priority`, and "External semaphore table related data" whose
`category` rows give the table's limit and its used and free slots.

The health check is `POST /operations/health-check` answering `{"status": "PASS"|"WARN"|"FAIL"}`
with 200, or 503 when FAIL: `application_healthy` (WARN counts as healthy) and the three-state
`application_health_status{status}`.

Where the target's config sets `application_info: true`, the Application Information plugin's
`GET /operations/application-info` (media type `application/vnd.stargate.operational-application-info+json`,
a JWT granting `read:application-info`) gives `runtime_info` its labels: `application.name` and
`application.version` (the `application` provider), `pharo.image.version` (the `pharo` provider).
The plugin is disabled by default, and its default providers are `os` and `pharo` only: a label
whose section is missing stays empty. Everything else it reports (VM build, modules, parameters,
OS, environment variables) is left out: long, changing or private, none of it belongs in a label.

Reference: docs/reference/Metrics.md, docs/HealthCheck.md and docs/reference/ApplicationInfo.md in
ba-st/Stargate.
"""

from __future__ import annotations

import time
from typing import Any

from .. import catalogue as c
from ..reading import DocumentError, Reading, mapping, number, sequence, status_code, text
from .base import ApplicationInfo, HealthCheck, InfoEndpoint, Profile

MS = 1e-3
METRICS_MEDIA_TYPE = "application/vnd.stargate.operational-metrics+json;version=1.0.0"
# The summary needs no permission beyond authentication; the details type needs one more.
HEALTH_MEDIA_TYPE = "application/vnd.stargate.health-check.summary+json;version=1.0.0"
APPLICATION_INFO_MEDIA_TYPE = "application/vnd.stargate.operational-application-info+json;version=1.0.0"

MEMORY = "Smalltalk Memory in Bytes"
GC_TIME = "Garbage Collection Time in Milliseconds"
GC_COUNT = ("Garbage Collector invocations", "Garbage Collector invokations")  # renamed in Stargate v7
TENURED = "Tenured objects count"
UPTIME = "Uptime in seconds"
HTTP_COUNT = "HTTP request count"
HTTP_BYTES = "HTTP response size in bytes"
HTTP_MS = "HTTP request/response duration in ms"
PROCESSES = "Process count"
SEMAPHORES = "External semaphore count"
# External semaphore `category` -> the argument of Reading.handle_table it fills.
_SEMAPHORE_SLOTS = {
    "Max External Semaphores in VM": "limit",
    "Used external semaphore table slots": "used",
    "Free external semaphore table slots": "free",
}
# Providers that exist only on Pharo (GemStone/S 64 reports HTTP and process counts only).
_PHARO_ONLY = {MEMORY, GC_TIME, *GC_COUNT, TENURED, UPTIME, SEMAPHORES}

_GC_KINDS = {"full": c.GC_KIND_MAJOR, "incremental": c.GC_KIND_MINOR}
# Memory `category` -> (space, role), as the `pharo` profile names the same `Smalltalk vm` values.
_SPACES = {
    "old space": ("old", "size"),
    "free old space": ("old", "free"),
    "eden space": ("eden", "size"),
    "young space": ("young", "size"),
}
_HTTP_LABELS = ("http_method", "url", "response_code", "url_template")
_HEALTHY = {"PASS": True, "WARN": True, "FAIL": False}
_ROUTE_LABELS = ("url", "url_template")


def parse(document: Any, reading: Reading, info: ApplicationInfo = ApplicationInfo()) -> None:
    entries = {}
    for index, entry in enumerate(sequence(document, "$")):
        path = f"$[{index}]"
        entry = mapping(entry, path)
        entries[text(entry.get("name"), f"{path}.name")] = (entry, path)

    for row, path, value in _rows(entries, MEMORY):
        category = text(row.get("category"), f"{path}.category")
        if category == "total allocated":
            reading.set(c.MEMORY_TOTAL, value)
        elif category in _SPACES:
            space, role = _SPACES[category]
            reading.memory(space, **{role: value})
    for row, path, value in _rows(entries, GC_TIME):
        if (kind := _GC_KINDS.get(text(row.get("type"), f"{path}.type"))) is not None:
            reading.gc(kind, seconds=value * MS)
    for name in GC_COUNT:
        for row, path, value in _rows(entries, name):
            if (kind := _GC_KINDS.get(text(row.get("type"), f"{path}.type"))) is not None:
                reading.gc(kind, collections=value)
    if (tenured := _value(entries, TENURED)) is not None:
        reading.set(c.GC_TENURED_OBJECTS, tenured)
    if (uptime := _value(entries, UPTIME)) is not None:
        reading.set(c.UPTIME, uptime)
        # Rounded so that the derived start time does not wobble between scrapes.
        reading.set(c.START_TIME, float(round(time.time() - uptime)))
    # Before the HTTP rows, which may be many: a target over its series limit keeps its info.
    reading.info("pharo" if entries.keys() & _PHARO_ONLY else "smalltalk", info.runtime_version, info.application, info.application_version)
    for row, path, value in _rows(entries, PROCESSES):
        reading.processes(text(row.get("status"), f"{path}.status"), _priority(row.get("priority"), f"{path}.priority"), value)
    slots = {}
    for row, path, value in _rows(entries, SEMAPHORES):
        if (role := _SEMAPHORE_SLOTS.get(text(row.get("category"), f"{path}.category"))) is not None:
            slots[role] = value
    if slots:
        reading.handle_table(c.HANDLE_TABLE_EXTERNAL_SEMAPHORES, **slots)
    _http(entries, reading)


def _http(entries, reading: Reading) -> None:
    bytes_sent = dict(_http_rows(entries, HTTP_BYTES))
    milliseconds = dict(_http_rows(entries, HTTP_MS))
    for labels, count in _http_rows(entries, HTTP_COUNT):
        method, url, status, template = labels
        duration = milliseconds.get(labels)
        # Stargate's own route template, where it recorded one, beats collapsing the full URL.
        # None: the breakdown keeps no route category, so the label stays empty.
        route = template or url or (c.ROUTE_UNKNOWN if url is not None else "")
        reading.http(method, route, status, count, None if duration is None else duration * MS, bytes_sent.get(labels))


def _http_rows(entries, name):
    """(label values in _HTTP_LABELS order, "" where the breakdown left one out), value; the
    url is None when the row has neither `url` nor `url_template`."""
    for row, path, value in _rows(entries, name):
        labels = tuple(_http_label(row, label, f"{path}.{label}") for label in _HTTP_LABELS)
        if not row.keys() & _ROUTE_LABELS:
            labels = (labels[0], None, labels[2], labels[3])
        yield labels, value


def _priority(value: Any, path: str) -> float:
    """A process priority: a number (Stargate writes an integer; the Prometheus format a string)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return number(value, path)


def _http_label(row, label: str, path: str) -> str:
    value = row.get(label, "")
    if label == "response_code" and value != "":
        return status_code(value, path)
    return text(value, path)


def _rows(entries, name):
    """(row, its JSON path, its value) for each row of the breakdown of the metric `name`."""
    if name not in entries:
        return
    entry, path = entries[name]
    for index, row in enumerate(sequence(entry.get("metrics", []), f"{path}.metrics")):
        row_path = f"{path}.metrics[{index}]"
        row = mapping(row, row_path)
        yield row, row_path, number(row.get("value"), f"{row_path}.value")


def _value(entries, name):
    if name not in entries:
        return None
    entry, path = entries[name]
    return number(entry.get("value"), f"{path}.value")


def parse_health(status_code: int, document: Any, reading: Reading) -> None:
    status = text(mapping(document, "$").get("status"), "$.status")
    if status not in _HEALTHY:
        raise DocumentError("$.status", f"expected PASS, WARN or FAIL, got {status!r}")
    # WARN means "approaching a threshold"; Stargate still answers 200 and serves, so only FAIL
    # (critical, 503) counts as unhealthy in application_healthy; the status keeps the warning.
    healthy = _HEALTHY[status] and status_code == 200
    reading.health(healthy)
    reading.health_status(status.lower() if healthy or status == "FAIL" else c.HEALTH_FAIL)


def parse_application_info(document: Any) -> ApplicationInfo:
    """The `runtime_info` labels in an application-info document; sections the application did
    not enable (`application`, `pharo`) leave theirs empty."""
    document = mapping(document, "$")
    application = _section(document, "application", "$")
    image = _section(_section(document, "pharo", "$"), "image", "$.pharo")
    return ApplicationInfo(
        runtime_version=_optional_text(image, "version", "$.pharo.image"),
        application=_optional_text(application, "name", "$.application"),
        application_version=_optional_text(application, "version", "$.application"),
    )


def _section(parent, key: str, path: str):
    value = parent.get(key)
    return {} if value is None else mapping(value, f"{path}.{key}")


def _optional_text(section, key: str, path: str) -> str:
    value = section.get(key)
    return "" if value is None else text(value, f"{path}.{key}")


PROFILE = Profile(
    name="stargate",
    summary="ba-st/Stargate operational metrics: Pharo GC and memory, HTTP requests by URL, health check",
    parse=parse,
    default_path="/operations/metrics",
    accept=METRICS_MEDIA_TYPE,
    # Relative, so that an API mounted under a prefix (/api/operations/metrics) finds its check.
    health=HealthCheck(
        path="health-check",
        parse=parse_health,
        method="POST",
        accept=HEALTH_MEDIA_TYPE,
        readable_statuses=frozenset({200, 503}),
    ),
    info=InfoEndpoint(path="application-info", parse=parse_application_info, accept=APPLICATION_INFO_MEDIA_TYPE),
    reference="https://github.com/ba-st/Stargate: docs/reference/Metrics.md, docs/HealthCheck.md, docs/reference/ApplicationInfo.md",
)
