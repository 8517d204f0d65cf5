"""How long a fault takes to become a notification, from a stack's intervals: the arithmetic that
`pharos up` prints and bench/time_to_signal.py sets beside live measurements.

For an error-ratio alert (`PharosHighErrorRate`) the signal passes through these stages, each
bounded by one of the stack's settings (typical = half an interval where the fault can land
anywhere in it, worst = the whole interval):

1. the application's first 5xx is scraped: a new series, up to one scrape interval;
2. `rate()` over the window needs a second sample, and the errors must make up `threshold` of the
   window's requests: threshold x window / fault ratio, rounded up to whole scrapes;
3. the recording rules evaluate the ratio: up to one evaluation interval;
4. the alerting rule sees it and turns pending: up to one more (the groups are evaluated apart);
5. `for`, counted in whole evaluations;
6. Alertmanager's `group_wait` for a new group, then delivery (milliseconds on loopback).

Once the fault ends, the errors must leave the window until they are below the threshold
(window x (1 - threshold / fault ratio)), the rules see it, and Alertmanager sends the resolved
notification at its group's next `group_interval` tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pharos_monitoring.alerts.catalogue import HIGH_ERROR_RATE
from pharos_monitoring.alerts.model import CRITICAL, duration_seconds
from pharos_monitoring.alerts.slo import BURN_RATES, SLO_BURN_PAGE

from ..config.stack_config import StackConfig


@dataclass(frozen=True)
class Stage:
    name: str
    typical: float
    worst: float


@dataclass(frozen=True)
class Estimate:
    firing: tuple[Stage, ...]
    resolved: tuple[Stage, ...]

    @property
    def typical(self) -> float:
        return sum(stage.typical for stage in self.firing)

    @property
    def worst(self) -> float:
        return sum(stage.worst for stage in self.firing)

    @property
    def resolved_typical(self) -> float:
        return sum(stage.typical for stage in self.resolved)

    @property
    def resolved_worst(self) -> float:
        return sum(stage.worst for stage in self.resolved)


def _whole(seconds: float, step: float) -> float:
    """`seconds` rounded up to a whole number of `step`s (samples and evaluations come in steps)."""
    return step * math.ceil(seconds / step - 1e-9) if seconds > 0 else 0.0


def _rules_to_notification(stack: StackConfig, alert) -> tuple[Stage, ...]:
    """From the condition holding in the scraped data to the firing message: the stages every
    alert of the catalogue goes through (recording rules, pending, `for`, group_wait)."""
    evaluation = duration_seconds(stack.intervals.evaluation_interval)
    hold = _whole(duration_seconds(stack.tuning.for_of(alert)), evaluation)
    group_wait = duration_seconds(stack.timing.group_wait)
    return (
        Stage("recording rules evaluated", evaluation / 2, evaluation),
        Stage("alerting rule evaluated: pending", evaluation / 2, evaluation),
        Stage(f"for {stack.tuning.for_of(alert)}", hold, hold),
        Stage(f"Alertmanager group_wait {stack.timing.group_wait}", group_wait, group_wait),
    )


def _clean_to_resolved(stack: StackConfig) -> tuple[Stage, ...]:
    """From the condition no longer holding to the resolved message."""
    scrape = duration_seconds(stack.intervals.scrape_interval)
    evaluation = duration_seconds(stack.intervals.evaluation_interval)
    group_interval = duration_seconds(stack.timing.group_interval)
    return (
        Stage("last clean sample scraped", scrape / 2, scrape),
        Stage("rules evaluated: inactive", evaluation, 2 * evaluation),
        Stage(f"Alertmanager group_interval {stack.timing.group_interval}", group_interval / 2, group_interval),
    )


def error_rate_signal(stack: StackConfig, environment: str, fault_ratio: float = 1.0) -> Estimate:
    """Seconds from `fault_ratio` of requests failing to the PharosHighErrorRate notification."""
    threshold = HIGH_ERROR_RATE.thresholds_for(environment)["ratio"]
    if not threshold < fault_ratio <= 1:
        raise ValueError(f"a fault ratio of {fault_ratio:g} never crosses {environment}'s threshold of {threshold:g}")
    intervals = stack.intervals
    scrape = duration_seconds(intervals.scrape_interval)
    window = duration_seconds(intervals.rate_window)
    crossing = max(scrape, _whole(threshold * window / fault_ratio, scrape))
    firing = (
        Stage("first 5xx scraped", scrape / 2, scrape),
        Stage(f"error ratio over {intervals.rate_window} above {threshold:g}", crossing, crossing),
        *_rules_to_notification(stack, HIGH_ERROR_RATE),
    )
    draining = window * (1 - threshold / fault_ratio)
    resolved = (
        Stage(f"errors leave the {intervals.rate_window} window", draining, draining),
        *_clean_to_resolved(stack),
    )
    return Estimate(firing, resolved)


def describe(estimate: Estimate) -> str:
    return (
        f"about {estimate.typical:.0f} s (at most {estimate.worst:.0f} s); "
        f"resolved about {estimate.resolved_typical:.0f} s after the fault ends"
    )


def burn_rate_signal(stack: StackConfig, objective: float) -> Estimate:
    """Seconds from a total outage of a service with an availability `objective` (e.g. 0.999) to
    the PharosErrorBudgetBurn page, the service having had steady traffic before. Of the page's
    burn rates the one whose long window fills with errors first decides: factor x budget x
    window seconds of errors (52 s for 14.4 x 0.1 % x 1 h); its short window fills sooner."""
    budget = 1 - objective
    fastest = min(BURN_RATES[CRITICAL], key=lambda rate: rate.factor * duration_seconds(rate.long))
    intervals = stack.intervals
    scrape = duration_seconds(intervals.scrape_interval)
    crossing = max(scrape, _whole(fastest.factor * budget * duration_seconds(fastest.long), scrape))
    firing = (
        Stage("first errors scraped", scrape / 2, scrape),
        Stage(f"errors above {fastest.factor:g} x {budget:.4g} of the {fastest.long} window", crossing, crossing),
        *_rules_to_notification(stack, SLO_BURN_PAGE),
    )
    # Resolved once the short window holds fewer errors than the burn rate allows.
    draining = duration_seconds(fastest.short) * (1 - fastest.factor * budget)
    resolved = (
        Stage(f"errors leave the {fastest.short} window", draining, draining),
        *_clean_to_resolved(stack),
    )
    return Estimate(firing, resolved)
