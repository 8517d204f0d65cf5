"""JSON values as json_exporter turns them into label text and sample values.

json_exporter prints what a JSONPath selects as text (Go's formatting) and parses sample values
back from that text with Go's `strconv.ParseFloat`, then `strconv.ParseBool`; `<nil>` (JSON null)
becomes NaN. These functions give the same results straight from the Python value, without the
round trip through text for the common case of a number.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

NAN = float("nan")

# strconv.ParseBool
_GO_BOOLS = {
    "1": 1.0, "t": 1.0, "T": 1.0, "TRUE": 1.0, "true": 1.0, "True": 1.0,
    "0": 0.0, "f": 0.0, "F": 0.0, "FALSE": 0.0, "false": 0.0, "False": 0.0,
}  # fmt: skip


def go_float_text(value: float) -> str:
    """`strconv.FormatFloat(value, 'f', -1, 64)`: the shortest exact digits, never an exponent."""
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def to_text(value: Any) -> str:
    """A selected JSON value as label text, the way json_exporter prints it."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return go_float_text(value)
    if value is None:
        return "<nil>"
    try:
        # Go's json.Marshal sorts object keys and writes no spaces.
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (ValueError, RecursionError):
        return "<unprintable>"


def parse_go_number(text: str) -> float | None:
    """`SanitizeValue` of json_exporter: ParseFloat, then ParseBool, then `<nil>` as NaN."""
    boolean = _GO_BOOLS.get(text)
    if boolean is not None:
        return boolean
    if text == "<nil>":
        return NAN
    if not text or text != text.strip() or "_" in text:
        return None  # Python's float() accepts these, Go's ParseFloat does not
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return float.fromhex(text) if "0x" in text.lower() and "p" in text.lower() else None
    except (ValueError, OverflowError):
        return None


def to_number(value: Any) -> float | None:
    """A selected JSON value as a sample value, or None when json_exporter could not use it."""
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            return None
    if kind is bool:
        return 1.0 if value else 0.0
    if kind is str:
        return parse_go_number(unquote(value))
    if value is None:
        return NAN
    return None  # an object or an array


def unquote(text: str) -> str:
    """json_exporter's `UnquoteExtend`: text wrapped in matching double or single quotes loses
    them (and its escapes are resolved); anything else stays as it is."""
    if len(text) < 2 or text[0] != text[-1] or text[0] not in "\"'":
        return text
    inner = text[1:-1]
    if "\\" not in inner and text[0] not in inner:
        return inner
    resolved = unescape(inner, text[0])
    return text if resolved is None else resolved


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "\\": "\\", "'": "'", '"': '"'}


def unescape(text: str, quote: str) -> str | None:
    """Go's backslash escapes inside a quoted string; None when the text is not validly quoted."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == quote:
            return None  # an unescaped quote cannot appear inside
        if char != "\\":
            out.append(char)
            index += 1
            continue
        if index + 1 >= len(text):
            return None
        code = text[index + 1]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            index += 2
        elif code in "uU":
            width = 4 if code == "u" else 8
            digits = text[index + 2 : index + 2 + width]
            if len(digits) != width:
                return None
            try:
                out.append(chr(int(digits, 16)))
            except ValueError:
                return None
            index += 2 + width
        elif code == "x":
            try:
                out.append(chr(int(text[index + 2 : index + 4], 16)))
            except ValueError:
                return None
            index += 4
        else:
            return None
    return "".join(out)
