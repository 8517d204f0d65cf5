"""`alertmanager.yml` from a routing description and the catalogue's inhibitions.

Routes: alerts named in `Routing.by_alert` (the Watchdog first of all) go to their own receivers;
alerts of a service with a `team` go to that team's receiver (critical ones page as usual too);
everything else by environment, then by severity. Secrets appear only as `*_file` paths that
Alertmanager reads itself (Alertmanager 0.25 has `api_url_file` for Slack, `routing_key_file` for
PagerDuty and `smtp_auth_password_file`; it has no `url_file` for webhooks yet, so receivers are
Slack, mail and PagerDuty). What the messages say and link to: `alerts/messages.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from pharos_monitoring.exporter.catalogue import Label as L

from . import messages
from .catalogue import INHIBITIONS, WATCHDOG
from .messages import Links
from .model import CRITICAL, SEVERITIES, WARNING, Inhibition, duration_seconds
from .upstream import ALERTNAME, SEVERITY


@dataclass(frozen=True)
class SlackChannel:
    channel: str
    webhook_url_file: str  # Slack incoming-webhook URLs are credentials


@dataclass(frozen=True)
class PagerDuty:
    routing_key_file: str  # the Events API v2 integration key is a credential
    url: str = ""  # "" = PagerDuty's own Events API; a test points it at a loopback receiver


@dataclass(frozen=True)
class Receiver:
    name: str
    emails: tuple[str, ...] = ()
    slack: tuple[SlackChannel, ...] = ()
    pagerduty: tuple[PagerDuty, ...] = ()


@dataclass(frozen=True)
class Smtp:
    smarthost: str  # host:port
    sender: str
    auth_username: str = ""
    auth_password_file: str = ""
    require_tls: bool = True  # local test sinks offer no STARTTLS


@dataclass(frozen=True)
class Routing:
    default_receiver: str
    by_alert: Mapping[str, str] = field(default_factory=dict)  # alert name -> receiver
    # environment -> severity -> receiver; a severity not listed falls back to `default_receiver`.
    by_environment: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    by_team: Mapping[str, str] = field(default_factory=dict)  # the `team` label of a service -> receiver


@dataclass(frozen=True)
class Timing:
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"
    watchdog_repeat_interval: str = "1m"  # how often a dead man's switch hears from each environment


GROUP_BY = (ALERTNAME, L.ENVIRONMENT, L.SERVICE)

# While a service pages, its warnings wait: whoever was paged looks at the whole service anyway.
# The source must carry a service: Alertmanager treats a label missing on both sides as equal, so a
# critical alert without one (Prometheus' own) would otherwise silence every warning without one.
SEVERITY_INHIBITION = {
    "source_matchers": [f'{SEVERITY}="{CRITICAL}"', f'{L.SERVICE}=~".+"'],
    "target_matchers": [f'{SEVERITY}="{WARNING}"'],
    "equal": [L.ENVIRONMENT, L.SERVICE],
}

# Grafana's Slack contact points show the same title and text (alerts/grafana_notifications.py).
SLACK_TITLE = messages.TITLE
SLACK_TEXT = messages.SLACK_TEXT


def _matcher(label: str, values: list[str]) -> str:
    if len(values) == 1:
        return f'{label}="{values[0]}"'
    return f'{label}=~"{"|".join(values)}"'


def _receiver(receiver: Receiver, links: Links) -> dict:
    rendered: dict = {"name": receiver.name}
    if receiver.emails:
        rendered["email_configs"] = [
            {
                "to": address,
                "send_resolved": True,
                "headers": {"Subject": messages.MAIL_SUBJECT},
                "text": messages.mail_text(links),
                "html": messages.mail_html(links),
            }
            for address in receiver.emails
        ]
    if receiver.pagerduty:
        rendered["pagerduty_configs"] = [
            {
                "routing_key_file": pager.routing_key_file,
                **({"url": pager.url} if pager.url else {}),
                "send_resolved": True,
                **messages.pagerduty_fields(links),
            }
            for pager in receiver.pagerduty
        ]
    if receiver.slack:
        rendered["slack_configs"] = [
            {
                "api_url_file": slack.webhook_url_file,
                "channel": slack.channel,
                "send_resolved": True,
                "color": messages.SLACK_COLOR,
                "fallback": SLACK_TITLE,
                "title": SLACK_TITLE,
                "text": SLACK_TEXT,
                "actions": messages.slack_actions(links),
            }
            for slack in receiver.slack
        ]
    return rendered


def _global(smtp: Smtp | None) -> dict:
    if smtp is None:
        return {}
    rendered = {"smtp_smarthost": smtp.smarthost, "smtp_from": smtp.sender, "smtp_require_tls": smtp.require_tls}
    if smtp.auth_username:
        rendered["smtp_auth_username"] = smtp.auth_username
    if smtp.auth_password_file:
        rendered["smtp_auth_password_file"] = smtp.auth_password_file
    return rendered


def _routes(routing: Routing, timing: Timing) -> list[dict]:
    routes = []
    for alert_name, receiver in sorted(routing.by_alert.items()):
        route = {"receiver": receiver, "matchers": [_matcher(ALERTNAME, [alert_name])]}
        if alert_name == WATCHDOG.name:
            # A dead man's switch expects a steady heartbeat per environment, not the usual hours of quiet.
            # Alertmanager repeats only at a group_interval tick, and a repeat_interval equal to it
            # just misses every second tick (the last send is logged a moment after its tick): the
            # heartbeat came every 2m for 1m. A repeat_interval below group_interval sends at every
            # tick: exactly one heartbeat per watchdog_repeat_interval (measured with Alertmanager 0.25).
            route |= {
                "group_by": [ALERTNAME, L.ENVIRONMENT],
                "group_wait": "0s",
                "group_interval": timing.watchdog_repeat_interval,
                "repeat_interval": f"{max(1, duration_seconds(timing.watchdog_repeat_interval) // 2)}s",
            }
        routes.append(route)
    for team, receiver in sorted(routing.by_team.items()):
        team_matcher = _matcher(L.TEAM, [team])
        # A page reaches the team and, continuing, whoever is on call; the rest reaches the team only.
        routes.append({"receiver": receiver, "matchers": [team_matcher, _matcher(SEVERITY, [CRITICAL])], "continue": True})
        routes.append({"receiver": receiver, "matchers": [team_matcher, f'{SEVERITY}!="{CRITICAL}"']})
    for environment, by_severity in sorted(routing.by_environment.items()):
        severity_routes = [
            {"receiver": by_severity[severity], "matchers": [_matcher(SEVERITY, [severity])]}
            for severity in SEVERITIES
            if severity in by_severity
        ]
        routes.append(
            {
                "receiver": routing.default_receiver,
                "matchers": [_matcher(L.ENVIRONMENT, [environment])],
                "routes": severity_routes,
            }
        )
    return routes


def _inhibit_rule(inhibition: Inhibition) -> dict:
    return {
        "source_matchers": [_matcher(ALERTNAME, [alert.name for alert in inhibition.sources])],
        "target_matchers": [_matcher(ALERTNAME, [alert.name for alert in inhibition.targets])],
        "equal": list(inhibition.equal),
    }


def render(
    receivers: list[Receiver],
    routing: Routing,
    timing: Timing = Timing(),
    smtp: Smtp | None = None,
    inhibitions: tuple[Inhibition, ...] = INHIBITIONS,
    links: Links = Links(),
) -> dict:
    config: dict = {}
    if smtp is not None:
        config["global"] = _global(smtp)
    config["route"] = {
        "receiver": routing.default_receiver,
        "group_by": list(GROUP_BY),
        "group_wait": timing.group_wait,
        "group_interval": timing.group_interval,
        "repeat_interval": timing.repeat_interval,
        "routes": _routes(routing, timing),
    }
    config["inhibit_rules"] = [_inhibit_rule(inhibition) for inhibition in inhibitions] + [SEVERITY_INHIBITION]
    config["receivers"] = [_receiver(receiver, links) for receiver in sorted(receivers, key=lambda r: r.name)]
    return config
