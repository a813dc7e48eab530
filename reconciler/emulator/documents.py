"""Metadata documents as stored: gzip JSON, and the search columns derived from them."""

from __future__ import annotations

import gzip
import json
from typing import Any

Document = dict[str, Any]


def encode(doc: Document) -> bytes:
    """The stored (and served) form: compact JSON, gzip-compressed, reproducible."""
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return gzip.compress(raw, compresslevel=6, mtime=0)


def decode(blob: bytes) -> Document:
    doc: Document = json.loads(gzip.decompress(blob))
    return doc


def raw_size(doc: Document) -> int:
    return len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return "\\".join(str(v) for v in value)
    return str(value)


def _number(value: Any) -> int | None:
    text = _text(value)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def dicom_tags(doc: Document) -> dict[str, Any]:
    """The ``DICOMTags`` summary SearchImageSets returns for a document."""
    patient = doc.get("Patient", {}).get("DICOM", {})
    study = doc.get("Study", {}).get("DICOM", {})
    all_series = doc.get("Study", {}).get("Series", {})
    tags: dict[str, Any] = {
        "DICOMPatientId": _text(patient.get("PatientID")),
        "DICOMPatientName": _text(patient.get("PatientName")),
        "DICOMPatientBirthDate": _text(patient.get("PatientBirthDate")),
        "DICOMPatientSex": _text(patient.get("PatientSex")),
        "DICOMStudyInstanceUID": _text(study.get("StudyInstanceUID")),
        "DICOMStudyId": _text(study.get("StudyID")),
        "DICOMStudyDescription": _text(study.get("StudyDescription")),
        "DICOMNumberOfStudyRelatedSeries": len(all_series),
        "DICOMNumberOfStudyRelatedInstances": sum(
            len(s.get("Instances", {})) for s in all_series.values()
        ),
        "DICOMAccessionNumber": _text(study.get("AccessionNumber")),
        "DICOMStudyDate": _text(study.get("StudyDate")),
        "DICOMStudyTime": _text(study.get("StudyTime")),
    }
    if len(all_series) == 1:  # series tags only describe a single-series image set
        series = next(iter(all_series.values())).get("DICOM", {})
        tags["DICOMSeriesInstanceUID"] = _text(series.get("SeriesInstanceUID"))
        tags["DICOMSeriesModality"] = _text(series.get("Modality"))
        tags["DICOMSeriesBodyPart"] = _text(series.get("BodyPartExamined"))
        tags["DICOMSeriesNumber"] = _number(series.get("SeriesNumber"))
    return {k: v for k, v in tags.items() if v is not None}


def study_date_time(doc: Document) -> str:
    """Sortable "YYYYMMDDHHMMSS" of StudyDate + StudyTime ("" when unknown)."""
    study = doc.get("Study", {}).get("DICOM", {})
    date = _text(study.get("StudyDate")) or ""
    time = (_text(study.get("StudyTime")) or "").split(".")[0]
    return (date + time.ljust(6, "0")) if date else ""
