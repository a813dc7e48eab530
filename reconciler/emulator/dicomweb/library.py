"""Which image sets DICOMweb reads, and what it reads of them.

HealthImaging's DICOMweb "reference[s] only primary image sets unless otherwise
noted": a study, series or instance is looked up among the data store's primary
image sets, or in the one image set an ``imageSetId`` query parameter names (primary
or not). An image set is read at its newest settled version, the one
GetImageSetMetadata returns without ``versionId``: a metadata update is visible here
as soon as it is there.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from reconciler.emulator import documents
from reconciler.emulator.dicom_import import StoredFrame
from reconciler.emulator.exceptions import ResourceNotFoundException
from reconciler.emulator.imagesets import ImageSets


@dataclass(frozen=True)
class ImageSetView:
    """One image set at the version DICOMweb serves."""

    image_set_id: str
    version: int
    updated_at: float
    doc: documents.Document

    @property
    def study(self) -> dict[str, Any]:
        study: dict[str, Any] = self.doc.get("Study", {})
        return study

    @property
    def study_uid(self) -> str:
        return str(self.study.get("DICOM", {}).get("StudyInstanceUID", ""))

    def series(self) -> dict[str, Any]:
        series: dict[str, Any] = self.study.get("Series", {})
        return series


@dataclass(frozen=True)
class InstanceView:
    """One instance of an image set: its four levels of attributes."""

    image_set: ImageSetView
    series_uid: str
    sop_uid: str

    @property
    def series(self) -> dict[str, Any]:
        series: dict[str, Any] = self.image_set.series()[self.series_uid]
        return series

    @property
    def instance(self) -> dict[str, Any]:
        instance: dict[str, Any] = self.series["Instances"][self.sop_uid]
        return instance

    def levels(self) -> list[dict[str, Any]]:
        """Patient, Study, Series and Instance attributes, in that order."""
        doc = self.image_set.doc
        return [
            doc.get("Patient", {}).get("DICOM", {}),
            self.image_set.study.get("DICOM", {}),
            self.series.get("DICOM", {}),
            self.instance.get("DICOM", {}),
        ]

    @property
    def vrs(self) -> dict[str, str]:
        vrs: dict[str, str] = self.instance.get("DICOMVRs") or {}
        return vrs

    def frame_ids(self) -> list[str]:
        return [
            str(frame.get("ID"))
            for frame in self.instance.get("ImageFrames") or []
            if isinstance(frame, dict)
        ]


def instances(sets: list[ImageSetView], series_uid: str | None = None) -> Iterator[InstanceView]:
    for image_set in sets:
        for uid, series in image_set.series().items():
            if series_uid is None or uid == series_uid:
                for sop_uid in series.get("Instances", {}):
                    yield InstanceView(image_set, uid, sop_uid)


class Library:
    """Reads for DICOMweb over the emulator's store (settling what is due first)."""

    def __init__(self, image_sets: ImageSets) -> None:
        self._image_sets = image_sets

    def _view(self, conn: sqlite3.Connection, row: sqlite3.Row) -> ImageSetView:
        doc = self._image_sets.document(conn, row["id"], row["settled_version"])
        return ImageSetView(row["id"], row["settled_version"], row["updated_at"], doc)

    def image_sets(
        self, datastore_id: str, *, study_uid: str | None = None, image_set_id: str | None = None
    ) -> list[ImageSetView]:
        """The primary image sets of the data store (of one study), newest update first;
        with ``image_set_id``, that image set alone (primary or not)."""
        with self._image_sets.reading() as conn:
            if not conn.execute("SELECT 1 FROM datastores WHERE id=?", (datastore_id,)).fetchone():
                raise ResourceNotFoundException(f"Datastore {datastore_id} not found")
            if image_set_id is not None:
                row = self._image_sets.live_row(conn, datastore_id, image_set_id)
                view = self._view(conn, row)
                return [view] if study_uid in (None, view.study_uid) else []
            query = (
                "SELECT * FROM image_sets WHERE datastore_id=? AND is_primary=1"
                " AND state != 'DELETED'"
            )
            args: tuple[str, ...] = (datastore_id,)
            if study_uid is not None:
                query, args = query + " AND study_uid=?", (datastore_id, study_uid)
            rows = conn.execute(query + " ORDER BY updated_at DESC, id", args).fetchall()
            return [self._view(conn, row) for row in rows]

    def kept_syntax(self, frame_id: str) -> str | None:
        """The transfer syntax frame ``frame_id`` is kept in (None: native, or unknown)."""
        with self._image_sets.store.read() as conn:
            row = conn.execute("SELECT geometry FROM frames WHERE id=?", (frame_id,)).fetchone()
        syntax = json.loads(row["geometry"]).get("transfer_syntax") if row else None
        return str(syntax) if syntax is not None else None

    def frames(self, frame_ids: list[str]) -> list[StoredFrame]:
        """The kept pixel data of ``frame_ids``, in that order."""
        with self._image_sets.store.read() as conn:
            found = []
            for frame_id in frame_ids:
                row = conn.execute(
                    "SELECT geometry, data FROM frames WHERE id=?", (frame_id,)
                ).fetchone()
                if row is None:
                    raise ResourceNotFoundException(
                        f"Image frame {frame_id}: its pixel data was not kept (imported by an "
                        "older version of the local HealthImaging); import the files again"
                    )
                found.append(StoredFrame(**json.loads(row["geometry"]), data=bytes(row["data"])))
        return found
