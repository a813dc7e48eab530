"""After an update settles: does the live document now hold what the changes asked for?

Apply re-reads the new version and checks each change it sent, so "UPDATED" in the
journal means "the document is as desired", not only "the service said so". Works
from the changes alone, so it needs no manifests (a saved plan carries its changes).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from reconciler.dicom import document
from reconciler.dicom.levels import Level
from reconciler.engine.changes import Change, ChangeOp


def _same(a: Any, b: Any) -> bool:
    # JSON identity: 1 and 1.0 or "1" and 1 are different values in a metadata document.
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def unmet(doc: dict[str, Any], changes: Sequence[Change]) -> list[str]:
    """One line per change the document does not reflect (empty when all are met)."""
    problems: list[str] = []
    for change in changes:
        if change.renames:  # the object moved to its new UID: look for it there
            moved = dataclasses.replace(change, **_renamed(change))
            if document.object_at(doc, moved.address) is None:
                problems.append(f"{change.pointer}: no object under the new UID {change.after}")
            continue
        node = document.object_at(doc, change.address)
        if change.key is None:  # a whole series or instance removed
            if node is not None:
                problems.append(f"{change.pointer}: still present")
            continue
        dicom = document.attributes(node or {})
        if change.op is ChangeOp.REMOVE:
            if change.key in dicom:
                problems.append(f"{change.pointer}: still present")
        elif change.key not in dicom or not _same(dicom[change.key], change.after):
            problems.append(f"{change.pointer}: not the desired value")
    return problems


def _renamed(change: Change) -> dict[str, Any]:
    if change.level is Level.SERIES:
        return {"series_uid": change.after}
    return {"sop_uid": change.after}
