"""An instance rebuilt as a DICOM Part 10 file, as GetDICOMInstance answers it.

The data set is the instance's Patient, Study, Series and Instance attributes of the
image set's version (elements.py), so an update made through UpdateImageSetMetadata
is in the file; the pixel data is the frames the import kept (``frames`` table):
native frames, kept little-endian, as Explicit VR Little Endian ``PixelData``;
encapsulated ones as they arrived, in their own transfer syntax. The file meta group
is written afresh for the transfer syntax served.

Values pydicom cannot hold as their VR says (a DS that is not a number, which the
document keeps as the file had it) are written as the document holds them, not
dropped: as raw element bytes.
"""

from __future__ import annotations

import base64
from io import BytesIO
from typing import Any

import pydicom
from pydicom import config
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID

from reconciler.emulator.dicom_import import StoredFrame
from reconciler.emulator.dicomweb.elements import BINARY_VRS, PIXEL_DATA, Element

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
_META_GROUP_END = 0x00030000


def _values(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _pydicom_value(element: Element) -> Any:
    value, vr = element.value, element.vr
    if vr == "SQ":
        return Sequence([dataset(item) for item in element.items()])
    if value is None:
        return None
    if vr in BINARY_VRS:
        return base64.b64decode(value) if isinstance(value, str) else b""
    if vr == "AT":
        return [int(str(v), 16) for v in _values(value)]
    if vr in ("FL", "FD"):
        return [float(v) for v in _values(value)]
    return value


def _raw(element: Element) -> RawDataElement:
    """The element as the bytes the document's strings spell (see the module's note)."""
    text = "\\".join("" if v is None else str(v) for v in _values(element.value))
    data = text.encode("utf-8")
    data += b" " * (len(data) % 2)
    return RawDataElement(
        Tag(element.tag), element.vr, len(data), data, 0, False, True, True, False
    )


def dataset(found: list[Element]) -> Dataset:
    """Elements as a pydicom data set (file meta and pixel data left out)."""
    ds = Dataset()
    for element in found:
        if element.tag < _META_GROUP_END or element.tag == PIXEL_DATA:
            continue
        try:
            value = _pydicom_value(element)
            ds.add(DataElement(element.tag, element.vr, value, validation_mode=config.IGNORE))
        except (ValueError, TypeError, OverflowError):
            ds[element.tag] = _raw(element)
    return ds


def _native_pixels(frames: list[StoredFrame]) -> bytes:
    first = frames[0]
    if first.bits_allocated != 1:
        return b"".join(frame.data for frame in frames)
    # 1-bit frames are kept each from bit 0; in PixelData they follow bit after bit.
    frame_bits = first.rows * first.columns * first.samples
    packed = 0
    for index, frame in enumerate(frames):
        bits = int.from_bytes(frame.data, "little") & ((1 << frame_bits) - 1)
        packed |= bits << (index * frame_bits)
    return packed.to_bytes((frame_bits * len(frames) + 7) // 8, "little")


def part10(found: list[Element], frames: list[StoredFrame], transfer_syntax: str) -> bytes:
    """The Part 10 file of an instance served in ``transfer_syntax`` (Explicit VR Little
    Endian, or the syntax its encapsulated frames are kept in)."""
    ds = dataset(found)
    if frames and frames[0].transfer_syntax is None:
        pixels = _native_pixels(frames)
        pixels += b"\0" * (len(pixels) % 2)
        vr = "OW" if frames[0].bits_allocated > 8 else "OB"
        ds.add(DataElement(PIXEL_DATA, vr, pixels))
    elif frames:
        ds.add(DataElement(PIXEL_DATA, "OB", encapsulate([frame.data for frame in frames])))
        ds[PIXEL_DATA].is_undefined_length = True
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", "")
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "")
    meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.file_meta = meta
    out = BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()
