"""The fleet: one global store that every environment writes to, and rules that watch them from it.

In the stack file (opt-in; without it every environment stays on its own, as before):

    fleet:
      store: global-store:8428       # VictoriaMetrics single node: remote write in, PromQL out
      retention: 90d                 # how long it keeps data (-retentionPeriod)
      vmalert: vmalert:8880          # where vmalert listens (scraped by every environment)
      alertmanagers: [alertmanager-1:9093, ...]   # where the global alerts go; default: the
                                     # first environment's (production's, when it is listed)

What `pharos build` makes of it (docs/fleet.md has the picture and the failure table):
- in every environment's prometheus.yml, a `remote_write` to the store whose relabelling drops
  `replica`, except on the Watchdog's `ALERTS` series, so that the store deduplicates a pair
  (`-dedup.minScrapeInterval` = the scrape interval) and still counts its replicas; and the jobs
  `global-store` and `vmalert` (label `component`), so that every environment reports them down;
- `fleet/rules/pharos-fleet.yml`: the global rules (alerts/fleet.py) for vmalert, one set per
  environment with its expected replicas and Alertmanagers; `fleet/pharos-fleet-tests.yml`, their
  `promtool test rules` cases;
- `fleet/fleet.yml`: the flags of `victoria-metrics` and `vmalert` (data paths excepted), and
  `fleet/notifier.yml`, vmalert's Alertmanagers: every member of a cluster, also one found by DNS.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pharos_monitoring.alerts import fleet as fleet_alerts
from pharos_monitoring.alerts.model import TEST_INTERVAL_SECONDS, duration_seconds
from pharos_monitoring.alerts.prometheus_rules import Tuning
from pharos_monitoring.alerts.rule_tests import test_group
from pharos_monitoring.exporter.catalogue import Label as L

from . import ha as high_availability

FLEET_KEY = "fleet"
FLEET_DIR = "fleet"
FLAGS_FILE = "fleet.yml"
NOTIFIER_FILE = "notifier.yml"
RULES_DIR = "rules"
RULES_FILE = "pharos-fleet.yml"
TESTS_FILE = "pharos-fleet-tests.yml"
STORE_JOB = "global-store"
VMALERT_JOB = "vmalert"
DEFAULT_RETENTION = "90d"
REMOTE_NAME = "global-store"
# Prometheus sends a remote-write batch at the latest this long after a sample (batch_send_deadline).
REMOTE_WRITE_BATCH_DEADLINE_SECONDS = 5
KEEP_REPLICA = "__tmp_pharos_keep_replica"
MAX_QUERY_LENGTH = "1MB"
HEARTBEAT_RECEIVER = "watchdog-heartbeat"  # the Watchdog's receiver with a fleet: no integrations
FLEET_ALERT_NAMES = tuple(
    alert.name for alert in fleet_alerts.alerts(fleet_alerts.Watched("production", 2, 3), "1m") + fleet_alerts.FLEET_WIDE
)


@dataclass(frozen=True)
class Fleet:
    store: str  # HOST:PORT of the VictoriaMetrics single node
    retention: str
    vmalert: str  # HOST:PORT vmalert listens on
    alertmanagers: tuple[str, ...]  # where vmalert sends the global alerts
    alertmanagers_by_dns: bool = False  # each a name for every member (a swarm's tasks.alertmanager)

    @property
    def store_url(self) -> str:
        return f"http://{self.store}"


def _retention(value: str) -> str:
    if not value[:-1].isdigit() or value[-1] not in "hdwy" or int(value[:-1]) < 1:
        return f"{value!r} is not a retention VictoriaMetrics takes: a whole number with h, d, w or y (e.g. 90d, 1y)"
    if value[-1] == "h" and int(value[:-1]) < 24:
        return f"{value!r}: VictoriaMetrics keeps at least 24h"
    return ""


def read(reader, value: Any, path: str, default_alertmanagers: tuple[str, ...], address_check, default_by_dns: bool = False) -> Fleet:
    """The `fleet:` section at `path`; `reader` is the stack file's reader (fail, mapping, strings).
    Without `alertmanagers`, the default ones, found by DNS when `default_by_dns`."""
    data = reader.mapping(value, path, {"store", "retention", "vmalert", "alertmanagers"})
    listed = reader.strings(data, "alertmanagers", path, address_check)
    return Fleet(
        store=reader.string(data, "store", path, None, address_check),
        retention=reader.string(data, "retention", path, DEFAULT_RETENTION, _retention),
        vmalert=reader.string(data, "vmalert", path, None, address_check),
        alertmanagers=listed or default_alertmanagers,
        alertmanagers_by_dns=not listed and default_by_dns,
    )


# --- prometheus.yml --------------------------------------------------------------------------------
def remote_write(fleet: Fleet | None) -> list[dict]:
    """Everything to the store, without `replica`, except on the Watchdog's ALERTS series: the store
    deduplicates a pair's identical series, and counts the replicas by their heartbeats."""
    if fleet is None:
        return []
    relabel = [
        {
            "source_labels": ["__name__", "alertname"],
            "regex": f"{fleet_alerts.ALERTS_SERIES};{fleet_alerts.WATCHDOG_ALERT}",
            "target_label": KEEP_REPLICA,
            "replacement": "yes",
        },
        # A label set to an empty value is removed: `replica` goes wherever it was not marked to stay.
        {"source_labels": [KEEP_REPLICA], "regex": "", "target_label": fleet_alerts.REPLICA, "replacement": ""},
        {"action": "labeldrop", "regex": KEEP_REPLICA},
    ]
    return [{"url": f"{fleet.store_url}/api/v1/write", "name": REMOTE_NAME, "write_relabel_configs": relabel}]


def scrape_targets(fleet: Fleet | None) -> list[tuple[str, str]]:
    """(job, address) of the fleet's own processes, scraped by every environment."""
    return [] if fleet is None else [(STORE_JOB, fleet.store), (VMALERT_JOB, fleet.vmalert)]


# --- the global rules ------------------------------------------------------------------------------
def silence_window(intervals) -> str:
    """How long an environment may stay unheard: four evaluations (each writes the Watchdog), and
    at least twice what a sample may take to show in the store (a remote-write batch, then the
    store's latency offset): 70 s with the shipped intervals, 20 s with `pharos up --fast`'s."""
    delay = REMOTE_WRITE_BATCH_DEADLINE_SECONDS + latency_offset_seconds(intervals.scrape_interval)
    return f"{max(4 * duration_seconds(intervals.evaluation_interval), 2 * delay)}s"


def watched(stack) -> list[fleet_alerts.Watched]:
    return [
        fleet_alerts.Watched(
            environment=environment.name,
            replicas=environment.ha.replicas if environment.ha else 1,
            alertmanagers=environment.ha.members if environment.ha else len(environment.alertmanagers),
        )
        for environment in stack.environments
    ]


def alerts(stack) -> list[tuple[str, fleet_alerts.Alert]]:
    """(environment whose thresholds apply, alert) for every global rule of the stack."""
    window = silence_window(stack.intervals)
    rules = [(each.environment, alert) for each in watched(stack) for alert in fleet_alerts.alerts(each, window)]
    first = stack.environments[0].name
    return rules + [(first, alert) for alert in fleet_alerts.FLEET_WIDE]


def _rule(alert, environment: str, stack, tuning: Tuning) -> dict:
    labels = dict(alert.labels)
    if alert not in fleet_alerts.FLEET_WIDE:
        labels[L.ENVIRONMENT] = environment  # also for an absence, whose result has no labels to route on
    return {
        "alert": alert.name,
        "expr": alert.expression(environment),
        "for": tuning.for_of(alert),
        "labels": labels,
        "annotations": alert.annotations(environment, stack.runbook_url),
    }


def rule_file(stack) -> dict:
    tuning = stack.tuning
    return {
        "groups": [
            {
                "name": "pharos.fleet",
                "interval": stack.intervals.evaluation_interval,
                # vmalert asks the store for fresh data: without it, the store's cache and its
                # 30 s latency offset make an absence show a minute late (measured).
                "params": {"nocache": ["1"]},
                "rules": [_rule(alert, environment, stack, tuning) for environment, alert in alerts(stack)],
            }
        ]
    }


def promtool_rule_file(stack) -> dict:
    """The rule file without vmalert's own group keys, for promtool (which refuses `params`)."""
    content = rule_file(stack)
    for group in content["groups"]:
        group.pop("params", None)
    return content


PROMTOOL_RULES_FILE = "pharos-fleet.promtool.yml"


def unit_tests(stack, rule_file_path: str) -> dict:
    """Each case of an environment's rule runs beside every other environment in good health: the
    other environments' rules read the same store, and must keep quiet."""
    tuning = stack.tuning
    environments = watched(stack)
    tests = []
    for environment, alert in alerts(stack):
        own = alert not in fleet_alerts.FLEET_WIDE
        background = tuple(series for other in environments if not own or other.environment != environment for series in fleet_alerts.healthy(other))
        for case in alert.test_cases(environment):
            case = dataclasses.replace(case, series=case.series + background)
            group = test_group(alert, case, environment, stack.runbook_url, tuning)
            if own:
                for check in group["alert_rule_test"]:
                    for expected in check["exp_alerts"]:
                        expected["exp_labels"][L.ENVIRONMENT] = environment
            group["name"] = f"fleet: {group['name']}"
            tests.append(group)
    return {"rule_files": [rule_file_path], "evaluation_interval": f"{TEST_INTERVAL_SECONDS}s", "tests": tests}


# --- fleet.yml: the flags ---------------------------------------------------------------------------
def _listen(address: str) -> str:
    host, _, port = address.rpartition(":")
    return address if host.replace(".", "").isdigit() else f":{port}"


def latency_offset_seconds(scrape_interval: str) -> int:
    """How far behind "now" the store answers: a scrape plus a remote-write batch may still be on
    their way (VictoriaMetrics' default is 30 s, as much as two production scrapes)."""
    return max(2 * duration_seconds(scrape_interval), REMOTE_WRITE_BATCH_DEADLINE_SECONDS)


def flags(stack) -> dict:
    fleet: Fleet = stack.fleet
    scrape = stack.intervals.scrape_interval
    return {
        "victoria-metrics": {
            "address": fleet.store,
            "flags": [
                f"-httpListenAddr={_listen(fleet.store)}",
                f"-retentionPeriod={fleet.retention}",
                # A pair writes every series twice; one sample per scrape interval is kept.
                f"-dedup.minScrapeInterval={scrape}",
                f"-search.latencyOffset={latency_offset_seconds(scrape)}s",
                # Grafana writes every selected value into a query: the overview of 1,000 services in
                # three environments sends 133 KB, past the 16 KB default (bench/fleet_bench.py --sizes 10x).
                f"-search.maxQueryLen={MAX_QUERY_LENGTH}",
            ],
            "data_flag": "-storageDataPath",
        },
        "vmalert": {
            "address": fleet.vmalert,
            "flags": [
                f"-httpListenAddr={_listen(fleet.vmalert)}",
                f"-datasource.url={fleet.store_url}",
                # Its own ALERTS into the store (the global view shows them), and its state back after a restart.
                f"-remoteWrite.url={fleet.store_url}",
                f"-remoteRead.url={fleet.store_url}",
                f"-evaluationInterval={stack.intervals.evaluation_interval}",
            ],
            "rules_flag": "-rule",
            "notifier_flag": "-notifier.config",  # NOTIFIER_FILE
        },
    }


def notifier_config(fleet: Fleet) -> dict:
    """Every Alertmanager gets every global alert, as from Prometheus: alerts are not gossiped, and a
    member that never got one cannot send it when the others are gone."""
    return high_availability.discovery(fleet.alertmanagers, fleet.alertmanagers_by_dns)
