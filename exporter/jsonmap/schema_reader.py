"""Reading a parsed YAML mapping with errors that name the file, the key path and the fix."""

from __future__ import annotations

import difflib
from typing import Any, Callable

from ..config import ConfigError


class Reader:
    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {path}: {problem}" if path else f"{self.source}: {problem}")

    def mapping(self, value: Any, path: str, known: set[str] | None) -> dict:
        """`value` as a dict (None counts as empty); with `known`, an unknown key is an error
        that suggests the closest known one."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__} {_preview(value)}")
        if known is not None:
            for key in value:
                if key not in known:
                    close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    raise self.fail(f"{path}.{key}" if path else str(key), f"unknown key{hint} Known keys here: {', '.join(sorted(known))}")
        return value

    def typed(self, data: dict, key: str, path: str, kind: type | tuple, default: Any, check: Callable[[Any], str] | None = None) -> Any:
        if data.get(key) is None:
            return default
        value = data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join("number" if k is float else k.__name__ for k in kinds)
            raise self.fail(f"{path}.{key}", f"expected {names}, got {type(value).__name__} {_preview(value)}")
        if check is not None:
            problem = check(value)
            if problem:
                raise self.fail(f"{path}.{key}", problem)
        return value

    def choice(self, data: dict, key: str, path: str, choices: tuple[str, ...], default: str) -> str:
        value = self.typed(data, key, path, str, default)
        if value not in choices:
            raise self.fail(f"{path}.{key}", f"{value!r} is not one of {', '.join(choices)}")
        return value


def scalar_text(value: Any) -> str | None:
    """A YAML scalar as the text Go's YAML decoder puts in a string field; None for
    mappings and lists."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def _preview(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."
