"""Route templates that do not lie: paths of real REST APIs, each either collapsing to `{id}`
where a segment is an identifier or kept as it is where it is a name with digits in it; and
route templates a target's configuration declares, which win over guessing."""

from __future__ import annotations

import pytest

from pharos_monitoring.exporter.config import parse
from pharos_monitoring.exporter.routes import RouteTable, template

# (path as an application reports it, the template it must become), from public API references.
PATHS = [
    # names with digits: must stay (iso8601 used to collapse to /formats/{id})
    ("/formats/iso8601", "/formats/iso8601"),
    ("/api/v1/formats/iso8601/parse", "/api/v1/formats/iso8601/parse"),
    ("/standards/rfc3339", "/standards/rfc3339"),
    ("/v1/countries/iso3166", "/v1/countries/iso3166"),
    ("/payments/iso20022/pain001", "/payments/iso20022/pain001"),
    ("/videos/42/renditions/1080p", "/videos/{id}/renditions/1080p"),
    ("/oauth2/v2.0/token", "/oauth2/v2.0/token"),  # Microsoft identity platform
    ("/auth/realms/master/protocol/openid-connect/certs", "/auth/realms/master/protocol/openid-connect/certs"),
    ("/api/v4/projects", "/api/v4/projects"),  # GitLab
    ("/2015-03-31/functions", "/{id}/functions"),  # AWS Lambda: a dated API version reads as a date
    ("/v1/checkout/sessions", "/v1/checkout/sessions"),  # Stripe
    ("/crypto/aes256gcm/keys", "/crypto/aes256gcm/keys"),
    ("/hash/sha256/verify", "/hash/sha256/verify"),
    ("/.well-known/openid-configuration", "/.well-known/openid-configuration"),
    ("/static/favicon-32x32.png", "/static/favicon-32x32.png"),
    ("/operations/health-check", "/operations/health-check"),  # Stargate
    # identifiers: must collapse
    ("/repos/ba-st/Stargate/issues/123", "/repos/ba-st/Stargate/issues/{id}"),  # GitHub
    ("/repos/ba-st/Stargate/commits/3f2a9c1e", "/repos/ba-st/Stargate/commits/{id}"),  # short SHA
    ("/repos/ba-st/Stargate/git/commits/7638417db6d59f3c431d3e1f261cc637155684cd", "/repos/ba-st/Stargate/git/commits/{id}"),
    ("/v1/customers/cus_NffrFeUfNV2Hib8XMFdLzBLSxk", "/v1/customers/{id}"),  # Stripe: opaque token
    ("/v1/payment_intents/pi_3MtwBwLkdIwHu7ix28a3tqPa/confirm", "/v1/payment_intents/{id}/confirm"),
    ("/api/v4/projects/278964/merge_requests/1337", "/api/v4/projects/{id}/merge_requests/{id}"),  # GitLab
    ("/users/550e8400-e29b-41d4-a716-446655440000/sessions", "/users/{id}/sessions"),
    ("/orders/3F2B8C1E7A4D4E0B9C552D1E6F7A8B90", "/orders/{id}"),
    ("/docs/507f1f77bcf86cd799439011", "/docs/{id}"),  # MongoDB ObjectId
    ("/invoices/INV-2026-000123/pdf", "/invoices/{id}/pdf"),
    ("/orders/ORD000123", "/orders/{id}"),
    ("/reports/2026-11-29", "/reports/{id}"),
    ("/books/9780306406157", "/books/{id}"),  # ISBN-13
    ("/reset/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abc", "/reset/{id}"),  # a JWT
    ("/subscriptions/sub_1MowQVLkdIwHu7ixeRlqHVzs/items", "/subscriptions/{id}/items"),
    ("https://api.example.com:8443/pets/42?limit=10#x", "/pets/{id}"),
]


@pytest.mark.parametrize(("path", "expected"), PATHS, ids=[path for path, _ in PATHS])
def test_real_api_paths(path, expected):
    assert template(path) == expected


def test_the_table_is_large_and_has_both_kinds():
    assert len(PATHS) >= 30
    assert sum(path == expected for path, expected in PATHS) >= 12
    assert sum("{id}" in expected for _, expected in PATHS) >= 12


def test_declared_templates_win_over_guessing_in_order():
    routes = RouteTable(10, ("/users/{login}/repos", "/users/{login}", "/orders/{id}/items/{sku}"))
    assert routes("/users/octocat") == "/users/{login}"  # a guess would keep "octocat"
    assert routes("http://api:8080/users/user12345/repos?page=2") == "/users/{login}/repos"
    assert routes("/orders/7/items/ABC-1") == "/orders/{id}/items/{sku}"
    assert routes("/orders/7/items") == "/orders/{id}/items"  # no declared match: guessed
    assert routes("/users/") == "/users/"  # a placeholder stands for one non-empty segment
    assert routes("/formats/iso8601") == "/formats/iso8601"


def test_declared_templates_still_count_against_the_route_cap():
    routes = RouteTable(1, ("/a/{x}", "/b/{x}"))
    assert routes("/a/1") == "/a/{x}"
    assert routes("/b/1") == "__overflow__"


def test_a_target_and_the_probe_declare_templates_in_the_config():
    config = parse(
        {"targets": [{"url": "http://127.0.0.1:8080/stats", "routes": ["/orders/{id}", "/users/{login}"]}],
         "probe": {"routes": ["/pets/{name}"]}},
        "pharos.yml",
    )
    assert config.targets[0].routes == ("/orders/{id}", "/users/{login}")
    assert config.probe.routes == ("/pets/{name}",)
