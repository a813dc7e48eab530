"""Hand-built manifests for engine tests: the desired state without YAML in between."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import USDOPPLER

from reconciler.dicom.levels import Level
from reconciler.manifest.model import (
    DesiredValue,
    Location,
    Manifest,
    Removal,
    Selector,
    SelectorKind,
)

LOC = Location("t.yaml", 1, 1)
S = next(iter(USDOPPLER["Study"]["Series"]))
SOPS = list(USDOPPLER["Study"]["Series"][S]["Instances"])
SOP = SOPS[0]


def manifest(*items: DesiredValue | Removal, force: bool = False, name: str = "m") -> Manifest:
    """A manifest named ``name`` over USDOPPLER's image set holding ``items``."""
    return Manifest(
        name=name,
        path=Path(f"{name}.yaml"),
        location=LOC,
        datastore_id="d" * 32,
        selector=Selector(SelectorKind.IMAGE_SET_ID, USDOPPLER["ImageSetID"]),
        force=force,
        sets=tuple(i for i in items if isinstance(i, DesiredValue)),
        removals=tuple(i for i in items if isinstance(i, Removal)),
        digest="0" * 64,
    )


def put(level: Level, key: str, value: Any, series: str | None = None,
        sop: str | None = None, vr: str | None = None, line: int = 1) -> DesiredValue:  # fmt: skip
    return DesiredValue(level, series, sop, key, value, vr, Location("t.yaml", line, 1))


def drop(level: Level, key: str | None, series: str | None = None,
         sop: str | None = None) -> Removal:  # fmt: skip
    return Removal(level, series, sop, key, LOC)
