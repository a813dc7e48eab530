"""WADO-RS: instance metadata, series metadata, instances and frames (AHI's
GetDICOMInstanceMetadata, GetDICOMSeriesMetadata, GetDICOMInstance and
GetDICOMInstanceFrames).

Metadata is the DICOM JSON of the instance's four levels of the served version
(library.py), without pixel data and with ``TransferSyntaxUID`` the syntax its frames
are served in with ``transfer-syntax=*`` (AHI: "matches the Stored Transfer Syntax
UID"). Instances and frames are negotiated from Accept (media.py, syntaxes.py).
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.emulator.dicomweb import dicomjson, media, part10, syntaxes
from reconciler.emulator.dicomweb.elements import context_of, elements, tag_of
from reconciler.emulator.dicomweb.errors import NotAcceptableException
from reconciler.emulator.dicomweb.library import InstanceView, Library, instances
from reconciler.emulator.dicomweb.request import Request, Response, json_response
from reconciler.emulator.exceptions import ResourceNotFoundException, ValidationException


def _attributes(view: InstanceView) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for level in view.levels():
        merged.update(level)
    return merged


def _metadata(view: InstanceView, library: Library) -> dict[str, Any]:
    attributes = {
        key: value
        for key, value in _attributes(view).items()
        if (tag_of(key) or 0) >= 0x00030000 and key != "PixelData"
    }
    ids = view.frame_ids()
    attributes["TransferSyntaxUID"] = syntaxes.stored([library.kept_syntax(ids[0])] if ids else [])
    return dicomjson.dataset(elements(attributes, view.vrs, context_of(attributes)))


def _instance_number(view: InstanceView) -> tuple[float, str]:
    number = view.instance.get("DICOM", {}).get("InstanceNumber")
    try:
        return float(number), view.sop_uid
    except (TypeError, ValueError):
        return float("inf"), view.sop_uid


def _series(request: Request, library: Library) -> list[InstanceView]:
    sets = library.image_sets(
        request.datastore_id, study_uid=request.study_uid, image_set_id=request.image_set_id
    )
    found = {v.sop_uid: v for v in reversed(list(instances(sets, request.series_uid)))}
    if not found:
        where = (
            f"image set {request.image_set_id}"
            if request.image_set_id
            else ("the primary image sets (imageSetId reads another)")
        )
        raise ResourceNotFoundException(
            f"Series {request.series_uid} of study {request.study_uid} not found in {where} "
            f"of datastore {request.datastore_id}"
        )
    return sorted(found.values(), key=_instance_number)


def _instance(request: Request, library: Library) -> InstanceView:
    for view in _series(request, library):
        if view.sop_uid == request.sop_uid:
            return view
    raise ResourceNotFoundException(
        f"Instance {request.sop_uid} not found in series {request.series_uid} of study "
        f"{request.study_uid}"
    )


def series_metadata(request: Request, library: Library) -> Response:
    request.require_json()
    found = [_metadata(view, library) for view in _series(request, library)]
    return json_response(json.dumps(found).encode())


def instance_metadata(request: Request, library: Library) -> Response:
    request.require_json()
    return json_response(json.dumps([_metadata(_instance(request, library), library)]).encode())


def instance(request: Request, library: Library) -> Response:
    """The Part 10 file: bare ``application/dicom`` unless multipart/related is asked for."""
    view = _instance(request, library)
    frames = library.frames(view.frame_ids())
    kept = syntaxes.stored(frame.transfer_syntax for frame in frames)
    refusal = None
    for wanted in request.accepted():
        inner = wanted.inner
        offered = inner if inner is not None else wanted
        if not offered.covers("application/dicom"):
            continue
        try:
            syntax = syntaxes.served(offered.params.get("transfer-syntax"), kept)
        except NotAcceptableException as error:
            refusal = error
            continue
        found = elements(_attributes(view), view.vrs, context_of(_attributes(view)))
        data = part10.part10(found, frames, syntax)
        content_type = f"application/dicom; transfer-syntax={syntax}"
        if inner is None:
            return Response(200, {"Content-Type": content_type}, data)
        multipart, body = media.encode_multipart([(content_type, data)], "application/dicom")
        return Response(200, {"Content-Type": multipart}, body)
    raise refusal or NotAcceptableException(
        'an instance is served as application/dicom or multipart/related; type="application/dicom"'
    )


def _frame_numbers(text: str, count: int) -> list[int]:
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValidationException(
            f"frame list {text[:80]!r} is not comma-separated frame numbers"
        ) from None
    if any(n < 1 for n in numbers) or len(set(numbers)) != len(numbers):
        raise ValidationException(
            f"frame list {text[:80]!r}: frame numbers start at 1 and are not repeated"
        )
    missing = [n for n in numbers if n > count]
    if missing:
        raise ResourceNotFoundException(f"Frame {missing[0]} not found: the instance has {count}")
    return numbers


def frames(request: Request, library: Library) -> Response:
    view = _instance(request, library)
    ids = view.frame_ids()
    chosen = library.frames([ids[n - 1] for n in _frame_numbers(request.frames or "", len(ids))])
    kept = syntaxes.stored(frame.transfer_syntax for frame in chosen)
    own_type = syntaxes.FRAME_TYPES.get(kept, syntaxes.OCTET_STREAM)
    refusal = None
    for wanted in request.accepted():
        offered = wanted.inner or wanted
        if wanted.essence not in (media.MULTIPART, "*/*"):
            continue
        for media_type in (own_type, syntaxes.OCTET_STREAM):
            if not offered.covers(media_type):
                continue
            requested = offered.params.get("transfer-syntax")
            if requested is None and media_type == own_type != syntaxes.OCTET_STREAM:
                requested = kept  # image/jpeg and the like name their own syntax
            try:
                syntax = syntaxes.served(requested, kept)
            except NotAcceptableException as error:
                refusal = error
                continue
            part_type = f"{media_type}; transfer-syntax={syntax}"
            content_type, body = media.encode_multipart(
                [(part_type, frame.data) for frame in chosen], media_type
            )
            return Response(200, {"Content-Type": content_type}, body)
    raise refusal or NotAcceptableException(
        f"frames of this instance are served as multipart/related; type={own_type}"
        + (f" or {syntaxes.OCTET_STREAM}" if own_type != syntaxes.OCTET_STREAM else "")
    )
