"""Route templates: collapse the IDs in URL paths and cap distinct routes per target.

Some applications (Stargate among them) report one full URL per request. Turned into label values
as they are, they would create a series per customer, order or session. `RouteTable.template`
strips scheme, host and query, replaces path segments that look like IDs with `{id}`, and keeps at
most `limit` distinct templates per target; the rest are summed under `__overflow__`. Which
template goes to overflow is decided once and kept, so a series never moves between buckets.

Guessing must not lie: a name with a few digits in it (`iso8601`, `rfc3339`, `1080p`) is a word,
not an ID. Where guessing is not enough, a target's configuration lists its route templates
(`routes: ["/orders/{id}", ...]`); a path matching one of them takes that template as it is.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from urllib.parse import urlsplit

from .catalogue import ROUTE_OVERFLOW, ROUTE_UNKNOWN

ID = "{id}"
_ID_SEGMENT = re.compile(
    r"""^(?:
        [0-9]+                                             # 123
      | [0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}  # UUID
      | (?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{16,}              # hex digests, object ids
      | (?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{20,}          # long tokens with digits (base64url)
      | [A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*  # JSON Web Tokens
      | [^/]*@[^/]+                                        # e-mail addresses
      | [0-9]+(?:[.,][0-9]+)+                              # 1.5, 2026.11.29
      | (?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{7,}  # short git SHAs: 3f2a9c1e
    )$""",
    re.VERBOSE,
)
# Four digits or more in a segment usually make an ID (ORD-000123, inv_20261129, 2026-11.pdf)...
_MANY_DIGITS = re.compile(r"^.*[0-9]{4,}.*$")
# ...but not in a name: letters, then at most 5 digits, then at most 4 letters (iso8601, rfc3339,
# iso20022, utf16le), or a few digits and a unit (1080p, 2160p).
_NAME_WITH_DIGITS = re.compile(r"^(?:[A-Za-z]{2,8}[0-9]{3,5}[A-Za-z]{0,4}|[0-9]{3,4}[A-Za-z]{1,2})$")
# Template placeholders applications already use (`{id}`, `:id`, `<id>`) are kept as they are.
_PLACEHOLDER = re.compile(r"^(?:\{[^/{}]+\}|:[A-Za-z_][A-Za-z0-9_]*|<[^/<>]+>)$")
_RAW_CACHE_LIMIT = 4096


def template(route: str) -> str:
    """The route template of a path or URL: `https://h/pets/42?x=1` -> `/pets/{id}`."""
    if not route or route == ROUTE_UNKNOWN:  # profiles report "no route" as ROUTE_UNKNOWN
        return ROUTE_UNKNOWN
    return "/".join(ID if _is_id(segment) else segment for segment in path_of(route).split("/"))


def path_of(route: str) -> str:
    """The path of a URL or path, without scheme, host, query or fragment, starting with `/`."""
    if "://" in route:
        route = urlsplit(route).path or "/"
    else:
        route = route.split("?", 1)[0].split("#", 1)[0]
    return route if route.startswith("/") else "/" + route


def _is_id(segment: str) -> bool:
    if not segment or _PLACEHOLDER.match(segment):
        return False
    if _ID_SEGMENT.match(segment):
        return True
    return bool(_MANY_DIGITS.match(segment)) and not _NAME_WITH_DIGITS.match(segment)


_TEMPLATE_PLACEHOLDER = re.compile(r"\{[^/{}]+\}")


def check_route_template(pattern: str) -> str:
    """What is wrong with `pattern` as a route template; "" when nothing is."""
    if not pattern.startswith("/"):
        return f"a route template starts with /, e.g. /orders/{{id}}; got {pattern!r}"
    if any(character in pattern for character in "?#") or "://" in pattern:
        return f"a route template is a path only, without scheme, host or query; got {pattern!r}"
    if any("{" in part or "}" in part for part in _TEMPLATE_PLACEHOLDER.split(pattern)):
        return f"placeholders are whole names in braces, e.g. {{id}}; got {pattern!r}"
    return ""


def compile_templates(patterns: tuple[str, ...]) -> tuple[tuple[re.Pattern, str], ...]:
    """(regex, template) per pattern: each `{name}` matches one non-empty path segment."""
    compiled = []
    for pattern in patterns:
        parts = _TEMPLATE_PLACEHOLDER.split(pattern)
        regex = "[^/]+".join(re.escape(part) for part in parts)
        compiled.append((re.compile(f"^{regex}/?$"), pattern))
    return tuple(compiled)


class RouteTable:
    """The templates of one target, capped at `limit`; callable as a Reading's route mapper."""

    def __init__(self, limit: int, templates: tuple[str, ...] = ()):
        self.limit = limit
        self._templates = compile_templates(templates)  # declared in the config: they win
        self._known: set[str] = set()
        self._raw: OrderedDict[str, str] = OrderedDict()
        # Concurrent scrapes of one target share the table: admission must not overshoot the cap.
        self._lock = threading.Lock()

    def __call__(self, route: str) -> str:
        cached = self._raw.get(route)
        if cached is not None:
            return cached
        templated = self._declared(route) or template(route)
        with self._lock:
            result = self._admit(templated)
            self._raw[route] = result
            if len(self._raw) > _RAW_CACHE_LIMIT:
                self._raw.popitem(last=False)
        return result

    def _declared(self, route: str) -> str | None:
        if not self._templates or not route or route == ROUTE_UNKNOWN:
            return None
        path = path_of(route)
        for regex, pattern in self._templates:
            if regex.match(path):
                return pattern
        return None

    def _admit(self, route: str) -> str:
        # Templates are never forgotten, so once the table is full every new one overflows.
        if route in self._known:
            return route
        if len(self._known) >= self.limit:
            return ROUTE_OVERFLOW
        self._known.add(route)
        return route

    def __len__(self) -> int:
        return len(self._known)
