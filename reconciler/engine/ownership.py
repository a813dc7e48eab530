"""Which manifests take an image set nobody owned yet: selectors against its tags.

A selector names its image sets by ``imageSetId`` or by one DICOM tag that
SearchImageSets indexes (study, series, patient, accession; primary image sets unless
``isPrimary`` says otherwise, :mod:`reconciler.engine.resolve`). An image set that
appears later (an import, a copy, a promotion) joins a manifest when its tags match,
exactly as the next full resolution would find it. The tags come from the metadata
document (every series of it) or from a search summary, which names no series of an
image set with several: then a ``seriesInstanceUID`` selector cannot be answered
without the document (:attr:`Tags.series` is None).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.healthimaging.models import ImageSetSummary
from reconciler.manifest.model import Manifest, SelectorKind

_SUMMARY_TAG = {
    SelectorKind.STUDY_INSTANCE_UID: "DICOMStudyInstanceUID",
    SelectorKind.PATIENT_ID: "DICOMPatientId",
    SelectorKind.ACCESSION_NUMBER: "DICOMAccessionNumber",
}


@dataclass(frozen=True)
class Tags:
    """An image set's indexed tags, as far as they are known."""

    image_set_id: str
    is_primary: bool
    values: Mapping[SelectorKind, str]
    series: frozenset[str] | None  # None: not known (a search summary)

    @classmethod
    def of_document(cls, image_set_id: str, is_primary: bool, doc: Mapping[str, Any]) -> Tags:
        study = doc.get("Study") or {}
        patient = doc.get("Patient") or {}
        found = {
            SelectorKind.STUDY_INSTANCE_UID: (study.get("DICOM") or {}).get("StudyInstanceUID"),
            SelectorKind.ACCESSION_NUMBER: (study.get("DICOM") or {}).get("AccessionNumber"),
            SelectorKind.PATIENT_ID: (patient.get("DICOM") or {}).get("PatientID"),
        }
        values = {kind: value for kind, value in found.items() if isinstance(value, str)}
        return cls(image_set_id, is_primary, values, frozenset(study.get("Series") or {}))

    @classmethod
    def of_summary(cls, summary: ImageSetSummary) -> Tags:
        found = {kind: summary.dicom_tags.get(tag) for kind, tag in _SUMMARY_TAG.items()}
        values = {kind: value for kind, value in found.items() if isinstance(value, str)}
        return cls(summary.image_set_id, bool(summary.is_primary), values, None)


def takes(manifest: Manifest, tags: Tags) -> bool | None:
    """Whether ``manifest``'s selector takes the image set; None when the tags known
    cannot tell (a series selector and no series list)."""
    selector = manifest.selector
    if selector.kind is SelectorKind.IMAGE_SET_ID:
        return selector.value == tags.image_set_id
    if selector.is_primary is not None and selector.is_primary != tags.is_primary:
        return False
    if selector.kind is SelectorKind.SERIES_INSTANCE_UID:
        return None if tags.series is None else selector.value in tags.series
    return tags.values.get(selector.kind) == selector.value


def owners(manifests: Sequence[Manifest], tags: Tags) -> tuple[Manifest, ...] | None:
    """The manifests that take the image set, in order; None when some cannot tell."""
    answers = [(manifest, takes(manifest, tags)) for manifest in manifests]
    if any(answer is None for _, answer in answers):
        return None
    return tuple(manifest for manifest, answer in answers if answer)


def by_tags(manifests: Collection[Manifest], datastore_id: str) -> list[Manifest]:
    """The manifests of ``datastore_id`` that select by a DICOM tag (those a new image
    set may join; an ``imageSetId`` selector names its one image set from the start)."""
    return [
        m
        for m in manifests
        if m.datastore_id == datastore_id and m.selector.kind is not SelectorKind.IMAGE_SET_ID
    ]
