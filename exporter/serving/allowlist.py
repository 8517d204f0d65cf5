"""Which targets `/probe` may contact, so the exporter is no open proxy.

An entry is one of:
- a network in CIDR notation (`10.0.0.0/8`, `127.0.0.1/32`, `fd00::/8`): the target's host must
  be an address in it, or a name all of whose addresses are in it;
- a host name, optionally with a leading wildcard (`orders`, `*.internal.example`), matched
  against the target's host name as written;
- a URL prefix (`http://orders:8080/`): the target must have its scheme, host and port, and a path
  that starts with its path at a `/` (compared parsed, never as text: `http://orders` must not
  admit `http://orders.evil.example/` nor `http://orders@evil.example/`).
With no entries at all, `/probe` refuses every target.

The check is made on the URL as it will be requested: `normalize` gives that canonical URL (dot
segments removed as RFC 3986 says, percent-encoded unreserved characters such as `%2e` decoded,
duplicate slashes merged) and refuses what servers read in different ways (backslashes, encoded
`/` `\\` `%`, dot segments with `;` parameters, malformed escapes, non-ASCII host names). A probe's
Fetcher normalizes again and requests exactly that URL, so the path checked is the path sent.

API for the server (every wait bounded by the scrape's deadline, a `time.monotonic()` value):
- `check(url, deadline, cancellation) -> Verdict`: `.allowed`; `.url`, the canonical URL to
  probe; `.why` when refused; `.timed_out` when a name a network entry needs did not resolve in
  time (or the resolver was saturated): refused, not slow. Compute the deadline first.
- `allows(url, deadline=None, cancellation=NEVER) -> bool`: `check(...).allowed`.
- `connect_addresses(host, deadline, cancellation)`: asked again when the connection is opened
  (see exporter/fetch.py), on the host the HTTP client is about to contact: a name admitted by a
  network entry is resolved once more, checked, and the connection goes to exactly the addresses
  checked. A name that resolved inside the network for `check` and outside a moment later (DNS
  rebinding), or a URL that two parsers read differently, is therefore never contacted.
Names are resolved through exporter/resolver.py: a bounded pool, waited for with the deadline.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import string
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

import requests

from ..cancellation import NEVER, Cancellation
from ..resolver import RESOLVER, ResolutionError, ResolutionTimeout, Resolver


class AddressNotAllowed(OSError):
    """A connection the allow-list refuses at connect time; nothing was sent."""


class AmbiguousURL(ValueError):
    """A URL that servers may read in different ways: refused rather than guessed at."""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    url: str  # the canonical URL, what a probe requests ('' when the URL was refused as ambiguous)
    why: str = ""  # why it was refused
    timed_out: bool = False  # refused because a name did not resolve in time


class AllowList:
    # Without a deadline from the caller, a name is waited for this long at most.
    DEFAULT_RESOLVE_SECONDS = 5.0

    def __init__(self, entries: tuple[str, ...] | list[str], resolver: Resolver | None = None):
        self.entries = tuple(entries)
        self.resolver = resolver or RESOLVER
        self._networks = []
        self._hosts = []
        self._prefixes = []
        for entry in entries:
            if "://" in entry:
                self._prefixes.append(_Prefix.of(entry))
            else:
                try:
                    self._networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    self._hosts.append(entry.lower())

    @staticmethod
    def check_entry(entry: str) -> str:
        """A problem with one configured entry, or ''."""
        if not entry.strip():
            return "empty allow-list entry"
        if "://" in entry:
            parts = urlsplit(entry)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                return f"{entry!r}: a URL prefix needs http:// or https:// and a host"
            if "@" in parts.netloc or parts.query or parts.fragment:
                return "a URL prefix holds scheme, host, port and path only (no user, password, query or fragment)"
            try:
                parts.port
            except ValueError:
                return f"{entry!r}: invalid port"
            return ""
        if "/" in entry:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as error:
                return f"{entry!r} is not a network in CIDR notation: {error}"
            return ""
        if _is_address(entry):
            return ""
        if ":" in entry:
            return f"{entry!r}: a host entry has no port; to allow one port only, give a URL prefix like http://{entry}/"
        if not _HOST_PATTERN.match(entry):
            return f"{entry!r} is not a host name, a network in CIDR notation or a URL prefix"
        return ""

    @staticmethod
    def normalize(url: str) -> str:
        """The canonical URL a probe of `url` requests; AmbiguousURL when refused (see normalize)."""
        return normalize(url)

    def check(self, url: str, deadline: float | None = None, cancellation: Cancellation = NEVER) -> Verdict:
        """Whether `url`, as it will be requested (its canonical form, `Verdict.url`), may be
        contacted. Host names are resolved for network entries, waiting until `deadline` at most
        (`time.monotonic()`; None: DEFAULT_RESOLVE_SECONDS from now) or until cancelled."""
        try:
            canonical = normalize(url)
        except AmbiguousURL as error:
            return Verdict(False, "", str(error))
        parts = urlsplit(canonical)
        host = (parts.hostname or "").lower()
        if any(prefix.admits(parts) for prefix in self._prefixes):
            return Verdict(True, canonical)
        if any(fnmatch.fnmatchcase(host, pattern) for pattern in self._hosts):
            return Verdict(True, canonical)
        refused = Verdict(False, canonical, "not on the allow-list")
        if not self._networks:
            return refused
        try:
            addresses = self.resolver.resolve(host, _deadline(deadline), cancellation)
        except ResolutionError as error:
            return Verdict(False, canonical, str(error), timed_out=True)
        if addresses and all(any(address in network for network in self._networks) for address in addresses):
            return Verdict(True, canonical)
        return refused

    def allows(self, url: str, deadline: float | None = None, cancellation: Cancellation = NEVER) -> bool:
        """True when `url` may be contacted: `check(url, deadline, cancellation).allowed`."""
        return self.check(url, deadline, cancellation).allowed

    def connect_addresses(self, host: str, deadline: float | None = None, cancellation: Cancellation = NEVER) -> list[str] | None:
        """Where a connection to `host` may go: None when the host is allowed by name (connect as
        usual), else the addresses it resolves to now, all inside the allowed networks, for the
        connection to use. AddressNotAllowed otherwise; ResolutionTimeout or ResolverBusy (both
        OSError) when the name has no answer by `deadline` or the scrape is cancelled."""
        host = host.strip("[]").lower()
        if any(fnmatch.fnmatchcase(host, pattern) for pattern in self._hosts):
            return None
        if any(prefix.host == host for prefix in self._prefixes):
            return None
        addresses = self.resolver.resolve(host, _deadline(deadline), cancellation)
        outside = [address for address in addresses if not any(address in network for network in self._networks)]
        if not addresses or outside:
            where = f"resolves to {outside[0]}, outside" if outside else "does not resolve, so it cannot be checked against"
            raise AddressNotAllowed(f"{host} {where} the allow-list; not contacted")
        return [str(address) for address in addresses]


_HOST_PATTERN = re.compile(r"^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$|^\*$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_address(entry: str) -> bool:
    try:
        ipaddress.ip_address(entry)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class _Prefix:
    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def of(cls, entry: str) -> "_Prefix":
        parts = urlsplit(entry)
        return cls(parts.scheme, (parts.hostname or "").lower(), _port(parts), parts.path)

    def admits(self, parts: SplitResult) -> bool:
        if (parts.scheme, (parts.hostname or "").lower(), _port(parts)) != (self.scheme, self.host, self.port):
            return False
        path = parts.path or "/"
        if not self.path or self.path.endswith("/"):
            return path.startswith(self.path or "/")
        return path == self.path or path.startswith(self.path + "/")


def _port(parts: SplitResult) -> int:
    try:
        port = parts.port
    except ValueError:
        return -1
    return port if port is not None else _DEFAULT_PORTS.get(parts.scheme, -1)


def _deadline(deadline: float | None) -> float:
    return time.monotonic() + AllowList.DEFAULT_RESOLVE_SECONDS if deadline is None else deadline


# --- the URL as it will be requested ----------------------------------------------------------------
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_HEX = frozenset(string.hexdigits)


def normalize(url: str) -> str:
    """The canonical form of `url`, exactly what the HTTP client will request; AmbiguousURL when
    servers could read it in different ways. Idempotent."""
    current = url
    for _ in range(3):
        candidate = _normalize_once(current)
        sent = requests.Request("GET", candidate).prepare().url
        if sent == candidate:
            return candidate
        current = sent  # the client re-encodes something: check what it would send
    raise AmbiguousURL(f"{url!r}: the HTTP client keeps rewriting it; give it in canonical form")


def _normalize_once(url: str) -> str:
    if any(character.isspace() or ord(character) < 32 or ord(character) == 127 for character in url):
        raise AmbiguousURL(f"{url!r} contains whitespace or control characters")
    if "\\" in url:
        raise AmbiguousURL(f"{url!r} contains a backslash, which some servers read as a slash")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise AmbiguousURL(f"{url!r} is not an http:// or https:// URL")
    if "@" in parts.netloc:
        raise AmbiguousURL(f"{url!r} has user information, which could disguise the host")
    if not parts.hostname or not parts.netloc.isascii():
        raise AmbiguousURL(f"{url!r}: the host must be written in ASCII (punycode for international names)")
    if _port(parts) == -1:
        raise AmbiguousURL(f"{url!r} has an invalid port")
    path = _normalize_path(_decode_unreserved(parts.path, "path"))
    query = _decode_unreserved(parts.query, "query", refuse="%")
    return urlunsplit((scheme, parts.netloc.lower(), path, query, ""))


def _decode_unreserved(text: str, where: str, refuse: str = "/\\%") -> str:
    """Percent-encodings of unreserved characters decoded (`%2e` is `.`, RFC 3986 6.2.2.2), the
    others in upper case; encoded characters in `refuse` are refused (an encoded slash is a path
    separator to some servers and not to others; an encoded `%` is a double encoding)."""
    out: list[str] = []
    index = 0
    while index < len(text):
        character = text[index]
        if character != "%":
            out.append(character)
            index += 1
            continue
        digits = text[index + 1 : index + 3]
        if len(digits) != 2 or not set(digits) <= _HEX:
            raise AmbiguousURL(f"malformed percent-encoding {text[index:index + 3]!r} in the {where}")
        decoded = chr(int(digits, 16))
        if decoded in refuse or ord(decoded) < 32 or ord(decoded) == 127:
            raise AmbiguousURL(f"%{digits} in the {where}: servers decode it differently")
        out.append(decoded if decoded in _UNRESERVED else "%" + digits.upper())
        index += 3
    return "".join(out)


def _normalize_path(path: str) -> str:
    """RFC 3986 remove_dot_segments, after merging duplicate slashes: servers disagree on whether
    `//` is an empty segment (which `..` removes) or one slash, so the canonical path has none."""
    segments: list[str] = []
    raw = path.split("/")
    for segment in raw:
        name = segment.split(";", 1)[0]
        if name in (".", "..") and segment != name:
            raise AmbiguousURL(f"dot segment with parameters {segment!r} in the path (Tomcat reads '..;' as '..')")
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    trailing = bool(segments) and (path.endswith("/") or raw[-1] in (".", ".."))
    return "/" + "/".join(segments) + ("/" if trailing else "")
