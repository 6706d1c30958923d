"""The meter catalogue (Art. 2 and 9), kept as data in ``meters.json``: adding a meter is a data change."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

CATALOGUE_FILE = Path(__file__).with_name("meters.json")


class Meter(BaseModel):
    key: str
    unit: str
    family: str  # compute | storage | network | bandwidth | security
    kind: str  # rate (quantity per hour of use) | volume (a count, e.g. GB sent)
    name_zh: str
    name_en: str
    attributes: dict[str, list[str]] = {}


@lru_cache(maxsize=1)
def meters() -> dict[str, Meter]:
    raw = json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))
    return {key: Meter(key=key, **spec) for key, spec in raw.items()}


def unit_of(meter: str) -> str | None:
    found = meters().get(meter)
    return found.unit if found else None
