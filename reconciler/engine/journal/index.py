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

Where it lives: in the project's cache folder (``cacheDir``, default
``.reconciler/cache``), which the caller names (``cache``; None keeps no index file,
only this process's memory of it), as ``<cache>/journal-index/<folder name>-<digest>.json``,
the digest being of the resolved folder's path, so two journal folders never share an
index file. Never inside or beside the journal folder: the shipped CI recipes commit
and upload that folder, where a cache would be noise and bait for merge conflicts; and
a folder derived from it (its parent's ``cache/``) would land at the repository's top
for a top-level ``journalDir``, out of ``reconciler init``'s ``.gitignore``. It holds
what the journal holds (IDs, versions, outcomes, user and host names), never attribute
values; it is written atomically (:func:`reconciler.atomicfile.write_atomically`, mode
0600), so two processes that write it at once leave one whole index or the other: the
last writer wins, and the next reader checks it against the files anyway. Deleting it
is always safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
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

INDEX_FORMAT = 2
RACY_NS = 2_000_000_000  # files modified this recently are read again next time
_MEMO_FOLDERS = 4  # folders whose facts a process keeps in memory (checked all the same)

Call = tuple[str, str, int]  # data store, image set, call


@dataclass(frozen=True, eq=False)
class RunFacts:
    """One run as the index knows it: what callers decide on, and its summary.

    ``started_at`` and ``endpoint`` are the header's ("" and "?" when the journal is
    unreadable, ``problem`` then says why); ``first_started_at`` is the first line's
    ``started_at`` even when the journal is unreadable further on (``last`` orders runs
    by it); ``changed``: :meth:`Run.changed` or :meth:`Run.replacements`;
    ``last_steps``: old image set ID → the last (step, phase) of its replace in this
    run; ``unrecorded``: (data store, image set, call) of :meth:`Run.unrecorded`;
    ``settles``: :meth:`Run.settled_calls`; ``command`` and ``parent_run_id`` are the
    header's ("?" and None when unreadable). :attr:`summary` is decoded when asked for.
    """

    run_id: str
    file: RunFile
    started_at: str
    first_started_at: str
    endpoint: str
    problem: str | None = None
    command: str = "?"
    parent_run_id: str | None = None
    changed: bool = False
    replacements: Mapping[str, str] = field(default_factory=dict)
    last_steps: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    unrecorded: frozenset[Call] = frozenset()
    settles: frozenset[CallKey] = frozenset()
    read: RunSummary | None = None  # the summary, when the journal was just read
    entry: list[Any] | None = None  # else the index's entry of it

    @property
    def path(self) -> Path:
        return self.file.path

    @cached_property
    def summary(self) -> RunSummary:
        """The run's summary (``reconciler runs``); from its journal when the index's
        entry of it turns out malformed."""
        if self.read is not None:
            return self.read
        decoded = _decode_summary(self.entry, self)
        return decoded if decoded is not None else _read(self.run_id, self.file).summary

    def open_calls(self, settled: set[CallKey]) -> bool:
        """Whether a call of this run is unrecorded and not in ``settled``."""
        return any((self.run_id, *call) not in settled for call in self.unrecorded)


# Per folder (as the caller names it): run ID → facts, each checked against its file on
# every listing like the index's entries are; so a process that lists a folder several
# times (apply does) decodes the index once.
_MEMO: dict[str, dict[str, RunFacts]] = {}


def index_path(directory: Path, cache: Path) -> Path:
    """Where the index of journal folder ``directory`` lives in the cache folder
    ``cache`` (see the module docstring)."""
    folder = directory.resolve()
    digest = hashlib.sha256(str(folder).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return cache / "journal-index" / f"{folder.name or 'root'}-{digest}.json"


def indexed_runs(directory: Path, cache: Path | None = None) -> list[RunFacts]:
    """Every run in ``directory``, newest first (as :func:`list_runs` orders them), from
    the index where it is current and from the journal files where it is not; the
    index (kept in the cache folder ``cache``; none when None) is brought up to date
    on the way."""
    files = run_files(directory)
    if not files:
        return []
    # Keyed by the folder and by how the caller names it (summaries carry that path): a
    # relative name means another folder once the working directory changes; and by
    # the cache folder, so an index is written wherever a caller asks for one.
    key = f"{directory.resolve()}\0{directory}\0{cache}"
    memo = _MEMO.get(key, {})
    found: dict[str, RunFacts] = {}
    todo: dict[str, RunFile] = {}
    for run_id, file in files.items():
        known = memo.get(run_id)
        if known is not None and known.file == file:
            found[run_id] = known
        else:
            todo[run_id] = file
    horizon = time.time_ns() - RACY_NS
    if todo or not memo.keys() <= files.keys():  # new or changed files, or files gone
        found.update(_from_index(directory, cache, files, todo, horizon))
    _remember(key, {r: f for r, f in found.items()
                               if f.problem is None and f.file.mtime_ns < horizon})  # fmt: skip
    return sorted(found.values(), key=lambda f: newest_first_key(f.run_id, f.started_at),
                  reverse=True)  # fmt: skip


def _from_index(
    directory: Path,
    cache: Path | None,
    files: dict[str, RunFile],
    todo: dict[str, RunFile],
    horizon: int,
) -> dict[str, RunFacts]:
    """The facts of the files in ``todo``: from the index file where its entry is
    current, else read from the journal (and the index brought up to date)."""
    where = index_path(directory, cache) if cache is not None else None
    folder = str(directory.resolve())
    cached = _load(where, folder) if where is not None else {}
    kept = {run_id: entry for run_id, entry in cached.items() if run_id in files}
    found: dict[str, RunFacts] = {}
    for run_id, file in todo.items():
        entry = cached.get(run_id)
        facts = _decode(entry, run_id, file) if isinstance(entry, list) else None
        if facts is None:
            kept.pop(run_id, None)
            facts = _read(run_id, file)
            if facts.problem is None and file.mtime_ns < horizon:
                kept[run_id] = _encode(facts)
        found[run_id] = facts
    if where is not None and kept != cached:
        _store(where, folder, kept)
    return found


def _remember(key: str, facts: dict[str, RunFacts]) -> None:
    if key not in _MEMO and len(_MEMO) >= _MEMO_FOLDERS:
        _MEMO.pop(next(iter(_MEMO), key), None)  # the folder remembered first
    _MEMO[key] = facts


def forget() -> None:
    """Drop what this process remembers of every folder (as a new process starts)."""
    _MEMO.clear()


# -- reading a journal into its facts ----------------------------------------------------
def _read(run_id: str, file: RunFile) -> RunFacts:
    path = file.path
    try:
        data = read_bytes(path)
        run = parse_run(path, data)
    except JournalError as failure:
        summary = unreadable(run_id, path, str(failure))
        return RunFacts(run_id, file, "", started_at(path), summary.endpoint,
                        summary.problem, read=summary)  # fmt: skip
    return RunFacts(
        run_id=run_id,
        file=file,
        started_at=run.header.started_at,
        first_started_at=first_started_at(data),
        endpoint=run.header.endpoint,
        command=run.header.command,
        parent_run_id=run.header.parent_run_id,
        changed=bool(run.changed() or run.replacements()),
        replacements=run.replacements(),
        last_steps=run.last_steps(),
        unrecorded=frozenset((i.datastore_id, i.image_set_id, i.call) for i in run.unrecorded()),
        settles=frozenset(run.settled_calls()),
        read=run.summary(),
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


def _store(where: Path, folder: str, entries: dict[str, Any]) -> None:
    document = {"index_format": INDEX_FORMAT, "journal_format": FORMAT_VERSION,
                "reconciler": __version__, "folder": folder, "runs": entries}  # fmt: skip
    text = json.dumps(document, separators=(",", ":"), sort_keys=True)
    # A folder where no cache can be written (read-only, not ours) costs reads, not answers.
    with contextlib.suppress(OSError):
        write_atomically(where, text)


# An entry is a list, by position (compact, and quick to check):
# [size, mtime_ns, inode, first_started_at, started_at, endpoint, changed, replacements,
#  last_steps, unrecorded, settles, summary], summary being
# [command, finished_at, user, host, parent_run_id, counts, image_sets, pending,
#  incomplete, truncated].
_ENTRY_SIZE, _SUMMARY_SIZE = 12, 10


def _encode(facts: RunFacts) -> list[Any]:
    s, file = facts.summary, facts.file
    return [
        file.size, file.mtime_ns, file.inode, facts.first_started_at, facts.started_at,
        facts.endpoint, facts.changed, dict(facts.replacements),
        {old: list(step) for old, step in facts.last_steps.items()},
        sorted([list(call) for call in facts.unrecorded]),
        sorted([list(call) for call in facts.settles]),
        [s.command, s.finished_at, s.user, s.host, s.parent_run_id,
         {outcome.value: n for outcome, n in s.counts.items()}, s.image_sets, s.pending,
         s.incomplete, s.truncated],
    ]  # fmt: skip


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


def _list(value: object, size: int | None = None) -> list[Any]:
    if not isinstance(value, list) or (size is not None and len(value) != size):
        raise _Malformed
    return value


def _call(value: object) -> Call:
    found = _list(value, 3)
    return (_text(found[0]), _text(found[1]), _number(found[2]))


def _call_key(value: object) -> CallKey:
    found = _list(value, 4)
    return (_text(found[0]), _text(found[1]), _text(found[2]), _number(found[3]))


def _texts(value: object) -> dict[str, str]:
    found = _object(value)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
        raise _Malformed
    return found


def _decode(entry: list[Any], run_id: str, file: RunFile) -> RunFacts | None:
    """The facts ``entry`` holds when it is of the right shape and ``file`` is the file
    it was made from; None otherwise (the journal is read again). The summary part is
    checked when it is first asked for (:attr:`RunFacts.summary`)."""
    if len(entry) != _ENTRY_SIZE or entry[:3] != [file.size, file.mtime_ns, file.inode]:
        return None
    try:
        (_, _, _, first, started, endpoint, changed, replaced, steps, unrecorded, settles,
         summary) = entry  # fmt: skip
        if unrecorded != [] or settles != []:  # an empty value other than [] is malformed
            _list(unrecorded), _list(settles)
        summary = _list(summary, _SUMMARY_SIZE)
        return RunFacts(
            run_id=run_id,
            file=file,
            started_at=_text(started),
            first_started_at=_text(first),
            endpoint=_text(endpoint),
            command=_text(summary[0]),
            parent_run_id=_maybe(summary[4]),
            changed=_flag(changed),
            replacements=_texts(replaced),
            last_steps={_text(old): (_text(_list(step, 2)[0]), _text(step[1]))
                        for old, step in _object(steps).items()},
            unrecorded=frozenset(_call(c) for c in _list(unrecorded)) if unrecorded else _NONE,
            settles=frozenset(_call_key(c) for c in _list(settles)) if settles else _NONE,
            entry=summary,
        )  # fmt: skip
    except _Malformed:
        return None


_NONE: frozenset[Any] = frozenset()


def _decode_summary(entry: list[Any] | None, facts: RunFacts) -> RunSummary | None:
    if entry is None:
        return None
    try:
        command, finished, user, host, parent, counts, image_sets, pending, incomplete, \
            truncated = entry  # fmt: skip
        counted = _object(counts)
        summary = RunSummary(
            run_id=facts.run_id, path=facts.path, command=_text(command),
            started_at=facts.started_at, finished_at=_maybe(finished), user=_text(user),
            host=_text(host), endpoint=facts.endpoint, parent_run_id=_maybe(parent),
            counts={o: _number(counted[o.value]) for o in Outcome if o.value in counted},
            image_sets=_number(image_sets), pending=_number(pending),
            incomplete=_flag(incomplete), truncated=_flag(truncated),
        )  # fmt: skip
    except (_Malformed, ValueError):
        return None
    return summary if len(summary.counts) == len(counted) else None
