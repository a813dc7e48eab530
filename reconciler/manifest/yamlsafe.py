"""Safe YAML loading that remembers the line and column of every key and value.

Why not ``yaml.safe_load``: it forgets positions, keeps the last of two duplicate keys,
reads ``NO`` and ``off`` as booleans (YAML 1.1) and expands aliases without limit, so
a few hundred bytes of "billion laughs" take all memory. Why not ``compose_all``
either: its composer recurses (deep nesting overflows the stack) and is pure Python.

Instead we take the *events* of PyYAML's safe parser (libyaml's when installed, which
is ~15x faster) and build plain Python values ourselves, iteratively:

- plain scalars resolve by the YAML 1.2 core schema (:mod:`~reconciler.manifest.scalars`),
  quoted ones are text, and mapping keys are always the key's text (``1.2: x`` keys
  ``"1.2"``);
- explicit tags other than the core ones (``!!python/...``, ``!!binary``, ...) are errors;
- a duplicate key is an error that names the first one, not "last wins";
- aliases share the anchored value (never copied) and every alias counts the size of
  what it stands for, so a document that would expand past :data:`MAX_NODES` values
  stops with an error instead of eating memory; nesting stops at :data:`MAX_DEPTH`;
- reading the file itself (size, binary, encoding) is :mod:`~reconciler.manifest.textfile`'s.

Values built here may share objects through aliases: callers must not mutate them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from reconciler.manifest import codes
from reconciler.manifest.model import Location, Problem, error
from reconciler.manifest.scalars import MAYBE_NOT_TEXT, resolve_plain
from reconciler.manifest.yamldepth import too_deep

MAX_DEPTH = 64
MAX_NODES = 1_000_000  # per file, counting what aliases expand to
_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels; manifests need far fewer"

# libyaml's parser when PyYAML was built with it: the same events, ~15x faster.
_FastParser: Any = getattr(yaml, "cyaml", None) and getattr(yaml.cyaml, "CParser", None)

YamlPath = tuple[str | int, ...]
Position = tuple[int, int]  # 1-based line and column


@dataclass(frozen=True)
class Document:
    """One YAML document of a file: its value and where each part of it was written.

    ``keys[path]`` is where the key naming ``path`` starts, ``values[path]`` where the
    value at ``path`` starts; ``path`` is a tuple of mapping keys and list indexes.
    """

    file: str
    index: int  # 0-based position of the document in its file
    value: Any
    keys: dict[YamlPath, Position]
    values: dict[YamlPath, Position]

    @property
    def start(self) -> Location:
        return self.location(())

    def location(self, path: YamlPath, *, key: bool = False) -> Location:
        """Where ``path`` was written (its key if ``key``), else its nearest ancestor.

        Parts of a value reached through an alias have no position of their own: they
        point at the alias (or whatever encloses it).
        """
        if key and path in self.keys:
            line, column = self.keys[path]
            return Location(self.file, line, column)
        while True:
            found = self.values.get(path)
            if found is not None:
                return Location(self.file, found[0], found[1])
            if path in self.keys:
                line, column = self.keys[path]
                return Location(self.file, line, column)
            if not path:
                return Location(self.file, 1, 1)
            path = path[:-1]


_CORE = "tag:yaml.org,2002:"
_CONTAINER_TAGS = frozenset({None, "!", _CORE + "map", _CORE + "seq"})


class _Stop(Exception):
    """Stop reading the file: the problem that says why is already recorded."""


_NO_KEY: Any = object()  # the mapping waits for a key
_DROP: Any = object()  # the next value belongs to a rejected key: build it, keep it nowhere


class _Frame:
    __slots__ = ("anchor", "is_map", "key", "path", "position", "size", "skip", "value")

    def __init__(self, value: Any, path: YamlPath, position: Position, skip: bool) -> None:
        self.value = value
        self.is_map = isinstance(value, dict)
        self.path = path
        self.position = position
        self.skip = skip  # inside a rejected key or value: positions are not recorded
        self.key: Any = _NO_KEY
        self.size = 1
        self.anchor: str | None = None


class _Composer:
    """Turns parser events into :class:`Document` values (see the module docstring)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.documents: list[Document] = []
        self.problems: list[Problem] = []
        self.total = 0
        self._reset()

    def _reset(self) -> None:
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int, str | None] | None] = {}
        self.keys: dict[YamlPath, Position] = {}
        self.values: dict[YamlPath, Position] = {}
        self.root: Any = None

    def _at(self, position: Position) -> Location:
        return Location(self.file, position[0], position[1])

    def _stop(self, position: Position, message: str, code: str) -> _Stop:
        self.problems.append(error(self._at(position), message, code))
        return _Stop()

    def _count(self, size: int, position: Position) -> None:
        self.total += size
        if self.total > MAX_NODES:
            raise self._stop(
                position,
                f"this file expands to more than {MAX_NODES:,} values once its aliases are "
                "followed (a 'billion laughs' YAML bomb?); write the values out instead of "
                "nesting aliases",
                codes.YAML_LIMIT,
            )

    def _child(self) -> tuple[YamlPath, bool]:
        """Path of the container about to start, and whether it is skipped (in a key, in a
        rejected value, or inside either)."""
        if not self.stack:
            return (), False
        top = self.stack[-1]
        if top.skip:
            return top.path, True
        if top.is_map:
            if top.key is _NO_KEY or top.key is _DROP:
                return top.path, True
            return (*top.path, top.key), False
        return (*top.path, len(top.value)), False

    def _attach(self, value: Any, size: int, position: Position, key_text: str | None) -> None:
        stack = self.stack
        if not stack:
            self.root = value
            self.values[()] = position
            return
        top = stack[-1]
        top.size += size
        if top.skip:
            return
        if not top.is_map:
            self.values[(*top.path, len(top.value))] = position
            top.value.append(value)
            return
        if top.key is _NO_KEY:
            if key_text is None:
                self.problems.append(
                    error(
                        self._at(position),
                        "a mapping key must be plain text, not a list or mapping",
                        codes.YAML_KEY,
                    )
                )
                top.key = _DROP
                return
            path = (*top.path, key_text)
            first = self.keys.get(path)
            if first is not None:
                self.problems.append(
                    error(
                        self._at(position),
                        f"duplicate key {key_text!r}: it is already set at line {first[0]}, "
                        f"column {first[1]}; YAML would silently keep only the last one, so "
                        "merge the two or delete one",
                        codes.YAML_DUPLICATE_KEY,
                    )
                )
                top.key = _DROP
                return
            self.keys[path] = position
            top.key = key_text
            return
        if top.key is not _DROP:
            self.values[(*top.path, top.key)] = position
            top.value[top.key] = value
        top.key = _NO_KEY

    def _scalar(self, event: ScalarEvent, position: Position) -> Any:
        tag = event.tag
        text = event.value
        if tag is None:
            return resolve_plain(text) if event.implicit[0] else text
        if tag == "!" or tag == _CORE + "str":
            return text
        if tag in (_CORE + "int", _CORE + "float", _CORE + "bool", _CORE + "null"):
            value = resolve_plain(text)
            kind = tag[len(_CORE) :]
            fits = {
                "int": isinstance(value, int) and not isinstance(value, bool),
                "float": isinstance(value, (int, float)) and not isinstance(value, bool),
                "bool": isinstance(value, bool),
                "null": value is None,
            }[kind]
            if fits:
                return float(value) if kind == "float" else value
            self.problems.append(
                error(self._at(position), f"{text!r} is not a valid !!{kind}", codes.YAML_TAG)
            )
            return text
        self._bad_tag(tag, position)
        return text

    def _bad_tag(self, tag: str, position: Position) -> None:
        shown = "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag
        self.problems.append(
            error(
                self._at(position),
                f"the YAML tag {shown} is not allowed in manifests: write a plain value "
                "(text, number, true/false, null, list or mapping)",
                codes.YAML_TAG,
            )
        )

    def _scalar_value(self, event: ScalarEvent, position: Position) -> Any:
        if event.tag is None:
            text = event.value
            if not event.implicit[0] or (text and text[0] not in MAYBE_NOT_TEXT):
                return text  # quoted, or plain text that cannot be anything else: the hot path
            return resolve_plain(text)
        return self._scalar(event, position)

    def _scalar_event(self, event: ScalarEvent, position: Position) -> None:
        """A scalar: the commonest event, so the mapping case is handled inline."""
        stack = self.stack
        if event.anchor is not None or not stack:
            value = self._scalar_value(event, position)
            if event.anchor is not None:
                self.anchors[event.anchor] = (value, 1, event.value)
            self._attach(value, 1, position, event.value)
            return
        top = stack[-1]
        if top.skip or not top.is_map:
            self._attach(self._scalar_value(event, position), 1, position, event.value)
            return
        top.size += 1
        key = top.key
        if key is _NO_KEY:
            text = event.value
            path = (*top.path, text)
            if path in self.keys:
                top.size -= 1  # _attach counts it again
                top.key = _NO_KEY
                self._attach(text, 1, position, text)  # reports the duplicate
                return
            self.keys[path] = position
            top.key = text
            return
        if key is not _DROP:
            value = self._scalar_value(event, position)
            self.values[(*top.path, key)] = position
            top.value[key] = value
        top.key = _NO_KEY

    def feed(self, parser: Any) -> None:
        """Read every event of ``parser`` (raises the parser's ``YAMLError`` on bad YAML)."""
        get_event = parser.get_event
        while True:
            event = get_event()
            cls = event.__class__
            mark = event.start_mark
            position = (mark.line + 1, mark.column + 1)
            if cls is ScalarEvent:
                self.total += 1
                if self.total > MAX_NODES:
                    self._count(0, position)
                self._scalar_event(event, position)
            elif cls is MappingEndEvent or cls is SequenceEndEvent:
                frame = self.stack.pop()
                if frame.anchor is not None:
                    self.anchors[frame.anchor] = (frame.value, frame.size, None)
                self._attach(frame.value, frame.size, frame.position, None)
            elif cls is MappingStartEvent or cls is SequenceStartEvent:
                self._count(1, position)
                if len(self.stack) >= MAX_DEPTH:
                    raise self._stop(
                        position,
                        _TOO_DEEP,
                        codes.YAML_LIMIT,
                    )
                if event.tag not in _CONTAINER_TAGS:
                    self._bad_tag(event.tag, position)
                path, skip = self._child()
                # A list or mapping used as a key is skipped inside and reported by
                # _attach once it ends.
                frame = _Frame({} if cls is MappingStartEvent else [], path, position, skip)
                if event.anchor is not None:
                    frame.anchor = event.anchor
                    self.anchors[event.anchor] = None  # in progress: an alias here recurses
                self.stack.append(frame)
            elif cls is AliasEvent:
                self._alias(event.anchor, position)
            elif cls is DocumentStartEvent:
                self._reset()
            elif cls is DocumentEndEvent:
                if self.root is not None:
                    self.documents.append(
                        Document(self.file, len(self.documents), self.root, self.keys, self.values)
                    )
            elif cls is StreamEndEvent:
                return

    def _alias(self, anchor: str, position: Position) -> None:
        anchored = self.anchors.get(anchor, _NO_KEY)
        if anchored is _NO_KEY or anchored is None:
            why = (
                "is not defined before this point"
                if anchored is _NO_KEY
                else "refers to a node that contains this alias (a cycle)"
            )
            self.problems.append(
                error(self._at(position), f"alias *{anchor} {why}", codes.YAML_ALIAS)
            )
            self._attach(None, 1, position, None)
            return
        value, size, text = anchored
        self._count(size, position)
        self._attach(value, size, position, text)


def _tab_location(text: str, last_line: int) -> Position | None:
    """The first tab in the indentation of lines up to ``last_line`` (1-based), if any."""
    for number, line in enumerate(text.split("\n")[:last_line], start=1):
        stripped = line.lstrip(" \t")
        indent = line[: len(line) - len(stripped)]
        if "\t" in indent:
            return number, indent.index("\t") + 1
    return None


def _position_of(text: str, index: int) -> Position:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _syntax_problem(file: str, text: str, failure: yaml.YAMLError) -> Problem:
    """A YAML error as one located sentence (the pure-Python parser's wording)."""
    if isinstance(failure, yaml.MarkedYAMLError) and failure.problem_mark is not None:
        mark = failure.problem_mark
        position: Position = (mark.line + 1, mark.column + 1)
        tab = _tab_location(text, position[0])
        if tab is not None:
            return error(
                Location(file, *tab),
                "a tab is used for indentation; YAML indents with spaces only: replace the "
                "tab with spaces (set your editor to insert spaces in YAML files)",
                codes.YAML_TAB,
            )
        message = f"invalid YAML: {failure.problem}"
        if failure.context:
            where = ""
            if failure.context_mark is not None:
                context_mark = failure.context_mark
                where = f" at line {context_mark.line + 1}, column {context_mark.column + 1}"
            message += f" ({failure.context}{where})"
        return error(Location(file, *position), message, codes.YAML_SYNTAX)
    if isinstance(failure, yaml.reader.ReaderError):
        line, column = _position_of(text, failure.position)
        return error(
            Location(file, line, column),
            f"the control character U+{failure.character:04X} is not allowed in YAML; "
            "remove it (or write it as an escape in a double-quoted string)"
            if isinstance(failure.character, int)
            else f"invalid YAML: {failure.reason}",
            codes.YAML_SYNTAX,
        )
    return error(Location(file, 1, 1), f"invalid YAML: {failure}", codes.YAML_SYNTAX)


def _python_error(text: str) -> yaml.YAMLError | None:
    """The pure-Python parser's error for ``text``: stable wording whatever libyaml says."""
    try:
        for _ in yaml.parse(text, Loader=yaml.SafeLoader):
            pass
    except yaml.YAMLError as failure:
        return failure
    return None


def load_text(text: str, file: str, *, fast: bool = True) -> tuple[list[Document], list[Problem]]:
    """Every non-empty document of ``text``, and the problems found on the way.

    Documents completed before a syntax error are kept; the rest of the file is not.
    ``fast=False`` uses the pure-Python parser even when libyaml is there (tests).
    """
    composer = _Composer(file)
    deep = too_deep(text, MAX_DEPTH)
    if deep is not None:  # refused before a parser sees it: their cost grows with depth
        composer.problems.append(
            error(Location(file, *_position_of(text, deep)), _TOO_DEEP, codes.YAML_LIMIT)
        )
        return [], composer.problems
    fast = fast and _FastParser is not None
    try:
        # Inside the try: the pure-Python reader rejects control characters at once.
        composer.feed(_FastParser(text) if fast else yaml.SafeLoader(text))
    except _Stop:
        pass
    except yaml.YAMLError as failure:
        if fast:
            failure = _python_error(text) or failure
        composer.problems.append(_syntax_problem(file, text, failure))
    return composer.documents, composer.problems
