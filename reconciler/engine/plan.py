"""Plans: what would change, per image set, pinned to the version it was computed from.

:func:`make_plan` is the library entry point of ``reconciler plan`` and ``drift``:
resolve the selectors, read each target's latest version (GetImageSet) and that exact
version's metadata, diff, and build the payloads apply will send. Image sets are read
concurrently (bounded); one failing read becomes a problem of that image set only.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.dicom.levels import Level
from reconciler.engine import pipeline
from reconciler.engine.changes import Change, ImageSetDiff, PlanProblem
from reconciler.engine.context import Finding, Source, sources_of
from reconciler.engine.diff import diff_image_set
from reconciler.engine.payloads import UpdatePayload, build_payloads
from reconciler.engine.projection import ProjectionCache, coverage, prune
from reconciler.engine.resolve import (
    Resolved,
    Resolver,
    StoreResolution,
    Target,
    Unresolved,
    primaries_of_study,
)
from reconciler.errors import ReconcilerError
from reconciler.healthimaging import HealthImaging, ImageSetNotFound
from reconciler.manifest.model import Manifest, SelectorKind

FORMAT_VERSION = 1
REPLACE_EXTRA_CALLS = 4  # copy, delete the old primary, copy with promote, delete the copy
REPLACE_HINT = (
    "reconciler can run that procedure for you: plan and apply with --replace-primary "
    "(the image set ID changes; select by DICOM UIDs to keep manifests valid)"
)
DEFAULT_UPDATE_RATE = 0.25  # UpdateImageSetMetadata per second, the service's default quota


class Action(str, enum.Enum):
    UPDATE = "update"  # changes to send
    REPLACE = "replace"  # a primary image set corrected by copy → update → promote
    NONE = "none"  # in sync
    BLOCKED = "blocked"  # problems: shown, never sent


@dataclass(frozen=True, slots=True)
class InPlace:
    """Update the image set itself: one UpdateImageSetMetadata call per payload."""


@dataclass(frozen=True, slots=True)
class StudyLead:
    """Send this image set's one call with includeStudyImageSets: the service changes
    every primary image set of the study at once (atomically)."""


@dataclass(frozen=True, slots=True)
class StudyFollower:
    """Changed by the study-wide call of image set ``leader``; sends nothing itself."""

    leader: str


@dataclass(frozen=True, slots=True)
class Replace:
    """A primary image set corrected by copy → update → delete → promote (opted into
    with --replace-primary): its image set ID changes."""


# How apply carries out an image set's changes; apply dispatches on it.
Mode = InPlace | StudyLead | StudyFollower | Replace
_IN_PLACE, _REPLACE = InPlace(), Replace()  # shared: a plan may hold 100,000 entries


@dataclass(frozen=True, slots=True)
class ImageSetPlan:
    datastore_id: str
    image_set_id: str
    version_id: str  # the version the diff was computed from: apply pins latestVersion to it
    is_primary: bool
    manifests: tuple[str, ...]
    diff: ImageSetDiff
    payloads: tuple[UpdatePayload, ...]
    study_uid: str | None = None
    mode: Mode = InPlace()

    @property
    def replace(self) -> bool:
        return isinstance(self.mode, Replace)

    @property
    def include_study(self) -> bool:
        return isinstance(self.mode, StudyLead)

    @property
    def study_leader(self) -> str | None:
        return self.mode.leader if isinstance(self.mode, StudyFollower) else None

    @property
    def action(self) -> Action:
        if self.diff.problems:
            return Action.BLOCKED
        if not self.diff.changes:
            return Action.NONE
        return Action.REPLACE if self.replace else Action.UPDATE

    @property
    def write_calls(self) -> int:
        """Write calls at the 0.25/s quotas: updates, plus 2 copies and 2 deletes to replace."""
        return len(self.payloads) + (REPLACE_EXTRA_CALLS if self.replace else 0)


@dataclass(frozen=True)
class Plan:
    created_at: str
    manifest_digest: str
    endpoint: str
    image_sets: tuple[ImageSetPlan, ...]
    unresolved: tuple[str, ...] = ()
    # The update quota known when planning (not the pacer's rate, a hair under it) and
    # where it came from: Service Quotas, rateLimits, remembered or documented.
    update_rate: float = DEFAULT_UPDATE_RATE
    format_version: int = FORMAT_VERSION
    show_phi: bool = field(default=False, compare=False)
    # The user opted in to sending changes that need force with ones that do not.
    combine_forced: bool = False
    # The file a saved plan was read from: its opt-ins and image sets are checked again
    # before anything is sent (reconciler.engine.plancheck). None: made in this process.
    saved_from: str | None = field(default=None, compare=False)
    # Manifests left out by targeting (--manifest, -l): named in the renderings so a
    # partial plan is visible in review; not part of a saved plan's identity.
    left_out: tuple[str, ...] = field(default=(), compare=False)
    # drift: for each drifted attribute ("<image set>|<pointer>"), the version that made
    # the live value and when (reconciler.engine.origins).
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)
    # A warm plan: how many image sets the manifests select (the plan holds only those
    # that changed since the last observation, were not in sync then, or are newly
    # managed: reconciler.engine.incremental).
    selected: int | None = field(default=None, compare=False)
    # ... and since when (the service's time) the rest did not change: a warm plan.
    observed_since: str | None = field(default=None, compare=False)
    update_rate_source: str = field(default="documented", compare=False)
    # How each data store's selectors were resolved (searched or listed) and the cost.
    resolution: tuple[StoreResolution, ...] = field(default=(), compare=False)
    # The manifests by name: where each is, its reason and ticket (engine.context).
    sources: Mapping[str, Source] = field(default_factory=dict, compare=False)
    # The project's policy rules this plan fails (reconciler.policy); none: it passes.
    findings: tuple[Finding, ...] = field(default=(), compare=False)

    @property
    def to_update(self) -> tuple[ImageSetPlan, ...]:
        """Image sets apply changes: updated in place or replaced."""
        return tuple(p for p in self.image_sets if p.action in (Action.UPDATE, Action.REPLACE))

    @property
    def blocked(self) -> tuple[ImageSetPlan, ...]:
        return tuple(p for p in self.image_sets if p.action is Action.BLOCKED)

    @property
    def read(self) -> int:
        """How many image sets the plan read (a warm plan: fewer than it selects)."""
        return len({(item.datastore_id, item.image_set_id) for item in self.image_sets})

    @property
    def in_sync(self) -> int:
        """Image sets in sync: those read and found so, and (a warm plan) those not
        read because nothing changed since the last observation found them so."""
        found = len(self.image_sets) - len(self.to_update) - len(self.blocked)
        return found + max(0, (self.selected or 0) - self.read)

    @property
    def update_calls(self) -> int:
        """Write calls apply makes (each write operation is limited to 0.25/s)."""
        return sum(p.write_calls for p in self.to_update)

    @property
    def quota_seconds(self) -> float:
        """The least time the update quota allows for this plan's calls."""
        return self.update_calls / self.update_rate if self.update_rate > 0 else 0.0

    @property
    def changed_manifests(self) -> tuple[str, ...]:
        """The manifests with changes to send (drift, for ``drift``), sorted by name."""
        return _owners(self.to_update, lambda item: item.diff.changes)

    @property
    def blocked_manifests(self) -> tuple[str, ...]:
        """The manifests held back by a problem, sorted by name: those a problem names,
        else the blocked image set's manifests."""
        return _owners(self.blocked, lambda item: item.diff.problems)

    @property
    def has_changes(self) -> bool:
        return bool(self.to_update)

    @property
    def has_problems(self) -> bool:
        return bool(self.blocked or self.unresolved)


def _owners(
    items: Sequence[ImageSetPlan], named: Callable[[ImageSetPlan], Sequence[Change | PlanProblem]]
) -> tuple[str, ...]:
    """The manifests ``named`` (changes or problems) names for ``items``, or each item's
    manifests where none is named; sorted."""
    names: set[str] = set()
    for item in items:
        found = {entry.manifest for entry in named(item) if entry.manifest}
        names |= found or set(item.manifests)
    return tuple(sorted(names))


def in_shard(image_set_id: str, shard: tuple[int, int] | None) -> bool:
    """Whether ``image_set_id`` belongs to shard K of N (1-based): a stable hash split,
    the same on every machine, so N jobs each take one part and together all."""
    if shard is None:
        return True
    index, count = shard
    digest = hashlib.sha256(image_set_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count == index - 1


def _projection(
    ahi: HealthImaging, target: Target, version_id: str, cache: ProjectionCache | None
) -> dict[str, Any]:
    """The owned projection of that version: from the cache, else fetched and pruned
    (the whole document is parsed once and dropped at once, so memory stays flat)."""
    needed = coverage(target.manifests)
    if cache is not None:
        cached = cache.get(target.datastore_id, target.image_set_id, version_id, needed)
        if cached is not None:
            return cached
    doc = ahi.get_metadata(target.datastore_id, target.image_set_id, version_id)
    projection = prune(doc, target.manifests)
    if cache is not None:
        cache.put(target.datastore_id, target.image_set_id, version_id, needed, projection)
    return projection


def _diff(
    doc: dict[str, Any], target: Target, is_primary: bool, replace_primary: bool
) -> tuple[ImageSetDiff, bool]:
    """The diff, and whether the replace workflow carries it out (primary image sets
    whose only problems are the primary restrictions)."""
    diff = diff_image_set(doc, target.manifests, is_primary=is_primary)
    if not (is_primary and diff.problems):
        return diff, False
    as_copy = diff_image_set(doc, target.manifests, is_primary=False)
    if as_copy.problems:
        return diff, False
    if replace_primary:
        return as_copy, True
    first = target.manifests[0]
    hint = PlanProblem(target.image_set_id, REPLACE_HINT, first.name, first.location)
    return replace(diff, problems=(*diff.problems, hint)), False


def plan_image_set(
    ahi: HealthImaging,
    target: Target,
    quota_bytes: int,
    cache: ProjectionCache | None = None,
    replace_primary: bool = False,
    replaced: Mapping[str, str] | None = None,
    combine_forced: bool = False,
) -> list[ImageSetPlan]:
    """Read ``target``'s latest version and diff it; a failing read is a problem.

    Manifests are held back one by one, not image set by image set: when some of the
    manifests that own part of the image set have problems (a Patient-level change on
    a primary image set, a value the service refuses) and the others do not, the others'
    changes go ahead in one entry and the held manifests' problems stand in a second,
    blocked entry for the same image set.
    """
    names = tuple(m.name for m in target.manifests)
    try:
        info = ahi.get_image_set(target.datastore_id, target.image_set_id)
        if info.locked:  # an update is in flight: plan against what it settles to
            info = ahi.wait_until_settled(target.datastore_id, target.image_set_id, timeout=60)
        doc = _projection(ahi, target, info.version_id, cache)
        study_uid = (doc.get("Study") or {}).get("DICOM", {}).get("StudyInstanceUID")
        diff, replacing = _diff(doc, target, info.is_primary, replace_primary)
        held: ImageSetDiff | None = None
        if diff.problems:
            split = _held_back(doc, target, diff, info.is_primary, replace_primary)
            if split is not None:
                target, names, held, (diff, replacing) = split
        payloads = (
            ()
            if diff.problems
            else tuple(build_payloads(diff, quota_bytes=quota_bytes, combine_forced=combine_forced))
        )
    except ReconcilerError as error:
        if isinstance(error, ImageSetNotFound) and not any(
            m.selector.kind is SelectorKind.IMAGE_SET_ID for m in target.manifests
        ):
            # Selected by a search (a study, a patient…) and gone since: not selected any
            # more, as a search now would say (a warm plan's recorded image set, deleted
            # or replaced since). An image set named by its ID is a problem.
            return []
        first = target.manifests[0]
        message = error.message
        new_id = (replaced or {}).get(target.image_set_id)
        if new_id is not None and isinstance(error, ImageSetNotFound):
            message = (
                f"image set {target.image_set_id} was replaced by {new_id} when a correction "
                f"was applied to it as a primary image set: select imageSetId {new_id}, or "
                "better the study by studyInstanceUID, which does not change"
            )
        problem = PlanProblem(target.image_set_id, message, first.name, first.location)
        diff = ImageSetDiff(target.image_set_id, (), 0, (problem,))
        failed = ImageSetPlan(
            datastore_id=target.datastore_id,
            image_set_id=target.image_set_id,
            version_id="",
            is_primary=False,
            manifests=names,
            diff=diff,
            payloads=(),
        )
        return [failed]
    read = ImageSetPlan(
        datastore_id=target.datastore_id,
        image_set_id=target.image_set_id,
        version_id=info.version_id,
        is_primary=info.is_primary,
        manifests=names,
        diff=diff,
        payloads=payloads,
        study_uid=study_uid if isinstance(study_uid, str) else None,
        mode=_REPLACE if replacing else _IN_PLACE,
    )
    if held is None:
        return [read]
    held_names = tuple(sorted({p.manifest for p in held.problems if p.manifest}))
    return [read, replace(read, manifests=held_names, diff=held, payloads=(), mode=_IN_PLACE)]


def _held_back(
    doc: dict[str, Any],
    target: Target,
    diff: ImageSetDiff,
    is_primary: bool,
    replace_primary: bool,
) -> tuple[Target, tuple[str, ...], ImageSetDiff, tuple[ImageSetDiff, bool]] | None:
    """The manifests without problems as a target of their own (with their diff), and
    the held manifests' problems; None when every manifest has a problem."""
    bad = {p.manifest for p in diff.problems if p.message != REPLACE_HINT}
    good = tuple(m for m in target.manifests if m.name not in bad)
    if not bad or not good:
        return None
    kept = replace(target, manifests=good)
    kept_diff = _diff(doc, kept, is_primary, replace_primary)
    if kept_diff[0].problems:
        return None
    first = next(m for m in target.manifests if m.name in bad)
    problems = tuple(  # the hint names a held manifest, not one whose changes go ahead
        p if p.manifest in bad else replace(p, manifest=first.name, location=first.location)
        for p in diff.problems
    )
    held = ImageSetDiff(target.image_set_id, (), 0, problems)
    return kept, tuple(m.name for m in good), held, kept_diff


def _study_scoped(item: ImageSetPlan) -> bool:
    """A primary image set whose one call changes Study-level attributes only."""
    if item.action is not Action.UPDATE or not item.is_primary or item.study_uid is None:
        return False
    if len(item.payloads) != 1 or item.payloads[0].force:
        return False
    return all(change.level is Level.STUDY for change in item.diff.changes)


def group_study_updates(ahi: HealthImaging, plans: Sequence[ImageSetPlan]) -> list[ImageSetPlan]:
    """One includeStudyImageSets call where the same Study-level change applies to every
    primary image set of a study (the service applies it atomically to all of them)."""
    scoped = [item for item in plans if _study_scoped(item)]
    # Counted first (by the UID strings the entries hold): most studies have one image
    # set, and a group of one needs no key or list (a plan may hold 100,000 entries).
    studies = Counter(item.study_uid for item in scoped)
    groups: dict[tuple[str, str, bytes | None, bytes | None], list[ImageSetPlan]] = {}
    for item in scoped:
        if studies[item.study_uid] > 1:
            payload = item.payloads[0]
            key = (item.datastore_id, item.study_uid or "", payload.updatable, payload.removable)
            groups.setdefault(key, []).append(item)
    replaced: dict[str, ImageSetPlan] = {}
    for (datastore_id, study_uid, _, _), members in groups.items():
        if len(members) < 2:
            continue
        if primaries_of_study(ahi, datastore_id, study_uid) != {m.image_set_id for m in members}:
            continue  # the call would also change a primary image set no manifest owns
        leader, *followers = sorted(members, key=lambda m: m.image_set_id)
        replaced[leader.image_set_id] = replace(leader, mode=StudyLead())
        for follower in followers:
            replaced[follower.image_set_id] = replace(
                follower, payloads=(), mode=StudyFollower(leader.image_set_id)
            )
    # A held (blocked) entry shares its image set's ID with the entry that goes ahead.
    return [
        item if item.action is Action.BLOCKED else replaced.get(item.image_set_id, item)
        for item in plans
    ]


@dataclass(frozen=True)
class PlanRequest:
    """What to plan: the manifests (already validated), the plan's identity and the
    user's opt-ins.

    ``shard`` (K, N) keeps the image sets of shard K; ``targets`` replaces selector
    resolution (incremental drift resolves from its own state); ``left_out`` names the
    manifests targeting left out, so the renderings say the plan is partial.
    """

    manifests: Sequence[Manifest]
    manifest_digest: str
    endpoint: str
    shard: tuple[int, int] | None = None
    targets: tuple[list[Target], list[Unresolved]] | None = None
    left_out: Sequence[str] = ()
    replace_primary: bool = False
    combine_forced: bool = False
    quota_bytes: int = 10_240  # the account's UpdateImageSetMetadata payload quota


@dataclass(frozen=True)
class ReadOptions:
    """How to read: ``cache`` spares metadata reads of versions seen before;
    ``replaced`` (old image set ID → new, from the journal) explains a read of an image
    set a replace deleted; ``sizes`` (data store → image sets it held when last
    listed) lets resolution search at once where listing would cost more (what a plan
    learnt of them is in its ``resolution``:
    :class:`reconciler.engine.storesizes.StoreSizes`)."""

    cache: ProjectionCache | None = None
    replaced: Mapping[str, str] = field(default_factory=dict)
    sizes: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Pace:
    """How to pace: requests in flight at once (each operation is still held to its
    quota by the client's pacer)."""

    parallelism: int = 8


def make_plan(
    ahi: HealthImaging,
    request: PlanRequest,
    *,
    reading: ReadOptions = ReadOptions(),
    pace: Pace = Pace(),
) -> Plan:
    """The plan for ``request`` against the live image sets: selectors resolved and
    targets read side by side (:mod:`reconciler.engine.pipeline`); each manifest's
    location and reason kept by name (``sources``) for policies and the audit trail."""
    targets_from: pipeline.Source = (
        Resolved(*request.targets)
        if request.targets is not None
        else Resolver(request.manifests, reading.sizes)
    )

    def plan_one(target: Target) -> list[ImageSetPlan]:
        if not in_shard(target.image_set_id, request.shard):
            return []
        return plan_image_set(
            ahi,
            target,
            request.quota_bytes,
            cache=reading.cache,
            replace_primary=request.replace_primary,
            replaced=reading.replaced,
            combine_forced=request.combine_forced,
        )

    outcome = pipeline.run(ahi, targets_from, plan_one, pace.parallelism)
    plans: list[ImageSetPlan] = []
    for key in sorted(outcome.results):  # each read's entries dropped as they are taken
        plans.extend(outcome.results.pop(key))
    plans = group_study_updates(ahi, plans)
    rate, source = ahi.limiter.quota("UpdateImageSetMetadata") or (
        DEFAULT_UPDATE_RATE,
        "documented",
    )
    return Plan(
        left_out=tuple(request.left_out),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        manifest_digest=request.manifest_digest,
        endpoint=request.endpoint,
        image_sets=tuple(plans),
        unresolved=tuple(str(u) for u in outcome.resolution.unresolved),
        resolution=outcome.resolution.stores,
        sources=sources_of(request.manifests),
        update_rate=rate,
        update_rate_source=source,
        combine_forced=request.combine_forced,
    )


__all__ = [
    "Action",
    "ImageSetPlan",
    "Pace",
    "Plan",
    "PlanRequest",
    "ReadOptions",
    "Target",
    "Unresolved",
    "in_shard",
    "make_plan",
    "plan_image_set",
]
