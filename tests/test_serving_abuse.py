"""The exporter's server under abuse (issue: "a server that cannot be held"), over loopback.

Each test reproduces a failure seen on the thread-per-connection server: the listen backlog of 5,
a slow client holding a thread for ever, a half-closed head answered, no cap on requests, a
departed client's scrape running on to its deadline, a probe of the exporter's own /probe, the
rate limit. Bounds, never timings of a shared machine: thread counts, "well before the deadline".
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import bcrypt
import pytest
import requests

from pharos_monitoring.exporter.collect import Exporter
from pharos_monitoring.exporter.config import parse
from pharos_monitoring.exporter.serving.server import make_server

from helpers import RawServer, exporter_threads, hold_open, read_request, wait_until

FIXTURE = (Path(__file__).resolve().parent / "fixtures" / "profiles" / "pharo.json").read_bytes()


@contextmanager
def running(config: dict, web=None, listen: str = "127.0.0.1:0", **limits):
    exporter = Exporter(parse(config, "test.yml"))
    if limits:
        from pharos_monitoring.exporter.serving.connections import Limits

        server = make_server(exporter, listen, web, Limits(**limits))
    else:
        server = make_server(exporter, listen, web)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        exporter.close()
        thread.join(timeout=5)


def serves(body: bytes):
    def behave(connection, server):
        for _ in range(50):
            if read_request(connection, server) is None:
                return
            connection.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)

    return behave


class Stuck:
    """Targets that read the request and never answer; they note when the exporter hangs up."""

    def __init__(self):
        self.closed_at: list[float] = []

    def __call__(self, connection, server):
        if read_request(connection, server) is None:
            return
        hold_open(connection, server, limit=60)
        self.closed_at.append(time.monotonic())


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """True when the server closes `sock` (EOF or reset) within `within` seconds, sending nothing."""
    sock.settimeout(within)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


# --- accepting -------------------------------------------------------------------------------
def test_the_listen_backlog_is_the_systems_somaxconn():
    """socketserver listened with a backlog of 5: 50 simultaneous connects waited for SYN retries."""
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    with running({}) as port:
        output = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
    backlog = int(output.split()[2])  # State Recv-Q Send-Q ...: Send-Q of a listener is its backlog
    assert backlog >= min(somaxconn, 4096), output


def test_a_burst_of_connects_is_answered():
    """300 clients connecting at once all get their answer (bounded: one request each)."""
    results: list[int] = []
    with running({}) as port:

        def client():
            try:
                results.append(requests.get(f"http://127.0.0.1:{port}/", timeout=20).status_code)
            except requests.RequestException:
                results.append(0)

        threads = [threading.Thread(target=client) for _ in range(300)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert results.count(200) == 300, f"{results.count(200)} of 300 answered"


# --- reading ---------------------------------------------------------------------------------
def test_slow_clients_hold_no_thread_and_are_cut_at_the_header_deadline():
    """A client sending a header line now and then held a thread of its own for as long as it
    liked; 100 of them held 100 threads."""
    with running({}, header_timeout=1.5) as port:
        before = len(exporter_threads())
        clients = [connect(port) for _ in range(100)]
        for client in clients:
            client.sendall(b"GET /metrics HTTP/1.1\r\n")
        threads_while_trickling = []
        for round_ in range(4):  # a header line every 0.25 s, for about one second
            for client in clients:
                try:
                    client.sendall(f"X-Slow-{round_}: 1\r\n".encode())
                except OSError:
                    pass
            threads_while_trickling.append(len(exporter_threads()))
            time.sleep(0.25)
        assert max(threads_while_trickling) <= before + 2, (before, threads_while_trickling)
        # The head never ended: each connection is closed at the header deadline, unanswered.
        cut = sum(closed_by_peer(client, within=5.0) for client in clients)
        for client in clients:
            client.close()
    assert cut == 100


def test_a_head_cut_short_by_a_half_close_is_not_answered():
    with running({"targets": []}) as port:
        client = connect(port)
        client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # no blank line: the head never ends
        client.shutdown(socket.SHUT_WR)
        assert closed_by_peer(client, within=5.0), "a request whose head never ended was answered"
        client.close()


@pytest.mark.parametrize(
    "head,status",
    [
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"405"),
        (b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"501"),
        (b"GET /metrics HTTP/2.0\r\n\r\n", b"505"),
        (b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", b"431"),
        (b"GET /metrics HTTP/1.1\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
        (b"GET /metrics HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n", b"400"),
        (b"GARBAGE\r\n\r\n", b"400"),
    ],
)
def test_malformed_requests_get_a_clear_status_and_a_close(head: bytes, status: bytes):
    with running({}) as port:
        client = connect(port)
        client.sendall(head)
        answer = b""
        client.settimeout(5)
        try:
            while chunk := client.recv(65536):
                answer += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        client.close()
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    assert b"Connection: close" in answer


# --- answering -------------------------------------------------------------------------------
def test_requests_beyond_max_requests_get_503_at_once():
    stuck = Stuck()
    with RawServer(stuck) as target:
        config = {"probe": {"allow": ["127.0.0.0/8"]}, "limits": {"timeout_seconds": 4}}
        with running(config, max_requests=2) as port:
            probe = f"http://127.0.0.1:{port}/probe?target=127.0.0.1:{target.port}"
            held = [threading.Thread(target=requests.get, args=(probe,), kwargs={"timeout": 10}) for _ in range(2)]
            for thread in held:
                thread.start()
            assert wait_until(lambda: target.accepts >= 1, limit=5)
            time.sleep(0.3)
            started = time.monotonic()
            refused = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            waited = time.monotonic() - started
            for thread in held:
                thread.join(timeout=15)
            metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert refused.status_code == 503 and "at most 2" in refused.text
    assert waited < 3.0, "the refusal must not wait for a worker"
    assert 'pharos_exporter_http_requests_rejected_total{reason="max_requests"} 1.0' in metrics


def test_a_departed_client_stops_its_scrape():
    """A handler whose client had gone away kept scraping until the deadline, holding its slots."""
    stuck = Stuck()
    with RawServer(stuck) as target:
        config = {"probe": {"allow": ["127.0.0.0/8"]}, "limits": {"timeout_seconds": 30}}
        with running(config) as port:
            client = connect(port)
            client.sendall(f"GET /probe?target=127.0.0.1:{target.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert wait_until(lambda: target.accepts >= 1, limit=5)
            left = time.monotonic()
            client.close()
            assert wait_until(lambda: stuck.closed_at, limit=10), "the exporter kept waiting on the target"
    assert stuck.closed_at[0] - left < 10, "the scrape went on long after its client left (timeout 30 s)"


# --- probing itself --------------------------------------------------------------------------
def test_the_exporter_does_not_probe_itself():
    """With its own address inside the allow-list, one nested /probe?target=<its own /probe> kept
    healthy probes failing for minutes."""
    with running({"probe": {"allow": ["127.0.0.0/8"]}}) as port:
        inner = f"127.0.0.1:{port}/probe?target=127.0.0.1:{port}"
        for target in (f"127.0.0.1:{port}", f"http://localhost:{port}/metrics", f"http://127.0.0.2:{port}/probe?target={inner}"):
            answer = requests.get(f"http://127.0.0.1:{port}/probe", params={"target": target}, timeout=10)
            assert answer.status_code == 403 and "this exporter itself" in answer.text, (target, answer.text)


def test_a_probe_asked_by_an_exporter_is_refused():
    """Another exporter (or this one under another name) asking for a probe: the loop ends here."""
    with running({"probe": {"allow": ["127.0.0.0/8"]}}) as port:
        answer = requests.get(f"http://127.0.0.1:{port}/probe", params={"target": "127.0.0.1:1"}, headers={"X-Pharos-Exporter": "1"}, timeout=10)
    assert answer.status_code == 508


def test_the_exporter_may_probe_itself_when_named_explicitly():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # a free port, to name in the allow-list before listening on it
    allow = [f"http://127.0.0.1:{port}/metrics"]
    with running({"probe": {"allow": allow}}, listen=f"127.0.0.1:{port}"):
        answer = requests.get(f"http://127.0.0.1:{port}/probe", params={"target": f"http://127.0.0.1:{port}/metrics"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert 'pharos_scrape_error{reason="not_json"} 1.0' in answer.text  # it scraped itself: an exposition is no JSON


# --- basic auth under a password flood and the rate limit -----------------------------------
def web_yml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_wrong_password_flood_does_not_slow_the_legitimate_scraper(tmp_path: Path):
    """200 clients with distinct wrong passwords evicted the legitimate user from the bcrypt
    cache: the real Prometheus' scrape took 9.4 s (median), past its timeout."""
    from pharos_monitoring.exporter.serving.web_access import WebAccess

    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=10)).decode()
    access = WebAccess(str(web_yml(tmp_path / "web.yml", f"basic_auth_users:\n  prometheus: '{hashed}'\n")))
    with running({}, access) as port:
        url = f"http://127.0.0.1:{port}/"

        def scrape() -> float:
            started = time.monotonic()
            assert requests.get(url, auth=("prometheus", "right"), timeout=30).status_code == 200
            return time.monotonic() - started

        scrape()  # the one bcrypt check of the right password
        alone = sorted(scrape() for _ in range(10))[5]
        stop = threading.Event()
        refused: list[int] = []

        def guesser(index: int):
            for attempt in range(20):
                if stop.is_set():
                    return
                try:
                    refused.append(requests.get(url, auth=("prometheus", f"guess-{index}-{attempt}"), timeout=30).status_code)
                except requests.RequestException:
                    refused.append(0)

        guessers = [threading.Thread(target=guesser, args=(index,)) for index in range(30)]
        for thread in guessers:
            thread.start()
        time.sleep(0.5)
        during = sorted(scrape() for _ in range(10))
        stop.set()
        for thread in guessers:
            thread.join(timeout=60)
    assert set(refused) <= {401, 503}, set(refused)
    median = during[5]
    assert median < max(3 * alone, alone + 0.25), (alone, during)


def test_the_rate_limit_answers_429(tmp_path: Path):
    from pharos_monitoring.exporter.serving.web_access import WebAccess

    access = WebAccess(str(web_yml(tmp_path / "web.yml", "rate_limit: {interval: 10s, burst: 3}\n")))
    with running({}, access) as port:
        statuses = [requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


# --- the sidecar's /metrics degrades per target ----------------------------------------------
def test_one_target_that_cannot_be_rendered_costs_only_its_own_series():
    """A lone surrogate in one target's label turned the whole sidecar /metrics into HTTP 500.
    (The profiles now replace such characters; here a family that still cannot be encoded is
    rendered beside a healthy target's.)"""
    from prometheus_client.core import GaugeMetricFamily

    from pharos_monitoring.exporter.collect import render
    from pharos_monitoring.exporter.scrape import Outcome

    from helpers import promtool_check_metrics

    with RawServer(serves(FIXTURE)) as good, RawServer(serves(FIXTURE)) as bad:
        config = {"targets": [{"name": "good", "url": good.url()}, {"name": "bad", "url": bad.url()}]}
        exporter = Exporter(parse(config, "test.yml"))
        try:
            outcomes = exporter.scrape_all(time.monotonic() + 5)
            broken = GaugeMetricFamily("runtime_info", "x", labels=["target", "odd"])
            broken.add_metric(["bad", "\ud800"], 1)  # a lone surrogate cannot be encoded
            outcomes[1] = Outcome(success=True, families=[*outcomes[1].families, broken])
            text = render([family for outcome in outcomes for family in outcome.families]).decode()
        finally:
            exporter.close()
    promtool_check_metrics(text)
    assert 'pharos_scrape_success{target="good"} 1.0' in text
    assert 'pharos_scrape_success{target="bad"} 1.0' in text
    assert "odd=" not in text


# --- writing ---------------------------------------------------------------------------------
def large_answer_config(target) -> dict:
    """Two targets of ~20,000 series each: a /metrics answer of some 6 MB, more than the kernel's
    buffers take for a client that reads slowly or not at all."""
    return {"targets": [{"name": f"t{index}", "url": target.url()} for index in range(2)]}


def large_document() -> bytes:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import payloads  # noqa: PLC0415 - the benchmark's documents

    return payloads.body(1400)


def slow_reader(port: int) -> socket.socket:
    """A client whose receive buffer is tiny: a large answer cannot leave in one system call."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def read_answer(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"the answer ended after {len(body)} of {length} bytes"
        body += chunk
    return head, body


def test_a_large_answer_reaches_a_slow_reader_whole_twice_on_one_connection():
    """The head and the body leave in one system call when the socket takes them; the rest goes
    through the event loop's transport, in order, and the connection stays usable."""
    with RawServer(serves(large_document())) as target:
        with running(large_answer_config(target)) as port:
            client = slow_reader(port)
            for _ in range(2):
                client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                time.sleep(0.3)  # the answer waits in the server's buffers meanwhile
                head, body = read_answer(client)
                assert head.startswith(b"HTTP/1.1 200"), head
                assert len(body) > 4 * 2**20, len(body)
                assert body.endswith(b"\n") and body.count(b"pharos_scrape_success{") == 2
            client.close()


def test_a_client_that_does_not_read_its_answer_is_disconnected():
    """Past the write timeout the connection is dropped, not kept until the client reads."""
    with RawServer(serves(large_document())) as target:
        with running(large_answer_config(target), write_timeout=1.0) as port:
            client = slow_reader(port)
            client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(3.0)  # well past the write timeout, nothing read
            received = 0
            try:
                while chunk := client.recv(65536):
                    received += len(chunk)
            except ConnectionResetError:
                pass
            client.close()
            assert received < 4 * 2**20, f"{received} bytes: the answer was still being delivered"
