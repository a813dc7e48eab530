"""Records in state are claims: the service confirms them before anything is deleted or
restored because of one.

A journal line, an undo file or an index entry can be wrong: stale, migrated from
elsewhere, corrupted or forged. So nothing is destroyed or restored on its word alone:

- **Image sets a replace makes carry tags** (TagResource on the image set's ARN, set
  right after CopyImageSet answers): :data:`RUN` (the run that made it), :data:`ROLE`
  (:data:`COPY` for the intermediate copy, :data:`PROMOTED` for the new primary),
  :data:`REPLACES` (the primary image set being replaced) and :data:`SOURCE`
  (``<image set>/<version>`` it was copied from). Before a copy named by a record is
  deleted or promoted, its tags must name the run whose record named it and the image
  set it replaces, and it must not be primary (:func:`prove_made`); before it is rolled
  back while the old primary stands, its first version must also hold exactly the old
  primary's copied version (:func:`prove_copy_of`); before it is deleted after the
  promotion, the promoted image set must hold exactly its data (:func:`same_data`).
- **A version counts as a run's write** only if it differs from the version before by
  exactly a payload whose digest the run journaled for a call pinned to that version
  (the rule recovery and apply use, :func:`reconciler.engine.recovery.candidate_digests`),
  or, for a revert's call, equals the version it reverted to. :func:`prove_transition`
  checks every version a run claims to have made, in the service's own history
  (ListImageSetVersions), before ``revert --run`` restores anything.

What fails a proof raises :class:`NotProven`, one line naming the image set: the caller
leaves that image set alone and reports it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from reconciler.engine.recovery import REVERT_PREFIX, candidate_digests
from reconciler.errors import ReconcilerError
from reconciler.healthimaging import (
    HealthImaging,
    ImageSetInfo,
    UpdateResult,
    VersionConflict,
    WorkflowStatus,
)

RUN, ROLE, REPLACES, SOURCE = (
    "reconciler:run",
    "reconciler:role",
    "reconciler:replaces",
    "reconciler:source",
)
COPY, PROMOTED = "copy", "promoted"
_NOUNS = {COPY: "copy", PROMOTED: "promoted image set"}

Claims = Mapping[str, Collection[str]]  # version N → digests of the run's calls pinned to N


class NotProven(ReconcilerError):
    """The service does not confirm what a record claims: nothing is done on it."""


def tags(run_id: str, role: str, replaces: str, source: str, version: str) -> dict[str, str]:
    """The tags of an image set run ``run_id`` made, in ``role``, while replacing
    ``replaces``, copied from ``source`` at ``version``."""
    return {RUN: run_id, ROLE: role, REPLACES: replaces, SOURCE: f"{source}/{version}"}


def tag_made(
    ahi: HealthImaging,
    made: UpdateResult,
    values: dict[str, str],
    *,
    datastore_id: str,
    lock_timeout: float,
) -> None:
    """Tag an image set this process just made (CopyImageSet's answer, ``made``), at
    once: a record that names it is written only after. A service that refuses to tag
    it while it is still LOCKED (ConflictException) is asked again once it settled."""
    arn = made.arn or ahi.get_image_set(datastore_id, made.image_set_id).arn
    if not arn:
        raise ReconcilerError(f"image set {made.image_set_id}: the service gave no ARN to tag")
    try:
        ahi.tag_resource(arn, values)
    except VersionConflict:
        ahi.wait_until_settled(datastore_id, made.image_set_id, lock_timeout)
        ahi.tag_resource(arn, values)


def prove_made(
    ahi: HealthImaging,
    datastore_id: str,
    image_set_id: str,
    *,
    role: str,
    replaces: str,
    runs: Collection[str],
) -> tuple[ImageSetInfo, dict[str, str]]:
    """The image set and its tags, once they prove it is a ``role`` image set that one of
    ``runs`` made while replacing ``replaces`` (a copy must also not be primary);
    else :class:`NotProven`."""
    info = ahi.get_image_set(datastore_id, image_set_id)
    found = ahi.tags_of(info.arn) if info.arn else {}
    why = None
    noun = _NOUNS.get(role, role)
    if found.get(ROLE) != role or found.get(REPLACES) != replaces:
        why = f"its tags do not say it is the {noun} made to replace image set {replaces}"
    elif found.get(RUN) not in runs:
        who = found.get(RUN) or "no run"
        why = f"its tags name {who}, not {' or '.join(sorted(runs)) or 'the recorded run'}"
    elif role == COPY and info.is_primary:
        why = "it is a primary image set, which no replace's copy is"
    if why is not None:
        raise NotProven(f"image set {image_set_id} is not provably this replace's {noun}: {why}")
    return info, found


def data_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What two copies of one study must share: the Patient and Study trees (the IDs
    and schema version at the top differ, or may)."""
    return {"Patient": doc.get("Patient"), "Study": doc.get("Study")}


def prove_copy_of(
    ahi: HealthImaging, datastore_id: str, copy_id: str, found: Mapping[str, str]
) -> None:
    """The copy's first version holds exactly the version of the image set its
    :data:`SOURCE` tag names (still readable: the old primary stands); else
    :class:`NotProven`."""
    source, _, version = found.get(SOURCE, "").partition("/")
    if not source or not version.isdigit():
        raise NotProven(f"image set {copy_id}: its tags name no source version")
    first = ahi.get_metadata(datastore_id, copy_id, "1")
    if data_of(first) != data_of(ahi.get_metadata(datastore_id, source, version)):
        raise NotProven(
            f"image set {copy_id} is not provably a copy of image set {source}: its first "
            f"version does not hold version {version} of it"
        )


def same_data(ahi: HealthImaging, datastore_id: str, one: str, other: str) -> bool:
    """Whether the latest versions of two image sets hold the same data."""
    docs = [
        ahi.get_metadata(datastore_id, i, ahi.get_image_set(datastore_id, i).version_id)
        for i in (one, other)
    ]
    return data_of(docs[0]) == data_of(docs[1])


def prove_transition(
    ahi: HealthImaging,
    datastore_id: str,
    image_set_id: str,
    from_version: str,
    to_version: str,
    claims: Claims,
) -> None:
    """Every version from ``from_version`` (exclusive) to ``to_version`` is in the
    service's history of the image set and is the write of a call the run journaled:
    it differs from the version before by exactly a payload with a journaled digest
    (or, for a revert's call, equals the version reverted to). Else :class:`NotProven`."""

    def refuse(why: str) -> NotProven:
        return NotProven(
            f"the service's history of the image set does not show the change the run "
            f"recorded (version {from_version} → {to_version}): {why}"
        )

    if not (from_version.isdigit() and to_version.isdigit()) or int(from_version) >= int(
        to_version
    ):
        raise refuse("those are not two versions in order")
    listed = {v.version_id: v for v in ahi.list_versions(datastore_id, image_set_id)}
    missing = [v for v in (from_version, to_version) if v not in listed]
    if missing:
        raise refuse(f"it lists no version {missing[0]}")
    before = ahi.get_metadata(datastore_id, image_set_id, from_version)
    for number in range(int(from_version) + 1, int(to_version) + 1):
        version, pinned = str(number), str(number - 1)
        made = listed.get(version)
        if made is None or made.workflow_status is WorkflowStatus.UPDATE_FAILED:
            raise refuse(f"version {version} is {'missing' if made is None else 'UPDATE_FAILED'}")
        after = ahi.get_metadata(datastore_id, image_set_id, version)
        digests = set(claims.get(pinned, ()))
        if not digests:
            raise refuse(f"the run journaled no call pinned to version {pinned}")
        if not _explained(ahi, datastore_id, image_set_id, (pinned, before, after), digests):
            raise refuse(
                f"version {version} is not what the run's call pinned to version {pinned} "
                "wrote (no journaled payload digest, and no revert, matches the change)"
            )
        before = after


def _explained(
    ahi: HealthImaging,
    datastore_id: str,
    image_set_id: str,
    step: tuple[str, dict[str, Any], dict[str, Any]],
    digests: set[str],
) -> bool:
    """Whether ``after`` (the version following ``pinned``, whose document is
    ``before``) is the write of a call with one of ``digests``. A revert's call names
    the version it went back to: one that existed before the call, never after it."""
    pinned, before, after = step
    for digest in digests:
        target = digest.removeprefix(REVERT_PREFIX)
        earlier = digest.startswith(REVERT_PREFIX) and target.isdigit()
        earlier = earlier and 1 <= int(target) <= int(pinned)
        if earlier and after == ahi.get_metadata(datastore_id, image_set_id, target):
            return True
    return not digests.isdisjoint(candidate_digests(before, after))
