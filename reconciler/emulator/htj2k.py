"""Native pixel data → an HTJ2K image in the JPH file format, as GetImageFrame serves it.

HealthImaging stores frames as HTJ2K and GetImageFrame answers ``image/jph``: the
codestream in JPH boxes (ISO/IEC 15444-15 Annex D, the JP2 box layout), which is why
AWS's Python example decodes the answer with OpenJPEG's JP2 reader. Encoding HTJ2K
needs a codec: ``imagecodecs`` (its ``htj2k_encode`` wraps OpenJPH), installed with
the optional extra ``healthimaging-reconciler[frames]``. Without it :func:`available` is False and
GetImageFrame says so in one line.
"""

from __future__ import annotations

import importlib.util
import struct
from typing import Any

from reconciler.emulator.stored_frames import StoredFrame

INSTALL_HINT = "pip install 'healthimaging-reconciler[frames]'"
CONTENT_TYPE = "image/jph"


def available() -> bool:
    """Whether the optional HTJ2K codec is installed."""
    return importlib.util.find_spec("imagecodecs") is not None


class NotEncodable(ValueError):
    """A frame the local HealthImaging cannot turn into HTJ2K (the reason, one line)."""


def _pixels(frame: StoredFrame) -> Any:
    import numpy as np

    if frame.bits_allocated not in (8, 16, 32) or frame.samples not in (1, 3):
        raise NotEncodable(
            f"{frame.bits_allocated}-bit data with {frame.samples} samples per pixel"
        )
    if frame.photometric == "YBR_FULL_422":
        raise NotEncodable("YBR_FULL_422 pixel data")
    kind = "i" if frame.signed else "u"
    dtype = np.dtype(f"<{kind}{frame.bits_allocated // 8}")
    count = frame.rows * frame.columns * frame.samples
    values = np.frombuffer(frame.data, dtype=dtype, count=count)
    if frame.samples == 1:
        return values.reshape(frame.rows, frame.columns)
    if frame.planar == 1:
        return values.reshape(3, frame.rows, frame.columns).transpose(1, 2, 0).copy()
    return values.reshape(frame.rows, frame.columns, 3)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def jph_file(codestream: bytes, frame: StoredFrame) -> bytes:
    """The codestream in the JPH file format's boxes (signature, ftyp, header, jp2c)."""
    depth = (frame.bits_allocated - 1) | (0x80 if frame.signed else 0)
    header = _box(
        b"ihdr", struct.pack(">IIHBBBB", frame.rows, frame.columns, frame.samples, depth, 7, 0, 0)
    )
    colour = _box(b"colr", struct.pack(">BBBI", 1, 0, 0, 16 if frame.samples == 3 else 17))
    return (
        _box(b"jP  ", b"\r\n\x87\n")
        + _box(b"ftyp", b"jph " + struct.pack(">I", 0) + b"jph ")
        + _box(b"jp2h", header + colour)
        + _box(b"jp2c", codestream)
    )


def encode(frame: StoredFrame) -> bytes:
    """A native frame as a lossless HTJ2K JPH file (needs :func:`available`)."""
    import imagecodecs

    codestream = imagecodecs.htj2k_encode(_pixels(frame), reversible=True)
    return jph_file(bytes(codestream), frame)


J2K_CONTENT_TYPE = "image/j2c"


def encode_j2k(frame: StoredFrame) -> bytes:
    """A native frame as a lossless JPEG 2000 codestream (a JPEG_2000_LOSSLESS data
    store's format; needs :func:`available`). OpenJPEG is lossless up to 16 bits."""
    import imagecodecs

    if frame.bits_allocated > 16:
        raise NotEncodable(f"{frame.bits_allocated}-bit data as lossless JPEG 2000")
    return bytes(imagecodecs.jpeg2k_encode(_pixels(frame), codecformat="j2k", reversible=True))
