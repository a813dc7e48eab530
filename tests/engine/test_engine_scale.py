"""API calls, counted (not timed): the cost that matters at HealthImaging's quotas."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from builders import SOP, SOPS, S, drop, manifest, put
from conftest import USDOPPLER, blob, settle

from reconciler.dicom.levels import Level
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.engine.apply import apply_plan
from reconciler.engine.diff import diff_image_set
from reconciler.engine.incremental import incremental_targets, owned_by_plan, state_after
from reconciler.engine.journal import Journal
from reconciler.engine.plan import PlanRequest, ReadOptions, in_shard, make_plan
from reconciler.engine.projection import ProjectionCache, prune
from reconciler.engine.resolve import resolve
from reconciler.engine.revert import plan_revert_run
from reconciler.healthimaging import HealthImaging, RateLimiter
from reconciler.manifest import load_tree
from reconciler.state.cachedb import CacheDB
from tests.state_support import run_store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def seeded(local: Any, client: Any) -> tuple[HealthImaging, list[Any]]:
    seed(local.backend)
    loaded = load_tree([ROOT / "manifests"])
    assert loaded.ok
    return HealthImaging(client, limiter=RateLimiter.unlimited()), loaded.manifests


def plan_of(
    ahi: HealthImaging, manifests: list[Any], cache: ProjectionCache | None = None, **options: Any
) -> Any:
    return make_plan(
        ahi, PlanRequest(manifests, "d", "test", **options), reading=ReadOptions(cache=cache)
    )


def test_warm_plan_fetches_no_metadata(seeded: Any, tmp_path: Path) -> None:
    ahi, manifests = seeded
    cache = ProjectionCache(CacheDB(tmp_path / "cache", tmp_path))
    cold = plan_of(ahi, manifests, cache)
    cache.close()  # committed: another command's cache reads it
    after_cold = ahi.calls
    warm = plan_of(ahi, manifests, ProjectionCache(CacheDB(tmp_path / "cache", tmp_path)))
    used = {op: n - after_cold.get(op, 0) for op, n in ahi.calls.items()}
    assert after_cold["GetImageSetMetadata"] == len(cold.image_sets) == 3
    assert used.get("GetImageSetMetadata", 0) == 0
    assert used["GetImageSet"] == len(warm.image_sets)
    assert [p.diff for p in warm.image_sets] == [p.diff for p in cold.image_sets]


def test_a_manifest_that_names_more_refetches(seeded: Any, tmp_path: Path) -> None:
    ahi, manifests = seeded
    cache = ProjectionCache(CacheDB(tmp_path / "cache", tmp_path))
    narrow = [m for m in manifests if m.name == "ct1-study-description"]
    plan_of(ahi, narrow, cache)
    before = ahi.calls["GetImageSetMetadata"]
    plan_of(ahi, [m for m in manifests if m.name.startswith("ct1-")], cache)
    assert ahi.calls["GetImageSetMetadata"] == before + 1  # coverage grew: read once more


def test_apply_sends_one_update_per_changed_image_set(seeded: Any, tmp_path: Path) -> None:
    ahi, manifests = seeded
    plan = plan_of(ahi, manifests)
    with Journal.start(run_store(tmp_path), command="apply", endpoint="test") as journal:
        report = apply_plan(ahi, plan, journal, lock_timeout=20)
    assert report.exit_code == 0
    # One per image set, plus CT's forced private-tag removal in a call of its own.
    assert len(plan.to_update) == 3 and ahi.calls["UpdateImageSetMetadata"] == 4


def test_shards_partition_the_image_sets(seeded: Any) -> None:
    ahi, manifests = seeded
    everything = {p.image_set_id for p in plan_of(ahi, manifests).image_sets}
    parts = [
        {p.image_set_id for p in plan_of(ahi, manifests, shard=(k, 3)).image_sets}
        for k in (1, 2, 3)
    ]
    assert set().union(*parts) == everything
    assert sum(len(p) for p in parts) == len(everything)
    ids = [f"{n:032x}" for n in range(3000)]
    sizes = [sum(in_shard(i, (k, 4)) for i in ids) for k in (1, 2, 3, 4)]
    assert sum(sizes) == 3000 and min(sizes) > 600  # stable and roughly even


def test_incremental_drift_checks_only_what_changed(seeded: Any, client: Any) -> None:
    ahi, manifests = seeded
    targets, _ = resolve(ahi, manifests)
    owned = owned_by_plan(
        (t.datastore_id, t.image_set_id, [m.name for m in t.manifests]) for t in targets
    )
    # a drift just ran, and found everything in sync
    state = state_after(dt.datetime.now(dt.UTC), manifests, owned, open_now=(), generations={})
    quiet = incremental_targets(ahi, manifests, state, dt.timedelta())
    assert quiet.targets == [] and quiet.selected == len(targets)
    nm = "07293c9559d92802df5cd515a22a5149"
    last_drift = dt.datetime.now(dt.UTC)
    client.update_image_set_metadata(
        datastoreId=SEED_DATASTORE_ID,
        imageSetId=nm,
        latestVersionId="1",
        updateImageSetMetadataUpdates={
            "DICOMUpdates": {
                "updatableAttributes": blob({"Study": {"DICOM": {"StudyDescription": "edited"}}})
            }
        },
    )
    settle(client, SEED_DATASTORE_ID, nm)
    state = state_after(last_drift, manifests, owned, open_now=(), generations={})
    before = ahi.calls.get("SearchImageSets", 0)
    changed = incremental_targets(ahi, manifests, state, dt.timedelta())
    assert [t.image_set_id for t in changed.targets] == [nm]
    assert ahi.calls["SearchImageSets"] - before == 1  # one window search, no selector searches
    # What was drifted last time is checked again, changed or not: nothing is forgotten.
    ct = next(t.image_set_id for t in targets if t.image_set_id != nm)
    remembered = state_after(
        dt.datetime.now(dt.UTC),
        manifests,
        owned,
        open_now=[(SEED_DATASTORE_ID, ct)],
        generations={},
    )
    again = incremental_targets(ahi, manifests, remembered, dt.timedelta())
    assert [t.image_set_id for t in again.targets] == [ct]


@pytest.mark.parametrize(
    "items",
    [
        [put(Level.PATIENT, "PatientName", "A^B"), put(Level.STUDY, "StudyDescription", None)],
        [put(Level.SERIES, "SeriesDescription", "X", S), drop(Level.INSTANCE, None, S, SOPS[1])],
        [
            put(Level.INSTANCE, "00091001", "v", S, SOP, "LO"),
            drop(Level.INSTANCE, "InstanceNumber", S, SOP),
        ],
        [put(Level.INSTANCE, "InstanceNumber", "7", S, "9.9.9")],
        [drop(Level.SERIES, None, S)],
    ],
)
def test_the_projection_diffs_like_the_document(items: list[Any]) -> None:
    manifests = [manifest(*items, force=True)]
    whole = diff_image_set(USDOPPLER, manifests, is_primary=False)
    pruned = diff_image_set(prune(USDOPPLER, manifests), manifests, is_primary=False)
    assert pruned == whole
    assert len(str(prune(USDOPPLER, manifests))) < len(str(USDOPPLER)) / 4


def test_one_study_wide_call_when_every_primary_set_of_a_study_changes_alike(
    local: Any, client: Any, datastore: str, tmp_path: Path
) -> None:
    import copy

    from conftest import put_document

    from reconciler.manifest.model import Selector, SelectorKind

    study = USDOPPLER["Study"]["DICOM"]["StudyInstanceUID"]
    second = copy.deepcopy(USDOPPLER)
    second["Study"]["Series"] = {
        "1.2.3.4": {
            "DICOM": {"SeriesInstanceUID": "1.2.3.4"},
            "Instances": {"1.2.3.4.5": {"DICOM": {}}},
        }
    }
    ids = [
        put_document(local, datastore, USDOPPLER, "a" * 32, primary=True),
        put_document(local, datastore, second, "b" * 32, primary=True),
    ]
    wanted = manifest(put(Level.STUDY, "StudyDescription", "DOPPLER STUDY"))
    wanted = type(wanted)(
        **{
            **wanted.__dict__,
            "datastore_id": datastore,
            "selector": Selector(SelectorKind.STUDY_INSTANCE_UID, study),
        }
    )
    ahi = HealthImaging(client, limiter=RateLimiter.unlimited())
    plan = make_plan(ahi, PlanRequest([wanted], "d", "test"))
    assert plan.update_calls == 1 and len(plan.to_update) == 2
    assert [p.include_study for p in plan.image_sets] == [True, False]
    with Journal.start(run_store(tmp_path), command="apply", endpoint="test") as journal:
        report = apply_plan(ahi, plan, journal, lock_timeout=20)
    assert [o.outcome.value for o in report.outcomes] == ["UPDATED", "UPDATED"]
    assert ahi.calls["UpdateImageSetMetadata"] == 1
    for image_set in ids:
        doc = ahi.get_metadata(datastore, image_set, "2")
        assert doc["Study"]["DICOM"]["StudyDescription"] == "DOPPLER STUDY"


def test_a_follower_moved_by_another_writer_during_the_study_wide_call_is_a_conflict(
    local: Any, client: Any, datastore: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study-wide call changes every primary image set of the study; someone else
    changes a follower right after. Its version 2 is the call's (recorded UPDATED);
    version 3 is theirs: never adopted, so a revert of the run refuses it as moved
    (issue 12.1)."""
    import copy

    from conftest import put_document

    from reconciler.manifest.model import Selector, SelectorKind

    study = USDOPPLER["Study"]["DICOM"]["StudyInstanceUID"]
    second = copy.deepcopy(USDOPPLER)
    second["Study"]["Series"] = {
        "1.2.3.4": {
            "DICOM": {"SeriesInstanceUID": "1.2.3.4"},
            "Instances": {"1.2.3.4.5": {"DICOM": {}}},
        }
    }
    put_document(local, datastore, USDOPPLER, "a" * 32, primary=True)
    put_document(local, datastore, second, "b" * 32, primary=True)
    wanted = manifest(put(Level.STUDY, "StudyDescription", "DOPPLER STUDY"))
    wanted = type(wanted)(
        **{
            **wanted.__dict__,
            "datastore_id": datastore,
            "selector": Selector(SelectorKind.STUDY_INSTANCE_UID, study),
        }
    )
    ahi = HealthImaging(client, limiter=RateLimiter.unlimited())
    plan = make_plan(ahi, PlanRequest([wanted], "d", "test"))
    real = ahi.update_metadata

    def racing(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)  # the study-wide call: both sets → version 2
        from conftest import settle

        settle(client, datastore, "b" * 32)
        client.update_image_set_metadata(  # then someone else: the follower → version 3
            datastoreId=datastore,
            imageSetId="b" * 32,
            latestVersionId="2",
            updateImageSetMetadataUpdates={
                "DICOMUpdates": {
                    "updatableAttributes": json.dumps(
                        {"SchemaVersion": 1.1, "Study": {"DICOM": {"AccessionNumber": "theirs"}}}
                    ).encode()
                }
            },
        )
        return result

    monkeypatch.setattr(ahi, "update_metadata", racing)
    with Journal.start(run_store(tmp_path), command="apply", endpoint="test") as journal:
        report = apply_plan(ahi, plan, journal, lock_timeout=20)
    assert [(o.outcome.value, o.to_version) for o in report.outcomes] == [
        ("UPDATED", "2"),
        ("UPDATED", "2"),
    ]
    items = plan_revert_run(ahi, run_store(tmp_path).load("last"), runs=run_store(tmp_path))
    assert [(i.image_set_id, i.moved) for i in items] == [("a" * 32, False), ("b" * 32, True)]
