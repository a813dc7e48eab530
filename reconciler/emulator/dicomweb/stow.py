"""STOW-RS: store instances (AHI's StoreDICOM and StoreDICOMStudy).

"Data imported with the StoreDICOM and StoreDICOMStudy actions will be organized as
new primary image sets, or added to existing primary image sets, using the same logic
as asynchronous import jobs": so the parts go through the import's own reading
(dicom_import.read_files, one failure per unreadable part) and its placing
(ImportJobs.import_batch). The body is ``multipart/related; type="application/dicom"``
(PS3.18) or one bare ``application/dicom`` file (AHI's curl example).

The answer is the Store Instances Response Module (PS3.18 Annex I) as DICOM JSON:
200 when every instance was stored, 202 when some were, 409 when none was.
"""

from __future__ import annotations

import json
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

from reconciler.emulator import choices
from reconciler.emulator.backend import Backend
from reconciler.emulator.dicom_import import FailedFile, ImportBatch, read_files
from reconciler.emulator.dicomweb import media
from reconciler.emulator.dicomweb.dicomjson import dataset
from reconciler.emulator.dicomweb.elements import elements
from reconciler.emulator.dicomweb.errors import UnsupportedMediaTypeException
from reconciler.emulator.dicomweb.request import Request, Response, json_response
from reconciler.emulator.exceptions import (
    AccessDeniedException,
    ResourceNotFoundException,
    ValidationException,
)

_DICOM = "application/dicom"
# Failure Reason (0008,1197) values, PS3.18 Table I.2-2 and choices.py.
CANNOT_UNDERSTAND = 0xC000


def _parts(request: Request) -> list[bytes]:
    content_type = media.parse(request.headers.get("content-type") or "application/octet-stream")
    if content_type.essence == _DICOM:
        return [request.body]
    inner = content_type.inner
    if content_type.essence != media.MULTIPART or inner is None or inner.essence != _DICOM:
        raise UnsupportedMediaTypeException(
            f"Content-Type {content_type.essence}: HealthImaging stores "
            'multipart/related; type="application/dicom" or application/dicom'
        )
    boundary = content_type.params.get("boundary")
    if not boundary:
        raise ValidationException("the multipart Content-Type has no boundary")
    parts = []
    for part_type, content in media.decode_multipart(request.body, boundary):
        if part_type is not None and part_type.essence != _DICOM:
            raise UnsupportedMediaTypeException(
                f"a part is {part_type.essence}; only application/dicom parts are stored"
            )
        parts.append(content)
    return parts


def _identity(data: bytes) -> dict[str, str]:
    """The SOP Class and Instance UIDs of a part, as far as they can be read."""
    try:
        ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True, force=True)
        return {key: str(ds.get(key, "") or "") for key in ("SOPClassUID", "SOPInstanceUID")}
    except (InvalidDicomError, ValueError, TypeError, KeyError, EOFError, OSError):
        return {"SOPClassUID": "", "SOPInstanceUID": ""}


def _item(values: dict[str, Any]) -> dict[str, Any]:
    keys = {"ReferencedSOPClassUID": "SOPClassUID", "ReferencedSOPInstanceUID": "SOPInstanceUID"}
    item = {ours: values[theirs] for ours, theirs in keys.items() if values.get(theirs)}
    item.update({k: v for k, v in values.items() if k not in keys.values()})
    return item


def _read(parts: list[bytes]) -> tuple[ImportBatch, list[Path]]:
    """The parts read as the import reads files (each part a file of its own)."""
    with tempfile.TemporaryDirectory(prefix="reconciler-stow-") as scratch:
        paths = []
        for number, data in enumerate(parts, start=1):
            path = Path(scratch) / f"part-{number:05d}.dcm"
            path.write_bytes(data)
            paths.append(path)
        return read_files(paths), paths


def store(request: Request, backend: Backend) -> Response:
    if backend.settings.config.read_only:
        raise AccessDeniedException(
            f"User is not authorized to perform: medical-imaging:{request.operation} "
            "(the local HealthImaging runs read-only)"
        )
    with backend.store.read() as conn:
        if not conn.execute(
            "SELECT 1 FROM datastores WHERE id=?", (request.datastore_id,)
        ).fetchone():
            raise ResourceNotFoundException(f"Datastore {request.datastore_id} not found")
    parts = _parts(request)
    if not parts or not any(parts):
        raise ValidationException("the request stores no instance (an empty body)")
    batch, paths = _read(parts)
    index = {str(path): number for number, path in enumerate(paths)}
    failed: list[dict[str, Any]] = []
    for failure in batch.failed:
        failed.append(
            _item({**_identity(parts[index[failure.path]]), "FailureReason": CANNOT_UNDERSTAND})
        )
    if request.study_uid is not None:  # StoreDICOMStudy: other studies' instances fail
        for item in [i for i in batch.imported if i.study_uid != request.study_uid]:
            batch.failed.append(FailedFile(item.path, "another study"))
            failed.append(
                _item(
                    {
                        **_identity(parts[index[item.path]]),
                        "FailureReason": choices.DICOMWEB_STUDY_MISMATCH_REASON,
                    }
                )
            )
        batch.imported = [i for i in batch.imported if i.study_uid == request.study_uid]
        batch.documents = {k: v for k, v in batch.documents.items() if k == request.study_uid}
    stored: list[dict[str, Any]] = []
    if batch.imported:
        kept = {
            frame["ID"]
            for doc in batch.documents.values()
            for series in doc["Study"]["Series"].values()
            for instance in series["Instances"].values()
            for frame in instance.get("ImageFrames") or []
        }
        batch.frames = [frame for frame in batch.frames if frame.id in kept]
        backend.imports.import_batch(request.datastore_id, batch)
        for item in batch.imported:
            series = batch.documents[item.study_uid]["Study"]["Series"][item.series_uid]
            instance = series["Instances"][item.sop_uid]["DICOM"]
            url = f"{request.base_url}/studies/{item.study_uid}/series/{item.series_uid}"
            stored.append(
                _item(
                    {
                        "SOPClassUID": instance.get("SOPClassUID"),
                        "SOPInstanceUID": item.sop_uid,
                        "RetrieveURL": f"{url}/instances/{item.sop_uid}",
                    }
                )
            )
    answer: dict[str, Any] = {}
    studies = {i.study_uid for i in batch.imported}
    if len(studies) == 1:
        answer["RetrieveURL"] = f"{request.base_url}/studies/{studies.pop()}"
    if failed:
        answer["FailedSOPSequence"] = failed
    if stored:
        answer["ReferencedSOPSequence"] = stored
    status = 200 if not failed else 202 if stored else 409
    return json_response(json.dumps(dataset(elements(answer, {}))).encode(), status)
