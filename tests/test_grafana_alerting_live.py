"""Every Grafana alert query against a live Prometheus that scraped the real exporter in front of
real demo services (tests/stack.py), with production's thresholds as that Prometheus has.

An alert query returns only the series past its threshold, so on a healthy stack most return
nothing, and rightly. Three checks cover that:
1. Prometheus accepts every query exactly as the rule holds it;
2. every query with its comparisons made `bool` (`x > 0.05` -> `x > bool 0.05`) returns data: the
   same selectors, label matchers, joins and aggregations, answered whether or not the threshold is
   crossed, so a misspelt metric or label, or a join that matches nothing, leaves it empty;
3. with faults injected into a demo service, the exact queries of the alerts those faults cause
   return that service.
The swarm alerts need a Docker Swarm's series: tests/test_docker_swarm.py fires their Prometheus
rules in a real swarm, and test_grafana_alerting.py proves each Grafana query is that rule's text.
The node alerts need node_exporter's: tests/test_build.py runs their parts against a real one.
"""

from __future__ import annotations

import re
import time

import pytest
import requests

from pharos_monitoring.alerts import grafana
from pharos_monitoring.alerts import recording as r
from pharos_monitoring.alerts.catalogue import ALERTS, HEALTH_CHECK_FAILING, HIGH_ERROR_RATE, HIGH_LATENCY, NODE_ALERTS, SERVICE_TARGETS_MISSING, SWARM_ALERTS, WATCHDOG
from pharos_monitoring.demo.faults import KNOBS
from pharos_monitoring.exporter.catalogue import Label as L
from stack import INSTANCES, RULES_ENVIRONMENT, RUNBOOK_BASE, SCRAPE_INTERVAL, StackError

pytestmark = pytest.mark.slow

DATASOURCE_UID = "pharos-prometheus"
NEEDS_A_SWARM = {alert.name for alert in SWARM_ALERTS + (SERVICE_TARGETS_MISSING,)}  # the swarm collector's desired tasks
# node_exporter's series: every part of these expressions runs against a real node_exporter and
# Prometheus in tests/test_build.py; this stack scrapes no node_exporter.
NEEDS_A_SWARM |= {alert.name for alert in NODE_ALERTS}
RETRY_SECONDS = 90
_COMPARISON = re.compile(r" (==|!=|>=|<=|>|<) (?!bool )")  # alerts/promql.py spaces binary operators, never label matchers

FAULTY = next(instance for instance in INSTANCES if instance.environment == RULES_ENVIRONMENT and instance.service == "billing")
FAULTS = {"error_ratio": 0.5, "latency_ms": 1500.0, "unhealthy": True}
CAUSED = (HIGH_ERROR_RATE, HIGH_LATENCY, HEALTH_CHECK_FAILING)  # production thresholds: 5% errors, p99 1s, a failing check


def grafana_rules() -> list[dict]:
    group = grafana.rules_file(RULES_ENVIRONMENT, DATASOURCE_UID, RUNBOOK_BASE, SCRAPE_INTERVAL)["groups"][0]
    return group["rules"]


def query_of(rule: dict) -> str:
    return rule["data"][0]["model"]["expr"]


def with_bool_comparisons(expr: str) -> str:
    return _COMPARISON.sub(r" \1 bool ", expr)


@pytest.fixture(scope="module")
def warm_stack(live_stack):
    """The live stack once the recorded series and Alertmanager's delivery counters exist, and the
    5m request rates have enough history to pass the traffic floor of the HTTP alerts (a young
    series' rate over 5m reads low: Prometheus extrapolates it only a little past its samples)."""
    traffic_floor = HIGH_ERROR_RATE.thresholds_for(RULES_ENVIRONMENT)["min_request_rate"]
    needed = [
        r.SERVICE_UNAVAILABLE_RATIO.record,
        r.HTTP_ERROR_RATIO.record,
        r.HTTP_LATENCY_P99.record,
        r.GC_TIME_RATIO.record,
        r.MEMORY_USED_RATIO.record,
        f'{r.HTTP_REQUESTS_RATE.record}{{{L.SERVICE}="{FAULTY.service}", {L.ENVIRONMENT}="{FAULTY.environment}"}} > {traffic_floor}',
        'alertmanager_notifications_total{integration="webhook"} > 0',
    ]
    missing = live_stack.wait_for(needed, limit=180)
    assert not missing, f"the live stack never produced {missing}"
    return live_stack


def _empty_until_deadline(stack, queries: dict[str, str]) -> dict[str, str]:
    """Name -> query of those still returning nothing after RETRY_SECONDS (a rate needs history)."""
    pending = dict(queries)
    ends = time.monotonic() + RETRY_SECONDS
    while pending:
        pending = {name: expr for name, expr in pending.items() if not stack.query(expr)}
        if not pending or time.monotonic() > ends:
            break
        time.sleep(2)
    return pending


def test_prometheus_accepts_every_query_as_the_rule_holds_it(warm_stack):
    rules = grafana_rules()
    for rule in rules:
        try:
            warm_stack.query(query_of(rule))
        except StackError as error:
            pytest.fail(f"{rule['title']}: {error}")
    assert len(rules) == len(ALERTS)


def test_every_query_returns_data_with_its_comparisons_made_bool(warm_stack):
    rules = grafana_rules()
    probes = {rule["title"]: with_bool_comparisons(query_of(rule)) for rule in rules if rule["title"] not in NEEDS_A_SWARM}
    assert len(probes) == len(rules) - len(NEEDS_A_SWARM) and NEEDS_A_SWARM <= {rule["title"] for rule in rules}
    # Only the Watchdog (vector(1)) has no comparison to turn into `bool`.
    unchanged = [name for name, probe in probes.items() if probe == query_of(next(x for x in rules if x["title"] == name))]
    assert unchanged == [WATCHDOG.name]
    empty = _empty_until_deadline(warm_stack, probes)
    assert not empty, "queries that return no data:\n" + "\n".join(f"{name}: {expr}" for name, expr in empty.items())


def test_the_exact_queries_fire_for_a_service_with_faults(warm_stack):
    app = warm_stack.apps[FAULTY]
    before = {name: value for name, value in requests.get(f"{app}/faults", timeout=10).json().items() if name in KNOBS}
    by_title = {rule["title"]: query_of(rule) for rule in grafana_rules()}
    warm_stack.set_faults(FAULTY, **FAULTS)
    try:
        selected = {alert.name: by_title[alert.name] for alert in CAUSED + (WATCHDOG,)}
        empty = _empty_until_deadline(warm_stack, selected)
        assert not empty, f"with faults {FAULTS} on {FAULTY}, these alert queries stayed empty: {empty}"
        for alert in CAUSED:
            services = {series["metric"].get(L.SERVICE) for series in warm_stack.query(by_title[alert.name])}
            assert FAULTY.service in services, (alert.name, services)
    finally:
        warm_stack.set_faults(FAULTY, **before)
