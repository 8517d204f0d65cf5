"""Grafana's provisioning for one environment: its Prometheus as data source, and the dashboards.

Written by `pharos build` when the stack file has a top-level `grafana:` section:

    grafana:
      prometheus_url: http://prometheus:9090     # default: http://<the environment's prometheus>
      dashboards_path: /etc/grafana/dashboards/pharos   # where Grafana finds the dashboard files
      url: https://grafana.example.com           # where people open Grafana: notifications link
                                                 # to the service-detail dashboard (none without it)

into the environment's output directory:

    grafana/provisioning/datasources/pharos.yml
    grafana/provisioning/dashboards/pharos.yml     (a file provider reading dashboards_path)
    grafana/dashboards/<uid>.json                  (every dashboard of dashboards/)
    grafana/provisioning/alerting/rules.yml, contact-points.yml, policies.yml
                                                   (Grafana-managed alerts: alerts/grafana*.py)
    grafana/smtp.env                               (GF_SMTP_* for mail contact points, when smtp is set)

`docker-compose.monitoring.yml` mounts each of them into Grafana as a Docker config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

GRAFANA_KEY = "grafana"
DATASOURCE_UID = "pharos-prometheus"
FLEET_DATASOURCE_UID = "pharos-fleet"
FLEET_DATASOURCE_NAME = "Pharos fleet (global store)"
DEFAULT_DASHBOARDS_PATH = "/etc/grafana/dashboards/pharos"
DATASOURCES_FILE = PurePosixPath("grafana/provisioning/datasources/pharos.yml")
DASHBOARD_PROVIDERS_FILE = PurePosixPath("grafana/provisioning/dashboards/pharos.yml")
DASHBOARDS_DIR = PurePosixPath("grafana/dashboards")
ALERTING_DIR = PurePosixPath("grafana/provisioning/alerting")
ALERT_RULES_FILE = ALERTING_DIR / "rules.yml"
CONTACT_POINTS_FILE = ALERTING_DIR / "contact-points.yml"
NOTIFICATION_POLICIES_FILE = ALERTING_DIR / "policies.yml"
SMTP_ENV_FILE = PurePosixPath("grafana/smtp.env")


# Scheme, host, optional port and path: nothing a message template or a query string could misread.
_BASE_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?$")


@dataclass(frozen=True)
class GrafanaSettings:
    prometheus_url: str = ""  # "" = http:// + the environment's `prometheus` address
    dashboards_path: str = DEFAULT_DASHBOARDS_PATH
    url: str = ""  # Grafana's address for people, e.g. https://grafana.example.com; "" = no links to it

    @property
    def service_dashboard_url(self) -> str:
        """The service-detail dashboard's URL, for the links in notifications; "" without `url`."""
        if not self.url:
            return ""
        from pharos_monitoring.dashboards import service_detail  # here: grafanalib loads only when Grafana is built

        return f"{self.url.rstrip('/')}/d/{service_detail.UID}"


def read(reader, value: Any, path: str = GRAFANA_KEY) -> GrafanaSettings:
    """The `grafana:` section; `reader` is the stack file's reader (fail, mapping, string)."""
    data = reader.mapping(value, path, {"prometheus_url", "dashboards_path", "url"})
    return GrafanaSettings(
        prometheus_url=reader.string(
            data, "prometheus_url", path, "",
            lambda url: "" if re.match(r"^https?://[^\s/]+", url) else f"{url!r} is not an http(s) URL",
        ),
        dashboards_path=reader.string(
            data, "dashboards_path", path, DEFAULT_DASHBOARDS_PATH,
            lambda p: "" if p.startswith("/") else f"{p!r} must be an absolute path inside the Grafana container",
        ),
        url=reader.string(
            data, "url", path, "",
            lambda url: "" if _BASE_URL.match(url) else f"{url!r} is not Grafana's http(s) address (scheme, host, optional port and path), e.g. https://grafana.example.com",
        ),
    )


def datasources(settings: GrafanaSettings, environment_name: str, prometheus: str, scrape_interval: str, fleet_store_url: str = "") -> dict:
    """The environment's Prometheus (the default) and, with a fleet, the global store beside it: the
    dashboards' `datasource` variable switches between them."""
    fleet = []
    if fleet_store_url:
        fleet = [
            {
                "name": FLEET_DATASOURCE_NAME,
                "uid": FLEET_DATASOURCE_UID,
                "type": "prometheus",  # VictoriaMetrics answers Prometheus' query API
                "access": "proxy",
                "url": fleet_store_url,
                "isDefault": False,
                "editable": False,
                "jsonData": {"timeInterval": scrape_interval},
            }
        ]
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": f"Prometheus {environment_name}",
                "uid": DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": settings.prometheus_url or f"http://{prometheus}",
                "isDefault": True,
                "editable": False,
                # Grafana's $__rate_interval is four times this: it must be the real scrape interval.
                "jsonData": {"timeInterval": scrape_interval},
            }
        ]
        + fleet,
    }


def dashboard_providers(settings: GrafanaSettings) -> dict:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "pharos",
                "folder": "Pharos",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,  # the code in dashboards/ is the source; edits in the UI would be lost
                "options": {"path": settings.dashboards_path},
            }
        ],
    }


def dashboards(fleet: bool = False) -> dict[str, str]:
    """File name -> JSON of every dashboard; with `fleet`, their environment picker is shown (the
    global data source holds every environment)."""
    from pharos_monitoring.dashboards import DASHBOARDS, file_name, house

    built = [module.build(fleet=fleet) for module in DASHBOARDS]
    return {file_name(dashboard): house.to_json(dashboard) for dashboard in built}


def alerting(stack, environment_name: str) -> dict[PurePosixPath, dict]:
    """Provisioning file -> content of Grafana-managed alerting for one environment: the catalogue's
    rules with that environment's thresholds, and the stack's receivers and routes (`stack` is the
    StackConfig; not imported, stack_config imports this module)."""
    from pharos_monitoring.alerts import grafana, grafana_notifications  # here: grafanalib loads only when Grafana is built

    rules = grafana.rules_file(
        environment_name, DATASOURCE_UID, stack.runbook_url, stack.intervals.evaluation_interval, stack.tuning
    )
    try:
        contact_points = grafana_notifications.contact_points_file(stack.receivers)
    except ValueError as error:
        from .stack_config import StackConfigError

        raise StackConfigError(f"{stack.source}: receivers.{error}") from None
    return {
        ALERT_RULES_FILE: rules,
        CONTACT_POINTS_FILE: contact_points,
        NOTIFICATION_POLICIES_FILE: grafana_notifications.policies_file(stack.receivers, stack.routing, stack.timing),
    }


def smtp_env(stack) -> str | None:
    """`GF_SMTP_*` lines (an env_file for Docker) for the stack's mail server; None without smtp."""
    if stack.smtp is None:
        return None
    from pharos_monitoring.alerts.grafana_notifications import smtp_environment

    return "".join(f"{name}={value}\n" for name, value in smtp_environment(stack.smtp).items())
