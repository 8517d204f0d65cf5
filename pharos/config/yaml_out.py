"""YAML as the generated configuration files use it: stable, readable, diff-friendly.

Keys keep the order the renderers build them in (Prometheus and Alertmanager documentation order);
multi-line strings (notification templates) are written as literal blocks.
"""

from __future__ import annotations

import yaml


class _Dumper(yaml.SafeDumper):
    pass


def _string(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def dump(data, header: str = "") -> str:
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1_000_000, allow_unicode=True)
    return header + body
