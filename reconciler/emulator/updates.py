"""UpdateImageSetMetadata's rules, as pure functions on metadata documents.

:func:`apply_updates` takes the current document, the decoded ``updatableAttributes`` /
``removableAttributes`` blobs and the call's flags, checks every rule of AHI.md and
returns the new document, or raises the exception the service would.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from reconciler.dicom import document
from reconciler.dicom.dictionary import is_private_tag, is_tag_key
from reconciler.dicom.document import Address
from reconciler.dicom.levels import Level, level_of
from reconciler.dicom.rules import NEVER_UPDATABLE, UID_KEYWORDS, force_reason
from reconciler.emulator import choices
from reconciler.emulator.exceptions import ValidationException

Document = dict[str, Any]

_STRUCTURE_KEYS = {
    "blob": {"SchemaVersion", "Patient", "Study"},
    "Patient": {"DICOM"},
    "Study": {"DICOM", "Series"},
    "Series": {"DICOM", "Instances"},
    "Instance": {"DICOM", "DICOMVRs"},
}


@dataclass(frozen=True)
class Flags:
    force: bool
    is_primary: bool


@dataclass(frozen=True)
class Element:
    """One attribute named by a blob: where it sits, its key and value."""

    address: Address
    value: Any

    @property
    def level(self) -> Level:
        return self.address.level

    @property
    def series(self) -> str | None:
        return self.address.series_uid

    @property
    def instance(self) -> str | None:
        return self.address.sop_uid

    @property
    def key(self) -> str:
        return str(self.address.key)

    @property
    def where(self) -> str:
        parts = [self.level.value]
        if self.series:
            parts.append(f"Series {self.series}")
        if self.instance:
            parts.append(f"Instance {self.instance}")
        return "/".join(parts)


def decode_blob(raw: bytes, member: str) -> Document:
    """Parse one DICOMUpdates blob and check its outline (not its content)."""
    try:
        blob = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValidationException(f"{member} is not valid JSON: {error}") from None
    if not isinstance(blob, dict):
        raise ValidationException(f"{member} must be a JSON object")
    version = blob.get("SchemaVersion", 1.1)
    if version not in (1.1, "1.1"):
        raise ValidationException(f"{member}: unsupported SchemaVersion {version!r} (1.1)")
    _check_outline(blob, "blob", member)
    return blob


def _check_outline(node: Any, kind: str, where: str) -> None:
    if not isinstance(node, dict):
        raise ValidationException(f"{where}: expected an object")
    unknown = sorted(set(node) - _STRUCTURE_KEYS[kind])
    if unknown:
        raise ValidationException(f"{where}: unexpected key {unknown[0]!r}")
    if kind == "blob":
        for level in ("Patient", "Study"):
            if level in node:
                _check_outline(node[level], level, f"{where}.{level}")
        return
    for name, value in node.items():
        if name in ("DICOM", "DICOMVRs") and not isinstance(value, dict):
            raise ValidationException(f"{where}.{name}: expected an object")
    for uid, series in (node.get("Series") or {}).items():
        _check_outline(series, "Series", f"{where}.Series.{uid}")
    for sop, instance in (node.get("Instances") or {}).items():
        _check_outline(instance, "Instance", f"{where}.Instances.{sop}")


def iter_elements(blob: Document) -> Iterator[Element]:
    """Every attribute a blob names, with its level and position, in document order."""
    for obj, node in document.objects(blob):
        for key, value in document.attributes(node).items():
            yield Element(obj._replace(key=key), value)


def _check_level(element: Element) -> None:
    key = element.key
    if key in NEVER_UPDATABLE:
        raise ValidationException(f"{key} cannot be updated ({element.where})")
    if is_tag_key(key):
        if element.level is not Level.INSTANCE:
            raise ValidationException(
                f"private tag {key} is only allowed at Instance level, not {element.where}"
            )
        return
    expected = level_of(key)
    if expected is not element.level:
        raise ValidationException(
            f"{key} belongs to the {expected.value} level, not {element.where}"
        )


def _check_primary(element: Element, flags: Flags) -> None:
    if not flags.is_primary:
        return
    if element.level in (Level.PATIENT, Level.SERIES):
        raise ValidationException(
            "The Patient and Series level metadata elements can not be updated for primary "
            f"image sets ({element.key} at {element.where})"
        )
    if element.key in UID_KEYWORDS:
        raise ValidationException(f"{element.key} cannot be changed on a primary image set")


def _check_force(element: Element, flags: Flags, *, removal: bool) -> None:
    reason = force_reason(element.key, element.value, check_form=not removal)
    if reason and not flags.force:
        verb = "removing" if removal else "updating"
        raise ValidationException(f"{verb} {element.key} requires force=true: {reason}")


def _object(doc: Document, address: Address) -> dict[str, Any]:
    """The object of the document that ``address`` names; refused when it is missing."""
    node = document.object_at(doc, address)
    if node is not None:
        return node
    series = Address(Level.SERIES, address.series_uid)
    if address.level is Level.INSTANCE and document.object_at(doc, series) is not None:
        raise ValidationException(
            f"series {address.series_uid} of the image set has no instance {address.sop_uid}"
        )
    if address.series_uid is not None:
        raise ValidationException(f"the image set has no series {address.series_uid}")
    raise ValidationException(f"the image set has no {address.level.value} object")


def _remove(doc: Document, blob: Document, flags: Flags) -> None:
    for obj, node in list(document.objects(blob)):
        if obj.level in (Level.SERIES, Level.INSTANCE) and not node:  # {"<uid>": {}}: whole
            _object(doc, obj)
            if obj.level is Level.SERIES:  # an instance needs no force (choices.py)
                _refuse_series_removal_on_primary(flags, f"series {obj.series_uid}")
            document.remove(doc, obj)
    for element in iter_elements(blob):
        _check_level(element)
        _check_primary(element, flags)
        _check_force(element, flags, removal=True)
        if element.key in UID_KEYWORDS:
            raise ValidationException(f"{element.key} cannot be removed")
        dicom = document.attributes(_object(doc, element.address))
        if element.key not in dicom:
            raise choices.REMOVAL_MISMATCH_ERROR(
                f"cannot remove {element.key} at {element.where}: the image set does not have it"
            )
        if dicom[element.key] != element.value:
            raise choices.REMOVAL_MISMATCH_ERROR(
                f"cannot remove {element.key} at {element.where}: the value given does not "
                "match the existing attribute"
            )
        document.remove(doc, element.address)  # with its VR (a private tag's)
    if not any(obj.level is Level.INSTANCE for obj, _ in document.objects(doc)):
        raise ValidationException("an update may not remove every instance of an image set")


def _refuse_series_removal_on_primary(flags: Flags, what: str) -> None:
    if flags.is_primary and not flags.force:
        raise ValidationException(f"removing {what} from a primary image set requires force=true")


def _update(doc: Document, blob: Document, flags: Flags) -> None:
    renames: list[Element] = []
    for element in iter_elements(blob):
        _check_level(element)
        _check_primary(element, flags)
        _check_force(element, flags, removal=False)
        dicom = _object(doc, element.address).setdefault("DICOM", {})
        if is_private_tag(element.key):
            _private_vr(doc, blob, element)
        if element.key in ("SeriesInstanceUID", "SOPInstanceUID") and element.level in (
            Level.SERIES,
            Level.INSTANCE,
        ):
            renames.append(element)
        dicom[element.key] = element.value
    for element in renames:
        _rekey(doc, element)


def _private_vr(doc: Document, blob: Document, element: Element) -> None:
    vr = document.value_at(blob, element.address, "DICOMVRs")[1]
    vrs = _object(doc, element.address).setdefault("DICOMVRs", {})
    if vr is None and element.key not in vrs:
        raise ValidationException(
            f"private tag {element.key} at {element.where} needs its VR in DICOMVRs"
        )
    if vr is not None:
        vrs[element.key] = vr


def _rekey(doc: Document, element: Element) -> None:
    """A forced change of a Series or SOP Instance UID moves the object to its new key."""
    new = element.value
    if not isinstance(new, str):
        raise ValidationException(f"{element.key} must be a string UID")
    all_series = document.series_uids(doc)
    if element.level is Level.SERIES and element.series != new:
        if new in all_series:
            raise ValidationException(f"the image set already has series {new}")
        all_series[new] = all_series.pop(str(element.series))
    elif element.level is Level.INSTANCE and element.instance != new:
        instances = _object(doc, element.address.enclosing[0]).setdefault("Instances", {})
        if new in instances:
            raise ValidationException(f"series {element.series} already has instance {new}")
        instances[new] = instances.pop(element.instance)


def apply_updates(
    doc: Document,
    updatable: Document | None,
    removable: Document | None,
    flags: Flags,
) -> Document:
    """The document after removals, then updates; raises as the service would."""
    if updatable is None and removable is None:
        raise ValidationException("DICOMUpdates needs updatableAttributes or removableAttributes")
    result = copy.deepcopy(doc)
    if removable is not None:
        _remove(result, removable, flags)
    if updatable is not None:
        _update(result, updatable, flags)
    return result


def payload_size(*blobs: bytes | None) -> int:
    return sum(len(b) for b in blobs if b)
