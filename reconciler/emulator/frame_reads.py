"""GetImageFrame: the pixel data an import kept, served as the service serves it.

An import keeps every frame's pixel data (``frames`` table, keyed by the frame ID the
metadata lists; copies share it). Native frames are answered as lossless HTJ2K in the
JPH file format, ``image/jph`` (:mod:`.htj2k`, which needs the optional codec);
frames stored in a syntax the service keeps as is are answered in it, with the
content type the API reference gives for it. The service transcodes every other
compressed syntax to HTJ2K; the local one does not decode them, and says so.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from typing import Any

from reconciler.emulator import htj2k
from reconciler.emulator.datastores import lossless_format
from reconciler.emulator.exceptions import ResourceNotFoundException, ValidationException
from reconciler.emulator.imagesets import ImageSets, Params, Result
from reconciler.emulator.stored_frames import EXPLICIT_VR_LITTLE_ENDIAN, StoredFrame

# Stored transfer syntax → the contentType GetImageFrame answers with (API reference).
STORED_CONTENT_TYPES = {
    EXPLICIT_VR_LITTLE_ENDIAN: "application/octet-stream",  # 1-bit frames, kept as they are
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.91": "image/j2c",
    "1.2.840.10008.1.2.4.201": "image/jph",
    "1.2.840.10008.1.2.4.202": "image/jph",
    "1.2.840.10008.1.2.4.203": "image/jphc",
}


def store_frames(conn: sqlite3.Connection, frames: Iterable[StoredFrame]) -> None:
    """Keep the pixel data of ``frames`` (a frame ID already kept is left as it is)."""
    conn.executemany(
        "INSERT OR IGNORE INTO frames (id, geometry, data) VALUES (?, ?, ?)",
        [
            (frame.id, json.dumps({k: v for k, v in asdict(frame).items() if k != "data"}),
             frame.data)
            for frame in frames
        ],
    )  # fmt: skip


def _frame_ids(doc: dict[str, Any]) -> Iterator[str]:
    for series in doc.get("Study", {}).get("Series", {}).values():
        for instance in series.get("Instances", {}).values():
            for frame in instance.get("ImageFrames") or []:
                if isinstance(frame, dict) and isinstance(frame.get("ID"), str):
                    yield frame["ID"]


class FrameReads(ImageSets):
    def get_image_frame(self, p: Params) -> Result:
        frame_id = p["imageFrameInformation"]["imageFrameId"]
        with self.reading() as conn:
            row = self.live_row(conn, p["datastoreId"], p["imageSetId"])
            doc = self.document(conn, row["id"], row["settled_version"])
            if frame_id not in set(_frame_ids(doc)):
                raise ResourceNotFoundException(
                    f"Image frame {frame_id} not found in image set {row['id']}"
                )
            kept = conn.execute(
                "SELECT geometry, data FROM frames WHERE id=?", (frame_id,)
            ).fetchone()
            storage_format = lossless_format(conn, row["datastore_id"])
        self.touch_read(row["id"], row["last_accessed_at"])
        if kept is None:
            raise ResourceNotFoundException(
                f"Image frame {frame_id}: its pixel data was not kept (imported by an older "
                "version of the local HealthImaging); import the files again"
            )
        frame = StoredFrame(**json.loads(kept["geometry"]), data=bytes(kept["data"]))
        if frame.transfer_syntax is not None:
            content_type = STORED_CONTENT_TYPES.get(frame.transfer_syntax)
            if content_type is None:
                raise ValidationException(
                    f"Image frame {frame_id} is stored as {frame.transfer_syntax}, which the "
                    "service transcodes to HTJ2K; the local HealthImaging does not"
                )
            return {"imageFrameBlob": frame.data, "contentType": content_type}
        if not htj2k.available():
            raise ValidationException(
                "GetImageFrame needs the optional HTJ2K codec on the local HealthImaging: "
                + htj2k.INSTALL_HINT
            )
        j2k = storage_format == "JPEG_2000_LOSSLESS"  # the data store's lossless format
        try:
            blob = htj2k.encode_j2k(frame) if j2k else htj2k.encode(frame)
        except htj2k.NotEncodable as reason:
            raise ValidationException(
                f"Image frame {frame_id}: the local HealthImaging cannot encode {reason} as "
                + ("JPEG 2000" if j2k else "HTJ2K")
            ) from None
        content_type = htj2k.J2K_CONTENT_TYPE if j2k else htj2k.CONTENT_TYPE
        return {"imageFrameBlob": blob, "contentType": content_type}
