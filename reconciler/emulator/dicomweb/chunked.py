"""Request bodies sent with ``Transfer-Encoding: chunked`` (RFC 9112 §7.1).

dicomweb-client sends a STOW-RS body larger than its chunk size (1 MB by default) this
way, without a Content-Length. The body is read whole, up to ``limit`` bytes; chunk
extensions and trailer fields are read and dropped.
"""

from __future__ import annotations

from typing import Protocol

from reconciler.emulator.dicomweb.errors import PayloadTooLargeException
from reconciler.emulator.exceptions import ValidationException

_MAX_LINE = 4096  # a chunk-size line or a trailer field


class Stream(Protocol):
    def readline(self, size: int | None = -1, /) -> bytes: ...
    def read(self, size: int | None = -1, /) -> bytes: ...


def is_chunked(transfer_encoding: str | None) -> bool:
    codings = [part.strip().lower() for part in (transfer_encoding or "").split(",")]
    return bool(codings) and codings[-1] == "chunked"


def _line(stream: Stream) -> bytes:
    line = stream.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE or not line.endswith(b"\n"):
        raise ValidationException("malformed chunked request body: a line is cut or too long")
    return line.rstrip(b"\r\n")


def read_chunked(stream: Stream, limit: int) -> bytes:
    """The decoded body; ValidationException when malformed, 413 past ``limit`` bytes."""
    body = bytearray()
    while True:
        size_text = _line(stream).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ValidationException(
                f"malformed chunked request body: chunk size {size_text[:20].decode('latin-1')!r}"
            ) from None
        if size < 0:
            raise ValidationException("malformed chunked request body: negative chunk size")
        if size == 0:
            break
        if len(body) + size > limit:
            raise PayloadTooLargeException(
                f"the request body has more than {limit} bytes; at most {limit} are accepted"
            )
        data = stream.read(size)
        if len(data) < size or _line(stream) != b"":
            raise ValidationException("malformed chunked request body: a chunk is cut short")
        body += data
    while _line(stream):  # trailer fields, up to the empty line
        pass
    return bytes(body)
