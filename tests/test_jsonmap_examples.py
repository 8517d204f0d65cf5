"""The worked examples (examples/jolokia.yml, examples/spring-actuator.yml): a JVM service seen
through Jolokia and a Spring Boot service seen through Actuator land on the catalogue metrics the
dashboards and alerts use. Realistic payloads are served on loopback at the URLs the examples
document, and scraped through the exporter's fetch/scrape/render path."""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote

import pytest

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.jsonmap import DROP_REASONS, load_modules_file
from pharos_monitoring.exporter.jsonmap.schema import _METRIC_KEYS, MODULE_KEYS

from jsonmap_support import key, scrape, series

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "jsonmap"
JOLOKIA_READ = (
    "/jolokia/read/java.lang:*/CollectionCount,CollectionTime,HeapMemoryUsage,NonHeapMemoryUsage,"
    "Uptime,StartTime,VmName,VmVersion,ThreadCount,DaemonThreadCount?ignoreErrors=true"
)
# The URL each Spring module reads (as examples/spring-actuator.yml documents) and its payload.
SPRING = {
    "spring-gc-minor": ("/actuator/metrics/jvm.gc.pause?tag=action:end%20of%20minor%20GC", "spring-jvm.gc.pause-minor.json"),
    "spring-gc-major": ("/actuator/metrics/jvm.gc.pause?tag=action:end%20of%20major%20GC", "spring-jvm.gc.pause-major.json"),
    "spring-heap-used": ("/actuator/metrics/jvm.memory.used?tag=area:heap", "spring-jvm.memory.used-heap.json"),
    "spring-heap-max": ("/actuator/metrics/jvm.memory.max?tag=area:heap", "spring-jvm.memory.max-heap.json"),
    "spring-uptime": ("/actuator/metrics/process.uptime", "spring-process.uptime.json"),
    "spring-start-time": ("/actuator/metrics/process.start.time", "spring-process.start.time.json"),
    "spring-health": ("/actuator/health", "spring-health.json"),
}


def routes_handler(routes: dict[str, bytes]):
    """Answers each path-and-query of `routes` with its payload, anything else with 404."""

    class Routes(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            body = routes.get(unquote(self.path))
            status = 200 if body is not None else 404
            body = body if body is not None else b'{"error": "not found"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.spring-boot.actuator.v3+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Routes


def catalogue_series(text: str) -> dict:
    names = {metric.name for metric in c.all_metrics() if not metric.name.startswith("pharos_")}
    return {k: v for k, v in series(text).items() if k[0] in names}


def test_jolokia_pattern_read_maps_onto_the_catalogue(loopback_server):
    module = load_modules_file(str(ROOT / "examples" / "jolokia.yml"))["jolokia-jvm"]
    url = loopback_server(routes_handler({unquote(JOLOKIA_READ): (FIXTURES / "jolokia-read-java-lang.json").read_bytes()}))
    outcome, text = scrape(module, url + JOLOKIA_READ)
    assert outcome.success, outcome.detail
    assert catalogue_series(text) == {
        key("runtime_gc_collections_total", kind="minor"): 1482,  # G1 Young Generation
        key("runtime_gc_collections_total", kind="major"): 3,  # G1 Old Generation; G1 Concurrent GC left out
        key("runtime_gc_duration_seconds_total", kind="minor"): pytest.approx(9.841),
        key("runtime_gc_duration_seconds_total", kind="major"): pytest.approx(0.412),
        key("runtime_memory_bytes", space="heap"): 512811232,
        key("runtime_memory_bytes", space="nonheap"): 140128456,
        key("runtime_memory_limit_bytes", space="heap"): 4294967296,
        key("runtime_uptime_seconds"): pytest.approx(86400.456),
        key("runtime_start_time_seconds"): pytest.approx(1717000000.123),
        key("runtime_info", runtime="jvm", runtime_version="21.0.3+9-LTS", application="", application_version=""): 1,
    }
    assert series(text, "jvm_threads") == {key("jvm_threads_live"): 58, key("jvm_threads_daemon"): 41}
    assert sum(v for k, v in series(text, "pharos_module_scrape_dropped_samples").items()) == 0


def test_jolokia_bulk_read_maps_the_same_way(loopback_server):
    module = load_modules_file(str(ROOT / "examples" / "jolokia.yml"))["jolokia-jvm-bulk"]
    requests = json.loads(module.render_body())
    assert module.method == "POST"
    assert [request["mbean"] for request in requests] == ["java.lang:type=GarbageCollector,name=*", "java.lang:type=Memory", "java.lang:type=Runtime"]
    answer = (FIXTURES / "jolokia-bulk-response.json").read_bytes()

    class Jolokia(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    outcome, text = scrape(module, loopback_server(Jolokia) + "/jolokia/")
    assert outcome.success, outcome.detail
    assert catalogue_series(text) == {
        key("runtime_gc_collections_total", kind="minor"): 977,  # PS Scavenge
        key("runtime_gc_collections_total", kind="major"): 5,  # PS MarkSweep
        key("runtime_gc_duration_seconds_total", kind="minor"): pytest.approx(4.312),
        key("runtime_gc_duration_seconds_total", kind="major"): pytest.approx(1.873),
        key("runtime_memory_bytes", space="heap"): 201326592,
        key("runtime_memory_limit_bytes", space="heap"): 1836580864,
        key("runtime_uptime_seconds"): pytest.approx(3600.25),
        key("runtime_start_time_seconds"): pytest.approx(1717082799.75),
        key("runtime_info", runtime="jvm", runtime_version="17.0.11+9", application="", application_version=""): 1,
    }


def test_spring_actuator_maps_onto_the_catalogue(loopback_server):
    modules = load_modules_file(str(ROOT / "examples" / "spring-actuator.yml"))
    assert set(modules) == set(SPRING)
    url = loopback_server(routes_handler({unquote(path): (FIXTURES / payload).read_bytes() for path, payload in SPRING.values()}))
    found: dict = {}
    for name, (path, _) in SPRING.items():
        outcome, text = scrape(modules[name], url + path)
        assert outcome.success, (name, outcome.detail)
        found.update(catalogue_series(text))
    assert found == {
        key("runtime_gc_collections_total", kind="minor"): 1387,
        key("runtime_gc_collections_total", kind="major"): 2,
        key("runtime_gc_duration_seconds_total", kind="minor"): 8.904,
        key("runtime_gc_duration_seconds_total", kind="major"): 0.291,
        key("runtime_memory_bytes", space="heap"): 287309824,
        key("runtime_memory_limit_bytes", space="heap"): 4294967294,
        key("runtime_uptime_seconds"): 93784.512,
        key("runtime_start_time_seconds"): 1716992616.488,
        key("application_healthy"): 0,  # DOWN
        key("application_health_check_healthy", check="db"): 1,
        key("application_health_check_healthy", check="diskSpace"): 1,
        key("application_health_check_healthy", check="livenessState"): 1,
        key("application_health_check_healthy", check="ping"): 1,
        key("application_health_check_healthy", check="rabbit"): 0,
        key("application_health_check_healthy", check="readinessState"): 0,  # OUT_OF_SERVICE
    }


def test_the_spring_example_documents_the_urls_it_is_tested_with():
    text = (ROOT / "examples" / "spring-actuator.yml").read_text()
    for name, (path, _) in SPRING.items():
        assert re.search(rf"#\s+{re.escape(name)}\s+{re.escape(path)}", text), name
    assert JOLOKIA_READ in (ROOT / "examples" / "jolokia.yml").read_text()


def test_both_examples_feed_what_the_jvm_dashboards_and_alerts_need():
    needed = {c.GC_COLLECTIONS.name, c.GC_DURATION.name, c.MEMORY_SPACE.name, c.MEMORY_LIMIT.name, c.UPTIME.name, c.START_TIME.name}
    for example in ("jolokia.yml", "spring-actuator.yml"):
        modules = load_modules_file(str(ROOT / "examples" / example))
        produced = {name for module in modules.values() for name in module.metric_names}
        assert needed <= produced, (example, needed - produced)


def test_the_reference_documents_every_key_and_drop_reason():
    reference = (ROOT / "docs" / "json-mapping.md").read_text()
    for word in sorted(_METRIC_KEYS | MODULE_KEYS | set(DROP_REASONS)):
        assert f"`{word}`" in reference, word
    for metric in ("pharos_module_scrape_series", "pharos_module_scrape_dropped_samples", "pharos_module_scrape_mapping_seconds",
                   "pharos_module_scrapes_total", "pharos_module_scrape_duration_seconds", "pharos_module_dropped_samples_total"):  # fmt: skip
        assert metric in reference, metric
