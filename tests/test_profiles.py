"""Every registered profile, end to end: its fixture served on loopback, scraped by the real
exporter, checked sample by sample against values worked out by hand from the fixture, and linted
with `promtool check metrics`.

A new profile needs `tests/fixtures/profiles/<name>.json` and an entry in EXPECTED; the
parametrized tests fail until it has both.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.config import Auth, Config, Limits, Secret, Target
from pharos_monitoring.exporter.profiles import PROFILES, go_expvar, stargate
from pharos_monitoring.exporter.reading import DocumentError, Reading
from pharos_monitoring.exporter.routes import RouteTable
from pharos_monitoring.exporter.collect import Exporter
from pharos_monitoring.exporter.serving.server import make_server

from helpers import promtool_check_metrics

FIXTURES = Path(__file__).parent / "fixtures" / "profiles"
TARGET = "app"  # the sidecar target's name, exposed as label target="app"


def sample(name: str, value: float, **labels: str) -> tuple[str, dict, float]:
    return name, labels, value


def http(method, route, status, count, seconds, response_bytes=None):
    """The samples of one (method, route, status) row of the HTTP histograms."""
    labels = {"http_request_method": method, "http_route": route, "http_response_status_code": status}
    rows = [
        sample("http_server_request_duration_seconds_count", count, **labels),
        sample("http_server_request_duration_seconds_sum", seconds, **labels),
        sample("http_server_request_duration_seconds_bucket", count, **labels, le="+Inf"),
    ]
    if response_bytes is not None:
        rows.append(sample("http_server_response_body_size_bytes_sum", response_bytes, **labels))
        rows.append(sample("http_server_response_body_size_bytes_count", count, **labels))
    return rows


# Expected samples (besides target="app"), worked out by hand from each fixture.
EXPECTED = {
    "pharo": [
        sample("runtime_gc_collections_total", 12, kind="major"),
        sample("runtime_gc_collections_total", 48211, kind="minor"),
        sample("runtime_gc_duration_seconds_total", 3.45, kind="major"),  # totalFullGCTime 3450 ms
        sample("runtime_gc_duration_seconds_total", 91.234, kind="minor"),  # 91234 ms
        sample("runtime_gc_tenured_objects_total", 1532),
        sample("runtime_memory_bytes", 536870912, space="old"),
        sample("runtime_memory_free_bytes", 134217728, space="old"),
        sample("runtime_memory_limit_bytes", 1073741824, space="old"),
        sample("runtime_memory_bytes", 16777216, space="young"),
        sample("runtime_memory_bytes", 12582912, space="eden"),
        sample("runtime_memory_total_bytes", 570425344),
        # The optional VM parameters: milliseconds become seconds, the phases are of full GCs.
        sample("runtime_gc_phase_duration_seconds_total", 1.8, kind="major", phase="mark"),  # totalGCMarkPhaseTime 1800 ms
        sample("runtime_gc_phase_duration_seconds_total", 0.45, kind="major", phase="sweep"),
        sample("runtime_gc_phase_duration_seconds_total", 1.1, kind="major", phase="compact"),
        sample("runtime_process_switches_total", 2718281),
        sample("runtime_jit_compilations_total", 40213, kind="method"),
        sample("runtime_jit_compilations_total", 9120, kind="block"),
        sample("runtime_jit_compilation_duration_seconds_total", 2.25, kind="method"),
        sample("runtime_jit_compilation_duration_seconds_total", 0.38, kind="block"),
        sample("runtime_jit_code_compactions_total", 7),
        sample("runtime_jit_code_compaction_duration_seconds_total", 0.042),
        sample("runtime_jit_code_zone_bytes", 2097152),
        sample("runtime_jit_code_zone_methods", 3104),
        sample("runtime_uptime_seconds", 86400.5),
        sample("runtime_start_time_seconds", 1764300000),
        sample(
            "runtime_info", 1, runtime="pharo", runtime_version="Pharo-11.0.0+build.726",
            application="orders", application_version="2.3.1",
        ),
        sample("runtime_processes", 1, state="active", priority="40"),
        sample("runtime_processes", 14, state="blocked", priority="40"),
        sample("runtime_processes", 2, state="blocked", priority="60"),
        sample("runtime_processes", 1, state="ready", priority="10"),
        sample("runtime_processes", 23, state="terminated", priority="40"),
        sample("runtime_handle_table_slots", 17, table="external_semaphores", state="used"),
        sample("runtime_handle_table_slots", 23, table="external_semaphores", state="free"),
        sample("runtime_handle_table_slots_limit", 256, table="external_semaphores"),
        sample("http_server_active_requests", 3),
        # 1200 requests in ms buckets [300, 500, 300, 50, 30, 10, 5, 3], made cumulative in seconds.
        *http("GET", "/orders/{id}", "200", 1200, 18.0005, 2400000),
        sample("http_server_request_duration_seconds_bucket", 300, http_request_method="GET",
               http_route="/orders/{id}", http_response_status_code="200", le="0.005"),
        sample("http_server_request_duration_seconds_bucket", 1100, http_request_method="GET",
               http_route="/orders/{id}", http_response_status_code="200", le="0.025"),
        sample("http_server_request_duration_seconds_bucket", 1198, http_request_method="GET",
               http_route="/orders/{id}", http_response_status_code="200", le="1.0"),
        *http("GET", "/orders/{id}", "404", 7, 0.021, 700),  # reported as /orders/1234
        *http("POST", "/orders", "201", 90, 9.0, 45000),
        *http("POST", "/orders", "500", 2, 4.0, 300),
        sample("application_healthy", 1),
        sample("application_health_status", 0, status="pass"),  # "status": "warn"
        sample("application_health_status", 1, status="warn"),
        sample("application_health_status", 0, status="fail"),
        sample("application_health_check_healthy", 1, check="database"),
    ],
    "stargate": [
        sample("runtime_memory_total_bytes", 287309824),  # category "total allocated"
        sample("runtime_memory_bytes", 268435456, space="old"),
        sample("runtime_memory_free_bytes", 41943040, space="old"),
        sample("runtime_memory_bytes", 12582912, space="eden"),
        sample("runtime_memory_bytes", 4194304, space="young"),
        sample("runtime_gc_duration_seconds_total", 3.45, kind="major"),  # type "full", 3450 ms
        sample("runtime_gc_duration_seconds_total", 91.234, kind="minor"),  # "incremental", 91234 ms
        sample("runtime_gc_collections_total", 12, kind="major"),
        sample("runtime_gc_collections_total", 48211, kind="minor"),
        sample("runtime_gc_tenured_objects_total", 1532907),
        sample("runtime_uptime_seconds", 86400.5),
        sample("runtime_info", 1, runtime="pharo", runtime_version="", application="", application_version=""),
        sample("application_healthy", 1),  # {"status":"PASS"}
        sample("application_health_status", 1, status="pass"),
        sample("application_health_status", 0, status="warn"),
        sample("application_health_status", 0, status="fail"),
        # "Process count" rows by status and priority, lower-cased.
        sample("runtime_processes", 1, state="blocked", priority="80"),
        sample("runtime_processes", 2, state="blocked", priority="60"),
        sample("runtime_processes", 14, state="blocked", priority="40"),
        sample("runtime_processes", 1, state="ready", priority="10"),
        sample("runtime_processes", 23, state="terminated", priority="40"),
        sample("runtime_processes", 1, state="active", priority="40"),
        # "External semaphore count": max 256, free 240, used 16.
        sample("runtime_handle_table_slots", 16, table="external_semaphores", state="used"),
        sample("runtime_handle_table_slots", 240, table="external_semaphores", state="free"),
        sample("runtime_handle_table_slots_limit", 256, table="external_semaphores"),
        # /pets/42 (120 requests, 1800 ms, 36000 B) + /pets/17 (80, 1000 ms, 24000 B)
        *http("GET", "/pets/{id}", "200", 200, 2.8, 60000),
        *http("GET", "/pets/{id}", "500", 1, 3.012, 120),
        *http("GET", "/pets/{id}", "404", 5, 0.010, 250),
        *http("GET", "/pets", "200", 30, 0.9, 90000),  # /pets?limit=10&start=20
        *http("POST", "/pets", "201", 12, 0.24, 0),
        *http("PATCH", "/orders/{id}", "409", 2, 0.014, 180),  # /orders/<uuid>
        *http("GET", "/operations/metrics", "200", 1440, 21.6, 4147200),
        *http("POST", "/operations/health-check", "200", 1440, 2.88, 25920),
    ],
    "go-expvar": [
        sample("runtime_gc_collections_total", 312, kind="major"),  # NumGC
        sample("runtime_gc_duration_seconds_total", 0.063680671, kind="major"),  # PauseTotalNs 63680671
        # HeapSys 83083264 - HeapReleased 17924096 = 65159168 held; minus HeapAlloc 48234512 free.
        sample("runtime_memory_bytes", 65159168, space="heap"),
        sample("runtime_memory_free_bytes", 16924656, space="heap"),
        sample("runtime_memory_bytes", 1245184, space="stack"),  # StackInuse
        sample("runtime_gc_heap_goal_bytes", 91430208),  # NextGC
        sample("runtime_memory_total_bytes", 92350952),  # Sys
        sample("runtime_info", 1, runtime="go", runtime_version="", application="inventory-api", application_version=""),
    ],
}

# Routes of the Stargate fixture once templated: no host, query, ID or UUID may survive.
STARGATE_ROUTES = {"/pets/{id}", "/pets", "/orders/{id}", "/operations/metrics", "/operations/health-check"}


# --- a Stargate look-alike -------------------------------------------------------------------
METRICS_TYPE = "application/vnd.stargate.operational-metrics+json"
HEALTH_TYPE = "application/vnd.stargate.health-check.summary+json"


def accepts(accept_header: str, media_type: str, version: str = "1.0.0") -> bool:
    """Stargate's negotiation: the type must match and a version, if given, must prefix ours."""
    for entry in accept_header.split(","):
        kind, *parameters = [part.strip() for part in entry.split(";")]
        params = dict(p.split("=", 1) for p in parameters if "=" in p)
        wanted = params.get("version")
        if kind == media_type and (wanted is None or version.split(".")[: len(wanted.split("."))] == wanted.split(".")):
            return True
    return False


def stargate_handler(token: str, metrics: bytes, health: bytes, health_status: int = 200, prefix: str = ""):
    """Answers like a Stargate API mounted at `prefix`: bearer token required, media types negotiated,
    `GET .../operations/metrics` and `POST .../operations/health-check`."""
    seen: list[tuple[str, str]] = []

    class Stargate(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        requests_seen = seen

        def do_GET(self):  # noqa: N802 - http.server's naming
            self._handle("GET")

        def do_POST(self):  # noqa: N802
            self._handle("POST")

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            seen.append((method, self.path))
            routes = {
                prefix + "/operations/metrics": ("GET", METRICS_TYPE, 200, metrics),
                prefix + "/operations/health-check": ("POST", HEALTH_TYPE, health_status, health),
            }
            if self.path not in routes:
                return self._send(404, "application/json", b'{"code":404,"message":"Not Found"}')
            allowed, media_type, status, body = routes[self.path]
            if method != allowed:
                return self._send(405, "application/json", b'{"code":405,"message":"Method Not Allowed"}')
            if self.headers.get("Authorization") != f"Bearer {token}":
                return self._send(401, "application/json", b'{"code":401,"message":"Unauthorized"}', {"WWW-Authenticate": "Bearer"})
            if not accepts(self.headers.get("Accept", ""), media_type):
                return self._send(406, "application/json", b'{"code":406,"message":"Not Acceptable"}')
            self._send(status, f"{media_type};version=1.0.0", body)

        def _send(self, status: int, content_type: str, body: bytes, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Stargate


def fake_jwt(permissions: list[str]) -> str:
    """A token shaped like Stargate's JWTs (the look-alike compares it, it does not verify it)."""
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256'})}.{part({'permissions': permissions})}.c2lnbmF0dXJl"


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "stargate.token"
    path.write_text(fake_jwt(["read:metrics"]) + "\n")
    return path


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- running the real exporter ---------------------------------------------------------------
def scrape_with_exporter(url: str, profile: str, auth: Auth = Auth()) -> str:
    """One GET /metrics from a real Exporter (sidecar mode, one target) served on loopback."""
    config = Config(
        listen="127.0.0.1:0",
        targets=(Target(name=TARGET, url=url, profile=profile, auth=auth),),
        limits=Limits(timeout_seconds=5),
    )
    exporter = Exporter(config)
    server = make_server(exporter, config.listen)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        response = requests.get(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout=15)
    finally:
        server.shutdown()
        server.server_close()
        exporter.close()
        thread.join(timeout=5)
    assert response.status_code == 200, response.text
    return response.text


def samples_of(exposition: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset({"target": TARGET, **labels}.items())))


def serve_profile(name: str, loopback_server, token_file: Path) -> tuple[str, Auth]:
    """The URL (and credentials) under which the fixture of profile `name` is served."""
    profile = PROFILES[name]
    if name == "stargate":
        handler = stargate_handler(
            token_file.read_text().strip(), fixture_bytes("stargate.json"), fixture_bytes("stargate-health.json")
        )
        return loopback_server(handler) + profile.default_path, Auth(bearer_token=Secret(file=str(token_file)))
    return loopback_server(fixture_bytes(f"{name}.json")) + profile.default_path, Auth()


# --- every profile ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_has_a_fixture_and_expected_samples(name):
    fixture = FIXTURES / f"{name}.json"
    assert fixture.is_file(), f"profile {name!r} has no fixture: add a realistic payload at {fixture}"
    assert EXPECTED.get(name), f"profile {name!r} has no expected samples: add them to EXPECTED in {__file__}"


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_the_exporter_maps_each_fixture_to_the_expected_samples(name, loopback_server, token_file):
    if name not in EXPECTED or not (FIXTURES / f"{name}.json").is_file():
        pytest.fail(f"profile {name!r} lacks a fixture or expected samples (see the test above)")
    url, auth = serve_profile(name, loopback_server, token_file)
    exposition = scrape_with_exporter(url, name, auth)
    samples = samples_of(exposition)

    assert value(samples, "pharos_scrape_success") == 1, exposition
    wrong = []
    for metric, labels, expected in EXPECTED[name]:
        got = value(samples, metric, **labels)
        if got is None or got != pytest.approx(expected, rel=1e-9):
            wrong.append(f"{metric}{labels}: expected {expected}, got {got}")
    assert not wrong, "\n".join(wrong)
    promtool_check_metrics(exposition)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_names_the_path_of_a_wrong_type(name):
    with pytest.raises(DocumentError) as error:
        PROFILES[name].parse("<html>not stats</html>", Reading())
    assert error.value.path == "$"


# --- Stargate ---------------------------------------------------------------------------------
def test_stargate_full_urls_become_route_templates(loopback_server, token_file):
    url, auth = serve_profile("stargate", loopback_server, token_file)
    samples = samples_of(scrape_with_exporter(url, "stargate", auth))

    routes = {dict(labels)["http_route"] for _, labels in samples if "http_route" in dict(labels)}
    assert routes == STARGATE_ROUTES
    assert value(samples, "pharos_scrape_routes") == len(STARGATE_ROUTES)


def test_stargate_start_time_is_derived_from_the_uptime(loopback_server, token_file):
    url, auth = serve_profile("stargate", loopback_server, token_file)
    before = time.time()
    samples = samples_of(scrape_with_exporter(url, "stargate", auth))
    # Uptime 86400.5 s: the start lies a day before the scrape, rounded to the second.
    assert before - 86400.5 - 1 <= value(samples, "runtime_start_time_seconds") <= time.time() - 86400.5 + 1


def test_stargate_health_check_is_posted_with_the_token_and_a_failure_maps_to_unhealthy(loopback_server, token_file):
    handler = stargate_handler(
        token_file.read_text().strip(),
        fixture_bytes("stargate.json"),
        fixture_bytes("stargate-health-unhealthy.json"),
        health_status=503,
    )
    base = loopback_server(handler)
    exposition = scrape_with_exporter(base + "/operations/metrics", "stargate", Auth(bearer_token=Secret(file=str(token_file))))
    samples = samples_of(exposition)

    assert ("POST", "/operations/health-check") in handler.requests_seen
    assert value(samples, "application_healthy") == 0
    assert value(samples, "pharos_scrape_success") == 1  # the application answered; it is just unhealthy
    assert value(samples, "runtime_gc_collections_total", kind="major") == 12
    promtool_check_metrics(exposition)


@pytest.mark.parametrize(
    ("status", "body", "healthy", "state"),
    [
        (200, b'{"status":"WARN"}', 1, "warn"),
        (200, b'{"status":"PASS"}', 1, "pass"),
        (503, b'{"status":"FAIL"}', 0, "fail"),
        (503, b'{"status":"WARN"}', 0, "fail"),
        (200, b'{"status":"SHRUG"}', 0, None),
    ],
)
def test_stargate_health_statuses(status, body, healthy, state, loopback_server, token_file):
    handler = stargate_handler(token_file.read_text().strip(), b"[]", body, health_status=status)
    url = loopback_server(handler) + "/operations/metrics"
    samples = samples_of(scrape_with_exporter(url, "stargate", Auth(bearer_token=Secret(file=str(token_file)))))
    assert value(samples, "application_healthy") == healthy
    statuses = {each: value(samples, "application_health_status", status=each) for each in c.HEALTH_STATUSES}
    assert statuses == ({each: float(each == state) for each in c.HEALTH_STATUSES} if state else dict.fromkeys(c.HEALTH_STATUSES))


def test_stargate_mounted_under_a_prefix_finds_its_health_check(loopback_server, token_file):
    handler = stargate_handler(
        token_file.read_text().strip(), fixture_bytes("stargate.json"), fixture_bytes("stargate-health.json"), prefix="/api/v2"
    )
    url = loopback_server(handler) + "/api/v2/operations/metrics"
    samples = samples_of(scrape_with_exporter(url, "stargate", Auth(bearer_token=Secret(file=str(token_file)))))

    assert ("POST", "/api/v2/operations/health-check") in handler.requests_seen
    assert value(samples, "application_healthy") == 1


def test_stargate_with_a_wrong_token_fails_the_scrape_as_auth_failed(loopback_server, token_file, tmp_path):
    handler = stargate_handler(token_file.read_text().strip(), fixture_bytes("stargate.json"), b'{"status":"PASS"}')
    wrong = tmp_path / "wrong.token"
    wrong.write_text(fake_jwt(["read:metrics", "forged"]))
    url = loopback_server(handler) + "/operations/metrics"
    samples = samples_of(scrape_with_exporter(url, "stargate", Auth(bearer_token=Secret(file=str(wrong)))))

    assert value(samples, "pharos_scrape_success") == 0
    assert value(samples, "pharos_scrape_error", reason="auth_failed") == 1


def histogram_counts(reading: Reading) -> dict[tuple[str, str, str], float]:
    """(method, route, status) -> request count, from a Reading's duration histogram."""
    counts = {}
    for family in reading.families():
        for s in family.samples:
            if s.name == c.HTTP_REQUEST_DURATION.count:
                counts[(s.labels[c.Label.METHOD], s.labels[c.Label.ROUTE], s.labels[c.Label.STATUS])] = s.value
    return counts


def http_metric(name: str, rows: list[tuple[dict, float]]) -> dict:
    return {"name": name, "type": "Counter", "value": sum(v for _, v in rows),
            "metrics": [{"value": v, "timestamp": "2026-11-29T10:15:30-03:00", **labels} for labels, v in rows]}


def test_stargate_prefers_its_own_url_template_when_it_recorded_one():
    full = {"http_method": "GET", "url": "http://api:8080/pets/7", "response_code": 200, "url_template": "/pets/<identifier:IsInteger>"}
    simplified = {"http_method": "GET", "url": "http://api:8080/pets/8", "response_code": 200, "url_template": ""}
    document = [http_metric(stargate.HTTP_COUNT, [(full, 3), (simplified, 2)])]
    reading = Reading(RouteTable(10))
    stargate.parse(document, reading)
    assert histogram_counts(reading) == {
        ("GET", "/pets/<identifier:IsInteger>", "200"): 3,
        ("GET", "/pets/{id}", "200"): 2,
    }


def test_stargate_breakdown_limited_to_the_method_still_maps():
    # breakdownCategories #(http_method): rows carry no URL and no status code. Both labels stay
    # empty (absent in PromQL): no route is invented (it used to be __unknown__, "matched none").
    document = [http_metric(stargate.HTTP_COUNT, [({"http_method": "GET"}, 4), ({"http_method": "OPTIONS"}, 1)])]
    reading = Reading(RouteTable(10))
    stargate.parse(document, reading)
    assert histogram_counts(reading) == {("GET", "", ""): 4, ("OPTIONS", "", ""): 1}


@pytest.mark.parametrize(
    ("kept", "expected"),
    [
        ({"response_code": 200}, ("", "", "200")),
        ({"http_method": "GET", "response_code": 404}, ("GET", "", "404")),
        ({"url": "http://api:8080/pets/7"}, ("", "/pets/{id}", "")),
        ({"url_template": "/pets/<id>", "response_code": 200}, ("", "/pets/<id>", "200")),
        ({"url": "http://api:8080/nowhere", "url_template": ""}, ("", "/nowhere", "")),
        ({"url": "", "url_template": ""}, ("", c.ROUTE_UNKNOWN, "")),  # kept, but nothing matched
    ],
)
def test_stargate_narrowed_breakdowns_keep_only_the_labels_they_have(kept, expected):
    document = [
        http_metric(stargate.HTTP_COUNT, [(kept, 3)]),
        http_metric(stargate.HTTP_MS, [(kept, 30)]),
        http_metric(stargate.HTTP_BYTES, [(kept, 300)]),
    ]
    reading = Reading(RouteTable(10))
    stargate.parse(document, reading)
    assert histogram_counts(reading) == {expected: 3}
    samples = {(s.name, s.labels[c.Label.ROUTE]): s.value for f in reading.families() for s in f.samples if s.name.endswith("_sum")}
    assert samples == {(c.HTTP_REQUEST_DURATION.sum, expected[1]): 0.03, (c.HTTP_RESPONSE_SIZE.sum, expected[1]): 300}


def test_stargate_documented_example_response_yields_processes_and_the_semaphore_table():
    """Golden: the JSON example of docs/reference/Metrics.md in ba-st/Stargate, as published."""
    reading = Reading(RouteTable(10))
    stargate.parse(json.loads(fixture_bytes("stargate-docs-example.json")), reading)
    processes = {labels: v for (name, labels, v) in _samples(reading) if name == c.PROCESSES.name}
    assert processes == {
        (("priority", "80"), ("state", "blocked")): 1,
        (("priority", "31"), ("state", "blocked")): 1,
        (("priority", "50"), ("state", "blocked")): 1,
        (("priority", "30"), ("state", "blocked")): 1,
        (("priority", "60"), ("state", "blocked")): 2,
        (("priority", "79"), ("state", "blocked")): 1,
        (("priority", "10"), ("state", "ready")): 1,
        (("priority", "40"), ("state", "active")): 1,
        (("priority", "40"), ("state", "terminated")): 19,
        (("priority", "60"), ("state", "terminated")): 1,
        (("priority", "38"), ("state", "terminated")): 20,
        (("priority", "30"), ("state", "terminated")): 18,
        (("priority", "31"), ("state", "terminated")): 6,
        (("priority", "79"), ("state", "terminated")): 2,
    }
    assert sum(processes.values()) == 75  # the composite's own value
    assert reading.value(c.HANDLE_TABLE_SLOTS, (c.HANDLE_TABLE_EXTERNAL_SEMAPHORES, "used")) == 17
    assert reading.value(c.HANDLE_TABLE_SLOTS, (c.HANDLE_TABLE_EXTERNAL_SEMAPHORES, "free")) == 23
    assert reading.value(c.HANDLE_TABLE_LIMIT, (c.HANDLE_TABLE_EXTERNAL_SEMAPHORES,)) == 256
    assert reading.value(c.RUNTIME_INFO, ("pharo", "", "", "")) == 1
    assert histogram_counts(reading) == {("GET", "/operations/metrics", "200"): 1}


def _samples(reading: Reading):
    for family in reading.families():
        for s in family.samples:
            yield s.name, tuple(sorted(s.labels.items())), s.value


def test_stargate_process_rows_over_the_series_limit_are_left_out_and_counted():
    rows = [({"status": "BLOCKED", "priority": p}, 1) for p in range(10, 81)]
    document = [{"name": stargate.PROCESSES, "type": "Gauge", "value": 71,
                 "metrics": [{"value": v, **labels} for labels, v in rows]}]
    reading = Reading(limits=Limits(max_series_per_target=20))
    stargate.parse(document, reading)
    kept = [s for s in _samples(reading) if s[0] == c.PROCESSES.name]
    assert len(kept) == 19  # runtime_info took one of the 20
    assert reading.limited["series_limit"] == 71 - 19


def test_stargate_processes_of_a_gemstone_running_gem_map_without_pharo_info():
    document = [{"name": stargate.PROCESSES, "type": "Gauge", "value": 3,
                 "metrics": [{"value": 2, "status": "BLOCKED", "priority": "15"}, {"value": 1, "status": "ACTIVE", "priority": 15}]}]
    reading = Reading()
    stargate.parse(document, reading)
    assert reading.value(c.PROCESSES, ("blocked", "15")) == 2
    assert reading.value(c.PROCESSES, ("active", "15")) == 1
    assert reading.value(c.RUNTIME_INFO, ("smalltalk", "", "", "")) == 1


def test_stargate_reads_the_gc_count_under_its_name_before_v7():
    document = [{"name": "Garbage Collector invokations", "type": "Counter", "value": 90,
                 "metrics": [{"value": 84, "type": "full"}, {"value": 6, "type": "incremental"}]}]
    reading = Reading()
    stargate.parse(document, reading)
    assert reading.value(c.GC_COLLECTIONS, (c.GC_KIND_MAJOR,)) == 84


def test_stargate_ignores_metrics_it_does_not_know():
    document = json.loads(fixture_bytes("stargate.json"))
    document.append({"name": "Queue depth", "type": "Histogram", "value": "n/a", "metrics": {"odd": True}})
    reading = Reading()
    stargate.parse(document, reading)
    assert reading.value(c.GC_TENURED_OBJECTS) == 1532907


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"name": "Smalltalk Memory in Bytes"}, "$"),
        ([{"name": "Smalltalk Memory in Bytes", "metrics": [{"value": "lots", "category": "old space"}]}], "$[0].metrics[0].value"),
        ([{"name": "Tenured objects count", "value": [1]}], "$[0].value"),
        ([{"name": "HTTP request count", "metrics": [{"value": 1, "http_method": ["GET"]}]}], "$[0].metrics[0].http_method"),
        ([{"name": "Uptime in seconds", "value": 1}, "oops"], "$[1]"),
        ([{"description": "no name"}], "$[0].name"),
        ([{"name": "Process count", "metrics": [{"value": 1, "status": "READY", "priority": "high"}]}], "$[0].metrics[0].priority"),
        ([{"name": "Process count", "metrics": [{"value": 1, "priority": 40}]}], "$[0].metrics[0].status"),
        ([{"name": "External semaphore count", "metrics": [{"value": "many", "category": "Max External Semaphores in VM"}]}], "$[0].metrics[0].value"),
    ],
)
def test_stargate_wrong_types_name_their_json_path(document, path):
    with pytest.raises(DocumentError) as error:
        stargate.parse(document, Reading())
    assert error.value.path == path


# --- Go expvar ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda doc: doc["memstats"].update(NumGC="312"), "$.memstats.NumGC"),
        (lambda doc: doc.update(memstats=[]), "$.memstats"),
        (lambda doc: doc.update(cmdline="/usr/local/bin/inventory-api"), "$.cmdline"),
    ],
)
def test_go_expvar_wrong_types_name_their_json_path(change, path):
    document = json.loads(fixture_bytes("go-expvar.json"))
    change(document)
    with pytest.raises(DocumentError) as error:
        go_expvar.parse(document, Reading())
    assert error.value.path == path
