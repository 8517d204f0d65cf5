"""The built-in traffic generator: the demo calls its own application routes on loopback.

A few worker threads share the requested rate; each keeps one keep-alive connection. A worker
that falls behind (the latency fault, say) does not burst to catch up: the rate is a ceiling.
The mix: list orders 40%, one order 30% (one in six unknown -> 404), create an order 20%,
one customer 10% (one in ten unknown -> 404).
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import time
import uuid

from .orders import OrderStore

log = logging.getLogger("pharos.demo")

MAX_WORKERS = 4
REQUEST_TIMEOUT_SECONDS = 60  # above the largest latency fault (30 s)


class TrafficGenerator:
    def __init__(self, host: str, port: int, rate: float, store: OrderStore, seed: int | None = None):
        self._host, self._port = host, port
        self._rate = rate
        self._store = store
        self._stop = threading.Event()
        workers = min(MAX_WORKERS, max(1, int(rate)))
        self._interval = workers / rate
        self._rng = random.Random(seed)
        self._threads = [
            threading.Thread(target=self._work, name=f"demo-traffic-{n}", daemon=True) for n in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _work(self) -> None:
        connection = None
        next_at = time.monotonic() + self._rng.uniform(0, self._interval)
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            next_at = max(next_at + self._interval, time.monotonic())
            if connection is None:
                connection = http.client.HTTPConnection(self._host, self._port, timeout=REQUEST_TIMEOUT_SECONDS)
            method, path, body = self._next_request()
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as error:
                if not self._stop.is_set():
                    log.debug("traffic request %s %s failed: %s", method, path, error)
                connection.close()
                connection = None
        if connection is not None:
            connection.close()

    def _next_request(self) -> tuple[str, str, bytes | None]:
        rng, store = self._rng, self._store
        pick = rng.random()
        if pick < 0.4:
            return "GET", f"/api/orders?limit={rng.choice((10, 20, 50))}", None
        if pick < 0.7:
            known = store.known_order_ids(100)
            order_id = rng.choice(known) if known and rng.random() > 1 / 6 else rng.randint(10**6, 10**7)
            return "GET", f"/api/orders/{order_id}", None
        if pick < 0.9:
            order = {"customer": rng.choice(list(store.customers)), "items": store.random_items()}
            return "POST", "/api/orders", json.dumps(order).encode()
        customer = rng.choice(list(store.customers)) if rng.random() > 0.1 else str(uuid.uuid4())
        return "GET", f"/api/customers/{customer}", None
