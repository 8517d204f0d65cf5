"""Small builders for PromQL text, so that alert and recording-rule expressions are assembled from
catalogue names instead of typed as strings.

Each builder returns an `Expr` that knows its operator precedence; binary operators wrap an operand
in parentheses only when PromQL would otherwise bind it differently, so the rendered expressions
read like hand-written ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

ATOM = 100  # selectors, function calls, aggregations, numbers
# PromQL binary operator precedence, lowest first (see the Prometheus "Operators" documentation).
_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    "==": 3,
    "!=": 3,
    "<=": 3,
    "<": 3,
    ">=": 3,
    ">": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
}


@dataclass(frozen=True)
class Expr:
    text: str
    precedence: int = ATOM

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Matcher:
    label: str
    operator: str  # =, !=, =~, !~
    value: str

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.label}{self.operator}"{escaped}"'


def eq(label: str, value: str) -> Matcher:
    return Matcher(label, "=", value)


def ne(label: str, value: str) -> Matcher:
    return Matcher(label, "!=", value)


def matches(label: str, regex: str) -> Matcher:
    return Matcher(label, "=~", regex)


def not_matches(label: str, regex: str) -> Matcher:
    return Matcher(label, "!~", regex)


def one_of(values: Iterable[str]) -> str:
    """A regex matching exactly these literal values (label values of the catalogue are plain words)."""
    return "|".join(values)


def selector(name: str, *matchers: Matcher) -> Expr:
    if not matchers:
        return Expr(name)
    return Expr(name + "{" + ", ".join(str(m) for m in matchers) + "}")


def number(value: float) -> Expr:
    return Expr(format(value, ".10g"))


def group(expr: Expr) -> Expr:
    """Parentheses PromQL does not need but a reader does."""
    return Expr(f"({expr})")


def rate(series: Expr, window: str) -> Expr:
    return Expr(f"rate({series}[{window}])")


def aggregate(operator: str, expr: Expr, by: Iterable[str] | None = None, without: Iterable[str] | None = None) -> Expr:
    if by is not None:
        return Expr(f"{operator} by ({', '.join(by)}) ({expr})")
    if without is not None:
        return Expr(f"{operator} without ({', '.join(without)}) ({expr})")
    return Expr(f"{operator}({expr})")


def sum_by(labels: Iterable[str], expr: Expr) -> Expr:
    return aggregate("sum", expr, by=labels)


def sum_without(labels: Iterable[str], expr: Expr) -> Expr:
    return aggregate("sum", expr, without=labels)


def max_by(labels: Iterable[str], expr: Expr) -> Expr:
    return aggregate("max", expr, by=labels)


def max_without(labels: Iterable[str], expr: Expr) -> Expr:
    return aggregate("max", expr, without=labels)


def count_by(labels: Iterable[str], expr: Expr) -> Expr:
    return aggregate("count", expr, by=labels)


def histogram_quantile(quantile: float, buckets: Expr) -> Expr:
    return Expr(f"histogram_quantile({number(quantile)}, {buckets})")


def vector(value: float) -> Expr:
    return Expr(f"vector({number(value)})")


def binary(left: Expr | float, operator: str, right: Expr | float, modifier: str = "") -> Expr:
    """`left operator right`; `modifier` is e.g. `bool` or `ignoring (check)`."""
    precedence = _PRECEDENCE[operator]
    left, right = _expr(left), _expr(right)
    # PromQL binary operators are left-associative: an equal-precedence right operand needs parentheses.
    left_text = f"({left})" if left.precedence < precedence else str(left)
    right_text = f"({right})" if right.precedence <= precedence else str(right)
    middle = f"{operator} {modifier}" if modifier else operator
    return Expr(f"{left_text} {middle} {right_text}", precedence)


def _expr(value: Expr | float) -> Expr:
    return value if isinstance(value, Expr) else number(value)


def divide(numerator: Expr, denominator: Expr) -> Expr:
    return binary(numerator, "/", denominator)


def above(expr: Expr, threshold: Expr | float) -> Expr:
    return binary(expr, ">", threshold)


def at_least(expr: Expr, threshold: Expr | float) -> Expr:
    return binary(expr, ">=", threshold)


def equals(expr: Expr, value: float, as_bool: bool = False) -> Expr:
    return binary(expr, "==", value, "bool" if as_bool else "")


def both(left: Expr, right: Expr) -> Expr:
    return binary(left, "and", right)


def either(left: Expr, right: Expr) -> Expr:
    return binary(left, "or", right)


def unless(left: Expr, right: Expr, ignoring: Iterable[str] = ()) -> Expr:
    ignored = tuple(ignoring)
    return binary(left, "unless", right, f"ignoring ({', '.join(ignored)})" if ignored else "")


def over_time(function: str, series: Expr, window: str) -> Expr:
    """A range-vector function such as `increase`, `max_over_time` or `min_over_time`."""
    return Expr(f"{function}({series}[{window}])")


def predict_linear(series: Expr, window: str, seconds_ahead: int) -> Expr:
    return Expr(f"predict_linear({series}[{window}], {seconds_ahead})")


def below(expr: Expr, threshold: Expr | float) -> Expr:
    return binary(expr, "<", threshold)
