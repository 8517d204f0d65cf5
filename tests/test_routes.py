"""Route templates: IDs collapse to `{id}`, words stay, and at most N templates per target, the
rest summed under `__overflow__` for good."""

from __future__ import annotations

import threading

import pytest

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.profiles import pharo
from pharos_monitoring.exporter.reading import Reading
from pharos_monitoring.exporter.routes import RouteTable, template


@pytest.mark.parametrize(
    "route,expected",
    [
        # numeric ids
        ("/orders/123", "/orders/{id}"),
        ("/orders/123/items/7", "/orders/{id}/items/{id}"),
        ("/orders/0", "/orders/{id}"),
        # UUIDs, with and without dashes, any case
        ("/sessions/550e8400-e29b-41d4-a716-446655440000", "/sessions/{id}"),
        ("/sessions/550E8400E29B41D4A716446655440000/end", "/sessions/{id}/end"),
        # hex digests and object ids
        ("/blobs/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "/blobs/{id}"),
        ("/commits/3f2a9c1e0b7d4e5f", "/commits/{id}"),
        ("/docs/507f1f77bcf86cd799439011", "/docs/{id}"),
        # long tokens (base64url) and ids with a prefix
        ("/reset/eyJhbGciOiJIUzI1NiJ9aBc_-9xYz", "/reset/{id}"),
        ("/invoices/INV-2026-000123", "/invoices/{id}"),
        ("/files/report-20261129.pdf", "/files/{id}"),
        # e-mail addresses, version-like numbers
        ("/users/john.doe@example.com/orders", "/users/{id}/orders"),
        ("/releases/2026.11.29", "/releases/{id}"),
        # full URLs: scheme, host, port, query and fragment go
        ("https://shop.example:8443/pets/42?color=red&size=2#top", "/pets/{id}"),
        ("http://10.0.0.1/orders?page=3", "/orders"),
        ("/search?q=/orders/42", "/search"),
        ("orders/5", "/orders/{id}"),
        # placeholders the application already uses are kept
        ("/orders/{id}", "/orders/{id}"),
        ("/orders/{orderId}/items/{itemId}", "/orders/{orderId}/items/{itemId}"),
        ("/orders/:id", "/orders/:id"),
        ("/orders/<int:order_id>", "/orders/<int:order_id>"),
        # static words stay, including short ones with digits
        ("/api/v2/orders", "/api/v2/orders"),
        ("/api/v10/orders/health", "/api/v10/orders/health"),
        ("/oauth2/token", "/oauth2/token"),
        ("/auth/sha256/verify", "/auth/sha256/verify"),
        ("/static/favicon-32x32.png", "/static/favicon-32x32.png"),
        ("/user-profile-settings-page", "/user-profile-settings-page"),
        ("/acceptedfacadedeadbeef", "/acceptedfacadedeadbeef"),  # hex letters only: a word
        ("/", "/"),
        ("", c.ROUTE_UNKNOWN),
    ],
)
def test_template(route, expected):
    assert template(route) == expected


def request_row(route: str, count: int, status: int = 200) -> dict:
    return {"method": "GET", "route": route, "status": status, "count": count, "totalDurationMs": 10 * count}


def scrape(routes: RouteTable, rows: list[dict]) -> dict[str, float]:
    """One scrape of a pharo document through a Reading; request counts by route label."""
    reading = Reading(routes)
    pharo.parse({"http": {"requests": rows}}, reading)
    counts: dict[str, float] = {}
    for family in reading.families():
        for sample in family.samples:
            if sample.name == c.HTTP_REQUEST_DURATION.count:
                route = sample.labels[c.Label.ROUTE]
                counts[route] = counts.get(route, 0.0) + sample.value
    return counts


def test_ids_collapse_and_their_counts_add_up():
    counts = scrape(RouteTable(10), [request_row("/orders/1", 3), request_row("/orders/2", 4), request_row("/orders", 5)])
    assert counts == {"/orders/{id}": 7.0, "/orders": 5.0}


def test_routes_beyond_the_cap_are_summed_under_overflow_and_stay_there():
    routes = RouteTable(3)
    first = scrape(routes, [request_row(f"/r{letter}", 1) for letter in "abcde"])
    assert first == {"/ra": 1.0, "/rb": 1.0, "/rc": 1.0, c.ROUTE_OVERFLOW: 2.0}
    assert len(routes) == 3

    # Next scrape: an overflowed route comes first, a new one appears, one admitted route is gone.
    second = scrape(routes, [request_row("/re", 10), request_row("/rf", 20), request_row("/ra", 30), request_row("/rc", 40)])
    assert second == {c.ROUTE_OVERFLOW: 30.0, "/ra": 30.0, "/rc": 40.0}
    assert len(routes) == 3


def test_overflow_keeps_statuses_apart():
    routes = RouteTable(1)
    reading = Reading(routes)
    pharo.parse({"http": {"requests": [request_row("/a", 1), request_row("/b", 2, 200), request_row("/c", 4, 500)]}}, reading)
    by_status = {}
    for family in reading.families():
        for sample in family.samples:
            if sample.name == c.HTTP_REQUEST_DURATION.count and sample.labels[c.Label.ROUTE] == c.ROUTE_OVERFLOW:
                by_status[sample.labels[c.Label.STATUS]] = sample.value
    assert by_status == {"200": 2.0, "500": 4.0}


def test_ids_do_not_use_up_the_cap():
    routes = RouteTable(2)
    counts = scrape(routes, [request_row(f"/orders/{number}", 1) for number in range(1000)])
    assert counts == {"/orders/{id}": 1000.0}
    assert len(routes) == 1


def test_the_cap_holds_under_concurrent_scrapes():
    routes = RouteTable(50)
    seen: list[set[str]] = []

    def feed(worker: int) -> None:
        seen.append({routes(f"/w{worker}/route{chr(97 + n % 26)}{n // 26}") for n in range(300)})

    threads = [threading.Thread(target=feed, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(routes) == 50
    admitted = set().union(*seen) - {c.ROUTE_OVERFLOW}
    assert len(admitted) == 50


def test_the_decision_survives_the_raw_route_cache():
    routes = RouteTable(2)
    assert routes("/a") == "/a" and routes("/b") == "/b" and routes("/c") == c.ROUTE_OVERFLOW
    for number in range(5000):  # more raw routes than the cache keeps
        routes(f"/a/{number}?page={number}")
    assert routes("/c") == c.ROUTE_OVERFLOW and routes("/a") == "/a"
