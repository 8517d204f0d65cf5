"""The demo's application: a small in-memory order service with real work behind each route.

Orders are dicts with line items; listing, creating and summarising them allocates the kind of
short-lived objects a real service does, so the garbage collector has work. The store keeps at
most `MAX_ORDERS` orders (oldest dropped) so that memory stays bounded however long it runs.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import OrderedDict

MAX_ORDERS = 5000
SKUS = tuple(f"SKU-{n:04d}" for n in range(1, 201))
CUSTOMER_COUNT = 50


class RequestError(Exception):
    """A client mistake: answered with `status` and a message naming what was wrong."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class OrderStore:
    def __init__(self, seed_orders: int = 200, rng: random.Random | None = None):
        self._lock = threading.Lock()
        self._rng = rng or random.Random()
        self._orders: OrderedDict[int, dict] = OrderedDict()
        self._next_id = 1000
        self.customers = {str(uuid.UUID(int=self._rng.getrandbits(128), version=4)): f"Customer {n}" for n in range(CUSTOMER_COUNT)}
        customer_ids = list(self.customers)
        for _ in range(seed_orders):
            self.create({"customer": self._rng.choice(customer_ids), "items": self.random_items()})

    def random_items(self) -> list[dict]:
        return [
            {"sku": self._rng.choice(SKUS), "quantity": self._rng.randint(1, 5), "unitPrice": round(self._rng.uniform(1, 200), 2)}
            for _ in range(self._rng.randint(1, 6))
        ]

    # --- routes ------------------------------------------------------------------------------
    def list_orders(self, query: dict[str, list[str]]) -> tuple[int, dict]:
        limit = _int_parameter(query, "limit", default=20, low=1, high=200)
        with self._lock:
            latest = list(self._orders.values())[-limit:]
        latest.reverse()
        return 200, {"orders": [_summary(order) for order in latest], "total": len(self._orders)}

    def get_order(self, order_id: str) -> tuple[int, dict]:
        with self._lock:
            order = self._orders.get(int(order_id))
        if order is None:
            raise RequestError(404, f"no order {order_id}; GET /api/orders lists the latest ones")
        return 200, {**order, "total": _total(order)}

    def create_order(self, body: object) -> tuple[int, dict]:
        return 201, self.create(body)

    def get_customer(self, customer_id: str) -> tuple[int, dict]:
        name = self.customers.get(customer_id.lower())
        if name is None:
            raise RequestError(404, f"no customer {customer_id}")
        with self._lock:
            orders = [order for order in self._orders.values() if order["customer"] == customer_id.lower()]
        spent_by_sku: dict[str, float] = {}
        for order in orders:
            for item in order["items"]:
                spent_by_sku[item["sku"]] = spent_by_sku.get(item["sku"], 0.0) + item["quantity"] * item["unitPrice"]
        favourites = sorted(spent_by_sku.items(), key=lambda pair: pair[1], reverse=True)[:5]
        return 200, {
            "id": customer_id.lower(),
            "name": name,
            "orders": len(orders),
            "spent": round(sum(spent_by_sku.values()), 2),
            "favouriteSkus": [{"sku": sku, "spent": round(spent, 2)} for sku, spent in favourites],
        }

    # --- the store ---------------------------------------------------------------------------
    def create(self, body: object) -> dict:
        if not isinstance(body, dict):
            raise RequestError(400, 'expected a JSON object like {"customer": "<uuid>", "items": [{"sku": "SKU-0001", "quantity": 1, "unitPrice": 9.5}]}')
        customer = body.get("customer")
        if not isinstance(customer, str) or customer.lower() not in self.customers:
            raise RequestError(400, f"customer: {customer!r} is not a known customer id (GET /api/customers/<uuid>)")
        items = body.get("items")
        if not isinstance(items, list) or not 1 <= len(items) <= 50:
            raise RequestError(400, "items: expected a list of 1 to 50 line items")
        lines = [_line(item, index) for index, item in enumerate(items)]
        with self._lock:
            order_id = self._next_id
            self._next_id += 1
            order = {"id": order_id, "customer": customer.lower(), "items": lines, "createdAt": round(time.time(), 3)}
            self._orders[order_id] = order
            while len(self._orders) > MAX_ORDERS:
                self._orders.popitem(last=False)
        return {**order, "total": _total(order)}

    def known_order_ids(self, count: int) -> list[int]:
        with self._lock:
            return list(self._orders)[-count:]


def _line(item: object, index: int) -> dict:
    where = f"items[{index}]"
    if not isinstance(item, dict):
        raise RequestError(400, f"{where}: expected an object with sku, quantity and unitPrice")
    sku, quantity, price = item.get("sku"), item.get("quantity"), item.get("unitPrice")
    if sku not in SKUS:
        raise RequestError(400, f"{where}.sku: {sku!r} is not a known SKU (SKU-0001 to SKU-{len(SKUS):04d})")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 1000:
        raise RequestError(400, f"{where}.quantity: expected an integer from 1 to 1000, got {quantity!r}")
    if isinstance(price, bool) or not isinstance(price, (int, float)) or not 0 <= price <= 1e6:
        raise RequestError(400, f"{where}.unitPrice: expected a number from 0 to 1000000, got {price!r}")
    return {"sku": sku, "quantity": quantity, "unitPrice": float(price)}


def _total(order: dict) -> float:
    return round(sum(item["quantity"] * item["unitPrice"] for item in order["items"]), 2)


def _summary(order: dict) -> dict:
    return {"id": order["id"], "customer": order["customer"], "lines": len(order["items"]), "total": _total(order)}


def _int_parameter(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    values = query.get(name)
    if not values:
        return default
    text = values[0]
    if not text.isdigit() or not low <= int(text) <= high:
        raise RequestError(400, f"query parameter {name}: expected an integer from {low} to {high}, got {text!r}")
    return int(text)
