"""Profiles: one small module per runtime, each mapping that runtime's stats JSON onto the
vocabulary of `exporter.catalogue`.

To add a runtime, copy `go_expvar.py` (the smallest) or `pharo.py`, change the parser, and add
the module to `_MODULES` below. `tests/test_profiles.py` runs every registered profile against its
fixture in `tests/fixtures/profiles/<name>.json`.
"""

from __future__ import annotations

from .base import HealthCheck, Profile
from . import go_expvar, pharo, stargate

_MODULES = (pharo, stargate, go_expvar)

PROFILES: dict[str, Profile] = {module.PROFILE.name: module.PROFILE for module in _MODULES}


def get(name: str) -> Profile:
    """The profile called `name`; a KeyError whose message lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise KeyError(f"unknown profile {name!r}; known profiles: {known}") from None


__all__ = ["HealthCheck", "Profile", "PROFILES", "get"]
