"""Annotation text with three kinds of placeholders, rendered for Prometheus or for a test's expectation.

- `{label.SERVICE}`: a label of the alert, named by its attribute in `exporter.catalogue.Label`
  (or `INTEGRATION`, `RULE_GROUP`, `ALERTMANAGER`: Prometheus' and Alertmanager's), so that a
  renamed label changes every summary with it;
- `{value:percent}`: the alert's value, in one of `FORMATS`;
- `{threshold.ratio:percent}`: one of the alert's thresholds, resolved per environment at build time.

Prometheus renders `{{ $labels.x }}` and `{{ $value | f }}` when the alert fires; `render` does the
same substitution in Python so that `promtool test rules` cases can state the exact annotations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

from pharos_monitoring.exporter.catalogue import Label

from . import upstream


@dataclass(frozen=True)
class Format:
    go: str  # a Go template pipeline stage that Prometheus applies to the value
    python: Callable[[float], str]  # the same formatting in Python, for thresholds and test expectations


# Go's %g and Python's %g agree for the ranges alerts use; both are exercised by `promtool test rules`.
FORMATS = {
    "percent": Format("humanizePercentage", lambda v: "%.4g%%" % (v * 100)),
    "seconds": Format('printf "%.3fs"', lambda v: "%.3fs" % v),
    "number": Format('printf "%.2f"', lambda v: "%.2f" % v),
    "count": Format('printf "%.0f"', lambda v: "%.0f" % v),
}

LABELS = {name: value for name, value in vars(Label).items() if name.isupper()} | {
    "INTEGRATION": upstream.INTEGRATION,
    "RULE_GROUP": upstream.RULE_GROUP,
    "ALERTMANAGER": upstream.ALERTMANAGER_URL,
    "MOUNTPOINT": upstream.NODE_MOUNTPOINT,
    "DEVICE": upstream.NODE_DEVICE,
    "SLO": upstream.SLO,
}

_PLACEHOLDER = re.compile(r"\{(?P<what>label|value|threshold)(?:\.(?P<name>\w+))?(?::(?P<format>\w+))?\}")


class TemplateError(ValueError):
    pass


def check(text: str, threshold_names: set[str]) -> None:
    """Raise TemplateError naming the first placeholder that cannot be rendered."""
    expand(text, {name: 0.0 for name in threshold_names}, lambda label: label, lambda fmt: "")


def expand(
    text: str,
    thresholds: Mapping[str, float],
    on_label: Callable[[str], str],
    on_value: Callable[[Format], str],
) -> str:
    """Replace every placeholder: labels and the value through the callbacks, thresholds by their value."""
    if "{{" in text or "}}" in text:
        raise TemplateError(f"{text!r}: write placeholders as {{label.NAME}}, not Go template braces")

    def replace(match: re.Match) -> str:
        what, name, fmt = match["what"], match["name"], match["format"]
        if what == "label":
            if name not in LABELS or fmt:
                raise TemplateError(f"{match[0]!r}: unknown label; known: {', '.join(sorted(LABELS))}")
            return on_label(LABELS[name])
        if fmt not in FORMATS:
            raise TemplateError(f"{match[0]!r}: needs a format, one of {', '.join(sorted(FORMATS))}")
        if what == "value":
            if name:
                raise TemplateError(f"{match[0]!r}: write the value as {{value:FORMAT}}")
            return on_value(FORMATS[fmt])
        if name not in thresholds:
            raise TemplateError(f"{match[0]!r}: no threshold {name!r}; this alert has {', '.join(sorted(thresholds)) or 'none'}")
        return FORMATS[fmt].python(thresholds[name])

    expanded = _PLACEHOLDER.sub(replace, text)
    leftover = re.search(r"[{}]", _PLACEHOLDER.sub("", text))
    if leftover:
        raise TemplateError(f"{text!r}: a brace that is not part of a placeholder")
    return expanded


def to_prometheus(text: str, thresholds: Mapping[str, float]) -> str:
    return expand(text, thresholds, lambda label: f"{{{{ $labels.{label} }}}}", lambda fmt: f"{{{{ $value | {fmt.go} }}}}")


def render(text: str, thresholds: Mapping[str, float], labels: Mapping[str, str], value: float | None) -> str:
    """The text Prometheus produces for an alert with these labels and this value."""

    def value_text(fmt: Format) -> str:
        if value is None:
            raise TemplateError(f"{text!r} shows the value, but the test case gives none")
        return fmt.python(value)

    return expand(text, thresholds, lambda label: labels[label], value_text)
