"""`pharos demo-app` and `pharos demo`: a real service reporting its own stats in the pharo format."""

from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import jsonschema
import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from pharos_monitoring.demo.app import AppConfig, DemoApp
from pharos_monitoring.demo.faults import FaultSettings
from pharos_monitoring.demo.main import add_app_arguments
from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.config import Config, Limits, Target
from pharos_monitoring.exporter.profiles import get as get_profile
from pharos_monitoring.exporter.reading import Reading
from pharos_monitoring.exporter.routes import RouteTable
from pharos_monitoring.exporter.collect import Exporter
from pharos_monitoring.exporter.serving.server import make_server

from helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "exporter/profiles/schemas/pharo-stats.schema.json").read_text())
TIMEOUT = 30  # for any one HTTP call; generous, the machine is shared


# --- helpers ---------------------------------------------------------------------------------
@pytest.fixture
def app():
    demo = DemoApp(AppConfig(host="127.0.0.1", port=0, traffic=0, seed=7, stats_hang_limit_seconds=2.0))
    demo.start()
    try:
        yield demo
    finally:
        demo.stop()


def stats(url: str) -> dict:
    response = requests.get(url + "/stats", timeout=TIMEOUT)
    assert response.status_code == 200
    return response.json()


def set_faults(url: str, **knobs) -> dict:
    response = requests.post(url + "/faults", json=knobs, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def rows(document: dict) -> dict[tuple, dict]:
    return {(row["method"], row.get("route"), row["status"]): row for row in document["http"]["requests"]}


def exported(document: dict) -> dict[tuple, float]:
    """What the exporter's pharo profile makes of `document`: {(sample name, sorted labels): value}."""
    reading = Reading(RouteTable(200))  # as the exporter reads a target
    get_profile("pharo").parse(document, reading)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in reading.families()
        for sample in family.samples
    }


def series(name: str, **labels) -> tuple:
    return (name, tuple(sorted(labels.items())))


@contextmanager
def demo_app_process(*arguments: str):
    """`pharos demo-app` as a child process on a free port; yields (process, base URL)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pharos_monitoring.cli", "demo-app", "--listen", "127.0.0.1:0", "--log-level", "warning", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        readable, _, _ = select.select([process.stdout], [], [], TIMEOUT)
        line = process.stdout.readline().decode() if readable else ""
        found = re.search(r"listening on (http://\S+)", line)
        assert found, f"no address from demo-app: {line!r} {process.stderr.read1(2000) if process.poll() is not None else b''!r}"
        yield process, found.group(1)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=TIMEOUT)
        process.stdout.close()
        process.stderr.close()



# --- the stats document ----------------------------------------------------------------------
def test_stats_after_every_kind_of_request_match_the_schema_and_the_profile(app):
    url = app.url
    listing = requests.get(url + "/api/orders?limit=5", timeout=TIMEOUT)
    assert listing.status_code == 200 and len(listing.json()["orders"]) == 5
    order_id = listing.json()["orders"][0]["id"]
    assert requests.get(f"{url}/api/orders/{order_id}", timeout=TIMEOUT).status_code == 200
    assert requests.get(f"{url}/api/orders/999999999", timeout=TIMEOUT).status_code == 404
    customer = next(iter(app.store.customers))
    new_order = {"customer": customer, "items": [{"sku": "SKU-0001", "quantity": 2, "unitPrice": 9.5}]}
    created = requests.post(url + "/api/orders", json=new_order, timeout=TIMEOUT)
    assert created.status_code == 201 and created.json()["total"] == 19.0
    refused = requests.post(url + "/api/orders", json={"customer": customer, "items": [{"sku": "nope"}]}, timeout=TIMEOUT)
    assert refused.status_code == 400 and "items[0].sku" in refused.json()["error"]
    assert requests.get(f"{url}/api/customers/{customer}", timeout=TIMEOUT).json()["orders"] >= 1
    assert requests.get(url + "/wp-login.php", timeout=TIMEOUT).status_code == 404
    assert requests.put(url + "/api/orders", timeout=TIMEOUT).status_code == 405

    document = stats(url)
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    counted = rows(document)
    assert counted[("GET", "/api/orders/{id}", 200)]["count"] == 1
    assert counted[("GET", "/api/orders/{id}", 404)]["count"] == 1
    assert counted[("POST", "/api/orders", 201)]["count"] == 1
    assert counted[("POST", "/api/orders", 400)]["count"] == 1
    assert counted[("PUT", "/api/orders", 405)]["count"] == 1
    assert counted[("GET", None, 404)]["count"] == 1, "an unknown path is counted without a route"
    assert not any(route == "/stats" for _, route, _ in counted), "/stats does not count itself"
    assert document["http"]["activeRequests"] == 0
    for row in counted.values():
        assert len(row["durationBucketCounts"]) == len(document["http"]["durationBucketsMs"])
        assert sum(row["durationBucketCounts"]) <= row["count"]
    assert document["runtime"]["name"] == "cpython" and document["application"]["name"] == "orders"

    samples = exported(document)
    labels = {c.Label.METHOD: "GET", c.Label.ROUTE: "/api/orders/{id}", c.Label.STATUS: "404"}
    assert samples[series(c.HTTP_REQUEST_DURATION.count, **labels)] == 1
    unknown = {c.Label.METHOD: "GET", c.Label.ROUTE: c.ROUTE_UNKNOWN, c.Label.STATUS: "404"}
    assert samples[series(c.HTTP_REQUEST_DURATION.count, **unknown)] == 1
    assert samples[series(c.APP_HEALTHY.name)] == 1


def test_threads_and_file_descriptors_are_the_process_own(app):
    document = stats(app.url)
    me = psutil.Process()
    threads = sum(row["count"] for row in document["processes"])
    # The app runs in this test's process; the thread answering /stats comes and goes.
    assert abs(threads - me.num_threads()) <= 2
    assert {row["state"] for row in document["processes"]} <= set(c.PROCESS_STATES)
    (table,) = document["handleTables"]
    assert table["table"] == c.HANDLE_TABLE_FILE_DESCRIPTORS
    assert abs(table["used"] - me.num_fds()) <= 5  # the stats connection itself comes and goes
    assert table["max"] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert table["used"] + table["free"] == table["max"]
    samples = exported(document)
    assert samples[series(c.HANDLE_TABLE_LIMIT.name, table="file_descriptors")] == table["max"]
    assert sum(v for (name, _), v in samples.items() if name == c.PROCESSES.name) == threads


def test_memory_figures_are_the_process_own_and_nest_like_pharo_spaces(app):
    vm = stats(app.url)["vm"]
    resident = psutil.Process().memory_info().rss
    assert 0.5 * resident < vm["memorySize"] < 2 * resident
    assert vm["oldSpace"] + vm["youngSpaceSize"] == vm["memorySize"]
    assert 0 < vm["edenSpaceSize"] <= vm["youngSpaceSize"]


def test_latency_fault_moves_requests_into_slower_buckets(app):
    set_faults(app.url, latency_ms=30)
    for _ in range(2):
        assert requests.get(app.url + "/api/orders", timeout=TIMEOUT).status_code == 200
    document = stats(app.url)
    row = rows(document)[("GET", "/api/orders", 200)]
    bounds = document["http"]["durationBucketsMs"]
    faster_than_the_latency = sum(n for bound, n in zip(bounds, row["durationBucketCounts"]) if bound < 30)
    assert row["count"] == 2 and faster_than_the_latency == 0
    assert row["totalDurationMs"] >= 60


def test_error_ratio_one_answers_500_counted_as_status_500(app):
    set_faults(app.url, error_ratio=1)
    answers = [requests.get(app.url + "/api/orders", timeout=TIMEOUT) for _ in range(5)]
    assert [a.status_code for a in answers] == [500] * 5
    assert "error_ratio" in answers[0].json()["error"]
    assert requests.get(app.url + "/health", timeout=TIMEOUT).status_code == 200, "faults hit application routes only"
    document = stats(app.url)
    assert rows(document)[("GET", "/api/orders", 500)]["count"] == 5
    assert ("GET", "/api/orders", 200) not in rows(document)
    labels = {c.Label.METHOD: "GET", c.Label.ROUTE: "/api/orders", c.Label.STATUS: "500"}
    assert exported(document)[series(c.HTTP_REQUEST_DURATION.count, **labels)] == 5


def test_unhealthy_fault_fails_health_and_a_named_check(app):
    assert requests.get(app.url + "/health", timeout=TIMEOUT).status_code == 200
    set_faults(app.url, unhealthy=True)
    health = requests.get(app.url + "/health", timeout=TIMEOUT)
    assert health.status_code == 503 and health.json()["checks"]["order_store"] is False
    document = stats(app.url)
    assert document["health"] == {"healthy": False, "status": "fail", "checks": {"order_store": False, "memory": True}}
    samples = exported(document)
    assert samples[series(c.APP_HEALTHY.name)] == 0
    assert samples[series(c.APP_HEALTH_CHECK.name, check="order_store")] == 0


@pytest.mark.parametrize(
    "body, complaint",
    [
        ({"error_ratio": 1.5}, "error_ratio: 1.5 is out of range; allowed 0 to 1"),
        ({"latency_ms": -1}, "latency_ms: -1 is out of range"),
        ({"allocation_pressure": 1000}, "allocation_pressure: 1000 is out of range; allowed 0 to 100 MB/s"),
        ({"error_ratio": "half"}, "error_ratio: expected a number"),
        ({"stats_hang": 1}, "stats_hang: expected true or false"),
        ({"latency": 5}, "unknown fault 'latency'; known faults: error_ratio, latency_ms"),
        ([0.5], "expected a JSON object"),
        ({"unhealthy": True, "error_ratio": 7}, "error_ratio"),  # all or nothing: unhealthy is not applied
    ],
)
def test_bad_fault_values_are_refused_with_a_clear_message(app, body, complaint):
    before = requests.get(app.url + "/faults", timeout=TIMEOUT).json()
    response = requests.post(app.url + "/faults", json=body, timeout=TIMEOUT)
    assert response.status_code == 400
    assert complaint in response.json()["error"]
    assert requests.get(app.url + "/faults", timeout=TIMEOUT).json() == before


def test_faults_are_readable_and_resettable(app):
    changed = set_faults(app.url, latency_ms=5, unhealthy=True)
    assert changed["latency_ms"] == 5 and changed["unhealthy"] is True
    assert requests.get(app.url + "/faults", timeout=TIMEOUT).json()["unhealthy"] is True
    reset = requests.delete(app.url + "/faults", timeout=TIMEOUT).json()
    assert reset["latency_ms"] == 0 and reset["unhealthy"] is False
    not_json = requests.post(app.url + "/faults", data=b"error_ratio=1", timeout=TIMEOUT)
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]


def test_the_traffic_generator_drives_the_application_routes():
    demo = DemoApp(AppConfig(host="127.0.0.1", port=0, traffic=40, seed=3))
    demo.start()
    try:
        def enough():
            counted = rows(stats(demo.url))
            routes = {route for _, route, _ in counted}
            total = sum(row["count"] for row in counted.values())
            return total >= 20 and {"/api/orders", "/api/orders/{id}"} <= routes and counted

        counted = wait_for(enough, seconds=30)
        assert counted, "the generator sent too little in 30 s"
        assert all(route is None or route.startswith("/api/") for _, route, _ in counted)
    finally:
        demo.stop()


# --- the GC, measured for real ---------------------------------------------------------------
def test_gc_counters_grow_under_allocation_pressure():
    with demo_app_process("--traffic", "0") as (_, url):
        idle_before = stats(url)["vm"]
        time.sleep(1.0)
        idle_after = stats(url)["vm"]
        assert idle_after["fullGCCount"] - idle_before["fullGCCount"] <= 1, "an idle demo does almost no full GC"
        idle_minor = idle_after["incrementalGCCount"] - idle_before["incrementalGCCount"]

        set_faults(url, allocation_pressure=20)

        def grown():
            vm = stats(url)["vm"]
            ok = (
                vm["fullGCCount"] - idle_after["fullGCCount"] >= 2
                and vm["incrementalGCCount"] - idle_after["incrementalGCCount"] >= max(50, 10 * idle_minor)
                and vm["tenureCount"] > idle_after["tenureCount"]
                and vm["totalFullGCTime"] > idle_after["totalFullGCTime"]
                and vm["totalIncrementalGCTime"] > idle_after["totalIncrementalGCTime"]
            )
            return vm if ok else None

        assert wait_for(grown, seconds=60, interval=0.5), f"GC did not grow under pressure: {stats(url)['vm']} (idle: {idle_after})"
        assert requests.get(url + "/faults", timeout=TIMEOUT).json()["allocation_churned_mb"] > 0


# --- stats_hang against the real exporter ----------------------------------------------------
@contextmanager
def exporter_for(stats_url: str, timeout_seconds: float):
    config = Config(listen="127.0.0.1:0", targets=(Target(name="app", url=stats_url),), limits=Limits(timeout_seconds=timeout_seconds))
    exporter = Exporter(config)
    server = make_server(exporter, "127.0.0.1:0")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        exporter.close()


def scrape(exporter_url: str) -> dict[tuple, float]:
    text = requests.get(exporter_url + "/metrics", timeout=TIMEOUT).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_stats_hang_makes_the_exporter_report_a_timeout(app):
    timeout = 1.0
    with exporter_for(app.url + "/stats", timeout) as exporter_url:
        assert scrape(exporter_url)[series(c.SCRAPE_SUCCESS.name, target="app")] == 1

        set_faults(app.url, stats_hang=True)
        hung = scrape(exporter_url)
        assert hung[series(c.SCRAPE_SUCCESS.name, target="app")] == 0
        assert hung[series(c.SCRAPE_ERROR.name, reason="timeout", target="app")] == 1
        # It waited for the answer until its deadline: a hang, not a refused connection.
        assert hung[series(c.SCRAPE_DURATION.name, target="app")] >= 0.9 * timeout

        set_faults(app.url, stats_hang=False)
        assert scrape(exporter_url)[series(c.SCRAPE_SUCCESS.name, target="app")] == 1


def test_the_exporter_shows_the_demo_routes_and_unmatched_paths_as_unknown(app):
    requests.get(app.url + "/api/orders", timeout=TIMEOUT)
    requests.get(app.url + "/no/such/page", timeout=TIMEOUT)
    with exporter_for(app.url + "/stats", 10.0) as exporter_url:
        samples = scrape(exporter_url)
    count = c.HTTP_REQUEST_DURATION.count
    listed = {c.Label.METHOD: "GET", c.Label.ROUTE: "/api/orders", c.Label.STATUS: "200", "target": "app"}
    unmatched = {c.Label.METHOD: "GET", c.Label.ROUTE: c.ROUTE_UNKNOWN, c.Label.STATUS: "404", "target": "app"}
    assert samples[series(count, **listed)] == 1
    assert samples[series(count, **unmatched)] == 1


def test_a_hanging_stats_request_is_closed_unanswered_after_the_limit():
    demo = DemoApp(AppConfig(host="127.0.0.1", port=0, traffic=0, stats_hang_limit_seconds=1.0, faults=FaultSettings(stats_hang=True)))
    demo.start()
    try:
        with socket.create_connection(("127.0.0.1", demo.port), timeout=TIMEOUT) as connection:
            connection.sendall(b"GET /stats HTTP/1.1\r\nHost: demo\r\n\r\n")
            assert connection.recv(1024) == b"", "closed without a single byte of answer"
        assert requests.get(demo.url + "/health", timeout=TIMEOUT).status_code == 200, "the rest still answers"
    finally:
        demo.stop()


# --- processes: flags, signals, `pharos demo` --------------------------------------------------
@pytest.mark.parametrize(
    "arguments, complaint",
    [
        (["--listen", "localhost"], "is not HOST:PORT"),
        (["--error-ratio", "3"], "error_ratio: 3.0 is out of range"),
        (["--allocation-pressure", "lots"], "is not a number from 0 to 100"),
        (["--traffic", "-1"], "--traffic: '-1' is not a number from 0 to 200"),
        (["--memory-limit-mb", "16"], "too small"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(arguments, complaint, capsys):
    import argparse

    parser = argparse.ArgumentParser(prog="pharos demo-app")
    add_app_arguments(parser)
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(arguments)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_demo_app_stops_cleanly_on_signals(signum):
    with demo_app_process("--traffic", "20", "--allocation-pressure", "5") as (process, url):
        assert requests.get(url + "/health", timeout=TIMEOUT).status_code == 200
        process.send_signal(signum)
        assert process.wait(timeout=TIMEOUT) == 0
        assert b"Traceback" not in process.stderr.read()


def test_pharos_demo_runs_an_app_and_an_exporter_and_leaves_nothing_behind():
    result = subprocess.run(
        [sys.executable, "-m", "pharos_monitoring.cli", "demo", "--port-base", "0", "--duration", "3"],
        capture_output=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("PHAROS_")},
    )
    output = result.stdout.decode()
    assert result.returncode == 0, output + result.stderr.decode()
    assert re.search(r"metrics: curl http://127\.0\.0\.1:\d+/metrics", output)
    assert re.search(r'pharos_scrape_success\{target="app"\} 1\.0', output), "the exporter scraped the demo"
    assert "runtime_gc_collections_total" in output
    pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", output)]
    assert len(pids) == 2
    for pid in pids:
        assert not _alive(pid), f"child {pid} outlived `pharos demo`"
    assert "pharos demo: stopped demo-app and exporter" in output


def _alive(pid: int) -> bool:
    """Still running as our child; a pid reused since by an unrelated process does not count."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and "pharos_monitoring.cli" in process.cmdline()
    except psutil.NoSuchProcess:
        return False
