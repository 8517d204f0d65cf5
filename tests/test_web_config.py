"""`--web.config.file`: the format, checked against `promtool check web-config` both ways; and the
Prometheus side, `pharos build` rendering scheme, tls_config and basic_auth for the jobs that scrape
exporters, checked by promtool and by a real Prometheus scraping a TLS + basic-auth exporter."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from pharos_monitoring.exporter.config import parse as parse_exporter_config
from pharos_monitoring.exporter.collect import Exporter
from pharos_monitoring.exporter.serving.server import make_server
from pharos_monitoring.exporter.serving.web_access import WebAccess
from pharos_monitoring.exporter.serving.web_config import DIFFERENCES, WebConfigError, load
from pharos_monitoring.cli import main

from alerting_tools import PROMTOOL, assert_ok, run
from helpers import RawServer, read_request
from test_build import stack_data, write_stack
from tls_support import Certificates, bcrypt_hash, make_certificates

PROMETHEUS = "/usr/bin/prometheus"


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def files(tmp_path: Path, certs: Certificates) -> Path:
    """A directory holding the certificates under short names, where the web configs are written."""
    for name, source in {
        "server.crt": certs.server[0], "server.key": certs.server[1], "other.key": certs.server2[1],
        "ca.crt": certs.ca,
    }.items():  # fmt: skip
        (tmp_path / name).write_bytes(source.read_bytes())
    return tmp_path


def promtool_accepts(path: Path) -> tuple[bool, str]:
    result = subprocess.run([PROMTOOL, "check", "web-config", str(path)], capture_output=True, text=True, timeout=60)
    return result.returncode == 0, result.stdout + result.stderr


TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
HASH_10 = "$2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze"  # exporter-toolkit's example

ACCEPTED = {
    "empty": "",
    "tls": TLS,
    "tls_paths_blank_means_off": 'tls_server_config: {cert_file: "", key_file: ""}\n',
    "mutual_tls": TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    "optional_client_cert_and_tuning": TLS + (
        "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n  min_version: TLS13\n"
        "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]\n"
        "  prefer_server_cipher_suites: false\n  curve_preferences: [X25519, CurveP256]\n"
    ),
    "request_client_cert": TLS + "  client_auth_type: RequestClientCert\n  client_ca_file: ca.crt\n",
    "users": f"basic_auth_users:\n  prometheus: {HASH_10}\n  '12': {HASH_10}\n",
    "headers_and_http2": "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n",
}

REJECTED = {
    # name: (file, what our message says, after "<file>: ")
    "unknown_key": ("foo: 1\n", "foo: unknown key; known keys here: basic_auth_users, http_server_config, rate_limit, tls_server_config"),
    "unknown_tls_key": (TLS + "  client_allowed_sans: [a]\n", "tls_server_config.client_allowed_sans: unknown key"),
    "cert_without_key": ("tls_server_config: {cert_file: server.crt}\n", "tls_server_config.key_file: missing; TLS needs cert_file and key_file"),
    "auth_type_without_cert": ("tls_server_config: {client_auth_type: RequireAndVerifyClientCert}\n", "tls_server_config.cert_file: missing"),
    "unknown_auth_type": (TLS + "  client_auth_type: Foo\n", "tls_server_config.client_auth_type: invalid client auth type 'Foo'"),
    "ca_without_policy": (TLS + "  client_ca_file: ca.crt\n", "client CAs are configured without a client auth policy; set client_auth_type"),
    "not_a_hash": ("basic_auth_users: {alice: notahash}\n", "basic_auth_users.alice: not a bcrypt hash: too short; make one with: htpasswd"),
    "hash_cost_3": (f"basic_auth_users: {{alice: '{HASH_10.replace('$10$', '$03$')}'}}\n", "the cost 3 is outside the allowed range 4 to 31"),
    "hash_version_3": (f"basic_auth_users: {{alice: '{HASH_10.replace('$2y', '$3y')}'}}\n", "bcrypt version '3' is newer"),
    "duplicate_user": (f"basic_auth_users:\n  alice: {HASH_10}\n  alice: {HASH_10}\n", "key 'alice' appears twice"),
    "bad_header_value": ("http_server_config: {headers: {X-Frame-Options: bogus}}\n", "headers.X-Frame-Options: invalid value 'bogus'; expected one of: deny, sameorigin"),
    "unknown_header": ("http_server_config: {headers: {X-Foo: bar}}\n", "headers.X-Foo: HTTP header 'X-Foo' can not be configured"),
    "http2_as_text": ("http_server_config: {http2: 'true'}\n", "http_server_config.http2: expected true or false"),
    "tls_version": (TLS + "  min_version: TLS14\n", "tls_server_config.min_version: unknown TLS version 'TLS14'"),
    "insecure_cipher": (TLS + "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", "cipher_suites[0]: unknown cipher 'TLS_RSA_WITH_RC4_128_SHA'"),
    "ciphers_not_a_list": (TLS + "  cipher_suites: TLS_AES_128_GCM_SHA256\n", "tls_server_config.cipher_suites: expected a list"),
    "unknown_curve": (TLS + "  curve_preferences: [X448]\n", "curve_preferences[0]: unknown curve 'X448'"),
    "key_mismatch": ("tls_server_config: {cert_file: server.crt, key_file: other.key}\n", "the key does not match the certificate"),
    "files_swapped": ("tls_server_config: {cert_file: server.key, key_file: server.crt}\n", "are the two files swapped?"),
    "missing_cert": ("tls_server_config: {cert_file: missing.crt, key_file: server.key}\n", "tls_server_config.cert_file: cannot read"),
    "missing_client_ca": (TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: missing.crt\n", "client_ca_file: cannot read"),
    "not_a_mapping": ("[1, 2]\n", "expected a mapping, got a list"),
}

# Files promtool 2.42 accepts that cannot work as written; listed in exporter/serving/web_config.py DIFFERENCES.
REFUSED_HERE_ONLY = {
    "require_any_client_cert": (TLS + "  client_auth_type: RequireAnyClientCert\n", "authenticates nobody; use RequireAndVerifyClientCert"),
    "client_ca_without_certificate": (TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n", "holds no PEM CA certificate"),
    "no_tls_version_left": (TLS + "  min_version: TLS13\n  max_version: TLS12\n", "TLS13 is above max_version TLS12: no TLS version is left"),
}


@pytest.mark.parametrize("text", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_files_promtool_accepts_are_accepted(files: Path, text: str):
    path = files / "web.yml"
    path.write_text(text)
    accepted, output = promtool_accepts(path)
    assert accepted, output
    config = load(str(path))
    assert (config.context is not None) == config.tls.enabled


@pytest.mark.parametrize("text,message", REJECTED.values(), ids=REJECTED.keys())
def test_files_promtool_rejects_are_rejected_naming_the_key(files: Path, text: str, message: str):
    path = files / "web.yml"
    path.write_text(text)
    accepted, output = promtool_accepts(path)
    assert not accepted, output
    with pytest.raises(WebConfigError) as error:
        load(str(path))
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


@pytest.mark.parametrize("text,message", REFUSED_HERE_ONLY.values(), ids=REFUSED_HERE_ONLY.keys())
def test_the_documented_differences_from_promtool(files: Path, text: str, message: str):
    path = files / "web.yml"
    path.write_text(text)
    accepted, output = promtool_accepts(path)
    assert accepted, f"promtool now refuses this too; drop it from DIFFERENCES: {output}"
    with pytest.raises(WebConfigError, match=re.escape(message)):
        load(str(path))


@pytest.mark.parametrize(
    "text,expected",
    [
        ("rate_limit: {interval: 1s, burst: 2}\n", (1.0, 2)),
        ("rate_limit: {interval: 500ms, burst: 10}\n", (0.5, 10)),
        ("rate_limit: {interval: 1m30s, burst: 1}\n", (90.0, 1)),
        ("rate_limit: {interval: 0s, burst: 5}\n", None),  # 0: no limit, as in exporter-toolkit
    ],
)
def test_rate_limit_of_newer_exporter_toolkit_is_read(files: Path, text: str, expected):
    """exporter-toolkit's `rate_limit` postdates promtool 2.42, which still refuses the key."""
    path = files / "web.yml"
    path.write_text(text)
    accepted, output = promtool_accepts(path)
    assert not accepted, f"promtool now reads rate_limit: compare with it instead ({output})"
    limit = load(str(path)).rate_limit
    assert (limit and (limit.interval_seconds, limit.burst)) == expected


@pytest.mark.parametrize(
    "text,message",
    [
        ("rate_limit: {interval: fast, burst: 2}\n", "rate_limit.interval: 'fast' is not a duration"),
        ("rate_limit: {interval: 1s, burst: -1}\n", "rate_limit.burst: expected a whole number"),
        ("rate_limit: {interval: 1s, burst: 0}\n", "burst 0 refuses every request"),
        ("rate_limit: {interval: 1s, bursts: 3}\n", "rate_limit.bursts: unknown key"),
    ],
)
def test_a_bad_rate_limit_is_refused_naming_the_key(files: Path, text: str, message: str):
    path = files / "web.yml"
    path.write_text(text)
    with pytest.raises(WebConfigError, match=re.escape(message)):
        load(str(path))


def test_the_differences_are_documented():
    documented = Path(__file__).resolve().parent.parent / "docs" / "security.md"
    text = documented.read_text()
    for name in ("RequireAnyClientCert", "client_ca_file", "min_version", "curve_preferences", "http2"):
        assert name in DIFFERENCES and name in text, name


def test_relative_paths_are_relative_to_the_file(files: Path, tmp_path: Path, monkeypatch):
    (files / "web.yml").write_text(TLS)
    monkeypatch.chdir(tmp_path.parent)  # not where the file is
    config = load(str(files / "web.yml"))
    assert config.tls.cert_file == str(files / "server.crt")


# --- the Prometheus side: `pharos build` ---------------------------------------------------------
EXPORTER_JOBS = ("pharos-exporter", "orders", "catalog")  # production's jobs that scrape exporters


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    for name in ("slack_pages", "slack_production", "slack_staging", "slack_heartbeat", "smtp_password"):
        (directory / name).write_text("not-used-here\n")
    (directory / "exporter_password").write_text("exporter-5ecret-password\n")
    return directory


def access_stack(secrets: Path, certs: Certificates) -> dict:
    data = copy.deepcopy(stack_data(secrets))
    data["exporter_tls"] = {
        "ca_file": str(certs.ca), "cert_file": str(certs.client[0]), "key_file": str(certs.client[1]),
        "server_name": "localhost",
    }  # fmt: skip
    data["exporter_auth"] = {"username": "prometheus", "password_file": str(secrets / "exporter_password")}
    data["environments"]["beta"]["exporter_auth"] = {"username": "prometheus-beta", "password_file": str(secrets / "exporter_password")}
    return data


def build(tmp_path: Path, data: dict) -> Path:
    out = tmp_path / "out"
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(out)]) == 0
    return out


def jobs_of(path: Path) -> dict[str, dict]:
    return {job["job_name"]: job for job in yaml.safe_load(path.read_text())["scrape_configs"]}


def test_jobs_that_scrape_exporters_carry_scheme_tls_and_basic_auth(tmp_path: Path, secrets: Path, certs: Certificates):
    out = build(tmp_path, access_stack(secrets, certs))
    for environment in ("production", "beta", "alpha"):
        assert_ok(run(PROMTOOL, "check", "config", str(out / environment / "prometheus" / "prometheus.yml")))
    jobs = jobs_of(out / "production" / "prometheus" / "prometheus.yml")
    for name in EXPORTER_JOBS:
        assert jobs[name]["scheme"] == "https", name
        assert jobs[name]["tls_config"] == {
            "ca_file": str(certs.ca), "cert_file": str(certs.client[0]), "key_file": str(certs.client[1]), "server_name": "localhost",
        }  # fmt: skip
        assert jobs[name]["basic_auth"] == {"username": "prometheus", "password_file": str(secrets / "exporter_password")}
    for name in ("prometheus", "alertmanager"):
        assert not {"scheme", "tls_config", "basic_auth"} & set(jobs[name]), name
    beta = jobs_of(out / "beta" / "prometheus" / "prometheus.yml")
    assert beta["orders"]["basic_auth"]["username"] == "prometheus-beta"  # the environment's own section wins
    assert beta["orders"]["tls_config"]["ca_file"] == str(certs.ca)  # the other one is inherited
    for path in out.rglob("*.yml"):
        assert "exporter-5ecret-password" not in path.read_text(), path


def test_without_the_sections_nothing_changes(tmp_path: Path, secrets: Path):
    jobs = jobs_of(build(tmp_path, stack_data(secrets)) / "production" / "prometheus" / "prometheus.yml")
    for job in jobs.values():
        assert not {"scheme", "tls_config", "basic_auth"} & set(job), job["job_name"]


STACK_MISTAKES = [
    ({"exporter_auth": {"username": "p", "password": "hunter2"}}, "exporter_auth.password: secrets are not accepted inline; put it in a file and give its path as password_file"),
    ({"exporter_auth": {"username": "p"}}, "exporter_auth.password_file: missing"),
    ({"exporter_auth": {"password_file": "/run/secrets/p"}}, "exporter_auth.username: missing"),
    ({"exporter_auth": {"username": "p", "password_file": "secrets/p"}}, "exporter_auth.password_file: 'secrets/p' is not an absolute path"),
    ({"exporter_tls": {"cert_file": "/run/secrets/c.crt"}}, "exporter_tls.key_file: missing; a client certificate needs both"),
    ({"exporter_tls": {"ca_file": "/x", "verify": False}}, "exporter_tls.verify: unknown key"),
    ({"exporter_tls": {"insecure_skip_verify": "yes"}}, "exporter_tls.insecure_skip_verify: expected true or false"),
]


@pytest.mark.parametrize("section,message", STACK_MISTAKES, ids=[m[1].split(":")[0] + str(i) for i, m in enumerate(STACK_MISTAKES)])
def test_a_mistake_in_the_access_sections_names_the_key(tmp_path: Path, secrets: Path, capsys, section: dict, message: str):
    data = stack_data(secrets)
    data.update(section)
    stack = write_stack(tmp_path, data)
    assert main(["build", "--config", str(stack), "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"pharos build: {stack}: ") and message in error, error
    assert "hunter2" not in error


def test_an_environment_section_is_checked_with_its_path(tmp_path: Path, secrets: Path, capsys):
    data = stack_data(secrets)
    data["environments"]["alpha"]["exporter_tls"] = {"ca_file": "ca.crt"}
    assert main(["build", "--config", str(write_stack(tmp_path, data)), "--out", str(tmp_path / "out")]) == 1
    assert "environments.alpha.exporter_tls.ca_file: 'ca.crt' is not an absolute path" in capsys.readouterr().err


# --- a real Prometheus, with the generated configuration, against a TLS + basic-auth exporter ----
@contextmanager
def tls_exporter(directory: Path, certs: Certificates, password: str):
    """The exporter in multi-target mode requiring client certificates and basic auth."""
    web = directory / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {certs.server[0]}\n  key_file: {certs.server[1]}\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {certs.ca}\n"
        f"basic_auth_users:\n  prometheus: {bcrypt_hash(password)}\n"
    )
    exporter = Exporter(parse_exporter_config({"probe": {"allow": ["127.0.0.0/8"]}}, "test.yml"))
    server = make_server(exporter, "127.0.0.1:0", WebAccess(str(web)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        exporter.close()
        thread.join(timeout=5)


@contextmanager
def running_prometheus(config: Path, workdir: Path):
    log_path = workdir / "prometheus.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}", "--web.listen-address=127.0.0.1:0"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        address = None
        while address is None and time.monotonic() < deadline and process.poll() is None:
            match = re.search(r'msg="Listening on" address=(127\.0\.0\.1:\d+)', log_path.read_text())
            address = match.group(1) if match else None
            time.sleep(0.05)
        assert address, f"Prometheus did not start:\n{log_path.read_text()}"
        yield f"http://{address}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def target_health(prometheus: str, job: str) -> tuple[str, str]:
    with urllib.request.urlopen(f"{prometheus}/api/v1/targets?state=active", timeout=10) as response:
        targets = json.load(response)["data"]["activeTargets"]
    found = [t for t in targets if t["labels"]["job"] == job]
    if not found:
        return "", "not discovered yet"  # the scrape manager starts a moment after the web server
    (target,) = found
    return target["health"], target["lastError"]


def wait_for_health(prometheus: str, job: str, wanted: str, limit: float = 30) -> tuple[str, str]:
    deadline = time.monotonic() + limit
    while True:
        health, error = target_health(prometheus, job)
        if health == wanted or time.monotonic() > deadline:
            return health, error
        time.sleep(0.2)


@pytest.mark.slow
def test_prometheus_scrapes_the_exporter_over_mutual_tls_with_basic_auth(tmp_path: Path, secrets: Path, certs: Certificates):
    pharo = (Path(__file__).resolve().parent / "fixtures" / "profiles" / "pharo.json").read_bytes()

    def serves_pharo(connection, server):
        for _ in range(100):
            if read_request(connection, server) is None:
                return
            connection.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(pharo)}\r\n\r\n".encode() + pharo)

    with RawServer(serves_pharo) as app, tls_exporter(tmp_path, certs, "exporter-5ecret-password") as exporter:
        data = access_stack(secrets, certs)
        data["intervals"] = {"scrape_interval": "2s", "scrape_timeout": "1s"}
        production = data["environments"]["production"]
        production["exporter"] = exporter
        production["services"] = {"catalog": {"mode": "probe", "profile": "pharo", "targets": [f"127.0.0.1:{app.port}"]}}
        out = build(tmp_path, data)
        config = out / "production" / "prometheus" / "prometheus.yml"
        with running_prometheus(config, tmp_path) as prometheus:
            assert wait_for_health(prometheus, "pharos-exporter", "up") == ("up", "")
            assert wait_for_health(prometheus, "catalog", "up") == ("up", "")
            assert app.requests and app.requests[0]["line"] == "GET /stats HTTP/1.1"  # /probe reached the app
            # Prometheus reads the password file at every scrape: a wrong password turns the target down.
            (secrets / "exporter_password").write_text("not-the-password\n")
            health, error = wait_for_health(prometheus, "pharos-exporter", "down")
    assert health == "down" and "401" in error, error
