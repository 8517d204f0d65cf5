"""`--web.config.file`: TLS and basic auth for every endpoint, in exporter-toolkit's format.

The file Prometheus' own Go exporters read (prometheus/exporter-toolkit,
docs/web-configuration.md), with the keys that `promtool check web-config` (2.42) accepts:

    tls_server_config:
      cert_file: server.crt            # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # default NoClientCert
      client_ca_file: clients-ca.crt
      min_version: TLS12               # TLS10, TLS11, TLS12 (default), TLS13
      max_version: TLS13
      cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]   # Go's names; TLS 1.2 and below
      prefer_server_cipher_suites: true
      curve_preferences: [X25519]
    http_server_config:
      headers: {X-Content-Type-Options: nosniff}
    basic_auth_users:
      prometheus: $2y$10$...           # bcrypt: htpasswd -nBC 10 "" | tr -d ':\\n'

`load` checks what promtool checks - strict YAML (unknown keys, duplicate keys, wrong types),
bcrypt hashes, header names and values, the certificate, its key and the client CAs - and builds
the `ssl.SSLContext`. Where Python's `ssl` cannot do what Go's `crypto/tls` does, or the file
cannot work at all, it refuses instead of serving something else (see DIFFERENCES).
"""

from __future__ import annotations

import dataclasses
import os
import re
import ssl
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError
from ..yaml_file import load_yaml_file

CLIENT_AUTH_TYPES = {
    # exporter-toolkit's name -> Python's verify mode
    "NoClientCert": ssl.CERT_NONE,
    # Go asks for a certificate and never checks it: it authenticates nobody, so not asking is
    # the same outcome (Python's ssl cannot ask without verifying).
    "RequestClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNVERIFIED_CLIENT_AUTH = ("RequireAnyClientCert", "RequireClientCert")  # refused, see DIFFERENCES

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's tls.CipherSuites() (the ones Go considers secure) -> OpenSSL's names. TLS 1.3 suites are
# accepted and, as in Go, not configurable: every TLS 1.3 suite stays enabled.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": "",
    "TLS_AES_256_GCM_SHA384": "",
    "TLS_CHACHA20_POLY1305_SHA256": "",
}

CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}

# Headers exporter-toolkit lets a web config set, with the values it allows (None: any value).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}

DIFFERENCES = """\
Refused here although promtool 2.42 accepts them, because they cannot work as written:
- client_auth_type RequireAnyClientCert (and its old name RequireClientCert): a certificate
  that is required but never verified authenticates nobody, and Python's ssl cannot accept one
  unverified; use RequireAndVerifyClientCert with client_ca_file.
- a client_ca_file holding no certificate (newer exporter-toolkit releases refuse it too).
- min_version above max_version: no TLS version would be left.
Accepted with a narrower effect:
- curve_preferences: only the first (most preferred) curve is offered (Python's ssl sets one).
- http_server_config.http2: the exporter speaks HTTP/1.1, which every Prometheus speaks too."""

HASH_HINT = "make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"


class WebConfigError(ConfigError):
    """A problem in the web configuration file; the message names the file, the key and what to do."""


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: str = ""
    key_file: str = ""
    client_auth_type: str = ""  # "" is NoClientCert; kept as written, it decides whether TLS is on
    client_ca_file: str = ""
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        """Any TLS key set turns TLS on (exporter-toolkit's rule); then cert and key are required."""
        return bool(self.cert_file or self.key_file or self.client_auth_type or self.client_ca_file)

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(name for name in (self.cert_file, self.key_file, self.client_ca_file) if name)


@dataclass(frozen=True)
class RateLimitConfig:
    """exporter-toolkit's `rate_limit`: `burst` requests at once, then one per `interval`."""

    interval_seconds: float
    burst: int


@dataclass(frozen=True)
class WebConfig:
    source: str
    tls: TLSServerConfig = TLSServerConfig()
    http2: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    users: dict[str, str] = field(default_factory=dict)  # user name -> bcrypt hash
    context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)
    rate_limit: RateLimitConfig | None = None

    @property
    def files(self) -> tuple[str, ...]:
        """Every file this configuration was built from, itself first: a change in any of them
        means the configuration must be read again (a rotated certificate, say)."""
        return (self.source,) + self.tls.files

    def summary(self) -> str:
        tls = "off"
        if self.tls.enabled:
            tls = f"on ({self.tls.cert_file}; client certificates: {self.tls.client_auth_type or 'NoClientCert'})"
        users = ", ".join(sorted(self.users)) or "none (no basic auth)"
        return f"web configuration {self.source}: TLS {tls}; basic auth users: {users}"


# --- loading -----------------------------------------------------------------------------------
def load(path: str) -> WebConfig:
    """Read, validate and prepare the web configuration at `path`; WebConfigError otherwise."""
    # Strict as Go's yaml.UnmarshalStrict: a key given twice is refused (PyYAML keeps the last).
    return parse(load_yaml_file(path, "web configuration file", WebConfigError), path)


def parse(data: Any, source: str) -> WebConfig:
    reader = _Reader(source)
    data = reader.mapping(data, "", {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"})
    tls = _tls_server_config(reader, data.get("tls_server_config"), os.path.dirname(source))
    http = reader.mapping(data.get("http_server_config"), "http_server_config", {"http2", "headers"})
    config = WebConfig(
        source=source,
        tls=tls,
        http2=reader.boolean(http, "http2", "http_server_config", True),
        headers=_headers(reader, http.get("headers")),
        users=_users(reader, data.get("basic_auth_users")),
        rate_limit=_rate_limit(reader, data.get("rate_limit")),
    )
    if not tls.enabled:
        return config
    return dataclasses.replace(config, context=_context(reader, tls))


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")


def _rate_limit(reader: _Reader, value: Any) -> RateLimitConfig | None:
    """`rate_limit: {interval: 1s, burst: 10}` (newer exporter-toolkit; promtool 2.42 predates it).
    Absent, or an interval of 0, means no limit, as in exporter-toolkit."""
    path = "rate_limit"
    if value is None:
        return None
    data = reader.mapping(value, path, {"interval", "burst"})
    interval_text = _scalar_text(data.get("interval", "0s"))
    match = _DURATION.match(interval_text)
    if not interval_text or not match or not any(match.groups()):
        raise reader.fail(_join(path, "interval"), f"{interval_text[:40]!r} is not a duration such as 1s, 500ms or 1m")
    hours, minutes, seconds, millis = (int(group or 0) for group in match.groups())
    interval = hours * 3600 + minutes * 60 + seconds + millis / 1000
    burst = data.get("burst", 0)
    if not isinstance(burst, int) or isinstance(burst, bool) or burst < 0:
        raise reader.fail(_join(path, "burst"), f"expected a whole number of requests (0 or more), got {burst!r}")
    if interval == 0:
        return None
    if burst == 0:
        raise reader.fail(_join(path, "burst"), "a rate limit with burst 0 refuses every request; set burst to 1 or more")
    return RateLimitConfig(interval, burst)


def _tls_server_config(reader: _Reader, value: Any, directory: str) -> TLSServerConfig:
    path = "tls_server_config"
    data = reader.mapping(value, path, set(TLSServerConfig.__dataclass_fields__))

    def file(key: str) -> str:
        name = reader.string(data, key, path)
        return os.path.join(directory, name) if name and not os.path.isabs(name) else name

    tls = TLSServerConfig(
        cert_file=file("cert_file"),
        key_file=file("key_file"),
        client_auth_type=reader.string(data, "client_auth_type", path),
        client_ca_file=file("client_ca_file"),
        min_version=reader.string(data, "min_version", path) or "TLS12",
        max_version=reader.string(data, "max_version", path) or "TLS13",
        cipher_suites=reader.strings(data, "cipher_suites", path),
        prefer_server_cipher_suites=reader.boolean(data, "prefer_server_cipher_suites", path, True),
        curve_preferences=reader.strings(data, "curve_preferences", path),
    )
    for key, known in (("min_version", TLS_VERSIONS), ("max_version", TLS_VERSIONS)):
        if getattr(tls, key) not in known:
            raise reader.fail(_join(path, key), f"unknown TLS version {getattr(tls, key)!r}; known: {', '.join(known)}")
    for index, name in enumerate(tls.cipher_suites):
        if name not in CIPHER_SUITES:
            raise reader.fail(f"{path}.cipher_suites[{index}]", f"unknown cipher {name!r}; known (Go's names): {', '.join(CIPHER_SUITES)}")
    for index, name in enumerate(tls.curve_preferences):
        if name not in CURVES:
            raise reader.fail(f"{path}.curve_preferences[{index}]", f"unknown curve {name!r}; known: {', '.join(CURVES)}")
    if not tls.enabled:
        return tls
    if not tls.cert_file:
        raise reader.fail(_join(path, "cert_file"), "missing; TLS needs cert_file and key_file (PEM files)")
    if not tls.key_file:
        raise reader.fail(_join(path, "key_file"), "missing; TLS needs cert_file and key_file (PEM files)")
    mode = tls.client_auth_type or "NoClientCert"
    if mode in UNVERIFIED_CLIENT_AUTH:
        raise reader.fail(
            _join(path, "client_auth_type"),
            f"{mode} accepts any client certificate without verifying it, which authenticates nobody; "
            "use RequireAndVerifyClientCert with client_ca_file",
        )
    if mode not in CLIENT_AUTH_TYPES:
        known = ", ".join([*CLIENT_AUTH_TYPES, *UNVERIFIED_CLIENT_AUTH])
        raise reader.fail(_join(path, "client_auth_type"), f"invalid client auth type {mode!r}; known: {known}")
    if tls.client_ca_file and mode == "NoClientCert":
        raise reader.fail(
            _join(path, "client_ca_file"),
            "client CAs are configured without a client auth policy; set client_auth_type: RequireAndVerifyClientCert",
        )
    if TLS_VERSIONS[tls.min_version] > TLS_VERSIONS[tls.max_version]:
        raise reader.fail(_join(path, "min_version"), f"{tls.min_version} is above max_version {tls.max_version}: no TLS version is left")
    return tls


def _context(reader: _Reader, tls: TLSServerConfig) -> ssl.SSLContext:
    """The server's SSLContext; reading the files here is what validates them."""
    path = "tls_server_config"
    for key in ("cert_file", "key_file", "client_ca_file"):
        name = getattr(tls, key)
        if name:
            try:
                with open(name, "rb") as handle:
                    handle.read(1)
            except OSError as error:
                raise reader.fail(_join(path, key), f"cannot read {name}: {error.strerror}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except ssl.SSLError as error:
        problem = "the key does not match the certificate" if "KEY_VALUES_MISMATCH" in str(error) else (
            "not a PEM certificate and PEM private key (are the two files swapped?)"
        )
        raise reader.fail(_join(path, "cert_file"), f"cannot load {tls.cert_file} with {tls.key_file}: {problem} ({error.reason or error})") from None
    openssl_names = [CIPHER_SUITES[name] for name in tls.cipher_suites if CIPHER_SUITES[name]]
    if openssl_names:
        try:
            context.set_ciphers(":".join(openssl_names))
        except ssl.SSLError as error:
            raise reader.fail(_join(path, "cipher_suites"), f"OpenSSL offers none of these: {error.reason or error}") from None
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.curve_preferences:
        context.set_ecdh_curve(CURVES[tls.curve_preferences[0]])
    context.verify_mode = CLIENT_AUTH_TYPES[tls.client_auth_type or "NoClientCert"]
    if tls.client_ca_file:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except ssl.SSLError as error:
            raise reader.fail(
                _join(path, "client_ca_file"), f"{tls.client_ca_file} holds no PEM CA certificate ({error.reason or error})"
            ) from None
    elif context.verify_mode != ssl.CERT_NONE:
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # Go's default too: the system's CAs
    return context


def _headers(reader: _Reader, value: Any) -> tuple[tuple[str, str], ...]:
    path = "http_server_config.headers"
    data = reader.mapping(value, path, None)
    headers = []
    for name in data:
        text = reader.string(data, name, path)
        if name not in HEADERS:
            raise reader.fail(_join(path, name), f"HTTP header {name!r} can not be configured; these can: {', '.join(HEADERS)}")
        allowed = HEADERS[name]
        if allowed is not None and text not in allowed:
            raise reader.fail(_join(path, name), f"invalid value {text!r}; expected one of: {', '.join(allowed)}")
        if any(ord(character) < 32 for character in text):
            raise reader.fail(_join(path, name), "a header value must be one line")
        if text:  # blank: unset, as in exporter-toolkit
            headers.append((name, text))
    return tuple(headers)


def _users(reader: _Reader, value: Any) -> dict[str, str]:
    path = "basic_auth_users"
    data = reader.mapping(value, path, None)
    users = {}
    for name in data:
        hashed = reader.string(data, name, path)
        problem = bcrypt_hash_problem(hashed)
        if problem:
            raise reader.fail(_join(path, name), f"not a bcrypt hash: {problem}; {HASH_HINT}")
        users[name] = hashed
    return users


def bcrypt_hash_problem(hashed: str) -> str:
    """Go's bcrypt.Cost, which is what exporter-toolkit and promtool check: '' when usable."""
    if len(hashed) < 59:
        return "too short"
    if hashed[0] != "$":
        return f"a bcrypt hash starts with '$', this one with {hashed[0]!r}"
    if hashed[1] > "2":
        return f"bcrypt version {hashed[1]!r} is newer than version 2"
    cost_at = 3 if hashed[2] == "$" else 4
    cost = hashed[cost_at : cost_at + 2]
    if not re.fullmatch(r"[+-]?\d+", cost):
        return f"the cost {cost!r} is not a number"
    if not 4 <= int(cost) <= 31:
        return f"the cost {int(cost)} is outside the allowed range 4 to 31"
    return ""


class _Reader:
    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, problem: str) -> WebConfigError:
        return WebConfigError(f"{self.source}: {path}: {problem}" if path else f"{self.source}: {problem}")

    def mapping(self, value: Any, path: str, known: set[str] | None) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_kind(value)}")
        # Go's YAML decoder turns scalar keys into strings (a user called 12 is "12").
        data = {_scalar_text(key): item for key, item in value.items()}
        if known is not None:
            unknown = sorted(key for key in data if key not in known)
            if unknown:
                raise self.fail(_join(path, unknown[0]), f"unknown key; known keys here: {', '.join(sorted(known))}")
        return data

    def string(self, data: dict, key: str, path: str) -> str:
        value = data.get(key)
        if value is None:
            return ""
        if isinstance(value, (dict, list)):
            raise self.fail(_join(path, key), f"expected a string, got {_kind(value)}")
        return _scalar_text(value)

    def strings(self, data: dict, key: str, path: str) -> tuple[str, ...]:
        value = data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(_join(path, key), f"expected a list, got {_kind(value)}")
        for index, item in enumerate(value):
            if isinstance(item, (dict, list)) or item is None:
                raise self.fail(f"{_join(path, key)}[{index}]", f"expected a string, got {_kind(item)}")
        return tuple(_scalar_text(item) for item in value)

    def boolean(self, data: dict, key: str, path: str, default: bool) -> bool:
        value = data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(_join(path, key), f"expected true or false, got {value!r}")
        return value


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(type(value), f"{type(value).__name__} {value!r}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
