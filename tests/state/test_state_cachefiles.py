"""The projection cache's files (reconciler.state.cachefiles): the local state's
discipline (private, no links, no other user's files, written whole) at a few system
calls a file, with each folder checked once and held open."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.state import StateError
from reconciler.state.cachefiles import CacheFiles


@pytest.fixture
def files(tmp_path: Path) -> Iterator[CacheFiles]:
    with CacheFiles(tmp_path / ".reconciler" / "cache", tmp_path) as opened:
        yield opened


def test_a_file_reads_back_whole_and_a_missing_one_is_none(
    tmp_path: Path, files: CacheFiles
) -> None:
    assert files.get("ab/abcd.json") is None
    assert not (tmp_path / ".reconciler").exists()  # a read creates nothing
    files.put("ab/abcd.json", b"one")
    files.put("ab/abcd.json", b"two, longer")
    assert files.get("ab/abcd.json") == b"two, longer"
    assert files.get("ab/other.json") is None
    assert files.get("cd/abcd.json") is None
    assert sorted(p.name for p in (tmp_path / ".reconciler" / "cache" / "ab").iterdir()) == [
        "abcd.json"
    ]  # no temporary file left


def test_folders_are_0700_and_files_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        (tmp_path / ".reconciler").mkdir(mode=0o777)
        os.chmod(tmp_path / ".reconciler", 0o777)  # left open by an earlier version
        with CacheFiles(tmp_path / ".reconciler" / "cache", tmp_path) as files:
            files.put("ab/abcd.json", b"x")
    finally:
        os.umask(old)
    root = tmp_path / ".reconciler"
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_no_file_is_written_to_fsync(
    tmp_path: Path, files: CacheFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    files.put("ab/abcd.json", b"x")
    assert synced == []


@pytest.mark.parametrize("where", [".reconciler", ".reconciler/cache", ".reconciler/cache/ab"])
def test_a_linked_folder_is_refused_and_not_followed(tmp_path: Path, where: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    link = tmp_path / where
    link.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    link.symlink_to(outside)
    with CacheFiles(tmp_path / ".reconciler" / "cache", tmp_path) as files:
        for call in (lambda: files.put("ab/abcd.json", b"x"), lambda: files.get("ab/abcd.json")):
            with pytest.raises(StateError, match=f"^{where} is a symbolic link"):
                call()
    assert list(outside.iterdir()) == []


def test_a_linked_file_is_refused(tmp_path: Path, files: CacheFiles) -> None:
    files.put("ab/abcd.json", b"x")
    secret = tmp_path / "secret"
    secret.write_text("not the cache's")
    entry = tmp_path / ".reconciler" / "cache" / "ab" / "abcd.json"
    entry.unlink()
    entry.symlink_to(secret)
    with pytest.raises(StateError, match=r"abcd\.json is a symbolic link"):
        files.get("ab/abcd.json")
    files.put("ab/abcd.json", b"y")  # the link itself is replaced, never written through
    assert secret.read_text() == "not the cache's"
    assert files.get("ab/abcd.json") == b"y"


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_file_or_folder_of_another_user_is_refused(tmp_path: Path, files: CacheFiles) -> None:
    files.put("ab/abcd.json", b"x")
    os.chown(tmp_path / ".reconciler" / "cache" / "ab" / "abcd.json", 65534, 65534)
    with pytest.raises(StateError, match=r"abcd\.json belongs to another user"):
        files.get("ab/abcd.json")
    planted = tmp_path / ".reconciler" / "cache" / "cd"
    planted.mkdir(mode=0o700)
    os.chown(planted, 65534, 65534)
    with pytest.raises(StateError, match=r"^\.reconciler/cache/cd belongs to another user"):
        files.put("cd/abcd.json", b"x")


def test_a_folder_swapped_for_a_link_after_it_was_checked_is_not_followed(
    tmp_path: Path, files: CacheFiles
) -> None:
    """Names are resolved from the folder's descriptor, checked when it was opened."""
    files.put("ab/one.json", b"1")
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / ".reconciler" / "cache" / "ab"
    folder.rename(tmp_path / ".reconciler" / "cache" / "moved")
    folder.symlink_to(outside)
    files.put("ab/two.json", b"2")
    assert list(outside.iterdir()) == []
    assert (tmp_path / ".reconciler" / "cache" / "moved" / "two.json").read_bytes() == b"2"


def test_a_file_where_a_folder_should_be_is_an_error(tmp_path: Path, files: CacheFiles) -> None:
    (tmp_path / ".reconciler").mkdir(mode=0o700)
    (tmp_path / ".reconciler" / "cache").write_text("a file")
    with pytest.raises(StateError, match=r"^\.reconciler/cache is not a folder"):
        files.put("ab/abcd.json", b"x")


def test_threads_share_one_instance(files: CacheFiles) -> None:
    names = [f"{n % 16:02x}/{n}.json" for n in range(400)]

    def write(part: list[str]) -> None:
        for name in part:
            files.put(name, name.encode())

    threads = [threading.Thread(target=write, args=(names[k::8],)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(files.get(name) == name.encode() for name in names)


def test_closed_files_release_their_folders(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    files = CacheFiles(tmp_path / ".reconciler" / "cache", tmp_path)
    for n in range(20):
        files.put(f"{n:02x}/x.json", b"x")
    assert len(os.listdir("/proc/self/fd")) >= before + 20
    files.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_cut_file_is_replaced_whole_by_the_next_write(tmp_path: Path, files: CacheFiles) -> None:
    """A crash while a new file is written leaves it cut; writing the name again
    replaces it (its reader, which checks a digest, saw a miss meanwhile)."""
    entry = tmp_path / ".reconciler" / "cache" / "ab" / "abcd.json"
    files.put("ab/other.json", b"x")
    entry.write_bytes(b"cut sho")
    files.put("ab/abcd.json", b"whole and longer")
    assert files.get("ab/abcd.json") == b"whole and longer"
    assert sorted(p.name for p in entry.parent.iterdir()) == ["abcd.json", "other.json"]
