"""A table row's cells: how a line splits into them, where each starts, and what a
``{Column}`` placeholder filled with one becomes."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from typing import Any

from reconciler.dicom.dictionary import lookup
from reconciler.dicom.vr import FLOAT_VRS, INTEGER_VRS
from reconciler.manifest.yamlsafe import YamlPath

PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


class Lines:
    """The text's lines one at a time (split at newlines, kept), as csv.reader reads
    them, remembering where the next one starts: no list of a million lines."""

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos

    def __iter__(self) -> Lines:
        return self

    def __next__(self) -> str:
        text, pos = self.text, self.pos
        if pos >= len(text):
            raise StopIteration
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end + 1
        self.pos = end
        return text[pos:end]


def first_line(text: str, start: int) -> str:
    """The line that starts at ``start``, with its newline."""
    end = text.find("\n", start)
    return text[start : None if end < 0 else end + 1]


def cells_at(text: str, start: int) -> list[str]:
    """The cells of the row that starts at ``start`` of a table that parsed strictly.
    A line without quotes or stray carriage returns is split at its commas (what
    csv.reader makes of it, at a fraction of the cost); any other goes through it."""
    line = first_line(text, start)
    body = line[:-1] if line.endswith("\n") else line
    body = body[:-1] if body.endswith("\r") else body
    if '"' in body or "\r" in body:
        return next(csv.reader(Lines(text, start), strict=True))
    return body.split(",")


def columns(line: str, header: list[str]) -> dict[str, int]:
    """Where each cell starts in its line (1-based), for error locations: a column
    named twice is where it is first."""
    if '"' not in line:  # every comma separates: the same answer, without a loop a character
        positions: dict[str, int] = {}
        start = 1
        for name, cell in zip(header, line.split(","), strict=False):
            if start > len(line):
                break
            positions.setdefault(name, start)
            start += len(cell) + 1
        return positions
    return _columns_quoted(line, header)


def _columns_quoted(line: str, header: list[str]) -> dict[str, int]:
    positions: dict[str, int] = {}
    column, quoted, index = 1, False, 0
    for offset, char in enumerate(line, start=1):
        if index < len(header) and header[index] not in positions:
            positions[header[index]] = column
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            index += 1
            column = offset + 1
    return positions


def typed(key: str, text: str) -> Any:
    """A numeric attribute's cell as a number (the document's encoding, AHI.md)."""
    attribute = lookup(key)
    vr = attribute.vr if attribute else ""
    try:
        if vr in INTEGER_VRS:
            return int(text)
        if vr in FLOAT_VRS:
            return float(text)
    except ValueError:
        return text  # the value check says what is wrong with it
    return text


def placeholders(node: Any, path: YamlPath = ()) -> Iterator[tuple[str, YamlPath, bool]]:
    """Every column a template names: (column, where, in a key)."""
    if isinstance(node, str):
        for name in PLACEHOLDER.findall(node):
            yield name, path, False
    elif isinstance(node, dict):
        for key, child in node.items():
            for name in PLACEHOLDER.findall(str(key)):
                yield name, (*path, key), True
            yield from placeholders(child, (*path, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from placeholders(item, (*path, index))
