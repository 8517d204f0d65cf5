"""Scrape slots, shared fairly between targets.

The exporter runs at most `capacity` scrapes at once (each holds a socket and, while it reads, up to
`max_response_bytes` of memory). Handed out first come, first served, as a semaphore does, a few
targets that never answer, scraped often, end up holding every slot until their deadlines, and
healthy targets queue behind them. `FairSlots` instead:

- caps each target at its own limit (`SlotAccount.limit`, `limits.max_concurrent_per_target`,
  counting the scrapes that hold a slot and those waiting for one): a scrape beyond it fails at
  once rather than waiting, and holding a request worker, until its deadline;
- caps each target at its share of the pool, `max(1, capacity // targets holding or waiting)`;
- serves waiting targets that hold fewer slots first, then those that held slots for less time
  lately (a target whose scrapes hang runs that time up), then in order of arrival;
- stops waiting at the deadline, or at once when the scrape is cancelled.

- keeps half the pool for targets whose last scrape did not hang (`SlotAccount.proven`): targets
  that have not answered lately (they timed out) or not yet (new ones) share the other half, so any
  number of stuck targets leaves the proven ones half the slots.

A slot is never taken back from a scrape that holds it: a proven target waits only when more
proven targets are scraped at once than half the slots, and then it goes first.
"""

from __future__ import annotations

import itertools
import threading
import time
from contextlib import contextmanager

from .cancellation import NEVER, Cancellation


class SlotUnavailable(Exception):
    """No slot: `why` is 'target_limit' (at once), 'deadline' or 'cancelled'."""

    def __init__(self, why: str, detail: str):
        super().__init__(detail)
        self.why = why
        self.detail = detail


class SlotAccount:
    """One target's standing: its own limit, and the slots it holds, waits for and used lately."""

    HALF_LIFE_SECONDS = 60.0  # how fast time spent holding slots is forgiven

    def __init__(self, limit: int = 4):
        if limit < 1:
            raise ValueError(f"a target needs at least one scrape slot, not {limit}")
        self.limit = limit
        self.held = 0
        self.waiting = 0
        # Set by the scraper: False after a scrape that timed out, True after one that did not
        # (an error answered in time does not hold slots). New targets start unproven.
        self.proven = False
        self.held_unproven = 0  # slots granted while unproven, counted against that half
        self._used = 0.0  # slot-seconds, decaying
        self._used_at = time.monotonic()

    def used_lately(self, now: float) -> float:
        return self._used * 0.5 ** ((now - self._used_at) / self.HALF_LIFE_SECONDS)

    def _charge(self, seconds: float, now: float) -> None:
        self._used, self._used_at = self.used_lately(now) + seconds, now


class _Waiter:
    __slots__ = ("account", "order", "event", "granted")

    def __init__(self, account: SlotAccount, order: int):
        self.account, self.order = account, order
        self.event = threading.Event()
        self.granted = False


class FairSlots:
    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"the exporter needs at least one scrape slot, not {capacity}")
        self.capacity = capacity
        self.unproven_capacity = capacity - capacity // 2 if capacity > 1 else 1
        self._unproven_held = 0
        self._free = capacity
        self._lock = threading.Lock()
        self._active: set[SlotAccount] = set()  # targets holding or waiting for a slot
        self._waiters: list[_Waiter] = []
        self._order = itertools.count()

    @property
    def in_use(self) -> int:
        return self.capacity - self._free

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def share(self) -> int:
        return max(1, self.capacity // max(1, len(self._active)))

    @contextmanager
    def slot(self, account: SlotAccount, deadline: float, cancellation: Cancellation = NEVER):
        """Hold one slot for `account` (a `time.monotonic()` deadline); SlotUnavailable if none."""
        granted_at = self.acquire(account, deadline, cancellation)
        try:
            yield
        finally:
            self.release(account, granted_at)

    def acquire(self, account: SlotAccount, deadline: float, cancellation: Cancellation = NEVER) -> float:
        """Take a slot (pair with `release(account, <the value returned>)`)."""
        with self._lock:
            if account.held + account.waiting >= account.limit:
                raise SlotUnavailable(
                    "target_limit",
                    f"{account.held + account.waiting} scrapes of this target are already running or waiting "
                    f"(limits.max_concurrent_per_target is {account.limit})",
                )
            if cancellation.cancelled:
                raise SlotUnavailable("cancelled", "cancelled before a scrape slot was free")
            waiter = _Waiter(account, next(self._order))
            account.waiting += 1
            self._active.add(account)
            self._waiters.append(waiter)
            self._dispatch()
            if waiter.granted:
                return time.monotonic()
        unhook = cancellation.on_cancel(waiter.event.set)
        try:
            waiter.event.wait(max(0.0, deadline - time.monotonic()))
        finally:
            unhook()
        with self._lock:
            if waiter.granted:
                return time.monotonic()
            self._waiters.remove(waiter)
            account.waiting -= 1
            self._forget_if_idle(account)
            self._dispatch()  # one target fewer: the others' shares may have grown
        if cancellation.cancelled:
            raise SlotUnavailable("cancelled", "cancelled while waiting for a scrape slot")
        raise SlotUnavailable(
            "deadline", f"all {self.capacity} scrape slots of the exporter stayed busy until the deadline (limits.max_concurrent_scrapes)"
        )

    def release(self, account: SlotAccount, granted_at: float) -> None:
        now = time.monotonic()
        with self._lock:
            account.held -= 1
            if account.held_unproven > 0:
                account.held_unproven -= 1
                self._unproven_held -= 1
            self._free += 1
            account._charge(now - granted_at, now)
            self._forget_if_idle(account)
            self._dispatch()

    def _forget_if_idle(self, account: SlotAccount) -> None:
        if account.held == 0 and account.waiting == 0:
            self._active.discard(account)

    def _dispatch(self) -> None:
        """Hand free slots to the waiters that deserve them most (called with the lock held)."""
        now = time.monotonic()
        while self._free > 0 and self._waiters:
            share = self.share()
            unproven_room = self._unproven_held < self.unproven_capacity
            eligible = [w for w in self._waiters if w.account.held < share and (w.account.proven or unproven_room)]
            if not eligible:
                return
            best = min(eligible, key=lambda w: (w.account.held, w.account.used_lately(now), w.order))
            self._waiters.remove(best)
            best.account.waiting -= 1
            best.account.held += 1
            if not best.account.proven:
                best.account.held_unproven += 1
                self._unproven_held += 1
            self._free -= 1
            best.granted = True
            best.event.set()


__all__ = ["FairSlots", "SlotAccount", "SlotUnavailable"]
