"""``selector.isPrimary``: DICOM selectors reach primary image sets by default, the
non-primary ones of an older archive with ``isPrimary: false`` (where Patient-level
fixes work in place), or both with ``any`` — through the CLI, against the local
HealthImaging over HTTP, checked with a bare boto3 client."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from cli_support import manifest_repository, run
from conftest import USDOPPLER, metadata, put_document

STUDY = USDOPPLER["Study"]["DICOM"]["StudyInstanceUID"]
PRIMARY = "a" * 32
ARCHIVED = "b" * 32


@pytest.fixture
def project(tmp_path: Path, local: Any, datastore: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    doc = copy.deepcopy(USDOPPLER)
    doc["Patient"]["DICOM"]["PatientID"] = "ARCHIVE-7"
    put_document(local, datastore, doc, PRIMARY, primary=True)
    put_document(local, datastore, doc, ARCHIVED, primary=False)
    return manifest_repository(tmp_path, local, monkeypatch, manifests=(), datastore=datastore)


def manifest(project: Path, selector: str) -> None:
    (project / "manifests" / "fix.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {name: fix-name}\n"
        f"spec:\n  selector: {selector}\n  set:\n    Patient: {{PatientName: DOE^JANE}}\n"
    )


def test_default_reaches_primary_only(project: Path) -> None:
    manifest(project, "{patientId: ARCHIVE-7}")
    planned = run("plan", "-o", "json")
    assert PRIMARY in planned.output and ARCHIVED not in planned.output


def test_is_primary_false_fixes_a_non_primary_archive_in_place(
    project: Path, client: Any, datastore: str
) -> None:
    manifest(project, "{patientId: ARCHIVE-7, isPrimary: false}")
    assert run("validate").exit_code == 0
    planned = run("plan", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert ARCHIVED in planned.output and PRIMARY not in planned.output
    applied = run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    archived = metadata(client, datastore, ARCHIVED)
    primary = metadata(client, datastore, PRIMARY)
    assert archived["Patient"]["DICOM"]["PatientName"] == "DOE^JANE"
    assert primary["Patient"]["DICOM"]["PatientName"] == "US Echo"  # not reached


def test_is_primary_any_reaches_both(project: Path) -> None:
    manifest(project, f'{{studyInstanceUID: "{STUDY}", isPrimary: any}}')
    planned = run("plan", "-o", "json")
    assert PRIMARY in planned.output and ARCHIVED in planned.output


def test_unmatched_non_primary_selector_says_what_it_looked_for(project: Path) -> None:
    manifest(project, "{accessionNumber: NOPE, isPrimary: false}")
    planned = run("plan")
    assert "matches no non-primary image set" in planned.output


def test_is_primary_with_an_image_set_id_is_refused(project: Path) -> None:
    manifest(project, f"{{imageSetId: {ARCHIVED}, isPrimary: false}}")
    checked = run("validate")
    assert checked.exit_code == 1
    assert (
        "fix.yaml:5:" in checked.output
        and "isPrimary applies to the DICOM selectors" in checked.output
    )
