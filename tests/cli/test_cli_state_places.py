"""Where a project keeps what it persists beside the journal, for a top-level
``journalDir``: undo values in ``.reconciler/undo/``, the journal's index in
``cacheDir`` — never a folder derived from the journal folder's (``./undo/`` and
``./cache/`` at the repository's top, out of ``reconciler init``'s ``.gitignore``).

End to end through the CLI against the local HealthImaging; the service's state is
read with a bare boto3 client.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from cli_support import FAST_WRITES, manifest_repository, run, write_nm_patient_fix
from conftest import NM_STUDY, metadata

from reconciler.emulator.seed import SEED_DATASTORE_ID

TOP_LEVEL = [".git", ".reconciler", "journal", "manifests", "reconciler.yaml"]


def top_level(project: Path) -> list[str]:
    """What the repository's top holds, but the test service's database (a fixture's)."""
    return sorted(name for name in os.listdir(project) if not name.startswith("ahi.sqlite"))


@pytest.fixture
def project(tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A manifest repository with ``journalDir: journal`` and a fix that only
    ``--replace-primary`` applies."""
    root = manifest_repository(tmp_path, local, monkeypatch, manifests=False,
                               settings=FAST_WRITES + "lockTimeoutSeconds: 20\n")  # fmt: skip
    settings = root / "reconciler.yaml"
    settings.write_text(settings.read_text().replace("journalDir: runs", "journalDir: journal"))
    write_nm_patient_fix(root)
    return root


def patient_id(client: Any) -> str:
    """The PatientID of the NM study's one primary image set, as the service has it."""
    found = client.search_image_sets(datastoreId=SEED_DATASTORE_ID, searchCriteria={"filters": [
        {"values": [{"DICOMStudyInstanceUID": NM_STUDY}], "operator": "EQUAL"}]})  # fmt: skip
    (summary,) = found["imageSetsMetadataSummaries"]
    assert summary["isPrimary"]
    doc = metadata(client, SEED_DATASTORE_ID, summary["imageSetId"])
    return str(doc["Patient"]["DICOM"]["PatientID"])


def replace_primary(project: Path) -> str:
    """``apply --replace-primary``; the run's ID."""
    applied = run("apply", "--replace-primary", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    (journal,) = (project / "journal").glob("*.jsonl")
    return journal.stem


def test_a_top_level_journal_dir_keeps_undo_values_and_index_in_the_project_state(
    project: Path, client: Any
) -> None:
    run_id = replace_primary(project)
    assert patient_id(client) == "MRN00008"
    state = project / ".reconciler"
    undo = state / "undo" / f"{run_id}.undo.json"
    assert "8NM1" in undo.read_text()  # the old PatientID (PHI): private
    assert undo.stat().st_mode & 0o777 == 0o600
    assert undo.parent.stat().st_mode & 0o777 == 0o700
    hour_ago = time.time_ns() - 3600 * 10**9  # journals younger than 2 s are not indexed
    os.utime(project / "journal" / f"{run_id}.jsonl", ns=(hour_ago, hour_ago))
    assert run("runs").exit_code == 0
    (index,) = (state / "cache" / "journal-index").iterdir()
    assert json.loads(index.read_text())["folder"] == str((project / "journal").resolve())
    assert top_level(project) == TOP_LEVEL  # no ./undo, no ./cache
    assert os.listdir(project / "journal") == [f"{run_id}.jsonl"]

    reverted = run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    assert patient_id(client) == "8NM1"
    assert top_level(project) == TOP_LEVEL

    # Another journal folder of the same name has an index file of its own.
    shutil.copytree(project / "journal", project / "audit" / "journal")
    listed = run("runs", "--dir", "audit/journal", "-o", "json")
    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.output)["runs"]) == 2
    folders = [json.loads(p.read_text())["folder"] for p in
               (state / "cache" / "journal-index").iterdir()]  # fmt: skip
    assert sorted(folders) == sorted(str((project / f).resolve()) for f in
                                     ("journal", "audit/journal"))  # fmt: skip


def test_undo_values_an_earlier_version_kept_beside_the_journal_folder_are_found(
    project: Path, client: Any
) -> None:
    """Earlier versions kept undo values in ``undo/`` beside the journal folder (here
    ``./undo/``): a run recorded so is still revertible."""
    run_id = replace_primary(project)
    name = f"{run_id}.undo.json"
    (project / "undo").mkdir(mode=0o700)
    (project / ".reconciler" / "undo" / name).rename(project / "undo" / name)
    assert patient_id(client) == "MRN00008"
    reverted = run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    assert patient_id(client) == "8NM1"
    assert os.listdir(project / "undo") == [name]  # read there, never written there
