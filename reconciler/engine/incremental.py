"""Incremental drift: check only what changed since the last successful drift run.

A nightly drift over thousands of manifests must not cost thousands of reads when
nothing happened. After each successful drift the state file records when it started,
each manifest's digest and the image sets each manifest resolved to. The next
``drift --since-last-run`` then:

- asks SearchImageSets for image sets with ``updatedAt`` BETWEEN the last start (less
  a margin for clock skew) and now — O(changes) calls, 50 image sets each;
- re-resolves only manifests that are new or changed (their digest differs);
- keeps the recorded targets of unchanged manifests, adding changed image sets whose
  DICOM tags match their selectors (a new primary image set of a watched study);
- plans the changed image sets and the targets of changed manifests, nothing else.

Limits, stated: a ``seriesInstanceUID`` selector matches a new image set only when the
search summary names that series (single-series image sets).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.atomicfile import write_atomically
from reconciler.engine.resolve import Target, Unresolved, image_sets_of
from reconciler.healthimaging import HealthImaging, SearchFilter
from reconciler.healthimaging.models import ImageSetSummary
from reconciler.manifest.model import Manifest, SelectorKind

STATE_FORMAT = 1
SKEW = dt.timedelta(minutes=5)  # clocks of this machine and the service may differ
_TAG_OF = {
    SelectorKind.STUDY_INSTANCE_UID: "DICOMStudyInstanceUID",
    SelectorKind.SERIES_INSTANCE_UID: "DICOMSeriesInstanceUID",
    SelectorKind.PATIENT_ID: "DICOMPatientId",
    SelectorKind.ACCESSION_NUMBER: "DICOMAccessionNumber",
}


@dataclass(frozen=True)
class DriftState:
    started_at: dt.datetime
    digests: dict[str, str]  # manifest name → digest
    targets: dict[str, list[tuple[str, str]]]  # manifest name → (data store, image set)


def load_state(path: Path) -> DriftState | None:
    """The last successful drift's state, or None (then drift checks everything)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            return None
        return DriftState(
            started_at=dt.datetime.fromisoformat(data["started_at"]),
            digests=dict(data["digests"]),
            targets={k: [tuple(t) for t in v] for k, v in data["targets"].items()},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_state(path: Path, state: DriftState) -> None:
    data = {
        "format": STATE_FORMAT,
        "started_at": state.started_at.isoformat(),
        "digests": state.digests,
        "targets": {k: sorted(map(list, v)) for k, v in sorted(state.targets.items())},
    }
    write_atomically(path, json.dumps(data, indent=1))


def state_after(
    started_at: dt.datetime, manifests: Sequence[Manifest], targets: Sequence[Target],
    previous: DriftState | None = None,
) -> DriftState:  # fmt: skip
    """The state to record after a successful drift that checked ``targets``."""
    owned: dict[str, set[tuple[str, str]]] = defaultdict(set)
    if previous is not None:
        for name, pairs in previous.targets.items():
            owned[name].update(pairs)
    for target in targets:
        for manifest in target.manifests:
            owned[manifest.name].add((target.datastore_id, target.image_set_id))
    names = {m.name for m in manifests}
    return DriftState(
        started_at=started_at,
        digests={m.name: m.digest for m in manifests},
        targets={name: sorted(pairs) for name, pairs in owned.items() if name in names},
    )


def _matches(manifest: Manifest, summary: ImageSetSummary) -> bool:
    selector = manifest.selector
    if selector.kind is SelectorKind.IMAGE_SET_ID:
        return summary.image_set_id == selector.value
    reached = selector.is_primary is None or summary.is_primary == selector.is_primary
    return reached and summary.dicom_tags.get(_TAG_OF[selector.kind]) == selector.value


def incremental_targets(
    ahi: HealthImaging,
    manifests: Sequence[Manifest],
    state: DriftState,
    now: dt.datetime,
    skew: dt.timedelta = SKEW,
) -> tuple[list[Target], list[Unresolved]]:
    """The targets ``drift --since-last-run`` checks (see the module docstring)."""
    since = state.started_at - skew
    changed: dict[tuple[str, str], ImageSetSummary] = {}
    for datastore_id in sorted({m.datastore_id for m in manifests}):
        window = SearchFilter.between("updatedAt", since, now)
        for summary in ahi.search(datastore_id, [window]):
            changed[(datastore_id, summary.image_set_id)] = summary
    owners: dict[tuple[str, str], list[Manifest]] = defaultdict(list)
    checked: set[tuple[str, str]] = set()
    unresolved: list[Unresolved] = []
    for manifest in manifests:
        fresh = state.digests.get(manifest.name) != manifest.digest
        if fresh:  # new or edited: resolve it now and check all it owns
            pairs = [(manifest.datastore_id, i) for i in image_sets_of(ahi, manifest)]
            if not pairs:
                unresolved.append(Unresolved(manifest))
            checked.update(pairs)
        else:
            pairs = list(state.targets.get(manifest.name, []))
            pairs += [
                key for key, summary in changed.items()
                if key[0] == manifest.datastore_id and _matches(manifest, summary)
            ]  # fmt: skip
        for pair in dict.fromkeys(pairs):
            owners[pair].append(manifest)
    checked.update(key for key in changed if key in owners)
    targets = [
        Target(datastore_id, image_set_id, tuple(owners[(datastore_id, image_set_id)]))
        for datastore_id, image_set_id in sorted(checked)
    ]
    return targets, unresolved
