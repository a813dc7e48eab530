"""One blocked manifest stalls nobody: apply goes ahead with every image set and every
manifest that is not blocked, reports the rest and exits 3; plan lists every valid
change; a selector that matches nothing is a warning that never changes an exit code.
Through the CLI against the local HealthImaging over HTTP; the result is checked with
a bare boto3 client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_support import manifest_repository, run
from conftest import metadata

from reconciler.emulator.seed import SEED_DATASTORE_ID

NM = "07293c9559d92802df5cd515a22a5149"  # primary: Patient-level changes are refused
NM_STUDY = "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457"
ECG = "9137bfa228e5828208da69564672a92c"  # a primary image set with an AccessionNumber
ECG_STUDY = "1.3.76.13.65829.2.20130125082826.1072139.2"
ECG_ACCESSION = "03028041970546"
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
    assert planned.exit_code == 3, planned.output  # partial: blocked, the rest planned
    assert "StudyDescription" in planned.output and "b-study" in planned.output
    assert "a-patient" in planned.output and "--replace-primary" in planned.output
    assert "1 image set to update" in planned.output
    assert "1 blocked (manifest a-patient)" in planned.output
    shown = json.loads(run("plan", "-o", "json").output)
    assert shown["manifests"] == {"changed": ["b-study"], "blocked": ["a-patient"]}

    applied = run("apply", "--auto-approve")
    assert applied.exit_code == 3, applied.output  # partial: the rest was applied
    assert "1 updated, 1 blocked (manifest a-patient)." in applied.output
    doc = metadata(client, SEED_DATASTORE_ID, NM)
    assert doc["Study"]["DICOM"]["StudyDescription"] == "NM BONE SCAN"
    assert doc["Patient"]["DICOM"]["PatientName"] != "NUCLEAR^SAMPLE"

    again = run("plan", "--detailed-exitcode")  # only the blocked manifest is left
    assert again.exit_code == 3, again.output
    assert "b-study" not in again.output and "0 image sets to update" in again.output
    drifted = run("drift", "-o", "json")
    assert drifted.exit_code == 3, drifted.output  # blocked, and no drift among the rest
    assert json.loads(drifted.output)["manifests"] == {"changed": [], "blocked": ["a-patient"]}
    nothing = run("apply", "--auto-approve")
    assert nothing.exit_code == 3, nothing.output
    assert "Apply: nothing sent; 1 blocked (manifest a-patient)." in nothing.output


def test_a_conflict_across_selectors_blocks_every_side(project: Path, client: Any) -> None:
    """Two manifests reach the seeded ECG study through different selectors with
    different StudyDescriptions: validate cannot see it; the plan sends neither value,
    names both manifests and counts the image set as blocked."""
    by_uid, by_accession = (
        f'{{studyInstanceUID: "{ECG_STUDY}"}}',
        f'{{accessionNumber: "{ECG_ACCESSION}"}}',
    )
    manifest(project, "by-uid", by_uid, "    Study: {StudyDescription: ECG RESTING}\n")
    manifest(project, "by-accession", by_accession, "    Study: {StudyDescription: ECG 12 LEAD}\n")
    assert run("validate").exit_code == 0  # only resolving shows they meet
    planned = run("plan", "--detailed-exitcode")
    assert planned.exit_code == 3, planned.output
    assert "0 image sets to update" in planned.output
    assert "1 blocked (manifests by-accession, by-uid)" in planned.output
    applied = run("apply", "--auto-approve")
    assert applied.exit_code == 3, applied.output
    assert "nothing sent; 1 blocked (manifests by-accession, by-uid)" in applied.output
    assert metadata(client, SEED_DATASTORE_ID, ECG)["Study"]["DICOM"]["StudyDescription"] == "ECG"


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
