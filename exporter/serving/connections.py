"""Connections and requests: one event loop for all I/O, worker threads only for answers.

Go's net/http gives every connection a goroutine of a few KB; a thread per connection, as
`http.server` has it, lets a slow client hold a thread for as long as it likes. Here one asyncio
event loop (in the thread that calls `serve_forever`) accepts, reads and writes every connection;
a request reaches a worker thread only once its head has arrived whole, and only while fewer than
`max_requests` are being answered (503 beyond, as node_exporter's `--web.max-requests`).

What bounds what:
- accepting: the listen backlog is the system's `somaxconn`; at most `max_connections` open
  connections (new ones beyond are closed at once);
- reading: the request head must be complete within `header_timeout` of its first byte (of the
  connection's start, for the first request), at most `max_header_bytes`; a head cut short by the
  client's half-close is not answered; between requests a kept-alive connection may idle
  `idle_timeout`;
- answering: a request whose client disconnects, or that outlives `request_timeout`, has its
  `Cancellation` cancelled, so its scrapes stop and free their slots (see exporter/cancellation.py);
- writing: a client that does not read its answer within `write_timeout` is disconnected;
- basic auth: verdicts come from `WebAccess`' caches on the loop; a bcrypt check, when needed,
  runs on one thread of its own with a short queue (503 beyond), never on a request worker;
- TLS: the handshake runs on the loop, under `header_timeout`; plain HTTP on the TLS port gets
  Go's 400 answer;
- an optional rate limit (the web configuration's `rate_limit`): 429 beyond it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from ..cancellation import Cancellation
from .web_access import PLAIN_HTTP_ANSWER, REALM, TLS_HANDSHAKE_RECORD, WebAccess
from .web_config import WebConfigError

log = logging.getLogger("pharos.exporter")

METHODS = ("GET", "HEAD")
REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 413: "Content Too Large", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
    503: "Service Unavailable", 505: "HTTP Version Not Supported", 508: "Loop Detected",
}


@dataclass(frozen=True)
class Limits:
    """What one client can make the server hold, and for how long (defaults in docs/security.md)."""

    max_requests: int = 128  # answered at once; 503 beyond
    max_connections: int = 8192  # open at once; closed at accept beyond
    header_timeout: float = 10.0  # first byte (or connection start) to the end of the request head
    idle_timeout: float = 120.0  # kept-alive connection between requests
    request_timeout: float = 120.0  # a worker's answer at most (scrapes end by their own deadline)
    write_timeout: float = 30.0  # the client reading the answer
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    max_body_bytes: int = 64 * 1024  # GET needs none; a small one is read and dropped
    auth_queue: int = 16  # bcrypt checks waiting; 503 beyond


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    client: tuple
    cancellation: Cancellation = field(default_factory=Cancellation)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> "Response":
        return cls(status, "text/plain; charset=utf-8", message.encode("utf-8", "replace"), headers)


App = Callable[[Request], Response]


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _Protocol(asyncio.StreamReaderProtocol):
    """A stream protocol that tells when the client has gone (EOF or connection lost): Go's
    background read, which cancels a handler's context when its client goes away."""

    def __init__(self, reader: asyncio.StreamReader, loop: asyncio.AbstractEventLoop):
        super().__init__(reader, loop=loop)
        self.gone = loop.create_future()
        self.plain: socket.socket | None = None  # the socket, when no TLS is between it and the answers

    def _mark_gone(self) -> None:
        if not self.gone.done():
            self.gone.set_result(None)

    def eof_received(self):
        self._mark_gone()
        return super().eof_received()

    def connection_lost(self, exc):
        self._mark_gone()
        super().connection_lost(exc)


class RateLimit:
    """A token bucket: `burst` requests at once, one more every `interval` seconds (Go's
    `rate.NewLimiter(rate.Every(interval), burst)`, as exporter-toolkit uses it)."""

    def __init__(self, interval: float, burst: int):
        self.interval, self.burst = interval, burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) / self.interval)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class ServerStats:
    """What the server counts, read by the exporter's own metrics (exporter/collect.py)."""

    def __init__(self) -> None:
        self.connections_open = 0
        self.in_flight = 0
        self.rejected: dict[str, int] = {reason: 0 for reason in REJECTIONS}


# Why a request or connection was refused before reaching an endpoint (a metric label).
REJECTIONS = ("max_requests", "max_connections", "rate_limit", "auth_busy", "header_timeout", "bad_request", "request_timeout")


class HTTPServer:
    """An HTTP/1.1 server on a bound socket; `serve_forever`, `shutdown` and `server_close` as
    socketserver's servers have them, so it runs in a thread of its own or in the main thread."""

    def __init__(self, sock: socket.socket, app: App, web: WebAccess | None = None, limits: Limits = Limits()):
        self.socket = sock
        self.server_address = sock.getsockname()
        self.app = app
        self.web = web
        self.limits = limits
        self.stats = ServerStats()
        self._workers = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, limits.max_requests), thread_name_prefix="pharos-request")
        self._auth_worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pharos-auth")
        self._auth_waiting = 0
        self._rate: RateLimit | None = None
        self._rate_key: tuple | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopped = threading.Event()
        self._stopped.set()
        self._shutdown_requested = False
        self._tasks: set[asyncio.Task] = set()
        self._transports: set[asyncio.BaseTransport] = set()
        self._closing = False

    # --- lifecycle ---------------------------------------------------------------------------
    def serve_forever(self, poll_interval: float = 0.5) -> None:  # noqa: ARG002 - socketserver's signature
        self._stopped.clear()
        try:
            if not self._shutdown_requested:
                asyncio.run(self._serve())
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop `serve_forever` (from another thread) and wait until it has returned."""
        self._shutdown_requested = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass  # the loop has already closed
        self._stopped.wait()

    def server_close(self) -> None:
        self.socket.close()
        self._workers.shutdown(wait=False, cancel_futures=True)
        self._auth_worker.shutdown(wait=False, cancel_futures=True)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.socket.setblocking(False)
        accepting = asyncio.create_task(self._accept())
        await self._stop.wait()
        self._closing = True
        accepting.cancel()
        # Abort every connection, then cancel its task: a cancellation alone can be lost in a
        # race inside asyncio.wait_for (Python 3.11), leaving a kept-alive connection idling on.
        for transport in list(self._transports):
            transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.wait([accepting, *self._tasks], timeout=5)
        self._loop = None

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, peer = await loop.sock_accept(self.socket)
            except asyncio.CancelledError:
                raise
            except OSError as error:  # EMFILE and friends: wait a little instead of spinning
                log.warning("accepting a connection failed: %s", error)
                await asyncio.sleep(0.1)
                continue
            if self.stats.connections_open >= self.limits.max_connections:
                self.stats.rejected["max_connections"] += 1
                connection.close()
                continue
            task = asyncio.create_task(self._connection(connection, peer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # --- one connection ----------------------------------------------------------------------
    async def _connection(self, sock: socket.socket, peer) -> None:
        self.stats.connections_open += 1
        writer = None
        try:
            sock.setblocking(False)
            # Head and body go out in one write, but a small answer must not wait for the client's
            # delayed ACK either (Nagle's algorithm; about 40 ms a scrape).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            streams = await self._streams(sock)
            if streams is None:
                return
            reader, writer, protocol = streams
            self._transports.add(writer.transport)
            first = True
            while not self._closing:
                keep_alive = await self._one_request(reader, writer, protocol, peer, first)
                first = False
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass  # the client went away or broke the connection: nobody to answer
        except asyncio.CancelledError:
            pass  # the server is shutting down
        except Exception:  # noqa: BLE001 - one connection's bug must not stop the server
            log.exception("internal error on a connection from %s", peer)
        finally:
            self.stats.connections_open -= 1
            if writer is not None:
                self._transports.discard(writer.transport)
                writer.close()
            else:
                sock.close()

    async def _streams(self, sock: socket.socket):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=self.limits.max_header_bytes, loop=loop)
        protocol = _Protocol(reader, loop)
        context = None
        if self.web is not None and self.web.tls:
            context = await self._tls_context(sock)
            if context is None:
                sock.close()
                return None
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, sock, ssl=context, ssl_handshake_timeout=self.limits.header_timeout if context else None
            )
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError) as error:
            log.info("TLS handshake failed: %s", getattr(error, "reason", None) or error)
            sock.close()
            return None
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        protocol.plain = sock if context is None else None
        return reader, writer, protocol

    async def _tls_context(self, sock: socket.socket) -> ssl.SSLContext | None:
        """The TLS context for a new connection, after a peek at its first byte: plain HTTP on the
        TLS port gets an answer saying so, as Go's servers do."""
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        loop.add_reader(sock.fileno(), lambda: readable.done() or readable.set_result(None))
        try:
            await asyncio.wait_for(readable, self.limits.header_timeout)
            first = sock.recv(1, socket.MSG_PEEK)
        except (asyncio.TimeoutError, OSError):
            self.stats.rejected["header_timeout"] += 1
            return None
        finally:
            loop.remove_reader(sock.fileno())
        if not first:
            return None
        if first[0] != TLS_HANDSHAKE_RECORD:
            await self._answer_plain_http(sock)
            return None
        try:
            return self.web.config.context
        except WebConfigError as error:
            log.warning("TLS connection refused: %s", error)
            return None

    async def _answer_plain_http(self, sock: socket.socket) -> None:
        """Go's answer to plain HTTP on a TLS port; the request is read (briefly, boundedly) so that
        closing does not reset the connection before the client has read the answer."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_sendall(sock, PLAIN_HTTP_ANSWER), self.limits.write_timeout)
            sock.shutdown(socket.SHUT_WR)
            drained = 0
            while drained < self.limits.max_header_bytes:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 1.0)
                if not chunk:
                    break
                drained += len(chunk)
        except (OSError, asyncio.TimeoutError):
            pass

    async def _one_request(self, reader, writer, protocol: _Protocol, peer, first: bool) -> bool:
        """Read, answer and write one request; False when the connection is to be closed."""
        try:
            head = await self._read_head(reader, first)
        except _BadRequest as error:
            self.stats.rejected["bad_request"] += 1
            await self._write(writer, Response.text(error.status, error.message + "\n"), "GET", close=True)
            return False
        if head is None:
            return False
        try:
            request, keep_alive = self._parse(head, peer)
            await self._drop_body(reader, request)
        except _BadRequest as error:
            self.stats.rejected["bad_request"] += 1
            await self._write(writer, Response.text(error.status, error.message + "\n"), "GET", close=True)
            return False
        response = await self._answer(request, protocol)
        if log.isEnabledFor(logging.DEBUG):  # the arguments cost on every request otherwise
            if response is None:
                log.debug('%s "%s %s": the client went away before its answer', _address(peer), request.method, _printable(request.target))
            else:
                log.debug('%s "%s %s" %d %d', _address(peer), request.method, _printable(request.target), response.status, len(response.body))
        if response is None:
            return False
        return await self._write(writer, response, request.method, close=not keep_alive, plain=protocol.plain) and keep_alive

    async def _read_head(self, reader: asyncio.StreamReader, first: bool) -> bytes | None:
        """The request head up to its blank line, or None when the client closed or stalled.
        (asyncio.timeout, not wait_for: wait_for costs a task per call on Python 3.11.)"""
        limits = self.limits
        try:
            if first:
                async with asyncio.timeout(limits.header_timeout):
                    return await reader.readuntil(b"\r\n\r\n")
            # A kept-alive connection idles until the next request's first byte...
            async with asyncio.timeout(limits.idle_timeout) as deadline:
                start = await reader.readexactly(1)
                # ...which must then be followed by the whole head in time.
                deadline.reschedule(asyncio.get_running_loop().time() + limits.header_timeout)
                return start + await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            self.stats.rejected["header_timeout"] += 1
            return None
        except asyncio.IncompleteReadError:
            return None  # closed (or half-closed) before the head ended: nothing is answered
        except asyncio.LimitOverrunError:
            raise _BadRequest(431, f"request head larger than {limits.max_header_bytes} bytes") from None
        except ValueError:  # StreamReader's report of a line over its limit
            raise _BadRequest(431, f"request head larger than {limits.max_header_bytes} bytes") from None

    def _parse(self, head: bytes, peer) -> tuple[Request, bool]:
        try:
            text = head.decode("latin-1").lstrip("\r\n")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            raise _BadRequest(400, "undecodable request head") from None
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise _BadRequest(400, "malformed request line")
        method, target, version = parts
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise _BadRequest(505, f"unsupported protocol version {version[:20]!r}")
        headers: dict[str, str] = {}
        count = 0
        for line in lines[1:]:
            if not line:
                continue
            count += 1
            if count > self.limits.max_headers:
                raise _BadRequest(431, f"more than {self.limits.max_headers} header fields")
            if line[0] in " \t":
                raise _BadRequest(400, "obsolete line folding in the request head")
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip() or any(c in name for c in " \t"):
                raise _BadRequest(400, "malformed header field")
            name, value = name.lower(), value.strip(" \t")
            if name in headers:
                if name in ("content-length", "host", "authorization"):
                    raise _BadRequest(400, f"repeated {name} header")
                value = headers[name] + ", " + value
            headers[name] = value
        if "transfer-encoding" in headers:
            raise _BadRequest(501, "request bodies in Transfer-Encoding are not accepted")
        if method not in METHODS:
            raise _BadRequest(405, f"method {method[:20]} not allowed; use GET")
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        parts_of_target = urlsplit(target)
        request = Request(method, target, parts_of_target.path, parse_qs(parts_of_target.query), headers, peer)
        return request, keep_alive

    async def _drop_body(self, reader: asyncio.StreamReader, request: Request) -> None:
        declared = request.header("content-length")
        if declared is None:
            return
        if not declared.isdigit():
            raise _BadRequest(400, "malformed Content-Length")
        size = int(declared)
        if size > self.limits.max_body_bytes:
            raise _BadRequest(413, f"request body larger than {self.limits.max_body_bytes} bytes")
        if size:
            try:
                async with asyncio.timeout(self.limits.header_timeout):
                    await reader.readexactly(size)
            except (TimeoutError, asyncio.IncompleteReadError):
                raise _BadRequest(408, "request body not complete in time") from None

    # --- answering ---------------------------------------------------------------------------
    async def _answer(self, request: Request, protocol: _Protocol) -> Response | None:
        refusal = self._refusal()
        if refusal is not None:
            return refusal
        denied = await self._authorize(request)
        if denied is not None:
            return denied
        inline = getattr(self.app, "inline", None)
        answer = inline(request) if inline is not None else None
        if answer is not None:
            return answer  # cheap enough for the loop (a landing page, a 404): no worker
        if self.stats.in_flight >= self.limits.max_requests:
            self.stats.rejected["max_requests"] += 1
            return Response.text(503, f"too many requests at once (at most {self.limits.max_requests}); try again\n", (("Retry-After", "1"),))
        loop = asyncio.get_running_loop()
        self.stats.in_flight += 1
        # One future woken by whichever comes first: the answer, the client leaving, the timeout
        # (cheaper than asyncio.wait, which this path paid on every request).
        woken = loop.create_future()

        def wake(_=None) -> None:
            if not woken.done():
                woken.set_result(None)

        work = self._workers.submit(self._run_app, request)
        work.add_done_callback(lambda _: loop.call_soon_threadsafe(self._request_done, wake))
        protocol.gone.add_done_callback(wake)
        timer = loop.call_later(self.limits.request_timeout, wake)
        try:
            await woken
        finally:
            timer.cancel()
            protocol.gone.remove_done_callback(wake)
        if work.done():
            return work.result()
        request.cancellation.cancel()  # the scrapes stop and free their slots; the worker returns soon
        if protocol.gone.done():
            log.debug("client %s went away before its answer to %s", request.client, request.path)
            return None
        self.stats.rejected["request_timeout"] += 1
        return Response.text(503, f"no answer within {self.limits.request_timeout:g}s\n")

    def _request_done(self, wake) -> None:
        self.stats.in_flight -= 1
        wake()

    def _run_app(self, request: Request) -> Response:
        try:
            return self.app(request)
        except Exception:  # noqa: BLE001 - a bug must cost one response, not the connection
            log.exception("internal error while serving %s", request.path)
            return Response.text(500, "internal error in the exporter; see its log\n")

    def _refusal(self) -> Response | None:
        """429 when the web configuration's rate limit says so."""
        if self.web is None:
            return None
        try:
            rate = self.web.config.rate_limit
        except WebConfigError:
            return None  # answered 500 by _authorize
        if rate is None:
            self._rate = self._rate_key = None
            return None
        key = (rate.interval_seconds, rate.burst)
        if key != self._rate_key:
            self._rate, self._rate_key = RateLimit(*key), key
        if self._rate.allow():
            return None
        self.stats.rejected["rate_limit"] += 1
        return Response.text(429, "too many requests; see the rate_limit of the web configuration\n", (("Retry-After", "1"),))

    async def _authorize(self, request: Request) -> Response | None:
        """None when the request may pass basic auth; else the answer (401, 500 or 503)."""
        if self.web is None:
            return None
        header = request.header("authorization")
        try:
            verdict = self.web.cached_verdict(header)
            if verdict is None:
                if self._auth_waiting >= self.limits.auth_queue:
                    self.stats.rejected["auth_busy"] += 1
                    return Response.text(503, "too many password checks waiting; try again\n", (("Retry-After", "1"),))
                self._auth_waiting += 1
                try:
                    verdict = await asyncio.get_running_loop().run_in_executor(self._auth_worker, self.web.authorized, header)
                finally:
                    self._auth_waiting -= 1
        except WebConfigError:
            return Response.text(500, "the exporter's web configuration is invalid; see its log\n")
        if verdict:
            return None
        return Response.text(401, "401 Unauthorized\n", (("WWW-Authenticate", REALM),))

    async def _write(self, writer: asyncio.StreamWriter, response: Response, method: str, close: bool, plain: socket.socket | None = None) -> bool:
        headers = [
            f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
        ]
        extra = (*(self.web.headers() if self.web is not None else ()), *response.headers)
        headers.extend(f"{name}: {value}" for name, value in extra)
        if close:
            headers.append("Connection: close")
        head = ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1", "replace")
        body = response.body if method != "HEAD" else b""
        transport = writer.transport
        if plain is not None and body and not transport.get_write_buffer_size() and not transport.is_closing():
            # Head and body in one system call without joining them into a copy (a /metrics
            # answer is ~150 KB); what the socket does not take now, the transport writes.
            try:
                sent = plain.sendmsg([head, body])
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                return False  # the client has gone
            if sent < len(head):
                writer.write(head[sent:])
            if sent < len(head) + len(body):
                writer.write(memoryview(body)[max(0, sent - len(head)) :])
        else:
            writer.write(head + body)
        if transport.get_write_buffer_size():  # most answers leave at once
            try:
                async with asyncio.timeout(self.limits.write_timeout):
                    await writer.drain()
            except TimeoutError:
                transport.abort()  # close() would wait for the unread rest for ever
                return False
        return not close


def _printable(text: str, limit: int = 200) -> str:
    """`text` for a log line: control characters escaped (no forged lines), at most `limit` long."""
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text[:limit])
    return shown + ("..." if len(text) > limit else "")


def _address(peer) -> str:
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)


def listening_socket(listen: str) -> socket.socket:
    """A socket bound to `listen` (HOST:PORT, [IPv6]:PORT, :PORT) and listening with the system's
    `somaxconn` as its backlog: a burst of connects must not wait for SYN retransmits."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(backlog())
    except BaseException:
        sock.close()
        raise
    return sock


def backlog() -> int:
    try:
        with open("/proc/sys/net/core/somaxconn", encoding="ascii") as handle:
            return max(socket.SOMAXCONN, int(handle.read().strip()))
    except (OSError, ValueError):
        return socket.SOMAXCONN
