"""Declarative JSON mappings (the `json` profile): json_exporter's module format, and more.

    modules = load_modules(yaml_document, "pharos.yml")      # the `modules:` of our config
    modules = load_modules_file("json_exporter/config.yml")  # json_exporter's file as it is
    profile = modules["default"].profile(stats)               # an exporter.profiles Profile

Every problem in a mapping is a ConfigError at load naming the file, key path and metric. See
docs/json-mapping.md for the reference, json_exporter compatibility and the Pharos additions.
"""

from __future__ import annotations

from typing import Any

from ..config import ConfigError
from ..yaml_file import load_yaml_file
from .extract import DROP_REASONS, Builder
from .module import MODULE_METRICS, Module, ModuleStats
from .schema import MODULE_KEYS, parse_module
from .schema_reader import Reader

__all__ = ["DROP_REASONS", "MODULE_METRICS", "Module", "ModuleStats", "load_modules", "load_modules_file"]


def load_modules(data: Any, source: str) -> dict[str, Module]:
    """The modules under `modules:` of a parsed configuration document (other top-level keys are
    the caller's). Raises ConfigError naming `source`, the key path and the metric."""
    reader = Reader(source)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise reader.fail("", f"expected a mapping at the top level, got {type(data).__name__}")
    modules_value = data.get("modules")
    if modules_value is None:
        return {}
    if not isinstance(modules_value, dict):
        raise reader.fail("modules", f"expected a mapping of module name to module, got {type(modules_value).__name__}")
    from ..profiles import PROFILES  # late: profiles may one day list the json modules

    reserved = set(PROFILES)
    modules = {}
    for name, value in modules_value.items():
        path = f"modules.{name}"
        spec = parse_module(reader, name, value, path, reserved)
        builder = Builder(reader)
        extractors = [builder.extractor(metric) for metric in spec.metrics]
        modules[name] = Module(spec, extractors, len(builder.slots), source)
    return modules


def load_modules_file(path: str) -> dict[str, Module]:
    """json_exporter's configuration file, as it is: `modules:` (0.5 and later), or the single
    module at the top level of 0.3/0.4 (`metrics:`, `headers:`, ...), which becomes `default`."""
    data = load_yaml_file(path, "mapping file", ConfigError)
    reader = Reader(path)
    if isinstance(data, list):
        raise reader.fail("", "this is json_exporter's 0.2 format (a list of metrics with paths like '$.counter'); "
                              "Pharos reads the 0.3+ format: `modules:` with paths like '{.counter}'")  # fmt: skip
    if isinstance(data, dict) and "modules" not in data and "metrics" in data:
        reader.mapping(data, "", MODULE_KEYS)
        data = {"modules": {"default": data}}
    reader.mapping(data, "", {"modules"})
    if not data or not data.get("modules"):
        raise reader.fail("modules", "the file defines no modules")
    return load_modules(data, path)
