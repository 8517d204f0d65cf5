"""A module's HTTP settings: json_exporter's `http_client_config`, `headers` and
`valid_status_codes`, translated onto the exporter's own `Auth` and `TLS`.

`http_client_config` is Prometheus' common HTTP client configuration. The exporter implements the
parts a stats endpoint needs; every other key is refused by name, so a setting never silently
does nothing. As everywhere in Pharos, secrets are never accepted inline: `password`,
`credentials`, `bearer_token` and an `Authorization` header must come from a file (`*_file`,
json_exporter's own keys) or an environment variable (`*_env`, a Pharos addition).
"""

from __future__ import annotations

import logging
from typing import Any

from ..config import Auth, ConfigError, Secret, TLS, read_secret as _secret, read_tls
from .schema_reader import Reader

log = logging.getLogger("pharos.exporter")

# Keys of Prometheus' HTTPClientConfig that Pharos does not implement, and why.
_UNSUPPORTED = {
    "oauth2": "OAuth 2 client credentials are not supported; use authorization.credentials_file with a token",
    "proxy_url": "the exporter connects to targets directly, without a proxy",
    "no_proxy": "the exporter connects to targets directly, without a proxy",
    "proxy_from_environment": "the exporter connects to targets directly, without a proxy",
    "proxy_connect_header": "the exporter connects to targets directly, without a proxy",
    "http_headers": "use the module's `headers` (non-secret values only)",
}
_CLIENT_KEYS = {"basic_auth", "authorization", "bearer_token", "bearer_token_file", "bearer_token_env", "tls_config", "follow_redirects", "enable_http2", *_UNSUPPORTED}
_TLS_UNSUPPORTED = {
    "server_name": "SNI overrides are not supported; use the name the certificate is issued to in the target URL",
    "min_version": "the TLS version is negotiated by Python's ssl defaults (TLS 1.2 or later)",
    "max_version": "the TLS version is negotiated by Python's ssl defaults (TLS 1.2 or later)",
    "ca": "give the CA certificate as a file (ca_file)",
    "cert": "give the client certificate as a file (cert_file)",
    "key": "a private key is a secret: give it as a file (key_file)",
}
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key"}


def parse_client(reader: Reader, value: Any, path: str) -> tuple[Auth | None, TLS | None]:
    """`http_client_config` as the exporter's Auth and TLS, each None when the module does not
    set it (the exporter's probe settings apply then); secret files are read once now, so a
    missing file fails at start rather than at the first scrape."""
    data = reader.mapping(value, path, _CLIENT_KEYS)
    for key, why in _UNSUPPORTED.items():
        if key in data:
            raise reader.fail(f"{path}.{key}", f"not supported by Pharos: {why}")
    if data.get("follow_redirects"):
        log.info("%s: %s.follow_redirects: Pharos never follows redirects (a redirect fails the scrape, naming its Location)", reader.source, path)
    reader.typed(data, "follow_redirects", path, bool, True)
    reader.typed(data, "enable_http2", path, bool, False)  # the exporter speaks HTTP/1.1; nothing to do
    bearer = _bearer(reader, data, path)
    username, password = "", Secret()
    if "basic_auth" in data:
        username, password = _basic_auth(reader, data["basic_auth"], f"{path}.basic_auth")
    if bearer and username:
        raise reader.fail(path, "give basic_auth or a bearer token (authorization / bearer_token_file), not both")
    auth = Auth(bearer, username, password)
    try:
        auth.check()
    except ConfigError as error:
        raise reader.fail(path, str(error)) from None
    tls = read_tls(reader, data.get("tls_config"), f"{path}.tls_config", _TLS_UNSUPPORTED)
    return (auth if bearer or username else None), (tls if data.get("tls_config") is not None else None)


def _bearer(reader: Reader, data: dict, path: str) -> Secret:
    legacy = _secret(reader, data, "bearer_token", path)
    if "authorization" not in data:
        return legacy
    auth_path = f"{path}.authorization"
    authorization = reader.mapping(data["authorization"], auth_path, {"type", "credentials", "credentials_file", "credentials_env"})
    kind = reader.typed(authorization, "type", auth_path, str, "Bearer")
    if kind.lower() != "bearer":
        raise reader.fail(f"{auth_path}.type", f"only the Bearer type is supported, got {kind!r}")
    token = _secret(reader, authorization, "credentials", auth_path)
    if not token:
        raise reader.fail(auth_path, "give credentials_file (or credentials_env) with the token")
    if legacy:
        raise reader.fail(path, "give authorization or bearer_token_file, not both")
    return token


def _basic_auth(reader: Reader, value: Any, path: str) -> tuple[str, Secret]:
    data = reader.mapping(value, path, {"username", "username_file", "password", "password_file", "password_env"})
    if "username_file" in data:
        raise reader.fail(f"{path}.username_file", "not supported by Pharos: give the username itself (it is not a secret)")
    username = reader.typed(data, "username", path, str, "")
    if not username:
        raise reader.fail(f"{path}.username", "basic_auth needs a username")
    return username, _secret(reader, data, "password", path)


def parse_headers(reader: Reader, value: Any, path: str) -> dict[str, str]:
    data = reader.mapping(value, path, None)
    headers: dict[str, str] = {}
    for name, header in data.items():
        if not isinstance(name, str) or not name:
            raise reader.fail(path, f"header names must be strings, got {name!r}")
        if name.lower() in _SECRET_HEADERS:
            raise reader.fail(
                f"{path}.{name}",
                "secrets are not accepted inline; use http_client_config.authorization.credentials_file "
                "(or basic_auth.password_file) instead of this header",
            )
        if not isinstance(header, (str, int, float)) or isinstance(header, bool):
            raise reader.fail(f"{path}.{name}", f"expected a string, got {type(header).__name__}")
        headers[name] = str(header)
    return headers


def parse_statuses(reader: Reader, value: Any, path: str) -> frozenset[int]:
    """`valid_status_codes`; json_exporter's default is any 2xx."""
    if value is None:
        return frozenset(range(200, 300))
    if not isinstance(value, list) or not value:
        raise reader.fail(path, "expected a non-empty list of HTTP status codes, e.g. [200, 503]")
    codes = set()
    for index, code in enumerate(value):
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            raise reader.fail(f"{path}[{index}]", f"expected an HTTP status code between 100 and 599, got {code!r}")
        codes.add(code)
    return frozenset(codes)
