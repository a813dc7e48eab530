"""The two project settings validation needs, from ``reconciler.yaml``.

``reconciler.yaml`` is the project file (endpoint, region, default datastore, ...; the
config module owns its full format). Validation reads only ``datastoreId`` (the default
for manifests without ``spec.datastoreId``) and ``region``, from the nearest
``reconciler.yaml`` in the manifest's folder or above it, stopping at the git root
(a folder holding ``.git``) or the filesystem root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from reconciler.config import PROJECT_FILE, find_project_file
from reconciler.config import display_path as display
from reconciler.manifest import codes
from reconciler.manifest.model import Problem, error
from reconciler.manifest.textfile import load_file

_ID_RE = re.compile(r"[0-9a-z]{32}\Z")
_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+\Z")


@dataclass(frozen=True)
class Project:
    path: Path | None  # None: no reconciler.yaml was found
    datastore_id: str | None = None
    region: str | None = None


def load_project(path: Path) -> tuple[Project, list[Problem]]:
    """``datastoreId`` and ``region`` of the project file at ``path``, checked."""
    shown = display(path)
    documents, problems = load_file(path, shown)
    if not documents:
        return Project(path), [p for p in problems if p.code != codes.FILE_EMPTY]
    document = documents[0]
    settings = document.value
    if not isinstance(settings, dict):
        problems.append(
            error(document.start, f"{PROJECT_FILE} must be a mapping of settings", codes.PROJECT)
        )
        return Project(path), problems
    found: dict[str, str | None] = {"datastoreId": None, "region": None}
    rules = {
        "datastoreId": (_ID_RE, "32 lower-case letters and digits ([0-9a-z]{32})"),
        "region": (_REGION_RE, "an AWS region such as us-east-1"),
    }
    for key, (pattern, expected) in rules.items():
        value = settings.get(key)
        if value is None:
            continue
        if isinstance(value, str) and pattern.match(value):
            found[key] = value
            continue
        problems.append(
            error(
                document.location((key,)),
                f"{key} in {PROJECT_FILE} must be {expected}; got {value!r}",
                codes.PROJECT,
            )
        )
    return Project(path, found["datastoreId"], found["region"]), problems


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
