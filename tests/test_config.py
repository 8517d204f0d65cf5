"""The configuration: every mistake is reported with the file, the key path and what to do;
environment variables override the file; secrets come from files or the environment, reach the
target as headers and never show up in logs."""

from __future__ import annotations

import argparse
import logging
import time

import pytest
import yaml

from pharos_monitoring.exporter.config import ConfigError, load, parse
from pharos_monitoring.exporter.main import add_arguments, build_config, summary
from pharos_monitoring.exporter.collect import Exporter

from helpers import RawServer, http_response, read_request

SOURCE = "pharos.yml"
URL = "http://127.0.0.1:8080/stats"


def error_of(data) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(data, SOURCE)
    return str(caught.value)


@pytest.mark.parametrize(
    "data,path,problem",
    [
        # shape and unknown keys
        ([URL], "", "expected a mapping, got list"),
        ({"target": []}, "target", "unknown key; known keys here: limits, listen, modules, modules_file, probe, swarm, targets"),
        ({"targets": {"url": URL}}, "targets", "expected list, got dict"),
        ({"targets": ["http://x/stats"]}, "targets[0]", "expected a mapping, got str"),
        ({"targets": [{"url": URL, "timeout": 3}]}, "targets[0].timeout", "unknown key"),
        ({"limits": {"timeout": 3}}, "limits.timeout", "unknown key; known keys here:"),
        ({"targets": [{"url": URL, "auth": {"token_file": "/x"}}]}, "targets[0].auth.token_file", "unknown key"),
        # wrong types and values
        ({"listen": 9841}, "listen", "expected str, got int 9841"),
        ({"listen": "9841"}, "listen", "is not HOST:PORT"),
        ({"listen": "0.0.0.0:70000"}, "listen", "port between 0 (any free port) and 65535"),
        ({"limits": {"timeout_seconds": "ten"}}, "limits.timeout_seconds", "expected float, got str 'ten'"),
        ({"limits": {"timeout_seconds": 0}}, "limits.timeout_seconds", "must be greater than 0"),
        ({"limits": {"timeout_margin_seconds": -1}}, "limits.timeout_margin_seconds", "must not be negative"),
        ({"limits": {"max_response_bytes": 1.5}}, "limits.max_response_bytes", "expected int, got float"),
        ({"limits": {"max_routes_per_target": True}}, "limits.max_routes_per_target", "expected int, got bool"),
        ({"targets": [{"url": URL, "health": "yes"}]}, "targets[0].health", "expected bool, got str"),
        ({"targets": [{"url": URL, "process": {"pid": -1}}]}, "targets[0].process.pid", "must not be negative"),
        ({"targets": [{"url": URL, "process": {"pid": "1"}}]}, "targets[0].process.pid", "expected int, got str"),
        # URLs
        ({"targets": [{}]}, "targets[0].url", "every target needs a url"),
        ({"targets": [{"url": "ftp://x/stats"}]}, "targets[0].url", "is not an http:// or https:// URL"),
        ({"targets": [{"url": "127.0.0.1:8080"}]}, "targets[0].url", "is not an http:// or https:// URL"),
        ({"targets": [{"url": "http:///stats"}]}, "targets[0].url", "has no host"),
        ({"targets": [{"url": "http://h:99999/stats"}]}, "targets[0].url", "has an invalid port"),
        ({"targets": [{"url": "http://h/st ats"}]}, "targets[0].url", "whitespace or control characters"),
        ({"targets": [{"url": "http://user:pw@h/stats"}]}, "targets[0].url", "credentials in the URL are not accepted"),
        # names and profiles
        ({"targets": [{"url": URL, "name": "my app"}]}, "targets[0].name", "may only hold letters, digits and _.:-"),
        ({"targets": [{"url": URL, "name": "a"}, {"url": URL, "name": "a"}]}, "targets", "target names must be unique; 'a' appears more than once"),
        ({"targets": [{"url": URL, "profile": "pharoh"}]}, "targets[0].profile", "unknown profile 'pharoh'; known profiles: go-expvar, pharo"),
        ({"probe": {"default_profile": "java"}}, "probe.default_profile", "unknown profile 'java'"),
        # secrets
        ({"targets": [{"url": URL, "auth": {"bearer_token": "abc"}}]}, "targets[0].auth.bearer_token",
         "secrets are not accepted inline; put it in a file (bearer_token_file) or an environment variable (bearer_token_env)"),
        ({"targets": [{"url": URL, "auth": {"basic_auth": {"username": "u", "password": "abc"}}}]}, "targets[0].auth.basic_auth.password",
         "secrets are not accepted inline; put it in a file (password_file) or an environment variable (password_env)"),
        ({"probe": {"auth": {"bearer_token": "abc"}}}, "probe.auth.bearer_token", "secrets are not accepted inline"),
        ({"targets": [{"url": URL, "auth": {"bearer_token_file": "/nonexistent/token"}}]}, "targets[0].auth.bearer_token_file",
         "cannot read secret file /nonexistent/token: No such file or directory"),
        ({"targets": [{"url": URL, "auth": {"bearer_token_env": "PHAROS_TEST_UNSET_VARIABLE"}}]}, "targets[0].auth.bearer_token_env",
         "environment variable PHAROS_TEST_UNSET_VARIABLE (named as a secret source) is not set"),
        ({"targets": [{"url": URL, "auth": {"bearer_token_file": "/x", "bearer_token_env": "Y"}}]}, "targets[0].auth",
         "give bearer_token_file or bearer_token_env, not both"),
        ({"targets": [{"url": URL, "auth": {"basic_auth": {"password_env": "HOME"}}}]}, "targets[0].auth.basic_auth.username", "basic_auth needs a username"),
        ({"targets": [{"url": URL, "auth": {"bearer_token_env": "HOME", "basic_auth": {"username": "u"}}}]}, "targets[0].auth",
         "give bearer_token_* or basic_auth, not both"),
        # TLS
        ({"targets": [{"url": URL, "tls": {"ca_file": "/nonexistent/ca.pem"}}]}, "targets[0].tls.ca_file", "file /nonexistent/ca.pem does not exist"),
        ({"targets": [{"url": URL, "tls": {"insecure_skip_verify": "no"}}]}, "targets[0].tls.insecure_skip_verify", "expected bool"),
        # the probe allow-list
        ({"probe": {"allow": "10.0.0.0/8"}}, "probe.allow", "expected list, got str"),
        ({"probe": {"allow": [10]}}, "probe.allow[0]", "expected a string, got int"),
        ({"probe": {"allow": ["127.0.0.1/8", "10.0.0.0/33"]}}, "probe.allow[1]", "is not a network in CIDR notation"),
        ({"probe": {"allow": ["orders:8080"]}}, "probe.allow[0]", "a host entry has no port; to allow one port only, give a URL prefix like http://orders:8080/"),
        ({"probe": {"allow": ["ftp://orders/"]}}, "probe.allow[0]", "a URL prefix needs http:// or https:// and a host"),
        ({"probe": {"allow": [" "]}}, "probe.allow[0]", "empty allow-list entry"),
        ({"probe": {"allow": ["not a host"]}}, "probe.allow[0]", "is not a host name, a network in CIDR notation or a URL prefix"),
        ({"probe": {"max_targets_remembered": 0}}, "probe.max_targets_remembered", "must be greater than 0"),
        # declared route templates
        ({"targets": [{"url": URL, "routes": "/orders/{id}"}]}, "targets[0].routes", "expected list, got str"),
        ({"targets": [{"url": URL, "routes": [7]}]}, "targets[0].routes[0]", "expected a string like /orders/{id}, got int"),
        ({"targets": [{"url": URL, "routes": ["orders/{id}"]}]}, "targets[0].routes[0]", "a route template starts with /"),
        ({"targets": [{"url": URL, "routes": ["/orders/{id"]}]}, "targets[0].routes[0]", "placeholders are whole names in braces"),
        ({"probe": {"routes": ["/orders?id={id}"]}}, "probe.routes[0]", "a path only, without scheme, host or query"),
    ],
)
def test_every_mistake_names_file_key_path_and_problem(data, path, problem):
    message = error_of(data)
    where = f"{SOURCE}: {path}: " if path else f"{SOURCE}: "
    assert message.startswith(where), message
    assert problem in message, message


def test_a_tls_key_needs_a_certificate(tmp_path):
    key = tmp_path / "client.key"
    key.write_text("not really a key")
    message = error_of({"targets": [{"url": URL, "tls": {"key_file": str(key)}}]})
    assert message == f"{SOURCE}: targets[0].tls.key_file: a key_file needs a cert_file"


def test_a_secret_must_be_one_line_and_the_error_does_not_show_it(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("first-line-s3cr3t\nsecond-line\n")
    message = error_of({"targets": [{"url": URL, "auth": {"bearer_token_file": str(secret)}}]})
    assert message.startswith(f"{SOURCE}: targets[0].auth.bearer_token_file: ")
    assert "must be one line" in message and "s3cr3t" not in message


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "pharos.yml"
    path.write_text("listen: 0.0.0.0:9841\ntargets:\n  - url: http://a/stats\n    name: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: line ") and "not valid YAML" in message
    line = int(message.split("line ")[1].split(",")[0])
    assert line in (4, 5)  # the unclosed bracket, or where the parser noticed it


def test_an_unreadable_file_is_named(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(str(tmp_path / "missing.yml"))
    assert str(caught.value) == f"{tmp_path / 'missing.yml'}: cannot read the configuration file: No such file or directory"


def test_a_complete_file_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("PHAROS_TEST_TOKEN", "t0ken")
    path = tmp_path / "pharos.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "listen": "127.0.0.1:9999",
                "targets": [
                    {"name": "orders", "url": "http://127.0.0.1:8080/stats", "auth": {"bearer_token_env": "PHAROS_TEST_TOKEN"}},
                    {"name": "billing", "url": "http://127.0.0.1:8081/debug/vars", "profile": "go-expvar", "health": False},
                ],
                "probe": {"allow": ["127.0.0.0/8", "orders", "http://10.1.2.3:8080/stats"]},
                "limits": {"timeout_seconds": 5, "max_routes_per_target": 50},
            }
        )
    )
    config = load(str(path))
    assert [t.name for t in config.targets] == ["orders", "billing"]
    assert config.targets[0].auth.headers() == {"Authorization": "Bearer t0ken"}
    assert config.targets[1].profile == "go-expvar" and config.targets[1].health is False
    assert config.limits.timeout_seconds == 5.0 and config.limits.max_routes_per_target == 50
    assert config.probe.allow == ("127.0.0.0/8", "orders", "http://10.1.2.3:8080/stats")
    assert "t0ken" not in summary(config)


# --- environment variables and flags ----------------------------------------------------------
def parse_flags(argv: list[str]) -> argparse.Namespace:
    # add_arguments reads the environment when it builds the parser, as `pharos exporter` does.
    parser = argparse.ArgumentParser(prog="pharos exporter")
    add_arguments(parser)
    return parser.parse_args(argv)


def test_environment_variables_configure_a_sidecar(monkeypatch):
    monkeypatch.setenv("PHAROS_TARGET", "http://127.0.0.1:7000/debug/vars")
    monkeypatch.setenv("PHAROS_PROFILE", "go-expvar")
    monkeypatch.setenv("PHAROS_LISTEN", "127.0.0.1:9100")
    monkeypatch.setenv("PHAROS_PROBE_ALLOW", "10.0.0.0/8, orders ,http://127.0.0.1:8080/")
    config = build_config(parse_flags([]))
    (target,) = config.targets
    assert (target.url, target.profile) == ("http://127.0.0.1:7000/debug/vars", "go-expvar")
    assert config.listen == "127.0.0.1:9100"
    assert config.probe.allow == ("10.0.0.0/8", "orders", "http://127.0.0.1:8080/")


def test_flags_win_over_environment_variables(monkeypatch):
    monkeypatch.setenv("PHAROS_TARGET", "http://127.0.0.1:7000/stats")
    monkeypatch.setenv("PHAROS_PROBE_ALLOW", "10.0.0.0/8")
    config = build_config(parse_flags(["--target", "http://127.0.0.1:7001/stats", "--allow", "orders"]))
    assert config.targets[0].url == "http://127.0.0.1:7001/stats"
    assert config.probe.allow == ("orders",)


def test_environment_variables_add_to_the_file(tmp_path, monkeypatch):
    path = tmp_path / "pharos.yml"
    path.write_text(f"targets:\n  - name: a\n    url: {URL}\nprobe:\n  allow: [orders]\n")
    monkeypatch.setenv("PHAROS_CONFIG", str(path))
    monkeypatch.setenv("PHAROS_PROFILE", "stargate")
    monkeypatch.setenv("PHAROS_PROBE_ALLOW", "billing")
    config = build_config(parse_flags([]))
    assert config.source == str(path)
    assert config.targets[0].profile == "stargate"  # PHAROS_PROFILE applies to the file's targets
    assert config.probe.allow == ("orders", "billing")


@pytest.mark.parametrize(
    "variable,value,problem",
    [
        ("PHAROS_TARGET", "orders:8080", "--target: 'orders:8080' is not an http:// or https:// URL"),
        ("PHAROS_PROFILE", "pharoh", "--profile (or PHAROS_PROFILE): unknown profile 'pharoh'; known profiles: go-expvar, pharo, stargate"),
        ("PHAROS_LISTEN", "9841", "--listen: '9841' is not HOST:PORT"),
        ("PHAROS_PROBE_ALLOW", "10.0.0.0/8,10.0.0.0/99", "--allow: '10.0.0.0/99' is not a network in CIDR notation"),
        ("PHAROS_LOG_LEVEL", "loud", "--log-level (or PHAROS_LOG_LEVEL): 'loud' is not one of debug, info, warning, error"),
    ],
)
def test_bad_environment_variables_are_named(monkeypatch, variable, value, problem):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        build_config(parse_flags([]))
    assert str(caught.value).startswith(problem), str(caught.value)


# --- secrets end to end -----------------------------------------------------------------------
def test_secrets_reach_the_target_as_headers_and_never_the_logs(tmp_path, monkeypatch, caplog):
    token_file = tmp_path / "token"
    token_file.write_text("tok-FILE-5ecret\n")
    monkeypatch.setenv("PHAROS_TEST_PASSWORD", "pw-ENV-5ecret")

    def refuses(connection, server):
        read_request(connection, server)
        connection.sendall(http_response("401 Unauthorized", b"bad credentials", {"Content-Type": "text/plain"}))

    caplog.set_level(logging.DEBUG)  # every logger, urllib3's included
    with RawServer(refuses) as server:
        config = parse(
            {
                "targets": [
                    {"name": "bearer", "url": server.url(), "auth": {"bearer_token_file": str(token_file)}},
                    {"name": "basic", "url": server.url("/other"),
                     "auth": {"basic_auth": {"username": "monitor", "password_env": "PHAROS_TEST_PASSWORD"}}},
                ],
                "limits": {"timeout_seconds": 5},
            },
            SOURCE,
        )
        exporter = Exporter(config)
        try:
            outcomes = exporter.scrape_all(time.monotonic() + 5)
        finally:
            exporter.close()
    assert [o.reason for o in outcomes] == ["auth_failed", "auth_failed"]
    sent = sorted(request["headers"]["authorization"] for request in server.requests)
    assert sent == ["Basic bW9uaXRvcjpwdy1FTlYtNWVjcmV0", "Bearer tok-FILE-5ecret"]
    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    assert "auth_failed" in logged  # the failure is logged ...
    for secret in ("tok-FILE-5ecret", "pw-ENV-5ecret", "bW9uaXRvcjpwdy1FTlYtNWVjcmV0"):
        assert secret not in logged  # ... the secret is not
        assert secret not in repr(config) and secret not in summary(config)
