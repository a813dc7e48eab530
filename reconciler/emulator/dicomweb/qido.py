"""QIDO-RS: search for studies, series and instances (AHI's SearchDICOM* actions).

Each level's records are built from the primary image sets (library.py): a study's
Patient and Study attributes, a series' added to them, an instance's added to its
series'. Counts, ModalitiesInStudy, InstanceAvailability and RetrieveURL are computed.
The query keys a level accepts, the answer's order, and paging follow AHI's search
pages (choices.py cites them); the attributes returned by default follow PS3.18
§10.6.3.3 plus the level's search keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydicom import datadict

from reconciler.emulator import choices
from reconciler.emulator.dicomweb import dicomjson
from reconciler.emulator.dicomweb.elements import context_of, elements, tag_of
from reconciler.emulator.dicomweb.library import ImageSetView, Library, instances
from reconciler.emulator.dicomweb.matching import matches
from reconciler.emulator.dicomweb.request import Request, Response, json_response
from reconciler.emulator.exceptions import ValidationException

_CONTROL = frozenset({"limit", "offset", "fuzzymatching", "includefield", "imageSetId"})


@dataclass(frozen=True)
class Level:
    name: str
    keys: tuple[str, ...]  # the query keys AHI lists for the level
    returned: tuple[str, ...]  # returned by default (PS3.18 Table 10.6.3-3/4/5)


STUDY = Level(
    "study",
    choices.DICOMWEB_STUDY_KEYS,
    (
        "SpecificCharacterSet",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "InstanceAvailability",
        "ModalitiesInStudy",
        "ReferringPhysicianName",
        "TimezoneOffsetFromUTC",
        "RetrieveURL",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientBirthTime",
        "PatientSex",
        "StudyInstanceUID",
        "StudyID",
        "StudyDescription",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
)
SERIES = Level(
    "series",
    choices.DICOMWEB_SERIES_KEYS,
    (
        "SpecificCharacterSet",
        "Modality",
        "TimezoneOffsetFromUTC",
        "SeriesDescription",
        "RetrieveURL",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SeriesNumber",
        "NumberOfSeriesRelatedInstances",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
    ),
)
INSTANCE = Level(
    "instance",
    choices.DICOMWEB_INSTANCE_KEYS,
    (
        "SpecificCharacterSet",
        "SOPClassUID",
        "SOPInstanceUID",
        "InstanceAvailability",
        "TimezoneOffsetFromUTC",
        "RetrieveURL",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "InstanceNumber",
        "Rows",
        "Columns",
        "BitsAllocated",
        "NumberOfFrames",
    ),
)


@dataclass
class Record:
    """One result: its attributes (the document's form), hex keys' VRs, sort keys."""

    attributes: dict[str, Any]
    vrs: dict[str, str]
    updated_at: float
    order: tuple[Any, ...] = ()


def keyword_of(key: str) -> str | None:
    """A query or includefield key (keyword or tag) as the document's key, or None."""
    tag = tag_of(key)
    if tag is None:
        return None
    return datadict.keyword_for_tag(tag) or f"{tag:08X}"


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("inf")  # no number: after those that have one


def _study_records(sets: list[ImageSetView], base: str) -> dict[str, Record]:
    records: dict[str, Record] = {}
    for image_set in sets:  # newest first: a study's newest image set speaks for it
        uid = image_set.study_uid
        series = image_set.series()
        found = records.get(uid)
        if found is None:
            attributes = {
                **image_set.doc.get("Patient", {}).get("DICOM", {}),
                **image_set.study.get("DICOM", {}),
                "InstanceAvailability": "ONLINE",
                "RetrieveURL": f"{base}/studies/{uid}",
                "ModalitiesInStudy": [],
                "NumberOfStudyRelatedSeries": "0",
                "NumberOfStudyRelatedInstances": "0",
            }
            found = records[uid] = Record(attributes, {}, image_set.updated_at)
        attributes = found.attributes
        modalities = {m for s in series.values() if (m := s.get("DICOM", {}).get("Modality"))}
        attributes["ModalitiesInStudy"] = sorted(set(attributes["ModalitiesInStudy"]) | modalities)
        count = sum(len(s.get("Instances", {})) for s in series.values())
        attributes["NumberOfStudyRelatedSeries"] = str(
            int(attributes["NumberOfStudyRelatedSeries"]) + len(series)
        )
        attributes["NumberOfStudyRelatedInstances"] = str(
            int(attributes["NumberOfStudyRelatedInstances"]) + count
        )
    return records


def _records(level: Level, sets: list[ImageSetView], request: Request) -> list[Record]:
    """The level's records in the answer's order, before matching."""
    studies = _study_records(sets, request.base_url)
    if level is STUDY:
        return sorted(studies.values(), key=lambda r: -r.updated_at)
    found: dict[tuple[str, ...], Record] = {}
    for view in instances(sets, request.series_uid):
        study = studies[view.image_set.study_uid]
        series = view.series.get("DICOM", {})
        series_number = _number(series.get("SeriesNumber"))
        attributes = {
            **study.attributes,
            **series,
            "RetrieveURL": f"{study.attributes['RetrieveURL']}/series/{view.series_uid}",
            "NumberOfSeriesRelatedInstances": str(len(view.series.get("Instances", {}))),
        }
        key: tuple[str, ...] = (view.image_set.study_uid, view.series_uid)
        order: tuple[Any, ...] = (series_number, view.series_uid)
        vrs: dict[str, str] = {}
        if level is INSTANCE:
            attributes.update(view.instance.get("DICOM", {}))
            attributes["RetrieveURL"] += f"/instances/{view.sop_uid}"
            number = _number(view.instance.get("DICOM", {}).get("InstanceNumber"))
            key, order, vrs = (*key, view.sop_uid), (number, view.sop_uid), view.vrs
            if request.relational and request.study_uid:  # newest update first (AHI)
                order = (-view.image_set.updated_at, series_number, *order)
        found.setdefault(key, Record(attributes, vrs, view.image_set.updated_at, order))
    return sorted(found.values(), key=lambda r: r.order)


def _filters(level: Level, request: Request) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for key, values in request.query.items():
        if key in _CONTROL:
            continue
        keyword = keyword_of(key)
        if keyword not in level.keys:
            raise ValidationException(
                f"{key[:64]!r} is not a search key of {level.name} searches; HealthImaging "
                f"searches {', '.join(level.keys)}"
            )
        filters[keyword] = filters.get(keyword, []) + values
    return filters


def _fields(level: Level, request: Request, filters: Iterable[str]) -> set[str] | None:
    """The keys to return (None: every attribute, ``includefield=all``)."""
    wanted = [
        v.strip() for value in request.query.get("includefield", []) for v in value.split(",")
    ]
    if len(wanted) > choices.DICOMWEB_MAX_INCLUDEFIELDS:
        raise ValidationException(
            f"{len(wanted)} includefield values; at most {choices.DICOMWEB_MAX_INCLUDEFIELDS}"
        )
    if "all" in wanted:
        return None
    keys = set(level.returned) | set(filters)
    if request.relational:  # relational searches also say which study (and series)
        keys |= set(STUDY.returned) | (set(SERIES.returned) if level is INSTANCE else set())
    # A sequence's sub-attribute (00080096.00080100) returns the whole sequence; an
    # unknown key is left out silently, as AHI does.
    keys |= {k for k in (keyword_of(w.split(".")[0]) for w in wanted if w) if k}
    return keys


def _page(request: Request, total: int) -> tuple[int, int, bool]:
    """(offset, limit, whether the server's own maximum cut the answer)."""
    limit_text, offset_text = request.one("limit"), request.one("offset")
    try:
        limit = int(limit_text) if limit_text is not None else choices.DICOMWEB_MAX_LIMIT
        offset = int(offset_text) if offset_text is not None else 0
    except ValueError:
        raise ValidationException("limit and offset must be whole numbers") from None
    if limit < 1 or offset < 0 or offset > choices.DICOMWEB_MAX_OFFSET:
        raise ValidationException(
            f"limit must be 1 or more and offset 0..{choices.DICOMWEB_MAX_OFFSET}"
        )
    capped = limit > choices.DICOMWEB_MAX_LIMIT or limit_text is None
    limit = min(limit, choices.DICOMWEB_MAX_LIMIT)
    return offset, limit, capped and total > offset + limit


def search(level: Level, request: Request, library: Library) -> Response:
    request.require_json()
    filters = _filters(level, request)
    fuzzy = request.one("fuzzymatching")
    if fuzzy not in (None, "true", "false"):
        raise ValidationException("fuzzymatching must be true or false")
    fields = _fields(level, request, filters)
    sets = library.image_sets(
        request.datastore_id, study_uid=request.study_uid, image_set_id=request.image_set_id
    )
    found = [
        record
        for record in _records(level, sets, request)
        if all(
            matches(record.attributes.get(k), v, vr=_vr(k), keyword=k, fuzzy=fuzzy == "true")
            for k, v in filters.items()
        )
    ][: choices.DICOMWEB_MAX_RESULTS]
    offset, limit, cut = _page(request, len(found))
    body = [_json(record, fields) for record in found[offset : offset + limit]]
    headers = {}
    if cut:  # PS3.18 §8.3.4.4: the server's maximum, not the client's limit, cut it
        headers["Warning"] = f'299 {request.base_url}: "There are additional results"'
    return json_response(json.dumps(body).encode(), headers=headers)


def _vr(keyword: str) -> str:
    tag = tag_of(keyword)
    try:
        return str(datadict.dictionary_VR(tag)) if tag is not None else "UN"
    except KeyError:
        return "UN"


def _returnable(key: str) -> bool:
    """Not the file meta group (0002), not the pixel data (AHI returns neither)."""
    tag = tag_of(key)
    return tag is not None and tag >= 0x00030000 and key != "PixelData"


def _json(record: Record, fields: set[str] | None) -> dict[str, Any]:
    attributes = {
        key: value
        for key, value in record.attributes.items()
        if (fields is None or key in fields) and _returnable(key)
    }
    return dicomjson.dataset(elements(attributes, record.vrs, context_of(record.attributes)))
