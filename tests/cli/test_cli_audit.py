"""The audit trail: a record per change attempted by apply, revert and a replace; who,
what (keys, never values), why, approval; hash-chained; exported as FHIR R4 and DICOM
audit messages; ``audit verify`` finds a removed, an inserted and an edited record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from audit_formats import check_dicom, check_fhir
from cli_support import FAST_WRITES, NM, manifest_repository, run, write_nm_patient_fix

CT = "b537144549630a4b5c6386f265599afc"
MR = "bad85aed10043cb5842729f8fd06c578"


def trail(root: Path) -> list[dict[str, Any]]:
    lines = []
    for log in sorted((root / ".reconciler" / "audit").glob("trail-*.jsonl")):
        lines += [json.loads(line) for line in log.read_text().splitlines() if line]
    return lines


@pytest.fixture
def project(tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_SHA"):
        monkeypatch.delenv(name, raising=False)
    return manifest_repository(tmp_path, local, monkeypatch, settings=FAST_WRITES)


def test_apply_and_revert_write_one_record_per_image_set(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.example")
    monkeypatch.setenv("GITHUB_REPOSITORY", "imaging/manifests")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_SHA", "a" * 40)
    assert run("apply", "--auto-approve", "--approver", "alice,bob").exit_code == 0
    assert (
        run(
            "revert",
            "--run",
            "last",
            "--auto-approve",
            "--reason",
            "undo after review",
            "--ticket",
            "HIM-9",
        ).exit_code
        == 0
    )
    records = trail(project)
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5, 6]
    done = sorted((r["action"], r["image_set_id"], r["outcome"]) for r in records)
    assert done == [
        (action, image_set, "UPDATED")
        for action in ("apply", "revert")
        for image_set in sorted((NM, CT, MR))
    ]
    [mr] = [r for r in records if r["image_set_id"] == MR and r["action"] == "apply"]
    assert mr["keys"] == ["Patient.PatientID", "Series.SeriesDescription"]
    assert (mr["from_version"], mr["to_version"]) == ("1", "2")
    assert mr["study_uid"] == "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"
    assert mr["why"] == [
        {
            "manifest": "mr1-patient-id",
            "ticket": "HIM-1022",
            "reason": "scanner-local ID replaced by the enterprise MRN",
        }
    ]
    assert mr["who"] == {
        "principal": "unknown",
        "user": mr["who"]["user"],
        "ci_job_url": "https://github.example/imaging/manifests/actions/runs/42",
        "git_commit": "a" * 40,
    }
    approval = mr["approval"]
    assert approval["approvers"] == ["alice", "bob"]
    assert approval["meaning"] == "approved for production apply"
    header = json.loads((project / "runs" / f"{mr['run_id']}.jsonl").read_text().splitlines()[0])
    assert approval["plan_digest"] == header["plan_digest"]  # the journal names the same plan
    [undo] = [r for r in records if r["image_set_id"] == MR and r["action"] == "revert"]
    assert undo["keys"] == mr["keys"] and undo["study_uid"] == mr["study_uid"]
    assert undo["why"] == [{"manifest": None, "reason": "undo after review", "ticket": "HIM-9"}]
    assert run("audit", "verify").stdout == "The audit trail is intact: 6 records.\n"


def test_exports_are_valid_fhir_r4_and_dicom_audit_messages(project: Path) -> None:
    assert run("apply", "--auto-approve").exit_code == 0
    bundle = json.loads(run("audit", "export", "--format", "fhir").stdout)
    check_fhir(bundle)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["AuditEvent", "Provenance"] * 3
    dicom = run("audit", "export", "--format", "dicom").stdout
    check_dicom(dicom)
    assert len(dicom.splitlines()) == 3
    later = run("audit", "export", "--since", "2999-01-01").stdout
    assert later == ""
    out = run("audit", "export", "--format", "jsonl", "--out", "trail.jsonl")
    assert out.stderr == "Exported 3 records to trail.jsonl.\n"
    assert oct((project / "trail.jsonl").stat().st_mode & 0o777) == "0o600"


def test_a_replace_is_recorded_as_one_with_the_new_image_set(project: Path) -> None:
    write_nm_patient_fix(project)
    assert run("apply", "--auto-approve", "--replace-primary").exit_code == 0
    [replace] = [r for r in trail(project) if r["image_set_id"] == NM]
    assert replace["action"] == "replace" and replace["new_image_set_id"] not in (None, NM)
    assert run("revert", "--run", "last", "--auto-approve").exit_code == 0
    # Undone by a replace too: of the image set that replaced NM, by yet another one.
    [undo] = [r for r in trail(project) if r["image_set_id"] == replace["new_image_set_id"]]
    assert undo["action"] == "replace" and undo["new_image_set_id"] not in (None, NM)
    assert undo["study_uid"] == replace["study_uid"]


def _damage(project: Path, how: str) -> None:
    [log] = (project / ".reconciler" / "audit").glob("trail-*.jsonl")
    lines = log.read_text().splitlines()
    if how == "removed":
        del lines[1]
    elif how == "inserted":
        forged = json.loads(lines[0])
        forged["image_set_id"] = "0" * 32
        from reconciler.audit.trail import digest_of

        forged["digest"] = digest_of(forged)  # a careful forger recomputes the digest
        lines.insert(1, json.dumps(forged))
    elif how == "edited":
        record = json.loads(lines[1])
        record["outcome"] = "ERROR"
        lines[1] = json.dumps(record)
    elif how == "truncated":
        lines = lines[:-1]
    log.write_text("\n".join(lines) + "\n")


@pytest.mark.tampered
@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("removed", "record 2 was removed before record 3"),
        ("inserted", "the record before record 2 (numbered 1) was inserted"),
        ("edited", "record 2 was edited: its digest does not match its content"),
        ("truncated", "record 3 was removed from the end of the trail (the head names record 3)"),
    ],
)
def test_verify_finds_a_removed_an_inserted_and_an_edited_record(
    project: Path, how: str, said: str
) -> None:
    assert run("apply", "--auto-approve").exit_code == 0
    _damage(project, how)
    result = run("audit", "verify")
    assert result.exit_code == 1
    assert said in result.stdout, result.stdout
    assert result.stdout.splitlines()[-1].startswith("The audit trail is broken:")


def test_a_refused_apply_writes_no_record(project: Path) -> None:
    with (project / "reconciler.yaml").open("a") as out:
        out.write("policies:\n  maxImageSets: {limit: 1}\n")
    assert run("apply", "--auto-approve").exit_code == 1
    assert trail(project) == []
