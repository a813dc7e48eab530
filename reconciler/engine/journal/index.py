"""The journal folder's index: what each run's journal says that listing, finding,
recovery and revert decide on, kept so that a command reads only the journals that
matter, and its cost stays flat however many runs the folder holds.

Per journal file it holds the run's summary (:class:`RunSummary`) and the facts
callers need (:class:`RunFacts`): whether the run changed anything, which image sets
it replaced and by which, the last step of each replace it took part in, the calls
whose outcome it does not record and the earlier calls it settled. The callers read a
run in full only when these facts say it matters.

The index is a cache, never trusted over the JSONL files:

- every entry is checked against its file's size, mtime (ns) and inode, from one
  listing of the folder: a file that differs (appended, replaced) or is new is read
  again, and entries of files that are gone are dropped;
- a file modified less than 2 s before the listing is not cached: a rewrite of the
  same size within the same clock tick would keep its mtime (git's "racily clean"
  problem), so it is read again next time;
- an unreadable journal is never cached: it is read, and reported, every time;
- an index that is missing, unreadable, not JSON, of another index format, journal
  format or reconciler version, or made for another folder is ignored and rebuilt; an
  entry of the wrong shape is read again from its journal. Nothing in it can make an
  answer wrong or raise an error: at worst it costs the reads it was meant to save.

Where it lives: ``<journal folder's parent>/cache/journal-index/<folder name>.json``
(of the resolved folder), so ``.reconciler/runs`` is indexed in
``.reconciler/cache/journal-index/runs.json``. Never inside the journal folder: the
shipped CI recipes commit and upload that folder, where a cache would be noise and bait
for merge conflicts. Beside it, as the undo values are (``.reconciler/undo/``,
``engine/replace.py``), and in the default cache folder, which ``reconciler init``'s
``.gitignore`` keeps out of git. It holds what the journal holds (IDs, versions,
outcomes, user and host names), never attribute values; it is written atomically
(:func:`reconciler.atomicfile.write_atomically`, mode 0600), so two processes that
write it at once leave one whole index or the other: the last writer wins, and the next
reader checks it against the files anyway. Deleting it is always safe.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.atomicfile import write_atomically
from reconciler.engine.journal.reader import (
    RunFile,
    first_started_at,
    newest_first_key,
    parse_run,
    read_bytes,
    run_files,
    started_at,
    unreadable,
)
from reconciler.engine.journal.records import FORMAT_VERSION, JournalError, Outcome
from reconciler.engine.journal.run import CallKey, RunSummary
from reconciler.version import __version__

INDEX_FORMAT = 1
RACY_NS = 2_000_000_000  # files modified this recently are read again next time

Call = tuple[str, str, int]  # data store, image set, call


@dataclass(frozen=True)
class RunFacts:
    """One run as the index knows it: its summary, and what callers decide on.

    ``first_started_at`` is the first line's ``started_at`` even when the journal is
    unreadable further on (``last`` orders runs by it); ``last_steps``: old image set
    ID → the last (step, phase) of its replace in this run; ``unrecorded``: (data store,
    image set, call) of :meth:`Run.unrecorded`; ``settles``: :meth:`Run.settled_calls`.
    """

    summary: RunSummary
    first_started_at: str
    changed: bool = False  # Run.changed() or Run.replacements()
    replacements: Mapping[str, str] = field(default_factory=dict, hash=False)
    last_steps: Mapping[str, tuple[str, str]] = field(default_factory=dict, hash=False)
    unrecorded: frozenset[Call] = frozenset()
    settles: frozenset[CallKey] = frozenset()

    @property
    def run_id(self) -> str:
        return self.summary.run_id

    @property
    def path(self) -> Path:
        return self.summary.path

    def open_calls(self, settled: set[CallKey]) -> bool:
        """Whether a call of this run is unrecorded and not in ``settled``."""
        return any((self.run_id, *call) not in settled for call in self.unrecorded)


def index_path(directory: Path) -> Path:
    """Where the index of journal folder ``directory`` lives (see the module docstring)."""
    folder = directory.resolve()
    return folder.parent / "cache" / "journal-index" / f"{folder.name or 'root'}.json"


def indexed_runs(directory: Path) -> list[RunFacts]:
    """Every run in ``directory``, newest first (as :func:`list_runs` orders them), from
    the index where it is current and from the journal files where it is not; the
    index is brought up to date on the way."""
    files = run_files(directory)
    if not files:
        return []
    where = index_path(directory)
    folder = str(directory.resolve())
    cached = _load(where, folder)
    horizon = time.time_ns() - RACY_NS
    kept: dict[str, dict[str, Any]] = {}
    found: list[RunFacts] = []
    for run_id, file in files.items():
        entry = cached.get(run_id)
        facts = _decode(entry, run_id, file) if isinstance(entry, dict) else None
        if facts is not None and entry is not None:
            kept[run_id] = entry
        else:
            facts = _read(run_id, file)
            if facts.summary.problem is None and file.mtime_ns < horizon:
                kept[run_id] = _encode(facts, file)
        found.append(facts)
    if kept != cached:
        _store(where, folder, kept)
    found.sort(key=lambda f: newest_first_key(f.run_id, f.summary.started_at), reverse=True)
    return found


# -- reading a journal into its facts ----------------------------------------------------
def _read(run_id: str, file: RunFile) -> RunFacts:
    try:
        data = read_bytes(file.path)
        run = parse_run(file.path, data)
    except JournalError as failure:
        return RunFacts(unreadable(run_id, file.path, str(failure)), started_at(file.path))
    return RunFacts(
        summary=run.summary(),
        first_started_at=first_started_at(data),
        changed=bool(run.changed() or run.replacements()),
        replacements=run.replacements(),
        last_steps=run.last_steps(),
        unrecorded=frozenset((i.datastore_id, i.image_set_id, i.call) for i in run.unrecorded()),
        settles=frozenset(run.settled_calls()),
    )


# -- the index file ---------------------------------------------------------------------
def _load(where: Path, folder: str) -> dict[str, Any]:
    """The cached entries, or {} when the index is missing or not one of ours."""
    try:
        data = json.loads(where.read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("index_format") != INDEX_FORMAT:
        return {}
    if data.get("journal_format") != FORMAT_VERSION or data.get("reconciler") != __version__:
        return {}
    runs = data.get("runs")
    if data.get("folder") != folder or not isinstance(runs, dict):
        return {}
    return runs


def _store(where: Path, folder: str, entries: dict[str, dict[str, Any]]) -> None:
    document = {"index_format": INDEX_FORMAT, "journal_format": FORMAT_VERSION,
                "reconciler": __version__, "folder": folder, "runs": entries}  # fmt: skip
    text = json.dumps(document, separators=(",", ":"), sort_keys=True)
    # A folder where no cache can be written (read-only, not ours) costs reads, not answers.
    with contextlib.suppress(OSError):
        write_atomically(where, text)


def _encode(facts: RunFacts, file: RunFile) -> dict[str, Any]:
    s = facts.summary
    return {
        "size": file.size, "mtime_ns": file.mtime_ns, "inode": file.inode,
        "first_started_at": facts.first_started_at,
        "summary": {
            "command": s.command, "started_at": s.started_at, "finished_at": s.finished_at,
            "user": s.user, "host": s.host, "endpoint": s.endpoint,
            "parent_run_id": s.parent_run_id,
            "counts": {outcome.value: n for outcome, n in s.counts.items()},
            "image_sets": s.image_sets, "pending": s.pending, "incomplete": s.incomplete,
            "truncated": s.truncated,
        },
        "changed": facts.changed,
        "replacements": dict(facts.replacements),
        "last_steps": {old: list(step) for old, step in facts.last_steps.items()},
        "unrecorded": sorted([list(call) for call in facts.unrecorded]),
        "settles": sorted([list(call) for call in facts.settles]),
    }  # fmt: skip


class _Malformed(Exception):
    """An index entry does not have the shape :func:`_encode` gives it."""


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise _Malformed
    return value


def _maybe(value: object) -> str | None:
    return None if value is None else _text(value)


def _number(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Malformed
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Malformed
    return value


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed
    return value


def _list(value: object, size: int) -> list[Any]:
    if not isinstance(value, list) or len(value) != size:
        raise _Malformed
    return value


def _items(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise _Malformed
    return value


def _call(value: object) -> Call:
    found = _list(value, 3)
    return (_text(found[0]), _text(found[1]), _number(found[2]))


def _call_key(value: object) -> CallKey:
    found = _list(value, 4)
    return (_text(found[0]), _text(found[1]), _text(found[2]), _number(found[3]))


def _decode(entry: dict[str, Any], run_id: str, file: RunFile) -> RunFacts | None:
    """The facts ``entry`` holds when it is of the right shape and ``file`` is the file
    it was made from; None otherwise (the journal is read again)."""
    try:
        if (entry.get("size"), entry.get("mtime_ns"), entry.get("inode")) != (
            file.size, file.mtime_ns, file.inode,
        ):  # fmt: skip
            return None
        s = _object(entry["summary"])
        counts = _object(s["counts"])
        summary = RunSummary(
            run_id=run_id, path=file.path, command=_text(s["command"]),
            started_at=_text(s["started_at"]), finished_at=_maybe(s["finished_at"]),
            user=_text(s["user"]), host=_text(s["host"]), endpoint=_text(s["endpoint"]),
            parent_run_id=_maybe(s["parent_run_id"]),
            counts={o: _number(counts[o.value]) for o in Outcome if o.value in counts},
            image_sets=_number(s["image_sets"]), pending=_number(s["pending"]),
            incomplete=_flag(s["incomplete"]), truncated=_flag(s["truncated"]),
        )  # fmt: skip
        if len(summary.counts) != len(counts):
            return None  # an outcome this version does not know
        steps = _object(entry["last_steps"])
        return RunFacts(
            summary=summary,
            first_started_at=_text(entry["first_started_at"]),
            changed=_flag(entry["changed"]),
            replacements={_text(k): _text(v) for k, v in _object(entry["replacements"]).items()},
            last_steps={_text(old): (_text(_list(step, 2)[0]), _text(step[1]))
                        for old, step in steps.items()},
            unrecorded=frozenset(_call(c) for c in _items(entry["unrecorded"])),
            settles=frozenset(_call_key(c) for c in _items(entry["settles"])),
        )  # fmt: skip
    except (_Malformed, KeyError, TypeError, AttributeError):
        return None
