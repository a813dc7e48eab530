"""The audit trail: a record per change attempted by apply, revert and a replace; who,
what (keys, never values), why, approval; hash-chained, one chain per run, in the state
backend; exported as FHIR R4 and DICOM audit messages; ``audit verify`` finds a removed,
an inserted and an edited record."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from audit_formats import check_dicom, check_fhir, local_trails
from cli_support import FAST_WRITES, NM, manifest_repository, run, write_nm_patient_fix

from reconciler.audit import records
from reconciler.audit.trail import digest_of
from reconciler.emulator.s3 import LocalS3, client

CT = "b537144549630a4b5c6386f265599afc"
MR = "bad85aed10043cb5842729f8fd06c578"


def trail(root: Path) -> list[dict[str, Any]]:
    """The records in the project's (local) state, oldest first."""
    return [record for state in local_trails(root) for record in records(state)]


def logs(root: Path) -> list[Path]:
    """The audit logs' files in the project's local state."""
    return sorted((root / ".reconciler" / "state").glob("**/audit/logs/*.jsonl"))


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
    found = trail(project)
    runs = list(dict.fromkeys(r["run_id"] for r in found))
    assert len(runs) == 2  # one log per run, each its own chain
    assert [(r["log"], r["seq"]) for r in found] == [(run, n) for run in runs for n in (1, 2, 3)]
    done = sorted((r["action"], r["image_set_id"], r["outcome"]) for r in found)
    assert done == [
        (action, image_set, "UPDATED")
        for action in ("apply", "revert")
        for image_set in sorted((NM, CT, MR))
    ]
    [mr] = [r for r in found if r["image_set_id"] == MR and r["action"] == "apply"]
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
        "principal": "arn:aws:iam::123456789012:user/reconciler-local",  # its STS says
        "user": mr["who"]["user"],
        "ci_job_url": "https://github.example/imaging/manifests/actions/runs/42",
        "git_commit": "a" * 40,
    }
    approval = mr["approval"]
    assert approval["approvers"] == ["alice", "bob"]
    assert approval["meaning"] == "approved for production apply"
    shown = json.loads(run("runs", "show", mr["run_id"], "-o", "json").stdout)
    assert approval["plan_digest"] == shown["run"]["plan_digest"]  # the journal's plan
    [undo] = [r for r in found if r["image_set_id"] == MR and r["action"] == "revert"]
    assert undo["keys"] == mr["keys"] and undo["study_uid"] == mr["study_uid"]
    assert undo["why"] == [{"manifest": None, "reason": "undo after review", "ticket": "HIM-9"}]
    assert run("audit", "verify").stdout == "The audit trail is intact: 6 records in 2 logs.\n"


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
    [log] = logs(project)
    lines = log.read_text().splitlines()
    if how == "removed":
        del lines[1]
    elif how == "inserted":
        forged = json.loads(lines[0])
        forged["image_set_id"] = "0" * 32
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
        ("edited", "record 2 was edited: its digest does not match"),
        ("truncated", "record 3 was removed from the end (the index names record 3)"),
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


def test_verify_and_export_read_the_configured_state_backend(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"reconciler-state-{uuid.uuid4().hex[:12]}"  # moto's buckets outlive its server
    with LocalS3() as s3:
        bucket = client(s3.url)
        bucket.create_bucket(Bucket=name)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
        monkeypatch.setenv("RECONCILER_STATE", f"s3://{name}/team")
        assert run("apply", "--auto-approve").exit_code == 0
        assert trail(project) == []  # nothing in the local state
        listed = bucket.list_objects_v2(Bucket=name, Prefix="team/")["Contents"]
        kept = sorted(o["Key"].split("/audit/")[1] for o in listed if "/audit/" in o["Key"])
        # The index, and the run's log (its parts folded into one object when it closed).
        assert len(kept) == 2 and kept[0] == "index.json" and kept[1].startswith("logs/")

        assert run("audit", "verify").stdout == "The audit trail is intact: 3 records in 1 log.\n"
        check_fhir(json.loads(run("audit", "export", "--format", "fhir").stdout))
        monkeypatch.delenv("RECONCILER_STATE")
        shown = run("--state", f"s3://{name}/team", "audit", "export")
        assert len(shown.stdout.splitlines()) == 3
        assert run("audit", "verify").stdout == (
            "The audit trail is intact: 0 records in 0 logs.\n"  # the local state: none
        )
