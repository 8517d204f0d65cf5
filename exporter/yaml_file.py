"""Reading a YAML configuration file that cannot explode: every reader of ours loads through here.

    data = load_yaml_file("pharos.yml", "configuration file", ConfigError)

Whatever the file holds, the answer is the parsed document or one line naming the file and what
is wrong, within a bounded time and memory:
- only a regular file is opened: a FIFO, a device or a directory is refused after `stat`;
- at most MAX_BYTES are read, and they must be UTF-8 (a UTF-16/32 byte order mark, a NUL byte or
  an invalid byte is named with its line);
- nesting deeper than MAX_DEPTH is refused before Python's recursion limit is reached;
- anchors and aliases may not expand to more than MAX_VALUES values or MAX_EXPANDED_CHARACTERS
  of text ("billion laughs"), and an alias may not refer to the node that holds it;
- a key given twice in one mapping is refused with both lines (PyYAML silently keeps the last);
- messages never quote a whole value: `shown` cuts it to about 80 characters.
"""

from __future__ import annotations

import os
import reprlib
import stat
from typing import Any, Callable

import yaml

MAX_BYTES = 1024 * 1024
MAX_BYTES_TEXT = "1 MiB"
MAX_DEPTH = 64
MAX_VALUES = 30_000  # about 1 s and 20 MB of pure-Python PyYAML here; far more than a configuration needs
MAX_EXPANDED_CHARACTERS = 10 * 1024 * 1024
MAX_SHOWN = 80

_BYTE_ORDER_MARKS = (  # UTF-32 first: its little-endian mark begins with UTF-16's
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
_UTF_8_MARK = b"\xef\xbb\xbf"


def load_yaml_file(path: str, what: str, error: Callable[[str], Exception]) -> Any:
    """The one YAML document in the file at `path`; otherwise `error("PATH: problem")`, one line.
    `what` names the file's role in messages ("configuration file", "stack file")."""
    text = _decode(_read(path, what, error), path, what, error)
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as refused:
        raise error(f"{path}: line {refused.mark.line + 1}: {refused.problem}") from None
    except yaml.reader.ReaderError as problem:
        line = text.count("\n", 0, problem.position) + 1
        raise error(f"{path}: line {line}: unacceptable character #x{problem.character:04x}: {problem.reason}") from None
    except yaml.MarkedYAMLError as problem:
        mark = problem.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise error(f"{path}: {where}not valid YAML: {_one_line(problem.problem or problem.context or 'unknown problem')}") from None
    except yaml.YAMLError as problem:
        raise error(f"{path}: not valid YAML: {_one_line(str(problem))}") from None


def regular_file_problem(path: str) -> str:
    """Why `path` cannot be read as an ordinary file ('' when it can), without opening it."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        return error.strerror or str(error)
    if stat.S_ISREG(mode):
        return ""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    return f"it is {kind}, not a regular file"


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxtuple, _SHORT.maxset = 3, 6, 6, 6, 6
_SHORT.maxstring = _SHORT.maxother = MAX_SHOWN


def shown(value: Any) -> str:
    """`repr(value)` for a message, at most about MAX_SHOWN characters, without building the whole
    repr first (a value from a file may be large)."""
    text = _SHORT.repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


# --- bytes to text -------------------------------------------------------------------------------
def _read(path: str, what: str, error: Callable[[str], Exception]) -> bytes:
    problem = regular_file_problem(path)
    if problem.startswith("it is "):
        raise error(f"{path}: {problem}; give the {what} itself")
    if problem:
        raise error(f"{path}: cannot read the {what}: {problem}")
    # O_NONBLOCK: should the path become a FIFO after stat, open() still returns at once.
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as failure:
        raise error(f"{path}: cannot read the {what}: {failure.strerror}") from None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise error(f"{path}: it is not a regular file; give the {what} itself")
        try:
            data = handle.read(MAX_BYTES + 1)
        except OSError as failure:
            raise error(f"{path}: cannot read the {what}: {failure.strerror}") from None
    if len(data) > MAX_BYTES:
        raise error(f"{path}: the {what} is larger than {MAX_BYTES_TEXT}; is it the right file?")
    return data


def _decode(data: bytes, path: str, what: str, error: Callable[[str], Exception]) -> str:
    for mark, encoding in _BYTE_ORDER_MARKS:
        if data.startswith(mark):
            raise error(f"{path}: the {what} is {encoding} text (it starts with a {encoding} byte order mark); save it as UTF-8")
    if data.startswith(_UTF_8_MARK):
        data = data[len(_UTF_8_MARK) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as problem:
        line = data.count(b"\n", 0, problem.start) + 1
        raise error(
            f"{path}: line {line}: byte 0x{data[problem.start]:02x} at offset {problem.start} is not UTF-8 "
            f"(a Latin-1 or binary file?); save it as UTF-8"
        ) from None
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise error(f"{path}: line {line}: a NUL byte at offset {nul}: a binary file, or UTF-16 text without a byte order mark; save it as UTF-8")
    return text


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- the loader ----------------------------------------------------------------------------------
class _Refused(yaml.YAMLError):
    """A document this loader refuses (not a syntax error): a problem and where."""

    def __init__(self, problem: str, mark):
        super().__init__(problem)
        self.problem, self.mark = problem, mark


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that bounds nesting and alias expansion and refuses duplicate keys."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._values = 0  # values composed so far, an alias counting as everything it stands for
        self._characters = 0  # scalar text composed so far, likewise
        self._aliased = False
        self._expansion: dict[int, tuple[int, int]] = {}  # id(anchored node) -> (values, characters)

    def fetch_flow_collection_start(self, TokenClass):
        # Checked in the scanner too: before composing, it looks ahead over every open bracket of a
        # line, a cost that grows with the square of their number.
        if self.flow_level >= MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels; a configuration file needs far fewer", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            expansion = self._expansion.get(id(node))
            if expansion is None:  # its anchor is still being composed
                raise _Refused(f"the alias *{event.anchor[:MAX_SHOWN]} refers to itself; recursive structures are not accepted", event.start_mark)
            self._aliased = True
            self._spend(*expansion, event.start_mark)
            return node
        if self._depth >= MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels; a configuration file needs far fewer", event.start_mark)
        values, characters = self._values, self._characters
        self._spend(1, len(event.value) if isinstance(event, yaml.ScalarEvent) else 0, event.start_mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if event.anchor is not None:
            self._expansion[id(node)] = (self._values - values, self._characters - characters)
        return node

    def _spend(self, values: int, characters: int, mark) -> None:
        self._values += values
        self._characters += characters
        if self._values > MAX_VALUES or self._characters > MAX_EXPANDED_CHARACTERS:
            limits = f"more than {MAX_VALUES} values or {MAX_EXPANDED_CHARACTERS // (1024 * 1024)} MiB of text"
            if self._aliased:
                raise _Refused(f"anchors and aliases expand to {limits}; is this a 'billion laughs' file?", mark)
            raise _Refused(f"the document holds {limits}; is it the right file?", mark)

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        # Checked on the nodes as written: merged keys (<<) are resolved later and may be overridden.
        first_lines: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue  # a collection as a key: SafeLoader refuses it when constructing
            identity, line = (key.tag, key.value), key.start_mark.line + 1
            if identity in first_lines:
                raise _Refused(f"key {shown(key.value)} appears twice (first at line {first_lines[identity]}); keep one", key.start_mark)
            first_lines[identity] = line
        return node

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as problem:  # a timestamp like 2024-13-01, a 5000-digit int
            value = shown(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            raise _Refused(f"cannot read {value} as {node.tag.rsplit(':', 1)[-1]}: {_one_line(str(problem))}", node.start_mark) from None

