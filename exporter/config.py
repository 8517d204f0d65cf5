"""The exporter's configuration: one YAML file, overridable by flags and environment variables.

Every problem is reported as `ConfigError` naming the file, the key path and what to do, e.g.
`pharos.yml: targets[0].profile: unknown profile 'pharoh'; known profiles: go-expvar, pharo, stargate`.
Secrets are never accepted inline: passwords and tokens come from files or environment variables.
"""

from __future__ import annotations

import math
import os
import re
import ssl
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from .container_stats import DEFAULT_INTERVAL_SECONDS as CONTAINER_STATS_INTERVAL_SECONDS, DEFAULT_WORKERS as CONTAINER_STATS_WORKERS
from .routes import check_route_template
from .swarm import ALL as SWARM_SCOPE_ALL, check_scope as check_swarm_scope
from .yaml_file import load_yaml_file, regular_file_problem, shown

DEFAULT_LISTEN = "0.0.0.0:9841"
DEFAULT_PROFILE = "pharo"


class ConfigError(ValueError):
    """A configuration problem; the message names where and what."""


# --- secrets ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Secret:
    """A secret read, when needed, from a file or an environment variable; never stored inline."""

    file: str = ""
    env: str = ""

    def read(self) -> str:
        value = self._read()
        # A line break would end the HTTP header early; the message must not show the value.
        if any(ord(character) < 32 or ord(character) == 127 for character in value):
            raise ConfigError(f"the secret in {self.describe()} holds a line break or control character; it must be one line")
        return value

    def _read(self) -> str:
        if self.file:
            problem = regular_file_problem(self.file)
            if problem.startswith("it is "):  # a FIFO would block the read for ever
                raise ConfigError(f"cannot read secret file {self.file}: {problem}")
            try:
                with open(self.file, encoding="utf-8") as handle:
                    return handle.read().strip()
            except OSError as error:
                raise ConfigError(f"cannot read secret file {self.file}: {error.strerror}") from None
            except UnicodeDecodeError:
                raise ConfigError(f"secret file {self.file} is not UTF-8 text") from None
        if self.env:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"environment variable {self.env} (named as a secret source) is not set")
            return value.strip()
        return ""

    def __bool__(self) -> bool:
        return bool(self.file or self.env)

    def describe(self) -> str:
        return f"file {self.file}" if self.file else f"environment variable {self.env}"


@dataclass(frozen=True)
class Auth:
    """Credentials the exporter sends to a target: bearer token or basic auth."""

    bearer_token: Secret = Secret()
    username: str = ""
    password: Secret = Secret()

    def headers(self) -> dict[str, str]:
        if self.bearer_token:
            return {"Authorization": "Bearer " + self.bearer_token.read()}
        if self.username:
            import base64

            pair = f"{self.username}:{self.password.read()}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        return {}

    def check(self) -> None:
        """Read every secret once, so that a missing file fails at start, not at the first scrape."""
        self.headers()


@dataclass(frozen=True)
class TLS:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False

    def verify_argument(self) -> bool | str:
        if self.insecure_skip_verify:
            return False
        return self.ca_file or True


# --- the configuration -----------------------------------------------------------------------
@dataclass(frozen=True)
class Process:
    pid: int = 0
    pid_file: str = ""
    name: str = ""

    def __bool__(self) -> bool:
        return bool(self.pid or self.pid_file or self.name)


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    profile: str = DEFAULT_PROFILE
    auth: Auth = Auth()
    tls: TLS = TLS()
    health: bool = True  # also call the profile's health-check endpoint, where it has one
    process: Process = Process()
    routes: tuple[str, ...] = ()  # declared route templates (/orders/{id}): they beat guessing
    application_info: bool = False  # also read the profile's application-info endpoint (stargate)


@dataclass(frozen=True)
class Limits:
    timeout_seconds: float = 10.0
    # Subtracted from Prometheus' X-Prometheus-Scrape-Timeout-Seconds, so the exporter answers
    # (with success 0) before Prometheus gives up on it.
    timeout_margin_seconds: float = 0.5
    max_response_bytes: int = 16 * 1024 * 1024
    max_routes_per_target: int = 200
    max_concurrent_scrapes: int = 128  # shared fairly between targets (exporter/slots.py)
    max_concurrent_per_target: int = 4
    # What one target's document may add (docs/reliability.md, "Bounded output from any input").
    max_series_per_target: int = 20_000
    max_label_value_length: int = 256


@dataclass(frozen=True)
class Probe:
    """Multi-target mode: which targets `/probe` may contact, and how."""

    allow: tuple[str, ...] = ()
    default_profile: str = DEFAULT_PROFILE
    auth: Auth = Auth()
    tls: TLS = TLS()
    health: bool = True
    max_targets_remembered: int = 10000  # route tables kept for so many distinct targets
    routes: tuple[str, ...] = ()  # route templates declared for every probed target


@dataclass(frozen=True)
class Swarm:
    """The opt-in Docker Swarm collector (exporter/swarm.py): the swarm state on a manager, the
    task containers on every node, or both (`scope`: all, state or containers)."""

    enabled: bool = False
    docker_host: str = ""  # "" = DOCKER_HOST, else unix:///var/run/docker.sock
    # Task containers' CPU, memory and network, read in the background (exporter/container_stats.py).
    container_stats_interval_seconds: float = CONTAINER_STATS_INTERVAL_SECONDS
    container_stats_workers: int = CONTAINER_STATS_WORKERS
    scope: str = SWARM_SCOPE_ALL


@dataclass(frozen=True)
class Config:
    listen: str = DEFAULT_LISTEN
    targets: tuple[Target, ...] = ()
    probe: Probe = Probe()
    limits: Limits = Limits()
    swarm: Swarm = Swarm()
    source: str = "<defaults>"
    modules: Mapping[str, Any] = field(default_factory=dict)  # json mapping modules by name


# --- loading and validation ------------------------------------------------------------------
class _Reader:
    """Walks a parsed YAML mapping, naming the file and key path in every error."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, problem: str) -> ConfigError:
        where = f"{self.source}: {path}" if path else self.source
        return ConfigError(f"{where}: {problem}")

    def mapping(self, value: Any, path: str, known: set[str]) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__}")
        unknown = sorted(str(key) for key in value if key not in known)
        if unknown:
            raise self.fail(_join(path, unknown[0]), f"unknown key; known keys here: {', '.join(sorted(known))}")
        return value

    def typed(self, data: dict, key: str, path: str, kind: type | tuple, default: Any, check: Callable[[Any], str] | None = None) -> Any:
        if key not in data or data[key] is None:
            return default
        value = data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(_join(path, key), f"expected {names}, got {type(value).__name__} {shown(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(_join(path, key), f"must be a finite number, got {value}")
        if check is not None:
            problem = check(value)
            if problem:
                raise self.fail(_join(path, key), problem)
        return value


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _positive(value) -> str:
    return "" if value > 0 else f"must be greater than 0, got {value}"


def _non_negative(value) -> str:
    return "" if value >= 0 else f"must not be negative, got {value}"


def check_url(url: str) -> str:
    """A problem with a target URL, or ''."""
    if any(character.isspace() or ord(character) < 32 for character in url):
        return f"{shown(url)} contains whitespace or control characters"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"{shown(url)} is not an http:// or https:// URL"
    if "@" in parts.netloc:
        # Credentials in a URL end up in logs and on landing pages.
        return "credentials in the URL are not accepted; use auth.basic_auth with password_file or password_env"
    if not parts.hostname:
        return f"{shown(url)} has no host"
    try:
        port = parts.port
    except ValueError:
        return f"{shown(url)} has an invalid port"
    if port == 0:
        return f"{shown(url)} has port 0, which no server listens on; give the target's port, or none for the scheme's default"
    return ""


def check_listen(listen: str) -> str:
    host, colon, port = listen.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) < 65536:
        return f"{shown(listen)} is not HOST:PORT with a port between 0 (any free port) and 65535, e.g. 0.0.0.0:9841 or :9841"
    return ""


def read_secret(reader: _Reader, data: dict, base: str, path: str) -> Secret:
    """`base_file` or `base_env` of `data`; `base` itself (the secret inline) is refused."""
    file_key, env_key = f"{base}_file", f"{base}_env"
    if data.get(base) not in (None, ""):
        raise reader.fail(
            _join(path, base),
            f"secrets are not accepted inline; put it in a file ({file_key}) or an environment variable ({env_key})",
        )
    secret = Secret(
        reader.typed(data, file_key, path, str, ""),
        reader.typed(data, env_key, path, str, ""),
    )
    if secret.file and secret.env:
        raise reader.fail(path, f"give {file_key} or {env_key}, not both")
    try:
        secret.read()  # a missing file fails at start, not at the first scrape
    except ConfigError as error:
        raise reader.fail(_join(path, file_key if secret.file else env_key), str(error)) from None
    return secret


def _auth(reader: _Reader, value: Any, path: str) -> Auth:
    data = reader.mapping(
        value,
        path,
        {"bearer_token_file", "bearer_token_env", "bearer_token", "basic_auth"},
    )
    bearer = read_secret(reader, data, "bearer_token", path)
    username, password = "", Secret()
    if "basic_auth" in data:
        basic_path = _join(path, "basic_auth")
        basic = reader.mapping(data["basic_auth"], basic_path, {"username", "password", "password_file", "password_env"})
        username = reader.typed(basic, "username", basic_path, str, "")
        if not username:
            raise reader.fail(_join(basic_path, "username"), "basic_auth needs a username")
        password = read_secret(reader, basic, "password", basic_path)
    if bearer and username:
        raise reader.fail(path, "give bearer_token_* or basic_auth, not both")
    return Auth(bearer, username, password)


def read_tls(reader: _Reader, value: Any, path: str, unsupported: Mapping[str, str] | None = None) -> TLS:
    """TLS options of a target; keys in `unsupported` (key -> why) are refused, naming the reason."""
    unsupported = unsupported or {}
    data = reader.mapping(value, path, {"ca_file", "cert_file", "key_file", "insecure_skip_verify", *unsupported})
    for key, why in unsupported.items():
        if key in data:
            raise reader.fail(_join(path, key), f"not supported by Pharos: {why}")
    tls = TLS(
        reader.typed(data, "ca_file", path, str, ""),
        reader.typed(data, "cert_file", path, str, ""),
        reader.typed(data, "key_file", path, str, ""),
        reader.typed(data, "insecure_skip_verify", path, bool, False),
    )
    for key in ("ca_file", "cert_file", "key_file"):
        name = getattr(tls, key)
        if name and not os.path.exists(name):
            raise reader.fail(_join(path, key), f"file {name} does not exist")
        problem = regular_file_problem(name) if name else ""
        if problem:
            raise reader.fail(_join(path, key), f"cannot use {name}: {problem}")
    if tls.key_file and not tls.cert_file:
        raise reader.fail(_join(path, "key_file"), "a key_file needs a cert_file")
    _check_certificates(reader, tls, path)
    return tls


def _check_certificates(reader: _Reader, tls: TLS, path: str) -> None:
    """Load the files as the client will, so that a wrong file fails at start, naming itself."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.ca_file:
        try:
            context.load_verify_locations(cafile=tls.ca_file)
        except (ssl.SSLError, ValueError) as error:
            raise reader.fail(_join(path, "ca_file"), f"{tls.ca_file} holds no PEM CA certificate ({_ssl_reason(error)})") from None
    if tls.cert_file:
        try:
            # An encrypted key would make OpenSSL ask for its password on the terminal.
            context.load_cert_chain(tls.cert_file, tls.key_file or None, password=lambda: b"")
        except (ssl.SSLError, ValueError) as error:
            key = f" with {tls.key_file}" if tls.key_file else ""
            problem = "the key does not match the certificate" if "KEY_VALUES_MISMATCH" in str(error) else (
                "not a PEM certificate and its unencrypted PEM private key"
            )
            raise reader.fail(_join(path, "cert_file"), f"cannot load {tls.cert_file}{key}: {problem} ({_ssl_reason(error)})") from None


def _ssl_reason(error: Exception) -> str:
    return str(getattr(error, "reason", None) or error).splitlines()[0][:120]


def _profile_name(reader: _Reader, data: dict, key: str, path: str, default: str) -> str:
    from .profiles import PROFILES

    name = reader.typed(data, key, path, str, default)
    if name not in PROFILES:
        raise reader.fail(_join(path, key), f"unknown profile {shown(name)}; known profiles: {', '.join(sorted(PROFILES))}")
    return name


_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


def _target(reader: _Reader, value: Any, path: str, index: int) -> Target:
    data = reader.mapping(value, path, {"name", "url", "profile", "auth", "tls", "health", "process", "routes", "application_info"})
    url = reader.typed(data, "url", path, str, "", check_url)
    if not url:
        raise reader.fail(_join(path, "url"), "every target needs a url, e.g. http://127.0.0.1:8080/stats")
    name = reader.typed(data, "name", path, str, f"target{index}" if index else "app")
    if not _NAME.match(name):
        raise reader.fail(_join(path, "name"), f"{shown(name)} may only hold letters, digits and _.:-")
    process_path = _join(path, "process")
    process_data = reader.mapping(data.get("process"), process_path, {"pid", "pid_file", "name"})
    process = Process(
        reader.typed(process_data, "pid", process_path, int, 0, _non_negative),
        reader.typed(process_data, "pid_file", process_path, str, ""),
        reader.typed(process_data, "name", process_path, str, ""),
    )
    profile = _profile_name(reader, data, "profile", path, DEFAULT_PROFILE)
    return Target(
        name=name,
        url=url,
        profile=profile,
        auth=_auth(reader, data.get("auth"), _join(path, "auth")),
        tls=read_tls(reader, data.get("tls"), _join(path, "tls")),
        health=reader.typed(data, "health", path, bool, True),
        process=process,
        routes=_routes(reader, data, path),
        application_info=_application_info(reader, data, path, profile),
    )


def _application_info(reader: _Reader, data: dict, path: str, profile: str) -> bool:
    from .profiles import PROFILES

    enabled = reader.typed(data, "application_info", path, bool, False)
    if enabled and PROFILES[profile].info is None:
        having = ", ".join(sorted(name for name, each in PROFILES.items() if each.info is not None))
        raise reader.fail(
            _join(path, "application_info"),
            f"profile {shown(profile)} has no application-info endpoint; remove the key, or use a profile that has one ({having})",
        )
    return enabled


def _routes(reader: _Reader, data: dict, path: str) -> tuple[str, ...]:
    """`routes`: route templates such as /orders/{id}, each `{name}` standing for one segment."""
    routes = reader.typed(data, "routes", path, list, [])
    for index, entry in enumerate(routes):
        if not isinstance(entry, str):
            raise reader.fail(_join(_join(path, "routes"), index), f"expected a string like /orders/{{id}}, got {type(entry).__name__}")
        problem = check_route_template(entry)
        if problem:
            raise reader.fail(_join(_join(path, "routes"), index), problem)
    return tuple(routes)


def _limits(reader: _Reader, value: Any, path: str) -> Limits:
    defaults = Limits()
    known = set(Limits.__dataclass_fields__)
    data = reader.mapping(value, path, known)
    return Limits(
        timeout_seconds=reader.typed(data, "timeout_seconds", path, float, defaults.timeout_seconds, _positive),
        timeout_margin_seconds=reader.typed(data, "timeout_margin_seconds", path, float, defaults.timeout_margin_seconds, _non_negative),
        max_response_bytes=reader.typed(data, "max_response_bytes", path, int, defaults.max_response_bytes, _positive),
        max_routes_per_target=reader.typed(data, "max_routes_per_target", path, int, defaults.max_routes_per_target, _positive),
        max_concurrent_scrapes=reader.typed(data, "max_concurrent_scrapes", path, int, defaults.max_concurrent_scrapes, _positive),
        max_concurrent_per_target=reader.typed(data, "max_concurrent_per_target", path, int, defaults.max_concurrent_per_target, _positive),
        max_series_per_target=reader.typed(data, "max_series_per_target", path, int, defaults.max_series_per_target, _positive),
        max_label_value_length=reader.typed(data, "max_label_value_length", path, int, defaults.max_label_value_length, _label_length),
    )


def _label_length(value) -> str:
    # A shortened value keeps its start and ends with "…" and 8 letters of a hash.
    return "" if value >= 32 else f"must be at least 32 (characters), got {value}"


def _probe(reader: _Reader, value: Any, path: str) -> Probe:
    from .serving.allowlist import AllowList

    data = reader.mapping(value, path, {"allow", "default_profile", "auth", "tls", "health", "max_targets_remembered", "routes"})
    allow = reader.typed(data, "allow", path, list, [])
    for index, entry in enumerate(allow):
        if not isinstance(entry, str):
            raise reader.fail(_join(_join(path, "allow"), index), f"expected a string, got {type(entry).__name__}")
        problem = AllowList.check_entry(entry)
        if problem:
            raise reader.fail(_join(_join(path, "allow"), index), problem)
    return Probe(
        allow=tuple(allow),
        default_profile=_profile_name(reader, data, "default_profile", path, DEFAULT_PROFILE),
        auth=_auth(reader, data.get("auth"), _join(path, "auth")),
        tls=read_tls(reader, data.get("tls"), _join(path, "tls")),
        health=reader.typed(data, "health", path, bool, True),
        max_targets_remembered=reader.typed(data, "max_targets_remembered", path, int, 10000, _positive),
        routes=_routes(reader, data, path),
    )


DOCKER_HOST_SCHEMES = ("unix://", "tcp://", "http://", "https://")


def check_docker_host(value: str) -> str:
    if not value.startswith(DOCKER_HOST_SCHEMES) or len(value) <= len(value.split("://")[0]) + 3:
        return f"{shown(value)} is not a Docker Engine address; give unix:///var/run/docker.sock or tcp://HOST:2376"
    return ""


def _swarm(reader: _Reader, value: Any, path: str) -> Swarm:
    data = reader.mapping(value, path, {"enabled", "docker_host", "container_stats_interval_seconds", "container_stats_workers", "scope"})
    defaults = Swarm()
    return Swarm(
        enabled=reader.typed(data, "enabled", path, bool, False),
        docker_host=reader.typed(data, "docker_host", path, str, "", check_docker_host),
        scope=reader.typed(data, "scope", path, str, defaults.scope, check_swarm_scope),
        container_stats_interval_seconds=reader.typed(
            data, "container_stats_interval_seconds", path, float, defaults.container_stats_interval_seconds,
            lambda seconds: "" if 1 <= seconds <= 3600 else "must be between 1 and 3600 seconds",
        ),
        container_stats_workers=reader.typed(
            data, "container_stats_workers", path, int, defaults.container_stats_workers,
            lambda workers: "" if 1 <= workers <= 64 else "must be between 1 and 64 connections to the engine",
        ),
    )


def parse(data: Any, source: str) -> Config:
    """Build a Config from parsed YAML; `source` names the file in errors."""
    reader = _Reader(source)
    data = reader.mapping(data, "", {"listen", "targets", "probe", "limits", "swarm", "modules", "modules_file"})
    targets_value = reader.typed(data, "targets", "", list, [])
    targets = tuple(_target(reader, value, _join("targets", index), index) for index, value in enumerate(targets_value))
    names = [target.name for target in targets]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise reader.fail("targets", f"target names must be unique; {duplicates[0]!r} appears more than once")
    return Config(
        listen=reader.typed(data, "listen", "", str, DEFAULT_LISTEN, check_listen),
        targets=targets,
        probe=_probe(reader, data.get("probe"), "probe"),
        limits=_limits(reader, data.get("limits"), "limits"),
        swarm=_swarm(reader, data.get("swarm"), "swarm"),
        source=source,
        modules=_modules(reader, data, source),
    )


def _modules(reader: _Reader, data: dict, source: str) -> dict:
    """`modules:` in this file, and json_exporter's configuration file as it is (`modules_file:`)."""
    from .jsonmap import load_modules, load_modules_file

    modules = load_modules(data, source)
    extra = reader.typed(data, "modules_file", "", str, "")
    if extra:
        for name, module in load_modules_file(extra).items():
            if name in modules:
                raise reader.fail("modules_file", f"module {shown(name)} is defined both here and in {extra}")
            modules[name] = module
    return modules


def load(path: str) -> Config:
    return parse(load_yaml_file(path, "configuration file", ConfigError), path)
