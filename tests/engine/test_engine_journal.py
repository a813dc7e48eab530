"""The run journal: written append-only and fsynced per record, read back after crashes."""

from __future__ import annotations

import errno
import itertools
import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler import __version__
from reconciler.engine import journal as journal_module
from reconciler.engine.journal import (
    Changed,
    Journal,
    JournalError,
    Outcome,
    Record,
    ResultRecord,
    RunContext,
    RunHeader,
    RunStore,
)
from reconciler.errors import ReconcilerError
from tests.state_support import log_path, run_store

DS = "2aa75d103f7f45ab977b0e93f00e6fe9"
A = "a" * 32
B = "b" * 32
C = "c" * 32
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def ticking(start: datetime = T0, step_ms: int = 10) -> Callable[[], datetime]:
    """A clock that moves ``step_ms`` on every reading."""
    counter = itertools.count()
    return lambda: start + timedelta(milliseconds=step_ms * next(counter))


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Run ID suffixes handed out in order (the list can be refilled by the test)."""
    queue: list[str] = []
    monkeypatch.setattr(journal_module, "_token", lambda: queue.pop(0))
    yield queue


def start(root: Path, clock: Callable[[], datetime] | None = None, **kwargs: Any) -> Journal:
    """A journal by alice on ci-7 against the local endpoint, on a ticking clock, in
    the local state under ``root``."""
    defaults: dict[str, Any] = {
        "command": "apply",
        "endpoint": "local",
        "user": "alice",
        "host": "ci-7",
        "clock": clock or ticking(),
    }
    return Journal.start(run_store(root), **(defaults | kwargs))


def path_of(journal: Journal) -> Path:
    return log_path(journal._store, journal)


def lines(journal: Journal) -> list[dict[str, object]]:
    return [json.loads(line) for line in path_of(journal).read_text().splitlines()]


def load_run(root: Path, wanted: str) -> Any:
    return run_store(root).load(wanted)


def list_runs(root: Path) -> Any:
    return run_store(root).summaries()


def read_run(journal: Journal) -> Any:
    return run_store_of(journal).read(journal.run_id)


def run_store_of(journal: Journal) -> RunStore:
    return journal._store


def killed(journal: Journal) -> None:
    """The process writing ``journal`` dies (SIGKILL): its log is left as it is, and the
    index still says the run is open."""
    journal._log.close()


# -- writing and reading back ------------------------------------------------------
def test_round_trip(tmp_path: Path, tokens: list[str]) -> None:
    tokens.append("1a2b3c")
    with start(tmp_path, manifest_digest="m" * 64, plan_digest="p" * 64) as journal:
        journal.intent(A, DS, "1", "d" * 64, keys=["Patient.PatientName", "Study.StudyID"])
        journal.result(A, DS, "1", "2", Outcome.UPDATED)
        journal.result(B, DS, "4", "5", Outcome.STALE, message="version moved", call=0)
    assert journal.run_id == "20250102T030405Z-1a2b3c"
    assert path_of(journal).name == "20250102T030405Z-1a2b3c.jsonl"

    records = lines(journal)
    assert records[0] == {
        "type": "run", "run_id": "20250102T030405Z-1a2b3c", "command": "apply",
        "started_at": "2025-01-02T03:04:05.000Z", "user": "alice", "host": "ci-7",
        "reconciler_version": __version__, "endpoint": "local",
        "manifest_digest": "m" * 64, "plan_digest": "p" * 64, "parent_run_id": None,
        "format_version": 2,
    }  # fmt: skip
    assert records[1] == {
        "type": "intent", "image_set_id": A, "datastore_id": DS, "from_version": "1",
        "payload_digest": "d" * 64, "call": 1, "calls": 1,
        "keys": ["Patient.PatientName", "Study.StudyID"], "at": "2025-01-02T03:04:05.010Z",
    }  # fmt: skip
    assert records[2]["outcome"] == "UPDATED" and records[2]["to_version"] == "2"
    assert records[-1] == {"type": "end", "finished_at": "2025-01-02T03:04:05.040Z",
                           "summary": {"UPDATED": 1, "STALE": 1}}  # fmt: skip
    # Keys sorted, one compact object per line: stable for diffs and grep.
    first = path_of(journal).read_text().splitlines()[1]
    assert first == json.dumps(records[1], sort_keys=True, separators=(",", ":"))

    run = load_run(tmp_path, journal.run_id)
    assert run.header == journal.header
    assert [i.keys for i in run.intents] == [("Patient.PatientName", "Study.StudyID")]
    assert [(r.image_set_id, r.outcome, r.message) for r in run.results] == [
        (A, Outcome.UPDATED, None), (B, Outcome.STALE, "version moved"),
    ]  # fmt: skip
    assert run.end is not None and run.end.summary == {"UPDATED": 1, "STALE": 1}
    assert not run.incomplete and not run.truncated and run.pending() == []
    assert run.counts() == {Outcome.UPDATED: 1, Outcome.STALE: 1}


def test_revert_header_names_the_run_it_reverts(tmp_path: Path) -> None:
    parent = "20250102T030405Z-1a2b3c"
    with start(tmp_path, command="revert", parent_run_id=parent, endpoint="aws (us-east-1)") as j:
        pass
    header = load_run(tmp_path, "last").header
    assert (header.command, header.parent_run_id, header.endpoint) == (
        "revert", parent, "aws (us-east-1)",
    )  # fmt: skip
    assert path_of(j).exists()


def test_each_record_is_fsynced_before_the_call_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files: list[int] = []  # fsyncs of the run's log (the index and folders are synced too)
    real_fsync = os.fsync

    def counting(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".jsonl"):
            files.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting)
    journal = start(tmp_path)
    # Checked after each call: every record is on disk before the caller goes on.
    assert len(files) == 1 == len(lines(journal))
    journal.intent(A, DS, "1", "d")
    assert len(files) == 2 == len(lines(journal))
    journal.result(A, DS, "1", "2", Outcome.UPDATED)
    assert len(files) == 3 == len(lines(journal))
    journal.end()
    assert len(files) == 4 == len(lines(journal))


def test_files_are_0600_and_new_folders_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        with start(tmp_path) as journal:
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(path_of(journal).stat().st_mode) == 0o600
    folder = path_of(journal).parent
    while folder != tmp_path:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
        folder = folder.parent


def test_never_overwrites_an_existing_journal(tmp_path: Path, tokens: list[str]) -> None:
    existing = log_path(run_store(tmp_path), "20250102T030405Z-aaaaaa")
    existing.parent.mkdir(parents=True, mode=0o700)
    existing.write_text("someone else's run\n")
    tokens.extend(["aaaaaa", "bbbbbb"])
    with start(tmp_path) as journal:
        pass
    assert journal.run_id == "20250102T030405Z-bbbbbb"
    assert existing.read_text() == "someone else's run\n"


def test_a_failed_write_stops_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = start(tmp_path)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(JournalError, match="no space left on the device"):
        journal.intent(A, DS, "1", "d")
    monkeypatch.undo()
    # Nothing more is appended after a line that may be half-written.
    with pytest.raises(JournalError, match="failed earlier"):
        journal.result(A, DS, "1", None, Outcome.ERROR)


class Refusing:
    """An observer (the audit trail) that records the journal's records it is told of,
    and cannot record results."""

    def __init__(self) -> None:
        self.told: list[str] = []
        self.closes: list[bool] = []

    def recording(self, header: RunHeader, record: Record) -> None:
        if isinstance(record, ResultRecord):
            raise ReconcilerError("the audit trail cannot be written (no space)")
        self.told.append(type(record).__name__)

    def closed(self, header: RunHeader, *, ended: bool) -> None:
        self.closes.append(ended)


def test_an_observer_that_fails_stops_the_run_before_the_record(tmp_path: Path) -> None:
    observer = Refusing()
    journal = start(tmp_path, context=RunContext(observer=observer))
    journal.intent(A, DS, "1", "d", keys=["Study.StudyDescription"])
    with pytest.raises(ReconcilerError, match="audit trail cannot be written"):
        journal.result(A, DS, "1", "2", Outcome.UPDATED)
    assert observer.told == ["RunHeader", "IntentRecord"] and observer.closes == [False]
    with pytest.raises(JournalError, match="failed earlier: the audit trail"):
        journal.intent(B, DS, "1", "d")
    # The result was not journaled: the call stays pending, for the next apply to settle.
    run = load_run(tmp_path, journal.run_id)
    assert run.incomplete and [i.image_set_id for i in run.pending()] == [A]


def test_why_records_leave_out_what_was_not_given(tmp_path: Path) -> None:
    with start(tmp_path) as journal:
        journal.why("ct1-study-description", "RIS names studies so", None)
        journal.why(None, None, "HIM-9")
    lines = [json.loads(line) for line in path_of(journal).read_text().splitlines()]
    assert [sorted(line) for line in lines if line["type"] == "why"] == [
        ["at", "manifest", "reason", "type"],
        ["at", "ticket", "type"],
    ]
    run = load_run(tmp_path, journal.run_id)
    assert [(w.manifest, w.reason, w.ticket) for w in run.whys] == [
        ("ct1-study-description", "RIS names studies so", None),
        (None, None, "HIM-9"),
    ]
    assert run.header.format_version == 2


def test_refuses_what_must_not_be_recorded(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="credentials"):
        start(tmp_path, endpoint="https://user:secret@ahi.example.com")
    with pytest.raises(ValueError, match="command"):
        start(tmp_path, command="plan")
    journal = start(tmp_path)
    with pytest.raises(ValueError, match="attribute keys") as caught:
        journal.intent(A, DS, "1", "d", keys=["Patient.PatientName\nDOE^JANE"])
    assert "DOE" not in str(caught.value)
    with pytest.raises(ValueError, match="call"):
        journal.intent(A, DS, "1", "d", call=3, calls=2)


def test_records_hold_keys_ids_versions_and_outcomes_only(tmp_path: Path) -> None:
    """The record shapes have no field for a value: PHI cannot reach the journal."""
    with start(tmp_path) as journal:
        journal.intent(A, DS, "1", "d", keys=["Patient.PatientName"])
        journal.result(A, DS, "1", "2", Outcome.UPDATED, message="done")
    fields = {str(r["type"]): set(r) for r in lines(journal)}
    assert fields == {
        "run": {"type", "run_id", "command", "started_at", "user", "host",
                "reconciler_version", "endpoint", "manifest_digest", "plan_digest",
                "parent_run_id", "format_version"},
        "intent": {"type", "image_set_id", "datastore_id", "from_version", "payload_digest",
                   "call", "calls", "keys", "at"},
        "result": {"type", "image_set_id", "datastore_id", "from_version", "to_version",
                   "outcome", "message", "call", "at"},
        "end": {"type", "finished_at", "summary"},
    }  # fmt: skip
    text = path_of(journal).read_text()
    assert "Patient.PatientName" in text and "DOE" not in text
    assert text.isascii()


def test_service_messages_are_bounded(tmp_path: Path) -> None:
    with start(tmp_path) as journal:
        record = journal.result(A, DS, "1", None, Outcome.ERROR, message="x" * 10_000)
    assert record.message is not None and len(record.message) == journal_module.MAX_MESSAGE_CHARS


# -- crashes and interruptions -----------------------------------------------------
def test_an_exception_leaves_the_run_without_end(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), start(tmp_path) as journal:
        journal.intent(A, DS, "1", "d")
        raise KeyboardInterrupt
    run = load_run(tmp_path, journal.run_id)
    assert run.end is None and run.incomplete and run.status == "interrupted"
    [summary] = list_runs(tmp_path)
    assert (summary.status, summary.incomplete, summary.finished_at) == ("interrupted", True, None)
    assert summary.pending == 1


def test_a_truncated_last_line_is_skipped_and_the_intent_is_pending(tmp_path: Path) -> None:
    journal = start(tmp_path)
    journal.intent(A, DS, "1", "d1", keys=["Study.StudyDescription"])
    journal.result(A, DS, "1", "2", Outcome.UPDATED)
    sent = journal.intent(B, DS, "7", "d2", keys=["Patient.PatientName"])
    killed(journal)  # the process dies here: no result for B, no end
    whole = json.dumps(
        {"type": "result", "image_set_id": B, "datastore_id": DS, "from_version": "7",
         "to_version": "8", "outcome": "UPDATED", "message": None, "call": 1, "at": "x"},
        sort_keys=True, separators=(",", ":"),
    )  # fmt: skip
    with path_of(journal).open("ab") as stream:
        stream.write(whole[: len(whole) // 2].encode())

    run = read_run(journal)
    assert run.truncated and run.incomplete
    assert run.pending() == [sent]
    assert [r.image_set_id for r in run.results] == [A]
    assert run.changed() == [Changed(A, DS, "1", "2")]
    [entry_a, entry_b] = run.image_sets()
    assert (entry_a.outcome, entry_b.outcome, entry_b.to_version) == (Outcome.UPDATED, None, None)
    [summary] = list_runs(tmp_path)
    assert (summary.status, summary.truncated, summary.pending) == ("interrupted", True, 1)


def test_a_crash_before_the_header_is_reported_not_hidden(tmp_path: Path) -> None:
    journal = start(tmp_path)
    killed(journal)
    path_of(journal).write_bytes(b'{"type":"run","run_')
    with pytest.raises(JournalError, match="before its header"):
        load_run(tmp_path, "last")
    [summary] = list_runs(tmp_path)
    assert summary.status == "unreadable"
    assert summary.problem is not None and "header" in summary.problem


def test_a_malformed_line_before_the_last_is_an_error_at_file_line(tmp_path: Path) -> None:
    with start(tmp_path) as journal:
        journal.intent(A, DS, "1", "d")
    text = path_of(journal).read_text().splitlines()
    path_of(journal).write_text("\n".join([text[0], "{not json", *text[1:]]) + "\n")
    with pytest.raises(JournalError) as caught:
        read_run(journal)
    assert caught.value.location == f"{journal.location}:2"
    assert "not a JSON record" in str(caught.value)


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"type": "result", "outcome": "MAYBE"}, "unknown outcome 'MAYBE'"),
        ({"type": "comment"}, "unknown record type 'comment'"),
        ({"type": "intent", "image_set_id": 7}, "image_set_id must be text"),
    ],
)
def test_a_whole_but_wrong_last_record_is_an_error_too(
    tmp_path: Path, record: dict[str, object], problem: str
) -> None:
    """Only a cut-short line is a crash; a complete line of the wrong shape is not."""
    journal = start(tmp_path)
    journal.close()
    with path_of(journal).open("a") as stream:
        stream.write(json.dumps(record) + "\n")
    with pytest.raises(JournalError, match=problem) as caught:
        read_run(journal)
    assert caught.value.location == f"{journal.location}:2"


def test_records_after_the_end_or_a_second_header_are_errors(tmp_path: Path) -> None:
    with start(tmp_path) as journal:
        pass
    header, end = path_of(journal).read_text().splitlines()
    path_of(journal).write_text(f"{header}\n{end}\n{end}\n")
    with pytest.raises(JournalError, match="after the end"):
        read_run(journal)
    path_of(journal).write_text(f"{header}\n{header}\n")
    with pytest.raises(JournalError, match="second run header"):
        read_run(journal)


def test_a_newer_journal_format_asks_for_an_upgrade(tmp_path: Path) -> None:
    with start(tmp_path) as journal:
        pass
    header = json.loads(path_of(journal).read_text().splitlines()[0])
    header["format_version"] = 3
    path_of(journal).write_text(json.dumps(header) + "\n")
    with pytest.raises(JournalError, match="upgrade reconciler"):
        read_run(journal)


# -- what revert and recovery read ---------------------------------------------------
def test_changed_spans_every_call_of_an_image_set(tmp_path: Path) -> None:
    with start(tmp_path) as journal:
        journal.intent(A, DS, "1", "a1", call=1, calls=2, keys=["Study.StudyDescription"])
        journal.result(A, DS, "1", "2", Outcome.UPDATED, call=1)
        journal.intent(B, DS, "5", "b1")
        journal.result(B, DS, "5", "6", Outcome.UPDATED)
        journal.intent(A, DS, "2", "a2", call=2, calls=2, keys=["Series.1.2.3.SeriesNumber"])
        journal.result(A, DS, "2", "3", Outcome.UPDATED, call=2)
        journal.intent(C, DS, "1", "c1", call=1, calls=2)
        journal.result(C, DS, "1", "2", Outcome.UPDATED, call=1)
        journal.intent(C, DS, "2", "c2", call=2, calls=2)
        journal.result(C, DS, "2", "3", Outcome.UPDATE_FAILED, message="bad", call=2)
        journal.result("d" * 32, DS, "9", "9", Outcome.STALE, call=0)
    run = load_run(tmp_path, "last")
    assert run.changed() == [
        Changed(A, DS, "1", "3"),
        Changed(B, DS, "5", "6"),
        Changed(C, DS, "1", "2"),  # call 2 failed: revert goes back from where call 1 left it
    ]
    entry = run.image_sets()[0]
    assert (entry.from_version, entry.to_version, entry.calls) == ("1", "3", 2)
    assert entry.keys == ("Study.StudyDescription", "Series.1.2.3.SeriesNumber")
    assert run.counts() == {Outcome.UPDATED: 2, Outcome.UPDATE_FAILED: 1, Outcome.STALE: 1}


def test_one_result_for_the_last_call_settles_the_earlier_calls(tmp_path: Path) -> None:
    """Apply may record one result per image set, numbered by its last call."""
    with start(tmp_path) as journal:
        journal.intent(A, DS, "1", "a1", call=1, calls=2)
        journal.intent(A, DS, "2", "a2", call=2, calls=2)
        journal.result(A, DS, "1", "3", Outcome.UPDATED, call=2)
    run = load_run(tmp_path, "last")
    assert run.pending() == []
    assert run.changed() == [Changed(A, DS, "1", "3")]


def test_recovered_results_that_name_a_new_version_count_as_changes(tmp_path: Path) -> None:
    with start(tmp_path) as journal:
        journal.result(A, DS, "1", "2", Outcome.RECOVERED)  # the interrupted call did land
        journal.result(B, DS, "4", "4", Outcome.RECOVERED)  # it did not
        journal.result(C, DS, "4", None, Outcome.RECOVERED)
    assert load_run(tmp_path, "last").changed() == [Changed(A, DS, "1", "2")]


def test_pending_matches_image_set_and_call(tmp_path: Path) -> None:
    journal = start(tmp_path)
    journal.intent(A, DS, "1", "a1", call=1, calls=2)
    journal.result(A, DS, "1", "2", Outcome.UPDATED, call=1)
    second = journal.intent(A, DS, "2", "a2", call=2, calls=2)
    other = journal.intent(B, DS, "3", "b1")
    journal.result(B, DS, "3", None, Outcome.ERROR, message="connection reset", call=0)
    journal.close()
    # call=0 says "decided without a call"; it does not settle a call that was sent.
    assert load_run(tmp_path, "last").pending() == [second, other]


def test_concurrent_writers_produce_whole_lines(tmp_path: Path) -> None:
    per_thread = 50
    journal = start(tmp_path, clock=lambda: datetime.now(UTC))
    barrier = threading.Barrier(8)

    def work(worker: int) -> None:
        barrier.wait()
        for n in range(per_thread):
            image_set = f"{worker:02d}{n:030d}"
            journal.intent(image_set, DS, "1", "d" * 64, keys=["Study.StudyDescription"] * 20)
            journal.result(image_set, DS, "1", "2", Outcome.UPDATED, message="m" * 500)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    journal.end()

    raw = path_of(journal).read_text().splitlines()
    assert len(raw) == 1 + 8 * per_thread * 2 + 1
    assert all(isinstance(json.loads(line), dict) for line in raw)
    run = read_run(journal)
    assert len(run.changed()) == 8 * per_thread and run.pending() == []
    assert run.end is not None and run.end.summary == {"UPDATED": 8 * per_thread}


# -- finding runs --------------------------------------------------------------------
def make_runs(directory: Path, tokens: list[str], seconds: list[int]) -> list[str]:
    ids = []
    for n, offset in enumerate(seconds):
        tokens.append(f"{n:06x}")
        with start(directory, clock=ticking(T0 + timedelta(seconds=offset))) as journal:
            journal.result(A, DS, "1", "2", Outcome.UPDATED)
        ids.append(journal.run_id)
    return ids


def test_list_runs_newest_first(tmp_path: Path, tokens: list[str]) -> None:
    """Newest is the run that reached the state last (the index's sequence), whatever
    the clock of the machine that wrote it said."""
    first, second, third = make_runs(tmp_path, tokens, [0, 3600, 60])
    summaries = list_runs(tmp_path)
    assert [s.run_id for s in summaries] == [third, second, first]
    top = summaries[1]
    assert (top.command, top.user, top.host, top.image_sets, top.incomplete) == (
        "apply", "alice", "ci-7", 1, False,
    )  # fmt: skip
    assert top.counts == {Outcome.UPDATED: 1}
    assert top.started_at == "2025-01-02T04:04:05.000Z"
    assert list_runs(tmp_path / "missing") == []


def test_last_follows_the_service_clock_not_this_machines(
    tmp_path: Path, tokens: list[str]
) -> None:
    """A machine a day ahead does not stay `last`: runs are ordered by the service's
    time (its Date header) where the run recorded it."""
    tokens.extend(["aaaaaa", "bbbbbb"])
    ahead = start(
        tmp_path,
        clock=ticking(T0 + timedelta(days=1)),
        context=RunContext(service_time=lambda: "2025-01-02T03:00:00.000Z"),
    )
    ahead.end()
    later = start(
        tmp_path,
        clock=ticking(T0),
        context=RunContext(service_time=lambda: "2025-01-02T03:10:00.000Z"),
    )
    later.end()
    assert run_store(tmp_path).resolve("last").run_id == later.run_id
    assert [s.run_id for s in list_runs(tmp_path)] == [later.run_id, ahead.run_id]


def test_last_is_the_run_that_ended_last_when_service_times_tie(
    tmp_path: Path, tokens: list[str]
) -> None:
    """The service's Date has one-second steps: two runs in one second can be estimated
    in the wrong order. The index's sequence (the order runs reached the state) decides;
    an index rebuilt from the logs falls back to the service's time."""
    tokens.extend(["aaaaaa", "bbbbbb", "cccccc"])
    earlier = start(tmp_path, context=RunContext(service_time=lambda: "2025-01-02T03:00:35.001Z"))
    earlier.end()
    later = start(tmp_path, context=RunContext(service_time=lambda: "2025-01-02T03:00:35.000Z"))
    later.end()
    assert run_store(tmp_path).resolve("last").run_id == later.run_id
    store = run_store(tmp_path)
    store.state.delete("runs/index.json")
    assert store.resolve("last").run_id == earlier.run_id  # rebuilt: by the service's time
    third = start(tmp_path, context=RunContext(service_time=lambda: "2025-01-02T03:00:34.000Z"))
    third.end()
    assert run_store(tmp_path).resolve("last").run_id == third.run_id


def test_last_means_the_most_recent_even_within_one_second(
    tmp_path: Path, tokens: list[str]
) -> None:
    # Same second, and the later run draws the smaller random suffix.
    tokens.extend(["ffffff", "000000"])
    first = start(tmp_path, clock=ticking(T0 + timedelta(milliseconds=100)))
    first.end()
    second = start(tmp_path, clock=ticking(T0 + timedelta(milliseconds=900)))
    second.end()
    assert run_store(tmp_path).resolve("last").run_id == second.run_id
    assert load_run(tmp_path, "LAST").run_id == second.run_id
    assert [s.run_id for s in list_runs(tmp_path)] == [second.run_id, first.run_id]


def test_a_unique_prefix_names_a_run(tmp_path: Path, tokens: list[str]) -> None:
    older, newer = make_runs(tmp_path, tokens, [0, 86400])
    assert load_run(tmp_path, "20250103").run_id == newer
    assert load_run(tmp_path, older).run_id == older
    assert run_store(tmp_path).resolve(older[:-2]).run_id == older


def test_an_ambiguous_prefix_lists_the_matches(tmp_path: Path, tokens: list[str]) -> None:
    first, second = make_runs(tmp_path, tokens, [0, 1])
    with pytest.raises(JournalError) as caught:
        load_run(tmp_path, "20250102T0304")
    message = str(caught.value)
    assert "matches 2 runs" in message and first in message and second in message


def test_an_unknown_run_says_how_to_see_the_runs(tmp_path: Path, tokens: list[str]) -> None:
    make_runs(tmp_path, tokens, [0])
    with pytest.raises(JournalError, match=r"no run '2024' in .*`reconciler runs`"):
        load_run(tmp_path, "2024")
    with pytest.raises(JournalError, match="no runs yet"):
        load_run(tmp_path / "empty", "last")
    with pytest.raises(JournalError, match="empty"):
        load_run(tmp_path, "  ")
    # Only runs the index lists are ever opened: a path is just an unknown ID.
    with pytest.raises(JournalError, match="no run"):
        load_run(tmp_path, "../../etc/passwd")
