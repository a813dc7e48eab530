"""A saved plan against the command line and the service, before anything is sent.

:mod:`reconciler.engine.planfile` makes sure a saved plan is well formed and that its
payloads are exactly what its listed changes make. What remains is whether it is
*this* apply's to run, and whether it describes the image sets it names:

- :func:`missing_opt_ins`: every opt-in the plan relies on must be given again on the
  apply's command line: ``--replace-primary`` for a replace, ``--allow-force`` for a
  call with force, ``--study-wide`` for an includeStudyImageSets call,
  ``--combine-forced`` for forced and unforced changes in one call. A plan file alone
  never authorises them (it may have been edited, or made by someone else);
- :func:`check_pinned`: each image set to change must exist in the named data store at
  its pinned version, be primary or not as the plan says (a replace only ever on a
  primary), belong to the study the plan names, and hold every value the changes
  start from (``before``). A plan whose image set ID was swapped for another study's
  fails here, before a single write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.dicom import document
from reconciler.engine.changes import Change, ChangeOp
from reconciler.engine.plan import ImageSetPlan, Plan
from reconciler.errors import ReconcilerError
from reconciler.healthimaging import HealthImaging, ImageSetNotFound


class PlanMismatch(ReconcilerError):
    """A saved plan does not describe the image sets it names, or needs an opt-in."""


@dataclass(frozen=True)
class OptIns:
    """What the apply's command line allows (see the module docstring)."""

    replace_primary: bool = False
    allow_force: bool = False
    study_wide: bool = False
    combine_forced: bool = False


def missing_opt_ins(plan: Plan, given: OptIns) -> list[str]:
    """The command-line flags ``plan`` needs that ``given`` lacks, as flags."""
    items = plan.to_update
    needed = {
        "--replace-primary": any(i.replace for i in items) and not given.replace_primary,
        "--allow-force": any(p.force for i in items for p in i.payloads) and not given.allow_force,
        "--study-wide": any(i.include_study for i in items) and not given.study_wide,
        "--combine-forced": plan.combine_forced and not given.combine_forced,
    }
    return [flag for flag, missing in needed.items() if missing]


def check_opt_ins(plan: Plan, given: OptIns) -> None:
    missing = missing_opt_ins(plan, given)
    if missing:
        raise PlanMismatch(
            f"the saved plan needs {' '.join(missing)} on the command line too: a plan "
            "file alone never allows a replace, force or a study-wide call"
        )


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _starts_from(doc: dict[str, Any], change: Change) -> bool:
    """Whether ``doc`` holds what ``change`` was computed from."""
    node = document.object_at(doc, change.address)
    if node is None:
        return False
    if change.key is None:  # a whole series or instance removed: it must be there
        return True
    dicom = document.attributes(node)
    if change.op is ChangeOp.ADD:
        return change.key not in dicom
    return change.key in dicom and _same(dicom[change.key], change.before)


def _check_one(ahi: HealthImaging, item: ImageSetPlan) -> None:
    where = f"image set {item.image_set_id} (data store {item.datastore_id})"
    try:
        info = ahi.get_image_set(item.datastore_id, item.image_set_id, item.version_id)
    except ImageSetNotFound:
        raise PlanMismatch(
            f"{where} has no version {item.version_id}: the saved plan does not describe "
            "it (edited, or made against other data); plan again"
        ) from None
    if info.is_primary != item.is_primary or (item.replace and not info.is_primary):
        kind = "a primary" if info.is_primary else "a non-primary"
        raise PlanMismatch(
            f"{where} is {kind} image set, which the saved plan does not say"
            f"{' (a replace is only for primary image sets)' if item.replace else ''}; "
            "plan again"
        )
    doc = ahi.get_metadata(item.datastore_id, item.image_set_id, item.version_id)
    study = (doc.get("Study") or {}).get("DICOM", {}).get("StudyInstanceUID")
    if item.study_uid is not None and study != item.study_uid:
        raise PlanMismatch(
            f"{where} at version {item.version_id} belongs to another study than the saved "
            "plan names; plan again"
        )
    wrong = [c.pointer for c in item.diff.changes if not _starts_from(doc, c)]
    if wrong:
        raise PlanMismatch(
            f"{where} at version {item.version_id} does not hold what the saved plan's "
            f"changes start from ({', '.join(wrong[:5])}); plan again"
        )


def check_pinned(ahi: HealthImaging, items: Sequence[ImageSetPlan]) -> None:
    """Raise :class:`PlanMismatch` for the first of ``items`` its pinned version
    contradicts (see the module docstring)."""
    for item in items:
        _check_one(ahi, item)
