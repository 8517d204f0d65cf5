"""Values formatted as Grafana formats the units our dashboards use, for the PNG renderer."""

from __future__ import annotations

import math

from . import house as h

_IEC = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_SI = ("", " K", " Mil", " Bil", " Tri")
_SUFFIXES = {h.REQUESTS_PER_SECOND: " req/s", h.PER_SECOND: " c/s", h.PER_MINUTE: " cpm"}


def _number(value: float, decimals: int | None) -> str:
    if decimals is not None:
        return f"{value:.{decimals}f}"
    magnitude = abs(value)
    if magnitude == 0 or magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".") if magnitude >= 0.01 else f"{value:.2g}"


def _scaled(value: float, base: float, names: tuple[str, ...], decimals: int | None, separator: str = " ") -> str:
    step = 0
    while abs(value) >= base and step < len(names) - 1:
        value /= base
        step += 1
    return f"{_number(value, decimals)}{separator}{names[step]}"


def _duration(seconds: float, decimals: int | None) -> str:
    magnitude = abs(seconds)
    for limit, divisor, name in ((1e-3, 1e-6, "µs"), (1, 1e-3, "ms"), (60, 1, "s"), (3600, 60, "min"), (86400, 3600, "hour")):
        if magnitude < limit:
            return f"{_number(seconds / divisor, decimals)} {name}"
    return f"{_number(seconds / 86400, decimals)} day"


def format_value(value: float, unit: str, decimals: int | None = None) -> str:
    """`value` in `unit` (a Grafana unit id) as Grafana would show it, e.g. 0.25 percentunit -> 25%."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if unit == h.RATIO:
        return f"{_number(value * 100, decimals)}%"
    if unit == h.SECONDS:
        return _duration(value, decimals)
    if unit == h.BYTES:
        return _scaled(value, 1024, _IEC, decimals)
    if unit == h.BYTES_PER_SECOND:
        return _scaled(value, 1024, _IEC, decimals) + "/s"
    if unit in _SUFFIXES:
        return _scaled(value, 1000, _SI, decimals, separator="").strip() + _SUFFIXES[unit]
    return _scaled(value, 1000, _SI, decimals, separator="")
