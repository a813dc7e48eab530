"""Whole objects, their tags and the conditional writes, the same on both backends."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from state_backends import backend as backend  # the fixtures
from state_backends import kind as kind
from state_backends import opener as opener

from reconciler.state import Backend, Conflict
from reconciler.state.local import LocalBackend
from tests.state_support import Opener


def test_an_object_reads_back_whole_with_a_tag_that_follows_its_content(
    backend: Backend,
) -> None:
    assert backend.get("scope/rates.json") is None
    first = backend.put("scope/rates.json", b'{"a":1}')
    blob = backend.get("scope/rates.json")
    assert blob is not None and (blob.data, blob.tag) == (b'{"a":1}', first)
    second = backend.put("scope/rates.json", b'{"a":2}')
    assert second != first
    again = backend.get("scope/rates.json")
    assert again is not None and (again.data, again.tag) == (b'{"a":2}', second)


def test_every_byte_survives(backend: Backend) -> None:
    data = bytes(range(256)) * 300 + "PatientName Ünïcode ✓\n".encode()
    backend.put("scope/undo/r.json", data, secret=True)
    blob = backend.get("scope/undo/r.json")
    assert blob is not None and blob.data == data
    backend.put("scope/empty", b"")
    empty = backend.get("scope/empty")
    assert empty is not None and empty.data == b""


def test_if_absent_creates_once(backend: Backend, opener: Opener) -> None:
    tag = backend.put("scope/locks/all.json", b"mine", if_absent=True)
    with pytest.raises(Conflict):
        opener().put("scope/locks/all.json", b"theirs", if_absent=True)
    blob = backend.get("scope/locks/all.json")
    assert blob is not None and (blob.data, blob.tag) == (b"mine", tag)


def test_if_tag_replaces_only_what_was_read(backend: Backend, opener: Opener) -> None:
    tag = backend.put("scope/runs/index.json", b"v1")
    other = opener()
    newer = other.put("scope/runs/index.json", b"v2", if_tag=tag)
    with pytest.raises(Conflict):  # read v1, but v2 is there now
        backend.put("scope/runs/index.json", b"v3", if_tag=tag)
    with pytest.raises(Conflict):  # never there
        backend.put("scope/runs/other.json", b"v1", if_tag=tag)
    assert backend.get("scope/runs/other.json") is None
    blob = backend.get("scope/runs/index.json")
    assert blob is not None and (blob.data, blob.tag) == (b"v2", newer)
    backend.put("scope/runs/index.json", b"v3", if_tag=newer)
    final = backend.get("scope/runs/index.json")
    assert final is not None and final.data == b"v3"


def test_conditional_writers_at_once_lose_nothing(backend: Backend, opener: Opener) -> None:
    """Eight writers add themselves to one object by read, change, write-if-unchanged:
    every one of them is in it at the end."""
    key = "scope/runs/index.json"
    backend.put(key, b"", if_absent=True)
    barrier = threading.Barrier(8)

    def writer(name: str) -> None:
        mine = opener()
        barrier.wait()
        while True:
            blob = mine.get(key)
            assert blob is not None
            try:
                mine.put(key, blob.data + name.encode() + b"\n", if_tag=blob.tag)
                return
            except Conflict:
                continue

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    blob = backend.get(key)
    assert blob is not None
    assert sorted(blob.data.decode().split()) == [f"w{n}" for n in range(8)]


def test_delete_removes_and_forgets(backend: Backend) -> None:
    backend.put("scope/drift/state.json", b"x")
    backend.delete("scope/drift/state.json")
    assert backend.get("scope/drift/state.json") is None
    backend.delete("scope/drift/state.json")  # not there: nothing to do
    backend.delete("scope/nowhere/at/all.json")


def test_delete_with_a_tag_removes_only_what_was_read(backend: Backend, opener: Opener) -> None:
    tag = backend.put("scope/locks/all.json", b"a")
    newer = opener().put("scope/locks/all.json", b"b")
    with pytest.raises(Conflict):
        backend.delete("scope/locks/all.json", if_tag=tag)
    blob = backend.get("scope/locks/all.json")
    assert blob is not None and blob.data == b"b"
    backend.delete("scope/locks/all.json", if_tag=newer)
    assert backend.get("scope/locks/all.json") is None
    with pytest.raises(Conflict):  # gone already: not what was read either
        backend.delete("scope/locks/all.json", if_tag=newer)
    with pytest.raises(Conflict):
        backend.delete("scope/never/was.json", if_tag=newer)


def test_list_by_prefix(backend: Backend) -> None:
    keys = ["a/runs/2.jsonl", "a/runs/1.jsonl", "a/runs/index.json", "a/undo/1.json"]
    keys += ["a/rates.json", "ab/runs/1.jsonl", "b/runs/1.jsonl"]
    for key in keys:
        backend.put(key, b"x")
    under_a = sorted(k for k in keys if k.startswith("a/"))
    assert backend.list("a/runs/") == ["a/runs/1.jsonl", "a/runs/2.jsonl", "a/runs/index.json"]
    assert backend.list("a/") == under_a
    assert backend.list("a/runs/1") == ["a/runs/1.jsonl"]  # a prefix, not only a folder
    assert backend.list("a") == [*under_a, "ab/runs/1.jsonl"]
    assert backend.list("c/") == []
    assert backend.list("a/nothing/") == []
    backend.delete("a/runs/2.jsonl")
    assert backend.list("a/runs/") == ["a/runs/1.jsonl", "a/runs/index.json"]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a/."])
def test_a_key_that_is_not_a_relative_name_is_refused(backend: Backend, key: str) -> None:
    with pytest.raises(ValueError, match="not a state key"):
        backend.put(key, b"x")
    with pytest.raises(ValueError, match="not a state key"):
        backend.get(key)


def test_the_local_backend_fsyncs_every_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """State is fsynced (the object and its folder); the projection cache, a SQLite
    database, syncs only at its checkpoints (tests/state/test_state_cachedb.py)."""
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    backend = LocalBackend(tmp_path / "state", tmp_path)
    backend.put("a/b.json", b"{}")
    blob = backend.get("a/b.json")
    assert blob is not None and blob.data == b"{}"
    assert len(synced) == 2
    assert [p.name for p in (tmp_path / "state" / "a").iterdir()] == ["b.json"]
