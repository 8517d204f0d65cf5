"""How Prometheus reaches exporters that serve TLS and/or basic auth (`--web.config.file`).

In the stack file, at the top level (every environment) or inside one environment (replacing the
top-level section of the same name):

    exporter_tls:                      # scrape Pharos exporters over https
      ca_file: /etc/prometheus/secrets/exporter-ca.crt
      server_name: pharos-exporter     # the name in the exporter's certificate, when not the address
      cert_file: /etc/prometheus/secrets/prometheus.crt   # when the exporters require client certificates
      key_file: /etc/prometheus/secrets/prometheus.key
    exporter_auth:
      username: prometheus
      password_file: /etc/prometheus/secrets/exporter_password

They apply to every job that scrapes a Pharos exporter (sidecars, the multi-target exporter and
its own metrics), never to Prometheus' or Alertmanager's own jobs. The password is only ever a
file path: Prometheus reads the file at each scrape.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

TLS_KEY = "exporter_tls"
AUTH_KEY = "exporter_auth"


@dataclass(frozen=True)
class ExporterTLS:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class ExporterAuth:
    username: str
    password_file: str


@dataclass(frozen=True)
class ExporterAccess:
    tls: ExporterTLS | None = None
    auth: ExporterAuth | None = None

    def scrape_settings(self) -> dict:
        """`scheme`, `tls_config` and `basic_auth` of a Prometheus scrape config, in that order."""
        settings: dict = {}
        if self.tls is not None:
            settings["scheme"] = "https"
            tls = {key: value for key, value in vars(self.tls).items() if value}
            if tls:
                settings["tls_config"] = tls
        if self.auth is not None:
            settings["basic_auth"] = {"username": self.auth.username, "password_file": self.auth.password_file}
        return settings


def read(reader, data: dict, path: str, inherited: ExporterAccess = ExporterAccess()) -> ExporterAccess:
    """The sections in `data` (a stack-file mapping at `path`), each replacing the inherited one.
    `reader` is the stack file's reader (fail, mapping, string, boolean)."""
    tls, auth = inherited.tls, inherited.auth
    if TLS_KEY in data:
        tls = _tls(reader, data[TLS_KEY], _join(path, TLS_KEY))
    if AUTH_KEY in data:
        auth = _auth(reader, data[AUTH_KEY], _join(path, AUTH_KEY))
    return ExporterAccess(tls, auth)


def _tls(reader, value: Any, path: str) -> ExporterTLS:
    data = reader.mapping(value, path, {"ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify"})
    tls = ExporterTLS(
        ca_file=reader.string(data, "ca_file", path, "", _absolute),
        cert_file=reader.string(data, "cert_file", path, "", _absolute),
        key_file=reader.string(data, "key_file", path, "", _absolute),
        server_name=reader.string(data, "server_name", path, ""),
        insecure_skip_verify=reader.boolean(data, "insecure_skip_verify", path, False),
    )
    if bool(tls.cert_file) != bool(tls.key_file):
        missing = "key_file" if tls.cert_file else "cert_file"
        raise reader.fail(_join(path, missing), "missing; a client certificate needs both cert_file and key_file")
    return tls


def _auth(reader, value: Any, path: str) -> ExporterAuth:
    data = reader.mapping(value, path, {"username", "password", "password_file"})
    if "password" in data:
        raise reader.fail(_join(path, "password"), "secrets are not accepted inline; put it in a file and give its path as password_file")
    return ExporterAuth(
        username=reader.string(data, "username", path),
        password_file=reader.string(data, "password_file", path, None, _absolute),
    )


def _absolute(value: str) -> str:
    if not os.path.isabs(value):
        return f"{value!r} is not an absolute path (Prometheus would look for it beside prometheus.yml, not beside the stack file)"
    return ""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
