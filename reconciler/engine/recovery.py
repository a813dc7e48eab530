"""Settle what interrupted runs left open, before the next apply plans.

A run that was killed (SIGKILL, a lost CI runner, power loss) may have sent an update
call whose outcome it never journaled: an intent without a result (:meth:`Run.pending`).
A run that ended can leave calls unrecorded too: when waiting for a LOCKED image set or
re-reading it failed after the call was sent (an ERROR result without a version), or
when a later call of a multi-call image set failed after the earlier ones had landed.
Planning is safe either way, because every update is pinned to ``latestVersion``; the
*record* is not: the journal does not say what changed, so ``revert --run`` could not
undo it. :func:`recover_pending` finds out, from the journal's data alone (no manifests,
no values: the journal never holds them).

An intent names the image set, the version ``N`` its call was pinned to and the sha256
of the payload. Pinned, the call could only ever create version ``N+1``; and at most one
write can create ``N+1``, ours or someone else's. So, once the image set is not LOCKED:

- no version ``N+1``: the call did not happen;
- ``N+1`` is ``UPDATE_FAILED``: it reached the service and failed; nothing changed;
- ``N+1`` differs from ``N`` by exactly a payload whose digest is the journaled one:
  ours. The payload is rebuilt from the two versions' documents with the planner's own
  encoder (:mod:`reconciler.engine.payloads`), so equal digests mean equal bytes sent;
- otherwise someone else wrote ``N+1``, and our call was refused.

A revert's intent (payload ``revert-to:K``) is ours when ``N+1``'s document equals
``K``'s.

Each conclusion is journaled in the *current* run as a ``RECOVERED`` result with
``call=0`` (so it never settles an intent of the current run): ``to_version`` is ``N+1``
when the call happened and ``N`` when it did not, which is what :meth:`Run.changed`
(and so ``revert --run``) reads. Its message starts ``run <id> call <c>/<n>:``; that is
how later runs know the call is settled. A call whose image set stays LOCKED past the
lock timeout, or cannot be read, is reported and left for the next apply. Only the runs
of the state's scope are looked at (the same account and region, or endpoint), and of
those not the runs still being written: an open run whose state lock is held belongs
to a writer that is alive (another shard).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from itertools import product
from typing import Any

from reconciler.dicom import document
from reconciler.dicom.dictionary import is_private_tag
from reconciler.dicom.document import Address, Document
from reconciler.dicom.levels import Level
from reconciler.dicom.phi import mask_service_message
from reconciler.engine.changes import Change, ChangeOp
from reconciler.engine.journal import (
    OPEN,
    CallKey,
    IntentRecord,
    Journal,
    Outcome,
    RunContext,
    RunFacts,
    RunStore,
)
from reconciler.engine.payloads import PayloadError, UpdatePayload, payload_digest, payload_for
from reconciler.errors import ReconcilerError
from reconciler.healthimaging import HealthImaging, ImageSetNotFound, WorkflowStatus
from reconciler.manifest.model import Location

REVERT_PREFIX = "revert-to:"  # the payload digest revert journals for its calls
_WHERE = Location("(recovery)")
_MAX_KEYS_NAMED = 8


class Verdict(str, enum.Enum):
    """What an open call turned out to have done."""

    LANDED = "landed"  # it created version N+1
    NOT_APPLIED = "not applied"  # no version N+1: it never happened
    FAILED = "failed"  # N+1 is UPDATE_FAILED: it happened and changed nothing
    OTHER_WRITER = "other writer"  # someone else created N+1; ours was refused
    UNDETERMINED = "undetermined"  # still LOCKED, or unreadable: left for the next apply


@dataclass(frozen=True)
class Recovery:
    """The outcome of one open call of an earlier run."""

    run_id: str
    datastore_id: str
    image_set_id: str
    call: int
    calls: int
    from_version: str
    to_version: str | None  # N+1 when it happened, N when not, None when undetermined
    verdict: Verdict
    detail: str

    @property
    def journaled(self) -> bool:
        return self.verdict is not Verdict.UNDETERMINED

    @property
    def message(self) -> str:
        """The RECOVERED result's message; its prefix marks the call as settled."""
        return f"run {self.run_id} call {self.call}/{self.calls}: {self.detail}"

    def line(self) -> str:
        """One line for the terminal (IDs, versions and keys only: no values)."""
        if self.verdict is Verdict.UNDETERMINED:
            return f"Not recovered yet: image set {self.image_set_id}: {self.message}"
        return f"Recovered image set {self.image_set_id}: {self.message}"


@dataclass(frozen=True)
class OpenCall:
    """An update call of an earlier run whose outcome that run did not record."""

    run_id: str
    intent: IntentRecord

    @property
    def key(self) -> CallKey:
        i = self.intent
        return (self.run_id, i.datastore_id, i.image_set_id, i.call)


# -- which calls are open ------------------------------------------------------------
def settled_runs(runs: RunStore, *, exclude: str | None = None) -> list[RunFacts]:
    """The readable runs of ``runs`` that no live writer is still writing, oldest
    first; ``exclude`` is the current run."""
    live = runs.live_locks()
    return [
        facts
        for facts in reversed(runs.facts())
        if facts.problem is None
        and facts.run_id != exclude
        and not (facts.status == OPEN and facts.lock_id in live)
    ]


def open_calls(runs: RunStore, *, exclude: str | None = None) -> list[OpenCall]:
    """Calls of earlier runs that no run settled yet, oldest first.

    ``exclude`` is the current run. Unreadable journals are skipped (``reconciler runs``
    reports them). The run index says which runs settle which calls and which runs
    have calls left open; only those are read.
    """
    found = settled_runs(runs, exclude=exclude)
    settled = {mark for facts in found for mark in facts.settles}
    calls = []
    for facts in found:
        if not facts.open_calls(settled):
            continue
        try:
            run = runs.read(facts.run_id, facts)
        except ReconcilerError:
            continue
        for intent in run.unrecorded():  # pending, or not recorded (see there)
            call = OpenCall(run.run_id, intent)
            if call.key not in settled:
                calls.append(call)
    return calls


# -- rebuilding the payload a version differs by ---------------------------------------
def _objects(doc: Document) -> dict[Address, Document]:
    return dict(document.objects(doc))


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _change(op: ChangeOp, where: Address, key: str | None, before: Any, after: Any,
            vr: str | None) -> Change:  # fmt: skip
    return Change(op, where.level, where.series_uid, where.sop_uid, key, before, after, vr,
                  None, False, "", _WHERE)  # fmt: skip


def _dicom(node: Document) -> Document:
    return document.attributes(node)


def _vrs(node: Document) -> Document:
    return document.attributes(node, "DICOMVRs")


def changes_between(before: Document, after: Document, *, vr_always: bool) -> list[Change] | None:
    """The changes that turn ``before`` into ``after``, as the planner would write them;
    None when ``after`` has objects ``before`` lacks (a forced UID change re-keyed one),
    which this does not rebuild.

    A private tag's VR travels with its update when it changed, when the tag is new,
    and, with ``vr_always``, also when it stayed the same (the manifest may have named
    it): the caller tries both.
    """
    old, new = _objects(before), _objects(after)
    if set(new) - set(old):
        return None
    changes: list[Change] = []
    for where, node in old.items():
        level = where.level
        if where not in new:
            gone_with_series = level is Level.INSTANCE and where.enclosing[0] not in new
            if not gone_with_series:
                changes.append(_change(ChangeOp.REMOVE, where, None, None, None, None))
            continue
        was, now = _dicom(node), _dicom(new[where])
        old_vrs, new_vrs = _vrs(node), _vrs(new[where])
        for key in sorted(set(was) | set(now)):
            private = level is Level.INSTANCE and is_private_tag(key)
            if key not in now:
                changes.append(_change(ChangeOp.REMOVE, where, key, was[key], None, None))
                continue
            vr_changed = private and old_vrs.get(key) != new_vrs.get(key)
            if key in was and _same(was[key], now[key]) and not vr_changed:
                continue
            vr = new_vrs.get(key) if private else None
            if private and not (vr_always or vr_changed or key not in was):
                vr = None
            op = ChangeOp.REPLACE if key in was else ChangeOp.ADD
            changes.append(_change(op, where, key, was.get(key), now[key], vr))
    return changes


def candidate_digests(before: Document, after: Document) -> set[str]:
    """Digests of every payload the planner could have sent to turn ``before`` into
    ``after`` (with and without force, private VRs named or not)."""
    digests: set[str] = set()
    for vr_always, force in product((False, True), (False, True)):
        changes = changes_between(before, after, vr_always=vr_always)
        if not changes:
            continue
        try:
            payload: UpdatePayload = replace(payload_for(changes), force=force)
        except PayloadError:
            continue
        digests.add(payload_digest(payload))
    return digests


def changed_keys(before: Document, after: Document) -> list[str]:
    """``Level.Key`` of what differs (for messages: keys, never values)."""
    keys: dict[str, None] = {}
    old, new = _objects(before), _objects(after)
    for where in sorted(set(old) | set(new), key=lambda w: w.order):
        level = where.level.value
        if where not in old or where not in new:
            keys[f"{level}.(entire)"] = None
            continue
        was, now = _dicom(old[where]), _dicom(new[where])
        for key in sorted(set(was) | set(now)):
            if key not in was or key not in now or not _same(was[key], now[key]):
                keys[f"{level}.{key}"] = None
    return list(keys)


def _named(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_KEYS_NAMED])
    more = len(keys) - _MAX_KEYS_NAMED
    return shown + (f" and {more} more" if more > 0 else "") if keys else "nothing DICOM"


# -- settling one call ---------------------------------------------------------------
def _settle(ahi: HealthImaging, call: OpenCall, lock_timeout: float) -> Recovery:
    intent = call.intent
    ds, image_set, n = intent.datastore_id, intent.image_set_id, intent.from_version

    def verdict(kind: Verdict, to: str | None, detail: str) -> Recovery:
        return Recovery(call.run_id, ds, image_set, intent.call, intent.calls, n, to, kind,
                        detail)  # fmt: skip

    if not n.isdigit():
        return verdict(Verdict.UNDETERMINED, None, f"the journal names version {n!r}")
    following = str(int(n) + 1)
    try:
        info = ahi.get_image_set(ds, image_set)
        if info.locked:  # a write (perhaps ours) is in flight: see where it settles
            info = ahi.wait_until_settled(ds, image_set, lock_timeout)
        if not info.version_id.isdigit() or int(info.version_id) <= int(n):
            return verdict(Verdict.NOT_APPLIED, n,
                           f"no version {following} exists (the image set is at version "
                           f"{info.version_id}): the call did not happen")  # fmt: skip
        created = ahi.get_image_set(ds, image_set, following)
        if created.workflow_status is WorkflowStatus.UPDATE_FAILED:
            why = mask_service_message(created.message or "no message")
            return verdict(Verdict.FAILED, n,
                           f"version {following} is UPDATE_FAILED ({why}): the call "
                           "reached the service and changed nothing")  # fmt: skip
        after = ahi.get_metadata(ds, image_set, following)
        if intent.payload_digest.startswith(REVERT_PREFIX):
            target = intent.payload_digest.removeprefix(REVERT_PREFIX)
            ours = target.isdigit() and after == ahi.get_metadata(ds, image_set, target)
            what = f"its document equals version {target}'s"
            before = None
        else:
            before = ahi.get_metadata(ds, image_set, n)
            ours = intent.payload_digest in candidate_digests(before, after)
            what = "it holds exactly the journaled payload (same sha256)"
    except ImageSetNotFound as error:
        return verdict(Verdict.NOT_APPLIED, None,
                       f"the image set is gone ({error.message})")  # fmt: skip
    except ReconcilerError as error:  # LockTimeout, throttled past retries, ...
        return verdict(Verdict.UNDETERMINED, None, f"{error.message}; apply again later")
    if ours:
        return verdict(Verdict.LANDED, following,
                       f"the call did happen: version {n} → {following}, {what}")  # fmt: skip
    keys = _named(changed_keys(before, after)) if before is not None else "other content"
    return verdict(Verdict.OTHER_WRITER, n,
                   f"the call did not happen: version {following} was written by someone "
                   f"else (it changed {keys}), and a call pinned to version {n} is refused "
                   "once it exists")  # fmt: skip


def recover_pending(
    ahi: HealthImaging,
    runs: RunStore,
    journal: Journal,
    *,
    lock_timeout: float = 300.0,
) -> list[Recovery]:
    """Settle the open calls of earlier runs against ``journal``'s endpoint; journal each
    settled one in ``journal`` (see the module docstring) and return them all, including
    the ones left undetermined (not journaled)."""
    recoveries = []
    for call in open_calls(runs, exclude=journal.run_id):
        recovery = _settle(ahi, call, lock_timeout)
        if recovery.journaled:
            journal.result(
                image_set_id=recovery.image_set_id,
                datastore_id=recovery.datastore_id,
                from_version=recovery.from_version,
                to_version=recovery.to_version,
                outcome=Outcome.RECOVERED,
                message=recovery.message,
                call=0,
            )
        recoveries.append(recovery)
    return recoveries


@contextmanager
def recovering(
    ahi: HealthImaging,
    runs: RunStore,
    *,
    endpoint: str,
    manifest_digest: str | None,
    lock_timeout: float,
    echo: Callable[[str], None],
    context: RunContext | None = None,
) -> Iterator[Journal | None]:
    """For ``apply``, before it plans: when earlier runs left calls open, start this
    run's journal now, settle them into it (one line each through ``echo``) and yield
    it, for the apply to write into; else yield None (the apply starts its journal
    itself, as usual). The run is ended on the way out unless the apply already ended
    (or, interrupted, closed) it: a run that only recovered reads as completed."""
    if not open_calls(runs):
        yield None
        return
    journal = Journal.start(
        runs,
        command="apply",
        endpoint=endpoint,
        manifest_digest=manifest_digest,
        context=context,
    )
    try:
        for recovery in recover_pending(ahi, runs, journal, lock_timeout=lock_timeout):
            echo(recovery.line())
        yield journal
    finally:
        # The apply's own `with journal:` ends or closes it; then there is nothing to do.
        with suppress(RuntimeError):
            journal.end()
