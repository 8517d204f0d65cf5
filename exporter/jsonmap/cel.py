"""The subset of CEL that json_exporter's `engine: cel` metrics use, compiled into closures.

json_exporter (0.7+) can evaluate a metric's path, labels and values as CEL expressions
(https://github.com/google/cel-spec). The document's members are variables (`counter`, or
`.counter` with CEL's leading dot) and the whole document is `root`; within an object metric,
labels and values are evaluated against each selected object the same way.

Supported: literals (numbers, strings with escapes and r"raw", true, false, null, lists, maps);
field selection and indexing; `+ - * / %`, comparisons, `in`, `&& || !`, `? :`; the macros
`has`, `all`, `exists`, `exists_one`, `filter`, `map`; the functions `size`, `int`, `uint`,
`double`, `string`, `bool`, `contains`, `startsWith`, `endsWith`, `matches`, `lowerAscii`,
`upperAscii`. Anything else is refused when the configuration loads.

Numbers from JSON are not split into CEL's int and double: arithmetic and comparison between
numbers just work, where CEL would refuse some mixes. An expression that refers to something the
document lacks raises CelMissing (json_exporter's `allow_missing_key` skips those quietly); any
other failure raises CelEvalError.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from .values import to_text, unescape

Env = tuple  # (scope: dict of macro variables, document)
Compiled = Callable[[Env], Any]

_NO_SCOPE: dict = {}


class CelSyntaxError(ValueError):
    """An expression that does not parse, or uses what this subset lacks; names the column."""


class CelEvalError(ValueError):
    """An expression failed on this document."""


class CelMissing(CelEvalError):
    """An expression refers to a member, key or index the document does not have."""


class Expression:
    """A compiled expression with the interface of a JSONPath template (see extract.py)."""

    get = None  # no fast single-field getter
    action = None

    def __init__(self, source: str, compiled: Compiled, static: Any):
        self.source = source
        self._compiled = compiled
        self.static: str | None = None if static is _NOT_STATIC else to_text(static)

    def __repr__(self) -> str:
        return f"CEL({self.source!r})"

    def evaluate(self, document: Any) -> Any:
        try:
            return self._compiled((_NO_SCOPE, document))
        except CelEvalError:
            raise
        except (TypeError, ValueError, ZeroDivisionError, OverflowError, re.error) as error:
            raise CelEvalError(f"{self.source!r}: {error}") from None
        except RecursionError:
            raise CelEvalError(f"{self.source!r}: the document is nested too deeply") from None

    def items(self, document: Any) -> list:
        """What an object metric's path selects: a list's elements, or the one value."""
        try:
            value = self.evaluate(document)
        except CelMissing:
            return []
        return value if value.__class__ is list else [value]

    def results(self, document: Any) -> list:
        try:
            return [self.evaluate(document)]
        except CelMissing:
            return []

    def text(self, document: Any) -> str | None:
        results = self.results(document)
        return to_text(results[0]) if results else None


_NOT_STATIC: Any = object()


def compile_expression(source: str) -> Expression:
    parser = _Parser(source)
    node = parser.expression()
    if parser.peek()[0] != "end":
        raise parser.fail("unexpected text after the expression")
    compiled, static = node
    return Expression(source, compiled, static)


# --- lexing ----------------------------------------------------------------------------------
_TOKENS = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[uU]?)
      | (?P<string>[rR]?(?:\"\"\"(?:.|\n)*?\"\"\"|'''(?:.|\n)*?'''|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'))
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>\|\||&&|==|!=|<=|>=|[-+*/%!<>?:.,\[\](){}])""",
    re.VERBOSE,
)
_KEYWORDS = {"true": True, "false": False, "null": None}
_RESERVED = {"as", "break", "const", "continue", "else", "for", "function", "if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"}


def _lex(source: str) -> list[tuple[str, Any, int]]:
    tokens = []
    position = 0
    while position < len(source):
        match = _TOKENS.match(source, position)
        if match is None:
            raise CelSyntaxError(f"unexpected character {source[position]!r} at column {position + 1} of {source!r}")
        kind = match.lastgroup
        text = match.group()
        if kind == "number":
            tokens.append(("literal", _number(text, position, source), position))
        elif kind == "string":
            tokens.append(("literal", _string(text, position, source), position))
        elif kind == "name":
            if text in _KEYWORDS:
                tokens.append(("literal", _KEYWORDS[text], position))
            elif text in _RESERVED:
                raise CelSyntaxError(f"{text!r} is a reserved word at column {position + 1} of {source!r}")
            else:
                tokens.append(("name", text, position))
        elif kind == "op":
            tokens.append(("op", text, position))
        position = match.end()
    tokens.append(("end", None, len(source)))
    return tokens


def _number(text: str, position: int, source: str) -> int | float:
    body = text.rstrip("uU")
    try:
        if body[:2].lower() == "0x":
            return int(body, 16)
        if any(char in body for char in ".eE"):
            return float(body)
        return int(body)
    except ValueError:
        raise CelSyntaxError(f"invalid number {text!r} at column {position + 1} of {source!r}") from None


def _string(text: str, position: int, source: str) -> str:
    raw = text[0] in "rR"
    body = text[1:] if raw else text
    quote = body[:3] if body[:3] in ('"""', "'''") else body[0]
    inner = body[len(quote) : -len(quote)]
    if raw or "\\" not in inner:
        return inner
    resolved = unescape(inner, "")  # the lexer already matched the quotes
    if resolved is None:
        raise CelSyntaxError(f"invalid escape in string at column {position + 1} of {source!r}")
    return resolved


# --- parsing into closures ---------------------------------------------------------------------
Node = tuple  # (compiled function, static value or _NOT_STATIC)


class _Parser:
    def __init__(self, source: str):
        self.source = source
        self.tokens = _lex(source)
        self.index = 0

    def fail(self, problem: str) -> CelSyntaxError:
        return CelSyntaxError(f"{problem} at column {self.peek()[2] + 1} of {self.source!r}")

    def peek(self) -> tuple:
        return self.tokens[self.index]

    def take(self) -> tuple:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, op: str) -> bool:
        token = self.peek()
        if token[0] == "op" and token[1] == op:
            self.index += 1
            return True
        return False

    def expect(self, op: str) -> None:
        if not self.accept(op):
            raise self.fail(f"expected {op!r}")

    def expression(self) -> Node:
        condition = self.binary(0)
        if not self.accept("?"):
            return condition
        then = self.expression()
        self.expect(":")
        otherwise = self.expression()
        test, when, other = condition[0], then[0], otherwise[0]
        return (lambda env: when(env) if _truth(test(env)) else other(env)), _NOT_STATIC

    _LEVELS = (("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"), ("*", "/", "%"))

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            token = self.peek()
            op = token[1] if token[0] in ("op", "name") else None
            if op not in self._LEVELS[level]:
                return left
            self.index += 1
            right = self.binary(level + 1)
            left = (_binary(op, left[0], right[0]), _NOT_STATIC)

    def unary(self) -> Node:
        if self.accept("!"):
            operand = self.unary()[0]
            return (lambda env: not _truth(operand(env))), _NOT_STATIC
        if self.accept("-"):
            inner = self.unary()
            operand = inner[0]
            static = -inner[1] if inner[1].__class__ in (int, float) else _NOT_STATIC
            return (lambda env: _negate(operand(env))), static
        return self.member()

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.accept("."):
                token = self.take()
                if token[0] != "name":
                    raise self.fail("expected a field name after '.'")
                if self.accept("("):
                    node = self.method(node, token[1])
                else:
                    node = (_select(node[0], token[1]), _NOT_STATIC)
            elif self.accept("["):
                index = self.expression()[0]
                self.expect("]")
                node = (_index(node[0], index), _NOT_STATIC)
            else:
                return node

    def primary(self) -> Node:
        token = self.take()
        kind, value = token[0], token[1]
        if kind == "literal":
            return (lambda env: value), value
        if kind == "op" and value == ".":
            name = self.take()
            if name[0] != "name":
                raise self.fail("expected a name after the leading '.'")
            return _variable(name[1], root_only=True), _NOT_STATIC
        if kind == "name":
            if self.accept("("):
                return self.function(value)
            return _variable(value, root_only=False), _NOT_STATIC
        if kind == "op" and value == "(":
            node = self.expression()
            self.expect(")")
            return node
        if kind == "op" and value == "[":
            items = self.arguments("]")
            functions = [item[0] for item in items]
            return (lambda env: [function(env) for function in functions]), _NOT_STATIC
        if kind == "op" and value == "{":
            return self.map_literal()
        self.index -= 1
        raise self.fail("expected a value")

    def arguments(self, closing: str) -> list[Node]:
        items: list[Node] = []
        if self.accept(closing):
            return items
        while True:
            items.append(self.expression())
            if self.accept(closing):
                return items
            self.expect(",")

    def map_literal(self) -> Node:
        entries = []
        if not self.accept("}"):
            while True:
                key = self.expression()[0]
                self.expect(":")
                entries.append((key, self.expression()[0]))
                if self.accept("}"):
                    break
                self.expect(",")
        return (lambda env: {key(env): value(env) for key, value in entries}), _NOT_STATIC

    def function(self, name: str) -> Node:
        if name == "has":
            return self.has()
        if name not in _GLOBALS:
            self.index -= 2
            raise self.fail(f"function {name!r} is not supported; supported: {', '.join(sorted(_GLOBALS))}, has")
        arguments = [argument[0] for argument in self.arguments(")")]
        function, arity = _GLOBALS[name]
        if len(arguments) != arity:
            raise self.fail(f"{name}() takes {arity} argument(s)")
        return (lambda env: function(*[argument(env) for argument in arguments])), _NOT_STATIC

    def has(self) -> Node:
        """has(a.b): whether `a` has the field `b` (the one macro not called on a receiver)."""
        owner = self.primary()[0]
        steps: list[tuple[str, Any]] = []
        while True:
            if self.accept("."):
                token = self.take()
                if token[0] != "name":
                    raise self.fail("expected a field name after '.'")
                steps.append(("field", token[1]))
            elif self.accept("["):
                steps.append(("index", self.expression()[0]))
                self.expect("]")
            else:
                break
        self.expect(")")
        if not steps or steps[-1][0] != "field":
            raise self.fail("has() takes a field selection, e.g. has(a.b)")
        for kind, step in steps[:-1]:
            owner = _select(owner, step) if kind == "field" else _index(owner, step)
        field = steps[-1][1]

        def has(env):
            value = owner(env)
            if value.__class__ is not dict:
                raise CelEvalError(f"has(): {type(value).__name__} has no fields")
            return field in value

        return has, _NOT_STATIC

    def method(self, target: Node, name: str) -> Node:
        if name in _MACROS:
            return self.macro(target[0], name)
        if name not in _METHODS:
            self.index -= 2
            raise self.fail(f"method {name!r} is not supported; supported: {', '.join(sorted(set(_METHODS) | set(_MACROS)))}")
        arguments = [argument[0] for argument in self.arguments(")")]
        function, arity = _METHODS[name]
        if len(arguments) != arity:
            raise self.fail(f"{name}() takes {arity} argument(s)")
        receiver = target[0]
        return (lambda env: function(receiver(env), *[argument(env) for argument in arguments])), _NOT_STATIC

    def macro(self, receiver: Compiled, name: str) -> Node:
        variable = self.take()
        if variable[0] != "name":
            raise self.fail(f"{name}() needs a variable name first, e.g. {name}(x, ...)")
        self.expect(",")
        first = self.expression()[0]
        second = None
        if self.accept(","):
            second = self.expression()[0]
        self.expect(")")
        if name != "map" and second is not None:
            raise self.fail(f"{name}() takes a variable and one expression")
        return _macro(name, receiver, variable[1], first, second), _NOT_STATIC


def _variable(name: str, root_only: bool) -> Compiled:
    def lookup(env):
        scope, document = env
        if not root_only and name in scope:
            return scope[name]
        if document.__class__ is dict and name in document:
            return document[name]
        if name == "root":
            return document
        raise CelMissing(f"no such attribute: {name}")

    return lookup


def _select(target: Compiled, field: str) -> Compiled:
    def select(env):
        value = target(env)
        if value.__class__ is not dict:
            raise CelEvalError(f"cannot select field {field!r} from {type(value).__name__}")
        try:
            return value[field]
        except KeyError:
            raise CelMissing(f"no such key: {field}") from None

    return select


def _index(target: Compiled, index: Compiled) -> Compiled:
    def select(env):
        value, key = target(env), index(env)
        if value.__class__ is list:
            if key.__class__ is float and key.is_integer():
                key = int(key)
            if key.__class__ is not int:
                raise CelEvalError(f"a list index must be an integer, got {key!r}")
            if not 0 <= key < len(value):
                raise CelMissing(f"index out of bounds: {key}")
            return value[key]
        if value.__class__ is dict:
            try:
                return value[key]
            except (KeyError, TypeError):
                raise CelMissing(f"no such key: {key}") from None
        raise CelEvalError(f"cannot index {type(value).__name__}")

    return select


def _truth(value: Any) -> bool:
    if value.__class__ is not bool:
        raise CelEvalError(f"expected a bool, got {type(value).__name__}")
    return value


def _negate(value: Any) -> Any:
    if value.__class__ in (int, float):
        return -value
    raise CelEvalError(f"cannot negate {type(value).__name__}")


def _is_number(value: Any) -> bool:
    return value.__class__ in (int, float)


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return a == b
    return a.__class__ is b.__class__ and a == b


def _ordered(op: str) -> Callable[[Any, Any], bool]:
    compare = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}[op]

    def ordered(a, b):
        if (_is_number(a) and _is_number(b)) or (a.__class__ is b.__class__ and a.__class__ in (str, bool)):
            return compare(a, b)
        raise CelEvalError(f"cannot compare {type(a).__name__} and {type(b).__name__} with {op}")

    return ordered


def _add(a: Any, b: Any) -> Any:
    if (_is_number(a) and _is_number(b)) or (a.__class__ is b.__class__ and a.__class__ in (str, list)):
        return a + b
    raise CelEvalError(f"no such overload: {type(a).__name__} + {type(b).__name__}")


def _arithmetic(op: str) -> Callable[[Any, Any], Any]:
    def arithmetic(a, b):
        if not (_is_number(a) and _is_number(b)):
            raise CelEvalError(f"no such overload: {type(a).__name__} {op} {type(b).__name__}")
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if b == 0:
            raise CelEvalError("division by zero")
        if op == "/":
            return int(a / b) if a.__class__ is int and b.__class__ is int else a / b
        return int(a - b * int(a / b)) if a.__class__ is int and b.__class__ is int else a % b

    return arithmetic


def _contains(container: Any, item: Any) -> bool:
    if container.__class__ is list:
        return any(_equal(element, item) for element in container)
    if container.__class__ is dict:
        return item in container
    raise CelEvalError(f"'in' needs a list or a map, got {type(container).__name__}")


def _binary(op: str, left: Compiled, right: Compiled) -> Compiled:
    if op == "&&":
        return lambda env: _truth(left(env)) and _truth(right(env))
    if op == "||":
        return lambda env: _truth(left(env)) or _truth(right(env))
    if op == "==":
        return lambda env: _equal(left(env), right(env))
    if op == "!=":
        return lambda env: not _equal(left(env), right(env))
    if op == "in":
        return lambda env: _contains(right(env), left(env))
    if op == "+":
        return lambda env: _add(left(env), right(env))
    function = _ordered(op) if op in ("<", "<=", ">", ">=") else _arithmetic(op)
    return lambda env: function(left(env), right(env))


def _elements(value: Any) -> list:
    if value.__class__ is list:
        return value
    if value.__class__ is dict:
        return list(value)  # CEL macros range over a map's keys
    raise CelEvalError(f"macros need a list or a map, got {type(value).__name__}")


def _macro(name: str, receiver: Compiled, variable: str, first: Compiled, second: Compiled | None) -> Compiled:
    def each(env):
        scope, document = env
        for element in _elements(receiver(env)):
            yield element, ({**scope, variable: element}, document)

    if name == "filter":
        return lambda env: [element for element, inner in each(env) if _truth(first(inner))]
    if name == "map":
        if second is None:
            return lambda env: [first(inner) for _, inner in each(env)]
        return lambda env: [second(inner) for _, inner in each(env) if _truth(first(inner))]
    if name == "all":
        return lambda env: all(_truth(first(inner)) for _, inner in each(env))
    if name == "exists":
        return lambda env: any(_truth(first(inner)) for _, inner in each(env))
    return lambda env: sum(1 for _, inner in each(env) if _truth(first(inner))) == 1  # exists_one


def _size(value: Any) -> int:
    if value.__class__ in (str, list, dict):
        return len(value)
    raise CelEvalError(f"size() of {type(value).__name__}")


def _to_int(value: Any) -> int:
    if value.__class__ is str:
        return int(value, 10)
    if value.__class__ in (int, float) and value == value and abs(value) != float("inf"):
        return int(value)
    raise CelEvalError(f"int() of {value!r}")


def _to_double(value: Any) -> float:
    if value.__class__ in (str, int, float):
        return float(value)
    raise CelEvalError(f"double() of {value!r}")


def _to_bool(value: Any) -> bool:
    if value.__class__ is bool:
        return value
    if value in ("true", "True", "TRUE", "t", "1"):
        return True
    if value in ("false", "False", "FALSE", "f", "0"):
        return False
    raise CelEvalError(f"bool() of {value!r}")


def _string_method(function: Callable[..., Any]) -> Callable[..., Any]:
    def method(receiver, *arguments):
        if receiver.__class__ is not str or any(argument.__class__ is not str for argument in arguments):
            raise CelEvalError("string functions take strings")
        return function(receiver, *arguments)

    return method


_MACROS = {"filter", "map", "all", "exists", "exists_one"}
_GLOBALS: dict[str, tuple[Callable[..., Any], int]] = {
    "size": (_size, 1),
    "int": (_to_int, 1),
    "uint": (_to_int, 1),
    "double": (_to_double, 1),
    "string": (lambda value: to_text(value), 1),
    "bool": (_to_bool, 1),
}
_METHODS: dict[str, tuple[Callable[..., Any], int]] = {
    "size": (_size, 0),
    "contains": (_string_method(lambda text, part: part in text), 1),
    "startsWith": (_string_method(lambda text, prefix: text.startswith(prefix)), 1),
    "endsWith": (_string_method(lambda text, suffix: text.endswith(suffix)), 1),
    "matches": (_string_method(lambda text, pattern: re.search(pattern, text) is not None), 1),
    "lowerAscii": (_string_method(lambda text: text.lower()), 0),
    "upperAscii": (_string_method(lambda text: text.upper()), 0),
}
