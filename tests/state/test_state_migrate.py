"""``reconciler state migrate``: a laptop's local state (300 runs, a replace and its undo
values, drift state) copied up to S3, then answered from a fresh clone exactly as it
was answered locally; a destination that holds state for the scope is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ci_support import PREFIX, Repository, repository
from conftest import NM_PATIENT_FIX, NM_STUDY

from reconciler.emulator.seed import SEED_DATASTORE_ID
from reconciler.emulator.server import LocalHealthImaging
from reconciler.state import State
from reconciler.state.local import LocalBackend
from tests.state_support import KMS_KEY, Bucket, earlier_runs

pytestmark = pytest.mark.slow
FIX = {"nm-patient.yaml": NM_PATIENT_FIX}
EARLIER = 297  # and three real ones: 300 runs


def answers(repo: Repository, *, ci: bool) -> dict[str, object]:
    """What the state answers: the runs, the last one, and its listing."""
    listed = repo.run("runs", "-o", "json", ci=ci)
    last = repo.run("runs", "show", "last", "-o", "json", ci=ci)
    assert listed.exit_code == 0 and last.exit_code == 0, listed.output + last.output
    return {"runs": json.loads(listed.stdout), "last": json.loads(last.stdout)}


def test_local_state_goes_up_to_s3_and_answers_the_same_from_a_fresh_clone(
    tmp_path: Path, local: LocalHealthImaging, state_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    laptop = repository(tmp_path / "laptop", local, state_bucket, monkeypatch, manifests=FIX)
    original = laptop.document("07293c9559d92802df5cd515a22a5149")["Patient"]["DICOM"]
    state = State(LocalBackend(laptop.root / ".reconciler" / "state", laptop.root), laptop.scope)
    earlier_runs(state, EARLIER, endpoint=laptop.local.url, datastore_id=SEED_DATASTORE_ID)
    replaced = laptop.run("apply", "--replace-primary", "--auto-approve", ci=False)
    assert replaced.exit_code == 0, replaced.output
    for _ in range(2):  # a stale re-apply plans nothing: two drifts make a drift state
        drift = laptop.run("drift", "--since-last-run", ci=False)
        assert drift.exit_code == 0, drift.output
    before = answers(laptop, ci=False)
    assert len(before["runs"]["runs"]) == EARLIER + 1

    moved = laptop.run("state", "migrate", "--to", state_bucket.url(PREFIX), ci=False)
    assert moved.exit_code == 0, moved.output
    assert "Next: set `state: " in moved.stdout
    keys = laptop.state_keys()
    # runs, the index, undo values, drift state, rates, the data store sizes the apply
    # learnt; the audit trail's index and log
    assert len(keys) == EARLIER + 1 + 5 + 2
    assert [k for k in keys if k.endswith("/datastore-sizes.json")]
    assert len([k for k in keys if "/audit/" in k]) == 2
    assert not [k for k in keys if "/locks/" in k]
    for key in keys:
        head = state_bucket.head(key)
        assert (head.get("SSEKMSKeyId") == KMS_KEY) == ("/undo/" in key), key

    again = laptop.run("state", "migrate", "--to", state_bucket.url(PREFIX), ci=False)
    assert again.exit_code == 1
    assert "holds state for this scope already" in again.stderr
    assert "refusing to mix two histories" in again.stderr
    assert len(laptop.state_keys()) == len(keys)

    fresh_root = tmp_path / "fresh"
    fresh_root.mkdir()
    for name in ("manifests", "reconciler.yaml", ".git"):
        source = laptop.root / name
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, fresh_root / name)
    fresh = Repository(fresh_root, local, state_bucket, laptop.ahi)
    monkeypatch.chdir(fresh_root)
    after = answers(fresh, ci=True)
    assert without_location(after) == without_location(before)

    drifted = fresh.run("drift", "--since-last-run")
    assert drifted.exit_code == 0, drifted.output
    assert "No earlier drift run recorded" not in drifted.stderr
    assert drifted.stdout == drift.stdout  # as the laptop's last drift said

    reverted = fresh.run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    [primary] = [i for i, a in fresh.study(NM_STUDY).items() if a["isPrimary"]]
    assert fresh.document(primary)["Patient"]["DICOM"] == original
    assert not (fresh_root / ".reconciler" / "state").exists()


def without_location(answer: object) -> object:
    """``answer`` without where each run is kept (that is what moved)."""
    if isinstance(answer, dict):
        return {k: without_location(v) for k, v in answer.items() if k != "location"}
    if isinstance(answer, list):
        return [without_location(v) for v in answer]
    return answer


def test_a_destination_with_state_of_another_scope_takes_this_one(
    tmp_path: Path, local: LocalHealthImaging, state_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = repository(tmp_path / "repo", local, state_bucket, monkeypatch)
    state_bucket.s3.put_object(
        Bucket=state_bucket.name, Key=f"{PREFIX}/url/elsewhere-0000/runs/index.json", Body=b"{}"
    )
    applied = repo.run("apply", "--auto-approve", ci=False)
    assert applied.exit_code == 0, applied.output
    moved = repo.run("state", "migrate", "--to", state_bucket.url(PREFIX), ci=False)
    assert moved.exit_code == 0, moved.output
    assert len(repo.state_keys(f"/{repo.scope.name}/runs/")) == 2
