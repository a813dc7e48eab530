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

from reconciler.dicom.dictionary import is_private_tag, is_tag_key
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

    level: Level
    series: str | None
    instance: str | None
    key: str
    value: Any

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
    """Every attribute a blob names, with its level and position."""
    yield from _dicom(blob.get("Patient"), Level.PATIENT, None, None)
    study = blob.get("Study") or {}
    yield from _dicom(study, Level.STUDY, None, None)
    for uid, series in (study.get("Series") or {}).items():
        yield from _dicom(series, Level.SERIES, uid, None)
        for sop, instance in (series.get("Instances") or {}).items():
            yield from _dicom(instance, Level.INSTANCE, uid, sop)


def _dicom(node: Any, level: Level, series: str | None, sop: str | None) -> Iterator[Element]:
    for key, value in ((node or {}).get("DICOM") or {}).items():
        yield Element(level, series, sop, key, value)


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


def _locate(doc: Document, element: Element, *, create: bool) -> dict[str, Any]:
    """The DICOM object of the document that ``element`` addresses."""
    if element.level is Level.PATIENT:
        node = doc["Patient"]
    elif element.level is Level.STUDY:
        node = doc["Study"]
    else:
        series = _series(doc, element.series)
        node = series if element.level is Level.SERIES else _instance(series, element)
    dicom: dict[str, Any] = node.setdefault("DICOM", {}) if create else node.get("DICOM", {})
    return dicom


def _series(doc: Document, uid: str | None) -> dict[str, Any]:
    series: dict[str, Any] | None = doc["Study"].get("Series", {}).get(uid)
    if series is None:
        raise ValidationException(f"the image set has no series {uid}")
    return series


def _instance(series: dict[str, Any], element: Element) -> dict[str, Any]:
    instance = series.get("Instances", {}).get(element.instance)
    if instance is None:
        raise ValidationException(
            f"series {element.series} of the image set has no instance {element.instance}"
        )
    result: dict[str, Any] = instance
    return result


def _remove(doc: Document, blob: Document, flags: Flags) -> None:
    study = blob.get("Study") or {}
    for uid, series in (study.get("Series") or {}).items():
        if not series:  # {"<uid>": {}}: the whole series
            _series(doc, uid)
            _refuse_structure_removal_on_primary(flags, f"series {uid}")
            del doc["Study"]["Series"][uid]
            continue
        for sop, instance in (series.get("Instances") or {}).items():
            if not instance:
                target = _series(doc, uid)
                _instance(target, Element(Level.INSTANCE, uid, sop, "", None))
                _refuse_structure_removal_on_primary(flags, f"instance {sop}")
                del target["Instances"][sop]
    for element in iter_elements(blob):
        _check_level(element)
        _check_primary(element, flags)
        _check_force(element, flags, removal=True)
        if element.key in UID_KEYWORDS:
            raise ValidationException(f"{element.key} cannot be removed")
        dicom = _locate(doc, element, create=False)
        if element.key not in dicom:
            raise choices.REMOVAL_MISMATCH_ERROR(
                f"cannot remove {element.key} at {element.where}: the image set does not have it"
            )
        if dicom[element.key] != element.value:
            raise choices.REMOVAL_MISMATCH_ERROR(
                f"cannot remove {element.key} at {element.where}: the value given does not "
                "match the existing attribute"
            )
        del dicom[element.key]
        if is_private_tag(element.key) and element.level is Level.INSTANCE:
            vrs = _instance(_series(doc, element.series), element).get("DICOMVRs", {})
            vrs.pop(element.key, None)
    if not any(s.get("Instances") for s in doc["Study"].get("Series", {}).values()):
        raise ValidationException("an update may not remove every instance of an image set")


def _refuse_structure_removal_on_primary(flags: Flags, what: str) -> None:
    if flags.is_primary and not flags.force:
        raise ValidationException(f"removing {what} from a primary image set requires force=true")


def _update(doc: Document, blob: Document, flags: Flags) -> None:
    renames: list[Element] = []
    for element in iter_elements(blob):
        _check_level(element)
        _check_primary(element, flags)
        _check_force(element, flags, removal=False)
        dicom = _locate(doc, element, create=True)
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
    blob_instance = blob["Study"]["Series"][element.series]["Instances"][element.instance]
    vr = (blob_instance.get("DICOMVRs") or {}).get(element.key)
    instance = _instance(_series(doc, element.series), element)
    vrs = instance.setdefault("DICOMVRs", {})
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
    all_series = doc["Study"]["Series"]
    if element.level is Level.SERIES and element.series != new:
        if new in all_series:
            raise ValidationException(f"the image set already has series {new}")
        all_series[new] = all_series.pop(element.series)
    elif element.level is Level.INSTANCE and element.instance != new:
        instances = all_series[element.series]["Instances"]
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
