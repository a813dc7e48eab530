"""Which files make up a manifest tree.

A folder is walked recursively in sorted order for ``*.yaml`` and ``*.yml`` files,
skipping hidden folders and files (``.git``, ``.github``, ...) and the project file
``reconciler.yaml``, which is settings, not a manifest. A file named on the command
line is read whatever its extension (except ``reconciler.yaml``). Symlinked folders are
not followed, so a link cannot loop the walk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from reconciler.config import PROJECT_FILE
from reconciler.manifest import codes
from reconciler.manifest.model import Location, Problem, error, warning

SUFFIXES = (".yaml", ".yml")


def _walk(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(root)
        found.extend(
            base / name
            for name in sorted(files)
            if name.endswith(SUFFIXES) and not name.startswith(".") and name != PROJECT_FILE
        )
    return found


def _inside(root: Path, found: list[Path]) -> tuple[list[Path], list[Path]]:
    """Files of the walk that stay inside ``root``, and symlinks that lead out of it:
    a link must not pull a file from elsewhere (say, a secret) into the manifests."""
    top = root.resolve()
    kept: list[Path] = []
    escaped: list[Path] = []
    for path in found:
        try:
            outside = path.is_symlink() and not path.resolve().is_relative_to(top)
        except (OSError, RuntimeError):  # a link loop: reading it reports it as unreadable
            outside = False
        (escaped if outside else kept).append(path)
    return kept, escaped


def discover(paths: Sequence[Path]) -> tuple[list[Path], list[Problem]]:
    """The manifest files under ``paths`` (each once, in order) and path problems."""
    files: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for given in paths:
        shown = given.as_posix()
        if given.is_dir():
            found = _walk(given)
            if not found:
                problems.append(
                    warning(
                        Location(shown),
                        "no *.yaml or *.yml manifest found in this folder",
                        codes.NO_MANIFESTS,
                    )
                )
        elif given.exists():
            found = [] if given.name == PROJECT_FILE else [given]
        else:
            problems.append(error(Location(shown), "no such file or directory", codes.FILE_MISSING))
            continue
        if given.is_dir():
            found, escaped = _inside(given, found)
            problems += [
                error(Location(p.as_posix()), "a symlink that leads outside the manifest tree "
                      "was not read; copy the file into the tree instead", codes.FILE_UNREADABLE)
                for p in escaped
            ]  # fmt: skip
        for path in found:
            # abspath, not resolve(): no system call per file. A file reached twice
            # through a symlink is read twice, and its names are reported as duplicates.
            identity = Path(os.path.abspath(path))
            if identity not in seen:
                seen.add(identity)
                files.append(path)
    return files, problems
