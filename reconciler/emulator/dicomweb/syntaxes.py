"""Transfer syntaxes DICOMweb serves and their media types (PS3.18 Table 8.7.3-2).

The local HealthImaging keeps native pixel data as it arrived (little-endian) and
encapsulated pixel data in its own syntax; it transcodes nothing. So an instance or
frame is served in Explicit VR Little Endian when its frames are native, in the
syntax it is kept in when asked for that syntax or for ``*`` (AHI: "the stored
transfer syntax"), and any other request is 406 Not Acceptable.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.emulator.dicomweb.errors import NotAcceptableException

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
OCTET_STREAM = "application/octet-stream"

# The media type of a frame in each encapsulated syntax (PS3.18 Table 8.7.3-2).
FRAME_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.100": "video/mpeg2",
    "1.2.840.10008.1.2.4.101": "video/mpeg2",
    "1.2.840.10008.1.2.4.102": "video/mp4",
    "1.2.840.10008.1.2.4.103": "video/mp4",
    "1.2.840.10008.1.2.4.104": "video/mp4",
    "1.2.840.10008.1.2.4.105": "video/mp4",
    "1.2.840.10008.1.2.4.106": "video/mp4",
    "1.2.840.10008.1.2.4.107": "video/H265",
    "1.2.840.10008.1.2.4.108": "video/H265",
}


def stored(kept: Iterable[str | None]) -> str:
    """The syntax an instance's pixel data is kept in, from its frames' (None: native):
    ELE for native pixel data or none, "" for encapsulated data whose file did not
    name its syntax."""
    for syntax in kept:
        if syntax is not None:
            return syntax
    return EXPLICIT_VR_LITTLE_ENDIAN


def served(requested: str | None, kept: str) -> str:
    """The syntax to serve for a request's ``transfer-syntax`` parameter (None: not
    given, which means ELE); NotAcceptableException when it cannot be served."""
    wanted = requested or EXPLICIT_VR_LITTLE_ENDIAN
    if kept and wanted in ("*", kept):
        return kept
    if not kept:
        raise NotAcceptableException(
            "the pixel data is kept encapsulated in a transfer syntax its file did not name"
        )
    raise NotAcceptableException(
        f"transfer-syntax={wanted}: the pixel data is kept as {kept} and the local "
        "HealthImaging does not transcode; ask for transfer-syntax=* (the stored syntax)"
    )
