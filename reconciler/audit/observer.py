"""Writing the audit trail as the journal goes: each outcome is audited before the
journal records it.

:class:`AuditObserver` is the journal's :class:`~reconciler.engine.journal.RunObserver`
for every run a session starts — apply, revert, and the runs that settle what
interrupted runs left open. Told of a ``result`` record, it appends that outcome's audit
record to the run's log (durable before the journal line is written, so a crash never
leaves a journaled outcome without its audit record; at worst a call is audited once as
it ended and once more as the next apply settles it).

What a record says of the image set comes from what the command knows
(:func:`~reconciler.audit.records.apply_about`, ``revert_about``); for an outcome the
command did not plan — a call of an earlier run settled by recovery (a ``RECOVERED``
result whose message names that run's call), a halfway replace finished or rolled back
— it is looked up in the run that started it: its attribute keys, reasons and command.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from reconciler.audit.records import (
    APPLY,
    REPLACE,
    REVERT,
    About,
    Expected,
    Who,
    event,
    revert_about,
    whys_of,
)
from reconciler.audit.trail import LogWriter, log_records
from reconciler.engine.journal import (
    SETTLED_MARK_RE,
    Record,
    ResultRecord,
    Run,
    RunHeader,
    RunStore,
    StepRecord,
)
from reconciler.engine.recovery import REVERT_PREFIX
from reconciler.engine.revert import RevertItem
from reconciler.errors import ReconcilerError
from reconciler.manifest.model import Why
from reconciler.state import State

# (data store, image set, version or None for the latest) → its StudyInstanceUID
StudyOf = Callable[[str, str, str | None], str | None]


class AuditObserver:
    """The audit trail of one session's runs (see the module docstring). ``state`` gives
    the session's state, ``who`` who ran a run, ``study_of`` reads a study's UID
    (only for outcomes nothing else names it for)."""

    def __init__(
        self,
        state: Callable[[], State],
        who: Callable[[RunHeader], Who],
        study_of: StudyOf,
    ) -> None:
        self._state = state
        self._who = who
        self._study_of = study_of
        self._lock = threading.Lock()
        self._logs: dict[str, LogWriter] = {}
        self._new_ids: dict[str, dict[str, str]] = {}  # run → old image set → its new ID
        self._replaced: dict[str, set[str]] = {}  # run → image sets it replaces (steps)
        self._expected: Expected = {}
        self._origins: dict[str, Run | None] = {}

    # -- what the command knows ---------------------------------------------------------
    @contextmanager
    def expecting(self, known: Expected) -> Iterator[None]:
        """While the block runs, outcomes of these image sets are described by ``known``."""
        self._expected = known
        try:
            yield
        finally:
            self._expected = {}

    def revert_about(self, items: tuple[RevertItem, ...], why: Why, parent: Run | None) -> Expected:
        """What a revert of ``parent`` (None: of single image sets) knows of ``items``:
        the keys and study each had in the reverted run's audit records (else its
        journal's keys, and the study read from the service when the outcome is known)."""
        keys: dict[str, tuple[str, ...]] = {}
        studies: dict[str, str | None] = {}
        if parent is not None:
            for entry in parent.image_sets():
                keys[entry.image_set_id] = entry.keys
            for record in log_records(self._state(), parent.run_id):
                for image_set in (record.get("image_set_id"), record.get("new_image_set_id")):
                    if isinstance(image_set, str):
                        keys[image_set] = tuple(record.get("keys") or keys.get(image_set, ()))
                        studies[image_set] = record.get("study_uid")
        return revert_about(items, why, keys=keys, studies=studies)

    # -- the journal's observer -----------------------------------------------------------
    def recording(self, header: RunHeader, record: Record) -> None:
        if isinstance(record, StepRecord):
            with self._lock:
                self._replaced.setdefault(header.run_id, set()).add(record.image_set_id)
                if record.new_id:
                    self._new_ids.setdefault(header.run_id, {})[record.image_set_id] = record.new_id
            return
        if not isinstance(record, ResultRecord):
            return
        with self._lock:
            writer = self._logs.get(header.run_id)
            if writer is None:
                writer = LogWriter(self._state(), header.run_id, header.lock_id)
                self._logs[header.run_id] = writer
            new_id = self._new_ids.get(header.run_id, {}).get(record.image_set_id)
        about = self._about(header, record, new_id)
        mark = SETTLED_MARK_RE.match(record.message or "")
        settles = mark.group(0).rstrip(":") if mark else None
        writer.write(
            event(
                record, header, about, self._who(header), new_image_set_id=new_id, settles=settles
            )
        )

    def closed(self, header: RunHeader, *, ended: bool) -> None:
        with self._lock:
            writer = self._logs.pop(header.run_id, None)
            self._new_ids.pop(header.run_id, None)
            self._replaced.pop(header.run_id, None)
        if writer is not None:
            writer.close(ended=ended)

    # -- what a record says of its image set ----------------------------------------------
    def _about(self, header: RunHeader, result: ResultRecord, new_id: str | None) -> About:
        known = self._expected.get((result.datastore_id, result.image_set_id))
        if known is not None:
            if known.study_uid is None and result.to_version:
                study = self._study_of(
                    result.datastore_id, new_id or result.image_set_id, result.to_version
                )
                return dataclasses.replace(known, study_uid=study)
            return known
        mark = SETTLED_MARK_RE.match(result.message or "")
        if mark is not None:
            return self._settled(result, mark["run"], int(mark["call"]))
        if result.image_set_id in self._replaced.get(header.run_id, set()):
            return self._resumed(header, result, new_id)
        action = APPLY if header.command == "apply" else REVERT
        return About(action=action, study_uid=self._study(result, None))

    def _settled(self, result: ResultRecord, run_id: str, call: int) -> About:
        """A call of run ``run_id`` that recovery settled: its keys and reasons."""
        origin = self._origin(run_id)
        if origin is None:
            return About(action=APPLY, study_uid=self._study(result, None))
        intent = next(
            (
                i
                for i in origin.intents
                if (i.datastore_id, i.image_set_id, i.call)
                == (result.datastore_id, result.image_set_id, call)
            ),
            None,
        )
        reverting = origin.header.command == "revert" or (
            intent is not None and intent.payload_digest.startswith(REVERT_PREFIX)
        )
        whys = whys_of(origin.whys)
        return About(
            action=REVERT if reverting else APPLY,
            study_uid=self._study(result, None),
            keys=() if intent is None or reverting else intent.keys,
            manifests=tuple(w["manifest"] for w in whys if w["manifest"]),
            why=whys,
        )

    def _resumed(self, header: RunHeader, result: ResultRecord, new_id: str | None) -> About:
        """A replace an interrupted run left halfway, finished or rolled back now: the
        keys its runs' calls to the copy changed, and their reasons."""
        keys: dict[str, None] = {}
        whys: list[dict[str, Any]] = []
        for origin in self._replacing(result.image_set_id, exclude=header.run_id):
            copies = {s.copy_id for s in origin.steps if s.image_set_id == result.image_set_id}
            for intent in origin.intents:
                if intent.image_set_id in copies:
                    keys.update(dict.fromkeys(intent.keys))
            whys += whys_of(origin.whys)
        return About(
            action=REPLACE,
            study_uid=self._study(result, new_id),
            keys=tuple(keys),
            manifests=tuple(w["manifest"] for w in whys if w["manifest"]),
            why=tuple(whys),
        )

    def _study(self, result: ResultRecord, new_id: str | None) -> str | None:
        if new_id is not None:
            return self._study_of(result.datastore_id, new_id, None)
        version = result.to_version or result.from_version
        return self._study_of(result.datastore_id, result.image_set_id, version)

    def _origin(self, run_id: str) -> Run | None:
        if run_id not in self._origins:
            try:
                self._origins[run_id] = RunStore(self._state()).load(run_id)
            except ReconcilerError:
                self._origins[run_id] = None
        return self._origins[run_id]

    def _replacing(self, image_set_id: str, *, exclude: str) -> list[Run]:
        """The runs whose steps replace ``image_set_id`` (from the run index)."""
        found = []
        for facts in RunStore(self._state()).facts():
            if facts.run_id != exclude and image_set_id in facts.last_steps:
                origin = self._origin(facts.run_id)
                if origin is not None:
                    found.append(origin)
        return found
