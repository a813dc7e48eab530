"""``kind: ImageSetMetadataTable``: one manifest per row of a CSV table.

A RIS or HIS reconciliation report arrives as CSV. The table manifest names the file
(relative to itself) and a template: ``{Column}`` anywhere in the selector, in a
Series/Instance key or in a value is replaced by that row's cell. An empty cell means
"do not manage this attribute for this row": the attribute (or the series/instance
whose key it fills) is left out of that row's manifest; an empty selector cell is an
error. A value that is exactly one placeholder of a numeric attribute (US, FD, ...)
becomes a number.

Each row becomes an ordinary ``ImageSetMetadata`` document named ``<name>-<line>``
whose positions point into the CSV, so the schema check, the DICOM rules and the
conflict check that follow report ``file.csv:line:column`` of the cell that produced a
value. The CSV is read like any manifest file: size-capped, UTF-8, inside the folder
of the manifest that names it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.dicom.dictionary import lookup
from reconciler.dicom.vr import FLOAT_VRS, INTEGER_VRS
from reconciler.manifest import codes
from reconciler.manifest.model import Location, Problem, error
from reconciler.manifest.yamlsafe import Document, Position, YamlPath

KIND = "ImageSetMetadataTable"
MAX_TABLE_BYTES = 64 * 1024 * 1024
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


@dataclass(frozen=True)
class _Row:
    line: int  # the CSV line the row starts on (1 = the header)
    cells: dict[str, str]
    columns: dict[str, int]  # column name → 1-based column (character offset) in the line


def is_table(value: Any) -> bool:
    return isinstance(value, dict) and value.get("kind") == KIND


def _read(path: Path, shown: str) -> tuple[list[str], list[_Row]] | Problem:
    try:
        if path.stat().st_size > MAX_TABLE_BYTES:
            return error(_at(shown), f"the table is larger than {MAX_TABLE_BYTES >> 20} MiB",
                         codes.TABLE)  # fmt: skip
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        return error(_at(shown), "the table does not exist", codes.TABLE)
    except OSError as exc:
        return error(_at(shown), f"the table cannot be read ({exc.strerror})", codes.TABLE)
    except UnicodeDecodeError:
        return error(_at(shown), "the table is not UTF-8 text", codes.TABLE)
    lines = text.splitlines(keepends=True)
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return error(_at(shown), "the table is empty: its first row names the columns", codes.TABLE)
    except csv.Error as exc:
        return error(_at(shown, 1), f"the header row is not CSV: {exc}", codes.TABLE)
    header = [name.strip() for name in header]
    rows: list[_Row] = []
    start = reader.line_num + 1
    try:
        for cells in reader:
            line = start
            start = reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue  # a blank line
            if len(cells) != len(header):
                return error(_at(shown, line),
                             f"this row has {len(cells)} cells, the header {len(header)}",
                             codes.TABLE)  # fmt: skip
            rows.append(
                _Row(
                    line,
                    dict(zip(header, cells, strict=True)),
                    _columns(lines[line - 1] if line <= len(lines) else "", header),
                )
            )
    except csv.Error as exc:
        if str(exc) == "unexpected end of data":  # strict: a quote opened, never closed
            message = "the file ends inside the quoted cell this row opens: close its quote"
            return error(_at(shown, start), message, codes.TABLE)
        return error(_at(shown, start), f"not CSV: {exc}", codes.TABLE)
    return header, rows


def _columns(text: str, header: list[str]) -> dict[str, int]:
    """Where each cell starts in its line (1-based), for error locations."""
    positions: dict[str, int] = {}
    column, quoted, index = 1, False, 0
    for offset, char in enumerate(text, start=1):
        if index < len(header) and header[index] not in positions:
            positions[header[index]] = column
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            index += 1
            column = offset + 1
    return positions


def _at(file: str, line: int = 0, column: int = 0) -> Location:
    return Location(file, line, column)


class _Filler:
    """Fills one row into the template, recording where each filled part came from."""

    def __init__(self, row: _Row, shown: str) -> None:
        self.row = row
        self.shown = shown
        self.keys: dict[YamlPath, Position] = {}
        self.values: dict[YamlPath, Position] = {}
        self.empty: str | None = None  # the column of the last empty cell met

    def _fill(self, text: str) -> tuple[str | None, str | None]:
        """``text`` filled in (None when a cell it names is empty), and its first column."""
        first: str | None = None
        for name in _PLACEHOLDER.findall(text):
            first = first or name
            if not self.row.cells.get(name, "").strip():
                self.empty = name
                return None, name
        filled = _PLACEHOLDER.sub(lambda m: self.row.cells[m.group(1)].strip(), text)
        return filled, first

    def _where(self, column: str | None) -> Position:
        if column is None:
            return (self.row.line, 1)
        return (self.row.line, self.row.columns.get(column, 1))

    def value(self, key: str, template: Any, path: YamlPath) -> tuple[bool, Any]:
        if isinstance(template, str):
            filled, column = self._fill(template)
            if filled is None:
                return False, None
            self.values[path] = self._where(column)
            whole = _PLACEHOLDER.fullmatch(template) is not None
            return True, _typed(key, filled) if whole else filled
        if isinstance(template, dict):
            out: dict[str, Any] = {}
            for child_key, child in template.items():
                kept, filled_key = self.key(str(child_key), (*path, child_key))
                if not kept:
                    continue
                child_path = (*path, filled_key)
                ok, filled = self.value(filled_key, child, child_path)
                if ok:
                    out[filled_key] = filled
                    if not _PLACEHOLDER.search(str(child_key)) and child_path in self.values:
                        self.keys[child_path] = self.values[child_path]  # the cell it came from
            self.values.setdefault(path, (self.row.line, 1))
            return True, out
        if isinstance(template, list):
            items = []
            for index, item in enumerate(template):
                ok, filled = self.value(key, item, (*path, index))
                if ok:
                    items.append(filled)
            return True, items
        self.values[path] = (self.row.line, 1)
        return True, template

    def key(self, key: str, path: YamlPath) -> tuple[bool, str]:
        filled, column = self._fill(key)
        if filled is None:
            return False, key
        self.keys[(*path[:-1], filled)] = self._where(column)
        return True, filled


def _typed(key: str, text: str) -> Any:
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


def _placeholders(node: Any, path: YamlPath) -> Iterator[tuple[str, YamlPath, bool]]:
    """Every column a template names: (column, where, in a key)."""
    if isinstance(node, str):
        for name in _PLACEHOLDER.findall(node):
            yield name, path, False
    elif isinstance(node, dict):
        for key, child in node.items():
            for name in _PLACEHOLDER.findall(str(key)):
                yield name, (*path, key), True
            yield from _placeholders(child, (*path, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _placeholders(item, (*path, index))


def expand_table(document: Document, path: Path) -> tuple[list[Document], list[Problem]]:
    """The row documents of a table manifest (already schema-checked), or its problems."""
    root = document.value
    spec = root["spec"]
    table = Path(spec["table"])
    folder = path.parent.resolve()
    csv_path = (path.parent / table).resolve()
    where = document.location(("spec", "table"))
    if table.is_absolute() or not csv_path.is_relative_to(folder):
        message = "the table must sit in this manifest's folder or below it"
        return [], [error(where, message, codes.TABLE)]
    shown = (path.parent / table).as_posix()
    read = _read(csv_path, shown)
    if isinstance(read, Problem):
        return [], [read]
    header, rows = read
    template = {k: spec[k] for k in ("selector", "set", "remove") if k in spec}
    problems = [
        error(
            document.location(("spec", *place), key=in_key),
            f"{{{name}}} names no column of {shown} (columns: {', '.join(header)})",
            codes.TABLE,
        )
        for name, place, in_key in _placeholders(template, ())
        if name not in header
    ]
    if problems:
        return [], problems
    name = root["metadata"]["name"]
    metadata = {k: v for k, v in root["metadata"].items() if k != "name"}
    documents: list[Document] = []
    for row in rows:
        filler = _Filler(row, shown)
        _, selector = filler.value("", spec["selector"], ("spec", "selector"))
        if not selector:
            column = filler.empty or ""
            location = _at(shown, row.line, row.columns.get(column, 1))
            message = f"the selector's cell ({column}) is empty"
            problems.append(error(location, message, codes.TABLE))
            continue
        out_spec: dict[str, Any] = {"selector": selector}
        for key in ("datastoreId", "force"):
            if key in spec:
                out_spec[key] = spec[key]
        for key in ("set", "remove"):
            if key in spec:
                out_spec[key] = filler.value(key, spec[key], ("spec", key))[1]
        value = {
            "apiVersion": root["apiVersion"],
            "kind": "ImageSetMetadata",
            "metadata": {"name": f"{name}-{row.line}", **metadata},
            "spec": out_spec,
        }
        filler.values[()] = (row.line, 1)
        documents.append(Document(shown, row.line, value, filler.keys, filler.values))
    return documents, problems
