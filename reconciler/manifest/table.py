"""``kind: ImageSetMetadataTable``: one manifest per row of a CSV table.

A RIS or HIS reconciliation report arrives as CSV. The table manifest names the file
(relative to itself) and a template: ``{Column}`` anywhere in the selector, in a
Series/Instance key or in a value is replaced by that row's cell. An empty cell means
"do not manage this attribute for this row": the attribute (or the series/instance
whose key it fills) is left out of that row's manifest; an empty selector cell is an
error. A value that is exactly one placeholder of a numeric attribute (US, FD, ...)
becomes a number.

``metadata.annotations`` (a ``reason``, a ``ticket``) may name columns too: each row then
carries its own (a RIS report's ticket column), checked for PHI like any reason.

Each row becomes an ordinary ``ImageSetMetadata`` document named ``<name>-<line>``
whose positions point into the CSV, so the schema check, the DICOM rules and the
conflict check that follow report ``file.csv:line:column`` of the cell that produced a
value. The CSV is read like any manifest file: size-capped, UTF-8, inside the folder
of the manifest that names it.
"""

from __future__ import annotations

import bisect
import csv
import itertools
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, overload

import fastjsonschema

from reconciler.dicom.dictionary import lookup
from reconciler.dicom.phi import is_phi, value_strings
from reconciler.dicom.vr import check_value
from reconciler.manifest import codes
from reconciler.manifest.build import build_manifest, digest_of
from reconciler.manifest.cells import (
    PLACEHOLDER,
    Lines,
    cells_at,
    columns,
    first_line,
    placeholders,
    typed,
)
from reconciler.manifest.model import (
    REASON,
    TICKET,
    Location,
    Manifest,
    Problem,
    Selector,
    SelectorKind,
    Why,
    error,
)
from reconciler.manifest.project import Project
from reconciler.manifest.reasons import MAX_REASON_CHARS, MAX_TICKET_CHARS, phi_in_text
from reconciler.manifest.rowmanifest import CompiledRows, Row
from reconciler.manifest.schema import check_structure, inline, schema
from reconciler.manifest.semantic import UID_SHAPE, WILDCARD, value_problem_cached
from reconciler.manifest.yamlsafe import Document, Position, YamlPath

KIND = "ImageSetMetadataTable"
MAX_TABLE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class _Row:
    line: int  # the CSV line the row starts on (1 = the header)
    cells: dict[str, str]
    columns: dict[str, int]  # column name → 1-based column (character offset) in the line


def is_table(value: Any) -> bool:
    return isinstance(value, dict) and value.get("kind") == KIND


@dataclass(frozen=True)
class _Csv:
    """A table's text, its header and where each data row starts: rows are parsed
    again from there when needed, so no table is held as a million lists of cells."""

    text: str
    header: list[str]
    offsets: array[int]  # where each row's text starts
    lines: array[int]  # the line each row starts on

    def __len__(self) -> int:
        return len(self.lines)

    def cells(self, index: int) -> list[str]:
        return cells_at(self.text, self.offsets[index])

    def rows(self) -> Iterator[list[str]]:
        """Every data row's cells, in order (one reader over the whole text)."""
        if not self.offsets:
            return
        reader = csv.reader(Lines(self.text, self.offsets[0]), strict=True)
        for cells in reader:
            if any(cell.strip() for cell in cells):
                yield cells

    def row(self, index: int) -> _Row:
        """Row ``index`` with where each cell starts (for error locations)."""
        cells = dict(zip(self.header, self.cells(index), strict=True))
        return _Row(self.lines[index], cells, self.where(index))

    def where(self, index: int) -> dict[str, int]:
        """Where each column's cell starts in row ``index``'s first line."""
        return columns(first_line(self.text, self.offsets[index]), self.header)


def _read(path: Path, shown: str) -> _Csv | Problem:
    try:
        if path.stat().st_size > MAX_TABLE_BYTES:
            too_large = f"the table is larger than {MAX_TABLE_BYTES >> 20} MiB"
            return error(_at(shown), too_large, codes.TABLE)
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        return error(_at(shown), "the table does not exist", codes.TABLE)
    except OSError as exc:
        return error(_at(shown), f"the table cannot be read ({exc.strerror})", codes.TABLE)
    except UnicodeDecodeError:
        return error(_at(shown), "the table is not UTF-8 text", codes.TABLE)
    lines = Lines(text)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return error(_at(shown), "the table is empty: its first row names the columns", codes.TABLE)
    except csv.Error as exc:
        return error(_at(shown, 1), f"the header row is not CSV: {exc}", codes.TABLE)
    header = [name.strip() for name in header]
    offsets, numbers = array("q"), array("q")
    start = reader.line_num + 1
    try:
        while True:
            offset = lines.pos
            cells = next(reader, None)
            if cells is None:
                break
            line = start
            start = reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue  # a blank line
            if len(cells) != len(header):
                uneven = f"this row has {len(cells)} cells, the header {len(header)}"
                return error(_at(shown, line), uneven, codes.TABLE)
            offsets.append(offset)
            numbers.append(line)
    except csv.Error as exc:
        if str(exc) == "unexpected end of data":  # strict: a quote opened, never closed
            message = "the file ends inside the quoted cell this row opens: close its quote"
            return error(_at(shown, start), message, codes.TABLE)
        return error(_at(shown, start), f"not CSV: {exc}", codes.TABLE)
    return _Csv(text, header, offsets, numbers)


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
        for name in PLACEHOLDER.findall(text):
            first = first or name
            if not self.row.cells.get(name, "").strip():
                self.empty = name
                return None, name
        filled = PLACEHOLDER.sub(lambda m: self.row.cells[m.group(1)].strip(), text)
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
            whole = PLACEHOLDER.fullmatch(template) is not None
            return True, typed(key, filled) if whole else filled
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
                    if not PLACEHOLDER.search(str(child_key)) and child_path in self.values:
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


class _Template:
    """A table manifest's template, compiled once: what each row fills in, and whether
    rows can be checked cell by cell (the fast way) instead of as whole documents.

    Cell by cell is exact where the template's only placeholders are the selector's
    value, attribute values written as text and series/instance keys, each alone in
    its mapping: everything a row can get wrong is then in its cells (an empty one, a
    selector, key or value that does not fit), and the rest of the document is the
    template, the same for every row. A row that fails a cell check, and every row of
    any other template, goes through the whole pipeline as its own document, so its
    messages are the ones that pipeline writes.
    """

    def __init__(self, document: Document, shown: str, header: list[str], project: Project) -> None:
        root = document.value
        self.spec: dict[str, Any] = root["spec"]
        self.root = root
        self.shown = shown
        self.name: str = root["metadata"]["name"]
        self.metadata = {k: v for k, v in root["metadata"].items() if k != "name"}
        notes = self.metadata.get("annotations")
        self.annotations: dict[str, Any] | None = notes if isinstance(notes, dict) else None
        self.template = {k: self.spec[k] for k in ("selector", "set", "remove") if k in self.spec}
        self.columns = {name: index for index, name in enumerate(header)}
        self.missing = [
            (name, (*base, *place), in_key)
            for base, node in ((("spec",), self.template), (_NOTES, self.annotations))
            for name, place, in_key in placeholders(node, ())
            if name not in self.columns
        ]
        selector = self.spec["selector"]
        self.kind = next(k for k in selector if k != "isPrimary")
        self.selector_kind = next((k for k in SelectorKind if k.value == self.kind), None)
        self.selector_template = selector[self.kind]
        self.is_primary = selector.get("isPrimary", True)
        self.datastore_id: str | None = self.spec.get("datastoreId")
        named = itertools.chain(placeholders(self.template, ()), placeholders(self.annotations, ()))
        self.used = sorted({self.columns[n] for n, _, _ in named if n in self.columns})
        self._compiled: dict[str, list[str | int]] = {}
        self.values: list[tuple[str, str, bool]] = []  # (keyword, template, whole cell)
        self.keys: list[str] = []  # series / instance key templates
        self.phi_written: list[str] = []  # PHI values the template writes as it is
        self.fast = (
            isinstance(self.selector_template, str)
            and (self.datastore_id or project.datastore_id) is not None
            and not any(True for _ in placeholders(self.spec.get("remove"), ()))
            and self._fill_points(self.spec.get("set"), depth=0)
            and self._why_fill_points()
        )

    def _why_fill_points(self) -> bool:
        """Whether the cell checks cover the annotations: placeholders only in the
        reason's and ticket's text, which each row's cells then fill and check."""
        notes = self.annotations or {}
        return all(
            key in _WHY_LIMITS and isinstance(value, str)
            for key, value in notes.items()
            if any(True for _ in placeholders({key: value}, ()))
        )

    def _fill_points(self, node: Any, depth: int) -> bool:
        """Record the set template's fill points; False where it has placeholders the
        cell checks do not cover."""
        if node is None:
            return True
        if not isinstance(node, dict):
            return False
        for level, attributes in node.items():
            if level == "Series":
                if not self._keyed(attributes, instances=True):
                    return False
            elif not self._attributes(attributes):
                return False
        return True

    def _keyed(self, mapping: Any, *, instances: bool) -> bool:
        if not isinstance(mapping, dict):
            return False
        if any(PLACEHOLDER.search(str(k)) for k in mapping):
            if len(mapping) != 1:
                return False  # two keys could fill to one
            self.keys.append(str(next(iter(mapping))))
        for attributes in mapping.values():
            if not isinstance(attributes, dict):
                return False
            inner = {k: v for k, v in attributes.items() if not (instances and k == "Instances")}
            if not self._attributes(inner):
                return False
            nested = attributes.get("Instances") if instances else None
            if nested is not None and not self._keyed(nested, instances=False):
                return False
        return True

    def _attributes(self, attributes: Any) -> bool:
        if not isinstance(attributes, dict):
            return False
        for key, value in attributes.items():
            if PLACEHOLDER.search(str(key)):
                return False
            if isinstance(value, str) and PLACEHOLDER.search(value):
                whole = PLACEHOLDER.fullmatch(value) is not None
                self.values.append((str(key), value, whole))
            elif any(True for _ in placeholders(value, ())):
                return False
            elif is_phi(str(key)):
                self.phi_written.extend(value_strings(value))
        return True

    def fill(self, text: str, cells: list[str]) -> str:
        parts = self._compiled.get(text)
        if parts is None:
            pieces = PLACEHOLDER.split(text)  # literal, column, literal, column, ...
            parts = self._compiled[text] = [
                piece if even else self.columns[piece]
                for even, piece in zip(itertools.cycle((True, False)), pieces, strict=False)
            ]
        if len(parts) == 3 and parts[0] == parts[2] == "":
            return cells[parts[1]].strip()  # type: ignore[index]
        return "".join(p if isinstance(p, str) else cells[p].strip() for p in parts)

    def selector(self, cells: list[str]) -> Selector | None:
        """The row's selector (None when its cell is empty or it is not one)."""
        value = self.fill(self.selector_template, cells) if self.fast else None
        if value is None or self.selector_kind is None:
            return None
        return Selector(self.selector_kind, value, _IS_PRIMARY.get(self.is_primary))

    def cells_fine(self, cells: list[str]) -> str | None:
        """The row's selector value if its cells pass every check a row document would
        be put to, else None."""
        for index in self.used:
            if not cells[index].strip():
                return None  # an empty cell leaves something out: the whole pipeline says what
        value = self.fill(self.selector_template, cells)
        if not _valid(("selector", "properties", self.kind), value):
            return None  # (isPrimary is the template's: the first row's check covers it)
        uid_kinds = ("studyInstanceUID", "seriesInstanceUID")
        if self.kind in uid_kinds and UID_SHAPE.match(value) and check_value("UI", value):
            return None
        for key in self.keys:
            filled = self.fill(key, cells)
            if not _valid(("objectKey",), filled):
                return None
            if filled != WILDCARD and check_value("UI", filled):
                return None
        for keyword, template, whole in self.values:
            filled = self.fill(template, cells)
            attribute = lookup(keyword)
            if attribute is None:
                return None
            value_of = typed(keyword, filled) if whole else filled
            if value_problem_cached(keyword, attribute, value_of):
                return None
        if self.annotations and not self._why_fine(cells):
            return None
        return value

    def _why_fine(self, cells: list[str]) -> bool:
        """Whether the row's reason and ticket pass check_why: short enough, no PHI
        (shapes, or a PHI value the row writes)."""
        written: list[str] | None = None
        for key, limit in _WHY_LIMITS.items():
            text = (self.annotations or {}).get(key)
            if not isinstance(text, str):
                continue
            filled = self.fill(text, cells)
            if len(filled) > limit:
                return False
            if written is None:
                written = [*self.phi_written]
                for keyword, template, whole in self.values:
                    if is_phi(keyword):
                        value = self.fill(template, cells)
                        written.extend(value_strings(typed(keyword, value) if whole else value))
            if phi_in_text(filled, written) is not None:
                return False
        return True

    def document(self, row: _Row) -> Document | Problem:
        """The row as its own ImageSetMetadata document, positions in the CSV."""
        filler = _Filler(row, self.shown)
        _, selector = filler.value("", self.spec["selector"], ("spec", "selector"))
        if not selector:
            column = filler.empty or ""
            location = _at(self.shown, row.line, row.columns.get(column, 1))
            return error(location, f"the selector's cell ({column}) is empty", codes.TABLE)
        out_spec: dict[str, Any] = {"selector": selector}
        for key in ("datastoreId", "force"):
            if key in self.spec:
                out_spec[key] = self.spec[key]
        for key in ("set", "remove"):
            if key in self.spec:
                out_spec[key] = filler.value(key, self.spec[key], ("spec", key))[1]
        metadata = dict(self.metadata)
        if self.annotations is not None:  # a reason or ticket per row
            metadata["annotations"] = filler.value("", self.annotations, _NOTES)[1]
        value = {
            "apiVersion": self.root["apiVersion"],
            "kind": "ImageSetMetadata",
            "metadata": {"name": f"{self.name}-{row.line}", **metadata},
            "spec": out_spec,
        }
        filler.values[()] = (row.line, 1)
        return Document(self.shown, row.line, value, filler.keys, filler.values)


_IS_PRIMARY: dict[object, bool | None] = {True: True, False: False, "any": None}
_NOTES: YamlPath = ("metadata", "annotations")
_WHY_LIMITS = {REASON: MAX_REASON_CHARS, TICKET: MAX_TICKET_CHARS}


@cache
def _sub_validator(where: tuple[str, ...]) -> Callable[[Any], Any]:
    """fastjsonschema for one part of the schema's definitions (a selector's value, a
    series key): ``where`` is the path to it under ``$defs``."""
    definitions = schema()["$defs"]
    node: Any = definitions
    for part in where:
        node = node[part]
    compiled: Callable[[Any], Any] = fastjsonschema.compile(
        inline(node, definitions), use_default=False
    )
    return compiled


def _valid(where: tuple[str, ...], value: Any) -> bool:
    try:
        _sub_validator(where)(value)
        return True
    except fastjsonschema.JsonSchemaException:
        return False


class TableRows:
    """The manifests of a table's rows, each built when asked for (from the table's
    text, kept whole), never all at once: a million-row table is a few bytes per row.
    ``good`` holds the rows a row document could be made of (a selector cell)."""

    def __init__(self, template: _Template, table: _Csv, path: Path, project: Project) -> None:
        self.template = template
        self.table = table
        self.path = path
        self.project = project
        self.good = array("q")  # the rows that make manifests (their indexes in the table)
        self.hashes = array("q")  # each one's target_hash
        self.checked = bytearray()  # 1 where the row passed the cell checks
        self.compiled: CompiledRows | None = None  # makes the manifests of those rows

    def add(self, index: int, key: int | None) -> None:
        """Row ``index`` makes a manifest; ``key`` is its target hash when it passed the
        cell checks (None: the whole pipeline made its manifest)."""
        self.good.append(index)
        self.checked.append(key is not None)
        if key is None:
            key = target_hash(*self.key(len(self.good) - 1))
        self.hashes.append(key)

    def _compiled(self, position: int) -> tuple[CompiledRows, list[str], int] | None:
        """The compiled way for this row, its cells and line, where it applies."""
        if self.compiled is None or not self.checked[position]:
            return None
        index = self.good[position]
        return self.compiled, self.table.cells(index), self.table.lines[index]

    def compiled_row(self, index: int, manifest: Manifest) -> Row:
        """Row ``index`` (its cells and where they start) with ``manifest``, its manifest
        made the general way: what the compiled way is checked against."""
        return Row(self.table.cells(index), self.table.where(index), manifest)

    @property
    def name(self) -> str:
        return self.template.name

    def __len__(self) -> int:
        return len(self.good)

    def line(self, position: int) -> int:
        return self.table.lines[self.good[position]]

    def row_name(self, position: int) -> str:
        return f"{self.template.name}-{self.line(position)}"

    def position_of(self, name: str) -> int | None:
        """The position of the row named ``name`` (``<template>-<line>``), if any."""
        prefix, _, line = name.rpartition("-")
        if prefix != self.template.name or not line.isdigit():
            return None
        lines = self.table.lines
        position = bisect.bisect_left(self.good, int(line), key=lambda index: lines[index])
        found = position < len(self.good) and self.line(position) == int(line)
        return position if found else None

    def document(self, position: int) -> Document | Problem:
        return self.template.document(self.table.row(self.good[position]))

    def manifest(self, position: int) -> Manifest:
        compiled = self._compiled(position)
        if compiled is not None:
            rows, cells, line = compiled
            where = self.table.where(self.good[position]) if rows.located else {}
            made = rows.manifest(cells, line, where)
            if made is not None:
                return made
        document = self.document(position)
        manifest = None
        if not isinstance(document, Problem):
            manifest, _ = build_manifest(document, self.path, self.project)
        if manifest is None:  # pragma: no cover - good rows make manifests
            raise AssertionError(f"row {self.line(position)} of {self.template.shown}")
        return manifest

    def identity(self, position: int) -> tuple[str, str, str]:
        """The row's name, location and digest, as its manifest would have them,
        without the manifest's checks (what a plan's manifest digest is made of)."""
        compiled = self._compiled(position)
        if compiled is not None:
            rows, cells, line = compiled
            return rows.identity(cells, line)
        document = self.document(position)
        if isinstance(document, Problem):  # pragma: no cover - good rows have documents
            raise AssertionError(f"row {self.line(position)} of {self.template.shown}")
        datastore = self.template.datastore_id or self.project.datastore_id or ""
        name = f"{self.template.name}-{self.line(position)}"
        return name, str(document.start), digest_of(document.value, datastore)

    def why(self, position: int) -> tuple[str, Location, Why]:
        """The row's name, location and reason, as its manifest would have them; the
        row is not even parsed when the template has no annotations to fill."""
        name, line = self.row_name(position), self.line(position)
        if self.template.annotations is None:
            return name, _at(self.template.shown, line, 1), Why()
        compiled = self._compiled(position)
        if compiled is not None:
            rows, cells, _ = compiled
            return name, _at(self.template.shown, line, 1), rows.why(cells)
        document = self.document(position)
        if isinstance(document, Problem):  # pragma: no cover - good rows have documents
            raise AssertionError(f"row {line} of {self.template.shown}")
        notes = document.value["metadata"].get("annotations")
        return name, document.start, Why.of(notes if isinstance(notes, dict) else {})

    def key(self, position: int) -> tuple[str, Selector]:
        """The row's data store and selector, without building its manifest."""
        template = self.template
        selector = template.selector(self.table.cells(self.good[position]))
        datastore = template.datastore_id or self.project.datastore_id
        if selector is None or datastore is None:
            manifest = self.manifest(position)
            return manifest.datastore_id, manifest.selector
        return datastore, selector


def check_table(
    document: Document, path: Path, project: Project
) -> tuple[TableRows | None, list[Problem]]:
    """A table manifest (already schema-checked): its rows, and every problem of them,
    the rows streamed one by one (see :class:`_Template` for which way)."""
    spec = document.value["spec"]
    table = Path(spec["table"])
    folder = path.parent.resolve()
    csv_path = (path.parent / table).resolve()
    where = document.location(("spec", "table"))
    if table.is_absolute() or not csv_path.is_relative_to(folder):
        message = "the table must sit in this manifest's folder or below it"
        return None, [error(where, message, codes.TABLE)]
    shown = (path.parent / table).as_posix()
    read = _read(csv_path, shown)
    if isinstance(read, Problem):
        return None, [read]
    template = _Template(document, shown, read.header, project)
    if template.missing:
        return None, [
            error(
                document.location(place, key=in_key),
                f"{{{name}}} names no column of {shown} (columns: {', '.join(read.header)})",
                codes.TABLE,
            )
            for name, place, in_key in template.missing
        ]
    problems: list[Problem] = []
    rows = TableRows(template, read, path, project)
    fast = template.fast
    datastore = template.datastore_id or project.datastore_id or ""
    primary = _IS_PRIMARY.get(template.is_primary)
    compiling = fast  # until the first row that passes the cell checks compiles them
    for index, cells in enumerate(read.rows()):
        value = template.cells_fine(cells) if fast else None
        if value is not None:
            if compiling or not index % _SAMPLE:  # every so many rows, both ways
                built, found = _whole(template.document(read.row(index)), path, project)
                if built is None or found:
                    return _all_the_whole_way(template, read, path, project)
                row = rows.compiled_row(index, built)
                if compiling:
                    rows.compiled = CompiledRows.of(template, path, project, row)
                    compiling = False
                elif rows.compiled is not None and not rows.compiled.makes(row):
                    rows.compiled = None  # made the general way from now on (only slower)
            rows.add(index, hash((datastore, template.kind, value, primary)))
            continue
        built, found = _whole(template.document(read.row(index)), path, project)
        if built is not None:
            rows.add(index, None)
        problems.extend(found)
    return rows, problems


_SAMPLE = 10_000  # rows 0, 10,000, 20,000... are checked both ways


def _whole(
    document: Document | Problem, path: Path, project: Project
) -> tuple[Manifest | None, list[Problem]]:
    """The manifest the whole pipeline makes of one row (if any), and its problems."""
    if isinstance(document, Problem):
        return None, [document]
    structure = check_structure(document)
    manifest, semantic = build_manifest(document, path, project, well_formed=not structure)
    return manifest, [*structure, *semantic]


def _all_the_whole_way(
    template: _Template, read: _Csv, path: Path, project: Project
) -> tuple[TableRows, list[Problem]]:
    """The cell checks passed a row the whole pipeline did not: every row that way."""
    problems: list[Problem] = []
    rows = TableRows(template, read, path, project)
    for index in range(len(read)):
        built, found = _whole(template.document(read.row(index)), path, project)
        if built is not None:
            rows.add(index, None)
        problems.extend(found)
    return rows, problems


def target_hash(datastore_id: str, selector: Selector) -> int:
    """What conflicts are looked for by, a few bytes a row: the data store and selector."""
    return hash((datastore_id, selector.kind.value, selector.value, selector.is_primary))


class Manifests(Sequence[Manifest]):
    """The manifests of a tree: the documents' own, then each table's rows, built one
    at a time when asked for. :meth:`keys` gives every manifest's data store and
    selector without building any (what resolution needs first)."""

    def __init__(self, plain: Sequence[Manifest], tables: Sequence[TableRows] = ()) -> None:
        self.plain = list(plain)
        self.tables = list(tables)
        self._ends: list[int] = []
        total = len(self.plain)
        for table in self.tables:
            total += len(table)
            self._ends.append(total)

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else len(self.plain)

    @overload
    def __getitem__(self, index: int) -> Manifest: ...
    @overload
    def __getitem__(self, index: slice) -> list[Manifest]: ...
    def __getitem__(self, index: int | slice) -> Manifest | list[Manifest]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index < len(self.plain):
            return self.plain[index]
        table = bisect.bisect_right(self._ends, index)
        start = self._ends[table - 1] if table else len(self.plain)
        return self.tables[table].manifest(index - start)

    def __iter__(self) -> Iterator[Manifest]:
        yield from self.plain
        for table in self.tables:
            for position in range(len(table)):
                yield table.manifest(position)

    def identities(self) -> Iterator[tuple[str, str, str]]:
        """Every manifest's name, location and digest (rows' without building them)."""
        for manifest in self.plain:
            yield manifest.name, str(manifest.location), manifest.digest
        for table in self.tables:
            for position in range(len(table)):
                yield table.identity(position)

    def whys(self) -> Iterator[tuple[str, Location, Why]]:
        """Every manifest's name, location and reason (rows' without building them)."""
        for manifest in self.plain:
            yield manifest.name, manifest.location, manifest.why
        for table in self.tables:
            for position in range(len(table)):
                yield table.why(position)

    def names(self) -> Iterator[str]:
        yield from (manifest.name for manifest in self.plain)
        for table in self.tables:
            yield from (table.row_name(position) for position in range(len(table)))

    def why_of(self, name: str) -> tuple[str, Location, Why] | None:
        """A table row's name, location and reason (:meth:`whys`), found by its name."""
        for table in self.tables:
            position = table.position_of(name)
            if position is not None:
                return table.why(position)
        return None

    def keys(self) -> Iterator[tuple[str, Selector]]:
        for manifest in self.plain:
            yield manifest.datastore_id, manifest.selector
        for table in self.tables:
            for position in range(len(table)):
                yield table.key(position)


def keys_of(manifests: Sequence[Manifest]) -> Iterator[tuple[str, Selector]]:
    """Each manifest's data store and selector; a table's rows are not built for it."""
    if isinstance(manifests, Manifests):
        return manifests.keys()
    return ((m.datastore_id, m.selector) for m in manifests)
