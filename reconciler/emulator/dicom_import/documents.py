"""One dataset -> one AHI metadata document; merging documents of the same study.

Placement
    Top-level elements go to the level ``level_of(keyword)`` names (the service's
    metadata-normalization list) and only there; everything else, file-meta elements
    (group 0002) included, is Instance level. Group-length elements (gggg,0000) are
    dropped (the reference carries no FileMetaInformationGroupLength). Elements inside
    sequence items stay inside their item.

StoredTransferSyntaxUID
    Set, to the file's transfer syntax, for the syntaxes the service documents as stored
    in their original encoding (JPEG Baseline, JPEG 2000, HTJ2K, MPEG/HEVC video), and to
    Explicit VR Little Endian for 1-bit frames (binary segmentations, which the service
    keeps uncompressed). The import job sets every other instance with frames to its
    data store's lossless format (developer guide, "Supported transfer syntaxes").
"""

from __future__ import annotations

import copy
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from reconciler.dicom.levels import Level, level_of
from reconciler.emulator.dicom_import.errors import _DECODE_ERRORS, UnusableInstance
from reconciler.emulator.dicom_import.frames import _image_frames, _transfer_syntax
from reconciler.emulator.dicom_import.values import _Encoder
from reconciler.emulator.stored_frames import EXPLICIT_VR_LITTLE_ENDIAN, StoredFrame

SCHEMA_VERSION = "1.1"

_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")

# Transfer syntaxes the service keeps in their original encoding (the "*" rows of its
# "Supported transfer syntaxes" page); everything else is transcoded to HTJ2K lossless.
_STORED_AS_IS = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
        "1.2.840.10008.1.2.4.202",  # HTJ2K lossless RPCL
        "1.2.840.10008.1.2.4.203",  # HTJ2K
        "1.2.840.10008.1.2.4.100",  # MPEG2 MP@ML
        "1.2.840.10008.1.2.4.100.1",
        "1.2.840.10008.1.2.4.101",  # MPEG2 MP@HL
        "1.2.840.10008.1.2.4.101.1",
        "1.2.840.10008.1.2.4.102",  # MPEG-4 AVC/H.264
        "1.2.840.10008.1.2.4.102.1",
        "1.2.840.10008.1.2.4.103",
        "1.2.840.10008.1.2.4.103.1",
        "1.2.840.10008.1.2.4.104",
        "1.2.840.10008.1.2.4.104.1",
        "1.2.840.10008.1.2.4.105",
        "1.2.840.10008.1.2.4.105.1",
        "1.2.840.10008.1.2.4.106",
        "1.2.840.10008.1.2.4.106.1",
        "1.2.840.10008.1.2.4.107",  # HEVC/H.265
        "1.2.840.10008.1.2.4.108",
    }
)


def _uid(ds: Dataset, keyword: str) -> str:
    """The UID's value, "" when absent, empty, undecodable or multi-valued."""
    try:
        value = ds.get(keyword)
    except _DECODE_ERRORS:
        return ""
    if value is None or isinstance(value, (MultiValue, list)):
        return ""
    return str(value).strip("\x00 ")


def dataset_to_document(ds: Dataset, frames: list[StoredFrame] | None = None) -> dict[str, Any]:
    """One instance as a complete one-instance metadata document (no IDs).

    Raises UnusableInstance (a ValueError) when a UID is missing or the pixel data is
    unusable. ``frames``, when given, receives the pixel data of each frame.
    """
    uids = {kw: _uid(ds, kw) for kw in _UIDS}
    missing = [kw for kw, value in uids.items() if not value]
    if missing:
        raise UnusableInstance("missing " + ", ".join(missing))
    study_uid, series_uid, sop_uid = (uids[kw] for kw in _UIDS)

    encoder = _Encoder()
    levels: dict[Level, dict[str, Any]] = {level: {} for level in Level}
    meta = getattr(ds, "file_meta", None)
    sources = [meta, ds] if meta is not None else [ds]
    for source in sources:
        for key, value in encoder.elements(source):
            level = level_of(key) if source is ds else Level.INSTANCE
            levels[level][key] = value
    # The document's own UIDs are the stripped ones it is keyed by.
    levels[Level.STUDY]["StudyInstanceUID"] = study_uid
    levels[Level.SERIES]["SeriesInstanceUID"] = series_uid
    levels[Level.INSTANCE]["SOPInstanceUID"] = sop_uid

    # DICOMVRs is there on every instance, {} without private tags (as in the reference).
    instance: dict[str, Any] = {"DICOM": levels[Level.INSTANCE], "DICOMVRs": encoder.vrs}
    kept: list[StoredFrame] = []
    instance["ImageFrames"] = _image_frames(ds, sop_uid, kept)
    if frames is not None:
        frames.extend(kept)
    ts = _transfer_syntax(ds)
    stored_as = {frame.transfer_syntax for frame in kept}
    if ts in _STORED_AS_IS and instance["ImageFrames"]:
        instance["StoredTransferSyntaxUID"] = ts
    elif stored_as == {EXPLICIT_VR_LITTLE_ENDIAN}:  # 1-bit frames, kept as they are
        instance["StoredTransferSyntaxUID"] = EXPLICIT_VR_LITTLE_ENDIAN
    return {
        "SchemaVersion": SCHEMA_VERSION,
        "Patient": {"DICOM": levels[Level.PATIENT]},
        "Study": {
            "DICOM": levels[Level.STUDY],
            "Series": {
                series_uid: {
                    "DICOM": levels[Level.SERIES],
                    "Instances": {sop_uid: instance},
                }
            },
        },
    }


def _merge_level(target: dict[str, Any], other: dict[str, Any], where: str) -> list[str]:
    """Add other's keys to target; on disagreement keep target's value and say so."""
    notes = []
    for key, value in other.items():
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif target[key] != value:
            notes.append(f"{where} {key}: kept {target[key]!r}, ignored {value!r}")
    return notes


def _merge(target: dict[str, Any], other: dict[str, Any]) -> list[str]:
    study_uid = target.get("Study", {}).get("DICOM", {}).get("StudyInstanceUID")
    other_uid = other.get("Study", {}).get("DICOM", {}).get("StudyInstanceUID")
    if study_uid is not None and other_uid is not None and study_uid != other_uid:
        raise ValueError(f"cannot merge study {other_uid} into study {study_uid}")
    notes: list[str] = []
    patient = target.setdefault("Patient", {}).setdefault("DICOM", {})
    notes += _merge_level(patient, other.get("Patient", {}).get("DICOM", {}), "Patient")
    study = target.setdefault("Study", {})
    notes += _merge_level(
        study.setdefault("DICOM", {}), other.get("Study", {}).get("DICOM", {}), "Study"
    )
    all_series = study.setdefault("Series", {})
    for series_uid, series in other.get("Study", {}).get("Series", {}).items():
        if series_uid not in all_series:
            all_series[series_uid] = copy.deepcopy(series)
            continue
        mine = all_series[series_uid]
        notes += _merge_level(
            mine.setdefault("DICOM", {}), series.get("DICOM", {}), f"Series {series_uid}"
        )
        instances = mine.setdefault("Instances", {})
        for sop_uid, instance in series.get("Instances", {}).items():
            if sop_uid in instances:
                if instances[sop_uid] != instance:
                    notes.append(f"Instance {sop_uid}: kept the existing instance")
            else:
                instances[sop_uid] = copy.deepcopy(instance)
    return notes


def merge_into(target: dict[str, Any], other: dict[str, Any]) -> None:
    """Add other's series and instances to target (same study).

    Patient, Study and Series values target already has win over other's; an instance
    target already has is kept as it is. Raises ValueError for a different study.
    """
    _merge(target, other)
