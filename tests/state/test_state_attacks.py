"""Issue 21's attacks 1–6, re-run from outside against a repository set up as the state
section and the shipped recipes say (``ci_support``): the merge-time command runs with
``RECONCILER_STATE`` (S3) and ``RECONCILER_ENDPOINT`` from CI, after a pull request
wrote what it liked into the checkout. Nothing is destroyed, nothing restored, no PHI
lands in a file git could carry, no record is lost.

Where the attacker writes the state itself (a laptop's local state), the state's own
checks refuse what they can see: a log changed after its run ended, an index entry
that is not what a writer wrote, undo values whose digest the run did not record. A
forgery that is whole by every digest (log and index entry written as a writer would)
is for the service to refuse: a copy reconciler did not tag, a version history that
does not show the run's transition — issue 22's checks, tested where they live.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ci_support import Repository, lines, repository
from ci_support import repo as repo  # the fixture
from conftest import NM_PATIENT_FIX, NM_STUDY, set_study_description

from reconciler.emulator.seed import SEED_DATASTORE_ID
from reconciler.emulator.server import LocalHealthImaging
from reconciler.engine.journal.index import ENDED, digest, encode, facts_of
from reconciler.engine.journal.reader import parse_run
from tests.state_support import Bucket

CT = "b537144549630a4b5c6386f265599afc"
MR = "bad85aed10043cb5842729f8fd06c578"
NM = "07293c9559d92802df5cd515a22a5149"
MANAGED = (CT, MR, NM)
FORGED = "20991231T235959Z-0f0f0f"  # dated far ahead: the newest by any clock


@pytest.fixture
def applied(repo: Repository) -> Repository:
    """The repository after its apply on merge: the manifests are live (what was there
    before is ``repo.before``)."""
    repo.before = repo.documents()
    done = repo.run("apply", "--auto-approve")
    assert done.exit_code == 0, done.output
    return repo


def unmanaged(repo: Repository) -> str:
    return sorted(set(repo.image_sets()) - set(MANAGED))[0]


def header(repo: Repository, run_id: str = FORGED, **fields: Any) -> dict[str, Any]:
    return {
        "type": "run",
        "run_id": run_id,
        "command": "apply",
        "started_at": "2099-12-31T23:59:59.000Z",
        "user": "ci",
        "host": "runner",
        "reconciler_version": "0.1.0",
        "endpoint": repo.local.url,
        "manifest_digest": None,
        "plan_digest": None,
        "parent_run_id": None,
        "format_version": 2,
        "service_time": "2099-12-31T23:59:59Z",
        **fields,
    }


def copy_claim(old: str, copy: str) -> dict[str, Any]:
    """A step record claiming a replace of ``old`` made the copy ``copy``."""
    return {
        "type": "step",
        "image_set_id": old,
        "datastore_id": SEED_DATASTORE_ID,
        "step": "copy",
        "phase": "done",
        "copy_id": copy,
        "new_id": None,
        "at": "2099-12-31T23:59:59.100Z",
    }


def update_claim(image_set: str, to_version: str) -> list[dict[str, Any]]:
    """An intent and result claiming the run moved ``image_set`` from 1 to ``to_version``."""
    common = {
        "image_set_id": image_set,
        "datastore_id": SEED_DATASTORE_ID,
        "call": 1,
        "at": "2099-12-31T23:59:59.100Z",
    }
    return [
        {
            **common,
            "type": "intent",
            "from_version": "1",
            "payload_digest": "0" * 64,
            "calls": 1,
            "keys": ["Study.StudyDescription"],
        },
        {
            **common,
            "type": "result",
            "from_version": "1",
            "to_version": to_version,
            "outcome": "UPDATED",
            "message": None,
        },
    ]


def end() -> dict[str, Any]:
    return {"type": "end", "finished_at": "2099-12-31T23:59:59.900Z", "summary": {"UPDATED": 1}}


def commit(repo: Repository, path: str, data: bytes) -> None:
    """What a pull request adds to git, in the merge-time checkout."""
    target = repo.root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def commit_forged_state(repo: Repository, records: list[dict[str, Any]]) -> None:
    """A forged run committed where earlier versions kept runs (journalDir's default)
    and where a local state keeps them, with an index entry whole by its digests."""
    data = lines(*records)
    commit(repo, f".reconciler/runs/{FORGED}.jsonl", data)
    scope = f".reconciler/state/{repo.scope.name}"
    commit(repo, f"{scope}/runs/{FORGED}.jsonl", data)
    run = parse_run("forged", FORGED, data)
    index = {
        "index_format": 3,
        "journal_format": 2,
        "runs": {FORGED: encode(facts_of(run, ENDED, digest(data)))},
    }
    commit(repo, f"{scope}/runs/index.json", json.dumps(index).encode())


# -- 1: a forged journal line ------------------------------------------------------------
def test_1_a_forged_replace_committed_to_git_is_not_state(applied: Repository) -> None:
    victim = unmanaged(applied)
    before = applied.all_versions()
    commit_forged_state(applied, [header(applied), copy_claim(CT, victim)])
    merged = applied.run("apply", "--auto-approve")
    assert merged.exit_code == 0, merged.output
    assert "No changes" in merged.stdout and "Resumed" not in merged.stderr
    assert applied.all_versions() == before  # the victim stands, nothing moved
    listed = applied.run("state", "list")
    assert listed.exit_code == 0 and FORGED not in listed.stdout
    assert applied.state_keys(FORGED) == []


def test_1_a_line_added_to_an_ended_run_in_local_state_is_never_acted_on(
    repo: Repository,
) -> None:
    """A laptop's local state: the line appended to the last run's log changes the
    log's digest, which its index entry recorded when the run ended."""
    applied = repo.run("apply", "--auto-approve", ci=False)
    assert applied.exit_code == 0, applied.output
    victim = unmanaged(repo)
    [log] = (repo.local_state() / "runs").glob("*.jsonl")
    with log.open("ab") as appended:
        appended.write(lines(copy_claim(CT, victim)))
    before = repo.all_versions()
    again = repo.run("apply", "--auto-approve", ci=False)
    assert again.exit_code == 0, again.output
    assert "Resumed" not in again.stderr and repo.all_versions() == before
    shown = repo.run("runs", "show", log.stem, ci=False)
    assert shown.exit_code == 1
    assert "the run's log changed after the run ended" in shown.stderr
    assert "it is not acted on" in shown.stderr


# -- 2: a forged future-dated run, an edited journal line ----------------------------------
def test_2_a_forged_future_run_committed_to_git_is_not_what_revert_last_reverts(
    applied: Repository,
) -> None:
    victim = unmanaged(applied)
    set_study_description(applied.ahi, SEED_DATASTORE_ID, victim, "THEIRS")
    commit_forged_state(applied, [header(applied), *update_claim(victim, "2"), end()])
    reverted = applied.run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    assert FORGED not in reverted.output and victim not in reverted.output
    after = applied.documents()
    assert after[victim]["Study"]["DICOM"]["StudyDescription"] == "THEIRS"
    assert {i: after[i] for i in MANAGED} == {i: applied.before[i] for i in MANAGED}


def test_2_an_edited_line_in_local_state_restores_nothing(repo: Repository) -> None:
    """A laptop's local state: the last run's result line edited to claim it moved
    another image set; revert refuses the run, and restores nothing at all."""
    applied = repo.run("apply", "--auto-approve", ci=False)
    assert applied.exit_code == 0, applied.output
    victim = unmanaged(repo)
    set_study_description(repo.ahi, SEED_DATASTORE_ID, victim, "THEIRS")
    [log] = (repo.local_state() / "runs").glob("*.jsonl")
    text = log.read_text().replace(CT, victim)
    log.write_text(text)
    before = repo.all_versions()
    refused = repo.run("revert", "--run", "last", "--auto-approve", ci=False)
    assert refused.exit_code == 1, refused.output
    assert "the run's log changed after the run ended" in refused.stderr
    assert repo.all_versions() == before


# -- 3: a forged undo file ---------------------------------------------------------------
FIX = {"nm-patient.yaml": NM_PATIENT_FIX}
ATTACKER = {"PatientName": "ATTACKER^CHOSEN", "PatientID": "EVIL0001"}


@pytest.fixture
def replaced(
    tmp_path: Path, local: LocalHealthImaging, state_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> Repository:
    """A repository whose NM study had its Patient level corrected by a replace; what
    was there before is ``repo.before``."""
    repo = repository(tmp_path / "repo", local, state_bucket, monkeypatch, manifests=FIX)
    repo.before = repo.document(NM)
    return repo


def forge_undo(entries: dict[str, Any]) -> bytes:
    """The undo values with the attacker's values in the Patient level of every
    payload (their digest is then none the run recorded)."""
    for entry in entries.values():
        for payload in entry["payloads"]:
            blob = json.loads(payload["updatable"])
            blob.setdefault("Patient", {}).setdefault("DICOM", {}).update(ATTACKER)
            payload["updatable"] = json.dumps(blob)
    return json.dumps(entries).encode()


def nm_primary(repo: Repository) -> tuple[str, dict[str, Any]]:
    [primary] = [i for i, a in repo.study(NM_STUDY).items() if a["isPrimary"]]
    return primary, repo.document(primary)["Patient"]["DICOM"]


def test_3_a_forged_undo_file_committed_to_git_is_not_state(replaced: Repository) -> None:
    repo = replaced
    done = repo.run("apply", "--replace-primary", "--auto-approve")
    assert done.exit_code == 0, done.output
    [undo] = repo.state_keys("/undo/")
    run_id = undo.rsplit("/", 1)[1].removesuffix(".json")
    forged = json.dumps({NM: {"datastore_id": SEED_DATASTORE_ID, "payloads": [ATTACKER]}})
    commit(repo, f".reconciler/undo/{run_id}.undo.json", forged.encode())
    commit(repo, f".reconciler/state/{repo.scope.name}/undo/{run_id}.json", forged.encode())
    reverted = repo.run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    _, patient = nm_primary(repo)
    assert patient == repo.before["Patient"]["DICOM"]


def test_3_an_edited_undo_file_in_local_state_restores_nothing(replaced: Repository) -> None:
    repo = replaced
    done = repo.run("apply", "--replace-primary", "--auto-approve", ci=False)
    assert done.exit_code == 0, done.output
    [undo] = (repo.local_state() / "undo").glob("*.json")
    entries = json.loads(undo.read_text())
    undo.write_bytes(forge_undo(entries))
    primary, corrected = nm_primary(repo)
    refused = repo.run("revert", "--run", "last", "--auto-approve", ci=False)
    # Reverted image set by image set: this one is refused (3: not every image set was
    # reverted), with the reason; nothing is written.
    assert refused.exit_code == 3, refused.output
    assert "are not the ones the run recorded" in refused.output
    assert "0 update calls" in refused.output
    assert nm_primary(repo) == (primary, corrected)
    assert not {v for v in ATTACKER.values() if v in json.dumps(repo.documents())}


# -- 4: the projection cache (PHI) where git or an artifact would take it -------------------
def test_4_a_cache_folder_in_a_committed_folder_is_refused(applied: Repository) -> None:
    settings = applied.root / "reconciler.yaml"
    before = applied.outside()
    for folder in ("manifests/.cache", ".reconciler/../journal", "journal"):
        settings.write_text(settings.read_text() + f"cacheDir: {folder}\n")
        for command in (["plan"], ["apply", "--auto-approve"], ["drift"], ["validate"]):
            refused = applied.run(*command)
            assert refused.exit_code == 1, (command, refused.output)
            assert "cacheDir must lie in .reconciler/" in refused.output
        settings.write_text(settings.read_text().replace(f"cacheDir: {folder}\n", ""))
    assert applied.outside() == before


def test_4_a_committed_cache_link_is_not_followed(applied: Repository) -> None:
    leak = applied.root / "leak"
    leak.mkdir()
    cache = applied.root / ".reconciler" / "cache"
    for entry in sorted(cache.rglob("*"), reverse=True):
        entry.unlink() if entry.is_file() else entry.rmdir()
    cache.rmdir()
    cache.symlink_to("../leak")
    before = applied.outside()
    for command in (["plan"], ["apply", "--auto-approve"], ["drift"]):
        ran = applied.run(*command)
        assert ran.exit_code == 0, (command, ran.output)
        assert ".reconciler/cache is a symbolic link" in ran.stderr
    assert list(leak.rglob("*")) == []
    assert applied.outside() == before


# -- 5: settings a pull request changes ------------------------------------------------------
def test_5_journal_dir_fails_the_merge_time_apply_loudly(applied: Repository) -> None:
    settings = applied.root / "reconciler.yaml"
    settings.write_text(settings.read_text() + "journalDir: journal\n")
    refused = applied.run("apply", "--auto-approve")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("Error: reconciler.yaml:")
    assert "journalDir is no longer a setting" in refused.stderr
    assert "`reconciler state migrate --from-journal DIR`" in refused.stderr


@pytest.mark.parametrize("elsewhere", ["local", "s3://attacker-bucket/stolen"])
def test_5_state_in_reconciler_yaml_does_not_move_ci_state(
    repo: Repository, elsewhere: str
) -> None:
    settings = repo.root / "reconciler.yaml"
    settings.write_text(settings.read_text() + f"state: {elsewhere}\n")
    done = repo.run("apply", "--auto-approve")
    assert done.exit_code == 0, done.output
    assert len(repo.state_keys("/runs/")) == 2  # the run and the index, in the team's state
    assert not (repo.root / ".reconciler" / "state").exists()
    buckets = [b["Name"] for b in repo.bucket.s3.list_buckets()["Buckets"]]
    assert "attacker-bucket" not in buckets
    listed = repo.run("state", "list")
    assert listed.stdout.startswith(f"State: {repo.bucket.url('team')}/url/")
