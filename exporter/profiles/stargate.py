"""`stargate`: placeholder replaced by the Stargate helper."""
from __future__ import annotations

from typing import Any

from ..reading import Reading, mapping
from .base import Profile


def parse(document: Any, reading: Reading) -> None:
    mapping(document, "$")


PROFILE = Profile(name="stargate", summary="ba-st/Stargate operational metrics", parse=parse, default_path="/operations/metrics")
