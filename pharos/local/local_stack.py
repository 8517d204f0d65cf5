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
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from pharos_monitoring.alerts.catalogue import ALERTS, WATCHDOG
from pharos_monitoring.alerts.model import duration_seconds
from pharos_monitoring.demo.processes import free_ports

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

    @classmethod
    def from_base(cls, base: int) -> "Ports":
        """Fixed offsets from `base` (docs/local-stack.md lists them)."""
        return cls(
            prometheus={environment: base + index for index, environment in enumerate(ENVIRONMENTS)},
            alertmanager=base + 3,
            smtp=base + 5,
            slack=base + 6,
            probe_exporter=base + 7,
            apps={service.key: base + 8 + 2 * index for index, service in enumerate(SERVICES)},
            sidecars={service.key: base + 9 + 2 * index for index, service in enumerate(SERVICES) if service.mode == SIDECAR},
            node_exporter=base + 12,
        )

    @classmethod
    def free(cls) -> "Ports":
        """Ports the kernel reports free now (each child binds its own a moment later)."""
        layout = cls.from_base(0)
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
        )

    def all(self) -> dict[str, int]:
        """What listens where: description -> port."""
        named = {f"Prometheus of {environment}": port for environment, port in self.prometheus.items()}
        named |= {"Alertmanager": self.alertmanager, "SMTP sink": self.smtp, "Slack sink": self.slack, "multi-target exporter": self.probe_exporter}
        named |= {f"demo-app {key}": port for key, port in self.apps.items()}
        named |= {f"sidecar exporter of {key}": port for key, port in self.sidecars.items()}
        named["node_exporter"] = self.node_exporter
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
    "deadmans-switch": ([], ["#heartbeat"]),
}
ROUTES = {
    "default": "team-mail",
    "alerts": {WATCHDOG.name: "deadmans-switch", "AlertmanagerNotificationsFailing": "delivery-failures"},
    "environments": {
        "production": {"critical": "production-pager", "warning": "production-team", "info": "production-team"},
        "beta": {"critical": "staging-team", "warning": "staging-team"},
    },
}


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
        described: dict = {
            "prometheus": f"{HOST}:{ports.prometheus[environment]}",
            "alertmanagers": [f"{HOST}:{ports.alertmanager}"],
        }
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
        data["alerts"] = {alert.name: {"for": fast_for(alert.for_)} for alert in ALERTS if duration_seconds(alert.for_)}
    data["environments"] = environments
    return data
