"""Kubernetes-style JSONPath templates, as json_exporter uses them, compiled once into closures.

A template is text with `{...}` actions: `{.a.b}`, `{.items[*].x}`, `planet-{.location}`. What an
action supports (https://kubernetes.io/docs/reference/kubectl/jsonpath/):

    .field  .field\\.with\\.dots  ['quoted key']  ["quoted key"]  .*  [*]  ..field (recursive)
    [0]  [-1]  [1:3]  [::2]  [0,2]  ['a','b']  $ and @ (the current value)
    [?(@.state == "ACTIVE")]  [?(@.count > 10)]  [?(@.enabled)]  ==  !=  <  >  <=  >=
    "literal text"  'literal'  1  2.5  true  false

Parsing happens at configuration load, so every syntax error is reported at start with its
column. Evaluation walks plain Python values (what `json.loads` returns) and never raises:
whatever is absent, of the wrong type or out of range simply matches nothing.

Deliberate differences from Kubernetes' implementation (a config that works there works here):
- `['a.b']` is the key `a.b` (Kubernetes re-parses it as `.a.b`); quoted keys may hold commas,
  spaces and dots, which Jolokia's MBean names need;
- an index out of range, a filter on a non-array and a filter whose left side is missing in some
  elements match nothing instead of failing the whole metric;
- numbers compare as numbers (Kubernetes refuses to compare the JSON number 2 with the literal
  `2`, an int), and values of different types are simply unequal;
- `[*]` and filters also iterate over an object's values; map order is the document's;
- `range`/`end` templates are refused: a mapping selects values, it does not loop over text.
"""

from __future__ import annotations

from typing import Any, Callable

from .values import to_text, unquote

MISSING: Any = object()  # what a single-valued path returns when it selects nothing

_TERMINATORS = frozenset(" \t\r\n.,[]$@{}")
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">")

Finder = Callable[[Any], list]


class PathSyntaxError(ValueError):
    """A template that does not parse; the message names the column."""


class Template:
    """A compiled template: literal text and actions."""

    def __init__(self, source: str, parts: list):
        self.source = source
        self._parts = tuple(parts)
        actions = [part for part in parts if isinstance(part, Action)]
        self.actions = tuple(actions)
        self.static: str | None = "".join(parts) if not actions else None
        # One action and nothing else: its results are usable as values, not only as text.
        self.action: Action | None = actions[0] if len(parts) == 1 and actions else None

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    @property
    def get(self) -> Callable[[Any], Any] | None:
        """For a template that is one single-valued path (fields and indexes only): a getter
        returning the value or MISSING, the fast path of label and value extraction."""
        return self.action.get if self.action is not None else None

    def items(self, node: Any) -> list:
        """The values a path selects (a metric's `path`, `children`): its only action's results."""
        assert self.action is not None, "items() needs a template made of one action"
        return self.action.find(node)

    def results(self, node: Any) -> list:
        """What a value template yields: its action's results, or its text as one result."""
        if self.action is not None:
            return self.action.find(node)
        text = self.text(node)
        return [] if text is None else [text]

    def text(self, node: Any) -> str | None:
        """The template printed against `node` as json_exporter prints it (several results of
        an action separated by spaces), or None when an action selects nothing."""
        if self.static is not None:
            return self.static
        out = []
        for part in self._parts:
            if part.__class__ is str:
                out.append(part)
                continue
            results = part.find(node)
            if not results:
                return None
            out.append(" ".join(map(to_text, results)) if len(results) > 1 else to_text(results[0]))
        return unquote("".join(out))


class Action:
    """One `{...}`: a chain of steps from the current value."""

    def __init__(self, source: str, steps: list):
        self.source = source
        # get(node) -> the one selected value or MISSING, for paths that cannot select several.
        self.get: Callable[[Any], Any] | None = _single_getter(steps)
        self.find: Finder = _compile(steps, self.get)


def compile_template(source: str) -> Template:
    """Compile a json_exporter path, label or value template; PathSyntaxError names the column."""
    parts: list = []
    text_start = 0
    position = 0
    while True:
        brace = source.find("{", position)
        if brace < 0:
            break
        if brace > text_start:
            parts.append(source[text_start:brace])
        parser = _ActionParser(source, brace + 1)
        steps = parser.parse_action()
        parts.append(Action(source[brace : parser.position], steps))
        position = text_start = parser.position
    if text_start < len(source):
        parts.append(source[text_start:])
    if not parts:
        parts.append("")
    return Template(source, parts)


# --- parsing ---------------------------------------------------------------------------------
class _ActionParser:
    def __init__(self, source: str, position: int, end: int | None = None, closing: str | None = "}"):
        self.source = source
        self.position = position
        self.end = len(source) if end is None else end
        self.closing = closing

    def fail(self, problem: str, at: int | None = None) -> PathSyntaxError:
        column = (self.position if at is None else at) + 1
        return PathSyntaxError(f"{problem} at column {column} of {self.source!r}")

    def peek(self, length: int = 1) -> str:
        return self.source[self.position : min(self.position + length, self.end)]

    def parse_action(self) -> list:
        steps: list = []
        while True:
            if self.position >= self.end:
                if self.closing is None:
                    return steps
                raise self.fail("unclosed action: '{' without its '}'")
            char = self.source[self.position]
            if self.closing is not None and char == self.closing:
                self.position += 1
                return steps
            if char in " \t$@":
                self.position += 1
            elif char in "\r\n":
                raise self.fail("line break inside an action")
            elif self.peek(3) == "[?(":
                steps.append(self.parse_filter())
            elif self.peek(2) == "..":
                if steps and steps[-1] == ("recursive",):
                    raise self.fail("'..' twice in a row")
                self.position += 2
                steps.append(("recursive",))
                if self.position < self.end and _is_name_char(self.source[self.position]):
                    steps.append(self.parse_field())
            elif char == ".":
                self.position += 1
                steps.append(self.parse_field())
            elif char == "[":
                steps.append(self.parse_brackets())
            elif char in "\"'":
                steps.append(("literal", self.parse_quoted()))
            elif char in "+-" or char.isdigit():
                steps.append(("literal", self.parse_number()))
            elif _is_name_char(char):
                steps.append(("literal", self.parse_word()))
            else:
                raise self.fail(f"unexpected character {char!r}")

    def parse_field(self) -> tuple:
        start = self.position
        name: list[str] = []
        while self.position < self.end:
            char = self.source[self.position]
            if char == "\\" and self.position + 1 < self.end:
                name.append(self.source[self.position + 1])
                self.position += 2
                continue
            if char in _TERMINATORS:
                break
            name.append(char)
            self.position += 1
        field = "".join(name)
        if not field:
            raise self.fail("a '.' must be followed by a field name, '*' or '[...]'", start)
        return ("wildcard",) if field == "*" else ("field", field)

    def parse_word(self) -> bool:
        start = self.position
        while self.position < self.end and self.source[self.position] not in _TERMINATORS:
            self.position += 1
        word = self.source[start : self.position]
        if word in ("true", "false"):
            return word == "true"
        if word in ("range", "end"):
            raise self.fail(f"'{word}' templates are not supported in a mapping; select values with [*] or a filter", start)
        raise self.fail(f"unexpected word {word!r}; a field needs a leading dot, e.g. '.{word}'", start)

    def parse_number(self) -> int | float:
        start = self.position
        self.position += 1
        while self.position < self.end and (self.source[self.position].isdigit() or self.source[self.position] == "."):
            self.position += 1
        text = self.source[start : self.position]
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            raise self.fail(f"{text!r} is not a number", start) from None

    def parse_quoted(self) -> str:
        start = self.position
        quote = self.source[start]
        self.position += 1
        while self.position < self.end:
            char = self.source[self.position]
            if char == "\\":
                self.position += 2
                continue
            if char == quote:
                self.position += 1
                text = self.source[start : self.position]
                value = unquote(text)
                if value is text:
                    raise self.fail(f"invalid escape in {text}", start)
                return value
            self.position += 1
        raise self.fail("unterminated quoted string", start)

    def parse_brackets(self) -> tuple:
        start = self.position
        self.position += 1  # '['
        entries: list[str] = []
        entry_start = self.position
        while True:
            if self.position >= self.end:
                raise self.fail("unterminated '[': missing ']'", start)
            char = self.source[self.position]
            if char in "\"'":
                self.parse_quoted()
                continue
            if char in ",]":
                entries.append(self.source[entry_start : self.position].strip())
                self.position += 1
                if char == "]":
                    break
                entry_start = self.position
                continue
            self.position += 1
        selectors = [self.parse_selector(entry, start) for entry in entries]
        return selectors[0] if len(selectors) == 1 else ("union", selectors)

    def parse_selector(self, entry: str, at: int) -> tuple:
        if entry == "*":
            return ("wildcard",)
        if len(entry) >= 2 and entry[0] == entry[-1] and entry[0] in "\"'":
            key = unquote(entry)
            if key is entry:
                raise self.fail(f"invalid quoted key {entry}", at)
            return ("field", key)
        if not entry:
            raise self.fail("empty '[]': give an index, a slice, '*' or a quoted key", at)
        pieces = entry.split(":")
        if len(pieces) > 3:
            raise self.fail(f"invalid slice [{entry}]", at)
        numbers: list[int | None] = []
        for piece in pieces:
            piece = piece.strip()
            if piece == "":
                numbers.append(None)
                continue
            try:
                numbers.append(int(piece))
            except ValueError:
                raise self.fail(f"array index {piece!r} is not a number (quote a key: ['{piece}'])", at) from None
        if len(numbers) == 1:
            return ("index", numbers[0])
        step = numbers[2] if len(numbers) == 3 else None
        if step is not None and step <= 0:
            raise self.fail(f"slice step must be greater than 0 in [{entry}]", at)
        return ("slice", numbers[0], numbers[1], step)

    def parse_filter(self) -> tuple:
        start = self.position
        self.position += 3  # '[?('
        body_start = self.position
        depth = 0
        while True:
            if self.position >= self.end:
                raise self.fail("unterminated filter: missing ')]'", start)
            char = self.source[self.position]
            if char in "\"'":
                self.parse_quoted()
                continue
            if char == "(":
                depth += 1
            elif char == ")":
                if depth == 0:
                    break
                depth -= 1
            self.position += 1
        body_end = self.position
        self.position += 1
        if self.peek() != "]":
            raise self.fail("a filter must end with ')]'", start)
        self.position += 1
        return self.parse_condition(body_start, body_end)

    def parse_condition(self, start: int, end: int) -> tuple:
        operator_at = _find_operator(self.source, start, end)
        if operator_at is None:
            left = _ActionParser(self.source, start, end, closing=None).parse_action()
            return ("filter", left, "exists", [])
        position, operator = operator_at
        if operator not in _OPERATORS:
            hint = "; use '==' to compare" if operator == "=" else ""
            raise self.fail(f"unknown filter operator {operator!r}{hint}", position)
        left = _ActionParser(self.source, start, position, closing=None).parse_action()
        right = _ActionParser(self.source, position + len(operator), end, closing=None).parse_action()
        if not left or not right:
            raise self.fail(f"filter comparison {operator!r} needs a value on both sides", position)
        return ("filter", left, operator, right)


def _find_operator(source: str, start: int, end: int) -> tuple[int, str] | None:
    position = start
    while position < end:
        char = source[position]
        if char in "\"'":
            closing = source.find(char, position + 1, end)
            while closing > 0 and source[closing - 1] == "\\":
                closing = source.find(char, closing + 1, end)
            position = end if closing < 0 else closing + 1
            continue
        if char in "!<>=":
            stop = position
            while stop < end and source[stop] in "!<>=":
                stop += 1
            return position, source[position:stop]
        position += 1
    return None


def _is_name_char(char: str) -> bool:
    return char == "_" or char.isalnum()


# --- compiling -------------------------------------------------------------------------------
def _compile(steps: list, single: Callable[[Any], Any] | None = None) -> Finder:
    if single is None:
        single = _single_getter(steps)
    if single is not None:
        def find_one(node, get=single, missing=MISSING):
            value = get(node)
            return [] if value is missing else [value]

        return find_one
    functions = [_step_function(step) for step in steps]

    def find(node):
        values = [node]
        for function in functions:
            values = function(values)
            if not values:
                break
        return values

    return find


def _single_getter(steps: list) -> Callable[[Any], Any] | None:
    """A fast getter for paths of fields and plain indexes, which select at most one value."""
    if any(step[0] not in ("field", "index") for step in steps):
        return None
    keys = tuple((step[0] == "field", step[1]) for step in steps)
    if not keys:
        return lambda node: node
    if all(is_field for is_field, _ in keys) and len(keys) <= 3:
        return _field_getter(*(name for _, name in keys))

    def get(node, keys=keys, missing=MISSING):
        for is_field, key in keys:
            if is_field:
                if node.__class__ is not dict:
                    return missing
                node = node.get(key, missing)
                if node is missing:
                    return missing
            else:
                if node.__class__ is not list:
                    return missing
                try:
                    node = node[key]
                except IndexError:
                    return missing
        return node

    return get


def _field_getter(*names: str) -> Callable[[Any], Any]:
    """Getters for `.a`, `.a.b` and `.a.b.c`, unrolled: most mapping paths are one of these, and
    each is called once per series and scrape."""
    missing = MISSING
    if len(names) == 1:
        (first,) = names

        def get_1(node):
            return node.get(first, missing) if node.__class__ is dict else missing

        return get_1
    if len(names) == 2:
        first, second = names

        def get_2(node):
            if node.__class__ is dict:
                node = node.get(first, missing)
                if node.__class__ is dict:
                    return node.get(second, missing)
            return missing

        return get_2
    first, second, third = names

    def get_3(node):
        if node.__class__ is dict:
            node = node.get(first, missing)
            if node.__class__ is dict:
                node = node.get(second, missing)
                if node.__class__ is dict:
                    return node.get(third, missing)
        return missing

    return get_3


def _step_function(step: tuple) -> Callable[[list], list]:
    kind = step[0]
    if kind == "field":
        name = step[1]
        return lambda values: [value[name] for value in values if value.__class__ is dict and name in value]
    if kind == "index":
        index = step[1]

        def select_index(values):
            out = []
            for value in values:
                if value.__class__ is list and -len(value) <= index < len(value):
                    out.append(value[index])
            return out

        return select_index
    if kind == "slice":
        selection = slice(step[1], step[2], step[3])
        return lambda values: [item for value in values if value.__class__ is list for item in value[selection]]
    if kind == "wildcard":
        return _children_of_all
    if kind == "recursive":
        return _descendants
    if kind == "union":
        branches = [_step_function(branch) for branch in step[1]]
        return lambda values: [result for branch in branches for result in branch(values)]
    if kind == "literal":
        literal = step[1]
        return lambda values: [literal for _ in values]
    if kind == "filter":
        return _filter_function(step[1], step[2], step[3])
    raise AssertionError(f"unknown step {step!r}")


def _children(value: Any) -> list:
    if value.__class__ is list:
        return value
    if value.__class__ is dict:
        return list(value.values())
    return []


def _children_of_all(values: list) -> list:
    return [child for value in values for child in _children(value)]


def _descendants(values: list) -> list:
    """Every array and object at or below `values` that has children, in document order (as
    Kubernetes' `..`). Iterative: a deeply nested document must not exhaust the stack."""
    out = []
    stack = list(reversed(values))
    while stack:
        value = stack.pop()
        children = _children(value)
        if children:
            out.append(value)
            stack.extend(reversed(children))
    return out


def _filter_function(left_steps: list, operator: str, right_steps: list) -> Callable[[list], list]:
    left = _compile(left_steps)
    if operator == "exists":
        return lambda values: [item for value in values for item in _children(value) if left(item)]
    compare = _COMPARISONS[operator]
    left_get = _single_getter(left_steps)
    if left_get is not None and len(right_steps) == 1 and right_steps[0][0] == "literal":
        # The usual filter, [?(@.state == "ACTIVE")]: one field against a constant.
        return _constant_filter(left_get, operator, right_steps[0][1], compare)
    right = _compile(right_steps)

    def select(values):
        out = []
        for value in values:
            for item in _children(value):
                lefts = left(item)
                if len(lefts) != 1:
                    continue
                rights = right(item)
                if len(rights) == 1 and compare(lefts[0], rights[0]):
                    out.append(item)
        return out

    return select


def _constant_filter(get: Callable[[Any], Any], operator: str, constant: Any, compare: Callable[[Any, Any], bool]) -> Callable[[list], list]:
    missing = MISSING
    if operator == "==" and constant.__class__ is str:
        # Only a string equals a string: plain == is exact here, and much cheaper.
        return lambda values: [item for value in values for item in _children(value) if get(item) == constant]

    def select(values):
        out = []
        for value in values:
            for item in _children(value):
                selected = get(item)
                if selected is not missing and compare(selected, constant):
                    out.append(item)
        return out

    return select


def _comparable(a: Any, b: Any) -> bool:
    a_number = a.__class__ in (int, float)
    b_number = b.__class__ in (int, float)
    return (a_number and b_number) or (a.__class__ is b.__class__ and a.__class__ is str)


def _equal(a: Any, b: Any) -> bool:
    if a.__class__ is bool or b.__class__ is bool:
        return a is b
    return _comparable(a, b) and a == b


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": _equal,
    "!=": lambda a, b: not _equal(a, b),
    "<": lambda a, b: _comparable(a, b) and a < b,
    ">": lambda a, b: _comparable(a, b) and a > b,
    "<=": lambda a, b: _comparable(a, b) and a <= b,
    ">=": lambda a, b: _comparable(a, b) and a >= b,
}
