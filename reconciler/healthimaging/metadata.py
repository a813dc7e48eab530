"""Reading a GetImageSetMetadata body: gunzip (boto3 does not), with a size bound.

The service stores at most 50 MB of metadata per image set; a body that inflates past
:data:`MAX_METADATA_BYTES` is refused instead of being allowed to take all memory
(a gzip stream can inflate a thousandfold).
"""

from __future__ import annotations

import zlib
from typing import Any, Protocol

from reconciler import jsonsafe

MAX_METADATA_BYTES = 64 * 1024 * 1024
_CHUNK = 256 * 1024


class Readable(Protocol):
    def read(self, amt: int | None = ...) -> bytes: ...


class MetadataTooLarge(ValueError):
    pass


def read_body(body: Readable, *, gzipped: bool, limit: int = MAX_METADATA_BYTES) -> bytes:
    """The JSON bytes of ``body``; raises ``zlib.error``/``EOFError`` for bad gzip."""
    out = bytearray()
    # wbits 16 + MAX_WBITS: a gzip header and trailer around the deflate stream.
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    while True:
        chunk = body.read(_CHUNK)
        if not chunk:
            break
        if inflater is None:
            out += chunk
        else:
            pending = chunk
            while pending:
                # max_length: never inflate more than one byte past the limit at a time.
                out += inflater.decompress(pending, limit + 1 - len(out))
                if len(out) > limit:
                    break
                pending = inflater.unconsumed_tail
        if len(out) > limit:
            raise MetadataTooLarge(f"the metadata is larger than {limit // (1024 * 1024)} MiB")
    if inflater is not None:
        out += inflater.flush()
        if not inflater.eof:
            raise EOFError("the gzip stream ends early")
    return bytes(out)


def parse(raw: bytes) -> dict[str, Any]:
    """The metadata document; raises ``ValueError`` when it is not a JSON object."""
    document = jsonsafe.loads(raw)
    if not isinstance(document, dict):
        raise ValueError("the metadata is not a JSON object")
    return document
