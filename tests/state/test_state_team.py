"""Issue 21's "done when", driven through the command line with the S3 backend: a team's
clones of one manifest repository share one S3 state (``reconciler emulator serve
--seed --s3`` in a process of its own; see ``team_support``). Two applies at once, a
SIGKILLed apply and its lock, and a fresh clone (no ``.reconciler/``) that reverts,
drifts, recovers an interrupted call and resumes an interrupted replace. What the
servers hold is read with bare boto3."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import NM_PATIENT_FIX, NM_STUDY
from team_support import (
    AFTER_ONE_APPLY,
    MANAGED,
    NM,
    kill,
    lock_id_in,
    team,
    wait_for_record,
)

from tests.state_support import KMS_KEY

pytestmark = pytest.mark.slow


def test_two_applies_at_once_one_runs_the_other_waits_then_names_the_holder(
    tmp_path: Path,
) -> None:
    with team(tmp_path, lock_hold=3.0) as made:
        for name in ("laptop", "ci"):
            made.clone(name)
        started = [
            made.start(n, "apply", "--auto-approve", "--lock-timeout", "2s")
            for n in ("laptop", "ci")
        ]
        done = [(p.wait(timeout=120), *p.communicate()) for p in started]
        codes = sorted(code for code, _, _ in done)
        assert codes == [0, 1], done
        [(_, _, waited)] = [d for d in done if d[0] == 1]
        [run] = made.records("run")  # one run: the winner's
        assert "Waiting up to 2s for the state lock: apply by " in waited
        assert "is locked: apply by " in waited and "; waited 2s." in waited
        assert lock_id_in(waited) == run["lock_id"]
        assert len(waited.strip().splitlines()) == 2  # the wait, then the one-line error
        assert {i: made.versions(i) for i in MANAGED} == AFTER_ONE_APPLY
        assert made.lock() is None  # the winner released it


def test_a_sigkilled_apply_leaves_a_lock_the_next_apply_names_and_unlock_clears(
    tmp_path: Path,
) -> None:
    """Then a clone that never ran anything recovers the killed run's call."""
    with team(tmp_path, lock_hold=2.0) as made:
        made.clone("ci")
        made.clone("laptop")
        killed = made.start("ci", "apply", "--auto-approve", "--parallelism", "1")
        intent = wait_for_record(made, "intent", "the killed apply's first call")
        kill(killed)
        lock = made.lock()
        assert lock is not None and lock["operation"] == "apply"

        refused = made.run("laptop", "apply", "--auto-approve")
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.startswith(f"Error: the state ({made.state_url}/url/")
        assert lock_id_in(refused.stderr) == lock["lock_id"]
        assert made.records("result") == []  # nothing applied by the refused one

        wrong = made.run("laptop", "state", "unlock", "0" * 32)
        assert wrong.returncode == 1 and "no lock with ID '" in wrong.stderr
        assert made.lock() == lock
        cleared = made.run("laptop", "state", "unlock", lock["lock_id"])
        assert cleared.returncode == 0, cleared.stderr
        assert f"lock ID {lock['lock_id']}" in cleared.stdout and made.lock() is None

        recovered = made.run("laptop", "apply", "--auto-approve")
        assert recovered.returncode == 0, recovered.stderr
        image_set = intent["image_set_id"]
        assert f"Recovered image set {image_set}: run " in recovered.stderr
        assert "the call did happen: version 1 → 2" in recovered.stderr
        assert {i: made.versions(i) for i in MANAGED} == AFTER_ONE_APPLY  # nothing twice
        assert not (made.clones["laptop"] / ".reconciler" / "state").exists()
        runs = made.run("laptop", "runs")
        assert runs.returncode == 0 and "interrupted" in runs.stdout, runs.stdout


def test_a_fresh_clone_reverts_the_last_run_and_drifts_since_the_last_run(
    tmp_path: Path,
) -> None:
    with team(tmp_path) as made:
        made.clone("ci")
        originals = {i: made.document(i) for i in MANAGED}
        applied = made.run("ci", "apply", "--auto-approve")
        assert applied.returncode == 0, applied.stderr

        made.clone("fresh")
        first = made.run("fresh", "drift", "--since-last-run")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "No earlier drift run recorded: checking everything." in first.stderr
        reverted = made.run("fresh", "revert", "--run", "last", "--auto-approve")
        assert reverted.returncode == 0, reverted.stderr
        assert {i: made.document(i) for i in MANAGED} == originals

        # Night after night, from either clone, the drift the revert made is reported
        # until someone fixes it: it is never forgotten.
        for clone in ("ci", "fresh"):
            night = made.run(clone, "drift", "--since-last-run")
            assert night.returncode == 2, night.stdout + night.stderr
            assert "Drift: 3 image sets to update" in night.stdout
            assert "of the 3 image sets the manifests select" in night.stdout
        assert len(made.objects("/drift/")) == 1
        for clone in made.clones.values():
            assert not (clone / ".reconciler" / "state").exists()


def test_a_replace_killed_midway_is_resumed_from_a_fresh_clone(tmp_path: Path) -> None:
    """``apply --replace-primary`` is SIGKILLed after it deleted the old primary image
    set and before the copy is promoted (the study has no primary); a fresh clone
    finishes the replace. Undo values (PHI) are the only state under the KMS key, and
    no other state object holds a patient's value."""
    fix = {"nm-patient.yaml": NM_PATIENT_FIX}
    with team(tmp_path, lock_hold=1.5) as made:
        made.clone("ci", manifests=fix)
        made.clone("fresh", manifests=fix)
        phi = made.patient_values() | {"NUCLEAR^SAMPLE", "MRN00008"}
        killed = made.start("ci", "apply", "--replace-primary", "--auto-approve")
        wait_for_record(
            made, "step", "the old primary's deletion", step="delete-primary", phase="done"
        )
        kill(killed)
        assert NM not in made.image_sets()
        lock = made.lock()
        assert lock is not None
        assert made.run("fresh", "state", "unlock", lock["lock_id"]).returncode == 0

        resumed = made.run("fresh", "apply", "--replace-primary", "--auto-approve")
        assert resumed.returncode == 0, resumed.stderr
        assert f"Resumed the replace of image set {NM}: " in resumed.stderr
        study = made.study(NM_STUDY)
        [primary] = [i for i, answer in study.items() if answer["isPrimary"]]
        assert primary != NM
        patient = made.document(primary)["Patient"]["DICOM"]
        assert (patient["PatientName"], patient["PatientID"]) == ("NUCLEAR^SAMPLE", "MRN00008")

        secret = made.objects("/undo/")
        assert secret
        for key in made.objects():
            head = made.bucket.head(key)
            if key in secret:
                assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KMS_KEY)
            else:
                assert head.get("ServerSideEncryption") != "aws:kms", key
                body = made.bucket.body(key).decode()
                assert not [v for v in phi if v in body], key
