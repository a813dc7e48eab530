"""One blocked manifest stalls nobody: apply goes ahead with every image set and every
manifest that is not blocked, reports the rest and exits 3; plan lists every valid
change; a selector that matches nothing is a warning that never changes an exit code.
Through the CLI against the local HealthImaging over HTTP; the result is checked with
a bare boto3 client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_support import manifest_repository, run
from conftest import metadata

from reconciler.emulator.seed import SEED_DATASTORE_ID

NM = "07293c9559d92802df5cd515a22a5149"  # primary: Patient-level changes are refused
NM_STUDY = "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457"
HEAD = "apiVersion: reconciler/v1\nkind: ImageSetMetadata\n"


def manifest(project: Path, name: str, selector: str, body: str) -> None:
    (project / "manifests" / f"{name}.yaml").write_text(
        f"{HEAD}metadata: {{name: {name}}}\nspec:\n  selector: {selector}\n  set:\n{body}"
    )


@pytest.fixture
def project(tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    return manifest_repository(tmp_path, local, monkeypatch, manifests=())


def test_a_blocked_patient_change_does_not_hold_back_a_study_change(
    project: Path, client: Any
) -> None:
    study = f'{{studyInstanceUID: "{NM_STUDY}"}}'
    manifest(project, "a-patient", study, "    Patient: {PatientName: NUCLEAR^SAMPLE}\n")
    manifest(project, "b-study", study, "    Study: {StudyDescription: NM BONE SCAN}\n")
    planned = run("plan", "--detailed-exitcode")
    assert planned.exit_code == 1, planned.output  # blocked: an error of the plan
    assert "StudyDescription" in planned.output and "b-study" in planned.output
    assert "a-patient" in planned.output and "--replace-primary" in planned.output
    assert "1 image set to update" in planned.output and "1 blocked" in planned.output

    applied = run("apply", "--auto-approve")
    assert applied.exit_code == 3, applied.output  # partial: the rest was applied
    doc = metadata(client, SEED_DATASTORE_ID, NM)
    assert doc["Study"]["DICOM"]["StudyDescription"] == "NM BONE SCAN"
    assert doc["Patient"]["DICOM"]["PatientName"] != "NUCLEAR^SAMPLE"

    again = run("plan", "--detailed-exitcode")  # only the blocked manifest is left
    assert again.exit_code == 1, again.output
    assert "b-study" not in again.output and "0 image sets to update" in again.output


def test_an_unmatched_selector_is_a_warning_not_an_error(project: Path, client: Any) -> None:
    study = f'{{studyInstanceUID: "{NM_STUDY}"}}'
    manifest(project, "b-study", study, "    Study: {StudyDescription: NM BONE SCAN}\n")
    manifest(project, "ghost", "{accessionNumber: NO-SUCH-ACC}",
             "    Study: {StudyDescription: X}\n")  # fmt: skip
    drifted = run("drift")
    assert drifted.exit_code == 2, drifted.output  # drift, not "error"
    assert "matches no primary image set" in drifted.output
    applied = run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output  # everything applicable was applied
    assert metadata(client, SEED_DATASTORE_ID, NM)["Study"]["DICOM"]["StudyDescription"] == (
        "NM BONE SCAN"
    )
    assert run("drift").exit_code == 0
    assert run("plan", "--detailed-exitcode").exit_code == 0
