"""Which targets `/probe` may contact, so the exporter is no open proxy.

An entry is one of:
- a network in CIDR notation (`10.0.0.0/8`, `127.0.0.1/32`, `fd00::/8`): the target's host must
  be an address in it, or a name all of whose addresses are in it;
- a host name, optionally with a leading wildcard (`orders`, `*.internal.example`), matched
  against the target's host name as written;
- a URL prefix (`http://orders:8080/`): the target URL must start with it.
With no entries at all, `/probe` refuses every target.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from urllib.parse import urlsplit


class AllowList:
    def __init__(self, entries: tuple[str, ...] | list[str]):
        self.entries = tuple(entries)
        self._networks = []
        self._hosts = []
        self._prefixes = []
        for entry in entries:
            if "://" in entry:
                self._prefixes.append(entry)
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
            return ""
        if "/" in entry:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as error:
                return f"{entry!r} is not a network in CIDR notation: {error}"
        return ""

    def allows(self, url: str) -> bool:
        """True when `url` may be contacted. Host names are resolved for network entries."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host or parts.scheme not in ("http", "https"):
            return False
        if any(url.startswith(prefix) for prefix in self._prefixes):
            return True
        if any(fnmatch.fnmatchcase(host, pattern) for pattern in self._hosts):
            return True
        if not self._networks:
            return False
        addresses = _addresses(host)
        return bool(addresses) and all(any(address in network for network in self._networks) for address in addresses)


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
