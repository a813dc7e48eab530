"""PHI stays out of everything CI shows and keeps: outputs, step summaries, journals.

The whole story runs through the CLI as CI runs it (no terminal, CI=true): validate,
plan in every format, a saved plan, apply, drift, runs, runs show, history, revert, the
seed listing and the audit trail's exports. Every byte they print, the GitHub step
summary and everything in the state (journals, the audit trail) are searched for the
seeded patients' names and IDs (taken from the documents' Patient level, plus the
corrected values the manifests set): none may appear. With
--show-phi they do. Plan files and journals are private to their owner (0600).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from pydicom import datadict
from reliability_support import CT, MR, Project, desired_documents
from reliability_support import project as project  # the fixture

from reconciler.cli import cli
from reconciler.dicom import phi
from reconciler.dicom.dictionary import is_private_tag
from reconciler.engine import diff


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return []


def _identifying(text: str) -> bool:
    """Long enough not to occur by chance in a digest, a date or a count."""
    stripped = text.strip("^ ")
    if stripped.isdigit():
        return len(stripped) >= 8
    return len(stripped) >= 4


def seeded_phi(project: Project) -> set[str]:
    """Every patient name and ID of the seeded data store, before and after the apply."""
    found: set[str] = set()
    documents = [*project.original.values(), *desired_documents(project).values()]
    for doc in documents:
        for key, value in doc.get("Patient", {}).get("DICOM", {}).items():
            if key != "PatientSex":
                found.update(s for s in _strings(value) if _identifying(s))
    assert {"CompressedSamples^CT1", "SAMPLE^CT ONE", "MRN00041", "4MR1"} <= found
    return found


def test_no_phi_in_ci_output_or_journals_unless_asked(
    project: Project, tmp_path: Path, monkeypatch: Any
) -> None:
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    commands = [
        ["validate"],
        ["plan"], ["plan", "-o", "markdown"], ["plan", "-o", "json"],
        ["plan", "--detailed-exitcode", "--out", "plan.json"],
        ["apply", "--auto-approve"],
        ["drift"], ["drift", "-o", "markdown"], ["drift", "-o", "json"],
        ["runs"], ["runs", "show", "last"], ["runs", "show", "last", "--output", "json"],
        ["history", CT], ["history", MR, "-o", "json"],
        ["revert", "--run", "last", "--auto-approve"],
        ["runs", "show", "last"],
        ["emulator", "seed", "--db", str(tmp_path / "seed.sqlite")],
        ["audit", "export", "--format", "fhir"], ["audit", "export", "--format", "dicom"],
        ["audit", "export"], ["audit", "verify"],
    ]  # fmt: skip
    shown = []
    for args in commands:
        result = project.run(*args)
        assert result.exit_code in (0, 2), (args, result.output)
        shown.append(result.stdout + result.stderr)
    journals = sorted(project.runs_dir().glob("*.jsonl"))
    assert len(journals) == 2  # the apply and the revert
    # Nothing in the state but undo values may hold PHI (none here: no replace).
    state = project.root / ".reconciler" / "state"
    stored = [p for p in state.rglob("*") if p.is_file()]
    assert stored and not any("undo" in p.parts for p in stored)
    trails = [p for p in stored if "audit" in p.parts]
    assert len(trails) == 3  # the apply's log, the revert's, and their index
    kept = [p.read_text("utf-8") for p in stored] + [summary.read_text("utf-8")]
    names = seeded_phi(project)
    leaks = {n for n in names for text in shown + kept if n in text}
    assert leaks == set()
    assert "***" in shown[1] and "[PHI]" in shown[1]  # masked, and marked as such

    # Private files: the saved plan holds values (it applies exactly them), journals not.
    assert oct((project.root / "plan.json").stat().st_mode & 0o777) == "0o600"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in journals)
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in stored)
    assert oct(project.runs_dir().stat().st_mode & 0o777) == "0o700"

    # Asked for, it shows: on the plan of the reverted (original) documents.
    revealed = project.run("plan", "--show-phi")
    assert revealed.exit_code == 0
    assert "SAMPLE^CT ONE" in revealed.stdout and "CompressedSamples^CT1" in revealed.stdout
    assert "MRN00041" in revealed.stdout and "4MR1" in revealed.stdout


def test_phi_is_masked_even_when_showPhi_is_not_set_and_stdout_is_a_file(
    project: Project,
) -> None:
    """No TTY and no CI variable (a cron job writing a log): still masked."""
    result = CliRunner(env={"CI": None}).invoke(cli, ["plan"], catch_exceptions=False)
    assert result.exit_code == 0
    assert not {n for n in seeded_phi(project) if n in result.output}


def test_the_phi_set_is_the_annex_e_basic_profile_checked_against_pydicom() -> None:
    """Each keyword is an attribute pydicom's dictionary knows; the masked set is the
    profile less the documented exceptions; the engine uses this very set."""
    unknown = [k for k in phi.BASIC_PROFILE if datadict.tag_for_keyword(k) is None]
    assert unknown == []
    assert len(phi.BASIC_PROFILE) > 600
    assert phi.PHI_KEYWORDS == phi.BASIC_PROFILE - phi.SHOWN
    assert set(phi.SHOWN_BY_CHOICE) <= phi.BASIC_PROFILE
    assert all(datadict.dictionary_VR(datadict.tag_for_keyword(k)) == "UI"
               for k in phi.SHOWN - set(phi.SHOWN_BY_CHOICE))  # fmt: skip
    core = {"PatientName", "PatientID", "PatientBirthDate", "PatientAddress", "OtherPatientIDs",
            "OtherPatientIDsSequence", "AccessionNumber", "ReferringPhysicianName",
            "InstitutionName", "StationName", "DeviceSerialNumber", "PerformingPhysicianName",
            "OperatorsName", "PatientTelephoneNumbers", "MedicalRecordLocator", "StudyID"}  # fmt: skip
    assert core <= phi.PHI_KEYWORDS
    assert {"StudyDescription", "StudyDate", "SeriesInstanceUID"} <= phi.SHOWN
    assert diff.PHI_KEYWORDS is phi.PHI_KEYWORDS and diff.is_phi is phi.is_phi
    assert phi.is_phi("00091001") and is_private_tag("00091001")  # private: PHI
    assert not phi.is_phi("00080060") and not phi.is_phi("Modality")


def test_journal_records_keys_never_values(project: Project) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    [journal] = project.runs_dir().glob("*.jsonl")
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    keys = [k for r in records if r["type"] == "intent" for k in r["keys"]]
    assert "Patient.PatientName" in keys and "Patient.PatientID" in keys
    assert not {n for n in seeded_phi(project) if n in journal.read_text()}
