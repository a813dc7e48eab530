"""``load_tree``: read, check and model every manifest under some paths.

Every file is read, every document checked: the result carries all problems of all
files, never just the first. The stages, each in its own module:
discover (which files) → yamlsafe (text → values with positions) → schema
(structure) → semantic (DICOM and HealthImaging rules, the model) → conflicts (across
manifests).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reconciler.manifest import codes
from reconciler.manifest.build import build_manifest
from reconciler.manifest.conflicts import SelectorTarget, find_conflicts, find_duplicate_names
from reconciler.manifest.discover import discover
from reconciler.manifest.model import LoadResult, Location, Manifest, Problem, Severity
from reconciler.manifest.project import ProjectFinder
from reconciler.manifest.schema import check_structure
from reconciler.manifest.table import KIND as TABLE_KIND
from reconciler.manifest.table import Manifests, TableRows, check_table, is_table, target_hash
from reconciler.manifest.textfile import load_file
from reconciler.manifest.yamlsafe import Document
from reconciler.suggest import budget as suggestion_budget

# Problems of one kind shown per file; a hostile file with 10,000 unknown keys gets
# 100 lines and "… and 9,900 more", not 10,000 lines (nor 10,000 did-you-means).
PROBLEMS_PER_KIND = 100


def is_manifest(value: Any) -> bool:
    """Whether a document means to be a manifest (for ``skip_non_manifests``).

    Either marker is enough, so a typo in the other one is still reported.
    """
    if not isinstance(value, dict):
        return False
    api_version = value.get("apiVersion")
    return (isinstance(api_version, str) and api_version.startswith("reconciler/")) or (
        value.get("kind") in ("ImageSetMetadata", TABLE_KIND)
    )


def _name(document: Document) -> tuple[str, Location] | None:
    metadata = document.value.get("metadata") if isinstance(document.value, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if isinstance(name, str):
        return name, document.location(("metadata", "name"))
    return None


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while loading.

    Loading allocates hundreds of thousands of small acyclic dicts, lists and tuples
    that stay alive; each allocation burst makes the collector rescan all of them, which
    cost about a third of the time on a 10,000-manifest tree. Reference counting still
    frees everything; the collector is switched back on (if it was on) afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def capped(problems: list[Problem], limit: int = PROBLEMS_PER_KIND) -> list[Problem]:
    """At most ``limit`` problems of each kind (code) of one file, in file order, and
    one line for the rest: "… and 9,900 more [unknown-key] problems in this file"."""
    by_code: dict[str, list[Problem]] = {}
    for problem in sorted(problems, key=lambda p: p.sort_key):
        by_code.setdefault(problem.code, []).append(problem)
    kept: list[Problem] = []
    for code, group in by_code.items():
        kept.extend(group[:limit])
        rest = group[limit:]
        if rest:
            severity = (
                Severity.ERROR
                if any(p.severity is Severity.ERROR for p in rest)
                else Severity.WARNING
            )
            message = (
                f"… and {len(rest):,} more [{code}] problems in this file (the first {limit} "
                "are shown; fix those and run again)"
            )
            kept.append(Problem(rest[0].location, message, severity, code))
    return kept


def load_tree(paths: Sequence[Path], *, skip_non_manifests: bool = False) -> LoadResult:
    """Load, validate and model the manifests in ``paths`` (files or folders).

    ``skip_non_manifests`` ignores YAML documents that are not manifests (neither
    ``apiVersion: reconciler/...`` nor ``kind: ImageSetMetadata``), for hooks that are
    handed every YAML file of a repository.
    """
    with _collector_paused():
        return _load_tree(paths, skip_non_manifests)


def _load_tree(paths: Sequence[Path], skip_non_manifests: bool) -> LoadResult:
    files, problems = discover(paths)
    projects = ProjectFinder()
    manifests: list[Manifest] = []
    tables: list[TableRows] = []
    names: list[tuple[str, Location]] = []
    files_checked = 0
    documents_checked = 0
    for path in files:
        documents, file_problems = load_file(path, path.as_posix())
        if skip_non_manifests:
            documents = [d for d in documents if is_manifest(d.value)]
            if not documents:
                # Not ours: only what stops us from reading it at all is worth a word.
                file_problems = [p for p in file_problems if p.code != codes.FILE_EMPTY]
                if not file_problems:
                    continue
        files_checked += 1
        found = list(file_problems)
        project = projects.for_folder(path.parent) if documents else None
        with suggestion_budget():  # bounded did-you-mean work per file
            for document in documents:
                documents_checked += 1
                structure = check_structure(document)
                found.extend(structure)
                if project is None:  # pragma: no cover - documents imply a project
                    continue
                if is_table(document.value):
                    if not structure:  # rows are checked as they stream (manifest.table)
                        rows, table_problems = check_table(document, path, project)
                        found.extend(table_problems)
                        if rows is not None:
                            tables.append(rows)
                    continue
                named = _name(document)
                if named is not None:
                    names.append(named)
                manifest, semantic_problems = build_manifest(
                    document, path, project, well_formed=not structure
                )
                found.extend(semantic_problems)
                if manifest is not None:
                    manifests.append(manifest)
        problems.extend(capped(found))
    for given in paths:  # the project file is checked even where no manifest is yet
        folder = given if given.is_dir() else given.parent
        if folder.is_dir():
            projects.for_folder(folder)
    problems.extend(projects.problems)
    problems.extend(find_duplicate_names([*names, *_row_names(names, tables)]))
    problems.extend(
        find_conflicts(
            (SelectorTarget(m.datastore_id, m.selector), m)
            for m in [*manifests, *_rows_sharing_a_selector(manifests, tables)]
        )
    )
    problems.sort(key=lambda problem: problem.sort_key)
    return LoadResult(Manifests(manifests, tables), problems, files_checked, documents_checked)


def _row_names(
    names: list[tuple[str, Location]], tables: list[TableRows]
) -> list[tuple[str, Location]]:
    """The names of table rows (``<table>-<line>``) that another manifest or another
    table's row also has: the only ones the duplicate check needs to see."""
    lines = {id(t): {t.line(i): i for i in range(len(t))} for t in tables}
    by_name: dict[str, list[TableRows]] = {}
    for table in tables:
        by_name.setdefault(table.name, []).append(table)
    found: list[tuple[str, Location]] = []
    for name, _ in names:
        prefix, dash, number = name.rpartition("-")
        if not dash or not number.isdigit() or str(int(number)) != number:
            continue
        for table in by_name.get(prefix, ()):
            if int(number) in lines[id(table)]:
                found.append((name, Location(table.template.shown, int(number), 1)))
    for same in by_name.values():
        if len(same) > 1:  # two tables of one name: their rows' names meet
            for table in same:
                found += [
                    (table.row_name(i), Location(table.template.shown, table.line(i), 1))
                    for i in range(len(table))
                ]
    return found


def _rows_sharing_a_selector(manifests: list[Manifest], tables: list[TableRows]) -> list[Manifest]:
    """The manifests of the table rows whose data store and selector another manifest
    (or row) has too: only they can conflict. Rows are compared by hash, a few bytes
    each; a row is built only when its hash is seen twice."""
    seen = {target_hash(m.datastore_id, m.selector) for m in manifests}
    twice: set[int] = set()
    for table in tables:
        for key in table.hashes:
            if key in seen:
                twice.add(key)
            seen.add(key)
    if not twice:
        return []
    del seen
    return [
        table.manifest(position)
        for table in tables
        for position, key in enumerate(table.hashes)
        if key in twice
    ]
