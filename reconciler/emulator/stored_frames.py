"""The pixel data an import keeps per frame, as GetImageFrame reads it back.

Apart from the import code (``dicom_import``, which needs pydicom) so that serving
frames, and starting the local HealthImaging at all, does not import pydicom.
"""

from __future__ import annotations

from dataclasses import dataclass

# Frames an import keeps as they are (1-bit segmentations): the service answers them
# as application/octet-stream in this syntax.
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


@dataclass(frozen=True)
class StoredFrame:
    """One frame's pixel data as an import keeps it for GetImageFrame: native frames in
    little-endian order, encapsulated ones as their bytestream."""

    id: str
    rows: int
    columns: int
    samples: int
    bits_allocated: int
    signed: bool
    photometric: str
    planar: int
    transfer_syntax: str | None  # None: native (uncompressed) pixel data
    data: bytes
