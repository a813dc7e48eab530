"""The run index: commands read one index object and only the run logs that matter,
however many runs the state holds, and an index entry is never trusted over its log.

Cost is counted, not timed: a spy counts the backend's reads of run logs and of the
index object. Each test runs on the local and on the S3 backend (moto's S3 server),
except those that need hundreds of runs, which run locally (what they count is the
same logic on either backend; writing hundreds of objects to moto is not).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.journal import ENDED, INTERRUPTED, OPEN, JournalError, RunStore
from reconciler.engine.journal.index import INDEX_KEY, encode, facts_of, load_entries, update
from reconciler.engine.journal.reader import parse_run
from reconciler.engine.journal.store import log_key
from reconciler.engine.recovery import open_calls
from reconciler.engine.replace import replacements, resume_interrupted
from reconciler.engine.revert import newest_changing_run, revert_runs_of
from reconciler.state import Appender, Backend, Blob, State
from reconciler.state.local import LocalBackend
from tests.state_support import SCOPE, s3_state

DS = "2aa75d103f7f45ab977b0e93f00e6fe9"


@dataclass
class Reads:
    """Reads of run logs and of the index, by key."""

    logs: list[str] = field(default_factory=list)
    index: int = 0

    def clear(self) -> None:
        self.logs.clear()
        self.index = 0


class Counting:
    """A backend that counts the reads of run logs and of the index, then does them."""

    def __init__(self, inner: Backend, reads: Reads) -> None:
        self.inner = inner
        self.reads = reads

    @property
    def location(self) -> str:
        return self.inner.location

    def get(self, key: str) -> Blob | None:
        if key.endswith("index.json"):
            self.reads.index += 1
        elif key.endswith(".jsonl"):
            self.reads.logs.append(key.rsplit("/", 1)[-1])
        return self.inner.get(key)

    def read_log(self, key: str) -> bytes | None:
        self.reads.logs.append(key.rsplit("/", 1)[-1])
        return self.inner.read_log(key)

    def put(self, key: str, data: bytes, **conditions: Any) -> str:
        return self.inner.put(key, data, **conditions)

    def delete(self, key: str, *, if_tag: str | None = None) -> None:
        self.inner.delete(key, if_tag=if_tag)

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)

    def append(self, key: str) -> Appender:
        return self.inner.append(key)


@pytest.fixture
def reads() -> Reads:
    return Reads()


@pytest.fixture(params=["local", "s3"])
def runs(request: pytest.FixtureRequest, tmp_path: Path, reads: Reads) -> RunStore:
    if request.param == "local":
        inner: Backend = LocalBackend(tmp_path / ".reconciler" / "state", tmp_path)
    else:
        inner = s3_state(request.getfixturevalue("state_bucket")).backend
    return RunStore(State(Counting(inner, reads), SCOPE))


@pytest.fixture
def many(tmp_path: Path, reads: Reads) -> RunStore:
    """Local runs only: for the tests that write hundreds of runs."""
    inner = LocalBackend(tmp_path / ".reconciler" / "state", tmp_path)
    return RunStore(State(Counting(inner, reads), SCOPE))


def run_id(n: int) -> str:
    day, rest = divmod(n, 86400)
    return (
        f"2025{1 + day // 28:02d}{1 + day % 28:02d}T{rest // 3600:02d}{rest // 60 % 60:02d}"
        f"{rest % 60:02d}Z-{n:06x}"
    )


def stamp(rid: str, ms: int = 0) -> str:
    d, t = rid[:8], rid[9:15]
    return f"{d[:4]}-{d[4:6]}-{d[6:]}T{t[:2]}:{t[2:4]}:{t[4:]}.{ms:03d}Z"


def header(rid: str, *, command: str = "apply", parent: str | None = None) -> dict[str, Any]:
    return {
        "type": "run", "run_id": rid, "command": command, "started_at": stamp(rid),
        "user": "alice", "host": "ci-7", "reconciler_version": "0", "endpoint": "local",
        "manifest_digest": None, "plan_digest": None, "parent_run_id": parent,
        "format_version": 2, "service_time": stamp(rid),
    }  # fmt: skip


def intent(rid: str, image_set: str, version: str = "1") -> dict[str, Any]:
    return {
        "type": "intent", "image_set_id": image_set, "datastore_id": DS,
        "from_version": version, "payload_digest": "d", "call": 1, "calls": 1,
        "keys": ["Study.StudyDescription"], "at": stamp(rid, 1),
    }  # fmt: skip


def result(rid: str, image_set: str, outcome: str = "UPDATED", message: str | None = None
           ) -> dict[str, Any]:  # fmt: skip
    to = "2" if outcome in ("UPDATED", "RECOVERED") else "1"
    return {
        "type": "result", "image_set_id": image_set, "datastore_id": DS, "from_version": "1",
        "to_version": to, "outcome": outcome, "message": message,
        "call": 0 if outcome == "RECOVERED" else 1, "at": stamp(rid, 2),
    }  # fmt: skip


def step(rid: str, old: str, name: str, new: str | None = None) -> dict[str, Any]:
    return {
        "type": "step", "image_set_id": old, "datastore_id": DS, "step": name,
        "phase": "done", "copy_id": "c" * 32, "new_id": new, "at": stamp(rid, 1),
    }  # fmt: skip


def end(rid: str) -> dict[str, Any]:
    return {"type": "end", "finished_at": stamp(rid, 3), "summary": {}}


def write(store: RunStore, rid: str, records: list[dict[str, Any]], *, index: bool = True) -> None:
    """A run's log as a writer leaves it, entered in the index (``ended`` when it has an
    end record, else ``open``: a writer that was killed)."""
    lines = [json.dumps(r, sort_keys=True).encode() + b"\n" for r in records]
    data = b"".join(lines)
    if records[-1]["type"] == "end":
        store.state.put(log_key(rid), data)
    else:  # killed mid-run: a log never closed (on S3, one object per line)
        log = store.state.append(log_key(rid))
        for line in lines:
            log.write(line)
    if index:
        run = parse_run(store.state.shown(log_key(rid)), rid, data)
        status = ENDED if run.end is not None else OPEN
        facts = facts_of(run, status, None if status == OPEN else _digest(data))
        update(store.state, lambda entries: entries.__setitem__(rid, encode(facts)))


def _digest(data: bytes) -> str:
    from reconciler.engine.journal.index import digest

    return digest(data)


def noop_runs(store: RunStore, count: int, start: int = 0) -> list[str]:
    """``count`` completed runs that changed nothing (a STALE result each)."""
    entries = {}
    ids = []
    for n in range(start, start + count):
        rid = run_id(n)
        records = [header(rid), result(rid, f"{n:032x}", "STALE"), end(rid)]
        data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
        store.state.put(log_key(rid), data)
        run = parse_run(store.state.shown(log_key(rid)), rid, data)
        entries[rid] = encode(facts_of(run, ENDED, _digest(data)))
        ids.append(rid)
    update(store.state, lambda index: index.update(entries))
    return ids


# -- one index object, whatever the number of runs ------------------------------------------
def test_listing_reads_the_index_and_no_finished_log(many: RunStore, reads: Reads) -> None:
    ids = noop_runs(many, 300)
    reads.clear()
    summaries = many.summaries()
    assert [s.run_id for s in summaries] == list(reversed(ids))
    assert (reads.index, reads.logs) == (1, [])
    truth = [many.read(rid).summary().as_dict() for rid in reversed(ids)]
    assert [s.as_dict() for s in summaries] == truth


def test_open_runs_are_read_from_their_logs(runs: RunStore, reads: Reads) -> None:
    noop_runs(runs, 50)
    killed = run_id(50)
    write(runs, killed, [header(killed), intent(killed, "a" * 32)])
    reads.clear()
    facts = {f.run_id: f for f in runs.facts()}
    assert reads.logs == [f"{killed}.jsonl"]
    assert facts[killed].status == OPEN and facts[killed].summary.pending == 1


def test_an_edited_entry_is_not_used_its_log_is(runs: RunStore, reads: Reads) -> None:
    """An index entry's digest covers its content: one edited to claim a replace (or
    anything) is a miss, and the run's own log answers."""
    [rid] = noop_runs(runs, 1)

    def forge(entries: dict[str, Any]) -> None:
        entries[rid]["replacements"] = {"a" * 32: "f" * 32}
        entries[rid]["changed"] = True

    update(runs.state, forge)
    reads.clear()
    [facts] = runs.facts()
    assert reads.logs == [f"{rid}.jsonl"]
    assert dict(facts.replacements) == {} and not facts.changed
    assert replacements(runs) == {}


def test_a_log_changed_after_its_run_ended_is_never_acted_on(runs: RunStore) -> None:
    rid = run_id(0)
    write(runs, rid, [header(rid), intent(rid, "a" * 32), result(rid, "a" * 32), end(rid)])
    data = runs.state.read_log(log_key(rid))
    assert data is not None and b'"to_version": "2"' in data
    runs.state.put(log_key(rid), data.replace(b'"to_version": "2"', b'"to_version": "1"'))
    with pytest.raises(JournalError, match="changed after the run ended"):
        runs.load(rid)


def test_a_missing_or_garbage_index_is_rebuilt_from_the_logs(runs: RunStore, reads: Reads) -> None:
    ids = noop_runs(runs, 20)
    for garbage in (None, b"{not json", b'{"index_format": 99, "runs": {}}', b"[" * 100_000):
        if garbage is None:
            runs.state.delete(INDEX_KEY)
        else:
            runs.state.put(INDEX_KEY, garbage)
        reads.clear()
        assert [s.run_id for s in runs.summaries()] == list(reversed(ids))
        assert len(reads.logs) == 20  # every log once, then the index is whole again
        reads.clear()
        runs.summaries()
        assert reads.logs == []


def test_concurrent_writers_lose_no_entry(runs: RunStore) -> None:
    """Shards start and end runs at once: every entry survives (conditional writes)."""
    barrier = threading.Barrier(6)

    def writer(worker: int) -> None:
        barrier.wait()
        for n in range(8):
            rid = run_id(worker * 100 + n)
            write(runs, rid, [header(rid), end(rid)])

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries, _ = load_entries(runs.state)
    assert len(entries) == 48


# -- the callers read only the runs that matter ----------------------------------------------
def test_revert_last_reads_only_the_run_it_reverts(many: RunStore, reads: Reads) -> None:
    changing = run_id(0)
    write(many, changing, [header(changing), intent(changing, "a" * 32),
                           result(changing, "a" * 32), end(changing)])  # fmt: skip
    noop_runs(many, 300, start=1)
    reads.clear()
    run = newest_changing_run(many)
    assert run.run_id == changing and reads.logs == [f"{changing}.jsonl"]
    child = run_id(302)
    write(many, child, [header(child, command="revert", parent=changing), end(child)])
    reads.clear()
    assert [c.run_id for c in revert_runs_of(many, run)] == [child]
    assert reads.logs == [f"{child}.jsonl"]


def test_a_run_that_left_only_undo_values_is_still_what_revert_last_finds(
    runs: RunStore,
) -> None:
    interrupted = run_id(0)
    write(runs, interrupted, [header(interrupted), step(interrupted, "a" * 32, "copy")])
    runs.settle(next(f for f in runs.facts() if f.run_id == interrupted))
    noop_runs(runs, 5, start=1)
    runs.write_undo(interrupted, "a" * 32, {"datastore_id": DS, "payloads": []})
    assert newest_changing_run(runs).run_id == interrupted


def test_replacements_read_no_log(many: RunStore, reads: Reads) -> None:
    noop_runs(many, 300)
    replaced = run_id(300)
    write(many, replaced, [header(replaced), step(replaced, "a" * 32, "copy"),
                           step(replaced, "a" * 32, "promote", "n" * 32),
                           step(replaced, "a" * 32, "delete-copy", "n" * 32),
                           end(replaced)])  # fmt: skip
    reads.clear()
    assert replacements(many) == {"a" * 32: "n" * 32}
    ahi: Any = object()  # nothing to resume: the service is never asked
    assert resume_interrupted(ahi, many, endpoint="local", lock_timeout=1) == []
    assert reads.logs == []


def test_open_calls_read_only_the_runs_with_calls_still_open(many: RunStore, reads: Reads) -> None:
    noop_runs(many, 200)
    killed, settler, killed_too = run_id(200), run_id(201), run_id(202)
    write(many, killed, [header(killed), intent(killed, "a" * 32)])
    write(many, settler, [header(settler), result(settler, "a" * 32, "RECOVERED",
          message=f"run {killed} call 1/1: the call did happen"), end(settler)])  # fmt: skip
    write(many, killed_too, [header(killed_too), intent(killed_too, "b" * 32)])
    reads.clear()
    calls = open_calls(many)
    assert [(c.run_id, c.intent.image_set_id) for c in calls] == [(killed_too, "b" * 32)]
    # The open runs (read to list them: they have no facts yet), then the one run with a
    # call still open; never the 200 that cannot matter.
    assert sorted(reads.logs) == sorted([f"{killed}.jsonl", *[f"{killed_too}.jsonl"] * 2])


def test_a_live_writers_run_is_not_recovered(runs: RunStore) -> None:
    """An open run whose lock is held belongs to a writer that is alive (another shard):
    its calls are not settled behind its back."""
    from reconciler.state import StateLock

    lock = StateLock.acquire(runs.state, name="shard-2-of-2", operation="apply",
                             principal="p", user="u", host="h")  # fmt: skip
    live = run_id(0)
    records = [header(live), intent(live, "a" * 32)]
    records[0]["lock_id"] = lock.lock_id
    write(runs, live, records)
    assert open_calls(runs) == []
    lock.release()
    assert [c.run_id for c in open_calls(runs)] == [live]


def test_load_by_prefix_reads_one_log(many: RunStore, reads: Reads) -> None:
    ids = noop_runs(many, 300)
    reads.clear()
    assert many.load(ids[150]).run_id == ids[150]
    assert many.load(ids[7][:-1]).run_id == ids[7]
    assert len(reads.logs) == 2


def test_an_interrupted_run_is_folded_into_the_index(runs: RunStore, reads: Reads) -> None:
    killed = run_id(0)
    write(runs, killed, [header(killed), intent(killed, "a" * 32)])
    [facts] = runs.facts()
    runs.settle(facts)
    reads.clear()
    [facts] = runs.facts()
    assert facts.status == INTERRUPTED and reads.logs == []
