"""The run index: one object in state listing every run of the scope with the facts
that listing, ``last``, recovery and revert decide on, so a command reads one object
— not one per run — however many runs the scope holds, in either backend.

Writers keep it: a run is entered ``open`` before its log is created, and its facts are
written from its log when it ends (``ended``) or is closed early (``interrupted``). A
process killed mid-run leaves its entry ``open``; readers then read that run's log
(such runs are few), and the next writer that settles it folds its facts in.
Concurrent writers (shards) update the index with conditional writes, retried.

Per run it holds the summary (:class:`RunSummary`) and the facts callers need
(:class:`RunFacts`): whether the run changed anything, which image sets it replaced
and by which, the last step of each replace, the calls whose outcome it does not
record and the earlier calls it settled, the order of the run, the lock it was
written under and a digest of its finished log.

Runs are ordered by ``seq``, a number the index hands out under its conditional write
when a run is entered and again when it ends: the order in which runs reached the
shared state, whatever any clock says (the service's ``Date`` has one-second steps, so
two runs in one second tie on it). A run killed and settled later keeps the number it
started with. Entries without one (an index rebuilt from the logs) fall back to the
service's time, then this machine's.

The index holds what the journal holds (IDs, versions, outcomes, user and host names),
never attribute values. Every entry carries a digest of its own content: an entry
edited, cut or of the wrong shape is not used — that run's log is read instead. A log
whose digest differs from the one its entry recorded when the run ended was changed
afterwards; it is reported, never acted on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.engine.journal.reader import newest_first_key, parse_run, unreadable
from reconciler.engine.journal.records import FORMAT_VERSION, JournalError, Outcome, RunHeader
from reconciler.engine.journal.run import CallKey, Run, RunSummary
from reconciler.state import Blob, State, StateError, dumps

INDEX_KEY = "runs/index.json"
INDEX_FORMAT = 3
OPEN, ENDED, INTERRUPTED = "open", "ended", "interrupted"

Call = tuple[str, str, int]  # data store, image set, call


@dataclass(frozen=True, eq=False)
class RunFacts:
    """One run as the index knows it (see the module docstring).

    ``status``: open (no facts yet: read its log), ended or interrupted. ``seq`` is
    its place in the index's order (0: unknown); ``order`` is the service's time of the
    run (its end, else its start), "" when unknown.
    """

    run_id: str
    status: str
    summary: RunSummary
    order: str = ""
    seq: int = 0
    lock_id: str | None = None
    log_digest: str | None = None
    datastores: Mapping[str, str] = field(default_factory=dict)
    changed: bool = False
    replacements: Mapping[str, str] = field(default_factory=dict)
    last_steps: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    unrecorded: frozenset[Call] = frozenset()
    settles: frozenset[CallKey] = frozenset()

    @property
    def problem(self) -> str | None:
        return self.summary.problem

    @property
    def started_at(self) -> str:
        return self.summary.started_at

    @property
    def endpoint(self) -> str:
        return self.summary.endpoint

    @property
    def command(self) -> str:
        return self.summary.command

    @property
    def parent_run_id(self) -> str | None:
        return self.summary.parent_run_id

    def open_calls(self, settled: set[CallKey]) -> bool:
        """Whether a call of this run is unrecorded and not in ``settled``."""
        return any((self.run_id, *call) not in settled for call in self.unrecorded)

    def sort_key(self) -> tuple[int, str, str, str, str]:
        """Newest first when reversed: by the index's sequence, then the service's
        time, then this machine's."""
        return (self.seq, self.order, *newest_first_key(self.run_id, self.started_at))

    def numbered(self, seq: int) -> RunFacts:
        return replace(self, seq=seq)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def facts_of(run: Run, status: str, log_digest: str | None) -> RunFacts:
    """The facts of ``run`` (read from its log) as the index keeps them."""
    order = (run.end.service_time if run.end else None) or run.header.service_time or ""
    return RunFacts(
        run_id=run.run_id,
        status=status,
        summary=run.summary(),
        order=order,
        lock_id=run.header.lock_id,
        log_digest=log_digest,
        datastores=dict(run.header.datastores or {}),
        changed=bool(run.changed() or run.replacements()),
        replacements=run.replacements(),
        last_steps=run.last_steps(),
        unrecorded=frozenset((i.datastore_id, i.image_set_id, i.call) for i in run.unrecorded()),
        settles=frozenset(run.settled_calls()),
    )


def opening(header: RunHeader, location: str) -> RunFacts:
    """The index entry of a run being started (``open``: readers read its log)."""
    summary = RunSummary(
        run_id=header.run_id,
        location=location,
        command=header.command,
        started_at=header.started_at,
        finished_at=None,
        user=header.user,
        host=header.host,
        endpoint=header.endpoint,
        parent_run_id=header.parent_run_id,
        counts={},
        image_sets=0,
        pending=0,
        incomplete=True,
        truncated=False,
    )
    return RunFacts(
        run_id=header.run_id,
        status=OPEN,
        summary=summary,
        order=header.service_time or "",
        lock_id=header.lock_id,
        datastores=dict(header.datastores or {}),
    )


def problem_facts(run_id: str, location: str, problem: str, status: str = OPEN) -> RunFacts:
    return RunFacts(run_id=run_id, status=status, summary=unreadable(run_id, location, problem))


# -- entries: what the index object holds per run ------------------------------------------
def encode(facts: RunFacts) -> dict[str, Any]:
    s = facts.summary
    entry = {
        "status": facts.status,
        "order": facts.order,
        "seq": facts.seq,
        "lock_id": facts.lock_id,
        "log_digest": facts.log_digest,
        "datastores": dict(facts.datastores),
        "changed": facts.changed,
        "replacements": dict(facts.replacements),
        "last_steps": {old: list(step) for old, step in facts.last_steps.items()},
        "unrecorded": sorted([list(call) for call in facts.unrecorded]),
        "settles": sorted([list(call) for call in facts.settles]),
        "summary": {
            "command": s.command,
            "started_at": s.started_at,
            "finished_at": s.finished_at,
            "user": s.user,
            "host": s.host,
            "endpoint": s.endpoint,
            "parent_run_id": s.parent_run_id,
            "counts": {outcome.value: n for outcome, n in s.counts.items()},
            "image_sets": s.image_sets,
            "pending": s.pending,
            "incomplete": s.incomplete,
            "truncated": s.truncated,
            "problem": s.problem,
        },
    }
    entry["check"] = digest(dumps(entry))
    return entry


def decode(run_id: str, entry: Any, location: str) -> RunFacts | None:
    """The facts ``entry`` holds, or None when it is not exactly what :func:`encode`
    wrote (its digest differs, or it has the wrong shape): then the log is read."""
    if not isinstance(entry, dict):
        return None
    body = {k: v for k, v in entry.items() if k != "check"}
    if entry.get("check") != digest(dumps(body)):
        return None
    try:
        s = body["summary"]
        counted = {Outcome(o): _number(n) for o, n in s["counts"].items()}
        counts = {o: counted[o] for o in Outcome if o in counted}
        summary = RunSummary(
            run_id=run_id,
            location=location,
            command=_text(s["command"]),
            started_at=_text(s["started_at"]),
            finished_at=_maybe(s["finished_at"]),
            user=_text(s["user"]),
            host=_text(s["host"]),
            endpoint=_text(s["endpoint"]),
            parent_run_id=_maybe(s["parent_run_id"]),
            counts=counts,
            image_sets=_number(s["image_sets"]),
            pending=_number(s["pending"]),
            incomplete=bool(s["incomplete"]),
            truncated=bool(s["truncated"]),
            problem=_maybe(s["problem"]),
        )
        return RunFacts(
            run_id=run_id,
            status=_text(body["status"]),
            summary=summary,
            order=_text(body["order"]),
            seq=_number(body.get("seq", 0)),
            lock_id=_maybe(body["lock_id"]),
            log_digest=_maybe(body["log_digest"]),
            datastores=_names(body["datastores"]),
            changed=bool(body["changed"]),
            replacements=_names(body["replacements"]),
            last_steps={
                _text(old): (_text(step[0]), _text(step[1]))
                for old, step in body["last_steps"].items()
            },
            unrecorded=frozenset(
                (_text(c[0]), _text(c[1]), _number(c[2])) for c in body["unrecorded"]
            ),
            settles=frozenset(
                (_text(c[0]), _text(c[1]), _text(c[2]), _number(c[3])) for c in body["settles"]
            ),
        )
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _maybe(value: Any) -> str | None:
    return None if value is None else _text(value)


def _number(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError
    return value


def _names(value: Any) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in value.items()}


# -- the index object ---------------------------------------------------------------------
def load_entries(state: State) -> tuple[dict[str, Any], str | None]:
    """The index's entries (run ID → entry) and its tag; ({}, None) when there is no
    index, and ({}, tag) when it is not one this reconciler wrote (then rebuilt)."""
    blob = state.get(INDEX_KEY)
    return _entries(blob), None if blob is None else blob.tag


def _entries(blob: Blob | None) -> dict[str, Any]:
    if blob is None:
        return {}
    try:
        document = json.loads(blob.data)
    except (ValueError, RecursionError):
        return {}
    if (
        not isinstance(document, dict)
        or document.get("index_format") != INDEX_FORMAT
        or not isinstance(document.get("runs"), dict)
    ):
        return {}
    runs: dict[str, Any] = document["runs"]
    return runs


def update(state: State, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the index's entries and write it back, conditionally: a
    writer that changed it meanwhile is not overwritten (read again, changed again)."""

    def changed(blob: Blob | None) -> bytes:
        entries = _entries(blob)
        change(entries)
        document = {"index_format": INDEX_FORMAT, "journal_format": FORMAT_VERSION}
        return dumps({**document, "runs": entries})

    state.rewrite(INDEX_KEY, changed)


def next_seq(entries: dict[str, Any]) -> int:
    """The sequence number after every one ``entries`` hold."""
    numbers = (e.get("seq") for e in entries.values() if isinstance(e, dict))
    return 1 + max((n for n in numbers if isinstance(n, int)), default=0)


def log_facts(state: State, run_id: str, key: str, status: str) -> RunFacts:
    """The facts of run ``run_id`` read from its log ``key`` (a run that cannot be
    read is listed with its problem)."""
    location = state.shown(key)
    try:
        data = state.read_log(key)
    except StateError as failure:
        return problem_facts(run_id, location, failure.message, status)
    if data is None:
        return problem_facts(run_id, location, "its log was never written", status)
    try:
        run = parse_run(location, run_id, data)
    except JournalError as failure:
        return problem_facts(run_id, location, str(failure), status)
    if run.end is not None:
        status = ENDED  # whatever the index said: the run finished
    return facts_of(run, status, digest(data) if status != OPEN else None)


__all__ = [
    "ENDED",
    "INDEX_KEY",
    "INTERRUPTED",
    "OPEN",
    "RunFacts",
    "decode",
    "digest",
    "encode",
    "facts_of",
    "load_entries",
    "log_facts",
    "next_seq",
    "opening",
    "problem_facts",
    "update",
]
