"""Validation of generated dashboards against Grafana's published JSON Schemas.

The schemas are Grafana's own (grafana-foundation-sdk, draft-07), read at test time from
`../shared/grafana-schema/` (or $PHAROS_GRAFANA_SCHEMA_DIR) and never copied into the project.
A dashboard is checked against `dashboard` (the model, every panel and variable), each panel's
`options` and `fieldConfig.defaults.custom` against its panel type's schema, and each query
against `prometheus` (the Prometheus query model).

The relaxation grafanalib 0.7.1's output needs, and no more (docs/dashboards.md explains it):

1. `null` is accepted wherever a property is: grafanalib writes every attribute it knows, unset
   ones as null, and Grafana reads a null as "not set". Required properties stay required.
2. The keys in `EXTRA_KEYS` are accepted where listed: legacy keys grafanalib still writes and
   Grafana ignores. Every other unknown key is still an error, and a test proves that each entry
   is needed (remove it and some dashboard fails).

Two more changes correct the schema itself, whatever wrote the dashboard (`CORRECTIONS`): a field
override's `value` and a matcher's `options` may be any JSON value, as in Grafana and in the CUE
schema the JSON Schema was generated from, not only an object.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path

import jsonschema

SCHEMA_DIR = Path(os.environ.get("PHAROS_GRAFANA_SCHEMA_DIR", Path(__file__).resolve().parents[2] / "shared" / "grafana-schema"))

# schema file -> definition -> keys grafanalib writes that the definition does not list.
EXTRA_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "dashboard": {
        # grafanalib's Dashboard: pre-5 layout (`rows`), dark/light `style`, import `__inputs`.
        "Dashboard": ("__inputs", "hideControls", "rows", "sharedCrosshair", "style"),
        "TimePickerConfig": ("time_options",),
        # grafanalib's Template: tag queries, removed in Grafana 8.
        "VariableModel": ("tagValuesQuery", "tagsQuery", "useTags"),
        "VariableOption": ("tags",),
        # grafanalib's Panel: pre-5 sizing and flags; its Table also writes Angular-table keys.
        "Panel": ("color", "columns", "editable", "error", "fontSize", "height", "mappings", "minSpan", "span"),
    },
}

# Where the published schema is narrower than Grafana itself, independent of grafanalib:
# schema file -> definition -> property -> the schema Grafana actually accepts.
CORRECTIONS: dict[str, dict[str, dict[str, dict]]] = {
    "dashboard": {
        # An override's value is typed `object`, but Grafana's own overrides carry strings and
        # numbers ({"id": "unit", "value": "bytes"}): the CUE source says `value?: _` (anything).
        "DynamicConfigValue": {"value": {}},
        # The same for a matcher's options: `byName` and `byFrameRefID` take a string (CUE: `options?: _`).
        "MatcherConfig": {"options": {}},
    },
}


def schema_file(name: str) -> Path:
    return SCHEMA_DIR / f"{name}.jsonschema.json"


@functools.lru_cache(maxsize=None)
def _raw(name: str) -> dict:
    path = schema_file(name)
    if not path.is_file():
        raise FileNotFoundError(f"Grafana schema {path} is missing: set PHAROS_GRAFANA_SCHEMA_DIR to the folder of *.jsonschema.json files")
    return json.loads(path.read_text(encoding="utf-8"))


def relaxed(name: str, extra_keys: dict[str, dict[str, tuple[str, ...]]] | None = None, corrections=None, nulls: bool = True) -> dict:
    """Schema `name` with the corrections applied, nulls accepted and the listed extra keys allowed
    (the tests narrow each of the three to prove it needed)."""
    extra_keys = EXTRA_KEYS if extra_keys is None else extra_keys
    corrections = CORRECTIONS if corrections is None else corrections
    schema = copy.deepcopy(_raw(name))
    for definition_name, definition in schema.get("definitions", {}).items():
        properties = definition.get("properties")
        if properties is None:
            continue
        properties.update(corrections.get(name, {}).get(definition_name, {}))
        if nulls:
            definition["properties"] = {key: {"anyOf": [value, {"type": "null"}]} for key, value in properties.items()}
        for key in extra_keys.get(name, {}).get(definition_name, ()):
            definition["properties"][key] = {}
    return schema


def _validator(name: str, definition: str | None, relaxation: dict) -> jsonschema.Draft7Validator:
    return _cached_validator(name, definition, json.dumps(relaxation, sort_keys=True))


@functools.lru_cache(maxsize=256)
def _cached_validator(name: str, definition: str | None, relaxation: str) -> jsonschema.Draft7Validator:
    schema = relaxed(name, **json.loads(relaxation))
    if definition is not None:
        schema = {**schema, "$ref": f"#/definitions/{definition}"}
    return jsonschema.Draft7Validator(schema)


def _describe(error: jsonschema.ValidationError) -> str:
    best = jsonschema.exceptions.best_match([error])
    where = "/".join(str(part) for part in best.absolute_path) or "(top)"
    return f"{where}: {best.message[:300]}"


def problems(document, name: str, definition: str | None = None, **relaxation) -> list[str]:
    """Readable schema violations of `document` against definition `definition` of schema `name`."""
    validator = _validator(name, definition, relaxation)
    return [_describe(error) for error in validator.iter_errors(document)]


def panel_schema_name(panel_type: str) -> str:
    """Schema file of a panel type: Grafana's plugin id without dashes (`state-timeline` -> `statetimeline`)."""
    return panel_type.replace("-", "")


def dashboard_problems(dashboard: dict, **relaxation) -> list[str]:
    """Every violation in a dashboard: the model, each panel (against `Panel` or `RowPanel`, the
    two branches of the schema's `oneOf`, for precise messages), each panel type's options and
    custom field config, and each query. Messages start with where the problem is."""
    model = {**dashboard, "panels": []}
    found = [f"dashboard: {problem}" for problem in problems(model, "dashboard", "Dashboard", **relaxation)]
    for panel in dashboard.get("panels", []):
        label = f"panel {panel.get('title')!r} ({panel['type']})"
        kind = "RowPanel" if panel["type"] == "row" else "Panel"
        found += [f"{label}: {p}" for p in problems(panel, "dashboard", kind, **relaxation)]
        if panel["type"] == "row":
            continue
        name = panel_schema_name(panel["type"])
        if not schema_file(name).is_file():
            found.append(f"{label}: no schema for panel type {panel['type']!r} in {SCHEMA_DIR}")
            continue
        definitions = _raw(name)["definitions"]
        found += [f"{label} options: {p}" for p in problems(panel.get("options", {}), name, "Options", **relaxation)]
        if "FieldConfig" in definitions:
            custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
            found += [f"{label} fieldConfig.defaults.custom: {p}" for p in problems(custom, name, "FieldConfig", **relaxation)]
        for query in panel.get("targets", []):
            found += [f"{label} query {query.get('refId')}: {p}" for p in problems(query, "prometheus", "Dataquery", **relaxation)]
    return found
