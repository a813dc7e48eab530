"""Reading a manifest file safely: size, binary, encoding, then YAML.

Files come from pull requests, so they are read as bytes first and refused with a
located message when they are over :data:`MAX_FILE_BYTES`, binary, UTF-16/32 or not
UTF-8; an empty file is a warning.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.manifest import codes
from reconciler.manifest.model import Location, Problem, error, warning
from reconciler.manifest.yamlsafe import Document, load_text

MAX_FILE_BYTES = 1024 * 1024


def read_text(path: Path, file: str) -> tuple[str | None, list[Problem]]:
    """The text of ``path`` if it is a readable UTF-8 text file of at most 1 MiB."""
    at_file = Location(file, 1, 1)
    if path.exists() and not path.is_file():
        # A folder, a FIFO or a device: opening a FIFO would wait forever.
        return None, [error(Location(file), "not a regular file", codes.FILE_UNREADABLE)]
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None, [error(Location(file), "no such file or directory", codes.FILE_MISSING)]
    except OSError as failure:
        reason = failure.strerror or type(failure).__name__
        return None, [error(Location(file), f"cannot read: {reason}", codes.FILE_UNREADABLE)]
    if len(data) > MAX_FILE_BYTES:
        size = path.stat().st_size
        return None, [
            error(
                at_file,
                f"the file has {size:,} bytes; manifest files are limited to 1 MiB "
                f"({MAX_FILE_BYTES:,} bytes): split it into several files (a folder of files "
                "is read as one tree)",
                codes.FILE_TOO_LARGE,
            )
        ]
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None, [
            error(
                at_file,
                "the file is UTF-16 or UTF-32 encoded; save it as UTF-8",
                codes.FILE_BINARY,
            )
        ]
    nul = data.find(b"\x00")
    if nul >= 0:
        return None, [
            error(
                at_file,
                f"this is a binary file (a NUL byte at offset {nul}), not YAML text; "
                "keep only manifests in the manifest tree",
                codes.FILE_BINARY,
            )
        ]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as failure:
        line = data.count(b"\n", 0, failure.start) + 1
        column = failure.start - (data.rfind(b"\n", 0, failure.start) + 1) + 1
        return None, [
            error(
                Location(file, line, column),
                f"invalid UTF-8 (byte 0x{data[failure.start]:02X}); save the file as UTF-8",
                codes.FILE_ENCODING,
            )
        ]
    return text.removeprefix("\ufeff"), []


def load_file(path: Path, file: str) -> tuple[list[Document], list[Problem]]:
    """:func:`read_text` then :func:`load_text`; a file with no document is a warning."""
    text, problems = read_text(path, file)
    if text is None:
        return [], problems
    documents, problems = load_text(text, file)
    if not documents and not problems:
        problems.append(
            warning(
                Location(file, 1, 1),
                "the file is empty (no YAML document); add a manifest or delete the file",
                codes.FILE_EMPTY,
            )
        )
    return documents, problems
