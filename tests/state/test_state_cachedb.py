"""The projection cache's database (reconciler.state.cachedb): the local state's
discipline (private, no links, no other user's files) for one SQLite file, written a
batch at a time; and the projection cache on it (reconciler.engine.projection)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.engine.projection import ProjectionCache
from reconciler.state import StateError, cachedb
from reconciler.state.cachedb import BATCH, CacheDB

CACHE = Path(".reconciler") / "cache"


def key(n: int) -> bytes:
    return hashlib.sha256(str(n).encode()).digest()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[CacheDB]:
    with CacheDB(tmp_path / CACHE, tmp_path) as opened:
        yield opened


def test_entries_read_back_in_this_command_and_the_next(tmp_path: Path, db: CacheDB) -> None:
    assert db.get(key(0)) is None
    assert not (tmp_path / ".reconciler").exists()  # a read creates nothing
    for n in range(BATCH + 10):  # one batch committed, ten pending
        db.put(key(n), b"value %d" % n)
    assert all(db.get(key(n)) == b"value %d" % n for n in range(BATCH, BATCH + 10))
    # The database held nothing when this command opened it: it is not asked (a read
    # of what was committed since is a miss, which costs a read and nothing else).
    assert db.get(key(0)) is None
    db.put(key(0), b"replaced")
    db.close()
    with CacheDB(tmp_path / CACHE, tmp_path) as again:
        assert again.get(key(0)) == b"replaced"
        assert all(again.get(key(n)) == b"value %d" % n for n in range(1, BATCH + 10))
        assert again.get(key(BATCH + 10)) is None
    assert sorted(p.name for p in (tmp_path / CACHE).iterdir()) == ["projections.db"]


def test_the_folder_is_0700_and_the_files_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        (tmp_path / ".reconciler").mkdir(mode=0o777)
        os.chmod(tmp_path / ".reconciler", 0o777)  # left open by an earlier version
        db = CacheDB(tmp_path / CACHE, tmp_path)
        db.put(key(1), b"x")
        db.flush()
        files = list((tmp_path / CACHE).iterdir())
        assert {p.name for p in files} >= {"projections.db", "projections.db-wal"}
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}  # while open
        db.close()
    finally:
        os.umask(old)
    assert set(modes.values()) == {0o600}, modes
    for path in [tmp_path / ".reconciler", tmp_path / CACHE]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700


@pytest.mark.parametrize("where", [".reconciler", ".reconciler/cache"])
def test_a_linked_folder_is_refused_and_not_followed(tmp_path: Path, where: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    link = tmp_path / where
    link.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    link.symlink_to(outside)
    db = CacheDB(tmp_path / CACHE, tmp_path)
    with pytest.raises(StateError, match=f"^{where} is a symbolic link"):
        db.get(key(1))
    db.put(key(1), b"x")
    with pytest.raises(StateError, match=f"^{where} is a symbolic link"):
        db.flush()
    assert list(outside.rglob("*")) == []


@pytest.mark.parametrize("name", ["projections.db", "projections.db-wal", "projections.db-shm"])
def test_a_linked_database_or_side_file_is_refused_and_not_written_through(
    tmp_path: Path, name: str
) -> None:
    """A link a pull request commits (``projections.db-wal -> ~/.bashrc``) would have
    SQLite write through it: refused before SQLite opens anything."""
    (tmp_path / CACHE).mkdir(parents=True, mode=0o700)
    secret = tmp_path / "secret"
    secret.write_text("not the cache's")
    (tmp_path / CACHE / name).symlink_to(secret)
    with CacheDB(tmp_path / CACHE, tmp_path) as db:
        db.put(key(1), b"x")
        with pytest.raises(StateError, match=f"^.reconciler/cache/{name} is a symbolic link"):
            db.flush()
    assert secret.read_text() == "not the cache's"


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_database_or_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    with CacheDB(tmp_path / CACHE, tmp_path) as db:
        db.put(key(1), b"x")
    os.chown(tmp_path / CACHE / "projections.db", 65534, 65534)
    with (
        CacheDB(tmp_path / CACHE, tmp_path) as db,
        pytest.raises(StateError, match=r"projections\.db belongs to another user"),
    ):
        db.get(key(1))
    os.chown(tmp_path / CACHE / "projections.db", 0, 0)
    os.chown(tmp_path / CACHE, 65534, 65534)
    with (
        CacheDB(tmp_path / CACHE, tmp_path) as db,
        pytest.raises(StateError, match=r"^\.reconciler/cache belongs to another user"),
    ):
        db.get(key(1))


def test_a_file_where_the_folder_should_be_or_a_folder_where_the_database_should_be(
    tmp_path: Path,
) -> None:
    (tmp_path / ".reconciler").mkdir(mode=0o700)
    (tmp_path / CACHE).write_text("a file")
    with pytest.raises(StateError, match=r"^\.reconciler/cache is not a folder"):
        CacheDB(tmp_path / CACHE, tmp_path).get(key(1))
    (tmp_path / CACHE).unlink()
    (tmp_path / CACHE / "projections.db").mkdir(parents=True)
    with pytest.raises(StateError, match=r"projections\.db is not a file"):
        CacheDB(tmp_path / CACHE, tmp_path).get(key(1))


def test_a_damaged_database_is_an_error_and_is_left_as_it_is(tmp_path: Path) -> None:
    (tmp_path / CACHE).mkdir(parents=True, mode=0o700)
    damaged = b"not a database, and not ours to delete" * 100
    (tmp_path / CACHE / "projections.db").write_bytes(damaged)
    with pytest.raises(StateError, match=r"^cannot open \.reconciler/cache/projections\.db: "):
        CacheDB(tmp_path / CACHE, tmp_path).get(key(1))
    assert (tmp_path / CACHE / "projections.db").read_bytes() == damaged


def test_a_full_database_is_an_error_and_loses_only_the_batch(tmp_path: Path) -> None:
    """SQLite's own answer to a full disk (SQLITE_FULL), made by capping its pages."""
    db = CacheDB(tmp_path / CACHE, tmp_path)
    db.put(key(0), b"kept")
    db.flush()
    assert db._db is not None
    pages = db._db.execute("PRAGMA page_count").fetchone()[0]
    db._db.execute(f"PRAGMA max_page_count = {pages}")
    for n in range(1, 50):
        db.put(key(n), os.urandom(4000))
    with pytest.raises(StateError, match=r"projections\.db: no space left on the device"):
        db.flush()
    db.close()
    with CacheDB(tmp_path / CACHE, tmp_path) as again:
        assert again.get(key(0)) == b"kept"
        assert again.get(key(1)) is None


def test_entries_not_written_for_a_month_are_dropped_when_a_command_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = cachedb._today()
    monkeypatch.setattr(cachedb, "_today", lambda: today - cachedb.MAX_AGE_DAYS - 1)
    with CacheDB(tmp_path / CACHE, tmp_path) as db:
        db.put(key(1), b"old")
    monkeypatch.setattr(cachedb, "_today", lambda: today)
    with CacheDB(tmp_path / CACHE, tmp_path) as db:
        assert db.get(key(1)) == b"old"  # reading drops nothing
    with CacheDB(tmp_path / CACHE, tmp_path) as db:
        db.put(key(2), b"new")
    with CacheDB(tmp_path / CACHE, tmp_path) as db:
        assert db.get(key(1)) is None
        assert db.get(key(2)) == b"new"


def test_threads_share_one_instance(db: CacheDB) -> None:
    db.put(key(-1), b"kept")
    db.close()
    db = CacheDB(db.root, db.project)  # one that holds something: reads are asked

    def work(start: int) -> None:
        for n in range(start, start + 3 * BATCH, 7):
            db.put(key(n), b"%d" % n)
            assert db.get(key(n)) == b"%d" % n  # pending, or committed and asked
            assert db.get(key(-1)) == b"kept"

    threads = [threading.Thread(target=work, args=(i * 10_000,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    db.flush()
    assert db.get(key(50_000 + 7)) == b"%d" % (50_000 + 7)
    db.close()


def test_two_commands_may_write_the_database_at_once(tmp_path: Path) -> None:
    """Shards on one machine: each waits for the other's commit, neither fails; the
    next command reads what both wrote."""
    first = CacheDB(tmp_path / CACHE, tmp_path)
    second = CacheDB(tmp_path / CACHE, tmp_path)
    first.put(key(1), b"one")
    second.put(key(2), b"two")
    first.flush()
    second.flush()
    first.close()
    second.close()
    with CacheDB(tmp_path / CACHE, tmp_path) as later:
        assert later.get(key(1)) == b"one" and later.get(key(2)) == b"two"


def test_a_projection_under_another_key_sharing_its_first_bytes_is_a_miss(
    tmp_path: Path,
) -> None:
    """The database keeps 8 bytes of each key: the entry names its whole key."""
    cache = ProjectionCache(CacheDB(tmp_path / CACHE, tmp_path), scope="s")
    cache.put("d", "i", "1", frozenset({"/Study/DICOM/X"}), {"ImageSetID": "i"})
    cache.close()
    connection = sqlite3.connect(tmp_path / CACHE / "projections.db")
    with connection:
        value = connection.execute("SELECT value FROM entries").fetchone()[0]
        collided = cachedb._id(hashlib.sha256(b"s\0d/i/2").digest())
        connection.execute("UPDATE entries SET key = ?", (collided,))
    connection.close()
    assert b'"key":"s\\u0000d/i/1"' in value or b"d/i/1" in value
    again = ProjectionCache(CacheDB(tmp_path / CACHE, tmp_path), scope="s")
    assert again.get("d", "i", "2", frozenset()) is None
    assert again.get("d", "i", "1", frozenset()) is None  # moved: not found where it was
    again.close()
