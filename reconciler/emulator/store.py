"""SQLite persistence of the local HealthImaging: one file, WAL, safe across threads.

Versions are immutable rows holding their gzip-compressed metadata document; the
``image_sets`` row carries the current state and the columns SearchImageSets filters
on. Each thread gets its own connection; writes run in ``BEGIN IMMEDIATE``
transactions so two requests never interleave a read-check-write.

The file holds patient data: it is created 0600 (SQLite gives its -wal and -shm files
the database file's mode) in a folder created 0700; an older, more open file is
narrowed to 0600 when opened.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS datastores (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, kms_key_arn TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, settle_at REAL,
    lambda_authorizer_arn TEXT, lossless_storage_format TEXT
);
CREATE TABLE IF NOT EXISTS image_sets (
    id TEXT PRIMARY KEY, datastore_id TEXT NOT NULL, is_primary INTEGER NOT NULL,
    state TEXT NOT NULL, workflow_status TEXT NOT NULL,
    latest_version INTEGER NOT NULL, settled_version INTEGER NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, deleted_at REAL,
    settle_at REAL, pending TEXT,
    study_uid TEXT, patient_id TEXT, accession_number TEXT, study_id TEXT,
    study_date_time TEXT, dicom_tags TEXT NOT NULL DEFAULT '{}', last_accessed_at REAL
);
-- Every key SearchImageSets filters or sorts on, within a data store. The sort keys end
-- in id, the listing's tie-break, so a page is read in order from where the last one
-- stopped (keyset pagination, search.py).
DROP INDEX IF EXISTS image_sets_datastore;
CREATE INDEX IF NOT EXISTS image_sets_updated ON image_sets (datastore_id, updated_at, id);
CREATE INDEX IF NOT EXISTS image_sets_created ON image_sets (datastore_id, created_at, id);
CREATE INDEX IF NOT EXISTS image_sets_study_date
    ON image_sets (datastore_id, study_date_time, id);
CREATE INDEX IF NOT EXISTS image_sets_study ON image_sets (datastore_id, study_uid);
CREATE INDEX IF NOT EXISTS image_sets_patient ON image_sets (datastore_id, patient_id);
CREATE INDEX IF NOT EXISTS image_sets_accession ON image_sets (datastore_id, accession_number);
CREATE INDEX IF NOT EXISTS image_sets_study_id ON image_sets (datastore_id, study_id);
CREATE INDEX IF NOT EXISTS image_sets_settle ON image_sets (settle_at)
    WHERE settle_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS versions (
    image_set_id TEXT NOT NULL, version INTEGER NOT NULL,
    workflow_status TEXT NOT NULL, message TEXT, forced INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, metadata BLOB NOT NULL,
    PRIMARY KEY (image_set_id, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    image_set_id TEXT NOT NULL, series_uid TEXT NOT NULL,
    PRIMARY KEY (image_set_id, series_uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS series_uid ON series (series_uid);
CREATE TABLE IF NOT EXISTS import_jobs (
    id TEXT PRIMARY KEY, datastore_id TEXT NOT NULL, name TEXT, status TEXT NOT NULL,
    role_arn TEXT NOT NULL, input_uri TEXT NOT NULL, output_uri TEXT NOT NULL,
    submitted_at REAL NOT NULL, ended_at REAL, message TEXT, client_token TEXT,
    import_configuration TEXT, input_owner_account_id TEXT
);
CREATE INDEX IF NOT EXISTS import_jobs_listing ON import_jobs (datastore_id, submitted_at, id);
CREATE TABLE IF NOT EXISTS frames (
    id TEXT PRIMARY KEY, geometry TEXT NOT NULL, data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS client_tokens (
    operation TEXT NOT NULL, token TEXT NOT NULL, request TEXT NOT NULL,
    response TEXT NOT NULL, PRIMARY KEY (operation, token)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
    arn TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (arn, key)
) WITHOUT ROWID;
-- EventBridge events waiting to be sent (events.py), written in the transaction that
-- makes the change they announce, sent and deleted in seq order.
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL
);
"""

# What the query planner is told about the shape of the data, written into sqlite_stat1
# by hand (SQLite's "fixed statistics"): a data store holds very many image sets, while
# a study, patient, accession number, StudyID or series names a few. Left to guess,
# SQLite prefers walking the whole data store in updatedAt order (no sort needed) to
# looking the study up, and every search by study reads the whole data store. The
# figures describe a shape, not a count ("rows, rows per first column, per first two,
# ..."), so the plans are the same for ten image sets and for ten million.
PLANNER_STATISTICS = (
    ("image_sets", "sqlite_autoindex_image_sets_1", "1000000 1"),
    ("image_sets", "image_sets_updated", "1000000 1000000 1 1"),
    ("image_sets", "image_sets_created", "1000000 1000000 1 1"),
    ("image_sets", "image_sets_study_date", "1000000 1000000 2 1"),
    ("image_sets", "image_sets_study", "1000000 1000000 2"),
    ("image_sets", "image_sets_patient", "1000000 1000000 5"),
    ("image_sets", "image_sets_accession", "1000000 1000000 2"),
    ("image_sets", "image_sets_study_id", "1000000 1000000 100"),
    ("image_sets", "image_sets_settle", "10 1"),
    ("series", "series", "3000000 3 1"),
    ("series", "series_uid", "3000000 2"),
    ("import_jobs", "sqlite_autoindex_import_jobs_1", "10000 1"),
    ("import_jobs", "import_jobs_listing", "10000 10000 1 1"),
)


def _fix_planner_statistics(conn: sqlite3.Connection) -> None:
    """Write :data:`PLANNER_STATISTICS` (replacing what an ANALYZE may have left) and
    have this connection reload them; connections opened later read them on their own."""
    conn.execute("ANALYZE sqlite_schema")  # creates sqlite_stat1 when it is missing
    tables = sorted({table for table, _, _ in PLANNER_STATISTICS})
    conn.execute(f"DELETE FROM sqlite_stat1 WHERE tbl IN ({', '.join('?' * len(tables))})", tables)
    conn.executemany(
        "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)", PLANNER_STATISTICS
    )
    conn.execute("ANALYZE sqlite_schema")  # reload


# Columns added after a table's first release: a database file made before them gets
# them on opening (ALTER TABLE ADD COLUMN; the new columns are all nullable).
ADDED_COLUMNS = (
    ("datastores", "lambda_authorizer_arn", "TEXT"),
    ("datastores", "lossless_storage_format", "TEXT"),
    ("image_sets", "last_accessed_at", "REAL"),
    ("import_jobs", "import_configuration", "TEXT"),
    ("import_jobs", "input_owner_account_id", "TEXT"),
)


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, column, kind in ADDED_COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _private_file(path: Path) -> None:
    """Create ``path`` 0600 (and missing folders 0700) before SQLite opens it."""
    missing = []
    folder = path.parent.absolute()
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # the umask may have taken bits away
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = name.stat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_IMODE(mode) & 0o077:
            os.chmod(name, 0o600)


class Store:
    """A SQLite database file shared by every request thread of one emulator."""

    def __init__(self, path: Path) -> None:
        self.path = path
        _private_file(path)
        self._local = threading.local()
        self._committed: list[Callable[[], None]] = []
        # executescript commits on its own, so it runs outside write().
        self._connection().executescript(SCHEMA)
        with self.write() as conn:
            _fix_planner_statistics(conn)
            _add_missing_columns(conn)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for reads (a deferred transaction)."""
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """An exclusive write transaction: committed on success, rolled back on error."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        for callback in self._committed:
            callback()

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every committed write (it must be quick: it runs in
        the writing thread)."""
        self._committed.append(callback)

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
