"""Apply a plan: per image set, journal → update pinned to the planned version → wait →
check the outcome → re-read and verify → journal.

Image sets are independent: one failure never stops the others, and the report says
what happened to each. Nothing is sent to an image set whose version moved since the
plan (stale): the plan was computed against a document that no longer exists.

Stopping (Ctrl-C, :meth:`Sending.stop` through the pacer): an image set not begun is
left alone, a call waiting for its slot gives up (journaled SKIPPED: not sent), and a
call already sent is seen through — waited for, verified, journaled — as is a replace
that has begun. Progress is reported as image sets finish, not in submission order.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from reconciler.dicom.phi import mask_service_message
from reconciler.engine.changes import Change
from reconciler.engine.journal import Journal, Outcome, RunStore
from reconciler.engine.payloads import UpdatePayload, build_payloads, payload_digest
from reconciler.engine.plan import (
    ImageSetPlan,
    InPlace,
    Plan,
    Replace,
    StudyFollower,
    StudyLead,
)
from reconciler.engine.recovery import candidate_digests
from reconciler.engine.replace import ReplaceStale, replace_image_set
from reconciler.engine.verify import unmet
from reconciler.errors import ExitCode, Interrupted, ReconcilerError
from reconciler.healthimaging import HealthImaging, VersionConflict, WorkflowStatus

# UPDATE_FAILED messages are the service's words and may echo the values it refused:
# they are masked (dicom/phi.py) before they are printed or journaled.
FAILED_WITHOUT_MESSAGE = "the service reported UPDATE_FAILED"


@dataclass(frozen=True)
class ImageSetOutcome:
    datastore_id: str
    image_set_id: str
    from_version: str
    to_version: str | None
    outcome: Outcome
    message: str | None = None


def record(
    journal: Journal, datastore_id: str, image_set_id: str, from_version: str,
    to_version: str | None, outcome: Outcome, message: str | None, call: int,
) -> ImageSetOutcome:  # fmt: skip
    """Journal how an image set ended, and say so to the caller (apply and revert)."""
    journal.result(image_set_id=image_set_id, datastore_id=datastore_id,
                   from_version=from_version, to_version=to_version, outcome=outcome,
                   message=message, call=call)  # fmt: skip
    return ImageSetOutcome(datastore_id, image_set_id, from_version, to_version, outcome, message)


class ApplyStatus(str, enum.Enum):
    OK = "ok"
    PARTIAL = "partial"
    STALE = "stale"


@dataclass(frozen=True)
class ApplyReport:
    run_id: str
    outcomes: tuple[ImageSetOutcome, ...]
    planned: int | None = None  # image sets the plan had to update (None: as outcomes)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes if o.outcome is outcome)

    @property
    def untouched(self) -> int:
        """Image sets of the plan nothing was done to (a stopped run left them alone)."""
        return 0 if self.planned is None else max(0, self.planned - len(self.outcomes))

    @property
    def exit_code(self) -> ExitCode:
        """3 when an update failed, else 4 when an image set was stale, else 0."""
        failed = {Outcome.UPDATE_FAILED, Outcome.CONFLICT, Outcome.ERROR}
        if any(o.outcome in failed for o in self.outcomes):
            return ExitCode.PARTIAL
        if any(o.outcome is Outcome.STALE for o in self.outcomes):
            return ExitCode.STALE
        return ExitCode.OK


class Sending:
    """Image sets with a write sent (or waiting for its slot) and no outcome journaled
    yet: less those waiting for a slot, what a stopped apply still waits for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._begun: set[str] = set()

    def begin(self, image_set_id: str) -> None:
        with self._lock:
            self._begun.add(image_set_id)

    def end(self, image_set_id: str) -> None:
        with self._lock:
            self._begun.discard(image_set_id)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._begun)


NOT_SENT = "not sent: the run was stopped (Ctrl-C)"


class _Applier:
    """Applies one image set — or, for a study-scoped update, its whole study — per run."""

    def __init__(
        self,
        ahi: HealthImaging,
        journal: Journal,
        lock_timeout: float,
        plan: Plan,
        runs: RunStore | None = None,
        sending: Sending | None = None,
    ) -> None:
        self.ahi = ahi
        self.journal = journal
        self.lock_timeout = lock_timeout
        self.runs = runs
        self.sending = sending or Sending()
        self.followers: dict[str, list[ImageSetPlan]] = {}
        for item in plan.to_update:
            if isinstance(item.mode, StudyFollower):
                self.followers.setdefault(item.mode.leader, []).append(item)

    def _done(
        self,
        item: ImageSetPlan,
        to: str | None,
        outcome: Outcome,
        message: str | None,
        call: int = 0,
    ) -> ImageSetOutcome:
        return record(self.journal, item.datastore_id, item.image_set_id, item.version_id, to,
                      outcome, message, call)  # fmt: skip

    def run(self, item: ImageSetPlan) -> list[ImageSetOutcome]:
        if self.ahi.limiter.stopped:  # stopped before this image set began: left alone
            return []
        members = [item, *self.followers.get(item.image_set_id, [])]
        try:
            return self._run(item, members)
        except ReconcilerError as error:  # reported for these image sets; others go on
            return [self._done(m, None, Outcome.ERROR, error.message) for m in members]
        finally:
            self.sending.end(item.image_set_id)

    def _stale(self, members: list[ImageSetPlan]) -> list[ImageSetOutcome] | None:
        """STALE for every member when any moved since the plan (a study-scoped call
        would change them all, so none goes alone)."""
        moved: dict[str, str] = {}
        for member in members:
            info = self.ahi.get_image_set(member.datastore_id, member.image_set_id)
            if info.locked:
                info = self.ahi.wait_until_settled(
                    member.datastore_id, member.image_set_id, self.lock_timeout
                )
            if info.version_id != member.version_id:
                moved[member.image_set_id] = info.version_id
        if not moved:
            return None
        outcomes = []
        for member in members:
            now = moved.get(member.image_set_id)
            message = (
                f"version moved from {member.version_id} to {now} since the plan; plan again"
                if now
                else "another image set of its study moved since the plan; plan again"
            )
            outcomes.append(self._done(member, now, Outcome.STALE, message))
        return outcomes

    def _run(self, item: ImageSetPlan, members: list[ImageSetPlan]) -> list[ImageSetOutcome]:
        stale = self._stale(members)
        if stale is not None:
            return stale
        match item.mode:
            case Replace():
                return [self._replace(item)]
            case StudyFollower():  # changed and reported by its leader's call
                return []
            case InPlace() | StudyLead():
                return self._update(item, members)

    def _update(self, item: ImageSetPlan, members: list[ImageSetPlan]) -> list[ImageSetOutcome]:
        """Send the payloads in order (with includeStudyImageSets for a study lead)."""
        ds, image_set = item.datastore_id, item.image_set_id
        latest = item.version_id
        calls = len(item.payloads)
        for call, payload in enumerate(item.payloads, start=1):
            for member in members:  # a study-scoped call moves every member: journal each
                self.journal.intent(
                    image_set_id=member.image_set_id,
                    datastore_id=member.datastore_id,
                    from_version=latest if member is item else member.version_id,
                    payload_digest=payload_digest(payload),
                    call=call,
                    calls=calls,
                    keys=payload.keys,
                )
            try:  # once the call is sent, an error belongs to this call, not "pending"
                try:
                    self.sending.begin(image_set)  # sent, or waiting for its slot
                    result = self.ahi.update_metadata(
                        ds,
                        image_set,
                        latest,
                        updatable=payload.updatable,
                        removable=payload.removable,
                        force=payload.force,
                        include_study=isinstance(item.mode, StudyLead),
                    )
                    expected = result.version_id
                except Interrupted:  # stopped while waiting for its slot: never sent
                    return [self._done(m, None, Outcome.SKIPPED, NOT_SENT, call) for m in members]
                except VersionConflict as conflict:
                    # A retried call may have landed the first time: it did if the next
                    # version holds exactly what this call sent.
                    expected = str(int(latest) + 1)
                    if not self._landed(item, latest, expected, payload):
                        return [
                            self._done(m, None, Outcome.CONFLICT, conflict.message, call)
                            for m in members
                        ]
                settled = self.ahi.wait_until_settled(ds, image_set, self.lock_timeout)
                if settled.workflow_status is WorkflowStatus.UPDATE_FAILED:
                    message = mask_service_message(
                        settled.message or "the service reported UPDATE_FAILED"
                    )
                    return [
                        self._done(item, settled.version_id, Outcome.UPDATE_FAILED, message, call),
                        *(self._settle_follower(f, call) for f in members[1:]),
                    ]
            except ReconcilerError as error:
                return [self._done(m, None, Outcome.ERROR, error.message, call) for m in members]
            latest = expected
        changes = [c for p in item.payloads for c in p.changes]
        outcomes = [self._verified(item, latest, changes, calls)]
        outcomes += [self._settle_follower(f, calls) for f in members[1:]]
        return outcomes

    def _replace(self, item: ImageSetPlan) -> ImageSetOutcome:
        assert self.runs is not None  # apply_plan refused the plan before sending any
        try:
            self.sending.begin(item.image_set_id)
            with self.ahi.limiter.unstoppable():  # a replace begun is finished, never halved
                replaced = replace_image_set(
                    self.ahi,
                    self.journal,
                    item.datastore_id,
                    item.image_set_id,
                    version=item.version_id,
                    payloads=item.payloads,
                    lock_timeout=self.lock_timeout,
                    runs=self.runs,
                )
        except ReplaceStale as stale:  # another writer moved it: theirs kept, rolled back
            return self._done(item, None, Outcome.STALE, stale.message)
        except ReconcilerError as error:
            return self._done(item, None, Outcome.ERROR, error.message)
        message = f"replaced by image set {replaced.new_id} (the old ID no longer exists)"
        if not replaced.copy_deleted:
            message += "; the intermediate non-primary copy could not be deleted"
        outcome = Outcome.UPDATED
        if replaced.lost:  # replaced, but someone else's version went with the old one
            outcome, message = Outcome.ERROR, f"{replaced.lost_message}; {message}"
        return self._done(item, replaced.new_version, outcome, message, len(item.payloads))

    def _settle_follower(self, member: ImageSetPlan, call: int) -> ImageSetOutcome:
        settled = self.ahi.wait_until_settled(
            member.datastore_id, member.image_set_id, self.lock_timeout
        )
        if settled.workflow_status is WorkflowStatus.UPDATE_FAILED:
            message = mask_service_message(settled.message or FAILED_WITHOUT_MESSAGE)
            return self._done(member, settled.version_id, Outcome.UPDATE_FAILED, message, call)
        # The call made N+1 (another writer may have written N+2 since: not ours).
        following = str(int(member.version_id) + 1) if member.version_id.isdigit() else ""
        if not self._follower_is_ours(member, following, settled.version_id):
            return self._done(member, None, Outcome.CONFLICT,
                              f"version {following or '?'} is not provably the study-wide "
                              "call's: another writer changed this image set", call)  # fmt: skip
        return self._verified(member, following, list(member.diff.changes), call)

    def _follower_is_ours(self, member: ImageSetPlan, version: str, latest: str) -> bool:
        """The study-wide call moved ``member`` from its planned N to ``version`` (N+1)
        by exactly the changes the call carried (the member's own, equal to the
        leader's)."""
        if not version or not latest.isdigit() or int(latest) < int(version):
            return False
        ds, image_set = member.datastore_id, member.image_set_id
        before = self.ahi.get_metadata(ds, image_set, member.version_id)
        after = self.ahi.get_metadata(ds, image_set, version)
        built = build_payloads(member.diff)
        return len(built) == 1 and payload_digest(built[0]) in candidate_digests(before, after)

    def _verified(
        self, item: ImageSetPlan, version: str, changes: list[Change], call: int
    ) -> ImageSetOutcome:
        doc = self.ahi.get_metadata(item.datastore_id, item.image_set_id, version)
        missing = unmet(doc, changes)
        if missing:
            message = "updated, but the new version does not hold: " + "; ".join(missing)
            return self._done(item, version, Outcome.ERROR, message, call)
        return self._done(item, version, Outcome.UPDATED, None, call)

    def _landed(
        self, item: ImageSetPlan, pinned: str, version: str, payload: UpdatePayload
    ) -> bool:
        """Whether ``version`` (N+1) is provably this call's: it differs from ``pinned``
        (N) by exactly a payload with this call's digest. Holding our values is not
        enough: another writer may have set the same value and more (its version is
        then a CONFLICT, never adopted, so never reverted)."""
        ds, image_set = item.datastore_id, item.image_set_id
        info = self.ahi.wait_until_settled(ds, image_set, self.lock_timeout)
        if info.workflow_status is not WorkflowStatus.UPDATED:
            return False
        try:
            created = self.ahi.get_image_set(ds, image_set, version)
        except ReconcilerError:
            return False
        if created.workflow_status is WorkflowStatus.UPDATE_FAILED:
            return False
        before = self.ahi.get_metadata(ds, image_set, pinned)
        after = self.ahi.get_metadata(ds, image_set, version)
        return payload_digest(payload) in candidate_digests(before, after)


def apply_plan(
    ahi: HealthImaging,
    plan: Plan,
    journal: Journal,
    *,
    parallelism: int = 8,
    lock_timeout: float = 300.0,
    progress: Callable[[ImageSetOutcome, int, int], None] | None = None,
    runs: RunStore | None = None,
    sending: Sending | None = None,
) -> ApplyReport:
    """Apply every image set of ``plan`` that has changes; see the module docstring.
    Replaces of primary image sets keep their undo values in ``runs`` (the state): a
    plan with replaces and no ``runs`` is refused (ValueError) before anything is sent.
    ``sending`` tracks the image sets under way (what a stop still waits for)."""
    replacing = [item.image_set_id for item in plan.to_update if item.replace]
    if runs is None and replacing:
        raise ValueError(f"the replace of {replacing[0]} needs the run store")
    applier = _Applier(ahi, journal, lock_timeout, plan, runs, sending)
    items = [item for item in plan.to_update if not isinstance(item.mode, StudyFollower)]
    total = len(plan.to_update)
    outcomes: list[ImageSetOutcome] = []
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        for done in as_completed([pool.submit(applier.run, item) for item in items]):
            for outcome in done.result():
                outcomes.append(outcome)
                if progress is not None:
                    progress(outcome, len(outcomes), total)
    return ApplyReport(journal.run_id, tuple(outcomes), total)
