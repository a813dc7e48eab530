"""Which level of a HealthImaging metadata document an attribute lives at."""

from __future__ import annotations

import enum
import json
from functools import cache
from importlib import resources
from typing import NamedTuple


class Level(str, enum.Enum):
    """The four levels of an AHI metadata document, in document order."""

    PATIENT = "Patient"
    STUDY = "Study"
    SERIES = "Series"
    INSTANCE = "Instance"


class LevelEntry(NamedTuple):
    tag: str  # 8 upper-case hex digits, e.g. "00100010"
    keyword: str
    vr: str
    level: Level


@cache
def _table() -> dict[str, LevelEntry]:
    raw = json.loads(resources.files(__package__).joinpath("ahi_levels.json").read_text("utf-8"))
    table: dict[str, LevelEntry] = {}
    for level_name, entries in raw["levels"].items():
        level = Level(level_name)
        for entry in entries:
            table[entry["keyword"]] = LevelEntry(entry["tag"], entry["keyword"], entry["vr"], level)
    return table


def level_of(keyword: str) -> Level:
    """The level HealthImaging stores ``keyword`` at; unlisted attributes are Instance level.

    Private tags (8 hex digits) are always Instance level.
    """
    entry = _table().get(keyword)
    return entry.level if entry else Level.INSTANCE


def keywords_at(level: Level) -> tuple[str, ...]:
    """The normalized keywords of ``level`` in the order the service lists them."""
    return tuple(e.keyword for e in _table().values() if e.level is level)


def all_entries() -> tuple[LevelEntry, ...]:
    return tuple(_table().values())
