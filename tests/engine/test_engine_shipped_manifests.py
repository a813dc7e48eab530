"""The shipped manifests (manifests/) apply cleanly on the seeded local data.

DESIGN.md: "The shipped manifests always validate, plan and apply cleanly on the
seeded local data". Until the plan/apply commands exist this drives the pieces they
will use — load_tree, the client layer, diff_image_set, build_payloads — over HTTP,
and checks that a second diff finds nothing left to change.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.engine.diff import diff_image_set
from reconciler.engine.payloads import build_payloads
from reconciler.healthimaging import HealthImaging
from reconciler.healthimaging.models import SearchFilter, WorkflowStatus
from reconciler.healthimaging.pacing import RateLimiter
from reconciler.manifest import load_tree
from reconciler.manifest.model import Manifest, SelectorKind

ROOT = Path(__file__).resolve().parents[2]


def resolve(ahi: HealthImaging, manifest: Manifest) -> list[str]:
    if manifest.selector.kind is SelectorKind.IMAGE_SET_ID:
        return [manifest.selector.value]
    assert manifest.selector.kind is SelectorKind.STUDY_INSTANCE_UID
    found = ahi.search(manifest.datastore_id, [
        SearchFilter.equal("DICOMStudyInstanceUID", manifest.selector.value),
        SearchFilter.equal("isPrimary", True)])  # fmt: skip
    return [summary.image_set_id for summary in found]


def test_shipped_manifests_apply_and_converge(local: Any, client: Any) -> None:
    seed(local.backend)
    loaded = load_tree([ROOT / "manifests"])
    assert loaded.ok, [str(p) for p in loaded.problems]
    assert {m.datastore_id for m in loaded.manifests} == {SEED_DATASTORE_ID}
    ahi = HealthImaging(client, limiter=RateLimiter.unlimited())
    targets: dict[str, list[Manifest]] = defaultdict(list)
    for manifest in loaded.manifests:
        image_sets = resolve(ahi, manifest)
        assert image_sets, f"{manifest.name} selects nothing in the seeded data"
        for image_set_id in image_sets:
            targets[image_set_id].append(manifest)

    changed = 0
    for image_set_id, manifests in sorted(targets.items()):
        info = ahi.get_image_set(SEED_DATASTORE_ID, image_set_id)
        doc = ahi.get_metadata(SEED_DATASTORE_ID, image_set_id, info.version_id)
        diff = diff_image_set(doc, manifests, is_primary=info.is_primary)
        assert diff.problems == (), diff.problems
        assert diff.changes, f"{image_set_id}: the shipped manifests should change something"
        latest = info.version_id
        for payload in build_payloads(diff):
            result = ahi.update_metadata(
                SEED_DATASTORE_ID, image_set_id, latest,
                updatable=payload.updatable, removable=payload.removable, force=payload.force,
            )  # fmt: skip
            settled = ahi.wait_until_settled(
                SEED_DATASTORE_ID, image_set_id, timeout=10, initial=0.02
            )
            assert settled.workflow_status is WorkflowStatus.UPDATED, settled.message
            latest = result.version_id
            changed += 1
        after = ahi.get_metadata(SEED_DATASTORE_ID, image_set_id, latest)
        assert diff_image_set(after, manifests, is_primary=info.is_primary).changes == ()
    # One update call per image set, and one more for CT: its private-tag removal needs
    # force, and force never spreads to the changes of manifests that did not ask for it.
    assert len(targets) == 3 and changed == 4
