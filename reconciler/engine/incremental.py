"""Incremental drift that never forgets: check what changed, and what was wrong.

A nightly drift over thousands of manifests must not cost thousands of reads when
nothing happened, and must not stop reporting drift nobody fixed. After each drift the
state (``drift/state.json`` of the scope) records:

- ``watermark``: the service's time when that drift began (the ``Date`` of its first
  answer: never this machine's clock, which may be an hour or a day off);
- each manifest's digest and the image sets each manifest resolved to;
- ``open``: the image sets that were drifted, blocked or unreadable then;
- the data stores' generations (``createdAt``): a data store re-created under the same
  ID is another one, and the state says nothing about it.

The next ``drift --since-last-run`` then checks:

- every image set the service says changed since the watermark (SearchImageSets with
  ``updatedAt`` BETWEEN the watermark less a margin and later than now), 50 per call;
- every image set that was open at the last drift, whether or not it changed;
- every image set of a manifest that is new or edited (re-resolved);
- and, for unchanged manifests, the recorded targets plus changed image sets whose
  DICOM tags match their selectors (a new primary image set of a watched study).

Limits, stated: a ``seriesInstanceUID`` selector matches a new image set only when the
search summary names that series (single-series image sets).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from reconciler.engine.plan import Plan, in_shard
from reconciler.engine.resolve import (
    SEARCH_FIELD,
    Target,
    Unresolved,
    image_sets_of,
    summary_matches,
)
from reconciler.healthimaging import HealthImaging, SearchFilter
from reconciler.healthimaging.models import ImageSetSummary
from reconciler.manifest.model import Manifest, SelectorKind
from reconciler.state import State, StateError, dumps

DRIFT_KEY = "drift/state.json"


def state_key(shard: tuple[int, int] | None) -> str:
    """Where the last observation of the whole tree, or of shard K of N, is kept: each
    shard records its own (and holds its own lock), so shards never overwrite another's."""
    return DRIFT_KEY if shard is None else f"drift/shard-{shard[0]}-of-{shard[1]}.json"


STATE_FORMAT = 2
# The search's index and the Date header (to the second) may lag the write they
# describe: the window reaches this far before the watermark.
MARGIN = dt.timedelta(minutes=5)
# The window's end only has to be later than anything written by now, whatever either
# clock says.
_LATER = dt.timedelta(days=2)

Pair = tuple[str, str]  # data store, image set


@dataclass(frozen=True)
class DriftState:
    watermark: dt.datetime  # the service's time when the recorded drift began
    digests: dict[str, str]  # manifest name → digest
    targets: dict[str, list[Pair]]  # manifest name → (data store, image set)
    open: frozenset[Pair] = frozenset()  # drifted, blocked or unreadable then
    datastores: Mapping[str, str] = field(default_factory=dict)  # data store → generation


@dataclass(frozen=True)
class Coverage:
    """How much of what the manifests select a plan or drift looked at."""

    selected: int  # image sets the manifests select
    checked: int  # image sets read this time
    incremental: bool  # only what changed or was open (warm)


def _check(body: dict[str, object]) -> str:
    return hashlib.sha256(dumps(body)).hexdigest()


def load_state(
    state: State, generations: Mapping[str, str], key: str = DRIFT_KEY
) -> DriftState | None:
    """The last drift's state, or None (then drift checks everything): none recorded,
    not whole (its digest), of another format, or of other data stores than
    ``generations`` (re-created under the same IDs)."""
    try:
        data = state.read_json(key)
    except StateError:
        return None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        return None
    body = {k: v for k, v in data.items() if k != "check"}
    if data.get("check") != _check(body):
        return None
    try:
        stores = {str(k): str(v) for k, v in data["datastores"].items()}
        if any(generations.get(ds, gen) != gen for ds, gen in stores.items()):
            return None
        return DriftState(
            watermark=dt.datetime.fromisoformat(data["watermark"]),
            digests={str(k): str(v) for k, v in data["digests"].items()},
            targets={str(k): [(str(a), str(b)) for a, b in v] for k, v in data["targets"].items()},
            open=frozenset((str(a), str(b)) for a, b in data["open"]),
            datastores=stores,
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def save_state(state: State, drift: DriftState, key: str = DRIFT_KEY) -> None:
    """Record ``drift``; a :class:`StateError` when state cannot be written."""
    body: dict[str, object] = {
        "format": STATE_FORMAT,
        "watermark": drift.watermark.isoformat(),
        "digests": drift.digests,
        "targets": {k: sorted(map(list, v)) for k, v in sorted(drift.targets.items())},
        "open": sorted(map(list, drift.open)),
        "datastores": dict(drift.datastores),
    }
    state.write_json(key, {**body, "check": _check(body)})


def state_after(
    watermark: dt.datetime,
    manifests: Sequence[Manifest],
    owned: Mapping[str, Iterable[Pair]],
    *,
    open_now: Iterable[Pair],
    generations: Mapping[str, str],
) -> DriftState:
    """The state to record after a plan or drift that began at ``watermark`` (the
    service's time): what each manifest selects now (``owned``, read or answered from
    the last observation) and what was drifted, blocked or unreadable (``open_now``)."""
    names = {m.name for m in manifests}
    return DriftState(
        watermark=watermark,
        digests={m.name: m.digest for m in manifests},
        targets={name: sorted(set(pairs)) for name, pairs in owned.items() if name in names},
        open=frozenset(open_now),
        datastores=dict(generations),
    )


def owned_by_plan(plan_items: Iterable[tuple[str, str, Iterable[str]]]) -> dict[str, set[Pair]]:
    """Manifest name → the image sets a full plan found it owns, from the plan's
    (data store, image set, manifest names) entries."""
    owned: dict[str, set[Pair]] = defaultdict(set)
    for datastore_id, image_set_id, names in plan_items:
        for name in names:
            owned[name].add((datastore_id, image_set_id))
    return owned


def changed_since(
    ahi: HealthImaging,
    datastores: Iterable[str],
    since: dt.datetime,
    margin: dt.timedelta = MARGIN,
) -> dict[Pair, ImageSetSummary]:
    """Every image set the service says was updated since ``since`` (its clock)."""
    start = since - margin
    end = max(dt.datetime.now(dt.UTC), since) + _LATER
    changed: dict[Pair, ImageSetSummary] = {}
    for datastore_id in sorted(set(datastores)):
        window = SearchFilter.between("updatedAt", start, end)
        for summary in ahi.search(datastore_id, [window]):
            changed[(datastore_id, summary.image_set_id)] = summary
    return changed


@dataclass(frozen=True)
class Observed:
    """What a warm plan reads, and what the manifests select now.

    ``targets``: the image sets to read (changed since the last observation, open then,
    or of new and edited manifests); ``unresolved``: manifests that select nothing;
    ``owned``: manifest name → every image set it selects now, read or not (what the
    next observation records); ``selected``: how many image sets that is.
    """

    targets: list[Target]
    unresolved: list[Unresolved]
    owned: dict[str, list[Pair]]

    @property
    def pairs(self) -> set[Pair]:
        """Every image set the manifests select now."""
        return {pair for pairs in self.owned.values() for pair in pairs}

    @property
    def selected(self) -> int:
        return len(self.pairs)

    def gone(self, plan: Plan, shard: tuple[int, int] | None) -> dict[str, list[Pair]]:
        """``owned`` less the image sets read for ``plan`` (of ``shard``) that it does
        not hold: gone (deleted or replaced) since they were selected."""
        held = {(item.datastore_id, item.image_set_id) for item in plan.image_sets}
        read = {(t.datastore_id, t.image_set_id) for t in self.targets}
        left = {pair for pair in read - held if in_shard(pair[1], shard)}
        return {name: [p for p in pairs if p not in left] for name, pairs in self.owned.items()}


def _still_matches(manifest: Manifest, summary: ImageSetSummary) -> bool:
    """Whether a changed image set still matches ``manifest``'s selector, as far as its
    search summary tells (a summary that does not name the key keeps it)."""
    selector = manifest.selector
    if selector.kind is not SelectorKind.IMAGE_SET_ID and (
        summary.dicom_tags.get(SEARCH_FIELD[selector.kind]) is None
    ):
        return True
    return summary_matches(selector, summary)


def incremental_targets(
    ahi: HealthImaging,
    manifests: Sequence[Manifest],
    drift: DriftState,
    margin: dt.timedelta = MARGIN,
) -> Observed:
    """The targets a warm plan or drift reads (see the module docstring), the manifests
    that select nothing, and what every manifest selects now."""
    stores = (m.datastore_id for m in manifests)
    changed = changed_since(ahi, stores, drift.watermark, margin)
    owners: dict[Pair, list[Manifest]] = defaultdict(list)
    owned: dict[str, list[Pair]] = {}
    checked: set[Pair] = set()
    unresolved: list[Unresolved] = []
    for manifest in manifests:
        if drift.digests.get(manifest.name) != manifest.digest:
            # new or edited: resolve it now and check all it owns
            pairs = [(manifest.datastore_id, i) for i in image_sets_of(ahi, manifest)]
            checked.update(pairs)
        else:
            # as recorded, less what changed away from the selector, plus what changed
            # into it (a new primary image set of a watched study)
            pairs = [
                pair
                for pair in drift.targets.get(manifest.name, [])
                if pair not in changed or _still_matches(manifest, changed[pair])
            ]
            pairs += [
                key
                for key, summary in changed.items()
                if key[0] == manifest.datastore_id and summary_matches(manifest.selector, summary)
            ]
        owned[manifest.name] = list(dict.fromkeys(pairs))
        if not pairs:
            unresolved.append(Unresolved(manifest))
        for pair in owned[manifest.name]:
            owners[pair].append(manifest)
    checked.update(key for key in changed if key in owners)
    checked.update(pair for pair in drift.open if pair in owners)
    targets = [
        Target(datastore_id, image_set_id, tuple(owners[(datastore_id, image_set_id)]))
        for datastore_id, image_set_id in sorted(checked)
    ]
    return Observed(targets, unresolved, owned)


@dataclass(frozen=True)
class Observation:
    """How a plan reads: warm from ``previous`` (the last observation recorded of the
    same shard, ``found`` what it leaves to read) or cold (``found`` None: everything);
    ``began`` is the service's time this plan began, what the next observation's window
    starts from."""

    previous: DriftState | None
    began: dt.datetime | None
    generations: Mapping[str, str]
    shard: tuple[int, int] | None
    found: Observed | None = None

    @property
    def targets(self) -> tuple[list[Target], list[Unresolved]] | None:
        """The targets to plan (None: resolve every selector, cold)."""
        return None if self.found is None else (self.found.targets, self.found.unresolved)

    def selected(self) -> int | None:
        """How many image sets of this shard the manifests select (None when cold)."""
        if self.found is None:
            return None
        return sum(1 for _, image_set_id in self.found.pairs if in_shard(image_set_id, self.shard))

    def shown(self, plan: Plan) -> Plan:
        """``plan`` saying what it answered from the observation: how many image sets
        the manifests select and since when the rest did not change. A warm plan that
        read everything is shown as the full plan it is."""
        selected = self.selected()
        if selected is None or self.previous is None or plan.read >= selected:
            return plan
        since = self.previous.watermark.isoformat(timespec="seconds").replace("+00:00", "Z")
        return replace(plan, selected=selected, observed_since=since)

    def coverage(self, plan: Plan) -> Coverage:
        read = plan.read
        selected = self.selected()
        if selected is None:
            return Coverage(read, read, incremental=False)
        return Coverage(max(selected, read), read, incremental=True)
