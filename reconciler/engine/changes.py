"""What a plan says about one image set, as immutable values (kopf's "diffs as data").

:func:`~reconciler.engine.diff.diff_image_set` produces an :class:`ImageSetDiff`;
:func:`~reconciler.engine.payloads.build_payloads` turns its changes into the blobs
UpdateImageSetMetadata takes; renderers and the journal read the same values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from reconciler.dicom.document import Address
from reconciler.dicom.levels import Level
from reconciler.manifest.model import Location

# Document order of the levels: changes, blobs and renderings follow it.
LEVEL_ORDER = {level: index for index, level in enumerate(Level)}


class ChangeOp(str, enum.Enum):
    """The plan's ``+`` / ``~`` / ``-``."""

    ADD = "add"
    REPLACE = "replace"
    REMOVE = "remove"

    @property
    def symbol(self) -> str:
        return {"add": "+", "replace": "~", "remove": "-"}[self.value]


@dataclass(frozen=True, slots=True)
class Change:
    """One attribute (or, with ``key=None``, one whole series or instance) that changes.

    ``before`` is the live value (the value a removal must carry, AHI.md); ``after``
    the desired one. Neither is meaningful for a whole-object removal. ``vr`` is set
    for private tags only. ``force_reason`` says why the call needs ``force=true``;
    ``phi`` marks values that renderings mask by default.
    """

    op: ChangeOp
    level: Level
    series_uid: str | None
    sop_uid: str | None
    key: str | None
    # Values may be lists (multi-valued, SQ): left out of the hash, kept in equality.
    before: Any = field(hash=False)
    after: Any = field(hash=False)
    vr: str | None
    force_reason: str | None
    phi: bool
    manifest: str
    location: Location

    @property
    def address(self) -> Address:
        """Where the change sits in the metadata document."""
        return Address(self.level, self.series_uid, self.sop_uid, self.key)

    @property
    def pointer(self) -> str:
        """Where the change sits in the metadata document, as a JSON Pointer."""
        return self.address.pointer

    @property
    def sort_key(self) -> tuple[int, str, str, str]:
        return self.address.order

    @property
    def renames(self) -> bool:
        """A forced UID update that re-keys its series or instance in the document."""
        return self.op is not ChangeOp.REMOVE and (
            (self.level is Level.SERIES and self.key == "SeriesInstanceUID")
            or (self.level is Level.INSTANCE and self.key == "SOPInstanceUID")
        )


@dataclass(frozen=True, slots=True)
class PlanProblem:
    """A desired state the plan refuses to turn into an update, and why."""

    image_set_id: str
    message: str
    manifest: str | None = None
    location: Location | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}image set {self.image_set_id}: {self.message}"


@dataclass(frozen=True, slots=True)
class ImageSetDiff:
    """Everything the manifests want changed in one image set.

    ``changes`` are in document order (Patient, Study, Series, Instance, then series,
    instance and key); ``unchanged`` counts what the manifests own that is already as desired (equal
    values, removals of what is absent). An
    image set with ``problems`` must not be updated: its changes are shown, not sent.
    """

    image_set_id: str
    changes: tuple[Change, ...]
    unchanged: int
    problems: tuple[PlanProblem, ...] = ()

    @property
    def needs_force(self) -> bool:
        return any(change.force_reason for change in self.changes)

    @property
    def in_sync(self) -> bool:
        return not self.changes and not self.problems
