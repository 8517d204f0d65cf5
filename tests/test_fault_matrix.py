"""Targets that misbehave, one per case, each a real server on loopback: whatever the target does,
a scrape answers a valid exposition by its deadline with `pharos_scrape_success 0` and the reason,
and leaves no thread or socket behind.

The elapsed-time checks are hang detectors (deadline plus a generous allowance), not performance
assertions.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import zlib

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.config import parse
from pharos_monitoring.exporter.collect import Exporter, render

from helpers import (
    RawServer,
    exporter_threads,
    hold_open,
    http_response,
    promtool_check_metrics,
    read_request,
    wait_until,
)

TIMEOUT = 1.0  # seconds, the configured scrape timeout of every case
ALLOWANCE = 2.0  # hang detector: a scrape that takes longer than TIMEOUT + ALLOWANCE is stuck
CAP = 256 * 1024  # max_response_bytes of every case
PHARO_OK = json.dumps({"runtime": {"name": "pharo", "version": "11"}, "vm": {"fullGCCount": 3}}).encode()


# --- behaviours of misbehaving targets --------------------------------------------------------
def never_answers(connection, server):
    read_request(connection, server)
    hold_open(connection, server)


def closes_without_answer(connection, server):
    read_request(connection, server)


def headers_then_stall(connection, server):
    read_request(connection, server)
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"vm\"")
    hold_open(connection, server)


def trickles(head: bytes, trickled: bytes):
    """Sends `head` at once, then `trickled` one byte every 0.2 s."""

    def behave(connection, server):
        read_request(connection, server)
        connection.sendall(head)
        for byte in trickled:
            connection.sendall(bytes([byte]))
            if not server.pause(0.2):
                return

    return behave


_BODY = b" " * 200 + PHARO_OK
trickles_body = trickles(
    f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(_BODY)}\r\n\r\n".encode(), _BODY
)
# One header line: http.client reads it with many recv calls.
trickles_headers = trickles(b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a" * 200)
# A chunk-size line of leading zeros.
trickles_chunk_size = trickles(
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", b"0" * 200
)


def answers(status: str, body: bytes = b"", headers: dict | None = None, length: bool = True):
    def behave(connection, server):
        read_request(connection, server)
        connection.sendall(http_response(status, body, headers, length))

    return behave


def answers_json(document):
    return answers("200 OK", json.dumps(document).encode(), {"Content-Type": "application/json"})


def declares_huge_length(connection, server):
    read_request(connection, server)
    connection.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {CAP + 1}\r\n\r\n{{".encode())
    hold_open(connection, server)


def streams_forever_without_length(connection, server):
    """No Content-Length, no chunking: the body ends when the connection does, which is never."""
    read_request(connection, server)
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[")
    block = b"1," * 8192
    for _ in range(4 * CAP // len(block)):
        connection.sendall(block)
        if not server.pause(0):
            return
    hold_open(connection, server)


def chunked(body: bytes, chunk_size: int = 7):
    def behave(connection, server):
        read_request(connection, server)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        for start in range(0, len(body), chunk_size):
            piece = body[start : start + chunk_size]
            connection.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        connection.sendall(b"0\r\n\r\n")

    return behave


def short_body(connection, server):
    read_request(connection, server)
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"vm\": {")


def deeply_nested() -> bytes:
    return b"[" * 100_000 + b"]" * 100_000


def gzip_bomb() -> bytes:
    return gzip.compress(b"[" + b" " * (CAP * 8) + b"]", compresslevel=9)


REDIRECT = answers("302 Found", b"", {"Location": "http://127.0.0.1:9/elsewhere"})

# id -> (behaviour, expected reason or "" for success)
CASES = {
    "never_answers": (never_answers, "timeout"),
    "closes_without_answer": (closes_without_answer, "connection_error"),
    "headers_then_stall": (headers_then_stall, "timeout"),
    "trickles_body": (trickles_body, "timeout"),
    "trickles_headers": (trickles_headers, "timeout"),
    "trickles_chunk_size": (trickles_chunk_size, "timeout"),
    "short_body": (short_body, "connection_error"),
    "http_500": (answers("500 Internal Server Error", b"oops", {"Content-Type": "text/plain"}), "http_status"),
    "http_404": (answers("404 Not Found", b"", {"Content-Type": "text/plain"}), "http_status"),
    "http_401": (answers("401 Unauthorized", b"", {"WWW-Authenticate": "Bearer"}), "auth_failed"),
    "http_403": (answers("403 Forbidden"), "auth_failed"),
    "redirect": (REDIRECT, "http_status"),
    "malformed_json": (answers("200 OK", b'{"vm": {"fullGCCount": 3,', {"Content-Type": "application/json"}), "not_json"),
    "html": (answers("200 OK", b"<!doctype html><html><body>Login</body></html>", {"Content-Type": "text/html"}), "not_json"),
    "not_utf8": (answers("200 OK", b"\xff\xfe\xfa{}", {"Content-Type": "application/json"}), "not_json"),
    "empty_body": (answers("200 OK", b"", {"Content-Type": "application/json"}), "not_json"),
    "oversized_with_length": (declares_huge_length, "too_large"),
    "oversized_without_length": (streams_forever_without_length, "too_large"),
    "oversized_chunked": (chunked(b"[" + b"1," * CAP + b"1]", chunk_size=4096), "too_large"),
    "chunked": (chunked(PHARO_OK), ""),
    "wrong_types": (answers_json({"vm": {"fullGCCount": "twelve"}}), "invalid_document"),
    "wrong_nested_type": (answers_json({"http": {"requests": [{"route": "/x", "status": 200, "count": [1]}]}}), "invalid_document"),
    "number_too_large_for_float": (answers("200 OK", b'{"vm": {"fullGCCount": 1' + b"0" * 400 + b"}}"), "invalid_document"),
    "integer_beyond_decoder_limit": (answers("200 OK", b'{"vm": {"fullGCCount": 1' + b"0" * 5000 + b"}}"), "invalid_document"),
    "top_level_array": (answers_json([1, 2, 3]), "invalid_document"),
    "top_level_string": (answers_json("ok"), "invalid_document"),
    "top_level_null": (answers_json(None), "invalid_document"),
    "nested_100000_levels": (answers("200 OK", deeply_nested(), {"Content-Type": "application/json"}), "invalid_document"),
    "gzip": (answers("200 OK", gzip.compress(PHARO_OK), {"Content-Type": "application/json", "Content-Encoding": "gzip"}), ""),
    "deflate": (answers("200 OK", zlib.compress(PHARO_OK), {"Content-Type": "application/json", "Content-Encoding": "deflate"}), ""),
    "gzip_bomb": (answers("200 OK", gzip_bomb(), {"Content-Type": "application/json", "Content-Encoding": "gzip"}), "too_large"),
    "gzip_corrupt": (answers("200 OK", b"\x1f\x8b\x08\x00garbage", {"Content-Encoding": "gzip"}), "not_json"),
    "brotli": (answers("200 OK", b"\x0b\x02\x80{}\x03", {"Content-Encoding": "br"}), "not_json"),
}


# --- scraping -------------------------------------------------------------------------------
def make_exporter(url: str, timeout: float = TIMEOUT) -> Exporter:
    config = parse(
        {"targets": [{"name": "app", "url": url}], "limits": {"timeout_seconds": timeout, "max_response_bytes": CAP}},
        "fault-matrix.yml",
    )
    return Exporter(config)


def scrape_once(exporter: Exporter):
    """One scrape through the exporter's own path; returns (outcome, exposition text, seconds)."""
    started = time.monotonic()
    (outcome,) = exporter.scrape_all(exporter.deadline(None))
    elapsed = time.monotonic() - started
    return outcome, render(outcome.families).decode(), elapsed


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def error_gauges(values) -> dict[str, float]:
    return {dict(labels)["reason"]: value for (name, labels), value in values.items() if name == c.SCRAPE_ERROR.name}


@pytest.mark.parametrize("behave,reason", CASES.values(), ids=CASES.keys())
def test_a_misbehaving_target_yields_a_valid_exposition_and_the_reason(behave, reason):
    with RawServer(behave) as server:
        exporter = make_exporter(server.url())
        try:
            outcome, text, elapsed = scrape_once(exporter)
        finally:
            exporter.close()
    assert elapsed < TIMEOUT + ALLOWANCE, f"scrape took {elapsed:.1f}s: the deadline did not hold"
    promtool_check_metrics(text)
    values = samples(text)
    labels = (("target", "app"),)
    assert outcome.reason == reason, outcome.detail
    assert values[(c.SCRAPE_SUCCESS.name, labels)] == (0.0 if reason else 1.0)
    errors = error_gauges(values)
    assert set(errors) == set(c.SCRAPE_ERROR_REASONS)
    assert {name for name, value in errors.items() if value == 1.0} == ({reason} if reason else set())
    if reason:
        assert outcome.detail, "a failure must say what went wrong"
        # A failed scrape reports only the exporter's view, never half a document.
        assert {name for name, _ in values} <= {
            c.SCRAPE_SUCCESS.name, c.SCRAPE_DURATION.name, c.SCRAPE_RESPONSE_SIZE.name, c.SCRAPE_ERROR.name, c.SCRAPE_ROUTES.name,
        }
    else:
        assert values[(c.GC_COLLECTIONS.name, (("kind", "major"), ("target", "app")))] == 3.0


def test_connection_refused():
    # Bound but not listening: connections are refused, and no other process can take the port.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    try:
        exporter = make_exporter(f"http://127.0.0.1:{closed.getsockname()[1]}/stats")
        try:
            outcome, text, elapsed = scrape_once(exporter)
        finally:
            exporter.close()
    finally:
        closed.close()
    assert elapsed < TIMEOUT + ALLOWANCE
    promtool_check_metrics(text)
    assert outcome.reason == "connection_refused"
    values = samples(text)
    assert values[(c.SCRAPE_ERROR.name, (("reason", "connection_refused"), ("target", "app")))] == 1.0
    assert values[(c.SCRAPE_SUCCESS.name, (("target", "app"),))] == 0.0


def test_the_redirect_is_not_followed():
    with RawServer(answers("302 Found")) as elsewhere:
        behave = answers("302 Found", b"", {"Location": elsewhere.url("/elsewhere")})
        with RawServer(behave) as server:
            exporter = make_exporter(server.url())
            try:
                outcome, _, _ = scrape_once(exporter)
            finally:
                exporter.close()
        assert outcome.reason == "http_status"
        assert elsewhere.url("/elsewhere") in outcome.detail and "configure the final URL" in outcome.detail
        assert elsewhere.accepts == 0


FAULTY = ["never_answers", "headers_then_stall", "trickles_body", "trickles_headers", "closes_without_answer",
          "http_500", "oversized_with_length", "oversized_without_length", "malformed_json", "short_body"]


def test_faulty_scrapes_leak_no_thread_and_no_socket():
    process = psutil.Process()
    threads_before = threading.active_count()
    fds_before = process.num_fds()
    servers = [RawServer(CASES[name][0]) for name in FAULTY]
    exporter = make_exporter(servers[0].url(), timeout=0.5)

    def connections_to(port: int):
        # Sockets this process still holds open towards the target (closed ones have no fd).
        return [conn for conn in process.net_connections(kind="tcp") if conn.raddr and conn.raddr.port == port]

    try:
        for server in servers * 2:
            exporter.targets[0].url = server.url()
            outcome, _, elapsed = scrape_once(exporter)
            assert not outcome.success and elapsed < 0.5 + ALLOWANCE
            # Closed at once, not kept in the pool: a half-read connection must never be reused.
            assert connections_to(server.port) == [], outcome.reason
    finally:
        exporter.close()
        for server in servers:
            server.stop()
    # The loopback servers are stopped by now, so every thread counts: the exporter's must be gone.
    assert wait_until(lambda: threading.active_count() <= threads_before), [t.name for t in exporter_threads()]
    assert wait_until(lambda: process.num_fds() <= fds_before), (fds_before, process.num_fds())
