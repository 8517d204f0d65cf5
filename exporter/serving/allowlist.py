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

`allows` is asked before a probe; `connect_addresses` again when the connection is opened (see
exporter/fetch.py), on the host the HTTP client is about to contact: a name admitted by a network
entry is resolved once more, checked, and the connection goes to exactly the addresses checked. A
name that resolved inside the network for `allows` and outside a moment later (DNS rebinding), or
a URL that two parsers read differently, is therefore never contacted.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit


class AddressNotAllowed(OSError):
    """A connection the allow-list refuses at connect time; nothing was sent."""


class AllowList:
    def __init__(self, entries: tuple[str, ...] | list[str]):
        self.entries = tuple(entries)
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

    def allows(self, url: str) -> bool:
        """True when `url` may be contacted. Host names are resolved for network entries."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host or parts.scheme not in ("http", "https"):
            return False
        if "@" in parts.netloc:
            return False  # user info is refused before this; never let it disguise the host
        if any(prefix.admits(parts) for prefix in self._prefixes):
            return True
        if any(fnmatch.fnmatchcase(host, pattern) for pattern in self._hosts):
            return True
        if not self._networks:
            return False
        addresses = _addresses(host)
        return bool(addresses) and all(any(address in network for network in self._networks) for address in addresses)

    def connect_addresses(self, host: str) -> list[str] | None:
        """Where a connection to `host` may go: None when the host is allowed by name (connect as
        usual), else the addresses it resolves to now, all inside the allowed networks, for the
        connection to use. AddressNotAllowed otherwise."""
        host = host.strip("[]").lower()
        if any(fnmatch.fnmatchcase(host, pattern) for pattern in self._hosts):
            return None
        if any(prefix.host == host for prefix in self._prefixes):
            return None
        addresses = _addresses(host)
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


def _addresses(host: str):
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
