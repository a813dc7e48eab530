"""Revert: put image sets back to recorded versions with ``revertToVersionId``.

By run: every image set the run changed goes back to the version it moved *from*.
A revert is planned first (which image sets, from which live version to which one) and
refuses an image set whose latest version is no longer the one the run left, unless
forced: someone changed it since, and a revert would silently discard their change.

The journal is a claim, so the service confirms it first (:mod:`reconciler.engine.proof`):
an image set is restored only when its version history shows every version the run
recorded making, each the write of a call the run journaled (its payload's digest);
a replaced primary image set only when the old one is gone (else its own versions
would be the way back) and the image set replacing it carries the tags the run gave
it. Each image set stands alone: one deleted, unprovable or moved is reported (ERROR,
or STALE unless forced) and the others are reverted (exit 3 or 4).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import replace as replace_field

from reconciler.dicom.phi import mask_service_message
from reconciler.engine.apply import ApplyReport, ImageSetOutcome, record
from reconciler.engine.journal import (
    RUN_ID_RE,
    Changed,
    IntentRecord,
    Journal,
    JournalError,
    Outcome,
    Run,
    RunStore,
    undo_digest,
)
from reconciler.engine.journal.records import UNDO_STEP
from reconciler.engine.payloads import UpdatePayload
from reconciler.engine.proof import PROMOTED, RUN, prove_made, prove_transition
from reconciler.engine.recovery import REVERT_PREFIX, settled_runs
from reconciler.engine.replace import PROMOTE, ReplaceStale, replace_image_set, undo_payloads_of
from reconciler.errors import ReconcilerError
from reconciler.healthimaging import HealthImaging, ImageSetInfo, ImageSetNotFound, WorkflowStatus


@dataclass(frozen=True)
class RevertItem:
    datastore_id: str
    image_set_id: str
    live_version: str  # the latest version now
    expected_version: str | None  # the version the run left (None: a single-set revert)
    to_version: str  # the version whose metadata comes back
    # A primary image set the run replaced: the old one is gone, so the old values come
    # back by the same copy → update → promote workflow, with these payloads.
    undo: tuple[UpdatePayload, ...] = ()
    # Set when an earlier revert of the same run already put this image set back (it
    # was interrupted, or failed elsewhere): nothing is sent, the note says by which run.
    already: str | None = None
    # Set when the service does not confirm what the run recorded, or the image set is
    # gone: nothing is sent, the image set is reported (ERROR).
    problem: str | None = None

    @property
    def moved(self) -> bool:
        return self.expected_version is not None and self.live_version != self.expected_version


def _recorded_undo(run: Run, old_id: str) -> set[str]:
    """The digests of ``old_id``'s undo values that ``run``'s journal recorded."""
    return {
        s.undo_digest
        for s in run.steps
        if s.image_set_id == old_id and s.step == UNDO_STEP and s.undo_digest
    }


RunLoader = Callable[[str], "Run | None"]  # a run of the same scope by exact ID, or None


def _no_runs(run_id: str) -> Run | None:
    return None


def run_loader(runs: RunStore) -> RunLoader:
    """Runs by exact ID from ``runs`` (what a claim leads to): None for anything that
    is not a readable run of the scope."""

    def load(run_id: str) -> Run | None:
        if not RUN_ID_RE.match(run_id):
            return None
        try:
            return runs.read(run_id)
        except ReconcilerError:
            return None

    return load


def _refused(datastore_id: str, image_set_id: str, problem: str) -> RevertItem:
    return RevertItem(datastore_id, image_set_id, "", None, "", problem=problem)


def _replaced_items(
    ahi: HealthImaging, run: Run, children: Sequence[Run], runs: RunStore, load: RunLoader
) -> tuple[list[RevertItem], set[str]]:
    """The replaces of ``run`` to undo, from its undo values in ``runs`` (written
    before each old primary was deleted, and told the new image set when a later apply
    finished an interrupted replace) and its step records; and the old IDs they cover.

    Undo values are restored only when their digest is one the run's journal recorded
    when it wrote them: values that were edited, or written by anything else, are not."""
    undo = runs.read_undo(run.run_id)
    replaced = run.replacements()
    items = []
    for old_id in sorted(set(undo) | set(replaced)):
        entry = undo.get(old_id)
        if entry is None:
            why = (
                f"run {run.run_id} replaced image set {old_id} by {replaced[old_id]}, but its "
                "undo values are missing from the state: the old values cannot be restored"
            )
            items.append(_refused("", replaced[old_id], why))
            continue
        new_id, datastore_id = entry.get("new_id") or replaced.get(old_id), entry["datastore_id"]
        if undo_digest(entry) not in _recorded_undo(run, old_id):
            why = (
                f"the undo values of image set {old_id} in run {run.run_id} are not the ones "
                "the run recorded (changed, or not written by it): nothing is restored from "
                "them"
            )
            items.append(_refused(datastore_id, new_id or old_id, why))
            continue
        if _exists(ahi, datastore_id, old_id):
            if new_id is not None:  # its own versions are the way back, never the file
                why = (
                    f"image set {old_id} still exists, so run {run.run_id} did not replace "
                    f"it by {new_id} as recorded: nothing is restored from the undo values"
                )
                items.append(_refused(datastore_id, new_id, why))
            continue  # the replace was rolled back: the old primary stands, unchanged
        if new_id is None:
            why = (
                f"run {run.run_id} was interrupted while replacing image set {old_id}: run "
                "`reconciler apply` to finish the replace first, then revert"
            )
            items.append(_refused(datastore_id, old_id, why))
            continue
        # An earlier revert of the run that replaced ``new_id`` (finished, or finished by
        # the recovery that runs first) restored it; one rolled back left it standing.
        by = next((c.run_id for c in children if any(s.image_set_id == new_id for s in c.steps)),
                  None)  # fmt: skip
        if by is not None and not _exists(ahi, entry["datastore_id"], new_id):
            items.append(RevertItem(entry["datastore_id"], new_id, "", None, "",
                                    already=f"already restored by revert run {by}"))  # fmt: skip
            continue
        try:
            info = _prove_promoted(ahi, datastore_id, new_id, old_id, run, load)
        except ReconcilerError as error:  # NotProven, or gone
            items.append(_refused(datastore_id, new_id, error.message))
            continue
        expected = entry.get("new_version") or info.version_id
        payloads = tuple(undo_payloads_of(entry))
        items.append(RevertItem(entry["datastore_id"], new_id, info.version_id, expected, "",
                                payloads))  # fmt: skip
    return items, set(undo) | set(replaced)


def _prove_promoted(
    ahi: HealthImaging, datastore_id: str, new_id: str, old_id: str, run: Run, load: RunLoader
) -> ImageSetInfo:
    """``new_id`` is the primary image set that replaced ``old_id`` in ``run``: its tags
    say it was promoted to replace ``old_id`` by ``run``, or by a later apply whose
    journal records finishing that replace (an interrupted replace is finished so)."""
    runs = {run.run_id}
    info = ahi.get_image_set(datastore_id, new_id)
    tagged = ahi.tags_of(info.arn).get(RUN, "") if info.arn else ""
    finisher = load(tagged) if tagged and tagged != run.run_id else None
    if finisher is not None and any(
        (s.image_set_id, s.step, s.phase, s.new_id) == (old_id, PROMOTE, "done", new_id)
        for s in finisher.steps
    ):
        runs.add(tagged)
    info, _ = prove_made(ahi, datastore_id, new_id, role=PROMOTED, replaces=old_id, runs=runs)
    return info


def _claims(run: Run, datastore_id: str, image_set_id: str, load: RunLoader) -> dict[str, set[str]]:
    """Version N → digests of the calls pinned to N that ``run`` journaled for the
    image set, with those of earlier runs' calls it settled (RECOVERED results)."""
    claims: dict[str, set[str]] = {}

    def claim(intents: Sequence[IntentRecord], call: int | None = None) -> None:
        for i in intents:
            if (i.datastore_id, i.image_set_id) == (datastore_id, image_set_id) and (
                call is None or i.call == call
            ):
                claims.setdefault(i.from_version, set()).add(i.payload_digest)

    claim(run.intents)
    for other_id, ds, image_set, call in sorted(run.settled_calls()):
        if (ds, image_set) == (datastore_id, image_set_id):
            other = load(other_id)
            claim(other.intents if other is not None else (), call)
    return claims


def _exists(ahi: HealthImaging, datastore_id: str, image_set_id: str) -> bool:
    try:
        ahi.get_image_set(datastore_id, image_set_id)
    except ImageSetNotFound:
        return False
    return True


def _reverted_already(ahi: HealthImaging, item: RevertItem, children: Sequence[Run]) -> str | None:
    """Which earlier revert of the run already put ``item`` back, if one did: its
    journaled call was pinned to the version the run left (N), and the live version is
    N+1 with the document of the version it reverted to. Proof from the journal and the
    service, so a revert interrupted part-way is finished, not repeated."""
    left = item.expected_version
    if left is None or not left.isdigit() or item.live_version != str(int(left) + 1):
        return None
    ours = f"{REVERT_PREFIX}{item.to_version}"
    for child in children:
        for intent in child.intents:
            if (intent.datastore_id, intent.image_set_id) != (item.datastore_id,
                                                              item.image_set_id):  # fmt: skip
                continue
            if intent.from_version == left and intent.payload_digest == ours:
                now = ahi.get_metadata(item.datastore_id, item.image_set_id, item.live_version)
                then = ahi.get_metadata(item.datastore_id, item.image_set_id, item.to_version)
                if now == then:
                    return (f"already reverted by run {child.run_id} (version "
                            f"{item.live_version} equals version {item.to_version})")  # fmt: skip
    return None


def plan_revert_run(
    ahi: HealthImaging,
    run: Run,
    children: Sequence[Run] = (),
    *,
    runs: RunStore,
    parallelism: int = 8,
) -> list[RevertItem]:
    """What ``reconciler revert --run`` would do, read from the journal, the run's undo
    values (in ``runs``) and the service, which must confirm each claim (the module
    docstring).

    ``children`` are the earlier reverts of ``run`` (their ``parent_run_id``): what they
    already put back is marked ``already`` and not sent again."""
    load = run_loader(runs)
    items, replaced = _replaced_items(ahi, run, children, runs, load)

    def plan_one(changed: Changed) -> RevertItem:
        image_set_id, datastore_id, from_version, to_version = changed
        try:
            info = ahi.get_image_set(datastore_id, image_set_id)
        except ImageSetNotFound:
            gone = f"image set {image_set_id} no longer exists (deleted since the run)"
            return _refused(datastore_id, image_set_id, f"{gone}: nothing to restore")
        item = RevertItem(datastore_id, image_set_id, info.version_id, to_version, from_version)
        if item.moved:
            item = replace_field(item, already=_reverted_already(ahi, item, children))
        if item.already is None:
            claims = _claims(run, datastore_id, image_set_id, load)
            try:
                prove_transition(ahi, datastore_id, image_set_id, from_version, to_version, claims)
            except ReconcilerError as error:  # NotProven, or the history is unreadable
                item = replace_field(item, problem=f"{error.message}: not restored")
        return item

    todo = [c for c in run.changed() if c.image_set_id not in replaced]
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        items += pool.map(plan_one, todo)
    return items


def revert_runs_of(runs: RunStore, run: Run) -> list[Run]:
    """The revert runs of ``run`` in its scope, oldest first. The run index says which
    they are; only those are read."""
    return [
        runs.read(facts.run_id, facts)
        for facts in settled_runs(runs)
        if facts.command == "revert" and facts.parent_run_id == run.run_id
    ]


def newest_changing_run(runs: RunStore) -> Run:
    """``revert --run last``: the newest run (by the service's clock, never this
    machine's) that changed something (a version it moved, or a primary image set it
    replaced); a run that changed nothing (a stale re-apply, a cancelled one) is not
    what "undo the last change" means. The run index says which runs changed
    something; only the one returned is read (and a run that the index says changed
    nothing but that has undo values, as a replace interrupted before its promotion
    leaves)."""
    for facts in reversed(settled_runs(runs)):
        if facts.changed or runs.read_undo(facts.run_id):
            return runs.read(facts.run_id, facts)
    raise JournalError(f"no run in {runs.location} changed anything")


def plan_revert_image_set(
    ahi: HealthImaging, datastore_id: str, image_set_id: str, to_version: str
) -> RevertItem:
    info = ahi.get_image_set(datastore_id, image_set_id)
    if not to_version.isdigit() or not 1 <= int(to_version) < int(info.version_id):
        raise ReconcilerError(
            f"image set {image_set_id}: --to-version must be an earlier version "
            f"(1..{int(info.version_id) - 1}); `reconciler history {image_set_id}` lists them"
        )
    return RevertItem(datastore_id, image_set_id, info.version_id, None, to_version)


def _revert_one(
    ahi: HealthImaging,
    journal: Journal,
    item: RevertItem,
    force: bool,
    lock_timeout: float,
    runs: RunStore | None,
) -> ImageSetOutcome:
    def done(to: str | None, outcome: Outcome, message: str | None) -> ImageSetOutcome:
        return record(journal, item.datastore_id, item.image_set_id, item.live_version, to,
                      outcome, message, 1)  # fmt: skip

    if item.already is not None:
        return done(item.live_version or None, Outcome.SKIPPED, item.already)
    if item.problem is not None:
        return done(None, Outcome.ERROR, item.problem)
    if item.moved and not force:
        return done(
            item.live_version,
            Outcome.STALE,
            f"changed since the run (now version {item.live_version}, the run left "
            f"{item.expected_version}); revert with --force to discard that change",
        )
    if item.undo:
        assert runs is not None  # apply_revert refused the items before sending any
        try:
            replaced = replace_image_set(
                ahi,
                journal,
                item.datastore_id,
                item.image_set_id,
                version=item.live_version,
                payloads=item.undo,
                lock_timeout=lock_timeout,
                runs=runs,
            )
        except ReplaceStale as stale:  # moved while being restored: theirs kept
            return done(None, Outcome.STALE, stale.message)
        except ReconcilerError as error:
            return done(None, Outcome.ERROR, error.message)
        message = f"restored by replacing it with image set {replaced.new_id}"
        if replaced.lost:
            return done(replaced.new_version, Outcome.ERROR, f"{replaced.lost_message}; {message}")
        return done(replaced.new_version, Outcome.UPDATED, message)
    try:
        journal.intent(
            image_set_id=item.image_set_id,
            datastore_id=item.datastore_id,
            from_version=item.live_version,
            payload_digest=f"{REVERT_PREFIX}{item.to_version}",
            call=1,
            calls=1,
            keys=[f"(revert to version {item.to_version})"],
        )
        result = ahi.revert(
            item.datastore_id, item.image_set_id, item.live_version, item.to_version
        )
        settled = ahi.wait_until_settled(item.datastore_id, item.image_set_id, lock_timeout)
        if settled.workflow_status is WorkflowStatus.UPDATE_FAILED:
            return done(
                settled.version_id,
                Outcome.UPDATE_FAILED,
                mask_service_message(settled.message or ""),
            )
        now = ahi.get_metadata(item.datastore_id, item.image_set_id, result.version_id)
        then = ahi.get_metadata(item.datastore_id, item.image_set_id, item.to_version)
        if now != then:
            return done(
                result.version_id,
                Outcome.ERROR,
                f"version {result.version_id} does not equal version {item.to_version}",
            )
        return done(result.version_id, Outcome.UPDATED, None)
    except ReconcilerError as error:
        return done(None, Outcome.ERROR, error.message)


def apply_revert(
    ahi: HealthImaging,
    items: Sequence[RevertItem],
    journal: Journal,
    *,
    force: bool = False,
    parallelism: int = 8,
    lock_timeout: float = 300.0,
    progress: Callable[[ImageSetOutcome, int, int], None] | None = None,
    runs: RunStore | None = None,
) -> ApplyReport:
    """Revert ``items`` into ``journal``. A revert of a replace is a replace, whose undo
    values go to ``runs``: without it, items that need it are refused (ValueError)
    before anything is sent."""
    needs_undo = [i.image_set_id for i in items if i.undo and i.already is None]
    if runs is None and needs_undo:
        raise ValueError(f"reverting the replace of {needs_undo[0]} needs the run store")
    outcomes: list[ImageSetOutcome] = []
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        results = pool.map(lambda i: _revert_one(ahi, journal, i, force, lock_timeout, runs), items)
        for done, outcome in enumerate(results, start=1):
            outcomes.append(outcome)
            if progress is not None:
                progress(outcome, done, len(items))
    return ApplyReport(journal.run_id, tuple(outcomes))
