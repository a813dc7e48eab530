"""Compressed frames the service transcodes at import, decoded to native pixels.

HealthImaging keeps a few compressed transfer syntaxes as they are (JPEG baseline,
JPEG 2000, HTJ2K, video) and transcodes the others to its lossless storage format
(developer guide, "Supported transfer syntaxes"). The local one decodes such a frame
at import with the optional codec (``imagecodecs``, ``healthimaging-reconciler[frames]``), so the
frame is kept as native little-endian pixels: its checksum and minimum/maximum are
those of the decoded pixels, as the service computes them, and GetImageFrame encodes
it as the data store's format. Without the codec (or for a syntax it cannot decode)
:func:`decode` answers None and the frame is kept as it came.
"""

from __future__ import annotations

import importlib.util
from typing import Any

# Transfer syntax → the imagecodecs decoder of its frames.
_DECODERS = {
    "1.2.840.10008.1.2.4.51": "jpeg8_decode",  # JPEG Extended (Process 2 & 4), 8/12-bit
    "1.2.840.10008.1.2.4.57": "ljpeg_decode",  # JPEG Lossless (Process 14)
    "1.2.840.10008.1.2.4.70": "ljpeg_decode",  # JPEG Lossless, first-order prediction
    "1.2.840.10008.1.2.4.80": "jpegls_decode",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": "jpegls_decode",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": "jpeg2k_decode",  # JPEG 2000 (lossless only)
}


def transcoded(syntax: str | None) -> bool:
    """Whether the service transcodes frames of ``syntax`` (and this module decodes them)."""
    return syntax in _DECODERS


def decode(frame: bytes, syntax: str, *, bits: int, signed: bool) -> bytes | None:
    """The frame's pixels, native little-endian and interleaved, or None when the codec
    is missing or the frame does not decode to ``bits``-bit samples."""
    if importlib.util.find_spec("imagecodecs") is None:
        return None
    import imagecodecs
    import numpy as np

    decoder: Any = getattr(imagecodecs, _DECODERS[syntax])
    try:
        pixels = np.asarray(decoder(frame))
    except (RuntimeError, ValueError):  # the codec's errors: the frame is kept as it came
        return None
    if pixels.dtype.itemsize * 8 != bits and not (bits == 16 and pixels.dtype.itemsize == 1):
        return None
    kind = "i" if signed else "u"
    target = np.dtype(f"<{kind}{bits // 8}")
    return bytes(pixels.astype(target, copy=False).tobytes())
