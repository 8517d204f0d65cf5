"""TLS and basic auth on every endpoint, over real TLS on loopback: no credentials, wrong ones and
right ones; plain HTTP on the TLS port; client certificates; certificate rotation without a
restart; a web configuration broken while serving; the bcrypt cache; the `pharos exporter` flag."""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import pharos_monitoring.exporter.serving.web_access as web_access
from pharos_monitoring.exporter.config import parse
from pharos_monitoring.exporter.collect import Exporter
from pharos_monitoring.exporter.serving.server import make_server
from pharos_monitoring.exporter.serving.web_access import AUTH_CACHE_SIZE, WebAccess

from helpers import RawServer, promtool_check_metrics
from test_server import FIXTURE, pharos, serves
from tls_support import Certificates, bcrypt_hash, make_certificates

PASSWORD = "pr0metheus-password"
ENDPOINTS = ["/metrics", "/health", "/", "/probe?target=127.0.0.1:{port}", "/nothing-here"]
STATUS_WHEN_ADMITTED = {"/metrics": 200, "/health": 200, "/": 200, "/probe?target=127.0.0.1:{port}": 200, "/nothing-here": 404}


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def password_hash() -> str:
    return bcrypt_hash(PASSWORD)


def web_yml(path: Path, certs: Certificates | None = None, users: dict[str, str] | None = None, extra_tls: str = "", extra: str = "") -> Path:
    text = ""
    if certs is not None:
        text += f"tls_server_config:\n  cert_file: {certs.server[0]}\n  key_file: {certs.server[1]}\n{extra_tls}"
    if users:
        text += "basic_auth_users:\n" + "".join(f"  {user}: {hashed}\n" for user, hashed in users.items())
    path.write_text(text + extra)
    return path


@contextmanager
def serving(web: Path, config: dict | None = None):
    """The real exporter with `web` as its --web.config.file; yields (port, WebAccess)."""
    access = WebAccess(str(web))
    exporter = Exporter(parse(config or {}, "test.yml"))
    server = make_server(exporter, "127.0.0.1:0", access)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], access
    finally:
        server.shutdown()
        server.server_close()
        exporter.close()
        thread.join(timeout=5)


def get(url: str, certs: Certificates, **kwargs) -> requests.Response:
    return requests.get(url, verify=str(certs.ca), timeout=10, **kwargs)


# --- basic auth on every endpoint, over TLS -----------------------------------------------------
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_endpoint_needs_the_right_credentials(tmp_path: Path, certs: Certificates, password_hash: str, endpoint: str):
    web = web_yml(tmp_path / "web.yml", certs, {"prometheus": password_hash}, extra="http_server_config:\n  headers: {X-Content-Type-Options: nosniff}\n")
    with RawServer(serves(FIXTURE)) as app:
        target = {"targets": [{"name": "app", "url": app.url()}], "probe": {"allow": ["127.0.0.0/8"]}}
        with serving(web, target) as (port, _):
            url = f"https://127.0.0.1:{port}{endpoint.format(port=app.port)}"
            anonymous = get(url, certs)
            wrong = get(url, certs, auth=("prometheus", "wrong-password"))
            unknown_user = get(url, certs, auth=("somebody", PASSWORD))
            contacted_before_admission = app.accepts
            right = get(url, certs, auth=("prometheus", PASSWORD))
    for refused in (anonymous, wrong, unknown_user):
        assert refused.status_code == 401, refused.text
        assert refused.headers["WWW-Authenticate"].startswith('Basic realm="pharos-exporter"')
        assert refused.headers["X-Content-Type-Options"] == "nosniff"
        assert PASSWORD not in refused.text and "pharo" not in refused.text
    assert contacted_before_admission == 0, "a refused request must not reach any target"
    assert right.status_code == STATUS_WHEN_ADMITTED[endpoint], right.text
    assert right.headers["X-Content-Type-Options"] == "nosniff"
    if endpoint in ("/metrics", "/probe?target=127.0.0.1:{port}"):
        promtool_check_metrics(right.text)
        assert any(f.name == "pharos_scrape_success" for f in text_string_to_metric_families(right.text))


@pytest.mark.parametrize(
    "header",
    [
        "Basic " + base64.b64encode(b"prometheus").decode(),  # no colon
        "Basic not-base64!",
        "Bearer " + PASSWORD,
        "Basic " + base64.b64encode(b"prometheus:" + PASSWORD.encode() + b"x" * 80).decode(),  # over bcrypt's 72 bytes
        "Basic " + base64.b64encode(b"\xff\xfe:" + PASSWORD.encode()).decode(),  # a user name that is not UTF-8
        "basic " + base64.b64encode(f"prometheus:{PASSWORD} ".encode()).decode(),  # one character more
    ],
)
def test_malformed_or_near_miss_credentials_are_401_not_500(tmp_path: Path, password_hash: str, header: str):
    with serving(web_yml(tmp_path / "web.yml", users={"prometheus": password_hash})) as (port, _):
        response = requests.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": header}, timeout=10)
        scheme_is_case_insensitive = requests.get(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Authorization": "bASIC " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()},
            timeout=10,
        )
    assert response.status_code == 401, response.text
    assert scheme_is_case_insensitive.status_code == 200


def test_plain_http_to_the_tls_port_fails(tmp_path: Path, certs: Certificates, password_hash: str):
    with serving(web_yml(tmp_path / "web.yml", certs, {"prometheus": password_hash})) as (port, _):
        plain = requests.get(f"http://127.0.0.1:{port}/metrics", auth=("prometheus", PASSWORD), timeout=10)
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"https://127.0.0.1:{port}/metrics", auth=("prometheus", PASSWORD), timeout=10)  # unknown CA
        still_serving = get(f"https://127.0.0.1:{port}/metrics", certs, auth=("prometheus", PASSWORD))
    assert plain.status_code == 400
    assert plain.text == "Client sent an HTTP request to an HTTPS server.\n"
    assert still_serving.status_code == 200


def test_tls_without_basic_auth_serves_everyone_over_tls(tmp_path: Path, certs: Certificates):
    with serving(web_yml(tmp_path / "web.yml", certs)) as (port, access):
        response = get(f"https://127.0.0.1:{port}/health", certs)
    assert access.tls and response.status_code == 200


# --- client certificates ------------------------------------------------------------------------
def client_get(port: int, certs: Certificates, cert: tuple[Path, Path] | None) -> int:
    """The status of an HTTPS GET presenting `cert`; 0 when the TLS connection is refused."""
    try:
        response = get(f"https://127.0.0.1:{port}/health", certs, cert=tuple(map(str, cert)) if cert else None)
    except (requests.exceptions.SSLError, requests.exceptions.ConnectionError):
        return 0
    return response.status_code


@pytest.mark.parametrize(
    "mode,without,trusted,rogue",
    [
        ("RequireAndVerifyClientCert", 0, 200, 0),
        ("VerifyClientCertIfGiven", 200, 200, 0),
        ("NoClientCert", 200, 200, 200),
    ],
)
def test_client_certificates(tmp_path: Path, certs: Certificates, mode: str, without: int, trusted: int, rogue: int):
    ca = f"  client_ca_file: {certs.ca}\n" if mode != "NoClientCert" else ""
    web = web_yml(tmp_path / "web.yml", certs, extra_tls=f"  client_auth_type: {mode}\n{ca}")
    with serving(web) as (port, _):
        outcomes = (client_get(port, certs, None), client_get(port, certs, certs.client), client_get(port, certs, certs.rogue_client))
    assert outcomes == (without, trusted, rogue)


def test_client_certificate_and_basic_auth_together(tmp_path: Path, certs: Certificates, password_hash: str):
    web = web_yml(tmp_path / "web.yml", certs, {"prometheus": password_hash}, f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {certs.ca}\n")
    client = tuple(map(str, certs.client))
    with serving(web) as (port, _):
        no_password = get(f"https://127.0.0.1:{port}/metrics", certs, cert=client)
        both = get(f"https://127.0.0.1:{port}/metrics", certs, cert=client, auth=("prometheus", PASSWORD))
        password_only = client_get(port, certs, None)
    assert (no_password.status_code, both.status_code, password_only) == (401, 200, 0)


# --- reloading ------------------------------------------------------------------------------------
def served_certificate(port: int, certs: Certificates) -> bytes:
    context = ssl.create_default_context(cafile=str(certs.ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        return tls.getpeercert(binary_form=True)


def test_a_rotated_certificate_is_served_on_the_next_connection(tmp_path: Path, certs: Certificates):
    live_crt, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    live_crt.write_bytes(certs.server[0].read_bytes())
    live_key.write_bytes(certs.server[1].read_bytes())
    (tmp_path / "web.yml").write_text("tls_server_config:\n  cert_file: live.crt\n  key_file: live.key\n")
    first_der = ssl.PEM_cert_to_DER_cert(certs.server[0].read_text())
    second_der = ssl.PEM_cert_to_DER_cert(certs.server2[0].read_text())
    with serving(tmp_path / "web.yml") as (port, _):
        before = served_certificate(port, certs)
        for source, target in ((certs.server2[0], live_crt), (certs.server2[1], live_key)):
            staged = target.with_suffix(".new")
            staged.write_bytes(source.read_bytes())
            os.replace(staged, target)  # how certificate managers rotate: one atomic rename per file
        after = served_certificate(port, certs)
    assert before == first_der and after == second_der


def test_a_web_config_broken_while_serving_fails_closed_until_fixed(tmp_path: Path, password_hash: str, caplog):
    web = web_yml(tmp_path / "web.yml", users={"prometheus": password_hash})
    good = web.read_text()
    url_auth = {"auth": ("prometheus", PASSWORD), "timeout": 10}
    with serving(web) as (port, _):
        url = f"http://127.0.0.1:{port}/metrics"
        before = requests.get(url, **url_auth).status_code
        web.write_text(good + "  intruder: not-a-hash\n")
        broken = requests.get(url, **url_auth)
        anonymous_while_broken = requests.get(url, timeout=10).status_code
        web.write_text(good)
        after = requests.get(url, **url_auth).status_code
    assert before == 200 and after == 200
    assert broken.status_code == 500 and "web configuration is invalid" in broken.text
    assert anonymous_while_broken == 500
    assert any("basic_auth_users.intruder: not a bcrypt hash" in record.getMessage() for record in caplog.records)


def test_a_user_removed_from_the_file_is_refused_at_once(tmp_path: Path, password_hash: str):
    web = web_yml(tmp_path / "web.yml", users={"prometheus": password_hash, "former": password_hash})
    with serving(web) as (port, _):
        url = f"http://127.0.0.1:{port}/metrics"
        before = requests.get(url, auth=("former", PASSWORD), timeout=10).status_code
        web_yml(web, users={"prometheus": password_hash})
        after = requests.get(url, auth=("former", PASSWORD), timeout=10).status_code
    assert (before, after) == (200, 401)


def test_tls_cannot_be_switched_off_without_a_restart(tmp_path: Path, certs: Certificates):
    web = web_yml(tmp_path / "web.yml", certs)
    with serving(web) as (port, access):
        web.write_text("")
        refused = client_get(port, certs, None)
        web_yml(web, certs)
        restored = client_get(port, certs, None)
    assert access.tls and (refused, restored) == (0, 200)


# --- the bcrypt cache -------------------------------------------------------------------------------
def test_bcrypt_runs_once_per_credentials_and_the_cache_is_bounded(tmp_path: Path, password_hash: str, monkeypatch):
    checks = []
    real = web_access._bcrypt_matches
    monkeypatch.setattr(web_access, "_bcrypt_matches", lambda password, hashed: checks.append(password) or real(password, hashed))
    access = WebAccess(str(web_yml(tmp_path / "web.yml", users={"prometheus": password_hash})))

    def header(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    assert all(access.authorized(header("prometheus", PASSWORD)) for _ in range(20))
    assert not any(access.authorized(header("prometheus", "wrong")) for _ in range(20))
    assert not any(access.authorized(header("ghost", PASSWORD)) for _ in range(20))  # unknown user: refused, checked once
    assert len(checks) == 3
    for index in range(AUTH_CACHE_SIZE + 10):
        access.authorized(header("prometheus", f"guess-{index}"))
    assert len(access._refused) == AUTH_CACHE_SIZE
    checks.clear()
    # Wrong passwords never evict the accepted one (they did: 200 guessing clients pushed the real
    # scrape past its timeout): no bcrypt check for the legitimate user after the flood.
    assert access.authorized(header("prometheus", PASSWORD))
    assert checks == []
    assert access.cached_verdict(header("prometheus", PASSWORD)) is True
    assert access.cached_verdict(header("prometheus", "never-tried")) is None
    keys = [*access._refused, *access._accepted.values()]
    assert all(PASSWORD.encode() not in key for key in keys), "the cache keeps digests, not passwords"


# --- the command ------------------------------------------------------------------------------------
def test_the_command_serves_https_with_the_flag_or_the_environment(tmp_path: Path, certs: Certificates, password_hash: str):
    web = web_yml(tmp_path / "web.yml", certs, {"prometheus": password_hash})
    checked = pharos("--web.config.file", str(web), "--check-config")
    assert checked.returncode == 0, checked.stderr
    assert f"web configuration {web}: TLS on ({certs.server[0]}; client certificates: NoClientCert); basic auth users: prometheus" in checked.stdout
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PHAROS_")}
    environment.update({"PHAROS_LISTEN": "127.0.0.1:0", "PHAROS_WEB_CONFIG_FILE": str(web)})
    process = subprocess.Popen([str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "pharos"), "exporter"],
                               stderr=subprocess.PIPE, text=True, env=environment)  # fmt: skip
    try:
        port = served_port(process, "https")
        anonymous = get(f"https://127.0.0.1:{port}/health", certs).status_code
        admitted = get(f"https://127.0.0.1:{port}/health", certs, auth=("prometheus", PASSWORD)).status_code
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert (anonymous, admitted) == (401, 200)


def served_port(process: subprocess.Popen, scheme: str, limit: float = 30) -> int:
    """The port the exporter logs that it serves on; its log is drained in a thread, so that
    waiting is bounded even when the line never comes."""
    found: list[int] = []
    seen: list[str] = []
    ready = threading.Event()

    def drain():
        for line in process.stderr:
            seen.append(line)
            match = re.search(rf"serving on {scheme}://127\.0\.0\.1:(\d+)", line)
            if match and not found:
                found.append(int(match.group(1)))
                ready.set()

    threading.Thread(target=drain, daemon=True).start()
    assert ready.wait(limit), "the exporter did not start:\n" + "".join(seen)
    return found[0]


def test_an_invalid_web_config_stops_the_command_with_one_line(tmp_path: Path):
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users: {prometheus: hunter2}\n")
    for args in (["--web.config.file", str(web)], ["--web.config.file", str(web), "--check-config"]):
        result = pharos(*args, "--listen", "127.0.0.1:0")
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert lines == [
            f"pharos exporter: --web.config.file (or PHAROS_WEB_CONFIG_FILE): {web}: basic_auth_users.prometheus: "
            "not a bcrypt hash: too short; make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"
        ], result.stderr
    missing = pharos("--web.config.file", str(tmp_path / "missing.yml"), "--check-config")
    assert missing.returncode == 1 and "cannot read the web configuration file: No such file or directory" in missing.stderr
