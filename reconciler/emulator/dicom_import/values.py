"""Element -> JSON value encoding (keys, values, DICOMVRs) of a metadata document.

Keys
    Standard elements by pydicom keyword. Private elements (odd group) and public
    elements without a keyword are 8 upper-case hex digits, with their VR in the
    instance's ``DICOMVRs`` (private creators included, as in the reference; ``{}``
    on an instance without any, as the service writes it). ``DICOMVRs`` is flat:
    private elements nested in sequence items are listed there too (first VR seen
    wins), which is how AWS's own samples read it.
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
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from functools import cache
from typing import Any

from pydicom import datadict
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.valuerep import PersonName

from reconciler.emulator.dicom_import.errors import _DECODE_ERRORS

_PIXEL_DATA = 0x7FE00010
_NULL_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, _PIXEL_DATA})  # Float/DoubleFloat/Pixel

_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "OW or OB"})
_INT_VRS = frozenset({"US", "UL", "SS", "SL", "UV", "SV", "US or SS", "US or OW", "US or SS or OW"})
_FLOAT_VRS = frozenset({"FL", "FD"})
_NUMBER_STRING_VRS = frozenset({"IS", "DS"})


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
