"""Changes → the ``DICOMUpdates`` blobs of UpdateImageSetMetadata, within the quota.

The blobs are exactly what apply sends and what a saved plan pins, so they have one
canonical form (AHI.md, "UpdateImageSetMetadata"):

- the document's tree plus ``"SchemaVersion": 1.1`` (the number) first, then
  ``Patient``, then ``Study`` with its ``DICOM`` before ``Series``; series and
  instances in sorted UID order, each object's ``DICOM`` before its ``Instances`` or
  ``DICOMVRs``; attributes sorted by key; only non-empty parts;
- ``json.dumps(blob, separators=(",", ":"), ensure_ascii=False)`` encoded as UTF-8:
  no whitespace, and non-ASCII text as UTF-8 rather than ``\\u`` escapes, which is both
  what a person reads in a plan and fewer bytes against the quota. Values are written
  as they are in the document (nested objects keep their key order).

Removals go to ``removableAttributes`` with the current value; a whole instance is
``{"Instances": {"<sop>": {}}}``, a whole series ``{"Series": {"<uid>": {}}}``.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, cast

from reconciler.dicom import document
from reconciler.dicom.levels import Level
from reconciler.engine.changes import Change, ChangeOp, ImageSetDiff
from reconciler.errors import ReconcilerError
from reconciler.healthimaging.wire import DICOMUpdates

SCHEMA_VERSION = 1.1
# The account quota "maximum payload size accepted by UpdateImageSetMetadata"
# (10 KB, adjustable), counted over both decoded blobs together.
DEFAULT_QUOTA_BYTES = 10_240
# The API model's limit on each blob, whatever the account quota says.
MODEL_LIMIT_BYTES = 30_000


class DicomObject(TypedDict, total=False):
    DICOM: dict[str, Any]


class InstanceBlob(TypedDict, total=False):
    DICOM: dict[str, Any]
    DICOMVRs: dict[str, str]


class SeriesBlob(TypedDict, total=False):
    DICOM: dict[str, Any]
    Instances: dict[str, InstanceBlob]


class StudyBlob(TypedDict, total=False):
    DICOM: dict[str, Any]
    Series: dict[str, SeriesBlob]


class _BlobBase(TypedDict):
    SchemaVersion: float


class UpdateBlob(_BlobBase, total=False):
    """One ``updatableAttributes`` or ``removableAttributes`` document."""

    Patient: DicomObject
    Study: StudyBlob


class PayloadError(ReconcilerError):
    """A change cannot be written as an update payload."""


class PayloadTooLargeError(PayloadError):
    """One change alone is larger than an update call may carry."""


@dataclass(frozen=True, slots=True)
class UpdatePayload:
    """One UpdateImageSetMetadata call: its blobs, its force flag, and why."""

    updatable: bytes | None
    removable: bytes | None
    force: bool
    changes: tuple[Change, ...]

    @property
    def size(self) -> int:
        """Bytes counted against the payload quota: both decoded blobs."""
        return len(self.updatable or b"") + len(self.removable or b"")

    @property
    def keys(self) -> list[str]:
        """What the call changes, as level.key paths: keys only, never values (no PHI)."""
        return [
            ".".join(part for part in (c.level.value, c.key or "(entire)") if part)
            for c in self.changes
        ]

    def dicom_updates(self) -> DICOMUpdates:
        updates: DICOMUpdates = {}
        if self.updatable is not None:
            updates["updatableAttributes"] = self.updatable
        if self.removable is not None:
            updates["removableAttributes"] = self.removable
        return updates


def _tree_order(change: Change) -> tuple[int, int, str, int, str, str]:
    """Document-tree order, so that building the blob inserts keys canonically."""
    level = change.level
    return (
        level is not Level.PATIENT,
        level not in (Level.PATIENT, Level.STUDY),
        change.series_uid or "",
        level is Level.INSTANCE,
        change.sop_uid or "",
        change.key or "",
    )


def _blob(changes: Iterable[Change]) -> UpdateBlob:
    blob: UpdateBlob = {"SchemaVersion": SCHEMA_VERSION}
    tree = cast(document.Document, blob)
    for change in sorted(changes, key=_tree_order):
        if change.key is None:  # a whole series or instance: the empty object says it
            document.ensure(tree, change.address)
            continue
        removal = change.op is ChangeOp.REMOVE
        vr = change.vr if change.level is Level.INSTANCE and not removal else None
        document.put(tree, change.address, change.before if removal else change.after, vr=vr)
    return blob


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_blob(blob: UpdateBlob) -> bytes:
    """The canonical bytes of a blob (see the module docstring)."""
    try:
        text = _ENCODER.encode(blob)
    except ValueError as error:  # NaN or infinity: not JSON, so not a DICOM value either
        raise PayloadError(f"a value cannot be written as JSON: {error}") from None
    return text.encode("utf-8")


def payload_for(changes: Sequence[Change]) -> UpdatePayload:
    """One call carrying ``changes``; ``force`` only when one of them needs it."""
    updates = [c for c in changes if c.op is not ChangeOp.REMOVE]
    removals = [c for c in changes if c.op is ChangeOp.REMOVE]
    ordered = tuple(sorted(changes, key=lambda c: c.sort_key))
    if isinstance(changes, tuple) and all(map(operator.is_, ordered, changes)):
        ordered = changes  # the diff's own tuple: a plan holds one per image set, not two
    return UpdatePayload(
        updatable=encode_blob(_blob(updates)) if updates else None,
        removable=encode_blob(_blob(removals)) if removals else None,
        force=any(c.force_reason for c in changes),
        changes=ordered,
    )


def _fits(payload: UpdatePayload, quota_bytes: int) -> bool:
    blobs = (payload.updatable or b"", payload.removable or b"")
    return payload.size <= quota_bytes and all(len(b) <= MODEL_LIMIT_BYTES for b in blobs)


def _units(changes: Sequence[Change]) -> list[list[Change]]:
    """Changes grouped per object (Patient, Study, a series, an instance), in order.

    An object's changes travel together where they fit. Changes that re-key their
    object (a forced SeriesInstanceUID/SOPInstanceUID update) go last, instances
    before series and last within their group: a later call addressing the old key
    would find it gone.
    """
    groups: dict[tuple[Level, str | None, str | None], list[Change]] = {}
    for change in sorted(changes, key=lambda c: c.sort_key):
        groups.setdefault((change.level, change.series_uid, change.sop_uid), []).append(change)
    units = [sorted(group, key=lambda c: c.renames) for group in groups.values()]
    return sorted(units, key=_rename_order)


def _rename_order(unit: list[Change]) -> tuple[bool, bool]:
    renames = any(c.renames for c in unit)
    return (renames, renames and unit[0].level is Level.SERIES)


def _too_large(change: Change, quota_bytes: int) -> PayloadTooLargeError:
    what = change.key if change.key is not None else f"the removal of {change.pointer}"
    size = payload_for([change]).size
    return PayloadTooLargeError(
        f"{what} ({change.pointer}) alone makes a {size}-byte update, more than one "
        f"UpdateImageSetMetadata call accepts ({quota_bytes} bytes quota, "
        f"{MODEL_LIMIT_BYTES} bytes per blob); shorten the value or raise the account quota",
        location=str(change.location),
    )


def build_payloads(
    diff: ImageSetDiff, *, quota_bytes: int = DEFAULT_QUOTA_BYTES, combine_forced: bool = False
) -> list[UpdatePayload]:
    """The update calls that carry ``diff.changes``, in the order to send them.

    One call per image set; several only when one would pass ``quota_bytes``, packed
    greedily in document order, each within the quota. The payloads cover the changes
    only: an image set whose diff has problems must not be updated at all.

    Force does not spread: a change goes with ``force`` only when it needs it (its own
    manifest asked, or the diff would have refused it), so forced and unforced changes
    go in separate calls, the unforced first (a forced UID change re-keys its object
    last). ``combine_forced`` (the user's opt-in) packs them together again.
    """
    if not diff.changes:
        return []
    forced = [c for c in diff.changes if c.force_reason]
    if forced and len(forced) < len(diff.changes) and not combine_forced:
        unforced = [c for c in diff.changes if not c.force_reason]
        return [
            *_packed(unforced, quota_bytes),
            *_packed(forced, quota_bytes),
        ]
    return _packed(diff.changes, quota_bytes)


def _packed(changes: Sequence[Change], quota_bytes: int) -> list[UpdatePayload]:
    whole = payload_for(changes)
    if _fits(whole, quota_bytes):
        return [whole]
    payloads: list[UpdatePayload] = []
    current: list[Change] = []

    def add(items: list[Change]) -> bool:
        if not _fits(payload_for([*current, *items]), quota_bytes):
            return False
        current.extend(items)
        return True

    for unit in _units(changes):
        if add(unit):
            continue
        if current and _fits(payload_for(unit), quota_bytes):
            payloads.append(payload_for(current))  # keep the object's changes together
            current.clear()
            add(unit)
            continue
        for change in unit:  # the object's changes do not fit with the rest: one by one
            if add([change]):
                continue
            if current:
                payloads.append(payload_for(current))
                current.clear()
            if not add([change]):
                raise _too_large(change, quota_bytes)
    if current:
        payloads.append(payload_for(current))
    return payloads


def payload_digest(payload: UpdatePayload) -> str:
    """sha256 over what the call sends, for the journal and saved plans.

    Each part is framed by its name and length, so "no blob" and an empty one, or
    bytes moving between the two blobs, give different digests.
    """
    digest = hashlib.sha256()
    for name, part in (("updatable", payload.updatable), ("removable", payload.removable)):
        size = -1 if part is None else len(part)
        digest.update(f"{name}:{size}\n".encode())
        digest.update(part or b"")
    digest.update(f"force:{str(payload.force).lower()}\n".encode())
    return digest.hexdigest()
