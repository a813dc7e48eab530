"""One SQLite database in a private folder of the project, for the projection cache.

A cold plan of a 100,000-row table caches 100,000 projections. A file each cost a file
system entry (a 4 KB block on ext4), about a dozen system calls to write it safely and a
few to read it, with the interpreter's lock handed between threads at each. Here the
entries are rows of one table: a read is one indexed lookup, and writes are gathered
and committed a few hundred at a time. Entries not written for :data:`MAX_AGE_DAYS` are
dropped when a command that wrote some ends, so the cache does not grow for ever.

The same discipline as the local state backend, otherwise. The folder is opened level
by level from the project with ``O_NOFOLLOW`` and checked (a real folder, the user's
own, made 0700 again). The database and the files SQLite keeps beside it (``-wal``,
``-shm``, ``-journal``) must be regular files of the user, never links (a link
committed by a pull request is refused, not written through). The database is
created 0600 whatever the umask, and SQLite gives the files beside it its mode. The
database is then opened by its path, and must be the file that was checked (same
device and inode).

Commits are not fsynced (``synchronous=NORMAL`` in WAL mode): a crash may lose the
last ones, never the database's consistency, and a lost entry only costs a read. Safe
to share between threads: one connection, used under a lock (each use is short).
Several processes may share the database (``--shard`` jobs on one machine): SQLite
locks it, and a writer waits up to :data:`BUSY_SECONDS` for another.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

from reconciler.state.backend import StateError
from reconciler.state.local import foreign, linked, why

MAX_AGE_DAYS = 30
BUSY_SECONDS = 30
BATCH = 1024  # entries gathered before they are committed together
SIDE_FILES = ("-wal", "-shm", "-journal")

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Rows are appended (a new row goes at the end of the table, not where its key would
# sort: a tenth of the pages written), found through an index of their keys' first
# 8 bytes; the day each was written is indexed too (always appended) to drop old ones.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries "
    "(key INTEGER NOT NULL, value BLOB NOT NULL, written INTEGER NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS entries_by_key ON entries (key)",
    "CREATE INDEX IF NOT EXISTS entries_by_day ON entries (written)",
)


def _today() -> int:
    return int(time.time() // 86400)


def _id(key: bytes) -> int:
    """The key as the database keeps it: its first 8 bytes, a signed 64-bit integer."""
    return int.from_bytes(key[:8], "big", signed=True)


class CacheDB:
    """Entries (bytes → bytes) in the database ``name`` of the folder ``root``, a
    folder inside ``project``. Nothing is opened or created until it is used; a read
    of a database that does not exist is a miss and creates nothing.

    Keys are digests, and only their first 8 bytes are kept: two keys that share them
    share an entry, so a value must name its own key and the reader check it (as the
    projection cache's entries do; with SHA-256, a first collision is expected after
    some 4 billion entries)."""

    def __init__(self, root: Path, project: Path, name: str = "projections.db") -> None:
        self.root = root
        self.project = project
        self.name = name
        self._parts = root.relative_to(project).parts
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._pending: dict[bytes, bytes] = {}  # written, not yet committed
        self._wrote = False
        self._closed = False
        # The database held nothing when it was opened (or there was none): no read is
        # asked of it (a cold plan, and every plan of a fresh CI runner, asks nothing).
        # What this command writes is read back while pending, then by later commands.
        self._nothing_kept = False

    def _shown(self, name: str = "") -> str:
        return Path(*self._parts, *([name] if name else [])).as_posix()

    # -- reading and writing -------------------------------------------------------------
    def get(self, key: bytes) -> bytes | None:
        pending = self._pending.get(key)
        if pending is not None or self._nothing_kept:
            return pending
        with self._lock:
            db = self._open(create=False)
            if db is None:
                self._nothing_kept = True  # no database: nothing to ask (until one is made)
                return None
            try:
                row = db.execute("SELECT value FROM entries WHERE key = ?", (_id(key),)).fetchone()
            except sqlite3.Error as failure:
                raise self._failed("read", failure) from None
        return None if row is None else bytes(row[0])

    def put(self, key: bytes, value: bytes) -> None:
        """Keep ``value`` under ``key``: committed with the next :data:`BATCH` entries,
        or by :meth:`flush` (and :meth:`close`)."""
        with self._lock:
            self._pending[key] = value
            if len(self._pending) >= BATCH:
                self._commit()

    def flush(self) -> None:
        with self._lock:
            self._commit()

    def close(self) -> None:
        """Commit what is pending, drop entries older than :data:`MAX_AGE_DAYS` if this
        command wrote any, and close the database. Raises StateError when the last
        commit fails (the connection is closed all the same)."""
        with self._lock:
            if self._closed:
                return
            try:
                self._commit()
                if self._wrote and self._db is not None:
                    with self._db:
                        self._db.execute(
                            "DELETE FROM entries WHERE written < ?", (_today() - MAX_AGE_DAYS,)
                        )
            except sqlite3.Error as failure:
                raise self._failed("write", failure) from None
            finally:
                self._closed = True
                self._pending.clear()
                if self._db is not None:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.close()
                    self._db = None

    def __enter__(self) -> CacheDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _commit(self) -> None:
        """Commit the pending entries in one transaction (under the lock)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        db = self._open(create=True)
        assert db is not None
        today = _today()
        rows = [(_id(key), value, today) for key, value in batch.items()]
        try:
            with db:
                db.executemany(
                    "INSERT OR REPLACE INTO entries (key, value, written) VALUES (?, ?, ?)", rows
                )
        except sqlite3.Error as failure:
            raise self._failed("write", failure) from None
        self._wrote = True

    def _failed(self, doing: str, failure: sqlite3.Error) -> StateError:
        message = str(failure)
        if "disk is full" in message:
            message = "no space left on the device"
        return StateError(f"cannot {doing} {self._shown(self.name)}: {message}")

    # -- opening -------------------------------------------------------------------------
    def _open(self, *, create: bool) -> sqlite3.Connection | None:
        """The connection (under the lock); None when the database does not exist and
        ``create`` is false."""
        if self._db is not None:
            return self._db
        if self._closed:
            raise StateError(f"{self._shown(self.name)} is closed")
        folder = self._folder(create=create)
        if folder is None:
            return None
        try:
            identity = self._checked_files(folder, create=create)
        finally:
            os.close(folder)
        if identity is None:
            return None
        path = self.root / self.name
        try:
            db = sqlite3.connect(
                path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as failure:
            raise self._failed("open", failure) from None
        try:
            opened = os.stat(path, follow_symlinks=False)
            if (opened.st_dev, opened.st_ino) != identity:  # replaced meanwhile
                raise StateError(f"{self._shown(self.name)} changed while it was opened")
            db.execute("PRAGMA journal_mode=WAL")  # readers and a writer at once
            db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                db.execute(statement)
            empty = db.execute("SELECT NOT EXISTS (SELECT 1 FROM entries)").fetchone()[0]
            db.isolation_level = "DEFERRED"  # `with db:` commits a batch as one transaction
        except (sqlite3.Error, OSError, StateError) as failure:
            db.close()
            if isinstance(failure, StateError):
                raise
            if isinstance(failure, OSError):
                raise StateError(f"cannot open {self._shown(self.name)}: {why(failure)}") from None
            raise self._failed("open", failure) from None
        self._db = db
        self._nothing_kept = self._nothing_kept or bool(empty)
        return db

    def _folder(self, *, create: bool) -> int | None:
        """The folder's descriptor, opened level by level from the project and checked;
        None when it does not exist and ``create`` is false."""
        parent: int | None = os.open(self.project, _FOLDER)
        try:
            for depth, part in enumerate(self._parts):
                shown = Path(*self._parts[: depth + 1]).as_posix()
                assert parent is not None
                child = _open_folder(parent, part, shown, create=create)
                os.close(parent)
                parent = child
                if parent is None:
                    return None
        except BaseException:
            if parent is not None:
                os.close(parent)
            raise
        return parent

    def _checked_files(self, folder: int, *, create: bool) -> tuple[int, int] | None:
        """Check the database and the files beside it (regular files of the user, not
        links); create the database 0600 if ``create``. Its (device, inode), or None
        when it does not exist and ``create`` is false."""
        for suffix in SIDE_FILES:
            _checked_file(folder, self.name + suffix, self._shown(self.name + suffix))
        shown = self._shown(self.name)
        info = _checked_file(folder, self.name, shown)
        if info is None:
            if not create:
                return None
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                os.close(os.open(self.name, flags, 0o600, dir_fd=folder))
            except FileExistsError:
                pass  # made by another process meanwhile: checked below like any file
            except OSError as failure:
                raise StateError(f"cannot create {shown}: {why(failure)}") from None
            info = _checked_file(folder, self.name, shown)
            assert info is not None
        return info.st_dev, info.st_ino


def _checked_file(folder: int, name: str, shown: str) -> os.stat_result | None:
    """``name`` of ``folder``: None when absent; refused when a link, not a regular file
    or another user's; made 0600 when it is open to others."""
    try:
        info = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as failure:
        raise StateError(f"cannot read {shown}: {why(failure)}") from None
    if stat.S_ISLNK(info.st_mode):
        raise linked(shown)
    if not stat.S_ISREG(info.st_mode):
        raise StateError(f"{shown} is not a file")
    if info.st_uid != os.getuid():
        raise foreign(shown)
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            os.chmod(name, 0o600, dir_fd=folder, follow_symlinks=False)
        except NotImplementedError:  # no lchmod here: it is not a link (checked above)
            os.chmod(name, 0o600, dir_fd=folder)
        except OSError as failure:
            raise StateError(f"cannot make {shown} private: {why(failure)}") from None
    return info


def _open_folder(parent: int, name: str, shown: str, *, create: bool) -> int | None:
    try:
        fd = os.open(name, _FOLDER, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            return None
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
        except FileExistsError:
            pass  # made by another process meanwhile: checked below like any folder
        except OSError as failure:
            raise StateError(f"cannot create {shown}: {why(failure)}") from None
        return _open_folder(parent, name, shown, create=False)
    except OSError as failure:
        raise _refused(name, parent, shown, failure) from None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid():
            raise foreign(shown)
        if stat.S_IMODE(info.st_mode) & 0o077:  # an earlier version or umask 000 left it open
            os.fchmod(fd, 0o700)
    except OSError as failure:
        os.close(fd)
        raise StateError(f"cannot make {shown} private: {why(failure)}") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refused(name: str, dir_fd: int, shown: str, failure: OSError) -> StateError:
    """Why the folder ``name`` of ``dir_fd`` could not be opened: a link, not a folder,
    or what the system said."""
    try:
        info: os.stat_result | None = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        info = None
    if info is not None and stat.S_ISLNK(info.st_mode):
        return linked(shown)
    if info is not None and not stat.S_ISDIR(info.st_mode):
        return StateError(f"{shown} is not a folder")
    return StateError(f"cannot read {shown}: {why(failure)}")
