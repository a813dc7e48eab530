"""Data stores and resource tags."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable

from reconciler.emulator import choices, idempotency
from reconciler.emulator.config import RuntimeSettings
from reconciler.emulator.events import EventLog
from reconciler.emulator.exceptions import (
    AccessDeniedException,
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from reconciler.emulator.imagesets import Params, Result
from reconciler.emulator.paging import page
from reconciler.emulator.store import Store

# A data store created without losslessStorageFormat stores HTJ2K (the developer
# guide's "Supported transfer syntaxes": "Data stores use HTJ2K as the storage format
# by default").
DEFAULT_LOSSLESS_FORMAT = "HTJ2K"
# The transfer syntax lossless frames are stored in, per storage format.
LOSSLESS_SYNTAX = {
    "HTJ2K": "1.2.840.10008.1.2.4.202",
    "JPEG_2000_LOSSLESS": "1.2.840.10008.1.2.4.90",
}


def lossless_format(conn: sqlite3.Connection, datastore_id: str) -> str:
    """The lossless storage format of a data store (HTJ2K unless it was created otherwise)."""
    row = conn.execute(
        "SELECT lossless_storage_format FROM datastores WHERE id=?", (datastore_id,)
    ).fetchone()
    found: str | None = row[0] if row is not None else None
    return found or DEFAULT_LOSSLESS_FORMAT


class Datastores:
    def __init__(
        self,
        store: Store,
        settings: RuntimeSettings,
        arn: Callable[[str, str | None], str],
        clock: Callable[[], float] = time.time,
        *,
        events: EventLog | None = None,
        settle_image_sets: Callable[[sqlite3.Connection, float], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.arn = arn
        self.clock = clock
        self.events = events or EventLog(settings, arn, choices.DEFAULT_REGION)
        # Finishes image set changes whose time has come (ImageSets.settle_due), so a
        # delete that is due counts as done when the data store's emptiness is judged.
        self.settle_image_sets = settle_image_sets

    def settle(self, conn: sqlite3.Connection) -> None:
        """Finish the creations and deletions whose time has come."""
        now = self.clock()
        for row in conn.execute(
            "SELECT id, name, status, settle_at FROM datastores"
            " WHERE status IN ('CREATING', 'DELETING') AND settle_at <= ? ORDER BY settle_at, id",
            (now,),
        ).fetchall():
            status = "ACTIVE" if row["status"] == "CREATING" else "DELETED"
            self.events.datastore(conn, row["id"], row["name"], status=status, at=row["settle_at"])
        conn.execute(
            "UPDATE datastores SET status='ACTIVE', settle_at=NULL, updated_at=settle_at"
            " WHERE status='CREATING' AND settle_at <= ?",
            (now,),
        )
        conn.execute("DELETE FROM datastores WHERE status='DELETING' AND settle_at <= ?", (now,))

    def _row(self, conn: sqlite3.Connection, datastore_id: str) -> sqlite3.Row:
        self.settle(conn)
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM datastores WHERE id=?", (datastore_id,)
        ).fetchone()
        if row is None:
            raise ResourceNotFoundException(f"Datastore {datastore_id} not found")
        return row

    def _properties(self, row: sqlite3.Row) -> Result:
        return {
            "datastoreId": row["id"],
            "datastoreName": row["name"],
            "datastoreStatus": row["status"],
            "kmsKeyArn": row["kms_key_arn"],
            "lambdaAuthorizerArn": row["lambda_authorizer_arn"],
            "losslessStorageFormat": row["lossless_storage_format"] or DEFAULT_LOSSLESS_FORMAT,
            "datastoreArn": self.arn(row["id"], None),
            "createdAt": row["created_at"],
            "updatedAt": row["updated_at"],
        }

    def create(
        self,
        name: str,
        datastore_id: str | None = None,
        tags: dict[str, str] | None = None,
        *,
        active: bool = False,
    ) -> str:
        """Create a data store (a fixed ``datastore_id`` is for deterministic seeding).
        ``active``: one that exists when the server starts (the seeded one) is ACTIVE at
        once, not CREATING for the lock hold like one a client creates."""
        with self.store.write() as conn:
            created = self._create(conn, name, datastore_id, tags)
            if active:
                conn.execute(
                    "UPDATE datastores SET settle_at=? WHERE id=?", (self.clock(), created)
                )
                self.settle(conn)
            return created

    def _create(
        self,
        conn: sqlite3.Connection,
        name: str,
        datastore_id: str | None = None,
        tags: dict[str, str] | None = None,
        options: Params | None = None,
    ) -> str:
        """A new data store; ``options``: CreateDatastore's kmsKeyArn,
        lambdaAuthorizerArn and losslessStorageFormat, kept and reported as given."""
        datastore_id = datastore_id or uuid.uuid4().hex
        now = self.clock()
        given = options or {}
        conn.execute(
            "INSERT INTO datastores (id, name, status, created_at, updated_at, settle_at,"
            " kms_key_arn, lambda_authorizer_arn, lossless_storage_format)"
            " VALUES (?, ?, 'CREATING', ?, ?, ?, ?, ?, ?)",
            (
                datastore_id,
                name,
                now,
                now,
                now + self.settings.config.lock_hold_seconds,
                given.get("kmsKeyArn"),
                given.get("lambdaAuthorizerArn"),
                given.get("losslessStorageFormat"),
            ),
        )
        self.events.datastore(conn, datastore_id, name, status="CREATING", at=now)
        for key, value in (tags or {}).items():
            conn.execute(
                "INSERT INTO tags (arn, key, value) VALUES (?, ?, ?)",
                (self.arn(datastore_id, None), key, value),
            )
        return datastore_id

    # -- operations ------------------------------------------------------------------
    def create_datastore(self, p: Params) -> Result:
        with self.store.write() as conn:
            first = idempotency.replay(conn, "CreateDatastore", p)
            if first is not None:  # a retry: the data store the first call made
                return dict(first)
            datastore_id = self._create(
                conn, p.get("datastoreName") or "", tags=p.get("tags"), options=p
            )
            result: Result = {"datastoreId": datastore_id, "datastoreStatus": "CREATING"}
            idempotency.remember(conn, "CreateDatastore", p, result)
        return result

    def get_datastore(self, p: Params) -> Result:
        with self.store.write() as conn:
            return {"datastoreProperties": self._properties(self._row(conn, p["datastoreId"]))}

    def list_datastores(self, p: Params) -> Result:
        with self.store.write() as conn:
            self.settle(conn)
            rows = conn.execute("SELECT * FROM datastores ORDER BY created_at, id").fetchall()
        status = p.get("datastoreStatus")
        rows = [r for r in rows if status is None or r["status"] == status]
        chosen, token = page(rows, p, default_size=50, context=f"datastores:{status}")
        summaries = [self._properties(r) for r in chosen]
        return {"datastoreSummaries": summaries, "nextToken": token}

    def delete_datastore(self, p: Params) -> Result:
        with self.store.write() as conn:
            row = self._row(conn, p["datastoreId"])
            if self.settle_image_sets is not None:
                self.settle_image_sets(conn, self.clock())
            left = conn.execute(
                "SELECT COUNT(*) FROM image_sets WHERE datastore_id=? AND state != 'DELETED'",
                (row["id"],),
            ).fetchone()[0]
            if left:
                raise ConflictException(
                    f"Datastore {row['id']} still has {left} image sets; delete them first"
                )
            now = self.clock()
            conn.execute(
                "UPDATE datastores SET status='DELETING', settle_at=? WHERE id=?",
                (now + self.settings.config.lock_hold_seconds, row["id"]),
            )
            self.events.datastore(conn, row["id"], row["name"], status="DELETING", at=now)
        return {"datastoreId": row["id"], "datastoreStatus": "DELETING"}

    # -- tags ------------------------------------------------------------------------
    def _check_arn(self, conn: sqlite3.Connection, arn: str) -> None:
        """The ARN must name a live resource of this account and region: another account
        is AccessDeniedException, another region or data store ResourceNotFoundException
        (choices.py)."""
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[2] != "medical-imaging":
            raise ValidationException(f"{arn} is not a HealthImaging resource ARN")
        path = parts[5].split("/")
        if path[0] != "datastore" or len(path) not in (2, 4):
            raise ValidationException(f"{arn} is not a HealthImaging resource ARN")
        mine = self.arn(path[1], None).split(":")
        if parts[4] != mine[4]:
            raise AccessDeniedException(
                f"{arn} belongs to account {parts[4]}, not to this one ({mine[4]})"
            )
        if parts[3] != mine[3]:
            raise ResourceNotFoundException(f"{arn} is in region {parts[3]}, not in {mine[3]}")
        self._row(conn, path[1])
        if (
            len(path) == 4
            and not conn.execute(
                "SELECT 1 FROM image_sets WHERE id=? AND datastore_id=? AND state != 'DELETED'",
                (path[3], path[1]),
            ).fetchone()
        ):
            raise ResourceNotFoundException(f"Image set {path[3]} not found in datastore {path[1]}")

    def tag_resource(self, p: Params) -> Result:
        with self.store.write() as conn:
            self._check_arn(conn, p["resourceArn"])
            conn.executemany(
                "INSERT OR REPLACE INTO tags (arn, key, value) VALUES (?, ?, ?)",
                [(p["resourceArn"], k, v) for k, v in p["tags"].items()],
            )
        return {}

    def untag_resource(self, p: Params) -> Result:
        with self.store.write() as conn:
            self._check_arn(conn, p["resourceArn"])
            conn.executemany(
                "DELETE FROM tags WHERE arn=? AND key=?",
                [(p["resourceArn"], k) for k in p["tagKeys"]],
            )
        return {}

    def list_tags_for_resource(self, p: Params) -> Result:
        with self.store.write() as conn:
            self._check_arn(conn, p["resourceArn"])
            rows = conn.execute(
                "SELECT key, value FROM tags WHERE arn=? ORDER BY key", (p["resourceArn"],)
            ).fetchall()
        return {"tags": {r["key"]: r["value"] for r in rows}}
