"""The Grafana dashboards of Pharos, written with grafanalib.

`house` holds our conventions; each other module builds one dashboard (`build(fleet)`).
`DASHBOARDS` lists them in the order the docs present them; `build_all` returns the grafanalib
objects and `write_all` the JSON files `pharos dashboards build` writes.

`fleet`: built for a Grafana that also has the fleet's global store as a data source, the
environment variable is shown (several environments side by side); built for one environment's
Prometheus only, it is hidden (the data source is the environment). The queries are the same.
"""

from __future__ import annotations

from pathlib import Path

from . import house, pipeline_health, service_detail, services_overview, swarm

DASHBOARDS = (services_overview, service_detail, pipeline_health, swarm)


def build_all(fleet: bool = False) -> list:
    return [module.build(fleet=fleet) for module in DASHBOARDS]


def file_name(dashboard) -> str:
    return f"{dashboard.uid}.json"


def write_all(directory: Path, fleet: bool = False) -> list[Path]:
    """Write every dashboard as `<uid>.json` into `directory` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for dashboard in build_all(fleet):
        path = directory / file_name(dashboard)
        path.write_text(house.to_json(dashboard), encoding="utf-8")
        written.append(path)
    return written
