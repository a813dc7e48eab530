"""The write operations on image sets: UpdateImageSetMetadata, CopyImageSet, DeleteImageSet."""

from __future__ import annotations

import copy
import json
import sqlite3
import uuid
from typing import Any

from reconciler.emulator import choices, documents
from reconciler.emulator.exceptions import (
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from reconciler.emulator.imagesets import ImageSets, Params, Result
from reconciler.emulator.updates import Flags, apply_updates, decode_blob, payload_size

STUDY_CONSISTENCY = "UPDATING_FOR_STUDY_CONSISTENCY"


class ImageSetWrites(ImageSets):
    # -- UpdateImageSetMetadata ------------------------------------------------------
    def update_image_set_metadata(self, p: Params) -> Result:
        updates: dict[str, Any] = p.get("updateImageSetMetadataUpdates") or {}
        if len([k for k in ("DICOMUpdates", "revertToVersionId") if k in updates]) != 1:
            raise ValidationException(
                "updateImageSetMetadataUpdates must set exactly one of DICOMUpdates and "
                "revertToVersionId"
            )
        force = bool(p.get("force"))
        include_study = bool(p.get("includeStudyImageSets"))
        dicom_updates = updates.get("DICOMUpdates")
        blobs: tuple[bytes | None, bytes | None] = (None, None)
        if dicom_updates is not None:
            blobs = (
                dicom_updates.get("updatableAttributes"),
                dicom_updates.get("removableAttributes"),
            )
            size = payload_size(*blobs)
            quota = self.settings.config.payload_quota_bytes
            if size > quota:
                raise choices.PAYLOAD_QUOTA_ERROR(
                    f"The update payload is {size} bytes; the maximum payload size accepted "
                    f"by UpdateImageSetMetadata is {quota} bytes. Split it into several updates."
                )
        with self.store.write() as conn:
            self.settle_due(conn, self.clock())
            row = self.writable_row(conn, p["datastoreId"], p["imageSetId"], p["latestVersionId"])
            if "revertToVersionId" in updates:
                if include_study:
                    raise ValidationException("includeStudyImageSets cannot be used with a revert")
                changes = [(row, self._revert_document(conn, row, updates["revertToVersionId"]))]
            else:
                updatable, removable = (
                    decode_blob(raw, name) if raw is not None else None
                    for raw, name in zip(
                        blobs, ("updatableAttributes", "removableAttributes"), strict=True
                    )
                )
                targets = self._study_targets(conn, row) if include_study else [row]
                changes = [
                    (
                        target,
                        apply_updates(
                            self.document(conn, target["id"], target["settled_version"]),
                            updatable,
                            removable,
                            Flags(force=force, is_primary=bool(target["is_primary"])),
                        ),
                    )
                    for target in targets
                ]
            now = self.clock()
            for target, new_doc in changes:
                # The other primary image sets of the study are updated for consistency
                # with the one asked for (choices.py).
                workflow = "UPDATING" if target["id"] == row["id"] else STUDY_CONSISTENCY
                self._write_update(conn, target, new_doc, forced=force, workflow=workflow)
        return {
            "datastoreId": row["datastore_id"],
            "imageSetId": row["id"],
            "latestVersionId": str(row["latest_version"] + 1),
            "imageSetState": "LOCKED",
            "imageSetWorkflowStatus": "UPDATING",
            "createdAt": row["created_at"],
            "updatedAt": now,
        }

    def _revert_document(
        self, conn: sqlite3.Connection, row: sqlite3.Row, version_id: str
    ) -> documents.Document:
        version = int(version_id)
        if not 1 <= version <= row["settled_version"]:
            raise ValidationException(
                f"revertToVersionId {version_id} is not a version of image set {row['id']}"
            )
        return self.document(conn, row["id"], version)

    def _study_targets(self, conn: sqlite3.Connection, row: sqlite3.Row) -> list[sqlite3.Row]:
        if not row["is_primary"]:
            raise ValidationException("includeStudyImageSets needs a primary image set")
        targets = conn.execute(
            "SELECT * FROM image_sets WHERE datastore_id=? AND study_uid=? AND is_primary=1"
            " AND state != 'DELETED' ORDER BY id",
            (row["datastore_id"], row["study_uid"]),
        ).fetchall()
        for target in targets:
            if target["state"] == "LOCKED":
                raise ConflictException(f"Image set {target['id']} of the same study is locked")
        return targets

    def _write_update(
        self,
        conn: sqlite3.Connection,
        row: sqlite3.Row,
        new_doc: documents.Document,
        *,
        forced: bool,
        workflow: str = "UPDATING",
    ) -> None:
        old_version = row["settled_version"]
        version = row["latest_version"] + 1
        status, message = "UPDATED", None
        failure = self.settings.take_update_failure()
        if failure is not None:
            status, message = "UPDATE_FAILED", failure
        elif documents.raw_size(new_doc) > self.settings.config.max_metadata_bytes:
            status = "UPDATE_FAILED"
            message = "Update failed: the image set metadata would exceed its size limit"
        if status == "UPDATE_FAILED":  # the version is taken, the document stays as it was
            new_doc = self.document(conn, row["id"], old_version)
        self.add_version(conn, row["id"], version, new_doc, workflow, forced=forced)
        self.lock(
            conn,
            row["id"],
            workflow,
            {"kind": "update", "version": version, "status": status, "message": message},
        )
        self.touch(conn, row["id"])

    # -- DeleteImageSet --------------------------------------------------------------
    def delete_image_set(self, p: Params) -> Result:
        with self.store.write() as conn:
            self.settle_due(conn, self.clock())
            row = self.writable_row(conn, p["datastoreId"], p["imageSetId"], None)
            self.lock(conn, row["id"], "DELETING", {"kind": "delete"})
        return {
            "datastoreId": row["datastore_id"],
            "imageSetId": row["id"],
            "imageSetState": "LOCKED",
            "imageSetWorkflowStatus": "DELETING",
        }

    # -- CopyImageSet ----------------------------------------------------------------
    def copy_image_set(self, p: Params) -> Result:
        info = p["copyImageSetInformation"]
        source_info = info["sourceImageSet"]
        destination_info = info.get("destinationImageSet")
        force, promote = bool(p.get("force")), bool(p.get("promoteToPrimary"))
        status, message = "COPIED", None
        with self.store.write() as conn:
            self.settle_due(conn, self.clock())
            source = self.writable_row(
                conn, p["datastoreId"], p["sourceImageSetId"], source_info["latestVersionId"]
            )
            doc = self.document(conn, source["id"], source["settled_version"])
            copies = source_info.get("DICOMCopies")
            if copies:
                doc = _select(doc, copies["copiableAttributes"])
            if destination_info:
                destination = self.writable_row(
                    conn,
                    p["datastoreId"],
                    destination_info["imageSetId"],
                    destination_info["latestVersionId"],
                )
                if destination["id"] == source["id"]:
                    raise ValidationException("source and destination are the same image set")
                self._check_promotion(conn, source, doc, promote, exclude=destination["id"])
                current = self.document(conn, destination["id"], destination["settled_version"])
                try:
                    merged = _merge(current, doc, force)
                except _Mismatch as mismatch:  # the service fails the copy, not the call
                    merged, status, message = current, "COPY_FAILED", str(mismatch)
                version = destination["latest_version"] + 1
                self.add_version(conn, destination["id"], version, merged, "COPYING", forced=force)
                self.touch(conn, destination["id"])
                destination_id = destination["id"]
                if promote and status == "COPIED":
                    conn.execute("UPDATE image_sets SET is_primary=1 WHERE id=?", (destination_id,))
            else:
                self._check_promotion(conn, source, doc, promote, exclude=None)
                destination_id = uuid.uuid4().hex
                version = 1
                self.create(
                    conn, source["datastore_id"], destination_id, doc, is_primary=promote,
                    state="LOCKED", workflow="COPYING",
                )  # fmt: skip
            self.lock(
                conn,
                destination_id,
                "COPYING",
                {"kind": "copy", "version": version, "status": status, "message": message},
            )
            self.touch(conn, source["id"])  # its data is read (choices.py)
            self.lock(
                conn,
                source["id"],
                "COPYING_WITH_READ_ONLY_ACCESS",
                {"kind": "release", "status": source["workflow_status"]},
            )
            dest_row = self.row(conn, destination_id)
        return {
            "datastoreId": source["datastore_id"],
            "sourceImageSetProperties": {
                "imageSetId": source["id"],
                "latestVersionId": str(source["latest_version"]),
                "imageSetState": "LOCKED",
                "imageSetWorkflowStatus": "COPYING_WITH_READ_ONLY_ACCESS",
                "createdAt": source["created_at"],
                "updatedAt": source["updated_at"],
                "imageSetArn": self.arn(source["datastore_id"], source["id"]),
            },
            "destinationImageSetProperties": {
                "imageSetId": destination_id,
                "latestVersionId": str(version),
                "imageSetState": "LOCKED",
                "imageSetWorkflowStatus": "COPYING",
                "createdAt": dest_row["created_at"],
                "updatedAt": dest_row["updated_at"],
                "imageSetArn": self.arn(source["datastore_id"], destination_id),
            },
        }

    def _check_promotion(
        self,
        conn: sqlite3.Connection,
        source: sqlite3.Row,
        doc: documents.Document,
        promote: bool,
        exclude: str | None,
    ) -> None:
        """A promotion is refused while another primary image set of the study lives in
        the same data store (primaries are per data store)."""
        if not promote:
            return
        study_uid = doc.get("Study", {}).get("DICOM", {}).get("StudyInstanceUID")
        other = conn.execute(
            "SELECT id FROM image_sets WHERE datastore_id=? AND study_uid=? AND is_primary=1"
            " AND state != 'DELETED' AND workflow_status != 'DELETING' AND id != ?",
            (source["datastore_id"], study_uid, exclude or ""),
        ).fetchone()
        if other is not None:
            raise ConflictException(
                f"Image set {other['id']} is already the primary image set of study {study_uid}"
            )


class _Mismatch(Exception):
    """Source and destination disagree at a level: the copy ends COPY_FAILED."""


def _select(doc: documents.Document, copiable: str) -> documents.Document:
    """The part of ``doc`` that ``copiableAttributes`` names (series and instances)."""
    try:
        wanted = json.loads(copiable)
        wanted_series = wanted["Study"]["Series"]
        if not isinstance(wanted_series, dict):
            raise TypeError
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValidationException(
            'copiableAttributes must be {"SchemaVersion": 1.1, "Study": {"Series": {...}}}'
        ) from None
    result = copy.deepcopy(doc)
    all_series = result["Study"]["Series"]
    selected: dict[str, Any] = {}
    for uid, spec in wanted_series.items():
        if uid not in all_series:
            raise ResourceNotFoundException(f"the source image set has no series {uid}")
        series = all_series[uid]
        sops = (spec or {}).get("Instances")
        if sops:
            missing = [sop for sop in sops if sop not in series["Instances"]]
            if missing:
                raise ResourceNotFoundException(f"series {uid} has no instance {missing[0]}")
            series["Instances"] = {sop: series["Instances"][sop] for sop in sops}
        selected[uid] = series
    result["Study"]["Series"] = selected
    return result


def _merge(
    target: documents.Document, source: documents.Document, force: bool
) -> documents.Document:
    """``source`` copied into ``target``: its series and instances added, levels reconciled."""
    result = copy.deepcopy(target)

    def reconcile(into: dict[str, Any], values: dict[str, Any], where: str) -> None:
        for key, value in values.items():
            if key in into and into[key] != value and not force:
                raise _Mismatch(choices.COPY_MISMATCH_MESSAGE.format(level=where))
            into[key] = value

    reconcile(
        result["Patient"].setdefault("DICOM", {}), source["Patient"].get("DICOM", {}), "Patient"
    )
    reconcile(result["Study"].setdefault("DICOM", {}), source["Study"].get("DICOM", {}), "Study")
    all_series = result["Study"].setdefault("Series", {})
    for uid, series in source["Study"].get("Series", {}).items():
        if uid not in all_series:
            all_series[uid] = copy.deepcopy(series)
            continue
        reconcile(all_series[uid].setdefault("DICOM", {}), series.get("DICOM", {}), "Series")
        all_series[uid].setdefault("Instances", {}).update(
            copy.deepcopy(series.get("Instances", {}))
        )
    return result
