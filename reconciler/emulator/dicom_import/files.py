"""Reading DICOM files and folders into an ``ImportBatch``; per-file failures.

Batches
    ``read_files``/``read_folder`` read files in sorted path order and never raise for a
    bad file: it becomes a ``FailedFile`` with a one-line reason (not DICOM Part 10,
    truncated, missing UIDs, unreadable, duplicate SOP instance, ...). Files of the same
    study are merged into one document; when they disagree on a Patient, Study or
    Series level value the first file (sorted path order) wins and the disagreement is
    recorded in ``ImportBatch.conflicts``. A second file with an already imported
    SOPInstanceUID is a ``FailedFile`` (the first one is kept).
"""

from __future__ import annotations

import logging
import os
import stat
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pydicom
import pydicom.data
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from reconciler.emulator.dicom_import.documents import _UIDS, _merge, _uid, dataset_to_document
from reconciler.emulator.dicom_import.errors import _DECODE_ERRORS, UnusableInstance, _one_line
from reconciler.emulator.dicom_import.frames import _transfer_syntax
from reconciler.emulator.stored_frames import StoredFrame


@dataclass(frozen=True)
class ImportedFile:
    path: str
    study_uid: str
    series_uid: str
    sop_uid: str


@dataclass(frozen=True)
class FailedFile:
    path: str
    reason: str  # one line, e.g. "not a DICOM Part 10 file"


@dataclass
class ImportBatch:
    documents: dict[str, dict[str, Any]]  # StudyInstanceUID -> document, sorted path order
    imported: list[ImportedFile]
    failed: list[FailedFile]
    # Patient/Study/Series values on which files of one study disagreed (first file kept).
    conflicts: list[str] = field(default_factory=list)
    # The pixel data of every imported frame, for GetImageFrame.
    frames: list[StoredFrame] = field(default_factory=list)


def _truncation(ds: Dataset, file_size: int) -> str | None:
    """Describe where the file ends in the middle of a top-level element, if it does."""
    tags = sorted(ds.keys())
    for tag in tags:
        elem = ds.get_item(tag, keep_deferred=True)
        if (
            isinstance(elem, RawDataElement)
            and elem.length != 0xFFFFFFFF
            and isinstance(elem.value, bytes)
            and len(elem.value) < elem.length
        ):
            return f"{Tag(tag)} has {len(elem.value)} of {elem.length} bytes"
    if not tags or (_transfer_syntax(ds) or "").endswith(".99"):  # deflated: offsets differ
        return None
    last = ds.get_item(tags[-1], keep_deferred=True)
    if isinstance(last, RawDataElement) and last.length != 0xFFFFFFFF:
        end = last.value_tell + last.length
        if 0 < file_size - end < 12:  # shorter than any element header
            return f"{file_size - end} bytes after {Tag(tags[-1])} are not an element"
    return None


_Read = tuple[dict[str, Any], ImportedFile, list[StoredFrame]]


def _read_one(path: Path) -> _Read | FailedFile:
    name = str(path)
    try:
        info = path.stat()
    except OSError as exc:
        return FailedFile(name, f"unreadable: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return FailedFile(name, "not a regular file")
    try:
        with path.open("rb") as fp:
            try:
                ds = pydicom.dcmread(fp, force=False)
            except InvalidDicomError:
                return FailedFile(name, "not a DICOM Part 10 file")
            except (OSError, EOFError) as exc:  # pydicom: "No tag to read at ..."
                return FailedFile(name, f"truncated or corrupt DICOM file: {_one_line(exc)}")
    except OSError as exc:
        return FailedFile(name, f"unreadable: {exc.strerror or exc}")
    except _DECODE_ERRORS as exc:
        return FailedFile(name, f"invalid DICOM file: {_one_line(exc)}")
    try:
        cut = _truncation(ds, info.st_size)
        if cut is not None:
            return FailedFile(name, f"truncated DICOM file: {cut}")
        frames: list[StoredFrame] = []
        doc = dataset_to_document(ds, frames)
    except UnusableInstance as exc:
        return FailedFile(name, str(exc))
    except _DECODE_ERRORS as exc:
        return FailedFile(name, f"invalid DICOM file: {_one_line(exc)}")
    study = doc["Study"]
    series_uid, series = next(iter(study["Series"].items()))
    sop_uid = next(iter(series["Instances"]))
    imported = ImportedFile(name, study["DICOM"]["StudyInstanceUID"], series_uid, sop_uid)
    return doc, imported, frames


def _safe_read_one(path: Path) -> _Read | FailedFile:
    try:
        return _read_one(path)
    # Per-file boundary: one bad file must never abort a whole import job, so anything
    # not anticipated above is recorded as that file's failure reason, not swallowed.
    except Exception as exc:  # noqa: BLE001
        return FailedFile(str(path), f"unexpected error: {type(exc).__name__}: {_one_line(exc)}")


@contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """pydicom warns (and logs) about every oddity of a file; an import records its own
    per-file reasons instead, so those warnings would only be noise on the console."""
    pydicom_log = logging.getLogger("pydicom")
    level = pydicom_log.level
    pydicom_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pydicom_log.setLevel(level)


def _batch(paths: Iterable[Path], failed: list[FailedFile]) -> ImportBatch:
    with _quiet_pydicom():
        return _batch_quietly(paths, failed)


def _batch_quietly(paths: Iterable[Path], failed: list[FailedFile]) -> ImportBatch:
    batch = ImportBatch(documents={}, imported=[], failed=failed)
    seen: dict[str, str] = {}  # SOPInstanceUID -> path of the file that provided it
    for path in sorted(paths):
        result = _safe_read_one(path)
        if isinstance(result, FailedFile):
            batch.failed.append(result)
            continue
        doc, imported, frames = result
        if imported.sop_uid in seen:
            batch.failed.append(
                FailedFile(
                    imported.path,
                    f"duplicate SOPInstanceUID {imported.sop_uid} "
                    f"(already imported from {seen[imported.sop_uid]})",
                )
            )
            continue
        seen[imported.sop_uid] = imported.path
        existing = batch.documents.get(imported.study_uid)
        if existing is None:
            batch.documents[imported.study_uid] = doc
        else:
            notes = _merge(existing, doc)
            batch.conflicts += [f"{imported.path}: {note}" for note in notes]
        batch.imported.append(imported)
        batch.frames.extend(frames)
    batch.failed.sort(key=lambda f: f.path)
    return batch


def read_files(paths: Iterable[Path]) -> ImportBatch:
    """Read ``paths`` (in sorted order) into one document per study; never raises per file."""
    return _batch([Path(p) for p in paths], [])


def read_folder(root: Path, *, within: Path | None = None) -> ImportBatch:
    """Read every file below ``root`` (recursively, sorted); non-DICOM files are FailedFiles.

    Directory symlinks are not followed (each is reported as a FailedFile); a directory
    that cannot be listed is reported too. ``root`` itself must exist. With ``within``
    (resolved), a file whose symlink leads out of that folder is a FailedFile, unread.
    """
    root = Path(root)
    if root.is_file():
        return read_files([root])
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    files: list[Path] = []
    failed: list[FailedFile] = []

    def on_error(exc: OSError) -> None:
        failed.append(FailedFile(str(exc.filename or root), f"unreadable folder: {exc.strerror}"))

    for folder, dirs, names in os.walk(root, onerror=on_error, followlinks=False):
        dirs.sort()
        base = Path(folder)
        for sub in list(dirs):
            if (base / sub).is_symlink():
                dirs.remove(sub)
                failed.append(FailedFile(str(base / sub), "directory symlink not followed"))
        for name in names:
            path = base / name
            if within is not None and not path.resolve().is_relative_to(within):
                failed.append(FailedFile(str(path), "symlink leads out of the import root"))
            else:
                files.append(path)
    return _batch(files, failed)


@cache
def _sample_files() -> tuple[Path, ...]:
    module_file = pydicom.data.__file__
    if module_file is None:
        return ()
    folder = Path(module_file).parent / "test_files"
    chosen = []
    for path in sorted(folder.glob("*.dcm")):
        try:
            ds = pydicom.dcmread(path, force=False)
        except (InvalidDicomError, *_DECODE_ERRORS, OSError):
            continue
        if all(_uid(ds, kw) for kw in _UIDS):
            chosen.append(path)
    return tuple(chosen)


def sample_files() -> list[Path]:
    """pydicom's bundled ``test_files/*.dcm`` that carry all three UIDs, sorted.

    Lists the installed folder directly (``pydicom.data.get_testdata_files`` may try the
    network).
    """
    with _quiet_pydicom():
        return list(_sample_files())
