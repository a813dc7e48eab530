"""Revert: put image sets back to recorded versions with ``revertToVersionId``.

By run: every image set the run changed goes back to the version it moved *from*.
A revert is planned first (which image sets, from which live version to which one) and
refuses an image set whose latest version is no longer the one the run left, unless
forced: someone changed it since, and a revert would silently discard their change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from reconciler.engine.apply import ApplyReport, ImageSetOutcome, record
from reconciler.engine.journal import Journal, Outcome, Run
from reconciler.engine.payloads import UpdatePayload
from reconciler.engine.replace import load_undo, replace_image_set, undo_path, undo_payloads_of
from reconciler.errors import ReconcilerError
from reconciler.healthimaging import HealthImaging, WorkflowStatus


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

    @property
    def moved(self) -> bool:
        return self.expected_version is not None and self.live_version != self.expected_version


def plan_revert_run(ahi: HealthImaging, run: Run) -> list[RevertItem]:
    """What ``reconciler revert --run`` would do, read from the journal and the service."""
    items = []
    undo = load_undo(run)
    for old_id, new_id in run.replacements().items():
        entry = undo.get(old_id)
        if entry is None:
            raise ReconcilerError(
                f"run {run.run_id} replaced image set {old_id} by {new_id}, but its undo file "
                f"{undo_path(run.path)} is missing: the old values cannot be restored"
            )
        info = ahi.get_image_set(entry["datastore_id"], new_id)
        payloads = tuple(undo_payloads_of(entry))
        items.append(
            RevertItem(
                entry["datastore_id"], new_id, info.version_id, entry["new_version"], "", payloads
            )
        )
    for image_set_id, datastore_id, from_version, to_version in run.changed():
        if image_set_id in run.replacements():
            continue
        info = ahi.get_image_set(datastore_id, image_set_id)
        items.append(
            RevertItem(datastore_id, image_set_id, info.version_id, to_version, from_version)
        )
    return items


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
    ahi: HealthImaging, journal: Journal, item: RevertItem, force: bool, lock_timeout: float
) -> ImageSetOutcome:
    def done(to: str | None, outcome: Outcome, message: str | None) -> ImageSetOutcome:
        return record(journal, item.datastore_id, item.image_set_id, item.live_version, to,
                      outcome, message, 1)  # fmt: skip

    if item.moved and not force:
        return done(
            item.live_version,
            Outcome.STALE,
            f"changed since the run (now version {item.live_version}, the run left "
            f"{item.expected_version}); revert with --force to discard that change",
        )
    if item.undo:
        try:
            replaced = replace_image_set(ahi, journal, item.datastore_id, item.image_set_id,
                                         item.live_version, item.undo, lock_timeout)  # fmt: skip
        except ReconcilerError as error:
            return done(None, Outcome.ERROR, error.message)
        return done(replaced.new_version, Outcome.UPDATED,
                    f"restored by replacing it with image set {replaced.new_id}")  # fmt: skip
    try:
        journal.intent(
            image_set_id=item.image_set_id,
            datastore_id=item.datastore_id,
            from_version=item.live_version,
            payload_digest=f"revert-to:{item.to_version}",
            call=1,
            calls=1,
            keys=[f"(revert to version {item.to_version})"],
        )
        result = ahi.revert(
            item.datastore_id, item.image_set_id, item.live_version, item.to_version
        )
        settled = ahi.wait_until_settled(item.datastore_id, item.image_set_id, lock_timeout)
        if settled.workflow_status is WorkflowStatus.UPDATE_FAILED:
            return done(settled.version_id, Outcome.UPDATE_FAILED, settled.message)
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
) -> ApplyReport:
    outcomes: list[ImageSetOutcome] = []
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        results = pool.map(lambda i: _revert_one(ahi, journal, i, force, lock_timeout), items)
        for done, outcome in enumerate(results, start=1):
            outcomes.append(outcome)
            if progress is not None:
                progress(outcome, done, len(items))
    return ApplyReport(journal.run_id, tuple(outcomes))
