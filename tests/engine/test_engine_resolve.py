"""Selectors → image sets, against the seeded local HealthImaging over HTTP."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from builders import manifest, put

from reconciler.dicom.levels import Level
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.engine.resolve import resolve
from reconciler.healthimaging import HealthImaging, RateLimiter
from reconciler.manifest.model import Manifest, Selector, SelectorKind


@pytest.fixture
def ahi(local: Any, client: Any) -> HealthImaging:
    seed(local.backend)
    return HealthImaging(client, limiter=RateLimiter.unlimited())


def _summaries(client: Any) -> list[dict[str, Any]]:
    found = client.search_image_sets(datastoreId=SEED_DATASTORE_ID, maxResults=50)
    return list(found["imageSetsMetadataSummaries"])


def _selecting(kind: SelectorKind, value: str, name: str) -> Manifest:
    base = manifest(put(Level.STUDY, "StudyDescription", "X"), name=name)
    return replace(base, datastore_id=SEED_DATASTORE_ID, selector=Selector(kind, value))


def test_dicom_selectors_reach_primary_image_sets_and_ids_pass_through(
    ahi: HealthImaging, client: Any
) -> None:
    summaries = _summaries(client)
    legacy = next(s for s in summaries if not s.get("isPrimary", True))
    study = legacy["DICOMTags"]["DICOMStudyInstanceUID"]
    by_study = _selecting(SelectorKind.STUDY_INSTANCE_UID, study, "by-study")
    by_id = _selecting(SelectorKind.IMAGE_SET_ID, legacy["imageSetId"], "by-id")
    targets, unresolved = resolve(ahi, [by_study, by_id])
    reached = {t.image_set_id: [m.name for m in t.manifests] for t in targets}
    assert reached[legacy["imageSetId"]] == ["by-id"]  # the non-primary one: by ID only
    assert list(reached) == [legacy["imageSetId"]]
    # The seeded legacy study has no primary image set: reported, never an error.
    assert [u.manifest.name for u in unresolved] == ["by-study"]
    assert "matches no primary image set" in str(unresolved[0])


def test_one_search_per_distinct_selector_and_unmatched_ones_are_reported(
    ahi: HealthImaging, client: Any
) -> None:
    study = _summaries(client)[0]["DICOMTags"]["DICOMStudyInstanceUID"]
    manifests = [
        _selecting(SelectorKind.STUDY_INSTANCE_UID, study, "a"),
        _selecting(SelectorKind.STUDY_INSTANCE_UID, study, "b"),
        _selecting(SelectorKind.PATIENT_ID, "NO-SUCH-PATIENT", "c"),
    ]
    # Known to be too large to list: one search per distinct selector.
    targets, unresolved = resolve(ahi, manifests, sizes={SEED_DATASTORE_ID: 10_000})
    assert ahi.calls["SearchImageSets"] == 2
    assert [u.manifest.name for u in unresolved] == ["c"]
    assert all([m.name for m in t.manifests] == ["a", "b"] for t in targets)
    assert targets == sorted(targets, key=lambda t: (t.datastore_id, t.image_set_id))
    # Small enough to list in fewer requests: the same answer from one listing page.
    assert resolve(ahi, manifests) == (targets, unresolved)
    assert ahi.calls["SearchImageSets"] == 3
