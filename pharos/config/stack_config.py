"""The stack description `pharos build` reads: environments, services, receivers, routes, intervals.

One YAML file (see `examples/stack.yml`) describes the whole monitoring stack. Every problem is a
`StackConfigError` naming the file, the key path and what to do, e.g.
`stack.yml: environments.production.services.orders.mode: expected sidecar or probe, got 'side'`.
Secrets never appear in it: Slack webhook URLs and the SMTP password are paths of files that
Alertmanager reads when it sends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from pharos_monitoring.alerts import ALERTS, ENVIRONMENTS, SEVERITIES
from pharos_monitoring.alerts.alertmanager import PagerDuty, Receiver, Routing, SlackChannel, Smtp, Timing
from pharos_monitoring.alerts.catalogue import WATCHDOG
from pharos_monitoring.alerts.model import duration_seconds
from pharos_monitoring.alerts.prometheus_rules import Tuning
from pharos_monitoring.alerts.recording import WINDOW
from pharos_monitoring.exporter.profiles import PROFILES
from pharos_monitoring.exporter.yaml_file import load_yaml_file

from .exporter_access import AUTH_KEY, TLS_KEY, ExporterAccess, read as read_exporter_access
from .grafana_provisioning import GRAFANA_KEY, GrafanaSettings, read as read_grafana
from .objectives import OBJECTIVES_KEY, Objective, read as read_objectives
from .swarm_discovery import SWARM_JOB, SWARM_KEY, SwarmDiscovery, read as read_swarm
from .fleet import FLEET_ALERT_NAMES, FLEET_KEY, HEARTBEAT_RECEIVER, STORE_JOB, VMALERT_JOB, Fleet, read as read_fleet
from .ha import HA_KEY, HighAvailability, read as read_ha
from .node_agent import NODE_AGENT_JOB
from .node_scrape import NODE_EXPORTERS_KEY
from pharos_monitoring.alerts.upstream import NODE_JOB

SIDECAR = "sidecar"  # an exporter beside each instance; Prometheus scrapes its /metrics
PROBE = "probe"  # one exporter per environment; Prometheus scrapes /probe?target=INSTANCE
MODES = (SIDECAR, PROBE)

# Jobs every environment's Prometheus has besides the services; a service may not take their names.
PROMETHEUS_JOB = "prometheus"
ALERTMANAGER_JOB = "alertmanager"
EXPORTER_JOB = "pharos-exporter"
RESERVED_JOBS = (PROMETHEUS_JOB, ALERTMANAGER_JOB, EXPORTER_JOB, SWARM_JOB, NODE_JOB, NODE_AGENT_JOB, STORE_JOB, VMALERT_JOB)


class StackConfigError(ValueError):
    """A problem in the stack description; the message names the file, the key and what to do."""


@dataclass(frozen=True)
class Service:
    name: str
    mode: str
    profile: str  # probe mode: the exporter profile passed as ?profile=
    targets: tuple[str, ...] = ()  # sidecar: exporter addresses; probe: application addresses
    files: tuple[str, ...] = ()  # file-based discovery: target lists that other tools keep up to date
    team: str = ""  # becomes the `team` label; routes.teams names the team's receiver
    objectives: tuple[Objective, ...] = ()  # availability and latency SLOs (pharos/config/objectives.py)
    expected_instances: int = 0  # targets it should have (PharosServiceTargetsMissing); 0: not declared


@dataclass(frozen=True)
class Environment:
    name: str
    prometheus: str  # where this environment's Prometheus listens, for its own scrape job
    alertmanagers: tuple[str, ...]
    exporter: str  # the multi-target exporter of probe-mode services ("" when none)
    services: tuple[Service, ...]
    exporter_access: ExporterAccess = ExporterAccess()  # TLS and basic auth towards Pharos exporters
    swarm: SwarmDiscovery | None = None  # Docker Swarm discovery of opted-in services (pharos/config/swarm_discovery.py)
    ha: HighAvailability | None = None  # a Prometheus pair and an Alertmanager cluster (pharos/config/ha.py)
    node_exporters: tuple[str, ...] = ()  # machines with node_exporter, for the `node` job (pharos/config/node_scrape.py)

    @property
    def objectives(self) -> tuple[Objective, ...]:
        return tuple(objective for service in self.services for objective in service.objectives)


@dataclass(frozen=True)
class Intervals:
    scrape_interval: str = "15s"
    scrape_timeout: str = "10s"
    evaluation_interval: str = "15s"
    file_sd_refresh_interval: str = "1m"
    rate_window: str = WINDOW  # the range of every rate() in the rules


# A rate needs two samples in its window; four make it robust against a missed scrape.
MIN_SCRAPES_PER_RATE_WINDOW = 4


@dataclass(frozen=True)
class ScrapeLimits:
    """Per-scrape limits on every job: a target over one fails its scrape (up == 0) and the
    Prometheus*LimitHit alerts say why, instead of a series explosion filling Prometheus. 0: no limit."""

    sample_limit: int = 20000  # a Pharo instance gives a few hundred series, Prometheus itself a few thousand
    label_limit: int = 40  # labels of one series, target labels included
    body_size_limit: str = "10MB"  # uncompressed; Prometheus' units B, KB, MB, GB

    def settings(self) -> dict:
        return {"sample_limit": self.sample_limit, "label_limit": self.label_limit, "body_size_limit": self.body_size_limit}


@dataclass(frozen=True)
class StackConfig:
    source: str
    runbook_url: str
    intervals: Intervals
    timing: Timing
    smtp: Smtp | None
    receivers: tuple[Receiver, ...]
    routing: Routing
    environments: tuple[Environment, ...] = field(default_factory=tuple)
    alert_for: Mapping[str, str] = field(default_factory=dict)  # alert name -> `for` replacing the catalogue's
    grafana: GrafanaSettings | None = None  # write Grafana's provisioning too (pharos/config/grafana_provisioning.py)
    scrape_limits: ScrapeLimits = ScrapeLimits()
    fleet: Fleet | None = None  # the global store and its rules (pharos/config/fleet.py)

    @property
    def tuning(self) -> Tuning:
        """What the rule files take from this stack instead of the catalogue's defaults."""
        return Tuning(rate_window=self.intervals.rate_window, alert_for=dict(self.alert_for))

    def environment(self, name: str) -> Environment:
        for environment in self.environments:
            if environment.name == name:
                return environment
        known = ", ".join(e.name for e in self.environments)
        raise StackConfigError(f"{self.source}: environments: no environment {name!r}; this stack has {known}")


# --- reading -----------------------------------------------------------------------------------
_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$")
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_RECEIVER_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_INLINE_SECRETS = {
    "webhook_url": "webhook_url_file",
    "api_url": "webhook_url_file",
    "auth_password": "auth_password_file",
    "password": "auth_password_file",
}


class _Reader:
    """Walks the parsed YAML, naming the file and key path in every error."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, problem: str) -> StackConfigError:
        return StackConfigError(f"{self.source}: {path}: {problem}" if path else f"{self.source}: {problem}")

    def mapping(self, value: Any, path: str, known: set[str] | None = None) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(path, f"keys must be strings, got {key!r}")
            if known is not None and key in _INLINE_SECRETS and key not in known:
                raise self.fail(
                    _join(path, key),
                    f"secrets are not accepted inline; put it in a file and give its path as {_INLINE_SECRETS[key]}",
                )
        if known is not None:
            unknown = sorted(key for key in value if key not in known)
            if unknown:
                raise self.fail(_join(path, unknown[0]), f"unknown key; known keys here: {', '.join(sorted(known))}")
        return value

    def string(self, data: dict, key: str, path: str, default: str | None = None, check: Callable[[str], str] | None = None) -> str:
        if data.get(key) is None:
            if default is None:
                raise self.fail(_join(path, key), "missing; this key is required")
            return default
        value = data[key]
        if not isinstance(value, str) or not value:
            raise self.fail(_join(path, key), f"expected a non-empty string, got {value!r}")
        problem = check(value) if check else ""
        if problem:
            raise self.fail(_join(path, key), problem)
        return value

    def strings(self, data: dict, key: str, path: str, check: Callable[[str], str] | None = None) -> tuple[str, ...]:
        value = data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(_join(path, key), f"expected a list, got {type(value).__name__}")
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise self.fail(f"{_join(path, key)}[{index}]", f"expected a non-empty string, got {item!r}")
            problem = check(item) if check else ""
            if problem:
                raise self.fail(f"{_join(path, key)}[{index}]", problem)
        if len(set(value)) != len(value):
            duplicate = next(item for item in value if value.count(item) > 1)
            raise self.fail(_join(path, key), f"{duplicate!r} is listed twice")
        return tuple(value)

    def entries(self, data: dict, key: str, path: str, what: str) -> list[tuple[str, Any]]:
        """(path, entry) of each item of the list at `key` (none when absent), for the caller to read."""
        value = data.get(key) or []
        if not isinstance(value, list):
            raise self.fail(_join(path, key), f"expected a list of {what}, got {type(value).__name__}")
        return [(f"{_join(path, key)}[{index}]", item) for index, item in enumerate(value)]

    def boolean(self, data: dict, key: str, path: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(_join(path, key), f"expected true or false, got {value!r}")
        return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _address(value: str) -> str:
    return "" if _ADDRESS.match(value) else f"{value!r} is not HOST:PORT (e.g. orders-1:9841)"


def _duration(value: str) -> str:
    try:
        duration_seconds(value)
    except ValueError as error:
        return str(error)
    return ""


def _email(value: str) -> str:
    if "@" not in value or any(character.isspace() for character in value) or "," in value:
        return f"{value!r} is not one mail address (list several as separate entries)"
    return ""


def _sd_file(value: str) -> str:
    # Prometheus' own rule for file_sd_configs patterns.
    if not re.search(r"\.(json|ya?ml)$", value):
        return f"{value!r}: file-based discovery reads .json, .yml or .yaml files"
    return ""


def _url(value: str) -> str:
    if not re.match(r"^https?://[^\s]+$", value):
        return f"{value!r} is not an http(s) URL"
    return ""


# --- sections ----------------------------------------------------------------------------------
def _intervals(reader: _Reader, value: Any) -> tuple[Intervals, Timing]:
    defaults = {**vars(Intervals()), **vars(Timing())}
    data = reader.mapping(value, "intervals", set(defaults))
    read = {key: reader.string(data, key, "intervals", default, _duration) for key, default in sorted(defaults.items())}
    for key, text in sorted(read.items()):
        # Only group_wait may be 0s (notify at once); a zero interval or timeout means "never".
        if key != "group_wait" and duration_seconds(text) == 0:
            raise reader.fail(_join("intervals", key), "must be longer than 0s")
    intervals = Intervals(**{key: read[key] for key in Intervals.__dataclass_fields__})
    timing = Timing(**{key: read[key] for key in Timing.__dataclass_fields__})
    if duration_seconds(intervals.scrape_timeout) >= duration_seconds(intervals.scrape_interval):
        raise reader.fail(
            "intervals.scrape_timeout",
            f"{intervals.scrape_timeout} must be shorter than scrape_interval {intervals.scrape_interval}, "
            "so that a slow scrape ends before the next one starts",
        )
    scrapes = duration_seconds(intervals.rate_window) / duration_seconds(intervals.scrape_interval)
    if scrapes < MIN_SCRAPES_PER_RATE_WINDOW:
        raise reader.fail(
            "intervals.rate_window",
            f"{intervals.rate_window} holds fewer than {MIN_SCRAPES_PER_RATE_WINDOW} scrapes at scrape_interval "
            f"{intervals.scrape_interval}; make it at least {MIN_SCRAPES_PER_RATE_WINDOW} times the scrape interval",
        )
    return intervals, timing


def _scrape_limits(reader: _Reader, value: Any) -> ScrapeLimits:
    defaults = ScrapeLimits()
    data = reader.mapping(value, "scrape_limits", set(defaults.settings()))
    counts = {}
    for key in ("sample_limit", "label_limit"):
        count = data.get(key, getattr(defaults, key))
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise reader.fail(_join("scrape_limits", key), f"expected a whole number, 0 for no limit, got {count!r}")
        counts[key] = count
    size = reader.string(
        data, "body_size_limit", "scrape_limits", defaults.body_size_limit,
        lambda text: "" if re.fullmatch(r"\d+(B|KB|MB|GB)", text) else f"{text!r} is not a size like 10MB (B, KB, MB or GB; 0B for no limit)",
    )
    return ScrapeLimits(body_size_limit=size, **counts)


def _smtp(reader: _Reader, value: Any) -> Smtp | None:
    if value is None:
        return None
    data = reader.mapping(value, "smtp", {"smarthost", "from", "auth_username", "auth_password_file", "require_tls"})
    smtp = Smtp(
        smarthost=reader.string(data, "smarthost", "smtp", check=_address),
        sender=reader.string(data, "from", "smtp", check=_email),
        auth_username=reader.string(data, "auth_username", "smtp", ""),
        auth_password_file=reader.string(data, "auth_password_file", "smtp", ""),
        require_tls=reader.boolean(data, "require_tls", "smtp", True),
    )
    if smtp.auth_password_file and not smtp.auth_username:
        raise reader.fail("smtp.auth_username", "an auth_password_file needs an auth_username")
    return smtp


def _receivers(reader: _Reader, value: Any, smtp: Smtp | None) -> tuple[Receiver, ...]:
    data = reader.mapping(value, "receivers")
    if not data:
        raise reader.fail("receivers", "missing; name at least one receiver (mail addresses, Slack channels and/or PagerDuty services)")
    receivers = []
    for name, entry in sorted(data.items()):
        path = _join("receivers", name)
        if not _RECEIVER_NAME.match(name):
            raise reader.fail(path, "receiver names may only hold letters, digits and _.-")
        entry = reader.mapping(entry, path, {"email", "slack", "pagerduty"})
        emails = reader.strings(entry, "email", path, _email)
        if emails and smtp is None:
            raise reader.fail(_join(path, "email"), "mail receivers need the top-level smtp section (smarthost, from)")
        slack = []
        for channel_path, channel in reader.entries(entry, "slack", path, "channels"):
            channel = reader.mapping(channel, channel_path, {"channel", "webhook_url_file"})
            slack.append(
                SlackChannel(
                    channel=reader.string(channel, "channel", channel_path),
                    webhook_url_file=reader.string(channel, "webhook_url_file", channel_path),
                )
            )
        pagerduty = []
        for service_path, service in reader.entries(entry, "pagerduty", path, "services"):
            inline = sorted({"routing_key", "service_key"} & set(service if isinstance(service, dict) else ()))
            if inline:
                raise reader.fail(_join(service_path, inline[0]), "secrets are not accepted inline; put the key in a file and give its path as routing_key_file")
            service = reader.mapping(service, service_path, {"routing_key_file", "url"})
            pagerduty.append(
                PagerDuty(
                    routing_key_file=reader.string(service, "routing_key_file", service_path),
                    url=reader.string(service, "url", service_path, "", _url),
                )
            )
        if not emails and not slack and not pagerduty:
            raise reader.fail(path, "a receiver needs at least one email address, Slack channel or PagerDuty service")
        receivers.append(Receiver(name, emails, tuple(slack), tuple(pagerduty)))
    return tuple(receivers)


def _routing(reader: _Reader, value: Any, receivers: tuple[Receiver, ...], heartbeat_receiver: str = "") -> Routing:
    """`routes:`; with `heartbeat_receiver` (a stack with a fleet), the Watchdog may go unrouted: it goes there."""
    names = {receiver.name for receiver in receivers}

    def receiver(data: dict, key: str, path: str) -> str:
        return reader.string(data, key, path, check=lambda name: "" if name in names else f"no receiver {name!r}; receivers: {', '.join(sorted(names))}")

    data = reader.mapping(value, "routes", {"default", "alerts", "environments", "teams"})
    alert_names = {alert.name for alert in ALERTS} | set(FLEET_ALERT_NAMES)
    by_alert_data = reader.mapping(data.get("alerts"), "routes.alerts", alert_names)
    if WATCHDOG.name not in by_alert_data and heartbeat_receiver:
        # The fleet's global rules watch the Watchdog in the store: only its absence reaches people.
        by_alert_data = {**by_alert_data, WATCHDOG.name: heartbeat_receiver}
    if WATCHDOG.name not in by_alert_data:
        raise reader.fail(
            "routes.alerts",
            f"no route for {WATCHDOG.name}; give the always-firing {WATCHDOG.name} its own receiver "
            "(a dead man's switch), or it repeats in every info channel",
        )
    by_environment = {}
    environments_data = reader.mapping(data.get("environments"), "routes.environments", set(ENVIRONMENTS))
    for environment, severities in sorted(environments_data.items()):
        path = _join("routes.environments", environment)
        severities = reader.mapping(severities, path, set(SEVERITIES))
        by_environment[environment] = {severity: receiver(severities, severity, path) for severity in sorted(severities)}
    teams_data = reader.mapping(data.get("teams"), "routes.teams")
    for team in sorted(teams_data):
        if not _SERVICE_NAME.match(team):
            raise reader.fail(_join("routes.teams", team), "team names start with a lowercase letter and hold only a-z, 0-9, _ and -")
    return Routing(
        default_receiver=receiver(data, "default", "routes"),
        by_alert={name: receiver(by_alert_data, name, "routes.alerts") for name in sorted(by_alert_data)},
        by_environment=by_environment,
        by_team={team: receiver(teams_data, team, "routes.teams") for team in sorted(teams_data)},
    )


def _alert_settings(reader: _Reader, value: Any) -> dict[str, str]:
    """`alerts: {NAME: {for: DURATION}}`: per-alert settings that replace the catalogue's."""
    data = reader.mapping(value, "alerts", {alert.name for alert in ALERTS} | set(FLEET_ALERT_NAMES))
    alert_for = {}
    for name, settings in sorted(data.items()):
        path = _join("alerts", name)
        settings = reader.mapping(settings, path, {"for"})
        if "for" in settings:
            alert_for[name] = reader.string(settings, "for", path, check=_duration)
    return alert_for


def _service(reader: _Reader, name: str, value: Any, path: str, teams: Mapping[str, str], environment: str) -> Service:
    if not _SERVICE_NAME.match(name):
        raise reader.fail(path, "service names start with a lowercase letter and hold only a-z, 0-9, _ and -")
    if name in RESERVED_JOBS:
        raise reader.fail(path, f"{name!r} is the name of a job Pharos generates; choose another service name")
    data = reader.mapping(value, path, {"mode", "profile", "targets", "files", "team", OBJECTIVES_KEY, "expected_instances"})
    mode = reader.string(data, "mode", path, check=lambda m: "" if m in MODES else f"expected {' or '.join(MODES)}, got {m!r}")
    if mode == SIDECAR and "profile" in data:
        raise reader.fail(_join(path, "profile"), "a sidecar's profile is set in its own exporter configuration; remove it here")
    profile = reader.string(
        data, "profile", path, "" if mode == SIDECAR else None,
        lambda p: "" if p in PROFILES else f"unknown profile {p!r}; known profiles: {', '.join(sorted(PROFILES))}",
    )
    team = reader.string(
        data, "team", path, "",
        lambda t: "" if t in teams else f"no team {t!r} in routes.teams (team: receiver); teams: {', '.join(sorted(teams)) or 'none'}",
    )
    objectives = read_objectives(reader, data.get(OBJECTIVES_KEY), _join(path, OBJECTIVES_KEY), environment, name, team)
    expected = data.get("expected_instances", 0)  # absent: 0, nothing declared
    if "expected_instances" in data and (isinstance(expected, bool) or not isinstance(expected, int) or expected < 1):
        raise reader.fail(_join(path, "expected_instances"), f"expected a whole number of instances, at least 1, got {expected!r}")
    service = Service(
        name, mode, profile, reader.strings(data, "targets", path, _address), reader.strings(data, "files", path, _sd_file), team, objectives, expected
    )
    if not service.targets and not service.files:
        raise reader.fail(path, "a service needs targets (HOST:PORT) or files (file-based discovery), or both")
    if not service.files and service.expected_instances > len(service.targets):
        raise reader.fail(
            _join(path, "expected_instances"),
            f"{service.expected_instances} instances expected, but only {len(service.targets)} targets are listed and no files: "
            "Prometheus can never find more and the alert would never end; list every target, or discover them with files",
        )
    return service


def _environment(reader: _Reader, name: str, value: Any, access: ExporterAccess, teams: Mapping[str, str], timing: Timing) -> Environment:
    path = _join("environments", name)
    data = reader.mapping(value, path, {"prometheus", "alertmanagers", "exporter", "services", TLS_KEY, AUTH_KEY, SWARM_KEY, NODE_EXPORTERS_KEY, HA_KEY})
    services_data = reader.mapping(data.get("services"), _join(path, "services"))
    swarm = read_swarm(reader, data[SWARM_KEY], _join(path, SWARM_KEY)) if SWARM_KEY in data else None
    if not services_data and swarm is None:
        raise reader.fail(_join(path, "services"), "missing; list the services Prometheus scrapes in this environment (or discover them with swarm:)")
    services = tuple(_service(reader, key, services_data[key], _join(_join(path, "services"), key), teams, name) for key in sorted(services_data))
    alertmanagers = reader.strings(data, "alertmanagers", path, _address)
    if not alertmanagers:
        raise reader.fail(_join(path, "alertmanagers"), "missing; list the Alertmanager addresses (HOST:PORT) this Prometheus sends to")
    ha = read_ha(reader, data[HA_KEY], _join(path, HA_KEY), alertmanagers, timing, _address) if HA_KEY in data else None
    exporter = reader.string(data, "exporter", path, "", _address)
    probing = [service.name for service in services if service.mode == PROBE]
    if probing and not exporter:
        raise reader.fail(_join(path, "exporter"), f"missing; service {probing[0]} uses mode probe, which needs the address of the multi-target exporter")
    if swarm is not None and not exporter:
        raise reader.fail(_join(path, "exporter"), "missing; swarm discovery scrapes every task through the multi-target exporter, give its address")
    return Environment(
        name=name,
        # With a pair, `prometheus` is where others (Grafana) reach it: a balancer, or the first replica.
        prometheus=reader.string(data, "prometheus", path, ha.prometheus[0] if ha else "localhost:9090", _address),
        alertmanagers=alertmanagers,
        exporter=exporter,
        services=services,
        exporter_access=read_exporter_access(reader, data, path, access),
        swarm=swarm,
        ha=ha,
        node_exporters=reader.strings(data, NODE_EXPORTERS_KEY, path, _address),
    )


def parse(data: Any, source: str) -> StackConfig:
    """A StackConfig from parsed YAML; `source` names the file in errors."""
    reader = _Reader(source)
    data = reader.mapping(data, "", {"runbook_url", "intervals", "scrape_limits", "smtp", "receivers", "routes", "environments", "alerts", TLS_KEY, AUTH_KEY, GRAFANA_KEY, FLEET_KEY})
    intervals, timing = _intervals(reader, data.get("intervals"))
    smtp = _smtp(reader, data.get("smtp"))
    receivers = _receivers(reader, data.get("receivers"), smtp)
    environments_data = reader.mapping(data.get("environments"), "environments")
    if not environments_data:
        raise reader.fail("environments", f"missing; describe at least one of {', '.join(ENVIRONMENTS)}")
    for name in sorted(environments_data):
        if name not in ENVIRONMENTS:
            raise reader.fail(
                _join("environments", name),
                f"unknown environment; known: {', '.join(ENVIRONMENTS)} (thresholds are defined per environment in alerts/catalogue.py)",
            )
    heartbeat = ""
    if FLEET_KEY in data:
        # The Watchdog's notifications go nowhere (a receiver without integrations): PharosEnvironmentSilent
        # reads its ALERTS series in the global store instead.
        heartbeat = HEARTBEAT_RECEIVER
        if heartbeat in {receiver.name for receiver in receivers}:
            raise reader.fail(_join("receivers", heartbeat), "this name is the fleet's own receiver of the Watchdog; choose another")
        receivers = receivers + (Receiver(heartbeat),)
    routing = _routing(reader, data.get("routes"), receivers, heartbeat)
    environments = tuple(
        _environment(reader, name, environments_data[name], read_exporter_access(reader, data, ""), routing.by_team, timing)
        for name in ENVIRONMENTS
        if name in environments_data
    )
    # The global alerts go by default to the Alertmanagers of the most production-like environment.
    last = environments[-1]
    by_dns = last.ha is not None and last.ha.dns_members > 0
    fleet = read_fleet(reader, data[FLEET_KEY], FLEET_KEY, last.alertmanagers, _address, by_dns) if FLEET_KEY in data else None
    return StackConfig(
        source=source,
        runbook_url=reader.string(data, "runbook_url", "", check=_url),
        intervals=intervals,
        timing=timing,
        smtp=smtp,
        receivers=receivers,
        routing=routing,
        environments=environments,
        alert_for=_alert_settings(reader, data.get("alerts")),
        grafana=read_grafana(reader, data[GRAFANA_KEY]) if GRAFANA_KEY in data else None,
        scrape_limits=_scrape_limits(reader, data.get("scrape_limits")),
        fleet=fleet,
    )


def load(path: str) -> StackConfig:
    return parse(load_yaml_file(path, "stack file", StackConfigError), path)
