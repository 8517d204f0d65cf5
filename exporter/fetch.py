"""Fetching a target's stats over HTTP with a hard deadline and a size cap.

`requests` reuses connections (one Session per target). Its own timeouts apply per socket
operation, so a target that trickles one byte at a time could hold a scrape forever; the body is
therefore read with `read1` and the socket timeout reset to the time left before each read, which
makes the deadline hard.
"""

from __future__ import annotations

import socket

import time
from dataclasses import dataclass, field

import requests
import urllib3

from .config import Auth, TLS

CHUNK = 64 * 1024
USER_AGENT = "pharos-exporter"


class ScrapeError(Exception):
    """A scrape failed for one of `catalogue.SCRAPE_ERROR_REASONS`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str


@dataclass
class Fetcher:
    """Fetches URLs of one target; keeps its connections open between scrapes."""

    auth: Auth = field(default_factory=Auth)
    tls: TLS = field(default_factory=TLS)
    max_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        # Stats documents are read once and thrown away: compression costs the exporter CPU.
        self._session.headers["Accept-Encoding"] = "identity"
        self._session.verify = self.tls.verify_argument()
        if self.tls.cert_file:
            self._session.cert = (self.tls.cert_file, self.tls.key_file) if self.tls.key_file else self.tls.cert_file
        # Redirects are followed by hand (see fetch), so credentials never leave the target's host.
        self._session.max_redirects = 0
        self._session.trust_env = False

    def close(self) -> None:
        self._session.close()

    def fetch(
        self,
        url: str,
        deadline: float,
        method: str = "GET",
        accept: str = "application/json",
        headers: dict[str, str] | None = None,
        accept_statuses: frozenset[int] = frozenset({200}),
    ) -> Response:
        """GET (or `method`) `url` and return its body, or raise ScrapeError by `deadline`
        (a `time.monotonic()` value)."""
        request_headers = {"Accept": accept, **(headers or {}), **self.auth.headers()}
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ScrapeError("timeout", "no time left before the scrape deadline")
        try:
            response = self._session.request(
                method,
                url,
                headers=request_headers,
                timeout=(remaining, remaining),
                stream=True,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as error:
            raise ScrapeError("tls_error", _short(error)) from None
        except requests.exceptions.ConnectTimeout:
            raise ScrapeError("timeout", f"no connection to {url} within {remaining:.2f}s") from None
        except requests.exceptions.ReadTimeout:
            raise ScrapeError("timeout", f"no response from {url} within {remaining:.2f}s") from None
        except requests.exceptions.ConnectionError as error:
            if _refused(error):
                raise ScrapeError("connection_refused", f"connection to {url} refused") from None
            raise ScrapeError("connection_error", _short(error)) from None
        except (requests.exceptions.RequestException, ValueError) as error:
            raise ScrapeError("connection_error", _short(error)) from None
        try:
            status = response.status_code
            if status not in accept_statuses:
                if status in (401, 403):
                    raise ScrapeError("auth_failed", f"{url} answered HTTP {status}; check the target's credentials")
                if 300 <= status < 400:
                    raise ScrapeError(
                        "http_status",
                        f"{url} redirects to {response.headers.get('Location', '?')}; configure the final URL",
                    )
                raise ScrapeError("http_status", f"{url} answered HTTP {status}")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise ScrapeError("too_large", f"body of {declared} bytes exceeds the cap of {self.max_bytes}")
            body = self._read(response, deadline)
            return Response(status, body, response.headers.get("Content-Type", ""))
        finally:
            response.close()

    def _read(self, response: requests.Response, deadline: float) -> bytes:
        raw = response.raw
        sock = _socket_of(raw)
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ScrapeError("timeout", f"body not complete before the deadline ({size} bytes read)")
                if sock is not None:
                    sock.settimeout(remaining)
                chunk = raw.read1(CHUNK) if hasattr(raw, "read1") else raw.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:
                    raise ScrapeError("too_large", f"body exceeds the cap of {self.max_bytes} bytes")
                chunks.append(chunk)
        except (socket.timeout, TimeoutError, urllib3.exceptions.ReadTimeoutError):
            raise ScrapeError("timeout", f"body not complete before the deadline ({size} bytes read)") from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ScrapeError("connection_error", f"reading the body failed: {_short(error)}") from None
        return b"".join(chunks)


def _socket_of(raw) -> socket.socket | None:
    connection = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    return getattr(connection, "sock", None)


def _refused(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        for arg in getattr(current, "args", ()):
            if isinstance(arg, ConnectionRefusedError):
                return True
            if isinstance(arg, BaseException) and _refused_text(arg):
                return True
        current = current.__cause__ or current.__context__
    return "Connection refused" in str(error)


def _refused_text(error: BaseException) -> bool:
    return "Connection refused" in str(error) or "Errno 111" in str(error)


def _short(error: BaseException) -> str:
    message = str(error)
    return message if len(message) <= 300 else message[:297] + "..."


__all__ = ["Fetcher", "Response", "ScrapeError"]
