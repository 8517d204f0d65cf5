"""The stack `pharos up` runs on one machine: its services, their ports, and the stack file that
`pharos build` turns into the Prometheus and Alertmanager configuration, like any user's.

Two environments, each with its own Prometheus (its thresholds, its `environment` external
label), one Alertmanager shared by both (the build writes the same alertmanager.yml for every
environment), and the demo service `orders` in each: in production beside a sidecar exporter, in
beta read through the multi-target exporter's /probe; this machine's node_exporter is scraped by
both (job `node`). Mail goes to the local SMTP sink without TLS
but with AUTH, as user `alertmanager` with a fresh random password; every Slack channel gets its
own webhook URL on the local Slack sink. Each secret is written to a file only its owner reads
(a secret even here: never on a command line, in the stack file or in the generated configuration).

`--fast` shortens every interval through the stack file (intervals, `alerts.<name>.for`), never
through another code path: what runs is what `pharos build` makes of that file.

`--ha` gives production the HA shape of docs/fleet.md, also through the stack file only: its
`ha:` section lists a Prometheus pair and a cluster of three Alertmanagers, which both
environments list in `alertmanagers` (beta keeps one Prometheus); `pharos build` writes the flags
of every replica and member into production's ha.yml, and `pharos up` starts them with those.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

from pharos_monitoring.alerts.catalogue import ALERTS
from pharos_monitoring.alerts.model import duration_seconds
from pharos_monitoring.demo.processes import free_ports

from ..config.ha import HA_KEY
from ..config.stack_config import PROBE, SIDECAR

HOST = "127.0.0.1"
DEFAULT_PORT_BASE = 19090  # clear of the Debian packages' own daemons on 9090, 9093 and 9100
RUNBOOK_URL = "https://github.com/pharos-monitoring/pharos/blob/main/docs/runbooks.md"
SENDER = "pharos@example.com"
ONCALL = "oncall@example.com"
TEAM = "pharos-team@example.com"
STAGING = "staging-team@example.com"
SMTP_USERNAME = "alertmanager"
SMTP_PASSWORD_FILE = "smtp-password"


@dataclass(frozen=True)
class DemoService:
    environment: str
    service: str
    mode: str

    @property
    def key(self) -> str:
        return f"{self.environment}/{self.service}"


SERVICES = (
    DemoService("production", "orders", SIDECAR),
    DemoService("beta", "orders", PROBE),
)
ENVIRONMENTS = tuple(dict.fromkeys(service.environment for service in SERVICES))
HA_ENVIRONMENTS = ("production",)  # --ha: a Prometheus pair here; beta keeps one

# --fast: seconds instead of minutes, for trying alerts out and for the end-to-end test.
FAST_INTERVALS = {
    "scrape_interval": "2s",
    "scrape_timeout": "1s",
    "evaluation_interval": "1s",
    "rate_window": "20s",  # ten scrapes
    "group_wait": "1s",
    "group_interval": "5s",
    "repeat_interval": "1h",
    "watchdog_repeat_interval": "1m",
}
FAST_SILENT_ALERT, FAST_SILENT_FOR = "PharosEnvironmentSilent", "20s"
FAST_FOR_DIVISOR = 30  # 5m -> 10s, 15m -> 30s
FAST_MIN_FOR_SECONDS = 2


def fast_for(catalogue_for: str) -> str:
    seconds = duration_seconds(catalogue_for)
    return f"{max(FAST_MIN_FOR_SECONDS, round(seconds / FAST_FOR_DIVISOR))}s"


@dataclass(frozen=True)
class Ports:
    prometheus: dict[str, int]  # environment -> port
    alertmanager: int
    smtp: int
    slack: int
    probe_exporter: int
    apps: dict[str, int]  # service key -> port
    sidecars: dict[str, int]
    node_exporter: int = 0  # this machine's node_exporter, scraped by every environment's `node` job
    global_store: int = 0  # VictoriaMetrics: every Prometheus writes to it (the fleet)
    vmalert: int = 0  # the global rules on it
    # --ha only, empty in the light shape: each paired environment's second replica, the web ports
    # of Alertmanagers 2 and 3 (number 1 is `alertmanager`), and every member's gossip port.
    prometheus_pair: dict[str, int] = field(default_factory=dict)
    alertmanager_members: tuple[int, ...] = ()
    alertmanager_gossip: tuple[int, ...] = ()

    @classmethod
    def from_base(cls, base: int, ha: bool = False) -> "Ports":
        """Fixed offsets from `base` (docs/local-stack.md lists them); with `ha`, the HA shape's too:
        the second replica on N+2, each Alertmanager's gossip port right after its web port."""
        light = cls(
            prometheus={environment: base + index for index, environment in enumerate(ENVIRONMENTS)},
            alertmanager=base + 3,
            smtp=base + 5,
            slack=base + 6,
            probe_exporter=base + 7,
            apps={service.key: base + 8 + 2 * index for index, service in enumerate(SERVICES)},
            sidecars={service.key: base + 9 + 2 * index for index, service in enumerate(SERVICES) if service.mode == SIDECAR},
            node_exporter=base + 12,
            global_store=base + 13,
            vmalert=base + 14,
        )
        if not ha:
            return light
        return replace(
            light,
            prometheus_pair={environment: base + 2 for environment in HA_ENVIRONMENTS},  # one paired environment
            alertmanager_members=(base + 15, base + 17),
            alertmanager_gossip=(base + 4, base + 16, base + 18),
        )

    @classmethod
    def free(cls, ha: bool = False) -> "Ports":
        """Ports the kernel reports free now (each child binds its own a moment later)."""
        layout = cls.from_base(0, ha)
        ports = iter(free_ports(len(layout.all())))
        return cls(
            prometheus={environment: next(ports) for environment in layout.prometheus},
            alertmanager=next(ports),
            smtp=next(ports),
            slack=next(ports),
            probe_exporter=next(ports),
            apps={key: next(ports) for key in layout.apps},
            sidecars={key: next(ports) for key in layout.sidecars},
            node_exporter=next(ports),
            global_store=next(ports),
            vmalert=next(ports),
            prometheus_pair={environment: next(ports) for environment in layout.prometheus_pair},
            alertmanager_members=tuple(next(ports) for _ in layout.alertmanager_members),
            alertmanager_gossip=tuple(next(ports) for _ in layout.alertmanager_gossip),
        )

    @property
    def ha(self) -> bool:
        return bool(self.alertmanager_gossip)

    def replicas(self, environment: str) -> tuple[int, ...]:
        """The ports of the environment's Prometheus servers: one, or a pair with --ha."""
        paired = self.prometheus_pair.get(environment)
        return (self.prometheus[environment],) if paired is None else (self.prometheus[environment], paired)

    def alertmanagers(self) -> tuple[int, ...]:
        """The web ports of every Alertmanager, number 1 first."""
        return (self.alertmanager, *self.alertmanager_members)

    def all(self) -> dict[str, int]:
        """What listens where: description -> port."""
        named = {}
        for environment in self.prometheus:
            replicas = self.replicas(environment)
            for number, port in enumerate(replicas, start=1):
                named[f"Prometheus of {environment}" + (f", replica {number}" if len(replicas) > 1 else "")] = port
        if self.ha:
            for number, (web, gossip) in enumerate(zip(self.alertmanagers(), self.alertmanager_gossip), start=1):
                named |= {f"Alertmanager {number}": web, f"Alertmanager {number} gossip": gossip}
        else:
            named["Alertmanager"] = self.alertmanager
        named |= {"SMTP sink": self.smtp, "Slack sink": self.slack, "multi-target exporter": self.probe_exporter}
        named |= {f"demo-app {key}": port for key, port in self.apps.items()}
        named |= {f"sidecar exporter of {key}": port for key, port in self.sidecars.items()}
        named["node_exporter"] = self.node_exporter
        named["global store (VictoriaMetrics)"] = self.global_store
        named["vmalert"] = self.vmalert
        return named

    def busy(self) -> list[str]:
        """The ports something else already listens on, each with what would have used it."""
        taken = []
        for what, port in self.all().items():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers themselves do
                try:
                    probe.bind((HOST, port))
                except OSError:
                    taken.append(f"{port} ({what})")
        return taken


# --- the stack file ----------------------------------------------------------------------------
RECEIVERS = {
    # receiver -> (mail addresses, Slack channels)
    "production-pager": ([ONCALL], ["#production-pages"]),
    "production-team": ([], ["#production"]),
    "staging-team": ([STAGING], ["#staging"]),
    "team-mail": ([TEAM], []),
    # Mail and Slack both: whichever integration fails, the other one tells people.
    "delivery-failures": ([ONCALL, TEAM], ["#alerting-pipeline"]),
}
ROUTES = {
    "default": "team-mail",
    # No route for the Watchdog: with the fleet, vmalert watches it in the global store
    # (PharosEnvironmentSilent), and only its absence reaches people.
    "alerts": {"AlertmanagerNotificationsFailing": "delivery-failures"},
    "environments": {
        "production": {"critical": "production-pager", "warning": "production-team", "info": "production-team"},
        "beta": {"critical": "staging-team", "warning": "staging-team"},
    },
}


def fleet_alert_catalogue() -> list:
    """One of each global alert (their `for` does not depend on the environment)."""
    from pharos_monitoring.alerts import fleet

    return [*fleet.alerts(fleet.Watched("production", 2, 3), "1m"), *fleet.FLEET_WIDE]


def webhook_file_name(channel: str) -> str:
    return "slack-" + channel.lstrip("#")


def _write_secret(path: Path, value: str, end: str = "\n") -> Path:
    """`value` in a file only its owner reads; its absolute path (Alertmanager resolves relative
    paths from its own config file)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + end)
    return path.resolve()


def write_webhook_secrets(directory: Path, slack_port: int) -> dict[str, Path]:
    """One fresh webhook URL per channel, each in a file only we can read; channel -> file."""
    channels = sorted({channel for _, slack in RECEIVERS.values() for channel in slack})
    return {
        channel: _write_secret(directory / webhook_file_name(channel), f"http://{HOST}:{slack_port}/services/TLOCAL/B{number:03d}/{secrets.token_hex(12)}")
        for number, channel in enumerate(channels, start=1)
    }


def write_smtp_password(directory: Path) -> Path:
    """A fresh SMTP password for Alertmanager and the mail sink, in a file only we can read.

    Without a line break: Alertmanager 0.25 sends smtp_auth_password_file's bytes as they are
    (it trims api_url_file, not this one), so a trailing newline would be part of the password."""
    return _write_secret(directory / SMTP_PASSWORD_FILE, secrets.token_urlsafe(18), end="")


# One service pages on its error budget (PharosErrorBudgetBurn, alerts/slo.py) instead of a
# threshold: beta's, so that production's orders keeps PharosHighErrorRate, which the end-to-end
# tests and the error-rate time to signal measure (an availability objective replaces it).
# The objective's windows are fixed spans: --fast does not shorten them.
OBJECTIVES = {"beta/orders": {"availability": 99.9}}


def ha_section(ports: Ports, environment: str) -> dict:
    """`ha:` of a paired environment (--ha): its replicas, and each Alertmanager's gossip address
    in the order of `alertmanagers`."""
    return {
        "prometheus": [f"{HOST}:{port}" for port in ports.replicas(environment)],
        "alertmanager_cluster": [f"{HOST}:{port}" for port in ports.alertmanager_gossip],
    }


def stack_data(ports: Ports, webhook_files: dict[str, Path], fast: bool, smtp_password_file: Path | None = None) -> dict:
    """The stack description of the local stack, as a user would write it; with
    `smtp_password_file`, mail is sent with AUTH as SMTP_USERNAME."""
    receivers = {}
    for name, (emails, channels) in RECEIVERS.items():
        receiver: dict = {}
        if emails:
            receiver["email"] = list(emails)
        if channels:
            receiver["slack"] = [{"channel": channel, "webhook_url_file": str(webhook_files[channel])} for channel in channels]
        receivers[name] = receiver
    environments = {}
    for environment in ENVIRONMENTS:
        services = {}
        probed = False
        for service in SERVICES:
            if service.environment != environment:
                continue
            if service.mode == SIDECAR:
                services[service.service] = {"mode": SIDECAR, "targets": [f"{HOST}:{ports.sidecars[service.key]}"]}
            else:
                probed = True
                services[service.service] = {"mode": PROBE, "profile": "pharo", "targets": [f"{HOST}:{ports.apps[service.key]}"]}
            if service.key in OBJECTIVES:
                services[service.service]["objectives"] = dict(OBJECTIVES[service.key])
        described: dict = {
            "prometheus": f"{HOST}:{ports.prometheus[environment]}",
            "alertmanagers": [f"{HOST}:{port}" for port in ports.alertmanagers()],
        }
        if environment in ports.prometheus_pair:
            described[HA_KEY] = ha_section(ports, environment)
        if probed:
            described["exporter"] = f"{HOST}:{ports.probe_exporter}"
        described["services"] = services
        described["node_exporters"] = [f"{HOST}:{ports.node_exporter}"]  # this machine, seen by both environments
        environments[environment] = described
    data: dict = {"runbook_url": RUNBOOK_URL}
    if fast:
        data["intervals"] = dict(FAST_INTERVALS)
    data["smtp"] = {"smarthost": f"{HOST}:{ports.smtp}", "from": SENDER, "require_tls": False}
    if smtp_password_file is not None:
        data["smtp"] |= {"auth_username": SMTP_USERNAME, "auth_password_file": str(smtp_password_file)}
    data["receivers"] = receivers
    data["routes"] = ROUTES
    if fast:
        every = [*ALERTS, *fleet_alert_catalogue()]
        data["alerts"] = {alert.name: {"for": fast_for(alert.for_)} for alert in every if duration_seconds(alert.for_)}
        # A Prometheus that just started needs ~10 s to show in the store (first evaluation, a
        # remote-write batch, the store's latency offset): shorter, every start would page.
        data["alerts"][FAST_SILENT_ALERT] = {"for": FAST_SILENT_FOR}
    data["environments"] = environments
    # The fleet: both environments write to one global store, whose rules watch them from outside.
    data["fleet"] = {"store": f"{HOST}:{ports.global_store}", "vmalert": f"{HOST}:{ports.vmalert}"}
    return data
