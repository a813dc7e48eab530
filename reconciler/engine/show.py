"""``show``: a live image set as a person reads it (``terraform state show``).

:func:`find_image_sets` turns what a person knows (image set IDs, a study UID, a patient
ID, an accession number) into image set IDs through SearchImageSets; :func:`show` reads
one image set's version and metadata and summarises it: the Patient, Study and Series
attributes, the instances of each series counted with what differs between them, the
private tags with their VR, and which manifest owns each managed attribute.

The result is data with the live values; masking PHI is the renderers' job
(:func:`reconciler.render.show.as_data`), like every other output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.engine.resolve import resolve
from reconciler.engine.wildcards import expand_manifests
from reconciler.errors import ReconcilerError
from reconciler.healthimaging import HealthImaging, SearchFilter
from reconciler.healthimaging.models import ImageSetInfo, SearchField
from reconciler.manifest.model import DesiredValue, Manifest, Removal

_SEARCH: dict[str, SearchField] = {
    "study": "DICOMStudyInstanceUID",
    "patient_id": "DICOMPatientId",
    "accession": "DICOMAccessionNumber",
}


@dataclass(frozen=True)
class InstanceSummary:
    """The instances of one series: how many, what they share, what differs."""

    count: int
    common: Mapping[str, Any]  # attributes every instance has with the same value
    differing: Mapping[str, int]  # attribute → number of distinct values (or presence)
    private: Mapping[str, str]  # private tag → its VR (from DICOMVRs)


@dataclass(frozen=True)
class SeriesView:
    uid: str
    attributes: Mapping[str, Any]
    instances: InstanceSummary


@dataclass(frozen=True)
class ImageSetView:
    datastore_id: str
    image_set_id: str
    info: ImageSetInfo
    latest: bool  # the latest version (not one asked for with --version-id)
    patient: Mapping[str, Any]
    study: Mapping[str, Any]
    series: tuple[SeriesView, ...]
    owners: Mapping[str, str]  # "Study.StudyDescription" style address → manifest name


def find_image_sets(
    ahi: HealthImaging,
    datastore_id: str,
    image_set_ids: Sequence[str] = (),
    *,
    study: str | None = None,
    patient_id: str | None = None,
    accession: str | None = None,
) -> list[str]:
    """The image sets named, or found by DICOM identifiers (primary or not), sorted."""
    found = set(image_set_ids)
    for name, wanted in (("study", study), ("patient_id", patient_id), ("accession", accession)):
        if wanted is None:
            continue
        hits = {s.image_set_id for s in ahi.search(datastore_id, [SearchFilter.equal(
            _SEARCH[name], wanted)])}  # fmt: skip
        if not hits:
            what = name.replace("_", " ")
            raise ReconcilerError(f"no image set in data store {datastore_id} has that {what}")
        found |= hits
    if not found:
        raise ReconcilerError(
            "name image sets: IMAGE_SET_ID…, --study, --patient-id or --accession"
        )
    return sorted(found)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def summarise_instances(instances: Mapping[str, Any]) -> InstanceSummary:
    """Count the instances and split their attributes into shared and differing."""
    values: dict[str, set[str]] = {}
    present: dict[str, int] = {}
    first: dict[str, Any] = {}
    private: dict[str, str] = {}
    for instance in instances.values():
        if not isinstance(instance, dict):
            continue
        for key, value in (instance.get("DICOM") or {}).items():
            values.setdefault(key, set()).add(_key(value))
            present[key] = present.get(key, 0) + 1
            first.setdefault(key, value)
        for tag, vr in (instance.get("DICOMVRs") or {}).items():
            private.setdefault(tag, str(vr))
    count = len(instances)
    common = {k: first[k] for k in sorted(values) if len(values[k]) == 1 and present[k] == count}
    differing = {
        k: len(values[k]) + (1 if present[k] < count else 0)
        for k in sorted(values)
        if k not in common
    }
    return InstanceSummary(count, common, differing, dict(sorted(private.items())))


def address_label(level: str, series_uid: str | None, sop_uid: str | None, key: str | None) -> str:
    """How show names a managed attribute: ``Series[<uid>].SeriesDescription``."""
    parts = [level if level in ("Patient", "Study") else ""]
    if series_uid is not None:
        parts = [f"Series[{series_uid}]"]
    if sop_uid is not None:
        parts.append(f"Instances[{sop_uid}]")
    return ".".join([*parts, key or "(whole)"])


def owners_of(doc: Mapping[str, Any], manifests: Iterable[Manifest]) -> dict[str, str]:
    """Each address the manifests own in ``doc`` → the first manifest naming it."""
    owners: dict[str, str] = {}
    for manifest in expand_manifests(dict(doc), list(manifests)):
        items: list[DesiredValue | Removal] = [*manifest.sets, *manifest.removals]
        for item in items:
            label = address_label(item.level.value, item.series_uid, item.sop_uid, item.key)
            owners.setdefault(label, manifest.name)
    return owners


def show(
    ahi: HealthImaging,
    datastore_id: str,
    image_set_id: str,
    *,
    version_id: str | None = None,
    manifests: Sequence[Manifest] = (),
) -> ImageSetView:
    """Read one image set (its latest version, or ``version_id``) and summarise it."""
    info = ahi.get_image_set(datastore_id, image_set_id, version_id)
    doc = ahi.get_metadata(datastore_id, image_set_id, info.version_id)
    owning: list[Manifest] = []
    if manifests:
        targets, _ = resolve(ahi, [m for m in manifests if m.datastore_id == datastore_id])
        owning = [m for t in targets if t.image_set_id == image_set_id for m in t.manifests]
    study = doc.get("Study") or {}
    series = tuple(
        SeriesView(
            uid,
            dict((node or {}).get("DICOM") or {}),
            summarise_instances((node or {}).get("Instances") or {}),
        )
        for uid, node in sorted((study.get("Series") or {}).items())
    )
    return ImageSetView(
        datastore_id=datastore_id,
        image_set_id=image_set_id,
        info=info,
        latest=version_id is None,
        patient=dict((doc.get("Patient") or {}).get("DICOM") or {}),
        study=dict(study.get("DICOM") or {}),
        series=series,
        owners=owners_of(doc, owning),
    )
