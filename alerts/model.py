"""The typed model of the alert catalogue: alerts, thresholds per environment, test cases, inhibitions.

An `Alert` holds everything one alert needs in one place: its PromQL (built from catalogue names
through `alerts.promql`), severity, `for`, thresholds with per-environment overrides, annotation
templates, and the series with which `promtool test rules` proves that it fires and that it keeps
quiet. Renderers (`prometheus_rules`, `rule_tests`, `alertmanager`, the Grafana dashboards) only read it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from . import templates
from .promql import Expr
from .upstream import SEVERITY

CRITICAL = "critical"  # someone is paged, in any hour
WARNING = "warning"  # a team channel, looked at in working hours
INFO = "info"  # context; never wakes anyone
SEVERITIES = (CRITICAL, WARNING, INFO)

# One Prometheus per environment; thresholds may differ between them.
ENVIRONMENTS = ("alpha", "beta", "production")

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def duration_seconds(text: str) -> int:
    """Seconds in a Prometheus duration such as `1h30m`, `5m`, `3d` or `0s` (the subset alerts use)."""
    match = _DURATION.match(text)
    if not text or not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 5m, 1h30m or 3d")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True)
class Threshold:
    """A threshold's default and its overrides for environments that need another value."""

    default: float
    alpha: float | None = None
    beta: float | None = None
    production: float | None = None

    def value(self, environment: str) -> float:
        if environment not in ENVIRONMENTS:
            raise KeyError(f"unknown environment {environment!r}; known: {', '.join(ENVIRONMENTS)}")
        override = getattr(self, environment)
        return self.default if override is None else override


assert tuple(f.name for f in dataclasses.fields(Threshold))[1:] == ENVIRONMENTS, "Threshold fields must follow ENVIRONMENTS"

# --- test data ---------------------------------------------------------------------------------
TEST_INTERVAL_SECONDS = 60  # one sample a minute in `promtool test rules` input series
TEST_SAMPLES = 60  # an hour of samples: enough for every `for` plus the rate window


@dataclass(frozen=True)
class Series:
    """One input series of a rule test: PromQL name, labels, and promtool's expanding notation."""

    name: str
    labels: Mapping[str, str]
    values: str

    def selector(self) -> str:
        pairs = ", ".join(f'{key}="{value}"' for key, value in sorted(self.labels.items()))
        return f"{self.name}{{{pairs}}}"


def _exact(value: float) -> str:
    """Full precision: `%g` would round a byte count like 1073741824 to 1.07374e+09."""
    return str(value) if isinstance(value, int) else repr(float(value))


def gauge(name: str, labels: Mapping[str, str], value: float) -> Series:
    return Series(name, labels, f"{_exact(value)}x{TEST_SAMPLES}")


def counter(name: str, labels: Mapping[str, str], per_minute: float) -> Series:
    """A counter growing by `per_minute` every sample (samples are a minute apart)."""
    return Series(name, labels, f"0+{_exact(per_minute)}x{TEST_SAMPLES}")


@dataclass(frozen=True)
class Firing:
    """An alert instance a case expects: its labels (besides alertname and severity) and value."""

    labels: Mapping[str, str]
    value: float | None = None


@dataclass(frozen=True)
class Case:
    """Series fed to Prometheus, and the alerts it must then show: none means it must keep quiet."""

    title: str
    series: tuple[Series, ...]
    firing: tuple[Firing, ...] = ()


CaseBuilder = Callable[[Mapping[str, float]], Sequence[Case]]
ExprBuilder = Callable[[Mapping[str, float]], Expr]


# --- alerts ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    for_: str
    expr: ExprBuilder  # called with this alert's thresholds for one environment
    summary: str  # `alerts.templates` placeholders: {label.SERVICE}, {value:percent}, {threshold.x:percent}
    description: str
    cases: CaseBuilder  # test series, called with the same thresholds as `expr`
    thresholds: Mapping[str, Threshold] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert {self.name}: severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")
        duration_seconds(self.for_)
        for text in (self.summary, self.description):
            try:
                templates.check(text, set(self.thresholds))
            except templates.TemplateError as error:
                raise ValueError(f"alert {self.name}: {error}") from None

    def thresholds_for(self, environment: str) -> dict[str, float]:
        return {name: threshold.value(environment) for name, threshold in sorted(self.thresholds.items())}

    def expression(self, environment: str) -> str:
        return str(self.expr(self.thresholds_for(environment)))

    @property
    def labels(self) -> dict[str, str]:
        return {SEVERITY: self.severity}

    @property
    def runbook_anchor(self) -> str:
        """The anchor GitHub and most Markdown renderers give the heading `## <name>`."""
        return self.name.lower()

    def runbook_url(self, base: str) -> str:
        return f"{base}#{self.runbook_anchor}"

    def annotations(self, environment: str, runbook_base: str) -> dict[str, str]:
        """Annotations as Prometheus templates, thresholds already resolved for `environment`."""
        thresholds = self.thresholds_for(environment)
        return {
            "description": templates.to_prometheus(self.description, thresholds),
            "runbook_url": self.runbook_url(runbook_base),
            "summary": templates.to_prometheus(self.summary, thresholds),
        }

    def expected_annotations(self, environment: str, runbook_base: str, firing: Firing) -> dict[str, str]:
        """The annotations Prometheus must produce for `firing`, for a rule test's `exp_annotations`."""
        thresholds = self.thresholds_for(environment)
        return {
            "description": templates.render(self.description, thresholds, firing.labels, firing.value),
            "runbook_url": self.runbook_url(runbook_base),
            "summary": templates.render(self.summary, thresholds, firing.labels, firing.value),
        }

    def test_cases(self, environment: str) -> list[Case]:
        return list(self.cases(self.thresholds_for(environment)))


@dataclass(frozen=True)
class Inhibition:
    """While a `sources` alert fires, `targets` alerts with the same `equal` labels stay silent."""

    sources: tuple[Alert, ...]
    targets: tuple[Alert, ...]
    equal: tuple[str, ...]
    why: str
