"""DICOM Part 10 files in, AWS HealthImaging metadata documents out.

This is what the local emulator's StartDICOMImportJob (and its ``--seed``) uses to turn
files into the JSON that GetImageSetMetadata returns. The shape and encoding follow the
real document in ``shared/reference/metadata-usdoppler.json``::

    {"SchemaVersion": "1.1",
     "Patient": {"DICOM": {...}},
     "Study": {"DICOM": {...},
               "Series": {<SeriesInstanceUID>: {
                   "DICOM": {...},
                   "Instances": {<SOPInstanceUID>: {
                       "DICOM": {...}, "DICOMVRs": {...}, "ImageFrames": [...],
                       "StoredTransferSyntaxUID": ...}}}}}}

``DatastoreID`` and ``ImageSetID`` are left to the emulator. One document per
StudyInstanceUID (the service's image set).

Where each rule lives (and is documented):

- ``values``: element -> JSON value encoding (keys, values, the VM rule, DICOMVRs).
- ``frames``: ``ImageFrames`` (frame IDs, checksums, min/max pixel values, sizes).
- ``documents``: dataset -> metadata document (placement, StoredTransferSyntaxUID), merge.
- ``files``: reading files and folders, per-file failures, ``ImportBatch``, sample files.
- ``errors``: the exceptions a bad instance raises and how a failure is put in one line.
"""

from __future__ import annotations

from reconciler.emulator.dicom_import.documents import dataset_to_document, merge_into
from reconciler.emulator.dicom_import.files import (
    FailedFile,
    ImportBatch,
    read_files,
    read_folder,
    sample_files,
)
from reconciler.emulator.stored_frames import StoredFrame

__all__ = [
    "FailedFile",
    "ImportBatch",
    "StoredFrame",
    "dataset_to_document",
    "merge_into",
    "read_files",
    "read_folder",
    "sample_files",
]
