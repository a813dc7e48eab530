"""DICOM Part 10 files in, AWS HealthImaging metadata documents out.

This is what the local emulator's StartDICOMImportJob (and its ``--seed``) uses to turn
files into the JSON that GetImageSetMetadata returns. The shape and encoding follow the
real document in ``shared/reference/metadata-usdoppler.json``::

    {"SchemaVersion": "1.1",
     "Patient": {"DICOM": {...}},
     "Study": {"DICOM": {...},
               "Series": {<SeriesInstanceUID>: {
                   "DICOM": {...},
                   "Instances": {<SOPInstanceUID>: {
                       "DICOM": {...}, "DICOMVRs": {...}, "ImageFrames": [...],
                       "StoredTransferSyntaxUID": ...}}}}}}

``DatastoreID`` and ``ImageSetID`` are left to the emulator. One document per
StudyInstanceUID (the service's image set).

Placement
    Top-level elements go to the level ``level_of(keyword)`` names (the service's
    metadata-normalization list) and only there; everything else, file-meta elements
    (group 0002) included, is Instance level. Group-length elements (gggg,0000) are
    dropped (the reference carries no FileMetaInformationGroupLength). Elements inside
    sequence items stay inside their item.

Keys
    Standard elements by pydicom keyword. Private elements (odd group) and public
    elements without a keyword are 8 upper-case hex digits, with their VR in the
    instance's ``DICOMVRs`` (private creators included, as in the reference; omitted
    when empty). ``DICOMVRs`` is flat: private elements nested in sequence items are
    listed there too (first VR seen wins), which is how AWS's own samples read it.
    Repeating-group elements (overlays, curves) use the keyword only for the base group
    (``OverlayData`` = 6000,3000); other groups (6002,3000) are hex keys.
    In Implicit VR files a private element's VR is not in the file: like the reference
    (an Implicit VR Little Endian import), private creators are ``LO`` and every other
    private element is ``UN`` (no private dictionary), unless it was read as a sequence.

Values
    - PN: the plain string (``"DOE^JANE"``; all component groups as written).
    - IS, DS: the strings from the file, not numbers: ``"50.000"`` stays ``"50.000"``,
      ``"0012"`` stays ``"0012"``. Leading/trailing spaces (the DICOM padding, which
      PS3.5 makes insignificant) are stripped: the reference's ``"StageNumber": "3"``
      comes from a value stored as ``"3 "``.
    - Other text VRs (AE AS CS DA DT LO LT SH ST TM UC UI UR UT): strings as pydicom
      decodes them (specific character set applied, trailing padding removed).
    - US UL SS SL UV SV: numbers. FL FD: numbers, integral values written as integers
      (the reference has ``"PhysicalDeltaX": 1`` for an FD); NaN/Infinity, which JSON
      cannot hold, as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
    - AT: 8 upper-case hex digits (``"00181065"``).
    - OB OW OD OF OL OV UN: base64 strings; an empty binary element is ``""`` (the
      reference's empty UN elements), never ``null``.
    - PixelData, FloatPixelData, DoubleFloatPixelData: ``null`` (as in the reference;
      the pixels are described by ``ImageFrames``).
    - SQ: an array of objects keyed like the top level (same rules, recursively).
    - Empty (zero-length) non-binary elements, including empty sequences: ``null``.
    - Undecodable values never fail the file: they fall back to base64 of the raw bytes.

VM rule (checked against the reference)
    An attribute whose dictionary VM is anything but ``"1"`` ("1-n", "2", "2-n", "1-3",
    ...) is always an array, even with a single value: ``SpecificCharacterSet``,
    ``SoftwareVersions``, ``EventTimerNames`` (1-n), ``ImageType`` (2-n),
    ``FrameIncrementPointer`` (AT, 1-n) are all arrays in the reference. A VM "1"
    attribute is a scalar; if a file nevertheless holds several values it becomes an
    array. Private/unknown elements (no dictionary VM) are a scalar for one value and an
    array for several. Binary VRs are always one base64 string. Empty is ``null``.

ImageFrames
    One entry per frame:
    - ``ID``: md5 of ``"<SOPInstanceUID>/<frame index>"`` (32 lower-case hex), so the
      same file always gives the same IDs.
    - ``PixelDataChecksumFromBaseToFullResolution``: only the full-resolution entry
      ``{Width: Columns, Height: Rows, Checksum: zlib.crc32(frame)}``. For native
      (uncompressed) pixel data the frame is its slice of PixelData, in little-endian
      byte order (a big-endian file gives the same checksum as its little-endian twin;
      1-bit frames that do not start on a byte boundary are re-aligned to bit 0). For
      encapsulated (compressed) data it is the frame's encapsulated bytestream (its
      fragments joined, as ``pydicom.encaps.generate_frames`` yields them): the
      emulator does not decode JPEG/JPEG 2000/RLE. The real service checksums decoded
      pixels at each HTJ2K resolution level; those lower levels are not reproduced.
    - ``MinPixelValue``/``MaxPixelValue``: over all samples of the frame, native data
      only (values masked to BitsStored, sign-extended when PixelRepresentation is 1);
      omitted for encapsulated data or when the frame cannot be decoded.
    - ``FrameSizeInBytes``: the decoded frame size, Rows x Columns x SamplesPerPixel x
      BitsAllocated / 8 (rounded up; native YBR_FULL_422 counts two samples per pixel).
      That is the native frame's byte length; for encapsulated data it is the size the
      frame decodes to, as the service reports (921600 for a 640x480 RGB frame).
    No PixelData: ``ImageFrames: []``.

StoredTransferSyntaxUID
    Set, to the file's transfer syntax, only for the syntaxes the service documents as
    stored in their original encoding (JPEG Baseline, JPEG 2000 lossy, HTJ2K, MPEG/HEVC
    video); absent otherwise, which per the service documentation means HTJ2K lossless
    (the reference, an Implicit VR import, has no such key).

Batches
    ``read_files``/``read_folder`` read files in sorted path order and never raise for a
    bad file: it becomes a ``FailedFile`` with a one-line reason (not DICOM Part 10,
    truncated, missing UIDs, unreadable, duplicate SOP instance, ...). Files of the same
    study are merged into one document; when they disagree on a Patient, Study or
    Series level value the first file (sorted path order) wins and the disagreement is
    recorded in ``ImportBatch.conflicts``. A second file with an already imported
    SOPInstanceUID is a ``FailedFile`` (the first one is kept).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import logging
import math
import os
import stat
import struct
import warnings
import zlib
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pydicom
import pydicom.data
from pydicom import datadict
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID
from pydicom.valuerep import PersonName

from reconciler.dicom.levels import Level, level_of

SCHEMA_VERSION = "1.1"

_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")

_PIXEL_DATA = 0x7FE00010
_NULL_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, _PIXEL_DATA})  # Float/DoubleFloat/Pixel
_EXTENDED_OFFSETS = 0x7FE00001
_EXTENDED_LENGTHS = 0x7FE00002

_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "OW or OB"})
_INT_VRS = frozenset({"US", "UL", "SS", "SL", "UV", "SV", "US or SS", "US or OW", "US or SS or OW"})
_FLOAT_VRS = frozenset({"FL", "FD"})
_NUMBER_STRING_VRS = frozenset({"IS", "DS"})

# Transfer syntaxes the service keeps in their original encoding (the "*" rows of its
# "Supported transfer syntaxes" page); everything else is transcoded to HTJ2K lossless.
_STORED_AS_IS = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
        "1.2.840.10008.1.2.4.202",  # HTJ2K lossless RPCL
        "1.2.840.10008.1.2.4.203",  # HTJ2K
        "1.2.840.10008.1.2.4.100",  # MPEG2 MP@ML
        "1.2.840.10008.1.2.4.100.1",
        "1.2.840.10008.1.2.4.101",  # MPEG2 MP@HL
        "1.2.840.10008.1.2.4.101.1",
        "1.2.840.10008.1.2.4.102",  # MPEG-4 AVC/H.264
        "1.2.840.10008.1.2.4.102.1",
        "1.2.840.10008.1.2.4.103",
        "1.2.840.10008.1.2.4.103.1",
        "1.2.840.10008.1.2.4.104",
        "1.2.840.10008.1.2.4.104.1",
        "1.2.840.10008.1.2.4.105",
        "1.2.840.10008.1.2.4.105.1",
        "1.2.840.10008.1.2.4.106",
        "1.2.840.10008.1.2.4.106.1",
        "1.2.840.10008.1.2.4.107",  # HEVC/H.265
        "1.2.840.10008.1.2.4.108",
    }
)
_BIG_ENDIAN_TS = "1.2.840.10008.1.2.2"
_ITEM_TAG_LE = b"\xfe\xff\x00\xe0"

# Exceptions pydicom (and the value conversions it does lazily) raise for bad data.
_DECODE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    OverflowError,
    EOFError,
    struct.error,
)


class UnusableInstance(ValueError):
    """A dataset the service would not import; the message is the one-line reason."""


@dataclass(frozen=True)
class ImportedFile:
    path: str
    study_uid: str
    series_uid: str
    sop_uid: str


@dataclass(frozen=True)
class FailedFile:
    path: str
    reason: str  # one line, e.g. "not a DICOM Part 10 file"


@dataclass
class ImportBatch:
    documents: dict[str, dict[str, Any]]  # StudyInstanceUID -> document, sorted path order
    imported: list[ImportedFile]
    failed: list[FailedFile]
    # Patient/Study/Series values on which files of one study disagreed (first file kept).
    conflicts: list[str] = field(default_factory=list)


# -- element encoding -------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@cache
def _key_for(tag: int) -> str | None:
    """The keyword a standard element is keyed by, or None for a hex key."""
    if (tag >> 16) % 2 == 1:
        return None
    keyword = datadict.keyword_for_tag(tag)
    if not keyword:
        return None
    if datadict.dictionary_has_tag(tag):
        return keyword
    mask = datadict.mask_match(tag)
    if mask is not None and int(mask.replace("x", "0"), 16) != tag:
        return None  # a repeating group other than the base one (e.g. 6002,3000)
    return keyword


@cache
def _dictionary_vm(tag: int) -> str | None:
    if (tag >> 16) % 2 == 1:
        return None
    try:
        return datadict.dictionary_VM(tag)
    except KeyError:
        return None


def _shape(tag: int, values: list[Any]) -> Any:
    """Apply the VM rule: dictionary VM other than "1" -> always an array."""
    if not values or values == [""]:
        return None
    vm = _dictionary_vm(tag)
    if len(values) > 1 or (vm is not None and vm != "1"):
        return values
    return values[0]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (MultiValue, list, tuple)):
        return list(value)
    if isinstance(value, str) and value == "":
        return []
    return [value]


def _number_string(value: Any) -> str:
    original = getattr(value, "original_string", None)
    text = original if isinstance(original, str) else str(value)
    return text.strip(" \x00")


def _raw_number_strings(data: bytes) -> list[str]:
    text = data.decode("latin-1")
    if text.strip(" \x00") == "":
        return []
    return [part.strip(" \x00") for part in text.split("\\")]


def _float(value: float) -> float | int | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _scalar(vr: str, value: Any) -> Any:
    """One value of a non-binary, non-sequence element as JSON."""
    if isinstance(value, bytes):
        return _b64(value)
    if vr in _NUMBER_STRING_VRS:
        return _number_string(value)
    if vr == "AT":
        return f"{int(value):08X}"
    if vr in _INT_VRS and isinstance(value, int):
        return int(value)
    if vr in _FLOAT_VRS and isinstance(value, (int, float)):
        return _float(float(value))
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _float(value)
    return str(value)


class _Encoder:
    """Encodes one instance's elements, collecting the VRs of its hex-keyed elements."""

    def __init__(self) -> None:
        self.vrs: dict[str, str] = {}

    def dataset(self, ds: Dataset) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.elements(ds):
            out[key] = value
        return out

    def elements(self, ds: Dataset) -> Iterator[tuple[str, Any]]:
        for tag in sorted(ds.keys()):
            if tag & 0xFFFF == 0:  # group length
                continue
            yield self.element(ds, BaseTag(tag))

    def element(self, ds: Dataset, tag: BaseTag) -> tuple[str, Any]:
        keyword = _key_for(int(tag))
        key = keyword if keyword is not None else f"{int(tag):08X}"
        elem = ds.get_item(tag)
        vr, value = self._encode(ds, tag, elem)
        if keyword is None:
            self.vrs.setdefault(key, _plain_vr(vr))
        return key, value

    def _encode(self, ds: Dataset, tag: BaseTag, elem: Any) -> tuple[str, Any]:
        raw = elem if isinstance(elem, RawDataElement) else None
        if (
            raw is not None
            and raw.VR is None
            and tag.is_private
            and not tag.is_private_creator
            and isinstance(raw.value, bytes)
        ):
            # Implicit VR, no private dictionary: the service reports these as UN.
            return "UN", _b64(raw.value)
        vr = _raw_vr(raw, tag)
        if raw is not None and vr in _NUMBER_STRING_VRS and isinstance(raw.value, bytes):
            return vr, _shape(int(tag), _raw_number_strings(raw.value))
        try:
            converted = ds[tag]
        except _DECODE_ERRORS:
            data = raw.value if raw is not None and isinstance(raw.value, bytes) else b""
            return vr or "UN", _b64(data)
        return self._encode_converted(tag, converted, raw)

    def _encode_converted(
        self, tag: BaseTag, elem: DataElement, raw: RawDataElement | None
    ) -> tuple[str, Any]:
        vr = str(elem.VR)
        if int(tag) in _NULL_PIXEL_TAGS:
            return vr, None
        value = elem.value
        try:
            if vr == "SQ" or isinstance(value, Sequence):
                items = [self.dataset(item) for item in (value or [])]
                return "SQ", items if items else None
            if vr in _BINARY_VRS or isinstance(value, (bytes, bytearray)):
                if isinstance(value, (bytes, bytearray)):
                    return vr, _b64(bytes(value))
                if value is None:
                    return vr, ""
            return vr, _shape(int(tag), [_scalar(vr, v) for v in _as_list(value)])
        except _DECODE_ERRORS:
            data = raw.value if raw is not None and isinstance(raw.value, bytes) else b""
            return vr, _b64(data)


def _raw_vr(raw: RawDataElement | None, tag: BaseTag) -> str:
    if raw is not None and raw.VR is not None:
        return str(raw.VR)
    if tag.is_private_creator:
        return "LO"
    try:
        return str(datadict.dictionary_VR(tag))
    except KeyError:
        return "UN"


def _plain_vr(vr: str) -> str:
    """A single VR for DICOMVRs ("US or SS" -> "US")."""
    return vr.split(" or ")[0] if vr else "UN"


# -- pixel data -----------------------------------------------------------------------


def _int_attr(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    tag = datadict.tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return default
    elem = ds.get_item(tag)
    try:
        value = ds[tag].value if isinstance(elem, RawDataElement) else elem.value
        if isinstance(value, (MultiValue, list)):
            value = value[0] if value else None
        if value is None or value == "":
            return default
        return int(_number_string(value)) if isinstance(value, str) else int(value)
    except _DECODE_ERRORS:
        return default


def _transfer_syntax(ds: Dataset) -> str | None:
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return str(meta.TransferSyntaxUID).strip("\x00 ")
    return None


def _is_encapsulated(pixels: bytes, ts: str | None) -> bool:
    if ts:
        try:
            return bool(UID(ts).is_encapsulated)
        except ValueError:  # not a known transfer syntax
            pass
    return pixels[:4] == _ITEM_TAG_LE


def _unsigned_array(nbytes: int) -> array[int] | None:
    """An empty array of unsigned integers ``nbytes`` wide, if the platform has one."""
    for code in ("B", "H", "I", "L", "Q"):
        candidate = array(code)
        if candidate.itemsize == nbytes:
            return candidate
    return None


def _little_endian_pixels(ds: Dataset, pixels: bytes, bits: int, ts: str | None) -> bytes:
    big = ts == _BIG_ENDIAN_TS or (ts is None and ds.original_encoding[1] is False)
    if not big:
        return pixels
    width = bits // 8 if bits in (16, 32, 64) else 0
    if bits == 8 and str(ds["PixelData"].VR) == "OW":
        width = 2  # 8-bit samples packed in 16-bit big-endian words
    words = _unsigned_array(width) if width else None
    if words is None:
        return pixels
    usable = len(pixels) - len(pixels) % width
    words.frombytes(pixels[:usable])
    words.byteswap()
    return words.tobytes() + pixels[usable:]


def _min_max(frame: bytes, bits: int, stored: int, signed: bool) -> tuple[int, int] | None:
    samples = _unsigned_array(bits // 8) if bits in (8, 16, 32, 64) else None
    if samples is None:
        return None
    samples.frombytes(frame[: len(frame) - len(frame) % samples.itemsize])
    if not samples:
        return None
    stored = stored if 0 < stored <= bits else bits
    mask = (1 << stored) - 1
    sign = 1 << (stored - 1)
    values = set()
    for v in set(samples):
        v &= mask
        if signed and v & sign:
            v -= 1 << stored
        values.add(v)
    return min(values), max(values)


def _frame_entry(
    sop_uid: str,
    index: int,
    size: tuple[int, int],
    frame: bytes,
    frame_bytes: int,
    extremes: tuple[int, int] | None = None,
) -> dict[str, Any]:
    width, height = size
    entry: dict[str, Any] = {
        "ID": hashlib.md5(f"{sop_uid}/{index}".encode(), usedforsecurity=False).hexdigest(),
        "PixelDataChecksumFromBaseToFullResolution": [
            {"Width": width, "Height": height, "Checksum": zlib.crc32(frame)}
        ],
    }
    if extremes is not None:
        entry["MinPixelValue"], entry["MaxPixelValue"] = extremes
    entry["FrameSizeInBytes"] = frame_bytes
    return entry


def _pixel_geometry(ds: Dataset) -> tuple[int, int, int, int, int, bool, int]:
    """(rows, columns, samples per pixel, bits allocated, bits stored, signed, frames)."""
    rows = _int_attr(ds, "Rows")
    cols = _int_attr(ds, "Columns")
    if not rows or not cols:
        raise UnusableInstance("PixelData present but Rows/Columns missing or zero")
    spp = _int_attr(ds, "SamplesPerPixel", 1) or 1
    bits = _int_attr(ds, "BitsAllocated", 8) or 8
    stored = _int_attr(ds, "BitsStored", bits) or bits
    signed = _int_attr(ds, "PixelRepresentation", 0) == 1
    nframes = max(_int_attr(ds, "NumberOfFrames", 1) or 1, 1)
    return rows, cols, spp, bits, stored, signed, nframes


def _encapsulated_frames(ds: Dataset, pixels: bytes, nframes: int) -> list[bytes]:
    offsets: tuple[bytes, bytes] | None = None
    if _EXTENDED_OFFSETS in ds and _EXTENDED_LENGTHS in ds:
        offsets = (ds[_EXTENDED_OFFSETS].value, ds[_EXTENDED_LENGTHS].value)
    try:
        frames = list(generate_frames(pixels, number_of_frames=nframes, extended_offsets=offsets))
    except _DECODE_ERRORS as exc:
        raise UnusableInstance(
            f"encapsulated PixelData cannot be split into frames: {_one_line(exc)}"
        ) from exc
    if len(frames) == nframes:
        return frames
    if nframes == 1 and frames:
        return [b"".join(frames)]
    raise UnusableInstance(
        f"encapsulated PixelData holds {len(frames)} frames, NumberOfFrames is {nframes}"
    )


def _native_frame(pixels: bytes, index: int, frame_bits: int) -> bytes:
    """Frame ``index`` of little-endian native pixel data, starting at its bit 0."""
    start = index * frame_bits
    size = (frame_bits + 7) // 8
    if start % 8 == 0:
        return pixels[start // 8 : start // 8 + size]
    # 1-bit data whose frame starts inside a byte: shift it to bit 0 (LSB first)
    first, last = start // 8, (start + frame_bits + 7) // 8
    value = int.from_bytes(pixels[first:last], "little") >> (start % 8)
    return (value & ((1 << frame_bits) - 1)).to_bytes(size, "little")


def _native_extremes(
    frame: bytes, frame_bits: int, bits: int, stored: int, signed: bool
) -> tuple[int, int] | None:
    if bits == 1:
        value = int.from_bytes(frame, "little") & ((1 << frame_bits) - 1)
        return (1 if value == (1 << frame_bits) - 1 else 0), (1 if value else 0)
    try:
        return _min_max(frame, bits, stored, signed)
    except (ValueError, OverflowError):
        return None


def _image_frames(ds: Dataset, sop_uid: str) -> list[dict[str, Any]]:
    if _PIXEL_DATA not in ds:
        return []
    try:
        pixels = ds.PixelData
    except _DECODE_ERRORS as exc:
        raise UnusableInstance(f"PixelData cannot be read: {_one_line(exc)}") from exc
    if not isinstance(pixels, (bytes, bytearray)):
        raise UnusableInstance("PixelData has no value")
    pixels = bytes(pixels)
    rows, cols, spp, bits, stored, signed, nframes = _pixel_geometry(ds)
    ts = _transfer_syntax(ds)

    if _is_encapsulated(pixels, ts):
        decoded_size = (rows * cols * spp * bits + 7) // 8
        return [
            _frame_entry(sop_uid, i, (cols, rows), frame, decoded_size)
            for i, frame in enumerate(_encapsulated_frames(ds, pixels, nframes))
        ]

    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    samples = 2 if spp == 3 and photometric == "YBR_FULL_422" else spp
    frame_bits = rows * cols * samples * bits
    needed = (nframes * frame_bits + 7) // 8
    if len(pixels) < needed:
        raise UnusableInstance(
            f"truncated DICOM file: PixelData has {len(pixels)} bytes, "
            f"{nframes} frame(s) need {needed}"
        )
    pixels = _little_endian_pixels(ds, pixels, bits, ts)
    entries = []
    for i in range(nframes):
        frame = _native_frame(pixels, i, frame_bits)
        extremes = _native_extremes(frame, frame_bits, bits, stored, signed)
        entries.append(_frame_entry(sop_uid, i, (cols, rows), frame, len(frame), extremes))
    return entries


# -- documents ------------------------------------------------------------------------


def _uid(ds: Dataset, keyword: str) -> str:
    """The UID's value, "" when absent, empty, undecodable or multi-valued."""
    try:
        value = ds.get(keyword)
    except _DECODE_ERRORS:
        return ""
    if value is None or isinstance(value, (MultiValue, list)):
        return ""
    return str(value).strip("\x00 ")


def dataset_to_document(ds: Dataset) -> dict[str, Any]:
    """One instance as a complete one-instance metadata document (no IDs).

    Raises UnusableInstance (a ValueError) when a UID is missing or the pixel data is
    unusable.
    """
    uids = {kw: _uid(ds, kw) for kw in _UIDS}
    missing = [kw for kw, value in uids.items() if not value]
    if missing:
        raise UnusableInstance("missing " + ", ".join(missing))
    study_uid, series_uid, sop_uid = (uids[kw] for kw in _UIDS)

    encoder = _Encoder()
    levels: dict[Level, dict[str, Any]] = {level: {} for level in Level}
    meta = getattr(ds, "file_meta", None)
    sources = [meta, ds] if meta is not None else [ds]
    for source in sources:
        for key, value in encoder.elements(source):
            level = level_of(key) if source is ds else Level.INSTANCE
            levels[level][key] = value
    # The document's own UIDs are the stripped ones it is keyed by.
    levels[Level.STUDY]["StudyInstanceUID"] = study_uid
    levels[Level.SERIES]["SeriesInstanceUID"] = series_uid
    levels[Level.INSTANCE]["SOPInstanceUID"] = sop_uid

    instance: dict[str, Any] = {"DICOM": levels[Level.INSTANCE]}
    if encoder.vrs:
        instance["DICOMVRs"] = encoder.vrs
    instance["ImageFrames"] = _image_frames(ds, sop_uid)
    ts = _transfer_syntax(ds)
    if ts in _STORED_AS_IS and instance["ImageFrames"]:
        instance["StoredTransferSyntaxUID"] = ts
    return {
        "SchemaVersion": SCHEMA_VERSION,
        "Patient": {"DICOM": levels[Level.PATIENT]},
        "Study": {
            "DICOM": levels[Level.STUDY],
            "Series": {
                series_uid: {
                    "DICOM": levels[Level.SERIES],
                    "Instances": {sop_uid: instance},
                }
            },
        },
    }


def _merge_level(target: dict[str, Any], other: dict[str, Any], where: str) -> list[str]:
    """Add other's keys to target; on disagreement keep target's value and say so."""
    notes = []
    for key, value in other.items():
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif target[key] != value:
            notes.append(f"{where} {key}: kept {target[key]!r}, ignored {value!r}")
    return notes


def _merge(target: dict[str, Any], other: dict[str, Any]) -> list[str]:
    study_uid = target.get("Study", {}).get("DICOM", {}).get("StudyInstanceUID")
    other_uid = other.get("Study", {}).get("DICOM", {}).get("StudyInstanceUID")
    if study_uid is not None and other_uid is not None and study_uid != other_uid:
        raise ValueError(f"cannot merge study {other_uid} into study {study_uid}")
    notes: list[str] = []
    patient = target.setdefault("Patient", {}).setdefault("DICOM", {})
    notes += _merge_level(patient, other.get("Patient", {}).get("DICOM", {}), "Patient")
    study = target.setdefault("Study", {})
    notes += _merge_level(
        study.setdefault("DICOM", {}), other.get("Study", {}).get("DICOM", {}), "Study"
    )
    all_series = study.setdefault("Series", {})
    for series_uid, series in other.get("Study", {}).get("Series", {}).items():
        if series_uid not in all_series:
            all_series[series_uid] = copy.deepcopy(series)
            continue
        mine = all_series[series_uid]
        notes += _merge_level(
            mine.setdefault("DICOM", {}), series.get("DICOM", {}), f"Series {series_uid}"
        )
        instances = mine.setdefault("Instances", {})
        for sop_uid, instance in series.get("Instances", {}).items():
            if sop_uid in instances:
                if instances[sop_uid] != instance:
                    notes.append(f"Instance {sop_uid}: kept the existing instance")
            else:
                instances[sop_uid] = copy.deepcopy(instance)
    return notes


def merge_into(target: dict[str, Any], other: dict[str, Any]) -> None:
    """Add other's series and instances to target (same study).

    Patient, Study and Series values target already has win over other's; an instance
    target already has is kept as it is. Raises ValueError for a different study.
    """
    _merge(target, other)


# -- files ----------------------------------------------------------------------------


def _truncation(ds: Dataset, file_size: int) -> str | None:
    """Describe where the file ends in the middle of a top-level element, if it does."""
    tags = sorted(ds.keys())
    for tag in tags:
        elem = ds.get_item(tag, keep_deferred=True)
        if (
            isinstance(elem, RawDataElement)
            and elem.length != 0xFFFFFFFF
            and isinstance(elem.value, bytes)
            and len(elem.value) < elem.length
        ):
            return f"{Tag(tag)} has {len(elem.value)} of {elem.length} bytes"
    if not tags or (_transfer_syntax(ds) or "").endswith(".99"):  # deflated: offsets differ
        return None
    last = ds.get_item(tags[-1], keep_deferred=True)
    if isinstance(last, RawDataElement) and last.length != 0xFFFFFFFF:
        end = last.value_tell + last.length
        if 0 < file_size - end < 12:  # shorter than any element header
            return f"{file_size - end} bytes after {Tag(tags[-1])} are not an element"
    return None


def _read_one(path: Path) -> tuple[dict[str, Any], ImportedFile] | FailedFile:
    name = str(path)
    try:
        info = path.stat()
    except OSError as exc:
        return FailedFile(name, f"unreadable: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return FailedFile(name, "not a regular file")
    try:
        with path.open("rb") as fp:
            try:
                ds = pydicom.dcmread(fp, force=False)
            except InvalidDicomError:
                return FailedFile(name, "not a DICOM Part 10 file")
            except (OSError, EOFError) as exc:  # pydicom: "No tag to read at ..."
                return FailedFile(name, f"truncated or corrupt DICOM file: {_one_line(exc)}")
    except OSError as exc:
        return FailedFile(name, f"unreadable: {exc.strerror or exc}")
    except _DECODE_ERRORS as exc:
        return FailedFile(name, f"invalid DICOM file: {_one_line(exc)}")
    try:
        cut = _truncation(ds, info.st_size)
        if cut is not None:
            return FailedFile(name, f"truncated DICOM file: {cut}")
        doc = dataset_to_document(ds)
    except UnusableInstance as exc:
        return FailedFile(name, str(exc))
    except _DECODE_ERRORS as exc:
        return FailedFile(name, f"invalid DICOM file: {_one_line(exc)}")
    study = doc["Study"]
    series_uid, series = next(iter(study["Series"].items()))
    sop_uid = next(iter(series["Instances"]))
    return doc, ImportedFile(name, study["DICOM"]["StudyInstanceUID"], series_uid, sop_uid)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _safe_read_one(path: Path) -> tuple[dict[str, Any], ImportedFile] | FailedFile:
    try:
        return _read_one(path)
    # Per-file boundary: one bad file must never abort a whole import job, so anything
    # not anticipated above is recorded as that file's failure reason, not swallowed.
    except Exception as exc:  # noqa: BLE001
        return FailedFile(str(path), f"unexpected error: {type(exc).__name__}: {_one_line(exc)}")


@contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """pydicom warns (and logs) about every oddity of a file; an import records its own
    per-file reasons instead, so those warnings would only be noise on the console."""
    pydicom_log = logging.getLogger("pydicom")
    level = pydicom_log.level
    pydicom_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pydicom_log.setLevel(level)


def _batch(paths: Iterable[Path], failed: list[FailedFile]) -> ImportBatch:
    with _quiet_pydicom():
        return _batch_quietly(paths, failed)


def _batch_quietly(paths: Iterable[Path], failed: list[FailedFile]) -> ImportBatch:
    batch = ImportBatch(documents={}, imported=[], failed=failed)
    seen: dict[str, str] = {}  # SOPInstanceUID -> path of the file that provided it
    for path in sorted(paths):
        result = _safe_read_one(path)
        if isinstance(result, FailedFile):
            batch.failed.append(result)
            continue
        doc, imported = result
        if imported.sop_uid in seen:
            batch.failed.append(
                FailedFile(
                    imported.path,
                    f"duplicate SOPInstanceUID {imported.sop_uid} "
                    f"(already imported from {seen[imported.sop_uid]})",
                )
            )
            continue
        seen[imported.sop_uid] = imported.path
        existing = batch.documents.get(imported.study_uid)
        if existing is None:
            batch.documents[imported.study_uid] = doc
        else:
            notes = _merge(existing, doc)
            batch.conflicts += [f"{imported.path}: {note}" for note in notes]
        batch.imported.append(imported)
    batch.failed.sort(key=lambda f: f.path)
    return batch


def read_files(paths: Iterable[Path]) -> ImportBatch:
    """Read ``paths`` (in sorted order) into one document per study; never raises per file."""
    return _batch([Path(p) for p in paths], [])


def read_folder(root: Path) -> ImportBatch:
    """Read every file below ``root`` (recursively, sorted); non-DICOM files are FailedFiles.

    Directory symlinks are not followed (each is reported as a FailedFile); a directory
    that cannot be listed is reported too. ``root`` itself must exist.
    """
    root = Path(root)
    if root.is_file():
        return read_files([root])
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    files: list[Path] = []
    failed: list[FailedFile] = []

    def on_error(exc: OSError) -> None:
        failed.append(FailedFile(str(exc.filename or root), f"unreadable folder: {exc.strerror}"))

    for folder, dirs, names in os.walk(root, onerror=on_error, followlinks=False):
        dirs.sort()
        base = Path(folder)
        for sub in list(dirs):
            if (base / sub).is_symlink():
                dirs.remove(sub)
                failed.append(FailedFile(str(base / sub), "directory symlink not followed"))
        files.extend(base / n for n in names)
    return _batch(files, failed)


@cache
def _sample_files() -> tuple[Path, ...]:
    module_file = pydicom.data.__file__
    if module_file is None:
        return ()
    folder = Path(module_file).parent / "test_files"
    chosen = []
    for path in sorted(folder.glob("*.dcm")):
        try:
            ds = pydicom.dcmread(path, force=False)
        except (InvalidDicomError, *_DECODE_ERRORS, OSError):
            continue
        if all(_uid(ds, kw) for kw in _UIDS):
            chosen.append(path)
    return tuple(chosen)


def sample_files() -> list[Path]:
    """pydicom's bundled ``test_files/*.dcm`` that carry all three UIDs, sorted.

    Lists the installed folder directly (``pydicom.data.get_testdata_files`` may try the
    network).
    """
    with _quiet_pydicom():
        return list(_sample_files())
