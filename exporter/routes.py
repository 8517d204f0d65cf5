"""Route templates: collapse the IDs in URL paths and cap distinct routes per target.

Some applications (Stargate among them) report one full URL per request. Turned into label values
as they are, they would create a series per customer, order or session. `RouteTable.template`
strips scheme, host and query, replaces path segments that look like IDs with `{id}`, and keeps at
most `limit` distinct templates per target; the rest are summed under `__overflow__`. Which
template goes to overflow is decided once and kept, so a series never moves between buckets.
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
      | [^/]*@[^/]+                                        # e-mail addresses
      | [0-9]+(?:[.,][0-9]+)+                              # 1.5, 2026.11.29
      | .*[0-9]{4,}.*                                      # ORD-000123, inv_20261129, report-2026-11.pdf
    )$""",
    re.VERBOSE,
)
# Template placeholders applications already use (`{id}`, `:id`, `<id>`) are kept as they are.
_PLACEHOLDER = re.compile(r"^(?:\{[^/{}]+\}|:[A-Za-z_][A-Za-z0-9_]*|<[^/<>]+>)$")
_RAW_CACHE_LIMIT = 4096


def template(route: str) -> str:
    """The route template of a path or URL: `https://h/pets/42?x=1` -> `/pets/{id}`."""
    if not route or route == ROUTE_UNKNOWN:  # profiles report "no route" as ROUTE_UNKNOWN
        return ROUTE_UNKNOWN
    if "://" in route:
        route = urlsplit(route).path or "/"
    else:
        route = route.split("?", 1)[0].split("#", 1)[0]
    if not route.startswith("/"):
        route = "/" + route
    segments = route.split("/")
    return "/".join(
        segment if not segment or _PLACEHOLDER.match(segment) or not _ID_SEGMENT.match(segment) else ID
        for segment in segments
    )


class RouteTable:
    """The templates of one target, capped at `limit`; callable as a Reading's route mapper."""

    def __init__(self, limit: int):
        self.limit = limit
        self._known: set[str] = set()
        self._raw: OrderedDict[str, str] = OrderedDict()
        # Concurrent scrapes of one target share the table: admission must not overshoot the cap.
        self._lock = threading.Lock()

    def __call__(self, route: str) -> str:
        cached = self._raw.get(route)
        if cached is not None:
            return cached
        templated = template(route)
        with self._lock:
            result = self._admit(templated)
            self._raw[route] = result
            if len(self._raw) > _RAW_CACHE_LIMIT:
                self._raw.popitem(last=False)
        return result

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
