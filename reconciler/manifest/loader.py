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
from reconciler.manifest.table import expand_table, is_table
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


def _rows(
    document: Document, path: Path, structure: list[Problem], found: list[Problem]
) -> list[Document]:
    """The documents to model: a table manifest's rows (each located in its CSV and
    schema-checked like any manifest), else the document itself."""
    if not is_table(document.value):
        return [document]
    if structure:
        return []
    rows, problems = expand_table(document, path)
    found.extend(problems)
    for row in rows:
        found.extend(check_structure(row))
    return rows


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
                for row in _rows(document, path, structure, found):
                    named = _name(row)
                    if named is not None:
                        names.append(named)
                    if project is None:  # pragma: no cover - documents imply a project
                        continue
                    manifest, semantic_problems = build_manifest(
                        row, path, project, well_formed=not structure
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
    problems.extend(find_duplicate_names(names))
    problems.extend(
        find_conflicts((SelectorTarget(m.datastore_id, m.selector), m) for m in manifests)
    )
    problems.sort(key=lambda problem: problem.sort_key)
    return LoadResult(manifests, problems, files_checked, documents_checked)
