"""Where drift came from: for each drifted attribute, the version that changed it.

Drift says *that* the live value is not the desired one; the on-call person also needs
*where to look*. Versions are immutable and numbered, so walking an image set's history
back from the latest version finds the first version whose value of the attribute
differs from today's: the one after it made today's value. That version's workflow
status and time (ListImageSetVersions) are what the report names.

Cost: one ListImageSetVersions and at most ``max_versions`` metadata reads per drifted
image set (versions in sync need none); an attribute unchanged in all of them is
reported as "unchanged in the last N versions".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.dicom.document import Address, value_at
from reconciler.engine.changes import Change
from reconciler.engine.plan import ImageSetPlan, Plan
from reconciler.errors import ReconcilerError
from reconciler.healthimaging import HealthImaging, VersionInfo

MAX_VERSIONS = 20


def origin_key(image_set_id: str, change: Change) -> str:
    """How :attr:`Plan.origins` names a change: image set and JSON Pointer."""
    return f"{image_set_id}|{change.pointer}"


def _state(doc: Mapping[str, Any], change: Change) -> str:
    present, value = value_at(dict(doc), Address.of(change.level, change.series_uid,
                                                    change.sop_uid, change.key))  # fmt: skip
    return json.dumps([present, value], sort_keys=True)


def _describe(version: VersionInfo) -> str:
    when = version.updated_at or version.created_at
    at = f" at {when.isoformat(timespec='seconds')}" if when else ""
    how = version.workflow_status.value if version.workflow_status else "?"
    forced = ", forced" if version.forced else ""
    return f"changed in version {version.version_id} ({how}{forced}){at}"


def _origins_of(ahi: HealthImaging, item: ImageSetPlan, max_versions: int) -> dict[str, str]:
    versions = sorted(ahi.list_versions(item.datastore_id, item.image_set_id),
                      key=lambda v: -int(v.version_id))  # fmt: skip
    newer = [v for v in versions if int(v.version_id) <= int(item.version_id or 0)]
    docs: dict[str, dict[str, Any]] = {}

    def doc(version: VersionInfo) -> dict[str, Any]:
        if version.version_id not in docs:
            docs[version.version_id] = ahi.get_metadata(
                item.datastore_id, item.image_set_id, version.version_id
            )
        return docs[version.version_id]

    found: dict[str, str] = {}
    window = newer[:max_versions]
    if not window:
        return found
    for change in item.diff.changes:
        if change.key is None:
            continue  # a whole series/instance: drift of an object, not an attribute
        today = _state(doc(window[0]), change)
        made_by = window[0]
        for older in window[1:]:
            if _state(doc(older), change) != today:
                break
            made_by = older
        else:
            if len(newer) > len(window):
                found[origin_key(item.image_set_id, change)] = (
                    f"unchanged in the last {len(window)} versions"
                )
                continue
        if made_by.version_id == newer[-1].version_id and int(made_by.version_id) == 1:
            found[origin_key(item.image_set_id, change)] = "so since version 1 (the import)"
        else:
            found[origin_key(item.image_set_id, change)] = _describe(made_by)
    return found


def change_origins(
    ahi: HealthImaging, plan: Plan, *, max_versions: int = MAX_VERSIONS
) -> dict[str, str]:
    """For each attribute change of ``plan``'s image sets: which version made the live
    value, and when. An image set whose history cannot be read is left out."""
    origins: dict[str, str] = {}
    items: Sequence[ImageSetPlan] = [i for i in plan.image_sets if i.diff.changes]
    for item in items:
        try:
            origins.update(_origins_of(ahi, item, max_versions))
        except ReconcilerError:
            continue  # the drift itself is reported; its origin is a courtesy
    return origins
