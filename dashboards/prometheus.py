"""A small client for Prometheus' HTTP API: what `pharos dashboards render` and the live tests
need to run a dashboard's queries without Grafana (instant and range queries, label values)."""

from __future__ import annotations

from dataclasses import dataclass

import requests

TIMEOUT_SECONDS = 30


def describe(error: requests.RequestException) -> str:
    """A short reason for a failed request, without the library's nested repr."""
    if isinstance(error, requests.Timeout):
        return f"no answer within {TIMEOUT_SECONDS} s"
    if isinstance(error, requests.ConnectionError):
        return "connection refused or host unreachable"
    return type(error).__name__


class PrometheusError(Exception):
    """Prometheus could not be reached or refused a query; the message says which and why."""


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix seconds, value); one point for an instant query


class Prometheus:
    def __init__(self, url: str, session: requests.Session | None = None):
        self.url = url.rstrip("/")
        self.session = session or requests.Session()

    def _get(self, path: str, params) -> dict:
        address = f"{self.url}{path}"
        try:
            response = self.session.get(address, params=params, timeout=TIMEOUT_SECONDS)
        except requests.RequestException as error:
            raise PrometheusError(f"cannot reach Prometheus at {self.url} ({describe(error)}); check --prometheus") from None
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(
                f"{address} answered HTTP {response.status_code} without JSON: is {self.url} Prometheus' base URL?"
            ) from None
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus refused {params}: {body.get('errorType', '')} {body.get('error', body)}")
        return body["data"]

    def instant(self, expr: str, at: float | None = None) -> list[Series]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params)
        if data["resultType"] == "scalar":
            when, value = data["result"]
            return [Series({}, [(float(when), float(value))])]
        if data["resultType"] != "vector":
            raise PrometheusError(f"expected an instant vector from {expr!r}, got a {data['resultType']}")
        return [Series(item["metric"], [(float(item["value"][0]), float(item["value"][1]))]) for item in data["result"]]

    def range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        data = self._get("/api/v1/query_range", params)
        return [Series(item["metric"], [(float(t), float(v)) for t, v in item["values"]]) for item in data["result"]]

    def label_values(self, label: str, match: str, start: float, end: float) -> list[str]:
        params = {"match[]": match, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        return sorted(self._get(f"/api/v1/label/{label}/values", params))
