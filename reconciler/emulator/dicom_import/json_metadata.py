"""DICOM JSON metadata laid over imported studies: StartDICOMImportJob's
``importConfiguration.dicomJsonMetadataImportConfiguration``.

The service's API reference says only that such a job "enhances existing DICOM files
with JSON metadata", each mapping naming a study (and optionally a series) and a
metadata file relative to the input. The local HealthImaging reads each file as the
DICOM JSON model (PS3.18 Annex F: one object, or a list of objects, keyed by tag) and
sets its attributes on the mapped study as an import would have placed them (the
normalization levels): Patient and Study attributes on the study, Series attributes on
the mapped series (every series of the study without one), everything else on each of
their instances, private tags with their VRs. The UIDs that identify the study, series
and instances are never changed. A mapping that cannot be applied (no such study or
series in the job, an unreadable or invalid file) is a failure of that metadata file in
the job's report; the DICOM files are imported all the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from reconciler.dicom.levels import Level, level_of
from reconciler.emulator.dicom_import.errors import _DECODE_ERRORS, _one_line
from reconciler.emulator.dicom_import.files import FailedFile, ImportBatch
from reconciler.emulator.dicom_import.values import _Encoder

_IDENTIFYING = frozenset({"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"})


def _no_bulk_data(*_: Any) -> bytes:
    raise ValueError("BulkDataURI values are not read from metadata files")


def _datasets(path: Path) -> list[Dataset]:
    data = json.loads(path.read_text(encoding="utf-8"))
    objects = data if isinstance(data, list) else [data]
    if not objects or not all(isinstance(item, dict) for item in objects):
        raise ValueError("not the DICOM JSON model (an object or a list of objects)")
    return [Dataset.from_json(item, bulk_data_uri_handler=_no_bulk_data) for item in objects]


def _apply(doc: dict[str, Any], ds: Dataset, series_uid: str | None) -> None:
    all_series = doc["Study"]["Series"]
    if series_uid is not None and series_uid not in all_series:
        raise ValueError(f"the study has no series {series_uid}")
    targets = [all_series[series_uid]] if series_uid else list(all_series.values())
    encoder = _Encoder()
    for key, value in encoder.elements(ds):
        if key in _IDENTIFYING:
            continue
        level = level_of(key) if key not in encoder.vrs else Level.INSTANCE
        if level is Level.PATIENT:
            doc["Patient"].setdefault("DICOM", {})[key] = value
        elif level is Level.STUDY:
            doc["Study"].setdefault("DICOM", {})[key] = value
        for series in targets:
            if level is Level.SERIES:
                series.setdefault("DICOM", {})[key] = value
            elif level is Level.INSTANCE:
                for instance in series.get("Instances", {}).values():
                    instance.setdefault("DICOM", {})[key] = value
                    if key in encoder.vrs:
                        instance.setdefault("DICOMVRs", {})[key] = encoder.vrs[key]


def apply_mappings(batch: ImportBatch, folder: Path, mappings: Iterable[dict[str, Any]]) -> None:
    """Lay each mapping's metadata file (below ``folder``) over its study in ``batch``."""
    for mapping in mappings:
        relative = Path(mapping["metadataFilePath"])
        path = (folder / relative).resolve()
        name = str(folder / relative)
        # The metadata file is not a DICOM file: it is not a failure of the import.
        batch.failed[:] = [f for f in batch.failed if Path(f.path).resolve() != path]
        doc = batch.documents.get(mapping["studyInstanceUID"])
        try:
            if ".." in relative.parts or not path.is_relative_to(folder.resolve()):
                raise ValueError("metadataFilePath must stay below inputS3Uri")
            if doc is None:
                raise ValueError(f"no study {mapping['studyInstanceUID']} was imported")
            for ds in _datasets(path):
                _apply(doc, ds, mapping.get("seriesInstanceUID") or None)
        except (OSError, json.JSONDecodeError, *_DECODE_ERRORS) as exc:
            batch.failed.append(FailedFile(name, f"metadata not applied: {_one_line(exc)}"))
