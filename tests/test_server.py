"""The exporter's HTTP server, end to end on loopback: `/metrics` (sidecar), `/probe`
(multi-target, allow-list), `/health`, the landing page, the scrape deadline, the target's
process, and the `pharos exporter` command itself."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.config import parse
from pharos_monitoring.exporter.collect import Exporter
from pharos_monitoring.exporter.serving.server import make_server

from helpers import RawServer, hold_open, promtool_check_metrics, read_request

ROOT = Path(__file__).resolve().parent.parent
PHAROS = ROOT / ".venv" / "bin" / "pharos"
FIXTURE = (ROOT / "tests" / "fixtures" / "profiles" / "pharo.json").read_bytes()
GO_EXPVAR = json.dumps({"memstats": {"NumGC": 5, "HeapAlloc": 1024}}).encode()


# --- loopback targets and a running exporter -------------------------------------------------
def serves(body: bytes, content_type: str = "application/json"):
    """A keep-alive target answering every request with `body`."""

    def behave(connection, server):
        for _ in range(50):
            if read_request(connection, server) is None:
                return
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
            connection.sendall(head.encode() + body)

    return behave


def stalls(connection, server):
    read_request(connection, server)
    hold_open(connection, server)


@contextmanager
def running(config_data: dict):
    """The real exporter serving on 127.0.0.1 (ephemeral port); yields (base URL, Exporter)."""
    exporter = Exporter(parse(config_data, "test.yml"))
    server = make_server(exporter, "127.0.0.1:0")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", exporter
    finally:
        server.shutdown()
        server.server_close()
        exporter.close()
        thread.join(timeout=5)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(values, name: str, **labels) -> float | None:
    return values.get((name, tuple(sorted(labels.items()))))


# --- /metrics ----------------------------------------------------------------------------------
def test_metrics_with_one_target():
    with RawServer(serves(FIXTURE)) as target, running({"targets": [{"name": "orders", "url": target.url()}]}) as (base, _):
        response = requests.get(base + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    promtool_check_metrics(response.text)
    values = samples(response.text)
    assert value(values, c.SCRAPE_SUCCESS.name, target="orders") == 1.0
    assert value(values, c.GC_COLLECTIONS.name, target="orders", kind="major") == 12.0
    assert value(values, c.HTTP_REQUEST_DURATION.count, target="orders", http_request_method="GET",
                 http_route="/orders/{id}", http_response_status_code="404") == 7.0


def test_metrics_with_two_targets_one_down():
    with RawServer(serves(FIXTURE)) as up, RawServer(stalls) as down:
        config = {
            "targets": [{"name": "up", "url": up.url()}, {"name": "down", "url": down.url()}],
            "limits": {"timeout_seconds": 1},
        }
        with running(config) as (base, _):
            started = time.monotonic()
            response = requests.get(base + "/metrics", timeout=10)
            elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 1 + 2.0, "both targets are scraped in parallel within the deadline"
    promtool_check_metrics(response.text)  # one HELP/TYPE per metric although two targets report it
    values = samples(response.text)
    assert value(values, c.SCRAPE_SUCCESS.name, target="up") == 1.0
    assert value(values, c.SCRAPE_SUCCESS.name, target="down") == 0.0
    assert value(values, c.SCRAPE_ERROR.name, target="down", reason="timeout") == 1.0
    assert value(values, c.SCRAPE_ERROR.name, target="up", reason="timeout") == 0.0
    assert value(values, c.GC_COLLECTIONS.name, target="up", kind="minor") == 48211.0
    assert not any(dict(labels).get("target") == "down" and name.startswith("runtime_") for name, labels in values)


def test_the_exporters_own_metrics():
    with RawServer(serves(FIXTURE)) as target, RawServer(serves(b"not json")) as broken:
        config = {"targets": [{"name": "good", "url": target.url()}, {"name": "bad", "url": broken.url()}]}
        with running(config) as (base, _):
            requests.get(base + "/metrics", timeout=10)
            text = requests.get(base + "/metrics", timeout=10).text
    promtool_check_metrics(text)
    values = samples(text)
    # Counters count the scrapes before this one too; the exposition is rendered after scraping.
    assert value(values, c.EXPORTER_SCRAPES.name, profile="pharo", result="success") == 2.0
    assert value(values, c.EXPORTER_SCRAPES.name, profile="pharo", result="failure") == 2.0
    assert value(values, c.EXPORTER_SCRAPE_ERRORS.name, reason="not_json") == 2.0
    assert value(values, c.EXPORTER_SCRAPE_ERRORS.name, reason="timeout") == 0.0
    assert value(values, c.EXPORTER_PROBES_DENIED.name) == 0.0
    build = [labels for name, labels in values if name == c.EXPORTER_BUILD_INFO.name]
    assert len(build) == 1 and dict(build[0])["python_version"] == ".".join(map(str, sys.version_info[:3]))
    for name in ("pharos_process_cpu_seconds_total", "pharos_process_resident_memory_bytes", "pharos_process_open_fds"):
        assert value(values, name) is not None and value(values, name) > 0, name


def test_the_own_metrics_are_what_generate_latest_writes():
    """/metrics writes the exporter's own registry itself (exposition.render_registry), faster
    than generate_latest and byte for byte the same: escapes in label values, `_created` samples,
    a histogram and a collector of our own included."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.exposition import generate_latest

    from pharos_monitoring.exporter.exposition import render_registry

    exporter = Exporter(parse({"targets": [{"name": "app", "url": "http://127.0.0.1:9/"}]}, "test.yml"))
    try:
        exporter.scraper.scrapes.labels('a "quoted"\\ back\nslash', "success").inc(3)
        exporter.denied.inc(1e21)
        exporter.registry.collect = lambda real=exporter.registry.collect: [f for f in real() if not f.name.startswith("pharos_process")]
        assert render_registry(exporter.registry) == generate_latest(exporter.registry)  # process times move between calls
    finally:
        exporter.close()
    other = CollectorRegistry()
    Counter("with_created", "a counter whose _created is on", ["x"], registry=other).labels("1").inc()
    Gauge("plain", "a gauge\nwith a newline in its help", registry=other).set(float("nan"))
    Histogram("latency_seconds", "a histogram", registry=other).observe(0.3)
    assert render_registry(other) == generate_latest(other)


def test_prometheus_timeout_header_shortens_the_deadline():
    with RawServer(stalls) as target:
        config = {"targets": [{"name": "slow", "url": target.url()}], "limits": {"timeout_seconds": 60, "timeout_margin_seconds": 0.5}}
        with running(config) as (base, _):
            started = time.monotonic()
            response = requests.get(base + "/metrics", headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"}, timeout=30)
            elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 2.0, f"{elapsed:.1f}s: the header did not shorten the 60 s timeout"
    values = samples(response.text)
    assert value(values, c.SCRAPE_ERROR.name, target="slow", reason="timeout") == 1.0
    # The deadline was 1.5 s less the 0.5 s margin (exactly: see test_the_deadline), not shorter.
    assert value(values, c.SCRAPE_DURATION.name, target="slow") >= 0.9


@pytest.mark.parametrize(
    "header,expected",
    [
        (None, 10.0),  # configured timeout
        ("3", 2.5),  # Prometheus' timeout less the margin
        ("30", 10.0),  # the configured timeout is shorter
        ("0.4", 0.2),  # the margin never takes more than half
        ("abc", 10.0),  # nonsense is ignored
        ("-5", 10.0),
        ("0", 10.0),
        ("nan", 10.0),
        ("", 10.0),
    ],
)
def test_the_deadline(header, expected):
    exporter = Exporter(parse({"limits": {"timeout_seconds": 10, "timeout_margin_seconds": 0.5}}, "test.yml"))
    before = time.monotonic()
    deadline = exporter.deadline(header)
    after = time.monotonic()
    exporter.close()
    assert before + expected <= deadline <= after + expected


# --- /probe ------------------------------------------------------------------------------------
def probe(base: str, **params) -> requests.Response:
    return requests.get(base + "/probe", params=params, timeout=10)


def test_probe_refuses_bad_requests():
    with running({"probe": {"allow": ["127.0.0.0/8"]}}) as (base, _):
        missing = probe(base)
        unknown = probe(base, target="127.0.0.1:1", profile="pharoh")
        credentials = probe(base, target="http://user:secret@127.0.0.1:1/stats")
        bad_port = probe(base, target="127.0.0.1:99999")
    assert missing.status_code == 400 and "'target' parameter is missing" in missing.text
    assert unknown.status_code == 400 and "unknown profile 'pharoh'; known profiles: go-expvar, pharo" in unknown.text
    assert credentials.status_code == 400 and "credentials in the URL are not accepted" in credentials.text
    assert "secret" not in credentials.text
    assert bad_port.status_code == 400 and "invalid port" in bad_port.text


@pytest.mark.parametrize(
    "allow,target,status",
    [
        (["10.0.0.0/8"], "127.0.0.1:{port}", 403),
        (["orders", "*.internal.example"], "127.0.0.1:{port}", 403),
        (["http://127.0.0.1:1"], "127.0.0.1:{port}", 403),  # same host, another port (not a text prefix)
        (["http://127.0.0.1:{port}/metrics"], "http://127.0.0.1:{port}/stats", 403),  # same port, another path
        (["http://127.0.0.1:{port}/api"], "http://127.0.0.1:{port}/apix", 403),  # a path prefix ends at a /
        (["https://127.0.0.1:{port}/"], "http://127.0.0.1:{port}/", 403),  # another scheme
        ([], "127.0.0.1:{port}", 403),  # an empty allow-list allows nothing
        (["http://127.0.0.1"], "http://127.0.0.1@127.0.0.1:{port}/stats", 400),  # user info disguising the host
    ],
)
def test_probe_outside_the_allow_list_is_refused_without_contacting_the_target(allow, target, status):
    with RawServer(serves(FIXTURE)) as listener:
        entries = [entry.format(port=listener.port) for entry in allow]
        with running({"probe": {"allow": entries}}) as (base, _):
            response = probe(base, target=target.format(port=listener.port))
            denied = value(samples(requests.get(base + "/metrics", timeout=10).text), c.EXPORTER_PROBES_DENIED.name)
        # Answered synchronously: had the exporter connected, it would have done so by now.
        assert listener.accepts == 0
    assert response.status_code == status, response.text
    if status == 403:
        assert "is not on the allow-list (probe.allow in test.yml)" in response.text
        assert denied == 1.0


@pytest.mark.parametrize(
    "allow,target",
    [
        (["127.0.0.0/8"], "127.0.0.1:{port}"),  # CIDR
        (["127.0.0.1"], "127.0.0.1:{port}"),  # one address
        (["localhost"], "localhost:{port}"),  # host name as written
        (["10.0.0.0/8", "127.0.0.1/32"], "localhost:{port}"),  # a name whose addresses are all in a network
        (["http://127.0.0.1:{port}/"], "127.0.0.1:{port}"),  # URL prefix
        (["http://127.0.0.1:{port}/stats"], "http://127.0.0.1:{port}/stats"),
    ],
)
def test_probe_on_the_allow_list(allow, target):
    with RawServer(serves(FIXTURE)) as listener:
        entries = [entry.format(port=listener.port) for entry in allow]
        with running({"probe": {"allow": entries}}) as (base, _):
            response = probe(base, target=target.format(port=listener.port), profile="pharo")
    assert response.status_code == 200, response.text
    promtool_check_metrics(response.text)
    values = samples(response.text)
    assert value(values, c.SCRAPE_SUCCESS.name) == 1.0  # no target label in multi-target mode
    assert value(values, c.GC_COLLECTIONS.name, kind="major") == 12.0
    assert listener.requests[0]["line"] == "GET /stats HTTP/1.1"


def test_probe_adds_the_profiles_default_path():
    with RawServer(serves(GO_EXPVAR)) as listener:
        with running({"probe": {"allow": ["127.0.0.0/8"]}}) as (base, _):
            response = probe(base, target=f"127.0.0.1:{listener.port}", module="go-expvar")
            explicit = probe(base, target=f"http://127.0.0.1:{listener.port}/custom/vars", profile="go-expvar")
    assert response.status_code == 200 and explicit.status_code == 200
    assert [r["line"] for r in listener.requests] == ["GET /debug/vars HTTP/1.1", "GET /custom/vars HTTP/1.1"]
    assert value(samples(response.text), c.GC_COLLECTIONS.name, kind="major") == 5.0


def test_probe_of_a_failing_target_still_answers_200_with_the_reason():
    with RawServer(stalls) as listener:
        with running({"probe": {"allow": ["127.0.0.0/8"]}, "limits": {"timeout_seconds": 1}}) as (base, _):
            response = probe(base, target=f"127.0.0.1:{listener.port}")
    assert response.status_code == 200
    promtool_check_metrics(response.text)
    values = samples(response.text)
    assert value(values, c.SCRAPE_SUCCESS.name) == 0.0 and value(values, c.SCRAPE_ERROR.name, reason="timeout") == 1.0


def test_probed_targets_keep_few_connections_open(monkeypatch):
    import pharos_monitoring.exporter.collect as server_module

    monkeypatch.setattr(server_module, "PROBE_CONNECTIONS_KEPT", 2)
    listeners = [RawServer(serves(FIXTURE)) for _ in range(5)]
    try:
        with running({"probe": {"allow": ["127.0.0.0/8"]}}) as (base, _):
            for listener in listeners:
                assert probe(base, target=f"127.0.0.1:{listener.port}").status_code == 200
            ports = {listener.port for listener in listeners}
            mine = psutil.Process().net_connections(kind="tcp")
            open_to_targets = [conn for conn in mine if conn.raddr and conn.raddr.port in ports and conn.status == "ESTABLISHED"]
            assert len(open_to_targets) == 2
            # A target whose connection was closed is probed again over a new one.
            assert probe(base, target=f"127.0.0.1:{listeners[0].port}").status_code == 200
            assert listeners[0].accepts == 2
    finally:
        for listener in listeners:
            listener.stop()


# --- /health, landing page, unknown paths, keep-alive -----------------------------------------
def test_health_when_the_target_answers():
    with RawServer(serves(FIXTURE)) as target, running({"targets": [{"name": "orders", "url": target.url()}]}) as (base, _):
        response = requests.get(base + "/health", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    report = response.json()
    assert report["status"] == "ok"
    assert report["targets"][0]["name"] == "orders" and report["targets"][0]["success"] is True


def test_health_when_the_target_does_not_answer():
    with RawServer(serves(b"<html>maintenance</html>", "text/html")) as target:
        with running({"targets": [{"name": "orders", "url": target.url()}]}) as (base, _):
            response = requests.get(base + "/health", timeout=10)
    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "failing"
    (orders,) = report["targets"]
    assert orders["success"] is False and orders["reason"] == "not_json" and "text/html" in orders["detail"]


def test_landing_page_and_unknown_paths():
    with RawServer(serves(FIXTURE)) as target, running({"targets": [{"name": "orders", "url": target.url()}]}) as (base, _):
        landing = requests.get(base + "/", timeout=10)
        unknown = requests.get(base + "/nothing-here", timeout=10)
    assert landing.status_code == 200 and landing.headers["Content-Type"].startswith("text/html")
    for expected in ('href="/metrics"', 'href="/health"', "/probe?target=", target.url(), "pharo", "go-expvar"):
        assert expected in landing.text
    assert unknown.status_code == 404 and "see / for the endpoints" in unknown.text


def test_two_requests_on_one_connection():
    with RawServer(serves(FIXTURE)) as target, running({"targets": [{"name": "orders", "url": target.url()}]}) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/metrics")
            first = connection.getresponse()
            first.read()
            socket_used = connection.sock
            connection.request("GET", "/health")
            second = connection.getresponse()
            second.read()
            assert connection.sock is socket_used and socket_used is not None
        finally:
            connection.close()
    assert first.status == 200 and second.status == 200
    assert first.getheader("Connection") != "close" and second.getheader("Connection") != "close"


# --- the target's process ---------------------------------------------------------------------
def test_process_metrics_of_a_sidecar_target():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with RawServer(serves(FIXTURE)) as target:
            config = {"targets": [{"name": "app", "url": target.url(), "process": {"pid": child.pid}}]}
            with running(config) as (base, _):
                text = requests.get(base + "/metrics", timeout=10).text
    finally:
        child.kill()
        child.wait(timeout=10)
    promtool_check_metrics(text)
    values = samples(text)
    assert value(values, c.PROCESS_UP.name, target="app") == 1.0
    assert value(values, c.PROCESS_RESIDENT_MEMORY.name, target="app") > 1_000_000
    assert value(values, c.PROCESS_THREADS.name, target="app") >= 1
    assert value(values, c.PROCESS_START_TIME.name, target="app") == pytest.approx(psutil.Process().create_time(), abs=3600)
    assert value(values, c.PROCESS_CPU.name, target="app") is not None


def test_a_missing_process_is_reported_not_raised():
    with open("/proc/sys/kernel/pid_max") as handle:
        impossible_pid = int(handle.read())  # pids are always below pid_max
    with RawServer(serves(FIXTURE)) as target:
        config = {"targets": [{"name": "app", "url": target.url(), "process": {"pid": impossible_pid}}]}
        with running(config) as (base, _):
            response = requests.get(base + "/metrics", timeout=10)
    assert response.status_code == 200
    values = samples(response.text)
    assert value(values, c.PROCESS_UP.name, target="app") == 0.0
    assert value(values, c.SCRAPE_SUCCESS.name, target="app") == 1.0
    assert value(values, c.PROCESS_RESIDENT_MEMORY.name, target="app") is None


# --- the `pharos exporter` command -------------------------------------------------------------
def pharos(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    environment = {key: val for key, val in os.environ.items() if not key.startswith("PHAROS_")}
    environment.update(env or {})
    return subprocess.run([str(PHAROS), "exporter", *args], capture_output=True, text=True, timeout=timeout, env=environment)


def test_check_config_of_a_valid_file(tmp_path):
    path = tmp_path / "pharos.yml"
    path.write_text("targets:\n  - name: orders\n    url: http://127.0.0.1:8080/stats\nprobe:\n  allow: [127.0.0.0/8]\n")
    result = pharos("--config", str(path), "--check-config")
    assert result.returncode == 0, result.stderr
    assert f"configuration {path}: valid" in result.stdout
    assert "target orders: http://127.0.0.1:8080/stats (profile pharo)" in result.stdout
    assert "/probe allows: 127.0.0.0/8" in result.stdout


@pytest.mark.parametrize(
    "args,env,message",
    [
        (["--config", "{dir}/pharos.yml", "--check-config"], {}, "pharos exporter: {dir}/pharos.yml: targets[0].profile: unknown profile 'pharoh'"),
        (["--config", "{dir}/pharos.yml"], {}, "pharos exporter: {dir}/pharos.yml: targets[0].profile: unknown profile 'pharoh'"),
        (["--config", "{dir}/missing.yml", "--check-config"], {}, "pharos exporter: {dir}/missing.yml: cannot read the configuration file"),
        (["--bogus-flag"], {}, "pharos exporter: unrecognized arguments: --bogus-flag; see pharos exporter --help"),
        (["--profile", "pharoh"], {}, "pharos exporter: argument --profile: invalid choice: 'pharoh'"),
        (["--timeout"], {}, "pharos exporter: unrecognized arguments: --timeout"),
        (["--listen", "9841"], {}, "pharos exporter: --listen: '9841' is not HOST:PORT"),
        (["--target", "orders:8080"], {}, "pharos exporter: --target: 'orders:8080' is not an http:// or https:// URL"),
        ([], {"PHAROS_PROFILE": "pharoh"}, "pharos exporter: --profile (or PHAROS_PROFILE): unknown profile 'pharoh'"),
        ([], {"PHAROS_PROBE_ALLOW": "orders:8080"}, "pharos exporter: --allow: 'orders:8080': a host entry has no port"),
        ([], {"PHAROS_LOG_LEVEL": "loud"}, "pharos exporter: --log-level (or PHAROS_LOG_LEVEL): 'loud' is not one of"),
    ],
)
def test_mistakes_exit_1_with_one_line(tmp_path, args, env, message):
    (tmp_path / "pharos.yml").write_text("targets:\n  - url: http://127.0.0.1:8080/stats\n    profile: pharoh\n")
    result = pharos(*[arg.format(dir=tmp_path) for arg in args], env=env)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(message.format(dir=tmp_path)), lines[0]


def test_an_address_in_use_exits_1_with_one_line():
    with RawServer(stalls) as taken:
        result = pharos("--listen", f"127.0.0.1:{taken.port}")
    assert result.returncode == 1
    assert result.stderr.strip() == f"pharos exporter: cannot listen on 127.0.0.1:{taken.port}: Address already in use; choose another address with --listen"


def test_the_real_command_serves_and_keeps_secrets_out_of_its_log(tmp_path):
    token = tmp_path / "token"
    token.write_text("cmd-5ecret-token")
    with RawServer(serves(FIXTURE)) as target:
        config = tmp_path / "pharos.yml"
        config.write_text(f"targets:\n  - name: orders\n    url: {target.url()}\n    auth: {{bearer_token_file: {token}}}\n")
        environment = {key: val for key, val in os.environ.items() if not key.startswith("PHAROS_")}
        environment.update({"PHAROS_LISTEN": "127.0.0.1:0", "PHAROS_LOG_LEVEL": "debug"})
        process = subprocess.Popen([str(PHAROS), "exporter", "--config", str(config)], stderr=subprocess.PIPE, text=True, env=environment)
        lines: list[str] = []
        try:
            address = _served_address(process, lines)
            metrics = requests.get(f"http://{address}/metrics", timeout=10)
            health = requests.get(f"http://{address}/health", timeout=10)
            landing = requests.get(f"http://{address}/", timeout=10)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            finally:
                process.kill()
                process.wait(timeout=10)
        log = "".join(lines)
        assert process.returncode == 0, log
    assert metrics.status_code == 200 and health.status_code == 200
    promtool_check_metrics(metrics.text)
    assert value(samples(metrics.text), c.SCRAPE_SUCCESS.name, target="orders") == 1.0
    assert target.requests[0]["headers"]["authorization"] == "Bearer cmd-5ecret-token"
    for text in (log, metrics.text, health.text, landing.text):
        assert "cmd-5ecret-token" not in text


def _served_address(process: subprocess.Popen, lines: list[str], limit: float = 30) -> str:
    """Collect the exporter's log in `lines` (in a thread, so it never blocks on a full pipe)
    and return the address it says it serves on."""
    found = threading.Event()

    def drain():
        for line in process.stderr:
            lines.append(line)
            if "serving on http://" in line:
                found.set()

    threading.Thread(target=drain, daemon=True).start()
    ends = time.monotonic() + limit
    while not found.wait(0.1) and process.poll() is None and time.monotonic() < ends:
        pass
    for line in list(lines):
        match = re.search(r"serving on http://(\S+)", line)
        if match:
            return match.group(1)
    raise AssertionError("the exporter did not start:\n" + "".join(lines))
