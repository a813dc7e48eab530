"""Corrections on primary image sets: copy → update → delete → promote → delete.

HealthImaging refuses Patient- and Series-level updates (and UID changes) on primary
image sets. Its documented procedure: copy the primary image set to a non-primary one,
update the copy, delete the primary, copy the corrected set back with
``promoteToPrimary``, delete the intermediate copy. The study gets a **new image set
ID**. Each step is journaled when it starts and when it is done, so an interrupted
replace is finished or rolled back by the next apply (:func:`resume`):

- never two primaries: the old one is deleted before the promotion, and a promotion
  while a primary exists is refused by the service;
- never a study without its data: the old primary is deleted only after the corrected
  copy exists and holds the desired state; until the promotion the copy holds it all;
- never a racer's change lost to the delete: the old primary is deleted only while it
  is still at the version that was copied (checked right before DeleteImageSet is sent,
  which takes no version pin itself); if it moved, the copy is rolled back and the
  image set is STALE (:class:`ReplaceStale`). Where the service still lists a deleted
  image set's versions, a version someone else wrote in the remaining window is
  reported (:attr:`Replaced.lost`);
- nothing deleted or promoted on a record's word: the copy and the promoted image set
  are tagged with the run (:mod:`reconciler.engine.proof`), and an image set a record
  names is deleted or promoted only when the service confirms it is this replace's.

The study is without a primary image set from the moment the delete settles until the
promoted copy settles: two write calls, about 8 s at the default quota of 0.25/s each
plus the LOCKED time of each (docs/primary-image-sets.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace as replace_field
from typing import Any

from reconciler.dicom.phi import mask_service_message
from reconciler.engine import proof
from reconciler.engine.changes import Change, ChangeOp, ImageSetDiff
from reconciler.engine.journal import (
    Journal,
    Outcome,
    Run,
    RunContext,
    RunFacts,
    RunStore,
    StepRecord,
)
from reconciler.engine.journal.records import UNDO_STEP
from reconciler.engine.payloads import UpdatePayload, build_payloads, payload_digest
from reconciler.engine.recovery import settled_runs
from reconciler.engine.resolve import primaries_of_study
from reconciler.engine.verify import unmet
from reconciler.errors import ExitCode, ReconcilerError
from reconciler.healthimaging import (
    HealthImaging,
    ImageSetNotFound,
    SearchFilter,
    UpdateResult,
    VersionConflict,
    VersionMoved,
    WorkflowStatus,
)

COPY, UPDATE, DELETE_OLD, PROMOTE, DELETE_COPY = (
    "copy",
    "update-copy",
    "delete-primary",
    "promote",
    "delete-copy",
)


class ReplaceFailed(ReconcilerError):
    """A step failed; ``state`` says what is left and what the next apply will do."""


class ReplaceStale(ReplaceFailed):
    """The old primary moved since it was copied (another writer): rolled back, the
    other writer's version kept."""

    exit_code = ExitCode.STALE


@dataclass(frozen=True)
class Replaced:
    old_id: str
    new_id: str
    new_version: str
    copy_deleted: bool
    # Versions of the old primary someone else wrote after the copied one, deleted with
    # it (the service listed them after the delete): their change is not in new_id.
    lost: tuple[str, ...] = ()

    @property
    def lost_message(self) -> str:
        """One line saying what was lost (empty when nothing was)."""
        if not self.lost:
            return ""
        versions = ", ".join(self.lost)
        return (
            f"LOST: version {versions} of image set {self.old_id} was written by someone "
            f"else after the copy and deleted with it; its change is not in image set "
            f"{self.new_id}: `reconciler history {self.old_id}` may still list it, apply "
            "that change again"
        )


class Replacer:
    def __init__(
        self,
        ahi: HealthImaging,
        journal: Journal,
        datastore_id: str,
        old_id: str,
        *,
        lock_timeout: float,
        runs: RunStore,
    ) -> None:
        self.ahi = ahi
        self.journal = journal
        self.ds = datastore_id
        self.old_id = old_id
        self.lock_timeout = lock_timeout
        self.runs = runs  # where the run's undo values go
        # The runs whose records may name this replace's image sets: their tags must
        # name one (engine/proof.py). A resume sets the runs that recorded its steps.
        self.recorders: frozenset[str] = frozenset({journal.run_id})
        self.made: set[str] = set()  # what this process's own CopyImageSet calls made

    def keep_undo(self, entry: dict[str, Any], run_id: str | None = None) -> None:
        """Write the old image set's undo entry into run ``run_id``'s undo values
        (default: this run's), then record their digest in this run's journal."""
        digest = self.runs.write_undo(run_id or self.journal.run_id, self.old_id, entry)
        self.journal.step(self.old_id, self.ds, UNDO_STEP, "done", undo_digest=digest)

    def _step(self, step: str, phase: str, copy_id: str | None = None,
              new_id: str | None = None) -> None:  # fmt: skip
        self.journal.step(self.old_id, self.ds, step, phase, copy_id=copy_id, new_id=new_id)

    def _settled(self, image_set_id: str, what: str) -> str:
        info = self.ahi.wait_until_settled(self.ds, image_set_id, self.lock_timeout)
        if info.workflow_status in (WorkflowStatus.UPDATE_FAILED, WorkflowStatus.COPY_FAILED):
            why = mask_service_message(info.message or info.workflow_status.value)
            raise ReplaceFailed(f"{what} failed: {why}")
        return info.version_id

    def _gone(self, image_set_id: str) -> None:
        try:
            self.ahi.wait_until_settled(self.ds, image_set_id, self.lock_timeout)
        except ImageSetNotFound:
            return
        raise ReplaceFailed(f"image set {image_set_id} was not deleted")

    def _made(self, made: UpdateResult, role: str, source: str, version: str) -> str:
        """Tag what a CopyImageSet of this process just made, before any record names it."""
        self.made.add(made.image_set_id)
        values = proof.tags(self.journal.run_id, role, self.old_id, source, version)
        proof.tag_made(self.ahi, made, values, datastore_id=self.ds, lock_timeout=self.lock_timeout)
        return made.image_set_id

    def prove_copy(self, copy_id: str, *, origin: bool) -> None:
        """The service confirms ``copy_id`` is this replace's copy (made by this process,
        or tagged so by a run that recorded this replace); with ``origin``, also that
        its first version holds the old primary's copied version. Else NotProven."""
        if copy_id in self.made:  # CopyImageSet answered this process with its ID
            return
        _, found = proof.prove_made(
            self.ahi, self.ds, copy_id, role=proof.COPY, replaces=self.old_id, runs=self.recorders
        )
        if origin:
            proof.prove_copy_of(self.ahi, self.ds, copy_id, found)

    def prove_promoted(self, new_id: str, copy_id: str) -> None:
        """The service confirms ``new_id`` is this replace's promotion of ``copy_id``:
        tagged so, or (a crash between the promotion and its tags) holding exactly the
        copy's data; else NotProven."""
        try:
            proof.prove_made(
                self.ahi,
                self.ds,
                new_id,
                role=proof.PROMOTED,
                replaces=self.old_id,
                runs=self.recorders,
            )
        except proof.NotProven:
            if not proof.same_data(self.ahi, self.ds, new_id, copy_id):
                raise

    def _delete_settled(self, image_set_id: str) -> None:
        """Delete an image set at the version it settled at (nobody's write in between)."""
        info = self.ahi.wait_until_settled(self.ds, image_set_id, self.lock_timeout)
        self.ahi.delete_image_set(self.ds, image_set_id, at_version=info.version_id)
        self._gone(image_set_id)

    # -- the steps ------------------------------------------------------------------
    def copy(self, version: str) -> str:
        self._step(COPY, "start")
        result = self.ahi.copy_image_set(self.ds, self.old_id, version)
        try:
            copy_id = self._made(result.destination, proof.COPY, self.old_id, version)
        except ReconcilerError as error:  # untagged, a later run could not prove it ours
            self.rollback(result.destination.image_set_id)  # this process made it
            raise ReplaceFailed(
                f"the copy could not be tagged ({error.message}); rolled back, image set "
                f"{self.old_id} unchanged (the role needs medical-imaging:TagResource)"
            ) from error
        self._step(COPY, "done", copy_id=copy_id)
        self._settled(copy_id, "the copy")
        self._settled(self.old_id, "the copy (source)")
        return copy_id

    def update_copy(self, copy_id: str, payloads: Sequence[UpdatePayload]) -> str:
        latest = "1"
        for call, payload in enumerate(payloads, start=1):
            self._step(UPDATE, "start", copy_id=copy_id)
            self.journal.intent(
                copy_id,
                self.ds,
                latest,
                payload_digest(payload),
                call=call,
                calls=len(payloads),
                keys=payload.keys,
            )
            result = self.ahi.update_metadata(
                self.ds, copy_id, latest, updatable=payload.updatable,
                removable=payload.removable, force=payload.force,
            )  # fmt: skip
            latest = result.version_id
            self._settled(copy_id, "the update of the copy")
            self._step(UPDATE, "done", copy_id=copy_id)
        return latest

    def check(self, image_set_id: str, version: str, changes: Sequence[Change]) -> None:
        missing = unmet(self.ahi.get_metadata(self.ds, image_set_id, version), changes)
        if missing:
            raise ReplaceFailed(f"image set {image_set_id} does not hold: " + "; ".join(missing))

    def delete_old(self, copy_id: str, version: str) -> tuple[str, ...]:
        """Delete the old primary, only while it is still at ``version`` (the copied
        one): else :class:`ReplaceStale`, nothing deleted. Returns the versions past
        ``version`` the service still lists for it once deleted (someone else's)."""
        self._step(DELETE_OLD, "start", copy_id=copy_id)
        try:
            self.ahi.delete_image_set(self.ds, self.old_id, at_version=version)
        except (VersionMoved, VersionConflict) as refused:
            now = self.ahi.wait_until_settled(self.ds, self.old_id, self.lock_timeout).version_id
            if now == version:
                raise  # refused for another reason (a copy of it in flight): a failure
            raise ReplaceStale(
                f"image set {self.old_id} moved to version {now} since version {version} was "
                "copied (another writer); its change is kept"
            ) from refused
        self._gone(self.old_id)
        self._step(DELETE_OLD, "done", copy_id=copy_id)
        return self._lost_with(self.old_id, version)

    def _lost_with(self, deleted: str, version: str) -> tuple[str, ...]:
        """Versions past ``version`` of a deleted image set that the service still
        lists (it may, or may answer ResourceNotFound), other than failed writes."""
        try:
            listed = list(self.ahi.list_versions(self.ds, deleted))
        except ImageSetNotFound:
            return ()
        return tuple(
            sorted(
                (
                    v.version_id
                    for v in listed
                    if v.version_id.isdigit()
                    and int(v.version_id) > int(version)
                    and v.workflow_status is not WorkflowStatus.UPDATE_FAILED
                ),
                key=int,
            )
        )

    def promote(self, copy_id: str, copy_version: str) -> tuple[str, str]:
        self._step(PROMOTE, "start", copy_id=copy_id)
        result = self.ahi.copy_image_set(self.ds, copy_id, copy_version, promote_to_primary=True)
        new_id = self._made(result.destination, proof.PROMOTED, copy_id, copy_version)
        new_version = self._settled(new_id, "the promotion")
        self._settled(copy_id, "the promotion (source)")
        self._step(PROMOTE, "done", copy_id=copy_id, new_id=new_id)
        return new_id, new_version

    def delete_copy(self, copy_id: str, new_id: str) -> bool:
        """Delete the intermediate copy once the promoted image set holds its data (and
        the service confirms the copy is this replace's); False when it is left."""
        self._step(DELETE_COPY, "start", copy_id=copy_id, new_id=new_id)
        try:
            self.ahi.wait_until_settled(self.ds, copy_id, self.lock_timeout)
            self.prove_copy(copy_id, origin=False)
            if not proof.same_data(self.ahi, self.ds, copy_id, new_id):
                raise proof.NotProven(
                    f"image set {new_id} does not hold the data of copy {copy_id}"
                )
            self._delete_settled(copy_id)
        except ReconcilerError:
            return False  # a leftover non-primary copy: harmless, reported
        self._step(DELETE_COPY, "done", copy_id=copy_id, new_id=new_id)
        return True

    def rollback(self, copy_id: str) -> None:
        """The old primary still stands: remove the copy, as if nothing happened — only
        when the service confirms it is this replace's copy of the old primary (else
        :class:`~reconciler.engine.proof.NotProven`, and it is left alone)."""
        self.ahi.wait_until_settled(self.ds, copy_id, self.lock_timeout)  # a copy in flight
        self.prove_copy(copy_id, origin=True)
        self._delete_settled(copy_id)
        self._step("rollback", "done", copy_id=copy_id)


def replace_image_set(
    ahi: HealthImaging,
    journal: Journal,
    datastore_id: str,
    image_set_id: str,
    *,
    version: str,
    payloads: Sequence[UpdatePayload],
    lock_timeout: float,
    runs: RunStore,
) -> Replaced:
    """Run the whole workflow; on failure roll back while the old primary stands. The
    undo values go to the run's undo values in ``runs``, their digest to its journal."""
    steps = Replacer(ahi, journal, datastore_id, image_set_id, lock_timeout=lock_timeout, runs=runs)
    changes = [c for p in payloads for c in p.changes]
    # What a revert needs once the old primary is gone: refused now, before anything
    # is copied, when it cannot be written (a removed series or instance).
    undo = undo_entry(datastore_id, image_set_id, version, changes) if changes else None
    copy_id = steps.copy(version)
    try:
        copy_version = steps.update_copy(copy_id, payloads)
        steps.check(copy_id, copy_version, changes)
        if undo is not None:  # durable before the step that destroys the original
            steps.keep_undo({**undo, "copy_id": copy_id})
        lost = steps.delete_old(copy_id, version)
    except ReconcilerError as error:
        if not _exists(ahi, datastore_id, image_set_id, lock_timeout):  # deleted: finish
            return _finished(steps, copy_id, changes, undo)
        steps.rollback(copy_id)
        if isinstance(error, ReplaceStale):
            raise ReplaceStale(f"{error.message}; the copy was rolled back") from error
        raise ReplaceFailed(
            f"{error.message}; rolled back, image set {image_set_id} unchanged"
        ) from error
    return _finished(steps, copy_id, changes, undo, lost)


def _finished(
    steps: Replacer,
    copy_id: str,
    changes: Sequence[Change],
    undo: dict[str, Any] | None,
    lost: tuple[str, ...] = (),
) -> Replaced:
    replaced = replace_field(finish(steps, copy_id, changes), lost=lost)
    if undo is not None:
        steps.keep_undo(
            {
                **undo,
                "copy_id": copy_id,
                "new_id": replaced.new_id,
                "new_version": replaced.new_version,
            }
        )
    return replaced


def _exists(ahi: HealthImaging, datastore_id: str, image_set_id: str, timeout: float) -> bool:
    """Whether the image set still exists once any write on it (a delete) has settled:
    a rollback while the old primary is being deleted would leave the study empty."""
    try:
        ahi.wait_until_settled(datastore_id, image_set_id, timeout, initial=0.05)
    except ImageSetNotFound:
        return False
    return True


def _promoted_already(steps: Replacer, copy_id: str, copy_version: str) -> str | None:
    """A primary of the copy's study other than the old one: a promotion whose journal
    record a crash cut off (the service allows one primary per study). It must be this
    replace's promotion (tagged so, or holding exactly the copy's data): another
    primary is never taken for ours (ReplaceFailed, the copy kept)."""
    doc = steps.ahi.get_metadata(steps.ds, copy_id, copy_version)
    study = (doc.get("Study") or {}).get("DICOM", {}).get("StudyInstanceUID")
    if not isinstance(study, str):
        return None
    others = sorted(primaries_of_study(steps.ahi, steps.ds, study) - {steps.old_id})
    for other in others:
        try:
            steps.prove_promoted(other, copy_id)
        except proof.NotProven:
            raise ReplaceFailed(
                f"image set {other} is the primary image set of the study, and not this "
                f"replace's promotion: the corrected data stays in non-primary image set "
                f"{copy_id}"
            ) from None
        return other
    return None


def finish(steps: Replacer, copy_id: str, changes: Sequence[Change]) -> Replaced:
    """From "old primary deleted, corrected copy exists" to "promoted, copy deleted"."""
    steps.prove_copy(copy_id, origin=False)  # never promote what a record merely names
    copy_version = steps.ahi.get_image_set(steps.ds, copy_id).version_id
    promoted = _promoted_already(steps, copy_id, copy_version)
    if promoted is not None:
        version = steps.ahi.get_image_set(steps.ds, promoted).version_id
        steps._step(PROMOTE, "done", copy_id=copy_id, new_id=promoted)
        return Replaced(steps.old_id, promoted, version, steps.delete_copy(copy_id, promoted))
    try:
        new_id, new_version = steps.promote(copy_id, copy_version)
    except ReconcilerError as error:
        raise ReplaceFailed(
            f"the promotion failed ({error.message}); the corrected data is in non-primary "
            f"image set {copy_id}: run apply again to promote it"
        ) from error
    steps.check(new_id, new_version, changes)
    deleted = steps.delete_copy(copy_id, new_id)
    return Replaced(steps.old_id, new_id, new_version, deleted)


@dataclass(frozen=True)
class Resumed:
    old_id: str
    outcome: Outcome
    new_id: str | None
    message: str


# The last step of a replace that is over: nothing is left to finish or roll back.
_FINISHED = frozenset({(DELETE_COPY, "done"), ("rollback", "done"), ("resumed", "done")})


def _incomplete(runs: Sequence[Run]) -> dict[str, tuple[list[StepRecord], list[str]]]:
    """Old image set ID → its step records and the runs that hold them (oldest first),
    for replaces no run has finished."""
    by_set: dict[str, tuple[list[StepRecord], list[str]]] = {}
    for run in sorted(runs, key=lambda r: r.header.started_at):
        for record in run.steps:
            if record.step == UNDO_STEP:
                continue
            records, run_ids = by_set.setdefault(record.image_set_id, ([], []))
            records.append(record)
            if run.run_id not in run_ids:
                run_ids.append(run.run_id)
    return {
        old_id: found
        for old_id, found in by_set.items()
        if (found[0][-1].step, found[0][-1].phase) not in _FINISHED
    }


def _carry_undo(steps: Replacer, run_ids: list[str], new_id: str) -> None:
    """A resumed replace that ended in ``new_id``: its undo entry (written before the
    old primary was deleted) learns the new image set, in the interrupted run's undo
    values and in the resuming run's, so either run can be reverted."""
    for run_id in reversed(run_ids):
        entry = steps.runs.read_undo(run_id).get(steps.old_id)
        if entry is None:
            continue
        version = steps.ahi.get_image_set(steps.ds, new_id).version_id
        entry = {**entry, "new_id": new_id, "new_version": version}
        steps.runs.write_undo(run_id, steps.old_id, entry)  # the restored values are the same
        steps.keep_undo(entry)
        return


def _unnamed_copies(steps: Replacer, since: str) -> list[str]:
    """Non-primary image sets of the old primary's study created since ``since``."""
    info = steps.ahi.get_image_set(steps.ds, steps.old_id)
    doc = steps.ahi.get_metadata(steps.ds, steps.old_id, info.version_id)
    study = (doc.get("Study") or {}).get("DICOM", {}).get("StudyInstanceUID")
    if not isinstance(study, str):
        return []
    started = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
    found = steps.ahi.search(steps.ds, [SearchFilter.equal("DICOMStudyInstanceUID", study),
                                        SearchFilter.equal("isPrimary", False)])  # fmt: skip
    return [s.image_set_id for s in found if s.created_at is not None and s.created_at >= started]


def _resume_one(steps: Replacer, records: list[StepRecord], journals: list[str]) -> Resumed:
    copy_id = next((r.copy_id for r in reversed(records) if r.copy_id), None)
    new_id = next((r.new_id for r in reversed(records) if r.new_id), None)
    # The records are claims: what they name is touched only once the service confirms
    # it was made by one of the runs that recorded this replace (engine/proof.py).
    steps.recorders = frozenset(journals)
    if copy_id is None:  # interrupted before the copy was named: the primary stands
        strays, left = _unnamed_copies(steps, records[-1].at), []
        for stray in strays:  # made by the call whose "done" record the crash cut off
            try:
                steps.rollback(stray)
            except proof.NotProven as refused:  # not provably ours (or untagged): left alone
                left.append(f"left image set {stray} alone ({refused.message})")
        steps._step("resumed", "done")
        removed = len(strays) - len(left)
        detail = f"removed {removed} unrecorded copy" if removed else "no copy was removed"
        return Resumed(
            steps.old_id,
            Outcome.ERROR if left else Outcome.RECOVERED,
            None,
            "; ".join([f"{detail}; plan again", *left]),
        )
    if new_id is not None:  # promoted: only the intermediate copy is left
        steps.prove_promoted(new_id, copy_id)
        _carry_undo(steps, journals, new_id)
        if steps.delete_copy(copy_id, new_id):
            return Resumed(steps.old_id, Outcome.RECOVERED, new_id, f"replaced by {new_id}")
        return Resumed(
            steps.old_id,
            Outcome.RECOVERED,
            new_id,
            f"replaced by {new_id}; non-primary image set {copy_id} was left "
            "(not provably this replace's copy, or not deletable)",
        )
    if _exists(steps.ahi, steps.ds, steps.old_id, steps.lock_timeout):
        if _exists(steps.ahi, steps.ds, copy_id, steps.lock_timeout):
            try:
                steps.rollback(copy_id)
            except proof.NotProven as refused:
                steps._step("resumed", "done")  # the old primary stands: nothing to finish
                return Resumed(
                    steps.old_id,
                    Outcome.ERROR,
                    None,
                    f"left image set {copy_id} alone ({refused.message}); image "
                    f"set {steps.old_id} stands, unchanged",
                )
        else:
            steps._step("resumed", "done")
        return Resumed(steps.old_id, Outcome.RECOVERED, None, "rolled back; plan again")
    replaced = finish(steps, copy_id, [])
    _carry_undo(steps, journals, replaced.new_id)
    return Resumed(steps.old_id, Outcome.RECOVERED, replaced.new_id,
                   f"finished: replaced by {replaced.new_id}")  # fmt: skip


def resume_interrupted(
    ahi: HealthImaging,
    runs: RunStore,
    *,
    endpoint: str,
    lock_timeout: float,
    context: RunContext | None = None,
) -> list[Resumed]:
    """Finish or roll back every replace an interrupted run left halfway: roll back
    while the old primary stands, else promote the corrected copy (never leave a study
    without its primary). Journaled as a run of its own. Runs still being written (an
    open run whose lock is held: another shard) are not touched."""
    settled = settled_runs(runs)
    # Which replaces no run finished, from the run index; only the runs that took part
    # in one of those are read.
    last: dict[str, tuple[str, str]] = {}
    for facts in settled:
        last.update(facts.last_steps)
    open_ids = {old_id for old_id, step in last.items() if step not in _FINISHED}
    if not open_ids:
        return []
    involved = [
        runs.read(facts.run_id, facts)
        for facts in settled
        if not open_ids.isdisjoint(facts.last_steps)
    ]
    pending = {
        old_id: found for old_id, found in _incomplete(involved).items() if old_id in open_ids
    }
    if not pending:
        return []
    results: list[Resumed] = []
    with Journal.start(runs, command="apply", endpoint=endpoint, context=context) as journal:
        for old_id, (records, journals) in pending.items():
            ds = records[0].datastore_id
            steps = Replacer(ahi, journal, ds, old_id, lock_timeout=lock_timeout, runs=runs)
            try:
                resumed = _resume_one(steps, records, journals)
            except proof.NotProven as refused:  # a record names what the service does not confirm
                resumed = Resumed(old_id, Outcome.ERROR, None, f"{refused.message}; left alone")
            except ReconcilerError as error:
                resumed = Resumed(old_id, Outcome.ERROR, None, error.message)
            journal.result(old_id, ds, None, None, resumed.outcome, message=resumed.message, call=0)
            results.append(resumed)
    return results


def replacements(runs: RunStore) -> dict[str, str]:
    """Every old image set ID → the image set that replaced it, across the runs of the
    scope (oldest first, so a later replace of the same ID wins). From the run index:
    no journal is read in full."""
    mapping: dict[str, str] = {}
    for facts in sorted(runs.facts(), key=RunFacts.sort_key):
        if facts.problem is None:
            mapping.update(facts.replacements)
    return mapping


# -- undo: what revert needs after the old image set is gone (kept by engine.undo) --
def _inverse(change: Change) -> Change:
    if change.key is None:
        raise ReplaceFailed(f"{change.pointer}: a removed series or instance cannot be restored")
    if change.op is ChangeOp.ADD:
        return replace_field(change, op=ChangeOp.REMOVE, before=change.after, after=None)
    if change.op is ChangeOp.REMOVE:
        return replace_field(change, op=ChangeOp.ADD, before=None, after=change.before)
    return replace_field(change, before=change.after, after=change.before)


def undo_payloads(image_set_id: str, changes: Sequence[Change]) -> list[UpdatePayload]:
    """The payloads that put ``changes`` back (removals carry the values they removed)."""
    inverted = tuple(_inverse(c) for c in changes)
    return build_payloads(ImageSetDiff(image_set_id, inverted, 0))


def undo_entry(
    datastore_id: str, old_id: str, old_version: str, changes: Sequence[Change]
) -> dict[str, Any]:
    """The undo of a replace of ``old_id`` (at ``old_version``) by ``changes``; the
    replacing image set is filled in once it exists (``new_id``, ``new_version``)."""
    payloads = undo_payloads(old_id, changes)
    return {
        "datastore_id": datastore_id,
        "old_version": old_version,
        "copy_id": None,
        "new_id": None,
        "new_version": None,
        "payloads": [
            {"updatable": p.updatable.decode() if p.updatable else None,
             "removable": p.removable.decode() if p.removable else None,
             "force": p.force}
            for p in payloads
        ],
    }  # fmt: skip


def undo_payloads_of(entry: dict[str, Any]) -> list[UpdatePayload]:
    return [
        UpdatePayload(
            updatable=p["updatable"].encode() if p["updatable"] is not None else None,
            removable=p["removable"].encode() if p["removable"] is not None else None,
            force=bool(p["force"]),
            changes=(),
        )
        for p in entry["payloads"]
    ]
