"""`/probe` is no open proxy: beyond the refusals of tests/test_server.py (403 and no connection for
targets off the allow-list), redirects never lead anywhere, credentials configured for probe
targets reach the probed host only, names are checked by what they resolve to when the connection
is opened (DNS rebinding), and URLs written to confuse parsers contact nothing they should not.

"Never contacted" is counted where it happens: in the accept loop of the host that must not be
reached."""

from __future__ import annotations

import base64
import socket
import threading

import pytest
import requests

from pharos_monitoring.exporter import catalogue as c

from helpers import RawServer, http_response, read_request
from test_server import FIXTURE, probe, running, samples, serves, value

TOKEN = "probe-5ecret-token"
PASSWORD = "probe-5ecret-password"


def redirects_to(location: str):
    def behave(connection, server):
        if read_request(connection, server) is not None:
            connection.sendall(http_response("302 Found", b"", {"Location": location}))

    return behave


@pytest.fixture
def credentials(tmp_path):
    """probe.auth configurations, secrets in files: bearer token and basic auth."""
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "password").write_text(PASSWORD)
    return {
        "bearer": ({"bearer_token_file": str(tmp_path / "token")}, f"Bearer {TOKEN}"),
        "basic": (
            {"basic_auth": {"username": "exporter", "password_file": str(tmp_path / "password")}},
            "Basic " + base64.b64encode(f"exporter:{PASSWORD}".encode()).decode(),
        ),
    }


# --- redirects ------------------------------------------------------------------------------------
def test_a_redirect_to_a_denied_host_is_not_followed():
    with RawServer(serves(FIXTURE)) as denied:
        with RawServer(redirects_to(denied.url("/stats"))) as allowed:
            with running({"probe": {"allow": [f"http://127.0.0.1:{allowed.port}/"]}}) as (base, _):
                response = probe(base, target=f"127.0.0.1:{allowed.port}")
        assert denied.accepts == 0
    assert allowed.accepts == 1
    values = samples(response.text)
    assert value(values, c.SCRAPE_SUCCESS.name) == 0.0
    assert value(values, c.SCRAPE_ERROR.name, reason="http_status") == 1.0


@pytest.mark.parametrize("kind", ["bearer", "basic"])
@pytest.mark.parametrize("relative", [False, True], ids=["absolute_location", "relative_location"])
def test_credentials_reach_the_probed_host_and_no_other(credentials, kind: str, relative: bool):
    auth, header = credentials[kind]
    with RawServer(serves(FIXTURE)) as other:  # also on the allow-list: a redirect must not carry credentials there either
        location = "/elsewhere" if relative else other.url("/stats")
        with RawServer(redirects_to(location)) as probed:
            with running({"probe": {"allow": ["127.0.0.0/8"], "auth": auth}}) as (base, _):
                redirected = probe(base, target=f"127.0.0.1:{probed.port}")
                direct = probe(base, target=f"127.0.0.1:{other.port}")
        # The other host was probed directly once, and only then: the redirect never led there.
        assert other.accepts == 1 and [r["line"] for r in other.requests] == ["GET /stats HTTP/1.1"]
    assert probed.accepts == 1 and len(probed.requests) == 1, "a relative redirect is not followed either"
    assert probed.requests[0]["headers"]["authorization"] == header
    assert value(samples(redirected.text), c.SCRAPE_ERROR.name, reason="http_status") == 1.0
    assert value(samples(direct.text), c.SCRAPE_SUCCESS.name) == 1.0
    for response in (redirected, direct):
        assert TOKEN not in response.text and PASSWORD not in response.text


# --- names and networks -----------------------------------------------------------------------------
def test_a_name_resolving_outside_the_networks_is_denied_without_a_connection():
    with RawServer(serves(FIXTURE)) as listener:
        with running({"probe": {"allow": ["10.0.0.0/8", "orders.internal.example"]}}) as (base, _):
            response = probe(base, target=f"localhost:{listener.port}")  # resolves to 127.0.0.1
        assert listener.accepts == 0
    assert response.status_code == 403


class Decoy:
    """A listener on 127.0.0.2 (loopback, off every allow-list here) that counts connections."""

    def __init__(self):
        self.accepts = 0
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.2", 0))
        self._socket.listen(16)
        self._socket.settimeout(0.05)
        self.port = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="loopback-decoy", daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except (socket.timeout, OSError):
                continue
            self.accepts += 1
            connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.fixture
def rebinding_name(monkeypatch):
    """`rebind.test` resolves to 127.0.0.1 the first time and to 127.0.0.2 afterwards, as a
    DNS-rebinding attacker's name does. Only the resolver is replaced, for this one name: no DNS
    server can be run on loopback for the system resolver to ask. The exporter's answer cache is
    turned off, or it would hand the connection the checked answer and the rebinding never happen."""
    from pharos_monitoring.exporter.resolver import RESOLVER

    monkeypatch.setattr(RESOLVER, "ttl", 0.0)
    RESOLVER.forget()
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "rebind.test":
            return real(next(answers, "127.0.0.2"), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return "rebind.test"


def test_a_name_that_changes_its_address_after_the_check_is_not_contacted(rebinding_name):
    with Decoy() as decoy, running({"probe": {"allow": ["127.0.0.1/32"]}}) as (base, _):
        response = probe(base, target=f"http://{rebinding_name}:{decoy.port}/stats")
    assert decoy.accepts == 0, "the connection went where the allow-list did not look"
    assert response.status_code == 200  # the first resolution passed the check; the connection did not
    values = samples(response.text)
    assert value(values, c.SCRAPE_ERROR.name, reason="connection_error") == 1.0


def test_a_name_connected_by_its_checked_address_keeps_its_host_header(monkeypatch):
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *rest, **kw: real("127.0.0.1" if host == "stats.test" else host, *rest, **kw))
    with RawServer(serves(FIXTURE)) as listener:
        with running({"probe": {"allow": ["127.0.0.1/32"]}}) as (base, _):
            response = probe(base, target=f"stats.test:{listener.port}")
    assert value(samples(response.text), c.SCRAPE_SUCCESS.name) == 1.0
    assert listener.requests[0]["headers"]["host"] == f"stats.test:{listener.port}"


TRICKY_TARGETS = [
    "http://127.0.0.2:{port}/stats",
    "http://127.0.0.1:{port}#@127.0.0.2:{port}/stats",
    "http://127.0.0.1:{port}?@127.0.0.2:{port}/stats",
    "http://127.0.0.1:{port}\\@127.0.0.2:{port}/stats",
    "http://127.0.0.2:{port}\\@127.0.0.1:{port}/stats",
    "http://127.0.0.1:{port}@127.0.0.2:{port}/stats",
    "http://[::ffff:127.0.0.2]:{port}/stats",
    "http://2130706434:{port}/stats",  # 127.0.0.2 as one number
    "http://0x7f.0.0.2:{port}/stats",
    "http://127.0.0.2.:{port}/stats",
    "HTTP://127.0.0.2:{port}/stats",
    "http://127.0.0.1:{port}/%2F%2F127.0.0.2:{port}/stats",
    "http://127.0.0.1:{port}\t@127.0.0.2:{port}/stats",
    "127.0.0.2:{port}",
]


@pytest.mark.parametrize("target", TRICKY_TARGETS)
def test_urls_written_to_confuse_parsers_contact_nothing_off_the_list(target: str):
    with Decoy() as decoy, running({"probe": {"allow": ["127.0.0.1/32"]}, "limits": {"timeout_seconds": 2}}) as (base, _):
        response = requests.get(base + "/probe", params={"target": target.format(port=decoy.port)}, timeout=10)
    assert decoy.accepts == 0, response.text
    assert response.status_code in (200, 400, 403), response.text


# --- paths as they will be requested ----------------------------------------------------------------
# With `http://host:port/app/` on the list, each of these reaches `/admin` on some server: by the
# RFC's dot segments (which the HTTP client itself removes before sending), by percent-encoded dots
# or slashes that the target decodes, by backslashes that some servers read as slashes, by Tomcat's
# path parameters (`..;`), or by servers that merge duplicate slashes before removing dot segments.
ESCAPING_PATHS = [
    "/app/../admin",
    "/app/%2e%2e/admin",
    "/app/%2E%2e/admin",
    "/app/.%2e/admin",
    "/app/./../admin",
    "/app/..%2fadmin",
    "/app/..%2Fadmin",
    "/app/%2e%2e%2fadmin",
    "/app/..\\admin",
    "/app\\..\\admin",
    "/app/..%5cadmin",
    "/app/..;/admin",
    "/app//../admin",
    "/app/x/../../admin",
    "/app/%252e%252e/admin",  # double encoding: refused as ambiguous, not decoded twice
]


@pytest.mark.parametrize("path", ESCAPING_PATHS)
def test_a_path_leaving_an_allowed_prefix_is_refused(path: str):
    from pharos_monitoring.exporter.serving.allowlist import AllowList

    allow = AllowList(["http://127.0.0.1:8080/app/"])
    assert not allow.allows(f"http://127.0.0.1:8080{path}")


@pytest.mark.parametrize("path", ESCAPING_PATHS[:8])
def test_a_probe_of_a_path_leaving_an_allowed_prefix_contacts_nothing(path: str):
    with RawServer(serves(FIXTURE)) as listener:
        with running({"probe": {"allow": [f"http://127.0.0.1:{listener.port}/app/"]}, "limits": {"timeout_seconds": 2}}) as (base, _):
            response = probe(base, target=f"http://127.0.0.1:{listener.port}{path}")
        assert listener.accepts == 0, listener.requests
    assert response.status_code in (400, 403), response.text


@pytest.mark.parametrize("path", ["/app/./stats", "/app/x/../stats", "/app//stats", "/app/%73tats", "/app/stat%73"])
def test_an_allowed_path_is_fetched_exactly_as_it_was_checked(path: str):
    from pharos_monitoring.exporter.serving.allowlist import AllowList

    with RawServer(serves(FIXTURE)) as listener:
        url = f"http://127.0.0.1:{listener.port}{path}"
        assert AllowList.normalize(url) == f"http://127.0.0.1:{listener.port}/app/stats"
        with running({"probe": {"allow": [f"http://127.0.0.1:{listener.port}/app/"]}}) as (base, _):
            response = probe(base, target=url)
        assert [r["line"] for r in listener.requests] == ["GET /app/stats HTTP/1.1"]
    assert value(samples(response.text), c.SCRAPE_SUCCESS.name) == 1.0


def test_the_canonical_url_is_what_the_check_answers():
    from pharos_monitoring.exporter.serving.allowlist import AllowList

    allow = AllowList(["http://orders:8080/app/"])
    verdict = allow.check("HTTP://Orders:8080/app/a/./b/../stats?x=1#frag")
    assert verdict.allowed and verdict.url == "http://orders:8080/app/a/stats?x=1"
    refused = allow.check("http://orders:8080/app/%2e%2e/admin")
    assert not refused.allowed and refused.url == "http://orders:8080/admin"
    ambiguous = allow.check("http://orders:8080/app/..%2fadmin")
    assert not ambiguous.allowed and ambiguous.url == "" and "%2f" in ambiguous.why.lower()
