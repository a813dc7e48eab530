"""The whole story through the CLI, against the local HealthImaging over HTTP.

plan → apply → plan shows no changes → someone else edits an image set → drift exits 2
→ apply fixes it → revert --run restores the exact earlier metadata — for Patient,
Study, Series, Instance and private-tag changes and removals (the shipped manifests).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_support import (
    FAST_WRITES,
    NM,
    edit_by_hand,
    manifest_repository,
    run,
    write_nm_patient_fix,
)
from click.testing import CliRunner
from conftest import NM_SERIES, NM_STUDY, blob, metadata, settle

from reconciler.cli import cli
from reconciler.emulator.seed import SEED_DATASTORE_ID

ROOT = Path(__file__).resolve().parents[2]
CT = "b537144549630a4b5c6386f265599afc"
MR = "bad85aed10043cb5842729f8fd06c578"
SEEDED_PHI = ("CompressedSamples^CT1", "CompressedSamples^MR1", "SAMPLE^CT ONE", "MRN00041", "4MR1")


@pytest.fixture
def project(tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A manifest repository: the shipped manifests, a reconciler.yaml, a seeded service."""
    return manifest_repository(
        tmp_path, local, monkeypatch, settings=FAST_WRITES + "lockTimeoutSeconds: 20\n"
    )


def documents(client: Any) -> dict[str, Any]:
    return {i: metadata(client, SEED_DATASTORE_ID, i) for i in (CT, MR, NM)}


def test_plan_apply_drift_revert(project: Path, client: Any) -> None:
    before = documents(client)

    planned = run("plan", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert "3 image sets to update" in planned.output
    assert not any(name in planned.output for name in SEEDED_PHI)  # not a TTY: masked

    applied = run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    after = documents(client)
    assert after[CT]["Patient"]["DICOM"]["PatientName"] == "SAMPLE^CT ONE"
    assert after[MR]["Patient"]["DICOM"]["PatientID"] == "MRN00041"
    assert after[NM]["Study"]["DICOM"]["StudyDescription"] == "NM BONE SCAN WHOLE BODY"
    ct_instance = next(
        iter(next(iter(after[CT]["Study"]["Series"].values()))["Instances"].values())
    )
    assert "00431027" not in ct_instance["DICOM"] and "ImageComments" not in ct_instance["DICOM"]

    again = run("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "No changes" in again.output

    # Someone else edits an owned attribute behind reconciler's back.
    version = client.get_image_set(datastoreId=SEED_DATASTORE_ID, imageSetId=NM)["versionId"]
    client.update_image_set_metadata(
        datastoreId=SEED_DATASTORE_ID, imageSetId=NM, latestVersionId=version,
        updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": blob(
            {"Study": {"DICOM": {"StudyDescription": "edited by hand"}}})}},
    )  # fmt: skip
    settle(client, SEED_DATASTORE_ID, NM)
    drifted = run("drift")
    assert drifted.exit_code == 2, drifted.output
    assert "nm-bone-scan-description" in drifted.output and "StudyDescription" in drifted.output

    fixed = run("apply", "--auto-approve")
    assert fixed.exit_code == 0, fixed.output
    assert run("drift").exit_code == 0

    runs = run("runs")
    assert runs.exit_code == 0 and len(runs.output.strip().splitlines()) >= 2

    # Revert the first apply: the image sets it changed come back exactly as they were.
    first_run = runs.output.strip().splitlines()[-1].split()[0]
    reverted = run("revert", "--run", first_run, "--auto-approve", "--force")
    assert reverted.exit_code == 0, reverted.output
    restored = documents(client)
    for image_set in (CT, MR):
        assert restored[image_set] == before[image_set]


def test_saved_plan_refuses_moved_image_sets_and_applies_the_rest(
    project: Path, client: Any
) -> None:
    saved = run("plan", "--out", "plan.json")
    assert saved.exit_code == 0, saved.output
    assert oct((project / "plan.json").stat().st_mode & 0o777) == "0o600"
    assert "reconciler apply plan.json --allow-force" in saved.output
    edit_by_hand(client, NM)
    refused = run("apply", "plan.json")  # its CT call is sent with force: say so again
    assert refused.exit_code == 1 and "--allow-force" in refused.output
    applied = run("apply", "plan.json", "--allow-force")
    assert applied.exit_code == 4, applied.output
    assert "STALE" in applied.output.upper()
    after = documents(client)
    assert after[MR]["Patient"]["DICOM"]["PatientID"] == "MRN00041"
    assert after[NM]["Study"]["DICOM"]["StudyDescription"] == "Whole Body Bone"


def test_update_failed_is_reported_with_the_service_message(project: Path, local: Any) -> None:
    local.configure(faults={"fail_updates": 1, "fail_message": "Update failed: injected"})
    applied = run("apply", "--auto-approve", "--parallelism", "1")
    assert applied.exit_code == 3, applied.output
    assert "Update failed: injected" in applied.output
    shown = run("runs", "show", "last", "--output", "json")
    assert "Update failed: injected" in shown.output


def test_locked_image_set_is_waited_for(project: Path, local: Any, client: Any) -> None:
    version = client.get_image_set(datastoreId=SEED_DATASTORE_ID, imageSetId=NM)["versionId"]
    local.configure(lock_hold_seconds=1.0)
    client.update_image_set_metadata(
        datastoreId=SEED_DATASTORE_ID, imageSetId=NM, latestVersionId=version,
        updateImageSetMetadataUpdates={"revertToVersionId": "1"},
    )  # fmt: skip
    local.configure(lock_hold_seconds=0.05)
    applied = run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output


def test_json_and_markdown_outputs(project: Path) -> None:
    as_json = run("plan", "-o", "json")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["format_version"] == 1 and data["summary"]["update_calls"] == 4
    as_markdown = run("plan", "-o", "markdown")
    assert "<details>" in as_markdown.output
    assert not any(name in as_markdown.output for name in SEEDED_PHI)


def test_history_lists_versions(project: Path) -> None:
    assert run("apply", "--auto-approve").exit_code == 0
    shown = run("history", CT)
    assert shown.exit_code == 0, shown.output
    # Force does not spread: the unforced changes (PatientName, StudyDescription,
    # ImageComments) made version 2 without force; the private-tag removal, version 3.
    rows = [line.split()[:4] for line in shown.output.splitlines()[1:3]]
    assert rows == [["3", "ACTIVE", "UPDATED", "yes"], ["2", "ACTIVE", "UPDATED", "no"]]


def test_apply_without_a_terminal_needs_auto_approve(project: Path) -> None:
    refused = CliRunner().invoke(cli, ["apply"])
    assert refused.exit_code != 0
    assert "--auto-approve" in refused.output


def test_revert_one_image_set_to_a_version(project: Path, client: Any) -> None:
    before = metadata(client, SEED_DATASTORE_ID, MR)
    assert run("apply", "--auto-approve").exit_code == 0
    reverted = run("revert", MR, "--to-version", "1", "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    assert metadata(client, SEED_DATASTORE_ID, MR) == before
    assert client.get_image_set(datastoreId=SEED_DATASTORE_ID, imageSetId=MR)["versionId"] == "3"
    refused = run("revert", MR, "--to-version", "9", "--auto-approve")
    assert refused.exit_code == 1 and "earlier version" in refused.output


def test_revert_refuses_image_sets_changed_since_the_run(project: Path, client: Any) -> None:
    assert run("apply", "--auto-approve").exit_code == 0
    edit_by_hand(client, NM)
    reverted = run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == 4, reverted.output
    assert "changed since the run" in reverted.output


def test_incremental_drift_and_shards(project: Path, client: Any) -> None:
    assert run("apply", "--auto-approve").exit_code == 0
    assert run("drift").exit_code == 0  # records the state drift --since-last-run starts from
    assert len(list((project / ".reconciler" / "state").rglob("drift/state.json"))) == 1
    quiet = run("drift", "--since-last-run")
    assert quiet.exit_code == 0, quiet.output
    assert "No drift" in quiet.output
    edit_by_hand(client, NM)
    found = run("drift", "--since-last-run")
    assert found.exit_code == 2, found.output
    assert NM in found.output and CT not in found.output
    shards = [run("plan", "--shard", f"{k}/2", "-o", "json") for k in (1, 2)]
    ids = [{s["image_set_id"] for s in json.loads(r.output)["image_sets"]} for r in shards]
    assert ids[0].isdisjoint(ids[1]) and len(ids[0] | ids[1]) == 3
    assert run("plan", "--shard", "3/2").exit_code == 1  # a usage error (never 2)


def test_patient_and_series_fixes_on_a_primary_image_set(project: Path, client: Any) -> None:
    write_nm_patient_fix(project)
    blocked = run("plan")
    assert blocked.exit_code == 3 and "--replace-primary" in blocked.output
    planned = run("plan", "--replace-primary")
    assert "replace: corrected copy promoted, image set ID will change" in planned.output
    applied = run("apply", "--replace-primary", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "replaced by image set" in applied.output
    # The undo values (the old PatientID, PHI) are the only PHI in the state: 0600 in a
    # 0700 folder, apart from the run logs.
    state = project / ".reconciler" / "state"
    logs = "".join(p.read_text() for p in state.rglob("*") if p.is_file() and "undo" not in p.parts)
    assert "8NM1" not in logs
    (undo_file,) = state.rglob("undo/*.json")
    assert "8NM1" in undo_file.read_text() and undo_file.stat().st_mode & 0o777 == 0o600
    assert undo_file.parent.stat().st_mode & 0o777 == 0o700
    found = client.search_image_sets(datastoreId=SEED_DATASTORE_ID, searchCriteria={"filters": [
        {"values": [{"DICOMStudyInstanceUID": NM_STUDY}], "operator": "EQUAL"}]})  # fmt: skip
    (summary,) = found["imageSetsMetadataSummaries"]  # one image set: the new primary
    assert summary["isPrimary"] and summary["imageSetId"] != NM
    doc = metadata(client, SEED_DATASTORE_ID, summary["imageSetId"])
    assert doc["Patient"]["DICOM"]["PatientID"] == "MRN00008"
    assert run("plan", "--replace-primary", "--detailed-exitcode").exit_code == 0
    reverted = run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    found = client.search_image_sets(datastoreId=SEED_DATASTORE_ID, searchCriteria={"filters": [
        {"values": [{"DICOMStudyInstanceUID": NM_STUDY}], "operator": "EQUAL"}]})  # fmt: skip
    (summary,) = found["imageSetsMetadataSummaries"]
    doc = metadata(client, SEED_DATASTORE_ID, summary["imageSetId"])
    assert doc["Patient"]["DICOM"]["PatientID"] == "8NM1"
    assert "SeriesDescription" not in doc["Study"]["Series"][NM_SERIES]["DICOM"]
