"""The two project settings validation needs, from ``reconciler.yaml``.

``reconciler.yaml`` is the project file (endpoint, region, default datastore, ...;
:mod:`reconciler.config` owns its format, :mod:`~reconciler.manifest.settings` reads
it). Validation uses ``datastoreId`` (the default for manifests without
``spec.datastoreId``) and ``region`` of the nearest ``reconciler.yaml`` in the
manifest's folder or above it, stopping at the git root (a folder holding ``.git``) or
the filesystem root, and reports every problem of that file once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.config import PROJECT_FILE, find_project_file
from reconciler.config import display_path as display
from reconciler.manifest.model import Problem
from reconciler.manifest.settings import check_project_file


@dataclass(frozen=True)
class Project:
    path: Path | None  # None: no reconciler.yaml was found
    datastore_id: str | None = None
    region: str | None = None


def load_project(path: Path) -> tuple[Project, list[Problem]]:
    """``datastoreId`` and ``region`` of the project file at ``path``, checked (the
    whole file is checked, as every command reads it)."""
    config, problems = check_project_file(path)
    return Project(path, config.datastore_id, config.region), problems


class ProjectFinder:
    """Finds and loads each folder's project file once (problems reported once)."""

    def __init__(self) -> None:
        self._by_folder: dict[Path, Path | None] = {}
        self._loaded: dict[Path, Project] = {}
        self.problems: list[Problem] = []

    def for_folder(self, folder: Path) -> Project:
        # Keyed by the folder as given: resolving it for every file was a tenth of the
        # time of a tree with one manifest per file.
        if folder not in self._by_folder:
            self._by_folder[folder] = find_project_file(folder)
        path = self._by_folder[folder]
        if path is None:
            return Project(None)
        if path not in self._loaded:
            project, problems = load_project(path)
            self._loaded[path] = project
            self.problems.extend(problems)
        return self._loaded[path]


def missing_datastore_hint(project: Project) -> str:
    if project.path is None:
        return f"no {PROJECT_FILE} was found in the manifest's folder or above it"
    return f"{display(project.path)} has no valid datastoreId"
