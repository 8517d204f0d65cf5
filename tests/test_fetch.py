"""`Fetcher.fetch` on its own: what it sends, how it reuses connections, and how its deadline
holds where a single socket timeout would not."""

from __future__ import annotations

import base64
import json
import os
import socket
import time

import pytest

from pharos_monitoring.exporter.config import Auth, Secret
from pharos_monitoring.exporter.fetch import Fetcher, ScrapeError

from helpers import RawServer, exporter_threads, hold_open, read_request, wait_until

BODY = json.dumps({"vm": {"fullGCCount": 1}}).encode()


def keep_alive_server(connection, server):
    """Answers every request on the connection, keeping it open (HTTP/1.1 default)."""
    for _ in range(20):
        if read_request(connection, server) is None:
            return
        connection.sendall(
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n".encode() + BODY
        )


def soon(seconds: float = 2.0) -> float:
    return time.monotonic() + seconds


def test_fetch_sends_what_a_stats_endpoint_expects():
    with RawServer(keep_alive_server) as server:
        fetcher = Fetcher()
        try:
            response = fetcher.fetch(server.url(), soon(), headers={"X-Extra": "1"})
        finally:
            fetcher.close()
    assert response.status == 200 and response.body == BODY and response.content_type == "application/json"
    (request,) = server.requests
    assert request["line"] == "GET /stats HTTP/1.1"
    headers = request["headers"]
    assert headers["user-agent"] == "pharos-exporter"
    assert headers["accept"] == "application/json"
    assert headers["accept-encoding"] == "identity"
    assert headers["x-extra"] == "1"
    assert "authorization" not in headers


def test_bearer_token_from_a_file_and_basic_auth_from_the_environment(tmp_path, monkeypatch):
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-token\n")
    monkeypatch.setenv("PHAROS_TEST_PASSWORD", "pa55word")
    with RawServer(keep_alive_server) as server:
        bearer = Fetcher(Auth(bearer_token=Secret(file=str(token_file))))
        basic = Fetcher(Auth(username="monitor", password=Secret(env="PHAROS_TEST_PASSWORD")))
        try:
            bearer.fetch(server.url(), soon())
            basic.fetch(server.url(), soon())
        finally:
            bearer.close()
            basic.close()
    assert server.requests[0]["headers"]["authorization"] == "Bearer s3cr3t-token"
    expected = base64.b64encode(b"monitor:pa55word").decode()
    assert server.requests[1]["headers"]["authorization"] == f"Basic {expected}"


def test_a_rotated_secret_file_is_read_again(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("first")
    with RawServer(keep_alive_server) as server:
        fetcher = Fetcher(Auth(bearer_token=Secret(file=str(token_file))))
        try:
            fetcher.fetch(server.url(), soon())
            token_file.write_text("second")
            fetcher.fetch(server.url(), soon())
        finally:
            fetcher.close()
    assert [r["headers"]["authorization"] for r in server.requests] == ["Bearer first", "Bearer second"]


def test_a_vanished_secret_file_fails_the_scrape_without_contacting_the_target(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t")
    fetcher = Fetcher(Auth(bearer_token=Secret(file=str(token_file))))
    os.remove(token_file)
    with RawServer(keep_alive_server) as server:
        with pytest.raises(ScrapeError) as caught:
            fetcher.fetch(server.url(), soon())
    fetcher.close()
    assert caught.value.reason == "auth_failed"
    assert str(token_file) in caught.value.detail and "s3cr3t" not in caught.value.detail
    assert server.accepts == 0


def test_connections_are_reused_between_scrapes_and_after_close():
    with RawServer(keep_alive_server) as server:
        fetcher = Fetcher()
        try:
            for _ in range(3):
                fetcher.fetch(server.url(), soon())
            assert server.accepts == 1
            fetcher.close()  # closes idle connections; the fetcher stays usable
            fetcher.fetch(server.url(), soon())
            assert server.accepts == 2
        finally:
            fetcher.close()


def test_no_time_left_means_no_connection():
    with RawServer(keep_alive_server) as server:
        fetcher = Fetcher()
        with pytest.raises(ScrapeError) as caught:
            fetcher.fetch(server.url(), time.monotonic() - 1)
        fetcher.close()
    assert caught.value.reason == "timeout"
    assert server.accepts == 0


def test_plain_http_on_an_https_url_is_a_tls_error():
    with RawServer(lambda connection, server: connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")) as server:
        fetcher = Fetcher()
        try:
            with pytest.raises(ScrapeError) as caught:
                fetcher.fetch(f"https://127.0.0.1:{server.port}/stats", soon())
        finally:
            fetcher.close()
    assert caught.value.reason == "tls_error"


def test_the_watchdog_cuts_a_trickled_status_line_and_then_goes_idle():
    def trickles_status_line(connection, server):
        read_request(connection, server)
        for _ in range(100):
            connection.sendall(b"H")
            if not server.pause(0.2):
                return

    with RawServer(trickles_status_line) as server:
        fetcher = Fetcher()
        started = time.monotonic()
        with pytest.raises(ScrapeError) as caught:
            fetcher.fetch(server.url(), soon(0.8))
        elapsed = time.monotonic() - started
        fetcher.close()
    assert caught.value.reason == "timeout"
    assert elapsed < 0.8 + 2.0, f"{elapsed:.1f}s: the deadline did not hold"
    # One watchdog thread serves every fetch and ends once there is nothing to watch.
    assert wait_until(lambda: "pharos-fetch-watchdog" not in {t.name for t in exporter_threads()}, limit=10)


def test_many_concurrent_fetches_share_one_watchdog():
    import concurrent.futures

    with RawServer(lambda connection, server: (read_request(connection, server), hold_open(connection, server))) as server:
        fetcher = Fetcher()
        deadline = soon(0.5)

        def one(_):
            try:
                fetcher.fetch(server.url(), deadline)
            except ScrapeError as error:
                return error.reason
            return "success"

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            reasons = list(pool.map(one, range(8)))
            watchdogs = [t for t in exporter_threads() if t.name == "pharos-fetch-watchdog"]
        fetcher.close()
    assert reasons == ["timeout"] * 8
    assert len(watchdogs) <= 1


def test_a_declared_length_over_the_cap_is_refused_before_the_body_arrives():
    def declares_and_stalls(connection, server):
        read_request(connection, server)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2048\r\n\r\n")
        hold_open(connection, server)

    with RawServer(declares_and_stalls) as server:
        fetcher = Fetcher(max_bytes=1024)
        with pytest.raises(ScrapeError) as caught:
            fetcher.fetch(server.url(), soon(30))  # a body read would stall until this deadline
        fetcher.close()
    assert caught.value.reason == "too_large" and "2048" in caught.value.detail


def test_refused_and_closed_connections_have_distinct_reasons():
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    fetcher = Fetcher()
    try:
        with pytest.raises(ScrapeError) as refused:
            fetcher.fetch(f"http://127.0.0.1:{unused.getsockname()[1]}/stats", soon())
        with RawServer(lambda connection, server: read_request(connection, server)) as server:
            with pytest.raises(ScrapeError) as closed:
                fetcher.fetch(server.url(), soon())
    finally:
        fetcher.close()
        unused.close()
    assert refused.value.reason == "connection_refused"
    assert closed.value.reason == "connection_error"
