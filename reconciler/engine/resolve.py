"""Selectors → image sets: which manifests apply to which image set.

An ``imageSetId`` selector names its image set; the DICOM selectors are resolved
through SearchImageSets, to **primary** image sets by default (the ones a study's
viewers show), to non-primary ones with ``isPrimary: false`` (archives imported before
mid 2025, where Patient- and Series-level fixes work in place) or to both with
``isPrimary: any``. Every target is a (data store, image
set) pair with the manifests that own part of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.healthimaging import HealthImaging
from reconciler.healthimaging.models import SearchField, SearchFilter
from reconciler.manifest.model import Manifest, Selector, SelectorKind

_SEARCH_FIELD: dict[SelectorKind, SearchField] = {
    SelectorKind.STUDY_INSTANCE_UID: "DICOMStudyInstanceUID",
    SelectorKind.SERIES_INSTANCE_UID: "DICOMSeriesInstanceUID",
    SelectorKind.PATIENT_ID: "DICOMPatientId",
    SelectorKind.ACCESSION_NUMBER: "DICOMAccessionNumber",
}


@dataclass(frozen=True)
class Target:
    datastore_id: str
    image_set_id: str
    manifests: tuple[Manifest, ...]


@dataclass(frozen=True)
class Unresolved:
    """A manifest whose selector matched no image set: reported, never an error of apply."""

    manifest: Manifest

    def __str__(self) -> str:
        m = self.manifest
        return (
            f"{m.location}: manifest '{m.name}': {m.selector} matches no {m.selector.reaches} "
            f"in data store {m.datastore_id}"
        )


def primaries_of_study(ahi: HealthImaging, datastore_id: str, study_uid: str) -> set[str]:
    """The primary image sets of a study (the service allows one; a set says so)."""
    filters = [SearchFilter.equal("DICOMStudyInstanceUID", study_uid),
               SearchFilter.equal("isPrimary", True)]  # fmt: skip
    return {s.image_set_id for s in ahi.search(datastore_id, filters)}


def image_sets_of(ahi: HealthImaging, manifest: Manifest) -> list[str]:
    """The image set IDs ``manifest`` selects, sorted."""
    selector = manifest.selector
    if selector.kind is SelectorKind.IMAGE_SET_ID:
        return [selector.value]
    filters = [SearchFilter.equal(_SEARCH_FIELD[selector.kind], selector.value)]
    if selector.is_primary is not None:
        filters.append(SearchFilter.equal("isPrimary", selector.is_primary))
    return sorted({s.image_set_id for s in ahi.search(manifest.datastore_id, filters)})


def resolve(
    ahi: HealthImaging, manifests: Sequence[Manifest]
) -> tuple[list[Target], list[Unresolved]]:
    """Targets sorted by (data store, image set ID), each with its manifests in order."""
    owners: dict[tuple[str, str], list[Manifest]] = defaultdict(list)
    unresolved: list[Unresolved] = []
    # One search per distinct selector: many manifests often share a study.
    cache: dict[tuple[str, Selector], list[str]] = {}
    for manifest in manifests:
        key = (manifest.datastore_id, manifest.selector)
        if key not in cache:
            cache[key] = image_sets_of(ahi, manifest)
        if not cache[key]:
            unresolved.append(Unresolved(manifest))
        for image_set_id in cache[key]:
            owners[(manifest.datastore_id, image_set_id)].append(manifest)
    targets = [
        Target(datastore_id, image_set_id, tuple(found))
        for (datastore_id, image_set_id), found in sorted(owners.items())
    ]
    return targets, unresolved
