"""A module's request body: static text, or json_exporter's templated body.

json_exporter renders `body.content` with Go's text/template when `templatize: true`; the probe's
query parameters are the data (`.myVal` is the list of values of `&myVal=`). This is the subset
its documentation uses, parsed at load so a typo fails at start:

    {{ .name }}                     the list, printed as Go prints it: [a b]
    {{ .name | first }}             functions: first, last, join SEP, default VALUE, quote,
    {{ index .name 0 }}               upper, lower, trim, toJson, duration SECONDS, randInt A B
    {{ "text" }}  {{ `raw` }}  {{ 12 }}

Anything else (`if`, `range`, variables, other functions) is refused with the column.
A parameter that the probe did not send is an empty list (Go's `missingkey=zero`).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

_ACTION = re.compile(r"\{\{-?(.*?)-?\}\}", re.DOTALL)
_TOKEN = re.compile(r'\s*(?:(\|)|(\.[A-Za-z_][A-Za-z0-9_]*)|"((?:[^"\\]|\\.)*)"|`([^`]*)`|(-?\d+)|([A-Za-z_][A-Za-z0-9_]*))')


class BodyTemplateError(ValueError):
    """A body template that does not parse; the message names the column."""


def _go_text(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_go_text(item) for item in value) + "]"
    return str(value)


def _first(values):
    return values[0] if isinstance(values, (list, tuple)) and values else None


def _last(values):
    return values[-1] if isinstance(values, (list, tuple)) and values else None


def _duration(seconds) -> str:
    """Sprig's `duration`: seconds as a Go duration string (95 -> 1m35s)."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


# name -> (number of arguments before the piped value, function)
_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "first": (0, _first),
    "last": (0, _last),
    "join": (1, lambda separator, values: separator.join(map(_go_text, values or []))),
    "default": (1, lambda fallback, value: value if value not in (None, "", [], ()) else fallback),
    "quote": (0, lambda value: json.dumps(_go_text(value) if value is not None else "")),
    "upper": (0, lambda value: _go_text(value).upper()),
    "lower": (0, lambda value: _go_text(value).lower()),
    "trim": (0, lambda value: _go_text(value).strip()),
    "toJson": (0, lambda value: json.dumps(value, separators=(",", ":"))),
    "duration": (0, _duration),
    "randInt": (1, lambda low, high: random.randrange(int(low), int(high))),
    "index": (1, lambda values, position: values[int(position)] if isinstance(values, list) and -len(values) <= int(position) < len(values) else None),
}


@dataclass(frozen=True)
class _Command:
    """`fn arg... ` or a lone operand; `piped` commands receive the previous result last."""

    function: str | None
    arguments: tuple  # ("param", name) | ("literal", value)


class BodyTemplate:
    """`render(params)` gives the bytes to POST."""

    def __init__(self, content: str, templatize: bool):
        self.content = content
        self.templatize = templatize
        self._pieces: list = _parse(content) if templatize else [content]

    def render(self, params: Mapping[str, Sequence[str]] | None = None) -> bytes:
        params = params or {}
        out = []
        for piece in self._pieces:
            out.append(piece if isinstance(piece, str) else _go_text(_run(piece, params)))
        return "".join(out).encode("utf-8")


def _parse(content: str) -> list:
    pieces: list = []
    position = 0
    for match in _ACTION.finditer(content):
        pieces.append(content[position : match.start()])
        pieces.append(_parse_pipeline(match.group(1), match.start(1), content))
        position = match.end()
    rest = content[position:]
    if "{{" in rest:
        raise BodyTemplateError(f"unclosed '{{{{' at column {position + rest.index('{{') + 1}")
    pieces.append(rest)
    return [piece for piece in pieces if piece != ""]


def _parse_pipeline(text: str, offset: int, content: str) -> list[_Command]:
    commands: list[_Command] = []
    words: list[tuple] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:
            column = offset + position + len(text[position:]) - len(text[position:].lstrip()) + 1
            raise BodyTemplateError(f"unsupported template syntax at column {column}: {text.strip()!r}")
        pipe, param, quoted, raw, number, word = match.groups()
        if pipe:
            commands.append(_command(words, text))
            words = []
        elif param:
            words.append(("param", param[1:]))
        elif quoted is not None:
            words.append(("literal", json.loads(f'"{quoted}"')))
        elif raw is not None:
            words.append(("literal", raw))
        elif number is not None:
            words.append(("literal", int(number)))
        else:
            words.append(("function", word))
        position = match.end()
    commands.append(_command(words, text))
    for index, command in enumerate(commands):
        if command.function is None:
            continue
        wanted, _ = _FUNCTIONS[command.function]
        given = len(command.arguments) + (1 if index > 0 else 0)
        if given != wanted + 1:
            raise BodyTemplateError(f"{command.function} takes {wanted + 1} argument(s), got {given} in {{{{{text}}}}}")
    return commands


def _command(words: list[tuple], text: str) -> _Command:
    if not words:
        raise BodyTemplateError(f"empty command in {{{{{text}}}}}")
    head = words[0]
    if head[0] == "function":
        if head[1] not in _FUNCTIONS:
            known = ", ".join(sorted(_FUNCTIONS))
            raise BodyTemplateError(f"unknown function {head[1]!r} in {{{{{text}}}}}; supported: {known}")
        if any(word[0] == "function" for word in words[1:]):
            raise BodyTemplateError(f"nested function calls are not supported in {{{{{text}}}}}")
        return _Command(head[1], tuple(words[1:]))
    if len(words) > 1:
        raise BodyTemplateError(f"unexpected {len(words) - 1} extra operand(s) in {{{{{text}}}}}")
    return _Command(None, (head,))


def _run(commands: list[_Command], params: Mapping[str, Sequence[str]]) -> Any:
    result: Any = None
    for index, command in enumerate(commands):
        arguments = [list(params.get(value, ())) if kind == "param" else value for kind, value in command.arguments]
        if command.function is None:
            result = arguments[0]
            continue
        if index > 0:
            arguments.append(result)
        result = _FUNCTIONS[command.function][1](*arguments)
    return result
