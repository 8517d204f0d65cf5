"""`promtool test rules` cases for the objectives of a stack: each objective's request counters fed
through its recording rules (`alerts.slo.rule_file`) and the burn-rate alerts, a sample every
15 s as the shipped scrape and evaluation intervals take them. For every objective:

- a total outage pages, at the time `signal_seconds` computes (2.25 minutes for 99.9 %);
- a 1-minute blip that spends 1 % of the budget (half of what the fast page is for) pages nobody;
- a slow leak at half the rate of the slower page warns, and pages nobody.

Each fault follows healthy traffic, and the alert is checked once before the fault too: healthy
traffic alerts nobody. An outage follows 6 h of it (every page window full: the time to page is
then that of a service with steady traffic); a blip or a leak 2 h (`HISTORY_SECONDS`), which keeps
the tests short. A 3d window then holds 2 h of traffic, not 3 days: the leak warns sooner than it
would in production (with 3 days of history, after about 6 h + `for`), and a blip would warn (its
6h and 3d ratios are both 1.2-3.6x the budget rate), which is why the blip case checks the page only.
"""

from __future__ import annotations

from typing import Sequence

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L
from pharos_monitoring.exporter.exposition import format_value

from .model import CRITICAL, Alert, Firing, Series, duration_seconds
from .prometheus_rules import Tuning
from .slo import AVAILABILITY, BURN_RATES, SLO_BURN_PAGE, SLO_BURN_TICKET, BurnRate, Objective
from .upstream import BUCKET_BOUND, SLO

STEP_SECONDS = 15  # the shipped scrape_interval and evaluation_interval
HISTORY_SECONDS = 2 * 3600  # healthy traffic before a blip or leak: the 6h window then dilutes a blip as a real one would
REQUESTS_PER_STEP = 100
BLIP_SECONDS = 60
BLIP_BUDGET_SHARE = 0.5  # of what the fastest page pairs is for (2 % of the budget): 1 %
BLIP_WATCH_SECONDS = 20 * 60  # after the blip: its ratios are highest at once and fall from there
LEAK_SHARE = 0.5  # of the slowest page's burn rate
LEAK_SECONDS = 2 * 3600
OUTAGE_SECONDS = 6 * 3600  # long enough to page for every objective from 90 % (the checks stop at the page)


Phase = tuple[int, float]  # (seconds, share of the requests that are errors)


def _ratio_over(window: str, phases: Sequence[Phase], at: int) -> float:
    """The error ratio over `window` at `at` seconds, for traffic that is even over time."""
    start, errors, requests = max(0, at - duration_seconds(window)), 0.0, 0.0
    begin = 0
    for seconds, ratio in phases:
        overlap = max(0, min(at, begin + seconds) - max(start, begin))
        errors, requests = errors + overlap * ratio, requests + overlap
        begin += seconds
    return errors / requests if requests else 0.0


def _first_alert(rates: Sequence[BurnRate], budget: float, phases: Sequence[Phase], from_: int, until: int) -> int | None:
    """The first sample time in [from_, until) at which some pair of `rates` has both windows above its burn rate."""
    for at in range(from_, until, STEP_SECONDS):
        for rate in rates:
            allowed = rate.factor * budget
            if _ratio_over(rate.long, phases, at) > allowed and _ratio_over(rate.short, phases, at) > allowed:
                return at
    return None


def signal_seconds(alert: Alert, objective: Objective, phases: Sequence[Phase], fault_start: int, tuning: Tuning = Tuning()) -> int | None:
    """Seconds from `fault_start` until `alert` fires: its windows cross, the rules see it (one
    evaluation), then `for`. None when they never cross within the phases."""
    end = sum(seconds for seconds, _ in phases)
    crossed = _first_alert(BURN_RATES[alert.severity], objective.budget, phases, fault_start, end)
    if crossed is None:
        return None
    return crossed - fault_start + STEP_SECONDS + duration_seconds(tuning.for_of(alert))


def outage(objective: Objective) -> list[Phase]:
    # A full history for every page window: the time to page is then what a service with steady traffic sees.
    history = max(duration_seconds(rate.long) for rate in BURN_RATES[CRITICAL])
    return [(history, 0.0), (OUTAGE_SECONDS, 1.0)]


def blip_ratio(objective: Objective) -> float:
    fast = BURN_RATES[CRITICAL][0]
    return min(1.0, BLIP_BUDGET_SHARE * fast.factor * objective.budget * duration_seconds(fast.long) / BLIP_SECONDS)


def blip(objective: Objective) -> list[Phase]:
    return [(HISTORY_SECONDS, 0.0), (BLIP_SECONDS, blip_ratio(objective)), (BLIP_WATCH_SECONDS, 0.0)]


def leak(objective: Objective) -> list[Phase]:
    slowest_page = BURN_RATES[CRITICAL][-1]
    return [(HISTORY_SECONDS, 0.0), (LEAK_SECONDS, LEAK_SHARE * slowest_page.factor * objective.budget)]


# --- series --------------------------------------------------------------------------------------
def _counter(increments: Sequence[tuple[int, float]]) -> str:
    """promtool's expanding notation for a counter from 0 growing by `per_step` for `steps` samples, phase by phase."""
    parts, value = ["0"], 0.0
    for steps, per_step in increments:
        parts.append(f"{format_value(value + per_step)}+{format_value(per_step)}x{steps - 1}")
        value += per_step * steps
    return " ".join(parts)


def _series(objective: Objective, phases: Sequence[Phase]) -> tuple[Series, ...]:
    steps = [(seconds // STEP_SECONDS, ratio) for seconds, ratio in phases]
    good = _counter([(n, REQUESTS_PER_STEP * (1 - ratio)) for n, ratio in steps])
    bad = _counter([(n, REQUESTS_PER_STEP * ratio) for n, ratio in steps])
    everything = _counter([(n, REQUESTS_PER_STEP) for n, _ in steps])
    labels = {
        L.JOB: objective.service,
        L.INSTANCE: f"{objective.service}-1:9841",
        L.SERVICE: objective.service,
        L.ENVIRONMENT: objective.environment,
        **({L.TEAM: objective.team} if objective.team else {}),
        L.METHOD: "GET",
        L.ROUTE: "/",
    }
    if objective.kind == AVAILABILITY:
        return (
            Series(c.HTTP_REQUEST_DURATION.count, {**labels, L.STATUS: "200"}, good),
            Series(c.HTTP_REQUEST_DURATION.count, {**labels, L.STATUS: "503"}, bad),
        )
    row = {**labels, L.STATUS: "200"}
    return (
        Series(c.HTTP_REQUEST_DURATION.bucket, {**row, BUCKET_BOUND: format_value(objective.under_seconds)}, good),
        Series(c.HTTP_REQUEST_DURATION.bucket, {**row, BUCKET_BOUND: "+Inf"}, everything),
        Series(c.HTTP_REQUEST_DURATION.count, row, everything),
    )


# --- test groups ---------------------------------------------------------------------------------
def _check(alert: Alert, at: int, firing: Firing | None, environment: str, runbook_base: str) -> dict:
    expected = []
    if firing is not None:
        expected = [{"exp_labels": {**firing.labels, **alert.labels}, "exp_annotations": alert.expected_annotations(environment, runbook_base, firing)}]
    return {"eval_time": f"{at}s", "alertname": alert.name, "exp_alerts": expected}


def _group(title: str, objective: Objective, phases: Sequence[Phase], checks: list[dict]) -> dict:
    return {
        "name": f"{objective.service} {objective.kind} {objective.ratio:.10g} in {objective.environment}: {title}",
        "interval": f"{STEP_SECONDS}s",
        "input_series": [{"series": series.selector(), "values": series.values} for series in _series(objective, phases)],
        "alert_rule_test": checks,
    }


def objective_tests(objective: Objective, runbook_base: str, tuning: Tuning = Tuning()) -> list[dict]:
    labels = {L.ENVIRONMENT: objective.environment, L.SERVICE: objective.service, SLO: objective.kind}
    if objective.team:
        labels[L.TEAM] = objective.team
    firing, env = Firing(labels), objective.environment
    groups = []

    phases = outage(objective)
    start = phases[0][0]  # every fault starts after healthy history
    page = signal_seconds(SLO_BURN_PAGE, objective, phases, start, tuning)
    if page is None:
        raise ValueError(f"{objective.service}: a total outage never pages with objective {objective.ratio:g}")
    checks = [_check(SLO_BURN_PAGE, start, None, env, runbook_base), _check(SLO_BURN_PAGE, start + page + STEP_SECONDS, firing, env, runbook_base)]
    groups.append(_group(f"a total outage pages within {page} s", objective, phases, checks))

    phases = blip(objective)
    start = phases[0][0]
    ends = start + BLIP_SECONDS
    checks = [_check(SLO_BURN_PAGE, at, None, env, runbook_base) for at in (ends, ends + 300, ends + BLIP_WATCH_SECONDS - STEP_SECONDS)]
    groups.append(_group(f"a {BLIP_SECONDS} s blip of {blip_ratio(objective):.3g} errors pages nobody", objective, phases, checks))

    phases = leak(objective)
    warned = signal_seconds(SLO_BURN_TICKET, objective, phases, start, tuning)
    end = sum(seconds for seconds, _ in phases)
    if warned is None or start + warned + STEP_SECONDS >= end:
        raise ValueError(f"{objective.service}: the slow leak of the test would not warn within its {end - start} s")
    checks = [
        _check(SLO_BURN_TICKET, start, None, env, runbook_base),
        _check(SLO_BURN_TICKET, start + warned + STEP_SECONDS, firing, env, runbook_base),
        *(_check(SLO_BURN_PAGE, at, None, env, runbook_base) for at in (start + LEAK_SECONDS // 2, end - STEP_SECONDS)),
    ]
    groups.append(_group(f"a slow leak warns within {warned} s and pages nobody", objective, phases, checks))
    return groups


def unit_tests(objectives: Sequence[Objective], runbook_base: str, rule_files: list[str], tuning: Tuning = Tuning()) -> dict:
    """The content of a promtool test file for `objectives`; `rule_files`: the SLO rules first, then the alerts."""
    return {
        "rule_files": rule_files,
        "evaluation_interval": f"{STEP_SECONDS}s",
        "tests": [group for objective in objectives for group in objective_tests(objective, runbook_base, tuning)],
    }
