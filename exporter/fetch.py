"""Fetching a target's stats over HTTP with a hard deadline and a size cap.

`requests` reuses connections (one Session per target). Its own timeouts apply per socket
operation, so a target that trickles one byte at a time could hold a scrape forever. Two things
make the deadline hard:
- the body is read with `read1` and the socket timeout reset to the time left before each read;
- a watchdog thread shuts the connection's socket down when the deadline passes, for the reads
  that are not ours to time: http.client reads the status line, the headers and chunk-size lines
  with many `recv` calls under one timeout, which a trickling target can stretch without end.

A probe's Fetcher also carries the allow-list: the URL is normalized (`AllowList.normalize`, the
form the allow-list checked) and requested as such; every new connection asks it where it may go,
on the host the HTTP client itself parsed, and connects only to the addresses it checked.

Names are resolved through exporter/resolver.py under the same deadline (getaddrinfo itself cannot
be interrupted), and every socket is created by us and handed to the watchdog before it connects.
A `Cancellation` expires the fetch at once, as the deadline does: its sockets are shut down.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from . import resolver as resolution
from .cancellation import NEVER, Cancellation
from .config import Auth, ConfigError, TLS
from .resolver import ResolutionTimeout, Resolver, ResolverBusy
from .serving.allowlist import AddressNotAllowed, AllowList, AmbiguousURL

CHUNK = 64 * 1024
USER_AGENT = "pharos-exporter"
PROBE_LOOP_HEADER = "X-Pharos-Exporter"


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
    allow: AllowList | None = None  # /probe targets: checked again at every connect
    resolver: Resolver | None = None  # None: the exporter's shared resolver.RESOLVER

    def __post_init__(self) -> None:
        self._session = _SessionWithoutRedirects()
        adapter = _GuardedAdapter()
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = USER_AGENT
        # Marks the request as an exporter's: an exporter refuses to probe on behalf of another
        # (serving/endpoints.py), so probes through exporters cannot nest.
        self._session.headers[PROBE_LOOP_HEADER] = "1"
        # Stats documents are read once and thrown away: compression costs the exporter CPU.
        self._session.headers["Accept-Encoding"] = "identity"
        self._session.verify = self.tls.verify_argument()
        if self.tls.cert_file:
            self._session.cert = (self.tls.cert_file, self.tls.key_file) if self.tls.key_file else self.tls.cert_file
        self._session.trust_env = False

    def close(self) -> None:
        """Close idle connections; the Fetcher stays usable and reconnects when needed."""
        self._session.close()

    def fetch(
        self,
        url: str,
        deadline: float,
        method: str = "GET",
        accept: str = "application/json",
        headers: dict[str, str] | None = None,
        accept_statuses: frozenset[int] = frozenset({200}),
        body: bytes | None = None,
        cancellation: Cancellation = NEVER,
    ) -> Response:
        """GET (or `method`) `url` and return its body, or raise ScrapeError by `deadline`
        (a `time.monotonic()` value), or at once with reason timeout when `cancellation` is set."""
        if cancellation.cancelled:
            raise ScrapeError("timeout", f"{cancellation.why}: scrape cancelled before {url} was contacted")
        if self.allow is not None:
            try:
                url = self.allow.normalize(url)
            except AmbiguousURL as error:
                raise ScrapeError("connection_error", f"not contacted: {error}") from None
        try:
            credentials = self.auth.headers()
        except ConfigError as error:
            # The secret vanished since the configuration was checked (a rotated file, say).
            raise ScrapeError("auth_failed", str(error)) from None
        request_headers = {"Accept": accept, **(headers or {}), **credentials}
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ScrapeError("timeout", "no time left before the scrape deadline")
        guard = _Guard(deadline, cancellation)
        _current.guard, _current.allow, _current.resolver = guard, self.allow, self.resolver or resolution.RESOLVER
        unhook = cancellation.on_cancel(guard.expire)
        try:
            _WATCHDOG.watch(guard)
            return self._fetch(url, deadline, remaining, method, request_headers, accept_statuses, guard, body)
        finally:
            unhook()
            _current.guard = _current.allow = _current.resolver = None
            _WATCHDOG.release(guard)

    def _fetch(self, url, deadline, remaining, method, request_headers, accept_statuses, guard, body=None) -> Response:
        try:
            response = self._session.request(
                method,
                url,
                headers=request_headers,
                data=body,
                timeout=(remaining, remaining),
                stream=True,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as error:
            if guard.cancelled:
                raise ScrapeError("timeout", f"{guard.cancellation.why}: scrape of {url} cancelled") from None
            raise ScrapeError("tls_error", _short(error)) from None
        except requests.exceptions.RequestException as error:
            if guard.cancelled:
                raise ScrapeError("timeout", f"{guard.cancellation.why}: scrape of {url} cancelled") from None
            unresolved = _cause(error, ResolutionTimeout)
            if unresolved is not None:
                raise ScrapeError("timeout", str(unresolved)) from None
            busy = _cause(error, ResolverBusy)
            if busy is not None:
                raise ScrapeError("concurrency_limit", str(busy)) from None
            raise _classified(error, url, remaining, guard) from None
        except ValueError as error:
            raise _classified(error, url, remaining, guard) from None
        try:
            status = response.status_code
            if status not in accept_statuses:
                if status in (401, 403):
                    raise ScrapeError("auth_failed", f"{url} answered HTTP {status}; check the target's credentials")
                if 300 <= status < 400:
                    raise ScrapeError(
                        "http_status",
                        f"{url} answered HTTP {status} (redirect to {response.headers.get('Location', '?')}); "
                        "redirects are not followed, configure the final URL",
                    )
                raise ScrapeError("http_status", f"{url} answered HTTP {status}")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise ScrapeError("too_large", f"body of {declared} bytes exceeds the cap of {self.max_bytes}")
            body = self._read(response, deadline, guard)
            body = self._decompress(body, response.headers.get("Content-Encoding", ""))
            return Response(status, body, response.headers.get("Content-Type", ""))
        finally:
            response.close()

    def _read(self, response: requests.Response, deadline: float, guard: _Guard) -> bytes:
        try:
            return self._read_body(response, deadline, guard)
        except ScrapeError as error:
            if guard.cancelled and error.reason == "timeout":
                raise ScrapeError("timeout", f"{guard.cancellation.why}: {error.detail}") from None
            raise

    def _read_body(self, response: requests.Response, deadline: float, guard: _Guard) -> bytes:
        raw = response.raw
        sock = _socket_of(raw)
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or guard.expired:
                    raise ScrapeError("timeout", f"body not complete before the deadline ({size} bytes read)")
                if sock is not None:
                    sock.settimeout(remaining)
                chunk = raw.read1(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:
                    raise ScrapeError("too_large", f"body exceeds the cap of {self.max_bytes} bytes")
                chunks.append(chunk)
        except (socket.timeout, TimeoutError, urllib3.exceptions.ReadTimeoutError):
            raise ScrapeError("timeout", f"body not complete before the deadline ({size} bytes read)") from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            if guard.expired:
                raise ScrapeError("timeout", f"body not complete before the deadline ({size} bytes read)") from None
            raise ScrapeError("connection_error", f"reading the body failed: {_short(error)}") from None
        if guard.expired:
            # The watchdog's shutdown reads as the end of the body (an unfinished chunk-size line
            # of zeros even parses as the last chunk): whatever arrived is incomplete.
            raise ScrapeError("timeout", f"body not complete before the deadline ({size} bytes read)")
        return b"".join(chunks)

    def _decompress(self, body: bytes, encoding: str) -> bytes:
        """The body without its Content-Encoding; we ask for none, but some servers compress anyway."""
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise ScrapeError("not_json", f"body is compressed with {encoding!r}, which the exporter cannot decode")
        decompressor = zlib.decompressobj(zlib.MAX_WBITS | 32)  # 32: accept gzip and zlib headers
        try:
            # Capped output: a small compressed body can expand to gigabytes.
            data = decompressor.decompress(body, self.max_bytes + 1)
        except zlib.error as error:
            raise ScrapeError("not_json", f"body declared Content-Encoding {encoding} but does not decompress: {error}") from None
        if len(data) > self.max_bytes or decompressor.unconsumed_tail:
            raise ScrapeError("too_large", f"decompressed body exceeds the cap of {self.max_bytes} bytes")
        return data


def _classified(error: BaseException, url: str, remaining: float, guard: _Guard) -> ScrapeError:
    """The ScrapeError for what `requests` raised before any response arrived."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return ScrapeError("timeout", f"no connection to {url} within {remaining:.2f}s")
    if isinstance(error, requests.exceptions.ReadTimeout):
        return ScrapeError("timeout", f"no response from {url} within {remaining:.2f}s")
    if guard.expired:
        return ScrapeError("timeout", f"no complete response headers from {url} within {remaining:.2f}s")
    denied = _cause(error, AddressNotAllowed)
    if denied is not None:
        return ScrapeError("connection_error", str(denied))
    if _refused(error):
        return ScrapeError("connection_refused", f"connection to {url} refused")
    return ScrapeError("connection_error", _short(error))


class _SessionWithoutRedirects(requests.Session):
    """Redirects are not followed: credentials must not travel to another host, and a probe must
    not be bounced past the allow-list. `allow_redirects=False` is not enough: requests still
    reads the whole body of a redirect, without our deadline or size cap, to prepare the next hop."""

    def get_redirect_target(self, response):
        return None


# --- the watchdog ----------------------------------------------------------------------------
class _Guard:
    """The sockets one fetch uses, shut down if the fetch is still running at its deadline."""

    def __init__(self, deadline: float, cancellation: Cancellation = NEVER):
        self.deadline = deadline
        self.cancellation = cancellation
        self.expired = False
        self.done = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self.cancellation.cancelled

    def attach(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self.done or any(known is sock for known in self._sockets):
                return
            self._sockets.append(sock)
            if self.expired:
                _shutdown(sock)

    def expire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def finish(self) -> None:
        with self._lock:
            self.done = True
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    # socket.socket.shutdown, not SSLSocket's: that one drops the TLS state another thread is using.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _Watchdog:
    """One daemon thread for all fetches; it ends after a while without work."""

    IDLE_SECONDS = 2.0

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._queue: list[tuple[float, int, _Guard]] = []
        self._order = itertools.count()
        self._active = 0
        self._running = False

    def watch(self, guard: _Guard) -> None:
        with self._wake:
            self._active += 1
            heapq.heappush(self._queue, (guard.deadline, next(self._order), guard))
            if not self._running:
                thread = threading.Thread(target=self._run, name="pharos-fetch-watchdog", daemon=True)
                thread.start()
                self._running = True
            self._wake.notify()

    def release(self, guard: _Guard) -> None:
        with self._wake:
            guard.finish()
            self._active -= 1
            if self._active == 0:
                # Finished guards wait in the queue until their deadline; none is running, so
                # forget them all and let the thread go idle now.
                self._queue.clear()
                self._wake.notify()

    def _run(self) -> None:
        with self._wake:
            while True:
                now = time.monotonic()
                while self._queue and (self._queue[0][2].done or self._queue[0][0] <= now):
                    heapq.heappop(self._queue)[2].expire()
                if self._queue:
                    self._wake.wait(self._queue[0][0] - now)
                elif not self._wake.wait(self.IDLE_SECONDS) and not self._queue:
                    self._running = False
                    return


_WATCHDOG = _Watchdog()
_current = threading.local()  # the guard of the fetch running on this thread


def _addresses_for(host: str, guard: _Guard) -> list[str]:
    """Where a connection to `host` goes: the allow-list's checked addresses for a probe, else the
    name resolved under the fetch's deadline (ResolutionTimeout, ResolverBusy: both OSError)."""
    host = host.strip("[]")
    allow = getattr(_current, "allow", None)
    if allow is not None:
        addresses = allow.connect_addresses(host, guard.deadline, guard.cancellation)
        if addresses is not None:
            return addresses
    found = _current.resolver.resolve(host, guard.deadline, guard.cancellation)
    if not found:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} does not resolve")
    return [str(address) for address in found]


def _seconds(timeout, deadline: float) -> float:
    return float(timeout) if isinstance(timeout, (int, float)) else deadline - time.monotonic()


def _attach_to_current_fetch(sock: socket.socket | None) -> None:
    guard = getattr(_current, "guard", None)
    if guard is not None:
        guard.attach(sock)


def _guarded(connection_class):
    """`connection_class` reporting its sockets to the fetch that uses it."""

    class Guarded(connection_class):
        def _new_conn(self):
            guard = getattr(_current, "guard", None)
            if guard is None:  # not inside Fetcher.fetch
                return super()._new_conn()
            return self._connect_to(_addresses_for(self.host, guard), guard)

        def _connect_to(self, addresses: list[str], guard: _Guard):
            """urllib3's _new_conn, on addresses resolved under the deadline (and, for a probe,
            checked by the allow-list) instead of a resolution of its own; each socket is handed
            to the watchdog before it connects. The Host header and TLS server name stay the name."""
            error: OSError | None = None
            for address in addresses:
                if guard.expired:
                    break
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                try:
                    for option in self.socket_options or ():
                        sock.setsockopt(*option)
                    if self.source_address:
                        sock.bind(self.source_address)
                    guard.attach(sock)
                    sock.settimeout(max(0.001, min(_seconds(self.timeout, guard.deadline), guard.deadline - time.monotonic())))
                    if guard.expired:
                        raise OSError("the fetch expired before connecting")
                    sock.connect((address, self.port))
                    return sock
                except socket.timeout as timeout:
                    sock.close()
                    raise ConnectTimeoutError(self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from timeout
                except OSError as failure:
                    sock.close()
                    error = failure
            raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error

        def connect(self):
            super().connect()
            _attach_to_current_fetch(self.sock)  # the TLS socket wraps a new socket object

        def request(self, *args, **kwargs):
            _attach_to_current_fetch(self.sock)  # a kept-alive connection, reused
            return super().request(*args, **kwargs)

    Guarded.__name__ = Guarded.__qualname__ = "Guarded" + connection_class.__name__
    return Guarded


class _GuardedPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _guarded(HTTPConnection)


class _GuardedTLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _guarded(HTTPSConnection)


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedPool, "https": _GuardedTLSPool}


# --- helpers ---------------------------------------------------------------------------------
def _socket_of(raw) -> socket.socket | None:
    connection = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    return getattr(connection, "sock", None)


def _cause(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of `kind` in the chain (causes, contexts, wrapped arguments) of `error`."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        pending.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
        pending.extend(link for link in (current.__cause__, current.__context__) if link is not None)
    return None


def _refused(error: BaseException) -> bool:
    """A refused connection: a ConnectionRefusedError in the chain of `error`, or urllib3's report
    of one. Other messages are never searched: they can quote what the target sent (a status line
    reading "... Connection refused" is a garbled answer, not a refusal)."""
    if _cause(error, ConnectionRefusedError) is not None:
        return True
    failed = _cause(error, NewConnectionError)
    return failed is not None and ("Connection refused" in str(failed) or "Errno 111" in str(failed))


def _short(error: BaseException) -> str:
    message = str(error)
    return message if len(message) <= 300 else message[:297] + "..."


__all__ = ["Fetcher", "Response", "ScrapeError"]
