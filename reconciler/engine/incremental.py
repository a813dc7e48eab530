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
from dataclasses import dataclass, field

from reconciler.engine.resolve import Target, Unresolved, image_sets_of, summary_matches
from reconciler.healthimaging import HealthImaging, SearchFilter
from reconciler.healthimaging.models import ImageSetSummary
from reconciler.manifest.model import Manifest
from reconciler.state import State, StateError, dumps

DRIFT_KEY = "drift/state.json"
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
    """How much of what the manifests select a drift looked at."""

    selected: int  # image sets the manifests select
    checked: int  # image sets read this time
    incremental: bool  # only what changed or was open (--since-last-run)


def _check(body: dict[str, object]) -> str:
    return hashlib.sha256(dumps(body)).hexdigest()


def load_state(state: State, generations: Mapping[str, str]) -> DriftState | None:
    """The last drift's state, or None (then drift checks everything): none recorded,
    not whole (its digest), of another format, or of other data stores than
    ``generations`` (re-created under the same IDs)."""
    try:
        data = state.read_json(DRIFT_KEY)
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


def save_state(state: State, drift: DriftState) -> None:
    """Record ``drift``; a :class:`StateError` when state cannot be written."""
    body: dict[str, object] = {
        "format": STATE_FORMAT,
        "watermark": drift.watermark.isoformat(),
        "digests": drift.digests,
        "targets": {k: sorted(map(list, v)) for k, v in sorted(drift.targets.items())},
        "open": sorted(map(list, drift.open)),
        "datastores": dict(drift.datastores),
    }
    state.write_json(DRIFT_KEY, {**body, "check": _check(body)})


def state_after(
    watermark: dt.datetime,
    manifests: Sequence[Manifest],
    targets: Sequence[Target],
    *,
    open_now: Iterable[Pair],
    generations: Mapping[str, str],
    previous: DriftState | None = None,
) -> DriftState:
    """The state to record after a drift that began at ``watermark`` (the service's
    time), checked ``targets`` and found ``open_now`` drifted, blocked or unreadable."""
    owned: dict[str, set[Pair]] = defaultdict(set)
    if previous is not None:
        for name, pairs in previous.targets.items():
            owned[name].update(pairs)
    for target in targets:
        for manifest in target.manifests:
            owned[manifest.name].add((target.datastore_id, target.image_set_id))
    names = {m.name for m in manifests}
    return DriftState(
        watermark=watermark,
        digests={m.name: m.digest for m in manifests},
        targets={name: sorted(pairs) for name, pairs in owned.items() if name in names},
        open=frozenset(open_now),
        datastores=dict(generations),
    )


def selected(drift: DriftState) -> int:
    """How many image sets the recorded targets select."""
    return len({pair for pairs in drift.targets.values() for pair in pairs})


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


def incremental_targets(
    ahi: HealthImaging,
    manifests: Sequence[Manifest],
    drift: DriftState,
    margin: dt.timedelta = MARGIN,
) -> tuple[list[Target], list[Unresolved], int]:
    """The targets ``drift --since-last-run`` checks (see the module docstring), the
    manifests that resolve to nothing, and how many image sets the manifests select."""
    stores = (m.datastore_id for m in manifests)
    changed = changed_since(ahi, stores, drift.watermark, margin)
    owners: dict[Pair, list[Manifest]] = defaultdict(list)
    checked: set[Pair] = set()
    unresolved: list[Unresolved] = []
    for manifest in manifests:
        if drift.digests.get(manifest.name) != manifest.digest:
            # new or edited: resolve it now and check all it owns
            pairs = [(manifest.datastore_id, i) for i in image_sets_of(ahi, manifest)]
            if not pairs:
                unresolved.append(Unresolved(manifest))
            checked.update(pairs)
        else:
            pairs = list(drift.targets.get(manifest.name, []))
            pairs += [
                key
                for key, summary in changed.items()
                if key[0] == manifest.datastore_id and summary_matches(manifest.selector, summary)
            ]
        for pair in dict.fromkeys(pairs):
            owners[pair].append(manifest)
    checked.update(key for key in changed if key in owners)
    checked.update(pair for pair in drift.open if pair in owners)
    targets = [
        Target(datastore_id, image_set_id, tuple(owners[(datastore_id, image_set_id)]))
        for datastore_id, image_set_id in sorted(checked)
    ]
    return targets, unresolved, len(owners)
