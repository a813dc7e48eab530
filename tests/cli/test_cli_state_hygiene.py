"""Local state that can neither lie nor crash (issue 22, item 5).

A full disk anywhere is one line and an exit code, never a traceback, and nothing is
destroyed; the cache is an optimisation (unwritable, full or planted means a warning
and the command goes on without it); state folders are 0700 and files 0600 whatever
the umask. Through the CLI against the local HealthImaging; what the service holds is
read with a bare boto3 client.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import FAST_WRITES, NM, manifest_repository, run, write_nm_patient_fix
from conftest import NM_STUDY, metadata

from reconciler.emulator.seed import SEED_DATASTORE_ID
from reconciler.state import dumps

CT = "b537144549630a4b5c6386f265599afc"


@pytest.fixture
def project(tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    return manifest_repository(
        tmp_path, local, monkeypatch, settings=FAST_WRITES + "lockTimeoutSeconds: 20\n"
    )


def _path_of(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """``full_disk(fragment)``: from now on, writing to any file whose path holds
    ``fragment`` fails as a full disk does (ENOSPC), in write and in fsync."""
    fragments: list[str] = []
    real_write, real_fsync = os.write, os.fsync

    def full(fd: int) -> bool:
        where = _path_of(fd)
        return any(fragment in where for fragment in fragments)

    def write(fd: int, data: Any) -> int:
        if full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    def fsync(fd: int) -> None:
        if full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)
    yield fragments.append


def primaries(client: Any) -> list[str]:
    found = client.search_image_sets(
        datastoreId=SEED_DATASTORE_ID,
        searchCriteria={
            "filters": [{"values": [{"DICOMStudyInstanceUID": NM_STUDY}], "operator": "EQUAL"}]
        },
    )
    return [s["imageSetId"] for s in found["imageSetsMetadataSummaries"]]


def test_a_full_disk_for_undo_values_during_a_replace_destroys_nothing(
    project: Path, client: Any, full_disk: Callable[[str], None]
) -> None:
    for path in (project / "manifests").glob("*"):
        path.unlink()
    write_nm_patient_fix(project)
    before = metadata(client, SEED_DATASTORE_ID, NM)
    full_disk("/undo/")
    applied = run("apply", "--replace-primary", "--auto-approve")
    assert applied.exit_code == 3, applied.output
    assert "Traceback" not in applied.output
    assert "no space left on the device" in applied.output
    # The old primary stands, unchanged; the copy was rolled back: one image set.
    assert primaries(client) == [NM]
    assert metadata(client, SEED_DATASTORE_ID, NM) == before


def test_a_full_disk_for_the_journal_stops_cleanly(
    project: Path, client: Any, full_disk: Callable[[str], None]
) -> None:
    full_disk("/runs/")
    applied = run("apply", "--auto-approve")
    assert applied.exit_code == 1, applied.output
    assert "Traceback" not in applied.output
    assert "cannot start the run's journal" in applied.output
    assert "no space left on the device" in applied.output
    # Nothing was sent before its intent was on disk.
    assert client.get_image_set(datastoreId=SEED_DATASTORE_ID, imageSetId=CT)["versionId"] == "1"


def test_an_unreadable_cache_is_a_warning_and_the_command_goes_on(project: Path) -> None:
    """A damaged database (a full one is the same warning: tests/state/test_state_cachedb.py)
    is said once, left as it is, and the command does its work without it."""
    cache = project / ".reconciler" / "cache"
    cache.mkdir(parents=True, mode=0o700)
    (cache / "projections.db").write_bytes(b"damaged" * 1000)
    planned = run("plan")
    assert planned.exit_code == 0, planned.output
    assert "the projection cache cannot be used" in planned.stderr
    assert planned.stderr.count("projection cache") == 1  # said once
    drifted = run("drift")
    assert drifted.exit_code == 2 and "Traceback" not in drifted.output
    assert (cache / "projections.db").read_bytes() == b"damaged" * 1000


def test_a_file_where_the_cache_folder_should_be_is_a_warning(project: Path) -> None:
    (project / ".reconciler").mkdir(mode=0o700, exist_ok=True)
    (project / ".reconciler" / "cache").write_text("a file where a folder should be")
    planned = run("plan")
    assert planned.exit_code == 0, planned.output
    assert "projection cache cannot be used" in planned.stderr


def test_a_projection_planted_by_another_user_is_never_used(project: Path, client: Any) -> None:
    """Another local user plants a cache claiming the drifted image set is in sync (its
    entry's key correct, even): the database is not the user's own, so it is not read."""
    assert run("apply", "--auto-approve").exit_code == 0
    assert run("drift").exit_code == 0  # the cache now holds every managed projection
    client.update_image_set_metadata(
        datastoreId=SEED_DATASTORE_ID,
        imageSetId=CT,
        latestVersionId=client.get_image_set(datastoreId=SEED_DATASTORE_ID, imageSetId=CT)[
            "versionId"
        ],
        updateImageSetMetadataUpdates={"revertToVersionId": "1"},
    )
    drifted = run("drift")
    assert drifted.exit_code == 2 and CT in drifted.stdout
    # Plant: the new (drifted) version's entry made to hold the old, in-sync projection,
    # under its own key, in a database owned by another user.
    database = project / ".reconciler" / "cache" / "projections.db"
    connection = sqlite3.connect(database)
    with connection:
        entries = {
            json.loads(value)["key"]: (key, json.loads(value))
            for key, value in connection.execute("SELECT key, value FROM entries")
        }
        mine = sorted(
            (k for k in entries if f"/{CT}/" in k), key=lambda k: int(k.rsplit("/", 1)[1])
        )
        old_key, new_key = mine[-2], mine[-1]
        forged = dumps({**entries[old_key][1], "key": new_key})
        connection.execute(
            "UPDATE entries SET value = ? WHERE key = ?", (forged, entries[new_key][0])
        )
    connection.close()
    for path in database.parent.iterdir():
        os.chown(path, 65534, 65534)  # nobody's
    again = run("drift")
    assert again.exit_code == 2, again.output
    assert CT in again.stdout
    assert "projections.db belongs to another user" in again.stderr


def test_state_folders_are_private_whatever_the_umask(project: Path) -> None:
    old = os.umask(0o000)
    try:
        assert run("apply", "--auto-approve").exit_code == 0
        assert run("drift").exit_code == 0
    finally:
        os.umask(old)
    root = project / ".reconciler"
    for path in [root, *root.rglob("*")]:
        if path.name.startswith("local-healthimaging") or path.name.startswith("ahi"):
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
