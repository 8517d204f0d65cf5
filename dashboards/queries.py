"""A dashboard's queries as Grafana would send them to Prometheus, without Grafana.

Template variables are resolved in order, as Grafana does: each `label_values(selector, label)`
runs with the variables before it already substituted; a multi-value variable selects all its
values (Grafana's "All"), a single-value one the first value unless one is chosen. Hidden
variables are resolved like the others (Grafana resolves them too). A selection is written into
the query as Grafana's Prometheus data source writes it (`format_selection`): several values of a
multi-value variable as `(a|b)`, each regex-escaped. Grafana's built-in intervals
(`$__rate_interval`, `$__interval`, `$__range`) are supplied by the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from .prometheus import Prometheus

_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\)$")
# `$1` is a capture reference of label_replace, which Grafana leaves alone (no variable has that name).
_VARIABLE = re.compile(r"\$\{(?P<braced>\w+)(?::\w+)?\}|\$(?P<plain>(?!\d+\b)\w+)")
_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|\\]")


class VariableError(Exception):
    """A template variable cannot be resolved; the message names it and says why."""


class NoValues(VariableError):
    """A variable lists no values: the Prometheus has no data for this dashboard in the range."""


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    panel_type: str
    ref: str
    expr: str  # as written in the dashboard, variables and all
    legend: str
    instant: bool


def panel_queries(dashboard: Mapping) -> list[PanelQuery]:
    """Every query of every panel, in layout order."""
    found = []
    for panel in dashboard.get("panels", []):
        for query in panel.get("targets", []):
            found.append(
                PanelQuery(panel["title"], panel["type"], query["refId"], query["expr"], query.get("legendFormat", ""), bool(query.get("instant")))
            )
    return found


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with `$name` and `${name}` replaced; an unknown variable is an error."""

    def replace(match: re.Match) -> str:
        name = match.group("braced") or match.group("plain")
        if name not in values:
            raise VariableError(f"${name} in {expr!r} is not a variable of the dashboard nor a built-in given to the renderer")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def _regex_escape(value: str) -> str:
    # As Grafana's Prometheus datasource: escaped for the regex, then for the PromQL string literal.
    return _REGEX_SPECIAL.sub(lambda m: "\\\\" + m.group(0), value)


def _string_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def format_selection(selected: Sequence[str], multi: bool) -> str:
    """How Grafana's Prometheus data source writes a variable's selection into a query
    (`interpolateQueryExpr`): a multi-value (or All) variable's values regex-escaped, one value as
    it is, several as `(a|b)`; a single-value variable's value escaped for the string only."""
    if multi:
        escaped = [_regex_escape(value) for value in selected]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    return _string_escape(selected[0])


@dataclass
class Resolution:
    """Resolved variables: `text` for queries, `selected` for people (the values chosen)."""

    text: dict[str, str] = field(default_factory=dict)
    selected: dict[str, list[str]] = field(default_factory=dict)


def resolve_variables(
    dashboard: Mapping, prometheus: Prometheus, start: float, end: float, builtins: Mapping[str, str], chosen: Mapping[str, Sequence[str]] | None = None
) -> Resolution:
    chosen = chosen or {}
    resolution = Resolution(text=dict(builtins))
    for variable in dashboard.get("templating", {}).get("list", []):
        name, kind = variable["name"], variable["type"]
        if kind == "datasource":
            continue  # the renderer talks to one Prometheus: the one it is given
        if kind != "query":
            raise VariableError(f"variable ${name}: type {kind!r} is not supported by the renderer (query and datasource are)")
        match = _LABEL_VALUES.match(variable["query"])
        if not match:
            raise VariableError(f"variable ${name}: query {variable['query']!r} is not label_values(selector, label)")
        selector = substitute(match.group("selector"), resolution.text)
        options = prometheus.label_values(match.group("label"), selector, start, end)
        multi = bool(variable.get("multi") or variable.get("includeAll"))
        if name in chosen:
            selected = list(dict.fromkeys(chosen[name]))
            if len(selected) > 1 and not multi:
                raise VariableError(f"variable ${name} takes one value, not {', '.join(selected)}: choose one")
            unknown = [value for value in selected if value not in options]
            if unknown:
                raise VariableError(f"variable ${name}: {', '.join(unknown)} not among its values {options or '(none)'}")
        else:
            selected = options if multi else options[:1]
        if not selected:
            raise NoValues(f"variable ${name}: {selector} has no series with label {match.group('label')!r} in the time range")
        resolution.selected[name] = selected
        resolution.text[name] = format_selection(selected, multi)
    return resolution
