"""Manifests: the desired-state YAML format, its JSON Schema, and validation that teaches.

The engine needs only :func:`load_tree` and the model::

    result = load_tree([Path("manifests")])
    if not result.ok: ...            # result.problems, each with file:line:col
    for manifest in result.manifests:
        manifest.selector, manifest.sets, manifest.removals, manifest.digest

The format is documented in docs/manifests.md.
"""

from __future__ import annotations

from reconciler.manifest.conflicts import SelectorTarget, find_conflicts
from reconciler.manifest.loader import load_tree
from reconciler.manifest.model import (
    DesiredValue,
    LoadResult,
    Location,
    Manifest,
    Problem,
    Removal,
    Selector,
    SelectorKind,
    Severity,
)
from reconciler.manifest.schema import SCHEMA_FILE

__all__ = [
    "SCHEMA_FILE",
    "DesiredValue",
    "LoadResult",
    "Location",
    "Manifest",
    "Problem",
    "Removal",
    "Selector",
    "SelectorKind",
    "SelectorTarget",
    "Severity",
    "find_conflicts",
    "load_tree",
]
