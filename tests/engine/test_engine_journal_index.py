"""The journal index: commands read only the journals that matter, however many runs
the folder holds, and the index is never trusted over the JSONL files.

Cost is counted, not timed: every full read of a journal goes through
``Path.read_bytes``, which a spy counts for the files of the journal folder.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.journal import (
    SUFFIX,
    index_path,
    indexed_runs,
    list_runs,
    load_run,
    read_run,
    resolve_run_id,
)
from reconciler.engine.journal import index as index_module
from reconciler.engine.journal.index import forget
from reconciler.engine.places import Places
from reconciler.engine.recovery import open_calls
from reconciler.engine.replace import replacements, resume_interrupted
from reconciler.engine.revert import newest_changing_run, revert_runs_of

DS = "2aa75d103f7f45ab977b0e93f00e6fe9"
HOUR_AGO_NS = time.time_ns() - 3600 * 10**9


@dataclass
class Reads:
    """Full reads of journal files (``Path.read_bytes`` of a ``.jsonl``), by file name."""

    names: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)  # reads of index files

    def __len__(self) -> int:
        return len(self.names)

    def clear(self) -> None:
        self.names.clear()
        self.indexes.clear()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Reads]:
    seen = Reads()
    real = Path.read_bytes

    def counting(path: Path) -> bytes:
        if path.name.endswith(SUFFIX):
            seen.names.append(path.name)
        elif path.parent.name == "journal-index":
            seen.indexes.append(path.name)
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", counting)
    yield seen


@pytest.fixture(autouse=True)
def new_process() -> None:
    """Each test starts as a new process would: nothing remembered in memory."""
    forget()


def cache(folder: Path) -> Path:
    """The cache folder (``cacheDir``) of journal folder ``folder`` in these tests:
    ``cache/`` beside it, as ``.reconciler/cache`` is beside ``.reconciler/runs``."""
    return folder.parent / "cache"


def at(folder: Path) -> Places:
    return Places(folder, cache(folder), folder.parent / "undo")


def run_id(n: int) -> str:
    return f"2025{1 + n // 86400 // 28:02d}{1 + n // 86400 % 28:02d}T{n // 3600 % 24:02d}" \
           f"{n // 60 % 60:02d}{n % 60:02d}Z-{n:06x}"  # fmt: skip


def stamp(rid: str, ms: int = 0) -> str:
    d, t = rid[:8], rid[9:15]
    return f"{d[:4]}-{d[4:6]}-{d[6:]}T{t[:2]}:{t[2:4]}:{t[4:]}.{ms:03d}Z"


def header(rid: str, *, command: str = "apply", endpoint: str = "local",
           parent: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {"type": "run", "run_id": rid, "command": command, "started_at": stamp(rid),
            "user": "alice", "host": "ci-7", "reconciler_version": "0", "endpoint": endpoint,
            "manifest_digest": None, "plan_digest": None, "parent_run_id": parent,
            "format_version": 1}  # fmt: skip


def intent(rid: str, image_set: str, version: str = "1", call: int = 1,
           digest: str = "d") -> dict[str, Any]:  # fmt: skip
    return {"type": "intent", "image_set_id": image_set, "datastore_id": DS,
            "from_version": version, "payload_digest": digest, "call": call, "calls": call,
            "keys": ["Study.StudyDescription"], "at": stamp(rid, 1)}  # fmt: skip


def result(rid: str, image_set: str, outcome: str = "UPDATED", version: str = "1",
           message: str | None = None) -> dict[str, Any]:  # fmt: skip
    to = str(int(version) + 1) if outcome in ("UPDATED", "RECOVERED") else version
    return {"type": "result", "image_set_id": image_set, "datastore_id": DS,
            "from_version": version, "to_version": to, "outcome": outcome, "message": message,
            "call": 0 if outcome == "RECOVERED" else 1, "at": stamp(rid, 2)}  # fmt: skip


def end(rid: str) -> dict[str, Any]:
    return {"type": "end", "finished_at": stamp(rid, 3), "summary": {}}


def write(folder: Path, rid: str, records: list[dict[str, Any]], *, old: bool = True) -> Path:
    """A journal file as the writer would leave it; ``old``: last modified an hour ago."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{rid}{SUFFIX}"
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    if old:
        os.utime(path, ns=(HOUR_AGO_NS, HOUR_AGO_NS))
    return path


def noop_runs(folder: Path, count: int, start: int = 0) -> list[str]:
    """``count`` completed runs that changed nothing (a STALE result each)."""
    ids = []
    for n in range(start, start + count):
        rid = run_id(n)
        write(folder, rid, [header(rid), result(rid, f"{n:032x}", "STALE"), end(rid)])
        ids.append(rid)
    return ids


def truth(folder: Path) -> list[dict[str, Any]]:
    """What every journal says, read without the index (newest first as listed)."""
    found = []
    for path in folder.glob(f"*{SUFFIX}"):
        found.append(read_run(path).summary().as_dict())
    return sorted(found, key=lambda s: (s["run_id"][:16], s["started_at"], s["run_id"]),
                  reverse=True)  # fmt: skip


def listed(folder: Path) -> list[dict[str, Any]]:
    return listed_in(folder, cache(folder))


def listed_in(folder: Path, cache_dir: Path | None) -> list[dict[str, Any]]:
    return [summary.as_dict() for summary in list_runs(folder, cache_dir)]


# -- the index: where, what, when it is read ------------------------------------------
def test_a_warm_index_reads_no_journal_and_answers_as_the_journals(
    tmp_path: Path, reads: Reads
) -> None:
    runs = tmp_path / ".reconciler" / "runs"
    noop_runs(runs, 200)
    assert listed(runs) == truth(runs)
    assert len(reads) == 2 * 200  # cold: every journal once (and once more for truth())
    reads.clear()
    assert listed(runs) == truth(runs)
    assert len(reads) == 200  # truth() alone: the listing read nothing
    reads.clear()
    for _ in range(3):
        list_runs(runs, cache(runs))
        assert resolve_run_id(runs, "last", cache(runs)) == run_id(199)
    assert len(reads) == 0


def test_the_index_lives_in_the_cache_folder_private_and_deletable(
    tmp_path: Path, reads: Reads
) -> None:
    runs, state = tmp_path / "journal", tmp_path / ".reconciler"  # as `journalDir: journal`
    noop_runs(runs, 5)
    list_runs(runs, state / "cache")
    (where,) = (state / "cache" / "journal-index").iterdir()
    assert where == index_path(runs, state / "cache") and where.name.startswith("journal-")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".reconciler", "journal"]
    assert sorted(p.name for p in runs.iterdir()) == sorted(f"{r}{SUFFIX}" for r in
                                                            [run_id(n) for n in range(5)])  # fmt: skip
    assert stat.S_IMODE(where.stat().st_mode) == 0o600
    document = json.loads(where.read_text())
    assert sorted(document["runs"]) == [run_id(n) for n in range(5)]
    where.unlink()  # deleting it is always safe: rebuilt from the journals
    forget()
    reads.clear()
    assert listed_in(runs, state / "cache") == truth(runs)
    assert len(reads) == 5 + 5 and where.exists()


def test_no_folder_no_runs_no_index(tmp_path: Path) -> None:
    assert list_runs(tmp_path / "runs", cache(tmp_path / "runs")) == []
    assert not (tmp_path / "cache").exists()


def test_without_a_cache_folder_no_index_is_kept(tmp_path: Path, reads: Reads) -> None:
    runs = tmp_path / "runs"
    noop_runs(runs, 4)
    assert listed_in(runs, None) == truth(runs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"] and not reads.indexes
    forget()
    reads.clear()
    assert listed_in(runs, None) == truth(runs)
    assert len(reads) == 4 + 4  # a new process reads every journal again


# -- stale entries: the journals win -------------------------------------------------
def test_a_process_reads_the_index_once_and_checks_every_file_each_time(
    tmp_path: Path, reads: Reads
) -> None:
    runs = tmp_path / "runs"
    noop_runs(runs, 50)
    list_runs(runs, cache(runs))
    forget()  # a new process: the index is read once, then remembered
    reads.clear()
    for _ in range(4):
        assert listed(runs)[0]["run_id"] == run_id(49)
    assert (len(reads), reads.indexes) == (0, [index_path(runs, cache(runs)).name])
    rid = run_id(50)
    path = write(runs, rid, [header(rid), end(rid)])
    assert list_runs(runs, cache(runs))[0].run_id == rid and reads.names == [path.name]


def test_an_appended_journal_is_read_again(tmp_path: Path, reads: Reads) -> None:
    runs = tmp_path / "runs"
    noop_runs(runs, 20)
    rid = run_id(20)
    path = write(runs, rid, [header(rid), intent(rid, "a" * 32)])
    assert (
        list_runs(runs, cache(runs))[0].status == "interrupted"
        and list_runs(runs, cache(runs))[0].pending == 1
    )
    with path.open("a") as stream:  # the run goes on: a result and its end
        stream.write(json.dumps(result(rid, "a" * 32)) + "\n" + json.dumps(end(rid)) + "\n")
    os.utime(path, ns=(HOUR_AGO_NS, HOUR_AGO_NS))  # even with the mtime it had
    reads.clear()
    newest = list_runs(runs, cache(runs))[0]
    assert (newest.run_id, newest.status, newest.pending) == (rid, "completed", 0)
    assert reads.names == [path.name]
    assert listed(runs) == truth(runs)


def test_a_deleted_journal_is_dropped(tmp_path: Path, reads: Reads) -> None:
    runs = tmp_path / "runs"
    ids = noop_runs(runs, 10)
    list_runs(runs, cache(runs))
    (runs / f"{ids[3]}{SUFFIX}").unlink()
    reads.clear()
    assert [s.run_id for s in list_runs(runs, cache(runs))] == [
        r for r in reversed(ids) if r != ids[3]
    ]
    assert len(reads) == 0
    assert ids[3] not in json.loads(index_path(runs, cache(runs)).read_text())["runs"]


def test_a_journal_replaced_by_one_of_the_same_size_and_mtime_is_read_again(
    tmp_path: Path, reads: Reads
) -> None:
    runs = tmp_path / "runs"
    noop_runs(runs, 5)
    rid = run_id(5)
    path = write(runs, rid, [header(rid), result(rid, "a" * 32, "STALE"), end(rid)])
    assert [o.value for o in list_runs(runs, cache(runs))[0].counts] == ["STALE"]
    # Another file, byte for byte the same length, renamed over it with the same mtime.
    other = write(tmp_path, "other", [header(rid), result(rid, "a" * 32, "ERROR"), end(rid)])
    assert other.stat().st_size == path.stat().st_size
    os.replace(other, path)
    os.utime(path, ns=(HOUR_AGO_NS, HOUR_AGO_NS))
    reads.clear()
    assert [o.value for o in list_runs(runs, cache(runs))[0].counts] == ["ERROR"]
    assert reads.names == [path.name]


def test_a_recent_journal_is_not_cached_so_a_same_size_rewrite_is_seen(
    tmp_path: Path, reads: Reads
) -> None:
    runs = tmp_path / "runs"
    rid = run_id(0)
    path = write(runs, rid, [header(rid), result(rid, "a" * 32, "STALE"), end(rid)], old=False)
    assert [o.value for o in list_runs(runs, cache(runs))[0].counts] == ["STALE"]
    mtime = path.stat().st_mtime_ns
    # Rewritten in place within the same clock tick: same size, same inode, same mtime.
    path.write_text(path.read_text().replace('"STALE"', '"ERROR"'))
    os.utime(path, ns=(mtime, mtime))
    assert [o.value for o in list_runs(runs, cache(runs))[0].counts] == ["ERROR"]


# -- a broken index is rebuilt, never an error nor a wrong answer --------------------------
@pytest.mark.parametrize("garbage", [
    b"", b"\x00\xff not json", b"[]", b'{"index_format": 1}', b"9" * 100_000,
    b"[" * 100_000,
])  # fmt: skip
def test_a_garbage_index_is_rebuilt(tmp_path: Path, reads: Reads, garbage: bytes) -> None:
    runs = tmp_path / "runs"
    noop_runs(runs, 10)
    list_runs(runs, cache(runs))
    index_path(runs, cache(runs)).write_bytes(garbage)
    forget()
    reads.clear()
    assert listed(runs) == truth(runs)
    assert len(reads) == 10 + 10
    forget()
    reads.clear()
    list_runs(runs, cache(runs))
    assert len(reads) == 0  # rebuilt and written back


def entries_mangled(document: dict[str, Any], how: str) -> None:
    for name, entry in document["runs"].items():
        if how == "types":
            entry[11][6] = "many"  # the summary's image_sets
        elif how == "missing":
            del entry[11]
        elif how == "not a list":
            document["runs"][name] = {"size": 1}
        elif how == "counts":
            entry[11][5] = {"EXPLODED": 1}
        elif how == "steps":
            entry[8] = {"x": ["only one"]}
        elif how == "calls":
            entry[9] = [["a", "b", "c"]]
        elif how == "endpoint":
            entry[5] = None
        elif how == "command":
            entry[11][0] = 5
        elif how == "settles":
            entry[10] = 0


@pytest.mark.parametrize(
    "how",
    [
        "types",
        "missing",
        "not a list",
        "counts",
        "steps",
        "calls",
        "endpoint",
        "command",
        "settles",
    ],
)
def test_malformed_entries_are_read_again_from_their_journals(
    tmp_path: Path, reads: Reads, how: str
) -> None:
    runs = tmp_path / "runs"
    noop_runs(runs, 4)
    list_runs(runs, cache(runs))
    where = index_path(runs, cache(runs))
    document = json.loads(where.read_text())
    entries_mangled(document, how)
    where.write_text(json.dumps(document))
    forget()
    reads.clear()
    assert listed(runs) == truth(runs)
    assert len(reads) == 4 + 4


@pytest.mark.parametrize("key, value", [
    ("index_format", 99), ("journal_format", 99), ("reconciler", "0.0.0-other"),
    ("folder", "/somewhere/else/runs"),
])  # fmt: skip
def test_an_index_of_another_format_version_or_folder_is_rebuilt(
    tmp_path: Path, reads: Reads, key: str, value: object
) -> None:
    runs = tmp_path / "runs"
    noop_runs(runs, 3)
    list_runs(runs, cache(runs))
    document = json.loads(index_path(runs, cache(runs)).read_text())
    document[key] = value
    index_path(runs, cache(runs)).write_text(json.dumps(document))
    forget()
    reads.clear()
    list_runs(runs, cache(runs))
    assert len(reads) == 3
    assert json.loads(index_path(runs, cache(runs)).read_text())[key] != value


def test_an_index_that_cannot_be_written_costs_reads_not_answers(
    tmp_path: Path, reads: Reads
) -> None:
    runs = tmp_path / "runs"
    noop_runs(runs, 3)
    (tmp_path / "cache").write_text("a file where the cache folder would go")
    assert listed(runs) == truth(runs)
    forget()
    reads.clear()
    assert listed(runs) == truth(runs)
    assert len(reads) == 3 + 3


def test_an_unreadable_journal_is_listed_as_unreadable_every_time(
    tmp_path: Path, reads: Reads
) -> None:
    runs = tmp_path / "runs"
    noop_runs(runs, 3)
    bad = run_id(3)
    path = write(runs, bad, [header(bad), {"type": "result", "outcome": 7}, end(bad)])
    list_runs(runs, cache(runs))  # the readable ones are indexed now
    for _ in range(2):
        reads.clear()
        newest = list_runs(runs, cache(runs))[0]
        assert (newest.run_id, newest.status) == (bad, "unreadable")
        assert newest.problem is not None and f"{path}:2" in newest.problem
        assert reads.names == [path.name]  # never cached: read (and reported) each time
    assert bad not in json.loads(index_path(runs, cache(runs)).read_text())["runs"]
    assert resolve_run_id(runs, "last", cache(runs)) == bad  # ordered by its header all the same


def test_two_writers_at_once_leave_a_whole_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    noop_runs(runs, 60)
    # Nothing remembered in memory: every listing reads the index file, as two
    # processes would, and each rebuilds and writes it after an unlink.
    monkeypatch.setattr(index_module, "_remember", lambda key, facts: None)

    def lister(offset: int) -> int:
        for turn in range(15):
            if turn % 5 == offset:  # a fresh index now and then: both rewrite it
                index_path(runs, cache(runs)).unlink(missing_ok=True)
            assert len(list_runs(runs, cache(runs))) == 60
        return offset

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(lister, range(2))) == [0, 1]  # re-raises what failed
    assert len(json.loads(index_path(runs, cache(runs)).read_text())["runs"]) == 60
    where = index_path(runs, cache(runs))
    assert [p.name for p in where.parent.iterdir()] == [where.name]  # no temp file left


# -- the callers read only the runs that matter --------------------------------------------
def test_revert_last_reads_only_the_run_it_reverts(tmp_path: Path, reads: Reads) -> None:
    runs = tmp_path / "runs"
    changing = run_id(0)
    write(runs, changing, [header(changing), intent(changing, "a" * 32),
                           result(changing, "a" * 32), end(changing)])  # fmt: skip
    noop_runs(runs, 300, start=1)
    other = run_id(301)  # newer, changed something, but against another endpoint
    write(runs, other, [header(other, endpoint="aws (eu-west-1)"), intent(other, "b" * 32),
                        result(other, "b" * 32), end(other)])  # fmt: skip
    list_runs(runs, cache(runs))
    reads.clear()
    run = newest_changing_run(at(runs), "local")
    assert run.run_id == changing and reads.names == [f"{changing}{SUFFIX}"]
    child = run_id(302)
    write(runs, child, [header(child, command="revert", parent=changing), end(child)])
    list_runs(runs, cache(runs))
    reads.clear()
    assert [c.run_id for c in revert_runs_of(at(runs), run)] == [child]
    assert reads.names == [f"{child}{SUFFIX}"]


def test_a_run_that_left_only_an_undo_file_is_still_what_revert_last_finds(
    tmp_path: Path,
) -> None:
    runs = tmp_path / ".reconciler" / "runs"
    interrupted = run_id(0)
    write(runs, interrupted, [header(interrupted), {"type": "step", "image_set_id": "a" * 32,
          "datastore_id": DS, "step": "copy", "phase": "start", "copy_id": None,
          "new_id": None, "at": stamp(interrupted, 1)}])  # fmt: skip
    noop_runs(runs, 5, start=1)
    undo = tmp_path / ".reconciler" / "undo" / f"{interrupted}.undo.json"
    undo.parent.mkdir()
    undo.write_text(json.dumps({"a" * 32: {"datastore_id": DS, "payloads": []}}))
    assert newest_changing_run(at(runs), "local").run_id == interrupted


def test_replacements_read_no_journal_once_indexed(tmp_path: Path, reads: Reads) -> None:
    runs = tmp_path / "runs"
    noop_runs(runs, 300)
    replaced = run_id(300)
    write(runs, replaced, [header(replaced), *[
        {"type": "step", "image_set_id": "a" * 32, "datastore_id": DS, "step": step,
         "phase": "done", "copy_id": "c" * 32, "new_id": new, "at": stamp(replaced, 1)}
        for step, new in [("copy", None), ("promote", "n" * 32), ("delete-copy", "n" * 32)]
    ], end(replaced)])  # fmt: skip
    assert replacements(at(runs), "local") == {"a" * 32: "n" * 32}
    reads.clear()
    assert replacements(at(runs), "local") == {"a" * 32: "n" * 32}
    assert replacements(at(runs), "elsewhere") == {}
    assert resume_interrupted(object(), at(runs), "local", 1) == []  # type: ignore[arg-type]
    assert len(reads) == 0


def test_resume_reads_only_the_runs_of_an_unfinished_replace(
    tmp_path: Path, reads: Reads, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    noop_runs(runs, 100)

    def step(rid: str, old: str, name: str) -> dict[str, Any]:
        return {"type": "step", "image_set_id": old, "datastore_id": DS, "step": name,
                "phase": "done", "copy_id": None, "new_id": None, "at": stamp(rid, 1)}  # fmt: skip

    started, finished, open_one = run_id(100), run_id(101), run_id(102)
    write(runs, started, [header(started), step(started, "a" * 32, "copy")])
    write(runs, finished, [header(finished), step(finished, "a" * 32, "resumed"), end(finished)])
    write(runs, open_one, [header(open_one), step(open_one, "b" * 32, "copy")])
    list_runs(runs, cache(runs))
    reads.clear()
    seen: list[list[str]] = []
    from reconciler.engine import replace as replace_module

    def incomplete(found: list[Any]) -> dict[str, Any]:
        seen.append([run.run_id for run in found])
        return {}  # nothing to resume, as far as this test goes

    monkeypatch.setattr(replace_module, "_incomplete", incomplete)
    assert resume_interrupted(object(), at(runs), "local", 1) == []  # type: ignore[arg-type]
    assert seen == [[open_one]] and reads.names == [f"{open_one}{SUFFIX}"]


def test_open_calls_read_only_the_runs_with_calls_still_open(tmp_path: Path, reads: Reads) -> None:
    runs = tmp_path / "runs"
    noop_runs(runs, 200)
    killed, settler, killed_too = run_id(200), run_id(201), run_id(202)
    write(runs, killed, [header(killed), intent(killed, "a" * 32)])
    write(runs, settler, [header(settler), result(settler, "a" * 32, "RECOVERED",
          message=f"run {killed} call 1/1: the call did happen"), end(settler)])  # fmt: skip
    write(runs, killed_too, [header(killed_too), intent(killed_too, "b" * 32)])
    list_runs(runs, cache(runs))
    reads.clear()
    calls = open_calls(at(runs), "local")
    assert [(c.run_id, c.intent.image_set_id) for c in calls] == [(killed_too, "b" * 32)]
    assert reads.names == [f"{killed_too}{SUFFIX}"]
    reads.clear()
    assert open_calls(at(runs), "local", exclude=settler) != calls  # its marks no longer count
    assert sorted(reads.names) == sorted([f"{killed}{SUFFIX}", f"{killed_too}{SUFFIX}"])
    assert open_calls(at(runs), "elsewhere") == []


def test_load_run_by_prefix_reads_one_journal(tmp_path: Path, reads: Reads) -> None:
    runs = tmp_path / "runs"
    ids = noop_runs(runs, 300)
    reads.clear()
    assert load_run(runs, ids[150], cache(runs)).run_id == ids[150]
    assert load_run(runs, ids[7][:-1], cache(runs)).run_id == ids[7]
    assert len(reads) == 2


def test_many_folders_each_their_own_index(tmp_path: Path) -> None:
    """Two journal folders of the same name, one cache folder: two index files."""
    first, second, shared = tmp_path / "journal", tmp_path / "audit" / "journal", tmp_path / "c"
    noop_runs(first, 2)
    noop_runs(second, 3, start=10)
    assert (len(list_runs(first, shared)), len(list_runs(second, shared))) == (2, 3)
    assert index_path(first, shared) != index_path(second, shared)
    assert len(list((shared / "journal-index").iterdir())) == 2
    forget()
    assert [s.run_id for s in list_runs(second, shared)] == [run_id(n) for n in (12, 11, 10)]
    shutil.copy(index_path(first, shared), index_path(second, shared))  # the wrong folder's
    forget()
    assert [s.run_id for s in list_runs(second, shared)] == [run_id(n) for n in (12, 11, 10)]
    assert len(indexed_runs(second, shared)) == 3
    document = json.loads(index_path(second, shared).read_text())
    assert document["index_format"] == index_module.INDEX_FORMAT
    assert document["folder"] == str(second.resolve())


# -- end to end: plan, apply, revert --run last and `runs` against the local service ----
ROOT = Path(__file__).resolve().parents[2]


def test_plan_apply_revert_and_runs_read_a_few_journals_among_hundreds(
    tmp_path: Path, reads: Reads, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from reconciler import Session
    from reconciler.cli.runs import runs as runs_command

    project = tmp_path / "project"
    (project / "manifests").mkdir(parents=True)
    shutil.copy(ROOT / "reconciler.yaml", project / "reconciler.yaml")  # endpoint: local
    shutil.copy(ROOT / "manifests" / "study-descriptions.yaml", project / "manifests")
    journal = project / ".reconciler" / "runs"
    noop_runs(journal, 300)  # earlier runs against the same endpoint, that changed nothing
    monkeypatch.chdir(project)
    cost: dict[str, int] = {}

    def counted(what: str, action: Any) -> Any:
        reads.clear()
        outcome = action()
        cost[what] = len(reads)
        return outcome

    with Session(endpoint="local", project_dir=project) as session:
        counted("cold listing", lambda: list_runs(journal, cache(journal)))
        planned = counted("plan", session.plan)
        assert planned.plan.has_changes
        applied = counted("apply", lambda: session.apply(planned.plan))
        assert int(applied.exit_code) == 0 and applied.run_id is not None
    with Session(endpoint="local", project_dir=project) as session:  # a new process
        counted("no-op plan", session.plan)
        counted("no-op apply", session.apply)
        reverted = counted("revert --run last", lambda: session.revert(run_id="last"))
        assert int(reverted.exit_code) == 0
    result = counted("runs", lambda: CliRunner().invoke(runs_command, ["--dir", str(journal)]))
    assert result.exit_code == 0 and len(result.output.splitlines()) == 300 + 2
    assert cost.pop("cold listing") == 300
    # The runs this test made (less than 2 s old: read each time) and the run reverted,
    # never the 300 that cannot matter.
    assert max(cost.values()) <= 10, cost


def test_a_relative_folder_name_means_the_folder_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for project, endpoint in (("one", "aws (eu-west-1)"), ("two", "aws (us-east-1)")):
        rid = run_id(0)  # the same name, size and mtime in both folders
        write(tmp_path / project / "runs", rid, [header(rid, endpoint=endpoint), end(rid)])
    seen = []
    for project in ("one", "two", "one"):
        monkeypatch.chdir(tmp_path / project)
        (summary,) = list_runs(Path("runs"), tmp_path / "cache")  # one cache folder for both
        seen.append(summary.endpoint)
    assert seen == ["aws (eu-west-1)", "aws (us-east-1)", "aws (eu-west-1)"]
