"""A run as read back from its journal (:class:`Run`), and the views of it that
``reconciler runs`` and revert use."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from reconciler.engine.journal.records import (
    FORMAT_VERSION,
    RUN_ID_RE,
    UNDO_STEP,
    EndRecord,
    IntentRecord,
    Outcome,
    ResultRecord,
    RunHeader,
    StepRecord,
    WhyRecord,
)

# A RECOVERED result's message starts so: it settles that call of that earlier run.
SETTLED_MARK_RE = re.compile(r"run (?P<run>\S+) call (?P<call>\d+)/(?P<calls>\d+):")

CallKey = tuple[str, str, str, int]  # run ID, data store, image set, call


class Changed(NamedTuple):
    """An image set a run moved, from its first version to its last."""

    image_set_id: str
    datastore_id: str
    from_version: str
    to_version: str


@dataclass(frozen=True)
class ImageSetEntry:
    """Everything a run recorded about one image set, folded into one line.

    ``outcome`` is the last result's, or None while a call has no result (pending);
    ``to_version`` is the last version a result named.
    """

    image_set_id: str
    datastore_id: str
    from_version: str | None
    to_version: str | None
    outcome: Outcome | None
    message: str | None
    keys: tuple[str, ...]
    calls: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "image_set_id": self.image_set_id,
            "datastore_id": self.datastore_id,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "outcome": self.outcome.value if self.outcome else None,
            "message": self.message,
            "keys": list(self.keys),
            "calls": self.calls,
        }


@dataclass(frozen=True)
class Run:
    """A run as read back from its journal.

    ``truncated``: the last line was cut short (a crash mid-write) and was skipped.
    """

    location: str  # where its log is kept, for messages
    header: RunHeader
    intents: tuple[IntentRecord, ...]
    results: tuple[ResultRecord, ...]
    end: EndRecord | None
    truncated: bool = False
    steps: tuple[StepRecord, ...] = ()
    whys: tuple[WhyRecord, ...] = ()  # the reasons and tickets of its manifests

    def replacements(self) -> dict[str, str]:
        """Old image set ID → the ID of the image set that replaced it in this run."""
        return {s.image_set_id: s.new_id for s in self.steps if s.new_id and s.phase == "done"}

    @property
    def run_id(self) -> str:
        return self.header.run_id

    @property
    def incomplete(self) -> bool:
        """No ``end`` record: the run was interrupted (or is still going)."""
        return self.end is None

    @property
    def status(self) -> str:
        return "interrupted" if self.incomplete else "completed"

    def changed(self) -> list[Changed]:
        """The image sets this run moved, in the order first moved: what revert undoes.

        An image set changed by several calls goes from its first change's
        ``from_version`` to its last one's ``to_version``. Counted as changes: UPDATED
        results, RECOVERED ones that name a new version (the interrupted call did
        happen), and ERROR ones that name a new version (the update landed, but the new
        version failed verification: it changed the image set all the same).
        """
        moved: dict[tuple[str, str], Changed] = {}
        for result in self.results:
            if result.from_version is None or result.to_version is None:
                continue
            if result.outcome in (Outcome.RECOVERED, Outcome.ERROR):
                if result.to_version == result.from_version:
                    continue
            elif result.outcome is not Outcome.UPDATED:
                continue
            key = (result.datastore_id, result.image_set_id)
            first = moved.get(key)
            start = first.from_version if first else result.from_version
            moved[key] = Changed(result.image_set_id, result.datastore_id, start,
                                 result.to_version)  # fmt: skip
        return list(moved.values())

    def pending(self) -> list[IntentRecord]:
        """Intents without a result, in journal order: calls that may or may not have
        happened. A result for the same image set and call, or a later call, settles one.
        Calls to a replace's intermediate copy are not pending: its steps settle them."""
        settled: dict[tuple[str, str], int] = {}
        for r in self.results:
            key = (r.datastore_id, r.image_set_id)
            settled[key] = max(settled.get(key, 0), r.call)
        copies = self.copies()
        return [i for i in self.intents if i.image_set_id not in copies
                and i.call > settled.get((i.datastore_id, i.image_set_id), 0)]  # fmt: skip

    def unrecorded(self) -> list[IntentRecord]:
        """The intents whose calls' outcomes this run does not record, in journal order.

        Pending intents (no result at all); and for an image set whose last result is
        not UPDATED, its calls before the one that result names (they landed: apply only
        goes on to the next call when one succeeded, but only the last call gets a
        result), plus that call itself when it ended in ERROR without a version (sent,
        outcome unknown). Calls to the intermediate copy of a primary image set's
        replace are left to the replace workflow's own resume (``engine/replace.py``),
        which owns that copy.
        """
        copies = self.copies()
        last: dict[tuple[str, str], ResultRecord] = {}
        for record in self.results:
            last[(record.datastore_id, record.image_set_id)] = record
        pending = {(i.datastore_id, i.image_set_id, i.call) for i in self.pending()}
        found = []
        for intent in self.intents:
            key = (intent.datastore_id, intent.image_set_id)
            result = last.get(key)
            if intent.image_set_id in copies:
                continue
            if (*key, intent.call) in pending:
                found.append(intent)
            elif result is None or result.outcome is Outcome.UPDATED or result.call == 0:
                continue
            elif intent.call < result.call or (
                intent.call == result.call
                and result.outcome is Outcome.ERROR
                and result.to_version is None
            ):
                found.append(intent)
        return found

    def settled_calls(self) -> set[CallKey]:
        """Calls of earlier runs this run settled: its RECOVERED results, whose messages
        start ``run <id> call <c>/<n>:`` (``engine/recovery.py`` writes them)."""
        marks: set[CallKey] = set()
        for result in self.results:
            if result.outcome is not Outcome.RECOVERED or not result.message:
                continue
            found = SETTLED_MARK_RE.match(result.message)
            if found and RUN_ID_RE.match(found["run"]):
                marks.add((found["run"], result.datastore_id, result.image_set_id,
                           int(found["call"])))  # fmt: skip
        return marks

    def last_steps(self) -> dict[str, tuple[str, str]]:
        """Old image set ID → the last (step, phase) this run recorded of its replace."""
        return {s.image_set_id: (s.step, s.phase) for s in self.steps if s.step != UNDO_STEP}

    def copies(self) -> frozenset[str]:
        """The intermediate copies of this run's replaces: the replace workflow's step
        records own them (their calls get no results of their own)."""
        return frozenset(s.copy_id for s in self.steps if s.copy_id)

    def image_sets(self) -> list[ImageSetEntry]:
        """One entry per image set, in the order the journal first names them."""
        intents: dict[tuple[str, str], list[IntentRecord]] = {}
        results: dict[tuple[str, str], list[ResultRecord]] = {}
        order: dict[tuple[str, str], None] = {}
        copies = self.copies()
        records: list[IntentRecord | ResultRecord] = [
            *(i for i in self.intents if i.image_set_id not in copies),
            *self.results,
        ]
        for record in sorted(records, key=lambda r: r.at):
            key = (record.datastore_id, record.image_set_id)
            order.setdefault(key)
            if isinstance(record, IntentRecord):
                intents.setdefault(key, []).append(record)
            else:
                results.setdefault(key, []).append(record)
        waiting = {(i.datastore_id, i.image_set_id) for i in self.pending()}
        entries = []
        for key in order:
            asked, told = intents.get(key, []), results.get(key, [])
            keys = dict.fromkeys(k for intent in asked for k in intent.keys)
            first = asked[0].from_version if asked else told[0].from_version
            last_to = next((r.to_version for r in reversed(told) if r.to_version), None)
            outcome = None if key in waiting or not told else told[-1].outcome
            entries.append(ImageSetEntry(
                image_set_id=key[1], datastore_id=key[0], from_version=first,
                to_version=last_to, outcome=outcome,
                message=told[-1].message if told else None, keys=tuple(keys),
                calls=max([i.calls for i in asked] + [r.call for r in told]),
            ))  # fmt: skip
        return entries

    def counts(self) -> dict[Outcome, int]:
        """Image sets per last outcome (pending ones are not counted), in Outcome order."""
        outcomes = [entry.outcome for entry in self.image_sets()]
        return {o: outcomes.count(o) for o in Outcome if o in outcomes}

    def summary(self) -> RunSummary:
        entries = self.image_sets()
        return RunSummary(
            run_id=self.run_id,
            location=self.location,
            command=self.header.command,
            started_at=self.header.started_at,
            finished_at=self.end.finished_at if self.end else None,
            user=self.header.user,
            host=self.header.host,
            endpoint=self.header.endpoint,
            parent_run_id=self.header.parent_run_id,
            counts=self.counts(),
            image_sets=len(entries),
            pending=sum(1 for e in entries if e.outcome is None),
            incomplete=self.incomplete,
            truncated=self.truncated,
        )

    def as_dict(self) -> dict[str, Any]:
        """The run for tools: header, status, one entry per image set, every record."""
        return {
            "format_version": FORMAT_VERSION,
            "run": self.header.as_dict(),
            "status": self.status,
            "truncated": self.truncated,
            "location": self.location,
            "image_sets": [entry.as_dict() for entry in self.image_sets()],
            "why": [why.as_dict() for why in self.whys],
            "changed": [change._asdict() for change in self.changed()],
            "pending": [intent.as_dict() for intent in self.pending()],
            "intents": [intent.as_dict() for intent in self.intents],
            "results": [result.as_dict() for result in self.results],
            "end": self.end.as_dict() if self.end else None,
        }


@dataclass(frozen=True)
class RunSummary:
    """One line of ``reconciler runs``. ``problem`` is set when the journal is unreadable."""

    run_id: str
    location: str
    command: str
    started_at: str
    finished_at: str | None
    user: str
    host: str
    endpoint: str
    parent_run_id: str | None
    counts: dict[Outcome, int] = field(hash=False)
    image_sets: int
    pending: int
    incomplete: bool
    truncated: bool
    problem: str | None = None

    @property
    def status(self) -> str:
        if self.problem:
            return "unreadable"
        return "interrupted" if self.incomplete else "completed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "location": self.location,
            "command": self.command,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "user": self.user,
            "host": self.host,
            "endpoint": self.endpoint,
            "parent_run_id": self.parent_run_id,
            "image_sets": self.image_sets,
            "counts": {outcome.value: count for outcome, count in self.counts.items()},
            "pending": self.pending,
            "truncated": self.truncated,
            "problem": self.problem,
        }
