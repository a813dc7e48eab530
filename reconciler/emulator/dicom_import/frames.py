"""The ``ImageFrames`` of an instance: frame IDs, checksums, min/max pixel values.

ImageFrames
    One entry per frame:
    - ``ID``: md5 of ``"<SOPInstanceUID>/<frame index>"`` (32 lower-case hex), so the
      same file always gives the same IDs.
    - ``PixelDataChecksumFromBaseToFullResolution``: only the full-resolution entry
      ``{Width: Columns, Height: Rows, Checksum: zlib.crc32(frame)}``. For native
      (uncompressed) pixel data the frame is its slice of PixelData, in little-endian
      byte order (a big-endian file gives the same checksum as its little-endian twin;
      1-bit frames that do not start on a byte boundary are re-aligned to bit 0; planar
      colour, PlanarConfiguration 1, is checksummed pixel by pixel, as decoded). For
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
"""

from __future__ import annotations

import hashlib
import zlib
from array import array
from typing import Any

from pydicom import datadict
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.multival import MultiValue
from pydicom.uid import UID

from reconciler.emulator.dicom_import import transcode
from reconciler.emulator.dicom_import.errors import _DECODE_ERRORS, UnusableInstance, _one_line
from reconciler.emulator.dicom_import.values import _PIXEL_DATA, _number_string
from reconciler.emulator.stored_frames import EXPLICIT_VR_LITTLE_ENDIAN, StoredFrame

_EXTENDED_OFFSETS = 0x7FE00001
_EXTENDED_LENGTHS = 0x7FE00002
_BIG_ENDIAN_TS = "1.2.840.10008.1.2.2"
_ITEM_TAG_LE = b"\xfe\xff\x00\xe0"


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


def _interleaved(frame: bytes, bits: int) -> bytes:
    """A planar (PlanarConfiguration 1) three-sample frame as decoders give it: pixel by
    pixel, R G B. The service checksums decoded pixels, so the checksum is over these."""
    width = max(bits // 8, 1)
    plane = len(frame) // 3
    out = bytearray(plane * 3)
    for sample in range(3):
        for byte in range(width):
            start = sample * plane + byte
            out[sample * width + byte :: 3 * width] = frame[start : start + plane : width]
    return bytes(out)


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


def _image_frames(
    ds: Dataset, sop_uid: str, sink: list[StoredFrame] | None = None
) -> list[dict[str, Any]]:
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

    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    planar = _int_attr(ds, "PlanarConfiguration", 0) or 0

    def keep(
        entry: dict[str, Any], frame: bytes, syntax: str | None, **kept: Any
    ) -> dict[str, Any]:
        if sink is not None:
            geometry = {"photometric": photometric, "planar": planar, **kept}
            sink.append(
                StoredFrame(
                    id=entry["ID"],
                    rows=rows,
                    columns=cols,
                    samples=spp,
                    bits_allocated=bits,
                    signed=signed,
                    transfer_syntax=syntax,
                    data=frame,
                    **geometry,
                )
            )
        return entry

    if _is_encapsulated(pixels, ts):
        decoded_size = (rows * cols * spp * bits + 7) // 8
        entries = []
        for i, frame in enumerate(_encapsulated_frames(ds, pixels, nframes)):
            native = None
            if ts is not None and transcode.transcoded(ts):
                native = transcode.decode(frame, ts, bits=bits, signed=signed)
            if native is None:  # kept as it came (or the codec is missing)
                entry = _frame_entry(sop_uid, i, (cols, rows), frame, decoded_size)
                entries.append(keep(entry, frame, ts or ""))
                continue
            # Transcoded as the service does: a native frame, decoders give it interleaved.
            extremes = _native_extremes(native, len(native) * 8, bits, stored, signed)
            entry = _frame_entry(sop_uid, i, (cols, rows), native, decoded_size, extremes)
            entries.append(
                keep(entry, native, None, photometric="RGB" if spp == 3 else photometric, planar=0)
            )
        return entries

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
        decoded = _interleaved(frame, bits) if samples == 3 and planar == 1 else frame
        entry = _frame_entry(sop_uid, i, (cols, rows), decoded, len(frame), extremes)
        # 1-bit frames (binary segmentations) are kept as Explicit VR Little Endian.
        entries.append(keep(entry, frame, EXPLICIT_VR_LITTLE_ENDIAN if bits == 1 else None))
    return entries
