"""Service level objectives: error-budget recording rules and multiwindow, multi-burn-rate alerts.

A service may declare, per environment in the stack file, an availability objective (the share of
its requests answered without a 5xx) and a latency objective (the share answered faster than one
of its histogram's bucket bounds), both over `PERIOD`. `pharos build` renders, per objective, the
error ratio over every window of `WINDOWS` (`slo:sli_error:ratio_rate<window>`), over the period,
and the objective itself (`slo:objective:ratio`), in `rules/pharos-slo.yml`.

Two alerts of the catalogue read those series for every objective at once (the SRE workbook,
"Alerting on SLOs"): a page when the budget burns fast, a ticket when it leaks slowly. Each pairs
a long window (enough budget spent to matter) with a short one (still burning now, so that the
alert resolves soon after the fault ends). The burn rates, their windows and who hears of them
are the data of `BURN_RATES`, nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L
from pharos_monitoring.exporter.exposition import format_value

from . import promql as q
from .model import CRITICAL, WARNING, Alert, Case, Firing, duration_seconds, gauge
from .recording import SERVICE_LEVEL
from .upstream import BUCKET_BOUND, SLO

PERIOD = "30d"  # the objective's period: the burn rates below are relative to a budget over 30 days
AVAILABILITY = "availability"  # requests answered without a 5xx
LATENCY = "latency"  # requests answered faster than the objective's bound
KINDS = (AVAILABILITY, LATENCY)


@dataclass(frozen=True)
class BurnRate:
    """Alert when the errors over both windows exceed `factor` times the budget's sustainable rate."""

    factor: float
    long: str
    short: str

    @property
    def budget_spent(self) -> float:
        """Share of the period's budget gone when the long window burns at exactly `factor`."""
        return self.factor * duration_seconds(self.long) / duration_seconds(PERIOD)


# The workbook's table: 2 % of the budget in an hour or 5 % in six hours pages; 10 % in three days
# makes a ticket. Severity -> its burn rates.
BURN_RATES = {
    CRITICAL: (BurnRate(14.4, "1h", "5m"), BurnRate(6, "6h", "30m")),
    WARNING: (BurnRate(1, "3d", "6h"),),
}
# Every window recorded: those of BURN_RATES and the workbook's 1d/2h pair (3x), for dashboards.
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
assert {w for rates in BURN_RATES.values() for rate in rates for w in (rate.long, rate.short)} <= set(WINDOWS)

# The labels an objective's series are matched on: the team label (when set) stays on the SLIs only.
OBJECTIVE_LEVEL = (L.ENVIRONMENT, L.SERVICE, SLO)


@dataclass(frozen=True)
class Objective:
    environment: str
    service: str
    kind: str  # AVAILABILITY or LATENCY
    ratio: float  # share of requests that must be good over PERIOD, e.g. 0.999
    under_seconds: float | None = None  # LATENCY: the bucket bound a good request stays under
    team: str = ""  # the service's team label, which the SLIs and alerts keep

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"objective kind {self.kind!r}; known: {', '.join(KINDS)}")
        if (self.kind == LATENCY) != (self.under_seconds is not None):
            raise ValueError("a latency objective, and only it, needs under_seconds")

    @property
    def budget(self) -> float:
        return 1 - self.ratio

    def matchers(self) -> tuple[q.Matcher, ...]:
        return (q.eq(L.ENVIRONMENT, self.environment), q.eq(L.SERVICE, self.service))


def sli_record(window: str) -> str:
    return f"slo:sli_error:ratio_rate{window}"


OBJECTIVE_RECORD = "slo:objective:ratio"
PERIOD_RECORD = sli_record(PERIOD)


def objective_series(*matchers: q.Matcher) -> q.Expr:
    return q.selector(OBJECTIVE_RECORD, *matchers)


def _error_ratio(objective: Objective, window: str) -> q.Expr:
    def requests(*extra: q.Matcher, series: str = c.HTTP_REQUEST_DURATION.count) -> q.Expr:
        return q.sum_by(SERVICE_LEVEL, q.rate(q.selector(series, *objective.matchers(), *extra), window))

    if objective.kind == AVAILABILITY:
        # A service without any 5xx yet has no 5xx series: 0 errors, not none.
        errors = q.either(requests(q.matches(L.STATUS, "5..")), q.binary(requests(), "*", 0))
        return q.divide(errors, requests())
    fast = requests(q.eq(BUCKET_BOUND, format_value(objective.under_seconds)), series=c.HTTP_REQUEST_DURATION.bucket)
    return q.binary(1, "-", q.divide(fast, requests()))


def rule_group(objective: Objective) -> dict:
    """One objective's recording rules; the period's ratio is the mean of the short-window ratios."""
    rules = [{"record": sli_record(window), "expr": str(_error_ratio(objective, window)), "labels": {SLO: objective.kind}} for window in WINDOWS]
    selector = q.selector(sli_record(WINDOWS[0]), *objective.matchers(), q.eq(SLO, objective.kind))
    rules.append({"record": PERIOD_RECORD, "expr": str(q.over_time("avg_over_time", selector, PERIOD)), "labels": {SLO: objective.kind}})
    rules.append(
        {
            "record": OBJECTIVE_RECORD,
            "expr": str(q.vector(objective.ratio)),
            "labels": {L.ENVIRONMENT: objective.environment, L.SERVICE: objective.service, SLO: objective.kind},
        }
    )
    return {"name": f"pharos.slo.{objective.service}.{objective.kind}", "rules": rules}


def rule_file(objectives: tuple[Objective, ...]) -> dict:
    return {"groups": [rule_group(objective) for objective in objectives]}


def without_objective(expr: q.Expr, kind: str) -> q.Expr:
    """`expr` but for the services that have an objective of `kind`: burn rates judge those."""
    return q.binary(expr, "unless", objective_series(q.eq(SLO, kind)), f"on ({L.ENVIRONMENT}, {L.SERVICE})")


def objective_gauge(environment: str, service: str, kind: str, ratio: float):
    """The recorded objective as a test input series."""
    return gauge(OBJECTIVE_RECORD, {L.ENVIRONMENT: environment, L.SERVICE: service, SLO: kind}, ratio)


# --- alerts --------------------------------------------------------------------------------------
def _burning(rate: BurnRate, window: str) -> q.Expr:
    """The window's error ratio where it exceeds `factor` x the objective's budget."""
    allowed = q.group(q.binary(rate.factor, "*", q.binary(1, "-", objective_series())))
    return q.binary(q.selector(sli_record(window)), ">", allowed, f"on ({', '.join(OBJECTIVE_LEVEL)}) group_left ()")


def burn_expr(rates: tuple[BurnRate, ...]) -> q.Expr:
    pairs = [q.both(_burning(rate, rate.long), _burning(rate, rate.short)) for rate in rates]
    expr = pairs[0]
    for pair in pairs[1:]:
        expr = q.either(expr, pair)
    return expr


def _windows_text(rates: tuple[BurnRate, ...]) -> str:
    """`14.4x the sustainable rate over 1h and 5m, or 6x over 6h and 30m`"""
    parts = [f"{rate.factor:g}x over {rate.long} and {rate.short}" for rate in rates]
    return parts[0].replace("x over", "x the sustainable rate over", 1) + "".join(f", or {part}" for part in parts[1:])


# Test series: the recorded ratios themselves (tests/test_slo.py and `pharos build` feed the
# raw request counters of real objectives through these rules).
_EXAMPLE_OBJECTIVE = 0.999


def _cases(severity: str):
    rates = BURN_RATES[severity]
    budget = 1 - _EXAMPLE_OBJECTIVE

    def ratios(service: str, by_window: dict[str, float], objective: bool = True) -> tuple:
        labels = {L.ENVIRONMENT: "production", L.SERVICE: service, SLO: AVAILABILITY}
        series = [gauge(sli_record(window), labels, value) for window, value in sorted(by_window.items())]
        if objective:
            series.append(gauge(OBJECTIVE_RECORD, labels, _EXAMPLE_OBJECTIVE))
        return tuple(series)

    def case_of(rate: BurnRate) -> list[Case]:
        burning = 2 * rate.factor * budget
        labels = {L.ENVIRONMENT: "production", L.SERVICE: "orders", SLO: AVAILABILITY}
        return [
            Case(
                f"{2 * rate.factor:g}x the budget over {rate.long} and {rate.short}",
                ratios("orders", {rate.long: burning, rate.short: burning}),
                (Firing(labels),),
            ),
            Case(
                f"{2 * rate.factor:g}x over {rate.long}, but no longer over {rate.short}: the fault is over",
                ratios("orders", {rate.long: burning, rate.short: budget / 2}),
            ),
        ]

    fast = rates[0]
    burning = 2 * fast.factor * budget
    return lambda t: [
        *(case for rate in rates for case in case_of(rate)),
        Case("a service without an objective", ratios("catalog", {fast.long: burning, fast.short: burning}, objective=False)),
    ]


SLO_BURN_PAGE = Alert(
    name="PharosErrorBudgetBurn",
    severity=CRITICAL,
    for_="1m",
    expr=lambda t: burn_expr(BURN_RATES[CRITICAL]),
    summary="{label.SERVICE} in {label.ENVIRONMENT} burns its {label.SLO} error budget fast",
    description=(
        f"The {{label.SLO}} errors of {{label.SERVICE}} in {{label.ENVIRONMENT}} burn its {PERIOD} error budget fast "
        f"({_windows_text(BURN_RATES[CRITICAL])}): at this pace the budget is gone within days. "
        "The service detail dashboard shows how much of it is left."
    ),
    cases=_cases(CRITICAL),
)

SLO_BURN_TICKET = Alert(
    name="PharosErrorBudgetSlowBurn",
    severity=WARNING,
    for_="30m",
    expr=lambda t: burn_expr(BURN_RATES[WARNING]),
    summary="{label.SERVICE} in {label.ENVIRONMENT} slowly spends its {label.SLO} error budget",
    description=(
        f"The {{label.SLO}} errors of {{label.SERVICE}} in {{label.ENVIRONMENT}} spend its {PERIOD} error budget "
        f"faster than it lasts ({_windows_text(BURN_RATES[WARNING])}): a ticket, not a page."
    ),
    cases=_cases(WARNING),
)

SLO_ALERTS = (SLO_BURN_PAGE, SLO_BURN_TICKET)
