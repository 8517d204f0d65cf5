"""Name resolution that a scrape's deadline bounds.

`socket.getaddrinfo` cannot be interrupted: with a name server that never answers it blocks for
the resolver's own timeout (glibc: 5 s x 2 attempts), whatever the scrape's deadline. So lookups
run in a small pool of threads, and a scrape waits for its answer no longer than its deadline (or
until it is cancelled); a lookup it gave up on finishes in the background and fills the cache.

- Bounded: at most `workers` lookups run, at most `queue` more wait; beyond that `resolve` fails
  at once with ResolverBusy, so lookups never pile up behind a dead name server.
- Coalesced: concurrent lookups of one name share one thread and one answer.
- Cached briefly: answers for `ttl` seconds, "no such name" for `negative_ttl` (getaddrinfo does
  not tell the record's TTL). The cache never weakens the allow-list: a connection goes to
  exactly the addresses that were checked, wherever they came from.
- Abandoned: a queued lookup whose every waiter gave up is dropped, not run.
Addresses written as such (`127.0.0.1`, `::1`) never reach the pool.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections import deque
from typing import Callable

from .cancellation import NEVER, Cancellation

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class ResolutionError(OSError):
    """A name without an answer in time; an OSError so that HTTP clients pass it on as a
    connection failure (exporter/fetch.py finds it in the chain)."""


class ResolutionTimeout(ResolutionError):
    def __init__(self, host: str, cancelled: bool):
        self.host, self.cancelled = host, cancelled
        why = "the scrape was cancelled (client went away)" if cancelled else "no answer before the scrape deadline"
        super().__init__(f"{host} did not resolve: {why}")


class ResolverBusy(ResolutionError):
    def __init__(self, host: str, pending: int):
        self.host = host
        super().__init__(f"{host} was not looked up: {pending} DNS lookups are already waiting (the name server is slow or down)")


def system_lookup(host: str) -> list[str]:
    """The addresses of `host` from the system resolver (files, then DNS); [] when it has none."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return [info[4][0] for info in infos]


def literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class _Lookup:
    __slots__ = ("host", "done", "answer", "waiters")

    def __init__(self, host: str):
        self.host = host
        self.done = False
        self.answer: list[Address] = []
        self.waiters: list[threading.Event] = []


class Resolver:
    IDLE_SECONDS = 10.0  # a worker without work for this long ends
    CACHE_ENTRIES = 4096

    def __init__(
        self,
        workers: int = 8,
        queue: int = 64,
        ttl: float = 5.0,
        negative_ttl: float = 1.0,
        lookup: Callable[[str], list[str]] | None = None,
    ):
        self.workers, self.queue_limit, self.ttl, self.negative_ttl = workers, queue, ttl, negative_ttl
        self._lookup = lookup or system_lookup
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._queue: deque[_Lookup] = deque()
        self._inflight: dict[str, _Lookup] = {}  # queued or running, by name
        self._cache: dict[str, tuple[float, list[Address]]] = {}
        self._threads = 0
        self._idle = 0
        self._closed = False

    def resolve(self, host: str, deadline: float, cancellation: Cancellation = NEVER) -> list[Address]:
        """The addresses of `host` ([] when the name does not exist), by `deadline` (a
        `time.monotonic()` value): ResolutionTimeout when the answer does not come in time or the
        scrape is cancelled, ResolverBusy at once when too many lookups are waiting."""
        address = literal(host)
        if address is not None:
            return [address]
        key = host.lower()
        wake = threading.Event()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > time.monotonic():
                return list(cached[1])
            if cancellation.cancelled:
                raise ResolutionTimeout(host, cancelled=True)
            lookup = self._inflight.get(key)
            if lookup is None:
                if len(self._queue) >= self.queue_limit:
                    raise ResolverBusy(host, len(self._queue))
                lookup = self._inflight[key] = _Lookup(key)
                self._queue.append(lookup)
                if self._idle == 0 and self._threads < self.workers:
                    self._threads += 1
                    threading.Thread(target=self._run, name="pharos-resolver", daemon=True).start()
                self._work.notify()
            lookup.waiters.append(wake)
        unhook = cancellation.on_cancel(wake.set)
        try:
            wake.wait(max(0.0, deadline - time.monotonic()))
        finally:
            unhook()
        with self._lock:
            if lookup.done:
                return list(lookup.answer)
            lookup.waiters.remove(wake)
        raise ResolutionTimeout(host, cancelled=cancellation.cancelled)

    def forget(self) -> None:
        """Empty the cache (tests, or after a change of name servers)."""
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        """Let the workers end once the queue is empty; lookups still running finish first."""
        with self._lock:
            self._closed = True
            self._work.notify_all()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    if self._closed:
                        self._threads -= 1
                        return
                    self._idle += 1
                    woken = self._work.wait(self.IDLE_SECONDS)
                    self._idle -= 1
                    if not woken and not self._queue:
                        self._threads -= 1
                        return
                lookup = self._queue.popleft()
                if not lookup.waiters:  # everyone who asked has given up
                    del self._inflight[lookup.host]
                    continue
            try:
                answer = _unique(self._lookup(lookup.host))
            except Exception:  # noqa: BLE001 - an injected lookup's bug must not kill the worker
                answer = []
            with self._lock:
                lookup.answer, lookup.done = answer, True
                del self._inflight[lookup.host]
                self._remember(lookup.host, answer)
                for waiter in lookup.waiters:
                    waiter.set()

    def _remember(self, key: str, answer: list[Address]) -> None:
        now = time.monotonic()
        if len(self._cache) >= self.CACHE_ENTRIES:
            self._cache = {name: entry for name, entry in self._cache.items() if entry[0] > now}
            if len(self._cache) >= self.CACHE_ENTRIES:
                self._cache.clear()
        self._cache[key] = (now + (self.ttl if answer else self.negative_ttl), answer)


def _unique(addresses: list[str]) -> list[Address]:
    seen: list[Address] = []
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])
        if address not in seen:
            seen.append(address)
    return seen


RESOLVER = Resolver()  # the exporter's own, shared by every fetch and allow-list check

__all__ = ["RESOLVER", "Resolver", "ResolutionError", "ResolutionTimeout", "ResolverBusy", "literal"]
