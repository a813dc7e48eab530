"""Image sets and their immutable versions: reads, and state that moves forward in time.

Writes (update, copy, delete) leave an image set LOCKED with a ``pending`` record and a
``settle_at`` time; :meth:`ImageSets.settle_due` finishes every pending change whose
time has come at the start of each request, so the asynchronous behaviour of the
service (LOCKED → ACTIVE, UPDATED / UPDATE_FAILED) survives restarts without threads.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from reconciler.emulator import choices, documents
from reconciler.emulator.config import RuntimeSettings
from reconciler.emulator.events import EventLog
from reconciler.emulator.exceptions import ConflictException, ResourceNotFoundException
from reconciler.emulator.paging import Keyset
from reconciler.emulator.store import Store

# The operation whose per-operation LOCKED hold time applies to a workflow status.
_OPERATION_OF_WORKFLOW = {
    "UPDATING": "UpdateImageSetMetadata",
    "UPDATING_FOR_STUDY_CONSISTENCY": "UpdateImageSetMetadata",
    "COPYING": "CopyImageSet",
    "COPYING_WITH_READ_ONLY_ACCESS": "CopyImageSet",
    "DELETING": "DeleteImageSet",
}

Params = dict[str, Any]
Result = dict[str, Any]

# Intelligent tiering (choices.py): an image set not touched for this long is in the
# Archive Instant Access tier; a touch brings it back to Frequent Access.
ARCHIVE_AFTER_SECONDS = 30 * 24 * 3600
# A read touches an image set at most this often (a write per read would serialize
# concurrent readers for nothing: the tier moves in days).
READ_TOUCH_RESOLUTION_SECONDS = 1.0


def storage_tier(last_accessed_at: float, now: float) -> str:
    idle = now - last_accessed_at
    return "ARCHIVE_INSTANT_ACCESS" if idle >= ARCHIVE_AFTER_SECONDS else "FREQUENT_ACCESS"


class ImageSets:
    def __init__(
        self,
        store: Store,
        settings: RuntimeSettings,
        arn: Callable[[str, str | None], str],
        clock: Callable[[], float] = time.time,
        *,
        events: EventLog | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.arn = arn
        self.clock = clock
        self.events = events or EventLog(settings, arn, choices.DEFAULT_REGION)

    # -- state machine ---------------------------------------------------------------
    def settle_due(self, conn: sqlite3.Connection, now: float) -> None:
        rows = conn.execute(
            "SELECT * FROM image_sets WHERE settle_at IS NOT NULL AND settle_at <= ?", (now,)
        ).fetchall()
        for row in rows:
            self._settle(conn, row)

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A read snapshot in which every change whose time has come has settled.

        Reads are the hot path: they take the write lock only when something is due,
        so concurrent GetImageSet/GetImageSetMetadata calls do not queue behind it.
        """
        now = self.clock()
        with self.store.read() as conn:
            due = conn.execute(
                "SELECT 1 FROM image_sets WHERE settle_at IS NOT NULL AND settle_at <= ? LIMIT 1",
                (now,),
            ).fetchone()
        if due:
            with self.store.write() as conn:
                self.settle_due(conn, now)
        with self.store.read() as conn:
            yield conn

    def _settle(self, conn: sqlite3.Connection, row: sqlite3.Row) -> None:
        pending = json.loads(row["pending"])
        at = row["settle_at"]
        if pending["kind"] == "delete":
            conn.execute(
                "UPDATE image_sets SET state='DELETED', workflow_status='DELETED', deleted_at=?,"
                " updated_at=?, settle_at=NULL, pending=NULL WHERE id=?",
                (at, at, row["id"]),
            )
            self.events.image_set(
                conn,
                row["datastore_id"],
                row["id"],
                state="DELETED",
                workflow_status="DELETED",
                at=at,
            )
            return
        if pending["kind"] == "release":  # the source of a copy becomes writable again
            conn.execute(
                "UPDATE image_sets SET state='ACTIVE', workflow_status=?, settle_at=NULL,"
                " pending=NULL WHERE id=?",
                (pending["status"], row["id"]),
            )
            return
        version = pending["version"]
        conn.execute(
            "UPDATE versions SET workflow_status=?, message=?, updated_at=?"
            " WHERE image_set_id=? AND version=?",
            (pending["status"], pending.get("message"), at, row["id"], version),
        )
        conn.execute(
            "UPDATE image_sets SET state='ACTIVE', workflow_status=?, settled_version=?,"
            " updated_at=?, settle_at=NULL, pending=NULL WHERE id=?",
            (pending["status"], version, at, row["id"]),
        )
        self.index(conn, row["id"], self.document(conn, row["id"], version))
        self.events.image_set(
            conn,
            row["datastore_id"],
            row["id"],
            state="ACTIVE",
            workflow_status=pending["status"],
            at=at,
        )

    def lock(
        self, conn: sqlite3.Connection, image_set_id: str, workflow: str, pending: dict[str, Any]
    ) -> float:
        """Mark an image set LOCKED until ``pending`` settles; returns the settle time."""
        now = self.clock()
        settle_at = now + self.settings.lock_hold(_OPERATION_OF_WORKFLOW.get(workflow, ""))
        row = self.row(conn, image_set_id)
        conn.execute(
            "UPDATE image_sets SET state='LOCKED', workflow_status=?, latest_version=?,"
            " updated_at=?, settle_at=?, pending=? WHERE id=?",
            (
                workflow,
                pending.get("version", row["latest_version"]),
                now,
                settle_at,
                json.dumps(pending),
                image_set_id,
            ),
        )
        self.events.image_set(
            conn,
            row["datastore_id"],
            image_set_id,
            state="LOCKED",
            workflow_status=workflow,
            at=now,
        )
        return now

    def touch(self, conn: sqlite3.Connection, image_set_id: str) -> None:
        """Record an access that counts for tiering (import, copy, update)."""
        conn.execute(
            "UPDATE image_sets SET last_accessed_at=? WHERE id=?", (self.clock(), image_set_id)
        )

    def touch_read(self, image_set_id: str, last_accessed_at: float | None) -> None:
        """Record a read (GetImageSetMetadata, GetImageFrame), unless one was just recorded."""
        now = self.clock()
        if last_accessed_at is not None and now - last_accessed_at < READ_TOUCH_RESOLUTION_SECONDS:
            return
        with self.store.write() as conn:
            conn.execute("UPDATE image_sets SET last_accessed_at=? WHERE id=?", (now, image_set_id))

    @staticmethod
    def last_accessed(row: sqlite3.Row) -> float:
        value: float = row["last_accessed_at"] or row["created_at"]
        return value

    # -- rows and documents ----------------------------------------------------------
    def row(self, conn: sqlite3.Connection, image_set_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM image_sets WHERE id=?", (image_set_id,)
        ).fetchone()
        if row is None:
            raise ResourceNotFoundException(f"Image set {image_set_id} not found")
        return row

    def live_row(
        self,
        conn: sqlite3.Connection,
        datastore_id: str,
        image_set_id: str,
        *,
        deleted: bool = False,
    ) -> sqlite3.Row:
        """The image set, which must exist in that data store and (unless ``deleted``)
        not be deleted."""
        if not conn.execute("SELECT 1 FROM datastores WHERE id=?", (datastore_id,)).fetchone():
            raise ResourceNotFoundException(f"Datastore {datastore_id} not found")
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM image_sets WHERE id=? AND datastore_id=?"
            + ("" if deleted else " AND state != 'DELETED'"),
            (image_set_id, datastore_id),
        ).fetchone()
        if row is None:
            raise ResourceNotFoundException(
                f"Image set {image_set_id} not found in datastore {datastore_id}"
            )
        return row

    def writable_row(
        self, conn: sqlite3.Connection, datastore_id: str, image_set_id: str, latest: str | None
    ) -> sqlite3.Row:
        """The image set for a write: not LOCKED and (if given) at version ``latest``."""

        row = self.live_row(conn, datastore_id, image_set_id)
        if row["state"] == "LOCKED":
            raise ConflictException(
                f"Image set {image_set_id} is locked ({row['workflow_status']}); retry when ACTIVE"
            )
        if latest is not None and latest != str(row["latest_version"]):
            raise choices.STALE_VERSION_ERROR(
                f"latestVersion {latest} is not the latest version of image set "
                f"{image_set_id} ({row['latest_version']})"
            )
        return row

    def document(
        self, conn: sqlite3.Connection, image_set_id: str, version: int
    ) -> documents.Document:
        return documents.decode(self.raw_document(conn, image_set_id, version))

    def raw_document(self, conn: sqlite3.Connection, image_set_id: str, version: int) -> bytes:
        row = conn.execute(
            "SELECT metadata FROM versions WHERE image_set_id=? AND version=?",
            (image_set_id, version),
        ).fetchone()
        if row is None:
            raise ResourceNotFoundException(
                f"Version {version} of image set {image_set_id} not found"
            )
        blob: bytes = row["metadata"]
        return blob

    def add_version(
        self,
        conn: sqlite3.Connection,
        image_set_id: str,
        version: int,
        doc: documents.Document,
        workflow: str,
        *,
        forced: bool = False,
        message: str | None = None,
    ) -> None:
        now = self.clock()
        conn.execute(
            "INSERT INTO versions (image_set_id, version, workflow_status, message, forced,"
            " created_at, updated_at, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                image_set_id,
                version,
                workflow,
                message,
                int(forced),
                now,
                now,
                documents.encode(doc),
            ),
        )

    def create(
        self,
        conn: sqlite3.Connection,
        datastore_id: str,
        image_set_id: str,
        doc: documents.Document,
        *,
        is_primary: bool,
        state: str = "ACTIVE",
        workflow: str = "CREATED",
    ) -> None:
        """A new image set at version 1 holding ``doc`` (IDs written into it)."""
        doc = {
            "SchemaVersion": doc.get("SchemaVersion", "1.1"),
            "DatastoreID": datastore_id,
            "ImageSetID": image_set_id,
            **{
                k: v
                for k, v in doc.items()
                if k not in ("SchemaVersion", "DatastoreID", "ImageSetID")
            },
        }
        now = self.clock()
        conn.execute(
            "INSERT INTO image_sets (id, datastore_id, is_primary, state, workflow_status,"
            " latest_version, settled_version, created_at, updated_at, last_accessed_at)"
            " VALUES (?, ?, ?, ?, ?, 1, 1, ?, ?, ?)",
            (image_set_id, datastore_id, int(is_primary), state, workflow, now, now, now),
        )
        self.add_version(conn, image_set_id, 1, doc, workflow)
        self.index(conn, image_set_id, doc)
        if workflow == "CREATED":  # a copy's new image set announces COPYING instead (lock)
            self.events.image_set(
                conn, datastore_id, image_set_id, state=state, workflow_status=workflow, at=now
            )

    def index(self, conn: sqlite3.Connection, image_set_id: str, doc: documents.Document) -> None:
        """Refresh the columns SearchImageSets filters and reports on."""
        tags = documents.dicom_tags(doc)
        conn.execute(
            "UPDATE image_sets SET study_uid=?, patient_id=?, accession_number=?, study_id=?,"
            " study_date_time=?, dicom_tags=? WHERE id=?",
            (
                tags.get("DICOMStudyInstanceUID"),
                tags.get("DICOMPatientId"),
                tags.get("DICOMAccessionNumber"),
                tags.get("DICOMStudyId"),
                documents.study_date_time(doc),
                json.dumps(tags),
                image_set_id,
            ),
        )
        conn.execute("DELETE FROM series WHERE image_set_id=?", (image_set_id,))
        conn.executemany(
            "INSERT INTO series (image_set_id, series_uid) VALUES (?, ?)",
            [(image_set_id, uid) for uid in doc.get("Study", {}).get("Series", {})],
        )

    # -- read operations -------------------------------------------------------------
    def _properties(self, conn: sqlite3.Connection, row: sqlite3.Row, version: int) -> Result:
        vrow = conn.execute(
            "SELECT * FROM versions WHERE image_set_id=? AND version=?", (row["id"], version)
        ).fetchone()
        if vrow is None:
            raise ResourceNotFoundException(f"Version {version} of image set {row['id']} not found")
        is_latest = version == row["latest_version"]
        result: Result = {
            "datastoreId": row["datastore_id"],
            "imageSetId": row["id"],
            "versionId": str(version),
            "imageSetState": row["state"] if is_latest else "ACTIVE",
            "imageSetWorkflowStatus": row["workflow_status"]
            if is_latest
            else vrow["workflow_status"],
            "createdAt": row["created_at"],  # the image set's, on every version
            "updatedAt": vrow["updated_at"],
            "deletedAt": row["deleted_at"],
            "message": vrow["message"],
            "imageSetArn": self.arn(row["datastore_id"], row["id"]),
            "isPrimary": bool(row["is_primary"]),
            "lastAccessedAt": self.last_accessed(row),
            "storageTier": storage_tier(self.last_accessed(row), self.clock()),
        }
        if vrow["forced"]:
            result["overrides"] = {"forced": True}
        return result

    def get_image_set(self, p: Params) -> Result:
        with self.reading() as conn:  # a deleted image set answers DELETED (choices.py)
            row = self.live_row(conn, p["datastoreId"], p["imageSetId"], deleted=True)
            version = int(p["versionId"]) if p.get("versionId") else row["latest_version"]
            return self._properties(conn, row, version)

    def get_image_set_metadata(self, p: Params) -> Result:
        with self.reading() as conn:
            row = self.live_row(conn, p["datastoreId"], p["imageSetId"])
            if p.get("versionId"):
                version = int(p["versionId"])
                if version > row["settled_version"]:
                    if version > row["latest_version"]:
                        raise ResourceNotFoundException(
                            f"Version {version} of image set {row['id']} not found"
                        )
                    raise ConflictException(
                        f"Version {version} of image set {row['id']} is still being written"
                    )
            else:
                version = row["settled_version"]
            blob = self.raw_document(conn, row["id"], version)
        self.touch_read(row["id"], row["last_accessed_at"])
        return {
            "imageSetMetadataBlob": blob,
            "contentType": "application/json",
            "contentEncoding": "gzip",
        }

    def list_image_set_versions(self, p: Params) -> Result:
        keyset = Keyset.of(p, default_size=50, context=p["imageSetId"])
        after, after_args = keyset.condition(("version",), descending=True)
        with self.reading() as conn:
            row = self.live_row(conn, p["datastoreId"], p["imageSetId"])
            versions = [
                r["version"]
                for r in conn.execute(
                    f"SELECT version FROM versions WHERE image_set_id=? AND {after}"
                    " ORDER BY version DESC LIMIT ?",
                    (row["id"], *after_args, keyset.limit),
                )
            ]
            chosen, token = keyset.split(versions, lambda version: (version,))
            items = []
            for version in chosen:
                props = self._properties(conn, row, version)
                props["ImageSetWorkflowStatus"] = props.pop("imageSetWorkflowStatus")
                items.append(props)
        return {"imageSetPropertiesList": items, "nextToken": token}
