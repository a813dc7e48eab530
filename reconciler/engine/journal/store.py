"""The runs of one scope in its state: their logs, the index (:mod:`.index`) and the
undo values of replaced image sets.

Keys: ``runs/<run id>.jsonl`` (a run's journal, an append-only log),
``runs/index.json`` (the index) and ``undo/<run id>.json`` (undo values: PHI, the
only PHI state holds, written as a secret — KMS-encrypted on S3).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

from reconciler.engine.journal.index import (
    ENDED,
    INTERRUPTED,
    OPEN,
    RunFacts,
    decode,
    digest,
    encode,
    facts_of,
    load_entries,
    log_facts,
    next_seq,
    problem_facts,
    update,
)
from reconciler.engine.journal.reader import parse_run
from reconciler.engine.journal.records import LAST, RUN_ID_RE, SUFFIX, JournalError
from reconciler.engine.journal.run import Run, RunSummary
from reconciler.state import Appender, Conflict, State, StateError, dumps, held

RUNS = "runs/"
UNDO = "undo/"

UndoEntries = dict[str, dict[str, Any]]  # old image set ID → its undo entry


def log_key(run_id: str) -> str:
    return f"{RUNS}{run_id}{SUFFIX}"


def undo_key(run_id: str) -> str:
    return f"{UNDO}{run_id}.json"


def undo_digest(entry: dict[str, Any]) -> str:
    """The digest of what an undo entry restores (the data store, the old image set's
    version and the payloads), which the run's journal records: the IDs filled in
    later (copy, new image set) are checked against the service instead."""
    kept = {k: entry.get(k) for k in ("datastore_id", "old_version", "payloads")}
    return hashlib.sha256(dumps(kept)).hexdigest()


class RunStore:
    """The runs of ``state``'s scope (see the module docstring)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._undo_lock = threading.Lock()  # replaces run in parallel threads
        self._pins = 0
        self._facts: list[RunFacts] | None = None
        self._live: set[str] | None = None

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """For the block, read the run index and the locks once, and the index again
        only after this store wrote it: for a caller holding the whole state's lock,
        while no other writer can change either (re-entrant). An apply's look-ups
        (interrupted replaces, open calls, replaced image sets) then cost one read of
        the index, not one each."""
        self._pins += 1
        try:
            yield
        finally:
            self._pins -= 1
            if not self._pins:
                self._facts = self._live = None

    def change_index(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Apply ``change`` to the index's entries (:func:`.index.update`)."""
        self._facts = None  # whatever happens, read it again
        try:
            update(self.state, change)
        finally:
            self._facts = None

    @property
    def location(self) -> str:
        return self.state.shown(RUNS.rstrip("/"))

    # -- writing ------------------------------------------------------------------------
    def create(self, run_id: str, first: RunFacts) -> Appender:
        """Enter run ``run_id`` in the index as open, then create its log (so a crash
        in between leaves an open entry without a log, never a log nobody lists)."""

        def enter(entries: dict[str, Any]) -> None:
            if run_id in entries:
                raise Conflict(f"run {run_id} exists already")
            entries[run_id] = encode(first.numbered(next_seq(entries)))

        self.change_index(enter)
        return self.state.append(log_key(run_id))

    def finished(self, run_id: str, data: bytes, *, ended: bool) -> None:
        """Fold the facts of run ``run_id`` (its whole log: ``data``) into the index: a
        run that ended is numbered again (it is the newest to reach the index); one
        interrupted keeps the number it started with."""
        status = ENDED if ended else INTERRUPTED
        facts = self._facts_from(run_id, data, status)

        def fold(entries: dict[str, Any]) -> None:
            if ended:
                seq = next_seq(entries)
            else:
                before = entries.get(run_id)
                seq = before.get("seq", 0) if isinstance(before, dict) else 0
            entries[run_id] = encode(facts.numbered(seq if isinstance(seq, int) else 0))

        self.change_index(fold)

    def _facts_from(self, run_id: str, data: bytes, status: str) -> RunFacts:
        location = self.state.shown(log_key(run_id))
        try:
            run = parse_run(location, run_id, data)
        except JournalError as failure:
            return problem_facts(run_id, location, str(failure), status)
        return facts_of(run, status, digest(data))

    def settle(self, facts: RunFacts) -> None:
        """Fold an open run whose writer is gone (killed) into the index as interrupted:
        its log will not grow any more (its lock is not held)."""
        key = log_key(facts.run_id)
        data = self.state.read_log(key)
        if data is not None:
            self.finished(facts.run_id, data, ended=False)

    # -- reading ------------------------------------------------------------------------
    def facts(self) -> list[RunFacts]:
        """Every run of the scope, newest first (by the service's clock): from the index
        where its entry is whole, else from the run's log. Open runs are read from their
        logs. A missing or foreign index is rebuilt from the logs."""
        if self._facts is None:
            found = self._read_facts()
            if not self._pins:
                return found
            self._facts = found
        return list(self._facts)

    def _read_facts(self) -> list[RunFacts]:
        entries, tag = load_entries(self.state)
        if not entries:
            return self._rebuilt(tag)
        found = []
        for run_id, entry in entries.items():
            if not RUN_ID_RE.match(run_id):
                continue
            location = self.state.shown(log_key(run_id))
            facts = decode(run_id, entry, location)
            if facts is None:
                facts = log_facts(self.state, run_id, log_key(run_id), INTERRUPTED)
            elif facts.status == OPEN:
                facts = log_facts(self.state, run_id, log_key(run_id), OPEN).numbered(facts.seq)
            found.append(facts)
        return sorted(found, key=RunFacts.sort_key, reverse=True)

    def _rebuilt(self, tag: str | None) -> list[RunFacts]:
        """No usable index: the runs from their logs (one read each), and the index
        written again where state can be written."""
        found = []
        for key in self.state.keys(RUNS):
            name = key.removeprefix(RUNS)
            run_id = name.removesuffix(SUFFIX)
            if not name.endswith(SUFFIX) or not RUN_ID_RE.match(run_id):
                continue
            found.append(log_facts(self.state, run_id, key, OPEN))
        if found:
            # Read-only credentials (a PR's plan job) cannot write it: read again next time.
            with contextlib.suppress(StateError):
                self.change_index(
                    lambda entries: entries.update(
                        {f.run_id: encode(f) for f in found if f.run_id not in entries}
                    ),
                )
        return sorted(found, key=RunFacts.sort_key, reverse=True)

    def live_locks(self) -> set[str]:
        """The IDs of the state locks held now: an open run written under one of them
        has a live writer (another shard, or this process)."""
        if self._live is None:
            live = {holder.lock_id for holder in held(self.state)}
            if not self._pins:
                return live
            self._live = live
        return set(self._live)

    def summaries(self) -> list[RunSummary]:
        return [facts.summary for facts in self.facts()]

    def read(self, run_id: str, facts: RunFacts | None = None) -> Run:
        """Run ``run_id`` read from its log; a :class:`JournalError` when it cannot be
        read, or when it changed after it ended (its digest is not the one the index
        recorded then: such a log is never acted on)."""
        key = log_key(run_id)
        location = self.state.shown(key)
        try:
            data = self.state.read_log(key)
        except StateError as failure:
            raise JournalError(failure.message, location=location) from None
        if data is None:
            raise JournalError("no such run log", location=location)
        if facts is not None and facts.log_digest not in (None, digest(data)):
            raise JournalError(
                "the run's log changed after the run ended (its digest is not the one "
                "recorded then): it is not acted on",
                location=location,
            )
        return parse_run(location, run_id, data)

    def resolve(self, wanted: str) -> RunFacts:
        """The run ``wanted`` names: an ID, or a unique prefix of one (``last`` is the
        caller's: what it means depends on the command)."""
        wanted = wanted.strip()
        if not wanted:
            raise JournalError(
                "the run ID is empty; give one (`reconciler runs` lists them) or last"
            )
        runs = {facts.run_id: facts for facts in self.facts()}
        if wanted.lower() == LAST:
            if not runs:
                raise JournalError(f"no runs yet in {self.location}")
            return max(runs.values(), key=RunFacts.sort_key)
        if wanted in runs:
            return runs[wanted]
        matches = sorted((r for r in runs if r.startswith(wanted)), reverse=True)
        if len(matches) == 1:
            return runs[matches[0]]
        if not matches:
            raise JournalError(
                f"no run {wanted!r} in {self.location}; `reconciler runs` lists the runs, "
                "and `last` names the most recent"
            )
        more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
        shown = ", ".join(matches[:10]) + more
        raise JournalError(f"{wanted!r} matches {len(matches)} runs ({shown}); give more of the ID")

    def load(self, wanted: str) -> Run:
        """The run ``wanted`` (an ID, a unique prefix, or ``last``: the newest) names."""
        facts = self.resolve(wanted)
        return self.read(facts.run_id, facts)

    # -- undo values ----------------------------------------------------------------------
    def write_undo(self, run_id: str, old_id: str, entry: dict[str, Any]) -> str:
        """Add or update ``old_id``'s entry in run ``run_id``'s undo values (a secret
        object, written whole); returns the entry's :func:`undo_digest`."""
        with self._undo_lock:
            entries = self.read_undo(run_id)
            entries[old_id] = entry
            self.state.put(undo_key(run_id), dumps(entries), secret=True)
        return undo_digest(entry)

    def read_undo(self, run_id: str) -> UndoEntries:
        """Old image set ID → its undo entry, for run ``run_id``; {} when it has none."""
        blob = self.state.get(undo_key(run_id))
        if blob is None:
            return {}
        try:
            data = json.loads(blob.data)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise JournalError(
                "the undo values are damaged", location=self.state.shown(undo_key(run_id))
            )
        return data
