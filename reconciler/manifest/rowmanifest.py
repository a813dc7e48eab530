"""A table's rows made straight into manifests, without a row document.

A plan asks for each row's :class:`Manifest` once (resolution hands each target its
manifests). Made the general way, a row is filled into a document that records where
every part came from, then put through the manifest builder's checks: most of a
table plan's own CPU at 100,000 rows. A row whose cells passed the load's cell checks
(:meth:`reconciler.manifest.table._Template.cells_fine`) needs none of that: its
manifest is the template's, with the cells put in. :class:`CompiledRows` keeps, for
each value the template sets, what varies by row (the cell that fills it, the series
or instance key it sits under) and makes the manifest from the row's cells alone.

Its digest is taken the same way: the canonical JSON of a row's document is the
template's, fixed text with the row's values between (:meth:`CompiledRows._pieces`),
so a row's document is not built to be serialised (where a mapping's key holds a
{Column}, the order of keys depends on the row, and the document is built).

It is exact by check, not by argument: :meth:`CompiledRows.of` compiles a template
only when the manifest it makes of a row equals the one the general way makes, and
the load compares the two again every so many rows (a difference turns it off for
the table: rows are then made the general way, only slower).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.dicom.dictionary import is_tag_key
from reconciler.dicom.levels import Level
from reconciler.jsonsafe import canonical
from reconciler.manifest.build import digest_of, digest_of_text
from reconciler.manifest.cells import PLACEHOLDER, placeholders, typed
from reconciler.manifest.model import DesiredValue, Location, Manifest, Removal, Why
from reconciler.manifest.project import Project

if TYPE_CHECKING:
    from reconciler.manifest.table import _Template

Fill = Callable[[list[str]], Any]
Text = Callable[[list[str], int], str]  # a part of a row's canonical JSON, from its cells and line


@dataclass(frozen=True)
class _Slot:
    """One value the template sets: its place, and the value or the text to fill."""

    level: Level
    series: str | None  # the series key as written (a template when it has a {Column})
    sop: str | None
    key: str
    value: Any  # the value, or (``filled``) the text to fill it from
    vr: str | None
    filled: bool
    whole: bool  # the text is one {Column}: a numeric attribute's cell becomes a number
    column: str | None  # the column its location points at (None: the row's first)


class CompiledRows:
    """Manifests of a template's rows made from their cells (see the module)."""

    def __init__(self, template: _Template, path: Path, project: Project) -> None:
        self.template = template
        self.path = path
        self.datastore_id = template.datastore_id or project.datastore_id or ""
        self.force = template.spec.get("force") is True
        self.labels = template.metadata.get("labels")
        self.slots = _slots(template)
        self.located = any(slot.column is not None for slot in self.slots)
        self.removals: tuple[Removal, ...] = ()  # from the first row, relocated per row
        spec = template.spec
        self._spec = [
            (key, self._compile(spec[key], "" if key == "selector" else key))
            for key in ("selector", "datastoreId", "force", "set", "remove")
            if key in spec
        ]
        notes = template.annotations
        self._annotations = None if notes is None else self._compile(notes, "")
        self._text = self._pieces()

    @classmethod
    def of(
        cls, template: _Template, path: Path, project: Project, first: Row
    ) -> CompiledRows | None:
        """The compiled rows of ``template`` if they make the manifest of ``first`` (a
        row that passed the cell checks, with its manifest made the general way)
        exactly; else None."""
        compiled = cls(template, path, project)
        compiled.removals = first.manifest.removals
        line = first.manifest.location.line
        if (
            compiled._text is not None
            and compiled.digest(first.cells, line) != first.manifest.digest
        ):
            compiled._text = None  # its documents are built to be serialised, as the general way
        return compiled if compiled.makes(first) else None

    def makes(self, row: Row) -> bool:
        """Whether this makes ``row``'s manifest exactly, down to what equality skips."""
        general = row.manifest
        made = self.manifest(row.cells, general.location.line, row.where)
        return (
            made == general
            and made is not None
            and made.labels == general.labels
            and made.annotations == general.annotations
        )

    # -- a row's parts -------------------------------------------------------------------
    def value(self, cells: list[str], line: int) -> dict[str, Any]:
        """The row's document, as :meth:`_Template.document` fills it."""
        template = self.template
        metadata = dict(template.metadata)
        if self._annotations is not None:
            metadata["annotations"] = self._annotations(cells)
        return {
            "apiVersion": template.root["apiVersion"],
            "kind": "ImageSetMetadata",
            "metadata": {"name": f"{template.name}-{line}", **metadata},
            "spec": {key: fill(cells) for key, fill in self._spec},
        }

    def identity(self, cells: list[str], line: int) -> tuple[str, str, str]:
        name = f"{self.template.name}-{line}"
        location = Location(self.template.shown, line, 1)
        return name, str(location), self.digest(cells, line)

    def digest(self, cells: list[str], line: int) -> str:
        """The digest of the row's manifest (:func:`digest_of` of its document)."""
        if self._text is None:
            return digest_of(self.value(cells, line), self.datastore_id)
        return digest_of_text(
            "".join(part if isinstance(part, str) else part(cells, line) for part in self._text)
        )

    def why(self, cells: list[str]) -> Why:
        return Why.of(self._annotations(cells) if self._annotations is not None else {})

    def manifest(self, cells: list[str], line: int, where: dict[str, int]) -> Manifest | None:
        """The manifest of the row on ``line`` (``where``: where each column's cell
        starts in it, needed when :attr:`located`); None when its selector cannot be
        made (never, for a row that passed the cell checks)."""
        template = self.template
        selector = template.selector(cells)
        if selector is None:
            return None
        shown = template.shown
        fill = template.fill
        sets = []
        for slot in self.slots:
            value = slot.value
            if slot.filled:
                value = fill(value, cells)
                if slot.whole:
                    value = typed(slot.key, value)
            column = 1 if slot.column is None else where.get(slot.column, 1)
            sets.append(
                DesiredValue(
                    slot.level,
                    None if slot.series is None else fill(slot.series, cells),
                    None if slot.sop is None else fill(slot.sop, cells),
                    slot.key,
                    value,
                    slot.vr,
                    Location(shown, line, column),
                )
            )
        annotations = self._annotations(cells) if self._annotations is not None else None
        manifest = Manifest(
            name=f"{template.name}-{line}",
            path=self.path,
            location=Location(shown, line, 1),
            datastore_id=self.datastore_id,
            selector=selector,
            force=self.force,
            sets=tuple(sets),
            removals=tuple(replace(r, location=Location(shown, line, 1)) for r in self.removals),
            digest=self.digest(cells, line),
            labels=dict(self.labels) if isinstance(self.labels, dict) else {},
            annotations=dict(annotations) if isinstance(annotations, dict) else {},
        )
        return manifest

    def _compile(self, node: Any, key: str) -> Fill:
        """What makes ``node`` of the template, the row's cells put in (no cell is
        empty): a part without a {Column} is the template's own (only serialised)."""
        template = self.template
        if not any(True for _ in placeholders(node)):
            return lambda cells: node
        if isinstance(node, str):
            if _is_whole(node):
                index = template.columns[PLACEHOLDER.fullmatch(node).group(1)]  # type: ignore[union-attr]
                return lambda cells: typed(key, cells[index].strip())
            return lambda cells: template.fill(node, cells)
        if isinstance(node, list):
            items = [self._compile(item, key) for item in node]
            return lambda cells: [item(cells) for item in items]
        assert isinstance(node, dict)  # only texts, lists and mappings hold a {Column}
        return self._compile_mapping(node)

    def _compile_mapping(self, node: dict[Any, Any]) -> Fill:
        """A mapping: a key with a {Column} is filled per row; a text or list under it
        is typed by the key it fills (so made per row), anything else made once."""
        template = self.template
        children = []
        for child_key, child in node.items():
            key = str(child_key)
            keyed = PLACEHOLDER.search(key) is not None
            per_row = keyed and isinstance(child, str | list)
            children.append((key, keyed, None if per_row else self._compile(child, key), child))

        def fill(cells: list[str]) -> dict[str, Any]:
            out = {}
            for key, keyed, made, child in children:
                filled = template.fill(key, cells) if keyed else key
                out[filled] = (
                    made(cells) if made is not None else self._compile(child, filled)(cells)
                )
            return out

        return fill

    # -- the canonical JSON of a row's document --------------------------------------------
    def _pieces(self) -> list[str | Text] | None:
        """``canonical({"datastoreId": …, "document": value(cells, line)})`` as fixed
        text and the parts each row fills (adjacent texts joined), or None where a
        mapping's key has a {Column} or a part cannot be serialised on its own."""
        template = self.template
        metadata: list[tuple[str, list[str | Text] | None]] = [
            ("name", [lambda _cells, line: canonical(f"{template.name}-{line}")])
        ]
        for key, value in template.metadata.items():
            if key == "annotations" and template.annotations is not None:
                metadata.append((key, self._text_of(template.annotations, "")))
            else:
                metadata.append((key, _fixed(value)))
        spec = [
            (key, self._text_of(template.spec[key], "" if key == "selector" else key))
            for key, _fill in self._spec
        ]
        document = [
            ("apiVersion", _fixed(template.root["apiVersion"])),
            ("kind", _fixed("ImageSetMetadata")),
            ("metadata", _object(metadata)),
            ("spec", _object(spec)),
        ]
        store = _fixed(self.datastore_id)
        whole = _object([("datastoreId", store), ("document", _object(document))])
        if whole is None:
            return None
        joined: list[str | Text] = []
        for part in whole:
            if isinstance(part, str) and joined and isinstance(joined[-1], str):
                joined[-1] += part
            else:
                joined.append(part)
        return joined

    def _text_of(self, node: Any, key: str) -> list[str | Text] | None:
        """The canonical JSON of what :meth:`_compile` makes of ``node``, in parts."""
        template = self.template
        if not any(True for _ in placeholders(node)):
            return _fixed(node)
        if isinstance(node, str):
            if _is_whole(node):
                index = template.columns[PLACEHOLDER.fullmatch(node).group(1)]  # type: ignore[union-attr]
                return [lambda cells, _line: canonical(typed(key, cells[index].strip()))]
            return [lambda cells, _line: canonical(template.fill(node, cells))]
        if isinstance(node, list):
            items = [self._text_of(item, key) for item in node]
            if any(item is None for item in items):
                return None
            parts: list[str | Text] = ["["]
            for n, item in enumerate(items):
                parts += ([","] if n else []) + (item or [])
            return [*parts, "]"]
        assert isinstance(node, dict)  # only texts, lists and mappings hold a {Column}
        if any(PLACEHOLDER.search(str(child)) for child in node):
            return None  # the order of the keys depends on the row
        members = [(str(child), self._text_of(value, str(child))) for child, value in node.items()]
        return _object(members)


def _fixed(value: Any) -> list[str | Text] | None:
    try:
        return [canonical(value)]
    except (TypeError, ValueError):  # keys of mixed types, say: the document is built
        return None


def _object(members: Sequence[tuple[str, list[str | Text] | None]]) -> list[str | Text] | None:
    """A mapping's canonical JSON from its members' (sorted by key, as ``sort_keys``)."""
    keys = [key for key, _ in members]
    if len(set(keys)) != len(keys) or any(parts is None for _, parts in members):
        return None
    out: list[str | Text] = ["{"]
    for n, (key, parts) in enumerate(sorted(members, key=lambda member: member[0])):
        out += [("," if n else "") + canonical(key) + ":", *(parts or [])]
    return [*out, "}"]


@dataclass(frozen=True)
class Row:
    """A row's cells, where each column's cell starts, and its manifest made the
    general way (what the compiled way is checked against)."""

    cells: list[str]
    where: dict[str, int]
    manifest: Manifest


def _slots(template: _Template) -> list[_Slot]:
    """The values the template's ``set`` sets, in the order the manifest builder
    makes them (Patient, Study, then each series and its instances)."""
    tree = template.spec.get("set")
    if not isinstance(tree, dict):
        return []
    slots = [
        *_level_slots(template, Level.PATIENT, None, None, tree.get("Patient")),
        *_level_slots(template, Level.STUDY, None, None, tree.get("Study")),
    ]
    for series, attributes in (tree.get("Series") or {}).items():
        slots += _level_slots(template, Level.SERIES, str(series), None, attributes)
        instances = attributes.get("Instances") if isinstance(attributes, dict) else None
        for sop, inner in (instances or {}).items():
            slots += _level_slots(template, Level.INSTANCE, str(series), str(sop), inner)
    return slots


def _level_slots(
    template: _Template, level: Level, series: str | None, sop: str | None, attributes: Any
) -> list[_Slot]:
    slots = []
    for key, value in (attributes or {}).items():
        if key == "Instances" and level is Level.SERIES:
            continue
        vr = None
        if is_tag_key(key) and isinstance(value, dict):
            vr, value = value.get("vr"), value.get("value")
        names = PLACEHOLDER.findall(value) if isinstance(value, str) else []
        filled = bool(names)
        slot = _Slot(
            level=level,
            series=series,
            sop=sop,
            key=str(key),
            value=value,
            vr=vr,
            filled=filled,
            whole=filled and _is_whole(value),
            column=names[0] if names else None,
        )
        slots.append(slot)
    return slots


def _is_whole(text: str) -> bool:
    return PLACEHOLDER.fullmatch(text) is not None
