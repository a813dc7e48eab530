"""Media types: parsing ``Accept`` and ``Content-Type`` values, and multipart/related
bodies (RFC 2387) both ways.

DICOMweb names what a client wants as ``type/subtype; param=value`` lists:
``multipart/related; type="application/octet-stream"; transfer-syntax=*`` (PS3.18
§8.7). Quoted and bare parameter values are the same (AHI's own examples leave
``type`` unquoted, dicomweb-client quotes it); ``q`` orders the choices.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from reconciler.emulator.exceptions import ValidationException

MULTIPART = "multipart/related"


@dataclass(frozen=True)
class MediaType:
    """One media type or range: ``essence`` is lower-case ``type/subtype``."""

    essence: str
    params: dict[str, str] = field(default_factory=dict)
    quality: float = 1.0

    @property
    def inner(self) -> MediaType | None:
        """For ``multipart/related; type=X``: X with this range's other parameters
        (``transfer-syntax`` belongs to the parts); None otherwise."""
        if self.essence != MULTIPART or "type" not in self.params:
            return None
        params = {k: v for k, v in self.params.items() if k not in ("type", "boundary")}
        return MediaType(self.params["type"].lower(), params, self.quality)

    def covers(self, essence: str) -> bool:
        """Whether this range admits ``essence`` (``*/*``, ``image/*`` or equal)."""
        if self.essence in ("*/*", essence):
            return True
        return self.essence.endswith("/*") and essence.startswith(self.essence[:-1])


def _split(text: str, separator: str) -> list[str]:
    """``text`` cut at ``separator`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def parse(text: str) -> MediaType:
    """One ``type/subtype; k=v`` value; ValidationException when it is not one."""
    essence, *pairs = _split(text, ";") or [""]
    if essence.count("/") != 1:
        raise ValidationException(f"{text[:100]!r} is not a media type")
    params: dict[str, str] = {}
    quality = 1.0
    for pair in pairs:
        key, _, value = pair.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"')
        if key == "q":
            try:
                quality = float(value)
            except ValueError:
                raise ValidationException(f"q={value[:20]!r} is not a number") from None
        else:
            params[key] = value
    return MediaType(essence.strip().lower(), params, quality)


def accepted(header: str | None) -> list[MediaType]:
    """The ranges of an Accept header, most wanted first; ``*/*`` when there is none."""
    if not header or not header.strip():
        return [MediaType("*/*")]
    ranges = [parse(item) for item in _split(header, ",")]
    return sorted((r for r in ranges if r.quality > 0), key=lambda r: -r.quality)


def encode_multipart(parts: list[tuple[str, bytes]], inner_type: str) -> tuple[str, bytes]:
    """``parts`` (content type, content) as one multipart/related body; returns the
    body's Content-Type and the body."""
    boundary = uuid.uuid4().hex
    chunks: list[bytes] = []
    for content_type, content in parts:
        head = f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n"
        chunks += [head.encode(), content, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return f'{MULTIPART}; type="{inner_type}"; boundary={boundary}', b"".join(chunks)


def decode_multipart(body: bytes, boundary: str) -> list[tuple[MediaType | None, bytes]]:
    """The parts of a multipart body: each part's Content-Type (None if it has none)
    and content. ValidationException when the body is not one."""
    marker = b"--" + boundary.encode("latin-1")
    if body.startswith(marker):
        position = len(marker)
    else:
        found = body.find(b"\r\n" + marker)
        if found < 0:
            raise ValidationException("the multipart body has no part (boundary not found)")
        position = found + 2 + len(marker)
    parts: list[tuple[MediaType | None, bytes]] = []
    while not body.startswith(b"--", position):
        line_end = body.find(b"\r\n", position)
        head_end = body.find(b"\r\n\r\n", line_end)
        end = body.find(b"\r\n" + marker, head_end)
        if line_end < 0 or head_end < 0 or end < 0:
            raise ValidationException("the multipart body is cut short (no closing boundary)")
        content_type = None
        for line in body[line_end + 2 : head_end].split(b"\r\n"):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-type":
                content_type = parse(value)
        parts.append((content_type, body[head_end + 4 : end]))
        position = end + 2 + len(marker)
    return parts
