"""The audit trail as it is written: each outcome audited before the command goes on,
a run stopped when its outcome cannot be audited (and audited by the next apply), one
chain per writer so writers at work at once on the same state (local or S3) never break
the trail, and a killed writer's log settled by the next one."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from audit_formats import check_records, local_trails

from reconciler import Session
from reconciler.audit import records, verify
from reconciler.audit.trail import INDEX, LogWriter, log_key
from reconciler.emulator.s3 import LocalS3, client
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.engine.apply import ImageSetOutcome
from reconciler.errors import ReconcilerError
from reconciler.state import Scope, State
from reconciler.state.s3 import S3Backend
from tests.state_support import local_state

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 4  # logs each writer opens, writes and closes
RECORDS = 5  # records per log


def _event(n: int) -> dict[str, Any]:
    return {
        "action": "apply",
        "at": f"2026-12-01T09:00:{n:02d}.000Z",
        "outcome": "UPDATED",
        "run_id": "20261201T090000Z-000000",
        "endpoint": "local",
        "datastore_id": "2aa75d103f7f45ab977b0e93f00e6fe9",
        "image_set_id": f"{n:032x}",
        "keys": ["Study.StudyDescription"],
        "who": {"principal": "arn:aws:iam::123456789012:user/t", "user": "u@h"},
    }


def _write_at_once(state: State, writers: int) -> None:
    """``writers`` threads, each opening, filling and closing ROUNDS logs of its own, in
    step with the others (a barrier before every open and every close), so their
    conditional writes of the index race."""
    barrier = threading.Barrier(writers, timeout=60)

    def write(me: int) -> None:
        for round_ in range(ROUNDS):
            log = LogWriter(state, f"20261201T0900{me:02d}Z-{round_:06x}", lock_id=None)
            barrier.wait()
            for n in range(RECORDS):
                log.write(_event(n))
            barrier.wait()
            log.close(ended=True)

    with ThreadPoolExecutor(max_workers=writers) as pool:
        for done in [pool.submit(write, me) for me in range(writers)]:
            done.result()  # a writer's failure, raised here


def _intact(state: State, writers: int) -> None:
    verdict = verify(state)
    assert verdict.problems == []
    assert (verdict.logs, verdict.records, verdict.open) == (
        writers * ROUNDS,
        writers * ROUNDS * RECORDS,
        0,
    )
    check_records(records(state))


def test_two_writers_at_once_on_local_state(tmp_path: Path) -> None:
    state = local_state(tmp_path)
    _write_at_once(state, 2)
    _intact(state, 2)


@pytest.fixture
def s3_state() -> Iterator[State]:
    name = f"reconciler-state-{uuid.uuid4().hex[:12]}"  # moto's buckets outlive its server
    with LocalS3() as s3:
        s3_client = client(s3.url)
        s3_client.create_bucket(Bucket=name)
        yield State(S3Backend(f"s3://{name}/team", s3_client), Scope("local/t", "t"))


def test_two_writers_at_once_on_s3_state(s3_state: State) -> None:
    _write_at_once(s3_state, 2)
    _intact(s3_state, 2)


@pytest.mark.tampered
def test_a_killed_writers_log_is_checked_to_its_last_record_then_settled(tmp_path: Path) -> None:
    state = local_state(tmp_path)
    killed = LogWriter(state, "20261201T090000Z-00000a", lock_id="gone")
    for n in range(3):
        killed.write(_event(n))
    path = tmp_path / ".reconciler" / "state" / "local" / "test" / log_key(killed.log_id)
    with path.open("ab") as log:
        log.write(b'{"format_version": 2, "log": "20261201T')  # the write the kill cut short
    verdict = verify(state)
    assert (verdict.problems, verdict.records, verdict.open) == ([], 3, 1)

    # The next writer settles it: its end is what the log held, and is checked from then on.
    following = LogWriter(state, "20261201T090100Z-00000b", lock_id=None)
    following.write(_event(9))
    following.close(ended=True)
    assert state.read_json(INDEX)["logs"][killed.log_id]["status"] == "interrupted"
    assert verify(state).problems == [] and verify(state).open == 0
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(lines[:2]) + b"\n")  # the last whole record removed
    assert verify(state).problems == [
        "audit/logs/20261201T090000Z-00000a.jsonl: record 3 was removed from the end (the "
        "index names record 3)"
    ]


@pytest.fixture
def project(tmp_path: Path, local: Any) -> Path:
    """The shipped manifests against the seeded ``local`` (3 image sets to change)."""
    seed(local.backend)
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    (tmp_path / "reconciler.yaml").write_text(
        f"endpoint: {local.url}\ndatastoreId: {SEED_DATASTORE_ID}\n"
        "rateLimits: {UpdateImageSetMetadata: 100}\n"
    )
    (tmp_path / ".git").mkdir()
    return tmp_path


def _audited(root: Path) -> set[tuple[str, str]]:
    """(image set, outcome) of every record, read as another process would."""
    return {(r["image_set_id"], r["outcome"]) for s in local_trails(root) for r in records(s)}


def test_each_outcome_is_audited_before_the_apply_goes_on(project: Path) -> None:
    seen: list[bool] = []

    def progress(outcome: ImageSetOutcome, done: int, total: int) -> None:
        seen.append((outcome.image_set_id, outcome.outcome.value) in _audited(project))

    with Session(project_dir=project) as session:
        result = session.apply(["manifests"], progress=progress, parallelism=1)
    assert result.report is not None and len(result.report.outcomes) == 3
    assert seen == [True, True, True]


def test_an_outcome_that_cannot_be_audited_stops_the_run_and_the_next_apply_audits_it(
    project: Path,
) -> None:
    with Session(project_dir=project) as session:
        session.state.put("audit/logs", b"a file where the logs' folder belongs")
        with pytest.raises(ReconcilerError, match="the audit trail cannot be written"):
            session.apply(["manifests"], parallelism=1)
        session.state.delete("audit/logs")
        first = session.runs.load("last")
    # The first image set's call was sent, its outcome neither audited nor journaled;
    # nothing more was sent.
    [sent] = first.intents
    assert first.results == () and first.incomplete
    assert _audited(project) == set()

    with Session(project_dir=project) as session:
        again = session.apply(["manifests"])
    assert again.report is not None
    assert {o.outcome.value for o in again.report.outcomes} == {"UPDATED"}
    assert len(again.report.outcomes) == 2  # the first one was settled, not sent again
    trail = [r for s in local_trails(project) for r in records(s)]
    [settled] = [r for r in trail if r["outcome"] == "RECOVERED"]
    assert settled["image_set_id"] == sent.image_set_id
    assert settled["settles"] == f"run {first.run_id} call 1/1"
    assert settled["keys"] == list(sent.keys) and settled["action"] == "apply"
    assert settled["study_uid"] is not None
    assert len(trail) == 3


@pytest.mark.tampered
def test_verify_names_a_removed_and_an_inserted_log(tmp_path: Path) -> None:
    state = local_state(tmp_path)
    for log_id in ("20261201T090000Z-00000a", "20261201T090100Z-00000b"):
        log = LogWriter(state, log_id, lock_id=None)
        log.write(_event(1))
        log.close(ended=True)
    logs = tmp_path / ".reconciler" / "state" / "local" / "test" / "audit" / "logs"
    (logs / "20261201T090100Z-00000b.jsonl").rename(logs / "20261201T090200Z-00000c.jsonl")
    assert verify(state).problems == [
        "audit/logs/20261201T090100Z-00000b.jsonl was removed: the index lists 1 record in it",
        "audit/logs/20261201T090200Z-00000c.jsonl: a log the audit index does not list (inserted)",
        "audit/logs/20261201T090200Z-00000c.jsonl:1: record 1 names log "
        "'20261201T090100Z-00000b' (moved)",
    ]
